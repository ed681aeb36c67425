//! One page of a ManageIQ collection response, parsed once straight from the body bytes,
//! and the bookkeeping that turns pages into one read: which offsets to fetch, records
//! de-duplicated by id, and why the result is not complete when it is not.

use std::collections::{BTreeMap, HashSet};

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use super::query::as_count;
use crate::net::{ErrorKind, HttpError};
use crate::reconcile::record::{FieldNames, Keep, SourceRecord, Val};
use crate::servicenow::wire::KeyBuf;

/// What a page says: the totals and its records.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Everything in the collection the user may see (ignores filters).
    pub count: Option<u64>,
    /// Records matching `filter[]` (only when filters were sent).
    pub subquery_count: Option<u64>,
    /// The records, already compact: the page's JSON is dropped once it is parsed.
    pub records: Vec<Val>,
}

impl Page {
    /// The number of records the listing holds: `subquery_count` for a filtered listing,
    /// `count` otherwise. `None` when the server did not say.
    pub fn total(&self, filtered: bool) -> Option<u64> {
        if filtered {
            self.subquery_count
        } else {
            self.count
        }
    }
}

/// Parses a collection response of `collection` fetched from `url`.
#[cfg(test)]
pub fn parse(url: &str, collection: &str, body: &[u8]) -> Result<Page, HttpError> {
    parse_kept(url, collection, body, None)
}

/// [`parse`], each record reduced to what `keep` keeps (all of it with `None`). The body is
/// parsed straight into the compact records: no JSON tree is built for a record, and what
/// `keep` does not keep (links, keys the server adds) is skipped as it is read.
pub fn parse_kept(
    url: &str,
    collection: &str,
    body: &[u8],
    keep: Option<&Keep>,
) -> Result<Page, HttpError> {
    let whole = Keep::default();
    let mut keys = FieldNames::default();
    let seed = EnvelopeSeed(KeptSeed {
        keep: keep.unwrap_or(&whole),
        whole: keep.is_none(),
        keys: &mut keys,
    });
    let mut de = serde_json::Deserializer::from_slice(body);
    let envelope = seed
        .deserialize(&mut de)
        .and_then(|e| de.end().map(|()| e))
        .map_err(|e| HttpError::from_body("GET", url, &String::from_utf8_lossy(body), &e))?;
    let shape = |message: String| HttpError::new("GET", url, ErrorKind::Decode, message);
    if let Some(name) = &envelope.name {
        if name != collection {
            return Err(shape(format!(
                "expected the `{collection}` collection, the server answered with `{name}`"
            )));
        }
    }
    let Some(records) = envelope.resources else {
        return Err(shape(
            "the response has no `resources` (not a ManageIQ collection listing)".into(),
        ));
    };
    Ok(Page {
        count: envelope.count.as_ref().and_then(as_count),
        subquery_count: envelope.subquery_count.as_ref().and_then(as_count),
        records,
    })
}

/// What a collection listing's envelope says; `actions` and `links` are skipped without
/// building values for them.
struct Envelope {
    name: Option<String>,
    count: Option<Value>,
    subquery_count: Option<Value>,
    resources: Option<Vec<Val>>,
}

/// The envelope, its `resources` compacted as they are read (by the record seed it holds).
struct EnvelopeSeed<'k>(KeptSeed<'k>);

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Envelope;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Envelope, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ManageIQ collection listing `{\"name\": ..., \"resources\": [...]}`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let EnvelopeSeed(KeptSeed { keep, whole, keys }) = self;
        let mut envelope = Envelope {
            name: None,
            count: None,
            subquery_count: None,
            resources: None,
        };
        while let Some(key) = map.next_key::<KeyBuf<'de>>()? {
            match key.as_str() {
                "name" => envelope.name = map.next_value()?,
                "count" => envelope.count = map.next_value()?,
                "subquery_count" => envelope.subquery_count = map.next_value()?,
                "resources" => {
                    // What is kept of the list is kept of each record (arrays are
                    // transparent); `null` is no list.
                    let seed = KeptSeed {
                        keep,
                        whole,
                        keys: &mut *keys,
                    };
                    envelope.resources = match map.next_value_seed(seed)? {
                        Val::Null => None,
                        Val::Array(records) => Some(records.into_vec()),
                        _ => {
                            return Err(de::Error::invalid_type(
                                de::Unexpected::Other("a value that is not a list"),
                                &"a list of records",
                            ))
                        }
                    };
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

/// One JSON value straight into its compact form ([`Val`]), keeping what `keep` keeps (all
/// of it when `whole`): the value `Keep::compact` (or `Val::from_json`) makes of the parsed
/// JSON, a repeated key keeping its first place and its last value as `serde_json`'s ordered
/// map does, without building that JSON.
struct KeptSeed<'k> {
    keep: &'k Keep,
    whole: bool,
    keys: &'k mut FieldNames,
}

impl<'de> DeserializeSeed<'de> for KeptSeed<'_> {
    type Value = Val;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Val, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeptSeed<'_> {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Val, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val, E> {
        Ok(Val::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val, E> {
        Ok(Val::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
        Ok(Val::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Val, E> {
        Ok(Number::from_f64(v).map_or(Val::Null, Val::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Val, E> {
        Ok(Val::String(v.into()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Val, E> {
        Ok(Val::String(v.into_boxed_str()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        // Arrays are transparent: what is kept of the array is kept of each element.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(KeptSeed {
            keep: self.keep,
            whole: self.whole,
            keys: &mut *self.keys,
        })? {
            items.push(item);
        }
        Ok(Val::Array(items.into_boxed_slice()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut entries: Vec<(Arc<str>, Val)> = Vec::new();
        while let Some(key) = map.next_key::<KeyBuf<'de>>()? {
            let (keep, whole) = if self.whole {
                (self.keep, true)
            } else {
                match self.keep.under(key.as_str()) {
                    Some(keep) => (keep, keep.keeps_all()),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                }
            };
            let value = map.next_value_seed(KeptSeed {
                keep,
                whole,
                keys: &mut *self.keys,
            })?;
            let name = self.keys.intern(key.as_str());
            match entries.iter_mut().find(|(k, _)| Arc::ptr_eq(k, &name)) {
                Some(entry) => entry.1 = value,
                None => entries.push((name, value)),
            }
        }
        Ok(Val::Object(entries.into_iter().collect()))
    }
}

/// The offsets still to fetch after the first page, and the page stride.
///
/// The stride is the requested limit, unless the first page came back with fewer records
/// than both the limit and the total: then the server caps pages lower
/// (`max_results_per_page` is a setting) and stepping by the limit would skip records.
pub fn remaining_offsets(total: u64, limit: u64, first_page_len: usize) -> (u64, Offsets) {
    let first = first_page_len as u64;
    let stride = if first > 0 && first < limit.min(total) {
        first
    } else {
        limit.max(1)
    };
    // A server that ignored the limit and sent everything needs no more pages.
    let start = if first >= total { total } else { stride };
    (
        stride,
        Offsets {
            next: start,
            stride,
            total,
        },
    )
}

/// Offsets, lazily: a server reporting an absurd total cannot make us allocate for it.
#[derive(Debug, Clone)]
pub struct Offsets {
    next: u64,
    stride: u64,
    total: u64,
}

impl Offsets {
    /// How many are left.
    pub fn remaining(&self) -> u64 {
        self.total.saturating_sub(self.next).div_ceil(self.stride)
    }
}

impl Iterator for Offsets {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.next >= self.total {
            return None;
        }
        let offset = self.next;
        self.next = self.next.saturating_add(self.stride);
        Some(offset)
    }
}

/// Pages as they arrive (in any order) and what went wrong, then the read.
#[derive(Debug)]
pub struct Assembly {
    total: u64,
    stride: u64,
    pages: BTreeMap<u64, Vec<Val>>,
    lost: Vec<(u64, HttpError)>,
    short: Vec<(u64, u64, usize)>,
    abandoned: Option<(u64, String)>,
}

impl Assembly {
    pub fn new(total: u64, stride: u64) -> Self {
        Self {
            total,
            stride,
            pages: BTreeMap::new(),
            lost: Vec::new(),
            short: Vec::new(),
            abandoned: None,
        }
    }

    /// A page arrived. Returns whether it was short (fewer records than its place in the
    /// total calls for).
    pub fn page(&mut self, offset: u64, records: Vec<Val>) -> bool {
        let expected = self.stride.min(self.total.saturating_sub(offset));
        let short = (records.len() as u64) < expected;
        if short {
            self.short.push((offset, expected, records.len()));
        }
        self.pages.insert(offset, records);
        short
    }

    /// A page was lost for good.
    pub fn lost(&mut self, offset: u64, error: HttpError) {
        self.lost.push((offset, error));
    }

    /// The remaining pages were not fetched, for `why`.
    pub fn abandon(&mut self, pages: u64, why: String) {
        if pages > 0 {
            self.abandoned = Some((pages, why));
        }
    }

    /// The records in id order (pages in offset order), each id once (the first seen), and
    /// why the read is incomplete, if it is.
    pub fn finish(self) -> (Vec<Val>, Option<String>) {
        let capacity = self.pages.values().map(Vec::len).sum();
        let mut records = Vec::with_capacity(capacity);
        let mut seen: HashSet<String> = HashSet::with_capacity(capacity);
        let mut duplicates = 0usize;
        for page in self.pages.into_values() {
            for record in page {
                let id = match &record {
                    Val::Object(object) => {
                        SourceRecord::from_object(object).map(|r| r.id.into_owned())
                    }
                    _ => None,
                };
                // Records without a usable id are kept: the core reports them as bad records.
                if let Some(id) = id {
                    if !seen.insert(id) {
                        duplicates += 1;
                        continue;
                    }
                }
                records.push(record);
            }
        }
        if duplicates > 0 {
            // Offset paging over a collection that changed under us repeats records.
            tracing::debug!(duplicates, "dropped records repeated across pages");
        }
        let mut reasons = Vec::new();
        let mut lost = self.lost;
        lost.sort_by_key(|(offset, _)| *offset);
        for (offset, error) in &lost {
            reasons.push(format!("the page at offset {offset} was lost: {error}"));
        }
        if let Some((pages, why)) = &self.abandoned {
            reasons.push(format!("{pages} more pages were not read ({why})"));
        }
        let mut short = self.short;
        short.sort_unstable();
        for (offset, expected, got) in short.iter().take(3) {
            reasons.push(format!(
                "the page at offset {offset} held {got} records where {expected} were expected"
            ));
        }
        if short.len() > 3 {
            reasons.push(format!("{} more pages came back short", short.len() - 3));
        }
        let got = records.len() as u64;
        if got < self.total || !reasons.is_empty() {
            reasons.push(format!(
                "read {got} of the {} records the server reported",
                self.total
            ));
        }
        let incomplete = (!reasons.is_empty()).then(|| reasons.join("; "));
        (records, incomplete)
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures and write files"
)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vals(records: Vec<Value>) -> Vec<Val> {
        let mut keys = FieldNames::default();
        records
            .into_iter()
            .map(|r| Val::from_json(r, &mut keys))
            .collect()
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/manageiq/");

    #[test]
    fn the_recorded_get_vms_response_parses_with_integer_ids() {
        let body = std::fs::read(format!("{FIXTURES}get_vms.json")).unwrap();
        let page = parse("http://localhost:3000/api/vms", "vms", &body).unwrap();
        assert_eq!(page.count, Some(5));
        assert_eq!(page.subquery_count, None);
        assert_eq!(page.total(false), Some(5));
        assert_eq!(page.records.len(), 5);
        let first = &page.records[0];
        assert_eq!(first["id"], json!(161));
        assert_eq!(first["name"], "aab-dev1");
        assert_eq!(first["vendor"], "vmware");
        assert_eq!(first["ems_ref"], "vm-53");
        assert_eq!(first["uid_ems"], "564d5056-49ea-a5aa-a71d-cf9b8138430b");

        let mut assembly = Assembly::new(5, 1000);
        assert!(!assembly.page(0, page.records));
        let (records, incomplete) = assembly.finish();
        assert_eq!(incomplete, None);
        let ids: Vec<String> = records
            .iter()
            .filter_map(|r| r.as_object().and_then(SourceRecord::from_object))
            .map(|r| r.id.into_owned())
            .collect();
        assert_eq!(ids.len(), 5);
        assert_eq!(ids[0], "161");
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            5,
            "distinct: {ids:?}"
        );
    }

    /// The page parser compacts as it reads: the same records as compacting the parsed JSON,
    /// for the recorded listings and for what a server may add (links, keys not asked for,
    /// a repeated key, escapes, nulls, numbers of every kind, scalars where objects were
    /// expected).
    #[test]
    fn records_compacted_as_read_are_those_of_the_parsed_json() {
        let mut keep = Keep::default();
        for path in [
            &["id"][..],
            &["name"],
            &["hardware", "guest_os_full_name"],
            &["tags", "name"],
            &["ipaddresses"],
            &["host", "ems_ref"],
            &["custom"],
        ] {
            keep.add(path.iter().copied());
        }
        let made = br#"{"name":"vms","count":4,"subcount":4,"resources":[
            {"href":"h/1","id":"1","name":"a\u00e9\"b","name":"second","extra":{"x":[1,2]},
             "hardware":{"guest_os_full_name":"RHEL","memory_mb":1024},
             "tags":[{"href":"t","name":"/managed/env/prod"},"plain",null],
             "ipaddresses":["10.0.0.1","fe80::1"],"host":null,"custom":{"a":[{"b":-1.5e3}],"c":18446744073709551615}},
            {"id":2,"name":null,"hardware":"not an object","tags":[],"host":{"ems_ref":"host-1","id":"9"}},
            {"id":-3,"custom":true},
            "not an object"
        ],"actions":[{"name":"query"}],"links":{"self":"x"}}"#;
        let mut bodies = vec![made.to_vec()];
        for fixture in ["get_vms.json", "filter_vms_id_9999_not_found.json"] {
            bodies.push(std::fs::read(format!("{FIXTURES}{fixture}")).unwrap());
        }
        for body in &bodies {
            let json: Value = serde_json::from_slice(body).unwrap();
            let resources = json["resources"].as_array().unwrap().clone();
            let mut keys = FieldNames::default();
            let compacted: Vec<Val> = resources
                .iter()
                .map(|r| keep.compact(r.clone(), &mut keys))
                .collect();
            assert_eq!(
                parse_kept("u", "vms", body, Some(&keep)).unwrap().records,
                compacted
            );
            assert_eq!(parse("u", "vms", body).unwrap().records, vals(resources));
        }
    }

    #[test]
    fn a_filtered_listing_counts_by_subquery_count() {
        let body = std::fs::read(format!("{FIXTURES}filter_vms_id_9999_not_found.json")).unwrap();
        let page = parse("u", "vms", &body).unwrap();
        assert_eq!(page.count, Some(74));
        assert_eq!(page.total(true), Some(0));
        assert!(page.records.is_empty());
    }

    #[test]
    fn bodies_that_are_not_a_listing_are_errors() {
        let tags = std::fs::read(format!("{FIXTURES}get_test1_vm_tags.json")).unwrap();
        let err = parse("u", "vms", &tags).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Decode);
        assert!(err.message.contains("`tags`"), "{}", err.message);
        let err = parse("u", "vms", br#"{"name":"vms","count":3}"#).unwrap_err();
        assert!(err.message.contains("no `resources`"));
        // Cut short: worth a retry.
        let err = parse(
            "u",
            "vms",
            br#"{"name":"vms","count":3,"resources":[{"id":"1"#,
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Interrupted);
        let err = parse("u", "vms", b"<html>proxy error</html>").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Decode);
        // Counts as strings are read too.
        let page = parse("u", "vms", br#"{"count":"2","resources":[]}"#).unwrap();
        assert_eq!(page.count, Some(2));
    }

    #[test]
    fn offsets_follow_the_total_not_the_links() {
        let (stride, offsets) = remaining_offsets(2000, 1000, 1000);
        assert_eq!(stride, 1000);
        assert_eq!(offsets.remaining(), 1);
        assert_eq!(offsets.collect::<Vec<_>>(), [1000]);
        let (_, offsets) = remaining_offsets(2500, 1000, 1000);
        assert_eq!(offsets.collect::<Vec<_>>(), [1000, 2000]);
        // A server capping pages at 500 although 1000 were asked.
        let (stride, offsets) = remaining_offsets(1800, 1000, 500);
        assert_eq!(stride, 500);
        assert_eq!(offsets.collect::<Vec<_>>(), [500, 1000, 1500]);
        // Everything came on the first page; or nothing is there.
        assert_eq!(remaining_offsets(30, 10, 30).1.count(), 0);
        assert_eq!(remaining_offsets(0, 1000, 0).1.count(), 0);
        // An absurd total costs nothing until iterated.
        let (_, offsets) = remaining_offsets(u64::MAX, 1000, 1000);
        assert_eq!(offsets.remaining(), u64::MAX / 1000);
    }

    #[test]
    fn pages_merge_in_order_and_each_id_counts_once() {
        let mut a = Assembly::new(5, 2);
        a.page(4, vals(vec![json!({"id": "5"})]));
        a.page(0, vals(vec![json!({"id": 1}), json!({"id": "2"})]));
        // A repeat across pages (string and integer forms of one id).
        a.page(2, vals(vec![json!({"id": 2}), json!({"id": "3"})]));
        let (records, incomplete) = a.finish();
        let ids: Vec<String> = records.iter().map(|r| r["id"].to_string()).collect();
        assert_eq!(ids, ["1", "\"2\"", "\"3\"", "\"5\""]);
        let reason = incomplete.unwrap();
        assert!(reason.contains("read 4 of the 5 records"), "{reason}");
    }

    #[test]
    fn lost_and_short_pages_are_named() {
        let mut a = Assembly::new(6, 2);
        a.page(0, vals(vec![json!({"id": 1}), json!({"id": 2})]));
        assert!(a.page(4, vals(vec![json!({"id": 5})])));
        a.lost(
            2,
            HttpError::new(
                "GET",
                "http://h/api/vms?offset=2&limit=2",
                ErrorKind::Status,
                "503",
            ),
        );
        a.abandon(0, "never".into());
        let (records, incomplete) = a.finish();
        assert_eq!(records.len(), 3);
        assert_eq!(
            incomplete.as_deref(),
            Some(
                "the page at offset 2 was lost: GET http://h/api/vms?offset=2&limit=2: 503; \
                 the page at offset 4 held 1 records where 2 were expected; \
                 read 3 of the 6 records the server reported"
            )
        );
        // More records than the total (VMs added during the read) is complete.
        let mut a = Assembly::new(1, 2);
        a.page(0, vals(vec![json!({"id": 1}), json!({"id": 2})]));
        assert_eq!(a.finish().1, None);
    }
}
