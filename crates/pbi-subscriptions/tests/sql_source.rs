//! An item's query on a real data source, on both backends: parameters bound, rows as JSON, a read-only
//! transaction that refuses writes even past the check, and errors that say what failed.

use pbi_subscriptions::query::{Dialect, PreparedQuery, prepare};
use pbi_subscriptions::sql_source::{SourceError, SqlSource, run};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// A database of the test's own with a `sales` table, and where a data source would point at it.
async fn sales_database(postgres: bool) -> (pbi_testdb::TestDb, String) {
    let db = pbi_testdb::TestDb::new(postgres, "pbi_sources").await;
    let statements = [
        "CREATE TABLE sales (region TEXT NOT NULL, company TEXT NOT NULL, amount DOUBLE PRECISION NOT NULL, sold_at TEXT NOT NULL, paid BOOLEAN)",
        "INSERT INTO sales VALUES ('East', 'USMF', 10.5, '2026-11-01 09:00:00', true), ('West', 'USMF', 4, '2026-11-02 10:00:00', false), ('East', 'DEMF', 99, '2026-11-03 11:00:00', NULL)",
    ];
    if postgres {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        sqlx::query("CREATE SEQUENCE sales_numbers").execute(&pool).await.expect("setup");
        for s in statements {
            sqlx::query(s).execute(&pool).await.expect("setup");
        }
        pool.close().await;
        let location = db.url.clone();
        (db, location)
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db.url.trim_start_matches("sqlite://")).create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.expect("connect");
        for s in statements {
            sqlx::query(s).execute(&pool).await.expect("setup");
        }
        pool.close().await;
        let location = db.url.trim_start_matches("sqlite://").to_owned();
        (db, location)
    }
}

fn source(postgres: bool, location: &str) -> SqlSource<'_> {
    SqlSource {
        dialect: if postgres { Dialect::Postgres } else { Dialect::Sqlite },
        location,
        username: None,
        password: None,
        timeout: Duration::from_secs(10),
    }
}

fn values(v: Value) -> Map<String, Value> {
    v.as_object().expect("object").clone()
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(false).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(true).await } )* }
    };
}

on_both!(
    a_query_runs_with_its_parameters_bound_and_gives_json_rows,
    writes_are_refused_by_the_read_only_transaction,
    faults_say_what_failed
);

async fn a_query_runs_with_its_parameters_bound_and_gives_json_rows(postgres: bool) {
    let (_db, location) = sales_database(postgres).await;
    let dialect = if postgres { Dialect::Postgres } else { Dialect::Sqlite };
    let query =
        prepare("SELECT region, SUM(amount) AS amount FROM sales WHERE company = :company GROUP BY region ORDER BY region", dialect)
            .expect("prepared");
    let rows = run(&source(postgres, &location), &query, &values(json!({"company": "USMF"}))).await.expect("rows");
    let read: Vec<(Value, Option<f64>)> = rows.iter().map(|r| (r["region"].clone(), r["amount"].as_f64())).collect();
    assert_eq!(read, [(json!("East"), Some(10.5)), (json!("West"), Some(4.0))], "{rows:?}");
    // A value that looks like SQL is a value: bound, never written into the query.
    let none = run(&source(postgres, &location), &query, &values(json!({"company": "USMF' OR '1'='1"}))).await.expect("rows");
    assert!(none.is_empty(), "{none:?}");
    let all = prepare("SELECT company, paid FROM sales ORDER BY sold_at", dialect).expect("prepared");
    let rows = run(&source(postgres, &location), &all, &Map::new()).await.expect("rows");
    assert_eq!(rows.len(), 3);
    assert!(rows[2]["paid"].is_null(), "{rows:?}");
}

async fn writes_are_refused_by_the_read_only_transaction(postgres: bool) {
    let (_db, location) = sales_database(postgres).await;
    // Past `prepare` (which would refuse these), as if the check had a hole: the data source still refuses to
    // write. PostgreSQL: a sequence moved by a SELECT; SQLite: a DELETE on the read-only connection.
    let sql = if postgres { "SELECT nextval('sales_numbers') AS n" } else { "DELETE FROM sales RETURNING region" };
    let delete = PreparedQuery { sql: sql.into(), parameters: vec![] };
    let refused = run(&source(postgres, &location), &delete, &Map::new()).await.expect_err("refused");
    assert!(matches!(&refused, SourceError::Query(m) if m.contains("read-only") || m.contains("readonly")), "{refused}");
    let count = prepare("SELECT COUNT(*) AS n FROM sales", if postgres { Dialect::Postgres } else { Dialect::Sqlite }).expect("prepared");
    let rows = run(&source(postgres, &location), &count, &Map::new()).await.expect("rows");
    assert_eq!(rows[0]["n"], json!(3), "nothing was deleted");
}

async fn faults_say_what_failed(postgres: bool) {
    let (_db, location) = sales_database(postgres).await;
    let dialect = if postgres { Dialect::Postgres } else { Dialect::Sqlite };
    let by_company = prepare("SELECT region FROM sales WHERE company = :company", dialect).expect("prepared");
    assert_eq!(
        run(&source(postgres, &location), &by_company, &Map::new()).await.expect_err("refused"),
        SourceError::MissingParameter("company".into())
    );
    let missing_table = prepare("SELECT * FROM invoices", dialect).expect("prepared");
    let error = run(&source(postgres, &location), &missing_table, &Map::new()).await.expect_err("refused");
    assert!(matches!(&error, SourceError::Query(m) if m.contains("invoices")), "{error}");
    let nowhere = if postgres { "postgres://postgres@127.0.0.1:1/none".to_owned() } else { "/nonexistent/dir/none.db".to_owned() };
    let secret = secrecy::SecretString::from("hunter2-secret".to_owned());
    let with_password = SqlSource { password: Some(&secret), ..source(postgres, &nowhere) };
    let error = run(&with_password, &by_company, &values(json!({"company": "USMF"}))).await.expect_err("unreachable");
    assert!(matches!(error, SourceError::Connect(_)), "{error}");
    assert!(
        !error.to_string().contains("hunter2") && !format!("{with_password:?}").contains("hunter2"),
        "no credential in errors or Debug"
    );
}
