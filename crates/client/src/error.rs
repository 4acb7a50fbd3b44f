//! The client's errors, and the one place gRPC statuses become them
//! (`From<tonic::Status>`), so that every call classifies failures the same
//! way: what a caller may retry (`Unavailable`, `Timeout`), what it must fix
//! (`InvalidArgument`, `Config`), and what it cannot understand (`Protocol`).

/// Why a request got no answer. Outcomes such as `ERROR_WV` are answers,
/// not errors: they come back in `Reply`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server cannot be reached or cannot serve right now (down, no
    /// leader, connection cut). Safe to retry a read or a conditional write.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The server refused the request as malformed (bad key, data too big).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No answer within the request's deadline; the request may or may not
    /// have taken effect.
    #[error("timed out waiting for the server")]
    Timeout,
    /// The server answered something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The client was configured wrongly (e.g. a bad address).
    #[error("configuration error: {0}")]
    Config(String),
    /// Any other gRPC failure.
    #[error("rpc failed: {}: {}", .0.code(), .0.message())]
    Rpc(tonic::Status),
}

impl ClientError {
    /// Whether the server could not be reached or could not serve.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ClientError::Unavailable(_))
    }

    /// The gRPC code this error stands for, if it came from one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Unavailable(_) => Some(tonic::Code::Unavailable),
            ClientError::InvalidArgument(_) => Some(tonic::Code::InvalidArgument),
            ClientError::Timeout => Some(tonic::Code::DeadlineExceeded),
            ClientError::Rpc(s) => Some(s.code()),
            ClientError::Protocol(_) | ClientError::Config(_) => None,
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        match s.code() {
            Code::Unavailable => ClientError::Unavailable(transport_message(&s)),
            Code::InvalidArgument => ClientError::InvalidArgument(s.message().to_owned()),
            Code::DeadlineExceeded => ClientError::Timeout,
            // tonic reports a failed connection attempt as Unknown or
            // Cancelled with a transport error inside: that is unavailability.
            Code::Unknown | Code::Cancelled if is_transport(&s) => ClientError::Unavailable(transport_message(&s)),
            _ => ClientError::Rpc(s),
        }
    }
}

fn is_transport(s: &tonic::Status) -> bool {
    use std::error::Error;
    if s.source().is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some()) {
        return true;
    }
    let m = s.message().to_ascii_lowercase();
    m.contains("transport") || m.contains("connect") || m.contains("connection") || m.contains("broken pipe")
}

/// The status message followed by its chain of causes, each said once:
/// tonic nests the same "tcp connect error" several times around the
/// operating system's reason, which is what a user needs to see.
fn transport_message(s: &tonic::Status) -> String {
    use std::error::Error;
    let mut parts = vec![s.message().to_owned()];
    let mut source = s.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    join_causes(parts)
}

/// Joins causes with ": ", leaving out repeats, empty ones and tonic's
/// uninformative "transport error" wrapper.
fn join_causes(parts: Vec<String>) -> String {
    let mut kept: Vec<String> = Vec::new();
    for p in parts {
        if !p.is_empty() && p != "transport error" && !kept.contains(&p) {
            kept.push(p);
        }
    }
    if kept.is_empty() {
        "transport error".to_owned()
    } else {
        kept.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    #[test]
    fn every_code_maps_somewhere_sensible() {
        let cases = [
            (Status::unavailable("no leader"), Some(Code::Unavailable)),
            (Status::invalid_argument("key is empty"), Some(Code::InvalidArgument)),
            (Status::deadline_exceeded("late"), Some(Code::DeadlineExceeded)),
            (Status::cancelled("connection reset"), Some(Code::Unavailable)),
            (Status::cancelled("by the caller"), Some(Code::Cancelled)),
            (Status::unknown("boom"), Some(Code::Unknown)),
            (Status::internal("disk"), Some(Code::Internal)),
            (Status::not_found("x"), Some(Code::NotFound)),
            (Status::resource_exhausted("message too large"), Some(Code::ResourceExhausted)),
            (Status::unimplemented("old server"), Some(Code::Unimplemented)),
        ];
        for (status, code) in cases {
            let shown = format!("{status:?}");
            assert_eq!(ClientError::from(status).code(), code, "{shown}");
        }
    }

    #[test]
    fn only_unavailable_is_unavailable() {
        assert!(ClientError::from(Status::unavailable("x")).is_unavailable());
        assert!(ClientError::from(Status::unknown("transport error")).is_unavailable());
        assert!(!ClientError::Timeout.is_unavailable());
        assert!(!ClientError::from(Status::internal("x")).is_unavailable());
        assert_eq!(ClientError::Protocol("status 0".into()).code(), None);
        assert_eq!(ClientError::Config("bad".into()).code(), None);
    }

    #[test]
    fn messages_are_one_clear_line() {
        let e = ClientError::from(Status::invalid_argument("key is not minimal"));
        assert_eq!(e.to_string(), "invalid argument: key is not minimal");
        let e = ClientError::from(Status::internal("disk full"));
        assert!(e.to_string().contains("disk full"), "{e}");
        // What tonic nests around a refused connection, said once.
        let chain = [
            "tcp connect error",
            "transport error",
            "tcp connect error",
            "tcp connect error",
            "Connection refused (os error 111)",
        ];
        assert_eq!(
            join_causes(chain.iter().map(|s| s.to_string()).collect()),
            "tcp connect error: Connection refused (os error 111)"
        );
        assert_eq!(join_causes(vec!["transport error".into()]), "transport error");
    }

    #[test]
    fn statuses_map_to_errors() {
        assert!(matches!(ClientError::from(Status::unavailable("down")), ClientError::Unavailable(_)));
        assert!(
            matches!(ClientError::from(Status::invalid_argument("bad key")), ClientError::InvalidArgument(m) if m == "bad key")
        );
        assert!(matches!(ClientError::from(Status::deadline_exceeded("slow")), ClientError::Timeout));
        assert!(matches!(ClientError::from(Status::unknown("transport error")), ClientError::Unavailable(_)));
        assert!(matches!(ClientError::from(Status::internal("disk")), ClientError::Rpc(_)));
        assert_eq!(ClientError::from(Status::unavailable("x")).code(), Some(Code::Unavailable));
        assert_eq!(ClientError::Timeout.code(), Some(Code::DeadlineExceeded));
    }
}
