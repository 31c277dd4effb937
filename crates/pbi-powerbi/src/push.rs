//! Pushing rows: each row is checked against the table's schema before anything is sent (the error names
//! the row and the column), then rows go in batches of at most 10,000, one request at a time per dataset.

use crate::api::Workspace;
use crate::client::PowerBiClient;
use crate::error::{ErrorKind, PowerBiError, Result};
use crate::models::{DataType, TableSchema};
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The most rows one `POST rows` may carry.
pub const MAX_ROWS_PER_REQUEST: usize = 10_000;
/// The longest string value Power BI accepts in a pushed row.
pub const MAX_STRING_CHARS: usize = 4_000;

pub type Row = Map<String, Value>;

/// Checks rows against one table's columns (matched case-insensitively, as Power BI does).
pub struct RowChecker {
    columns: HashMap<String, (String, DataType)>,
    table: String,
}

impl RowChecker {
    pub fn new(table: &TableSchema) -> Self {
        let columns = table.columns.iter().map(|c| (c.name.to_lowercase(), (c.name.clone(), c.data_type))).collect();
        Self { columns, table: table.name.clone() }
    }

    /// The declared type of `column`, if the table has it.
    pub fn column_type(&self, column: &str) -> Option<DataType> {
        self.columns.get(&column.to_lowercase()).map(|(_, t)| *t)
    }

    /// `row_number` counts from 0 and is what the error names.
    pub fn check(&self, row_number: usize, row: &Row) -> Result<()> {
        for (name, value) in row {
            let schema_error = |problem: String| PowerBiError::new(ErrorKind::Schema { row: row_number, column: name.clone(), problem });
            let Some((_, data_type)) = self.columns.get(&name.to_lowercase()) else {
                return Err(schema_error(format!("table '{}' has no such column", self.table)));
            };
            check_value(*data_type, value).map_err(schema_error)?;
        }
        Ok(())
    }
}

fn check_value(data_type: DataType, value: &Value) -> std::result::Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let ok = match data_type {
        DataType::Int64 => value.as_i64().is_some_and(|i| i != i64::MIN && i != i64::MAX),
        DataType::Double | DataType::Decimal => value.as_f64().is_some_and(|n| n.is_finite() && n != f64::MIN && n != f64::MAX),
        DataType::Boolean => value.is_boolean(),
        DataType::DateTime => value.as_str().is_some_and(is_datetime),
        DataType::String => match value.as_str() {
            Some(text) => {
                let chars = text.chars().count();
                if chars > MAX_STRING_CHARS {
                    return Err(format!("the string has {chars} characters; Power BI accepts at most {MAX_STRING_CHARS}"));
                }
                true
            }
            None => false,
        },
    };
    if ok { Ok(()) } else { Err(format!("{value} is not a valid {data_type:?} value{}", hint(data_type))) }
}

fn hint(data_type: DataType) -> &'static str {
    match data_type {
        DataType::Int64 => " (a whole number; Int64's minimum and maximum are not allowed)",
        DataType::Double | DataType::Decimal => " (a finite number; NaN and infinities are not allowed)",
        DataType::Boolean => " (true or false)",
        DataType::DateTime => " (an ISO 8601 date or date-time, e.g. 2026-01-31T12:00:00Z)",
        DataType::String => " (a string)",
    }
}

/// ISO 8601 dates and date-times, with or without an offset.
pub fn is_datetime(text: &str) -> bool {
    use time::format_description::well_known::Iso8601;
    time::OffsetDateTime::parse(text, &Iso8601::DEFAULT).is_ok()
        || time::PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).is_ok()
        || time::Date::parse(text, &Iso8601::DEFAULT).is_ok()
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushSummary {
    pub rows: u64,
    pub requests: u64,
}

impl PowerBiClient {
    /// Checks and pushes every row of `rows` into `table`, in batches of at most 10,000, one request at a
    /// time. `progress` hears the number of rows sent so far after each batch. A row that does not fit
    /// stops the push before its batch is sent: rows already sent stay sent, and the error says how many.
    ///
    /// Retries follow the client's policy (429 waits `Retry-After`). Power BI has no idempotency key: if a
    /// connection fails *after* the service stored a batch, the retry stores it again. Only a lost answer
    /// does that; refused, throttled and failed requests store nothing.
    pub async fn push_rows<S>(
        &self,
        workspace: Workspace,
        dataset: &str,
        table: &TableSchema,
        rows: S,
        mut progress: impl FnMut(u64),
    ) -> Result<PushSummary>
    where
        S: Stream<Item = Result<Row>>,
    {
        let checker = RowChecker::new(table);
        let mut summary = PushSummary::default();
        let mut batch: Vec<Row> = Vec::with_capacity(MAX_ROWS_PER_REQUEST);
        let mut rows = std::pin::pin!(rows);
        let mut number = 0usize;
        while let Some(row) = rows.next().await {
            let row = row?;
            checker.check(number, &row).map_err(|e| sent_so_far(e, summary))?;
            number += 1;
            batch.push(row);
            if batch.len() == MAX_ROWS_PER_REQUEST {
                self.send_batch(workspace, dataset, &table.name, &mut batch, &mut summary).await?;
                progress(summary.rows);
            }
        }
        if !batch.is_empty() {
            self.send_batch(workspace, dataset, &table.name, &mut batch, &mut summary).await?;
            progress(summary.rows);
        }
        Ok(summary)
    }

    async fn send_batch(
        &self,
        workspace: Workspace,
        dataset: &str,
        table: &str,
        batch: &mut Vec<Row>,
        summary: &mut PushSummary,
    ) -> Result<()> {
        self.post_rows(workspace, dataset, table, batch).await.map_err(|e| sent_so_far(e, *summary))?;
        summary.rows += batch.len() as u64;
        summary.requests += 1;
        batch.clear();
        Ok(())
    }
}

/// Adds "N rows were already sent" to a push error, so the caller knows where it stopped.
fn sent_so_far(mut error: PowerBiError, summary: PushSummary) -> PowerBiError {
    if summary.rows > 0 {
        let note = format!(" ({} rows were already sent in {} requests)", summary.rows, summary.requests);
        match &mut error.kind {
            ErrorKind::Schema { problem, .. } => problem.push_str(&note),
            ErrorKind::Invalid(message) | ErrorKind::Transport(message) | ErrorKind::Token(message) => message.push_str(&note),
            ErrorKind::BadRequest { message, .. }
            | ErrorKind::Service { message, .. }
            | ErrorKind::NotFound { message, .. }
            | ErrorKind::Unauthorized { message, .. }
            | ErrorKind::Forbidden { message, .. } => message.push_str(&note),
            ErrorKind::Throttled { .. } | ErrorKind::Decode { .. } => {}
        }
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Column;
    use proptest::prelude::*;
    use serde_json::json;

    fn table() -> TableSchema {
        let column = |name: &str, data_type| Column { name: name.into(), data_type, extra: Default::default() };
        TableSchema {
            name: "Sales".into(),
            columns: vec![
                column("Id", DataType::Int64),
                column("Amount", DataType::Double),
                column("Region", DataType::String),
                column("Paid", DataType::Boolean),
                column("When", DataType::DateTime),
            ],
            measures: vec![],
            extra: Default::default(),
        }
    }

    fn row(value: Value) -> Row {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn errors_name_the_row_and_column() {
        let checker = RowChecker::new(&table());
        assert!(
            checker.check(0, &row(json!({"id": 1, "Amount": 2.5, "Region": "EU", "Paid": true, "When": "2026-01-02T03:04:05Z"}))).is_ok()
        );
        let error = checker.check(7, &row(json!({"Amount": "12"}))).expect_err("a string is no Double");
        assert!(matches!(&error.kind, ErrorKind::Schema { row: 7, column, .. } if column == "Amount"), "{error}");
        assert!(checker.check(0, &row(json!({"Colour": "red"}))).expect_err("unknown").to_string().contains("no such column"));
        assert!(checker.check(0, &row(json!({"Region": "x".repeat(4001)}))).is_err());
        assert!(checker.check(0, &row(json!({"Region": "x".repeat(4000)}))).is_ok());
        assert!(checker.check(0, &row(json!({"Id": i64::MAX}))).is_err());
        assert!(checker.check(0, &row(json!({"When": "31/01/2026"}))).is_err());
        assert!(checker.check(0, &row(json!({"When": "2026-01-31"}))).is_ok());
    }

    proptest! {
        #[test]
        fn any_int64_but_the_extremes_fits(i in any::<i64>()) {
            let ok = RowChecker::new(&table()).check(0, &row(json!({"Id": i}))).is_ok();
            prop_assert_eq!(ok, i != i64::MIN && i != i64::MAX);
        }

        #[test]
        fn strings_fit_up_to_4000_characters(n in 3990usize..4010) {
            let ok = RowChecker::new(&table()).check(0, &row(json!({"Region": "é".repeat(n)}))).is_ok();
            prop_assert_eq!(ok, n <= 4000);
        }
    }
}
