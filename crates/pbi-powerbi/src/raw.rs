//! Raw requests to any Power BI endpoint (seed 002's `request("powerbi", "myorg/datasets")`, seed 004's
//! Raw Request action), confined to the API: a path, never a URL, never `..`, never another host, and no
//! header that belongs to pbi-bridge or to the connection.

use crate::client::{Body, Part, PowerBiClient, Request};
use crate::error::{PowerBiError, Result};
use crate::retry::RetryPolicy;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{
    AUTHORIZATION, CONNECTION, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use std::time::Duration;
use url::Url;

/// A path under the API's `/v1.0/myorg/`, parsed once: its segments, percent-decoded once and with dot
/// segments resolved. The URL sent is built from these segments (each encoded again), never by joining a
/// string, so nothing in the text can change the scheme, host, port or the part of the path above the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath {
    segments: Vec<String>,
}

impl ApiPath {
    /// Accepts `datasets`, `/datasets`, `myorg/datasets` or `/v1.0/myorg/datasets` (segments percent-encoded
    /// as in a URL: `tables/Sales%20Orders/rows`); refuses anything that could leave the API root.
    pub fn parse(path: &str) -> Result<Self> {
        let refuse = |why: &str| {
            Err(PowerBiError::invalid(format!(
                "path: '{}' {why}; give a path under the API base, such as myorg/datasets",
                path.escape_debug()
            )))
        };
        let trimmed = path.trim();
        if trimmed.contains("://") || trimmed.starts_with("//") {
            return refuse("is a URL");
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return refuse("has spaces or control characters (encode a space in a name as %20)");
        }
        if trimmed.contains(['?', '#']) {
            return refuse("has a query or fragment (pass query parameters separately)");
        }
        if trimmed.contains(['\\', '@', ':']) {
            return refuse("has characters a path may not have (\\, @ or :)");
        }
        let mut segments: Vec<String> = Vec::new();
        for raw in trimmed.trim_start_matches('/').split('/') {
            let Ok(segment) = percent_encoding::percent_decode_str(raw).decode_utf8() else {
                return refuse("has percent-encoded bytes that are not UTF-8");
            };
            if segment.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
                return refuse("has encoded separators or control characters");
            }
            segments.push(segment.into_owned());
        }
        if segments.last().is_some_and(String::is_empty) {
            segments.pop();
        }
        if segments.iter().any(String::is_empty) {
            return refuse("has an empty segment ('//')");
        }
        let prefix = match segments.as_slice() {
            [v, org, ..] if v == "v1.0" && org == "myorg" => 2,
            [org, ..] if org == "myorg" => 1,
            _ => 0,
        };
        let mut resolved: Vec<String> = Vec::new();
        for segment in segments.into_iter().skip(prefix) {
            match segment.as_str() {
                "." => {}
                ".." => {
                    if resolved.pop().is_none() {
                        return refuse("walks out of the API with '..'");
                    }
                }
                _ => resolved.push(segment),
            }
        }
        if resolved.first().is_some_and(|s| s == "v1.0" || s == "myorg") {
            return refuse("names the API root twice");
        }
        Ok(Self { segments: resolved })
    }

    /// The decoded segments under `/v1.0/myorg/`.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// `root` (the API's `.../v1.0/myorg/`) with these segments appended, each percent-encoded. Checked
    /// once more on the result: the same scheme, host and port as `root`, and a path under it.
    pub fn url_under(&self, root: &Url) -> Result<Url> {
        let mut url = root.clone();
        if !self.segments.is_empty() {
            url.path_segments_mut()
                .map_err(|()| PowerBiError::invalid("the API base cannot carry a path"))?
                .pop_if_empty()
                .extend(&self.segments);
        }
        let same_origin =
            url.scheme() == root.scheme() && url.host() == root.host() && url.port_or_known_default() == root.port_or_known_default();
        if !same_origin || !url.path().starts_with(root.path()) || url.query().is_some() || url.fragment().is_some() {
            return Err(PowerBiError::invalid(format!("path: '{url}' would leave the API base {root}")));
        }
        Ok(url)
    }
}

impl std::fmt::Display for ApiPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

/// Headers a caller cannot set on a raw request: the token is pbi-bridge's to send, the host is the API's,
/// and hop-by-hop headers belong to the connection (a caller's `Transfer-Encoding` or `Content-Length` could
/// desynchronise it).
pub(crate) fn reserved_header(name: &HeaderName) -> bool {
    const RESERVED: [HeaderName; 9] =
        [AUTHORIZATION, HOST, CONNECTION, TRANSFER_ENCODING, TE, UPGRADE, TRAILER, CONTENT_LENGTH, HeaderName::from_static("keep-alive")];
    RESERVED.contains(name) || name.as_str().starts_with("proxy-")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseType {
    #[default]
    Json,
    Text,
    Binary,
}

/// Everything seed 004's Raw Request action takes.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: Method,
    pub path: String,
    pub json: Option<serde_json::Value>,
    pub form: Vec<(String, String)>,
    /// Multipart files: (field name, file name, content).
    pub files: Vec<(String, String, Bytes)>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub response_type: ResponseType,
    pub timeout: Option<Duration>,
    pub retry: Option<RetryPolicy>,
}

impl RawRequest {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            json: None,
            form: Vec::new(),
            files: Vec::new(),
            query: Vec::new(),
            headers: Vec::new(),
            response_type: ResponseType::Json,
            timeout: None,
            retry: None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum RawBody {
    Json(serde_json::Value),
    Text(String),
    Binary(Bytes),
    Empty,
}

#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: RawBody,
    pub request_id: Option<String>,
}

impl PowerBiClient {
    pub async fn raw(&self, raw: &RawRequest) -> Result<RawResponse> {
        let mut request = Request::new(raw.method.clone(), raw.path.clone());
        request.query = raw.query.clone();
        request.timeout = raw.timeout;
        for (name, value) in &raw.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PowerBiError::invalid(format!("'{name}' is not a valid header name")))?;
            if reserved_header(&name) {
                return Err(PowerBiError::invalid(format!(
                    "headers: '{name}' is set by pbi-bridge or the connection and cannot be given; remove it"
                )));
            }
            let value =
                HeaderValue::from_str(value).map_err(|_| PowerBiError::invalid(format!("the value of header '{name}' is not valid")))?;
            request.headers.push((name, value));
        }
        request.body = match (&raw.json, raw.form.is_empty(), raw.files.is_empty()) {
            (Some(_), false, _) | (Some(_), _, false) => {
                return Err(PowerBiError::invalid("send a JSON body, or form fields and files, not both"));
            }
            (Some(json), true, true) => Body::Json(Bytes::from(serde_json::to_vec(json).unwrap_or_default())),
            (None, true, true) => Body::None,
            (None, _, true) => Body::Form(raw.form.clone()),
            (None, _, false) => Body::Multipart(
                raw.form
                    .iter()
                    .map(|(name, value)| Part { name: name.clone(), file_name: None, content: Bytes::from(value.clone()) })
                    .chain(raw.files.iter().map(|(name, file, content)| Part {
                        name: name.clone(),
                        file_name: Some(file.clone()),
                        content: content.clone(),
                    }))
                    .collect(),
            ),
        };
        let policy = raw.retry.as_ref().unwrap_or(self.retry_policy());
        let answer = self.execute_with(&request, policy).await?;
        let body = if answer.body.is_empty() {
            RawBody::Empty
        } else {
            match raw.response_type {
                ResponseType::Json => RawBody::Json(answer.decode()?),
                ResponseType::Text => RawBody::Text(String::from_utf8_lossy(&answer.body).into_owned()),
                ResponseType::Binary => RawBody::Binary(answer.body.clone()),
            }
        };
        Ok(RawResponse { status: answer.status.as_u16(), headers: answer.headers, body, request_id: answer.request_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative(path: &str) -> Option<String> {
        ApiPath::parse(path).ok().map(|p| p.to_string())
    }

    #[test]
    fn paths_are_confined_to_the_api() {
        assert_eq!(relative("myorg/datasets").as_deref(), Some("datasets"));
        assert_eq!(relative("/v1.0/myorg/groups/x/reports").as_deref(), Some("groups/x/reports"));
        assert_eq!(relative("datasets").as_deref(), Some("datasets"));
        assert_eq!(relative(" datasets/ ").as_deref(), Some("datasets"), "surrounding spaces are trimmed");
        assert_eq!(relative("groups/x/../y").as_deref(), Some("groups/y"), "dot segments are resolved");
        assert_eq!(relative("tables/Sales%20Orders/rows").as_deref(), Some("tables/Sales Orders/rows"), "decoded once");
        for bad in [
            "https://evil.example/x",
            "//evil.example/x",
            " //127.0.0.1/stolen",
            " /_sandbox/clock/../../../_sandbox/clock",
            " ../x",
            "datasets/../../admin",
            "..",
            "%2e%2e/x",
            "groups/%2F/x",
            "groups/%5c/x",
            "groups/%00/x",
            "a\\b",
            "x?y=1",
            "x#y",
            "user@evil.example",
            "v1.0/myorg/v1.0/x",
            "evil.example:443/x",
            "groups\u{a0}/x",
            "groups/\u{3000}x",
            "groups/x\ty",
            "groups//x",
        ] {
            assert!(ApiPath::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn urls_are_built_from_segments_under_the_root() {
        let root = Url::parse("https://api.powerbi.com/v1.0/myorg/").expect("url");
        let url = ApiPath::parse("tables/Sales%20Orders/rows").expect("path").url_under(&root).expect("url");
        assert_eq!(url.as_str(), "https://api.powerbi.com/v1.0/myorg/tables/Sales%20Orders/rows");
        assert_eq!(ApiPath::parse("myorg").expect("path").url_under(&root).expect("url"), root);
    }

    #[test]
    fn reserved_headers_cannot_be_given() {
        for name in ["authorization", "host", "connection", "transfer-encoding", "te", "upgrade", "proxy-authorization", "keep-alive"] {
            assert!(reserved_header(&HeaderName::from_static(name)), "{name}");
        }
        assert!(!reserved_header(&HeaderName::from_static("x-ms-client-request-id")));
    }
}
