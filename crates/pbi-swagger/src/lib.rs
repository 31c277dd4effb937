//! Checks JSON against the schemas of an API description: Microsoft's Power BI REST swagger, leniently as the
//! live service needs, or pbi-bridge's own OpenAPI 3.1 document, strictly (test support).

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
    /// Exact property names, no properties the schema does not list, null only where the schema allows it.
    strict: bool,
}

impl Swagger {
    /// The copy in `shared/reference/` beside the repository.
    pub fn default_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/powerbi-rest-swagger.json")
    }

    pub fn load(path: &Path) -> Result<Self, SwaggerError> {
        let text = std::fs::read_to_string(path).map_err(|source| SwaggerError::Read { path: path.to_owned(), source })?;
        let doc = serde_json::from_str(&text).map_err(|source| SwaggerError::Parse { path: path.to_owned(), source })?;
        Ok(Self { doc, strict: false })
    }

    pub fn load_default() -> Result<Self, SwaggerError> {
        Self::load(&Self::default_path())
    }

    /// An OpenAPI 3 document of our own, checked strictly: what it says is exactly what is sent.
    pub fn strict(doc: Value) -> Self {
        Self { doc, strict: true }
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
        let response = &operation["responses"][status.to_string()];
        // Swagger 2 puts the schema on the response; OpenAPI 3 under its JSON content.
        let schema = response
            .get("schema")
            .or_else(|| response.get("content").and_then(|c| c.get("application/json")).and_then(|c| c.get("schema")))
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
        self.doc["definitions"].get(name).or_else(|| self.doc["components"]["schemas"].get(name))
    }

    /// The schema a `$ref` points to (the schema itself when it is not a reference); `None` when it points nowhere.
    fn resolve<'a>(&'a self, schema: &'a Value) -> Option<&'a Value> {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else { return Some(schema) };
        let name = reference.strip_prefix("#/definitions/").or_else(|| reference.strip_prefix("#/components/schemas/"))?;
        self.definition(name)
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>, depth: usize) {
        if depth > 40 {
            return;
        }
        let Some(schema) = self.resolve(schema) else {
            // A document that points nowhere describes nothing: say so rather than accept anything.
            return out.push(format!("{path}: the schema's reference {} resolves to nothing", schema["$ref"]));
        };
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.check(part, value, path, out, depth + 1);
            }
        }
        if let Some(options) = schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(Value::as_array) {
            if !options.iter().any(|option| self.problems_at(option, value, path, depth + 1).is_empty()) {
                out.push(format!("{path}: {value} matches none of the schemas it may be"));
            }
            return;
        }
        // OpenAPI 3.1 writes a nullable type as a list: ["string", "null"].
        let kinds: Vec<&str> = match schema.get("type") {
            Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(kind)) => vec![kind.as_str()],
            _ => Vec::new(),
        };
        if value.is_null() && (kinds.contains(&"null") || !self.strict) {
            return;
        }
        if kinds == ["null"] {
            return out.push(format!("{path}: expected null, got {value}"));
        }
        let kind = kinds.iter().copied().find(|k| *k != "null").or_else(|| schema.get("properties").map(|_| "object"));
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
            Some("string") => check_string(schema, value, path, out, self.strict),
            Some("integer") if !(value.is_i64() || value.is_u64()) => out.push(format!("{path}: expected an integer, got {value}")),
            Some("number") if !value.is_number() => out.push(format!("{path}: expected a number, got {value}")),
            Some("boolean") if !value.is_boolean() => out.push(format!("{path}: expected a boolean, got {value}")),
            _ if self.strict && value.is_null() => out.push(format!("{path}: null where the schema allows none")),
            _ => {}
        }
    }

    fn problems_at(&self, schema: &Value, value: &Value, path: &str, depth: usize) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, value, path, &mut out, depth);
        out
    }

    fn check_object(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>, depth: usize) {
        let Some(object) = value.as_object() else {
            out.push(format!("{path}: expected an object, got {value}"));
            return;
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        let find = |name: &str| if self.strict { object.get(name) } else { lookup(object, name) };
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            // Strictly, a required property must be there (null where its schema allows null); leniently, not null.
            if find(required).is_none_or(|v| v.is_null() && !self.strict) {
                out.push(format!("{path}: the required property '{required}' is missing"));
            }
        }
        for (name, property_schema) in properties.into_iter().flatten() {
            match find(name) {
                Some(Value::Null) if !self.strict => {}
                None => {}
                Some(property) => self.check(property_schema, property, &format!("{path}.{name}"), out, depth + 1),
            }
        }
        if self.strict {
            for name in object.keys().filter(|k| properties.is_none_or(|p| !p.contains_key(*k))) {
                out.push(format!("{path}: the property '{name}' is not in the schema"));
            }
        }
    }
}

/// Property lookup as the live service needs: case-insensitive, and `@odata.context` for `odata.context`.
fn lookup<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.iter().find(|(k, _)| k.trim_start_matches('@').eq_ignore_ascii_case(name.trim_start_matches('@'))).map(|(_, v)| v)
}

fn check_string(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>, strict: bool) {
    let Some(text) = value.as_str() else {
        out.push(format!("{path}: expected a string, got {value}"));
        return;
    };
    match schema.get("format").and_then(Value::as_str) {
        Some("uuid") if uuid::Uuid::parse_str(text).is_err() => out.push(format!("{path}: '{text}' is not a GUID")),
        Some("date") if time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).is_err() => {
            out.push(format!("{path}: '{text}' is not a date (YYYY-MM-DD)"))
        }
        Some("date-time") if time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_err() => {
            out.push(format!("{path}: '{text}' is not an RFC 3339 date-time"))
        }
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.iter().filter_map(Value::as_str).any(|o| if strict { o == text } else { o.eq_ignore_ascii_case(text) })
    {
        out.push(format!("{path}: '{text}' is not one of {}", Value::Array(options.clone())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_openapi_checks_exact_names_extra_properties_nulls_and_one_of() {
        let doc = json!({
            "paths": {"/x": {"get": {"operationId": "getX", "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/X"}}}}}}}},
            "components": {"schemas": {
                "X": {"type": "object", "required": ["id", "note"], "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "note": {"type": ["string", "null"]},
                    "kind": {"type": "string", "enum": ["a", "b"]},
                    "child": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Y"}]}
                }},
                "Y": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
            }}
        });
        let api = Swagger::strict(doc);
        let x = api.definition("X").expect("X").clone();
        let id = "f089354e-8366-4e18-aea3-4cb4a3a50b48";
        assert_eq!(api.problems(&x, &json!({"id": id, "note": null, "child": {"n": 1}})), Vec::<String>::new());
        assert_eq!(api.problems(&x, &json!({"ID": id, "note": "n"})).len(), 2, "exact names: ID is extra and id missing");
        assert_eq!(api.problems(&x, &json!({"id": id, "note": "n", "kind": "A"})).len(), 1, "exact enum case");
        assert_eq!(api.problems(&x, &json!({"id": null, "note": "n"})).len(), 1, "id may not be null");
        assert_eq!(api.problems(&x, &json!({"id": id, "note": "n", "child": {"n": "one"}})).len(), 1, "oneOf");
        assert!(api.check_response("getX", 200, &json!({"id": id, "note": "n"})).is_ok());
        let dangling = json!({"$ref": "#/components/schemas/Missing"});
        assert_eq!(api.problems(&dangling, &json!({})).len(), 1, "a reference to nothing is a problem, not a pass");
    }

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
