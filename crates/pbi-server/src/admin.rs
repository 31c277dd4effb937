//! The administrator's "Power BI configuration" page: the registration users connect through.

use crate::AppState;
use crate::connect::active_registration;
use crate::frame::Message;
use crate::pages::render;
use crate::problem::Problem;
use crate::session::{self, Flash, SignedIn};
use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use pbi_auth::Validation;
use pbi_store::{NewAuditEntry, NewRegistration, Registration, User};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;

const REGISTRATION_NAME: &str = "Power BI";
const CLOUDS: &[&str] = &["public", "us-gcc", "gcc-high", "dod", "china"];
/// The delegated permissions pbi-bridge asks for, as the Azure portal lists them (offline_access, to stay
/// connected, is added to the scopes): seed 000's, and seed 001's writes (a pin clones a tile onto a dashboard,
/// Dashboard.ReadWrite.All; removing a pin deletes its report, Report.ReadWrite.All; an administrator creates
/// the templates workspace, Workspace.ReadWrite.All).
pub const PERMISSIONS: &[&str] = &[
    "Content.Create",
    "Dashboard.Read.All",
    "Dashboard.ReadWrite.All",
    "Dataset.Read.All",
    "Dataset.ReadWrite.All",
    "Report.Read.All",
    "Report.ReadWrite.All",
    "Workspace.Read.All",
    "Workspace.ReadWrite.All",
];

/// The scopes a registration asks for unless told otherwise: `PERMISSIONS` and `offline_access`.
pub fn default_scopes() -> Vec<String> {
    PERMISSIONS.iter().copied().chain(["offline_access"]).map(str::to_owned).collect()
}

#[derive(Template)]
#[template(path = "admin_powerbi.html")]
struct ConfigPage<'a> {
    csrf: &'a str,
    enabled: bool,
    client_id: String,
    tenant: String,
    cloud: String,
    authorize_url: String,
    token_url: String,
    api_base: String,
    secret_state: String,
    redirect_url: String,
    clouds: &'static [&'static str],
    permissions: &'static [&'static str],
    secret_expires: String,
    errors: Vec<String>,
    /// Each field's problem, next to the field.
    fe: FieldErrors,
    checks: Vec<(String, String, String)>,
    keys: Vec<KeyRow>,
    shared_accounts: bool,
    /// The saved registration's details (Update Registration, Unregister), once there is one.
    registration: Option<RegistrationView>,
}

/// The registration as seed 001's Update Registration shows it.
struct RegistrationView {
    tenant: String,
    client_id: String,
    registered: bool,
    /// Each redirect URL, and whether it is pbi-bridge's own (which stays).
    redirect_urls: Vec<(String, bool)>,
    /// The active subscriptions unregistering would pause.
    pausing: i64,
}

/// The problem of each field of the form, by the form's field.
#[derive(Default)]
struct FieldErrors {
    client_id: Option<String>,
    secret: Option<String>,
    secret_expires: Option<String>,
    tenant: Option<String>,
    cloud: Option<String>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    api_base: Option<String>,
}

impl FieldErrors {
    fn of(errors: &[FieldError]) -> Self {
        let mut fe = Self::default();
        for e in errors {
            let slot = match e.field {
                "clientId" => &mut fe.client_id,
                "applicationKey" => &mut fe.secret,
                "applicationKeyExpires" => &mut fe.secret_expires,
                "tenant" => &mut fe.tenant,
                "cloud" => &mut fe.cloud,
                "authorizeUrl" => &mut fe.authorize_url,
                "tokenUrl" => &mut fe.token_url,
                "apiBase" => &mut fe.api_base,
                _ => continue,
            };
            *slot = Some(e.message.clone());
        }
        fe
    }
}

/// The form as it was sent (never the key), shown again with its problems.
struct Typed {
    enabled: bool,
    client_id: String,
    secret_expires: String,
    tenant: String,
    cloud: String,
    authorize_url: String,
    token_url: String,
    api_base: String,
    shared_accounts: bool,
}

impl Typed {
    fn of(form: &ConfigForm) -> Self {
        Self {
            enabled: form.enabled.as_deref() == Some("true"),
            client_id: form.client_id.clone(),
            secret_expires: form.secret_expires.clone(),
            tenant: form.tenant.clone(),
            cloud: form.cloud.clone(),
            authorize_url: form.authorize_url.clone(),
            token_url: form.token_url.clone(),
            api_base: form.api_base.clone(),
            shared_accounts: form.allow_shared_accounts.as_deref() == Some("true"),
        }
    }
}

/// One application key as the page lists it (never its value).
struct KeyRow {
    id: uuid::Uuid,
    /// HTML `<time>`s (`frame::When`).
    expires_on: String,
    added_on: String,
    /// "expires in 29 days".
    expires_in: String,
    in_use: bool,
}

pub(crate) fn forbidden() -> Response {
    Problem::Forbidden("Only administrators can change the Power BI configuration.".into()).page()
}

pub(crate) fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map(|t| t.date().to_string()).unwrap_or_default()
}

async fn page(
    state: &AppState,
    signed_in: &pbi_store::Session,
    status: StatusCode,
    errors: Vec<FieldError>,
    typed: Option<Typed>,
) -> Response {
    let (registration, key) = match config(state).await {
        Ok(found) => found,
        Err(problem) => return problem.page(),
    };
    let secret_state = key.sentence();
    let now = state.clock.unix();
    let keys = match application_keys(state, registration.as_ref()).await {
        Ok(keys) => keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| KeyRow {
                id: k.id,
                expires_on: crate::frame::when_html(crate::frame::When::day(k.expires_at)),
                added_on: crate::frame::when_html(crate::frame::When::at(k.created_at)),
                expires_in: if k.expires_at > now {
                    format!("expires {}", crate::frame::relative(k.expires_at, now))
                } else {
                    "expired".into()
                },
                in_use: i == 0,
            })
            .collect(),
        Err(problem) => return problem.page(),
    };
    let shared_accounts = match state.store.shared_accounts_allowed().await {
        Ok(allowed) => allowed,
        Err(error) => return Problem::store("setting", "reading settings")(error).page(),
    };
    let view = match &registration {
        Some(r) => match crate::registration::subscriptions_to_pause(state, r).await {
            Ok(pausing) => Some(registration_view(state, r, pausing)),
            Err(problem) => return problem.page(),
        },
        None => None,
    };
    let d = registration.as_ref().map(|r| r.details.clone());
    let saved = Typed {
        enabled: d.as_ref().is_none_or(|d| d.enabled),
        client_id: d.as_ref().map(|d| d.client_id.clone()).unwrap_or_default(),
        secret_expires: String::new(),
        tenant: d.as_ref().map(|d| d.tenant.clone()).unwrap_or_default(),
        cloud: d.as_ref().map_or_else(|| "public".into(), |d| d.cloud.clone()),
        authorize_url: d.as_ref().and_then(|d| d.authorize_url.clone()).unwrap_or_default(),
        token_url: d.as_ref().and_then(|d| d.token_url.clone()).unwrap_or_default(),
        api_base: d.as_ref().and_then(|d| d.api_base.clone()).unwrap_or_default(),
        shared_accounts,
    };
    let shown = typed.unwrap_or(saved);
    render(
        status,
        &ConfigPage {
            csrf: &signed_in.csrf_token,
            enabled: shown.enabled,
            client_id: shown.client_id,
            tenant: shown.tenant,
            cloud: shown.cloud,
            authorize_url: shown.authorize_url,
            token_url: shown.token_url,
            api_base: shown.api_base,
            secret_expires: shown.secret_expires,
            secret_state,
            redirect_url: redirect_url(state),
            clouds: CLOUDS,
            permissions: PERMISSIONS,
            fe: FieldErrors::of(&errors),
            errors: errors.into_iter().map(|e| e.message).collect(),
            checks: crate::frame::flash_checks(),
            keys,
            shared_accounts: shown.shared_accounts,
            registration: view,
        },
    )
}

fn registration_view(state: &AppState, registration: &Registration, pausing: i64) -> RegistrationView {
    let own = redirect_url(state);
    let d = &registration.details;
    RegistrationView {
        tenant: d.tenant.clone(),
        client_id: d.client_id.clone(),
        registered: d.enabled,
        redirect_urls: d.redirect_urls.iter().map(|u| (u.clone(), *u == own)).collect(),
        pausing,
    }
}

/// Back to the configuration page with a message bar (Post/Redirect/Get).
fn back(state: &AppState, session: &pbi_store::Session, flash: Flash) -> Response {
    session::done(state, session, "/admin/powerbi", flash)
}

/// The registration's application keys, the one in use (entered last) first.
pub(crate) async fn application_keys(state: &AppState, registration: Option<&Registration>) -> Result<Vec<pbi_store::SecretInfo>, Problem> {
    match registration {
        Some(r) => state.store.secrets(r.id).await.map_err(Problem::store("registration", "reading application keys")),
        None => Ok(Vec::new()),
    }
}

/// Where the application key stands, for the page, the API and the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyState {
    Missing,
    Valid { expires_at: i64 },
    ExpiresSoon { expires_at: i64 },
    Expired { expires_at: i64 },
}

impl KeyState {
    pub(crate) fn of(newest_expiry: Option<i64>, now: i64) -> Self {
        match newest_expiry {
            None => Self::Missing,
            Some(expires_at) if expires_at <= now => Self::Expired { expires_at },
            Some(expires_at) if expires_at - now < pbi_auth::SECRET_WARNING_DAYS * 86_400 => Self::ExpiresSoon { expires_at },
            Some(expires_at) => Self::Valid { expires_at },
        }
    }

    pub(crate) fn expires_at(self) -> Option<i64> {
        match self {
            Self::Missing => None,
            Self::Valid { expires_at } | Self::ExpiresSoon { expires_at } | Self::Expired { expires_at } => Some(expires_at),
        }
    }

    pub(crate) fn sentence(self) -> String {
        match self {
            Self::Missing => "No application key is set.".into(),
            Self::Expired { expires_at } => format!(
                "The application key expired on {}: create a new one in Certificates & secrets and enter it here.",
                date(expires_at)
            ),
            Self::ExpiresSoon { expires_at } => format!(
                "Warning: the application key expires on {} — create a new one in Certificates & secrets before then.",
                date(expires_at)
            ),
            Self::Valid { expires_at } => format!("An application key is set; it expires on {}.", date(expires_at)),
        }
    }
}

/// The state of the application key in use for `registration` (missing when there is no registration).
pub(crate) async fn key_state(store: &pbi_store::Store, now: i64, registration: Option<&Registration>) -> Result<KeyState, Problem> {
    let newest = match registration {
        Some(r) => store.secrets(r.id).await.map_err(Problem::store("registration", "reading secrets"))?.first().map(|s| s.expires_at),
        None => None,
    };
    Ok(KeyState::of(newest, now))
}

/// The Power BI configuration as it stands: its registration (if any) and its key's state.
pub(crate) async fn config(state: &AppState) -> Result<(Option<Registration>, KeyState), Problem> {
    let registration = active_registration_any(state).await.map_err(Problem::store("registration", "reading the registration"))?;
    let key = key_state(&state.store, state.clock.unix(), registration.as_ref()).await?;
    Ok((registration, key))
}

pub(crate) fn redirect_url(state: &AppState) -> String {
    format!("{}/oauth/callback", state.base_url)
}

/// The registration this page edits: the active one, else any not removed (a disabled one stays editable).
pub(crate) async fn active_registration_any(state: &AppState) -> pbi_store::Result<Option<Registration>> {
    if let Some(active) = active_registration(state).await? {
        return Ok(Some(active));
    }
    Ok(state.store.registrations(false).await?.into_iter().min_by_key(|r| r.created_at))
}

pub async fn show(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    if !session.user.is_admin {
        return forbidden();
    }
    page(&state, &session, StatusCode::OK, Vec::new(), None).await
}

#[derive(Deserialize)]
pub struct ConfigForm {
    csrf: String,
    #[serde(default)]
    enabled: Option<String>,
    client_id: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    secret_expires: String,
    tenant: String,
    cloud: String,
    #[serde(default)]
    authorize_url: String,
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    api_base: String,
    #[serde(default)]
    allow_shared_accounts: Option<String>,
}

/// The configuration as entered, on the page or through the API; `read_config` checks it.
pub(crate) struct ConfigInput {
    pub enabled: bool,
    pub client_id: String,
    /// A new application key (empty: keep the current one) and its expiry date, YYYY-MM-DD.
    pub secret: SecretString,
    pub secret_expires: String,
    pub tenant: String,
    pub cloud: String,
    pub authorize_url: String,
    pub token_url: String,
    pub api_base: String,
    /// Whether one Power BI account may be connected for several pbi-bridge users; `None` leaves it as it is.
    pub allow_shared_accounts: Option<bool>,
}

impl From<ConfigForm> for ConfigInput {
    fn from(form: ConfigForm) -> Self {
        Self {
            enabled: form.enabled.as_deref() == Some("true"),
            client_id: form.client_id,
            secret: SecretString::from(form.secret),
            secret_expires: form.secret_expires,
            tenant: form.tenant,
            cloud: form.cloud,
            authorize_url: form.authorize_url,
            token_url: form.token_url,
            api_base: form.api_base,
            // A checkbox that is not ticked is not sent at all.
            allow_shared_accounts: Some(form.allow_shared_accounts.as_deref() == Some("true")),
        }
    }
}

/// A problem with one field of the configuration: the field's API name and the sentence for the page.
pub(crate) struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// A new application key and its expiry (Unix seconds).
pub(crate) struct NewKey {
    value: SecretString,
    expires_at: i64,
}

/// Reads the configuration into a registration and maybe a new key; every problem is named by its field.
pub(crate) fn read_config(
    input: &ConfigInput,
    redirect_url: &str,
) -> Result<(NewRegistration, Option<NewKey>, Option<bool>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut problem = |field: &'static str, message: String| errors.push(FieldError { field, message });
    let client_id = input.client_id.trim();
    if uuid::Uuid::parse_str(client_id).is_err() {
        problem(
            "clientId",
            "Application ID: enter the Application (client) ID, a GUID such as 8b7e587d-8d90-4e61-95a3-cfe6461aa03e.".into(),
        );
    }
    if input.tenant.trim().is_empty() {
        problem("tenant", "Tenant: enter the tenant ID or a verified domain (or organizations for a multi-tenant app).".into());
    }
    if !CLOUDS.contains(&input.cloud.as_str()) {
        problem("cloud", format!("Cloud: choose one of {}.", CLOUDS.join(", ")));
    }
    let mut url = |field: &'static str, label: &str, text: &str| {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        match url::Url::parse(text) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Some(text.to_owned()),
            _ => {
                problem(field, format!("{label}: enter an http(s) URL, or leave it empty to use the cloud's."));
                None
            }
        }
    };
    let authorize_url = url("authorizeUrl", "Authorize URL", &input.authorize_url);
    let token_url = url("tokenUrl", "Token URL", &input.token_url);
    let api_base = url("apiBase", "Power BI API URL", &input.api_base);
    let secret = input.secret.expose_secret().trim();
    let new_secret = if secret.is_empty() {
        None
    } else {
        match time::Date::parse(input.secret_expires.trim(), time::macros::format_description!("[year]-[month]-[day]")) {
            Ok(day) => {
                Some(NewKey { value: SecretString::from(secret.to_owned()), expires_at: day.midnight().assume_utc().unix_timestamp() })
            }
            Err(_) => {
                problem(
                    "applicationKeyExpires",
                    "Application key expires: enter the key's expiry date as YYYY-MM-DD (the Azure portal shows it next to the key)."
                        .into(),
                );
                None
            }
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let scopes = default_scopes();
    Ok((
        NewRegistration {
            name: REGISTRATION_NAME.into(),
            client_id: client_id.to_owned(),
            tenant: input.tenant.trim().to_owned(),
            cloud: input.cloud.clone(),
            redirect_urls: vec![redirect_url.to_owned()],
            scopes,
            authorize_url,
            token_url,
            api_base,
            enabled: input.enabled,
        },
        new_secret,
        input.allow_shared_accounts,
    ))
}

/// The fields that decide where the application key and users' tokens are sent.
fn destinations(d: &NewRegistration) -> [(&'static str, Option<&str>); 4] {
    [
        ("cloud", Some(d.cloud.as_str())),
        ("authorizeUrl", d.authorize_url.as_deref()),
        ("tokenUrl", d.token_url.as_deref()),
        ("apiBase", d.api_base.as_deref()),
    ]
}

/// The settings an administrator sees, by their API names, for the audit log (no secret is among them).
fn audited_fields(d: &NewRegistration) -> Vec<(&'static str, serde_json::Value)> {
    let mut fields = vec![
        ("enabled", serde_json::Value::Bool(d.enabled)),
        ("clientId", d.client_id.clone().into()),
        ("tenant", d.tenant.clone().into()),
        ("redirectUrls", d.redirect_urls.clone().into()),
    ];
    fields.extend(destinations(d).into_iter().map(|(name, value)| (name, value.map_or(serde_json::Value::Null, Into::into))));
    fields
}

/// The audit entries for saving `new` over `old` (`None`: the first save), with a new key or not.
fn config_changes(
    admin: &User,
    target: &str,
    old: Option<&NewRegistration>,
    new: &NewRegistration,
    key: Option<&NewKey>,
) -> Vec<NewAuditEntry> {
    let entry = |action: &str, old_value: Option<String>, new_value: Option<String>| NewAuditEntry {
        actor: admin.username.clone(),
        action: action.into(),
        target: target.into(),
        old_value,
        new_value,
    };
    let after = audited_fields(new);
    let mut entries = Vec::new();
    match old {
        None => entries.push(entry("powerbi.configuration.created", None, Some(json_object(&after)))),
        Some(old) => {
            let before = audited_fields(old);
            let changed: Vec<usize> = (0..after.len()).filter(|&i| before[i].1 != after[i].1).collect();
            if !changed.is_empty() {
                let pick = |fields: &[(&'static str, serde_json::Value)]| {
                    json_object(&changed.iter().map(|&i| fields[i].clone()).collect::<Vec<_>>())
                };
                let moved = destinations(old) != destinations(new);
                let action = if moved { "powerbi.endpoints.changed" } else { "powerbi.configuration.changed" };
                entries.push(entry(action, Some(pick(&before)), Some(pick(&after))));
            }
        }
    }
    if let Some(key) = key {
        entries.push(entry("powerbi.key.added", None, Some(format!("a new application key, expiring {}", date(key.expires_at)))));
    }
    entries
}

fn json_object(fields: &[(&'static str, serde_json::Value)]) -> String {
    serde_json::Value::Object(fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()).to_string()
}

/// Saves the configuration users connect through (creating its registration the first time), and the new key
/// if any, with its audit entries. Changing where the key and users' tokens are sent needs the key again.
/// `redirect_urls`: the redirect URLs besides pbi-bridge's own (`None` keeps the saved ones). How many paused
/// subscriptions resumed (the save made the registration usable again).
pub(crate) async fn save_config(
    state: &AppState,
    admin: &User,
    mut details: NewRegistration,
    key: Option<NewKey>,
    shared_accounts: Option<bool>,
    redirect_urls: Option<Vec<String>>,
) -> Result<usize, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    let existing = active_registration_any(state).await.map_err(Problem::store("registration", "reading the registration"))?;
    let saved_urls = existing.as_ref().map(|e| e.details.redirect_urls.clone()).unwrap_or_default();
    for url in redirect_urls.unwrap_or(saved_urls) {
        if !details.redirect_urls.contains(&url) {
            details.redirect_urls.push(url);
        }
    }
    if let Some(existing) = &existing {
        details.name = existing.details.name.clone();
        // Otherwise an administrator could send the stored key (or users' tokens) to a server of their choosing
        // without ever knowing the key.
        let has_key = !application_keys(state, Some(existing)).await?.is_empty();
        if has_key && key.is_none() && destinations(&existing.details) != destinations(&details) {
            return Err(Problem::invalid(
                "applicationKey",
                "Changing where pbi-bridge sends the application key and your users' tokens (Cloud, Authorize URL, Token URL, Power BI API URL) needs the application key entered again in the same save: enter it, with its expiry date, and save again.",
            ));
        }
    }
    let resumed = store_config(state, admin, existing.as_ref(), &details, key.as_ref()).await?;
    if let Some(allowed) = shared_accounts {
        save_shared_accounts(state, admin, allowed).await?;
    }
    tracing::info!(admin = %admin.username, "saved the Power BI configuration");
    Ok(resumed)
}

/// What every change of the configuration ends with: its audit entries, the save, and, when the save made
/// the registration usable again (enabled, or a new key), the subscriptions it paused scheduled again and
/// delivering now. How many resumed.
pub(crate) async fn store_config(
    state: &AppState,
    admin: &User,
    existing: Option<&Registration>,
    details: &NewRegistration,
    key: Option<&NewKey>,
) -> Result<usize, Problem> {
    let now = state.clock.unix();
    let audit = config_changes(admin, &details.name, existing.map(|e| &e.details), details, key);
    let saved = state
        .store
        .save_registration(existing.map(|e| e.id), details, key.map(|k| (&k.value, k.expires_at)), &audit, now)
        .await
        .map_err(Problem::store("registration", "saving the Power BI configuration"))?;
    let usable_again = details.enabled && existing.is_some_and(|e| !e.details.enabled || key.is_some());
    if !usable_again {
        return Ok(0);
    }
    match pbi_subscriptions::pins::resume_after_registration_usable(&state.store, &state.jobs, saved.id, now).await {
        Ok(resumed) => Ok(resumed.len()),
        Err(error) => {
            // The save stands; the subscriptions stay paused, and resume at their owner's next sign-in.
            tracing::error!(%error, "resuming the subscriptions the registration paused");
            Ok(0)
        }
    }
}

/// "N paused subscriptions resumed", for the message after a save.
pub(crate) fn resumed_sentence(resumed: usize) -> String {
    match resumed {
        0 => String::new(),
        1 => " 1 paused subscription resumed and is delivering now.".into(),
        n => format!(" {n} paused subscriptions resumed and are delivering now."),
    }
}

/// Whether one Power BI account may be connected for several pbi-bridge users, changed with its audit entry.
async fn save_shared_accounts(state: &AppState, admin: &User, allowed: bool) -> Result<(), Problem> {
    let store_problem = Problem::store("setting", "saving a setting");
    let before = state.store.shared_accounts_allowed().await.map_err(Problem::store("setting", "reading settings"))?;
    if before == allowed {
        return Ok(());
    }
    let word = |on: bool| if on { "allowed" } else { "not allowed" }.to_owned();
    let entry = NewAuditEntry {
        actor: admin.username.clone(),
        action: "connections.shared_accounts.changed".into(),
        target: "one Power BI account for several users".into(),
        old_value: Some(word(before)),
        new_value: Some(word(allowed)),
    };
    state.store.set_shared_accounts_allowed(allowed, &[entry], state.clock.unix()).await.map_err(store_problem)
}

/// Forgets an older application key (the one in use stays until another is entered).
pub(crate) async fn remove_key(state: &AppState, admin: &User, key: uuid::Uuid) -> Result<(), Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    let Some(registration) = active_registration_any(state).await.map_err(Problem::store("registration", "reading the registration"))?
    else {
        return Err(Problem::NotFound("application key"));
    };
    let removed = application_keys(state, Some(&registration)).await?.into_iter().find(|k| k.id == key);
    let Some(removed) = removed else { return Err(Problem::NotFound("application key")) };
    state.store.remove_secret(registration.id, key).await.map_err(|e| match e {
        pbi_store::StoreError::Conflict(message) => Problem::Conflict(format!("{}.", crate::ops::capitalised(&message))),
        other => Problem::store("application key", "removing an application key")(other),
    })?;
    let entry = NewAuditEntry {
        actor: admin.username.clone(),
        action: "powerbi.key.removed".into(),
        target: registration.details.name.clone(),
        old_value: Some(format!("an application key expiring {}", date(removed.expires_at))),
        new_value: None,
    };
    crate::ops::record_audit(state, entry).await;
    Ok(())
}

/// Checks the configuration with Entra ID, as the Validate button does.
pub(crate) async fn validate_config(state: &AppState, admin: &User) -> Result<Validation, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    let Some(registration) = active_registration_any(state).await.map_err(Problem::store("registration", "reading the registration"))?
    else {
        return Err(Problem::Conflict("Save a configuration first.".into()));
    };
    state.auth.validate(registration.id, Some(&redirect_url(state))).await.map_err(|e| Problem::Unavailable(e.to_string()))
}

pub async fn save(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<ConfigForm>) -> Response {
    if !session.user.is_admin {
        return forbidden();
    }
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    let typed = Typed::of(&form);
    let (details, key, shared_accounts) = match read_config(&form.into(), &redirect_url(&state)) {
        Ok(parsed) => parsed,
        Err(errors) => return page(&state, &session, StatusCode::BAD_REQUEST, errors, Some(typed)).await,
    };
    match save_config(&state, &session.user, details, key, shared_accounts, None).await {
        Ok(resumed) => {
            let message = format!("Saved. Validate to check it with Entra ID.{}", resumed_sentence(resumed));
            back(&state, &session, Flash::message(Message::success(message)))
        }
        Err(Problem::Invalid { message, .. }) => {
            let errors = vec![FieldError { field: "applicationKey", message }];
            page(&state, &session, StatusCode::BAD_REQUEST, errors, Some(typed)).await
        }
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct RemoveKeyForm {
    csrf: String,
}

pub async fn remove_key_form(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    axum::extract::Path(key): axum::extract::Path<uuid::Uuid>,
    Form(form): Form<RemoveKeyForm>,
) -> Response {
    if !session.user.is_admin {
        return forbidden();
    }
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    match remove_key(&state, &session.user, key).await {
        Ok(()) => back(&state, &session, Flash::message(Message::success("Removed the older application key."))),
        Err(Problem::Conflict(message)) => back(&state, &session, Flash::message(Message::error(message))),
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn validate(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<CsrfOnly>) -> Response {
    if !session.user.is_admin {
        return forbidden();
    }
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    match validate_config(&state, &session.user).await {
        Ok(validation) => {
            let checks = validation
                .checks
                .iter()
                .map(|c| (c.name.to_owned(), format!("{:?}", c.outcome).to_lowercase(), c.message.clone()))
                .collect();
            let message = if validation.passed() {
                Message::success("The configuration works. The first user who clicks Get started and accepts completes it.")
            } else {
                Message::warning("Fix the failed checks below.")
            };
            back(&state, &session, Flash { messages: vec![message], new_token: None, checks })
        }
        Err(Problem::Conflict(message) | Problem::Unavailable(message)) => back(&state, &session, Flash::message(Message::error(message))),
        Err(problem) => problem.page(),
    }
}
