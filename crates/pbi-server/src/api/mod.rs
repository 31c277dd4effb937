//! The JSON API under `/api/v1`: the same operations as the web pages (`ops`, `admin`), for scripts with an
//! API token (`Authorization: Bearer pbb_…`) or for the pages' own scripts with the session cookie. Its
//! OpenAPI document is generated from these handlers (utoipa) and served at `/api/v1/openapi.json`.

mod account;
mod admin;
mod apps;
mod audit;
mod connect;
mod definitions;
mod edge;
mod jobs;
mod subscriptions;
mod workspaces;

pub use connect::AppCaller;
pub use edge::ApiError;

use crate::AppState;
use crate::session::SESSION_COOKIE;
use edge::{ErrorBody, ErrorDetail};
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pbi-bridge API",
        description = "pbi-bridge's JSON API: the same operations as its web pages, on behalf of the user who owns the API token. \
                       Send `Authorization: Bearer <token>` (make a token in My settings). Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "Account", description = "Who is calling, and their API tokens"),
        (name = "Power BI connection", description = "The caller's own Power BI connection (made in the browser: My settings → Get started)"),
        (name = "Workspaces", description = "pbi-bridge workspaces and the Power BI tiles pinned to them"),
        (name = "Subscriptions", description = "Report items pinned to Power BI dashboards and delivered on schedules (seed 001)"),
        (name = "Connect", description = "For an app's backend, with the app's secret key (`Authorization: Bearer pbs_…`): connect sessions for its end users (seed 002)"),
        (name = "Administration", description = "The Power BI configuration, users, the audit log and background jobs; administrators only"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        components.add_security_scheme(
            "appKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An app's secret key (pbs_…), for the Connect operations"))
                    .build(),
            ),
        );
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))));
    }
}

/// The API's routes (to nest under `/api/v1`) and its OpenAPI document, built together.
pub fn router() -> (axum::Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(account::me))
        .routes(routes!(workspaces::list_workspaces, workspaces::create_workspace))
        .routes(routes!(workspaces::get_workspace, workspaces::update_workspace, workspaces::delete_workspace))
        .routes(routes!(workspaces::list_tiles))
        .routes(routes!(workspaces::pin_tiles))
        .routes(routes!(workspaces::unpin))
        .routes(routes!(workspaces::reorder_pins))
        .routes(routes!(workspaces::tile_token))
        .routes(routes!(workspaces::list_companies))
        .routes(routes!(subscriptions::list_items))
        .merge(
            // An item's rows are the one body that is large by nature.
            OpenApiRouter::new()
                .routes(routes!(subscriptions::put_item_rows))
                .layer(axum::extract::DefaultBodyLimit::max(subscriptions::MAX_ROWS_BODY_BYTES)),
        )
        .routes(routes!(subscriptions::list_subscriptions, subscriptions::pin_item))
        .routes(routes!(subscriptions::get_subscription, subscriptions::update_subscription, subscriptions::delete_subscription))
        .routes(routes!(subscriptions::run_subscription))
        .routes(routes!(subscriptions::check_pin))
        .routes(routes!(subscriptions::list_deliveries))
        .routes(routes!(subscriptions::get_templates, subscriptions::create_templates))
        .routes(routes!(subscriptions::check_templates))
        .routes(routes!(definitions::list_data_sources, definitions::create_data_source))
        .routes(routes!(definitions::get_data_source, definitions::update_data_source, definitions::delete_data_source))
        .routes(routes!(definitions::list_defined_items, definitions::create_item))
        .routes(routes!(definitions::get_defined_item, definitions::update_item, definitions::delete_item))
        .routes(routes!(account::get_connection, account::disconnect))
        .routes(routes!(account::list_tokens, account::create_token))
        .routes(routes!(account::revoke_token))
        .routes(routes!(admin::get_power_bi_config, admin::put_power_bi_config))
        .routes(routes!(admin::validate_power_bi_config))
        .routes(routes!(admin::remove_application_key))
        .routes(routes!(audit::audit_log))
        .routes(routes!(jobs::jobs_overview))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(apps::list_apps, apps::create_app))
        .routes(routes!(apps::get_app, apps::update_app, apps::delete_app))
        .routes(routes!(apps::rotate_app_key))
        .routes(routes!(connect::create_connect_session))
        .routes(routes!(connect::get_connect_session))
        .routes(routes!(connect::list_app_connections))
        .routes(routes!(connect::get_app_connection, connect::delete_app_connection))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::update_user))
        .split_for_parts();
    doc.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    // The proxy is Power BI's API, not this one: described in docs/connect.md, not in the document.
    let router = router
        .route("/proxy/powerbi/{*path}", axum::routing::any(crate::proxy::forward))
        .fallback(|| async { ApiError(crate::problem::Problem::NotFound("API route")) });
    (router, doc)
}
