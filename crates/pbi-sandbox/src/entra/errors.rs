//! Entra's error shapes: the token endpoint's JSON, the authorize redirect, and the error page.

use crate::model::ResponseMode;
use crate::pages;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pbi_clock::Clock;
use serde_json::json;
use time::macros::format_description;
use uuid::Uuid;

/// An `AADSTSnnnnn` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadError {
    pub code: u32,
    /// The OAuth `error` value (`invalid_grant`, `invalid_client`, ...).
    pub error: &'static str,
    pub message: String,
}

impl AadError {
    pub fn new(code: u32, error: &'static str, message: impl Into<String>) -> Self {
        Self { code, error, message: message.into() }
    }

    pub fn description(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.message)
    }

    fn status(&self) -> StatusCode {
        if self.error == "invalid_client" { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST }
    }

    /// The token endpoint's answer: 400 (401 for `invalid_client`) with Entra's JSON error body.
    pub fn token_response(&self, clock: &Clock) -> Response {
        let trace_id = Uuid::new_v4();
        let correlation_id = Uuid::new_v4();
        let now = clock.now();
        let timestamp = now.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z")).unwrap_or_default();
        let body = json!({
            "error": self.error,
            "error_description": format!("{}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}", self.description()),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        let mut response = (self.status(), axum::Json(body)).into_response();
        no_store(&mut response);
        response
    }

    /// Sends the browser back to the application with `error` and `error_description`.
    pub fn redirect(&self, redirect_uri: &str, state: Option<&str>, mode: &ResponseMode) -> Response {
        redirect_with(redirect_uri, &self.redirect_params(state), mode)
    }

    /// The error page Entra shows when it cannot trust the redirect URI (or has nothing to redirect to).
    pub fn page(&self) -> Response {
        self.page_with("")
    }

    /// The error page with more after the error: a way back to the application (`back_to_app`).
    pub fn page_with(&self, more: &str) -> Response {
        let body = format!(
            r#"<p>Sorry, but we're having trouble signing you in.</p><p class="error" id="error-code">AADSTS{}: {}</p><p>Error: <code>{}</code></p>{more}"#,
            self.code,
            pages::esc(&self.message),
            self.error
        );
        pages::page(StatusCode::BAD_REQUEST, "Sign in", &body)
    }

    /// A link (a button for `form_post`, which a link cannot do) that takes the person back to the application
    /// with this error, as Entra's error pages offer when the redirect URI is trusted: the application then
    /// says what happened and can start the sign-in again. The caller has checked `redirect_uri`.
    pub fn back_to_app(&self, app_name: &str, redirect_uri: &str, state: Option<&str>, mode: &ResponseMode) -> String {
        let params = self.redirect_params(state);
        let label = format!("Back to {}", pages::esc(app_name));
        match mode {
            ResponseMode::FormPost => {
                let inputs: String = params
                    .iter()
                    .map(|(name, value)| format!(r#"<input type="hidden" name="{name}" value="{}">"#, pages::esc(value)))
                    .collect();
                format!(
                    r#"<form method="POST" action="{}">{inputs}<button type="submit" id="back-to-app">{label}</button></form>"#,
                    pages::esc(redirect_uri)
                )
            }
            _ => format!(r#"<p><a id="back-to-app" href="{}">{label}</a></p>"#, pages::esc(&redirect_url(redirect_uri, &params, mode))),
        }
    }

    fn redirect_params(&self, state: Option<&str>) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("error", self.error.to_owned()),
            ("error_description", self.description()),
            ("error_uri", format!("https://login.microsoftonline.com/error?code={}", self.code)),
        ];
        if let Some(state) = state {
            params.push(("state", state.to_owned()));
        }
        params
    }
}

/// Delivers `params` to the application's redirect URI as `response_mode` says.
pub fn redirect_with(redirect_uri: &str, params: &[(&str, String)], mode: &ResponseMode) -> Response {
    match mode {
        ResponseMode::FormPost => pages::auto_post(redirect_uri, params),
        ResponseMode::Query | ResponseMode::Fragment => found(&redirect_url(redirect_uri, params, mode)),
    }
}

/// The redirect URI with `params` in its query (or fragment).
fn redirect_url(redirect_uri: &str, params: &[(&str, String)], mode: &ResponseMode) -> String {
    let encoded: String = params.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
    let separator = match mode {
        ResponseMode::Fragment => "#",
        _ if redirect_uri.contains('?') => "&",
        _ => "?",
    };
    format!("{redirect_uri}{separator}{encoded}")
}

/// A 302 Found redirect, as Entra sends (not 303).
pub fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

pub fn no_store(response: &mut Response) {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass through).
pub fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
