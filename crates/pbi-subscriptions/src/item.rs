//! A report item as the application defines it: a name, a visual kind, typed columns, and which column plays
//! which of the kind's roles. Checked once, when it is defined (`ItemSpec::check`), so that a delivery never
//! meets an item it cannot draw; each fault names the field and says what to do.

use crate::kind::{TABLE_COLUMNS, VisualKind};
use serde::{Deserialize, Serialize};

/// The longest item or column name (Power BI's limit for a column name is the same).
pub const MAX_NAME: usize = 100;
/// The most columns an item may declare.
pub const MAX_COLUMNS: usize = 50;

/// The type of an item's column, as a source's results are checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Text,
    Integer,
    Decimal,
    Boolean,
    DateTime,
}

impl ColumnType {
    pub const ALL: [ColumnType; 5] =
        [ColumnType::Text, ColumnType::Integer, ColumnType::Decimal, ColumnType::Boolean, ColumnType::DateTime];

    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Integer => "integer",
            ColumnType::Decimal => "decimal",
            ColumnType::Boolean => "boolean",
            ColumnType::DateTime => "datetime",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(text.trim()))
    }

    fn is_number(self) -> bool {
        matches!(self, ColumnType::Integer | ColumnType::Decimal)
    }
}

/// A column as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ColumnSpec {
    pub name: String,
    /// text, integer, decimal, boolean or datetime.
    #[serde(rename = "type")]
    pub column_type: String,
}

/// An item as submitted (a form, the API, the CLI): strings, checked by [`ItemSpec::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: String,
    pub columns: Vec<ColumnSpec>,
    /// The column whose numbers are drawn (single value, category series, time series).
    #[serde(default)]
    pub value: Option<String>,
    /// The column that labels each number (category series).
    #[serde(default)]
    pub category: Option<String>,
    /// The column that places each number in time (time series).
    #[serde(default)]
    pub date: Option<String>,
}

/// A column of a checked item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
}

/// Which of the item's columns (by position) fills each column of its kind's push table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    SingleValue {
        value: usize,
    },
    CategorySeries {
        category: usize,
        value: usize,
    },
    TimeSeries {
        date: usize,
        value: usize,
    },
    /// The first columns of the item, in order, as text.
    Table {
        shown: usize,
    },
}

/// A checked item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub description: String,
    pub kind: VisualKind,
    pub columns: Vec<Column>,
    pub binding: Binding,
}

/// What is wrong with an item, naming the field (`name`, `kind`, `columns[2].type`, `value`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ItemError {
    pub field: String,
    pub message: String,
}

fn fault(field: impl Into<String>, message: impl Into<String>) -> ItemError {
    ItemError { field: field.into(), message: message.into() }
}

/// A name Power BI and people can both read: 1 to 100 characters, no control characters, not only spaces.
fn check_name(field: &str, name: &str) -> Result<String, ItemError> {
    one_line(field, name, MAX_NAME, "Enter a name.")
}

/// One line of text, trimmed: not empty (`empty` says what to enter), at most `most` characters, no control
/// characters.
pub(crate) fn one_line(field: &str, text: &str, most: usize, empty: &str) -> Result<String, ItemError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(fault(field, empty));
    }
    if trimmed.chars().count() > most {
        return Err(fault(field, format!("Use at most {most} characters.")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(fault(field, "Remove the control characters (tabs, line breaks)."));
    }
    Ok(trimmed.to_owned())
}

impl ItemSpec {
    pub fn check(&self) -> Result<Item, ItemError> {
        let name = check_name("name", &self.name)?;
        let kinds = VisualKind::ALL.map(VisualKind::as_str).join(", ");
        let kind = VisualKind::parse(&self.kind)
            .ok_or_else(|| fault("kind", format!("'{}' is not a visual kind; use one of {kinds}.", self.kind)))?;
        let columns = self.checked_columns()?;
        let binding = self.binding(kind, &columns)?;
        Ok(Item { name, description: self.description.trim().to_owned(), kind, columns, binding })
    }

    fn checked_columns(&self) -> Result<Vec<Column>, ItemError> {
        if self.columns.is_empty() {
            return Err(fault("columns", "Declare at least one column: the names and types the source's rows have."));
        }
        if self.columns.len() > MAX_COLUMNS {
            return Err(fault("columns", format!("Declare at most {MAX_COLUMNS} columns.")));
        }
        let types = ColumnType::ALL.map(ColumnType::as_str).join(", ");
        let mut columns: Vec<Column> = Vec::with_capacity(self.columns.len());
        for (i, spec) in self.columns.iter().enumerate() {
            let name = check_name(&format!("columns[{i}].name"), &spec.name)?;
            if columns.iter().any(|c| c.name.eq_ignore_ascii_case(&name)) {
                return Err(fault(format!("columns[{i}].name"), format!("'{name}' is declared twice (names are compared without case).")));
            }
            let column_type = ColumnType::parse(&spec.column_type).ok_or_else(|| {
                fault(format!("columns[{i}].type"), format!("'{}' is not a column type; use one of {types}.", spec.column_type))
            })?;
            columns.push(Column { name, column_type });
        }
        Ok(columns)
    }

    fn binding(&self, kind: VisualKind, columns: &[Column]) -> Result<Binding, ItemError> {
        let role = |field: &str, given: &Option<String>, wanted: &dyn Fn(ColumnType) -> bool, what: &str| -> Result<usize, ItemError> {
            let name = given.as_deref().map(str::trim).filter(|n| !n.is_empty()).ok_or_else(|| {
                fault(field, format!("A {} item needs a {field} column: name the column that holds {what}.", kind.as_str()))
            })?;
            let at = columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| fault(field, format!("'{name}' is not one of the item's columns.")))?;
            if !wanted(columns[at].column_type) {
                return Err(fault(
                    field,
                    format!("'{name}' is {}; the {field} column must hold {what}.", columns[at].column_type.as_str()),
                ));
            }
            Ok(at)
        };
        let number = |t: ColumnType| t.is_number();
        match kind {
            VisualKind::SingleValue => {
                Ok(Binding::SingleValue { value: role("value", &self.value, &number, "numbers (integer or decimal)")? })
            }
            VisualKind::CategorySeries => Ok(Binding::CategorySeries {
                category: role("category", &self.category, &|t| t == ColumnType::Text, "text labels")?,
                value: role("value", &self.value, &number, "numbers (integer or decimal)")?,
            }),
            VisualKind::TimeSeries => Ok(Binding::TimeSeries {
                date: role("date", &self.date, &|t| t == ColumnType::DateTime, "dates and times")?,
                value: role("value", &self.value, &number, "numbers (integer or decimal)")?,
            }),
            VisualKind::Table if columns.len() > TABLE_COLUMNS => Err(fault(
                "columns",
                format!("A table item shows at most {TABLE_COLUMNS} columns (its template's); declare the {TABLE_COLUMNS} to show."),
            )),
            VisualKind::Table => Ok(Binding::Table { shown: columns.len() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(kind: &str, columns: &[(&str, &str)]) -> ItemSpec {
        ItemSpec {
            name: "Chart2".into(),
            kind: kind.into(),
            columns: columns.iter().map(|(n, t)| ColumnSpec { name: (*n).into(), column_type: (*t).into() }).collect(),
            ..ItemSpec::default()
        }
    }

    #[test]
    fn a_category_series_binds_its_label_and_number_columns() {
        let mut s = spec("category-series", &[("Region", "text"), ("Amount", "decimal"), ("Orders", "integer")]);
        s.category = Some("region".into());
        s.value = Some("Orders".into());
        let item = s.check().expect("valid");
        assert_eq!(item.binding, Binding::CategorySeries { category: 0, value: 2 });
        assert_eq!((item.name.as_str(), item.kind), ("Chart2", VisualKind::CategorySeries));
    }

    #[test]
    fn each_fault_names_its_field() {
        let field = |s: ItemSpec| s.check().expect_err("refused").field;
        assert_eq!(field(spec("pie", &[("A", "text")])), "kind");
        assert_eq!(field(ItemSpec { name: "  ".into(), ..spec("table", &[("A", "text")]) }), "name");
        assert_eq!(field(spec("table", &[])), "columns");
        assert_eq!(field(spec("table", &[("A", "text"), ("a", "integer")])), "columns[1].name");
        assert_eq!(field(spec("table", &[("A", "money")])), "columns[0].type");
        assert_eq!(field(spec("single-value", &[("A", "decimal")])), "value", "a single value needs its value column");
        let mut texts = spec("single-value", &[("A", "text")]);
        texts.value = Some("A".into());
        assert_eq!(texts.check().expect_err("refused").message, "'A' is text; the value column must hold numbers (integer or decimal).");
        let mut missing = spec("time-series", &[("When", "datetime"), ("N", "integer")]);
        missing.value = Some("N".into());
        missing.date = Some("Day".into());
        assert_eq!(missing.check().expect_err("refused").to_string(), "date: 'Day' is not one of the item's columns.");
        let seven: Vec<(String, &str)> = (0..7).map(|i| (format!("C{i}"), "text")).collect();
        let seven: Vec<(&str, &str)> = seven.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        assert_eq!(field(spec("table", &seven)), "columns");
    }

    proptest! {
        /// Whatever is submitted, checking it never panics, and what passes keeps names within the limits.
        #[test]
        fn any_submission_is_checked_without_panicking(
            name in ".{0,120}",
            kind in prop::sample::select(vec!["single-value", "category-series", "time-series", "table", "x"]),
            columns in prop::collection::vec((".{0,110}", prop::sample::select(vec!["text", "integer", "decimal", "boolean", "datetime", "?"])), 0..8),
            value in proptest::option::of(".{0,10}"),
        ) {
            let s = ItemSpec {
                name,
                kind: kind.into(),
                columns: columns.into_iter().map(|(n, t)| ColumnSpec { name: n, column_type: t.into() }).collect(),
                value,
                ..ItemSpec::default()
            };
            if let Ok(item) = s.check() {
                prop_assert!(!item.name.is_empty() && item.name.chars().count() <= MAX_NAME);
                prop_assert!(item.columns.iter().all(|c| !c.name.is_empty() && !c.name.chars().any(char::is_control)));
            }
        }
    }
}
