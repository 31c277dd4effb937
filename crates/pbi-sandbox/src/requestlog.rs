//! The request log every test can read, the middleware that fills it and applies injected faults, and the
//! count of Power BI requests in flight (so a test can prove that a client asks several things at once).

use crate::Shared;
use crate::faults::FaultKind;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;
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

/// What [`Traffic`] has counted. The maximum and the delays only grow (until a reset), so a wait on them
/// cannot miss a moment that has passed.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    in_flight: usize,
    max_in_flight: usize,
    delayed: u64,
}

/// Power BI requests in flight, the most at once, and the requests delay faults have held. A watch channel,
/// so waiters are woken by each change instead of polling.
pub struct Traffic {
    counts: watch::Sender<Counts>,
}

impl Default for Traffic {
    fn default() -> Self {
        Self { counts: watch::Sender::new(Counts::default()) }
    }
}

/// One Power BI request being served; dropping it (answered, or cancelled by the client) ends it.
struct InFlight<'a>(&'a Traffic);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.counts.send_modify(|c| c.in_flight -= 1);
    }
}

impl Traffic {
    fn enter(&self) -> InFlight<'_> {
        self.counts.send_modify(|c| {
            c.in_flight += 1;
            c.max_in_flight = c.max_in_flight.max(c.in_flight);
        });
        InFlight(self)
    }

    fn delay_began(&self) {
        self.counts.send_modify(|c| c.delayed += 1);
    }

    pub fn in_flight(&self) -> usize {
        self.counts.borrow().in_flight
    }

    pub fn max_in_flight(&self) -> usize {
        self.counts.borrow().max_in_flight
    }

    /// Counts the maximum afresh, from the requests in flight now.
    pub fn reset_max_in_flight(&self) {
        self.counts.send_modify(|c| c.max_in_flight = c.in_flight);
    }

    pub fn delayed(&self) -> u64 {
        self.counts.borrow().delayed
    }

    pub async fn wait_for_max_in_flight(&self, n: usize) {
        // The sender lives in `Shared`, which outlives every borrow of it, so the wait cannot fail.
        let _ = self.counts.subscribe().wait_for(|c| c.max_in_flight >= n).await;
    }

    pub async fn wait_for_delayed(&self, n: u64) {
        let _ = self.counts.subscribe().wait_for(|c| c.delayed >= n).await;
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
    let _in_flight = (service == Service::PowerBi).then(|| shared.traffic.enter());
    let fault = if service == Service::Control { None } else { shared.faults.take(&method, &path) };
    let fault_name = fault.as_ref().map(|f| format!("{f:?}"));
    let mut response = match fault {
        None => next.run(request).await,
        Some(FaultKind::Delay { millis }) => {
            // The deadline is fixed on the sandbox's clock before the delay is counted, so a test that waits
            // for the count and then advances a manual clock by `millis` is sure to release this request.
            let wait = std::time::Duration::from_millis(millis);
            let deadline = time::Duration::try_from(wait).ok().and_then(|wait| at.checked_add(wait));
            shared.traffic.delay_began();
            match deadline {
                Some(deadline) => shared.clock.sleep_until(deadline).await,
                // Past the last representable instant: the same wait as any clock would give it, forever.
                None => shared.clock.sleep(wait).await,
            }
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
