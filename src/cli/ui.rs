//! The terminal as the commands' [`Ui`]: standard output and error, and
//! docker's progress lines.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use strata::command::{TransferMode, TransferView, Ui};

use super::progress::{Transfer, stdout_is_terminal};

/// Standard output and error of this process.
pub struct Terminal {
    terminal: bool,
}

impl Terminal {
    /// The process's own terminal (or pipes).
    pub fn new() -> Terminal {
        Terminal {
            terminal: stdout_is_terminal(),
        }
    }
}

impl Ui for Terminal {
    fn stdout(&self) -> Box<dyn Write + '_> {
        Box::new(Stdout(io::stdout().lock()))
    }

    fn warn(&self, line: &str) {
        let _ = std::io::stdout().flush();
        eprintln!("{line}");
    }

    fn transfer(&self, mode: TransferMode, shown: bool) -> Box<dyn TransferView + '_> {
        // docker's load is silent when not on a terminal.
        if !shown || mode == TransferMode::Save || (mode == TransferMode::Load && !self.terminal) {
            return Box::new(strata::progress::Silent);
        }
        Box::new(Transfer::new(mode, self.terminal))
    }

    fn is_terminal(&self) -> bool {
        self.terminal
    }
}

/// Set once a write to standard output found the pipe closed.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// True when some output was refused because its reader went away (`strata
/// images | head -1`). docker, a Go program, dies of SIGPIPE then, silently;
/// strata ignores the signal, so it learns of it from the write.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Standard output, remembering a closed pipe (see [`stdout_closed`]).
pub struct Stdout<W>(pub W);

impl<W: Write> Write for Stdout<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        noted(self.0.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        noted(self.0.flush())
    }
}

fn noted<T>(result: io::Result<T>) -> io::Result<T> {
    if let Err(e) = &result
        && e.kind() == io::ErrorKind::BrokenPipe
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_remembered_and_still_reported() {
        let mut out = Stdout(Vec::new());
        out.write_all(b"row\n").unwrap();
        assert!(!stdout_closed());
        let e = Stdout(Closed).write_all(b"row\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(stdout_closed());
    }
}
