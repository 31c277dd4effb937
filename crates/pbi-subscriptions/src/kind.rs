//! The four visual kinds an item can be pinned as, and the push table each kind's template visual reads.
//!
//! Power BI has no API to make a tile. A pin clones a template tile onto the user's dashboard and rebinds it
//! to a push dataset of the pin's own; the clone keeps its template's query, which names a table and its
//! columns. So each kind fixes its table: every pin of a kind pushes a table named [`TABLE`] with that kind's
//! columns, and the item says which of its own columns fills each one.

use serde::{Deserialize, Serialize};

/// The push table every pin's dataset holds (one table per dataset).
pub const TABLE: &str = "Item";
/// The column every push table ends with: when the delivery that wrote the rows ran (UTC).
pub const LAST_REFRESHED: &str = "LastRefreshed";
/// How many of an item's columns a table visual shows (its template has this many fields).
pub const TABLE_COLUMNS: usize = 6;

/// How an item is drawn on a dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VisualKind {
    /// One number (a card or gauge): the `value` role, summed.
    SingleValue,
    /// A number per category (a bar or column chart, a map by region): `category` and `value`.
    CategorySeries,
    /// A number over time (a line chart): `date` and `value`.
    TimeSeries,
    /// Rows as they are (a table), up to [`TABLE_COLUMNS`] columns, as text.
    Table,
}

/// The type of a push column, as Power BI names it in a dataset definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushType {
    String,
    Double,
    DateTime,
}

impl PushType {
    pub fn power_bi_name(self) -> &'static str {
        match self {
            PushType::String => "String",
            PushType::Double => "Double",
            PushType::DateTime => "DateTime",
        }
    }
}

/// A column of a kind's push table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushColumn {
    pub name: &'static str,
    pub push_type: PushType,
}

const fn column(name: &'static str, push_type: PushType) -> PushColumn {
    PushColumn { name, push_type }
}

const SINGLE_VALUE: &[PushColumn] = &[column("Value", PushType::Double), column(LAST_REFRESHED, PushType::DateTime)];
const CATEGORY_SERIES: &[PushColumn] =
    &[column("Category", PushType::String), column("Value", PushType::Double), column(LAST_REFRESHED, PushType::DateTime)];
const TIME_SERIES: &[PushColumn] =
    &[column("Date", PushType::DateTime), column("Value", PushType::Double), column(LAST_REFRESHED, PushType::DateTime)];
const TABLE_KIND: &[PushColumn] = &[
    column("Column1", PushType::String),
    column("Column2", PushType::String),
    column("Column3", PushType::String),
    column("Column4", PushType::String),
    column("Column5", PushType::String),
    column("Column6", PushType::String),
    column(LAST_REFRESHED, PushType::DateTime),
];

impl VisualKind {
    pub const ALL: [VisualKind; 4] = [VisualKind::SingleValue, VisualKind::CategorySeries, VisualKind::TimeSeries, VisualKind::Table];

    /// The name in URLs, the API and stored rows.
    pub fn as_str(self) -> &'static str {
        match self {
            VisualKind::SingleValue => "single-value",
            VisualKind::CategorySeries => "category-series",
            VisualKind::TimeSeries => "time-series",
            VisualKind::Table => "table",
        }
    }

    /// What people call it in the pin dialog and the templates page.
    pub fn label(self) -> &'static str {
        match self {
            VisualKind::SingleValue => "Single value (card, gauge)",
            VisualKind::CategorySeries => "Values by category (bar, column, map)",
            VisualKind::TimeSeries => "Values over time (line)",
            VisualKind::Table => "Table",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// The push table this kind's template visual reads, `LastRefreshed` last.
    pub fn push_columns(self) -> &'static [PushColumn] {
        match self {
            VisualKind::SingleValue => SINGLE_VALUE,
            VisualKind::CategorySeries => CATEGORY_SERIES,
            VisualKind::TimeSeries => TIME_SERIES,
            VisualKind::Table => TABLE_KIND,
        }
    }

    /// A push dataset definition (the body of Datasets_PostDataset) for a pin of this kind.
    pub fn dataset_definition(self, dataset_name: &str) -> serde_json::Value {
        let columns: Vec<serde_json::Value> =
            self.push_columns().iter().map(|c| serde_json::json!({"name": c.name, "dataType": c.push_type.power_bi_name()})).collect();
        serde_json::json!({"name": dataset_name, "defaultMode": "Push", "tables": [{"name": TABLE, "columns": columns}]})
    }
}

impl std::fmt::Display for VisualKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_from_its_name_and_ends_its_table_with_last_refreshed() {
        for kind in VisualKind::ALL {
            assert_eq!(VisualKind::parse(kind.as_str()), Some(kind));
            assert_eq!(VisualKind::parse(&kind.as_str().to_uppercase()), Some(kind));
            assert_eq!(kind.push_columns().last().map(|c| c.name), Some(LAST_REFRESHED));
            let names: std::collections::HashSet<_> = kind.push_columns().iter().map(|c| c.name).collect();
            assert_eq!(names.len(), kind.push_columns().len(), "{kind}: column names are unique");
        }
        assert_eq!(VisualKind::parse("pie"), None);
        assert_eq!(VisualKind::Table.push_columns().len(), TABLE_COLUMNS + 1);
    }

    #[test]
    fn the_dataset_definition_is_a_push_dataset_with_the_kinds_table() {
        let definition = VisualKind::CategorySeries.dataset_definition("Sales by region (pbi-bridge)");
        assert_eq!(
            definition,
            serde_json::json!({"name": "Sales by region (pbi-bridge)", "defaultMode": "Push", "tables": [{"name": "Item", "columns": [
                {"name": "Category", "dataType": "String"}, {"name": "Value", "dataType": "Double"}, {"name": "LastRefreshed", "dataType": "DateTime"}
            ]}]})
        );
    }
}
