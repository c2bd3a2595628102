//! The terminal as the commands' [`Ui`]: standard output and error, and
//! docker's progress lines.

use std::io::Write;

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
        Box::new(std::io::stdout().lock())
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
