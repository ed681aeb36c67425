//! Table API JSON as `Ci` values, decoded in one pass over the body: `{"result": [...]}` for
//! lists and `{"result": {...}}` for one record.
//!
//! Every value becomes a string, as the rest of the crate expects: strings stay as they are,
//! `null` becomes `""`, a reference (`{"link","value"}`) or a display pair
//! (`{"display_value","value"}`) gives its `value`, and anything else (numbers, booleans,
//! arrays, other objects) its JSON text. Field names are borrowed from the body while they
//! are looked up and only the shared `Arc<str>` is kept, so a 100,000-row read allocates no
//! key strings.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::reconcile::record::{Ci, FieldNames, Layouts};

/// Decides which keys of a row are kept, and under which shared name.
pub(super) trait Namer {
    fn name(&mut self, key: &str) -> Option<Arc<str>>;
}

/// Keeps only the fields a read asked for (plus `sys_id`), already interned for that read.
/// Read-only, so concurrent page tasks share one set.
pub(super) struct Requested(pub HashSet<Arc<str>>);

impl Requested {
    /// Interns `fields` and `sys_id` in `names`.
    pub(super) fn new(names: &mut FieldNames, fields: &[String]) -> Self {
        let mut set: HashSet<Arc<str>> = fields.iter().map(|f| names.intern(f.trim())).collect();
        set.insert(names.intern("sys_id"));
        set.retain(|f| !f.is_empty());
        Self(set)
    }

    /// The `sysparm_fields` value: the requested names, sorted for a stable URL.
    pub(super) fn sysparm_fields(&self) -> String {
        let mut names: Vec<&str> = self.0.iter().map(|n| &**n).collect();
        names.sort_unstable();
        names.join(",")
    }
}

impl Namer for &Requested {
    fn name(&mut self, key: &str) -> Option<Arc<str>> {
        self.0.get(key).cloned()
    }
}

impl<N: Namer + ?Sized> Namer for &mut N {
    fn name(&mut self, key: &str) -> Option<Arc<str>> {
        (**self).name(key)
    }
}

/// Keeps every field (a write's response: the whole record).
impl Namer for FieldNames {
    fn name(&mut self, key: &str) -> Option<Arc<str>> {
        Some(self.intern(key))
    }
}

/// The rows of a list response.
pub(super) fn parse_list<N: Namer>(body: &[u8], namer: N) -> Result<Vec<Ci>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let rows = Envelope {
        namer,
        one: false,
        rows: Vec::new(),
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(rows)
}

/// The record of a single-record response.
pub(super) fn parse_one<N: Namer>(body: &[u8], namer: N) -> Result<Ci, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut rows = Envelope {
        namer,
        one: true,
        rows: Vec::new(),
    }
    .deserialize(&mut de)?;
    de.end()?;
    rows.pop()
        .ok_or_else(|| de::Error::custom("the response has no `result` record"))
}

/// A Table API value as a string (see the module documentation).
pub(super) fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(o) => match o.get("value") {
            Some(inner) => value_text(inner),
            None => value.to_string(),
        },
        other => other.to_string(),
    }
}

/// `{"result": ...}`: other keys are skipped; `result` must be present.
struct Envelope<N> {
    namer: N,
    /// A single record (`{...}`) rather than a list.
    one: bool,
    rows: Vec<Ci>,
}

impl<'de, N: Namer> DeserializeSeed<'de> for Envelope<N> {
    type Value = Vec<Ci>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<Ci>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, N: Namer> Visitor<'de> for Envelope<N> {
    type Value = Vec<Ci>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Table API response `{\"result\": ...}`")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Vec<Ci>, A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<KeyBuf<'de>>()? {
            if key.as_str() != "result" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            seen = true;
            if self.one {
                let row = map.next_value_seed(RowSeed {
                    namer: &mut self.namer,
                    layouts: &mut Layouts::default(),
                })?;
                self.rows.push(row);
            } else {
                map.next_value_seed(RowsSeed {
                    namer: &mut self.namer,
                    rows: &mut self.rows,
                })?;
            }
        }
        if !seen {
            return Err(de::Error::missing_field("result"));
        }
        Ok(self.rows)
    }
}

/// A map key, borrowed from the body when it has no escapes (also the ManageIQ page
/// parser's, `cloudforms::page`).
pub(crate) enum KeyBuf<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl KeyBuf<'_> {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            KeyBuf::Borrowed(s) => s,
            KeyBuf::Owned(s) => s,
        }
    }
}

impl<'de> de::Deserialize<'de> for KeyBuf<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyBuf<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<KeyBuf<'de>, E> {
                Ok(KeyBuf::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyBuf<'de>, E> {
                Ok(KeyBuf::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<KeyBuf<'de>, E> {
                Ok(KeyBuf::Owned(v))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// `[row, ...]`, appended to `rows`.
struct RowsSeed<'a, N> {
    namer: &'a mut N,
    rows: &'a mut Vec<Ci>,
}

impl<'de, N: Namer> DeserializeSeed<'de> for RowsSeed<'_, N> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, N: Namer> Visitor<'de> for RowsSeed<'_, N> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.rows.reserve(n);
        }
        // The rows of a page name the same fields: they share one layout.
        let mut layouts = Layouts::default();
        while let Some(row) = seq.next_element_seed(RowSeed {
            namer: &mut *self.namer,
            layouts: &mut layouts,
        })? {
            self.rows.push(row);
        }
        Ok(())
    }
}

/// One record: `{"field": value, ...}`, which must carry a non-empty `sys_id`.
struct RowSeed<'a, N> {
    namer: &'a mut N,
    layouts: &'a mut Layouts,
}

impl<'de, N: Namer> DeserializeSeed<'de> for RowSeed<'_, N> {
    type Value = Ci;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Ci, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, N: Namer> Visitor<'de> for RowSeed<'_, N> {
    type Value = Ci;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ci, A::Error> {
        let mut sys_id = None;
        let mut fields: Vec<(Arc<str>, String)> = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(key) = map.next_key::<KeyBuf<'de>>()? {
            let key = key.as_str();
            if key == "sys_id" {
                sys_id = Some(map.next_value_seed(Text)?);
                continue;
            }
            match self.namer.name(key) {
                Some(name) => {
                    fields.push((name, map.next_value_seed(Text)?));
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match sys_id {
            Some(sys_id) if !sys_id.trim().is_empty() => Ok(Ci {
                sys_id,
                fields: self.layouts.row(fields),
            }),
            _ => Err(de::Error::custom("a record has no `sys_id`")),
        }
    }
}

/// Any JSON value as its Table API text.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(Value::from(v).to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items).to_string())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        // Rare (a reference without `sysparm_exclude_reference_link`, a display pair), so the
        // object is simply collected and then read.
        let mut object = serde_json::Map::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            object.insert(k, v);
        }
        Ok(value_text(&Value::Object(object)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested(fields: &[&str]) -> (FieldNames, Requested) {
        let mut names = FieldNames::default();
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        let requested = Requested::new(&mut names, &fields);
        (names, requested)
    }

    #[test]
    fn every_value_becomes_its_text() {
        let (_names, req) = requested(&["a", "b", "c", "d", "e", "f", "g", "h", "i"]);
        let body = br#"{"result":[{"sys_id":"1","a":"x","b":3,"c":true,"d":null,
            "e":{"link":"https://sn/api/now/table/sys_user/42","value":"42"},
            "f":{"display_value":"On","value":"on"},"g":[1,"two"],"h":{"k":1},"i":2.5,
            "unasked":"dropped"}]}"#;
        let rows = parse_list(body, &req).expect("parsed");
        assert_eq!(rows.len(), 1);
        let ci = &rows[0];
        assert_eq!(ci.sys_id, "1");
        let got: Vec<&str> = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .map(|f| ci.get(f))
            .collect();
        assert_eq!(
            got,
            [
                "x",
                "3",
                "true",
                "",
                "42",
                "on",
                r#"[1,"two"]"#,
                r#"{"k":1}"#,
                "2.5"
            ]
        );
        assert!(!ci.fields.contains_key("unasked"));
        assert!(!ci.fields.contains_key("sys_id"));
    }

    #[test]
    fn rows_share_their_field_names() {
        let (_names, req) = requested(&["name"]);
        let rows = parse_list(
            br#"{"result":[{"sys_id":"1","name":"a"},{"sys_id":"2","name":"b"}]}"#,
            &req,
        )
        .expect("parsed");
        let key = |ci: &Ci| ci.fields.keys().next().cloned().expect("a key");
        assert!(Arc::ptr_eq(&key(&rows[0]), &key(&rows[1])));
        assert_eq!(req.sysparm_fields(), "name,sys_id");
    }

    #[test]
    fn escaped_keys_and_values_are_read() {
        let (_names, req) = requested(&["na\"me"]);
        let rows = parse_list(
            br#"{"result":[{"sys_id":"1","na\"me":"caf\u00e9 ^ \"q\""}]}"#,
            &req,
        )
        .expect("parsed");
        assert_eq!(rows[0].get("na\"me"), "café ^ \"q\"");
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        let (_names, req) = requested(&["name"]);
        for body in [
            &br#"{"result":[{"name":"no id"}]}"#[..],
            br#"{"result":[{"sys_id":"","name":"empty id"}]}"#,
            br#"{"result":{"sys_id":"1"}}"#,
            br#"{"other":[]}"#,
            br#"[]"#,
            br#"{"result":[{"sys_id":"1"},"#,
            br#"{"result":[]} trailing"#,
            b"<html>proxy</html>",
        ] {
            assert!(
                parse_list(body, &req).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let truncated = br#"{"result":[{"sys_id":"1"},Transaction cancelled"#;
        assert!(!parse_list(truncated, &req).is_err_and(|e| e.is_eof()));
        assert!(parse_list(br#"{"result":[{"sys_id":"1""#, &req).is_err_and(|e| e.is_eof()));
    }

    #[test]
    fn single_records_keep_every_field() {
        let mut names = FieldNames::default();
        let ci = parse_one(
            br#"{"result":{"sys_id":"abc","name":"vm1","sys_mod_count":"0"}}"#,
            &mut names,
        )
        .expect("parsed");
        assert_eq!(ci.sys_id, "abc");
        assert_eq!(ci.get("name"), "vm1");
        assert_eq!(ci.get("sys_mod_count"), "0");
        assert!(parse_one(br#"{"result":[]}"#, &mut names).is_err());
        assert!(parse_one(br#"{"error":{"message":"x"}}"#, &mut names).is_err());
    }
}
