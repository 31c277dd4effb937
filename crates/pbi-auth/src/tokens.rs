//! A Power BI client's credentials for one connection: the broker's tokens, and the cloud of the registration
//! the connection was made through. The server's requests and background work (deliveries) both act as a
//! connection through these, so a token Power BI refuses is replaced the same way everywhere.

use crate::{Auth, AuthError};
use futures_util::future::BoxFuture;
use pbi_powerbi::{AccessToken, Cloud, TokenError, TokenSource};
use pbi_store::{Owner, Registration};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;

/// The broker's tokens for one connection, as a `TokenSource`. When Power BI refuses the token sent last
/// (`fresh`), the broker replaces that very token (`Auth::replace_refused_token`), once for all who sent it.
pub struct ConnectionTokens {
    auth: Arc<Auth>,
    connection: Uuid,
    owner: Owner,
    last_sent: Mutex<Option<SecretString>>,
}

impl ConnectionTokens {
    pub fn new(auth: Arc<Auth>, connection: Uuid, owner: Owner) -> Self {
        Self { auth, connection, owner, last_sent: Mutex::new(None) }
    }

    async fn fetch(&self, fresh: bool) -> Result<AccessToken, TokenError> {
        let refused = if fresh { self.last_sent.lock().unwrap_or_else(PoisonError::into_inner).clone() } else { None };
        let token = match refused {
            Some(refused) => self.auth.replace_refused_token(self.connection, Some(&self.owner), &refused).await,
            None => self.auth.access_token(self.connection, Some(&self.owner)).await,
        }
        .map_err(|e| TokenError { aadsts: None, message: e.to_string() })?;
        let sent = AccessToken::new(token.expose_secret());
        *self.last_sent.lock().unwrap_or_else(PoisonError::into_inner) = Some(token);
        Ok(sent)
    }
}

impl TokenSource for ConnectionTokens {
    fn token(&self, fresh: bool) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(self.fetch(fresh))
    }
}

/// The Power BI cloud a registration's connections call: its own API URL (the sandbox, a test), else its
/// cloud by name (public when the name is unknown).
pub fn cloud_of(registration: &Registration) -> Result<Cloud, AuthError> {
    match &registration.details.api_base {
        Some(base) => url::Url::parse(base)
            .map(Cloud::custom)
            .map_err(|e| AuthError::Setup(format!("the configured Power BI API URL is not valid ({e}): correct it in the registration"))),
        None => Ok(Cloud::parse(&registration.details.cloud).unwrap_or(Cloud::Public)),
    }
}
