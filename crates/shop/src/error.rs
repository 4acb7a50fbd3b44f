//! The shop's errors: one enum for the data layer, the cache and the
//! catalog, each variant a distinct answer a caller can act on. The portal
//! maps them to gRPC codes in one place (`portal::status`).

use ringkv_client::ClientError;

use crate::keys::Kind;

#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// The request is malformed (bad id, email, price…); nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// No document with that id.
    #[error("{} {id}: not found", kind.name())]
    NotFound { kind: Kind, id: String },
    /// A create of an id that exists.
    #[error("{} {id}: already exists", kind.name())]
    AlreadyExists { kind: Kind, id: String },
    /// A conditional update named a version that is not the current one.
    #[error("{} {id}: at version {current}, not {expected}", kind.name())]
    VersionMismatch { kind: Kind, id: String, expected: i64, current: i64 },
    /// A write lost the compare-and-set race `attempts` times in a row.
    #[error("{} {id}: gave up after {attempts} conflicting concurrent changes; try again", kind.name())]
    Contention { kind: Kind, id: String, attempts: u32 },
    /// An order asked for more units than are in stock; nothing changed.
    #[error("product {pid}: {requested} more unit(s) wanted, {available} in stock")]
    Shortage { pid: String, requested: i64, available: i64 },
    /// The operation is refused in the document's present state.
    #[error("{0}")]
    Precondition(String),
    /// ringkv cannot be reached or did not answer in time; the write may or
    /// may not have been applied only if it said so.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored document is not what the schema says (written by something
    /// else, or a bug): reported, never guessed at.
    #[error("stored {} {id} is unreadable: {why}", kind.name())]
    Corrupt { kind: Kind, id: String, why: String },
    /// Any other failure of the database client.
    #[error("database error: {0}")]
    Database(ClientError),
}

impl ShopError {
    pub fn invalid(why: impl Into<String>) -> ShopError {
        ShopError::Invalid(why.into())
    }
}

impl From<ClientError> for ShopError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unavailable(m) => ShopError::Unavailable(m),
            ClientError::Timeout => ShopError::Unavailable("no answer within the deadline".into()),
            e => ShopError::Database(e),
        }
    }
}
