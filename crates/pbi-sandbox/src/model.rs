//! The sandbox's world: the Entra directory, OAuth state and Power BI content, all in memory.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use time::OffsetDateTime;
use uuid::Uuid;

/// Everything the sandbox knows. One lock guards it; no handler holds that lock across an await.
#[derive(Default)]
pub struct World {
    pub tenants: BTreeMap<Uuid, Tenant>,
    pub users: BTreeMap<Uuid, User>,
    pub security_groups: BTreeMap<Uuid, SecurityGroup>,
    pub apps: BTreeMap<Uuid, App>,
    pub service_principals: BTreeMap<Uuid, ServicePrincipal>,
    pub grants: Vec<Grant>,
    pub workspaces: BTreeMap<Uuid, Workspace>,
    pub dashboards: BTreeMap<Uuid, Dashboard>,
    pub reports: BTreeMap<Uuid, Report>,
    pub datasets: BTreeMap<Uuid, Dataset>,
    pub dataflows: BTreeMap<Uuid, Dataflow>,
    pub datasources: BTreeMap<Uuid, Datasource>,
    pub oauth: OAuthState,
    pub scans: BTreeMap<Uuid, Scan>,
    pub embed_tokens: HashMap<String, EmbedGrant>,
    pub imports: BTreeMap<Uuid, Import>,
    /// Recent calls per (tenant, admin API), for the documented hourly quotas.
    pub admin_calls: HashMap<(Uuid, &'static str), VecDeque<OffsetDateTime>>,
}

/// A `.pbix` upload: `Publishing` for a few seconds of sandbox time, then `Succeeded`.
#[derive(Debug, Clone)]
pub struct Import {
    pub id: Uuid,
    pub workspace: Uuid,
    pub name: String,
    pub created: OffsetDateTime,
    pub report: Uuid,
    pub dataset: Uuid,
}

/// What an embed token (`GenerateToken`) allows, until when.
#[derive(Debug, Clone)]
pub struct EmbedGrant {
    pub resources: Vec<EmbedResource>,
    pub expires: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedResource {
    Report(Uuid),
    Dashboard(Uuid),
    Tile {
        dashboard: Uuid,
        tile: Uuid,
    },
    Dataset(Uuid),
    /// May create content (`Create`, or V2 `targetWorkspaces`) in this workspace.
    Workspace(Uuid),
}

/// A metadata scan (`admin/workspaces/getInfo`). Its result is taken when it is requested.
#[derive(Debug, Clone)]
pub struct Scan {
    pub id: Uuid,
    pub tenant: Uuid,
    pub created: OffsetDateTime,
    pub result: Value,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: Uuid,
    pub display_name: String,
    /// Verified domains; the first is the initial `*.onmicrosoft.com` domain.
    pub domains: Vec<String>,
    pub kind: TenantKind,
    pub settings: TenantSettings,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
pub enum TenantKind {
    /// An ordinary organisation tenant.
    Managed,
    /// A "viral" tenant created by self-service sign-up: nobody administers it.
    Unmanaged,
}

/// The Entra and Power BI admin-portal switches the sandbox honours.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct TenantSettings {
    /// Entra: "Users can consent to apps accessing company data on their behalf".
    pub users_can_consent: bool,
    /// Power BI: "Service principals can use Fabric APIs" (formerly "... Power BI APIs").
    pub service_principals_enabled: bool,
    /// The security group the previous setting is limited to; `None` = the whole organisation.
    pub service_principals_group: Option<Uuid>,
    /// Power BI: "Service principals can access read-only admin APIs".
    pub service_principals_admin_apis: bool,
    pub service_principals_admin_apis_group: Option<Uuid>,
    /// Power BI: "Enhance admin APIs responses with detailed metadata".
    pub detailed_metadata: bool,
    /// Power BI: "Enhance admin APIs responses with DAX and mashup expressions".
    pub dax_and_mashup: bool,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            users_can_consent: true,
            service_principals_enabled: false,
            service_principals_group: None,
            service_principals_admin_apis: false,
            service_principals_admin_apis_group: None,
            detailed_metadata: false,
            dax_and_mashup: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    pub tenant: Uuid,
    pub upn: String,
    pub display_name: String,
    pub password: String,
    pub power_bi_licensed: bool,
    pub power_bi_admin: bool,
    /// A directory (global) administrator: may grant consent for the whole organisation.
    pub directory_admin: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroup {
    pub id: Uuid,
    pub tenant: Uuid,
    pub display_name: String,
    /// Object ids of users and service principals.
    pub members: BTreeSet<Uuid>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    /// The Application (client) ID.
    pub client_id: Uuid,
    pub home_tenant: Uuid,
    pub display_name: String,
    pub multi_tenant: bool,
    pub secrets: Vec<ClientSecret>,
    pub redirect_uris: Vec<String>,
    /// Configured delegated Power BI permissions (short names, e.g. `Dashboard.Read.All`).
    pub delegated_permissions: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecret {
    pub id: Uuid,
    pub description: String,
    pub value: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// The object id of the service principal in its tenant.
    pub id: Uuid,
    pub tenant: Uuid,
    pub client_id: Uuid,
    pub display_name: String,
}

/// An OAuth2 permission grant: one user's consent, or (principal `None`) consent for all users.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub tenant: Uuid,
    pub client_id: Uuid,
    pub principal: Option<Uuid>,
    pub scopes: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub enum WorkspaceRole {
    Viewer,
    Contributor,
    Member,
    Admin,
}

impl WorkspaceRole {
    pub fn can_write(self) -> bool {
        self >= WorkspaceRole::Contributor
    }
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: Uuid,
    pub tenant: Uuid,
    pub name: String,
    pub description: String,
    /// `Some(user)` for that user's My workspace.
    pub personal_owner: Option<Uuid>,
    /// Users, security groups and service principals (by object id) with their roles.
    pub members: BTreeMap<Uuid, WorkspaceRole>,
    pub capacity_id: Option<Uuid>,
    pub modified: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct Dashboard {
    pub id: Uuid,
    pub workspace: Uuid,
    pub display_name: String,
    pub is_read_only: bool,
    pub tiles: Vec<Tile>,
}

#[derive(Debug, Clone)]
pub struct Tile {
    pub id: Uuid,
    pub title: String,
    pub report_id: Option<Uuid>,
    pub dataset_id: Option<Uuid>,
    pub row_span: u32,
    pub col_span: u32,
    pub visual: Visual,
}

/// How the sandbox's embed page draws a tile from its dataset's rows. Not part of the Power BI API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Visual {
    pub kind: VisualKind,
    pub table: String,
    /// The measured column (summed), or `None` to count rows.
    #[serde(default)]
    pub value: Option<String>,
    /// The grouping column for bar and line charts.
    #[serde(default)]
    pub category: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VisualKind {
    Card,
    Bar,
    Line,
    Table,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub id: Uuid,
    pub workspace: Uuid,
    pub name: String,
    pub description: String,
    pub dataset_id: Option<Uuid>,
    pub paginated: bool,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub id: Uuid,
    pub workspace: Uuid,
    pub name: String,
    pub description: String,
    pub configured_by: String,
    pub created: OffsetDateTime,
    /// `Some` for push datasets (`addRowsAPIEnabled`).
    pub push: Option<PushState>,
    pub tables: Vec<Table>,
    pub relationships: Vec<Relationship>,
    pub refreshes: Vec<Refresh>,
    pub upstream_dataflows: Vec<Uuid>,
    pub datasource_usages: Vec<Uuid>,
    pub expressions: Vec<(String, String)>,
}

/// `from_table[from_column]` → `to_table[to_column]`: filters on the `to` side reach the `from` side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    pub from_table: String,
    pub from_column: String,
    pub to_table: String,
    pub to_column: String,
}

#[derive(Debug, Clone, Default)]
pub struct PushState {
    pub default_mode: String,
    pub retention: Retention,
    /// When each recent POST rows request was accepted, and how many rows it added (rate limits).
    pub recent_posts: VecDeque<(OffsetDateTime, usize)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Retention {
    #[default]
    None,
    BasicFifo,
}

impl Retention {
    pub fn wire_name(self) -> &'static str {
        match self {
            Retention::None => "None",
            Retention::BasicFifo => "basicFIFO",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub measures: Vec<Value>,
    pub is_hidden: bool,
    pub description: Option<String>,
    pub source_expression: Option<String>,
    pub rows: VecDeque<Vec<Cell>>,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    /// The column as sent (formatString, isHidden, ...), echoed back by GET tables.
    pub wire: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Int64,
    Double,
    Boolean,
    DateTime,
    String,
    Decimal,
}

impl DataType {
    /// Power BI accepts the type names case-insensitively, and `bool` for Boolean.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "int64" => DataType::Int64,
            "double" => DataType::Double,
            "boolean" | "bool" => DataType::Boolean,
            "datetime" => DataType::DateTime,
            "string" => DataType::String,
            "decimal" => DataType::Decimal,
            _ => return None,
        })
    }

    pub fn wire_name(self) -> &'static str {
        match self {
            DataType::Int64 => "Int64",
            DataType::Double => "Double",
            DataType::Boolean => "Boolean",
            DataType::DateTime => "DateTime",
            DataType::String => "String",
            DataType::Decimal => "Decimal",
        }
    }
}

/// One stored value of a push table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Number(f64),
    Bool(bool),
    Text(Box<str>),
    /// Seconds since the Unix epoch (Power BI keeps 1/300 s; the sandbox keeps what it was sent, as text).
    DateTime(Box<str>),
}

impl Cell {
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(i) => Value::from(*i),
            Cell::Number(n) => Value::from(*n),
            Cell::Bool(b) => Value::from(*b),
            Cell::Text(s) | Cell::DateTime(s) => Value::from(s.as_ref()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Refresh {
    pub request_id: Uuid,
    pub refresh_type: String,
    pub start: OffsetDateTime,
    pub end: Option<OffsetDateTime>,
    pub status: String,
}

#[derive(Debug, Clone)]
pub struct Dataflow {
    pub id: Uuid,
    pub workspace: Uuid,
    pub name: String,
    pub configured_by: String,
    pub modified: OffsetDateTime,
    pub datasource_usages: Vec<Uuid>,
}

#[derive(Debug, Clone)]
pub struct Datasource {
    pub id: Uuid,
    pub datasource_type: String,
    pub server: String,
    pub database: String,
}

/// OAuth protocol state: sign-in sessions, pending authorize requests, codes and refresh tokens.
#[derive(Default)]
pub struct OAuthState {
    pub sessions: HashMap<String, BrowserSession>,
    pub pending: HashMap<String, PendingAuthorize>,
    pub codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshRecord>,
}

#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub user: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkce {
    S256(String),
    Plain(String),
}

/// What an authorize (or adminconsent) request asked for, kept while the user signs in and consents.
#[derive(Debug, Clone)]
pub struct PendingAuthorize {
    pub id: String,
    /// The tenant segment of the URL as sent (GUID, domain, `organizations` or `common`).
    pub tenant_segment: String,
    pub client_id: Uuid,
    pub redirect_uri: String,
    pub scopes: RequestedScopes,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub pkce: Option<Pkce>,
    pub response_mode: ResponseMode,
    pub force_login: bool,
    pub force_consent: bool,
    pub login_hint: Option<String>,
    pub admin_consent: bool,
    pub created: OffsetDateTime,
    pub user: Option<Uuid>,
}

/// Scopes as a request names them, split into the OpenID ones and one resource's permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestedScopes {
    pub openid: bool,
    pub profile: bool,
    pub email: bool,
    pub offline_access: bool,
    /// The resource's permissions by short name; `.default` stands for all configured ones.
    pub resource: BTreeSet<String>,
    pub default_scope: bool,
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: Uuid,
    pub tenant: Uuid,
    pub user: Uuid,
    pub redirect_uri: String,
    pub scopes: RequestedScopes,
    pub nonce: Option<String>,
    pub pkce: Option<Pkce>,
    pub expires: OffsetDateTime,
    pub redeemed: bool,
}

#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub client_id: Uuid,
    pub tenant: Uuid,
    pub user: Uuid,
    pub scopes: RequestedScopes,
    /// Refresh tokens expire after 90 days without use.
    pub expires: OffsetDateTime,
    pub revoked: bool,
}

impl World {
    pub fn tenant_by_segment(&self, segment: &str) -> Option<&Tenant> {
        if let Ok(id) = Uuid::parse_str(segment) {
            return self.tenants.get(&id);
        }
        let segment = segment.to_ascii_lowercase();
        self.tenants.values().find(|t| t.domains.iter().any(|d| d.eq_ignore_ascii_case(&segment)))
    }

    pub fn user_by_upn(&self, upn: &str) -> Option<&User> {
        self.users.values().find(|u| u.upn.eq_ignore_ascii_case(upn.trim()))
    }

    pub fn service_principal(&self, tenant: Uuid, client_id: Uuid) -> Option<&ServicePrincipal> {
        self.service_principals.values().find(|sp| sp.tenant == tenant && sp.client_id == client_id)
    }

    /// The security groups (in the principal's tenant) that `principal` belongs to.
    pub fn groups_of(&self, principal: Uuid) -> impl Iterator<Item = Uuid> + '_ {
        self.security_groups.values().filter(move |g| g.members.contains(&principal)).map(|g| g.id)
    }

    pub fn is_in_group(&self, principal: Uuid, group: Option<Uuid>) -> bool {
        match group {
            None => true,
            Some(group) => self.security_groups.get(&group).is_some_and(|g| g.members.contains(&principal)),
        }
    }

    /// The consented Power BI scopes of `user` for `client_id`: their own grant plus any admin grant.
    pub fn consented_scopes(&self, tenant: Uuid, client_id: Uuid, user: Uuid) -> BTreeSet<String> {
        self.grants
            .iter()
            .filter(|g| g.tenant == tenant && g.client_id == client_id && g.principal.is_none_or(|p| p == user))
            .flat_map(|g| g.scopes.iter().cloned())
            .collect()
    }

    /// A principal's role in a workspace: directly, or through a security group it belongs to.
    pub fn role_in(&self, workspace: &Workspace, principal: Uuid) -> Option<WorkspaceRole> {
        if workspace.personal_owner == Some(principal) {
            return Some(WorkspaceRole::Admin);
        }
        let direct = workspace.members.get(&principal).copied();
        let via_groups = self.groups_of(principal).filter_map(|g| workspace.members.get(&g).copied()).max();
        direct.max(via_groups)
    }

    pub fn personal_workspace_of(&self, user: Uuid) -> Option<Uuid> {
        self.workspaces.values().find(|w| w.personal_owner == Some(user)).map(|w| w.id)
    }
}
