//! An item's SQL, checked once when the item is saved: one statement that only reads (a `SELECT`, `WITH … SELECT`
//! or `VALUES`, with no `SELECT … INTO` and no row locks), whose named parameters (`:company`) are rewritten as
//! the backend's positional ones (`$1` on PostgreSQL, `?1` on SQLite) so that values are always bound, never
//! written into the text. The delivery also runs it in a read-only transaction: this check is the first of two.

use sqlparser::ast::{Expr, SetExpr, Statement, Value, visit_expressions_mut};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// The longest query accepted.
pub const MAX_QUERY: usize = 64 * 1024;

/// Which database the query runs on: its SQL dialect and its placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// A query ready to run: its text with positional placeholders, and the parameter bound to each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedQuery {
    pub sql: String,
    /// `parameters[i]` is bound to the `i + 1`th placeholder.
    pub parameters: Vec<String>,
}

/// What is wrong with a query, said for the administrator who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query: it does not parse: {0}")]
    Syntax(String),
    #[error("query: write one statement (found {0})")]
    NotOne(usize),
    #[error("query: only a query that reads is allowed (a SELECT, WITH … SELECT or VALUES), not {0}")]
    NotRead(String),
    #[error("query: use named parameters such as :company, not '{0}'")]
    Positional(String),
    #[error("query: at most {MAX_QUERY} characters")]
    TooLong,
}

/// Checks `sql` and rewrites its named parameters.
pub fn prepare(sql: &str, dialect: Dialect) -> Result<PreparedQuery, QueryError> {
    if sql.len() > MAX_QUERY {
        return Err(QueryError::TooLong);
    }
    let mut statements = match dialect {
        Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, sql),
        Dialect::Sqlite => Parser::parse_sql(&SQLiteDialect {}, sql),
    }
    .map_err(|e| QueryError::Syntax(e.to_string()))?;
    if statements.len() != 1 {
        return Err(QueryError::NotOne(statements.len()));
    }
    let statement = &mut statements[0];
    check_reads_only(statement)?;
    let mut parameters: Vec<String> = Vec::new();
    let mut refused = None;
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Value(value) = expr
            && let Value::Placeholder(text) = &mut value.value
        {
            match text.strip_prefix(':').filter(|name| is_name(name)) {
                Some(name) => {
                    let name = name.to_owned();
                    let at = parameters.iter().position(|p| *p == name).unwrap_or_else(|| {
                        parameters.push(name);
                        parameters.len() - 1
                    });
                    *text = match dialect {
                        Dialect::Postgres => format!("${}", at + 1),
                        Dialect::Sqlite => format!("?{}", at + 1),
                    };
                }
                None => {
                    refused = Some(text.clone());
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    if let Some(placeholder) = refused {
        return Err(QueryError::Positional(placeholder));
    }
    Ok(PreparedQuery { sql: statement.to_string(), parameters })
}

pub(crate) fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_reads_only(statement: &Statement) -> Result<(), QueryError> {
    let Statement::Query(query) = statement else {
        let text = statement.to_string();
        let verb = text.split_whitespace().next().unwrap_or("that").to_uppercase();
        return Err(QueryError::NotRead(verb));
    };
    if !query.locks.is_empty() {
        return Err(QueryError::NotRead("a query that locks rows (FOR UPDATE, FOR SHARE)".into()));
    }
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            check_body(&cte.query.body)?;
        }
    }
    check_body(&query.body)
}

fn check_body(body: &SetExpr) -> Result<(), QueryError> {
    match body {
        SetExpr::Select(select) if select.into.is_some() => Err(QueryError::NotRead("SELECT … INTO (it creates a table)".into())),
        SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => Ok(()),
        SetExpr::Query(query) => check_reads_only(&Statement::Query(query.clone())),
        SetExpr::SetOperation { left, right, .. } => check_body(left).and_then(|()| check_body(right)),
        other => Err(QueryError::NotRead(other.to_string().split_whitespace().next().unwrap_or("that").to_uppercase())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn named_parameters_become_the_backends_positional_ones() {
        let sql = "SELECT region, SUM(amount) AS total FROM sales WHERE company = :company AND year >= :since OR company = :company GROUP BY region";
        let pg = prepare(sql, Dialect::Postgres).expect("prepared");
        assert_eq!(pg.parameters, ["company", "since"]);
        assert!(pg.sql.contains("company = $1 AND year >= $2 OR company = $1"), "{}", pg.sql);
        let lite = prepare(sql, Dialect::Sqlite).expect("prepared");
        assert!(lite.sql.contains("company = ?1 AND year >= ?2 OR company = ?1"), "{}", lite.sql);
        // A colon in a string, a comment or a cast is not a parameter.
        let quiet = prepare("SELECT ':company' AS c, now()::date -- :later\nFROM t", Dialect::Postgres).expect("prepared");
        assert!(quiet.parameters.is_empty(), "{quiet:?}");
    }

    #[test]
    fn only_one_statement_that_reads_is_accepted() {
        let refused = |sql: &str| prepare(sql, Dialect::Postgres).expect_err("refused");
        assert_eq!(refused("SELECT 1; DROP TABLE sales"), QueryError::NotOne(2));
        assert_eq!(refused("DELETE FROM sales"), QueryError::NotRead("DELETE".into()));
        assert_eq!(refused("UPDATE sales SET amount = 0"), QueryError::NotRead("UPDATE".into()));
        assert!(matches!(refused("SELECT * INTO copy FROM sales"), QueryError::NotRead(_)));
        assert!(matches!(refused("SELECT * FROM sales FOR UPDATE"), QueryError::NotRead(_)));
        assert!(matches!(refused("SELEC 1"), QueryError::Syntax(_)));
        assert_eq!(refused("SELECT * FROM sales WHERE id = $1"), QueryError::Positional("$1".into()));
        assert_eq!(prepare("SELECT * FROM t WHERE id = ?", Dialect::Sqlite).expect_err("refused"), QueryError::Positional("?".into()));
        assert!(prepare("WITH recent AS (SELECT * FROM sales) SELECT * FROM recent UNION SELECT * FROM old", Dialect::Sqlite).is_ok());
        assert!(prepare("VALUES (1, 'a')", Dialect::Postgres).is_ok());
        assert_eq!(prepare(&"x".repeat(MAX_QUERY + 1), Dialect::Postgres).expect_err("refused"), QueryError::TooLong);
    }

    proptest! {
        /// Whatever an administrator types, it is either refused or becomes one read-only statement whose
        /// placeholders are exactly `$1`..`$n` for the n names found; nothing panics.
        #[test]
        fn any_text_is_refused_or_prepared_with_numbered_placeholders(sql in "[ -~\\n]{0,120}") {
            if let Ok(prepared) = prepare(&sql, Dialect::Postgres) {
                let left_named = prepared.parameters.iter().any(|name| prepared.sql.contains(&format!(":{name}")));
                prop_assert!(!left_named, "a named parameter was left in: {}", prepared.sql);
                for n in 1..=prepared.parameters.len() {
                    prop_assert!(prepared.sql.contains(&format!("${n}")), "{}", prepared.sql);
                }
            }
        }

        /// Names used in any order and repeated get one placeholder each, numbered by first appearance.
        #[test]
        fn each_name_gets_one_number_by_first_appearance(names in prop::collection::vec(prop::sample::select(vec!["company", "since", "region", "_x1"]), 1..12)) {
            let conditions: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("c{i} = :{n}")).collect();
            let sql = format!("SELECT a FROM t WHERE {}", conditions.join(" AND "));
            let prepared = prepare(&sql, Dialect::Postgres).expect("prepared");
            let mut first: Vec<String> = Vec::new();
            for n in &names {
                if !first.iter().any(|f| f == n) {
                    first.push((*n).to_owned());
                }
            }
            prop_assert_eq!(&prepared.parameters, &first);
            for (i, n) in names.iter().enumerate() {
                let number = first.iter().position(|f| f == n).map(|p| p + 1).unwrap_or(0);
                prop_assert!(prepared.sql.contains(&format!("c{i} = ${number}")), "{}", prepared.sql);
            }
        }

        /// Deeply nested input is refused, not a crash.
        #[test]
        fn deep_nesting_is_refused(depth in 60usize..3000) {
            let sql = format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth));
            prop_assert!(prepare(&sql, Dialect::Sqlite).is_err());
        }
    }
}
