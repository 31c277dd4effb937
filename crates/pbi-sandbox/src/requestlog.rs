//! The request log every test can read, and the middleware that fills it and applies injected faults.

use crate::Shared;
use crate::faults::FaultKind;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Service {
    EntraId,
    PowerBi,
    Embed,
    Control,
}

/// One served request. Never holds an Authorization value, a password, a secret or a token.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub service: Service,
    /// Who called: a user's UPN, `app:<client id>`, or `None` when the caller was not identified.
    pub caller: Option<String>,
    /// The fault that answered instead of the service, if any.
    pub fault: Option<String>,
    pub request_id: Uuid,
}

/// Handlers put this in their response's extensions to name the caller in the log.
#[derive(Debug, Clone)]
pub struct CallerTag(pub String);

/// The newest entries kept; older ones are dropped so a long-running sandbox stays bounded.
pub const LOG_CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct RequestLog {
    entries: Mutex<LogEntries>,
}

#[derive(Default)]
struct LogEntries {
    next_seq: u64,
    entries: std::collections::VecDeque<LoggedRequest>,
}

impl RequestLog {
    pub fn snapshot(&self) -> Vec<LoggedRequest> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).entries.iter().cloned().collect()
    }

    /// Forgets the entries; sequence numbers keep counting so `?since=` stays meaningful.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).entries.clear();
    }

    fn push(&self, mut entry: LoggedRequest) {
        let mut log = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        log.next_seq += 1;
        entry.seq = log.next_seq;
        if log.entries.len() >= LOG_CAPACITY {
            log.entries.pop_front();
        }
        log.entries.push_back(entry);
    }
}

pub fn service_of(path: &str) -> Service {
    if path.starts_with("/v1.0/") {
        Service::PowerBi
    } else if path.starts_with("/_sandbox") {
        Service::Control
    } else if ["/embed", "/dashboardEmbed", "/reportEmbed", "/sandbox-embed"].iter().any(|p| path.starts_with(p)) {
        Service::Embed
    } else {
        Service::EntraId
    }
}

pub async fn log_and_inject_faults(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let service = service_of(&path);
    let at = shared.clock.now();
    let request_id = Uuid::new_v4();
    let fault = if service == Service::Control { None } else { shared.faults.take(&method, &path) };
    let fault_name = fault.as_ref().map(|f| format!("{f:?}"));
    let mut response = match fault {
        None => next.run(request).await,
        Some(FaultKind::Delay { millis }) => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            next.run(request).await
        }
        Some(fault) => fault_response(&fault, service),
    };
    let header = if service == Service::EntraId { "x-ms-request-id" } else { "requestid" };
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        response.headers_mut().insert(HeaderName::from_static(header), value);
    }
    let caller = response.extensions().get::<CallerTag>().map(|c| c.0.clone());
    shared.log.push(LoggedRequest {
        seq: 0,
        at,
        method,
        path,
        status: response.status().as_u16(),
        service,
        caller,
        fault: fault_name,
        request_id,
    });
    response
}

fn fault_response(fault: &FaultKind, service: Service) -> Response {
    match fault {
        FaultKind::Throttle { retry_after } => with_retry_after(
            error_body(
                StatusCode::TOO_MANY_REQUESTS,
                service,
                "You have exceeded the amount of requests allowed in the current time frame and further requests will fail.",
            ),
            Some(*retry_after),
        ),
        FaultKind::Status { status, retry_after } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            with_retry_after(error_body(status, service, "The service failed to process the request (injected fault)."), *retry_after)
        }
        FaultKind::Drop => {
            let stream = futures_util::stream::once(async {
                Err::<bytes::Bytes, std::io::Error>(std::io::Error::other("connection dropped (injected fault)"))
            });
            (StatusCode::OK, [("content-type", "application/json")], Body::from_stream(stream)).into_response()
        }
        FaultKind::InvalidBody => {
            (StatusCode::OK, [("content-type", "application/json; charset=utf-8")], "{\"value\": [ <html>not json").into_response()
        }
        FaultKind::Delay { .. } => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn error_body(status: StatusCode, service: Service, message: &str) -> Response {
    let code = match status {
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        _ => "InternalServerError",
    };
    let body = if service == Service::EntraId {
        serde_json::json!({"error": "temporarily_unavailable", "error_description": format!("AADSTS90033: {message}"), "error_codes": [90033]})
    } else {
        serde_json::json!({"error": {"code": code, "message": message}})
    };
    (status, axum::Json(body)).into_response()
}

fn with_retry_after(mut response: Response, seconds: Option<u64>) -> Response {
    if let Some(seconds) = seconds {
        response.headers_mut().insert("retry-after", HeaderValue::from(seconds));
    }
    response
}
