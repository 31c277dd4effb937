//! OData conventions of Power BI answers: list envelopes, `$top`/`$skip`, and the `$filter` subset it documents.

use super::error::{PbiError, PbiResult};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const CONTENT_TYPE: &str = "application/json; odata.metadata=minimal; odata.streaming=true";

/// `{"@odata.context": "{base}/v1.0/myorg/{prefix}$metadata#{entity}", "value": [...]}`.
pub fn list(base: &str, prefix: &str, entity: &str, values: Vec<Value>) -> Response {
    json_response(json!({"@odata.context": format!("{base}/v1.0/myorg/{prefix}$metadata#{entity}"), "value": values}))
}

/// A single entity with its `@odata.context`.
pub fn entity(base: &str, prefix: &str, entity: &str, mut value: Value) -> Response {
    if let Value::Object(map) = &mut value {
        map.insert("@odata.context".into(), json!(format!("{base}/v1.0/myorg/{prefix}$metadata#{entity}/$entity")));
    }
    json_response(value)
}

pub fn json_response(value: Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// `$top` and `$skip` as non-negative integers; a bad value is a 400 naming the parameter.
pub fn paging(query: &[(String, String)]) -> PbiResult<(Option<usize>, usize)> {
    let read = |name: &str| -> PbiResult<Option<usize>> {
        match query.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                PbiError::bad_request(format!("Invalid value '{v}' for query parameter '{name}': expected a non-negative integer."))
            }),
        }
    };
    Ok((read("$top")?, read("$skip")?.unwrap_or(0)))
}

pub fn page<T>(items: Vec<T>, top: Option<usize>, skip: usize) -> Vec<T> {
    items.into_iter().skip(skip).take(top.unwrap_or(usize::MAX)).collect()
}

/// A parsed `$filter`: disjunctions of conjunctions of simple comparisons on string properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    any_of: Vec<Vec<Term>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Eq { property: String, lower: bool, value: String },
    Ne { property: String, value: String },
    Contains { property: String, value: String },
    StartsWith { property: String, value: String },
    EndsWith { property: String, value: String },
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, String> {
        let any_of = split_keyword(text, " or ")
            .into_iter()
            .map(|conj| split_keyword(conj, " and ").into_iter().map(parse_term).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter { any_of })
    }

    /// `lookup(property)` gives an entity's string value for a property name (case-insensitive).
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.any_of.iter().any(|all| all.iter().all(|term| term.matches(&lookup)))
    }
}

impl Term {
    fn matches(&self, lookup: &impl Fn(&str) -> Option<String>) -> bool {
        match self {
            Term::Eq { property, lower, value } => {
                lookup(property).is_some_and(|v| if *lower { v.to_lowercase() == *value } else { v == *value })
            }
            Term::Ne { property, value } => lookup(property).is_none_or(|v| v != *value),
            Term::Contains { property, value } => lookup(property).is_some_and(|v| v.to_lowercase().contains(&value.to_lowercase())),
            Term::StartsWith { property, value } => lookup(property).is_some_and(|v| v.to_lowercase().starts_with(&value.to_lowercase())),
            Term::EndsWith { property, value } => lookup(property).is_some_and(|v| v.to_lowercase().ends_with(&value.to_lowercase())),
        }
    }
}

/// Splits on a keyword outside quotes, case-insensitively.
fn split_keyword<'a>(text: &'a str, keyword: &str) -> Vec<&'a str> {
    let lower = text.to_ascii_lowercase();
    let mut parts = Vec::new();
    let (mut start, mut in_quote, mut i) = (0, false, 0);
    let bytes = lower.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            in_quote = !in_quote;
        } else if !in_quote && bytes[i..].starts_with(keyword.as_bytes()) {
            // The keyword is ASCII, so a byte match starts and ends on character boundaries.
            parts.push(&text[start..i]);
            i += keyword.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

fn parse_term(term: &str) -> Result<Term, String> {
    let term = term.trim().trim_start_matches('(').trim_end_matches(')').trim();
    let unsupported = || {
        format!(
            "Unsupported $filter expression '{term}'. Supported: name eq 'x', tolower(name) eq 'x', contains(name,'x'), startswith(name,'x'), endswith(name,'x'), joined by and/or."
        )
    };
    for (function, make) in [("contains(", 0), ("startswith(", 1), ("endswith(", 2)] {
        if let Some(args) = strip_prefix_ci(term, function) {
            let args = args.strip_suffix(')').unwrap_or(args);
            let (property, value) = args.split_once(',').ok_or_else(unsupported)?;
            let property = property.trim().to_owned();
            let value = quoted(value).ok_or_else(unsupported)?;
            return Ok(match make {
                0 => Term::Contains { property, value },
                1 => Term::StartsWith { property, value },
                _ => Term::EndsWith { property, value },
            });
        }
    }
    let (left, op, right) = ["eq", "ne"]
        .iter()
        .find_map(|op| {
            let needle = format!(" {op} ");
            let at = term.to_ascii_lowercase().find(&needle)?;
            Some((&term[..at], *op, &term[at + needle.len()..]))
        })
        .ok_or_else(unsupported)?;
    let value = quoted(right).ok_or_else(unsupported)?;
    let left = left.trim();
    let (property, lower) = match strip_prefix_ci(left, "tolower(") {
        Some(inner) => (inner.trim_end_matches(')').trim().to_owned(), true),
        None => (left.to_owned(), false),
    };
    Ok(match op {
        "eq" => Term::Eq { property, lower, value: if lower { value.to_lowercase() } else { value } },
        _ => Term::Ne { property, value },
    })
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// `'it''s'` → `it's`.
fn quoted(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn named(name: &'static str) -> impl Fn(&str) -> Option<String> {
        move |p: &str| p.eq_ignore_ascii_case("name").then(|| name.to_owned())
    }

    #[test]
    fn documented_filters_work() {
        let f = Filter::parse("contains(name,'marketing') or name eq 'contoso'").expect("valid");
        assert!(f.matches(named("Global Marketing")));
        assert!(f.matches(named("contoso")));
        assert!(!f.matches(named("Contoso")));
        let f = Filter::parse("tolower(name) eq 'sales'").expect("valid");
        assert!(f.matches(named("SALES")));
        assert!(Filter::parse("name eq 'it''s'").expect("valid").matches(named("it's")));
        assert!(Filter::parse("name gt 3").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,80}") {
            let _ = Filter::parse(&text);
        }
    }
}
