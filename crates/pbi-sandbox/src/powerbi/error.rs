//! Power BI's error answers: `{"error":{"code","message"}}`, the empty-bodied 403s, and throttling.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbiError {
    /// An error with Power BI's JSON body.
    Coded { status: StatusCode, code: &'static str, message: String },
    /// A 401/403 with an empty body and the code only in `X-PowerBI-Error-Info`.
    Bare { status: StatusCode, info: &'static str },
    /// 429 with `Retry-After`.
    Throttled { retry_after: u64, message: String },
}

pub type PbiResult<T> = Result<T, PbiError>;

impl PbiError {
    pub fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        PbiError::Coded { status, code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::coded(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    /// Unknown ids and ids the caller may not see get the same answer, so existence does not leak.
    pub fn not_found() -> Self {
        Self::coded(StatusCode::NOT_FOUND, "PowerBIEntityNotFound", "PowerBIEntityNotFound")
    }

    pub fn item_not_found(message: impl Into<String>) -> Self {
        Self::coded(StatusCode::NOT_FOUND, "ItemNotFound", message)
    }

    pub fn not_authorized(message: impl Into<String>) -> Self {
        Self::coded(StatusCode::UNAUTHORIZED, "PowerBINotAuthorizedException", message)
    }

    pub fn invalid_token() -> Self {
        PbiError::Bare { status: StatusCode::FORBIDDEN, info: "InvalidToken" }
    }

    pub fn token_expired() -> Self {
        Self::coded(StatusCode::FORBIDDEN, "TokenExpired", "Access token has expired, resubmit with a new access token")
    }
}

impl IntoResponse for PbiError {
    fn into_response(self) -> Response {
        match self {
            PbiError::Coded { status, code, message } => {
                let mut body = json!({"error": {"code": code, "message": message}});
                if matches!(code, "PowerBIEntityNotFound" | "PowerBINotAuthorizedException") {
                    body["error"]["pbi.error"] = json!({"code": code, "parameters": {}, "details": [], "exceptionCulprit": 1});
                }
                let mut response = (status, axum::Json(body)).into_response();
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    response.headers_mut().insert("x-powerbi-error-info", HeaderValue::from_static(code));
                }
                response
            }
            PbiError::Bare { status, info } => {
                let mut response = status.into_response();
                response.headers_mut().insert("x-powerbi-error-info", HeaderValue::from_static(info));
                response
            }
            PbiError::Throttled { retry_after, message } => {
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, axum::Json(json!({"error": {"code": "TooManyRequests", "message": message}})))
                        .into_response();
                response.headers_mut().insert("retry-after", HeaderValue::from(retry_after));
                response
            }
        }
    }
}
