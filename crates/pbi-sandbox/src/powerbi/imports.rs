//! `.pbix` imports: a multipart upload becomes a report and a dataset after a short `Publishing` phase.
//! The sandbox checks the file is a ZIP package (as a .pbix is) but does not read the model inside.

use super::Ctx;
use super::error::{PbiError, PbiResult};
use super::odata;
use crate::model::{Dataset, Import, Report, World};
use axum::extract::{Multipart, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use time::Duration;
use uuid::Uuid;

const PUBLISHING: Duration = Duration::seconds(5);
const CONFLICT_MODES: &[&str] = &["Ignore", "Abort", "Overwrite", "CreateOrOverwrite", "GenerateUniqueName"];

type QueryPairs = Query<Vec<(String, String)>>;

/// The uploaded file: its field's file name and content.
async fn read_file(mut multipart: Multipart) -> PbiResult<(Option<String>, Vec<u8>)> {
    let bad =
        |e: axum::extract::multipart::MultipartError| PbiError::bad_request(format!("The body is not valid multipart/form-data: {e}."));
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(bad)?;
        if file_name.is_some() || !bytes.is_empty() {
            return Ok((file_name, bytes.to_vec()));
        }
    }
    Err(PbiError::bad_request("The import has no file: send the .pbix as a multipart/form-data file part."))
}

pub async fn create(
    ctx: Ctx,
    Query(query): QueryPairs,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let upload = match multipart {
        Ok(multipart) => read_file(multipart).await,
        Err(e) => Err(PbiError::bad_request(format!("An import is a multipart/form-data upload: {}", e.body_text()))),
    };
    let result = (|| {
        ctx.caller.require_scope(&["Dataset.ReadWrite.All", "Content.Create"])?;
        let (file_name, content) = upload?;
        let name = query.iter().find(|(k, _)| k == "datasetDisplayName").map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty());
        let name =
            name.ok_or_else(|| PbiError::bad_request("'datasetDisplayName' is required: the name for the imported dataset and report."))?;
        let conflict = query.iter().find(|(k, _)| k == "nameConflict").map_or("Ignore", |(_, v)| v.as_str());
        let conflict = CONFLICT_MODES
            .iter()
            .find(|m| m.eq_ignore_ascii_case(conflict))
            .ok_or_else(|| PbiError::bad_request(format!("nameConflict '{conflict}' is not one of {}.", CONFLICT_MODES.join(", "))))?;
        if !content.starts_with(b"PK\x03\x04") {
            return Err(PbiError::bad_request(format!(
                "'{}' is not a .pbix file: a .pbix is a ZIP package.",
                file_name.unwrap_or_default()
            )));
        }
        let now = ctx.shared.clock.now();
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        if !role.can_write() {
            return Err(PbiError::not_authorized("Importing needs Contributor or higher in the workspace."));
        }
        let name = resolve_conflict(&mut world, workspace, &name, conflict)?;
        let import =
            Import { id: Uuid::new_v4(), workspace, name: name.clone(), created: now, report: Uuid::new_v4(), dataset: Uuid::new_v4() };
        let configured_by = world.users.get(&ctx.caller.principal).map_or_else(|| ctx.caller.label.clone(), |u| u.upn.clone());
        world.datasets.insert(
            import.dataset,
            Dataset {
                id: import.dataset,
                workspace,
                name: name.clone(),
                description: String::new(),
                configured_by,
                created: now,
                push: None,
                tables: Vec::new(),
                relationships: Vec::new(),
                refreshes: Vec::new(),
                upstream_dataflows: Vec::new(),
                datasource_usages: Vec::new(),
                expressions: Vec::new(),
            },
        );
        world.reports.insert(
            import.report,
            Report {
                id: import.report,
                workspace,
                name,
                description: String::new(),
                dataset_id: Some(import.dataset),
                paginated: false,
                created: now,
                modified: now,
            },
        );
        if let Some(w) = world.workspaces.get_mut(&workspace) {
            w.modified = now;
        }
        let id = import.id;
        world.imports.insert(id, import);
        Ok((StatusCode::ACCEPTED, odata::json_response(json!({"id": id}))))
    })();
    ctx.answer(result)
}

/// Applies `nameConflict` against the workspace's datasets and says what name the import gets.
fn resolve_conflict(world: &mut World, workspace: Uuid, name: &str, conflict: &str) -> PbiResult<String> {
    let existing: Vec<Uuid> =
        world.datasets.values().filter(|d| d.workspace == workspace && d.name.eq_ignore_ascii_case(name)).map(|d| d.id).collect();
    match conflict {
        "Abort" if !existing.is_empty() => Err(PbiError::coded(
            StatusCode::CONFLICT,
            "DuplicatePackageNotFoundError",
            format!("A dataset named '{name}' already exists and nameConflict is Abort."),
        )),
        "Overwrite" if existing.is_empty() => {
            Err(PbiError::bad_request(format!("nameConflict Overwrite needs an existing dataset named '{name}'; use CreateOrOverwrite.")))
        }
        "Overwrite" | "CreateOrOverwrite" => {
            world.datasets.retain(|id, _| !existing.contains(id));
            world.reports.retain(|_, r| r.dataset_id.is_none_or(|d| !existing.contains(&d)));
            Ok(name.to_owned())
        }
        "GenerateUniqueName" => Ok((1..)
            .map(|n| if n == 1 { name.to_owned() } else { format!("{name} ({n})") })
            .find(|candidate| !world.datasets.values().any(|d| d.workspace == workspace && d.name.eq_ignore_ascii_case(candidate)))
            .unwrap_or_else(|| name.to_owned())),
        _ => Ok(name.to_owned()),
    }
}

pub async fn get(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(&["Dataset.Read.All", "Dataset.ReadWrite.All", "Content.Create", "Report.Read.All"])?;
        let now = ctx.shared.clock.now();
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let id = ctx.id("importId")?;
        let import = world.imports.get(&id).filter(|i| i.workspace == workspace).ok_or_else(PbiError::not_found)?;
        let at = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let done = now >= import.created + PUBLISHING;
        let mut body = json!({"id": import.id, "name": import.name, "importState": if done { "Succeeded" } else { "Publishing" }, "createdDateTime": at(import.created), "updatedDateTime": at(if done { import.created + PUBLISHING } else { import.created })});
        if done {
            let base = &ctx.shared.base_url;
            let group = ctx.param("groupId").map_or_else(|| "me".to_owned(), str::to_owned);
            body["reports"] = json!([{"id": import.report, "name": import.name, "reportType": "PowerBIReport", "webUrl": format!("{base}/groups/{group}/reports/{}", import.report), "embedUrl": format!("{base}/reportEmbed?reportId={}", import.report)}]);
            body["datasets"] = json!([{"id": import.dataset, "name": import.name, "addRowsAPIEnabled": false, "isRefreshable": true, "webUrl": format!("{base}/groups/{group}/datasets/{}", import.dataset)}]);
        } else {
            body["reports"] = Value::Array(Vec::new());
            body["datasets"] = Value::Array(Vec::new());
        }
        Ok(odata::json_response(body))
    })();
    ctx.answer(result)
}
