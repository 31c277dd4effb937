//! What can go wrong in an operation, said once: the web pages show it as a page, the API as JSON.

use axum::http::StatusCode;
use axum::response::Response;
use pbi_auth::AuthError;
use pbi_store::StoreError;

/// A refusal or failure a caller can act on. Messages say what to do and never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// Not there, or not the caller's (the two read the same, so ids cannot be probed).
    #[error("There is no such {0} among yours.")]
    NotFound(&'static str),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("The request body is too large (64 KiB at most; 64 MiB for an item's rows): send less at a time.")]
    TooLarge,
    #[error("{0}")]
    Unauthenticated(String),
    #[error("Only administrators can do this.")]
    AdminOnly,
    /// A signed-in browser's request that changes something came without the session's CSRF token.
    #[error("Send the session's CSRF token in the X-CSRF-Token header (or use an API token).")]
    Csrf,
    /// The request cannot be done in the current state; the message says what to do first.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("Power BI is not configured yet: ask your administrator.")]
    NotConfigured,
    #[error("Connect your Power BI account first: open My settings and click Get started.")]
    NotConnected,
    #[error("Sign in to Power BI again in My settings: {0}")]
    NeedsSignIn(String),
    /// Power BI refused or failed; the message is seed 000's troubleshooting text for it.
    #[error("{message}")]
    PowerBi { status: u16, message: String },
    /// Entra ID or the network failed; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// Every slot for password hashing is taken (`users::PasswordSlots`); nothing was changed.
    #[error("The server is busy checking other passwords: please try again in a moment.")]
    Busy,
    /// A fault of ours, already logged with its detail; the caller is told only that it happened.
    #[error("Something went wrong. Please try again; if it keeps happening, tell your administrator the time it happened.")]
    Internal,
}

impl Problem {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.to_owned(), message: message.into() }
    }

    /// A refusal a form shows next to what was typed (a field at fault, a conflict); others read as their own
    /// page.
    pub fn shown_on_form(&self) -> bool {
        matches!(self, Self::Invalid { .. } | Self::Conflict(_))
    }

    /// Logs a store failure with its context and hides it from the caller; "not found" stays "not found".
    pub fn store(what: &'static str, context: &'static str) -> impl FnOnce(StoreError) -> Self {
        move |error| match error {
            StoreError::NotFound(_) => Self::NotFound(what),
            other => {
                tracing::error!(error = %other, "{context}");
                Self::Internal
            }
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::AdminOnly | Self::Forbidden(_) | Self::Csrf => StatusCode::FORBIDDEN,
            Self::Conflict(_) | Self::NotConfigured | Self::NotConnected | Self::NeedsSignIn(_) => StatusCode::CONFLICT,
            Self::PowerBi { .. } | Self::Unavailable(_) => StatusCode::BAD_GATEWAY,
            Self::Busy => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable name for the kind of problem.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Invalid { .. } => "invalid_input",
            Self::TooLarge => "too_large",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::AdminOnly => "admin_only",
            Self::Csrf => "csrf",
            Self::Conflict(_) => "conflict",
            Self::Forbidden(_) => "forbidden",
            Self::NotConfigured => "not_configured",
            Self::NotConnected => "not_connected",
            Self::NeedsSignIn(_) => "needs_sign_in",
            Self::PowerBi { .. } => "power_bi",
            Self::Unavailable(_) => "unavailable",
            Self::Busy => "busy",
            Self::Internal => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "Not found",
            Self::Invalid { .. } | Self::TooLarge => "Check what you entered",
            Self::Unauthenticated(_) => "Sign in",
            Self::AdminOnly | Self::Forbidden(_) | Self::Csrf => "Forbidden",
            Self::Conflict(_) => "Not yet",
            Self::NotConfigured | Self::NotConnected | Self::NeedsSignIn(_) => "Connect Power BI first",
            Self::PowerBi { .. } | Self::Unavailable(_) => "Power BI is not available",
            Self::Busy => "Busy",
            Self::Internal => "Something went wrong",
        }
    }

    /// The problem as a page in the frame, with a way back and home.
    pub fn page(&self) -> Response {
        self.with_retry_after(crate::frame::error_page(self.status(), self.title(), &self.in_words()))
    }

    /// The problem as a person reads it: an invalid field is named in the page's words ("Token name", not
    /// `name`).
    pub fn in_words(&self) -> String {
        match self {
            Self::Invalid { field, message } => format!("{}: {message}", field_label(field)),
            other => other.to_string(),
        }
    }

    /// A refusal that passes with time says when to try again (`Retry-After`, seconds).
    pub fn with_retry_after(&self, mut response: Response) -> Response {
        if let Self::Busy = self {
            let seconds = axum::http::HeaderValue::from(crate::users::PasswordSlots::RETRY_AFTER_SECONDS);
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds);
        }
        response
    }
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::NotFound(_) => Self::NotFound("connection"),
            AuthError::NeedsSignIn { reason, .. } => Self::NeedsSignIn(reason),
            AuthError::Store(error) => {
                tracing::error!(%error, "the token broker's store failed");
                Self::Internal
            }
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// A field's name on the pages, from its API name.
pub fn field_label(field: &str) -> &str {
    match field {
        "name" => "Name",
        "username" => "User name",
        "displayName" | "display_name" => "Full name",
        "password" => "Password",
        "expiresInDays" => "Expires after (days)",
        "company" | "companyId" => "Company filter",
        "tiles" | "tile" => "Tiles",
        "pins" => "Tiles",
        "cursor" => "Page",
        "clientId" => "Application ID",
        "tenant" => "Tenant",
        "cloud" => "Cloud",
        "applicationKey" => "Application key",
        "applicationKeyExpires" => "Application key expires",
        "authorizeUrl" => "Authorize URL",
        "tokenUrl" => "Token URL",
        "apiBase" => "Power BI API URL",
        "kind" => "Kind",
        "location" => "Location",
        "credentialHeader" => "Credential header",
        "clearCredential" => "Remove the stored credential",
        "dataSourceId" => "Data source",
        "source" => "Rows come from",
        "query" => "Query or path",
        "parameters" => "Parameters",
        "pinners" => "Who may pin",
        "columns" => "Columns",
        "value" => "Value column",
        "category" => "Category column",
        "date" => "Date column",
        other => other,
    }
}
