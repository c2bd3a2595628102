//! Transfer progress as docker shows it. On a terminal, one line per layer
//! redrawn in place (`ID: STATUS [====>   ]  DONE/TOTAL`); otherwise the
//! status changes as plain lines (pull and push), or nothing (load, whose
//! docker counterpart is quiet when not on a terminal). `copy` has no
//! docker counterpart: its bars say "Waiting", "Copying", "Done".

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strata::digest::Digest;
use strata::format::human_size_precision;
use strata::progress::{BlobKind, Event, Outcome, Progress};

/// Whether standard output is a terminal (progress bars are drawn only then).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

fn terminal_width() -> usize {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(ws) if ws.ws_col > 0 => ws.ws_col.into(),
        _ => 80,
    }
}

pub use strata::command::TransferMode as Mode;

struct Line {
    id: String,
    status: String,
    done: u64,
    total: u64,
    bar: bool,
    start: Instant,
    finished: bool,
}

struct State {
    lines: Vec<Line>,
    by_digest: HashMap<Digest, usize>,
    drawn: usize,
    last_draw: Option<Instant>,
    /// Layers a pull must download, in image order, for "Pull complete".
    order: Vec<Digest>,
    completed: usize,
}

/// Renders progress events for one command.
pub struct Transfer {
    mode: Mode,
    terminal: bool,
    width: usize,
    state: Mutex<State>,
}

impl Transfer {
    /// Progress for `mode`, drawn as bars when `terminal`.
    pub fn new(mode: Mode, terminal: bool) -> Transfer {
        Transfer {
            mode,
            terminal,
            width: terminal_width(),
            state: Mutex::new(State {
                lines: Vec::new(),
                by_digest: HashMap::new(),
                drawn: 0,
                last_draw: None,
                order: Vec::new(),
                completed: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a line before any transfer (push's "Preparing").
    fn add_announced(&self, digest: &Digest, id: &str, status: &str) {
        let mut state = self.state();
        self.line(&mut state, digest, id, status);
        if self.terminal {
            self.draw(&mut state);
        }
    }

    /// Draws the final state.
    fn draw_final(&self) {
        let mut state = self.state();
        if self.terminal {
            self.draw(&mut state);
        }
    }

    /// Sets a layer's status, adding its line if new; prints it when not
    /// on a terminal.
    fn line(&self, state: &mut State, digest: &Digest, id: &str, status: &str) -> usize {
        if let Some(&i) = state.by_digest.get(digest) {
            self.set(state, digest, status);
            return i;
        }
        state.lines.push(Line {
            id: id.to_string(),
            status: status.to_string(),
            done: 0,
            total: 0,
            bar: false,
            start: Instant::now(),
            finished: false,
        });
        let i = state.lines.len() - 1;
        state.by_digest.insert(digest.clone(), i);
        if !self.terminal {
            self.print(&format!("{id}: {status}\n"));
        }
        i
    }

    fn set(&self, state: &mut State, digest: &Digest, status: &str) {
        if let Some(&i) = state.by_digest.get(digest) {
            state.lines[i].status = status.to_string();
            state.lines[i].bar = false;
            if !self.terminal {
                self.print(&format!("{}: {status}\n", state.lines[i].id));
            }
        }
    }

    /// The short ID docker shows: the blob digest on pull, the diff ID on load and push.
    fn id_of(&self, digest: &Digest, kind: &BlobKind) -> Option<String> {
        match kind {
            BlobKind::Layer { diff_id } => {
                let d = if matches!(self.mode, Mode::Pull | Mode::Copy) {
                    digest
                } else {
                    diff_id
                };
                Some(d.digest()[..12].to_string())
            }
            _ => None,
        }
    }

    fn draw(&self, state: &mut State) {
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
        self.print(&text);
    }

    /// Progress is no reason to fail: a closed pipe is noted (the command
    /// then ends as docker does, see `ui::stdout_closed`), never a panic.
    fn print(&self, text: &str) {
        let mut out = super::ui::Stdout(std::io::stdout().lock());
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// "Pull complete" for every downloaded layer whose predecessors are
    /// complete too, as docker reports layers extracted in order.
    fn complete_in_order(&self, state: &mut State) {
        while state.completed < state.order.len() {
            let d = state.order[state.completed].clone();
            let done = state
                .by_digest
                .get(&d)
                .is_some_and(|&i| state.lines[i].finished);
            if !done {
                break;
            }
            self.set(state, &d, "Pull complete");
            state.completed += 1;
        }
    }
}

/// One progress line in docker's jsonmessage format.
fn render(line: &Line, width: usize) -> String {
    if !line.bar {
        return format!("{}: {}", line.id, line.status);
    }
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

impl Progress for Transfer {
    fn event(&self, event: Event) {
        let mut state = self.state();
        let redraw = match event {
            Event::BlobQueued { digest, kind, size } => {
                let Some(id) = self.id_of(&digest, &kind) else {
                    return;
                };
                match self.mode {
                    Mode::Pull => {
                        let i = self.line(&mut state, &digest, &id, "Pulling fs layer");
                        state.lines[i].total = size;
                        state.order.push(digest);
                        true
                    }
                    Mode::Copy => {
                        let i = self.line(&mut state, &digest, &id, "Waiting");
                        state.lines[i].total = size;
                        true
                    }
                    Mode::Push | Mode::Load | Mode::Save => {
                        if let Some(&i) = state.by_digest.get(&digest) {
                            state.lines[i].total = size;
                        }
                        false
                    }
                }
            }
            Event::BlobStart { digest, kind, size } => {
                let Some(id) = self.id_of(&digest, &kind) else {
                    return;
                };
                if self.mode == Mode::Load && self.terminal {
                    let i = self.line(&mut state, &digest, &id, "Loading layer");
                    state.lines[i].total = size;
                }
                if let Some(&i) = state.by_digest.get(&digest) {
                    state.lines[i].start = Instant::now();
                    state.lines[i].total = size;
                }
                self.terminal
            }
            Event::BlobProgress { digest, done, .. } => {
                let Some(&i) = state.by_digest.get(&digest) else {
                    return;
                };
                let status = match self.mode {
                    Mode::Load | Mode::Save => "Loading layer",
                    Mode::Pull => "Downloading",
                    Mode::Push => "Pushing",
                    Mode::Copy => "Copying",
                };
                let line = &mut state.lines[i];
                line.done = done;
                line.status = status.to_string();
                line.bar = true;
                self.terminal
                    && state
                        .last_draw
                        .is_none_or(|t| t.elapsed() > Duration::from_millis(100))
            }
            Event::BlobDone {
                digest,
                kind,
                outcome,
            } => {
                let Some(id) = self.id_of(&digest, &kind) else {
                    return;
                };
                match (self.mode, outcome) {
                    (Mode::Load, Outcome::Moved) => {
                        if let Some(&i) = state.by_digest.get(&digest) {
                            let line = &mut state.lines[i];
                            line.done = line.total;
                            line.bar = true;
                        }
                    }
                    (Mode::Load | Mode::Save, _) => {}
                    (Mode::Pull, Outcome::Moved) => {
                        self.set(&mut state, &digest, "Verifying Checksum");
                        self.set(&mut state, &digest, "Download complete");
                        if let Some(&i) = state.by_digest.get(&digest) {
                            state.lines[i].finished = true;
                        }
                        self.complete_in_order(&mut state);
                    }
                    (Mode::Pull, _) => {
                        self.line(&mut state, &digest, &id, "Already exists");
                    }
                    (Mode::Copy, outcome) => {
                        let status = match outcome {
                            Outcome::Moved => "Done".to_string(),
                            Outcome::Present => "Already exists".to_string(),
                            Outcome::Mounted { from } => format!("Mounted from {from}"),
                        };
                        self.line(&mut state, &digest, &id, &status);
                    }
                    (Mode::Push, outcome) => {
                        let status = match outcome {
                            Outcome::Moved => "Pushed".to_string(),
                            Outcome::Present => "Layer already exists".to_string(),
                            Outcome::Mounted { from } => format!("Mounted from {from}"),
                        };
                        self.line(&mut state, &digest, &id, &status);
                    }
                }
                self.terminal
            }
            Event::WritingManifests => false,
        };
        if redraw && self.terminal {
            self.draw(&mut state);
        }
    }
}

impl strata::command::TransferView for Transfer {
    fn announce(&self, digest: &Digest, id: &str, status: &str) {
        self.add_announced(digest, id, status);
    }
    fn finish(&self) {
        self.draw_final();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(done: u64, total: u64) -> Line {
        Line {
            id: "e81bff2725db".into(),
            status: "Loading layer".into(),
            done,
            total,
            bar: true,
            start: Instant::now(),
            finished: false,
        }
    }

    #[test]
    fn a_finished_line_matches_docker() {
        let l = line(72_520_000, 72_520_000);
        assert_eq!(
            render(&l, 200),
            "e81bff2725db: Loading layer [==================================================>]  72.52MB/72.52MB"
        );
        assert_eq!(
            render(&l, 80),
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
