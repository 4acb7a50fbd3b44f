//! The five operations as commands: defined once, used both as one-shot
//! subcommands (`ringkv get 42`) and as shell lines (`get 42`).

use clap::Subcommand;
use ringkv_client::{Client, ClientError, Reply};

use crate::parse;

#[derive(Debug, Clone, Subcommand)]
pub enum Op {
    /// Insert KEY with DATA if it is absent (version 1).
    ///
    /// SUCCESS, or ERROR with the existing value.
    Set {
        /// Decimal or 0x-hex integer, any size.
        key: String,
        /// Text, @FILE for a file's bytes, or hex:BYTES.
        data: String,
        /// Client timestamp stored with the value (default: now, in ms).
        #[arg(long, allow_hyphen_values = true)]
        timestamp: Option<i64>,
    },
    /// Read KEY.
    ///
    /// SUCCESS with the value, or ERROR when absent.
    Get { key: String },
    /// Remove KEY; with VERSION, only if that is its version.
    ///
    /// Without VERSION: SUCCESS with the removed value, or ERROR.
    /// With VERSION: SUCCESS, ERROR_NE (absent) or ERROR_WV (other version, shown).
    Del {
        key: String,
        #[arg(allow_hyphen_values = true)]
        version: Option<String>,
    },
    /// Replace KEY with DATA if its version is VERSION (test-and-set).
    ///
    /// SUCCESS with the replaced value, ERROR_NE, or ERROR_WV with the current value.
    #[command(alias = "test-and-set")]
    Tas {
        key: String,
        data: String,
        #[arg(allow_hyphen_values = true)]
        version: String,
        #[arg(long, allow_hyphen_values = true)]
        timestamp: Option<i64>,
    },
}

/// Why an operation did not produce an answer.
#[derive(Debug)]
pub enum OpError {
    /// The user's input: a bad key, data or version (exit code 1).
    Input(anyhow::Error),
    /// The server or the network (exit code 2, 1 for INVALID_ARGUMENT).
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
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            OpError::Input(_) | OpError::Client(ClientError::InvalidArgument(_) | ClientError::Config(_)) => 1,
            OpError::Client(_) => 2,
        }
    }
}

impl Op {
    /// Parses the arguments and sends the operation.
    pub async fn run(&self, client: &Client) -> Result<Reply, OpError> {
        let input = OpError::Input;
        let reply = match self {
            Op::Set { key, data, timestamp } => {
                let (k, d) = (parse::key(key).map_err(input)?, parse::data(data).map_err(input)?);
                client.set(&k, timestamp.unwrap_or_else(parse::now_ms), d).await
            }
            Op::Get { key } => client.get(&parse::key(key).map_err(input)?).await,
            Op::Del { key, version: None } => client.del(&parse::key(key).map_err(input)?).await,
            Op::Del { key, version: Some(v) } => {
                let (k, v) = (parse::key(key).map_err(input)?, parse::version(v).map_err(input)?);
                client.del_version(&k, v).await
            }
            Op::Tas { key, data, version, timestamp } => {
                let k = parse::key(key).map_err(input)?;
                let d = parse::data(data).map_err(input)?;
                let v = parse::version(version).map_err(input)?;
                client.test_and_set(&k, timestamp.unwrap_or_else(parse::now_ms), d, v).await
            }
        };
        reply.map_err(OpError::Client)
    }
}
