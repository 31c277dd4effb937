//! The proxy (seed 002): `/api/v1/proxy/powerbi/{path}`, any method, for one of an app's end users'
//! connections, chosen by the `Connection-Id` header (or `c/{connection}/` at the start of the path, for
//! client libraries that only take a base URL). The app authenticates with its secret key; Power BI's status,
//! headers and body come back as they are, streamed, with pbi-bridge's request id. The path is checked as
//! every raw request's is (`pbi_powerbi::ApiPath`). pbi-bridge's own refusals are JSON with a code and the
//! `Pbi-Bridge-Error` header, so that an app can tell them from Power BI's.

use crate::AppState;
use crate::api::AppCaller;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use pbi_powerbi::{ApiPath, Forward, ForwardBody, PowerBiClient};
use pbi_store::ConnectionStatus;
use std::sync::Arc;
use uuid::Uuid;

/// Marks an answer as pbi-bridge's own, not Power BI's.
pub const OWN_ERROR_HEADER: &str = "pbi-bridge-error";
/// The header that names the connection.
const CONNECTION_HEADER: &str = "connection-id";
/// A body up to this size is held, so that it can be sent again after Power BI refused an expired token;
/// a larger one is streamed through, once.
const REPLAYABLE_BYTES: usize = 1024 * 1024;

/// A refusal of pbi-bridge's own: `{"error": {"code", "message"}}`, marked as pbi-bridge's.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn refusal(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { status, code, message: message.into() }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(HeaderName::from_static(OWN_ERROR_HEADER), HeaderValue::from_static("true"));
        response
    }
}

/// The caller's headers that go on to Power BI: not pbi-bridge's own (the app's key, the connection, cookies).
fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let own = ["authorization", "cookie", CONNECTION_HEADER, "host", "x-csrf-token", "origin", "referer"];
    headers.iter().filter(|(name, _)| !own.contains(&name.as_str())).map(|(n, v)| (n.clone(), v.clone())).collect()
}

/// Power BI's headers that go back: all but those of the connection between pbi-bridge and Power BI.
fn returned_headers(headers: &HeaderMap) -> HeaderMap {
    let hop = ["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"];
    headers
        .iter()
        .filter(|(name, _)| !hop.contains(&name.as_str()) && !name.as_str().starts_with("proxy-"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// The connection and the Power BI path a request names: `c/{id}/{path}`, or `{path}` with `Connection-Id`.
fn connection_and_path<'a>(headers: &HeaderMap, path: &'a str) -> Result<(Uuid, &'a str), Refusal> {
    if let Some(rest) = path.strip_prefix("c/") {
        let (id, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let id = Uuid::parse_str(id)
            .map_err(|_| refusal(StatusCode::BAD_REQUEST, "invalid_connection_id", "After c/ give the connection's id, then the path."))?;
        return Ok((id, rest));
    }
    let header = headers.get(CONNECTION_HEADER).and_then(|v| v.to_str().ok()).map(str::trim);
    let Some(text) = header.filter(|t| !t.is_empty()) else {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "no_connection",
            "Name the end user's connection: send Connection-Id: <id>, or start the path with c/<id>/.",
        ));
    };
    let id = Uuid::parse_str(text).map_err(|_| {
        refusal(StatusCode::BAD_REQUEST, "invalid_connection_id", "Connection-Id: give the connection's id as the API returned it.")
    })?;
    Ok((id, path))
}

/// The caller's body: held when small (it can be sent again), streamed when large.
async fn body_of(body: axum::body::Body) -> Result<ForwardBody, Refusal> {
    let mut stream = body.into_data_stream();
    let mut held = BytesMut::new();
    loop {
        match stream.next().await {
            None if held.is_empty() => return Ok(ForwardBody::None),
            None => return Ok(ForwardBody::Bytes(held.freeze())),
            Some(Ok(chunk)) => {
                held.extend_from_slice(&chunk);
                if held.len() > REPLAYABLE_BYTES {
                    let first = futures_util::stream::once(async move { Ok::<Bytes, axum::Error>(held.freeze()) });
                    return Ok(ForwardBody::Stream(reqwest::Body::wrap_stream(first.chain(stream))));
                }
            }
            Some(Err(error)) => {
                return Err(refusal(StatusCode::BAD_REQUEST, "body_unreadable", format!("The request body could not be read: {error}.")));
            }
        }
    }
}

/// A client for the connection, acting as its end user through its registration's cloud.
async fn client_for(state: &AppState, app: &pbi_store::App, id: Uuid) -> Result<PowerBiClient, Refusal> {
    let unknown = || refusal(StatusCode::NOT_FOUND, "unknown_connection", "The app has no connection with this id.");
    let found = match crate::app_connect::connection(state, app, id).await {
        Ok(found) => found,
        Err(crate::problem::Problem::NotFound(_)) => return Err(unknown()),
        Err(_) => return Err(refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong; try again.")),
    };
    let connection = found.connection;
    if connection.status != ConnectionStatus::Active {
        let why = connection.status_reason.unwrap_or_else(|| "it was disconnected".into());
        return Err(refusal(
            StatusCode::CONFLICT,
            "needs_sign_in",
            format!("The end user must connect again ({why}): make a reconnect session (reconnectConnectionId)."),
        ));
    }
    let registration = state
        .store
        .registration(connection.account.registration_id)
        .await
        .map_err(|_| refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong; try again."))?;
    crate::ops::client_of(state, &registration, &connection).map_err(|e| refusal(StatusCode::BAD_GATEWAY, "not_configured", e.to_string()))
}

/// `/api/v1/proxy/powerbi/{path}`: the request, forwarded for the connection it names. pbi-bridge's id for
/// it is the `X-Request-Id` every answer carries (`metrics::observe`), next to Power BI's `RequestId`.
pub async fn forward(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let state = &state;
    let (mut parts, body) = request.into_parts();
    let app = match AppCaller::from_request_parts(&mut parts, state).await {
        Ok(AppCaller(app)) => app,
        Err(refused) => {
            let mut response = refused.into_response();
            response.headers_mut().insert(HeaderName::from_static(OWN_ERROR_HEADER), HeaderValue::from_static("true"));
            return response;
        }
    };
    // Under `/api/v1`'s router the path arrives without that prefix.
    let raw = parts.uri.path();
    let full = raw.strip_prefix("/api/v1").unwrap_or(raw).strip_prefix("/proxy/powerbi/").unwrap_or_default().to_owned();
    let (id, path) = match connection_and_path(&parts.headers, &full) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let path = match ApiPath::parse(path) {
        Ok(path) => path,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, "path_refused", error.to_string()).into_response(),
    };
    if path.segments().first().is_some_and(|s| s.eq_ignore_ascii_case("admin")) {
        return refusal(
            StatusCode::FORBIDDEN,
            "admin_api_refused",
            "Apps cannot call Power BI's admin APIs (myorg/admin/…) through the proxy.",
        )
        .into_response();
    }
    let client = match client_for(state, &app, id).await {
        Ok(client) => client,
        Err(refused) => return refused.into_response(),
    };
    let body = match body_of(body).await {
        Ok(body) => body,
        Err(refused) => return refused.into_response(),
    };
    let forward = Forward {
        method: parts.method.clone(),
        path,
        query: parts.uri.query().map(str::to_owned),
        headers: forwarded_headers(&parts.headers),
        body,
    };
    match client.forward(forward).await {
        Ok(answer) => {
            let status = answer.status();
            let headers = returned_headers(answer.headers());
            let mut response = Response::new(axum::body::Body::from_stream(answer.bytes_stream()));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(error) => match error.kind {
            pbi_powerbi::ErrorKind::Token(message) => refusal(
                StatusCode::CONFLICT,
                "needs_sign_in",
                format!("The end user must connect again ({message}): make a reconnect session (reconnectConnectionId)."),
            ),
            pbi_powerbi::ErrorKind::Invalid(message) => refusal(StatusCode::BAD_REQUEST, "path_refused", message),
            other => refusal(StatusCode::BAD_GATEWAY, "unavailable", format!("Power BI could not be reached: {other:?}")),
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_named_by_header_or_by_the_path() {
        let id = Uuid::from_u128(5);
        let mut headers = HeaderMap::new();
        assert_eq!(connection_and_path(&headers, &format!("c/{id}/v1.0/myorg/datasets")).ok(), Some((id, "v1.0/myorg/datasets")));
        assert!(connection_and_path(&headers, "myorg/datasets").is_err(), "no connection named");
        assert!(connection_and_path(&headers, "c/nope/myorg").is_err());
        headers.insert(CONNECTION_HEADER, HeaderValue::from_str(&id.to_string()).expect("ascii"));
        assert_eq!(connection_and_path(&headers, "myorg/datasets").ok(), Some((id, "myorg/datasets")));
    }

    #[test]
    fn the_apps_credentials_never_go_on_and_the_hop_headers_never_come_back() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer pbs_x"),
            ("cookie", "a=b"),
            ("connection-id", "x"),
            ("content-type", "application/json"),
            ("if-match", "*"),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let sent = forwarded_headers(&headers);
        assert_eq!(sent.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["content-type", "if-match"]);
        let mut answer = HeaderMap::new();
        for (name, value) in [("transfer-encoding", "chunked"), ("retry-after", "30"), ("requestid", "r-1"), ("connection", "close")] {
            answer.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let back = returned_headers(&answer);
        assert_eq!(back.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["retry-after", "requestid"]);
    }
}
