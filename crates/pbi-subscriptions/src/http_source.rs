//! An item whose rows come from the application's own HTTP endpoint: a GET under the data source's base URL
//! (the item's path cannot leave it), the pin's parameter values as query parameters, the stored credential in
//! the header the source names. The answer is JSON (an array of row objects, or `{"rows": [...]}`) or CSV (a
//! header line, then rows; each cell read as its item column's type). Errors never carry the credential.

use crate::item::{ColumnType, Item};
use crate::rows::{MAX_ROWS, Row, parse_instant};
use crate::sql_source::SourceError;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::time::Duration;
use url::Url;

/// The largest answer read (a bigger one is refused before it is parsed).
pub const MAX_BODY: usize = 256 * 1024 * 1024;

pub struct HttpSource<'a> {
    /// The data source's base URL, such as `https://erp.example.com/reports/`.
    pub base: &'a str,
    /// The item's path (and query) under it.
    pub path: &'a str,
    pub header: Option<&'a str>,
    pub credential: Option<&'a SecretString>,
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource").field("base", &self.base).field("path", &self.path).finish_non_exhaustive()
    }
}

/// The URL the item's rows are fetched from: its path joined to the base, refused if it leaves the base.
pub fn url_for(base: &str, path: &str, values: &Map<String, Value>) -> Result<Url, SourceError> {
    let base = Url::parse(base).map_err(|e| SourceError::Connect(format!("the data source's URL: {e}")))?;
    let relative = path.trim_start_matches('/');
    let mut url = base.join(relative).map_err(|e| SourceError::Query(format!("the item's path: {e}")))?;
    if url.origin() != base.origin() || !url.path().starts_with(base.path()) {
        return Err(SourceError::Query(format!("the item's path leads outside the data source's URL {base}")));
    }
    for (name, value) in values {
        let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
        url.query_pairs_mut().append_pair(name, &text);
    }
    Ok(url)
}

/// Fetches the item's rows.
pub async fn fetch(
    client: &reqwest::Client,
    source: &HttpSource<'_>,
    item: &Item,
    values: &Map<String, Value>,
) -> Result<Vec<Row>, SourceError> {
    let url = url_for(source.base, source.path, values)?;
    let mut request = client.get(url).timeout(source.timeout).header("accept", "application/json, text/csv");
    if let (Some(header), Some(credential)) = (source.header, source.credential) {
        request = request.header(header, credential.expose_secret());
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() { SourceError::Timeout(source.timeout) } else { SourceError::Connect(e.without_url().to_string()) }
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(SourceError::Query(format!("the endpoint answered {status}")));
    }
    if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(SourceError::Query(format!("the answer is larger than {MAX_BODY} bytes")));
    }
    let csv = response.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|t| t.contains("csv"));
    let body = response.bytes().await.map_err(|e| SourceError::Connect(e.without_url().to_string()))?;
    if body.len() > MAX_BODY {
        return Err(SourceError::Query(format!("the answer is larger than {MAX_BODY} bytes")));
    }
    if csv { csv_rows(&body, item) } else { json_rows(&body) }
}

/// An array of row objects, or an object with one under `rows`.
pub fn json_rows(body: &[u8]) -> Result<Vec<Row>, SourceError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| SourceError::Query(format!("the answer is not JSON: {e}")))?;
    let rows = match value {
        Value::Array(rows) => rows,
        Value::Object(mut object) => match object.remove("rows") {
            Some(Value::Array(rows)) => rows,
            _ => return Err(SourceError::Query("the answer is an object without a list under \"rows\"".into())),
        },
        _ => return Err(SourceError::Query("the answer is neither a list of rows nor {\"rows\": [...]}".into())),
    };
    if rows.len() > MAX_ROWS {
        return Err(SourceError::TooManyRows);
    }
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| match row {
            Value::Object(object) => Ok(object),
            _ => Err(SourceError::Query(format!("row {} is not an object", i + 1))),
        })
        .collect()
}

/// CSV with a header line; each cell read as the type of the item column of that name (an empty cell is null).
pub fn csv_rows(body: &[u8], item: &Item) -> Result<Vec<Row>, SourceError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(body);
    let headers: Vec<String> =
        reader.headers().map_err(|e| SourceError::Query(format!("the CSV header: {e}")))?.iter().map(str::to_owned).collect();
    let types: Vec<Option<ColumnType>> =
        headers.iter().map(|h| item.columns.iter().find(|c| c.name.eq_ignore_ascii_case(h)).map(|c| c.column_type)).collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        if rows.len() == MAX_ROWS {
            return Err(SourceError::TooManyRows);
        }
        let record = record.map_err(|e| SourceError::Query(format!("CSV row {}: {e}", i + 1)))?;
        let mut row = Map::new();
        for ((name, column_type), cell) in headers.iter().zip(&types).zip(record.iter()) {
            row.insert(
                name.clone(),
                cell_value(cell, *column_type).map_err(|p| SourceError::Query(format!("row {}, column '{name}': {p}", i + 1)))?,
            );
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A CSV cell as the JSON value its column's type reads (an unknown column stays text, for the item's check
/// to name).
fn cell_value(cell: &str, column_type: Option<ColumnType>) -> Result<Value, String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(Value::Null);
    }
    match column_type {
        None | Some(ColumnType::Text) => Ok(Value::String(cell.to_owned())),
        Some(ColumnType::Integer) => cell.parse::<i64>().map(Value::from).map_err(|_| format!("'{cell}' is not an integer")),
        Some(ColumnType::Decimal) => cell
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("'{cell}' is not a decimal number")),
        Some(ColumnType::Boolean) => match cell.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "no" => Ok(Value::Bool(false)),
            _ => Err(format!("'{cell}' is not true or false")),
        },
        Some(ColumnType::DateTime) => {
            parse_instant(cell).map(|_| Value::String(cell.to_owned())).ok_or_else(|| format!("'{cell}' is not a date and time"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::{ColumnSpec, ItemSpec};
    use proptest::prelude::*;
    use serde_json::json;

    fn item() -> Item {
        ItemSpec {
            name: "Orders".into(),
            kind: "table".into(),
            columns: [("Customer", "text"), ("Total", "decimal"), ("Count", "integer"), ("Paid", "boolean"), ("Due", "datetime")]
                .iter()
                .map(|(n, t)| ColumnSpec { name: (*n).into(), column_type: (*t).into() })
                .collect(),
            ..ItemSpec::default()
        }
        .check()
        .expect("valid")
    }

    #[test]
    fn csv_cells_are_read_as_their_columns_types() {
        let body = b"Customer,Total,Count,Paid,Due\nContoso,12.5,3,yes,2026-12-01\n\"Fabrikam, Inc.\",,0,false,2026-12-02T10:00:00Z\n";
        let rows = csv_rows(body, &item()).expect("rows");
        assert_eq!(
            Value::Object(rows[0].clone()),
            json!({"Customer": "Contoso", "Total": 12.5, "Count": 3, "Paid": true, "Due": "2026-12-01"})
        );
        assert_eq!((rows[1]["Customer"].clone(), rows[1]["Total"].clone()), (json!("Fabrikam, Inc."), Value::Null));
        let bad = csv_rows(b"Customer,Count\nContoso,three\n", &item()).expect_err("refused");
        assert_eq!(bad.to_string(), "the data source refused the query: row 1, column 'Count': 'three' is not an integer");
    }

    #[test]
    fn json_answers_are_a_list_or_rows_under_rows() {
        assert_eq!(json_rows(br#"[{"a": 1}]"#).expect("rows").len(), 1);
        assert_eq!(json_rows(br#"{"rows": [{"a": 1}, {"a": 2}]}"#).expect("rows").len(), 2);
        assert!(json_rows(br#"{"data": []}"#).is_err());
        assert!(json_rows(b"[1]").is_err());
        assert!(json_rows(b"<html>").is_err());
    }

    #[test]
    fn the_items_path_stays_under_the_sources_url_and_parameters_are_query_parameters() {
        let values = json!({"company": "USMF & co", "year": 2026}).as_object().cloned().expect("object");
        let url = url_for("https://erp.example.com/reports/", "/orders/open?format=csv", &values).expect("url");
        assert_eq!(url.as_str(), "https://erp.example.com/reports/orders/open?format=csv&company=USMF+%26+co&year=2026");
        for escape in ["../admin", "https://evil.example.com/x", "//evil.example.com/x", "%2e%2e/admin"] {
            let refused = url_for("https://erp.example.com/reports/", escape, &Map::new());
            assert!(refused.is_err() || refused.as_ref().is_ok_and(|u| u.path().starts_with("/reports/")), "{escape}: {refused:?}");
        }
    }

    proptest! {
        /// Whatever path an item names, the URL fetched is on the source's host, under its path.
        #[test]
        fn no_path_leaves_the_source(path in "[a-z./%:?#@\\\\-]{0,40}") {
            if let Ok(url) = url_for("https://erp.example.com/reports/", &path, &Map::new()) {
                prop_assert_eq!(url.host_str(), Some("erp.example.com"));
                prop_assert!(url.path().starts_with("/reports/"), "{}", url);
            }
        }
    }
}
