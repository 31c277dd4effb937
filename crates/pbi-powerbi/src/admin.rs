//! The admin and embedding calls: the metadata scanner, `admin/groups`, embed tokens, and `.pbix` imports.

use crate::api::Workspace;
use crate::client::{Body, Part, PowerBiClient, Request};
use crate::error::{ErrorKind, PowerBiError, Result};
use crate::models::{EmbedToken, ODataList};
use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::time::Duration;
use uuid::Uuid;

/// What a scan should include (each is a `getInfo` query flag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanOptions {
    pub lineage: bool,
    pub datasource_details: bool,
    pub dataset_schema: bool,
    pub dataset_expressions: bool,
    pub artifact_users: bool,
}

impl ScanOptions {
    pub fn everything() -> Self {
        Self { lineage: true, datasource_details: true, dataset_schema: true, dataset_expressions: true, artifact_users: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanStatus {
    pub id: Uuid,
    #[serde(default)]
    pub created_date_time: Option<String>,
    /// `NotStarted`, `Running`, `Succeeded` or `Failed`.
    pub status: String,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Import {
    pub id: Uuid,
    #[serde(default)]
    pub name: Option<String>,
    /// `Publishing`, `Succeeded` or `Failed`.
    #[serde(default)]
    pub import_state: Option<String>,
    #[serde(default)]
    pub reports: Vec<Map<String, Value>>,
    #[serde(default)]
    pub datasets: Vec<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What to do when a dataset of that name already exists (`nameConflict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameConflict {
    #[default]
    Ignore,
    Abort,
    Overwrite,
    CreateOrOverwrite,
    GenerateUniqueName,
}

impl PowerBiClient {
    /// Workspaces changed since `since` (30 minutes to 30 days ago), or all; a bare array of ids.
    pub async fn modified_workspaces(&self, since: Option<time::OffsetDateTime>, exclude_personal: bool) -> Result<Vec<Uuid>> {
        let mut request = Request::get("admin/workspaces/modified");
        if let Some(since) = since {
            let text = since
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(|e| PowerBiError::invalid(format!("modifiedSince: {e}")))?;
            request = request.query("modifiedSince", text);
        }
        if exclude_personal {
            request = request.query("excludePersonalWorkspaces", "true");
        }
        #[derive(Deserialize)]
        struct Id {
            id: Uuid,
        }
        Ok(self.execute(&request).await?.decode::<Vec<Id>>()?.into_iter().map(|w| w.id).collect())
    }

    /// Starts a scan of 1 to 100 workspaces.
    pub async fn start_scan(&self, workspaces: &[Uuid], options: ScanOptions) -> Result<ScanStatus> {
        if workspaces.is_empty() || workspaces.len() > 100 {
            return Err(PowerBiError::invalid(format!("a scan covers 1 to 100 workspaces; {} were given", workspaces.len())));
        }
        let flag = |on: bool| if on { "true" } else { "false" };
        let request = Request::new(Method::POST, "admin/workspaces/getInfo")
            .query("lineage", flag(options.lineage))
            .query("datasourceDetails", flag(options.datasource_details))
            .query("datasetSchema", flag(options.dataset_schema))
            .query("datasetExpressions", flag(options.dataset_expressions))
            .query("getArtifactUsers", flag(options.artifact_users))
            .json(&json!({"workspaces": workspaces}))?;
        self.execute(&request).await?.decode()
    }

    pub async fn scan_status(&self, scan: Uuid) -> Result<ScanStatus> {
        self.execute(&Request::get(format!("admin/workspaces/scanStatus/{scan}"))).await?.decode()
    }

    pub async fn scan_result(&self, scan: Uuid) -> Result<Value> {
        self.execute(&Request::get(format!("admin/workspaces/scanResult/{scan}"))).await?.decode()
    }

    /// Polls `scan` every `poll_every` until it succeeds (then returns its result), fails, or `give_up_after`
    /// passes. Waits go through the client's `Sleep`, so tests move a clock instead of waiting.
    pub async fn wait_for_scan(&self, scan: Uuid, poll_every: Duration, give_up_after: Duration) -> Result<Value> {
        let mut waited = Duration::ZERO;
        loop {
            let status = self.scan_status(scan).await?;
            match status.status.as_str() {
                "Succeeded" => return self.scan_result(scan).await,
                "Failed" => {
                    return Err(PowerBiError::new(ErrorKind::Service {
                        status: 200,
                        message: format!("scan {scan} failed: {}", status.error.unwrap_or_default()),
                    }));
                }
                _ if waited >= give_up_after => {
                    return Err(PowerBiError::new(ErrorKind::Service {
                        status: 200,
                        message: format!("scan {scan} was still {} after {}s", status.status, waited.as_secs()),
                    }));
                }
                _ => {
                    self.sleeper().sleep(poll_every).await;
                    waited += poll_every;
                }
            }
        }
    }

    /// `GET admin/groups` (`$top` is required there: 1 to 5000); `expand` e.g. `["users", "reports"]`.
    pub async fn admin_groups(&self, top: u32, skip: u32, filter: Option<&str>, expand: &[&str]) -> Result<Vec<Map<String, Value>>> {
        if !(1..=5000).contains(&top) {
            return Err(PowerBiError::invalid(format!("admin/groups needs $top from 1 to 5000; got {top}")));
        }
        let mut request = Request::get("admin/groups").query("$top", top);
        if skip > 0 {
            request = request.query("$skip", skip);
        }
        if let Some(filter) = filter {
            request = request.query("$filter", filter);
        }
        if !expand.is_empty() {
            request = request.query("$expand", expand.join(","));
        }
        Ok(self.execute(&request).await?.decode::<ODataList<Map<String, Value>>>()?.value)
    }

    /// `GenerateToken` for a report, dashboard or dataset in a workspace (`kind` is `reports`, `dashboards`
    /// or `datasets`), with a `GenerateTokenRequest` body such as `{"accessLevel": "View"}`.
    pub async fn embed_token(&self, group: Uuid, kind: &str, id: &str, body: &Value) -> Result<EmbedToken> {
        if !["reports", "dashboards", "datasets"].contains(&kind) {
            return Err(PowerBiError::invalid(format!("embed tokens are for reports, dashboards or datasets, not '{kind}'")));
        }
        self.execute(&Request::new(Method::POST, format!("groups/{group}/{kind}/{id}/GenerateToken")).json(body)?).await?.decode()
    }

    /// The multi-resource `POST /GenerateToken` (`GenerateTokenRequestV2`: reports, datasets, target workspaces).
    pub async fn embed_token_v2(&self, body: &Value) -> Result<EmbedToken> {
        self.execute(&Request::new(Method::POST, "GenerateToken").json(body)?).await?.decode()
    }

    /// Uploads a `.pbix` (multipart, with its file name) and returns the import to poll.
    pub async fn import_pbix(
        &self,
        workspace: Workspace,
        dataset_display_name: &str,
        conflict: NameConflict,
        file_name: &str,
        content: Bytes,
    ) -> Result<Import> {
        let prefix = match workspace {
            Workspace::My => String::new(),
            Workspace::Group(id) => format!("groups/{id}/"),
        };
        let mut request = Request::new(Method::POST, format!("{prefix}imports"))
            .query("datasetDisplayName", dataset_display_name)
            .query("nameConflict", format!("{conflict:?}"));
        request.body = Body::Multipart(vec![Part { name: "file".into(), file_name: Some(file_name.to_owned()), content }]);
        self.execute(&request).await?.decode()
    }

    pub async fn import(&self, workspace: Workspace, id: Uuid) -> Result<Import> {
        let prefix = match workspace {
            Workspace::My => String::new(),
            Workspace::Group(group) => format!("groups/{group}/"),
        };
        self.execute(&Request::get(format!("{prefix}imports/{id}"))).await?.decode()
    }
}
