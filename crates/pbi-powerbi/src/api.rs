//! Typed calls, in both the My-workspace and the `groups/{id}` form, with `$top`/`$skip` paging.

use crate::client::{PowerBiClient, Request};
use crate::error::{ErrorKind, PowerBiError, Result};
use crate::models::{Dashboard, Dataset, DatasetDefinition, EmbedToken, Group, ODataList, Refresh, Report, TableSchema, Tile};
use futures_util::Stream;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

/// Which workspace a call addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workspace {
    /// The caller's My workspace (paths without `groups/{id}`; not available to service principals).
    #[default]
    My,
    Group(Uuid),
}

impl Workspace {
    fn prefix(self) -> String {
        match self {
            Workspace::My => String::new(),
            Workspace::Group(id) => format!("groups/{id}/"),
        }
    }
}

/// Where a clone goes and what it is bound to: `workspace` (`None`: the source's; `My`: sent as the empty
/// GUID, as the API asks), and the report and dataset to rebind it to (`None`: the source's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CloneTarget {
    pub workspace: Option<Workspace>,
    pub report: Option<Uuid>,
    pub dataset: Option<Uuid>,
}

impl CloneTarget {
    /// The fields both clone requests share: `targetWorkspaceId` and `targetModelId`.
    fn body(&self) -> Value {
        let mut body = json!({});
        match self.workspace {
            Some(Workspace::My) => body["targetWorkspaceId"] = json!(Uuid::nil()),
            Some(Workspace::Group(id)) => body["targetWorkspaceId"] = json!(id),
            None => {}
        }
        if let Some(dataset) = self.dataset {
            body["targetModelId"] = json!(dataset);
        }
        body
    }
}

/// `$top`: 1 to 1000, checked before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Top(u32);

impl Top {
    pub const MAX: u32 = 1000;

    pub fn new(n: u32) -> Result<Self> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Top(n))
        } else {
            Err(PowerBiError::invalid(format!("$top must be from 1 to {}; got {n}", Self::MAX)))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Page {
    pub top: Option<Top>,
    pub skip: u32,
}

impl Page {
    fn apply(self, mut request: Request) -> Request {
        if let Some(top) = self.top {
            request = request.query("$top", top.get());
        }
        if self.skip > 0 {
            request = request.query("$skip", self.skip);
        }
        request
    }
}

impl PowerBiClient {
    async fn list<T: DeserializeOwned>(&self, request: Request) -> Result<Vec<T>> {
        Ok(self.execute(&request).await?.decode::<ODataList<T>>()?.value)
    }

    async fn get_one<T: DeserializeOwned>(&self, path: String) -> Result<T> {
        self.execute(&Request::get(path)).await?.decode()
    }

    /// `GET groups` with an optional OData `$filter` (e.g. `contains(name,'sales')`).
    pub async fn groups(&self, filter: Option<&str>, page: Page) -> Result<Vec<Group>> {
        let mut request = page.apply(Request::get("groups"));
        if let Some(filter) = filter {
            request = request.query("$filter", filter);
        }
        self.list(request).await
    }

    /// Every group, `page_size` at a time, as a stream that requests the next page when it is needed.
    pub fn all_groups<'a>(&'a self, filter: Option<&'a str>, page_size: Top) -> impl Stream<Item = Result<Group>> + 'a {
        let pages = futures_util::stream::try_unfold(Some(0u32), move |skip| async move {
            let Some(skip) = skip else { return Ok(None) };
            let page = self.groups(filter, Page { top: Some(page_size), skip }).await?;
            let next = (page.len() as u32 == page_size.get()).then(|| skip + page_size.get());
            Ok(Some((futures_util::stream::iter(page.into_iter().map(Ok)), next)))
        });
        futures_util::TryStreamExt::try_flatten(pages)
    }

    pub async fn group(&self, id: Uuid) -> Result<Group> {
        self.get_one(format!("groups/{id}")).await
    }

    /// Creates a workspace (`Groups_CreateGroup`, `workspaceV2=true`); the caller becomes its admin.
    pub async fn create_group(&self, name: &str) -> Result<Group> {
        let request = Request::new(Method::POST, "groups").query("workspaceV2", "true").json(&json!({ "name": name }))?;
        self.execute(&request).await?.decode()
    }

    pub async fn dashboards(&self, workspace: Workspace) -> Result<Vec<Dashboard>> {
        self.list(Request::get(format!("{}dashboards", workspace.prefix()))).await
    }

    pub async fn dashboard(&self, workspace: Workspace, id: Uuid) -> Result<Dashboard> {
        self.get_one(format!("{}dashboards/{id}", workspace.prefix())).await
    }

    pub async fn tiles(&self, workspace: Workspace, dashboard: Uuid) -> Result<Vec<Tile>> {
        self.list(Request::get(format!("{}dashboards/{dashboard}/tiles", workspace.prefix()))).await
    }

    pub async fn tile(&self, workspace: Workspace, dashboard: Uuid, tile: Uuid) -> Result<Tile> {
        self.get_one(format!("{}dashboards/{dashboard}/tiles/{tile}", workspace.prefix())).await
    }

    /// Creates an empty dashboard (Dashboards_AddDashboard).
    pub async fn add_dashboard(&self, workspace: Workspace, name: &str) -> Result<Dashboard> {
        let request = Request::new(Method::POST, format!("{}dashboards", workspace.prefix())).json(&json!({"name": name}))?;
        self.execute(&request).await?.decode()
    }

    pub async fn delete_dashboard(&self, workspace: Workspace, id: Uuid) -> Result<()> {
        self.execute(&Request::new(Method::DELETE, format!("{}dashboards/{id}", workspace.prefix()))).await.map(drop)
    }

    /// Copies a tile onto another dashboard (Dashboards_CloneTile), in `target`'s workspace (else the source's)
    /// and rebound to its report and dataset. Not rebound, a tile cloned into another workspace loses its
    /// links (Power BI: "the tile will be broken").
    pub async fn clone_tile(
        &self,
        workspace: Workspace,
        dashboard: Uuid,
        tile: Uuid,
        target_dashboard: Uuid,
        target: &CloneTarget,
    ) -> Result<Tile> {
        let mut body = target.body();
        body["targetDashboardId"] = json!(target_dashboard);
        if let Some(report) = target.report {
            body["targetReportId"] = json!(report);
        }
        let request = Request::new(Method::POST, format!("{}dashboards/{dashboard}/tiles/{tile}/Clone", workspace.prefix())).json(&body)?;
        self.execute(&request).await?.decode()
    }

    /// Copies a report (Reports_CloneReport) under a new name, into `target`'s workspace (else the source's),
    /// bound to its dataset (else the source's). Needs Write on the report and Build on the dataset;
    /// `target.report` is not used.
    pub async fn clone_report(&self, workspace: Workspace, report: Uuid, name: &str, target: &CloneTarget) -> Result<Report> {
        let mut body = target.body();
        body["name"] = json!(name);
        let request = Request::new(Method::POST, format!("{}reports/{report}/Clone", workspace.prefix())).json(&body)?;
        self.execute(&request).await?.decode()
    }

    pub async fn delete_report(&self, workspace: Workspace, id: Uuid) -> Result<()> {
        self.execute(&Request::new(Method::DELETE, format!("{}reports/{id}", workspace.prefix()))).await.map(drop)
    }

    pub async fn reports(&self, workspace: Workspace) -> Result<Vec<Report>> {
        self.list(Request::get(format!("{}reports", workspace.prefix()))).await
    }

    pub async fn report(&self, workspace: Workspace, id: Uuid) -> Result<Report> {
        self.get_one(format!("{}reports/{id}", workspace.prefix())).await
    }

    pub async fn datasets(&self, workspace: Workspace) -> Result<Vec<Dataset>> {
        self.list(Request::get(format!("{}datasets", workspace.prefix()))).await
    }

    pub async fn dataset(&self, workspace: Workspace, id: &str) -> Result<Dataset> {
        self.get_one(format!("{}datasets/{id}", workspace.prefix())).await
    }

    pub async fn delete_dataset(&self, workspace: Workspace, id: &str) -> Result<()> {
        self.execute(&Request::new(Method::DELETE, format!("{}datasets/{id}", workspace.prefix()))).await.map(drop)
    }

    /// Creates a push dataset; `fifo` keeps only the newest 200,000 rows per table (`basicFIFO`).
    pub async fn create_dataset(&self, workspace: Workspace, definition: &DatasetDefinition, fifo: bool) -> Result<Dataset> {
        let request = Request::new(Method::POST, format!("{}datasets", workspace.prefix()))
            .query("defaultRetentionPolicy", if fifo { "basicFIFO" } else { "None" })
            .json(definition)?;
        self.execute(&request).await?.decode()
    }

    pub async fn tables(&self, workspace: Workspace, dataset: &str) -> Result<Vec<TableSchema>> {
        self.list(Request::get(format!("{}datasets/{dataset}/tables", workspace.prefix()))).await
    }

    /// Runs one DAX query (`executeQueries`) and gives the rows of its one result table, each keyed by the
    /// column's name as the service writes it (`Company[ID]` for a fully qualified column).
    /// A query the model cannot run is a `BadRequest` with code `DatasetExecuteQueriesError`.
    pub async fn execute_query(&self, workspace: Workspace, dataset: &str, dax: &str) -> Result<Vec<serde_json::Map<String, Value>>> {
        let request = Request::new(Method::POST, format!("{}datasets/{dataset}/executeQueries", workspace.prefix()))
            .json(&json!({"queries": [{"query": dax}], "serializerSettings": {"includeNulls": true}}))?;
        let answer: QueryAnswer = self.execute(&request).await?.decode()?;
        // A failure the service reports inside a 200 (too many rows, more than one table) is still a failure.
        let result = answer.results.into_iter().next().unwrap_or_default();
        if let Some(error) = answer.error.or(result.error) {
            return Err(PowerBiError::new(ErrorKind::BadRequest { status: 200, code: error.code, message: error.message }));
        }
        let table = result.tables.into_iter().next().unwrap_or_default();
        if let Some(error) = table.error {
            return Err(PowerBiError::new(ErrorKind::BadRequest { status: 200, code: error.code, message: error.message }));
        }
        Ok(table.rows)
    }

    /// The distinct values of `table[column]` in a dataset (blanks left out), or `None` when the model has no
    /// such column (the DAX query fails). Other failures are errors.
    pub async fn column_values(&self, workspace: Workspace, dataset: &str, table: &str, column: &str) -> Result<Option<Vec<Value>>> {
        let dax = format!("EVALUATE VALUES({})", dax_column(table, column));
        match self.execute_query(workspace, dataset, &dax).await {
            Ok(rows) => Ok(Some(rows.into_iter().flat_map(|row| row.into_iter().map(|(_, v)| v)).filter(|v| !v.is_null()).collect())),
            Err(e) if e.code() == Some(DAX_FAILURE) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces a push table's schema.
    pub async fn put_table(&self, workspace: Workspace, dataset: &str, table: &TableSchema) -> Result<()> {
        let request = Request::new(Method::PUT, format!("{}datasets/{dataset}/tables/{}", workspace.prefix(), path_segment(&table.name)))
            .json(table)?;
        self.execute(&request).await.map(drop)
    }

    /// Removes every row of a push table; gives Power BI's RequestId of the call, for support.
    pub async fn delete_rows(&self, workspace: Workspace, dataset: &str, table: &str) -> Result<Option<String>> {
        self.execute(&Request::new(Method::DELETE, format!("{}datasets/{dataset}/tables/{}/rows", workspace.prefix(), path_segment(table))))
            .await
            .map(|answer| answer.request_id)
    }

    /// One `POST rows` request (at most 10,000 rows); `push_rows` checks and batches larger inputs. Each row is
    /// anything that serializes as a JSON object (a map, or a row already written as JSON). Gives Power BI's
    /// RequestId of the call, for support.
    pub async fn post_rows<R: serde::Serialize>(
        &self,
        workspace: Workspace,
        dataset: &str,
        table: &str,
        rows: &[R],
    ) -> Result<Option<String>> {
        let request = Request::new(Method::POST, format!("{}datasets/{dataset}/tables/{}/rows", workspace.prefix(), path_segment(table)))
            .json(&json!({"rows": rows}))?;
        self.execute(&request).await.map(|answer| answer.request_id)
    }

    /// Starts an on-demand refresh (`notifyOption` NoNotification).
    pub async fn refresh_dataset(&self, workspace: Workspace, dataset: &str) -> Result<Option<String>> {
        let request = Request::new(Method::POST, format!("{}datasets/{dataset}/refreshes", workspace.prefix()))
            .json(&json!({"notifyOption": "NoNotification"}))?;
        let answer = self.execute(&request).await?;
        Ok(answer.headers.get("x-ms-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned).or(answer.request_id))
    }

    pub async fn refresh_history(&self, workspace: Workspace, dataset: &str, top: Option<Top>) -> Result<Vec<Refresh>> {
        self.list(Page { top, skip: 0 }.apply(Request::get(format!("{}datasets/{dataset}/refreshes", workspace.prefix())))).await
    }

    /// An embed token for one tile (`GenerateToken`, workspace form only).
    pub async fn tile_embed_token(&self, group: Uuid, dashboard: Uuid, tile: Uuid, lifetime_minutes: Option<u32>) -> Result<EmbedToken> {
        let mut body = json!({"accessLevel": "View"});
        if let Some(minutes) = lifetime_minutes {
            body["lifetimeInMinutes"] = json!(minutes);
        }
        let request =
            Request::new(Method::POST, format!("groups/{group}/dashboards/{dashboard}/tiles/{tile}/GenerateToken")).json(&body)?;
        self.execute(&request).await?.decode()
    }
}

/// Table names may hold spaces and `#`: they go into the path percent-encoded.
fn path_segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>().replace('+', "%20")
}

/// The code of a DAX query the model cannot run.
const DAX_FAILURE: &str = "DatasetExecuteQueriesError";

/// `'Table'[Column]` as DAX quotes it: a quote doubled inside the table's quotes, `]` doubled inside the brackets.
pub fn dax_column(table: &str, column: &str) -> String {
    format!("'{}'[{}]", table.replace('\'', "''"), column.replace(']', "]]"))
}

#[derive(serde::Deserialize, Default)]
struct QueryAnswer {
    #[serde(default)]
    results: Vec<QueryResult>,
    #[serde(default)]
    error: Option<QueryError>,
}

#[derive(serde::Deserialize, Default)]
struct QueryResult {
    #[serde(default)]
    tables: Vec<QueryTable>,
    #[serde(default)]
    error: Option<QueryError>,
}

#[derive(serde::Deserialize, Default)]
struct QueryTable {
    #[serde(default)]
    rows: Vec<serde_json::Map<String, Value>>,
    #[serde(default)]
    error: Option<QueryError>,
}

#[derive(serde::Deserialize)]
struct QueryError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_clone_to_my_workspace_is_sent_as_the_empty_guid_and_an_unset_target_is_left_out() {
        assert_eq!(CloneTarget::default().body(), json!({}));
        let dataset = Uuid::from_u128(7);
        let mine = CloneTarget { workspace: Some(Workspace::My), report: None, dataset: Some(dataset) };
        assert_eq!(mine.body(), json!({"targetWorkspaceId": "00000000-0000-0000-0000-000000000000", "targetModelId": dataset}));
        let group = Uuid::from_u128(9);
        assert_eq!(
            CloneTarget { workspace: Some(Workspace::Group(group)), ..CloneTarget::default() }.body(),
            json!({"targetWorkspaceId": group})
        );
    }

    #[test]
    fn top_is_checked_before_sending() {
        assert!(Top::new(0).is_err() && Top::new(1001).is_err());
        assert_eq!(Top::new(1000).map(Top::get).ok(), Some(1000));
        assert_eq!(path_segment("Sales #1"), "Sales%20%231");
    }

    proptest! {
        #[test]
        fn top_accepts_exactly_1_to_1000(n in any::<u32>()) {
            prop_assert_eq!(Top::new(n).is_ok(), (1..=1000).contains(&n));
        }
    }
}
