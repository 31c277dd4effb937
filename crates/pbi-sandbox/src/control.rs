//! Test control under `/_sandbox/`: the clock, faults, the request log, the directory, and content commands.
//! The demo seed is built from the same commands, so what a test can set up is what the seed shows.

use crate::faults::FaultRule;
use crate::model::{
    App, ClientSecret, Dashboard, Dataset, Grant, PushState, Report, Retention, SecurityGroup, ServicePrincipal, Tenant, TenantKind,
    TenantSettings, Tile, User, Visual, Workspace, WorkspaceRole, World,
};
use crate::{Shared, ids, push};
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use pbi_clock::Clock;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

pub fn routes(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    let controls = Router::new()
        .route("/_sandbox/seed", get(seed))
        .route("/_sandbox/clock", get(clock))
        .route("/_sandbox/clock/advance", post(advance_clock))
        .route("/_sandbox/faults", get(list_faults).post(add_fault).delete(clear_faults))
        .route("/_sandbox/requests", get(list_requests).delete(clear_requests))
        .route("/_sandbox/commands", post(command))
        .route("/_sandbox/push-limits", put(push_limits))
        .route("/_sandbox/datasets/{datasetId}/tables/{tableName}/rows", get(table_rows))
        .route_layer(axum::middleware::from_fn_with_state(shared, refuse_cross_site_changes));
    // The callback changes nothing, and Entra's form_post answer arrives there as a form: left unguarded.
    controls.route("/_sandbox/callback", get(callback).post(callback_form)).route("/_sandbox/copy.js", get(copy_script))
}

/// The callback page's one script, a file of its own so that the page runs no inline script (its
/// Content-Security-Policy allows scripts from the sandbox only): a `button[data-copy]` copies the text of the
/// element it names, and selects it too, so that Ctrl-C works where the clipboard API is not allowed.
const COPY_SCRIPT: &str = r#"// The sandbox callback page's Copy buttons.
for (const button of document.querySelectorAll("button[data-copy]")) {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const target = document.getElementById(button.dataset.copy);
    if (!target) return;
    const range = document.createRange();
    range.selectNodeContents(target);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      await navigator.clipboard.writeText(target.textContent);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Selected: press Ctrl-C";
    }
  });
}
"#;

async fn copy_script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], COPY_SCRIPT).into_response()
}

/// The control API is unauthenticated, so a web page on any site could otherwise reconfigure a developer's
/// running sandbox with a "simple" cross-origin request (a form, or `fetch` with `text/plain`), which
/// browsers send without asking first. A change must therefore be JSON (which a cross-origin page can only
/// send after a CORS preflight, which the sandbox never grants) and, when the browser names an `Origin`,
/// come from the sandbox's own pages. Scripts, curl and tests send no `Origin` and are unaffected.
async fn refuse_cross_site_changes(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD {
        return next.run(request).await;
    }
    let own = origin_of(&shared.base_url);
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        if !origin.eq_ignore_ascii_case(&own) {
            let message = format!(
                "Origin: '{origin}' is not the sandbox's own origin ({own}). The /_sandbox/ control API refuses changes from other sites' pages; scripts send no Origin header."
            );
            return (StatusCode::FORBIDDEN, Json(json!({"error": message}))).into_response();
        }
    }
    if method == Method::POST || method == Method::PUT {
        let content_type = request.headers().get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let essence = content_type.as_deref().and_then(|v| v.split(';').next()).map(str::trim);
        if !essence.is_some_and(|e| e.eq_ignore_ascii_case("application/json")) {
            let message = format!(
                "Content-Type: the /_sandbox/ control API takes a JSON body sent as 'Content-Type: application/json'; this request sent {}.",
                content_type.map_or_else(|| "none".to_owned(), |v| format!("'{v}'"))
            );
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(json!({"error": message}))).into_response();
        }
    }
    next.run(request).await
}

/// `scheme://host[:port]` of a URL as a browser writes it in `Origin`: lower case, no default port, no path.
pub(crate) fn origin_of(url: &str) -> String {
    let url = url.to_ascii_lowercase();
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url.as_str()));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    format!("{scheme}://{authority}")
}

/// A redirect URI for people trying the sandbox by hand: shows the code it received and how to redeem it.
async fn callback(State(shared): State<Arc<Shared>>, Query(params): Query<Vec<(String, String)>>) -> Response {
    callback_page(&shared, &params)
}

async fn callback_form(
    State(shared): State<Arc<Shared>>,
    axum::extract::Form(params): axum::extract::Form<Vec<(String, String)>>,
) -> Response {
    callback_page(&shared, &params)
}

fn callback_page(shared: &Shared, params: &[(String, String)]) -> Response {
    use crate::pages::esc;
    // A field the redirect did not carry, or carried empty, is not shown at all.
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty());
    let field = |label: &str, id: &str| {
        get(id).map_or_else(String::new, |value| format!(r#"<p>{label}: <code id="{id}">{}</code></p>"#, esc(value)))
    };
    let body = match (get("code"), get("error"), get("admin_consent")) {
        (Some(code), _, _) => format!(
            r#"<p>The sandbox redirected here with an authorization code (valid for 10 minutes, single use).</p><p>Code:</p><pre id="code" class="wrap">{}</pre><p>Redeem it (one command; copy it whole):</p><pre id="redeem" class="wrap">{}</pre><button type="button" id="copy-redeem" data-copy="redeem" hidden>Copy</button><script src="/_sandbox/copy.js" defer></script>{}{}"#,
            esc(code),
            esc(&redeem_command(shared, code)),
            field("State", "state"),
            field("Session state", "session_state"),
        ),
        (None, Some(error), _) => format!(
            r#"<p class="error" id="error">{}</p>{}{}"#,
            esc(error),
            get("error_description").map_or_else(String::new, |d| format!(r#"<p id="error-description">{}</p>"#, esc(d))),
            field("State", "state"),
        ),
        (None, None, Some(consent)) => {
            format!(r#"<p id="admin-consent">admin_consent={}</p>{}{}"#, esc(consent), field("Tenant", "tenant"), field("State", "state"),)
        }
        _ => "<p>No code or error was sent to this redirect URI.</p>".to_owned(),
    };
    let mut response = crate::pages::page(StatusCode::OK, "Sandbox callback", &body);
    // No inline script runs here (the page's own style block aside, nothing inline is allowed).
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

/// The curl that redeems `code` at the token endpoint, on one line: for the app and tenant the code was
/// issued to (the demo app when the code is not known, e.g. already redeemed), with that app's secret, and a
/// placeholder for the PKCE verifier when the request had a challenge (only the application knows it).
fn redeem_command(shared: &Shared, code: &str) -> String {
    let world = shared.world();
    let issued = world.oauth.codes.get(code);
    let client_id = issued.map_or_else(crate::demo_client_id, |c| c.client_id);
    let tenant = issued.map_or_else(|| crate::demo::CONTOSO_DOMAIN.to_owned(), |c| c.tenant.to_string());
    let now = shared.clock.now();
    let secret = world
        .apps
        .get(&client_id)
        .and_then(|app| app.secrets.iter().rev().find(|s| s.expires > now).or(app.secrets.last()))
        .map_or_else(|| crate::demo::APP_SECRET.to_owned(), |s| s.value.clone());
    let base = &shared.base_url;
    let redirect_uri = issued.map_or_else(|| format!("{base}/_sandbox/callback"), |c| c.redirect_uri.clone());
    let mut command = format!(
        "curl -s {base}/{tenant}/oauth2/v2.0/token -d grant_type=authorization_code -d client_id={client_id} --data-urlencode client_secret={} --data-urlencode redirect_uri={} --data-urlencode code={}",
        shell_quoted(&secret),
        shell_quoted(&redirect_uri),
        shell_quoted(code),
    );
    if issued.is_some_and(|c| c.pkce.is_some()) {
        command.push_str(" --data-urlencode code_verifier=YOUR_PKCE_VERIFIER");
    }
    command
}

/// `text` as one shell word: in single quotes, each `'` written as `'\''`.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A directory or content change. Every creation may carry its own `id` (seeds use stable ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum Command {
    CreateTenant {
        #[serde(default)]
        id: Option<Uuid>,
        display_name: String,
        domain: String,
        #[serde(default)]
        unmanaged: bool,
        #[serde(default)]
        settings: Option<TenantSettings>,
    },
    UpdateTenantSettings {
        tenant: Uuid,
        settings: TenantSettings,
    },
    CreateUser {
        #[serde(default)]
        id: Option<Uuid>,
        tenant: Uuid,
        upn: String,
        #[serde(default)]
        display_name: Option<String>,
        password: String,
        #[serde(default = "yes")]
        power_bi_licensed: bool,
        #[serde(default)]
        power_bi_admin: bool,
        #[serde(default)]
        directory_admin: bool,
    },
    SetUserLicense {
        user: Uuid,
        power_bi_licensed: bool,
    },
    CreateApp {
        #[serde(default)]
        client_id: Option<Uuid>,
        tenant: Uuid,
        display_name: String,
        #[serde(default)]
        multi_tenant: bool,
        #[serde(default)]
        redirect_uris: Vec<String>,
        #[serde(default)]
        delegated_permissions: Vec<String>,
    },
    /// Adds a redirect URI to an app registration (as the Azure portal's Authentication page does).
    AddRedirectUri {
        client_id: Uuid,
        uri: String,
    },
    AddSecret {
        client_id: Uuid,
        #[serde(default)]
        value: Option<String>,
        #[serde(default)]
        description: Option<String>,
        /// Days from now until it expires; negative for an already expired secret.
        expires_in_days: i64,
    },
    CreateServicePrincipal {
        tenant: Uuid,
        client_id: Uuid,
    },
    CreateSecurityGroup {
        #[serde(default)]
        id: Option<Uuid>,
        tenant: Uuid,
        display_name: String,
        #[serde(default)]
        members: Vec<Uuid>,
    },
    GrantConsent {
        tenant: Uuid,
        client_id: Uuid,
        /// `None` grants for every user of the tenant (admin consent).
        #[serde(default)]
        user: Option<Uuid>,
        scopes: Vec<String>,
    },
    /// Withdraws a user's consent (and admin consent for the app when `all_principals`) and revokes their refresh tokens.
    RevokeGrants {
        user: Uuid,
        #[serde(default)]
        client_id: Option<Uuid>,
    },
    /// Issues a refresh token for a user and an app, as redeeming an authorization code with these scopes
    /// (which must include `offline_access`) would: for tests that need many signed-in connections without a
    /// browser. Consent is not checked here; redeeming the token checks it as Entra does.
    IssueRefreshToken {
        user: Uuid,
        client_id: Uuid,
        /// Space-separated, as an authorize request's `scope`.
        scope: String,
    },
    CreateWorkspace {
        #[serde(default)]
        id: Option<Uuid>,
        tenant: Uuid,
        name: String,
        #[serde(default)]
        personal_owner: Option<Uuid>,
        #[serde(default)]
        members: Vec<Member>,
        #[serde(default)]
        dedicated_capacity: bool,
    },
    AddWorkspaceMember {
        workspace: Uuid,
        principal: Uuid,
        role: WorkspaceRole,
    },
    CreateDataset {
        #[serde(default)]
        id: Option<Uuid>,
        workspace: Uuid,
        /// A `POST datasets` body (tables may carry `rows`).
        definition: Value,
        #[serde(default = "yes")]
        push: bool,
        #[serde(default)]
        basic_fifo: bool,
        #[serde(default)]
        configured_by: Option<String>,
    },
    CreateReport {
        #[serde(default)]
        id: Option<Uuid>,
        workspace: Uuid,
        name: String,
        #[serde(default)]
        dataset: Option<Uuid>,
    },
    CreateDashboard {
        #[serde(default)]
        id: Option<Uuid>,
        workspace: Uuid,
        name: String,
    },
    CreateTile {
        #[serde(default)]
        id: Option<Uuid>,
        dashboard: Uuid,
        title: String,
        #[serde(default)]
        report: Option<Uuid>,
        #[serde(default)]
        dataset: Option<Uuid>,
        #[serde(default = "one")]
        row_span: u32,
        #[serde(default = "one")]
        col_span: u32,
        visual: Visual,
    },
    /// What a person does in Power BI and no API can: build a visual in a report and pin it to a dashboard.
    /// `user` must be able to read the report and write to the dashboard's workspace, as in the service.
    PinVisual {
        user: String,
        report: Uuid,
        dashboard: Uuid,
        title: String,
        #[serde(default = "one")]
        row_span: u32,
        #[serde(default = "one")]
        col_span: u32,
        visual: Visual,
    },
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Member {
    pub principal: Uuid,
    pub role: WorkspaceRole,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("{0} was not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

pub fn execute(shared: &Shared, command: Command) -> Result<Value, ControlError> {
    let mut world = shared.world();
    apply(&mut world, &shared.clock, command)
}

fn missing(what: &str, id: Uuid) -> ControlError {
    ControlError::NotFound(format!("{what} {id}"))
}

/// Applies one command to the world. Checks everything before changing anything.
pub fn apply(world: &mut World, clock: &Clock, command: Command) -> Result<Value, ControlError> {
    let now = clock.now();
    match command {
        Command::CreateTenant { id, display_name, domain, unmanaged, settings } => {
            let id = id.unwrap_or_else(Uuid::new_v4);
            if world.tenant_by_segment(&domain).is_some() {
                return Err(ControlError::Invalid(format!("the domain {domain} is already verified by another tenant")));
            }
            let kind = if unmanaged { TenantKind::Unmanaged } else { TenantKind::Managed };
            world.tenants.insert(
                id,
                Tenant { id, display_name, domains: vec![domain.to_ascii_lowercase()], kind, settings: settings.unwrap_or_default() },
            );
            Ok(json!({"id": id}))
        }
        Command::UpdateTenantSettings { tenant, settings } => {
            world.tenants.get_mut(&tenant).ok_or_else(|| missing("tenant", tenant))?.settings = settings;
            Ok(json!({}))
        }
        Command::CreateUser { id, tenant, upn, display_name, password, power_bi_licensed, power_bi_admin, directory_admin } => {
            if !world.tenants.contains_key(&tenant) {
                return Err(missing("tenant", tenant));
            }
            if world.user_by_upn(&upn).is_some() {
                return Err(ControlError::Invalid(format!("a user {upn} already exists")));
            }
            let id = id.unwrap_or_else(Uuid::new_v4);
            let display_name = display_name.unwrap_or_else(|| upn.split('@').next().unwrap_or(&upn).to_owned());
            world.users.insert(id, User { id, tenant, upn, display_name, password, power_bi_licensed, power_bi_admin, directory_admin });
            Ok(json!({"id": id}))
        }
        Command::SetUserLicense { user, power_bi_licensed } => {
            world.users.get_mut(&user).ok_or_else(|| missing("user", user))?.power_bi_licensed = power_bi_licensed;
            Ok(json!({}))
        }
        Command::CreateApp { client_id, tenant, display_name, multi_tenant, redirect_uris, delegated_permissions } => {
            if !world.tenants.contains_key(&tenant) {
                return Err(missing("tenant", tenant));
            }
            let permissions = delegated_permissions
                .iter()
                .map(|p| {
                    crate::entra::scopes::canonical_permission(p)
                        .map(str::to_owned)
                        .ok_or_else(|| ControlError::Invalid(format!("'{p}' is not a Power BI delegated permission")))
                })
                .collect::<Result<BTreeSet<_>, _>>()?;
            let client_id = client_id.unwrap_or_else(Uuid::new_v4);
            world.apps.insert(
                client_id,
                App {
                    client_id,
                    home_tenant: tenant,
                    display_name: display_name.clone(),
                    multi_tenant,
                    secrets: Vec::new(),
                    redirect_uris,
                    delegated_permissions: permissions,
                },
            );
            let sp = ServicePrincipal { id: ids::stable(&format!("sp:{tenant}:{client_id}")), tenant, client_id, display_name };
            world.service_principals.insert(sp.id, sp.clone());
            Ok(json!({"clientId": client_id, "servicePrincipalId": sp.id}))
        }
        Command::AddRedirectUri { client_id, uri } => {
            let app = world.apps.get_mut(&client_id).ok_or_else(|| missing("app", client_id))?;
            if !uri.starts_with("http://") && !uri.starts_with("https://") {
                return Err(ControlError::Invalid(format!("'{uri}' is not an http(s) URL")));
            }
            if !app.redirect_uris.contains(&uri) {
                app.redirect_uris.push(uri);
            }
            Ok(json!({}))
        }
        Command::AddSecret { client_id, value, description, expires_in_days } => {
            let app = world.apps.get_mut(&client_id).ok_or_else(|| missing("app", client_id))?;
            let value = value.unwrap_or_else(|| format!("{}~{}", &ids::opaque(3)[..3], ids::opaque(27)));
            let secret = ClientSecret {
                id: Uuid::new_v4(),
                description: description.unwrap_or_else(|| "sandbox secret".into()),
                value: value.clone(),
                expires: now + Duration::days(expires_in_days),
            };
            let id = secret.id;
            app.secrets.push(secret);
            Ok(json!({"id": id, "value": value}))
        }
        Command::CreateServicePrincipal { tenant, client_id } => {
            let app = world.apps.get(&client_id).ok_or_else(|| missing("app", client_id))?;
            if !world.tenants.contains_key(&tenant) {
                return Err(missing("tenant", tenant));
            }
            if let Some(sp) = world.service_principal(tenant, client_id) {
                return Ok(json!({"id": sp.id}));
            }
            let sp = ServicePrincipal {
                id: ids::stable(&format!("sp:{tenant}:{client_id}")),
                tenant,
                client_id,
                display_name: app.display_name.clone(),
            };
            let id = sp.id;
            world.service_principals.insert(id, sp);
            Ok(json!({"id": id}))
        }
        Command::CreateSecurityGroup { id, tenant, display_name, members } => {
            if !world.tenants.contains_key(&tenant) {
                return Err(missing("tenant", tenant));
            }
            let id = id.unwrap_or_else(Uuid::new_v4);
            world.security_groups.insert(id, SecurityGroup { id, tenant, display_name, members: members.into_iter().collect() });
            Ok(json!({"id": id}))
        }
        Command::GrantConsent { tenant, client_id, user, scopes } => {
            let scopes = scopes
                .iter()
                .map(|s| {
                    crate::entra::scopes::canonical_permission(s)
                        .map(str::to_owned)
                        .ok_or_else(|| ControlError::Invalid(format!("'{s}' is not a Power BI delegated permission")))
                })
                .collect::<Result<BTreeSet<_>, _>>()?;
            if !world.apps.contains_key(&client_id) {
                return Err(missing("app", client_id));
            }
            match world.grants.iter_mut().find(|g| g.tenant == tenant && g.client_id == client_id && g.principal == user) {
                Some(grant) => grant.scopes.extend(scopes),
                None => world.grants.push(Grant { tenant, client_id, principal: user, scopes }),
            }
            Ok(json!({}))
        }
        Command::RevokeGrants { user, client_id } => {
            if !world.users.contains_key(&user) {
                return Err(missing("user", user));
            }
            let matches_client = |c: Uuid| client_id.is_none_or(|id| id == c);
            world.grants.retain(|g| !(g.principal == Some(user) && matches_client(g.client_id)));
            for record in world.oauth.refresh_tokens.values_mut().filter(|r| r.user == user && matches_client(r.client_id)) {
                record.revoked = true;
            }
            world.oauth.sessions.retain(|_, s| s.user != user);
            Ok(json!({}))
        }
        Command::IssueRefreshToken { user, client_id, scope } => {
            let tenant = world.users.get(&user).ok_or_else(|| missing("user", user))?.tenant;
            if !world.apps.contains_key(&client_id) {
                return Err(missing("app", client_id));
            }
            let scopes = crate::entra::scopes::parse(&scope).map_err(ControlError::Invalid)?;
            if !scopes.offline_access {
                return Err(ControlError::Invalid("a refresh token needs the offline_access scope".into()));
            }
            let token = crate::entra::token::new_refresh_token(world, clock, client_id, tenant, user, scopes);
            Ok(json!({"refreshToken": token}))
        }
        Command::CreateWorkspace { id, tenant, name, personal_owner, members, dedicated_capacity } => {
            if !world.tenants.contains_key(&tenant) {
                return Err(missing("tenant", tenant));
            }
            let id = id.unwrap_or_else(Uuid::new_v4);
            let members = members.into_iter().map(|m| (m.principal, m.role)).collect();
            let capacity_id = dedicated_capacity.then(|| ids::stable(&format!("capacity:{tenant}")));
            world.workspaces.insert(
                id,
                Workspace { id, tenant, name, description: String::new(), personal_owner, members, capacity_id, modified: now },
            );
            Ok(json!({"id": id}))
        }
        Command::AddWorkspaceMember { workspace, principal, role } => {
            let ws = world.workspaces.get_mut(&workspace).ok_or_else(|| missing("workspace", workspace))?;
            ws.members.insert(principal, role);
            ws.modified = now;
            Ok(json!({}))
        }
        Command::CreateDataset { id, workspace, definition, push, basic_fifo, configured_by } => {
            if !world.workspaces.contains_key(&workspace) {
                return Err(missing("workspace", workspace));
            }
            let definition = push::parse_dataset(definition).map_err(ControlError::Invalid)?;
            let id = id.unwrap_or_else(Uuid::new_v4);
            let retention = if basic_fifo { Retention::BasicFifo } else { Retention::None };
            world.datasets.insert(
                id,
                Dataset {
                    id,
                    workspace,
                    name: definition.name,
                    description: String::new(),
                    configured_by: configured_by.unwrap_or_default(),
                    created: now,
                    push: push.then(|| PushState { default_mode: definition.default_mode, retention, recent_posts: Default::default() }),
                    tables: definition.tables,
                    relationships: definition.relationships,
                    refreshes: Vec::new(),
                    upstream_dataflows: Vec::new(),
                    datasource_usages: Vec::new(),
                    expressions: Vec::new(),
                },
            );
            Ok(json!({"id": id}))
        }
        Command::CreateReport { id, workspace, name, dataset } => {
            if !world.workspaces.contains_key(&workspace) {
                return Err(missing("workspace", workspace));
            }
            if let Some(d) = dataset
                && !world.datasets.contains_key(&d)
            {
                return Err(missing("dataset", d));
            }
            let id = id.unwrap_or_else(Uuid::new_v4);
            world.reports.insert(
                id,
                Report {
                    id,
                    workspace,
                    name,
                    description: String::new(),
                    dataset_id: dataset,
                    paginated: false,
                    created: now,
                    modified: now,
                },
            );
            Ok(json!({"id": id}))
        }
        Command::CreateDashboard { id, workspace, name } => {
            if !world.workspaces.contains_key(&workspace) {
                return Err(missing("workspace", workspace));
            }
            let id = id.unwrap_or_else(Uuid::new_v4);
            world.dashboards.insert(id, Dashboard { id, workspace, display_name: name, is_read_only: false, tiles: Vec::new() });
            Ok(json!({"id": id}))
        }
        Command::CreateTile { id, dashboard, title, report, dataset, row_span, col_span, visual } => {
            let dataset_id = dataset.or_else(|| report.and_then(|r| world.reports.get(&r)).and_then(|r| r.dataset_id));
            let id = id.unwrap_or_else(Uuid::new_v4);
            add_tile(world, dashboard, Tile { id, title, report_id: report, dataset_id, row_span, col_span, visual })
        }
        Command::PinVisual { user, report, dashboard, title, row_span, col_span, visual } => {
            let person = world.user_by_upn(&user).ok_or_else(|| ControlError::Invalid(format!("there is no user {user}")))?.id;
            pin_visual(
                world,
                person,
                report,
                dashboard,
                Tile { id: Uuid::new_v4(), title, report_id: None, dataset_id: None, row_span, col_span, visual },
            )
        }
    }
}

/// What a person does in a report: pins `tile`'s visual (built on the report's dataset) to `dashboard`. They
/// must be able to open the report and write to the dashboard's workspace, as in the service.
pub(crate) fn pin_visual(world: &mut World, person: Uuid, report: Uuid, dashboard: Uuid, tile: Tile) -> Result<Value, ControlError> {
    let upn = world.users.get(&person).map_or_else(|| person.to_string(), |u| u.upn.clone());
    let pinned = world.reports.get(&report).ok_or_else(|| missing("report", report))?;
    let (report_ws, dataset_id) = (pinned.workspace, pinned.dataset_id);
    let board = world.dashboards.get(&dashboard).ok_or_else(|| missing("dashboard", dashboard))?;
    let role = |workspace: Uuid| world.workspaces.get(&workspace).and_then(|w| world.role_in(w, person));
    if role(report_ws).is_none() {
        return Err(ControlError::Invalid(format!("{upn} cannot open the report {report}")));
    }
    if !role(board.workspace).is_some_and(crate::model::WorkspaceRole::can_write) {
        return Err(ControlError::Invalid(format!("{upn} cannot pin to the dashboard {dashboard}: it needs Contributor or above")));
    }
    add_tile(world, dashboard, Tile { report_id: Some(report), dataset_id, ..tile })
}

/// Adds a tile whose visual reads a table and columns its dataset has (a visual on nothing cannot be pinned).
fn add_tile(world: &mut World, dashboard: Uuid, tile: Tile) -> Result<Value, ControlError> {
    if let Some(d) = tile.dataset_id {
        let ds = world.datasets.get(&d).ok_or_else(|| missing("dataset", d))?;
        let visual = &tile.visual;
        let table = ds
            .tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(&visual.table))
            .ok_or_else(|| ControlError::Invalid(format!("the dataset has no table '{}'", visual.table)))?;
        for column in [&visual.value, &visual.category].into_iter().flatten() {
            if !table.columns.iter().any(|c| c.name.eq_ignore_ascii_case(column)) {
                return Err(ControlError::Invalid(format!("the table '{}' has no column '{column}'", table.name)));
            }
        }
    }
    let d = world.dashboards.get_mut(&dashboard).ok_or_else(|| missing("dashboard", dashboard))?;
    let id = tile.id;
    d.tiles.push(tile);
    Ok(json!({"id": id}))
}

/// The directory as `GET /_sandbox/seed` shows it: everything a script needs to sign in and call the API.
pub fn directory_json(world: &World) -> Value {
    let tenants: Vec<Value> = world.tenants.values().map(|t| json!(t)).collect();
    let users: Vec<Value> = world.users.values().map(|u| json!(u)).collect();
    let apps: Vec<Value> = world.apps.values().map(|a| json!(a)).collect();
    let service_principals: Vec<Value> = world.service_principals.values().map(|s| json!(s)).collect();
    let groups: Vec<Value> = world.security_groups.values().map(|g| json!(g)).collect();
    let workspaces: Vec<Value> = world
        .workspaces
        .values()
        .map(|w| {
            json!({
                "id": w.id, "tenant": w.tenant, "name": w.name, "personalOwner": w.personal_owner,
                "members": w.members.iter().map(|(p, r)| json!({"principal": p, "role": r})).collect::<Vec<_>>(),
                "dashboards": world.dashboards.values().filter(|d| d.workspace == w.id).map(|d| json!({"id": d.id, "name": d.display_name, "tiles": d.tiles.iter().map(|t| json!({"id": t.id, "title": t.title, "visual": t.visual})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                "reports": world.reports.values().filter(|r| r.workspace == w.id).map(|r| json!({"id": r.id, "name": r.name})).collect::<Vec<_>>(),
                "datasets": world.datasets.values().filter(|d| d.workspace == w.id).map(|d| json!({"id": d.id, "name": d.name, "push": d.push.is_some(), "tables": d.tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"tenants": tenants, "users": users, "apps": apps, "servicePrincipals": service_principals, "securityGroups": groups, "workspaces": workspaces})
}

fn control_error(error: ControlError) -> Response {
    let status = match error {
        ControlError::NotFound(_) => StatusCode::NOT_FOUND,
        ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    (status, Json(json!({"error": error.to_string()}))).into_response()
}

async fn seed(State(shared): State<Arc<Shared>>) -> Response {
    let mut doc = directory_json(&shared.world());
    doc["baseUrl"] = json!(shared.base_url);
    doc["powerBiApi"] = json!(format!("{}/v1.0/myorg", shared.base_url));
    Json(doc).into_response()
}

fn clock_json(now: OffsetDateTime, manual: bool) -> Value {
    json!({"now": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(), "unix": now.unix_timestamp(), "manual": manual})
}

async fn clock(State(shared): State<Arc<Shared>>) -> Response {
    Json(clock_json(shared.clock.now(), shared.clock.is_manual())).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(State(shared): State<Arc<Shared>>, Json(advance): Json<Advance>) -> Response {
    match shared.clock.advance(Duration::seconds(advance.seconds)) {
        Ok(now) => Json(clock_json(now, true)).into_response(),
        Err(e) => control_error(ControlError::Invalid(e.to_string())),
    }
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({"faults": shared.faults.pending()})).into_response()
}

async fn add_fault(State(shared): State<Arc<Shared>>, Json(rule): Json<FaultRule>) -> Response {
    shared.faults.add(rule);
    (StatusCode::CREATED, Json(json!({"faults": shared.faults.pending()}))).into_response()
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    shared.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct RequestFilter {
    #[serde(default)]
    since: Option<u64>,
}

async fn list_requests(State(shared): State<Arc<Shared>>, Query(filter): Query<RequestFilter>) -> Response {
    let since = filter.since.unwrap_or(0);
    let requests: Vec<_> = shared.log.snapshot().into_iter().filter(|r| r.seq > since && r.service != crate::Service::Control).collect();
    Json(json!({"requests": requests})).into_response()
}

async fn clear_requests(State(shared): State<Arc<Shared>>) -> Response {
    shared.log.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn command(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let command: Command = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return control_error(ControlError::Invalid(format!("not a sandbox command: {e}"))),
    };
    match execute(&shared, command) {
        Ok(value) => Json(value).into_response(),
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushLimits {
    enabled: bool,
}

async fn push_limits(State(shared): State<Arc<Shared>>, Json(limits): Json<PushLimits>) -> Response {
    shared.push_limits.store(limits.enabled, std::sync::atomic::Ordering::Relaxed);
    Json(json!({"enabled": limits.enabled})).into_response()
}

#[derive(Deserialize)]
struct RowsQuery {
    #[serde(default)]
    top: Option<usize>,
}

/// Power BI has no API to read push rows back; tests and the embed page need one.
async fn table_rows(
    State(shared): State<Arc<Shared>>,
    Path((dataset, table)): Path<(String, String)>,
    Query(q): Query<RowsQuery>,
) -> Response {
    let Some(id) = ids::parse_guid(&dataset) else { return control_error(ControlError::Invalid(format!("'{dataset}' is not a GUID"))) };
    let world = shared.world();
    let Some(ds) = world.datasets.get(&id) else { return control_error(missing("dataset", id)) };
    let Some(t) = ds.tables.iter().find(|t| t.name.eq_ignore_ascii_case(&table)) else {
        return control_error(ControlError::NotFound(format!("table {table}")));
    };
    let columns: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    let rows: Vec<Value> = t
        .rows
        .iter()
        .take(q.top.unwrap_or(100))
        .map(|row| Value::Object(columns.iter().zip(row).map(|(c, v)| ((*c).to_owned(), v.to_json())).collect()))
        .collect();
    Json(json!({"count": t.rows.len(), "columns": columns, "rows": rows})).into_response()
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn an_origin_is_scheme_host_and_port_as_browsers_write_it() {
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(origin_of("https://App.PowerBI.com:443/sandbox"), "https://app.powerbi.com");
        assert_eq!(origin_of("http://localhost:80"), "http://localhost");
        assert_eq!(origin_of("https://localhost:80"), "https://localhost:80");
    }
}
