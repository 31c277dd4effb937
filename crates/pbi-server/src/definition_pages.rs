//! The administrators' pages for seed 001's definitions: data sources (add, edit, set or clear the credential,
//! delete) and report items (define, edit, delete). A form's lines (columns as `Name: type`, parameters as
//! `name = default`) become the same input the API takes; a refused form comes back with what was typed and the
//! field at fault, a saved one answers 303 with its message (Post/Redirect/Get).

use crate::AppState;
use crate::definitions as ops;
use crate::frame::Message;
use crate::pages::{form_expired, render};
use crate::problem::Problem;
use crate::session::{self, Flash, SignedIn};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use pbi_store::{DataSource, Session};
use pbi_subscriptions::definitions::CredentialChange;
use pbi_subscriptions::definitions::{DataSourceInput, ItemInput};
use pbi_subscriptions::{ColumnSpec, VisualKind};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use std::sync::Arc;
use uuid::Uuid;

/// A form field as typed, with the page's error for it.
#[derive(Default, Deserialize)]
pub struct DataSourceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    credential_header: String,
    #[serde(default)]
    credential: String,
    /// The edit page's "remove the stored credential" box.
    #[serde(default)]
    clear_credential: Option<String>,
}

impl DataSourceForm {
    fn of(source: &DataSource) -> Self {
        let d = &source.details;
        Self {
            name: d.name.clone(),
            kind: d.kind.as_str().to_owned(),
            location: d.location.clone(),
            username: d.username.clone().unwrap_or_default(),
            credential_header: d.credential_header.clone().unwrap_or_default(),
            ..Self::default()
        }
    }

    fn input(&self) -> DataSourceInput {
        let optional = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
        DataSourceInput {
            name: self.name.clone(),
            kind: self.kind.clone(),
            location: self.location.clone(),
            username: optional(&self.username),
            credential_header: optional(&self.credential_header),
        }
    }

    /// The credential typed (never shown again: the form comes back without it).
    fn credential(&self) -> Option<SecretString> {
        Some(self.credential.clone()).filter(|c| !c.is_empty()).map(SecretString::from)
    }
}

struct SourceRow {
    id: Uuid,
    name: String,
    kind: &'static str,
    location: String,
    has_credential: bool,
}

#[derive(Template)]
#[template(path = "admin_data_sources.html")]
struct DataSourcesPage<'a> {
    csrf: &'a str,
    sources: Vec<SourceRow>,
    form: DataSourceForm,
    problem: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_data_source.html")]
struct DataSourcePage<'a> {
    csrf: &'a str,
    id: Uuid,
    has_credential: bool,
    form: DataSourceForm,
    problem: Option<String>,
}

async fn sources_page(state: &AppState, session: &Session, form: DataSourceForm, problem: Option<Problem>) -> Response {
    let sources = match ops::data_sources(state, &session.user).await {
        Ok(sources) => sources,
        Err(problem) => return problem.page(),
    };
    let sources = sources
        .into_iter()
        .map(|s| SourceRow {
            id: s.id,
            name: s.details.name,
            kind: s.details.kind.as_str(),
            location: s.details.location,
            has_credential: s.has_credential,
        })
        .collect();
    let status = if problem.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let form = DataSourceForm { credential: String::new(), ..form };
    render(status, &DataSourcesPage { csrf: &session.csrf_token, sources, form, problem: problem.map(|p| p.in_words()) })
}

pub async fn data_sources(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    let form = DataSourceForm { kind: "postgres".into(), ..DataSourceForm::default() };
    sources_page(&state, &session, form, None).await
}

pub async fn add_data_source(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    axum::Form(form): axum::Form<DataSourceForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    match ops::add_data_source(&state, &session.user, &form.input(), form.credential().as_ref()).await {
        Ok(source) => {
            let said = if source.has_credential {
                format!("Added the data source '{}', its credential stored encrypted.", source.details.name)
            } else {
                format!("Added the data source '{}' without a credential: its deliveries fail until you store one.", source.details.name)
            };
            session::done(&state, &session, "/admin/data-sources", Flash::message(Message::success(said)))
        }
        Err(problem) if problem.shown_on_form() => sources_page(&state, &session, form, Some(problem)).await,
        Err(problem) => problem.page(),
    }
}

fn source_page(session: &Session, source: &DataSource, form: DataSourceForm, problem: Option<Problem>) -> Response {
    let status = if problem.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let form = DataSourceForm { credential: String::new(), ..form };
    let page = DataSourcePage {
        csrf: &session.csrf_token,
        id: source.id,
        has_credential: source.has_credential,
        form,
        problem: problem.map(|p| p.in_words()),
    };
    render(status, &page)
}

pub async fn data_source(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Path(id): Path<Uuid>) -> Response {
    match ops::data_source(&state, &session.user, id).await {
        Ok(source) => source_page(&session, &source, DataSourceForm::of(&source), None),
        Err(problem) => problem.page(),
    }
}

pub async fn update_data_source(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<DataSourceForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let credential = match (form.credential(), form.clear_credential.is_some()) {
        (Some(secret), _) => CredentialChange::Set(secret),
        (None, true) => CredentialChange::Clear,
        (None, false) => CredentialChange::Keep,
    };
    match ops::update_data_source(&state, &session.user, id, &form.input(), credential).await {
        Ok(source) => {
            let said = format!("Saved the data source '{}'.", source.details.name);
            session::done(&state, &session, "/admin/data-sources", Flash::message(Message::success(said)))
        }
        Err(problem) if problem.shown_on_form() => match ops::data_source(&state, &session.user, id).await {
            Ok(source) => source_page(&session, &source, form, Some(problem)),
            Err(other) => other.page(),
        },
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
}

/// A delete form's answer: back to the list with what was done, or to the page with why it was refused.
async fn deleted(
    state: &AppState,
    session: &Session,
    form: &DeleteForm,
    delete: impl std::future::Future<Output = Result<(), Problem>>,
    (list, page, said): (&str, String, &str),
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    match delete.await {
        Ok(()) => session::done(state, session, list, Flash::message(Message::success(said))),
        Err(Problem::Conflict(why)) => session::done(state, session, &page, Flash::message(Message::error(why))),
        Err(problem) => problem.page(),
    }
}

pub async fn delete_data_source(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<DeleteForm>,
) -> Response {
    let delete = ops::delete_data_source(&state, &session.user, id);
    deleted(&state, &session, &form, delete, ("/admin/data-sources", format!("/admin/data-sources/{id}"), "Deleted the data source.")).await
}

/// An item's form as typed: columns one a line (`Amount: decimal`), parameters one a line (`company = USMF`;
/// nothing after `=`: each pin gives it), pinners' user names separated by commas.
#[derive(Default, Deserialize)]
pub struct ItemForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    columns: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    data_source: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    parameters: String,
    #[serde(default)]
    everyone: Option<String>,
    #[serde(default)]
    pinners: String,
}

/// Columns as the form writes them, one a line: `Name: type`.
pub(crate) fn parse_columns(text: &str) -> Result<Vec<ColumnSpec>, Problem> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let (name, column_type) = line.rsplit_once(':').ok_or_else(|| {
                Problem::invalid("columns", format!("Line {}: write a column as Name: type, such as Amount: decimal.", i + 1))
            })?;
            Ok(ColumnSpec { name: name.trim().to_owned(), column_type: column_type.trim().to_owned() })
        })
        .collect()
}

/// Parameters as the form writes them, one a line: `name = default` (a number, or text; nothing: null).
pub(crate) fn parse_parameters(text: &str) -> Result<Map<String, Value>, Problem> {
    let mut parameters = Map::new();
    for (i, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let (name, default) = line.split_once('=').ok_or_else(|| {
            Problem::invalid("parameters", format!("Line {}: write a parameter as name = default, such as company = USMF.", i + 1))
        })?;
        let default = default.trim();
        let value = if default.is_empty() {
            Value::Null
        } else if let Some(number) =
            default.parse::<i64>().ok().map(Number::from).or_else(|| default.parse::<f64>().ok().and_then(Number::from_f64))
        {
            Value::Number(number)
        } else {
            Value::String(default.to_owned())
        };
        parameters.insert(name.trim().to_owned(), value);
    }
    Ok(parameters)
}

fn columns_text(columns: &[ColumnSpec]) -> String {
    columns.iter().map(|c| format!("{}: {}\n", c.name, c.column_type)).collect()
}

fn parameters_text(parameters: &Map<String, Value>) -> String {
    parameters
        .iter()
        .map(|(name, value)| match value {
            Value::Null => format!("{name} =\n"),
            Value::String(text) => format!("{name} = {text}\n"),
            other => format!("{name} = {other}\n"),
        })
        .collect()
}

impl ItemForm {
    fn of(input: &ItemInput) -> Self {
        Self {
            name: input.name.clone(),
            description: input.description.clone(),
            kind: input.kind.clone(),
            columns: columns_text(&input.columns),
            value: input.value.clone().unwrap_or_default(),
            category: input.category.clone().unwrap_or_default(),
            date: input.date.clone().unwrap_or_default(),
            source: input.source.clone(),
            data_source: input.data_source_id.map(|id| id.to_string()).unwrap_or_default(),
            query: input.query.clone().unwrap_or_default(),
            parameters: parameters_text(&input.parameters),
            everyone: input.everyone.then(|| "on".to_owned()),
            pinners: input.pinners.join(", "),
            ..Self::default()
        }
    }

    fn input(&self) -> Result<ItemInput, Problem> {
        let optional = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
        let data_source_id = match optional(&self.data_source) {
            Some(text) => {
                Some(Uuid::parse_str(&text).map_err(|_| Problem::invalid("dataSourceId", "Choose a data source from the list."))?)
            }
            None => None,
        };
        Ok(ItemInput {
            name: self.name.clone(),
            description: self.description.clone(),
            kind: self.kind.clone(),
            columns: parse_columns(&self.columns)?,
            value: optional(&self.value),
            category: optional(&self.category),
            date: optional(&self.date),
            source: self.source.clone(),
            data_source_id,
            query: optional(&self.query),
            parameters: parse_parameters(&self.parameters)?,
            everyone: self.everyone.is_some(),
            pinners: self.pinners.split([',', '\n']).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect(),
        })
    }
}

struct ItemRow {
    id: Uuid,
    name: String,
    kind: String,
    source: String,
    who: String,
    subscriptions: i64,
}

#[derive(Template)]
#[template(path = "admin_items.html")]
struct ItemsPage {
    items: Vec<ItemRow>,
}

fn kind_label(kind: &str) -> String {
    VisualKind::parse(kind).map_or_else(|| kind.to_owned(), |k| k.label().to_owned())
}

pub async fn items(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    let (items, sources) = match (ops::items(&state, &session.user).await, ops::data_sources(&state, &session.user).await) {
        (Ok(items), Ok(sources)) => (items, sources),
        (Err(problem), _) | (_, Err(problem)) => return problem.page(),
    };
    let source_name = |id: Option<Uuid>| sources.iter().find(|s| Some(s.id) == id).map(|s| s.details.name.clone()).unwrap_or_default();
    let items = items
        .into_iter()
        .map(|d| ItemRow {
            id: d.item.id,
            name: d.item.details.name.clone(),
            kind: kind_label(&d.input.kind),
            source: match d.item.details.source {
                pbi_store::ItemSource::Pushed => "rows sent to the API".to_owned(),
                pbi_store::ItemSource::Query => format!("a query on {}", source_name(d.item.details.data_source_id)),
                pbi_store::ItemSource::Http => format!("an endpoint of {}", source_name(d.item.details.data_source_id)),
            },
            who: if d.input.everyone { "everyone".to_owned() } else { d.input.pinners.join(", ") },
            subscriptions: d.subscriptions,
        })
        .collect();
    render(StatusCode::OK, &ItemsPage { items })
}

struct SourceChoice {
    id: String,
    label: String,
}

#[derive(Template)]
#[template(path = "admin_item.html")]
struct ItemPage<'a> {
    csrf: &'a str,
    /// `None`: a new item.
    id: Option<Uuid>,
    subscriptions: i64,
    kinds: Vec<(&'static str, &'static str)>,
    sources: Vec<SourceChoice>,
    form: ItemForm,
    problem: Option<String>,
}

/// The item form: a new item (`id` none), or an item `subscriptions` deliver.
async fn item_page(
    state: &AppState,
    session: &Session,
    (id, subscriptions): (Option<Uuid>, i64),
    form: ItemForm,
    problem: Option<Problem>,
) -> Response {
    let sources = match ops::data_sources(state, &session.user).await {
        Ok(sources) => sources,
        Err(problem) => return problem.page(),
    };
    let sources = sources
        .into_iter()
        .map(|s| SourceChoice { id: s.id.to_string(), label: format!("{} ({})", s.details.name, s.details.kind.as_str()) })
        .collect();
    let page = ItemPage {
        csrf: &session.csrf_token,
        id,
        subscriptions,
        kinds: VisualKind::ALL.iter().map(|k| (k.as_str(), k.label())).collect(),
        sources,
        form,
        problem: problem.as_ref().map(Problem::in_words),
    };
    render(if problem.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK }, &page)
}

pub async fn new_item(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    let form = ItemForm { kind: "category-series".into(), source: "query".into(), everyone: Some("on".into()), ..ItemForm::default() };
    item_page(&state, &session, (None, 0), form, None).await
}

pub async fn item(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Path(id): Path<Uuid>) -> Response {
    match ops::item(&state, &session.user, id).await {
        Ok(defined) => item_page(&state, &session, (Some(id), defined.subscriptions), ItemForm::of(&defined.input), None).await,
        Err(problem) => problem.page(),
    }
}

async fn save_item(state: &AppState, session: &Session, id: Option<Uuid>, form: ItemForm) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let saved = match form.input() {
        Ok(input) => match id {
            Some(id) => ops::update_item(state, &session.user, id, &input).await,
            None => ops::add_item(state, &session.user, &input).await,
        },
        Err(problem) => Err(problem),
    };
    match saved {
        Ok(defined) => {
            let said = format!("Saved the item '{}'.", defined.item.details.name);
            session::done(state, session, "/admin/items", Flash::message(Message::success(said)))
        }
        Err(problem) if problem.shown_on_form() => {
            let subscriptions = match id {
                Some(id) => match ops::item(state, &session.user, id).await {
                    Ok(defined) => defined.subscriptions,
                    Err(other) => return other.page(),
                },
                None => 0,
            };
            item_page(state, session, (id, subscriptions), form, Some(problem)).await
        }
        Err(problem) => problem.page(),
    }
}

pub async fn add_item(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, axum::Form(form): axum::Form<ItemForm>) -> Response {
    save_item(&state, &session, None, form).await
}

pub async fn update_item(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<ItemForm>,
) -> Response {
    save_item(&state, &session, Some(id), form).await
}

pub async fn delete_item(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<DeleteForm>,
) -> Response {
    let delete = ops::delete_item(&state, &session.user, id);
    deleted(&state, &session, &form, delete, ("/admin/items", format!("/admin/items/{id}"), "Deleted the item.")).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn the_forms_lines_are_columns_and_parameters() {
        let columns = parse_columns("Region: text\n\n  Total : decimal \nWhen: at: datetime").expect("columns");
        let pairs: Vec<(&str, &str)> = columns.iter().map(|c| (c.name.as_str(), c.column_type.as_str())).collect();
        assert_eq!(pairs, [("Region", "text"), ("Total", "decimal"), ("When: at", "datetime")]);
        assert_eq!(
            parse_columns("Region text").expect_err("no colon").to_string(),
            "columns: Line 1: write a column as Name: type, such as Amount: decimal."
        );
        let parameters = parse_parameters("company = USMF\nyear = 2026\nrate = 0.5\nregion =\n").expect("parameters");
        assert_eq!(Value::Object(parameters.clone()), json!({"company": "USMF", "year": 2026, "rate": 0.5, "region": null}));
        assert_eq!(parse_parameters(&parameters_text(&parameters)).expect("again"), parameters, "what is shown reads back the same");
        assert!(parse_parameters("company").is_err());
    }

    proptest! {
        /// Whatever is typed, the form's lines are read without panicking, and columns shown read back the same.
        #[test]
        fn any_lines_are_read_without_panicking(text in "[A-Za-z0-9 :=\n.-]{0,80}") {
            let _ = parse_parameters(&text);
            if let Ok(columns) = parse_columns(&text) {
                let again = parse_columns(&columns_text(&columns)).expect("shown columns read back");
                prop_assert_eq!(again, columns);
            }
        }
    }
}
