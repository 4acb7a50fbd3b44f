//! The client's errors, and the one place gRPC statuses become them.

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
            Code::Unknown | Code::Cancelled if is_transport(&s) => {
                ClientError::Unavailable(transport_message(&s))
            }
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

fn transport_message(s: &tonic::Status) -> String {
    use std::error::Error;
    let mut msg = s.message().to_owned();
    let mut source = s.source();
    while let Some(e) = source {
        msg.push_str(": ");
        msg.push_str(&e.to_string());
        source = e.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    #[test]
    fn statuses_map_to_errors() {
        assert!(matches!(ClientError::from(Status::unavailable("down")), ClientError::Unavailable(_)));
        assert!(matches!(ClientError::from(Status::invalid_argument("bad key")), ClientError::InvalidArgument(m) if m == "bad key"));
        assert!(matches!(ClientError::from(Status::deadline_exceeded("slow")), ClientError::Timeout));
        assert!(matches!(ClientError::from(Status::unknown("transport error")), ClientError::Unavailable(_)));
        assert!(matches!(ClientError::from(Status::internal("disk")), ClientError::Rpc(_)));
        assert_eq!(ClientError::from(Status::unavailable("x")).code(), Some(Code::Unavailable));
        assert_eq!(ClientError::Timeout.code(), Some(Code::DeadlineExceeded));
    }
}
