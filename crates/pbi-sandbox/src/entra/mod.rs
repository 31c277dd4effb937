//! The Entra ID (Azure AD) half of the sandbox: discovery, keys, authorize, consent and token endpoints.

pub(crate) mod authorize;
mod errors;
pub mod scopes;
pub(crate) mod token;

pub use errors::AadError;

use crate::Shared;
use crate::model::{Tenant, World};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery_v2))
        .route("/{tenant}/.well-known/openid-configuration", get(discovery_v1))
        .route("/{tenant}/discovery/v2.0/keys", get(keys))
        .route("/{tenant}/discovery/keys", get(keys))
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize::authorize_v2))
        .route("/{tenant}/oauth2/authorize", get(authorize::authorize_v1))
        .route("/{tenant}/v2.0/adminconsent", get(authorize::admin_consent))
        .route("/{tenant}/login", post(authorize::sign_in))
        .route("/{tenant}/consent", post(authorize::consent))
        .route("/{tenant}/oauth2/v2.0/token", post(token::token_v2))
        .route("/{tenant}/oauth2/token", post(token::token_v1))
        .route("/{tenant}/oauth2/v2.0/logout", get(authorize::sign_out))
}

/// What the tenant segment of an Entra URL stands for.
#[derive(Debug, Clone)]
pub enum TenantSegment {
    Tenant(Tenant),
    /// `organizations` or `common`: the user's home tenant decides.
    Any,
}

impl TenantSegment {
    pub fn resolve(world: &World, segment: &str) -> Result<Self, AadError> {
        match segment.to_ascii_lowercase().as_str() {
            "organizations" | "common" => Ok(TenantSegment::Any),
            "consumers" => Err(AadError::new(
                500207,
                "invalid_request",
                "The account type can't be used for the resource you're trying to access: Power BI needs work or school accounts, and the sandbox has no consumer (Microsoft account) directory.",
            )),
            _ => world.tenant_by_segment(segment).cloned().map(TenantSegment::Tenant).ok_or_else(|| {
                AadError::new(
                    90002,
                    "invalid_tenant",
                    format!("Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
                )
            }),
        }
    }

    pub fn tenant(&self) -> Option<&Tenant> {
        match self {
            TenantSegment::Tenant(t) => Some(t),
            TenantSegment::Any => None,
        }
    }
}

async fn discovery_v2(State(shared): State<Arc<Shared>>, Path(segment): Path<String>) -> Response {
    let resolved = TenantSegment::resolve(&shared.world(), &segment);
    let tenant = match resolved {
        Ok(t) => t,
        Err(e) => return e.token_response(&shared.clock),
    };
    let base = &shared.base_url;
    let issuer_tenant = tenant.tenant().map_or_else(|| "{tenantid}".to_owned(), |t| t.id.to_string());
    Json(json!({
        "token_endpoint": format!("{base}/{segment}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{segment}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{issuer_tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": format!("{base}/{segment}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{segment}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{segment}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{segment}/kerberos"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
        "code_challenge_methods_supported": ["plain", "S256"],
    }))
    .into_response()
}

async fn discovery_v1(State(shared): State<Arc<Shared>>, Path(segment): Path<String>) -> Response {
    let resolved = TenantSegment::resolve(&shared.world(), &segment);
    let tenant = match resolved {
        Ok(t) => t,
        Err(e) => return e.token_response(&shared.clock),
    };
    let base = &shared.base_url;
    let issuer_tenant = tenant.tenant().map_or_else(|| "{tenantid}".to_owned(), |t| t.id.to_string());
    Json(json!({
        "token_endpoint": format!("{base}/{segment}/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{segment}/discovery/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": format!("https://sts.windows.net/{issuer_tenant}/"),
        "authorization_endpoint": format!("{base}/{segment}/oauth2/authorize"),
        "end_session_endpoint": format!("{base}/{segment}/oauth2/logout"),
        "code_challenge_methods_supported": ["plain", "S256"],
    }))
    .into_response()
}

async fn keys(State(shared): State<Arc<Shared>>) -> Response {
    let issuer = format!("{}/{{tenantid}}/v2.0", shared.base_url);
    Json(json!({"keys": [shared.key.jwk(&issuer)]})).into_response()
}
