//! The one place shop errors become HTTP statuses and JSON error bodies
//! (`{"error": {"code": "...", "message": "..."}}`; docs/shop.md, "Errors").

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::ShopError;

/// An answer other than success, from any layer of the customer portal.
#[derive(Debug)]
pub enum ApiError {
    Shop(ShopError),
    /// No customer named, or an unknown one: nothing ran.
    Unauthorized(String),
    /// The request itself is malformed (JSON, path, query).
    BadRequest(String),
    TooLarge(String),
    NoRoute(String),
    MethodNotAllowed,
}

impl From<ShopError> for ApiError {
    fn from(e: ShopError) -> Self {
        ApiError::Shop(e)
    }
}

impl ApiError {
    /// Status, stable code and message.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        use StatusCode as S;
        match self {
            ApiError::Shop(e) => {
                let (status, code) = match e {
                    ShopError::Invalid(_) => (S::BAD_REQUEST, "invalid_argument"),
                    ShopError::NotFound { .. } => (S::NOT_FOUND, "not_found"),
                    ShopError::AlreadyExists { .. } => (S::CONFLICT, "already_exists"),
                    ShopError::VersionMismatch { .. } | ShopError::Contention { .. } => (S::CONFLICT, "conflict"),
                    ShopError::Shortage { .. } => (S::CONFLICT, "insufficient_stock"),
                    ShopError::Precondition(_) => (S::CONFLICT, "failed_precondition"),
                    ShopError::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "unavailable"),
                    ShopError::Corrupt { .. } => (S::INTERNAL_SERVER_ERROR, "data_loss"),
                    ShopError::Database(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
                };
                (status, code, e.to_string())
            }
            ApiError::Unauthorized(m) => (S::UNAUTHORIZED, "unauthorized", m.clone()),
            ApiError::BadRequest(m) => (S::BAD_REQUEST, "invalid_request", m.clone()),
            ApiError::TooLarge(m) => (S::PAYLOAD_TOO_LARGE, "payload_too_large", m.clone()),
            ApiError::NoRoute(path) => (S::NOT_FOUND, "no_route", format!("no such resource: {path}")),
            ApiError::MethodNotAllowed => {
                (S::METHOD_NOT_ALLOWED, "method_not_allowed", "that method is not allowed here".into())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        if status.is_server_error() {
            tracing::error!("{message}");
        }
        let mut body = json!({ "error": { "code": code, "message": message } });
        if let ApiError::Shop(ShopError::Shortage { available, requested, .. }) = &self {
            body["error"]["available"] = json!(available);
            body["error"]["requested"] = json!(requested);
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Kind;

    #[test]
    fn every_error_has_its_status() {
        let kind = Kind::Product;
        let id = || "p1".to_owned();
        let cases = [
            (ApiError::Shop(ShopError::invalid("bad")), 400, "invalid_argument"),
            (ApiError::Shop(ShopError::NotFound { kind, id: id() }), 404, "not_found"),
            (ApiError::Shop(ShopError::Shortage { pid: id(), requested: 3, available: 2 }), 409, "insufficient_stock"),
            (ApiError::Shop(ShopError::Contention { kind, id: id(), attempts: 64 }), 409, "conflict"),
            (ApiError::Shop(ShopError::Precondition("cancelled".into())), 409, "failed_precondition"),
            (ApiError::Shop(ShopError::Unavailable("down".into())), 503, "unavailable"),
            (ApiError::Unauthorized("who?".into()), 401, "unauthorized"),
            (ApiError::BadRequest("json".into()), 400, "invalid_request"),
            (ApiError::TooLarge("big".into()), 413, "payload_too_large"),
            (ApiError::NoRoute("/x".into()), 404, "no_route"),
        ];
        for (e, status, code) in cases {
            let (s, c, _) = e.parts();
            assert_eq!((s.as_u16(), c), (status, code), "{e:?}");
        }
    }
}
