//! The API's administration operations: the Power BI configuration and pbi-bridge's users.

use super::edge::{Answer, Body, Caller, Ids, Refusals, rfc3339};
use super::edge::{ErrorBody, PowerBiRefusals};
use crate::AppState;
use crate::admin::{self, ConfigInput, KeyState};
use crate::ops;
use crate::problem::Problem;
use crate::registration;
use crate::users::{SignInLock, SignInName};
use axum::extract::State;
use axum::http::StatusCode;
use pbi_store::User;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::{IntoResponses, ToSchema};
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum KeyStatus {
    Missing,
    Valid,
    ExpiresSoon,
    Expired,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyOut {
    status: KeyStatus,
    /// The day the newest key expires (the key itself is never shown again).
    #[schema(format = Date)]
    expires_on: Option<String>,
    message: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PowerBiConfigOut {
    /// Whether a configuration has been saved.
    configured: bool,
    enabled: bool,
    client_id: Option<String>,
    tenant: Option<String>,
    cloud: String,
    authorize_url: Option<String>,
    token_url: Option<String>,
    api_base: Option<String>,
    /// pbi-bridge's own redirect URL, to enter in the Azure portal (Authentication → Web).
    redirect_url: String,
    /// Every redirect URL of the registration, pbi-bridge's own first: a sign-in uses the one on the host the
    /// user reached pbi-bridge at. Each must be among the app's Redirect URIs too.
    redirect_urls: Vec<String>,
    /// The active subscriptions delivering through the registration: what unregistering (`enabled: false`)
    /// pauses, each at its next delivery.
    subscriptions_to_pause: i64,
    /// The delegated Power BI Service permissions to grant, as the Azure portal names them.
    permissions: Vec<String>,
    /// The state of the application key in use.
    application_key: KeyOut,
    /// Every stored application key, the one in use (entered last) first; older ones can be removed.
    application_keys: Vec<KeyInfoOut>,
    /// Whether one Power BI account may be connected for several pbi-bridge users (off: the second is refused).
    allow_shared_accounts: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyInfoOut {
    id: Uuid,
    #[schema(format = Date)]
    expires_on: String,
    #[schema(format = DateTime)]
    entered_at: String,
    /// The key pbi-bridge uses: the one entered last.
    in_use: bool,
}

/// The configuration as the API shows it, read afresh.
async fn current_config(state: &AppState) -> Result<PowerBiConfigOut, Problem> {
    let (registration, key) = admin::config(state).await?;
    let keys = admin::application_keys(state, registration.as_ref()).await?;
    let shared = state.store.shared_accounts_allowed().await.map_err(Problem::store("setting", "reading settings"))?;
    let pausing = match &registration {
        Some(r) => crate::registration::subscriptions_to_pause(state, r).await?,
        None => 0,
    };
    Ok(config_out(state, registration, key, keys, shared, pausing))
}

fn config_out(
    state: &AppState,
    registration: Option<pbi_store::Registration>,
    key: KeyState,
    keys: Vec<pbi_store::SecretInfo>,
    allow_shared_accounts: bool,
    subscriptions_to_pause: i64,
) -> PowerBiConfigOut {
    let d = registration.map(|r| r.details);
    let own = admin::redirect_url(state);
    PowerBiConfigOut {
        configured: d.is_some(),
        enabled: d.as_ref().is_some_and(|d| d.enabled),
        client_id: d.as_ref().map(|d| d.client_id.clone()),
        tenant: d.as_ref().map(|d| d.tenant.clone()),
        cloud: d.as_ref().map_or_else(|| "public".into(), |d| d.cloud.clone()),
        authorize_url: d.as_ref().and_then(|d| d.authorize_url.clone()),
        token_url: d.as_ref().and_then(|d| d.token_url.clone()),
        api_base: d.as_ref().and_then(|d| d.api_base.clone()),
        redirect_urls: d.as_ref().map_or_else(|| vec![own.clone()], |d| d.redirect_urls.clone()),
        redirect_url: own,
        subscriptions_to_pause,
        permissions: admin::PERMISSIONS.iter().map(|p| (*p).to_owned()).collect(),
        application_key: KeyOut {
            status: match key {
                KeyState::Missing => KeyStatus::Missing,
                KeyState::Valid { .. } => KeyStatus::Valid,
                KeyState::ExpiresSoon { .. } => KeyStatus::ExpiresSoon,
                KeyState::Expired { .. } => KeyStatus::Expired,
            },
            expires_on: key.expires_at().map(admin::date),
            message: key.sentence(),
        },
        application_keys: keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| KeyInfoOut { id: k.id, expires_on: admin::date(k.expires_at), entered_at: rfc3339(k.created_at), in_use: i == 0 })
            .collect(),
        allow_shared_accounts,
    }
}

/// The Power BI configuration users connect through. Administrators only.
#[utoipa::path(get, path = "/admin/powerbi", tag = "Administration", operation_id = "getPowerBiConfig",
    responses((status = 200, description = "OK", body = PowerBiConfigOut), Refusals))]
pub(super) async fn get_power_bi_config(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<PowerBiConfigOut>> {
    if !caller.user.is_admin {
        return Err(Problem::AdminOnly.into());
    }
    Ok(axum::Json(current_config(&state).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewKeyIn {
    /// The application key (client secret) value; write-only.
    #[schema(value_type = String, format = Password)]
    value: SecretString,
    /// The key's expiry date as the Azure portal shows it, YYYY-MM-DD.
    #[schema(format = Date)]
    expires_on: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PowerBiConfigIn {
    enabled: bool,
    /// The Application (client) ID, a GUID.
    #[schema(format = Uuid)]
    client_id: String,
    /// The tenant ID or a verified domain (organizations for a multi-tenant app).
    #[schema(
        min_length = 1,
        pattern = r"^\s*[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*\s*$"
    )]
    tenant: String,
    /// public, us-gcc, gcc-high, dod or china.
    #[schema(pattern = r"^(public|us-gcc|gcc-high|dod|china)$")]
    cloud: String,
    /// Entra ID's authorize endpoint, when not the cloud's; an http(s) URL.
    #[schema(pattern = r"^\s*$|^\s*[Hh][Tt][Tt][Pp][Ss]?://")]
    authorize_url: Option<String>,
    /// Entra ID's token endpoint, when not the cloud's; an http(s) URL.
    #[schema(pattern = r"^\s*$|^\s*[Hh][Tt][Tt][Pp][Ss]?://")]
    token_url: Option<String>,
    /// The Power BI REST API's base, when not the cloud's; an http(s) URL.
    #[schema(pattern = r"^\s*$|^\s*[Hh][Tt][Tt][Pp][Ss]?://")]
    api_base: Option<String>,
    /// A new application key; leave out to keep the current one.
    application_key: Option<NewKeyIn>,
    /// Whether one Power BI account may be connected for several pbi-bridge users; leave out to keep it as it is.
    allow_shared_accounts: Option<bool>,
    /// The redirect URLs besides pbi-bridge's own (which stays first), one for each other host pbi-bridge is
    /// reached at: `https://host/oauth/callback` (http for localhost only). Leave out to keep them.
    redirect_urls: Option<Vec<String>>,
}

/// Saves the Power BI configuration. Administrators only. Changing the cloud or an endpoint override (where the
/// application key and users' tokens are sent) needs `applicationKey` in the same request; every change is
/// recorded in the audit log.
#[utoipa::path(put, path = "/admin/powerbi", tag = "Administration", operation_id = "putPowerBiConfig", request_body = PowerBiConfigIn,
    responses((status = 200, description = "OK", body = PowerBiConfigOut), Refusals))]
pub(super) async fn put_power_bi_config(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(config): Body<PowerBiConfigIn>,
) -> Answer<axum::Json<PowerBiConfigOut>> {
    if !caller.user.is_admin {
        return Err(Problem::AdminOnly.into());
    }
    let (secret, secret_expires) = match config.application_key {
        Some(key) => (key.value, key.expires_on),
        None => (SecretString::from(String::new()), String::new()),
    };
    let input = ConfigInput {
        enabled: config.enabled,
        client_id: config.client_id,
        secret,
        secret_expires,
        tenant: config.tenant,
        cloud: config.cloud,
        authorize_url: config.authorize_url.unwrap_or_default(),
        token_url: config.token_url.unwrap_or_default(),
        api_base: config.api_base.unwrap_or_default(),
        allow_shared_accounts: config.allow_shared_accounts,
    };
    let (details, key, shared_accounts) = admin::read_config(&input, &admin::redirect_url(&state)).map_err(|errors| {
        let field = errors.first().map_or("body", |e| e.field);
        Problem::invalid(field, errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" "))
    })?;
    let redirect_urls = config
        .redirect_urls
        .map(|urls| urls.iter().enumerate().map(|(i, url)| registration::parse_redirect_url(&format!("redirectUrls[{i}]"), url)).collect())
        .transpose()?;
    admin::save_config(&state, &caller.user, details, key, shared_accounts, redirect_urls).await?;
    Ok(axum::Json(current_config(&state).await?))
}

#[derive(Serialize, ToSchema)]
pub(super) struct CheckOut {
    name: String,
    /// passed, warning, failed or info.
    outcome: String,
    message: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ValidationOut {
    passed: bool,
    checks: Vec<CheckOut>,
}

/// Removes an older application key; the key in use cannot be removed (enter a new one first). Administrators only.
#[utoipa::path(delete, path = "/admin/powerbi/keys/{id}", tag = "Administration", operation_id = "removeApplicationKey",
    params(("id" = Uuid, Path, description = "The key's id, from applicationKeys")),
    responses((status = 204, description = "Removed"), Refusals,
    (status = 409, description = "The key is the one in use", body = ErrorBody)))]
pub(super) async fn remove_application_key(State(state): State<Arc<AppState>>, caller: Caller, Ids(id): Ids<Uuid>) -> Answer<StatusCode> {
    admin::remove_key(&state, &caller.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the saved configuration with Entra ID (a real token request). Administrators only.
#[utoipa::path(post, path = "/admin/powerbi/validate", tag = "Administration", operation_id = "validatePowerBiConfig",
    responses((status = 200, description = "OK", body = ValidationOut), Refusals, PowerBiRefusals))]
pub(super) async fn validate_power_bi_config(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<ValidationOut>> {
    let validation = admin::validate_config(&state, &caller.user).await?;
    Ok(axum::Json(ValidationOut {
        passed: validation.passed(),
        checks: validation
            .checks
            .into_iter()
            .map(|c| CheckOut { name: c.name.to_owned(), outcome: format!("{:?}", c.outcome).to_lowercase(), message: c.message })
            .collect(),
    }))
}

/// The refusal of operations that hash a password when the server is already hashing or checking as many
/// as it runs at once.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes responses for the OpenAPI document; built by `ApiError`.
pub(super) enum Busy {
    /// Too many passwords are being hashed or checked at once: try again after `Retry-After` seconds.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))]
    Busy(ErrorBody),
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserOut {
    id: Uuid,
    username: String,
    display_name: String,
    is_admin: bool,
    #[schema(format = DateTime)]
    created_at: String,
    /// A disabled user cannot sign in, and their API tokens do not work.
    disabled: bool,
    /// Set while sign-ins with this user name are refused after too many failures (null otherwise); setting a
    /// new password lifts it.
    sign_in_lock: Option<SignInLockOut>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignInLockOut {
    /// When the last of the locks ends.
    #[schema(format = DateTime)]
    until: String,
    /// How many client addresses (IPv6: /64 networks) are refused after 10 failures each within 15 minutes.
    addresses: u64,
    /// Whether every address is refused: 100 failures from anywhere within 15 minutes.
    all_addresses: bool,
}

/// Users as the API shows them, with their sign-in locks as they are now.
fn users_out(state: &AppState, users: Vec<User>) -> Vec<UserOut> {
    let locks = state.sign_in_guard.locks(state.clock.unix());
    users.into_iter().map(|u| user_with(&locks, u)).collect()
}

fn user_out(state: &AppState, user: User) -> UserOut {
    user_with(&state.sign_in_guard.locks(state.clock.unix()), user)
}

fn user_with(locks: &HashMap<String, SignInLock>, u: User) -> UserOut {
    let lock = SignInName::parse(&u.username).ok().and_then(|name| locks.get(name.as_str()).copied());
    UserOut {
        id: u.id,
        username: u.username,
        display_name: u.display_name,
        is_admin: u.is_admin,
        created_at: rfc3339(u.created_at),
        disabled: u.disabled_at.is_some(),
        sign_in_lock: lock.map(|l| SignInLockOut {
            until: rfc3339(l.until),
            addresses: u64::try_from(l.addresses).unwrap_or(u64::MAX),
            all_addresses: l.all_addresses,
        }),
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct UserList {
    users: Vec<UserOut>,
}

/// pbi-bridge's users. Administrators only.
#[utoipa::path(get, path = "/admin/users", tag = "Administration", operation_id = "listUsers",
    responses((status = 200, description = "OK", body = UserList), Refusals))]
pub(super) async fn list_users(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<UserList>> {
    let users = ops::users(&state, &caller.user).await?;
    Ok(axum::Json(UserList { users: users_out(&state, users) }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewUserIn {
    /// 1 to 64 letters, digits and `. _ @ -`.
    #[schema(pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    username: String,
    /// Shown in the pages (at most 100 characters on one line); the user name when left out.
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^\s*[^\u0000-\u001f\u007f-\u009f]*\s*$")]
    display_name: String,
    /// At least 10 characters; write-only.
    #[schema(value_type = String, format = Password, min_length = 10)]
    password: SecretString,
    #[serde(default)]
    is_admin: bool,
}

/// Adds a pbi-bridge user who signs in with this user name and password. Administrators only.
#[utoipa::path(post, path = "/admin/users", tag = "Administration", operation_id = "createUser", request_body = NewUserIn,
    responses((status = 201, description = "Created", body = UserOut), Refusals, Busy))]
pub(super) async fn create_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(new): Body<NewUserIn>,
) -> Answer<(StatusCode, axum::Json<UserOut>)> {
    let new = ops::NewUser { username: &new.username, display_name: &new.display_name, password: &new.password, is_admin: new.is_admin };
    let user = ops::create_user(&state, &caller.user, new).await?;
    Ok((StatusCode::CREATED, axum::Json(user_out(&state, user))))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UserChange {
    /// true: the user can no longer sign in (their sessions end, their API tokens stop); false: they can again.
    disabled: Option<bool>,
    /// A new password (at least 10 characters; write-only); the user's sessions end.
    #[schema(value_type = Option<String>, format = Password, min_length = 10)]
    password: Option<SecretString>,
}

/// Disables or enables a user, or sets their password. Administrators only; an administrator cannot disable themself.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "Administration", operation_id = "updateUser", request_body = UserChange,
    params(("id" = Uuid, Path, description = "The user's id")), responses((status = 200, description = "OK", body = UserOut), Refusals,
    (status = 409, description = "An administrator tried to disable their own account", body = ErrorBody), Busy))]
pub(super) async fn update_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(change): Body<UserChange>,
) -> Answer<axum::Json<UserOut>> {
    if !caller.user.is_admin {
        return Err(Problem::AdminOnly.into());
    }
    if change.disabled.is_none() && change.password.is_none() {
        return Err(Problem::invalid("body", "Send disabled, password or both.").into());
    }
    // Refuse what would fail before changing anything, so a refused request changes nothing.
    if change.disabled == Some(true) && id == caller.user.id {
        return Err(Problem::Conflict("You cannot disable your own account: ask another administrator.".into()).into());
    }
    if change.password.as_ref().is_some_and(|p| p.expose_secret().chars().count() < crate::users::MIN_PASSWORD_CHARS) {
        return Err(
            Problem::invalid("password", format!("A password needs at least {} characters.", crate::users::MIN_PASSWORD_CHARS)).into()
        );
    }
    let mut user = None;
    if let Some(password) = &change.password {
        user = Some(ops::set_password(&state, &caller.user, id, password).await?);
    }
    if let Some(disabled) = change.disabled {
        user = Some(ops::set_user_disabled(&state, &caller.user, id, disabled).await?);
    }
    Ok(axum::Json(user_out(&state, user.ok_or(Problem::NotFound("user"))?)))
}
