//! Progress on a terminal, drawn as docker draws it: one line per layer,
//! `ID: STATUS [====>   ]  DONE/TOTAL`, redrawn in place.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strata::digest::Digest;
use strata::format::human_size_precision;
use strata::progress::{BlobKind, Event, Progress};

/// Whether standard output is a terminal (progress bars are drawn only then).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; a failed call leaves it zeroed.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    }
}

struct Line {
    id: String,
    status: &'static str,
    done: u64,
    total: u64,
    start: Instant,
}

struct State {
    lines: Vec<Line>,
    by_digest: HashMap<Digest, usize>,
    drawn: usize,
    last_draw: Option<Instant>,
}

/// Draws one line per layer as layers move.
pub struct LayerBars {
    status: &'static str,
    state: Mutex<State>,
    width: usize,
}

impl LayerBars {
    /// Bars labelled with `status` ("Loading layer").
    pub fn new(status: &'static str) -> LayerBars {
        LayerBars {
            status,
            state: Mutex::new(State {
                lines: Vec::new(),
                by_digest: HashMap::new(),
                drawn: 0,
                last_draw: None,
            }),
            width: terminal_width(),
        }
    }

    /// Draws the final state.
    pub fn finish(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.draw(&mut state);
    }

    fn draw(&self, state: &mut State) {
        let mut out = std::io::stdout().lock();
        let mut text = String::new();
        if state.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", state.drawn));
        }
        for line in &state.lines {
            text.push_str("\x1b[2K");
            text.push_str(&render(line, self.width));
            text.push('\n');
        }
        state.drawn = state.lines.len();
        state.last_draw = Some(Instant::now());
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// One progress line in docker's jsonmessage format.
fn render(line: &Line, width: usize) -> String {
    let mut bar = String::new();
    let percentage = if line.total > 0 {
        ((line.done as f64 / line.total as f64 * 100.0) as usize / 2).min(50)
    } else {
        0
    };
    if width > 110 {
        bar = format!(
            "[{}>{}] ",
            "=".repeat(percentage),
            " ".repeat(50 - percentage)
        );
    }
    let current = human_size_precision(line.done as f64, 4);
    let numbers = if line.done > line.total {
        format!("{current:>8}")
    } else {
        format!(
            "{current:>8}/{}",
            human_size_precision(line.total as f64, 4)
        )
    };
    let mut left = String::new();
    if line.done > 0 && percentage < 50 && width > 50 {
        let elapsed = line.start.elapsed().as_secs_f64();
        let remaining =
            elapsed / line.done as f64 * (line.total - line.done.min(line.total)) as f64;
        left = format!(" {}", go_duration_secs(remaining as u64));
    }
    format!("{}: {} {bar}{numbers}{left}", line.id, line.status)
}

/// Go's Duration.String() for whole seconds ("1m5s", "42s", "0s").
fn go_duration_secs(s: u64) -> String {
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

impl Progress for LayerBars {
    fn event(&self, event: Event) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let redraw = match event {
            Event::BlobStart {
                digest,
                kind: BlobKind::Layer { diff_id },
                size,
            } => {
                let id = diff_id.digest()[..12].to_string();
                state.lines.push(Line {
                    id,
                    status: self.status,
                    done: 0,
                    total: size,
                    start: Instant::now(),
                });
                let i = state.lines.len() - 1;
                state.by_digest.insert(digest, i);
                true
            }
            Event::BlobProgress { digest, done, .. } => {
                if let Some(&i) = state.by_digest.get(&digest) {
                    state.lines[i].done = done;
                }
                state
                    .last_draw
                    .is_none_or(|t| t.elapsed() > Duration::from_millis(100))
            }
            Event::BlobDone {
                digest,
                skipped: false,
                ..
            } => {
                if let Some(&i) = state.by_digest.get(&digest) {
                    let total = state.lines[i].total;
                    state.lines[i].done = total;
                }
                true
            }
            _ => false,
        };
        if redraw {
            self.draw(&mut state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_line_matches_docker() {
        let line = Line {
            id: "e81bff2725db".into(),
            status: "Loading layer",
            done: 72_520_000,
            total: 72_520_000,
            start: Instant::now(),
        };
        assert_eq!(
            render(&line, 200),
            "e81bff2725db: Loading layer [==================================================>]  72.52MB/72.52MB"
        );
        assert_eq!(
            render(&line, 80),
            "e81bff2725db: Loading layer  72.52MB/72.52MB"
        );
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration_secs(0), "0s");
        assert_eq!(go_duration_secs(65), "1m5s");
        assert_eq!(go_duration_secs(3725), "1h2m5s");
    }
}
