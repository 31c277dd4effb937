//! Where access tokens come from: a static token, client credentials, or a callback (the token vault).

use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use tokio::sync::Mutex;
use url::Url;

/// Defines a secret-holding newtype: `Debug` prints `[redacted]`, there is no `Display`, and `secret()` is
/// the one greppable way to read the value.
macro_rules! secret_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}([redacted])", stringify!($name))
            }
        }
    };
}

secret_newtype!(
    /// A bearer token for the Power BI API.
    AccessToken
);
secret_newtype!(
    /// An app registration's client secret.
    ClientSecret
);

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TokenError {
    /// Entra's `AADSTSnnnnn` code when the token endpoint gave one.
    pub aadsts: Option<u32>,
    pub message: String,
}

/// How the message of a token request that got no answer begins (see `TokenError::unreachable`).
const UNREACHABLE: &str = "the token endpoint could not be reached: ";

impl TokenError {
    /// The token endpoint gave no answer (connection refused, DNS, TLS, timeout): a network failure, which
    /// `PowerBiClient` reports as `ErrorKind::Transport`, not a refusal by Entra.
    pub fn unreachable(detail: impl std::fmt::Display) -> Self {
        Self { aadsts: None, message: format!("{UNREACHABLE}{detail}") }
    }

    /// Whether this is `unreachable`'s error (no answer came), as opposed to Entra refusing the request.
    pub fn is_unreachable(&self) -> bool {
        self.aadsts.is_none() && self.message.starts_with(UNREACHABLE)
    }
}

/// The seam every caller plugs its credentials into. `fresh` asks to bypass any cache (the API said the
/// last token was expired or invalid).
pub trait TokenSource: Send + Sync {
    fn token(&self, fresh: bool) -> BoxFuture<'_, Result<AccessToken, TokenError>>;
}

/// One fixed token (`--token`, `PBI_BRIDGE_TOKEN`). It cannot be refreshed.
pub struct StaticToken(pub AccessToken);

impl TokenSource for StaticToken {
    fn token(&self, _fresh: bool) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// Any async function that returns a fresh token (the token broker of `pbi-auth` plugs in here).
pub struct CallbackToken<F>(pub F);

impl<F> TokenSource for CallbackToken<F>
where
    F: Fn(bool) -> BoxFuture<'static, Result<AccessToken, TokenError>> + Send + Sync,
{
    fn token(&self, fresh: bool) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        (self.0)(fresh)
    }
}

/// The client-credentials grant against Entra's v2 token endpoint, cached until shortly before expiry.
pub struct ClientCredentials {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    secret: ClientSecret,
    scope: String,
    now: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
    cached: Mutex<Option<(AccessToken, OffsetDateTime)>>,
}

/// Tokens are renewed this long before they expire, so a request never starts with one about to lapse.
const RENEW_BEFORE: Duration = Duration::minutes(5);

impl ClientCredentials {
    /// `authority` is e.g. `https://login.microsoftonline.com/{tenant}`; `resource` the API's resource.
    pub fn new(
        http: reqwest::Client,
        authority: &Url,
        client_id: impl Into<String>,
        secret: ClientSecret,
        resource: &str,
    ) -> Result<Self, TokenError> {
        if authority.cannot_be_a_base() || authority.host_str().is_none() {
            return Err(TokenError {
                aadsts: None,
                message: format!("the authority '{authority}' is not an http(s) URL such as https://login.microsoftonline.com/<tenant>"),
            });
        }
        let mut token_url = authority.clone();
        token_url.set_path(&format!("{}/oauth2/v2.0/token", authority.path().trim_end_matches('/')));
        token_url.set_query(None);
        Ok(Self {
            http,
            token_url,
            client_id: client_id.into(),
            secret,
            scope: format!("{}/.default", resource.trim_end_matches('/')),
            now: Arc::new(OffsetDateTime::now_utc),
            cached: Mutex::new(None),
        })
    }

    /// Reads "now" from `clock` (tests pass the sandbox's clock).
    pub fn with_clock(mut self, clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        self.now = Arc::new(clock);
        self
    }

    async fn request(&self) -> Result<(AccessToken, OffsetDateTime), TokenError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.secret()),
            ("scope", self.scope.as_str()),
        ];
        let response = self.http.post(self.token_url.clone()).form(&form).send().await.map_err(TokenError::unreachable)?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(entra_error(status.as_u16(), &body));
        }
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: serde_json::Value,
        }
        let answer: Answer = serde_json::from_str(&body)
            .map_err(|e| TokenError { aadsts: None, message: format!("the token endpoint's answer is not a token response: {e}") })?;
        let lifetime = answer.expires_in.as_i64().or_else(|| answer.expires_in.as_str().and_then(|s| s.parse().ok())).unwrap_or(3599);
        Ok((AccessToken::new(answer.access_token), (self.now)() + Duration::seconds(lifetime)))
    }
}

/// Entra's error body → "AADSTS7000215: Invalid client secret provided..." (first line only, no trace ids).
pub fn entra_error(status: u16, body: &str) -> TokenError {
    let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let aadsts = parsed["error_codes"][0].as_u64().and_then(|c| u32::try_from(c).ok());
    let description = parsed["error_description"].as_str().and_then(|d| d.lines().next()).unwrap_or("").to_owned();
    let error = parsed["error"].as_str().unwrap_or("unknown_error");
    let message = if description.is_empty() {
        format!("the token endpoint answered HTTP {status} ({error})")
    } else {
        format!("{error}: {description}")
    };
    TokenError { aadsts, message }
}

impl TokenSource for ClientCredentials {
    fn token(&self, fresh: bool) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            // One request in flight: concurrent callers wait for it instead of racing the endpoint.
            let mut cached = self.cached.lock().await;
            if !fresh
                && let Some((token, expires)) = cached.as_ref()
                && *expires - RENEW_BEFORE > (self.now)()
            {
                return Ok(token.clone());
            }
            let (token, expires) = self.request().await?;
            *cached = Some((token.clone(), expires));
            Ok(token)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        assert_eq!(format!("{:?}", AccessToken::new("eyJ0eXAi.secret")), "AccessToken([redacted])");
        assert_eq!(format!("{:?}", ClientSecret::new("s3cret")), "ClientSecret([redacted])");
    }

    #[test]
    fn entra_errors_keep_the_code_and_first_line() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}"#;
        let error = entra_error(401, body);
        assert_eq!(error.aadsts, Some(7000215));
        assert_eq!(error.message, "invalid_client: AADSTS7000215: Invalid client secret provided.");
        assert!(entra_error(502, "<html>").message.contains("HTTP 502"));
    }

    #[test]
    fn the_token_url_follows_the_authority() {
        let http = reqwest::Client::new();
        let source = ClientCredentials::new(
            http,
            &Url::parse("http://127.0.0.1:9/contoso.onmicrosoft.com").expect("url"),
            "id",
            ClientSecret::new("s"),
            "https://analysis.windows.net/powerbi/api",
        )
        .expect("ok");
        assert_eq!(source.token_url.as_str(), "http://127.0.0.1:9/contoso.onmicrosoft.com/oauth2/v2.0/token");
        assert_eq!(source.scope, "https://analysis.windows.net/powerbi/api/.default");
    }
}
