//! `shop shell`: the admin commands as lines (`product get p1`), parsed by
//! the very same `AdminCmd` as the one-shot commands, with line editing,
//! history and shell-style quoting. An error in one line is printed on one
//! line and the shell goes on: a typo or a portal restart should not end a
//! session.
//!
//! On a terminal: a prompt, history in `$HOME/.shop_history`, Ctrl-C clears
//! the line at the prompt and cancels a command that is running; `quit`,
//! `exit` or Ctrl-D leave. rustyline blocks while it waits for a key, so
//! the editor runs on a thread of its own and the shell awaits each line as
//! a future. Not on a terminal (a pipe, a file): the lines are read as they
//! come, without a prompt or greeting, and the exit code is that of the last
//! line that failed (0 if none did), so the shell can run scripts:
//! `printf 'product get p1\n' | shop shell`.
//!
//! Signals: rustyline replaces the SIGINT handler while its editor exists
//! and does not pass the signal on, whereas tokio's handler calls the one it
//! found; so the editor is created before anything watches SIGINT through
//! tokio (the first command), and both see a Ctrl-C.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use clap::Parser;
use rustyline::error::ReadlineError;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::admin::{AdminCmd, Portal};
use crate::output;

const HELP: &str = "\
commands (quote text with \"...\" or '...'; COMMAND --help for the details of one):
  customer create CID --name NAME --email EMAIL      e.g.  customer create c1 --name 'Ada Lovelace' --email ada@example.org
  customer get CID                                   e.g.  customer get c1
  customer update CID [--name N] [--email E] [--version V]
                                                     e.g.  customer update c1 --email ada@lovelace.org
  customer delete CID                                e.g.  customer delete c1
  customer list [--after ID] [--limit N] [--all]     e.g.  customer list --after c20 --limit 20
  product create PID --description D --quantity Q --price P
                                                     e.g.  product create p1 --description 'Blue mug' --quantity 10 --price 4.50
  product get PID                                    e.g.  product get p1
  product update PID [--description D] [--quantity Q] [--price P] [--version V]
                                                     e.g.  product update p1 --quantity 12
  product delete PID                                 e.g.  product delete p1
  product list [--after ID] [--limit N] [--all]      e.g.  product list --all
  (an update keeps the fields not given; with --version only if still at that version)
  COMMAND --json                                     that answer as JSON
  help                                               this text
  quit | exit | Ctrl-D                               leave";

/// One shell line, parsed with the same definitions as `shop admin`.
#[derive(Debug, Parser)]
#[command(name = "shop>", no_binary_name = true, disable_version_flag = true, disable_help_subcommand = true)]
struct Line {
    /// Print this answer as JSON (as `shop --json shell` does for all).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: AdminCmd,
}

/// What to do with one line of input.
#[derive(Debug, PartialEq)]
enum Action {
    Nothing,
    Quit,
    Help,
    /// Text to show, not an error (a command's --help).
    Show(String),
    /// A line that is not a command: one line saying why.
    Bad(String),
    /// A command, and whether this line asked for JSON.
    Run(AdminCmd, bool),
}

/// Decides what a line asks for, without touching the network. A leading
/// `admin` is allowed, so one-shot commands can be pasted as they are.
fn interpret(line: &str) -> Action {
    let line = line.trim();
    match line {
        "" => return Action::Nothing,
        "quit" | "exit" => return Action::Quit,
        "help" | "?" => return Action::Help,
        _ if line.starts_with('#') => return Action::Nothing,
        _ => {}
    }
    let Some(mut words) = shlex::split(line) else {
        return Action::Bad("unbalanced quotes".into());
    };
    if words.first().map(String::as_str) == Some("admin") {
        words.remove(0);
    }
    match Line::try_parse_from(words) {
        Ok(Line { cmd, json }) => Action::Run(cmd, json),
        Err(e) if !e.use_stderr() => Action::Show(e.to_string().trim_end().into()),
        Err(e) => Action::Bad(format!("{} (type help for the commands)", first_line(&e.to_string()))),
    }
}

/// A clap error's first line, without its "error: " (the shell adds its own).
fn first_line(text: &str) -> &str {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("bad command").trim();
    line.strip_prefix("error: ").unwrap_or(line)
}

/// Runs the shell until the user leaves (or the input ends). Returns
/// success, or when the input is not a terminal the exit code of the last
/// line that failed (at a terminal, the user has seen each error).
pub async fn run(portal: &[String], timeout: Duration, json: bool) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal();
    // The editor first: see the module documentation about SIGINT.
    let input = if interactive { Input::Editor(Reader::start("shop> ", history_file())?) } else { Input::stdin() };
    session(input, interactive, portal, timeout, json).await
}

/// The shell's line editor on the terminal, made before anything watches
/// SIGINT (see the module documentation): `shop up` opens it first thing
/// and runs the shell with `run_editor` once everything is up.
pub struct Editor(Input);

impl Editor {
    pub fn open() -> anyhow::Result<Editor> {
        Ok(Editor(Input::Editor(Reader::start("shop> ", history_file())?)))
    }
}

/// The interactive shell on an editor opened earlier.
pub async fn run_editor(editor: Editor, portal: &[String], timeout: Duration, json: bool) -> anyhow::Result<ExitCode> {
    session(editor.0, true, portal, timeout, json).await
}

async fn session(
    mut input: Input,
    interactive: bool,
    portal: &[String],
    timeout: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let portal = Portal::connect(portal, timeout)?;
    if interactive {
        println!("shop shell, talking to {}. Type help for the commands, Ctrl-D to leave.", portal.shown());
    }
    let mut failed: Option<u8> = None;
    loop {
        let line = match input.next().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                input.close();
                return Err(e);
            }
        };
        match interpret(&line) {
            Action::Nothing => {}
            Action::Quit => break,
            Action::Help => println!("{HELP}"),
            Action::Show(text) => println!("{text}"),
            Action::Bad(why) => {
                eprintln!("error: {why}");
                failed = Some(1);
            }
            Action::Run(cmd, json_line) => {
                if let Some(code) = execute(&portal, &cmd, json || json_line, interactive).await {
                    failed = Some(code);
                }
            }
        }
    }
    input.close();
    Ok(match failed {
        Some(code) if !interactive => ExitCode::from(code),
        _ => ExitCode::SUCCESS,
    })
}

/// Runs one command and prints its answer or its error; returns the exit
/// code if it failed. On a terminal, Ctrl-C cancels it.
async fn execute(portal: &Portal, cmd: &AdminCmd, json: bool, interactive: bool) -> Option<u8> {
    let answer = if interactive {
        tokio::select! {
            answer = portal.execute(cmd) => answer,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted (a change may or may not have taken effect)");
                return Some(1);
            }
        }
    } else {
        portal.execute(cmd).await
    };
    match answer {
        Ok(out) => {
            println!("{}", output::render(&out, json));
            None
        }
        Err(e) => {
            eprintln!("error: {e}");
            Some(e.exit_code())
        }
    }
}

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".shop_history"))
}

/// Where the lines come from.
enum Input {
    /// A terminal: the line editor.
    Editor(Reader),
    /// A pipe or a file: plain lines.
    Plain(tokio::io::Lines<BufReader<tokio::io::Stdin>>),
}

impl Input {
    fn stdin() -> Input {
        Input::Plain(BufReader::new(tokio::io::stdin()).lines())
    }

    /// The next line; `None` at the end (Ctrl-D, end of input). Ctrl-C at
    /// the prompt gives an empty line.
    async fn next(&mut self) -> anyhow::Result<Option<String>> {
        match self {
            Input::Plain(lines) => Ok(lines.next_line().await?),
            Input::Editor(reader) => match reader.next().await {
                Some(Ok(line)) => Ok(Some(line)),
                Some(Err(ReadlineError::Interrupted)) => Ok(Some(String::new())),
                Some(Err(ReadlineError::Eof)) | None => Ok(None),
                Some(Err(e)) => Err(e.into()),
            },
        }
    }

    fn close(self) {
        if let Input::Editor(reader) = self {
            reader.close();
        }
    }
}

/// A line editor with history on a thread of its own, readable from async
/// code: each `next` asks the thread for one line.
struct Reader {
    ask: Option<std_mpsc::Sender<()>>,
    lines: mpsc::Receiver<rustyline::Result<String>>,
    thread: Option<JoinHandle<()>>,
}

impl Reader {
    /// Starts the editor thread, with history loaded from (and saved on
    /// `close` to) `history`; a history file that cannot be read or written
    /// is ignored.
    fn start(prompt: &'static str, history: Option<std::path::PathBuf>) -> anyhow::Result<Reader> {
        let mut editor = rustyline::DefaultEditor::new()?;
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        let (ask, asked) = std_mpsc::channel::<()>();
        let (answer, lines) = mpsc::channel(1);
        let thread = std::thread::Builder::new().name("shop-shell".into()).spawn(move || {
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
        Ok(Reader { ask: Some(ask), lines, thread: Some(thread) })
    }

    /// Shows the prompt and waits for the next line; `None` if the editor
    /// thread is gone.
    async fn next(&mut self) -> Option<rustyline::Result<String>> {
        self.ask.as_ref()?.send(()).ok()?;
        self.lines.recv().await
    }

    /// Stops the editor thread and saves the history; call it between lines.
    fn close(mut self) {
        self.ask = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{CustomerCmd, ProductCmd};

    #[test]
    fn lines() {
        assert_eq!(interpret("   "), Action::Nothing);
        assert_eq!(interpret("# a comment"), Action::Nothing);
        assert_eq!(interpret(" quit "), Action::Quit);
        assert_eq!(interpret("exit"), Action::Quit);
        assert_eq!(interpret("help"), Action::Help);
        assert_eq!(
            interpret("customer create c1 --name 'Ada Lovelace' --email a@b.c"),
            Action::Run(
                AdminCmd::Customer(CustomerCmd::Create {
                    cid: "c1".into(),
                    name: "Ada Lovelace".into(),
                    email: "a@b.c".into()
                }),
                false
            )
        );
        assert!(matches!(
            interpret("product get p1 --json"),
            Action::Run(AdminCmd::Product(ProductCmd::Get { .. }), true)
        ));
        assert_eq!(interpret("admin product get p1"), interpret("product get p1"));
        assert!(matches!(interpret("product list"), Action::Run(AdminCmd::Product(ProductCmd::List(_)), false)));
    }

    #[test]
    fn mistakes_are_one_line() {
        for bad in ["product get 'p1", "frobnicate", "product create p1 --price 1", "product update p1 --price abc"] {
            match interpret(bad) {
                Action::Bad(why) => assert!(!why.contains('\n') && !why.is_empty(), "{bad}: {why}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(interpret("product get 'p1"), Action::Bad(s) if s.contains("quotes")));
        assert!(matches!(interpret("product update p1 --price abc"), Action::Bad(s) if s.contains("not a price")));
    }

    #[test]
    fn help_is_shown_not_an_error() {
        assert!(
            matches!(interpret("product --help"), Action::Show(s) if s.contains("create") && s.contains("Examples"))
        );
        assert!(matches!(interpret("customer update --help"), Action::Show(s) if s.contains("--version")));
        for cmd in ["customer create", "customer get", "customer update", "customer delete", "customer list"] {
            assert!(HELP.contains(cmd), "{cmd}");
            assert!(HELP.contains(&format!("e.g.  {cmd}")), "example for {cmd}");
        }
        for cmd in ["product create", "product get", "product update", "product delete", "product list"] {
            assert!(HELP.contains(&format!("e.g.  {cmd}")), "example for {cmd}");
        }
    }
}
