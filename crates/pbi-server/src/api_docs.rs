//! The API's OpenAPI document as JSON, and as a page for people, both read from the one document
//! `api::router` built from the handlers.

use crate::AppState;
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;

pub type OpenApiDoc = Arc<utoipa::openapi::OpenApi>;

pub async fn openapi_json(Extension(doc): Extension<OpenApiDoc>) -> Response {
    axum::Json(doc.as_ref().clone()).into_response()
}

struct Operation {
    anchor: String,
    method: String,
    path: String,
    summary: String,
    description: String,
    request: String,
    responses: Vec<(String, String, String)>,
}

struct Section {
    name: String,
    description: String,
    operations: Vec<Operation>,
}

struct Schema {
    name: String,
    properties: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "api_docs.html")]
struct DocsPage {
    base_url: String,
    title: String,
    description: String,
    sections: Vec<Section>,
    schemas: Vec<Schema>,
}

/// A schema's name when it is a reference, else its type (arrays as `[Item]`).
fn type_name(schema: &Value) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        return options.iter().map(type_name).collect::<Vec<_>>().join(" or ");
    }
    let kinds: Vec<String> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.clone()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let kinds: Vec<String> = kinds
        .into_iter()
        .map(|kind| match (kind.as_str(), schema.get("items"), schema.get("format").and_then(Value::as_str)) {
            ("array", Some(items), _) => format!("[{}]", type_name(items)),
            (_, _, Some(format)) if kind != "null" => format!("{kind} ({format})"),
            _ => kind,
        })
        .collect();
    if kinds.is_empty() { "any".into() } else { kinds.join(" or ") }
}

fn text(value: &Value, key: &str) -> String {
    value.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn json_schema(body: &Value) -> Option<&Value> {
    body.get("content")?.get("application/json")?.get("schema")
}

fn sections(doc: &Value) -> Vec<Section> {
    let mut sections: Vec<Section> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Section { name: text(t, "name"), description: text(t, "description"), operations: Vec::new() })
        .collect();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let responses = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(status, r)| (status.clone(), text(r, "description"), json_schema(r).map(type_name).unwrap_or_default()))
                .collect();
            let operation = Operation {
                anchor: text(op, "operationId"),
                method: method.to_uppercase(),
                path: format!("/api/v1{path}"),
                summary: text(op, "summary"),
                description: text(op, "description"),
                request: op.get("requestBody").and_then(json_schema).map(type_name).unwrap_or_default(),
                responses,
            };
            let tag = op["tags"].get(0).and_then(Value::as_str).unwrap_or_default();
            match sections.iter_mut().find(|s| s.name == tag) {
                Some(section) => section.operations.push(operation),
                None => sections.push(Section { name: tag.to_owned(), description: String::new(), operations: vec![operation] }),
            }
        }
    }
    sections
}

fn schemas(doc: &Value) -> Vec<Schema> {
    doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| {
            let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let properties = match schema.get("enum").and_then(Value::as_array) {
                Some(values) => {
                    vec![("one of".into(), values.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "), String::new())]
                }
                None => schema["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(field, property)| {
                        let optional = if required.contains(&field.as_str()) { "" } else { ", optional" };
                        (field.clone(), format!("{}{optional}", type_name(property)), text(property, "description"))
                    })
                    .collect(),
            };
            Schema { name: name.clone(), properties }
        })
        .collect()
}

pub async fn page(State(state): State<Arc<AppState>>, Extension(doc): Extension<OpenApiDoc>) -> Response {
    let doc = match serde_json::to_value(doc.as_ref()) {
        Ok(doc) => doc,
        Err(error) => {
            tracing::error!(%error, "serialising the OpenAPI document");
            return crate::pages::server_error();
        }
    };
    let page = DocsPage {
        base_url: state.base_url.clone(),
        title: text(&doc["info"], "title"),
        description: text(&doc["info"], "description"),
        sections: sections(&doc),
        schemas: schemas(&doc),
    };
    crate::pages::render(StatusCode::OK, &page)
}
