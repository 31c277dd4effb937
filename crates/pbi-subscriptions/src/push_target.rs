//! Today's pin target: a push dataset of the pin's own, the kind's template report cloned onto it, and the
//! kind's template tile cloned onto the chosen dashboard rebound to both; a delivery clears the dataset's table
//! and POSTs the rows. Creating push datasets ends in Power BI on 31 October 2027 (existing ones keep
//! working): this module is the one place that knows the target, so another can replace it.

use crate::kind::{TABLE, VisualKind};
use pbi_powerbi::models::DatasetDefinition;
use pbi_powerbi::{CloneTarget, PowerBiClient, PowerBiError, Workspace};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A kind's template, in the templates workspace: the report on the template dataset, and the tile an
/// administrator pinned from it to the template dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub workspace: Uuid,
    pub report: Uuid,
    pub dashboard: Uuid,
    pub tile: Uuid,
}

/// Where the user pins: a workspace (or My workspace) and a dashboard in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub workspace: Workspace,
    pub dashboard: Uuid,
    /// The name the dataset and report get (the item's, so the user finds them in Power BI).
    pub name: String,
}

/// What a pin made in Power BI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub dataset: String,
    pub report: Uuid,
    pub tile: Uuid,
}

/// Which step of a pin failed, with Power BI's error (the caller classifies it: refused, missing, throttled).
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("creating the push dataset: {0}")]
    Dataset(PowerBiError),
    #[error("cloning the template report onto it (it needs Write on the template report): {0}")]
    Report(PowerBiError),
    #[error("cloning the template tile onto the dashboard: {0}")]
    Tile(PowerBiError),
}

impl PinError {
    pub fn power_bi(&self) -> &PowerBiError {
        match self {
            PinError::Dataset(e) | PinError::Report(e) | PinError::Tile(e) => e,
        }
    }
}

/// Pins a kind's template at `place`. What a failed step leaves behind (the dataset, the report) is removed
/// again, as far as Power BI lets it, so a refused pin leaves nothing.
pub async fn pin(client: &PowerBiClient, kind: VisualKind, template: &Template, place: &Place) -> Result<Pinned, PinError> {
    let definition: DatasetDefinition = serde_json::from_value(kind.dataset_definition(&place.name))
        .map_err(|e| PinError::Dataset(PowerBiError::invalid(e.to_string())))?;
    // No retention policy: a push table then holds up to 5,000,000 rows (basicFIFO would keep 200,000).
    let dataset = client.create_dataset(place.workspace, &definition, false).await.map_err(PinError::Dataset)?;
    let dataset_id = match Uuid::parse_str(&dataset.id) {
        Ok(id) => id,
        Err(_) => {
            return Err(PinError::Dataset(PowerBiError::invalid(format!("dataset id '{}'", dataset.id))));
        }
    };
    let source = Workspace::Group(template.workspace);
    let onto = CloneTarget { workspace: Some(place.workspace), report: None, dataset: Some(dataset_id) };
    let report = match client.clone_report(source, template.report, &place.name, &onto).await {
        Ok(report) => report,
        Err(e) => {
            let _ = client.delete_dataset(place.workspace, &dataset.id).await;
            return Err(PinError::Report(e));
        }
    };
    let rebound = CloneTarget { report: Some(report.id), ..onto };
    match client.clone_tile(source, template.dashboard, template.tile, place.dashboard, &rebound).await {
        Ok(tile) => Ok(Pinned { dataset: dataset.id, report: report.id, tile: tile.id }),
        Err(e) => {
            let _ = client.delete_report(place.workspace, report.id).await;
            let _ = client.delete_dataset(place.workspace, &dataset.id).await;
            Err(PinError::Tile(e))
        }
    }
}

/// Deletes every row of the pin's table; gives the call's RequestId.
pub async fn clear(client: &PowerBiClient, workspace: Workspace, pinned: &Pinned) -> Result<Option<String>, PowerBiError> {
    client.delete_rows(workspace, &pinned.dataset, TABLE).await
}

/// POSTs rows (at most 10,000) to the pin's table; gives the call's RequestId.
pub async fn post(
    client: &PowerBiClient,
    workspace: Workspace,
    pinned: &Pinned,
    rows: &[Map<String, Value>],
) -> Result<Option<String>, PowerBiError> {
    client.post_rows(workspace, &pinned.dataset, TABLE, rows).await
}

/// Removes what the pin made that an API can remove: the dataset and the report. No API removes a tile: it
/// stays on the dashboard, drawn from nothing, until the user deletes it in Power BI.
pub async fn remove(client: &PowerBiClient, workspace: Workspace, pinned: &Pinned) -> Result<(), PowerBiError> {
    client.delete_report(workspace, pinned.report).await?;
    client.delete_dataset(workspace, &pinned.dataset).await
}
