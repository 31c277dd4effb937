//! The rows a source rendered, checked against the item's columns before anything is sent (the error names the
//! row and the column), then turned into the rows of the kind's push table.

use crate::item::{Binding, ColumnType, Item};
use crate::kind::LAST_REFRESHED;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// A row as JSON: column name → value.
pub type Row = Map<String, Value>;

/// The most rows a push table keeps without a retention policy (Power BI's limit): a delivery sends no more.
pub const MAX_ROWS: usize = 5_000_000;
/// The longest text value Power BI accepts in a pushed row.
pub const MAX_TEXT: usize = 4_000;

/// A rendered row that does not fit the item: `row` counts from 1, as people do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {row}, column '{column}': {problem}")]
pub struct RowError {
    pub row: usize,
    pub column: String,
    pub problem: String,
}

/// A value after checking, before it takes its place in a push row.
enum Checked {
    Null,
    Text(String),
    Number(f64),
    Boolean(bool),
    Instant(OffsetDateTime),
}

/// Checks every row against the item and gives the push rows, each stamped with `refreshed`.
pub fn push_rows(item: &Item, rows: &[Row], refreshed: OffsetDateTime) -> Result<Vec<Row>, RowError> {
    if rows.len() > MAX_ROWS {
        return Err(RowError {
            row: MAX_ROWS + 1,
            column: String::new(),
            problem: format!("the source gave {} rows; a push table holds at most {MAX_ROWS}: filter or aggregate the query", rows.len()),
        });
    }
    let stamp = Value::String(format_instant(refreshed));
    rows.iter().enumerate().map(|(i, row)| push_row(item, i + 1, row, &stamp)).collect()
}

/// Checks one rendered row (`number` counts from 1) and gives its push row, stamped with `stamp`.
pub(crate) fn push_row(item: &Item, number: usize, row: &Row, stamp: &Value) -> Result<Row, RowError> {
    if let Some(extra) = row.keys().find(|key| !item.columns.iter().any(|c| c.name.eq_ignore_ascii_case(key))) {
        let declared: Vec<&str> = item.columns.iter().map(|c| c.name.as_str()).collect();
        return Err(RowError {
            row: number,
            column: extra.clone(),
            problem: format!("not one of the item's columns ({}); declare it or leave it out of the query", declared.join(", ")),
        });
    }
    let mut values = Vec::with_capacity(item.columns.len());
    for column in &item.columns {
        let value = row.iter().find(|(key, _)| key.eq_ignore_ascii_case(&column.name)).map(|(_, v)| v).unwrap_or(&Value::Null);
        let checked =
            check_value(column.column_type, value).map_err(|problem| RowError { row: number, column: column.name.clone(), problem })?;
        values.push(checked);
    }
    let mut out = Row::new();
    let columns = item.kind.push_columns();
    // The push table's columns in order (`ItemSpec::check` makes the binding and the kind agree), the
    // item's value for each, `LastRefreshed` last.
    let filled: Vec<Value> = match &item.binding {
        Binding::SingleValue { value } => vec![as_number(&values[*value])],
        Binding::CategorySeries { category: label, value } | Binding::TimeSeries { date: label, value } => {
            vec![as_push_value(&values[*label]), as_number(&values[*value])]
        }
        Binding::Table { shown } => values.iter().take(*shown).map(as_text).collect(),
    };
    for (column, value) in columns.iter().filter(|c| c.name != LAST_REFRESHED).zip(filled) {
        out.insert(column.name.into(), value);
    }
    out.insert(LAST_REFRESHED.into(), stamp.clone());
    Ok(out)
}

fn check_value(column_type: ColumnType, value: &Value) -> Result<Checked, String> {
    if value.is_null() {
        return Ok(Checked::Null);
    }
    match (column_type, value) {
        (ColumnType::Text, Value::String(text)) if text.chars().count() > MAX_TEXT => {
            Err(format!("{} characters; Power BI takes at most {MAX_TEXT} in a value", text.chars().count()))
        }
        (ColumnType::Text, Value::String(text)) => Ok(Checked::Text(text.clone())),
        (ColumnType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => {
            n.as_f64().map(Checked::Number).ok_or_else(|| format!("{n} is out of range"))
        }
        (ColumnType::Decimal, Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f.abs() < f64::MAX => Ok(Checked::Number(f)),
            _ => Err(format!("{n} is out of range")),
        },
        (ColumnType::Boolean, Value::Bool(b)) => Ok(Checked::Boolean(*b)),
        // SQLite has no booleans: its 0 and 1 are read as them.
        (ColumnType::Boolean, Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
            Ok(Checked::Boolean(n.as_i64() == Some(1)))
        }
        (ColumnType::DateTime, Value::String(text)) => parse_instant(text).map(Checked::Instant).ok_or_else(|| {
            format!("'{text}' is not a date and time; give RFC 3339 (2026-12-02T09:30:00Z) or 'YYYY-MM-DD HH:MM:SS' in UTC")
        }),
        (expected, got) => Err(format!("expected {}, got {}", expected.as_str(), json_type(got))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal number",
        Value::Number(_) => "an integer",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// RFC 3339, or a SQL timestamp (`YYYY-MM-DD HH:MM:SS[.fff]`, or a bare date) read as UTC.
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at);
    }
    let sql = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day][first [ ][T]][hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(at) = PrimitiveDateTime::parse(text, &sql) {
        return Some(at.assume_offset(UtcOffset::UTC));
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &date).ok().map(|d| d.midnight().assume_offset(UtcOffset::UTC))
}

/// What pbi-bridge sends for a date and time: RFC 3339 in UTC.
pub fn format_instant(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC).format(&Rfc3339).unwrap_or_else(|_| at.unix_timestamp().to_string())
}

fn as_number(value: &Checked) -> Value {
    match value {
        Checked::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        _ => Value::Null,
    }
}

fn as_push_value(value: &Checked) -> Value {
    match value {
        Checked::Instant(at) => Value::String(format_instant(*at)),
        other => as_text(other),
    }
}

fn as_text(value: &Checked) -> Value {
    match value {
        Checked::Null => Value::Null,
        Checked::Text(text) => Value::String(text.clone()),
        Checked::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Value::String(format!("{n:.0}")),
        Checked::Number(n) => Value::String(n.to_string()),
        Checked::Boolean(b) => Value::String(if *b { "Yes" } else { "No" }.into()),
        Checked::Instant(at) => Value::String(format_instant(*at)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::item::{ColumnSpec, ItemSpec};
    use proptest::prelude::*;
    use serde_json::json;

    const AT: OffsetDateTime = time::macros::datetime!(2026-12-02 09:30 UTC);

    /// An item of `kind` with `columns` (name, type) and roles (value, category, date).
    pub(crate) fn item(kind: &str, columns: &[(&str, &str)], roles: (Option<&str>, Option<&str>, Option<&str>)) -> Item {
        ItemSpec {
            name: "Chart2".into(),
            kind: kind.into(),
            columns: columns.iter().map(|(n, t)| ColumnSpec { name: (*n).into(), column_type: (*t).into() }).collect(),
            value: roles.0.map(Into::into),
            category: roles.1.map(Into::into),
            date: roles.2.map(Into::into),
            ..ItemSpec::default()
        }
        .check()
        .expect("valid item")
    }

    pub(crate) fn rows(values: Value) -> Vec<Row> {
        values.as_array().expect("array").iter().map(|r| r.as_object().expect("object").clone()).collect()
    }

    #[test]
    fn a_category_series_becomes_category_value_and_the_delivery_time() {
        let sales = item("category-series", &[("Region", "text"), ("Amount", "decimal")], (Some("Amount"), Some("Region"), None));
        let pushed =
            push_rows(&sales, &rows(json!([{"region": "East", "Amount": 5.5}, {"Region": "West", "Amount": null}])), AT).expect("fits");
        assert_eq!(
            Value::Array(pushed.into_iter().map(Value::Object).collect()),
            json!([
                {"Category": "East", "Value": 5.5, "LastRefreshed": "2026-12-02T09:30:00Z"},
                {"Category": "West", "Value": null, "LastRefreshed": "2026-12-02T09:30:00Z"}
            ])
        );
    }

    #[test]
    fn a_time_series_reads_sql_timestamps_as_utc_and_a_table_shows_text() {
        let trend = item("time-series", &[("Month", "datetime"), ("Orders", "integer")], (Some("Orders"), None, Some("Month")));
        let pushed = push_rows(&trend, &rows(json!([{"Month": "2026-11-01 00:00:00", "Orders": 7}])), AT).expect("fits");
        assert_eq!((pushed[0]["Date"].clone(), pushed[0]["Value"].clone()), (json!("2026-11-01T00:00:00Z"), json!(7.0)));
        let list = item("table", &[("Name", "text"), ("Paid", "boolean"), ("Total", "decimal"), ("Count", "integer")], (None, None, None));
        let pushed = push_rows(&list, &rows(json!([{"Name": "Contoso", "Paid": 1, "Total": 2.5, "Count": 3}])), AT).expect("fits");
        assert_eq!(
            Value::Object(pushed[0].clone()),
            json!({"Column1": "Contoso", "Column2": "Yes", "Column3": "2.5", "Column4": "3", "LastRefreshed": "2026-12-02T09:30:00Z"})
        );
    }

    #[test]
    fn a_row_that_does_not_fit_is_named_by_row_and_column() {
        let sales = item("category-series", &[("Region", "text"), ("Amount", "decimal")], (Some("Amount"), Some("Region"), None));
        let error = |r: Value| push_rows(&sales, &rows(r), AT).expect_err("refused").to_string();
        assert_eq!(
            error(json!([{"Region": "East", "Amount": 1}, {"Region": 4, "Amount": 1}])),
            "row 2, column 'Region': expected text, got an integer"
        );
        assert!(
            error(json!([{"Region": "East", "Amount": 1, "Secret": "x"}]))
                .starts_with("row 1, column 'Secret': not one of the item's columns")
        );
        assert_eq!(error(json!([{"Region": "East", "Amount": "lots"}])), "row 1, column 'Amount': expected decimal, got text");
        let long = "x".repeat(MAX_TEXT + 1);
        assert!(error(json!([{"Region": long, "Amount": 1}])).contains("at most 4000"));
        let trend = item("time-series", &[("Month", "datetime"), ("Orders", "integer")], (Some("Orders"), None, Some("Month")));
        let bad = push_rows(&trend, &rows(json!([{"Month": "last week", "Orders": 1}])), AT).expect_err("refused");
        assert_eq!((bad.row, bad.column.as_str()), (1, "Month"));
        assert!(push_rows(&trend, &rows(json!([{"Month": "2026-11-01", "Orders": 1.5}])), AT).is_err(), "an integer column refuses 1.5");
    }

    proptest! {
        /// Any JSON value in any column is either accepted or refused with that row and column: never a panic.
        #[test]
        fn any_rendered_value_is_checked_without_panicking(n in any::<i64>(), f in any::<f64>(), s in ".{0,40}", b in any::<bool>(), pick in 0..5usize) {
            let list = item("table", &[("A", "text"), ("B", "integer"), ("C", "decimal"), ("D", "boolean"), ("E", "datetime")], (None, None, None));
            let candidates = [json!(n), json!(f), json!(s), json!(b), Value::Null];
            let mut row = Row::new();
            for name in ["A", "B", "C", "D", "E"] {
                row.insert(name.into(), candidates[pick].clone());
            }
            match push_rows(&list, &[row], AT) {
                Ok(pushed) => prop_assert_eq!(pushed[0].len(), 6),
                Err(error) => prop_assert_eq!(error.row, 1),
            }
        }

        /// What pbi-bridge writes for an instant reads back as that instant.
        #[test]
        fn instants_round_trip(seconds in -2_000_000_000i64..4_000_000_000i64) {
            let at = OffsetDateTime::from_unix_timestamp(seconds).expect("in range");
            prop_assert_eq!(parse_instant(&format_instant(at)), Some(at));
        }
    }
}
