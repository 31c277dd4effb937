//! Registration checks that tell the truth: what can be proven is proven with a real token request; what
//! cannot (a delegated app's consent) is said plainly.

use crate::explain::{self, Explained};
use crate::{Auth, AuthError, Result, date_of};
use pbi_powerbi::{AccessToken, ClientCredentials, ClientSecret, TokenError, TokenSource};
use pbi_store::Registration;
use secrecy::ExposeSecret;
use serde::Serialize;
use url::Url;
use uuid::Uuid;

/// Secrets expiring within this many days are warned about.
pub const SECRET_WARNING_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Warning,
    Failed,
    /// Not checkable from here; the message says when it will be.
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Validation {
    pub registration: String,
    pub checks: Vec<Check>,
}

impl Validation {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Failed)
    }
}

fn check(name: &'static str, outcome: Outcome, message: impl Into<String>) -> Check {
    Check { name, outcome, message: message.into() }
}

impl Auth {
    /// Checks a registration. `callback_url` is the server's own OAuth callback, when there is a server.
    pub async fn validate(&self, registration_id: Uuid, callback_url: Option<&str>) -> Result<Validation> {
        let registration = self.store.registration(registration_id).await.map_err(crate::not_found)?;
        let mut checks = Vec::new();
        checks.push(match self.usable(&registration) {
            Ok(()) => check("enabled", Outcome::Passed, "the registration is enabled"),
            Err(error) => check("enabled", Outcome::Failed, error.to_string()),
        });
        checks.extend(redirect_checks(&registration, callback_url));
        checks.push(offline_access_check(&registration));
        let secret_check = self.secret_check(&registration).await?;
        let secret_usable = secret_check.outcome != Outcome::Failed;
        checks.push(secret_check);
        if secret_usable {
            checks.push(self.token_check(&registration).await);
        }
        checks.push(check(
            "consent",
            Outcome::Info,
            "delegated permissions are granted when the first user signs in and accepts (or when an administrator grants consent for the organization); that sign-in completes the setup",
        ));
        Ok(Validation { registration: registration.details.name.clone(), checks })
    }

    async fn secret_check(&self, registration: &Registration) -> Result<Check> {
        let Some((info, _)) = self.store.current_secret(registration.id).await? else {
            return Ok(check(
                "client secret",
                Outcome::Failed,
                "no client secret: create one in Certificates & secrets and add it to the registration",
            ));
        };
        let now = self.clock.unix();
        let days_left = (info.expires_at - now) / 86_400;
        Ok(if info.expires_at <= now {
            check(
                "client secret",
                Outcome::Failed,
                format!(
                    "the client secret expired on {}: create a new one in Certificates & secrets and update the registration",
                    date_of(info.expires_at)
                ),
            )
        } else if days_left < SECRET_WARNING_DAYS {
            check(
                "client secret",
                Outcome::Warning,
                format!(
                    "the client secret expires on {} (in {days_left} days): create a new one in Certificates & secrets and add it to the registration before then",
                    date_of(info.expires_at)
                ),
            )
        } else {
            check("client secret", Outcome::Passed, format!("the client secret is valid until {}", date_of(info.expires_at)))
        })
    }

    /// A real client-credentials request: Entra accepting it proves the client id, the tenant and the secret.
    async fn token_check(&self, registration: &Registration) -> Check {
        if matches!(registration.details.tenant.to_ascii_lowercase().as_str(), "organizations" | "common") {
            return check(
                "credentials",
                Outcome::Info,
                "a multi-tenant registration's secret can only be proven at the first sign-in (client credentials need one tenant)",
            );
        }
        match self.service_principal(registration.id).await {
            Ok(source) => match source.token(true).await {
                Ok(_) => check("credentials", Outcome::Passed, "Entra ID accepted the Application ID and the client secret"),
                Err(error) => check("credentials", Outcome::Failed, error.message),
            },
            Err(error) => check("credentials", Outcome::Failed, error.to_string()),
        }
    }

    /// Client credentials for a registration (seed 003's self-managed service principal): a token source
    /// for `pbi-powerbi`, cached until shortly before expiry, whose errors are explained.
    pub async fn service_principal(&self, registration_id: Uuid) -> Result<ServicePrincipal> {
        let registration = self.store.registration(registration_id).await.map_err(crate::not_found)?;
        self.usable(&registration)?;
        let secret = self.secret(&registration).await?;
        let (_, token_url) = Self::endpoints(&registration)?;
        let authority = authority_of(&token_url)?;
        let resource = Self::cloud(&registration)?.resource().to_owned();
        let clock = self.clock.clone();
        let inner = ClientCredentials::new(
            self.http.clone(),
            &authority,
            registration.details.client_id.clone(),
            ClientSecret::new(secret.expose_secret()),
            &resource,
        )
        .map_err(|e| AuthError::Setup(e.message))?
        .with_clock(move || clock.now());
        Ok(ServicePrincipal { inner, context: Self::context(&registration) })
    }
}

/// `…/{tenant}/oauth2/v2.0/token` → `…/{tenant}`.
fn authority_of(token_url: &Url) -> Result<Url> {
    let path = token_url.path();
    let trimmed = path.strip_suffix("/oauth2/v2.0/token").ok_or_else(|| {
        AuthError::Setup(format!("the token URL '{token_url}' does not end in /oauth2/v2.0/token, which client credentials need"))
    })?;
    let mut authority = token_url.clone();
    authority.set_path(trimmed);
    Ok(authority)
}

/// A user's connection lives on its refresh token, which Entra ID gives only to a sign-in that asked for
/// `offline_access`: without it every connection needs its user again within the hour.
fn offline_access_check(registration: &Registration) -> Check {
    if registration.details.scopes.iter().any(|s| s.eq_ignore_ascii_case("offline_access")) {
        check("scopes", Outcome::Passed, "offline_access is asked for: connections stay signed in with refresh tokens")
    } else {
        check(
            "scopes",
            Outcome::Failed,
            format!(
                "the scopes leave out offline_access, without which Entra ID gives no refresh token and every connection needs its user to sign in again within the hour: add it (pbi-bridge registration update --name {} --scope … --scope offline_access)",
                registration.details.name
            ),
        )
    }
}

fn redirect_checks(registration: &Registration, callback_url: Option<&str>) -> Vec<Check> {
    let urls = &registration.details.redirect_urls;
    if urls.is_empty() {
        return vec![check(
            "redirect URL",
            Outcome::Failed,
            "no redirect URL: add pbi-bridge's callback URL to the registration and to the app's Redirect URIs",
        )];
    }
    let mut checks: Vec<Check> = urls
        .iter()
        .map(|u| match Url::parse(u) {
            Ok(url) if url.scheme() == "https" || (url.scheme() == "http" && matches!(url.host_str(), Some("localhost" | "127.0.0.1"))) => {
                check("redirect URL", Outcome::Passed, format!("{u} is well-formed"))
            }
            Ok(_) => check("redirect URL", Outcome::Failed, format!("{u} must use https (http is allowed for localhost only)")),
            Err(e) => check("redirect URL", Outcome::Failed, format!("'{u}' is not a URL: {e}")),
        })
        .collect();
    if let Some(callback) = callback_url
        && !urls.iter().any(|u| u == callback)
    {
        checks.push(check(
            "redirect URL",
            Outcome::Failed,
            format!(
                "the server's callback {callback} is not among the registration's redirect URLs: add it here and in the app's Redirect URIs"
            ),
        ));
    }
    checks
}

/// A registration's service principal as a `pbi-powerbi` token source; Entra's refusals come explained.
pub struct ServicePrincipal {
    inner: ClientCredentials,
    context: explain::Context,
}

impl ServicePrincipal {
    pub fn explain(&self, error: &TokenError) -> Explained {
        explain::entra(error.aadsts, "", &error.message, None, &self.context)
    }
}

impl TokenSource for ServicePrincipal {
    fn token(&self, fresh: bool) -> futures_util::future::BoxFuture<'_, std::result::Result<AccessToken, TokenError>> {
        Box::pin(async move {
            self.inner.token(fresh).await.map_err(|error| {
                let explained = self.explain(&error);
                TokenError { aadsts: error.aadsts, message: explained.to_string() }
            })
        })
    }
}
