//! Request parts as the handlers want them, every rejection turned into the
//! portal's JSON error: the customer (`Authorization: Bearer <CID>`), a JSON
//! body of bounded size, path and query parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::catalog::Freshness;
use crate::model::{Customer, Versioned};
use crate::web::error::ApiError;
use crate::web::AppState;
use crate::ShopError;

/// The customer a request is made for.
pub struct Buyer(pub Versioned<Customer>);

impl FromRequestParts<AppState> for Buyer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized("no Authorization header: send Authorization: Bearer <CID>".into()));
        };
        let text = std::str::from_utf8(value.as_bytes())
            .map_err(|_| ApiError::Unauthorized("the Authorization header is not UTF-8".into()))?;
        let cid = match text.split_once(' ') {
            Some((scheme, cid)) if scheme.eq_ignore_ascii_case("bearer") => cid.trim(),
            _ => return Err(ApiError::Unauthorized("the Authorization header must be Bearer <CID>".into())),
        };
        customer(state, cid).await.map(Buyer)
    }
}

/// Customer `cid`, from the cache if it has them; 401 if there is none.
pub async fn customer(state: &AppState, cid: &str) -> Result<Versioned<Customer>, ApiError> {
    match state.orders.catalog().get::<Customer>(cid, Freshness::Cached).await {
        Ok(c) => Ok(c),
        Err(ShopError::NotFound { .. } | ShopError::Invalid(_)) => {
            Err(ApiError::Unauthorized(format!("{cid:?} is not a customer of this shop")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A JSON body, read whatever its content type (so that `curl -d` works).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge(format!("the body is larger than {} bytes", super::MAX_BODY))
            }
            _ => ApiError::BadRequest(e.body_text()),
        })?;
        let bad = |e: serde_json::Error| ApiError::BadRequest(format!("the body is not the JSON expected: {e}"));
        // Every body is an object: serde would take an array for a struct
        // too, by field order.
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(bad)?;
        if !value.is_object() {
            return Err(ApiError::BadRequest("the body must be a JSON object".into()));
        }
        serde_json::from_value(value).map(JsonBody).map_err(bad)
    }
}

/// Path parameters.
pub struct Ids<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(Ids(t)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Query parameters.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(Params(t)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}
