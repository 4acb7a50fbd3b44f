//! The one place shop errors become gRPC statuses (docs/shop.md, "Errors").

use tonic::{Code, Status};

use crate::ShopError;

/// Metadata key of the current version, on an ABORTED version mismatch:
/// an editor can re-read at that version without parsing the message.
pub const CURRENT_VERSION: &str = "shop-current-version";

pub fn to_status(e: ShopError) -> Status {
    let code = match &e {
        ShopError::Invalid(_) => Code::InvalidArgument,
        ShopError::NotFound { .. } => Code::NotFound,
        ShopError::AlreadyExists { .. } => Code::AlreadyExists,
        ShopError::VersionMismatch { .. } | ShopError::Contention { .. } => Code::Aborted,
        ShopError::Precondition(_) | ShopError::Shortage { .. } => Code::FailedPrecondition,
        ShopError::Unavailable(_) => Code::Unavailable,
        ShopError::Corrupt { .. } => Code::DataLoss,
        ShopError::Database(_) => Code::Internal,
    };
    if code == Code::Internal || code == Code::DataLoss {
        tracing::error!("{e}");
    }
    let mut status = Status::new(code, e.to_string());
    if let ShopError::VersionMismatch { current, .. } = e {
        if let Ok(v) = current.to_string().parse() {
            status.metadata_mut().insert(CURRENT_VERSION, v);
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Kind;

    #[test]
    fn every_error_has_its_code() {
        let id = || "p1".to_owned();
        let kind = Kind::Product;
        let cases = [
            (ShopError::invalid("pid is empty"), Code::InvalidArgument),
            (ShopError::NotFound { kind, id: id() }, Code::NotFound),
            (ShopError::AlreadyExists { kind, id: id() }, Code::AlreadyExists),
            (ShopError::VersionMismatch { kind, id: id(), expected: 1, current: 3 }, Code::Aborted),
            (ShopError::Contention { kind, id: id(), attempts: 64 }, Code::Aborted),
            (ShopError::Precondition("open orders".into()), Code::FailedPrecondition),
            (ShopError::Unavailable("no leader".into()), Code::Unavailable),
            (ShopError::Corrupt { kind, id: id(), why: "not JSON".into() }, Code::DataLoss),
        ];
        for (e, code) in cases {
            let msg = e.to_string();
            let s = to_status(e);
            assert_eq!(s.code(), code, "{msg}");
            assert_eq!(s.message(), msg);
        }
        let s = to_status(ShopError::VersionMismatch { kind, id: id(), expected: 1, current: 3 });
        assert_eq!(s.message(), "product p1: at version 3, not 1");
        assert_eq!(s.metadata().get(CURRENT_VERSION).unwrap(), "3");
    }
}
