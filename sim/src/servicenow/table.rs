//! The Table API over any table name: list (encoded query, field selection, offset paging with
//! `X-Total-Count` and `Link`), read, create (201 + `Location`), update (PATCH and PUT are both
//! partial updates, as on an instance) and delete (204).

use std::cmp::Ordering;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::api::{json_object, ApiRequest, ApiResponse};
use super::query::{self, EncodedQuery};
use super::render::{DisplayMode, FieldSpec, RenderOptions, RowJson};
use super::store::{string_fields, Row, Stamp, Store, Table, WriteError};
use super::Inner;

/// `sysparm_limit` when the client sends none.
pub(crate) const DEFAULT_LIMIT: usize = 10_000;

/// Serves one Table API call on `table` (and `sys_id` for a single record).
pub(crate) fn handle(
    inner: &Inner,
    req: &ApiRequest<'_>,
    table: &str,
    sys_id: Option<&str>,
) -> ApiResponse {
    let valid = !table.is_empty()
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return ApiResponse::error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid table {table}"),
            Value::Null,
        );
    }
    match (&req.method, sys_id) {
        (&Method::GET, None) => list(inner, req, table),
        (&Method::GET, Some(id)) => get(inner, req, table, id),
        (&Method::POST, None) => create(inner, req, table),
        (&Method::PATCH | &Method::PUT, Some(id)) => update(inner, req, table, id),
        (&Method::DELETE, Some(id)) => delete(inner, table, id),
        _ => ApiResponse::method_not_allowed(),
    }
}

fn render_options<'a>(req: &'a ApiRequest<'_>) -> RenderOptions<'a> {
    RenderOptions {
        display: DisplayMode::parse(req.param("sysparm_display_value")),
        exclude_links: req.flag("sysparm_exclude_reference_link"),
        base_url: req.base_url,
    }
}

fn number_param(req: &ApiRequest<'_>, name: &str, default: usize) -> usize {
    req.param(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `sysparm_query` ANDed with the plain `field=value` parameters (servicenow.itsm filters
/// that way).
fn request_query(req: &ApiRequest<'_>) -> EncodedQuery {
    let mut parsed = query::parse(req.param("sysparm_query").unwrap_or(""));
    parsed.and_equal(
        req.query
            .iter()
            .filter(|(k, _)| !k.starts_with("sysparm_"))
            .cloned(),
    );
    parsed
}

fn list(inner: &Inner, req: &ApiRequest<'_>, table_name: &str) -> ApiResponse {
    let limit = number_param(req, "sysparm_limit", DEFAULT_LIMIT);
    let offset = number_param(req, "sysparm_offset", 0);
    let opts = render_options(req);
    let store = inner.read_store();
    // A table nobody wrote to yet is simply empty: the simulator accepts any table name.
    let (total, mut response) = match store.table(table_name) {
        None => (0, ApiResponse::result(&[(); 0])),
        Some(table) => {
            let query = request_query(req)
                .compile(|name| FieldSpec::resolve(&store, table_name, table, name));
            let fields = FieldSpec::list(&store, table_name, table, req.param("sysparm_fields"));
            let (total, page) = select(&store, table, &query, offset, limit);
            let rows: Vec<RowJson<'_>> = page
                .into_iter()
                .map(|row| RowJson {
                    store: &store,
                    table_name,
                    row,
                    fields: &fields,
                    opts: &opts,
                })
                .collect();
            (total, ApiResponse::result(&rows))
        }
    };
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
/// requested order.
fn select<'s>(
    store: &'s Store,
    table: &'s Table,
    query: &EncodedQuery<FieldSpec>,
    offset: usize,
    limit: usize,
) -> (usize, Vec<&'s Row>) {
    let matches = |row: &&'s Row| query.matches(|f| f.value(store, row));
    let Some(descending) = sys_id_order(query) else {
        let mut rows: Vec<&Row> = table.rows().values().filter(matches).collect();
        // Stable: rows equal in every ORDERBY field stay in sys_id order, so pages are
        // deterministic.
        rows.sort_by(|a, b| compare_rows(store, query, a, b));
        let total = rows.len();
        return (total, rows.into_iter().skip(offset).take(limit).collect());
    };
    // Rows are kept in sys_id order: no sort, and without a filter no scan either.
    let in_order: Box<dyn Iterator<Item = &Row>> = if descending {
        Box::new(table.rows().values().rev())
    } else {
        Box::new(table.rows().values())
    };
    if query.is_unfiltered() {
        return (table.len(), in_order.skip(offset).take(limit).collect());
    }
    let mut total = 0;
    let mut page = Vec::new();
    for row in in_order.filter(matches) {
        if total >= offset && page.len() < limit {
            page.push(row);
        }
        total += 1;
    }
    (total, page)
}

/// `Some(descending)` when the order is sys_id's (or none, which the store gives as sys_id's).
fn sys_id_order(query: &EncodedQuery<FieldSpec>) -> Option<bool> {
    match query.order.first() {
        None => Some(false),
        Some(first) if first.field.key == "sys_id" => Some(first.desc),
        Some(_) => None,
    }
}

fn compare_rows(store: &Store, query: &EncodedQuery<FieldSpec>, a: &Row, b: &Row) -> Ordering {
    query
        .order
        .iter()
        .map(|o| {
            let ord = query::order_cmp(o.field.value(store, a), o.field.value(store, b), o.textual);
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

/// `{"result": row}` with `status`, or `None` when there is no such row.
fn respond_one(
    store: &Store,
    req: &ApiRequest<'_>,
    table_name: &str,
    sys_id: &str,
    status: StatusCode,
) -> Option<ApiResponse> {
    let table = store.table(table_name)?;
    let row = table.get(sys_id)?;
    let fields = FieldSpec::list(store, table_name, table, req.param("sysparm_fields"));
    let opts = render_options(req);
    let row = RowJson {
        store,
        table_name,
        row,
        fields: &fields,
        opts: &opts,
    };
    Some(ApiResponse::result_with(status, &row))
}

fn get(inner: &Inner, req: &ApiRequest<'_>, table_name: &str, sys_id: &str) -> ApiResponse {
    respond_one(&inner.read_store(), req, table_name, sys_id, StatusCode::OK)
        .unwrap_or_else(ApiResponse::not_found)
}

fn create(inner: &Inner, req: &ApiRequest<'_>, table_name: &str) -> ApiResponse {
    let object = match json_object(req.body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let stamp = Stamp::now(req.user);
    let mut store = inner.write_store();
    match store.insert(table_name, string_fields(&object), &stamp) {
        Ok(sys_id) => {
            let location = format!("{}/api/now/table/{table_name}/{sys_id}", req.base_url);
            respond_one(&store, req, table_name, &sys_id, StatusCode::CREATED)
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

fn update(inner: &Inner, req: &ApiRequest<'_>, table_name: &str, sys_id: &str) -> ApiResponse {
    let object = match json_object(req.body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let stamp = Stamp::now(req.user);
    let mut store = inner.write_store();
    if store
        .update(table_name, sys_id, string_fields(&object), &stamp)
        .is_none()
    {
        return ApiResponse::not_found();
    }
    respond_one(&store, req, table_name, sys_id, StatusCode::OK)
        .unwrap_or_else(ApiResponse::not_found)
}

fn delete(inner: &Inner, table_name: &str, sys_id: &str) -> ApiResponse {
    if inner.write_store().delete(table_name, sys_id) {
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
}
