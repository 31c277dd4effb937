//! Running an item's prepared query on its data source (the one part of this crate that does I/O): one
//! connection of its own, a read-only transaction, a statement timeout, the pin's parameter values bound, at
//! most `rows::MAX_ROWS` rows read. Rows are handed one by one, as JSON objects, to the caller (`each_row`:
//! a delivery checks each and writes it to its `spool::Spool`, keeping nothing else), or collected (`run`). Errors
//! name what failed and never carry the credential.

use crate::query::{Dialect, PreparedQuery};
use crate::rows::{MAX_ROWS, Row};
use futures_util::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sqlx::{Connection, Row as _, ValueRef as _};
use std::str::FromStr;
use std::time::Duration;

/// Where and as whom the query runs.
pub struct SqlSource<'a> {
    pub dialect: Dialect,
    /// A PostgreSQL URL without its password (`postgres://host/db`), or a SQLite file's path.
    pub location: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a SecretString>,
    /// How long connecting and the query may take each.
    pub timeout: Duration,
}

impl std::fmt::Debug for SqlSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSource").field("dialect", &self.dialect).field("location", &self.location).finish_non_exhaustive()
    }
}

/// Why the query gave no rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("the data source could not be reached: {0}")]
    Connect(String),
    #[error("the data source refused the query: {0}")]
    Query(String),
    #[error("the pin gives no value for the parameter '{0}'")]
    MissingParameter(String),
    #[error("the query gave more than {MAX_ROWS} rows: filter or aggregate it")]
    TooManyRows,
    #[error("the query took longer than {0:?}")]
    Timeout(Duration),
}

/// Runs `query` with `values` (by parameter name) and gives its rows.
pub async fn run(source: &SqlSource<'_>, query: &PreparedQuery, values: &Map<String, Value>) -> Result<Vec<Row>, SourceError> {
    let mut rows = Vec::new();
    each_row(source, query, values, &mut |row| {
        rows.push(row);
        true
    })
    .await?;
    Ok(rows)
}

/// Runs `query` with `values` and hands each row to `on_row` as it is read (none is kept here), until the
/// rows end or `on_row` says to stop (false).
pub async fn each_row(
    source: &SqlSource<'_>,
    query: &PreparedQuery,
    values: &Map<String, Value>,
    on_row: &mut (dyn FnMut(Row) -> bool + Send),
) -> Result<(), SourceError> {
    let binds = query
        .parameters
        .iter()
        .map(|name| values.get(name).cloned().ok_or_else(|| SourceError::MissingParameter(name.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let work = async {
        match source.dialect {
            Dialect::Postgres => run_postgres(source, query, &binds, on_row).await,
            Dialect::Sqlite => run_sqlite(source, query, &binds, on_row).await,
        }
    };
    tokio::time::timeout(source.timeout * 2, work).await.map_err(|_| SourceError::Timeout(source.timeout))?
}

fn connect_error(error: sqlx::Error) -> SourceError {
    SourceError::Connect(error.to_string())
}

fn query_error(error: sqlx::Error) -> SourceError {
    SourceError::Query(match &error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    })
}

macro_rules! bind_json {
    ($query:expr, $value:expr) => {
        match $value {
            Value::Null => $query.bind(None::<String>),
            Value::Bool(b) => $query.bind(*b),
            Value::Number(n) if n.is_i64() => $query.bind(n.as_i64()),
            Value::Number(n) => $query.bind(n.as_f64()),
            Value::String(s) => $query.bind(s.as_str()),
            other => $query.bind(other.to_string()),
        }
    };
}

async fn run_postgres(
    source: &SqlSource<'_>,
    query: &PreparedQuery,
    binds: &[Value],
    on_row: &mut (dyn FnMut(Row) -> bool + Send),
) -> Result<(), SourceError> {
    let mut options = sqlx::postgres::PgConnectOptions::from_str(source.location).map_err(connect_error)?;
    if let Some(user) = source.username {
        options = options.username(user);
    }
    if let Some(password) = source.password {
        options = options.password(password.expose_secret());
    }
    let mut connection = tokio::time::timeout(source.timeout, sqlx::PgConnection::connect_with(&options))
        .await
        .map_err(|_| SourceError::Timeout(source.timeout))?
        .map_err(connect_error)?;
    let mut tx = connection.begin_with("BEGIN READ ONLY").await.map_err(query_error)?;
    let timeout_ms = source.timeout.as_millis().min(i64::MAX as u128) as i64;
    sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL statement_timeout = {timeout_ms}"))).execute(&mut *tx).await.map_err(query_error)?;
    // PostgreSQL writes each row as JSON itself (every type, numeric and timestamps included, as it prints them).
    let wrapped = format!("SELECT row_to_json(q)::text AS row FROM ({}) AS q", query.sql);
    let mut statement = sqlx::query(sqlx::AssertSqlSafe(wrapped));
    for value in binds {
        statement = bind_json!(statement, value);
    }
    let mut read = 0;
    let mut stream = statement.fetch(&mut *tx);
    while let Some(row) = stream.try_next().await.map_err(query_error)? {
        if read == MAX_ROWS {
            return Err(SourceError::TooManyRows);
        }
        read += 1;
        let text: String = row.try_get("row").map_err(query_error)?;
        let object = serde_json::from_str::<Map<String, Value>>(&text).map_err(|e| SourceError::Query(e.to_string()))?;
        if !on_row(object) {
            break;
        }
    }
    drop(stream);
    tx.rollback().await.map_err(query_error)?;
    Ok(())
}

async fn run_sqlite(
    source: &SqlSource<'_>,
    query: &PreparedQuery,
    binds: &[Value],
    on_row: &mut (dyn FnMut(Row) -> bool + Send),
) -> Result<(), SourceError> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(source.location).read_only(true).busy_timeout(source.timeout);
    let mut connection = tokio::time::timeout(source.timeout, sqlx::SqliteConnection::connect_with(&options))
        .await
        .map_err(|_| SourceError::Timeout(source.timeout))?
        .map_err(connect_error)?;
    let mut statement = sqlx::query(sqlx::AssertSqlSafe(query.sql.clone()));
    for value in binds {
        statement = bind_json!(statement, value);
    }
    let mut read = 0;
    let mut stream = statement.fetch(&mut connection);
    while let Some(row) = tokio::time::timeout(source.timeout, stream.try_next())
        .await
        .map_err(|_| SourceError::Timeout(source.timeout))?
        .map_err(query_error)?
    {
        if read == MAX_ROWS {
            return Err(SourceError::TooManyRows);
        }
        read += 1;
        if !on_row(sqlite_row(&row)?) {
            break;
        }
    }
    Ok(())
}

/// A SQLite row as JSON, by each value's storage class.
fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<Row, SourceError> {
    use sqlx::{Column as _, TypeInfo as _};
    let mut object = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(query_error)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            match raw.type_info().name() {
                "INTEGER" => Value::from(row.try_get::<i64, _>(i).map_err(query_error)?),
                "REAL" => serde_json::Number::from_f64(row.try_get::<f64, _>(i).map_err(query_error)?).map_or(Value::Null, Value::Number),
                "BLOB" => {
                    return Err(SourceError::Query(format!("column '{}' holds binary data, which a tile cannot show", column.name())));
                }
                _ => Value::String(row.try_get::<String, _>(i).map_err(query_error)?),
            }
        };
        object.insert(column.name().to_owned(), value);
    }
    Ok(object)
}
