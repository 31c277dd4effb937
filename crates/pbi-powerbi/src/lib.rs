//! A typed, well-behaved client for the Power BI REST API: models, paging, errors, retries, token refresh.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pbi_powerbi::PowerBiError> {
//! use pbi_powerbi::{Cloud, PowerBiClient, StaticToken, AccessToken, Page, Workspace};
//! use std::sync::Arc;
//! let client = PowerBiClient::new(&Cloud::Public, Arc::new(StaticToken(AccessToken::new("eyJ..."))));
//! for group in client.groups(Some("contains(name,'sales')"), Page::default()).await? {
//!     let dashboards = client.dashboards(Workspace::Group(group.id)).await?;
//!     println!("{}: {} dashboards", group.name, dashboards.len());
//! }
//! # Ok(()) }
//! ```

mod admin;
mod api;
mod client;
mod cloud;
mod error;
mod forward;
pub mod models;
mod push;
mod raw;
mod retry;
mod token;

pub use admin::{Import, NameConflict, ScanOptions, ScanStatus};
pub use api::{CloneTarget, Page, Top, Workspace};
pub use client::{Answer, Body, Observer, Part, PowerBiClient, Request, classify};
pub use cloud::Cloud;
pub use error::{ErrorKind, PowerBiError, Result};
pub use forward::{Forward, ForwardBody};
pub use push::{MAX_ROWS_PER_REQUEST, MAX_STRING_CHARS, PushSummary, Row, RowChecker, is_datetime};
pub use raw::{ApiPath, RawBody, RawRequest, RawResponse, ResponseType};
pub use retry::{Backoff, Decision, RetryOn, RetryPolicy, Sleep, TokioSleep};
pub use token::{AccessToken, CallbackToken, ClientCredentials, ClientSecret, StaticToken, TokenError, TokenSource, entra_error};
