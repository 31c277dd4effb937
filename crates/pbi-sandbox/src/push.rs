//! Push datasets: reading dataset and table definitions, checking rows against a table, and the push limits.

use crate::model::{Cell, Column, DataType, PushState, Relationship, Table};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, VecDeque};
use time::{Duration, OffsetDateTime};

pub const MAX_TABLES: usize = 75;
pub const MAX_COLUMNS: usize = 75;
pub const MAX_RELATIONSHIPS: usize = 75;
pub const MAX_ROWS_PER_POST: usize = 10_000;
pub const MAX_STRING_CHARS: usize = 4_000;
pub const MAX_POSTS_PER_MINUTE: usize = 120;
pub const MAX_POSTS_PER_HOUR_LARGE_TABLE: usize = 120;
pub const LARGE_TABLE_ROWS: usize = 250_000;
pub const MAX_ROWS_PER_HOUR: usize = 1_000_000;
pub const FIFO_ROWS: usize = 200_000;
pub const NONE_RETENTION_ROWS: usize = 5_000_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireDataset {
    name: String,
    #[serde(default)]
    default_mode: Option<String>,
    tables: Vec<Value>,
    #[serde(default)]
    relationships: Vec<WireRelationship>,
    #[serde(default)]
    datasources: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireTable {
    name: String,
    columns: Vec<Value>,
    #[serde(default)]
    measures: Vec<Value>,
    #[serde(default)]
    rows: Vec<Value>,
    #[serde(default)]
    is_hidden: Option<bool>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    source: Option<Vec<WireSource>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSource {
    expression: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)] // read to reject unknown fields; the sandbox keeps the column as sent
struct WireColumn {
    name: String,
    data_type: String,
    #[serde(default)]
    format_string: Option<String>,
    #[serde(default)]
    sort_by_column: Option<String>,
    #[serde(default)]
    data_category: Option<String>,
    #[serde(default)]
    is_hidden: Option<bool>,
    #[serde(default)]
    summarize_by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct WireMeasure {
    name: String,
    expression: String,
    #[serde(default)]
    format_string: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    is_hidden: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireRelationship {
    name: String,
    from_table: String,
    from_column: String,
    to_table: String,
    to_column: String,
    #[serde(default)]
    cross_filtering_behavior: Option<String>,
}

/// A checked `POST datasets` body.
#[derive(Debug)]
pub struct DatasetDefinition {
    pub name: String,
    pub default_mode: String,
    pub tables: Vec<Table>,
    pub relationships: Vec<Relationship>,
}

fn field_error(path: &str, error: serde_json::Error) -> String {
    format!("{path}: {error}")
}

pub fn parse_dataset(body: Value) -> Result<DatasetDefinition, String> {
    let wire: WireDataset = serde_json::from_value(body).map_err(|e| field_error("dataset", e))?;
    let name = wire.name.trim().to_owned();
    if name.is_empty() {
        return Err("name: a dataset needs a non-empty name.".into());
    }
    let default_mode = match wire.default_mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("push") => "Push",
        Some("streaming") => "Streaming",
        Some("pushstreaming") => "PushStreaming",
        Some("asazure" | "asonprem") => {
            return Err(
                "defaultMode: AsAzure and AsOnPrem (live connections to Analysis Services) are not emulated by the sandbox; use Push."
                    .into(),
            );
        }
        Some(other) => return Err(format!("defaultMode: '{other}' is not one of Push, Streaming, PushStreaming, AsAzure, AsOnPrem.")),
    }
    .to_owned();
    if wire.tables.is_empty() || wire.tables.len() > MAX_TABLES {
        return Err(format!("tables: a push dataset has 1 to {MAX_TABLES} tables; this one has {}.", wire.tables.len()));
    }
    let _ = wire.datasources;
    let mut tables = Vec::with_capacity(wire.tables.len());
    let mut names = BTreeSet::new();
    for (i, table) in wire.tables.into_iter().enumerate() {
        let table = parse_table_at(table, &format!("tables[{i}]"))?;
        if !names.insert(table.name.to_lowercase()) {
            return Err(format!("tables[{i}].name: the table name '{}' is used twice (names are case-insensitive).", table.name));
        }
        tables.push(table);
    }
    if wire.relationships.len() > MAX_RELATIONSHIPS {
        return Err(format!("relationships: at most {MAX_RELATIONSHIPS} relationships are allowed."));
    }
    let mut relationships = Vec::with_capacity(wire.relationships.len());
    for (i, rel) in wire.relationships.into_iter().enumerate() {
        check_relationship(&tables, &rel).map_err(|m| format!("relationships[{i}]: {m}"))?;
        relationships.push(Relationship {
            from_table: rel.from_table,
            from_column: rel.from_column,
            to_table: rel.to_table,
            to_column: rel.to_column,
        });
    }
    Ok(DatasetDefinition { name, default_mode, tables, relationships })
}

fn check_relationship(tables: &[Table], rel: &WireRelationship) -> Result<(), String> {
    check_table_name(&rel.name).map_err(|m| format!("name: {m}"))?;
    for (table, column) in [(&rel.from_table, &rel.from_column), (&rel.to_table, &rel.to_column)] {
        let t = tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(table))
            .ok_or_else(|| format!("the table '{table}' is not in the dataset."))?;
        if !t.columns.iter().any(|c| c.name.eq_ignore_ascii_case(column)) {
            return Err(format!("the table '{table}' has no column '{column}'."));
        }
    }
    match rel.cross_filtering_behavior.as_deref() {
        None | Some("OneDirection" | "BothDirections" | "Automatic") => Ok(()),
        Some(other) => Err(format!("crossFilteringBehavior: '{other}' is not OneDirection, BothDirections or Automatic.")),
    }
}

/// A `PUT tables/{name}` body, or one table of a dataset.
pub fn parse_table(body: Value) -> Result<Table, String> {
    parse_table_at(body, "table")
}

fn parse_table_at(body: Value, path: &str) -> Result<Table, String> {
    let wire: WireTable = serde_json::from_value(body).map_err(|e| field_error(path, e))?;
    check_table_name(&wire.name).map_err(|m| format!("{path}.name: {m}"))?;
    if wire.columns.len() > MAX_COLUMNS {
        return Err(format!("{path}.columns: at most {MAX_COLUMNS} columns are allowed; this table has {}.", wire.columns.len()));
    }
    let mut columns: Vec<Column> = Vec::with_capacity(wire.columns.len());
    for (i, raw) in wire.columns.into_iter().enumerate() {
        let at = format!("{path}.columns[{i}]");
        let column: WireColumn = serde_json::from_value(raw.clone()).map_err(|e| field_error(&at, e))?;
        if column.name.is_empty() || column.name.chars().any(char::is_control) {
            return Err(format!("{at}.name: a column name is 1 or more characters, none of them control characters."));
        }
        if columns.iter().any(|c| c.name.eq_ignore_ascii_case(&column.name)) {
            return Err(format!("{at}.name: the column name '{}' is used twice (names are case-insensitive).", column.name));
        }
        let data_type = DataType::parse(&column.data_type).ok_or_else(|| {
            format!(
                "{at}.dataType: '{}' is not a Power BI data type (Int64, Double, Boolean, DateTime, String, Decimal).",
                column.data_type
            )
        })?;
        let Value::Object(wire) = raw else { return Err(format!("{at}: a column is a JSON object.")) };
        columns.push(Column { name: column.name, data_type, wire });
    }
    for (i, raw) in wire.measures.iter().enumerate() {
        let at = format!("{path}.measures[{i}]");
        let measure: WireMeasure = serde_json::from_value(raw.clone()).map_err(|e| field_error(&at, e))?;
        if measure.name.trim().is_empty() || measure.expression.trim().is_empty() {
            return Err(format!("{at}: a measure needs a name and a DAX expression."));
        }
    }
    let mut table = Table {
        name: wire.name,
        columns,
        measures: wire.measures,
        is_hidden: wire.is_hidden.unwrap_or(false),
        description: wire.description,
        source_expression: wire.source.and_then(|s| s.into_iter().next()).map(|s| s.expression),
        rows: VecDeque::new(),
    };
    let rows = parse_rows(&table, &wire.rows).map_err(|m| format!("{path}.rows: {m}"))?;
    table.rows.extend(rows);
    Ok(table)
}

/// Table and relationship names: 1–100 characters; ASCII limited to TAB LF CR space `#-0-9@A-Z^_a-z~`.
pub fn check_table_name(name: &str) -> Result<(), String> {
    let count = name.chars().count();
    if !(1..=100).contains(&count) {
        return Err(format!("'{name}' must be 1 to 100 characters."));
    }
    let allowed = |c: char| !c.is_ascii() || c.is_ascii_alphanumeric() || "\t\n\r #-@^_~".contains(c);
    match name.chars().find(|c| !allowed(*c)) {
        Some(bad) => Err(format!("'{name}' contains '{bad}', which table names may not; use letters, digits, space and # - @ ^ _ ~.")),
        None => Ok(()),
    }
}

/// Checks every row against the table before any is stored; the error names the row (from 0) and column.
pub fn parse_rows(table: &Table, rows: &[Value]) -> Result<Vec<Vec<Cell>>, String> {
    rows.iter().enumerate().map(|(i, row)| parse_row(table, row).map_err(|m| format!("row {i}: {m}"))).collect()
}

fn parse_row(table: &Table, row: &Value) -> Result<Vec<Cell>, String> {
    let Value::Object(fields) = row else { return Err("a row is a JSON object of column names to values.".into()) };
    let mut cells = vec![Cell::Null; table.columns.len()];
    for (name, value) in fields {
        let index = table
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("column '{name}' does not exist in table '{}'.", table.name))?;
        let column = &table.columns[index];
        cells[index] = parse_cell(column.data_type, value).map_err(|m| format!("column '{}': {m}", column.name))?;
    }
    Ok(cells)
}

fn parse_cell(data_type: DataType, value: &Value) -> Result<Cell, String> {
    if value.is_null() {
        return Ok(Cell::Null);
    }
    match data_type {
        DataType::Int64 => match value.as_i64() {
            Some(i64::MIN | i64::MAX) => Err("Int64 minimum and maximum values are not allowed.".into()),
            Some(i) => Ok(Cell::Int(i)),
            None => Err(format!("expected a whole number (Int64), got {value}.")),
        },
        DataType::Double | DataType::Decimal => match value.as_f64() {
            Some(n) if n == f64::MIN || n == f64::MAX => Err("Double minimum and maximum values are not allowed.".into()),
            Some(n) => Ok(Cell::Number(n)),
            None => Err(format!("expected a number ({}), got {value}; NaN and infinities are not allowed.", data_type.wire_name())),
        },
        DataType::Boolean => value.as_bool().map(Cell::Bool).ok_or_else(|| format!("expected true or false (Boolean), got {value}.")),
        DataType::String => {
            let text = value.as_str().ok_or_else(|| format!("expected a string, got {value}."))?;
            let chars = text.chars().count();
            if chars > MAX_STRING_CHARS {
                return Err(format!("the string has {chars} characters; at most {MAX_STRING_CHARS} are allowed."));
            }
            Ok(Cell::Text(text.into()))
        }
        DataType::DateTime => {
            let text = value.as_str().ok_or_else(|| format!("expected an ISO 8601 date-time string, got {value}."))?;
            if is_datetime(text) { Ok(Cell::DateTime(text.into())) } else { Err(format!("'{text}' is not an ISO 8601 date or date-time.")) }
        }
    }
}

fn is_datetime(text: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    OffsetDateTime::parse(text, &Rfc3339).is_ok()
        || time::PrimitiveDateTime::parse(text, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")).is_ok()
        || time::PrimitiveDateTime::parse(text, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]")).is_ok()
        || time::PrimitiveDateTime::parse(text, format_description!("[year]-[month]-[day]T[hour]:[minute]")).is_ok()
        || time::Date::parse(text, format_description!("[year]-[month]-[day]")).is_ok()
}

/// Why a POST rows request must wait: answered with 429 and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    pub retry_after: u64,
    pub message: String,
}

fn seconds_until(at: OffsetDateTime, now: OffsetDateTime) -> u64 {
    let seconds = (at - now).as_seconds_f64().ceil();
    if seconds < 1.0 { 1 } else { seconds as u64 }
}

/// Admits one POST rows request of `rows` rows under the documented per-dataset limits, or says how long to wait.
pub fn admit_post(push: &mut PushState, now: OffsetDateTime, rows: usize, largest_table_rows: usize) -> Result<(), Throttle> {
    let hour = Duration::hours(1);
    while push.recent_posts.front().is_some_and(|(at, _)| *at + hour <= now) {
        push.recent_posts.pop_front();
    }
    let minute_ago = now - Duration::minutes(1);
    let in_minute: Vec<OffsetDateTime> = push.recent_posts.iter().map(|(at, _)| *at).filter(|at| *at > minute_ago).collect();
    if in_minute.len() >= MAX_POSTS_PER_MINUTE {
        return Err(Throttle {
            retry_after: seconds_until(in_minute[0] + Duration::minutes(1), now),
            message: format!(
                "Maximum number of requests exceeded in time window: {MAX_POSTS_PER_MINUTE} POST rows requests per minute per dataset. Please retry later."
            ),
        });
    }
    if largest_table_rows >= LARGE_TABLE_ROWS && push.recent_posts.len() >= MAX_POSTS_PER_HOUR_LARGE_TABLE {
        let oldest = push.recent_posts.front().map_or(now, |(at, _)| *at);
        return Err(Throttle {
            retry_after: seconds_until(oldest + hour, now),
            message: format!(
                "Maximum number of requests exceeded in time window: a table holds {LARGE_TABLE_ROWS} rows or more, so {MAX_POSTS_PER_HOUR_LARGE_TABLE} POST rows requests per hour are allowed. Please retry later."
            ),
        });
    }
    let rows_in_hour: usize = push.recent_posts.iter().map(|(_, n)| n).sum();
    if rows_in_hour + rows > MAX_ROWS_PER_HOUR {
        let mut freed = 0;
        let mut when = now;
        for (at, n) in &push.recent_posts {
            freed += n;
            when = *at + hour;
            if rows_in_hour - freed + rows <= MAX_ROWS_PER_HOUR {
                break;
            }
        }
        return Err(Throttle {
            retry_after: seconds_until(when, now),
            message: format!(
                "Maximum number of rows exceeded in time window: {MAX_ROWS_PER_HOUR} rows per hour per dataset. Please retry later."
            ),
        });
    }
    push.recent_posts.push_back((now, rows));
    Ok(())
}

/// Keeps a table within its retention policy after rows were added.
pub fn apply_retention(table: &mut Table, fifo: bool) {
    if fifo {
        while table.rows.len() > FIFO_ROWS {
            table.rows.pop_front();
        }
    }
}

/// Rebuilds stored rows for a replaced schema: columns kept by name, new ones empty.
pub fn migrate_rows(old: &Table, new: &mut Table) {
    let mapping: Vec<Option<usize>> =
        new.columns.iter().map(|c| old.columns.iter().position(|o| o.name.eq_ignore_ascii_case(&c.name))).collect();
    new.rows =
        old.rows.iter().map(|row| mapping.iter().map(|m| m.and_then(|i| row.get(i).cloned()).unwrap_or(Cell::Null)).collect()).collect();
}

/// The table as `GET tables` shows it.
pub fn table_json(table: &Table) -> Value {
    let columns: Vec<Value> = table.columns.iter().map(|c| Value::Object(column_wire(c))).collect();
    let mut value = serde_json::json!({"name": table.name, "columns": columns});
    if !table.measures.is_empty() {
        value["measures"] = Value::Array(table.measures.clone());
    }
    if table.is_hidden {
        value["isHidden"] = Value::Bool(true);
    }
    if let Some(description) = &table.description {
        value["description"] = Value::String(description.clone());
    }
    value
}

fn column_wire(column: &Column) -> Map<String, Value> {
    let mut wire = column.wire.clone();
    wire.insert("dataType".into(), Value::String(column.data_type.wire_name().into()));
    wire
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sales() -> Table {
        parse_table(json!({"name": "Sales", "columns": [
            {"name": "Id", "dataType": "Int64"}, {"name": "Amount", "dataType": "Double"},
            {"name": "Region", "dataType": "string"}, {"name": "Paid", "dataType": "bool"}, {"name": "When", "dataType": "DateTime"}
        ]}))
        .expect("valid table")
    }

    #[test]
    fn rows_are_checked_and_errors_name_row_and_column() {
        let table = sales();
        let ok = parse_rows(&table, &[json!({"id": 1, "Amount": 2.5, "Region": "EU", "Paid": true, "When": "2026-01-02T03:04:05Z"})])
            .expect("valid");
        assert_eq!(ok[0][0], Cell::Int(1));
        let err = parse_rows(&table, &[json!({"Id": 1}), json!({"Amount": "NaN"})]).expect_err("bad");
        assert!(err.starts_with("row 1: column 'Amount'"), "{err}");
        let err = parse_rows(&table, &[json!({"Nope": 1})]).expect_err("bad");
        assert!(err.contains("row 0") && err.contains("'Nope'"), "{err}");
        let err = parse_rows(&table, &[json!({"Region": "x".repeat(4001)})]).expect_err("bad");
        assert!(err.contains("4001 characters"), "{err}");
        assert!(parse_rows(&table, &[json!({"Region": "x".repeat(4000)})]).is_ok());
        assert!(parse_rows(&table, &[json!({"Id": 1.5})]).is_err());
        assert!(parse_rows(&table, &[json!({"When": "yesterday"})]).is_err());
    }

    #[test]
    fn dataset_definitions_are_checked() {
        let err = parse_dataset(json!({"name": "x", "tables": [{"name": "T", "columns": [{"name": "a", "dataType": "Strng"}]}]}))
            .expect_err("bad type");
        assert!(err.starts_with("tables[0].columns[0].dataType"), "{err}");
        let err = parse_dataset(json!({"name": "x", "tables": [{"name": "T", "columns": [], "colour": 1}]})).expect_err("unknown field");
        assert!(err.contains("colour"), "{err}");
        let err = parse_dataset(json!({"name": "x", "tables": [{"name": "T/1", "columns": []}]})).expect_err("bad name");
        assert!(err.contains("'/'"), "{err}");
        let too_many: Vec<Value> = (0..76).map(|i| json!({"name": format!("c{i}"), "dataType": "Int64"})).collect();
        assert!(parse_dataset(json!({"name": "x", "tables": [{"name": "T", "columns": too_many}]})).is_err());
    }

    #[test]
    fn rate_limits_follow_the_documented_windows() {
        let start = time::macros::datetime!(2026-01-01 00:00 UTC);
        let mut push = PushState::default();
        for i in 0..MAX_POSTS_PER_MINUTE {
            admit_post(&mut push, start + Duration::milliseconds(i as i64 * 100), 1, 0).expect("within limit");
        }
        let throttle = admit_post(&mut push, start + Duration::seconds(30), 1, 0).expect_err("121st in a minute");
        assert_eq!(throttle.retry_after, 30);
        assert!(admit_post(&mut push, start + Duration::seconds(61), 1, 0).is_ok());
    }

    #[test]
    fn a_million_rows_an_hour() {
        let start = time::macros::datetime!(2026-01-01 00:00 UTC);
        let mut push = PushState::default();
        for i in 0..100 {
            admit_post(&mut push, start + Duration::minutes(i / 2), MAX_ROWS_PER_POST, 0).expect("1,000,000 rows fit");
        }
        let throttle = admit_post(&mut push, start + Duration::minutes(50), 1, 0).expect_err("over a million");
        assert_eq!(throttle.retry_after, 600);
    }

    /// One generated field: the key and value sent, and what the table must make of it (`None`: refuse it).
    type Field = (String, Value, Option<Cell>);

    /// A column name as a client may spell it: Power BI matches column names ignoring case.
    fn spelled(name: &'static str) -> impl Strategy<Value = String> {
        prop_oneof![Just(name.to_owned()), Just(name.to_ascii_lowercase()), Just(name.to_ascii_uppercase())]
    }

    /// Values for one column of `sales()`, from the data type's rules: mostly valid ones (edges included), then
    /// null, then each way a value breaks the rule.
    fn value_for(column: usize) -> BoxedStrategy<(Value, Option<Cell>)> {
        let valid = match column {
            0 => prop_oneof![
                (i64::MIN + 1..i64::MAX).prop_map(|i| (json!(i), Some(Cell::Int(i)))),
                Just((json!(i64::MIN + 1), Some(Cell::Int(i64::MIN + 1)))),
                Just((json!(i64::MAX - 1), Some(Cell::Int(i64::MAX - 1)))),
            ]
            .boxed(),
            1 => prop_oneof![
                (prop::num::f64::NORMAL | prop::num::f64::ZERO | prop::num::f64::SUBNORMAL)
                    .prop_filter("the limits are refused", |n| *n != f64::MAX && *n != f64::MIN)
                    .prop_map(|n| (json!(n), Some(Cell::Number(n)))),
                any::<i32>().prop_map(|i| (json!(i), Some(Cell::Number(f64::from(i))))),
            ]
            .boxed(),
            2 => prop_oneof![
                "[a-zA-Z0-9 é€]{0,20}".prop_map(|t| (json!(t), Some(Cell::Text(t.into())))),
                // The limit counts characters, not bytes.
                Just("é".repeat(MAX_STRING_CHARS)).prop_map(|t| (json!(t), Some(Cell::Text(t.into())))),
            ]
            .boxed(),
            3 => any::<bool>().prop_map(|b| (json!(b), Some(Cell::Bool(b)))).boxed(),
            _ => (1900..2100i32, 1..=12u8, 1..=28u8, 0..24u8, 0..60u8, 0..60u8, 0..5usize)
                .prop_map(|(y, mo, d, h, mi, s, form)| {
                    let text = match form {
                        0 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
                        1 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+02:00"),
                        2 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.125"),
                        3 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}"),
                        _ => format!("{y:04}-{mo:02}-{d:02}"),
                    };
                    (json!(text), Some(Cell::DateTime(text.into())))
                })
                .boxed(),
        };
        let invalid = match column {
            0 => prop_oneof![
                Just(json!(i64::MIN)),
                Just(json!(i64::MAX)),
                Just(json!(u64::MAX)),
                (-1000..1000i32).prop_map(|i| json!(f64::from(i) + 0.5)),
                Just(json!("12")),
                Just(json!(true)),
            ]
            .boxed(),
            1 => prop_oneof![Just(json!(f64::MAX)), Just(json!(f64::MIN)), Just(json!("NaN")), Just(json!("1.5")), Just(json!(false))]
                .boxed(),
            2 => prop_oneof![Just(json!("é".repeat(MAX_STRING_CHARS + 1))), Just(json!(12)), Just(json!(true)), Just(json!(["a"]))].boxed(),
            3 => prop_oneof![Just(json!("true")), Just(json!(1)), Just(json!(0))].boxed(),
            _ => prop_oneof![
                Just(json!("2026-13-01")),
                Just(json!("2026-02-30T00:00:00Z")),
                Just(json!("2026/01/02")),
                Just(json!("yesterday")),
                Just(json!(20260102)),
            ]
            .boxed(),
        };
        prop_oneof![8 => valid, 2 => Just((Value::Null, Some(Cell::Null))), 2 => invalid.prop_map(|v| (v, None))].boxed()
    }

    /// A row from the table's grammar: each column absent or sent (spelled in any case), sometimes a column the
    /// table does not have, and now and then something that is not an object at all.
    fn row() -> impl Strategy<Value = Result<Vec<(usize, Field)>, Value>> {
        let columns = ["Id", "Amount", "Region", "Paid", "When"];
        let fields: Vec<_> = columns
            .iter()
            .enumerate()
            .map(|(i, name)| prop::option::weighted(0.6, (spelled(name), value_for(i)).prop_map(move |(n, (v, c))| (i, (n, v, c)))))
            .collect();
        let unknown = prop::option::weighted(0.1, prop_oneof![Just("Nope"), Just("Ids"), Just("Region "), Just("")]);
        let object = (fields, unknown).prop_map(|(fields, unknown)| {
            let mut fields: Vec<(usize, Field)> = fields.into_iter().flatten().collect();
            fields.extend(unknown.map(|name| (usize::MAX, (name.to_owned(), json!(1), None))));
            Ok(fields)
        });
        prop_oneof![19 => object, 1 => prop_oneof![Just(json!([1])), Just(json!("Id")), Just(json!(1)), Just(Value::Null)].prop_map(Err)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Rows are kept exactly when every field follows its column's type, and stored as the rules say;
        /// otherwise the error names the first bad row and a column at fault, and nothing is kept.
        #[test]
        fn rows_are_kept_exactly_when_every_field_follows_the_table(rows in proptest::collection::vec(row(), 1..4)) {
            let table = sales();
            let sent: Vec<Value> = rows
                .iter()
                .map(|row| match row {
                    Ok(fields) => Value::Object(fields.iter().map(|(_, (name, value, _))| (name.clone(), value.clone())).collect()),
                    Err(other) => other.clone(),
                })
                .collect();
            let first_bad = rows.iter().position(|row| row.as_ref().map_or(true, |fields| fields.iter().any(|(_, (_, _, cell))| cell.is_none())));
            match (parse_rows(&table, &sent), first_bad) {
                (Ok(cells), None) => {
                    for (row, stored) in rows.iter().zip(&cells) {
                        let mut expected = vec![Cell::Null; table.columns.len()];
                        for (column, (_, _, cell)) in row.iter().flatten() {
                            expected[*column] = cell.clone().unwrap_or(Cell::Null);
                        }
                        prop_assert_eq!(stored, &expected);
                    }
                }
                (Err(message), Some(bad)) => {
                    let prefix = format!("row {bad}: ");
                    prop_assert!(message.starts_with(&prefix), "{}", message);
                    match &rows[bad] {
                        Err(_) => prop_assert!(message.contains("a row is a JSON object"), "{}", message),
                        Ok(fields) => {
                            let at_fault: Vec<String> = fields
                                .iter()
                                .filter(|(_, (_, _, cell))| cell.is_none())
                                .map(|(column, (name, _, _))| table.columns.get(*column).map_or(name.clone(), |c| c.name.clone()))
                                .collect();
                            prop_assert!(at_fault.iter().any(|name| message.contains(&format!("column '{name}'"))), "{} names one of {:?}", message, at_fault);
                        }
                    }
                }
                (outcome, first_bad) => prop_assert!(false, "{:?} for rows {:?} (first bad: {:?})", outcome, sent, first_bad),
            }
        }
    }

    proptest! {
        #[test]
        fn table_names_of_allowed_characters_pass(name in "[A-Za-z0-9 #@^_~-]{1,100}") {
            prop_assert!(check_table_name(&name).is_ok());
        }
    }
}
