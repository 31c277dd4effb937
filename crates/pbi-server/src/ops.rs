//! The operations behind both the web pages and the JSON API, each written once and always on behalf of
//! one pbi-bridge user: their workspaces, the Power BI tiles they can see, their pins, their connection and
//! their API tokens. Another user's ids read as "not found".

use crate::AppState;
use crate::connect::active_registration;
use crate::problem::Problem;
use futures_util::{StreamExt as _, TryStreamExt as _};
use pbi_powerbi::{ErrorKind, PowerBiClient, Workspace as PbiWorkspace};
use pbi_store::{ApiToken, Connection, ConnectionStatus, Pin, Registration, User, Workspace};
use secrecy::SecretString;
use std::sync::Arc;
use uuid::Uuid;

// ---------------------------------------------------------------- parsed input

/// A workspace's name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(text: &str) -> Result<Self, Problem> {
        let name = text.trim();
        if name.is_empty() || name.chars().count() > Self::MAX_CHARS || name.chars().any(char::is_control) {
            return Err(Problem::invalid(
                "name",
                "A workspace name is 1 to 100 characters, without line breaks. Enter a name and try again.",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Seed 000's company filter: a `Company[ID]` value (empty means all companies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyId(String);

impl CompanyId {
    pub const MAX_CHARS: usize = 50;

    /// `None` for an empty (or all-blank) value: no filter.
    pub fn parse(text: &str) -> Result<Option<Self>, Problem> {
        let id = text.trim();
        if id.is_empty() {
            return Ok(None);
        }
        if id.chars().count() > Self::MAX_CHARS || id.chars().any(char::is_control) {
            return Err(Problem::invalid(
                "companyFilter",
                "A company ID is at most 50 characters on one line (such as USMF); leave it empty for all companies.",
            ));
        }
        Ok(Some(Self(id.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Power BI tile by where it lives: My workspace (`group: None`) or a workspace, a dashboard, the tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRef {
    pub group: Option<Uuid>,
    pub dashboard: Uuid,
    pub tile: Uuid,
}

impl TileRef {
    /// The key a tile choice carries in the pin form: `me|DASHBOARD|TILE` or `GROUP|DASHBOARD|TILE`.
    pub fn key(&self) -> String {
        let group = self.group.map_or_else(|| "me".to_owned(), |g| g.to_string());
        format!("{group}|{}|{}", self.dashboard, self.tile)
    }

    pub fn parse_key(key: &str) -> Result<Self, Problem> {
        let bad = || Problem::invalid("tile", "That is not a tile from the list. Reload the list and choose again.");
        let mut parts = key.split('|');
        let (Some(group), Some(dashboard), Some(tile), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let group = match group {
            "me" => None,
            other => Some(Uuid::parse_str(other).map_err(|_| bad())?),
        };
        Ok(Self { group, dashboard: Uuid::parse_str(dashboard).map_err(|_| bad())?, tile: Uuid::parse_str(tile).map_err(|_| bad())? })
    }

    fn scope(&self) -> PbiWorkspace {
        self.group.map_or(PbiWorkspace::My, PbiWorkspace::Group)
    }
}

// ---------------------------------------------------------------- workspaces

pub async fn workspaces(state: &AppState, user: &User) -> Result<Vec<Workspace>, Problem> {
    state.store.workspaces_of(user.id).await.map_err(Problem::store("workspace", "listing workspaces"))
}

pub async fn create_workspace(state: &AppState, user: &User, name: &WorkspaceName) -> Result<Workspace, Problem> {
    state.store.add_workspace(user.id, name.as_str(), state.clock.unix()).await.map_err(|e| name_problem(e, name, "creating a workspace"))
}

/// A store refusal of a workspace name: another of the user's workspaces has it (whatever its case).
fn name_problem(error: pbi_store::StoreError, name: &WorkspaceName, doing: &'static str) -> Problem {
    match error {
        pbi_store::StoreError::Conflict(_) => {
            Problem::invalid("name", format!("A workspace named '{}' already exists: choose another name.", name.as_str()))
        }
        other => Problem::store("workspace", doing)(other),
    }
}

pub async fn workspace(state: &AppState, user: &User, id: Uuid) -> Result<Workspace, Problem> {
    state.store.workspace(id, user.id).await.map_err(Problem::store("workspace", "reading a workspace"))
}

/// The user's workspace and its pins in order.
pub async fn workspace_with_pins(state: &AppState, user: &User, id: Uuid) -> Result<(Workspace, Vec<Pin>), Problem> {
    let workspace = workspace(state, user, id).await?;
    let pins = state.store.pins(id).await.map_err(Problem::store("workspace", "reading pins"))?;
    Ok((workspace, pins))
}

pub async fn rename_workspace(state: &AppState, user: &User, id: Uuid, name: &WorkspaceName) -> Result<(), Problem> {
    state.store.rename_workspace(id, user.id, name.as_str()).await.map_err(|e| name_problem(e, name, "renaming a workspace"))
}

pub async fn delete_workspace(state: &AppState, user: &User, id: Uuid) -> Result<(), Problem> {
    state.store.delete_workspace(id, user.id).await.map_err(Problem::store("workspace", "deleting a workspace"))
}

pub async fn set_company_filter(state: &AppState, user: &User, id: Uuid, company: Option<&CompanyId>) -> Result<(), Problem> {
    let company = company.map(|c| c.0.as_str());
    state.store.set_company_filter(id, user.id, company).await.map_err(Problem::store("workspace", "setting the company filter"))
}

// ---------------------------------------------------------------- Power BI, as the user

/// The registration users connect through (`None`: Power BI is not configured) and the user's current
/// connection through it, whatever its status.
pub async fn registration_and_connection(state: &AppState, user: &User) -> Result<(Option<Registration>, Option<Connection>), Problem> {
    let Some(registration) = active_registration(state).await.map_err(Problem::store("registration", "reading registrations"))? else {
        return Ok((None, None));
    };
    let connections = state.store.connections_of(&user.as_owner()).await.map_err(Problem::store("connection", "reading connections"))?;
    let connection = connections.into_iter().filter(|c| c.account.registration_id == registration.id).max_by_key(|c| c.updated_at);
    Ok((Some(registration), connection))
}

/// Where tile frames may load from under the current configuration (see `embed`).
pub async fn embed_origins(state: &AppState) -> Result<crate::embed::EmbedOrigins, Problem> {
    let registration = active_registration(state).await.map_err(Problem::store("registration", "reading registrations"))?;
    Ok(crate::embed::EmbedOrigins::of(registration.as_ref()))
}

/// The user's current connection through the active registration, whatever its status.
pub async fn connection(state: &AppState, user: &User) -> Result<Option<Connection>, Problem> {
    Ok(registration_and_connection(state, user).await?.1)
}

pub async fn disconnect(state: &AppState, user: &User, connection: Uuid) -> Result<(), Problem> {
    Ok(state.auth.disconnect(connection, Some(&user.as_owner())).await?)
}

/// A Power BI client acting as the user through their active connection, and that connection's id.
pub(crate) async fn client_for(state: &AppState, user: &User) -> Result<(PowerBiClient, Uuid), Problem> {
    let (Some(registration), connection) = registration_and_connection(state, user).await? else {
        return Err(Problem::NotConfigured);
    };
    let Some(connection) = connection else { return Err(Problem::NotConnected) };
    if connection.status != ConnectionStatus::Active {
        return Err(Problem::NeedsSignIn(connection.status_reason.unwrap_or_else(|| "the connection was disconnected".into())));
    }
    // Someone is waiting for the answer: an outage is said within seconds, not after minutes of backoff.
    let client = client_of(state, &registration, &connection)?.with_retry(pbi_powerbi::RetryPolicy::interactive());
    Ok((client, connection.id))
}

/// A Power BI client acting as `connection`'s owner through `registration`'s cloud, on the server's connection
/// pool and counted in its metrics.
pub(crate) fn client_of(state: &AppState, registration: &Registration, connection: &Connection) -> Result<PowerBiClient, Problem> {
    let cloud = pbi_auth::cloud_of(registration)
        .map_err(|e| Problem::Unavailable(format!("Power BI cannot be called: {e}. Ask your administrator to do so.")))?;
    let tokens = pbi_auth::ConnectionTokens::new(state.auth.clone(), connection.id, connection.account.owner);
    let metrics = state.metrics.clone();
    Ok(PowerBiClient::sharing(state.http.clone(), &cloud, Arc::new(tokens))
        .with_observer(Arc::new(move |status| metrics.powerbi_call(status))))
}

/// Power BI's refusal in seed 000's troubleshooting words.
pub(crate) fn power_bi_problem(error: &pbi_powerbi::PowerBiError) -> Problem {
    let status = match &error.kind {
        ErrorKind::Token(message) => return Problem::NeedsSignIn(message.clone()),
        ErrorKind::Transport(_) => {
            return Problem::Unavailable("The Power BI service is unavailable. You don't have to register again. Try again later.".into());
        }
        ErrorKind::NotFound { .. } => 404,
        ErrorKind::Unauthorized { .. } => 401,
        ErrorKind::Forbidden { .. } => 403,
        ErrorKind::Throttled { .. } => 429,
        ErrorKind::BadRequest { status, .. } | ErrorKind::Service { status, .. } => *status,
        _ => 500,
    };
    let explained = pbi_auth::explain::power_bi(status, error.code().unwrap_or("Error"), &error.to_string(), error.request_id.clone());
    Problem::PowerBi { status, message: explained.to_string() }
}

/// A tile the user can pin, as Power BI lists it.
#[derive(Debug, Clone)]
pub struct TileChoice {
    pub at: TileRef,
    pub title: String,
    pub dashboard: String,
    pub group: String,
    pub row_span: u32,
    pub col_span: u32,
}

/// Every tile the user can see in Power BI: My workspace's dashboards, then each workspace's (all pages), but
/// for seed 001's templates workspace (pbi-bridge's scaffolding for pins, not content to show).
pub async fn available_tiles(state: &AppState, user: &User) -> Result<Vec<TileChoice>, Problem> {
    let (client, _) = client_for(state, user).await?;
    let templates = templates_workspace(state).await?;
    tiles_of(&client, templates).await.map_err(|e| power_bi_problem(&e))
}

/// The Power BI workspace of seed 001's templates, once they are made.
pub(crate) async fn templates_workspace(state: &AppState) -> Result<Option<Uuid>, Problem> {
    let rows = state.store.templates().await.map_err(Problem::store("template", "reading the templates"))?;
    Ok(rows.first().map(|r| r.workspace_id))
}

/// How many Power BI calls one tile listing keeps in flight: a user with many workspaces and dashboards waits
/// for a fraction of the calls' total latency, and the service sees a modest, bounded load from them.
const CONCURRENT_CALLS: usize = 4;

/// The Power BI workspaces the user can see: My workspace (`None`) first, then each workspace (all pages).
pub(crate) async fn workspaces_of(client: &PowerBiClient) -> Result<Vec<(Option<Uuid>, String)>, pbi_powerbi::PowerBiError> {
    let mut scopes = vec![(None, "My workspace".to_owned())];
    let page_size = pbi_powerbi::Top::new(pbi_powerbi::Top::MAX)?;
    let mut groups = std::pin::pin!(client.all_groups(None, page_size));
    while let Some(group) = groups.try_next().await? {
        scopes.push((Some(group.id), group.name));
    }
    Ok(scopes)
}

/// Every dashboard in `scopes`, with its workspace and the workspace's name, in that order.
pub(crate) async fn dashboards_in(
    client: &PowerBiClient,
    scopes: Vec<(Option<Uuid>, String)>,
) -> Result<Vec<(Option<Uuid>, String, pbi_powerbi::models::Dashboard)>, pbi_powerbi::PowerBiError> {
    // `buffered` keeps the order of its input, so the list reads the same however the answers arrive.
    let dashboards: Vec<_> = futures_util::stream::iter(scopes)
        .map(|(group, group_name)| async move { Ok((group, group_name, client.dashboards(scope_of(group)).await?)) })
        .buffered(CONCURRENT_CALLS)
        .try_collect()
        .await?;
    Ok(dashboards.into_iter().flat_map(|(group, group_name, list)| list.into_iter().map(move |d| (group, group_name.clone(), d))).collect())
}

fn scope_of(group: Option<Uuid>) -> PbiWorkspace {
    group.map_or(PbiWorkspace::My, PbiWorkspace::Group)
}

async fn tiles_of(client: &PowerBiClient, leave_out: Option<Uuid>) -> Result<Vec<TileChoice>, pbi_powerbi::PowerBiError> {
    let mut scopes = workspaces_of(client).await?;
    scopes.retain(|(group, _)| group.is_none() || *group != leave_out);
    let each_dashboard = dashboards_in(client, scopes).await?;
    let tiles: Vec<_> = futures_util::stream::iter(each_dashboard)
        .map(|(group, group_name, dashboard)| async move {
            let tiles = client.tiles(scope_of(group), dashboard.id).await?;
            Ok::<_, pbi_powerbi::PowerBiError>((group, group_name, dashboard, tiles))
        })
        .buffered(CONCURRENT_CALLS)
        .try_collect()
        .await?;
    let mut choices = Vec::new();
    for (group, group_name, dashboard, list) in tiles {
        for tile in list {
            choices.push(TileChoice {
                at: TileRef { group, dashboard: dashboard.id, tile: tile.id },
                title: tile.title.clone().unwrap_or_else(|| "(untitled tile)".into()),
                dashboard: dashboard.display_name.clone(),
                group: group_name.clone(),
                row_span: tile.row_span.unwrap_or(1),
                col_span: tile.col_span.unwrap_or(1),
            });
        }
    }
    Ok(choices)
}

/// Pins tiles to the user's workspace, in the order given. Each tile is read from Power BI as the user first,
/// so a tile they cannot see (whatever ids were sent) is refused by Power BI itself and nothing is pinned.
pub async fn pin_tiles(state: &AppState, user: &User, workspace_id: Uuid, tiles: &[TileRef]) -> Result<Vec<Pin>, Problem> {
    workspace(state, user, workspace_id).await?;
    if tiles.is_empty() {
        return Err(Problem::invalid("tiles", "Choose at least one tile to pin."));
    }
    let (client, connection) = client_for(state, user).await?;
    let embed_origins = embed_origins(state).await?;
    // A tile is pinned once per workspace: one already there, or twice in this request, is refused by name.
    let mut present: std::collections::HashSet<(String, String)> = state
        .store
        .pins(workspace_id)
        .await
        .map_err(Problem::store("workspace", "reading pins"))?
        .into_iter()
        .map(|p| (p.dashboard_id, p.tile_id))
        .collect();
    let mut described = Vec::with_capacity(tiles.len());
    for (i, at) in tiles.iter().enumerate() {
        let tile = client.tile(at.scope(), at.dashboard, at.tile).await.map_err(|e| match power_bi_problem(&e) {
            // Power BI does not know the tile as this user: the ids sent are at fault, not the service.
            Problem::PowerBi { status: 403 | 404, message } => {
                Problem::invalid(&format!("tiles[{i}]"), format!("That tile cannot be pinned: {message}"))
            }
            other => other,
        })?;
        // The page hands a tile's frame the user's token: a tile shown from anywhere but the configured Power BI
        // is not kept.
        let embed_url = tile.embed_url.unwrap_or_default();
        embed_origins
            .check(&embed_url)
            .map_err(|why| Problem::invalid(&format!("tiles[{i}]"), format!("That tile cannot be pinned: {}", why.pinning())))?;
        let title = tile.title.unwrap_or_else(|| "(untitled tile)".into());
        if !present.insert((at.dashboard.to_string(), at.tile.to_string())) {
            return Err(already_pinned(i, &title));
        }
        described.push(Pin {
            id: Uuid::nil(),
            workspace_id,
            connection_id: connection,
            group_id: at.group.map(|g| g.to_string()),
            dashboard_id: at.dashboard.to_string(),
            tile_id: at.tile.to_string(),
            title,
            row_span: i64::from(tile.row_span.unwrap_or(1)),
            col_span: i64::from(tile.col_span.unwrap_or(1)),
            embed_url,
            position: 0,
            dataset_id: tile.dataset_id.map(|d| d.to_string()),
        });
    }
    let mut pinned = Vec::with_capacity(described.len());
    for (i, pin) in described.iter().enumerate() {
        // The store's unique index decides when another request pinned the same tile in between.
        pinned.push(state.store.add_pin(pin, state.clock.unix()).await.map_err(|e| match e {
            pbi_store::StoreError::Conflict(_) => already_pinned(i, &pin.title),
            other => Problem::store("workspace", "pinning")(other),
        })?);
    }
    Ok(pinned)
}

/// The companies found in a workspace's tiles: the `Company[ID]` values of the datasets behind them (seed 000's
/// convention: a table named Company with a column named ID), asked of Power BI as the user.
#[derive(Debug, Default)]
pub struct Companies {
    /// The workspace's company filter, if one is set.
    pub filter: Option<String>,
    /// Every ID found, once, in order.
    pub ids: Vec<String>,
    /// Tiles whose dataset Power BI would not query, and why (e.g. the tenant setting "Dataset Execute Queries
    /// REST API" is off, or the user lacks build permission): their companies are not in `ids`.
    pub not_asked: Vec<(Pin, String)>,
}

impl Companies {
    /// Whether `company` is among the IDs found (DAX compares text regardless of case, and so does this).
    pub fn includes(&self, company: &str) -> bool {
        self.ids.iter().any(|id| id.eq_ignore_ascii_case(company))
    }
}

pub async fn companies(state: &AppState, user: &User, workspace_id: Uuid) -> Result<Companies, Problem> {
    let (workspace, pins) = workspace_with_pins(state, user, workspace_id).await?;
    let mut companies = Companies { filter: workspace.company_filter, ..Companies::default() };
    if pins.is_empty() {
        return Ok(companies);
    }
    let (client, connection) = client_for(state, user).await?;
    // Only what this connection pinned: another account's tiles may not be readable through this one.
    let pins: Vec<Pin> = pins.into_iter().filter(|p| p.connection_id == connection).collect();
    let pins = with_datasets(state, &client, pins).await?;
    let mut datasets: Vec<(PbiWorkspace, String, Vec<Pin>)> = Vec::new();
    for pin in pins {
        let Some(dataset) = pin.dataset_id.clone() else { continue };
        let scope = scope_of_pin(&pin);
        match datasets.iter_mut().find(|(s, d, _)| *s == scope && *d == dataset) {
            Some((_, _, shown_by)) => shown_by.push(pin),
            None => datasets.push((scope, dataset, vec![pin])),
        }
    }
    let answers: Vec<_> = futures_util::stream::iter(datasets)
        .map(|(scope, dataset, shown_by)| {
            let client = &client;
            async move { (client.column_values(scope, &dataset, "Company", "ID").await, shown_by) }
        })
        .buffered(CONCURRENT_CALLS)
        .collect()
        .await;
    for (answer, shown_by) in answers {
        match answer {
            Ok(values) => {
                for value in values.into_iter().flatten() {
                    let id = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                    if !companies.ids.contains(&id) {
                        companies.ids.push(id);
                    }
                }
            }
            // The service or the user's sign-in is at fault, not this dataset: the whole answer would be wrong.
            Err(e) if matches!(e.kind, ErrorKind::Token(_) | ErrorKind::Transport(_) | ErrorKind::Throttled { .. }) => {
                return Err(power_bi_problem(&e));
            }
            Err(e) => {
                let why = power_bi_problem(&e).to_string();
                companies.not_asked.extend(shown_by.into_iter().map(|p| (p, why.clone())));
            }
        }
    }
    companies.ids.sort_by_key(|id| id.to_lowercase());
    Ok(companies)
}

fn scope_of_pin(pin: &Pin) -> PbiWorkspace {
    pin.group_id.as_deref().and_then(|g| Uuid::parse_str(g).ok()).map_or(PbiWorkspace::My, PbiWorkspace::Group)
}

/// Pins made before pbi-bridge kept the dataset behind a tile learn it from Power BI, once.
async fn with_datasets(state: &AppState, client: &PowerBiClient, pins: Vec<Pin>) -> Result<Vec<Pin>, Problem> {
    futures_util::stream::iter(pins)
        .map(|mut pin| async move {
            if pin.dataset_id.is_some() {
                return Ok(pin);
            }
            let (Ok(dashboard), Ok(tile)) = (Uuid::parse_str(&pin.dashboard_id), Uuid::parse_str(&pin.tile_id)) else { return Ok(pin) };
            match client.tile(scope_of_pin(&pin), dashboard, tile).await {
                Ok(found) => {
                    if let Some(dataset) = found.dataset_id {
                        state
                            .store
                            .set_pin_dataset(pin.id, &dataset.to_string())
                            .await
                            .map_err(Problem::store("pin", "noting its dataset"))?;
                        pin.dataset_id = Some(dataset.to_string());
                    }
                    Ok(pin)
                }
                Err(e) if matches!(e.kind, ErrorKind::Token(_) | ErrorKind::Transport(_) | ErrorKind::Throttled { .. }) => {
                    Err(power_bi_problem(&e))
                }
                // A tile gone from Power BI shows nothing to filter: it is left out.
                Err(_) => Ok(pin),
            }
        })
        .buffered(CONCURRENT_CALLS)
        .try_collect()
        .await
}

fn already_pinned(i: usize, title: &str) -> Problem {
    Problem::invalid(&format!("tiles[{i}]"), format!("'{title}' is already pinned here."))
}

pub async fn unpin(state: &AppState, user: &User, workspace_id: Uuid, pin: Uuid) -> Result<(), Problem> {
    workspace(state, user, workspace_id).await?;
    state.store.remove_pin(workspace_id, pin).await.map_err(Problem::store("pin", "unpinning"))
}

/// Puts the workspace's pins in `order`, which must name each of its pins exactly once.
pub async fn reorder_pins(state: &AppState, user: &User, workspace_id: Uuid, order: &[Uuid]) -> Result<Vec<Pin>, Problem> {
    let (_, pins) = workspace_with_pins(state, user, workspace_id).await?;
    let mut given = order.to_vec();
    given.sort();
    let mut current: Vec<Uuid> = pins.iter().map(|p| p.id).collect();
    current.sort();
    if given != current {
        return Err(Problem::invalid("pins", "List each of the workspace's pins exactly once, in the order you want them."));
    }
    state.store.reorder_pins(workspace_id, order).await.map_err(Problem::store("pin", "reordering pins"))?;
    // `order` names each pin once (checked above), so the new list follows from it without reading it back.
    let mut by_id: std::collections::HashMap<Uuid, Pin> = pins.into_iter().map(|p| (p.id, p)).collect();
    Ok(order.iter().zip(0..).filter_map(|(id, position)| by_id.remove(id).map(|p| Pin { position, ..p })).collect())
}

/// One step earlier or later in a workspace's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

/// The order after moving `pin` one place; `None` when it is not in the list. Moving past either end is a no-op.
pub fn moved(mut order: Vec<Uuid>, pin: Uuid, direction: Direction) -> Option<Vec<Uuid>> {
    let at = order.iter().position(|p| *p == pin)?;
    let other = match direction {
        Direction::Up => at.checked_sub(1),
        Direction::Down => Some(at + 1).filter(|i| *i < order.len()),
    };
    if let Some(other) = other {
        order.swap(at, other);
    }
    Some(order)
}

/// Moves a pin one place; answers its title and whether it moved (not past either end).
pub async fn move_pin(
    state: &AppState,
    user: &User,
    workspace_id: Uuid,
    pin: Uuid,
    direction: Direction,
) -> Result<(String, bool), Problem> {
    let (_, pins) = workspace_with_pins(state, user, workspace_id).await?;
    let title = pins.iter().find(|p| p.id == pin).map(|p| p.title.clone()).ok_or(Problem::NotFound("pin"))?;
    let before: Vec<Uuid> = pins.into_iter().map(|p| p.id).collect();
    let order = moved(before.clone(), pin, direction).ok_or(Problem::NotFound("pin"))?;
    if order == before {
        return Ok((title, false));
    }
    state.store.reorder_pins(workspace_id, &order).await.map_err(Problem::store("pin", "reordering pins"))?;
    Ok((title, true))
}

/// What a page needs to draw a pinned tile as its owner: the Power BI token and when to renew it.
pub struct TileToken {
    pub pin: Pin,
    /// The workspace's company filter, to apply to the tile.
    pub company_filter: Option<String>,
    pub access_token: SecretString,
    pub expires_at: i64,
    pub renew_in_seconds: i64,
}

/// Renew this long before the broker would refresh the token anyway.
const RENEW_MARGIN_SECONDS: i64 = 600;

pub async fn tile_token(state: &AppState, user: &User, workspace_id: Uuid, pin: Uuid) -> Result<TileToken, Problem> {
    let (workspace, pins) = workspace_with_pins(state, user, workspace_id).await?;
    let pin = pins.into_iter().find(|p| p.id == pin).ok_or(Problem::NotFound("pin"))?;
    // The token is for drawing this tile: not for a tile whose embed page is not the configured Power BI's.
    embed_origins(state).await?.check(&pin.embed_url).map_err(|why| Problem::Conflict(why.drawing()))?;
    let (access_token, expires_at) = state.auth.access_token_with_expiry(pin.connection_id, Some(&user.as_owner())).await?;
    let renew_in_seconds = (expires_at - state.clock.unix() - RENEW_MARGIN_SECONDS).max(60);
    Ok(TileToken { pin, company_filter: workspace.company_filter, access_token, expires_at, renew_in_seconds })
}

// ---------------------------------------------------------------- API tokens

/// The prefix every pbi-bridge API token starts with, so that secret scanners and people can tell what it is.
pub const API_TOKEN_PREFIX: &str = "pbb_";

/// A token's name: what its owner calls it (1 to 100 characters).
pub fn parse_token_name(text: &str) -> Result<String, Problem> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Problem::invalid("name", "Name the token (1 to 100 characters), such as the script that will use it."));
    }
    Ok(name.to_owned())
}

/// Days a token lives: 1 to 366, or none for a token that lasts until revoked.
pub fn parse_token_days(days: Option<i64>) -> Result<Option<i64>, Problem> {
    match days {
        Some(d) if !(1..=366).contains(&d) => {
            Err(Problem::invalid("expiresInDays", "A token lives 1 to 366 days; leave it out for one that lasts until you revoke it."))
        }
        other => Ok(other),
    }
}

/// Makes an API token for the user; the token itself is in the result only, never stored.
pub async fn create_api_token(state: &AppState, user: &User, name: &str, days: Option<i64>) -> Result<(ApiToken, SecretString), Problem> {
    let secret = format!("{API_TOKEN_PREFIX}{}", crate::session::random_token());
    let hint: String = secret.chars().take(API_TOKEN_PREFIX.len() + 4).collect();
    let now = state.clock.unix();
    let token = state
        .store
        .add_api_token(user.id, name, &crate::session::hash(&secret), &hint, days.map(|d| now + d * 86_400), now)
        .await
        .map_err(Problem::store("API token", "making an API token"))?;
    tracing::info!(user = %user.username, token = %token.id, "made an API token");
    Ok((token, SecretString::from(secret)))
}

pub async fn api_tokens(state: &AppState, user: &User) -> Result<Vec<ApiToken>, Problem> {
    state.store.api_tokens_of(user.id).await.map_err(Problem::store("API token", "listing API tokens"))
}

pub async fn revoke_api_token(state: &AppState, user: &User, id: Uuid) -> Result<(), Problem> {
    state.store.revoke_api_token(id, user.id, state.clock.unix()).await.map_err(Problem::store("API token", "revoking an API token"))?;
    tracing::info!(user = %user.username, token = %id, "revoked an API token");
    Ok(())
}

// ---------------------------------------------------------------- pbi-bridge's own users (administrators only)

pub async fn users(state: &AppState, admin: &User) -> Result<Vec<User>, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    state.store.users().await.map_err(Problem::store("user", "listing users"))
}

/// A new pbi-bridge account, as an administrator enters it.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password: &'a SecretString,
    pub is_admin: bool,
}

pub async fn create_user(state: &AppState, admin: &User, new: NewUser<'_>) -> Result<User, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    let invalid = |e: crate::users::AccountError| Problem::invalid(e.field, format!("{}.", capitalised(&e.message)));
    let username = crate::users::parse_username(new.username).map_err(invalid)?;
    let display_name = crate::users::parse_display_name(new.display_name, &username).map_err(invalid)?;
    let hash = hash_password(state, new.password).await?;
    let user = state.store.add_user(&username, &display_name, &hash, new.is_admin, state.clock.unix()).await.map_err(|e| match e {
        pbi_store::StoreError::Conflict(_) => Problem::invalid(
            "username",
            format!("A user named '{username}' already exists (user names are the same whatever their case): choose another user name."),
        ),
        other => Problem::store("user", "adding a user")(other),
    })?;
    tracing::info!(admin = %admin.username, user = %user.username, is_admin = user.is_admin, "added a user");
    let role = if user.is_admin { "administrator" } else { "user" };
    record_audit(state, audit_entry(admin, "user.added", &user, "", role)).await;
    Ok(user)
}

/// Disables or enables another user's account. Disabling ends their sessions and stops their API tokens.
pub async fn set_user_disabled(state: &AppState, admin: &User, id: Uuid, disabled: bool) -> Result<User, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    if id == admin.id && disabled {
        return Err(Problem::Conflict("You cannot disable your own account: ask another administrator.".into()));
    }
    let when = disabled.then(|| state.clock.unix());
    let before = state.store.user(id).await.map_err(Problem::store("user", "reading a user"))?;
    state.store.set_user_disabled(id, when).await.map_err(Problem::store("user", "disabling a user"))?;
    let user = state.store.user(id).await.map_err(Problem::store("user", "reading a user"))?;
    tracing::info!(admin = %admin.username, user = %user.username, disabled, "changed whether a user may sign in");
    let state_of = |u: &User| if u.disabled_at.is_some() { "disabled" } else { "enabled" };
    if state_of(&before) != state_of(&user) {
        let action = if disabled { "user.disabled" } else { "user.enabled" };
        record_audit(state, audit_entry(admin, action, &user, state_of(&before), state_of(&user))).await;
    }
    Ok(user)
}

/// Sets a user's password (at least `MIN_PASSWORD_CHARS`); their sessions end.
pub async fn set_password(state: &AppState, admin: &User, id: Uuid, password: &SecretString) -> Result<User, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    let hash = hash_password(state, password).await?;
    state.store.set_password_hash(id, &hash).await.map_err(Problem::store("user", "setting a password"))?;
    let user = state.store.user(id).await.map_err(Problem::store("user", "reading a user"))?;
    // Whoever was guessing the old password has nothing left to guess: the owner may sign in at once.
    if let Ok(name) = crate::users::SignInName::parse(&user.username) {
        state.sign_in_guard.lift(&name);
    }
    tracing::info!(admin = %admin.username, user = %user.username, "set a user's password");
    record_audit(state, audit_entry(admin, "user.password.set", &user, "", "a new password; sessions ended, sign-in locks lifted")).await;
    Ok(user)
}

/// A password's argon2 hash, made on the blocking pool in one of the server's password slots; refused as
/// busy when none is free, and as invalid (before taking a slot) when it is too short.
async fn hash_password(state: &AppState, password: &SecretString) -> Result<String, Problem> {
    let invalid = |e: crate::users::HashError| Problem::invalid("password", format!("{}.", capitalised(&e.to_string())));
    crate::users::check_password(password).map_err(invalid)?;
    let slot = state.passwords.try_take().ok_or(Problem::Busy)?;
    slot.hash(password.clone()).await.map_err(invalid)
}

/// Records a change in the audit log. The change has already happened: a failure to record it is logged as
/// an error (with what it was), not turned into a failure of the change.
pub(crate) async fn record_audit(state: &AppState, entry: pbi_store::NewAuditEntry) {
    if let Err(error) = state.store.record_audit(std::slice::from_ref(&entry), state.clock.unix()).await {
        tracing::error!(%error, actor = %entry.actor, action = %entry.action, target = %entry.target, "recording an audit entry");
    }
}

fn audit_entry(admin: &User, action: &str, target: &User, old_value: &str, new_value: &str) -> pbi_store::NewAuditEntry {
    pbi_store::NewAuditEntry {
        actor: admin.username.clone(),
        action: action.into(),
        target: target.username.clone(),
        old_value: Some(old_value.into()),
        new_value: Some(new_value.into()),
    }
}

pub(crate) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn moving_swaps_with_the_neighbour_and_stops_at_the_ends() {
        let [a, b, c] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        assert_eq!(moved(vec![a, b, c], c, Direction::Up), Some(vec![a, c, b]));
        assert_eq!(moved(vec![a, b, c], a, Direction::Down), Some(vec![b, a, c]));
        assert_eq!(moved(vec![a, b, c], a, Direction::Up), Some(vec![a, b, c]));
        assert_eq!(moved(vec![a, b, c], c, Direction::Down), Some(vec![a, b, c]));
        assert_eq!(moved(vec![a, b], c, Direction::Up), None);
    }

    #[test]
    fn names_and_company_ids_are_checked_and_trimmed() {
        assert_eq!(WorkspaceName::parse("  Sales  ").map(|n| n.0).ok().as_deref(), Some("Sales"));
        for bad in ["", "   ", "a\nb", &"x".repeat(101)] {
            assert_eq!(WorkspaceName::parse(bad).err().and_then(|p| p.field().map(str::to_owned)).as_deref(), Some("name"), "{bad:?}");
        }
        assert_eq!(CompanyId::parse(" USMF ").ok().flatten(), Some(CompanyId("USMF".into())));
        assert_eq!(CompanyId::parse("  ").ok(), Some(None));
        assert!(CompanyId::parse(&"x".repeat(51)).is_err());
        assert!(parse_token_days(Some(0)).is_err() && parse_token_days(Some(367)).is_err());
        assert_eq!(parse_token_days(None).ok(), Some(None));
    }

    proptest! {
        #[test]
        fn tile_keys_round_trip(group in proptest::option::of(any::<u128>()), dashboard in any::<u128>(), tile in any::<u128>()) {
            let at = TileRef { group: group.map(Uuid::from_u128), dashboard: Uuid::from_u128(dashboard), tile: Uuid::from_u128(tile) };
            prop_assert_eq!(TileRef::parse_key(&at.key()).ok(), Some(at));
        }

        #[test]
        fn any_text_is_a_tile_that_keeps_its_key_or_a_refusal_naming_the_field(key in ".*") {
            match TileRef::parse_key(&key) {
                Ok(at) => prop_assert_eq!(TileRef::parse_key(&at.key()).ok(), Some(at)),
                Err(problem) => prop_assert_eq!(problem.field(), Some("tile")),
            }
        }
    }
}
