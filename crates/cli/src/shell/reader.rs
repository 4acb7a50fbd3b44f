//! The shell's line editor, on a thread of its own.
//!
//! rustyline blocks while it waits for a key, and a task blocked that way
//! could not notice anything else: `ringkv up` must stop its servers on
//! SIGTERM, or report one that died, even while the prompt waits. So the
//! editor lives on a plain thread that reads one line per request, and the
//! shell awaits each line like any other future, which makes it
//! cancellable. If the shell is dropped mid-prompt, `TerminalGuard` puts the
//! terminal back the way it was, since rustyline never gets to leave its
//! raw mode.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use nix::sys::termios::{tcgetattr, tcsetattr, SetArg, Termios};
use rustyline::error::ReadlineError;
use tokio::sync::mpsc;

/// What the editor read: a line, or why there is none (Ctrl-C, Ctrl-D, …).
pub type ReadResult = Result<String, ReadlineError>;

/// A line editor with history, readable from async code.
pub struct Reader {
    ask: Option<std_mpsc::Sender<()>>,
    lines: mpsc::Receiver<ReadResult>,
    thread: Option<JoinHandle<()>>,
    _terminal: TerminalGuard,
}

impl Reader {
    /// Starts the editor thread, with history loaded from (and saved on
    /// `close` to) `history` if given; a history file that cannot be read
    /// or written is ignored.
    pub fn start(prompt: &'static str, history: Option<PathBuf>) -> anyhow::Result<Reader> {
        let terminal = TerminalGuard::save();
        let mut editor = rustyline::DefaultEditor::new()?;
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        let (ask, asked) = std_mpsc::channel::<()>();
        let (answer, lines) = mpsc::channel(1);
        let thread = std::thread::Builder::new().name("ringkv-shell".into()).spawn(move || {
            while asked.recv().is_ok() {
                let line = editor.readline(prompt);
                if let Ok(l) = &line {
                    if !l.trim().is_empty() {
                        let _ = editor.add_history_entry(l.trim());
                    }
                }
                if answer.blocking_send(line).is_err() {
                    break;
                }
            }
            if let Some(h) = &history {
                let _ = editor.save_history(h);
            }
        })?;
        Ok(Reader { ask: Some(ask), lines, thread: Some(thread), _terminal: terminal })
    }

    /// Shows the prompt and waits for the next line; `None` if the editor
    /// thread is gone.
    pub async fn next(&mut self) -> Option<ReadResult> {
        self.ask.as_ref()?.send(()).ok()?;
        self.lines.recv().await
    }

    /// Stops the editor thread and saves the history. Call it between lines
    /// (never while `next` is pending), so the thread is not in the prompt.
    pub fn close(mut self) {
        self.ask = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The terminal's settings when the shell started, restored when dropped.
struct TerminalGuard(Option<Termios>);

impl TerminalGuard {
    /// Saves stdin's terminal settings; nothing when stdin is not a
    /// terminal (a pipe), as then there is nothing to restore.
    fn save() -> Self {
        Self(tcgetattr(std::io::stdin()).ok())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, t);
        }
    }
}
