//! `Datasets_ExecuteQueries`: DAX queries against a dataset's tables.
//!
//! The sandbox evaluates the one query shape applications use to list a column's values,
//! `EVALUATE VALUES(Table[Column])` (or `DISTINCT`), with the table quoted or not. Anything else is a DAX
//! query failure (400), as the service answers a query it cannot run. Rows come back keyed by the fully
//! qualified column name (`Company[ID]`); blanks are left out unless `serializerSettings.includeNulls`.

use super::Ctx;
use super::error::{PbiError, PbiResult};
use crate::model::{Cell, Dataset};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

const QUERY_SCOPES: &[&str] = &["Dataset.Read.All", "Dataset.ReadWrite.All"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecuteQueriesRequest {
    queries: Vec<QueryIn>,
    #[serde(default)]
    serializer_settings: SerializerSettings,
    /// Ignored for a model without row-level security, as the service does.
    #[serde(default)]
    #[allow(dead_code)]
    impersonated_user_name: Option<String>,
}

#[derive(Deserialize)]
struct QueryIn {
    query: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SerializerSettings {
    #[serde(default)]
    include_nulls: bool,
}

/// A column reference as DAX writes it: `'Sales Data'[Amount]` or `Sales[Amount]`.
#[derive(Debug, PartialEq, Eq)]
pub struct ColumnRef {
    pub table: String,
    pub column: String,
}

/// Reads `EVALUATE VALUES(<column>)` or `EVALUATE DISTINCT(<column>)`; keywords in any case.
pub fn parse_values_query(query: &str) -> Result<ColumnRef, String> {
    let unsupported =
        || "The sandbox evaluates only EVALUATE VALUES(Table[Column]) and EVALUATE DISTINCT(Table[Column]) queries.".to_owned();
    let rest = strip_keyword(query.trim_start(), "EVALUATE").ok_or_else(unsupported)?;
    let rest =
        strip_keyword(rest.trim_start(), "VALUES").or_else(|| strip_keyword(rest.trim_start(), "DISTINCT")).ok_or_else(unsupported)?;
    let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(unsupported)?;
    parse_column_ref(inner.trim()).ok_or_else(unsupported)
}

fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    let ends = rest.chars().next().is_none_or(|c| !c.is_alphanumeric() && c != '_');
    (head.eq_ignore_ascii_case(keyword) && ends).then_some(rest)
}

fn parse_column_ref(text: &str) -> Option<ColumnRef> {
    let (table, rest) = if let Some(quoted) = text.strip_prefix('\'') {
        // Inside quotes, '' stands for one quote.
        let mut table = String::new();
        let mut chars = quoted.char_indices();
        loop {
            let (i, c) = chars.next()?;
            if c == '\'' {
                if quoted[i + 1..].starts_with('\'') {
                    table.push('\'');
                    chars.next();
                } else {
                    break (table, &quoted[i + 1..]);
                }
            } else {
                table.push(c);
            }
        }
    } else {
        let end = text.find('[')?;
        let table = &text[..end];
        if table.is_empty() || !table.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        (table.to_owned(), &text[end..])
    };
    let column = rest.trim_start().strip_prefix('[')?.strip_suffix(']')?;
    // In a bracketed name, ]] stands for one bracket; a lone ] ends it early.
    if column.replace("]]", "").contains(']') || table.is_empty() || column.is_empty() {
        return None;
    }
    Some(ColumnRef { table, column: column.replace("]]", "]") })
}

fn dax_failure(message: impl Into<String>) -> PbiError {
    PbiError::coded(StatusCode::BAD_REQUEST, "DatasetExecuteQueriesError", message)
}

/// The distinct values of a column, in the order they first appear; a blank counts once, as a blank.
fn column_values(dataset: &Dataset, reference: &ColumnRef) -> PbiResult<Vec<Cell>> {
    let table = dataset
        .tables
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(&reference.table))
        .ok_or_else(|| dax_failure(format!("Cannot find table '{}'.", reference.table)))?;
    let index = table.columns.iter().position(|c| c.name.eq_ignore_ascii_case(&reference.column)).ok_or_else(|| {
        dax_failure(format!(
            "Column '{}' in table '{}' cannot be found or may not be used in this expression.",
            reference.column, reference.table
        ))
    })?;
    let mut seen: Vec<Cell> = Vec::new();
    for row in &table.rows {
        let cell = row.get(index).cloned().unwrap_or(Cell::Null);
        if !seen.contains(&cell) {
            seen.push(cell);
        }
    }
    Ok(seen)
}

pub async fn execute_queries(ctx: Ctx, body: Bytes) -> Response {
    let result = (|| {
        ctx.caller.require_scope(QUERY_SCOPES)?;
        let request: ExecuteQueriesRequest = serde_json::from_slice(&body)
            .map_err(|e| PbiError::bad_request(format!("The request body is not a DatasetExecuteQueriesRequest: {e}.")))?;
        let [query] = request.queries.as_slice() else {
            return Err(PbiError::bad_request("Only one query per API call is supported: 'queries' must hold exactly one query."));
        };
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let id = ctx.id("datasetId")?;
        let dataset = world.datasets.get(&id).filter(|d| d.workspace == workspace).ok_or_else(PbiError::not_found)?;
        let reference = parse_values_query(&query.query).map_err(dax_failure)?;
        let values = column_values(dataset, &reference)?;
        let key = format!("{}[{}]", table_name(dataset, &reference), column_name(dataset, &reference));
        let rows: Vec<Value> = values
            .into_iter()
            .map(|cell| {
                let mut row = Map::new();
                if cell != Cell::Null || request.serializer_settings.include_nulls {
                    row.insert(key.clone(), cell.to_json());
                }
                Value::Object(row)
            })
            .collect();
        Ok(axum::Json(json!({"results": [{"tables": [{"rows": rows}]}]})))
    })();
    ctx.answer(result)
}

/// The names as the model spells them (a query may write them in another case).
fn table_name<'a>(dataset: &'a Dataset, reference: &'a ColumnRef) -> &'a str {
    dataset.tables.iter().find(|t| t.name.eq_ignore_ascii_case(&reference.table)).map_or(&reference.table, |t| &t.name)
}

fn column_name<'a>(dataset: &'a Dataset, reference: &'a ColumnRef) -> &'a str {
    dataset
        .tables
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(&reference.table))
        .and_then(|t| t.columns.iter().find(|c| c.name.eq_ignore_ascii_case(&reference.column)))
        .map_or(&reference.column, |c| &c.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(table: &str, column: &str) -> ColumnRef {
        ColumnRef { table: table.into(), column: column.into() }
    }

    #[test]
    fn reads_values_and_distinct_queries_in_the_forms_dax_allows() {
        assert_eq!(parse_values_query("EVALUATE VALUES(Company[ID])"), Ok(column("Company", "ID")));
        assert_eq!(parse_values_query("  evaluate\n distinct ( 'Sales Data'[Company ID] ) "), Ok(column("Sales Data", "Company ID")));
        assert_eq!(parse_values_query("EVALUATE VALUES('It''s'[a]]b])"), Ok(column("It's", "a]b")));
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        for query in [
            "",
            "EVALUATE Company",
            "EVALUATEVALUES(Company[ID])",
            "EVALUATE VALUES(Company)",
            "EVALUATE VALUES(Company[ID]",
            "EVALUATE VALUES(Company[I]D])",
            "EVALUATE VALUES('Company[ID])",
            "EVALUATE VALUES(Com pany[ID])",
            "EVALUATE VALUES([ID])",
            "EVALUATE VALUES(Company[])",
            "EVALUATE SUMMARIZE(Company, Company[ID])",
        ] {
            assert!(parse_values_query(query).is_err(), "{query:?} accepted");
        }
    }

    proptest::proptest! {
        /// Any table and column name, written as DAX quotes it, reads back as itself.
        #[test]
        fn any_quoted_name_reads_back(table in "[^\\p{Cc}]{1,20}", column in "[^\\p{Cc}]{1,20}", values in proptest::bool::ANY) {
            let quoted = format!("'{}'[{}]", table.replace('\'', "''"), column.replace(']', "]]"));
            let query = format!("EVALUATE {}({quoted})", if values { "VALUES" } else { "DISTINCT" });
            proptest::prop_assert_eq!(parse_values_query(&query), Ok(ColumnRef { table, column }));
        }
    }
}
