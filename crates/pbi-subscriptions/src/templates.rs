//! The templates, made once per tenant by an administrator: a templates workspace with one push dataset per
//! visual kind and a template dashboard (pbi-bridge creates these through the API), then, for each kind, a
//! report on its dataset with the kind's visual, pinned to the template dashboard: the one step no API can do,
//! which the administrator does in Power BI. `check` finds each kind's pinned tile by its dataset, so it tells
//! what is done and what is missing, and gives the `Template` a pin clones.

use crate::kind::VisualKind;
use crate::push_target::Template;
use pbi_powerbi::models::{DatasetDefinition, Tile};
use pbi_powerbi::{PowerBiClient, PowerBiError, Workspace};
use pbi_store::{Store, StoreError, TemplateRow};
use uuid::Uuid;

/// The name of the template dashboard.
pub const DASHBOARD_NAME: &str = "pbi-bridge templates";

/// What pbi-bridge made in the templates workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSet {
    pub workspace: Uuid,
    pub dashboard: Uuid,
    /// Each kind's template dataset.
    pub datasets: Vec<(VisualKind, Uuid)>,
}

/// The template dataset's name for a kind, as the administrator finds it in Power BI.
pub fn dataset_name(kind: VisualKind) -> String {
    format!("pbi-bridge template: {}", kind.label())
}

/// Creates the templates workspace `name`, a push dataset per kind in it, and the template dashboard. The
/// caller becomes the workspace's admin (it needs `Workspace.ReadWrite.All`).
pub async fn create(client: &PowerBiClient, name: &str) -> Result<TemplateSet, PowerBiError> {
    let group = client.create_group(name).await?;
    let workspace = Workspace::Group(group.id);
    let mut datasets = Vec::new();
    for kind in VisualKind::ALL {
        let definition: DatasetDefinition =
            serde_json::from_value(kind.dataset_definition(&dataset_name(kind))).map_err(|e| PowerBiError::invalid(e.to_string()))?;
        let dataset = client.create_dataset(workspace, &definition, false).await?;
        let id = Uuid::parse_str(&dataset.id).map_err(|_| PowerBiError::invalid(format!("dataset id '{}'", dataset.id)))?;
        datasets.push((kind, id));
    }
    let dashboard = client.add_dashboard(workspace, DASHBOARD_NAME).await?;
    Ok(TemplateSet { workspace: group.id, dashboard: dashboard.id, datasets })
}

/// Where one kind's template stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateState {
    /// Its visual is pinned to the template dashboard from a report on its dataset.
    Ready(Template),
    /// No tile of the template dashboard reads the kind's dataset yet.
    NotPinned,
}

/// Each kind's state, from the template dashboard's tiles: a kind is ready when a tile reads its dataset
/// through a report (the first such tile, by the dashboard's order).
pub fn check(set: &TemplateSet, tiles: &[Tile]) -> Vec<(VisualKind, TemplateState)> {
    set.datasets
        .iter()
        .map(|&(kind, dataset)| {
            let tile = tiles.iter().find_map(|t| match (t.dataset_id, t.report_id) {
                (Some(d), Some(report)) if d == dataset => Some((t.id, report)),
                _ => None,
            });
            let state = match tile {
                Some((tile, report)) => TemplateState::Ready(Template { workspace: set.workspace, report, dashboard: set.dashboard, tile }),
                None => TemplateState::NotPinned,
            };
            (kind, state)
        })
        .collect()
}

/// `check` on the template dashboard as it is now.
pub async fn check_now(client: &PowerBiClient, set: &TemplateSet) -> Result<Vec<(VisualKind, TemplateState)>, PowerBiError> {
    let tiles = client.tiles(Workspace::Group(set.workspace), set.dashboard).await?;
    Ok(check(set, &tiles))
}

/// The set as the store keeps it, one row per kind, nothing found yet.
pub fn rows_of(set: &TemplateSet, now: i64) -> Vec<TemplateRow> {
    set.datasets
        .iter()
        .map(|&(kind, dataset)| TemplateRow {
            kind: kind.as_str().to_owned(),
            workspace_id: set.workspace,
            dataset_id: dataset,
            dashboard_id: set.dashboard,
            report_id: None,
            tile_id: None,
            checked_at: None,
            updated_at: now,
        })
        .collect()
}

/// Keeps a set just made, replacing any made before (nothing of it is found yet).
pub async fn keep_made(store: &Store, set: &TemplateSet, now: i64) -> Result<(), StoreError> {
    store.replace_templates(&rows_of(set, now)).await
}

/// Records what a check found: each kind's report and tile, or that it is not pinned.
pub async fn keep_checked(store: &Store, states: &[(VisualKind, TemplateState)], now: i64) -> Result<(), StoreError> {
    for (kind, state) in states {
        let found = match state {
            TemplateState::Ready(t) => Some((t.report, t.tile)),
            TemplateState::NotPinned => None,
        };
        store.set_template_found(kind.as_str(), found, now).await?;
    }
    Ok(())
}

/// The set the store keeps, if the templates were made (every kind's row, one workspace and dashboard).
pub fn set_of(rows: &[TemplateRow]) -> Option<TemplateSet> {
    let first = rows.first()?;
    let datasets: Vec<(VisualKind, Uuid)> =
        VisualKind::ALL.iter().filter_map(|&kind| rows.iter().find(|r| r.kind == kind.as_str()).map(|r| (kind, r.dataset_id))).collect();
    (datasets.len() == VisualKind::ALL.len()).then_some(TemplateSet {
        workspace: first.workspace_id,
        dashboard: first.dashboard_id,
        datasets,
    })
}

/// Why a kind cannot be pinned yet, in words for the person pinning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("the Power BI templates have not been set up yet: an administrator sets them up once on Admin → Power BI templates")]
    NoTemplates,
    #[error(
        "the template for '{0}' is not complete: an administrator pins its visual to the template dashboard in Power BI, then checks it on Admin → Power BI templates"
    )]
    NotPinned(&'static str),
}

/// The template a pin of `kind` clones, from the stored rows.
pub fn ready(rows: &[TemplateRow], kind: VisualKind) -> Result<Template, NotReady> {
    let row = rows.iter().find(|r| r.kind == kind.as_str()).ok_or(NotReady::NoTemplates)?;
    match (row.report_id, row.tile_id) {
        (Some(report), Some(tile)) => Ok(Template { workspace: row.workspace_id, report, dashboard: row.dashboard_id, tile }),
        _ => Err(NotReady::NotPinned(kind.label())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(id: u128, dataset: Option<u128>, report: Option<u128>) -> Tile {
        serde_json::from_value(serde_json::json!({
            "id": Uuid::from_u128(id), "datasetId": dataset.map(Uuid::from_u128), "reportId": report.map(Uuid::from_u128)
        }))
        .expect("tile")
    }

    #[test]
    fn a_kind_is_ready_once_a_tile_reads_its_dataset_through_a_report() {
        let set = TemplateSet {
            workspace: Uuid::from_u128(1),
            dashboard: Uuid::from_u128(2),
            datasets: vec![(VisualKind::SingleValue, Uuid::from_u128(10)), (VisualKind::Table, Uuid::from_u128(11))],
        };
        let tiles = [tile(100, Some(99), Some(7)), tile(101, Some(11), None), tile(102, Some(11), Some(8)), tile(103, Some(11), Some(9))];
        assert_eq!(
            check(&set, &tiles),
            [
                (VisualKind::SingleValue, TemplateState::NotPinned),
                (
                    VisualKind::Table,
                    TemplateState::Ready(Template {
                        workspace: Uuid::from_u128(1),
                        report: Uuid::from_u128(8),
                        dashboard: Uuid::from_u128(2),
                        tile: Uuid::from_u128(102)
                    })
                ),
            ]
        );
    }

    #[test]
    fn stored_rows_give_the_set_back_and_say_which_kind_is_not_ready() {
        let set = TemplateSet {
            workspace: Uuid::from_u128(1),
            dashboard: Uuid::from_u128(2),
            datasets: VisualKind::ALL.iter().enumerate().map(|(i, &k)| (k, Uuid::from_u128(10 + i as u128))).collect(),
        };
        let mut rows = rows_of(&set, 5);
        assert_eq!(set_of(&rows), Some(set.clone()));
        assert_eq!(ready(&[], VisualKind::Table), Err(NotReady::NoTemplates));
        assert_eq!(ready(&rows, VisualKind::Table), Err(NotReady::NotPinned("Table")));
        let table = rows.iter_mut().find(|r| r.kind == "table").expect("a row");
        (table.report_id, table.tile_id) = (Some(Uuid::from_u128(7)), Some(Uuid::from_u128(8)));
        assert_eq!(
            ready(&rows, VisualKind::Table),
            Ok(Template { workspace: set.workspace, report: Uuid::from_u128(7), dashboard: set.dashboard, tile: Uuid::from_u128(8) })
        );
        rows.pop();
        assert_eq!(set_of(&rows), None, "a kind's row is missing");
    }
}
