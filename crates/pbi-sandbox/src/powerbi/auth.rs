//! Who is calling: bearer-token verification and the tenant settings that gate service principals.

use super::error::{PbiError, PbiResult};
use crate::Shared;
use crate::entra::scopes::{POWER_BI_APP_ID, POWER_BI_RESOURCE};
use crate::model::{Workspace, WorkspaceRole, World};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError};
use uuid::Uuid;

/// The verified caller of a Power BI request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Uuid,
    /// The user's object id, or the service principal's.
    pub principal: Uuid,
    pub kind: CallerKind,
    /// Short permission names from `scp` (users only).
    pub scopes: BTreeSet<String>,
    /// How the request log names the caller.
    pub label: String,
    /// When the caller's access token expires (Unix seconds); embed tokens cannot outlive it.
    pub token_expires: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    User { power_bi_admin: bool },
    ServicePrincipal { client_id: Uuid },
}

const VERIFIED_CACHE_LIMIT: usize = 50_000;

/// Which family of APIs a request is for: the admin APIs have their own tenant settings and rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Regular,
    Admin,
}

/// Verifies the bearer token, then checks the caller may use this family of Power BI APIs at all.
pub fn authenticate(shared: &Shared, world: &World, headers: &HeaderMap, api: Api) -> PbiResult<Caller> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(PbiError::invalid_token)?;
    let claims = verified_claims(shared, token)?;
    let now = shared.clock.unix();
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let token_expires = number("exp").unwrap_or_default();
    if token_expires <= now {
        return Err(PbiError::token_expired());
    }
    if number("nbf").is_some_and(|nbf| nbf > now + 300) {
        return Err(PbiError::invalid_token());
    }
    let audience = claims.get("aud").and_then(Value::as_str).unwrap_or_default();
    if !audience.eq_ignore_ascii_case(POWER_BI_RESOURCE) && !audience.eq_ignore_ascii_case(POWER_BI_APP_ID) {
        return Err(PbiError::invalid_token());
    }
    let uuid_claim = |name: &str| claims.get(name).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok());
    let (Some(tenant), Some(principal)) = (uuid_claim("tid"), uuid_claim("oid")) else { return Err(PbiError::invalid_token()) };
    let is_app = claims.get("idtyp").and_then(Value::as_str) == Some("app") || claims.get("scp").is_none();
    if is_app {
        let client_id = uuid_claim("appid").or_else(|| uuid_claim("azp")).ok_or_else(PbiError::invalid_token)?;
        let settings = &world.tenants.get(&tenant).ok_or_else(PbiError::invalid_token)?.settings;
        let allowed = match api {
            Api::Regular => settings.service_principals_enabled && world.is_in_group(principal, settings.service_principals_group),
            Api::Admin => {
                settings.service_principals_admin_apis && world.is_in_group(principal, settings.service_principals_admin_apis_group)
            }
        };
        if !allowed {
            return Err(PbiError::not_authorized(match api {
                Api::Regular => {
                    "The service principal is not allowed to use Power BI APIs: enable the tenant setting 'Service principals can use Fabric APIs' and add the service principal to the security group it names."
                }
                Api::Admin => {
                    "The service principal is not allowed to use the read-only admin APIs: enable the tenant setting 'Service principals can access read-only admin APIs' and add the service principal to the security group it names."
                }
            }));
        }
        return Ok(Caller {
            tenant,
            principal,
            kind: CallerKind::ServicePrincipal { client_id },
            scopes: BTreeSet::new(),
            label: format!("app:{client_id}"),
            token_expires,
        });
    }
    let user = world.users.get(&principal).filter(|u| u.tenant == tenant).ok_or_else(PbiError::invalid_token)?;
    if !user.power_bi_licensed {
        return Err(PbiError::coded(
            StatusCode::FORBIDDEN,
            "PowerBINotLicensedException",
            format!(
                "The user {} has no Power BI license. Assign a Power BI (Free, Pro or Premium Per User) license in the Microsoft 365 admin center.",
                user.upn
            ),
        ));
    }
    let scopes: BTreeSet<String> =
        claims.get("scp").and_then(Value::as_str).unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    if api == Api::Admin && !(user.power_bi_admin && (scopes.contains("Tenant.Read.All") || scopes.contains("Tenant.ReadWrite.All"))) {
        return Err(PbiError::not_authorized(format!(
            "The admin APIs need a Fabric (Power BI) administrator with the delegated permission Tenant.Read.All or Tenant.ReadWrite.All; {} is {}an administrator.",
            user.upn,
            if user.power_bi_admin { "" } else { "not " }
        )));
    }
    Ok(Caller {
        tenant,
        principal,
        kind: CallerKind::User { power_bi_admin: user.power_bi_admin },
        scopes,
        label: user.upn.clone(),
        token_expires,
    })
}

fn verified_claims(shared: &Shared, token: &str) -> PbiResult<Arc<Value>> {
    if let Some(claims) = shared.verified_tokens.lock().unwrap_or_else(PoisonError::into_inner).get(token) {
        return Ok(claims.clone());
    }
    let claims = Arc::new(shared.key.verify(token).map_err(|_| PbiError::invalid_token())?);
    let mut cache = shared.verified_tokens.lock().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= VERIFIED_CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(token.to_owned(), claims.clone());
    Ok(claims)
}

impl Caller {
    /// A user must hold one of `any_of` in `scp`; service principals are judged by workspace roles instead.
    pub fn require_scope(&self, any_of: &[&str]) -> PbiResult<()> {
        if matches!(self.kind, CallerKind::ServicePrincipal { .. }) || any_of.iter().any(|s| self.scopes.contains(*s)) {
            return Ok(());
        }
        Err(PbiError::not_authorized(format!(
            "The access token lacks the required permission: one of {} (granted: {}).",
            any_of.join(", "),
            self.scopes.iter().cloned().collect::<Vec<_>>().join(" ")
        )))
    }

    pub fn is_service_principal(&self) -> bool {
        matches!(self.kind, CallerKind::ServicePrincipal { .. })
    }

    pub fn role_in(&self, world: &World, workspace: &Workspace) -> Option<WorkspaceRole> {
        if workspace.tenant != self.tenant {
            return None;
        }
        world.role_in(workspace, self.principal)
    }
}
