//! Checks JSON against the schemas of Microsoft's Power BI REST swagger (test support).

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SwaggerError {
    #[error("cannot read the swagger at {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the swagger at {path} is not JSON: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("the swagger has no operation '{0}'")]
    UnknownOperation(String),
    #[error("operation '{operation}' documents no body for status {status}")]
    NoSchema { operation: String, status: u16 },
}

pub struct Swagger {
    doc: Value,
}

impl Swagger {
    /// The copy in `shared/reference/` beside the repository.
    pub fn default_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/powerbi-rest-swagger.json")
    }

    pub fn load(path: &Path) -> Result<Self, SwaggerError> {
        let text = std::fs::read_to_string(path).map_err(|source| SwaggerError::Read { path: path.to_owned(), source })?;
        let doc = serde_json::from_str(&text).map_err(|source| SwaggerError::Parse { path: path.to_owned(), source })?;
        Ok(Self { doc })
    }

    pub fn load_default() -> Result<Self, SwaggerError> {
        Self::load(&Self::default_path())
    }

    fn operation(&self, operation_id: &str) -> Option<&Value> {
        self.doc["paths"]
            .as_object()?
            .values()
            .filter_map(Value::as_object)
            .flat_map(|methods| methods.values())
            .find(|op| op.get("operationId").and_then(Value::as_str) == Some(operation_id))
    }

    /// Checks `body` against the schema the swagger gives operation `operation_id` for `status`.
    pub fn check_response(&self, operation_id: &str, status: u16, body: &Value) -> Result<(), SwaggerError> {
        let operation = self.operation(operation_id).ok_or_else(|| SwaggerError::UnknownOperation(operation_id.to_owned()))?;
        let schema = operation["responses"][status.to_string()]
            .get("schema")
            .ok_or_else(|| SwaggerError::NoSchema { operation: operation_id.to_owned(), status })?;
        let problems = self.problems(schema, body);
        assert!(
            problems.is_empty(),
            "{operation_id} {status}: the body does not match the swagger:\n  {}\nbody: {body}",
            problems.join("\n  ")
        );
        Ok(())
    }

    /// All the ways `value` differs from the schema (empty when it matches).
    pub fn problems(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, value, "$", &mut out, 0);
        out
    }

    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.doc["definitions"].get(name)
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/definitions/")) {
            Some(name) => self.definition(name).unwrap_or(schema),
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>, depth: usize) {
        if depth > 40 {
            return;
        }
        let schema = self.resolve(schema);
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.check(part, value, path, out, depth + 1);
            }
        }
        let kind = schema.get("type").and_then(Value::as_str).or_else(|| schema.get("properties").map(|_| "object"));
        match kind {
            Some("object") => self.check_object(schema, value, path, out, depth),
            Some("array") => match value.as_array() {
                Some(items) => {
                    if let Some(item_schema) = schema.get("items") {
                        for (i, item) in items.iter().enumerate() {
                            self.check(item_schema, item, &format!("{path}[{i}]"), out, depth + 1);
                        }
                    }
                }
                None => out.push(format!("{path}: expected an array, got {value}")),
            },
            Some("string") => check_string(schema, value, path, out),
            Some("integer") if !(value.is_i64() || value.is_u64()) => out.push(format!("{path}: expected an integer, got {value}")),
            Some("number") if !value.is_number() => out.push(format!("{path}: expected a number, got {value}")),
            Some("boolean") if !value.is_boolean() => out.push(format!("{path}: expected a boolean, got {value}")),
            _ => {}
        }
    }

    fn check_object(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>, depth: usize) {
        let Some(object) = value.as_object() else {
            out.push(format!("{path}: expected an object, got {value}"));
            return;
        };
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if lookup(object, required).is_none_or(Value::is_null) {
                out.push(format!("{path}: the required property '{required}' is missing"));
            }
        }
        for (name, property_schema) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
            match lookup(object, name) {
                Some(Value::Null) | None => {}
                Some(property) => self.check(property_schema, property, &format!("{path}.{name}"), out, depth + 1),
            }
        }
    }
}

/// Property lookup as the live service needs: case-insensitive, and `@odata.context` for `odata.context`.
fn lookup<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.iter().find(|(k, _)| k.trim_start_matches('@').eq_ignore_ascii_case(name.trim_start_matches('@'))).map(|(_, v)| v)
}

fn check_string(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(text) = value.as_str() else {
        out.push(format!("{path}: expected a string, got {value}"));
        return;
    };
    match schema.get("format").and_then(Value::as_str) {
        Some("uuid") if uuid::Uuid::parse_str(text).is_err() => out.push(format!("{path}: '{text}' is not a GUID")),
        Some("date-time") if time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_err() => {
            out.push(format!("{path}: '{text}' is not an RFC 3339 date-time"))
        }
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.iter().filter_map(Value::as_str).any(|o| o.eq_ignore_ascii_case(text))
    {
        out.push(format!("{path}: '{text}' is not one of {}", Value::Array(options.clone())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_real_problems_and_accepts_live_casing() {
        let swagger = Swagger::load_default().expect("the swagger is beside the repository");
        let group = swagger.definition("Group").expect("Group is defined").clone();
        assert!(
            swagger.problems(&group, &json!({"id": "f089354e-8366-4e18-aea3-4cb4a3a50b48", "name": "x", "isReadOnly": false})).is_empty()
        );
        let bad = swagger.problems(&group, &json!({"ID": "not-a-guid", "isReadOnly": "no"}));
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(!swagger.problems(&group, &json!({"name": "x"})).is_empty(), "id is required");
    }
}
