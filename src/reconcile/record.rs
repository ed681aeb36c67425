//! Source records and CIs as plain values: what the adapters hand to the pure core.
//!
//! A source record is a VM as CloudForms returned it (a JSON object, untouched); a CI is a
//! ServiceNow row, every value a string, as the Table API returns it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One VM as the source returned it. `id` is normalised to a string (CloudForms sends
/// integers on old servers and strings on CFME 5.9+).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub id: String,
    pub data: Map<String, Value>,
}

impl SourceRecord {
    /// Builds a record from a JSON object; the id comes from its `id` key (string or number).
    /// Returns `None` when the object has no usable id: the caller reports it as a bad record.
    pub fn from_object(data: Map<String, Value>) -> Option<Self> {
        let id = match data.get("id")? {
            Value::String(s) if !s.trim().is_empty() => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(Self { id, data })
    }
}

/// One ServiceNow CI row. Values are strings, as the Table API returns them (references as
/// bare sys_ids, which `sysparm_exclude_reference_link=true` gives).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ci {
    pub sys_id: String,
    pub fields: BTreeMap<String, String>,
}

impl Ci {
    /// The value of a field, `""` when absent (ServiceNow renders empty fields as `""`).
    pub fn get(&self, field: &str) -> &str {
        if field == "sys_id" {
            return &self.sys_id;
        }
        self.fields.get(field).map(String::as_str).unwrap_or("")
    }

    /// The CI's display name for reports.
    pub fn name(&self) -> &str {
        self.get("name")
    }
}

/// Values of referenced tables used to resolve lookups (e.g. owner email -> sys_user sys_id):
/// table -> field -> lower-cased value -> sys_ids having it.
#[derive(Debug, Clone, Default)]
pub struct References {
    tables: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<String>>>>,
    loaded: BTreeMap<String, ()>,
}

impl References {
    /// Registers the rows of a referenced table (every field indexed).
    pub fn add_table(&mut self, table: &str, rows: impl IntoIterator<Item = Ci>) {
        self.loaded.insert(table.to_owned(), ());
        let index = self.tables.entry(table.to_owned()).or_default();
        for row in rows {
            for (field, value) in &row.fields {
                let value = value.trim();
                if value.is_empty() {
                    continue;
                }
                index
                    .entry(field.clone())
                    .or_default()
                    .entry(value.to_lowercase())
                    .or_default()
                    .push(row.sys_id.clone());
            }
        }
    }

    /// Whether any rows of `table` were supplied at all.
    pub fn has_table(&self, table: &str) -> bool {
        self.loaded.contains_key(table)
    }

    /// The sys_ids of `table` rows whose `field` equals `value` (case-insensitive).
    pub fn resolve(&self, table: &str, field: &str, value: &str) -> &[String] {
        self.tables
            .get(table)
            .and_then(|t| t.get(field))
            .and_then(|f| f.get(&value.trim().to_lowercase()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}
