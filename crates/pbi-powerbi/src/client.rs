//! The HTTP core: one request, sent with a bearer token, classified, retried by the policy, and retried
//! once with a fresh token when Power BI says the token expired.

use crate::cloud::Cloud;
use crate::error::{ErrorKind, PowerBiError, Result};
use crate::retry::{Decision, RetryPolicy, Sleep, TokioSleep};
use crate::token::TokenSource;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// A Power BI REST client for one cloud (or the sandbox) and one identity.
#[derive(Clone)]
pub struct PowerBiClient {
    http: reqwest::Client,
    /// `{api base}/v1.0/myorg/`
    root: Url,
    tokens: Arc<dyn TokenSource>,
    retry: RetryPolicy,
    sleep: Arc<dyn Sleep>,
    observer: Option<Observer>,
}

/// Told the outcome of every HTTP exchange with Power BI: the status, or `None` when no answer came
/// (for metrics; it must be cheap and must not block).
pub type Observer = Arc<dyn Fn(Option<u16>) + Send + Sync>;

/// What to send. Bodies are bytes so that a retry sends exactly the same request again.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Relative to `/v1.0/myorg/`, e.g. `groups/{id}/datasets`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Body,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(Bytes),
    Form(Vec<(String, String)>),
    Multipart(Vec<Part>),
}

/// One multipart part: a form field or a file with its name.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub content: Bytes,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self { method, path: path.into(), query: Vec::new(), headers: Vec::new(), body: Body::None, timeout: None }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn json(mut self, body: &impl serde::Serialize) -> Result<Self> {
        let bytes = serde_json::to_vec(body).map_err(|e| PowerBiError::invalid(format!("the body cannot be written as JSON: {e}")))?;
        self.body = Body::Json(Bytes::from(bytes));
        Ok(self)
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: Option<String>,
}

impl Answer {
    /// Decodes the body; an answer that does not match keeps its raw text in the error.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| PowerBiError {
            kind: ErrorKind::Decode { reason: e.to_string(), raw: String::from_utf8_lossy(&self.body).into_owned() },
            request_id: self.request_id.clone(),
        })
    }
}

impl PowerBiClient {
    pub fn new(cloud: &Cloud, tokens: Arc<dyn TokenSource>) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default();
        Self::sharing(http, cloud, tokens)
    }

    /// A client on `http`'s connection pool: a server that makes a client per request shares one pool
    /// (building a `reqwest::Client` is not cheap). `http` should not follow redirects.
    pub fn sharing(http: reqwest::Client, cloud: &Cloud, tokens: Arc<dyn TokenSource>) -> Self {
        let mut root = cloud.api_base();
        root.set_path(&format!("{}/v1.0/myorg/", root.path().trim_end_matches('/')));
        Self { http, root, tokens, retry: RetryPolicy::default(), sleep: Arc::new(TokioSleep), observer: None }
    }

    /// Reports every exchange's status to `observer`.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    pub(crate) fn observe(&self, status: Option<u16>) {
        if let Some(observer) = &self.observer {
            observer(status);
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_sleep(mut self, sleep: Arc<dyn Sleep>) -> Self {
        self.sleep = sleep;
        self
    }

    /// `{api base}/v1.0/myorg/`: every request's URL is under it.
    pub(crate) fn root(&self) -> &Url {
        &self.root
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A token from the source (`fresh`: not the one sent last), its failure as the client's error.
    pub(crate) async fn token(&self, fresh: bool) -> Result<crate::token::AccessToken> {
        self.tokens.token(fresh).await.map_err(|e| {
            // No answer from the token endpoint is a network failure; an answer that refuses is a token error.
            PowerBiError::new(if e.is_unreachable() { ErrorKind::Transport(e.message) } else { ErrorKind::Token(e.message) })
        })
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The client's way of waiting (polling helpers use it too).
    pub fn sleeper(&self) -> &dyn Sleep {
        self.sleep.as_ref()
    }

    /// Sends `request` under the client's retry policy.
    pub async fn execute(&self, request: &Request) -> Result<Answer> {
        self.execute_with(request, &self.retry).await
    }

    /// Sends `request` under `policy`: retries as it decides, and once with a fresh token on
    /// `TokenExpired`/`InvalidToken` (that retry does not count against the policy).
    pub async fn execute_with(&self, request: &Request, policy: &RetryPolicy) -> Result<Answer> {
        let url = self.url_for(&request.path)?;
        let (mut attempt, mut waited, mut fresh_token, mut refreshed) = (0u32, Duration::ZERO, false, false);
        loop {
            let token = self.token(fresh_token).await?;
            let error = match self.send_once(request, &url, token.secret()).await {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            if error.is_token_problem() && !refreshed {
                tracing::debug!(code = error.code(), "access token refused; asking the token source for a fresh one");
                (fresh_token, refreshed) = (true, true);
                continue;
            }
            match policy.decide(attempt, &error, waited) {
                Decision::RetryAfter(wait) => {
                    tracing::debug!(%url, %error, wait_ms = wait.as_millis() as u64, attempt, "retrying Power BI request");
                    self.sleep.sleep(wait).await;
                    waited += wait;
                    attempt += 1;
                }
                Decision::GiveUp => return Err(error),
            }
        }
    }

    fn url_for(&self, path: &str) -> Result<Url> {
        crate::raw::ApiPath::parse(path)?.url_under(&self.root)
    }

    async fn send_once(&self, request: &Request, url: &Url, token: &str) -> Result<Answer> {
        let mut builder = self.http.request(request.method.clone(), url.clone()).query(&request.query).bearer_auth(token);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(timeout) = request.timeout {
            builder = builder.timeout(timeout);
        }
        builder = match &request.body {
            Body::None => builder,
            Body::Json(bytes) => builder.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes.clone()),
            Body::Form(fields) => builder.form(fields),
            Body::Multipart(parts) => builder.multipart(multipart(parts)),
        };
        // Debug logging names the call, never the token: the Authorization header is not logged.
        tracing::debug!(method = %request.method, url = %url, "Power BI request");
        let response = builder.send().await.map_err(|e| {
            self.observe(None);
            transport(e)
        })?;
        let status = response.status();
        self.observe(Some(status.as_u16()));
        let headers = response.headers().clone();
        let request_id = request_id(&headers);
        tracing::debug!(url = %url, status = status.as_u16(), request_id = request_id.as_deref().unwrap_or("-"), "Power BI answer");
        let body = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(Answer { status, headers, body, request_id });
        }
        Err(classify(status, &headers, &body, request_id))
    }
}

fn multipart(parts: &[Part]) -> reqwest::multipart::Form {
    parts.iter().fold(reqwest::multipart::Form::new(), |form, part| {
        let mut piece = reqwest::multipart::Part::bytes(part.content.to_vec());
        if let Some(file_name) = &part.file_name {
            piece = piece.file_name(file_name.clone());
        }
        form.part(part.name.clone(), piece)
    })
}

fn transport(error: reqwest::Error) -> PowerBiError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    PowerBiError::new(ErrorKind::Transport(format!("{kind}: {error}")))
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    ["requestid", "x-ms-request-id"].iter().find_map(|name| headers.get(*name)).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Turns a failed answer into an error: the code from `X-PowerBI-Error-Details`, the JSON body, or
/// `X-PowerBI-Error-Info` (for the empty-bodied 401/403s), in that order.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], request_id: Option<String>) -> PowerBiError {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let details: Option<serde_json::Value> = header("x-powerbi-error-details").and_then(|d| serde_json::from_str(&d).ok());
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error = details.as_ref().map(|d| d.get("error").unwrap_or(d)).or_else(|| parsed.get("error")).cloned().unwrap_or_default();
    let code = error["code"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| header("x-powerbi-error-info"))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").replace(' ', ""));
    let message = error["message"].as_str().map(str::to_owned).unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect());
    let kind = match status.as_u16() {
        404 => ErrorKind::NotFound { code, message },
        401 => ErrorKind::Unauthorized { code, message },
        403 => ErrorKind::Forbidden { code, message },
        429 => ErrorKind::Throttled { retry_after: retry_after(headers) },
        400 | 409 | 413 | 415 | 422 => ErrorKind::BadRequest { status: status.as_u16(), code, message },
        other => ErrorKind::Service { status: other, message: if message.is_empty() { code } else { message } },
    };
    PowerBiError { kind, request_id }
}

/// `Retry-After` in seconds (Power BI's form) or as an HTTP date; 60 s when absent or unreadable.
fn retry_after(headers: &HeaderMap) -> Duration {
    let value = headers.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).unwrap_or_default().trim().to_owned();
    if let Ok(seconds) = value.parse::<u64>() {
        return Duration::from_secs(seconds);
    }
    time::OffsetDateTime::parse(&value, &time::format_description::well_known::Rfc2822)
        .ok()
        .and_then(|at| Duration::try_from(at - time::OffsetDateTime::now_utc()).ok())
        .unwrap_or(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_str(v).expect("ascii"))).collect()
    }

    #[test]
    fn classifies_the_documented_error_shapes() {
        let expired = classify(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            br#"{"error":{"code":"TokenExpired","message":"Access token has expired"}}"#,
            Some("r-1".into()),
        );
        assert!(expired.is_token_problem());
        assert_eq!(expired.request_id.as_deref(), Some("r-1"));
        let bare = classify(StatusCode::FORBIDDEN, &headers(&[("x-powerbi-error-info", "InvalidToken")]), b"", None);
        assert_eq!(bare.code(), Some("InvalidToken"));
        let throttled = classify(StatusCode::TOO_MANY_REQUESTS, &headers(&[("retry-after", "42")]), b"", None);
        assert!(matches!(throttled.kind, ErrorKind::Throttled { retry_after } if retry_after == Duration::from_secs(42)));
        let detailed = classify(
            StatusCode::UNAUTHORIZED,
            &headers(&[("x-powerbi-error-details", r#"{"error":{"code":"PowerBINotAuthorizedException","message":"detail"}}"#)]),
            b"{}",
            None,
        );
        assert_eq!(detailed.code(), Some("PowerBINotAuthorizedException"));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>", None).kind,
            ErrorKind::Service { status: 502, .. }
        ));
    }
}
