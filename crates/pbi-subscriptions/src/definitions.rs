//! What an administrator defines: data sources (where rows come from, as whom) and report items (what users
//! may pin). Submissions from a form, the API or the CLI are strings; they become the store's typed records
//! here, once, so that a delivery never meets a definition it cannot run. Each fault names its field and says
//! what to do. A location never holds a password: the credential is stored apart, encrypted.

use crate::http_source::url_for;
use crate::item::{self, ColumnSpec, ItemError, ItemSpec};
use crate::kind::VisualKind;
use crate::query::{self, Dialect, prepare};
use pbi_store::{DataSource, DataSourceKind, ItemSource, NewAuditEntry, NewDataSource, NewItem, Store, StoreError, StoredItem, User};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use url::Url;
use uuid::Uuid;

/// The longest data source name.
pub const MAX_SOURCE_NAME: usize = 100;
/// The longest location (a URL or a path).
pub const MAX_LOCATION: usize = 2048;
/// The most parameters an item may declare.
pub const MAX_PARAMETERS: usize = 20;

/// What is wrong with a definition, naming the field as the submission spells it (`location`, `query`,
/// `parameters.company`, `pinners[1]`, `columns[0].type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DefinitionError {
    pub field: String,
    pub message: String,
}

impl From<ItemError> for DefinitionError {
    fn from(error: ItemError) -> Self {
        Self { field: error.field, message: error.message }
    }
}

fn fault(field: impl Into<String>, message: impl Into<String>) -> DefinitionError {
    DefinitionError { field: field.into(), message: message.into() }
}

/// Why a definition was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveFailure {
    #[error(transparent)]
    Invalid(#[from] DefinitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A data source as submitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataSourceInput {
    pub name: String,
    /// postgres, sqlite or http.
    pub kind: String,
    pub location: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential_header: Option<String>,
}

fn given(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

fn one_line(field: &str, text: &str, most: usize) -> Result<String, DefinitionError> {
    Ok(item::one_line(field, text, most, "Enter a value.")?)
}

/// Checks a data source: its kind, a location of that kind without a password, and the fields only that kind
/// has (a PostgreSQL user, an HTTP credential's header, `Authorization` unless another is named).
pub fn check_data_source(input: &DataSourceInput) -> Result<NewDataSource, DefinitionError> {
    let name = one_line("name", &input.name, MAX_SOURCE_NAME)?;
    let kind = DataSourceKind::parse(input.kind.trim())
        .ok_or_else(|| fault("kind", format!("'{}' is not a data source kind; use postgres, sqlite or http.", input.kind)))?;
    let location = one_line("location", &input.location, MAX_LOCATION)?;
    let location = match kind {
        DataSourceKind::Postgres => postgres_location(&location)?,
        DataSourceKind::Sqlite => sqlite_location(&location)?,
        DataSourceKind::Http => http_location(&location)?,
    };
    let username = given(&input.username).map(|u| one_line("username", u, MAX_SOURCE_NAME)).transpose()?;
    if username.is_some() && kind != DataSourceKind::Postgres {
        return Err(fault("username", "Only a PostgreSQL data source has a user: leave it empty."));
    }
    let credential_header = match (kind, given(&input.credential_header)) {
        (DataSourceKind::Http, header) => Some(header_name(header.unwrap_or("Authorization"))?),
        (_, Some(_)) => {
            return Err(fault("credentialHeader", "Only an HTTP data source sends its credential in a header: leave it empty."));
        }
        (_, None) => None,
    };
    Ok(NewDataSource { name, kind, location, username, credential_header })
}

fn postgres_location(text: &str) -> Result<String, DefinitionError> {
    let url = Url::parse(text)
        .map_err(|e| fault("location", format!("Give a PostgreSQL URL such as postgres://db.example.com:5432/sales ({e}).")))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") || !url.has_host() {
        return Err(fault("location", "Give a PostgreSQL URL such as postgres://db.example.com:5432/sales."));
    }
    if url.password().is_some() || url.query_pairs().any(|(key, _)| key.to_ascii_lowercase().contains("password")) {
        return Err(fault("location", "Remove the password from the URL: store it as the data source's credential, which is encrypted."));
    }
    Ok(text.to_owned())
}

fn sqlite_location(text: &str) -> Result<String, DefinitionError> {
    if text.starts_with("sqlite:") || !std::path::Path::new(text).is_absolute() {
        return Err(fault("location", "Give the SQLite file's absolute path, such as /var/lib/app/reports.db (without sqlite:)."));
    }
    Ok(text.to_owned())
}

/// An endpoint's base URL, ending in `/` so that items' paths are joined under it.
fn http_location(text: &str) -> Result<String, DefinitionError> {
    let mut url = Url::parse(text)
        .map_err(|e| fault("location", format!("Give the endpoint's base URL, such as https://erp.example.com/reports/ ({e}).")))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(fault("location", "Give an http:// or https:// base URL, such as https://erp.example.com/reports/."));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(fault("location", "Remove the user and password from the URL: store the credential, which is sent in a header."));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(fault("location", "Remove the query and fragment from the base URL: an item's path carries its query."));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url.to_string())
}

fn header_name(text: &str) -> Result<String, DefinitionError> {
    reqwest::header::HeaderName::from_bytes(text.as_bytes()).map(|_| text.to_owned()).map_err(|_| {
        fault("credentialHeader", format!("'{text}' is not a header name; use letters, digits and dashes, such as Authorization."))
    })
}

/// An item as submitted: its definition (`spec`), where its rows come from, its parameters with their defaults
/// (`null`: each pin gives a value), and who may pin it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// single-value, category-series, time-series or table.
    pub kind: String,
    pub columns: Vec<ColumnSpec>,
    /// The column whose numbers are drawn (single value, category series, time series).
    #[serde(default)]
    pub value: Option<String>,
    /// The column that labels each number (category series).
    #[serde(default)]
    pub category: Option<String>,
    /// The column that places each number in time (time series).
    #[serde(default)]
    pub date: Option<String>,
    /// query, http or pushed.
    pub source: String,
    #[serde(default)]
    pub data_source_id: Option<Uuid>,
    /// The SQL (a query item), or the path and query under the data source's URL (an HTTP item).
    #[serde(default)]
    pub query: Option<String>,
    /// The named parameters (`:company` in the SQL) with their defaults: text, a number, or null when each pin
    /// must give a value.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Map<String, Value>,
    /// Every pbi-bridge user may pin it (the default); otherwise only `pinners`.
    #[serde(default = "everyone")]
    pub everyone: bool,
    /// User names.
    #[serde(default)]
    pub pinners: Vec<String>,
}

fn everyone() -> bool {
    true
}

impl ItemInput {
    /// The item's definition, as `ItemSpec::check` takes it.
    pub fn spec(&self) -> ItemSpec {
        ItemSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            kind: self.kind.clone(),
            columns: self.columns.clone(),
            value: self.value.clone(),
            category: self.category.clone(),
            date: self.date.clone(),
        }
    }
}

fn checked_parameters(parameters: &Map<String, Value>) -> Result<(), DefinitionError> {
    if parameters.len() > MAX_PARAMETERS {
        return Err(fault("parameters", format!("Declare at most {MAX_PARAMETERS} parameters.")));
    }
    for (name, value) in parameters {
        if !query::is_name(name) {
            return Err(fault(format!("parameters.{name}"), "Name a parameter with letters, digits and _, starting with a letter."));
        }
        if !(value.is_string() || value.is_number() || value.is_null()) {
            return Err(fault(format!("parameters.{name}"), "Give a default that is text or a number, or null if each pin must give one."));
        }
    }
    Ok(())
}

/// The query's own parameters must be the declared ones: a value for each is bound, and nothing else is.
fn matching_parameters(used: &[String], declared: &Map<String, Value>) -> Result<(), DefinitionError> {
    if let Some(missing) = used.iter().find(|name| !declared.contains_key(*name)) {
        return Err(fault(
            "parameters",
            format!("The query uses :{missing}; declare it with its default value (or null if each pin must give one)."),
        ));
    }
    let used: BTreeSet<&str> = used.iter().map(String::as_str).collect();
    if let Some(extra) = declared.keys().find(|name| !used.contains(name.as_str())) {
        return Err(fault(format!("parameters.{extra}"), format!("The query does not use :{extra}: remove it, or use it.")));
    }
    Ok(())
}

/// Checks an item against the data source it names (`source`, looked up by the caller) and the users it names
/// (`users`: every pbi-bridge user).
pub fn check_item(input: &ItemInput, source: Option<&DataSource>, users: &[User]) -> Result<NewItem, DefinitionError> {
    let spec = input.spec();
    let item = spec.check()?;
    let kind = ItemSource::parse(input.source.trim())
        .ok_or_else(|| fault("source", format!("'{}' is not a source; use query, http or pushed.", input.source)))?;
    checked_parameters(&input.parameters)?;
    let query = given(&input.query).map(str::to_owned);
    match (kind, input.data_source_id, source) {
        (ItemSource::Pushed, None, _) if query.is_none() => {}
        (ItemSource::Pushed, _, _) => {
            return Err(fault("source", "A pushed item's rows come from the API: leave dataSourceId and query empty."));
        }
        (_, None, _) => return Err(fault("dataSourceId", "Choose the data source the item's rows come from.")),
        (_, Some(id), None) => return Err(fault("dataSourceId", format!("No data source has the id {id}."))),
        (ItemSource::Query, Some(_), Some(source)) => {
            let dialect = match source.details.kind {
                DataSourceKind::Postgres => Dialect::Postgres,
                DataSourceKind::Sqlite => Dialect::Sqlite,
                DataSourceKind::Http => {
                    return Err(fault("dataSourceId", "A query item needs a PostgreSQL or SQLite data source; this one is HTTP."));
                }
            };
            let sql = query.as_deref().ok_or_else(|| fault("query", "Write the SQL that gives the item's rows."))?;
            let prepared = prepare(sql, dialect).map_err(|e| {
                let text = e.to_string();
                fault("query", text.strip_prefix("query: ").unwrap_or(&text).to_owned())
            })?;
            matching_parameters(&prepared.parameters, &input.parameters)?;
        }
        (ItemSource::Http, Some(_), Some(source)) => {
            if source.details.kind != DataSourceKind::Http {
                return Err(fault("dataSourceId", "An HTTP item needs an HTTP data source."));
            }
            url_for(&source.details.location, query.as_deref().unwrap_or(""), &Map::new())
                .map_err(|e| fault("query", format!("{e}: give a path under the data source's URL.")))?;
        }
    }
    let pinners = pinner_ids(input, users)?;
    let definition = serde_json::to_string(&ItemSpec { name: item.name.clone(), ..spec }).map_err(|e| fault("name", e.to_string()))?;
    Ok(NewItem {
        name: item.name,
        definition,
        source: kind,
        data_source_id: if kind == ItemSource::Pushed { None } else { input.data_source_id },
        query,
        parameters: Value::Object(input.parameters.clone()).to_string(),
        everyone: input.everyone,
        pinners,
    })
}

fn pinner_ids(input: &ItemInput, users: &[User]) -> Result<Vec<Uuid>, DefinitionError> {
    if input.everyone {
        if !input.pinners.is_empty() {
            return Err(fault("pinners", "Everyone may pin this item: leave the list empty, or untick everyone."));
        }
        return Ok(Vec::new());
    }
    if input.pinners.is_empty() {
        return Err(fault("pinners", "Name the users who may pin it, or let everyone."));
    }
    let mut ids = Vec::with_capacity(input.pinners.len());
    for (i, name) in input.pinners.iter().enumerate() {
        let user = users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| fault(format!("pinners[{i}]"), format!("No pbi-bridge user is named '{}'.", name.trim())))?;
        if !ids.contains(&user.id) {
            ids.push(user.id);
        }
    }
    Ok(ids)
}

/// A stored item as it would be submitted (to show it, or to edit it).
pub fn input_of(item: &StoredItem, users: &[User]) -> ItemInput {
    let spec = serde_json::from_str::<ItemSpec>(&item.details.definition)
        .unwrap_or_else(|_| ItemSpec { name: item.details.name.clone(), ..ItemSpec::default() });
    ItemInput {
        name: spec.name,
        description: spec.description,
        kind: spec.kind,
        columns: spec.columns,
        value: spec.value,
        category: spec.category,
        date: spec.date,
        source: item.details.source.as_str().to_owned(),
        data_source_id: item.details.data_source_id,
        query: item.details.query.clone(),
        parameters: serde_json::from_str(&item.details.parameters).unwrap_or_default(),
        everyone: item.details.everyone,
        pinners: item
            .details
            .pinners
            .iter()
            .map(|id| users.iter().find(|u| u.id == *id).map_or_else(|| id.to_string(), |u| u.username.clone()))
            .collect(),
    }
}

/// Checks an item against the store's data sources and users.
async fn item_to_save(store: &Store, input: &ItemInput) -> Result<NewItem, SaveFailure> {
    let source = match input.data_source_id {
        Some(id) => match store.data_source(id).await {
            Ok(source) => Some(source),
            Err(StoreError::NotFound(_)) => None,
            Err(other) => return Err(other.into()),
        },
        None => None,
    };
    let users = store.users().await?;
    Ok(check_item(input, source.as_ref(), &users)?)
}

/// An item for administrators: as stored, as it would be submitted, and how many subscriptions deliver it.
#[derive(Debug, Clone)]
pub struct Defined {
    pub item: StoredItem,
    pub input: ItemInput,
    pub subscriptions: i64,
}

/// What a credential change does to a data source's stored credential.
pub enum CredentialChange {
    Keep,
    Set(SecretString),
    Clear,
}

/// The changes an administrator (`actor`: their user name, or `cli`) makes, each checked, stored and written
/// to the audit log (never with the credential: only whether one is stored).
pub struct Definitions<'a> {
    pub store: &'a Store,
    pub actor: &'a str,
    pub now: i64,
}

/// A data source as the audit log shows it.
fn described(source: &DataSource) -> String {
    let d = &source.details;
    serde_json::json!({
        "name": d.name, "kind": d.kind.as_str(), "location": d.location, "username": d.username,
        "credentialHeader": d.credential_header, "credentialStored": source.has_credential,
    })
    .to_string()
}

fn shown(input: &ItemInput) -> String {
    serde_json::to_string(input).unwrap_or_default()
}

impl Definitions<'_> {
    /// Records a change that has happened: a failure to record it is logged, not made a failure of the change.
    async fn audit(&self, action: &str, target: &str, old_value: Option<String>, new_value: Option<String>) {
        let entry = NewAuditEntry { actor: self.actor.to_owned(), action: action.into(), target: target.into(), old_value, new_value };
        if let Err(error) = self.store.record_audit(std::slice::from_ref(&entry), self.now).await {
            tracing::error!(%error, actor = %entry.actor, action = %entry.action, target = %entry.target, "recording an audit entry");
        }
    }

    pub async fn add_data_source(&self, input: &DataSourceInput, credential: Option<&SecretString>) -> Result<DataSource, SaveFailure> {
        let new = check_data_source(input)?;
        let source = self.store.add_data_source(&new, credential, self.now).await?;
        self.audit("data_source.added", &source.details.name, None, Some(described(&source))).await;
        Ok(source)
    }

    pub async fn update_data_source(
        &self,
        id: Uuid,
        input: &DataSourceInput,
        credential: CredentialChange,
    ) -> Result<DataSource, SaveFailure> {
        let before = self.store.data_source(id).await?;
        let new = check_data_source(input)?;
        self.store.update_data_source(id, &new, self.now).await?;
        let action = match &credential {
            CredentialChange::Keep => "data_source.updated",
            CredentialChange::Set(secret) => {
                self.store.set_data_source_credential(id, Some(secret), self.now).await?;
                "data_source.credential.set"
            }
            CredentialChange::Clear => {
                self.store.set_data_source_credential(id, None, self.now).await?;
                "data_source.credential.cleared"
            }
        };
        let after = self.store.data_source(id).await?;
        self.audit(action, &after.details.name, Some(described(&before)), Some(described(&after))).await;
        Ok(after)
    }

    pub async fn delete_data_source(&self, id: Uuid) -> Result<(), SaveFailure> {
        let before = self.store.data_source(id).await?;
        self.store.delete_data_source(id).await?;
        self.audit("data_source.deleted", &before.details.name, Some(described(&before)), None).await;
        Ok(())
    }

    pub async fn add_item(&self, input: &ItemInput) -> Result<Defined, SaveFailure> {
        let new = item_to_save(self.store, input).await?;
        let stored = self.store.add_item(&new, self.now).await?;
        let defined = defined_item(self.store, stored.id).await?;
        self.audit("item.added", &stored.details.name, None, Some(shown(&defined.input))).await;
        Ok(defined)
    }

    /// Replaces an item's definition. Its kind stays while subscriptions deliver it: their push datasets and
    /// tiles in Power BI have that kind's shape.
    pub async fn update_item(&self, id: Uuid, input: &ItemInput) -> Result<Defined, SaveFailure> {
        let before = defined_item(self.store, id).await?;
        let new = item_to_save(self.store, input).await?;
        let kind_of = |text: &str| VisualKind::parse(text.trim());
        if before.subscriptions > 0 && kind_of(&before.input.kind) != kind_of(&input.kind) {
            return Err(fault(
                "kind",
                format!(
                    "{} subscriptions deliver this item as {}: their Power BI tiles have that shape. Keep the kind, or define a new item.",
                    before.subscriptions, before.input.kind
                ),
            )
            .into());
        }
        self.store.update_item(id, &new, self.now).await?;
        let after = defined_item(self.store, id).await?;
        self.audit("item.updated", &after.item.details.name, Some(shown(&before.input)), Some(shown(&after.input))).await;
        Ok(after)
    }

    pub async fn delete_item(&self, id: Uuid) -> Result<(), SaveFailure> {
        let before = defined_item(self.store, id).await?;
        self.store.delete_item(id).await?;
        self.audit("item.deleted", &before.item.details.name, Some(shown(&before.input)), None).await;
        Ok(())
    }
}

/// Every item, as administrators see them.
pub async fn defined_items(store: &Store) -> Result<Vec<Defined>, StoreError> {
    let items = store.items().await?;
    let users = store.users().await?;
    let counts = store.subscription_counts().await?;
    Ok(items
        .into_iter()
        .map(|item| Defined { input: input_of(&item, &users), subscriptions: counts.get(&item.id).copied().unwrap_or(0), item })
        .collect())
}

pub async fn defined_item(store: &Store, id: Uuid) -> Result<Defined, StoreError> {
    let item = store.item(id).await?;
    let users = store.users().await?;
    let subscriptions = store.subscription_counts().await?.get(&id).copied().unwrap_or(0);
    Ok(Defined { input: input_of(&item, &users), subscriptions, item })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn source(kind: &str, location: &str) -> DataSourceInput {
        DataSourceInput { name: "ERP".into(), kind: kind.into(), location: location.into(), ..DataSourceInput::default() }
    }

    fn refused(input: DataSourceInput) -> String {
        check_data_source(&input).expect_err("refused").to_string()
    }

    #[test]
    fn a_location_never_holds_a_password() {
        assert!(refused(source("postgres", "postgres://app:hunter2@db/sales")).starts_with("location: Remove the password"));
        assert!(refused(source("postgres", "postgres://db/sales?password=hunter2")).starts_with("location: Remove the password"));
        assert!(refused(source("postgres", "postgres://db/sales?sslpassword=x")).starts_with("location: Remove the password"));
        assert!(refused(source("http", "https://me:hunter2@erp.example.com/")).starts_with("location: Remove the user and password"));
        let kept = check_data_source(&source("postgres", "postgres://app@db:5432/sales")).expect("no password");
        assert_eq!(kept.location, "postgres://app@db:5432/sales");
    }

    #[test]
    fn each_kind_has_its_own_location_and_fields() {
        assert!(refused(source("mysql", "x")).starts_with("kind:"));
        assert!(refused(source("postgres", "https://db/sales")).starts_with("location: Give a PostgreSQL URL"));
        assert!(refused(source("sqlite", "reports.db")).starts_with("location: Give the SQLite file's absolute path"));
        assert!(refused(source("sqlite", "sqlite:/x.db")).starts_with("location:"));
        assert!(refused(source("http", "ftp://erp/")).starts_with("location:"));
        assert!(refused(source("http", "https://erp/reports?x=1")).starts_with("location: Remove the query"));
        let http = check_data_source(&source("http", "https://erp.example.com/reports")).expect("http");
        assert_eq!(http.location, "https://erp.example.com/reports/", "a base URL ends in / so that paths join under it");
        assert_eq!(http.credential_header.as_deref(), Some("Authorization"));
        let sqlite = DataSourceInput { username: Some("app".into()), ..source("sqlite", "/var/lib/x.db") };
        assert!(refused(sqlite).starts_with("username:"));
        let header = DataSourceInput { credential_header: Some("X-Key".into()), ..source("postgres", "postgres://db/x") };
        assert!(refused(header).starts_with("credentialHeader:"));
        let bad_header = DataSourceInput { credential_header: Some("X Key".into()), ..source("http", "https://erp/") };
        assert!(refused(bad_header).starts_with("credentialHeader:"));
        assert!(refused(DataSourceInput { name: " ".into(), ..source("http", "https://erp/") }).starts_with("name:"));
    }

    fn stored_source(kind: DataSourceKind, location: &str) -> DataSource {
        DataSource {
            id: Uuid::from_u128(7),
            details: NewDataSource { name: "ERP".into(), kind, location: location.into(), username: None, credential_header: None },
            has_credential: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn item(source: &str, query: Option<&str>, parameters: Value) -> ItemInput {
        ItemInput {
            name: " Chart2 ".into(),
            description: String::new(),
            kind: "category-series".into(),
            columns: vec![
                ColumnSpec { name: "Region".into(), column_type: "text".into() },
                ColumnSpec { name: "Total".into(), column_type: "decimal".into() },
            ],
            category: Some("Region".into()),
            value: Some("Total".into()),
            date: None,
            source: source.into(),
            data_source_id: (source != "pushed").then_some(Uuid::from_u128(7)),
            query: query.map(str::to_owned),
            parameters: parameters.as_object().cloned().unwrap_or_default(),
            everyone: true,
            pinners: Vec::new(),
        }
    }

    fn user(name: &str, n: u128) -> User {
        User { id: Uuid::from_u128(n), username: name.into(), display_name: name.into(), is_admin: false, created_at: 0, disabled_at: None }
    }

    #[test]
    fn a_query_item_declares_exactly_the_parameters_its_sql_uses() {
        let db = stored_source(DataSourceKind::Sqlite, "/x.db");
        let sql = "SELECT region AS Region, SUM(amount) AS Total FROM sales WHERE company = :company GROUP BY region";
        let saved = check_item(&item("query", Some(sql), json!({"company": "USMF"})), Some(&db), &[]).expect("valid");
        assert_eq!((saved.name.as_str(), saved.source, saved.data_source_id), ("Chart2", ItemSource::Query, Some(db.id)));
        let missing = check_item(&item("query", Some(sql), json!({})), Some(&db), &[]).expect_err("undeclared");
        assert_eq!(missing.field, "parameters");
        let extra = check_item(&item("query", Some(sql), json!({"company": null, "year": 2026})), Some(&db), &[]).expect_err("unused");
        assert_eq!(extra.field, "parameters.year");
        let write = check_item(&item("query", Some("DELETE FROM sales"), json!({})), Some(&db), &[]).expect_err("writes");
        assert_eq!(write.field, "query");
        assert!(write.message.starts_with("only a query that reads"), "{}", write.message);
        let nested = check_item(&item("query", Some(sql), json!({"company": ["a"]})), Some(&db), &[]).expect_err("a list");
        assert_eq!(nested.field, "parameters.company");
    }

    #[test]
    fn an_items_source_matches_its_data_source() {
        let http = stored_source(DataSourceKind::Http, "https://erp.example.com/reports/");
        let db = stored_source(DataSourceKind::Postgres, "postgres://db/sales");
        assert_eq!(check_item(&item("query", Some("SELECT 1"), json!({})), Some(&http), &[]).expect_err("http").field, "dataSourceId");
        assert_eq!(check_item(&item("http", Some("spend"), json!({})), Some(&db), &[]).expect_err("db").field, "dataSourceId");
        assert_eq!(check_item(&item("http", Some("https://evil.example/"), json!({})), Some(&http), &[]).expect_err("away").field, "query");
        assert!(check_item(&item("http", Some("spend.csv"), json!({"company": "USMF"})), Some(&http), &[]).is_ok());
        assert_eq!(check_item(&item("query", Some("SELECT 1"), json!({})), None, &[]).expect_err("unknown").field, "dataSourceId");
        let pushed = check_item(&item("pushed", None, json!({})), None, &[]).expect("pushed");
        assert_eq!((pushed.data_source_id, pushed.query), (None, None));
        assert_eq!(check_item(&item("pushed", Some("SELECT 1"), json!({})), None, &[]).expect_err("query").field, "source");
        let mut bad_kind = item("pushed", None, json!({}));
        bad_kind.kind = "pie".into();
        assert_eq!(check_item(&bad_kind, None, &[]).expect_err("kind").field, "kind");
    }

    #[test]
    fn named_pinners_are_pbi_bridge_users() {
        let users = [user("alice", 1), user("bob", 2)];
        let mut some = item("pushed", None, json!({}));
        some.everyone = false;
        some.pinners = vec!["Alice".into(), "bob".into(), "alice".into()];
        assert_eq!(check_item(&some, None, &users).expect("valid").pinners, vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
        some.pinners.push("carol".into());
        assert_eq!(check_item(&some, None, &users).expect_err("unknown").field, "pinners[3]");
        some.pinners.clear();
        assert_eq!(check_item(&some, None, &users).expect_err("nobody").field, "pinners");
        let stored = StoredItem {
            id: Uuid::from_u128(9),
            details: NewItem {
                pinners: vec![Uuid::from_u128(2)],
                everyone: false,
                ..check_item(&item("pushed", None, json!({})), None, &[]).expect("valid")
            },
            pushed_at: None,
            created_at: 0,
            updated_at: 0,
        };
        let shown = input_of(&stored, &users);
        assert_eq!((shown.pinners, shown.name.as_str(), shown.source.as_str()), (vec!["bob".to_owned()], "Chart2", "pushed"));
    }

    proptest! {
        /// Whatever location is submitted, checking never panics, and what is kept carries no password.
        #[test]
        fn any_location_is_checked_without_panicking(
            kind in prop::sample::select(vec!["postgres", "sqlite", "http"]),
            location in "(postgres://|https://|/)?[a-z:@/?=&.%]{0,40}",
        ) {
            if let Ok(kept) = check_data_source(&source(kind, &location))
                && kind != "sqlite"
            {
                let url = Url::parse(&kept.location).expect("a URL");
                prop_assert!(url.password().is_none());
                prop_assert!(!url.query_pairs().any(|(k, _)| k.to_ascii_lowercase().contains("password")));
            }
        }
    }
}
