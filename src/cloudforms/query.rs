//! The collection query a CloudForms read sends: the API base from the configured URL, the
//! fixed parameters (`expand`, `attributes`, `filter[]`, `sort_*`) and the page URLs, plus
//! the translation of mapping filters into ManageIQ `filter[]` expressions.
//!
//! Server-side filters only save transfer: the core applies the mapping's filters again on
//! every record. So a filter is sent only in a form whose server result is a *superset* of
//! what the core will accept, or not at all. Otherwise a VM the core would keep could vanish
//! on the server, and its CI be retired. Differences that matter:
//! - SQL compares with NULL as false: `x != 'v'` drops rows where `x` is NULL, which the core
//!   keeps. `x!=v` is therefore sent with `or x=NULL`. ManageIQ ORs every `or ` expression
//!   onto the AND of the others, so the result is still a superset with several filters.
//! - The core treats an empty string as null and `IS NULL` does not, so `x=null` is applied
//!   locally only (`x!=null` is sent as `x!=NULL`, a superset).
//! - A quoted value with `%` or `*` becomes a pattern: fine for `=` (a superset), wrong for
//!   `!=`, which stays local. Numbers compare numerically on the server: `!=` is sent only
//!   for integers written canonically (`4`, not `4.0` or `04`).
//! - Paths with an array index or more than one association level cannot be expressed.
//! - One difference cannot be bridged: the server compares strings case-sensitively, the core
//!   does not. Write `=` values as CloudForms stores them (`vendor`, `power_state` and the
//!   like are lowercase).

use serde_json::Value;
use url::Url;

use crate::reconcile::mapping::Filter;

/// The server caps `limit` at this (`api.max_results_per_page`), silently.
pub const MAX_PAGE_SIZE: usize = 1000;

/// `https://host[/prefix]/api` from the configured appliance URL: no credentials, query or
/// fragment; `/api` appended unless the URL already ends with it.
pub fn api_base(configured: &str) -> Result<Url, String> {
    let mut url = Url::parse(configured.trim())
        .map_err(|e| format!("CloudForms URL `{}` is not a URL: {e}", redact(configured)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "CloudForms URL `{}` must be an http or https URL with a host",
            redact(configured)
        ));
    }
    // Credentials come from the configuration, never from the URL (reqwest would send them
    // and every message quoting the URL would show them).
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_owned();
    if path.ends_with("/api") {
        url.set_path(&path);
    } else {
        url.set_path(&format!("{path}/api"));
    }
    Ok(url)
}

fn redact(url: &str) -> String {
    crate::net::redact(url)
}

/// `<api>/<name>`: each `/`-separated part of the name one path segment, percent-encoded as
/// needed (`providers/7/folders` for a subcollection).
pub fn endpoint(api: &Url, name: &str) -> Url {
    let mut url = api.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(name.split('/'));
    }
    url
}

/// One paged collection listing: everything but `offset` is fixed.
#[derive(Debug, Clone)]
pub struct CollectionQuery {
    /// The collection URL without a query (the read's origin).
    pub collection_url: Url,
    /// The collection URL with the fixed parameters.
    with_params: Url,
    pub limit: u64,
    pub filtered: bool,
}

impl CollectionQuery {
    pub fn new(
        api: &Url,
        collection: &str,
        attributes: &[String],
        filters: &[String],
        page_size: usize,
    ) -> Self {
        let collection_url = endpoint(api, collection);
        let mut with_params = collection_url.clone();
        {
            let mut q = with_params.query_pairs_mut();
            q.append_pair("expand", "resources");
            if !attributes.is_empty() {
                // Exactly as the mapping names them: `tags` included (it gives every tag as
                // `{"name": "/managed/..."}`, and the core reads only `/managed` names;
                // `expand=tags` as well would be a 400).
                q.append_pair("attributes", &attributes.join(","));
            }
            for filter in filters {
                q.append_pair("filter[]", filter);
            }
            // No default order on the server: offsets are only stable over a fixed order.
            q.append_pair("sort_by", "id");
            q.append_pair("sort_order", "asc");
        }
        Self {
            collection_url,
            with_params,
            limit: page_size.clamp(1, MAX_PAGE_SIZE) as u64,
            filtered: !filters.is_empty(),
        }
    }

    /// The URL of the page at `offset`.
    pub fn page_url(&self, offset: u64) -> Url {
        let mut url = self.with_params.clone();
        url.query_pairs_mut()
            .append_pair("offset", &offset.to_string())
            .append_pair("limit", &self.limit.to_string());
        url
    }
}

/// The mapping's filters as `filter[]` expressions, and those left to the core alone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServerFilters {
    pub expressions: Vec<String>,
    /// `(filter, why it is not sent)`.
    pub local_only: Vec<(String, &'static str)>,
}

/// Translates filters (see the module documentation for the rules and why).
pub fn server_filters(filters: &[Filter]) -> ServerFilters {
    let mut out = ServerFilters::default();
    let mut alternatives = Vec::new();
    for filter in filters {
        match translate(filter) {
            Ok((expression, alternative)) => {
                out.expressions.push(expression);
                if let Some(alt) = alternative {
                    if !alternatives.contains(&alt) {
                        alternatives.push(alt);
                    }
                }
            }
            Err(why) => out.local_only.push((filter.to_string(), why)),
        }
    }
    out.expressions.extend(alternatives);
    out
}

/// `updated_on>2026-11-02T10:00:00Z`: the records updated after a time. ManageIQ takes
/// date-times unquoted and compares them only with `>`, `<` and `=` (`>=` is a 400
/// "Unsupported operator for datetime"; manageiq-api `lib/api/filter.rb`).
pub fn updated_after(attribute: &str, after: chrono::DateTime<chrono::Utc>) -> String {
    format!("{attribute}>{}", after.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// One filter: its AND expression and, for `!=`, the `or ... =NULL` that keeps NULL rows.
fn translate(filter: &Filter) -> Result<(String, Option<String>), &'static str> {
    if !filter.any_of.is_empty() {
        // ManageIQ ORs an `or ` expression onto the AND of all the others, so a list of
        // values cannot be one condition among several.
        return Err("ManageIQ's filters have no IN; the core applies it");
    }
    let attr = filter.path.attribute();
    if attr != filter.path.to_string() {
        return Err("an array index cannot be filtered on the server");
    }
    if attr.matches('.').count() > 1 {
        return Err("the server filters at most one association away");
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '?');
    if attr.is_empty() || !attr.chars().all(plain) {
        return Err("not a plain attribute name");
    }
    let value = filter.value.as_str();
    let null = value.is_empty() || value.eq_ignore_ascii_case("null");
    match (filter.negate, null) {
        (false, true) => Err("SQL's IS NULL would drop the empty values the core counts as null"),
        (true, true) => Ok((format!("{attr}!=NULL"), None)),
        (false, false) => Ok((format!("{attr}={}", literal(value)), None)),
        (true, false) => {
            if value.contains(['%', '*']) {
                return Err("a wildcard would turn `!=` into a pattern match");
            }
            if is_number(value) && !is_canonical_integer(value) {
                return Err(
                    "the server's numeric inequality is stricter than the core's text match",
                );
            }
            Ok((
                format!("{attr}!={}", literal(value)),
                Some(format!("or {attr}=NULL")),
            ))
        }
    }
}

/// Numbers and booleans bare (compared by type), anything else single-quoted: the server
/// strips the outer quotes only, so quotes inside need no escaping.
fn literal(value: &str) -> String {
    if is_number(value) || value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
    {
        value.to_owned()
    } else {
        format!("'{value}'")
    }
}

/// `-12`, `4`, `4.5`: a plain decimal (not `1e5`, `inf` or `NaN`, which `f64` would take).
fn is_number(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// An integer whose text is the one the core renders for it (`4`, `-3`; not `04`, `4.0`).
fn is_canonical_integer(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && value != "-0"
}

/// A JSON number or numeric string as a count (`count`, `subquery_count`).
pub fn as_count(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::mapping::Path;

    fn filter(path: &str, negate: bool, value: &str) -> Filter {
        Filter {
            path: Path::parse(path).unwrap(),
            negate,
            value: value.to_owned(),
            any_of: Vec::new(),
        }
    }

    #[test]
    fn api_base_takes_the_appliance_url_in_any_usual_form() {
        for (given, api) in [
            ("https://cf.example.com", "https://cf.example.com/api"),
            ("https://cf.example.com/", "https://cf.example.com/api"),
            ("https://cf.example.com/api", "https://cf.example.com/api"),
            (
                "https://cf.example.com/api/?x=1#f",
                "https://cf.example.com/api",
            ),
            (
                "https://cf.example.com/cfme",
                "https://cf.example.com/cfme/api",
            ),
            (
                "https://admin:pw@cf.example.com:8443",
                "https://cf.example.com:8443/api",
            ),
        ] {
            assert_eq!(api_base(given).unwrap().as_str(), api, "{given}");
        }
        let err = api_base("ftp://admin:pw@cf.example.com").unwrap_err();
        assert!(
            err.contains("http or https") && !err.contains("pw"),
            "{err}"
        );
        assert!(api_base("cf.example.com").is_err());
    }

    #[test]
    fn page_urls_carry_the_whole_query() {
        let api = api_base("http://127.0.0.1:9").unwrap();
        let q = CollectionQuery::new(
            &api,
            "vms",
            &[
                "name".into(),
                "ext_management_system.guid".into(),
                "tags".into(),
            ],
            &["vendor='vmware'".into()],
            5000,
        );
        assert_eq!(
            q.limit, 1000,
            "the server caps pages at 1000; asking more would skip"
        );
        assert_eq!(q.collection_url.as_str(), "http://127.0.0.1:9/api/vms");
        let url = q.page_url(2000);
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let expected = [
            ("expand", "resources"),
            ("attributes", "name,ext_management_system.guid,tags"),
            ("filter[]", "vendor='vmware'"),
            ("sort_by", "id"),
            ("sort_order", "asc"),
            ("offset", "2000"),
            ("limit", "1000"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, expected);
        // Encoded, so quotes, `=` and `&` in values cannot break the query.
        assert!(
            url.as_str().contains("filter%5B%5D=vendor%3D%27vmware%27"),
            "{url}"
        );
        assert_eq!(CollectionQuery::new(&api, "vms", &[], &[], 0).limit, 1);
    }

    #[test]
    fn filters_translate_to_supersets_of_what_the_core_accepts() {
        let f = server_filters(&[
            filter("vendor", false, "vmware"),
            filter("cpu_total_cores", false, "4"),
            filter("cloud", false, "false"),
            filter("name", false, "O'Brien & co"),
            filter("ext_management_system.name", true, "vc-lab"),
            filter("retires_on", true, "null"),
            filter("power_state", true, "never"),
            filter("hardware.memory_mb", true, "8192"),
        ]);
        assert_eq!(
            f.expressions,
            [
                "vendor='vmware'",
                "cpu_total_cores=4",
                "cloud=false",
                "name='O'Brien & co'",
                "ext_management_system.name!='vc-lab'",
                "retires_on!=NULL",
                "power_state!='never'",
                "hardware.memory_mb!=8192",
                "or ext_management_system.name=NULL",
                "or power_state=NULL",
                "or hardware.memory_mb=NULL",
            ]
        );
        assert!(f.local_only.is_empty());
    }

    #[test]
    fn filters_the_server_cannot_match_exactly_stay_local() {
        let f = server_filters(&[
            filter("retires_on", false, "null"),
            filter("description", false, ""),
            filter("ipaddresses[0]", false, "10.0.0.1"),
            filter("host.ems.name", false, "x"),
            filter("name", true, "web-*"),
            filter("cpu_total_cores", true, "4.0"),
            filter("cpu_total_cores", true, "04"),
        ]);
        assert!(f.expressions.is_empty(), "{:?}", f.expressions);
        assert_eq!(f.local_only.len(), 7);
        assert_eq!(f.local_only[0].0, "retires_on=null");
        // `=` with a wildcard is a superset (the pattern matches the literal too): sent.
        let f = server_filters(&[filter("name", false, "web-*")]);
        assert_eq!(f.expressions, ["name='web-*'"]);
    }

    #[test]
    fn the_window_is_an_unquoted_utc_time_after_greater_than() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-02T10:00:00+01:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            updated_after("updated_on", at),
            "updated_on>2026-11-02T09:00:00Z"
        );
    }

    #[test]
    fn numbers_are_recognised_strictly() {
        for n in ["0", "4", "-3", "4.5", "10000000000123"] {
            assert!(is_number(n), "{n}");
        }
        for s in [
            "", "-", "1e5", "inf", "NaN", "4.", ".5", "1.2.3", "vm-53", "+4",
        ] {
            assert!(!is_number(s), "{s}");
        }
        assert!(is_canonical_integer("0") && is_canonical_integer("-3"));
        assert!(!is_canonical_integer("04") && !is_canonical_integer("-0"));
        assert_eq!(literal("True"), "True");
        assert_eq!(literal("nil"), "'nil'");
    }
}
