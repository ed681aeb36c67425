//! ManageIQ's error envelopes: `{"error":{"kind","message","klass"}}` for API
//! errors and Rails' `{"status":404,"error":"Not Found"}` for unknown routes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API error as the real server renders it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct MiqError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub klass: &'static str,
}

impl MiqError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        MiqError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_request",
            message: message.into(),
            klass: "Api::BadRequestError",
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        MiqError {
            status: StatusCode::UNAUTHORIZED,
            kind: "unauthorized",
            message: message.into(),
            klass: "Api::AuthenticationError",
        }
    }

    /// The record lookup error; `message` is the ActiveRecord text.
    pub fn record_not_found(message: impl Into<String>) -> Self {
        MiqError {
            status: StatusCode::NOT_FOUND,
            kind: "not_found",
            message: message.into(),
            klass: "ActiveRecord::RecordNotFound",
        }
    }

    /// The envelope for any status, used by injected faults.
    pub fn for_status(status: StatusCode, message: impl Into<String>) -> Self {
        let (kind, klass) = match status.as_u16() {
            400 => ("bad_request", "Api::BadRequestError"),
            401 => ("unauthorized", "Api::AuthenticationError"),
            403 => ("forbidden", "Api::ForbiddenError"),
            404 => ("not_found", "Api::NotFoundError"),
            415 => ("unsupported_media_type", "Api::UnsupportedMediaTypeError"),
            429 => ("too_many_requests", "Api::TooManyRequestsError"),
            502 => ("bad_gateway", "StandardError"),
            503 => ("service_unavailable", "StandardError"),
            504 => ("gateway_timeout", "StandardError"),
            _ => ("internal_server_error", "StandardError"),
        };
        MiqError {
            status,
            kind,
            message: message.into(),
            klass,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"kind": self.kind, "message": self.message, "klass": self.klass}})
    }
}

impl IntoResponse for MiqError {
    fn into_response(self) -> Response {
        json_response(self.status, self.body().to_string().into_bytes())
    }
}

/// What Rails answers for a path no route matches (no authentication needed).
pub fn route_not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        br#"{"status":404,"error":"Not Found"}"#.to_vec(),
    )
}

/// A JSON body with ManageIQ's content type.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}
