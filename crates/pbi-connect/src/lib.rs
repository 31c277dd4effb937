//! Seeds 002 and 004: apps that connect their own end users' Power BI accounts, and what acts for them. The
//! README lists the modules; the edges in `pbi-server` and the CLI call `apps`.

pub mod app;
pub mod apps;
pub mod connections;
pub mod keys;
pub mod sessions;

pub use app::{AppSpec, CheckedApp, parse_origin, secure_or_local};
pub use keys::{NewSecretKey, SECRET_KEY_PREFIX};

/// Why an app operation did not happen; each case is one a caller acts on differently.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An input is wrong: `field` names it (by its API name), `message` says what to give.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0} was not found")]
    NotFound(String),
    /// The change conflicts with what is stored (a name already taken).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(pbi_store::StoreError),
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.to_owned(), message: message.into() }
    }

    /// The input at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<pbi_store::StoreError> for AppError {
    fn from(error: pbi_store::StoreError) -> Self {
        match error {
            pbi_store::StoreError::NotFound(what) => Self::NotFound(what),
            pbi_store::StoreError::Conflict(why) => Self::Conflict(why),
            other => Self::Store(other),
        }
    }
}
