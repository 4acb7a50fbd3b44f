//! The interactive shell: the same operations as the one-shot commands
//! (parsed by the very same `Op` definitions), with line editing, history
//! and shell-style quoting. An error in one line is printed and the shell
//! goes on: a typo or a server restart should not end a session.
//!
//! Ctrl-C at the prompt clears the line; Ctrl-C while a command runs
//! cancels that command. Leaving is `quit`, `exit` or Ctrl-D. The future
//! `Shell::run` returns can be dropped at any time (SIGTERM): the editor
//! runs on its own thread (`reader`), and the terminal is restored.
//!
//! Signals: rustyline replaces the SIGINT handler while its editor exists
//! and does not pass the signal on, whereas tokio's handler (signal-hook's
//! registry) calls the handler it found. So the editor must exist before
//! anything watches SIGINT through tokio: `Shell::open` first, then the
//! rest, and both see a Ctrl-C.

mod reader;

use clap::Parser;
use ringkv_client::Client;
use rustyline::error::ReadlineError;

use crate::cmd::ops::Op;
use crate::cmd::ring::RingView;
use crate::signal;
use reader::Reader;

const HELP: &str = "\
commands (KEY: decimal or 0x-hex integer, may be negative, any size;
          DATA: text, @FILE for a file's bytes, or hex:BYTES; quote with \"...\" or '...'):
  set KEY DATA [TIMESTAMP]        insert if absent                e.g.  set 42 hello
  get KEY                         read                            e.g.  get 42
  del KEY [VERSION]               remove (only at VERSION)        e.g.  del 42 2
  tas KEY DATA VERSION [TIMESTAMP]  replace if at VERSION         e.g.  tas 42 \"hello again\" 1
  put KEY DATA [TIMESTAMP]        insert or replace               e.g.  put 42 hi
  at KEY VERSION                  read a kept version             e.g.  at 42 1
  history KEY [--limit N]         the kept versions, newest first e.g.  history 42
  trim KEY [KEEP]                 keep only the newest KEEP (1)   e.g.  trim 42
  range FROM TO [--limit N]       keys in order, newest values    e.g.  range 0 100
  delrange FROM TO                remove every key in the range   e.g.  delrange 0 100
  (--version V and --timestamp T work too; TIMESTAMP defaults to now, in ms)
  status                          the ring and every replica's role, term and indexes
  COMMAND --help                  details of one command
  help                            this text
  quit | exit | Ctrl-D            leave";

/// One shell line, parsed with the same definitions as the CLI.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_version_flag = true)]
struct Line {
    #[command(subcommand)]
    op: Op,
}

/// What to do with one line of input.
#[derive(Debug, PartialEq)]
enum Action {
    Nothing,
    Quit,
    Help,
    Status,
    Say(String),
    Run(Op),
}

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".ringkv_history"))
}

/// Decides what a line asks for, without touching the network.
fn interpret(line: &str) -> Action {
    let line = line.trim();
    match line {
        "" => return Action::Nothing,
        "quit" | "exit" => return Action::Quit,
        "help" | "?" => return Action::Help,
        "status" => return Action::Status,
        _ => {}
    }
    let Some(words) = shlex::split(line) else {
        return Action::Say("error: unbalanced quotes".into());
    };
    match Line::try_parse_from(words) {
        Ok(Line { op }) => Action::Run(op),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => Action::Say(e.to_string().trim_end().into()),
        Err(e) => Action::Say(format!("{}\n(type help for the commands)", e.to_string().trim_end())),
    }
}

/// An interactive shell, opened but not yet running.
pub struct Shell {
    reader: Reader,
}

impl Shell {
    /// Creates the line editor (with the history from
    /// `$HOME/.ringkv_history`). Call it before anything watches SIGINT:
    /// see the module documentation.
    pub fn open() -> anyhow::Result<Shell> {
        Ok(Shell { reader: Reader::start("ringkv> ", history_file())? })
    }

    /// Runs the shell against `client` until the user leaves. `addr` is
    /// only shown in the greeting; `status` asks the servers at `seeds`.
    pub async fn run(self, client: &Client, addr: &str, seeds: &[String], json: bool) -> anyhow::Result<()> {
        let mut reader = self.reader;
        println!("ringkv shell, connected to {addr}. Type help for the commands, Ctrl-D to leave.");
        loop {
            let line = match reader.next().await {
                Some(Ok(line)) => line,
                Some(Err(ReadlineError::Interrupted)) => continue,
                Some(Err(ReadlineError::Eof)) | None => break,
                Some(Err(e)) => {
                    reader.close();
                    return Err(e.into());
                }
            };
            match interpret(&line) {
                Action::Nothing => {}
                Action::Quit => break,
                Action::Help => println!("{HELP}"),
                Action::Say(text) => println!("{text}"),
                Action::Status => match RingView::fetch(seeds, false).await {
                    Ok(view) if json => println!("{}", view.json()),
                    Ok(view) => view.print(),
                    Err(e) => println!("error: {e:#}"),
                },
                Action::Run(op) => tokio::select! {
                    result = op.run(client) => match result {
                        Ok(answer) if json => println!("{}", answer.json()),
                        Ok(answer) => println!("{}", answer.readable()),
                        Err(e) => println!("error: {e}"),
                    },
                    _ = signal::interrupt() => println!("interrupted (a write may or may not have taken effect)"),
                },
            }
        }
        reader.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(interpret("   "), Action::Nothing);
        assert_eq!(interpret(" quit "), Action::Quit);
        assert_eq!(interpret("exit"), Action::Quit);
        assert_eq!(interpret("help"), Action::Help);
        assert_eq!(interpret(" status"), Action::Status);
        assert!(matches!(interpret("set 1 'two words'"), Action::Run(Op::Set { data, .. }) if data == "two words"));
        assert!(matches!(interpret("test-and-set 1 x 2"), Action::Run(Op::Tas { .. })));
        assert!(matches!(interpret("set 1 \"open"), Action::Say(s) if s.contains("quotes")));
        assert!(matches!(interpret("frobnicate 1"), Action::Say(s) if s.contains("type help")));
        assert!(matches!(interpret("get --help"), Action::Say(s) if s.contains("KEY") && !s.contains("type help")));
    }
}
