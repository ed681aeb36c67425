//! The Table API over the schema's tables: list (encoded query, field selection, offset paging
//! with `X-Total-Count` and `Link`), read, create (201 + `Location`), update (PATCH and PUT are
//! both partial updates, as on an instance) and delete (204). A table is read with the rows of
//! the tables extending it, and a record of a subclass is read, updated and deleted through
//! its parent tables too. A table the instance does not have answers 400 "Invalid table".

use std::cmp::Ordering;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::api::{json_object_or_empty, ApiRequest, ApiResponse};
use super::change;
use super::query::{self, EncodedQuery};
use super::render::{DisplayMode, FieldSpec, RenderOptions, RowJson};
use super::schema::TableId;
use super::store::{string_fields, Row, Stamp, Store, WriteError};
use super::Inner;

/// `sysparm_limit` when the client sends none.
pub(crate) const DEFAULT_LIMIT: usize = 10_000;

/// The 400 an instance answers for a table it does not have, recorded from instances:
/// `{"error":{"message":"Invalid table x_casemgmt_case","detail":null},"status":"failure"}`
/// (a curl transcript in a public repository; the status also in ServiceNowDocs
/// `api-reference/web-services/c_APIAnalyticsCollectClean.md`, "Valid resource but an
/// invalid table": 400).
pub(crate) fn invalid_table(table: &str) -> ApiResponse {
    ApiResponse::error(
        StatusCode::BAD_REQUEST,
        &format!("Invalid table {table}"),
        Value::Null,
    )
}

/// Serves one Table API call on `table` (and `sys_id` for a single record).
pub(crate) fn handle(
    inner: &Inner,
    req: &ApiRequest<'_>,
    table_name: &str,
    sys_id: Option<&str>,
) -> ApiResponse {
    let Some(table) = inner.read_store().table(table_name) else {
        return invalid_table(table_name);
    };
    match (&req.method, sys_id) {
        (&Method::GET, None) => {
            let expanded = super::tinyurl::expand(inner, req);
            list(inner, expanded.as_ref().unwrap_or(req), table)
        }
        (&Method::GET, Some(id)) => get(inner, req, table, id),
        (&Method::POST, None) => create(inner, req, table),
        (&Method::PATCH | &Method::PUT, Some(id)) => update(inner, req, table, id),
        (&Method::DELETE, Some(id)) => delete(inner, table, id),
        _ => ApiResponse::method_not_allowed(),
    }
}

/// The display options of a request; date-times in the acting user's time zone.
pub(crate) fn render_options<'a>(
    inner: &Inner,
    store: &Store,
    req: &'a ApiRequest<'_>,
) -> RenderOptions<'a> {
    let display = DisplayMode::parse(req.param("sysparm_display_value"));
    RenderOptions {
        display,
        exclude_links: req.flag("sysparm_exclude_reference_link"),
        base_url: req.base_url,
        tz: if display == DisplayMode::Value {
            chrono_tz::UTC
        } else {
            inner.user_time_zone(store, req.user)
        },
    }
}

pub(crate) fn number_param(req: &ApiRequest<'_>, name: &str, default: usize) -> usize {
    req.param(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `sysparm_query` ANDed with the plain `field=value` parameters (servicenow.itsm filters
/// that way).
pub(crate) fn request_query(req: &ApiRequest<'_>) -> EncodedQuery {
    let mut parsed = query::parse(req.param("sysparm_query").unwrap_or(""));
    parsed.and_equal(
        req.query
            .iter()
            .filter(|(k, _)| !k.starts_with("sysparm_"))
            .cloned(),
    );
    parsed
}

/// The request's query bound to `table`, per the instance's invalid-query setting.
pub(crate) fn compiled_query(
    inner: &Inner,
    store: &Store,
    req: &ApiRequest<'_>,
    table: TableId,
) -> EncodedQuery<FieldSpec> {
    request_query(req).compile(
        |name| FieldSpec::resolve(store, table, name),
        inner.invalid_query_returns_no_rows(),
    )
}

fn list(inner: &Inner, req: &ApiRequest<'_>, table: TableId) -> ApiResponse {
    let limit = number_param(req, "sysparm_limit", DEFAULT_LIMIT);
    let offset = number_param(req, "sysparm_offset", 0);
    let store = inner.read_store();
    let opts = render_options(inner, &store, req);
    let query = compiled_query(inner, &store, req, table);
    let fields = FieldSpec::list(&store, table, req.param("sysparm_fields"));
    let (total, page) = select(&store, table, &query, offset, limit);
    let rows: Vec<RowJson<'_>> = page
        .into_iter()
        .map(|(class, row)| RowJson {
            store: &store,
            class,
            row,
            fields: &fields,
            opts: &opts,
        })
        .collect();
    let mut response = ApiResponse::result(&rows);
    drop(rows);
    drop(store);
    if !req.flag("sysparm_no_count") {
        response = response.with_header("X-Total-Count", total.to_string());
    }
    if !req.flag("sysparm_suppress_pagination_header") {
        if let Some(links) = link_header(req, offset, limit, total) {
            response = response.with_header("Link", links);
        }
    }
    response
}

/// The matching rows' count and the page `[offset, offset + limit)` of them, in the
/// requested order, each with its class.
///
/// A filtered query's full result is kept until the next write (see [`Store::selection`]),
/// so paging through it by offset costs a page, not a scan, per request; its candidates come
/// from column indexes when every `^NQ` group has a clause of `=` / `IN` conditions on the
/// row's own columns ([`candidates`]), and every candidate is still tested against the whole
/// query, so the rows are exactly those a scan finds.
pub(crate) fn select<'s>(
    store: &'s Store,
    table: TableId,
    query: &EncodedQuery<FieldSpec>,
    offset: usize,
    limit: usize,
) -> (usize, Vec<(TableId, &'s Row)>) {
    if query.is_unfiltered() {
        if let Some(descending) = sys_id_order(query) {
            // Rows are kept in sys_id order: no sort, and no scan either.
            return (
                store.count(table),
                store
                    .rows(table, descending)
                    .skip(offset)
                    .take(limit)
                    .collect(),
            );
        }
    }
    let key = format!("{table}|{query:?}");
    let selected = store.selection(&key, || {
        let rows = matching(store, table, query);
        Arc::new(
            rows.into_iter()
                .map(|(class, id, _)| (class, Box::from(id.as_str())))
                .collect(),
        )
    });
    let page = selected
        .iter()
        .skip(offset)
        .take(limit)
        .filter_map(|(class, id)| Some((*class, store.row_of(*class, id)?.1)))
        .collect();
    (selected.len(), page)
}

/// Every row of `table` (and descendants) that `query` matches, in its order.
fn matching<'s>(
    store: &'s Store,
    table: TableId,
    query: &EncodedQuery<FieldSpec>,
) -> Vec<(TableId, &'s String, &'s Row)> {
    let matches = |&(class, _, row): &(TableId, &'s String, &'s Row)| {
        query.matches(|f| f.value(store, class, row))
    };
    let descending = sys_id_order(query);
    let mut rows: Vec<(TableId, &String, &Row)> = match candidates(store, table, query) {
        Some(mut found) => {
            found.retain(matches);
            found.sort_by(|a, b| a.1.cmp(b.1));
            if descending == Some(true) {
                found.reverse();
            }
            found
        }
        None => store
            .rows_with_ids(table, descending.unwrap_or(false))
            .filter(matches)
            .collect(),
    };
    if descending.is_none() {
        // Stable: rows equal in every ORDERBY field stay in sys_id order, so pages are
        // deterministic.
        rows.sort_by(|a, b| compare_rows(store, query, (a.0, a.2), (b.0, b.2)));
    }
    rows
}

/// Rows including every row `query` matches, found through column indexes, each once; `None`
/// when some `^NQ` group has no clause an index answers (or it would find more than a
/// quarter of the table: a scan is as quick), and the table must be scanned.
fn candidates<'s>(
    store: &'s Store,
    table: TableId,
    query: &EncodedQuery<FieldSpec>,
) -> Option<Vec<(TableId, &'s String, &'s Row)>> {
    let cap = store.count(table) / 4;
    let mut found: Vec<(TableId, &String, &Row)> = Vec::new();
    for group in &query.groups {
        // A group matches only rows one of its clauses' (ORed) conditions matches: the
        // clause finding the fewest rows.
        let mut best: Option<Vec<(TableId, &String, &Row)>> = None;
        for clause in group {
            let limit = best.as_ref().map_or(cap, Vec::len);
            let mut rows = Vec::new();
            let mut answered = true;
            for condition in clause {
                let (Some(col), Some(keys)) =
                    (condition.field.plain_column(), condition.index_keys())
                else {
                    answered = false;
                    break;
                };
                match store.rows_with_values(table, col, &keys, limit.saturating_sub(rows.len())) {
                    Some(more) => rows.extend(more),
                    None => {
                        answered = false;
                        break;
                    }
                }
            }
            if answered {
                best = Some(rows);
            }
        }
        found.extend(best?);
    }
    // A row found by several groups or conditions counts once.
    found.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    found.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    Some(found)
}

/// `Some(descending)` when the order is sys_id's (or none, which the store gives as sys_id's).
fn sys_id_order(query: &EncodedQuery<FieldSpec>) -> Option<bool> {
    match query.order.first() {
        None => Some(false),
        Some(first) if first.field.is_sys_id() => Some(first.desc),
        Some(_) => None,
    }
}

fn compare_rows(
    store: &Store,
    query: &EncodedQuery<FieldSpec>,
    (ca, a): (TableId, &Row),
    (cb, b): (TableId, &Row),
) -> Ordering {
    query
        .order
        .iter()
        .map(|o| {
            let ord = query::order_cmp(
                o.field.value(store, ca, a),
                o.field.value(store, cb, b),
                o.textual,
            );
            if o.desc {
                ord.reverse()
            } else {
                ord
            }
        })
        .find(|ord| ord.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// `Link: <url>;rel="first",<url>;rel="prev",<url>;rel="next",<url>;rel="last"` with absolute
/// URLs; prev and next only when there is such a page.
fn link_header(req: &ApiRequest<'_>, offset: usize, limit: usize, total: usize) -> Option<String> {
    if limit == 0 {
        return None;
    }
    let url = |page_offset: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &req.query {
            if k != "sysparm_limit" && k != "sysparm_offset" {
                query.append_pair(k, v);
            }
        }
        query.append_pair("sysparm_limit", &limit.to_string());
        query.append_pair("sysparm_offset", &page_offset.to_string());
        format!("{}{}?{}", req.base_url, req.path, query.finish())
    };
    let last = total.saturating_sub(1) / limit * limit;
    let mut links = vec![(url(0), "first")];
    if offset > 0 {
        links.push((url(offset.saturating_sub(limit)), "prev"));
    }
    if offset.saturating_add(limit) < total {
        links.push((url(offset + limit), "next"));
    }
    links.push((url(last), "last"));
    let rendered: Vec<String> = links
        .into_iter()
        .map(|(url, rel)| format!("<{url}>;rel=\"{rel}\""))
        .collect();
    Some(rendered.join(","))
}

/// `{"result": row}` with `status`, the row read through `table`, or `None` when there is no
/// such row.
fn respond_one(
    inner: &Inner,
    store: &Store,
    req: &ApiRequest<'_>,
    table: TableId,
    sys_id: &str,
    status: StatusCode,
) -> Option<ApiResponse> {
    let (class, row) = store.find(table, sys_id)?;
    let fields = FieldSpec::list(store, table, req.param("sysparm_fields"));
    let opts = render_options(inner, store, req);
    let row = RowJson {
        store,
        class,
        row,
        fields: &fields,
        opts: &opts,
    };
    Some(ApiResponse::result_with(status, &row))
}

fn get(inner: &Inner, req: &ApiRequest<'_>, table: TableId, sys_id: &str) -> ApiResponse {
    respond_one(
        inner,
        &inner.read_store(),
        req,
        table,
        sys_id,
        StatusCode::OK,
    )
    .unwrap_or_else(ApiResponse::not_found)
}

fn create(inner: &Inner, req: &ApiRequest<'_>, table: TableId) -> ApiResponse {
    // An empty body creates a record of defaults, as on an instance.
    let object = match json_object_or_empty(req.body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let stamp = Stamp::now(req.user);
    let mut store = inner.write_store();
    let table_name = store.def(table).name.clone();
    let fields = string_fields(&object);
    if let Err(refused) = change::check_insert(&store, table, &fields) {
        return refused;
    }
    match store.insert(table, fields, &stamp) {
        Ok(sys_id) => {
            let location = format!("{}/api/now/table/{table_name}/{sys_id}", req.base_url);
            respond_one(inner, &store, req, table, &sys_id, StatusCode::CREATED)
                .unwrap_or_else(ApiResponse::not_found)
                .with_header("Location", location)
        }
        Err(WriteError::DuplicateSysId(sys_id)) => ApiResponse::error(
            StatusCode::FORBIDDEN,
            "Operation Failed",
            format!("Error during insert of {table_name} ({sys_id})"),
        ),
    }
}

fn update(inner: &Inner, req: &ApiRequest<'_>, table: TableId, sys_id: &str) -> ApiResponse {
    let object = match json_object_or_empty(req.body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let stamp = Stamp::now(req.user);
    let mut store = inner.write_store();
    let mut fields = string_fields(&object);
    if let Err(refused) = change::check_update(&store, table, sys_id, &mut fields) {
        return refused;
    }
    if store.update(table, sys_id, fields, &stamp).is_none() {
        return ApiResponse::not_found();
    }
    respond_one(inner, &store, req, table, sys_id, StatusCode::OK)
        .unwrap_or_else(ApiResponse::not_found)
}

fn delete(inner: &Inner, table: TableId, sys_id: &str) -> ApiResponse {
    if inner.write_store().delete(table, sys_id) {
        ApiResponse::no_content()
    } else {
        ApiResponse::not_found()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &[(&str, &str)]) -> ApiRequest<'static> {
        ApiRequest {
            method: Method::GET,
            path: "/api/now/table/t",
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: b"",
            content_type: None,
            user: "admin",
            base_url: "http://127.0.0.1:1",
        }
    }

    /// The (rel, offset) pairs of a Link header.
    fn rels(header: &str) -> Vec<(String, usize)> {
        header
            .split(',')
            .map(|part| {
                let (url, rel) = part.split_once(">;rel=").expect("a link");
                let offset = url
                    .rsplit_once("sysparm_offset=")
                    .expect("an offset")
                    .1
                    .parse()
                    .expect("a number");
                (rel.trim_matches('"').to_owned(), offset)
            })
            .collect()
    }

    #[test]
    fn links_name_first_prev_next_last() {
        let req = request(&[
            ("sysparm_query", "a=b^c=d"),
            ("sysparm_offset", "20"),
            ("sysparm_limit", "10"),
        ]);
        let header = link_header(&req, 20, 10, 95).expect("links");
        assert_eq!(
            rels(&header),
            vec![
                ("first".into(), 0),
                ("prev".into(), 10),
                ("next".into(), 30),
                ("last".into(), 90)
            ]
        );
        assert!(header.starts_with(
            "<http://127.0.0.1:1/api/now/table/t?sysparm_query=a%3Db%5Ec%3Dd&sysparm_limit=10&sysparm_offset=0>;rel=\"first\""
        ));
    }

    #[test]
    fn last_page_offset_is_floored_to_the_limit() {
        let req = request(&[]);
        let last = |total| {
            rels(&link_header(&req, 0, 10, total).expect("links"))
                .last()
                .cloned()
        };
        assert_eq!(last(100), Some(("last".into(), 90)));
        assert_eq!(last(101), Some(("last".into(), 100)));
        assert_eq!(last(1), Some(("last".into(), 0)));
        assert_eq!(last(0), Some(("last".into(), 0)));
        // First page of one: neither prev nor next.
        assert_eq!(
            rels(&link_header(&req, 0, 10, 10).expect("links")),
            vec![("first".into(), 0), ("last".into(), 0)]
        );
        assert_eq!(link_header(&req, 0, 0, 10), None);
    }

    /// The rows a query matches, found the plain way: every row tested, in sys_id order,
    /// then sorted as asked.
    fn scanned(store: &Store, table: TableId, query: &EncodedQuery<FieldSpec>) -> Vec<String> {
        let sys_id = |class, row| store.value(class, row, "sys_id").to_owned();
        let mut rows: Vec<(TableId, &Row)> = store
            .rows(table, false)
            .filter(|&(class, row)| query.matches(|f| f.value(store, class, row)))
            .collect();
        match sys_id_order(query) {
            Some(true) => rows.reverse(),
            Some(false) => {}
            None => rows.sort_by(|a, b| compare_rows(store, query, *a, *b)),
        }
        rows.into_iter().map(|(c, r)| sys_id(c, r)).collect()
    }

    fn selected(store: &Store, table: TableId, query: &EncodedQuery<FieldSpec>) -> Vec<String> {
        let (total, page) = select(store, table, query, 0, usize::MAX);
        assert_eq!(total, page.len());
        page.into_iter()
            .map(|(c, r)| store.value(c, r, "sys_id").to_owned())
            .collect()
    }

    #[test]
    fn indexed_selects_find_what_a_scan_finds_across_writes() {
        let stamp = Stamp {
            user: "admin".into(),
            now: "2024-01-01 00:00:00".into(),
        };
        let mut store = Store::new();
        let ci = store.table("cmdb_ci").expect("cmdb_ci");
        let classes = ["cmdb_ci_vmware_instance", "cmdb_ci_esx_server"];
        let mut ids = Vec::new();
        for i in 0..100 {
            let class = store.table(classes[i % 2]).expect("class");
            let name = ["a", "B", "b", "c", "", "d", "e", "f", "g", "h"][i % 10];
            let fields = vec![
                ("name".to_owned(), name.to_owned()),
                ("cpus".to_owned(), (i % 3).to_string()),
            ];
            ids.push(store.insert(class, fields, &stamp).expect("inserted"));
        }
        // Indexes answer the first five (each finds at most a quarter of the table).
        let queries = [
            "nameINa,c".to_owned(),
            "name=h^ORnameINg^ORsys_id=x".to_owned(),
            "nameINa,c^NQnameINd,e^ORsys_id=x^cpus=1".to_owned(),
            "name=^cpus=2".to_owned(),
            format!(
                "sys_idIN{},{}^ORDERBYDESCsys_id",
                ids[3],
                ids[8].to_uppercase()
            ),
            "nameINa,b,c^ORDERBYname^ORDERBYDESCcpus".to_owned(),
            "sys_class_name=cmdb_ci_esx_server^nameLIKEb".to_owned(),
            "nameINa,1^NQcpus=1".to_owned(),
            // Too many for the index: found by a scan.
            "name=b^ORsys_class_name=cmdb_ci_esx_server".to_owned(),
        ];
        let check = |store: &Store| {
            for (i, text) in queries.iter().enumerate() {
                let query = query::parse(text).compile(|n| FieldSpec::resolve(store, ci, n), false);
                assert_eq!(
                    selected(store, ci, &query),
                    scanned(store, ci, &query),
                    "{text}"
                );
                let indexed = candidates(store, ci, &query).is_some();
                assert_eq!(indexed, i < 5, "{text}");
            }
        };
        check(&store);
        // Writes after the indexes exist: each must be found (or no longer found) at once.
        let vms = store.table(classes[0]).expect("class");
        store.update(ci, &ids[0], vec![("name".into(), "C".into())], &stamp);
        store.update(ci, &ids[1], vec![("name".into(), "a".into())], &stamp);
        assert!(store.delete(ci, &ids[2]));
        let fields = vec![("name".to_owned(), "A".to_owned())];
        store.insert(vms, fields, &stamp).expect("inserted");
        check(&store);
        // A page read after a write sees it.
        let query = query::parse("nameINa^ORDERBYsys_id")
            .compile(|n| FieldSpec::resolve(&store, ci, n), false);
        let (before, _) = select(&store, ci, &query, 0, 1);
        store.update(ci, &ids[3], vec![("name".into(), "a".into())], &stamp);
        let (after, _) = select(&store, ci, &query, 1, 1);
        assert_eq!(after, before + 1);
        check(&store);
    }
}
