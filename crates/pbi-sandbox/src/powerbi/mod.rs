//! The Power BI REST half of the sandbox: `/v1.0/myorg/...` in its My-workspace and `groups/{id}` forms.

mod admin;
mod auth;
mod content;
mod datasets;
mod embed_token;
mod error;
mod imports;
mod odata;
mod queries;

pub use auth::Caller;

/// Verifies a bearer token for the regular (non-admin) APIs; the embed pages use it for `tokenType` Aad.
pub fn authenticate_regular(shared: &Shared, world: &World, headers: &axum::http::HeaderMap) -> PbiResult<Caller> {
    auth::authenticate(shared, world, headers, auth::Api::Regular)
}
pub use error::{PbiError, PbiResult};

use crate::Shared;
use crate::ids;
use crate::model::{Workspace, WorkspaceRole, World};
use crate::requestlog::CallerTag;
use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::{Arc, MutexGuard};
use uuid::Uuid;

/// Larger bodies get 413, as the live service answers oversized requests.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

pub fn routes() -> Router<Arc<Shared>> {
    let content = Router::new()
        .route("/dashboards", get(content::list_dashboards).post(content::add_dashboard))
        .route("/dashboards/{dashboardId}", get(content::get_dashboard).delete(content::delete_dashboard))
        .route("/dashboards/{dashboardId}/tiles", get(content::list_tiles))
        .route("/dashboards/{dashboardId}/tiles/{tileId}", get(content::get_tile))
        .route("/dashboards/{dashboardId}/tiles/{tileId}/Clone", post(content::clone_tile))
        .route("/reports", get(content::list_reports))
        .route("/reports/{reportId}", get(content::get_report).delete(content::delete_report))
        .route("/reports/{reportId}/Clone", post(content::clone_report))
        .route("/datasets", get(datasets::list_datasets).post(datasets::create_dataset))
        .route("/datasets/{datasetId}", get(datasets::get_dataset).delete(datasets::delete_dataset))
        .route("/datasets/{datasetId}/tables", get(datasets::list_tables))
        .route("/datasets/{datasetId}/executeQueries", post(queries::execute_queries))
        .route("/datasets/{datasetId}/tables/{tableName}", axum::routing::put(datasets::put_table))
        .route("/datasets/{datasetId}/tables/{tableName}/rows", post(datasets::post_rows).delete(datasets::delete_rows))
        .route("/datasets/{datasetId}/refreshes", post(datasets::refresh).get(datasets::refresh_history))
        .route("/imports", post(imports::create))
        .route("/imports/{importId}", get(imports::get));
    // Embed tokens exist only in the workspace form (and the multi-resource /GenerateToken).
    let workspace_only = Router::new()
        .route("/reports/GenerateToken", post(embed_token::report_create))
        .route("/reports/{reportId}/GenerateToken", post(embed_token::report))
        .route("/dashboards/{dashboardId}/GenerateToken", post(embed_token::dashboard))
        .route("/dashboards/{dashboardId}/tiles/{tileId}/GenerateToken", post(embed_token::tile))
        .route("/datasets/{datasetId}/GenerateToken", post(embed_token::dataset));
    Router::new()
        .route("/v1.0/myorg/GenerateToken", post(embed_token::multi))
        .route("/v1.0/myorg/admin/groups", get(admin::groups))
        .route("/v1.0/myorg/admin/workspaces/modified", get(admin::modified))
        .route("/v1.0/myorg/admin/workspaces/getInfo", post(admin::get_info))
        .route("/v1.0/myorg/admin/workspaces/scanStatus/{scanId}", get(admin::scan_status))
        .route("/v1.0/myorg/admin/workspaces/scanResult/{scanId}", get(admin::scan_result))
        .route("/v1.0/myorg/groups", get(content::list_groups).post(content::create_group))
        .route("/v1.0/myorg/groups/{groupId}", get(content::get_group))
        .nest("/v1.0/myorg/groups/{groupId}", content.clone().merge(workspace_only))
        .nest("/v1.0/myorg", content)
}

/// Unknown routes: 404 with Power BI's body, whichever service the path looks like.
pub async fn unknown_route() -> Response {
    PbiError::coded(StatusCode::NOT_FOUND, "NotFound", "No HTTP resource was found that matches the request URI.").into_response()
}

/// A verified request: the caller, the path parameters, and a lock on the world.
/// Handlers take this, do their work synchronously, and answer; the lock is never held across an await.
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub caller: Caller,
    params: Vec<(String, String)>,
}

impl FromRequestParts<Arc<Shared>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        let State(shared) = State::<Arc<Shared>>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let raw = RawPathParams::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let params = raw.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let api = if parts.uri.path().starts_with("/v1.0/myorg/admin/") { auth::Api::Admin } else { auth::Api::Regular };
        let caller = {
            let world = shared.world();
            auth::authenticate(&shared, &world, &parts.headers, api).map_err(IntoResponse::into_response)?
        };
        Ok(Ctx { shared, caller, params })
    }
}

impl Ctx {
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.shared.world()
    }

    /// A path parameter as written in the URL.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A GUID path parameter; a malformed one is a 400 naming the parameter.
    pub fn id(&self, name: &str) -> PbiResult<Uuid> {
        let raw = self.param(name).unwrap_or_default();
        ids::parse_guid(raw).ok_or_else(|| PbiError::bad_request(format!("Invalid value for '{name}': '{raw}' is not a GUID.")))
    }

    /// The workspace the URL addresses: `groups/{groupId}`, or the caller's My workspace.
    pub fn workspace(&self, world: &mut World) -> PbiResult<(Uuid, WorkspaceRole)> {
        match self.param("groupId") {
            Some(_) => {
                let id = self.id("groupId")?;
                let workspace = world.workspaces.get(&id).ok_or_else(PbiError::not_found)?;
                let role = self.caller.role_in(world, workspace).ok_or_else(PbiError::not_found)?;
                Ok((id, role))
            }
            None if self.caller.is_service_principal() => Err(PbiError::not_authorized(
                "Service principals have no My workspace: use the workspace form of the API (/groups/{groupId}/...) with a workspace the service principal was added to.",
            )),
            None => Ok((my_workspace(world, &self.caller), WorkspaceRole::Admin)),
        }
    }

    /// The odata prefix and URL prefix of the addressed workspace (`groups/{id}/` or empty).
    pub fn scope_prefix(&self) -> String {
        self.param("groupId").map_or_else(String::new, |g| format!("groups/{g}/"))
    }

    /// Puts the caller's name on a response for the request log.
    pub fn tag(&self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        response.extensions_mut().insert(CallerTag(self.caller.label.clone()));
        response
    }

    pub fn answer<T: IntoResponse>(&self, result: PbiResult<T>) -> Response {
        match result {
            Ok(ok) => self.tag(ok),
            Err(err) => self.tag(err),
        }
    }
}

/// The caller's My workspace, created on first use as the service does for a new user.
pub(super) fn my_workspace(world: &mut World, caller: &Caller) -> Uuid {
    if let Some(id) = world.personal_workspace_of(caller.principal) {
        return id;
    }
    let id = ids::stable(&format!("my-workspace:{}", caller.principal));
    let name =
        world.users.get(&caller.principal).map_or_else(|| "My workspace".to_owned(), |u| format!("PersonalWorkspace {}", u.display_name));
    world.workspaces.insert(
        id,
        Workspace {
            id,
            tenant: caller.tenant,
            name,
            description: String::new(),
            personal_owner: Some(caller.principal),
            members: Default::default(),
            capacity_id: None,
            modified: time::OffsetDateTime::UNIX_EPOCH,
        },
    );
    id
}
