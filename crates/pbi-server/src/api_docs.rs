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
    /// HTML (`inline`).
    summary: String,
    /// HTML (`markdown`).
    description: String,
    request: String,
    /// Status, description (HTML), schema: the answers of this operation that are not shared.
    responses: Vec<(String, String, String)>,
    /// The shared error answers this operation can give (listed once, under "Errors").
    errors: Vec<String>,
}

struct Section {
    name: String,
    /// HTML (`markdown`).
    description: String,
    operations: Vec<Operation>,
}

/// Markdown as the OpenAPI descriptions use it, to HTML: paragraphs (blank lines), `- ` lists, `code`
/// spans and **bold**. Everything is escaped first, so no description can add markup of its own.
pub(crate) fn markdown(text: &str) -> String {
    let mut html = String::new();
    for block in text.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        let lines: Vec<&str> = block.lines().map(str::trim).collect();
        if lines.iter().all(|l| l.starts_with("- ")) {
            html.push_str("<ul>");
            for line in lines {
                html.push_str(&format!("<li>{}</li>", inline(&line[2..])));
            }
            html.push_str("</ul>");
        } else {
            html.push_str(&format!("<p>{}</p>", inline(&lines.join(" "))));
        }
    }
    html
}

fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        // Odd parts are code; an unmatched backtick leaves the rest as code, as Markdown's readers would not,
        // but safely.
        if i % 2 == 1 {
            out.push_str(&format!("<code>{}</code>", escape(part)));
        } else {
            for (j, plain) in escape(part).split("**").enumerate() {
                if j % 2 == 1 { out.push_str(&format!("<strong>{plain}</strong>")) } else { out.push_str(plain) }
            }
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// An error answer many operations share, said once.
struct SharedError {
    status: String,
    /// HTML (`markdown`).
    description: String,
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
    /// HTML (`markdown`).
    description: String,
    errors: Vec<SharedError>,
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

/// The error answers (an `ErrorBody`) that at least two operations give with the same words, one per status.
fn shared_errors(doc: &Value) -> Vec<(String, String)> {
    let mut seen: std::collections::BTreeMap<(String, String), usize> = std::collections::BTreeMap::new();
    for item in doc["paths"].as_object().into_iter().flatten().map(|(_, item)| item) {
        for op in ["get", "post", "put", "patch", "delete"].iter().filter_map(|m| item.get(*m)) {
            for (status, r) in op["responses"].as_object().into_iter().flatten() {
                if json_schema(r).map(type_name).as_deref() == Some("ErrorBody") {
                    *seen.entry((status.clone(), text(r, "description"))).or_default() += 1;
                }
            }
        }
    }
    // One per status (its most common words), so each has one anchor; other words stay with their operation.
    let mut best: std::collections::BTreeMap<String, (usize, String)> = std::collections::BTreeMap::new();
    for ((status, description), n) in seen.into_iter().filter(|(_, n)| *n >= 2) {
        if best.get(&status).is_none_or(|(most, _)| n > *most) {
            best.insert(status, (n, description));
        }
    }
    best.into_iter().map(|(status, (_, description))| (status, description)).collect()
}

fn sections(doc: &Value, shared: &[(String, String)]) -> Vec<Section> {
    let mut sections: Vec<Section> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Section { name: text(t, "name"), description: markdown(&text(t, "description")), operations: Vec::new() })
        .collect();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let mut responses = Vec::new();
            let mut errors = Vec::new();
            for (status, r) in op["responses"].as_object().into_iter().flatten() {
                let description = text(r, "description");
                if shared.iter().any(|(s, d)| s == status && *d == description) {
                    errors.push(status.clone());
                } else {
                    responses.push((status.clone(), markdown(&description), json_schema(r).map(type_name).unwrap_or_default()));
                }
            }
            let operation = Operation {
                anchor: text(op, "operationId"),
                method: method.to_uppercase(),
                path: format!("/api/v1{path}"),
                summary: inline(&text(op, "summary")),
                description: markdown(&text(op, "description")),
                request: op.get("requestBody").and_then(json_schema).map(type_name).unwrap_or_default(),
                responses,
                errors,
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
                        (field.clone(), format!("{}{optional}", type_name(property)), markdown(&text(property, "description")))
                    })
                    .collect(),
            };
            Schema { name: name.clone(), properties }
        })
        .collect()
}

pub async fn page(State(state): State<Arc<AppState>>, _: crate::session::MaybeSignedIn, Extension(doc): Extension<OpenApiDoc>) -> Response {
    let doc = match serde_json::to_value(doc.as_ref()) {
        Ok(doc) => doc,
        Err(error) => {
            tracing::error!(%error, "serialising the OpenAPI document");
            return crate::pages::server_error();
        }
    };
    let shared = shared_errors(&doc);
    let page = DocsPage {
        base_url: state.base_url.clone(),
        title: text(&doc["info"], "title"),
        description: markdown(&text(&doc["info"], "description")),
        errors: shared.iter().map(|(status, d)| SharedError { status: status.clone(), description: markdown(d) }).collect(),
        sections: sections(&doc, &shared),
        schemas: schemas(&doc),
    };
    crate::pages::render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::markdown;

    #[test]
    fn descriptions_become_safe_html() {
        assert_eq!(markdown("Send `Authorization: Bearer <token>`."), "<p>Send <code>Authorization: Bearer &lt;token&gt;</code>.</p>");
        assert_eq!(markdown("One\ntwo\n\n- a **b**\n- `c`"), "<p>One two</p><ul><li>a <strong>b</strong></li><li><code>c</code></li></ul>");
        assert_eq!(markdown("<script>x</script> \"q\""), "<p>&lt;script&gt;x&lt;/script&gt; &quot;q&quot;</p>");
        assert_eq!(markdown(""), "");
    }
}
