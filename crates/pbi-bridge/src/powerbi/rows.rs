//! Reading rows for `create-rows`: CSV (typed by the table's schema), NDJSON or a JSON array, from a file or
//! stdin. CSV and NDJSON are streamed: a reader thread sends rows through a bounded channel, so memory stays
//! flat whatever the input size. A JSON array is read whole.

use pbi_powerbi::models::{DataType, TableSchema};
use pbi_powerbi::{ErrorKind, PowerBiError, Row, RowChecker};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
    Ndjson,
}

impl Format {
    /// From the file's extension; stdin and unknown extensions need `--format`.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            _ => None,
        }
    }
}

fn input_error(row: usize, column: &str, problem: impl Into<String>) -> PowerBiError {
    PowerBiError::new(ErrorKind::Schema { row, column: column.to_owned(), problem: problem.into() })
}

/// Turns one CSV field into the JSON value its column's type calls for; an empty field is null.
pub fn csv_value(data_type: Option<DataType>, text: &str, row: usize, column: &str) -> Result<Value, PowerBiError> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    let bad = |what: &str| input_error(row, column, format!("'{text}' is not {what}"));
    Ok(match data_type {
        Some(DataType::Int64) => Value::from(text.trim().parse::<i64>().map_err(|_| bad("a whole number (Int64)"))?),
        Some(DataType::Double | DataType::Decimal) => {
            let n = text.trim().parse::<f64>().map_err(|_| bad("a number"))?;
            if !n.is_finite() {
                return Err(bad("a finite number (NaN and infinities are not allowed)"));
            }
            Value::from(n)
        }
        Some(DataType::Boolean) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        // DateTime and String stay text; the checker judges dates, and unknown columns fail there.
        _ => Value::String(text.to_owned()),
    })
}

/// Reads `input` in `format` and sends each row (or the first error) to `tx`. Runs on a blocking thread.
pub fn read_rows(
    input: Box<dyn Read + Send>,
    format: Format,
    table: &TableSchema,
    tx: tokio::sync::mpsc::Sender<Result<Row, PowerBiError>>,
) {
    let send = |item: Result<Row, PowerBiError>| tx.blocking_send(item).is_ok();
    match format {
        Format::Csv => {
            let checker = RowChecker::new(table);
            let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
            let headers = match reader.headers() {
                Ok(h) => h.clone(),
                Err(e) => {
                    send(Err(input_error(0, "", format!("the CSV header cannot be read: {e}"))));
                    return;
                }
            };
            for (row, record) in reader.records().enumerate() {
                let item = record.map_err(|e| input_error(row, "", format!("CSV: {e}"))).and_then(|record| {
                    headers
                        .iter()
                        .zip(record.iter())
                        .map(|(name, text)| Ok((name.to_owned(), csv_value(checker.column_type(name), text, row, name)?)))
                        .collect::<Result<Row, _>>()
                });
                let failed = item.is_err();
                if !send(item) || failed {
                    return;
                }
            }
        }
        Format::Ndjson => {
            for (row, line) in BufReader::new(input).lines().enumerate() {
                let item = line
                    .map_err(|e| input_error(row, "", format!("cannot read the input: {e}")))
                    .and_then(|line| object(serde_json::from_str(&line), row));
                let failed = item.is_err();
                if line_is_blank(&item) {
                    continue;
                }
                if !send(item) || failed {
                    return;
                }
            }
        }
        Format::Json => {
            let parsed: Result<Value, _> = serde_json::from_reader(input);
            let rows = match parsed {
                Ok(Value::Array(rows)) => rows,
                Ok(Value::Object(mut wrapper)) if wrapper.get("rows").is_some_and(Value::is_array) => match wrapper.remove("rows") {
                    Some(Value::Array(rows)) => rows,
                    _ => Vec::new(),
                },
                Ok(_) => {
                    send(Err(input_error(0, "", "a JSON input is an array of row objects, or {\"rows\": [...]}")));
                    return;
                }
                Err(e) => {
                    send(Err(input_error(0, "", format!("not JSON: {e}"))));
                    return;
                }
            };
            for (row, value) in rows.into_iter().enumerate() {
                let item = object(Ok(value), row);
                let failed = item.is_err();
                if !send(item) || failed {
                    return;
                }
            }
        }
    }
}

fn line_is_blank(item: &Result<Row, PowerBiError>) -> bool {
    matches!(item, Err(e) if matches!(&e.kind, ErrorKind::Schema { problem, .. } if problem == "blank line"))
}

fn object(parsed: serde_json::Result<Value>, row: usize) -> Result<Row, PowerBiError> {
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(input_error(row, "", "each row is a JSON object of column names to values")),
        Err(e) if e.is_eof() && e.line() == 1 && e.column() == 0 => Err(input_error(row, "", "blank line")),
        Err(e) => Err(input_error(row, "", format!("not JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pbi_powerbi::models::Column;

    fn table() -> TableSchema {
        let column = |name: &str, data_type| Column { name: name.into(), data_type, extra: Default::default() };
        TableSchema {
            name: "T".into(),
            columns: vec![
                column("Id", DataType::Int64),
                column("Amount", DataType::Double),
                column("Paid", DataType::Boolean),
                column("Name", DataType::String),
            ],
            measures: vec![],
            extra: Default::default(),
        }
    }

    fn read(text: &'static str, format: Format) -> Vec<Result<Row, PowerBiError>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(100);
        let table = table();
        std::thread::spawn(move || read_rows(Box::new(text.as_bytes()), format, &table, tx)).join().expect("reader");
        let mut out = Vec::new();
        while let Ok(item) = rx.try_recv() {
            out.push(item);
        }
        out
    }

    #[test]
    fn csv_fields_are_typed_by_the_schema() {
        let rows = read("Id,Amount,Paid,Name\n1,2.5,yes,Ann\n2,,false,\n", Format::Csv);
        let first = rows[0].as_ref().expect("row");
        assert_eq!(
            (first["Id"].clone(), first["Amount"].clone(), first["Paid"].clone(), first["Name"].clone()),
            (Value::from(1), Value::from(2.5), Value::Bool(true), Value::from("Ann"))
        );
        assert_eq!(rows[1].as_ref().expect("row")["Amount"], Value::Null);
    }

    #[test]
    fn csv_errors_name_row_and_column_and_stop() {
        let rows = read("Id,Amount\n1,1\n2,NaN\n3,3\n", Format::Csv);
        assert_eq!(rows.len(), 2);
        let error = rows[1].as_ref().expect_err("NaN");
        assert!(matches!(&error.kind, ErrorKind::Schema { row: 1, column, .. } if column == "Amount"), "{error}");
    }

    #[test]
    fn ndjson_and_json_arrays_read_objects() {
        let rows = read("{\"Id\": 1}\n\n{\"Id\": 2}\n", Format::Ndjson);
        assert_eq!(rows.iter().filter(|r| r.is_ok()).count(), 2);
        assert_eq!(read("[{\"Id\": 1}, {\"Id\": 2}]", Format::Json).len(), 2);
        assert_eq!(read("{\"rows\": [{\"Id\": 1}]}", Format::Json).len(), 1);
        assert!(read("[1]", Format::Json)[0].is_err());
    }
}
