//! The interactive half of Entra: authorize, sign-in, consent, admin consent and sign-out.

use super::TenantSegment;
use super::errors::{AadError, found, redirect_with};
use super::scopes::{self, ADMIN_ONLY};
use crate::model::{
    App, AuthCode, BrowserSession, Grant, PendingAuthorize, Pkce, RequestedScopes, ResponseMode, ServicePrincipal, User, World,
};
use crate::pages::{self, esc};
use crate::requestlog::CallerTag;
use crate::{Shared, ids};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use time::Duration;
use uuid::Uuid;

const SESSION_COOKIE: &str = "sandbox_estsauth";
const CODE_LIFETIME: Duration = Duration::minutes(10);
const PENDING_LIFETIME: Duration = Duration::hours(1);

type Params = HashMap<String, String>;

pub async fn authorize_v2(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    authorize(&shared, &segment, &headers, &params, false)
}

pub async fn authorize_v1(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    authorize(&shared, &segment, &headers, &params, true)
}

fn authorize(shared: &Shared, segment: &str, headers: &HeaderMap, params: &Params, v1: bool) -> Response {
    let mut world = shared.world();
    let pending = match read_authorize_request(&world, segment, params, v1, shared.clock.now()) {
        Ok(pending) => pending,
        Err(refusal) => return refusal.into_response(),
    };
    start(shared, &mut world, pending, headers, params.get("prompt").map(String::as_str) == Some("none"))
}

pub async fn admin_consent(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let mut world = shared.world();
    let (tenant, app, redirect_uri) = match check_client_and_redirect(&world, &segment, &params) {
        Ok(found) => found,
        Err(error) => return error.page(),
    };
    let _ = tenant;
    let state = params.get("state").cloned();
    let pending = PendingAuthorize {
        id: ids::opaque(24),
        tenant_segment: segment,
        client_id: app.client_id,
        redirect_uri,
        scopes: RequestedScopes { default_scope: true, ..Default::default() },
        state,
        nonce: None,
        pkce: None,
        response_mode: ResponseMode::Query,
        force_login: false,
        force_consent: true,
        login_hint: None,
        admin_consent: true,
        created: shared.clock.now(),
        user: None,
    };
    start(&shared, &mut world, pending, &headers, false)
}

/// Why an authorize request cannot go on: an error page (the redirect URI is not trusted) or a redirect.
enum Refusal {
    Page(AadError),
    Redirect(AadError, String, Option<String>, ResponseMode),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Page(error) => error.page(),
            Refusal::Redirect(error, uri, state, mode) => error.redirect(&uri, state.as_deref(), &mode),
        }
    }
}

fn check_client_and_redirect<'w>(world: &'w World, segment: &str, params: &Params) -> Result<(TenantSegment, &'w App, String), AadError> {
    let tenant = TenantSegment::resolve(world, segment)?;
    let client_id = params.get("client_id").ok_or_else(|| missing("client_id"))?;
    let app = ids::parse_guid(client_id)
        .and_then(|id| world.apps.get(&id))
        .ok_or_else(|| app_not_found(client_id, tenant.tenant().map(|t| t.display_name.as_str())))?;
    match &tenant {
        TenantSegment::Tenant(t) if app.home_tenant != t.id && !app.multi_tenant => {
            return Err(app_not_found(client_id, Some(&t.display_name)));
        }
        TenantSegment::Any if !app.multi_tenant => {
            return Err(AadError::new(
                50194,
                "invalid_request",
                format!(
                    "Application '{}'({}) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications. Use a tenant-specific endpoint or configure the application to be multi-tenant.",
                    app.client_id, app.display_name
                ),
            ));
        }
        _ => {}
    }
    let redirect_uri = params.get("redirect_uri").ok_or_else(|| missing("redirect_uri"))?;
    if !app.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(AadError::new(
            50011,
            "invalid_request",
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.",
                app.client_id
            ),
        ));
    }
    Ok((tenant, app, redirect_uri.clone()))
}

pub fn missing(parameter: &str) -> AadError {
    AadError::new(900144, "invalid_request", format!("The request body must contain the following parameter: '{parameter}'."))
}

pub fn app_not_found(client_id: &str, tenant_name: Option<&str>) -> AadError {
    AadError::new(
        700016,
        "unauthorized_client",
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            tenant_name.unwrap_or("organizations")
        ),
    )
}

fn read_authorize_request(
    world: &World,
    segment: &str,
    params: &Params,
    v1: bool,
    now: time::OffsetDateTime,
) -> Result<PendingAuthorize, Refusal> {
    let (_, app, redirect_uri) = check_client_and_redirect(world, segment, params).map_err(Refusal::Page)?;
    let state = params.get("state").cloned();
    let response_mode = match params.get("response_mode").map(String::as_str) {
        None | Some("query") => ResponseMode::Query,
        Some("fragment") => ResponseMode::Fragment,
        Some("form_post") => ResponseMode::FormPost,
        Some(other) => {
            let error = AadError::new(
                900144,
                "invalid_request",
                format!(
                    "The provided value '{other}' for the input parameter 'response_mode' is not valid. Expected query, fragment or form_post."
                ),
            );
            return Err(Refusal::Redirect(error, redirect_uri, state, ResponseMode::Query));
        }
    };
    let refuse = |error: AadError| Refusal::Redirect(error, redirect_uri.clone(), state.clone(), response_mode.clone());
    if params.get("response_type").map(String::as_str) != Some("code") {
        let given = params.get("response_type").map_or("(none)", String::as_str);
        return Err(refuse(AadError::new(
            70005,
            "unsupported_response_type",
            format!(
                "response_type '{given}' is not enabled for the application. The sandbox supports the authorization code flow (response_type=code)."
            ),
        )));
    }
    let scopes = read_scopes(params, v1).map_err(&refuse)?;
    let pkce = read_pkce(params).map_err(&refuse)?;
    let prompt = params.get("prompt").map(String::as_str);
    if let Some(p) = prompt
        && !["login", "none", "consent", "select_account", "admin_consent"].contains(&p)
    {
        return Err(refuse(AadError::new(
            90023,
            "invalid_request",
            format!("Invalid prompt value '{p}'. Use login, none, consent or select_account."),
        )));
    }
    Ok(PendingAuthorize {
        id: ids::opaque(24),
        tenant_segment: segment.to_owned(),
        client_id: app.client_id,
        redirect_uri: redirect_uri.clone(),
        scopes,
        state: state.clone(),
        nonce: params.get("nonce").cloned(),
        pkce,
        response_mode: response_mode.clone(),
        force_login: matches!(prompt, Some("login" | "select_account")),
        force_consent: matches!(prompt, Some("consent" | "admin_consent")),
        login_hint: params.get("login_hint").cloned(),
        admin_consent: false,
        created: now,
        user: None,
    })
}

fn read_scopes(params: &Params, v1: bool) -> Result<RequestedScopes, AadError> {
    if v1 {
        let mut scopes = match params.get("scope") {
            Some(scope) => scopes::parse(scope).unwrap_or_default(),
            None => RequestedScopes::default(),
        };
        scopes.offline_access = true;
        if let Some(resource) = params.get("resource") {
            scopes::parse_v1_resource(resource).map_err(|m| AadError::new(500011, "invalid_resource", m))?;
            scopes.default_scope = true;
        }
        return Ok(scopes);
    }
    if params.contains_key("resource") {
        return Err(AadError::new(
            901002,
            "invalid_request",
            "The 'resource' request parameter is not supported. Use 'scope' with the resource's permissions, e.g. https://analysis.windows.net/powerbi/api/.default.",
        ));
    }
    let scope = params.get("scope").ok_or_else(|| missing("scope"))?;
    scopes::parse(scope).map_err(|m| AadError::new(70011, "invalid_scope", m))
}

fn read_pkce(params: &Params) -> Result<Option<Pkce>, AadError> {
    let Some(challenge) = params.get("code_challenge") else { return Ok(None) };
    match params.get("code_challenge_method").map(String::as_str) {
        None | Some("plain") => Ok(Some(Pkce::Plain(challenge.clone()))),
        Some("S256") if challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            Ok(Some(Pkce::S256(challenge.clone())))
        }
        Some("S256") => Err(AadError::new(
            501491,
            "invalid_request",
            "Invalid size of Code_Challenge parameter: an S256 challenge is the 43-character base64url SHA-256 of the verifier.",
        )),
        Some(other) => {
            Err(AadError::new(501491, "invalid_request", format!("Invalid code_challenge_method '{other}'. Use S256 or plain.")))
        }
    }
}

/// Goes on with a fresh request: straight through when the browser already has a session, else the sign-in page.
fn start(shared: &Shared, world: &mut World, pending: PendingAuthorize, headers: &HeaderMap, silent: bool) -> Response {
    let session_user = session_user(world, headers);
    world.oauth.pending.retain(|_, p| p.created + PENDING_LIFETIME > shared.clock.now());
    match session_user {
        Some(user) if !pending.force_login => continue_as(shared, world, pending, user, silent),
        _ if silent => AadError::new(50058, "login_required", "A silent sign-in request was sent but no user is signed in.").redirect(
            &pending.redirect_uri,
            pending.state.as_deref(),
            &pending.response_mode,
        ),
        _ => {
            let response = sign_in_page(world, &pending, None);
            world.oauth.pending.insert(pending.id.clone(), pending);
            response
        }
    }
}

/// Who is signed in to Entra ID in this browser (its session cookie).
pub(crate) fn session_user(world: &World, headers: &HeaderMap) -> Option<Uuid> {
    let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';'));
    let session = cookies.filter_map(|c| c.trim().split_once('=')).find(|(name, _)| *name == SESSION_COOKIE).map(|(_, value)| value)?;
    world.oauth.sessions.get(session).map(|s| s.user)
}

fn sign_in_page(world: &World, pending: &PendingAuthorize, error: Option<&AadError>) -> Response {
    let app_name = world.apps.get(&pending.client_id).map_or("the application", |a| a.display_name.as_str());
    let error_html =
        error.map_or_else(String::new, |e| format!(r#"<p class="error" id="error-code">AADSTS{}: {}</p>"#, e.code, esc(&e.message)));
    let hint = pending.login_hint.as_deref().unwrap_or_default();
    let body = format!(
        r#"<p>to continue to <b>{app}</b></p>{error_html}
<form method="POST" action="/{segment}/login">
<input type="hidden" name="ctx" value="{ctx}">{came_from}
<label for="login">Email, phone, or Skype</label><input type="email" id="login" name="login" value="{hint}" autocomplete="username" required>
<label for="passwd">Password</label><input type="password" id="passwd" name="passwd" autocomplete="current-password" required>
<button type="submit" id="idSIButton9">Sign in</button>
</form>"#,
        app = esc(app_name),
        segment = esc(&pending.tenant_segment),
        ctx = esc(&pending.id),
        came_from = came_from_fields(pending),
        hint = esc(hint),
    );
    pages::page(if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK }, "Sign in", &body)
}

#[derive(serde::Deserialize)]
pub struct SignInForm {
    ctx: String,
    login: String,
    passwd: String,
    #[serde(flatten)]
    came_from: CameFrom,
}

/// Where a sign-in form came from, carried in hidden fields beside `ctx` (as Entra's forms carry the request
/// with them), so that a form sent after its context is gone (Back, then Accept; or an hour later) can still
/// offer the way back to the application. Nothing here is trusted: the link is offered only when the redirect
/// URI is one the app registered, the check the authorize request itself makes.
#[derive(serde::Deserialize, Default)]
pub struct CameFrom {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    response_mode: Option<String>,
}

fn came_from_fields(pending: &PendingAuthorize) -> String {
    let mode = match pending.response_mode {
        ResponseMode::Query => "query",
        ResponseMode::Fragment => "fragment",
        ResponseMode::FormPost => "form_post",
    };
    let mut fields = format!(
        r#"<input type="hidden" name="client_id" value="{}"><input type="hidden" name="redirect_uri" value="{}"><input type="hidden" name="response_mode" value="{mode}">"#,
        pending.client_id,
        esc(&pending.redirect_uri)
    );
    if let Some(state) = &pending.state {
        fields.push_str(&format!(r#"<input type="hidden" name="state" value="{}">"#, esc(state)));
    }
    fields
}

pub async fn sign_in(State(shared): State<Arc<Shared>>, Path(_segment): Path<String>, Form(form): Form<SignInForm>) -> Response {
    let mut world = shared.world();
    let Some(pending) = live_pending(shared.as_ref(), &world, &form.ctx) else {
        return expired_request_from(&world, &form.came_from);
    };
    let Some(user) = world.user_by_upn(&form.login).cloned() else {
        let error = AadError::new(
            50034,
            "invalid_request",
            format!(
                "The user account {} does not exist in the directory. To sign into this application, the account must be added to the directory.",
                form.login.trim()
            ),
        );
        return sign_in_page(&world, &pending, Some(&error));
    };
    if user.password != form.passwd {
        let error = AadError::new(50126, "invalid_request", "Error validating credentials due to invalid username or password.");
        return sign_in_page(&world, &pending, Some(&error));
    }
    if let Some(tenant) = world.tenant_by_segment(&pending.tenant_segment)
        && tenant.id != user.tenant
    {
        let error = AadError::new(
            50020,
            "access_denied",
            format!(
                "User account '{}' from identity provider 'https://sts.windows.net/{}/' does not exist in tenant '{}' and cannot access the application '{}' in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different account.",
                user.upn, user.tenant, tenant.display_name, pending.client_id
            ),
        );
        return sign_in_page(&world, &pending, Some(&error));
    }
    let cookie = session_cookie(&shared, &mut world, user.id);
    let mut response = continue_as(&shared, &mut world, pending, user.id, false);
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response.extensions_mut().insert(CallerTag(user.upn));
    response
}

/// A new browser session for `user`, and its cookie.
pub(crate) fn session_cookie(shared: &Shared, world: &mut World, user: Uuid) -> Option<HeaderValue> {
    let session = ids::opaque(32);
    world.oauth.sessions.insert(session.clone(), BrowserSession { user });
    // Like Entra ID's ESTSAUTH cookie, SameSite=None so that silent sign-in works in an iframe; browsers drop a
    // SameSite=None cookie that is not Secure, so over plain http the sandbox falls back to Lax.
    let same_site = if shared.base_url.starts_with("https://") { "SameSite=None; Secure" } else { "SameSite=Lax" };
    HeaderValue::from_str(&format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; {same_site}")).ok()
}

/// The sign-in context `ctx` names, unless it is gone (completed) or older than its hour.
fn live_pending(shared: &Shared, world: &World, ctx: &str) -> Option<PendingAuthorize> {
    world.oauth.pending.get(ctx).filter(|p| p.created + PENDING_LIFETIME > shared.clock.now()).cloned()
}

fn expired() -> AadError {
    AadError::new(50058, "login_required", "This sign-in request has expired or was already completed. Start again from the application.")
}

fn expired_request() -> Response {
    expired().page()
}

/// The expired-request page, with a way back to the application when the form said where it came from and
/// that is a redirect URI the app registered (Entra's error pages link back to the application).
fn expired_request_from(world: &World, came_from: &CameFrom) -> Response {
    let error = expired();
    let app = came_from.client_id.as_deref().and_then(ids::parse_guid).and_then(|id| world.apps.get(&id));
    let back = match (app, came_from.redirect_uri.as_deref()) {
        (Some(app), Some(uri)) if app.redirect_uris.iter().any(|r| r == uri) => {
            let mode = match came_from.response_mode.as_deref() {
                Some("form_post") => ResponseMode::FormPost,
                Some("fragment") => ResponseMode::Fragment,
                _ => ResponseMode::Query,
            };
            error.back_to_app(&app.display_name, uri, came_from.state.as_deref(), &mode)
        }
        _ => String::new(),
    };
    error.page_with(&back)
}

/// After sign-in: the user's tenant must see the app; then consent if needed; then a code.
fn continue_as(shared: &Shared, world: &mut World, mut pending: PendingAuthorize, user_id: Uuid, silent: bool) -> Response {
    let Some(user) = world.users.get(&user_id).cloned() else { return expired_request() };
    let Some(app) = world.apps.get(&pending.client_id).cloned() else { return expired_request() };
    world.oauth.pending.remove(&pending.id);
    if let Some(tenant) = world.tenant_by_segment(&pending.tenant_segment)
        && tenant.id != user.tenant
    {
        // The browser's session belongs to another tenant's user: ask who should sign in.
        pending.force_login = true;
        let response = sign_in_page(world, &pending, None);
        world.oauth.pending.insert(pending.id.clone(), pending);
        return response;
    }
    if app.home_tenant != user.tenant && !app.multi_tenant {
        let tenant_name = world.tenants.get(&user.tenant).map(|t| t.display_name.clone());
        return app_not_found(&app.client_id.to_string(), tenant_name.as_deref()).page();
    }
    pending.user = Some(user.id);
    let requested = pending.scopes.effective(&app.delegated_permissions);
    let consented = world.consented_scopes(user.tenant, app.client_id, user.id);
    let needs_consent = pending.force_consent || !requested.is_subset(&consented);
    if !needs_consent {
        return issue_code(shared, world, &pending, &user);
    }
    if silent {
        return consent_required(&pending, &app, &user).redirect(&pending.redirect_uri, pending.state.as_deref(), &pending.response_mode);
    }
    let users_can_consent = world.tenants.get(&user.tenant).is_some_and(|t| t.settings.users_can_consent);
    let needs_admin = pending.admin_consent || !users_can_consent || requested.iter().any(|s| ADMIN_ONLY.contains(&s.as_str()));
    let response = if needs_admin && !user.directory_admin {
        admin_approval_page(&pending, &app)
    } else {
        consent_page(&pending, &app, &user, &requested, needs_admin)
    };
    world.oauth.pending.insert(pending.id.clone(), pending);
    response
}

fn consent_required(pending: &PendingAuthorize, app: &App, user: &User) -> AadError {
    let _ = pending;
    AadError::new(
        65001,
        "consent_required",
        format!(
            "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource. (user {})",
            app.client_id, app.display_name, user.upn
        ),
    )
}

fn consent_page(pending: &PendingAuthorize, app: &App, user: &User, requested: &BTreeSet<String>, for_org_only: bool) -> Response {
    let mut items: Vec<String> = requested
        .iter()
        .map(|s| format!(r#"<li data-scope="{s}"><b>{}</b> <small>({s})</small></li>"#, esc(scopes::permission_description(s))))
        .collect();
    if pending.scopes.openid || pending.scopes.profile {
        items.push(r#"<li data-scope="openid"><b>Sign you in and read your profile</b></li>"#.to_owned());
    }
    if pending.scopes.offline_access {
        items.push(r#"<li data-scope="offline_access"><b>Maintain access to data you have given it access to</b></li>"#.to_owned());
    }
    let org = if user.directory_admin {
        let checked = if for_org_only { " checked disabled" } else { "" };
        format!(
            r#"<label><input type="checkbox" name="consent_for_org" value="true" id="consent-for-org"{checked}> Consent on behalf of your organization</label>{}"#,
            if for_org_only { r#"<input type="hidden" name="consent_for_org" value="true">"# } else { "" }
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<p id="account">{upn}</p><p><b>{app}</b> would like to:</p>
<ul class="perms" id="permissions">{items}</ul>
<form method="POST" action="/{segment}/consent"><input type="hidden" name="ctx" value="{ctx}">{came_from}{org}
<p>Accepting these permissions means that you allow this app to use your data as specified in their terms of service and privacy statement.</p>
<button type="submit" name="decision" value="cancel" class="secondary" id="cancel">Cancel</button>
<button type="submit" name="decision" value="accept" id="accept">Accept</button></form>"#,
        upn = esc(&user.upn),
        app = esc(&app.display_name),
        items = items.join(""),
        segment = esc(&pending.tenant_segment),
        ctx = esc(&pending.id),
        came_from = came_from_fields(pending),
    );
    pages::page(StatusCode::OK, "Permissions requested", &body)
}

fn admin_approval_page(pending: &PendingAuthorize, app: &App) -> Response {
    let body = format!(
        r#"<p><b>{app}</b> needs permission to access resources in your organization that only an admin can grant. Please ask an admin to grant permission to this app before you can use it.</p>
<p class="error" id="error-code">AADSTS90094: Admin consent is required for the permissions requested by this application.</p>
<form method="POST" action="/{segment}/consent"><input type="hidden" name="ctx" value="{ctx}">{came_from}
<button type="submit" name="decision" value="return" class="secondary" id="return">Return to the application without granting consent</button></form>"#,
        app = esc(&app.display_name),
        segment = esc(&pending.tenant_segment),
        ctx = esc(&pending.id),
        came_from = came_from_fields(pending),
    );
    pages::page(StatusCode::OK, "Need admin approval", &body)
}

#[derive(serde::Deserialize)]
pub struct ConsentForm {
    ctx: String,
    decision: String,
    #[serde(default)]
    consent_for_org: Option<String>,
    #[serde(flatten)]
    came_from: CameFrom,
}

pub async fn consent(State(shared): State<Arc<Shared>>, headers: HeaderMap, Form(form): Form<ConsentForm>) -> Response {
    let mut world = shared.world();
    let Some(pending) = live_pending(shared.as_ref(), &world, &form.ctx) else { return expired_request_from(&world, &form.came_from) };
    let (Some(user_id), Some(session_user)) = (pending.user, session_user(&world, &headers)) else {
        return expired_request_from(&world, &form.came_from);
    };
    if user_id != session_user {
        return expired_request_from(&world, &form.came_from);
    }
    let (Some(user), Some(app)) = (world.users.get(&user_id).cloned(), world.apps.get(&pending.client_id).cloned()) else {
        return expired_request();
    };
    world.oauth.pending.remove(&pending.id);
    let back = |e: AadError| e.redirect(&pending.redirect_uri, pending.state.as_deref(), &pending.response_mode);
    let requested = pending.scopes.effective(&app.delegated_permissions);
    let users_can_consent = world.tenants.get(&user.tenant).is_some_and(|t| t.settings.users_can_consent);
    let needs_admin = pending.admin_consent || !users_can_consent || requested.iter().any(|s| ADMIN_ONLY.contains(&s.as_str()));
    let mut response = match form.decision.as_str() {
        "accept" if needs_admin && !user.directory_admin => back(admin_consent_required(&app)),
        "accept" => {
            let for_org = needs_admin || form.consent_for_org.as_deref() == Some("true");
            record_grant(&mut world, &user, &app, requested, for_org);
            if pending.admin_consent {
                redirect_with(&pending.redirect_uri, &admin_consent_params(&pending, user.tenant), &pending.response_mode)
            } else {
                issue_code(&shared, &mut world, &pending, &user)
            }
        }
        "return" => back(admin_consent_required(&app)),
        _ => back(AadError::new(65004, "access_denied", "User declined to consent to access the app.")),
    };
    response.extensions_mut().insert(CallerTag(user.upn));
    response
}

fn admin_consent_required(app: &App) -> AadError {
    AadError::new(
        90094,
        "access_denied",
        format!(
            "The grant requires admin permission: '{}' needs permissions that only an administrator can grant in this tenant.",
            app.display_name
        ),
    )
}

fn admin_consent_params(pending: &PendingAuthorize, tenant: Uuid) -> Vec<(&'static str, String)> {
    let mut params = vec![("admin_consent", "True".to_owned()), ("tenant", tenant.to_string())];
    if let Some(state) = &pending.state {
        params.push(("state", state.clone()));
    }
    params
}

/// Records consent, and provisions the app's service principal in the user's tenant the first time.
fn record_grant(world: &mut World, user: &User, app: &App, scopes: BTreeSet<String>, for_org: bool) {
    let principal = if for_org { None } else { Some(user.id) };
    match world.grants.iter_mut().find(|g| g.tenant == user.tenant && g.client_id == app.client_id && g.principal == principal) {
        Some(grant) => grant.scopes.extend(scopes),
        None => world.grants.push(Grant { tenant: user.tenant, client_id: app.client_id, principal, scopes }),
    }
    if world.service_principal(user.tenant, app.client_id).is_none() {
        let sp =
            ServicePrincipal { id: Uuid::new_v4(), tenant: user.tenant, client_id: app.client_id, display_name: app.display_name.clone() };
        world.service_principals.insert(sp.id, sp);
    }
}

fn issue_code(shared: &Shared, world: &mut World, pending: &PendingAuthorize, user: &User) -> Response {
    let code = ids::opaque(48);
    world.oauth.codes.retain(|_, c| c.expires > shared.clock.now() - Duration::hours(1));
    world.oauth.codes.insert(
        code.clone(),
        AuthCode {
            client_id: pending.client_id,
            tenant: user.tenant,
            user: user.id,
            redirect_uri: pending.redirect_uri.clone(),
            scopes: pending.scopes.clone(),
            nonce: pending.nonce.clone(),
            pkce: pending.pkce.clone(),
            expires: shared.clock.now() + CODE_LIFETIME,
            redeemed: false,
        },
    );
    let mut params = vec![("code", code)];
    if let Some(state) = &pending.state {
        params.push(("state", state.clone()));
    }
    params.push(("session_state", ids::stable(&format!("session:{}", user.id)).to_string()));
    redirect_with(&pending.redirect_uri, &params, &pending.response_mode)
}

pub async fn sign_out(State(shared): State<Arc<Shared>>, headers: HeaderMap, Query(params): Query<Params>) -> Response {
    let mut world = shared.world();
    if let Some(user) = session_user(&world, &headers) {
        world.oauth.sessions.retain(|_, s| s.user != user);
    }
    let mut response = match params.get("post_logout_redirect_uri") {
        Some(uri) if uri.starts_with("http://") || uri.starts_with("https://") => found(uri),
        _ => pages::page(StatusCode::OK, "You signed out of your account", "<p>It's a good idea to close all browser windows.</p>"),
    };
    if let Ok(cookie) = HeaderValue::from_str(&format!("{SESSION_COOKIE}=; Path=/; Max-Age=0")) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
