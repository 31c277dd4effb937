//! The token endpoint: authorization_code (with PKCE), refresh_token and client_credentials, v2 and v1.

use super::TenantSegment;
use super::authorize::{app_not_found, missing};
use super::errors::{AadError, no_store};
use super::scopes::{self, POWER_BI_RESOURCE};
use crate::model::{App, Pkce, RefreshRecord, RequestedScopes, ServicePrincipal, User, World};
use crate::requestlog::CallerTag;
use crate::{Shared, ids};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::Rng;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use time::Duration;

const REFRESH_TOKEN_INACTIVITY: Duration = Duration::days(90);
const GRAPH_RESOURCE: &str = "00000003-0000-0000-c000-000000000000";

pub async fn token_v2(State(shared): State<Arc<Shared>>, Path(segment): Path<String>, headers: HeaderMap, body: bytes::Bytes) -> Response {
    token(&shared, &segment, &headers, &body, false)
}

pub async fn token_v1(State(shared): State<Arc<Shared>>, Path(segment): Path<String>, headers: HeaderMap, body: bytes::Bytes) -> Response {
    token(&shared, &segment, &headers, &body, true)
}

type Form = HashMap<String, String>;

/// What a successful grant hands out, before it is shaped as a v1 or v2 response.
struct Issued {
    access_token: String,
    lifetime: i64,
    /// Short permission names in the access token (`scp`), or empty for app tokens.
    scopes: BTreeSet<String>,
    resource: &'static str,
    refresh_token: Option<String>,
    id_token: Option<String>,
    client_info: Option<String>,
    caller: String,
}

fn token(shared: &Shared, segment: &str, headers: &HeaderMap, body: &[u8], v1: bool) -> Response {
    let form: Form = form_urlencoded::parse(body).into_owned().collect();
    let mut world = shared.world();
    match grant(shared, &mut world, segment, headers, &form, v1) {
        Ok(issued) => {
            let caller = issued.caller.clone();
            let mut response = axum::Json(if v1 { v1_body(shared, &issued) } else { v2_body(&issued) }).into_response();
            no_store(&mut response);
            response.extensions_mut().insert(CallerTag(caller));
            response
        }
        Err(error) => {
            let mut response = error.token_response(&shared.clock);
            if let Some(client) = form.get("client_id") {
                response.extensions_mut().insert(CallerTag(format!("app:{client}")));
            }
            response
        }
    }
}

fn grant(shared: &Shared, world: &mut World, segment: &str, headers: &HeaderMap, form: &Form, v1: bool) -> Result<Issued, AadError> {
    let grant_type = form.get("grant_type").ok_or_else(|| missing("grant_type"))?.clone();
    let tenant = TenantSegment::resolve(world, segment)?;
    let basic = basic_credentials(headers);
    let client_id =
        form.get("client_id").cloned().or_else(|| basic.as_ref().map(|(id, _)| id.clone())).ok_or_else(|| missing("client_id"))?;
    let app = ids::parse_guid(&client_id)
        .and_then(|id| world.apps.get(&id))
        .cloned()
        .ok_or_else(|| app_not_found(&client_id, tenant.tenant().map(|t| t.display_name.as_str())))?;
    if let Some(t) = tenant.tenant()
        && app.home_tenant != t.id
        && world.service_principal(t.id, app.client_id).is_none()
    {
        return Err(app_not_found(&client_id, Some(&t.display_name)));
    }
    authenticate_client(shared, &app, form, basic.map(|(_, secret)| secret))?;
    match grant_type.as_str() {
        "authorization_code" => redeem_code(shared, world, &tenant, &app, form),
        "refresh_token" => redeem_refresh_token(shared, world, &tenant, &app, form),
        "client_credentials" => client_credentials(shared, world, &tenant, &app, form, v1),
        other => Err(AadError::new(
            70003,
            "unsupported_grant_type",
            format!(
                "The app requested an unsupported grant type '{other}'. The sandbox supports authorization_code, refresh_token and client_credentials."
            ),
        )),
    }
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`, as RFC 6749 §2.3.1 says.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

fn authenticate_client(shared: &Shared, app: &App, form: &Form, basic_secret: Option<String>) -> Result<(), AadError> {
    if form.contains_key("client_assertion") {
        return Err(AadError::new(
            700027,
            "invalid_client",
            "Client assertion failed signature validation: the sandbox authenticates clients by client secret only. Send client_secret instead.",
        ));
    }
    let Some(secret) = form.get("client_secret").cloned().or(basic_secret) else {
        return Err(AadError::new(
            7000218,
            "invalid_client",
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };
    let Some(known) = app.secrets.iter().find(|s| s.value == secret) else {
        return Err(AadError::new(
            7000215,
            "invalid_client",
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                app.client_id
            ),
        ));
    };
    if known.expires <= shared.clock.now() {
        return Err(AadError::new(
            7000222,
            "invalid_client",
            format!(
                "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                app.client_id
            ),
        ));
    }
    Ok(())
}

fn invalid_grant(code: u32, message: impl Into<String>) -> AadError {
    AadError::new(code, "invalid_grant", message)
}

fn redeem_code(shared: &Shared, world: &mut World, tenant: &TenantSegment, app: &App, form: &Form) -> Result<Issued, AadError> {
    let code = form.get("code").ok_or_else(|| missing("code"))?;
    let record = world
        .oauth
        .codes
        .get(code)
        .cloned()
        .ok_or_else(|| invalid_grant(70000, "The provided value for the 'code' parameter is not valid."))?;
    if record.redeemed {
        return Err(invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    if record.expires <= shared.clock.now() {
        return Err(invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        ));
    }
    if record.client_id != app.client_id {
        return Err(invalid_grant(
            70000,
            "The provided value for the 'code' parameter is not valid: it was issued to another application.",
        ));
    }
    if let Some(t) = tenant.tenant()
        && t.id != record.tenant
    {
        return Err(invalid_grant(700005, "Provided Authorization Code is intended to use against other tenant, thus rejected."));
    }
    let redirect_uri = form.get("redirect_uri").ok_or_else(|| missing("redirect_uri"))?;
    if *redirect_uri != record.redirect_uri {
        return Err(invalid_grant(
            500112,
            format!(
                "The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.",
                record.redirect_uri
            ),
        ));
    }
    check_pkce(record.pkce.as_ref(), form.get("code_verifier"))?;
    if let Some(code) = world.oauth.codes.get_mut(code) {
        code.redeemed = true;
    }
    let user =
        world.users.get(&record.user).cloned().ok_or_else(|| invalid_grant(50034, "The user account does not exist in the directory."))?;
    issue_delegated(shared, world, app, &user, &record.scopes, record.nonce.as_deref(), form)
}

fn check_pkce(pkce: Option<&Pkce>, verifier: Option<&String>) -> Result<(), AadError> {
    let mismatch = || invalid_grant(501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.");
    let Some(pkce) = pkce else { return Ok(()) };
    let verifier = verifier.ok_or_else(mismatch)?;
    let matches = match pkce {
        Pkce::Plain(challenge) => verifier == challenge,
        Pkce::S256(challenge) => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == *challenge,
    };
    if matches { Ok(()) } else { Err(mismatch()) }
}

fn redeem_refresh_token(shared: &Shared, world: &mut World, tenant: &TenantSegment, app: &App, form: &Form) -> Result<Issued, AadError> {
    let token = form.get("refresh_token").ok_or_else(|| missing("refresh_token"))?;
    let record = world.oauth.refresh_tokens.get(token).cloned().ok_or_else(|| {
        invalid_grant(9002313, "Invalid request. Request is malformed or invalid: the refresh token is not one this directory issued.")
    })?;
    if record.revoked {
        return Err(invalid_grant(
            50173,
            "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
        ));
    }
    let now = shared.clock.now();
    if record.expires <= now {
        let last_use = record.expires - REFRESH_TOKEN_INACTIVITY;
        return Err(invalid_grant(
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {last_use} and was inactive for 90.00:00:00."
            ),
        ));
    }
    if record.client_id != app.client_id {
        return Err(invalid_grant(70000, "The refresh token was issued to a different client."));
    }
    if let Some(t) = tenant.tenant()
        && t.id != record.tenant
    {
        return Err(invalid_grant(700005, "The provided refresh token is intended to use against other tenant, thus rejected."));
    }
    let user =
        world.users.get(&record.user).cloned().ok_or_else(|| invalid_grant(50034, "The user account does not exist in the directory."))?;
    let mut scopes = record.scopes.clone();
    if let Some(asked) = form.get("scope") {
        let asked = scopes::parse(asked).map_err(|m| AadError::new(70011, "invalid_scope", m))?;
        let consented = world.consented_scopes(user.tenant, app.client_id, user.id);
        if !asked.effective(&app.delegated_permissions).is_subset(&consented) {
            return Err(consent_missing(app, &user));
        }
        scopes = RequestedScopes { offline_access: true, ..asked };
    }
    issue_delegated(shared, world, app, &user, &scopes, None, form)
}

fn consent_missing(app: &App, user: &User) -> AadError {
    invalid_grant(
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource. (user {})",
            app.client_id, app.display_name, user.upn
        ),
    )
}

fn random_lifetime() -> i64 {
    // Entra gives access tokens a random lifetime between 60 and 90 minutes.
    rand::thread_rng().gen_range(3600..=5400)
}

fn issue_delegated(
    shared: &Shared,
    world: &mut World,
    app: &App,
    user: &User,
    asked: &RequestedScopes,
    nonce: Option<&str>,
    form: &Form,
) -> Result<Issued, AadError> {
    let consented = world.consented_scopes(user.tenant, app.client_id, user.id);
    let wants_power_bi = asked.wants_resource();
    if wants_power_bi && consented.is_empty() {
        return Err(consent_missing(app, user));
    }
    let now = shared.clock.unix();
    let lifetime = random_lifetime();
    let (resource, scp) =
        if wants_power_bi { (POWER_BI_RESOURCE, consented.clone()) } else { (GRAPH_RESOURCE, BTreeSet::from(["User.Read".to_owned()])) };
    let scp_text = scp.iter().cloned().collect::<Vec<_>>().join(" ");
    let claims = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{}/", user.tenant),
        "iat": now, "nbf": now, "exp": now + lifetime,
        "acr": "1", "amr": ["pwd"], "appid": app.client_id, "appidacr": "1",
        "name": user.display_name, "oid": user.id, "puid": ids::stable(&format!("puid:{}", user.id)).simple().to_string()[..16].to_uppercase(),
        "scp": scp_text, "sub": ids::stable(&format!("sub:{}:{}", user.id, app.client_id)).simple().to_string(),
        "tid": user.tenant, "unique_name": user.upn, "upn": user.upn,
        "uti": ids::opaque(16), "ver": "1.0",
    });
    let access_token = shared.key.sign(&claims, true);
    let refresh_token =
        asked.offline_access.then(|| new_refresh_token(world, &shared.clock, app.client_id, user.tenant, user.id, asked.clone()));
    let id_token = asked.openid.then(|| id_token(shared, app, user, nonce, now));
    let client_info = (form.get("client_info").map(String::as_str) == Some("1"))
        .then(|| URL_SAFE_NO_PAD.encode(json!({"uid": user.id, "utid": user.tenant}).to_string()));
    Ok(Issued { access_token, lifetime, scopes: scp, resource, refresh_token, id_token, client_info, caller: user.upn.clone() })
}

/// A new refresh token for `user` and the app, valid for 90 days without use (also `issueRefreshToken`).
pub(crate) fn new_refresh_token(
    world: &mut World,
    clock: &pbi_clock::Clock,
    client_id: uuid::Uuid,
    tenant: uuid::Uuid,
    user: uuid::Uuid,
    scopes: RequestedScopes,
) -> String {
    let token = format!("1.{}", ids::opaque(96));
    world.oauth.refresh_tokens.insert(
        token.clone(),
        RefreshRecord { client_id, tenant, user, scopes, expires: clock.now() + REFRESH_TOKEN_INACTIVITY, revoked: false },
    );
    token
}

fn id_token(shared: &Shared, app: &App, user: &User, nonce: Option<&str>, now: i64) -> String {
    let mut claims = Map::new();
    claims.insert("aud".into(), json!(app.client_id));
    claims.insert("iss".into(), json!(format!("{}/{}/v2.0", shared.base_url, user.tenant)));
    claims.insert("iat".into(), json!(now));
    claims.insert("nbf".into(), json!(now));
    claims.insert("exp".into(), json!(now + 3600));
    claims.insert("name".into(), json!(user.display_name));
    claims.insert("oid".into(), json!(user.id));
    claims.insert("preferred_username".into(), json!(user.upn));
    claims.insert("sub".into(), json!(ids::stable(&format!("sub:{}:{}", user.id, app.client_id)).simple().to_string()));
    claims.insert("tid".into(), json!(user.tenant));
    claims.insert("ver".into(), json!("2.0"));
    if let Some(nonce) = nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    shared.key.sign(&Value::Object(claims), false)
}

fn client_credentials(
    shared: &Shared,
    world: &World,
    tenant: &TenantSegment,
    app: &App,
    form: &Form,
    v1: bool,
) -> Result<Issued, AadError> {
    let Some(tenant) = tenant.tenant() else {
        return Err(AadError::new(
            50059,
            "invalid_request",
            "No tenant-identifying information found in either the request or implied by any provided credentials. The client credentials flow needs a tenant id or domain, not /organizations or /common.",
        ));
    };
    if v1 {
        let resource = form.get("resource").ok_or_else(|| missing("resource"))?;
        scopes::parse_v1_resource(resource).map_err(|m| AadError::new(500011, "invalid_resource", m))?;
    } else {
        let scope = form.get("scope").ok_or_else(|| missing("scope"))?;
        let parsed = scopes::parse(scope).map_err(|m| AadError::new(70011, "invalid_scope", m))?;
        let only_default = parsed.default_scope
            && parsed.resource.is_empty()
            && !parsed.openid
            && !parsed.profile
            && !parsed.email
            && !parsed.offline_access;
        if !only_default {
            return Err(AadError::new(
                1002012,
                "invalid_scope",
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
    }
    let sp: ServicePrincipal = world
        .service_principal(tenant.id, app.client_id)
        .cloned()
        .ok_or_else(|| app_not_found(&app.client_id.to_string(), Some(&tenant.display_name)))?;
    let now = shared.clock.unix();
    let lifetime = random_lifetime();
    let claims = json!({
        "aud": POWER_BI_RESOURCE,
        "iss": format!("https://sts.windows.net/{}/", tenant.id),
        "iat": now, "nbf": now, "exp": now + lifetime,
        "aio": ids::opaque(24), "appid": app.client_id, "appidacr": "1",
        "idp": format!("https://sts.windows.net/{}/", tenant.id), "idtyp": "app",
        "oid": sp.id, "rh": ids::opaque(12), "sub": sp.id, "tid": tenant.id,
        "uti": ids::opaque(16), "ver": "1.0",
    });
    Ok(Issued {
        access_token: shared.key.sign(&claims, true),
        lifetime,
        scopes: BTreeSet::new(),
        resource: POWER_BI_RESOURCE,
        refresh_token: None,
        id_token: None,
        client_info: None,
        caller: format!("app:{}", app.client_id),
    })
}

fn v2_body(issued: &Issued) -> Value {
    let scope = if issued.scopes.is_empty() {
        format!("{}/.default", issued.resource)
    } else {
        issued.scopes.iter().map(|s| format!("{}/{s}", issued.resource)).collect::<Vec<_>>().join(" ")
    };
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": issued.lifetime,
        "ext_expires_in": issued.lifetime,
        "access_token": issued.access_token,
    });
    add_optional(&mut body, issued);
    body
}

/// v1 answers carry numbers as strings, and `expires_on`, `not_before` and `resource`.
fn v1_body(shared: &Shared, issued: &Issued) -> Value {
    let now = shared.clock.unix();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": issued.scopes.iter().cloned().collect::<Vec<_>>().join(" "),
        "expires_in": issued.lifetime.to_string(),
        "ext_expires_in": issued.lifetime.to_string(),
        "expires_on": (now + issued.lifetime).to_string(),
        "not_before": now.to_string(),
        "resource": issued.resource,
        "access_token": issued.access_token,
    });
    add_optional(&mut body, issued);
    body
}

fn add_optional(body: &mut Value, issued: &Issued) {
    for (name, value) in [("refresh_token", &issued.refresh_token), ("id_token", &issued.id_token), ("client_info", &issued.client_info)] {
        if let Some(value) = value {
            body[name] = json!(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%20app:s%3Acret%2B");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {encoded}")).expect("ascii"));
        assert_eq!(basic_credentials(&headers), Some(("my app".to_owned(), "s:cret+".to_owned())));
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_example() {
        let challenge = Pkce::S256("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned());
        assert!(check_pkce(Some(&challenge), Some(&"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned())).is_ok());
        assert_eq!(check_pkce(Some(&challenge), Some(&"wrong".to_owned())).map_err(|e| e.code), Err(501481));
        assert_eq!(check_pkce(Some(&challenge), None).map_err(|e| e.code), Err(501481));
        assert!(check_pkce(None, None).is_ok());
    }
}
