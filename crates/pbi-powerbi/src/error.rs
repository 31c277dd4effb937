//! Errors a caller can act on. Every error from the service carries its `RequestId` for support.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("{kind}{}", request_id.as_ref().map(|id| format!(" (RequestId {id})")).unwrap_or_default())]
pub struct PowerBiError {
    pub kind: ErrorKind,
    /// The `RequestId` header of the failed answer, when the service sent one.
    pub request_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// 404: the id is unknown, or the caller may not see it (Power BI does not say which).
    #[error("not found ({code}): {message}")]
    NotFound { code: String, message: String },
    /// 401: e.g. a missing permission, or a service principal the tenant settings do not allow.
    #[error("unauthorized ({code}): {message}")]
    Unauthorized { code: String, message: String },
    /// 403: e.g. `TokenExpired`, `InvalidToken` (from `X-PowerBI-Error-Info` when the body is empty).
    #[error("forbidden ({code}): {message}")]
    Forbidden { code: String, message: String },
    /// 429: wait `retry_after` before trying again.
    #[error("throttled by Power BI: retry after {}s", retry_after.as_secs())]
    Throttled { retry_after: Duration },
    /// 400 (and 413): the request was refused as sent.
    #[error("bad request ({code}): {message}")]
    BadRequest { status: u16, code: String, message: String },
    /// 5xx and anything else unexpected from the service.
    #[error("Power BI service error (HTTP {status}): {message}")]
    Service { status: u16, message: String },
    /// The request never got a complete answer (connection refused or dropped, timeout, TLS).
    #[error("network error: {0}")]
    Transport(String),
    /// The answer was not what the API documents; the raw body is kept.
    #[error("undecodable response ({reason})")]
    Decode { reason: String, raw: String },
    /// The token source could not provide an access token.
    #[error("could not get an access token: {0}")]
    Token(String),
    /// The request was refused before sending (bad path, `$top` out of range, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A row does not fit the table (checked before sending). `row` counts from 0.
    #[error("row {row}, column '{column}': {problem}")]
    Schema { row: usize, column: String, problem: String },
}

impl PowerBiError {
    pub fn new(kind: ErrorKind) -> Self {
        Self { kind, request_id: None }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid(message.into()))
    }

    /// The Power BI error code, when the service gave one.
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::NotFound { code, .. }
            | ErrorKind::Unauthorized { code, .. }
            | ErrorKind::Forbidden { code, .. }
            | ErrorKind::BadRequest { code, .. } => Some(code),
            _ => None,
        }
    }

    /// An expired or unusable access token: worth one retry with a fresh token.
    pub fn is_token_problem(&self) -> bool {
        matches!(self.code(), Some("TokenExpired" | "InvalidToken"))
    }
}

pub type Result<T, E = PowerBiError> = std::result::Result<T, E>;
