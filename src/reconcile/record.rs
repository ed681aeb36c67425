//! Source records and CIs as plain values: what the adapters hand to the pure core.
//!
//! A source record is a VM as CloudForms returned it (a JSON object, untouched); a CI is a
//! ServiceNow row, every value a string, as the Table API returns it.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};

use rustc_hash::{FxBuildHasher, FxHashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::diff::nfc;

/// What a read of the from-side produced, whichever system it came from: the records as JSON
/// values, whether the read is complete (and why not), and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRead {
    pub origin: String,
    pub records: Vec<Value>,
    /// Why the read is not complete; `None` when every record the server has was read.
    pub incomplete: Option<String>,
}

/// One VM as the source returned it, borrowed from the read. `id` is normalised to a string
/// (CloudForms sends integers on old servers and strings on CFME 5.9+).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord<'a> {
    pub id: Cow<'a, str>,
    pub data: &'a Map<String, Value>,
}

impl<'a> SourceRecord<'a> {
    /// Views a JSON object as a record; the id comes from its `id` key (string or number).
    /// Returns `None` when the object has no usable id: the caller reports it as a bad record.
    pub fn from_object(data: &'a Map<String, Value>) -> Option<Self> {
        let id = match data.get("id")? {
            Value::String(s) if !s.trim().is_empty() => Cow::Borrowed(s.trim()),
            Value::Number(n) => Cow::Owned(n.to_string()),
            _ => return None,
        };
        Some(Self { id, data })
    }
}

/// A CI's fields: shared names to string values.
pub type Fields = HashMap<Arc<str>, String, FxBuildHasher>;

/// One ServiceNow CI row. Values are strings, as the Table API returns them (references as
/// bare sys_ids, which `sysparm_exclude_reference_link=true` gives).
///
/// Field names are shared (`Arc<str>`, see [`FieldNames`]): the rows of one read name the
/// same few dozen fields, and a hash map over shared names keeps the planner's millions of
/// lookups in cache at 100,000 CIs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ci {
    pub sys_id: String,
    pub fields: Fields,
}

impl Ci {
    /// Builds a CI from field names and values.
    pub fn new<K: Into<Arc<str>>>(
        sys_id: impl Into<String>,
        fields: impl IntoIterator<Item = (K, String)>,
    ) -> Self {
        Self {
            sys_id: sys_id.into(),
            fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        }
    }

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

/// Interns field names so that every row of a read shares one allocation per name.
#[derive(Debug, Default)]
pub struct FieldNames(HashSet<Arc<str>>);

impl FieldNames {
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(existing) = self.0.get(name) {
            return existing.clone();
        }
        let name: Arc<str> = name.into();
        self.0.insert(name.clone());
        name
    }
}

/// Values of referenced tables used to resolve lookups (e.g. owner email -> sys_user sys_id):
/// table -> field -> lower-cased value -> sys_ids having it.
#[derive(Debug, Clone, Default)]
pub struct References {
    index: FxHashMap<String, FxHashMap<String, FxHashMap<String, Vec<String>>>>,
    loaded: BTreeSet<String>,
}

impl References {
    /// Registers the rows of a referenced table (every field indexed).
    pub fn add_table(&mut self, table: &str, rows: impl IntoIterator<Item = Ci>) {
        self.loaded.insert(table.to_owned());
        for row in rows {
            for (field, value) in &row.fields {
                let value = value.trim();
                if value.is_empty() {
                    continue;
                }
                self.index
                    .entry(table.to_owned())
                    .or_default()
                    .entry(field.to_string())
                    .or_default()
                    .entry(nfc(value).to_lowercase())
                    .or_default()
                    .push(row.sys_id.clone());
            }
        }
    }

    /// Whether any rows of `table` were supplied at all.
    pub fn has_table(&self, table: &str) -> bool {
        self.loaded.contains(table)
    }

    /// The sys_ids of `table` rows whose `field` equals `value` (case-insensitive, in NFC as
    /// `diff::same` compares).
    pub fn resolve(&self, table: &str, field: &str, value: &str) -> &[String] {
        let value = nfc(value.trim());
        let lower: Cow<str> = if value.chars().any(char::is_uppercase) {
            Cow::Owned(value.to_lowercase())
        } else {
            value
        };
        self.index
            .get(table)
            .and_then(|fields| fields.get(field))
            .and_then(|values| values.get(lower.as_ref()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}
