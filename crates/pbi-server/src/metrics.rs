//! Request ids, one structured log line per request, and Prometheus metrics at `/metrics`.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tracing::Instrument as _;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Counters since the server started. Labels are route templates and statuses, never ids or user data.
#[derive(Default)]
pub struct Metrics {
    /// (method, route template, status) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// Power BI status (`None`: no answer) → count.
    powerbi_calls: Mutex<BTreeMap<Option<u16>, u64>>,
    server_errors: AtomicU64,
}

impl Metrics {
    fn request(&self, method: &str, route: &str, status: u16) {
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner).entry((method.to_owned(), route.to_owned(), status)).or_default() +=
            1;
        if status >= 500 {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one exchange with Power BI (given to every Power BI client the server makes).
    pub fn powerbi_call(&self, status: Option<u16>) {
        *self.powerbi_calls.lock().unwrap_or_else(PoisonError::into_inner).entry(status).or_default() += 1;
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, refreshes: pbi_auth::RefreshCounts) -> String {
        let mut out = String::new();
        header(&mut out, "pbi_bridge_http_requests_total", "HTTP requests served, by method, route and status.");
        for ((method, route, status), count) in self.requests.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(
                out,
                "pbi_bridge_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                label(route)
            );
        }
        header(&mut out, "pbi_bridge_http_server_errors_total", "HTTP responses with a 5xx status.");
        let _ = writeln!(out, "pbi_bridge_http_server_errors_total {}", self.server_errors.load(Ordering::Relaxed));
        header(&mut out, "pbi_bridge_powerbi_calls_total", "Calls to the Power BI REST API, by status (\"none\": no answer came).");
        for (status, count) in self.powerbi_calls.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
            let _ = writeln!(out, "pbi_bridge_powerbi_calls_total{{status=\"{status}\"}} {count}");
        }
        header(&mut out, "pbi_bridge_token_refreshes_total", "Refreshes of users' Power BI tokens, by outcome.");
        for (outcome, count) in
            [("succeeded", refreshes.succeeded), ("needs_sign_in", refreshes.needs_sign_in), ("failed", refreshes.failed)]
        {
            let _ = writeln!(out, "pbi_bridge_token_refreshes_total{{outcome=\"{outcome}\"}} {count}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
}

/// Escapes a label value as the exposition format requires.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render(state.auth.refresh_counts());
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// A caller's request id is kept when it is short and plain (so it can be followed across services);
/// otherwise the server makes one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Gives every request an id (in its log span and the `x-request-id` response header), logs one line when
/// it ends, and counts it. Paths are logged without their query, which can carry OAuth codes.
pub async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let method = request.method().as_str().to_owned();
    let route = request.extensions().get::<MatchedPath>().map_or("(unmatched)", MatchedPath::as_str).to_owned();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.in_scope(|| {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), ms, "request");
        }
    });
    state.metrics.request(&method, &route, status.as_u16());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_lists_every_counter_with_its_labels() {
        let metrics = Metrics::default();
        metrics.request("GET", "/workspaces/{id}", 200);
        metrics.request("GET", "/workspaces/{id}", 200);
        metrics.request("POST", "/login", 500);
        metrics.powerbi_call(Some(429));
        metrics.powerbi_call(None);
        let text = metrics.render(pbi_auth::RefreshCounts { succeeded: 3, needs_sign_in: 1, failed: 0 });
        for line in [
            r#"pbi_bridge_http_requests_total{method="GET",route="/workspaces/{id}",status="200"} 2"#,
            r#"pbi_bridge_http_requests_total{method="POST",route="/login",status="500"} 1"#,
            "pbi_bridge_http_server_errors_total 1",
            r#"pbi_bridge_powerbi_calls_total{status="429"} 1"#,
            r#"pbi_bridge_powerbi_calls_total{status="none"} 1"#,
            r#"pbi_bridge_token_refreshes_total{outcome="succeeded"} 3"#,
            r#"pbi_bridge_token_refreshes_total{outcome="needs_sign_in"} 1"#,
            "# TYPE pbi_bridge_powerbi_calls_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
