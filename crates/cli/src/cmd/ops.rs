//! The operations as commands, defined once and used both as one-shot
//! subcommands (`ringkv get 42`) and as shell lines (`get 42`), so the two
//! can never drift apart.
//!
//! A version and a timestamp can be given as flags (`--version 2`,
//! `--timestamp T`, the one-shot style) or as trailing positionals
//! (`del 42 2`, `set 42 hi T`, the short shell style); giving both is an
//! error. Keys, data and versions are parsed here, after clap, so that a bad
//! one is reported in our words and counted as bad input (exit code 1).

use clap::Subcommand;
use ringkv_client::{Client, ClientError, History, Reply, Value};

use crate::{output, parse};

/// One key-value operation, as typed by the user.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum Op {
    /// Insert KEY with DATA if it is absent (version 1).
    ///
    /// Answers SUCCESS, or ERROR with the existing value.
    #[command(
        after_help = "Examples:\n  ringkv set 42 hello\n  ringkv set -0x1f @photo.jpg --timestamp 1700000000000\n  ringkv set 7 hex:deadbeef"
    )]
    Set {
        /// Decimal or 0x-hex integer, any size, may be negative.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// Text, @FILE for a file's bytes, or hex:BYTES.
        #[arg(allow_hyphen_values = true)]
        data: String,
        /// Same as --timestamp.
        #[arg(value_name = "TIMESTAMP", allow_hyphen_values = true, conflicts_with = "timestamp")]
        timestamp_pos: Option<String>,
        /// Client timestamp stored with the value (default: now, in ms since the Unix epoch).
        #[arg(long, allow_hyphen_values = true)]
        timestamp: Option<String>,
    },
    /// Read KEY.
    ///
    /// Answers SUCCESS with the value, or ERROR when absent.
    #[command(after_help = "Examples:\n  ringkv get 42\n  ringkv get -7 --json")]
    Get {
        /// Decimal or 0x-hex integer.
        #[arg(allow_hyphen_values = true)]
        key: String,
    },
    /// Remove KEY; with a version, only if that is its version.
    ///
    /// Without a version: SUCCESS with the removed value, or ERROR.
    /// With one: SUCCESS with the removed value, ERROR_NE (absent) or
    /// ERROR_WV (another version; the current value is shown).
    #[command(after_help = "Examples:\n  ringkv del 42\n  ringkv del 42 --version 2\n  ringkv del 42 2")]
    Del {
        /// Decimal or 0x-hex integer.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// Same as --version.
        #[arg(value_name = "VERSION", allow_hyphen_values = true, conflicts_with = "version")]
        version_pos: Option<String>,
        /// Remove only if the stored version is this (the DelVersion operation).
        #[arg(long, allow_hyphen_values = true)]
        version: Option<String>,
    },
    /// Replace KEY with DATA if its version is VERSION (test-and-set).
    ///
    /// Answers SUCCESS with the replaced value, ERROR_NE (absent), or
    /// ERROR_WV with the current value. On success the version becomes
    /// VERSION + 1.
    #[command(
        alias = "test-and-set",
        after_help = "Examples:\n  ringkv tas 42 'hello again' --version 1\n  ringkv tas 42 'hello again' 1\n  ringkv test-and-set 42 hex:00ff --version 2 --timestamp 5"
    )]
    Tas {
        /// Decimal or 0x-hex integer.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// Text, @FILE for a file's bytes, or hex:BYTES.
        #[arg(allow_hyphen_values = true)]
        data: String,
        /// Same as --version.
        #[arg(
            value_name = "VERSION",
            allow_hyphen_values = true,
            conflicts_with = "version",
            required_unless_present = "version"
        )]
        version_pos: Option<String>,
        /// Same as --timestamp.
        #[arg(value_name = "TIMESTAMP", allow_hyphen_values = true, conflicts_with = "timestamp")]
        timestamp_pos: Option<String>,
        /// The version KEY must have for the replacement to happen.
        #[arg(long, allow_hyphen_values = true)]
        version: Option<String>,
        /// Client timestamp stored with the value (default: now, in ms since the Unix epoch).
        #[arg(long, allow_hyphen_values = true)]
        timestamp: Option<String>,
    },
    /// Insert KEY with DATA, or replace it whatever its version.
    ///
    /// Answers SUCCESS with the replaced value (none when KEY was absent).
    /// The version becomes 1 on insert, else the old version + 1; the old
    /// value stays readable with `at` while the server keeps it
    /// (max_versions).
    #[command(after_help = "Examples:\n  ringkv put 42 hello\n  ringkv put 42 @photo.jpg --timestamp 1700000000000")]
    Put {
        /// Decimal or 0x-hex integer, any size, may be negative.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// Text, @FILE for a file's bytes, or hex:BYTES.
        #[arg(allow_hyphen_values = true)]
        data: String,
        /// Same as --timestamp.
        #[arg(value_name = "TIMESTAMP", allow_hyphen_values = true, conflicts_with = "timestamp")]
        timestamp_pos: Option<String>,
        /// Client timestamp stored with the value (default: now, in ms since the Unix epoch).
        #[arg(long, allow_hyphen_values = true)]
        timestamp: Option<String>,
    },
    /// Read version VERSION of KEY.
    ///
    /// Answers SUCCESS with that version, ERROR_NE (absent), or ERROR_WV
    /// with the current value when that version is not (or no longer) kept.
    #[command(after_help = "Examples:\n  ringkv at 42 1\n  ringkv at 42 3 --json")]
    At {
        /// Decimal or 0x-hex integer.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// The version to read.
        #[arg(allow_hyphen_values = true)]
        version: String,
    },
    /// The kept versions of KEY, newest first.
    ///
    /// Answers SUCCESS with them, or ERROR when absent.
    #[command(after_help = "Examples:\n  ringkv history 42\n  ringkv history 42 --limit 3 --json")]
    History {
        /// Decimal or 0x-hex integer.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// At most this many (0: all the server keeps).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Drop all but the newest KEEP versions of KEY.
    ///
    /// Answers SUCCESS with the current value, or ERROR when absent.
    #[command(after_help = "Examples:\n  ringkv trim 42\n  ringkv trim 42 3")]
    Trim {
        /// Decimal or 0x-hex integer.
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// Versions to keep, at least 1 (use del to remove a key).
        #[arg(default_value_t = 1)]
        keep: u32,
    },
    /// The keys from FROM to TO (inclusive), in numeric order, with their
    /// newest values.
    ///
    /// Gathered from every group of a ring; at most --limit keys (0: all).
    #[command(
        after_help = "Examples:\n  ringkv range 0 100\n  ringkv range -50 50 --limit 10 --json\n  ringkv range 0 100 --at 1700000000000"
    )]
    Range {
        /// Decimal or 0x-hex integer.
        #[arg(allow_hyphen_values = true)]
        from: String,
        /// Decimal or 0x-hex integer.
        #[arg(allow_hyphen_values = true)]
        to: String,
        /// At most this many keys (0: all).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Each key's newest kept version with a timestamp at most this.
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
    },
    /// Remove every key from FROM to TO (inclusive); shows what was removed.
    ///
    /// Each key is removed atomically; the range as a whole is not atomic.
    #[command(after_help = "Examples:\n  ringkv delrange 0 100")]
    Delrange {
        /// Decimal or 0x-hex integer.
        #[arg(allow_hyphen_values = true)]
        from: String,
        /// Decimal or 0x-hex integer.
        #[arg(allow_hyphen_values = true)]
        to: String,
    },
}

/// What an operation answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Reply(Reply),
    History(History),
    /// Keys and values of a range, in key order.
    Pairs(Vec<(num_bigint::BigInt, Value)>),
}

impl Answer {
    /// For people (`output.rs`).
    pub fn readable(&self) -> String {
        match self {
            Answer::Reply(r) => output::readable(r),
            Answer::History(h) => output::history_readable(h),
            Answer::Pairs(p) => output::pairs_readable(p),
        }
    }

    /// One JSON object (`output.rs`).
    pub fn json(&self) -> String {
        match self {
            Answer::Reply(r) => output::json(r),
            Answer::History(h) => output::history_json(h),
            Answer::Pairs(p) => output::pairs_json(p),
        }
    }
}

/// Why an operation did not produce an answer.
#[derive(Debug)]
pub enum OpError {
    /// The user's input: a bad key, data, version or timestamp.
    Input(anyhow::Error),
    /// The server or the network.
    Client(ClientError),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Input(e) => write!(f, "{e:#}"),
            OpError::Client(e) => write!(f, "{e}"),
        }
    }
}

impl OpError {
    /// The process exit code for this error: 1 for bad input (ours, or the
    /// server's INVALID_ARGUMENT, or a bad address), 2 when there was no
    /// answer (unavailable, timeout, any other RPC failure).
    pub fn exit_code(&self) -> u8 {
        match self {
            OpError::Input(_) | OpError::Client(ClientError::InvalidArgument(_) | ClientError::Config(_)) => 1,
            OpError::Client(_) => 2,
        }
    }
}

/// An operation with its arguments parsed, ready to send.
#[derive(Debug, Clone, PartialEq)]
enum Parsed {
    Set { key: num_bigint::BigInt, data: Vec<u8>, timestamp: i64 },
    Get { key: num_bigint::BigInt },
    Del { key: num_bigint::BigInt },
    DelVersion { key: num_bigint::BigInt, version: i64 },
    Tas { key: num_bigint::BigInt, data: Vec<u8>, version: i64, timestamp: i64 },
    Put { key: num_bigint::BigInt, data: Vec<u8>, timestamp: i64 },
    At { key: num_bigint::BigInt, version: i64 },
    History { key: num_bigint::BigInt, limit: u32 },
    Trim { key: num_bigint::BigInt, keep: u32 },
    Range { from: num_bigint::BigInt, to: num_bigint::BigInt, limit: u32, at: Option<i64> },
    DelRange { from: num_bigint::BigInt, to: num_bigint::BigInt },
}

impl Op {
    /// Parses the arguments and sends the operation.
    pub async fn run(&self, client: &Client) -> Result<Answer, OpError> {
        let reply = match self.parse().map_err(OpError::Input)? {
            Parsed::History { key, limit } => {
                return client.history(&key, limit).await.map(Answer::History).map_err(OpError::Client)
            }
            Parsed::Range { from, to, limit, at } => {
                return client.range(&from, &to, limit, at).await.map(Answer::Pairs).map_err(OpError::Client)
            }
            Parsed::DelRange { from, to } => {
                return client.del_range(&from, &to).await.map(Answer::Pairs).map_err(OpError::Client)
            }
            Parsed::Put { key, data, timestamp } => client.put(&key, timestamp, data).await,
            Parsed::At { key, version } => client.get_at(&key, version).await,
            Parsed::Trim { key, keep } => client.trim(&key, keep).await,
            Parsed::Set { key, data, timestamp } => client.set(&key, timestamp, data).await,
            Parsed::Get { key } => client.get(&key).await,
            Parsed::Del { key } => client.del(&key).await,
            Parsed::DelVersion { key, version } => client.del_version(&key, version).await,
            Parsed::Tas { key, data, version, timestamp } => client.test_and_set(&key, timestamp, data, version).await,
        };
        reply.map(Answer::Reply).map_err(OpError::Client)
    }

    /// Turns the typed text into values; the default timestamp is now.
    fn parse(&self) -> anyhow::Result<Parsed> {
        let timestamp = |pos: &Option<String>, flag: &Option<String>| match pos.as_ref().or(flag.as_ref()) {
            Some(t) => parse::timestamp(t),
            None => Ok(parse::now_ms()),
        };
        Ok(match self {
            Op::Set { key, data, timestamp_pos, timestamp: ts } => Parsed::Set {
                key: parse::key(key)?,
                data: parse::data(data)?,
                timestamp: timestamp(timestamp_pos, ts)?,
            },
            Op::Get { key } => Parsed::Get { key: parse::key(key)? },
            Op::Put { key, data, timestamp_pos, timestamp: ts } => Parsed::Put {
                key: parse::key(key)?,
                data: parse::data(data)?,
                timestamp: timestamp(timestamp_pos, ts)?,
            },
            Op::At { key, version } => Parsed::At { key: parse::key(key)?, version: parse::version(version)? },
            Op::History { key, limit } => Parsed::History { key: parse::key(key)?, limit: *limit },
            Op::Trim { key, keep: 0 } => anyhow::bail!("trim {key} 0 would keep nothing: use del to remove a key"),
            Op::Trim { key, keep } => Parsed::Trim { key: parse::key(key)?, keep: *keep },
            Op::Range { from, to, limit, at } => Parsed::Range {
                from: parse::key(from)?,
                to: parse::key(to)?,
                limit: *limit,
                at: at.as_deref().map(parse::timestamp).transpose()?,
            },
            Op::Delrange { from, to } => Parsed::DelRange { from: parse::key(from)?, to: parse::key(to)? },
            Op::Del { key, version_pos, version } => match version_pos.as_ref().or(version.as_ref()) {
                None => Parsed::Del { key: parse::key(key)? },
                Some(v) => Parsed::DelVersion { key: parse::key(key)?, version: parse::version(v)? },
            },
            Op::Tas { key, data, version_pos, timestamp_pos, version, timestamp: ts } => {
                // clap requires one of the two forms; say so again rather than panic.
                let v =
                    version_pos.as_ref().or(version.as_ref()).ok_or_else(|| anyhow::anyhow!("tas needs a VERSION"))?;
                Parsed::Tas {
                    key: parse::key(key)?,
                    data: parse::data(data)?,
                    version: parse::version(v)?,
                    timestamp: timestamp(timestamp_pos, ts)?,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use num_bigint::BigInt;

    #[derive(Debug, Parser)]
    #[command(no_binary_name = true)]
    struct Line {
        #[command(subcommand)]
        op: Op,
    }

    fn parsed(line: &str) -> anyhow::Result<Parsed> {
        let words = shlex::split(line).ok_or_else(|| anyhow::anyhow!("quotes"))?;
        Line::try_parse_from(words)?.op.parse()
    }

    #[test]
    fn versions_as_flag_or_positional() {
        let k = BigInt::from(42);
        assert_eq!(parsed("del 42").unwrap(), Parsed::Del { key: k.clone() });
        assert_eq!(parsed("del 42 2").unwrap(), Parsed::DelVersion { key: k.clone(), version: 2 });
        assert_eq!(parsed("del 42 --version 2").unwrap(), Parsed::DelVersion { key: k.clone(), version: 2 });
        assert!(parsed("del 42 2 --version 3").is_err());
        let tas = Parsed::Tas { key: k.clone(), data: b"hi there".to_vec(), version: 1, timestamp: 9 };
        assert_eq!(parsed("tas 42 'hi there' 1 9").unwrap(), tas);
        assert_eq!(parsed("tas 42 'hi there' --version 1 --timestamp 9").unwrap(), tas);
        assert_eq!(parsed("test-and-set 42 'hi there' --version 1 --timestamp 9").unwrap(), tas);
        assert!(parsed("tas 42 hi").is_err(), "a version is required");
        assert_eq!(parsed("at 42 3").unwrap(), Parsed::At { key: k.clone(), version: 3 });
        assert_eq!(parsed("history 42 --limit 2").unwrap(), Parsed::History { key: k.clone(), limit: 2 });
        assert_eq!(parsed("trim 42").unwrap(), Parsed::Trim { key: k.clone(), keep: 1 });
        assert_eq!(parsed("trim 42 3").unwrap(), Parsed::Trim { key: k.clone(), keep: 3 });
        assert!(parsed("trim 42 0").unwrap_err().to_string().contains("use del"));
        let range = Parsed::Range { from: BigInt::from(-5), to: k.clone(), limit: 3, at: None };
        assert_eq!(parsed("range -5 42 --limit 3").unwrap(), range);
        assert_eq!(parsed("delrange 1 42").unwrap(), Parsed::DelRange { from: BigInt::from(1), to: k.clone() });
        assert_eq!(parsed("put 42 x 5").unwrap(), Parsed::Put { key: k.clone(), data: b"x".to_vec(), timestamp: 5 });
    }

    #[test]
    fn timestamps_and_negative_numbers() {
        let set = |ts| Parsed::Set { key: BigInt::from(-7), data: b"-x".to_vec(), timestamp: ts };
        assert_eq!(parsed("set -7 -x -5").unwrap(), set(-5));
        assert_eq!(parsed("set -7 -x --timestamp -5").unwrap(), set(-5));
        assert!(parsed("set -7 -x 5 --timestamp 6").is_err());
        assert_eq!(parsed("get -0x1f").unwrap(), Parsed::Get { key: BigInt::from(-31) });
        match parsed("set 1 x").unwrap() {
            Parsed::Set { timestamp, .. } => assert!(timestamp > 1_600_000_000_000, "default is now in ms"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_input_is_reported_in_our_words() {
        let e = parsed("get banana").unwrap_err().to_string();
        assert!(e.contains("not an integer"), "{e}");
        assert!(parsed("del 1 one").unwrap_err().to_string().contains("version"));
        assert!(parsed("set 1 x soon").unwrap_err().to_string().contains("timestamp"));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(OpError::Input(anyhow::anyhow!("bad")).exit_code(), 1);
        assert_eq!(OpError::Client(ClientError::InvalidArgument("key".into())).exit_code(), 1);
        assert_eq!(OpError::Client(ClientError::Unavailable("down".into())).exit_code(), 2);
        assert_eq!(OpError::Client(ClientError::Timeout).exit_code(), 2);
    }
}
