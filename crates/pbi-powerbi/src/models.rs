//! Power BI's resources as the API returns them. Field names follow the live service (camelCase) and also
//! accept the swagger's PascalCase where the two differ; fields this crate does not model are kept in
//! `extra`, never rejected.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// `{"@odata.context": ..., "value": [...]}` (the swagger writes `odata.context`).
#[derive(Debug, Clone, Deserialize)]
pub struct ODataList<T> {
    #[serde(rename = "@odata.context", alias = "odata.context", default)]
    pub context: Option<String>,
    pub value: Vec<T>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: Uuid,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub is_read_only: bool,
    #[serde(default)]
    pub is_on_dedicated_capacity: bool,
    #[serde(default)]
    pub capacity_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    pub id: Uuid,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub is_read_only: bool,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub embed_url: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tile {
    pub id: Uuid,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub report_id: Option<Uuid>,
    #[serde(default)]
    pub dataset_id: Option<Uuid>,
    #[serde(default)]
    pub row_span: Option<u32>,
    #[serde(default)]
    pub col_span: Option<u32>,
    #[serde(default)]
    pub embed_url: Option<String>,
    #[serde(default)]
    pub embed_data: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub id: Uuid,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub dataset_id: Option<Uuid>,
    #[serde(default)]
    pub report_type: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub embed_url: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    pub id: String,
    #[serde(default, alias = "Name")]
    pub name: String,
    #[serde(default, alias = "ConfiguredBy")]
    pub configured_by: Option<String>,
    #[serde(default, rename = "addRowsAPIEnabled", alias = "AddRowsAPIEnabled", alias = "addRowsApiEnabled")]
    pub add_rows_api_enabled: bool,
    #[serde(default, alias = "IsRefreshable")]
    pub is_refreshable: bool,
    #[serde(default, alias = "WebUrl")]
    pub web_url: Option<String>,
    #[serde(default, alias = "CreatedDate")]
    pub created_date: Option<String>,
    #[serde(default)]
    pub default_retention_policy: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A push dataset's definition (`POST datasets`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_mode: Option<String>,
    pub tables: Vec<TableSchema>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<Relationship>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<Column>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<Measure>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Measure {
    pub name: String,
    pub expression: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relationship {
    pub name: String,
    pub from_table: String,
    pub from_column: String,
    pub to_table: String,
    pub to_column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_filtering_behavior: Option<String>,
}

/// Push-dataset column types; read case-insensitively (`string`, `bool` and `dateTime` appear in
/// Microsoft's own examples), written canonically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DataType {
    Int64,
    Double,
    Boolean,
    DateTime,
    String,
    Decimal,
}

impl DataType {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "int64" => DataType::Int64,
            "double" => DataType::Double,
            "boolean" | "bool" => DataType::Boolean,
            "datetime" => DataType::DateTime,
            "string" => DataType::String,
            "decimal" => DataType::Decimal,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for DataType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        DataType::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!("'{name}' is not a Power BI data type (Int64, Double, Boolean, DateTime, String, Decimal)"))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refresh {
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub refresh_type: Option<String>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    /// `Unknown` while running, then `Completed`, `Failed` or `Disabled`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedToken {
    pub token: String,
    pub token_id: Uuid,
    pub expiration: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_live_and_swagger_casing_and_keeps_unknown_fields() {
        let live: Dataset =
            serde_json::from_str(r#"{"id":"x","name":"Sales","addRowsAPIEnabled":true,"isRefreshable":false,"newField":1}"#).expect("live");
        let swagger: Dataset =
            serde_json::from_str(r#"{"id":"x","Name":"Sales","AddRowsAPIEnabled":true,"IsRefreshable":false}"#).expect("swagger");
        assert!(live.add_rows_api_enabled && swagger.add_rows_api_enabled);
        assert_eq!(live.extra.get("newField"), Some(&Value::from(1)));
        let column: Column = serde_json::from_str(r#"{"name":"Paid","dataType":"bool","formatString":"0"}"#).expect("column");
        assert_eq!(column.data_type, DataType::Boolean);
        assert_eq!(serde_json::to_value(&column).expect("json")["dataType"], "Boolean");
        let list: ODataList<Group> =
            serde_json::from_str(r#"{"odata.context":"c","value":[{"id":"f089354e-8366-4e18-aea3-4cb4a3a50b48","name":"A"}]}"#)
                .expect("swagger list");
        assert_eq!(list.context.as_deref(), Some("c"));
    }
}
