//! Today's pin target: a push dataset of the pin's own, the kind's template report cloned onto it, and the
//! kind's template tile cloned onto the chosen dashboard rebound to both; a delivery clears the dataset's table
//! and POSTs the rows. Creating push datasets ends in Power BI on 31 October 2027 (existing ones keep
//! working): this module is the one place that knows the target, so another can replace it.

use crate::kind::{TABLE, VisualKind};
use pbi_powerbi::models::DatasetDefinition;
use pbi_powerbi::{CloneTarget, PowerBiClient, PowerBiError, Workspace};
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

/// What a pin made in Power BI. A pin whose template report was refused (the user cannot read the templates)
/// has the dataset alone until the user pins a tile from it in Power BI ("pin once"; the report then is
/// the one they made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub dataset: String,
    pub report: Option<Uuid>,
    pub tile: Option<Uuid>,
}

/// Power BI refused the caller the template (they cannot read it or its workspace): the pin goes on as
/// "pin once". A token problem is not such a refusal: the caller must sign in again.
fn refused_the_template(error: &PowerBiError) -> bool {
    use pbi_powerbi::ErrorKind as K;
    matches!(error.kind, K::NotFound { .. } | K::Unauthorized { .. } | K::Forbidden { .. }) && !error.is_token_problem()
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

/// Pins a kind's template at `place`. When Power BI refuses the caller the template report (they cannot read
/// the templates workspace), the pin keeps the dataset it made for the user to pin a tile from by hand ("pin
/// once"; `find_tile` then finds it). Whoever may clone the report may clone its tile (they are in one
/// workspace), so a refused tile is another fault: the target dashboard is gone, or Power BI failed. What another failed step leaves behind is removed again, as far
/// as Power BI lets it, so such a pin leaves nothing.
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
        Err(e) if refused_the_template(&e) => return Ok(Pinned { dataset: dataset.id, report: None, tile: None }),
        Err(e) => {
            let _ = client.delete_dataset(place.workspace, &dataset.id).await;
            return Err(PinError::Report(e));
        }
    };
    let rebound = CloneTarget { report: Some(report.id), ..onto };
    match client.clone_tile(source, template.dashboard, template.tile, place.dashboard, &rebound).await {
        Ok(tile) => Ok(Pinned { dataset: dataset.id, report: Some(report.id), tile: Some(tile.id) }),
        Err(e) => {
            let _ = client.delete_report(place.workspace, report.id).await;
            let _ = client.delete_dataset(place.workspace, &dataset.id).await;
            Err(PinError::Tile(e))
        }
    }
}

/// The tile a user pinned by hand to `dashboard` from the pin's dataset (the first, in the dashboard's order),
/// and the report it was pinned from.
pub async fn find_tile(
    client: &PowerBiClient,
    workspace: Workspace,
    dashboard: Uuid,
    dataset: &str,
) -> Result<Option<(Uuid, Option<Uuid>)>, PowerBiError> {
    let tiles = client.tiles(workspace, dashboard).await?;
    Ok(tiles.iter().find(|t| t.dataset_id.is_some_and(|d| d.to_string().eq_ignore_ascii_case(dataset))).map(|t| (t.id, t.report_id)))
}

/// Deletes every row of the pin's table; gives the call's RequestId.
pub async fn clear(client: &PowerBiClient, workspace: Workspace, dataset: &str) -> Result<Option<String>, PowerBiError> {
    client.delete_rows(workspace, dataset, TABLE).await
}

/// POSTs rows (at most 10,000; JSON objects, a delivery's as its spool holds them) to the pin's table; gives
/// the call's RequestId.
pub async fn post<R: serde::Serialize>(
    client: &PowerBiClient,
    workspace: Workspace,
    dataset: &str,
    rows: &[R],
) -> Result<Option<String>, PowerBiError> {
    client.post_rows(workspace, dataset, TABLE, rows).await
}

/// Removes what the pin made that an API can remove: the dataset and the report. No API removes a tile: it
/// stays on the dashboard, drawn from nothing, until the user deletes it in Power BI.
pub async fn remove(client: &PowerBiClient, workspace: Workspace, pinned: &Pinned) -> Result<(), PowerBiError> {
    if let Some(report) = pinned.report {
        client.delete_report(workspace, report).await?;
    }
    client.delete_dataset(workspace, &pinned.dataset).await
}
