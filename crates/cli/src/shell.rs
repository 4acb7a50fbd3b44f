//! The interactive shell: the same operations as the one-shot commands,
//! with line editing and history.

use clap::Parser;
use ringkv_client::Client;
use rustyline::error::ReadlineError;

use crate::ops::Op;
use crate::output;

const HELP: &str = "\
commands (KEY: decimal or 0x-hex integer; DATA: text, @FILE or hex:BYTES; quote with \"...\"):
  set KEY DATA [--timestamp T]    insert if absent               e.g.  set 42 hello
  get KEY                         read                           e.g.  get 42
  del KEY [VERSION]               remove (only at VERSION)       e.g.  del 42 2
  tas KEY DATA VERSION            replace if at VERSION          e.g.  tas 42 \"hello again\" 1
  help                            this text
  quit | exit | Ctrl-D            leave";

/// One shell line, parsed with the same definitions as the CLI.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_flag = true, disable_version_flag = true)]
struct Line {
    #[command(subcommand)]
    op: Op,
}

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".ringkv_history"))
}

/// Runs the shell against `client` until the user leaves.
pub async fn run(client: &Client, addr: &str, json: bool) -> anyhow::Result<()> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!("ringkv shell, connected to {addr}. Type help for the commands, Ctrl-D to leave.");
    loop {
        let line = match editor.readline("ringkv> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        match line {
            "quit" | "exit" => break,
            "help" | "?" => {
                println!("{HELP}");
                continue;
            }
            _ => {}
        }
        let Some(words) = shlex::split(line) else {
            println!("error: unbalanced quotes");
            continue;
        };
        match Line::try_parse_from(words) {
            Ok(Line { op }) => match op.run(client).await {
                Ok(reply) if json => println!("{}", output::json(&reply)),
                Ok(reply) => println!("{}", output::readable(&reply)),
                Err(e) => println!("error: {e}"),
            },
            Err(e) => println!("{}\n(type help for the commands)", e.to_string().trim_end()),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}
