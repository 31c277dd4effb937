//! Connect sessions: an app's backend lets one of its end users connect (or reconnect) a Power BI account on
//! pbi-bridge's connect page. The session's token is `pcs_` and 256 random bits, given once to the app and
//! kept as a SHA-256 hash; it works for 30 minutes, for one browser (the first that opens it), and ends once
//! with an outcome: connected, or one of the failures in `Failure`.

use crate::{AppError, keys, secure_or_local};
use pbi_store::{App, ConnectSession, EndUser, EndUserDetails, NewConnectSession, SessionOutcome, Store};
use secrecy::SecretString;
use uuid::Uuid;

/// What every connect session token starts with.
pub const SESSION_TOKEN_PREFIX: &str = "pcs_";
/// How long a connect session can be used.
pub const SESSION_SECONDS: i64 = 30 * 60;
/// The outcome of a session that connected an account.
pub const CONNECTED: &str = "connected";

/// A connect session as the app's backend asks for it.
#[derive(Debug, Clone, Default)]
pub struct SessionSpec {
    pub end_user: EndUserDetails,
    /// Where the connect page sends the browser when it is done; its origin must be one of the app's.
    pub return_url: Option<String>,
    /// The end user's connection to sign in again, for a reconnect session.
    pub reconnect: Option<Uuid>,
}

/// A session just made: the token (for the app, once) and the session.
pub struct NewSession {
    pub token: SecretString,
    pub session: ConnectSession,
    pub end_user: EndUser,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession").field("session", &self.session).finish_non_exhaustive()
    }
}

/// Why a session token opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefused {
    #[error("this link is not a connect session's (those carry a token starting with {SESSION_TOKEN_PREFIX})")]
    NotAToken,
    #[error("this connect link is unknown: ask the app for a new one")]
    Unknown,
    #[error("this connect link expired after 30 minutes: go back to the app and start again")]
    Expired,
    #[error("this connect link was already used: go back to the app and start again")]
    Ended,
    #[error("this connect link was opened in another browser: go back to the app and start again here")]
    OtherBrowser,
}

/// How a connection attempt failed, as the app is told (`code`) and the end user reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The end user declined the permissions on Microsoft's consent page.
    ConsentDeclined,
    /// The organization lets only administrators consent to the app.
    AdminConsentRequired,
    /// The account belongs to an organization the app's registration does not accept.
    WrongTenant,
    /// The registration does not ask for `offline_access`, so the connection would stop within the hour.
    MissingOfflineAccess,
    /// A reconnect session was completed with another account than the connection's.
    WrongAccount,
    /// The connect session expired before the sign-in came back.
    Expired,
    /// Anything else Entra ID or the network refused; the message says what.
    SignInFailed,
}

impl Failure {
    pub const ALL: [Failure; 7] = [
        Failure::ConsentDeclined,
        Failure::AdminConsentRequired,
        Failure::WrongTenant,
        Failure::MissingOfflineAccess,
        Failure::WrongAccount,
        Failure::Expired,
        Failure::SignInFailed,
    ];

    /// The failure a stored outcome's code names (`None`: `connected`, or a code this build does not know).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            Failure::ConsentDeclined => "consent_declined",
            Failure::AdminConsentRequired => "admin_consent_required",
            Failure::WrongTenant => "wrong_tenant",
            Failure::MissingOfflineAccess => "missing_offline_access",
            Failure::WrongAccount => "wrong_account",
            Failure::Expired => "expired",
            Failure::SignInFailed => "sign_in_failed",
        }
    }

    /// The failure page's heading.
    pub fn title(self) -> &'static str {
        match self {
            Failure::ConsentDeclined => "You declined the permissions",
            Failure::AdminConsentRequired => "An administrator must approve this app",
            Failure::WrongTenant => "This account's organization is not accepted",
            Failure::MissingOfflineAccess => "The app's registration cannot keep you connected",
            Failure::WrongAccount => "That is another account",
            Failure::Expired => "The connect link expired",
            Failure::SignInFailed => "The sign-in did not complete",
        }
    }

    /// What the end user can do next.
    pub fn advice(self, app: &str) -> String {
        match self {
            Failure::ConsentDeclined => {
                format!("{app} cannot reach your Power BI content without them. Go back to {app} and connect again, then choose Accept.")
            }
            Failure::AdminConsentRequired => format!(
                "Your organization lets only its administrators approve apps. Ask an administrator to grant consent for the app {app} uses (in the Azure portal: Enterprise applications, the app, Permissions), then connect again."
            ),
            Failure::WrongTenant => format!(
                "{app} accepts accounts of one organization only. Connect again and choose an account of that organization, or ask its administrator to invite you."
            ),
            Failure::MissingOfflineAccess => format!(
                "The registration {app} uses does not ask for offline_access, so Power BI would stop answering within the hour. Tell {app}'s administrator: add offline_access to the registration's scopes in pbi-bridge."
            ),
            Failure::WrongAccount => {
                "You signed in with another Power BI account than the one to reconnect. Connect again and choose that account.".to_owned()
            }
            Failure::Expired => format!("Connect links work for 30 minutes. Go back to {app} and start again."),
            Failure::SignInFailed => format!("Go back to {app} and try again; if it keeps happening, tell its administrator."),
        }
    }

    /// The failure an Entra refusal is, by its `AADSTS` number (`explain`'s code).
    pub fn of_entra_code(code: Option<&str>) -> Self {
        match code.and_then(|c| c.strip_prefix("AADSTS")) {
            Some("65004") => Failure::ConsentDeclined,
            Some("65001" | "90094" | "90095") => Failure::AdminConsentRequired,
            Some("50020" | "50034" | "700016") => Failure::WrongTenant,
            _ => Failure::SignInFailed,
        }
    }
}

impl SessionSpec {
    /// Checks the spec against `app` (each fault names its input by its API name) and makes the session.
    pub async fn create(&self, store: &Store, app: &App, now: i64) -> Result<NewSession, AppError> {
        let details = check_end_user(&self.end_user)?;
        let return_url = self.return_url.as_deref().map(|url| check_return_url(url, app)).transpose()?;
        let end_user = store.upsert_end_user(app.id, &details, now).await?;
        if let Some(connection) = self.reconnect {
            // Another end user's (or another app's) connection reads as none at all.
            let found = store.connection(connection).await.ok().filter(|c| c.account.owner == end_user.as_owner());
            if found.is_none() {
                return Err(AppError::NotFound(format!("connection {connection} of this end user")));
            }
        }
        let token = keys::random_token(SESSION_TOKEN_PREFIX);
        let new = NewConnectSession { app_id: app.id, end_user_id: end_user.id, return_url, reconnect_connection_id: self.reconnect };
        let session = store.add_connect_session(&new, &keys::hash(&token), now, now + SESSION_SECONDS).await?;
        Ok(NewSession { token: SecretString::from(token), session, end_user })
    }
}

fn check_end_user(given: &EndUserDetails) -> Result<EndUserDetails, AppError> {
    let id = given.external_id.trim();
    if id.is_empty() || id.chars().count() > 255 || id.chars().any(char::is_control) {
        return Err(AppError::invalid("endUser.id", "give the app's own id for the end user (1 to 255 characters, no control characters)"));
    }
    let optional = |value: &Option<String>, field: &str, most: usize| -> Result<Option<String>, AppError> {
        match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) if v.chars().count() > most || v.chars().any(char::is_control) => {
                Err(AppError::invalid(field, format!("at most {most} characters, no control characters")))
            }
            other => Ok(other.map(str::to_owned)),
        }
    };
    let email = optional(&given.email, "endUser.email", 320)?;
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err(AppError::invalid("endUser.email", "give an e-mail address (name@example.com), or leave it out"));
    }
    Ok(EndUserDetails { external_id: id.to_owned(), email, display_name: optional(&given.display_name, "endUser.displayName", 200)? })
}

/// A return URL is an absolute https URL (http only on this machine) on one of the app's allowed origins.
pub fn check_return_url(text: &str, app: &App) -> Result<String, AppError> {
    let url = url::Url::parse(text.trim()).map_err(|e| AppError::invalid("returnUrl", format!("'{text}' is not an absolute URL ({e})")))?;
    if !secure_or_local(&url) {
        return Err(AppError::invalid("returnUrl", "use https (http only for localhost)"));
    }
    let origin = url.origin().ascii_serialization();
    if !app.details.allowed_origins.contains(&origin) {
        return Err(AppError::invalid(
            "returnUrl",
            format!("{origin} is not among the app's allowed origins: add it to the app, or return to one of those"),
        ));
    }
    Ok(url.to_string())
}

/// The session a token opens, while it is open, for the browser whose cookie hashes to `browser_hash` (the
/// first browser to open a session holds it).
pub async fn open(store: &Store, token: &str, browser_hash: &str, now: i64) -> Result<Result<ConnectSession, SessionRefused>, AppError> {
    if !keys::looks_like_token(token, SESSION_TOKEN_PREFIX) {
        return Ok(Err(SessionRefused::NotAToken));
    }
    let Some(session) = store.connect_session_by_token(&keys::hash(token)).await? else { return Ok(Err(SessionRefused::Unknown)) };
    if let Err(refused) = still_open(&session, now) {
        return Ok(Err(refused));
    }
    if !store.bind_connect_session(session.id, browser_hash).await? {
        return Ok(Err(SessionRefused::OtherBrowser));
    }
    Ok(Ok(store.connect_session(session.id).await?))
}

/// The session `id`, for the browser that holds it, while it is open.
pub async fn held(store: &Store, id: Uuid, browser_hash: &str, now: i64) -> Result<Result<ConnectSession, SessionRefused>, AppError> {
    let session = match store.connect_session(id).await {
        Ok(session) => session,
        Err(pbi_store::StoreError::NotFound(_)) => return Ok(Err(SessionRefused::Unknown)),
        Err(other) => return Err(other.into()),
    };
    if session.browser_hash.as_deref() != Some(browser_hash) {
        return Ok(Err(SessionRefused::OtherBrowser));
    }
    Ok(still_open(&session, now).map(|()| session))
}

fn still_open(session: &ConnectSession, now: i64) -> Result<(), SessionRefused> {
    if session.ended_at.is_some() {
        Err(SessionRefused::Ended)
    } else if now >= session.expires_at {
        Err(SessionRefused::Expired)
    } else {
        Ok(())
    }
}

/// Ends the session as connected to `connection`.
pub async fn connected(store: &Store, session: Uuid, connection: Uuid, upn: &str, now: i64) -> Result<(), AppError> {
    let outcome = SessionOutcome { code: CONNECTED.into(), message: format!("Connected {upn}."), connection_id: Some(connection) };
    store.end_connect_session(session, &outcome, now).await?;
    Ok(())
}

/// Ends the session with a failure; `message` is what the end user was shown.
pub async fn failed(store: &Store, session: Uuid, failure: Failure, message: &str, now: i64) -> Result<(), AppError> {
    let outcome = SessionOutcome { code: failure.code().into(), message: message.to_owned(), connection_id: None };
    store.end_connect_session(session, &outcome, now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(origins: &[&str]) -> App {
        App {
            id: Uuid::nil(),
            details: pbi_store::NewApp {
                name: "ERP".into(),
                registration_id: Uuid::nil(),
                allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            },
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_return_url_is_on_an_allowed_origin() {
        let erp = app(&["https://erp.example.com", "http://localhost:3000"]);
        assert!(check_return_url("https://erp.example.com/settings/power-bi?tab=1", &erp).is_ok());
        assert!(check_return_url("http://localhost:3000/done", &erp).is_ok());
        for bad in [
            "https://evil.example.com/",
            "http://erp.example.com/",
            "https://erp.example.com.evil.com/",
            "/relative",
            "javascript:alert(1)",
        ] {
            let error = check_return_url(bad, &erp).expect_err(bad);
            assert_eq!(error.field(), Some("returnUrl"), "{bad}");
        }
    }

    #[test]
    fn an_end_user_has_an_id_and_optional_details() {
        let given =
            |id: &str, email: Option<&str>| EndUserDetails { external_id: id.into(), email: email.map(str::to_owned), display_name: None };
        assert_eq!(check_end_user(&given(" u-42 ", Some(" a@b.c "))).expect("ok").external_id, "u-42");
        assert_eq!(check_end_user(&given("u", Some("  "))).expect("blank is none").email, None);
        assert_eq!(check_end_user(&given("", None)).expect_err("no id").field(), Some("endUser.id"));
        assert_eq!(check_end_user(&given("a\nb", None)).expect_err("control").field(), Some("endUser.id"));
        assert_eq!(check_end_user(&given("u", Some("nobody"))).expect_err("no @").field(), Some("endUser.email"));
    }

    #[test]
    fn entra_refusals_are_the_failures_an_app_can_tell_apart() {
        assert_eq!(Failure::of_entra_code(Some("AADSTS65004")), Failure::ConsentDeclined);
        assert_eq!(Failure::of_entra_code(Some("AADSTS90094")), Failure::AdminConsentRequired);
        assert_eq!(Failure::of_entra_code(Some("AADSTS50020")), Failure::WrongTenant);
        assert_eq!(Failure::of_entra_code(Some("AADSTS7000215")), Failure::SignInFailed);
        assert_eq!(Failure::of_entra_code(None), Failure::SignInFailed);
        for failure in Failure::ALL {
            assert_eq!(Failure::from_code(failure.code()), Some(failure));
        }
        assert_eq!(Failure::from_code(CONNECTED), None);
    }
}
