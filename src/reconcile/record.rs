//! Source records and CIs as plain values: what the adapters hand to the pure core.
//!
//! A source record is a VM as CloudForms returned it, held as a compact [`Val`] (object keys
//! shared, strings boxed, no hash map per object): the adapters turn each page into these as
//! it arrives and drop its JSON. A CI is a ServiceNow row, every value a string, as the Table
//! API returns it, held as one text buffer per row over a field layout that the rows of a
//! read share ([`Fields`]).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::{Number, Value};

use super::diff::{nfc, trim};

/// What a read of the from-side produced, whichever system it came from: the records as
/// compact values, whether the read is complete (and why not), and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRead {
    pub origin: String,
    pub records: Vec<Val>,
    /// Why the read is not complete; `None` when every record the server has was read.
    pub incomplete: Option<String>,
}

impl SourceRead {
    /// A read from JSON values (a snapshot, a test), each turned into a compact record.
    pub fn from_json(origin: String, records: Vec<Value>, incomplete: Option<String>) -> Self {
        let mut keys = FieldNames::default();
        Self {
            origin,
            records: records
                .into_iter()
                .map(|r| Val::from_json(r, &mut keys))
                .collect(),
            incomplete,
        }
    }
}

/// A JSON value as the core keeps a source record: the shape of `serde_json::Value` at a
/// third of its size (24 bytes), objects as boxed slices of (shared key, value) in their
/// order, strings as `Box<str>`. A page's JSON becomes these as it is read
/// ([`Val::from_json`]), so no `serde_json::Value` tree outlives its page.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Val {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(Box<str>),
    Array(Box<[Val]>),
    Object(Obj),
}

/// A JSON object: keys shared across the records of a read ([`FieldNames`]), in the order
/// the source sent them; looked up by a scan (records have a few dozen keys at most).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Obj(Box<[(Arc<str>, Val)]>);

impl Obj {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Val> {
        self.0
            .iter()
            .find(|(k, _)| k.len() == key.len() && **k == *key)
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keys and values in the source's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Val)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.0.iter().map(|(k, _)| k)
    }

    /// Adds `key` unless the object has it already (then it is left as it is).
    pub fn insert_missing(&mut self, key: &str, value: Val) {
        if self.contains_key(key) {
            return;
        }
        let mut entries = std::mem::take(&mut self.0).into_vec();
        entries.push((key.into(), value));
        self.0 = entries.into_boxed_slice();
    }
}

impl FromIterator<(Arc<str>, Val)> for Obj {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, Val)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl Val {
    /// The compact form of a JSON value; object keys are interned in `keys`, so the records
    /// of one read share one allocation per key name.
    pub fn from_json(value: Value, keys: &mut FieldNames) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(b),
            Value::Number(n) => Self::Number(n),
            Value::String(s) => Self::String(s.into_boxed_str()),
            Value::Array(items) => Self::Array(
                items
                    .into_iter()
                    .map(|v| Self::from_json(v, keys))
                    .collect(),
            ),
            Value::Object(map) => Self::Object(Obj(map
                .into_iter()
                .map(|(k, v)| (keys.intern(&k), Self::from_json(v, keys)))
                .collect())),
        }
    }

    /// The JSON value again (reports, tests).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(s) => Value::String(s.to_string()),
            Self::Array(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            Self::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.to_owned(), v.to_json())).collect())
            }
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Obj> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    pub fn as_array(&self) -> Option<&[Val]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_array(&self) -> bool {
        matches!(self, Self::Array(_))
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The value under `key` of an object (`None` for anything else).
    pub fn get(&self, key: &str) -> Option<&Val> {
        self.as_object()?.get(key)
    }
}

/// `record["name"]`: `Null` for a missing key or a non-object, as `serde_json` indexes.
impl std::ops::Index<&str> for Val {
    type Output = Val;

    fn index(&self, key: &str) -> &Val {
        static NULL: Val = Val::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

impl std::ops::Index<&str> for Obj {
    type Output = Val;

    fn index(&self, key: &str) -> &Val {
        static NULL: Val = Val::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

/// Compared with the JSON it was made from (tests, and adapters checking a value).
impl PartialEq<Value> for Val {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Self::Null, Value::Null) => true,
            (Self::Bool(a), Value::Bool(b)) => a == b,
            (Self::Number(a), Value::Number(b)) => a == b,
            (Self::String(a), Value::String(b)) => **a == **b,
            (Self::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a == b)
            }
            (Self::Object(a), Value::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| v == w))
            }
            _ => false,
        }
    }
}

impl PartialEq<&str> for Val {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Self::String(s.into())
    }
}

impl From<String> for Val {
    fn from(s: String) -> Self {
        Self::String(s.into_boxed_str())
    }
}

impl fmt::Display for Val {
    /// The JSON text, as `serde_json::Value` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_json(), f)
    }
}

impl serde::Serialize for Val {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Number(n) => n.serialize(serializer),
            Self::String(s) => serializer.serialize_str(s),
            Self::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items.iter() {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Object(o) => {
                let mut map = serializer.serialize_map(Some(o.len()))?;
                for (k, v) in o.iter() {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// What of a source record a mapping reads ([`Mapping::source_keep`]): the keys on its
/// paths, each kept whole where a path ends. Arrays are transparent (what is kept of an
/// array is kept of each element). A live read keeps only this of each record as its page
/// arrives: a link (`href`) or a key the server sends besides those asked for costs nothing
/// afterwards.
///
/// [`Mapping::source_keep`]: super::mapping::Mapping::source_keep
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keep {
    all: bool,
    keys: std::collections::BTreeMap<String, Keep>,
}

/// What keeps a whole value ([`Keep::under`] of a key kept whole).
static KEEP_ALL: Keep = Keep {
    all: true,
    keys: std::collections::BTreeMap::new(),
};

impl Keep {
    /// What is kept of the value under `key` of an object this keeps something of: `None`
    /// when nothing is (a parser skips that value without building it).
    pub fn under(&self, key: &str) -> Option<&Keep> {
        if self.all {
            Some(&KEEP_ALL)
        } else {
            self.keys.get(key)
        }
    }

    /// Whether this keeps the whole value.
    pub fn keeps_all(&self) -> bool {
        self.all
    }

    /// Keeps everything under the path `keys` (empty: the whole value).
    pub fn add<'k>(&mut self, keys: impl IntoIterator<Item = &'k str>) {
        let mut at = self;
        for key in keys {
            if at.all {
                return;
            }
            at = at.keys.entry(key.to_owned()).or_default();
        }
        at.all = true;
        at.keys.clear();
    }

    /// The compact form of `value` with only what this keeps (a scalar where an object was
    /// expected is kept as it is: the core reports it).
    pub fn compact(&self, value: Value, keys: &mut FieldNames) -> Val {
        if self.all {
            return Val::from_json(value, keys);
        }
        match value {
            Value::Object(map) => Val::Object(Obj(map
                .into_iter()
                .filter_map(|(k, v)| {
                    let keep = self.keys.get(&k)?;
                    Some((keys.intern(&k), keep.compact(v, keys)))
                })
                .collect())),
            Value::Array(items) => {
                Val::Array(items.into_iter().map(|v| self.compact(v, keys)).collect())
            }
            scalar => Val::from_json(scalar, keys),
        }
    }
}

/// One VM as the source returned it, borrowed from the read. `id` is normalised to a string
/// (CloudForms sends integers on old servers and strings on CFME 5.9+).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord<'a> {
    pub id: Cow<'a, str>,
    pub data: &'a Obj,
}

impl<'a> SourceRecord<'a> {
    /// Views an object as a record; the id comes from its `id` key (string or number).
    /// Returns `None` when the object has no usable id: the caller reports it as a bad record.
    pub fn from_object(data: &'a Obj) -> Option<Self> {
        let id = match data.get("id")? {
            Val::String(s) if !trim(s).is_empty() => Cow::Borrowed(trim(s)),
            Val::Number(n) => Cow::Owned(n.to_string()),
            _ => return None,
        };
        Some(Self { id, data })
    }
}

/// The field names of rows, in order, and where each sits: shared by the rows of a read
/// that carry the same fields (nearly all of them: the Table API returns every requested
/// field of every row), so a row holds no names of its own.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    names: Box<[Arc<str>]>,
    at: FxHashMap<Arc<str>, u32>,
}

impl Layout {
    fn new(names: Vec<Arc<str>>) -> Self {
        let at = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Self {
            names: names.into_boxed_slice(),
            at,
        }
    }
}

/// Shares [`Layout`]s between rows: rows naming the same fields in the same order get one.
#[derive(Debug, Default)]
pub struct Layouts {
    last: Option<Arc<Layout>>,
    all: FxHashMap<Box<[Arc<str>]>, Arc<Layout>>,
}

impl Layouts {
    fn get(&mut self, names: Vec<Arc<str>>) -> Arc<Layout> {
        if let Some(last) = &self.last {
            if *last.names == *names {
                return Arc::clone(last);
            }
        }
        let layout = match self.all.get(names.as_slice()) {
            Some(layout) => Arc::clone(layout),
            None => {
                let layout = Arc::new(Layout::new(names));
                self.all.insert(layout.names.clone(), Arc::clone(&layout));
                layout
            }
        };
        self.last = Some(Arc::clone(&layout));
        layout
    }

    /// The fields of one row from (name, value) pairs; a repeated name keeps its last value.
    pub fn row<K: Into<Arc<str>>, V: AsRef<str>>(
        &mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Fields {
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut values: Vec<V> = Vec::new();
        for (name, value) in pairs {
            let name = name.into();
            match names.iter().position(|n| *n == name) {
                Some(i) => values[i] = value,
                None => {
                    names.push(name);
                    values.push(value);
                }
            }
        }
        let mut text = String::with_capacity(values.iter().map(|v| v.as_ref().len()).sum());
        let ends: Vec<u32> = values
            .iter()
            .map(|v| {
                text.push_str(v.as_ref());
                text.len() as u32
            })
            .collect();
        Fields {
            layout: self.get(names),
            ends: Ends::new(&ends),
            text: text.into_boxed_str(),
        }
    }
}

/// A CI's fields: names to string values, compact. The values of a row are one text buffer
/// cut at `ends`; the names are a [`Layout`] shared with the other rows of the read. About
/// a sixth of a hash map of owned strings per row, and a lookup is one hash of the name.
#[derive(Clone)]
pub struct Fields {
    layout: Arc<Layout>,
    ends: Ends,
    text: Box<str>,
}

/// Where each value of a row ends in its text: inline for the rows of a CMDB read (a few
/// dozen fields, short values), so that reading a field costs one memory access less per
/// row; on the heap for wider or longer rows.
#[derive(Clone)]
enum Ends {
    Inline(u8, [u16; INLINE_ENDS]),
    Heap(Box<[u32]>),
}

const INLINE_ENDS: usize = 30;

impl Ends {
    fn new(ends: &[u32]) -> Self {
        let fits = ends.len() <= INLINE_ENDS && ends.last().is_none_or(|&e| e <= u16::MAX as u32);
        if !fits {
            return Self::Heap(ends.into());
        }
        let mut inline = [0u16; INLINE_ENDS];
        for (slot, &end) in inline.iter_mut().zip(ends) {
            *slot = end as u16;
        }
        Self::Inline(ends.len() as u8, inline)
    }

    fn len(&self) -> usize {
        match self {
            Self::Inline(n, _) => *n as usize,
            Self::Heap(ends) => ends.len(),
        }
    }

    /// Where value `i` starts and ends.
    fn span(&self, i: usize) -> (usize, usize) {
        match self {
            Self::Inline(_, ends) => (
                if i == 0 { 0 } else { ends[i - 1] as usize },
                ends[i] as usize,
            ),
            Self::Heap(ends) => (
                if i == 0 { 0 } else { ends[i - 1] as usize },
                ends[i] as usize,
            ),
        }
    }
}

impl Default for Fields {
    fn default() -> Self {
        Layouts::default().row(std::iter::empty::<(Arc<str>, &str)>())
    }
}

impl Fields {
    fn value(&self, i: usize) -> &str {
        let (start, end) = self.ends.span(i);
        &self.text[start..end]
    }

    /// The value of `name`, if the row has the field.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = *self.layout.at.get(name)? as usize;
        Some(self.value(i))
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.layout.at.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.len() == 0
    }

    /// Names and values, in the order the row was built.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &str)> {
        self.layout
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n, self.value(i)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.layout.names.iter()
    }

    /// Sets `name` to `value` (added when the row lacks it). Rebuilds the row: for the rare
    /// edit (snapshot conversions, tests), never the bulk of a read.
    pub fn insert(&mut self, name: impl Into<Arc<str>>, value: impl AsRef<str>) {
        let name = name.into();
        let value = value.as_ref();
        let mut pairs: Vec<(Arc<str>, &str)> =
            self.iter().map(|(n, v)| (Arc::clone(n), v)).collect();
        match pairs.iter_mut().find(|(n, _)| *n == name) {
            Some(pair) => pair.1 = value,
            None => pairs.push((name, value)),
        }
        let mut layouts = Layouts {
            last: Some(Arc::clone(&self.layout)),
            ..Layouts::default()
        };
        *self = layouts.row(pairs);
    }
}

impl PartialEq for Fields {
    /// As maps: the same names with the same values, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(n, v)| other.get(n) == Some(v))
    }
}

impl Eq for Fields {}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a Arc<str>, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a Arc<str>, &'a str)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl FromIterator<(Arc<str>, String)> for Fields {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, String)>>(iter: I) -> Self {
        Layouts::default().row(iter)
    }
}

/// One ServiceNow CI row. Values are strings, as the Table API returns them (references as
/// bare sys_ids, which `sysparm_exclude_reference_link=true` gives).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ci {
    pub sys_id: String,
    pub fields: Fields,
}

impl Ci {
    /// Builds a CI from field names and values (a layout of its own; readers of many rows
    /// share layouts through [`FieldNames::row`] or [`Layouts::row`]).
    pub fn new<K: Into<Arc<str>>>(
        sys_id: impl Into<String>,
        fields: impl IntoIterator<Item = (K, String)>,
    ) -> Self {
        Self {
            sys_id: sys_id.into(),
            fields: Layouts::default().row(fields),
        }
    }

    /// The value of a field, `""` when absent (ServiceNow renders empty fields as `""`).
    pub fn get(&self, field: &str) -> &str {
        if field == "sys_id" {
            return &self.sys_id;
        }
        self.fields.get(field).unwrap_or("")
    }

    /// The CI's display name for reports.
    pub fn name(&self) -> &str {
        self.get("name")
    }
}

/// Interns field names (and row layouts) so that every row of a read shares one allocation
/// per name.
#[derive(Debug, Default)]
pub struct FieldNames {
    names: HashSet<Arc<str>>,
    layouts: Layouts,
}

impl FieldNames {
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(existing) = self.names.get(name) {
            return existing.clone();
        }
        let name: Arc<str> = name.into();
        self.names.insert(name.clone());
        name
    }

    /// The fields of one row, names interned and the layout shared with earlier rows.
    pub fn row<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Fields {
        let pairs: Vec<(Arc<str>, V)> = pairs
            .into_iter()
            .map(|(k, v)| (self.intern(k.as_ref()), v))
            .collect();
        self.layouts.row(pairs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_values_read_back_as_the_json_they_came_from() {
        let json = json!({"id": 7, "name": "vm", "tags": [{"name": "/managed/a/b"}, "x"],
                          "hardware": {"memory_mb": 4096.5}, "on": true, "none": null});
        let val = Val::from_json(json.clone(), &mut FieldNames::default());
        assert_eq!(val, json);
        assert_eq!(val.to_json(), json);
        assert_eq!(val.to_string(), json.to_string());
        assert_eq!(val["hardware"]["memory_mb"], json!(4096.5));
        assert!(val["missing"]["deeper"].is_null());
        assert_eq!(std::mem::size_of::<Val>(), 24);
    }

    #[test]
    fn records_of_a_read_share_their_key_names() {
        let mut keys = FieldNames::default();
        let a = Val::from_json(json!({"name": "a"}), &mut keys);
        let b = Val::from_json(json!({"name": "b"}), &mut keys);
        let key = |v: &Val| Arc::clone(v.as_object().unwrap().keys().next().unwrap());
        assert!(Arc::ptr_eq(&key(&a), &key(&b)));
    }

    #[test]
    fn keep_drops_what_no_path_reads_and_keeps_whole_values_where_paths_end() {
        let mut keep = Keep::default();
        keep.add(["id"]);
        keep.add(["hardware", "memory_mb"]);
        keep.add(["tags", "name"]);
        keep.add(["ipaddresses"]);
        let record = json!({
            "href": "http://cf/api/vms/7", "id": "7", "vendor": "vmware",
            "hardware": {"memory_mb": 4096, "cpu_sockets": 2},
            "tags": [{"href": "h", "id": "1", "name": "/managed/env/prod"}, "/managed/x/y"],
            "ipaddresses": ["10.0.0.1", {"odd": true}],
        });
        let kept = keep.compact(record, &mut FieldNames::default());
        assert_eq!(
            kept,
            json!({
                "id": "7",
                "hardware": {"memory_mb": 4096},
                "tags": [{"name": "/managed/env/prod"}, "/managed/x/y"],
                "ipaddresses": ["10.0.0.1", {"odd": true}],
            })
        );
        // A path ending above another keeps everything below it, in either order.
        let mut whole = Keep::default();
        whole.add(["hardware", "memory_mb"]);
        whole.add(["hardware"]);
        let mut again = Keep::default();
        again.add(["hardware"]);
        again.add(["hardware", "memory_mb"]);
        assert_eq!(whole, again);
    }

    #[test]
    fn fields_behave_as_a_map_of_names_to_values() {
        let mut names = FieldNames::default();
        let mut a = names.row([("name", "vm-1"), ("cpus", "2"), ("name", "vm-2")]);
        assert_eq!(
            a.get("name"),
            Some("vm-2"),
            "a repeated name keeps its last value"
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("memory"), None);
        let b = names.row([("cpus", "2"), ("name", "vm-2")]);
        assert_eq!(a, b, "the order of the names does not matter");
        a.insert(names.intern("cpus"), "4");
        a.insert("memory", "8192");
        assert_eq!(a.get("cpus"), Some("4"));
        assert_eq!(a.get("memory"), Some("8192"));
        assert_ne!(a, b);
        let pairs: Vec<(String, String)> = a
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_owned()))
            .collect();
        assert_eq!(
            pairs,
            [("name", "vm-2"), ("cpus", "4"), ("memory", "8192")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // Rows too wide or too long for the inline ends read the same.
        let wide: Vec<(String, String)> = (0..40)
            .map(|i| (format!("f{i}"), "x".repeat(3000)))
            .collect();
        let row = names.row(wide.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert!(wide.iter().all(|(k, v)| row.get(k) == Some(v.as_str())));
        let ci = Ci::new("abc", [(Arc::<str>::from("name"), "x".to_owned())]);
        assert_eq!(
            (ci.get("sys_id"), ci.name(), ci.get("none")),
            ("abc", "x", "")
        );
    }
}
