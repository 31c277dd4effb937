//! Raw requests to any Power BI endpoint (seed 002's `request("powerbi", "myorg/datasets")`, seed 004's
//! Raw Request action), confined to the API: a path, never a URL, never `..`, never another host.

use crate::client::{Body, Part, PowerBiClient, Request};
use crate::error::{PowerBiError, Result};
use crate::retry::RetryPolicy;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// Accepts `datasets`, `/datasets`, `myorg/datasets` or `/v1.0/myorg/datasets` and returns the part under
/// `/v1.0/myorg/`; refuses anything that could leave it.
pub fn check_path(path: &str) -> Result<&str> {
    let refuse =
        |why: &str| Err(PowerBiError::invalid(format!("the path '{path}' {why}; give a path under the API base, such as myorg/datasets")));
    if path.contains("://") || path.starts_with("//") || path.starts_with("\\\\") {
        return refuse("is a URL");
    }
    if path.chars().any(|c| c.is_control() || c == '\\' || c == '@') {
        return refuse("has characters a path may not have");
    }
    if path.contains(['?', '#']) {
        return refuse("has a query or fragment (pass query parameters separately)");
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") || lower.contains("%40") {
        return refuse("has encoded dots or separators");
    }
    let trimmed = path.trim_start_matches('/');
    let relative = ["v1.0/myorg/", "v1.0/myorg", "myorg/", "myorg"]
        .iter()
        .find_map(|prefix| trimmed.strip_prefix(prefix))
        .unwrap_or(trimmed)
        .trim_start_matches('/');
    if relative.split('/').any(|segment| segment == ".." || segment == ".") {
        return refuse("walks out with '..'");
    }
    if relative.starts_with("v1.0/") || relative.contains(':') {
        return refuse("names another API root or a port");
    }
    Ok(relative)
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
        let mut request = Request::new(raw.method.clone(), check_path(&raw.path)?);
        request.query = raw.query.clone();
        request.timeout = raw.timeout;
        for (name, value) in &raw.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PowerBiError::invalid(format!("'{name}' is not a valid header name")))?;
            if name == AUTHORIZATION {
                return Err(PowerBiError::invalid("the Authorization header is set by pbi-bridge and cannot be overridden"));
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
    use proptest::prelude::*;

    #[test]
    fn paths_are_confined_to_the_api() {
        assert_eq!(check_path("myorg/datasets").ok(), Some("datasets"));
        assert_eq!(check_path("/v1.0/myorg/groups/x/reports").ok(), Some("groups/x/reports"));
        assert_eq!(check_path("datasets").ok(), Some("datasets"));
        for bad in [
            "https://evil.example/x",
            "//evil.example/x",
            "datasets/../../admin",
            "..",
            "%2e%2e/x",
            "groups/%2F/x",
            "a\\b",
            "x?y=1",
            "user@evil.example",
            "v1.0/myorg/v1.0/x",
            "evil.example:443/x",
        ] {
            assert!(check_path(bad).is_err(), "{bad} must be refused");
        }
    }

    proptest! {
        #[test]
        fn nothing_accepted_leaves_the_api_root(path in "[a-zA-Z0-9/._%:@?#\\\\-]{0,40}") {
            if let Ok(relative) = check_path(&path) {
                let root = url::Url::parse("https://api.powerbi.com/v1.0/myorg/").expect("url");
                let joined = root.join(relative).expect("a relative path joins");
                prop_assert_eq!(joined.host_str(), Some("api.powerbi.com"));
                prop_assert!(joined.path().starts_with("/v1.0/myorg/"), "{} from {}", joined, path);
            }
        }
    }
}
