//! Entra ID's token endpoint: one form POST, and its answer as tokens or as Entra's error.

use crate::explain::{self, Context, Explained};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// A successful token response (v2 numbers, v1 strings: both accepted).
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: SecretString,
    pub expires_in: i64,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<String>,
    /// Granted scopes as Entra lists them (full URLs or short names).
    pub scope: String,
}

/// Entra said no, or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum TokenEndpointError {
    /// An OAuth error: `error` (`invalid_grant`, `invalid_client`, ...) with Entra's explanation.
    #[error("{explained}")]
    Refused { error: String, aadsts: Option<u32>, status: u16, explained: Explained },
    /// Network trouble, 5xx, 429 or an unreadable answer: worth retrying.
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(String),
}

impl TokenEndpointError {
    /// `invalid_grant`: the grant (code or refresh token) is dead; retrying cannot help.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, TokenEndpointError::Refused { error, .. } if error == "invalid_grant")
    }
}

#[derive(Deserialize)]
struct Success {
    access_token: String,
    #[serde(default)]
    expires_in: serde_json::Value,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

pub async fn request(
    http: &reqwest::Client,
    token_url: &Url,
    form: &[(&str, &str)],
    context: &Context,
) -> Result<TokenResponse, TokenEndpointError> {
    let response = http.post(token_url.clone()).form(form).send().await.map_err(|e| TokenEndpointError::Unavailable(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| TokenEndpointError::Unavailable(e.to_string()))?;
    if status == 200 {
        let success: Success = serde_json::from_str(&body)
            .map_err(|e| TokenEndpointError::Unavailable(format!("the token endpoint's answer is not a token response: {e}")))?;
        let expires_in = success.expires_in.as_i64().or_else(|| success.expires_in.as_str().and_then(|s| s.parse().ok())).unwrap_or(3599);
        return Ok(TokenResponse {
            access_token: SecretString::from(success.access_token),
            expires_in,
            refresh_token: success.refresh_token.map(SecretString::from),
            id_token: success.id_token,
            scope: success.scope.unwrap_or_default(),
        });
    }
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let error = parsed["error"].as_str().unwrap_or_default().to_owned();
    if status == 429 || status >= 500 || error.is_empty() || error == "temporarily_unavailable" {
        return Err(TokenEndpointError::Unavailable(format!("HTTP {status} {error}")));
    }
    let aadsts = parsed["error_codes"][0].as_u64().and_then(|c| u32::try_from(c).ok());
    let detail = parsed["error_description"].as_str().unwrap_or_default();
    let explained = explain::entra(aadsts, &error, detail, parsed["trace_id"].as_str().map(str::to_owned), context);
    Err(TokenEndpointError::Refused { error, aadsts, status, explained })
}

/// The account a token response is for, from its id token (or, failing that, the access token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountClaims {
    pub tenant_id: String,
    pub object_id: String,
    pub upn: String,
}

/// Reads a JWT's claims without verifying it: it came straight from the token endpoint over TLS, which is
/// what OpenID Connect allows for the token endpoint's own answer.
pub fn claims(jwt: &str) -> Option<serde_json::Value> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn account(response: &TokenResponse) -> Option<AccountClaims> {
    let from = |claims: serde_json::Value| {
        let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
        Some(AccountClaims {
            tenant_id: text("tid")?,
            object_id: text("oid")?,
            upn: text("preferred_username").or_else(|| text("upn")).or_else(|| text("unique_name"))?,
        })
    };
    response.id_token.as_deref().and_then(claims).and_then(from).or_else(|| claims(response.access_token.expose_secret()).and_then(from))
}

/// `https://analysis.windows.net/powerbi/api/Dashboard.Read.All openid` → `["Dashboard.Read.All", "openid"]`.
pub fn short_scopes(scope: &str) -> Vec<String> {
    scope.split_whitespace().map(|s| s.rsplit('/').next().unwrap_or(s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_shortened_and_claims_read() {
        assert_eq!(short_scopes("https://analysis.windows.net/powerbi/api/Dashboard.Read.All openid"), ["Dashboard.Read.All", "openid"]);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"tid":"t","oid":"o","preferred_username":"a@b"}"#);
        let response = TokenResponse {
            access_token: SecretString::from("x".to_owned()),
            expires_in: 1,
            refresh_token: None,
            id_token: Some(format!("h.{payload}.s")),
            scope: String::new(),
        };
        assert_eq!(account(&response), Some(AccountClaims { tenant_id: "t".into(), object_id: "o".into(), upn: "a@b".into() }));
        assert!(claims("not a jwt").is_none());
    }
}
