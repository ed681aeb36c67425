//! Complete table reads: offset pages in sys_id order, fetched concurrently (through
//! [`PageWindow`]) once the first page's `X-Total-Count` gives the total, each page retried;
//! and, when the table changed during the read (a page reports another total, or the rows
//! do not add up), one more pass by key (`sys_id>last`), which neither skips nor repeats a
//! row whatever changes meanwhile.
//!
//! One read shares one [`FieldNames`] (every row of it shares its field names) and one
//! semaphore, so that the several queries of [`ServiceNow::read_where_in`] together keep to
//! the configured concurrency.

use std::sync::Arc;
use std::time::Instant;

use reqwest::Method;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use url::Url;

use crate::net::stats::Api;
use crate::net::{with_retry, ErrorKind, HttpError, PageFlow, PageWindow};
use crate::reconcile::record::{Ci, FieldNames};

use super::wire::{self, Requested};
use super::ServiceNow;

/// What the queries and pages of one read share.
struct ReadCtx {
    sn: ServiceNow,
    table: String,
    /// The `sysparm_fields` value.
    fields: String,
    requested: Requested,
    permits: Semaphore,
}

/// One page as read.
struct Page {
    /// `X-Total-Count`, when the instance sent it.
    total: Option<usize>,
    rows: Vec<Ci>,
}

impl ServiceNow {
    /// Reads every query (`None` = the whole table) and returns the union of their rows, by
    /// sys_id, each once.
    pub(super) async fn read_queries(
        &self,
        table: &str,
        fields: &[String],
        queries: Vec<Option<String>>,
    ) -> Result<Vec<Ci>, HttpError> {
        let started = Instant::now();
        let sent_before = self.requests_sent();
        let mut names = FieldNames::default();
        let requested = Requested::new(&mut names, fields);
        let ctx = Arc::new(ReadCtx {
            sn: self.clone(),
            table: table.to_owned(),
            fields: requested.sysparm_fields(),
            requested,
            permits: Semaphore::new(self.inner.concurrency),
        });
        let mut rows = if let [query] = queries.as_slice() {
            ctx.read_query(query.as_deref()).await?
        } else {
            let mut tasks = JoinSet::new();
            for query in queries {
                let ctx = ctx.clone();
                tasks.spawn(async move { ctx.read_query(query.as_deref()).await });
            }
            let mut rows = Vec::new();
            while let Some(done) = tasks.join_next().await {
                // Dropping `tasks` on an error aborts the queries still running.
                rows.extend(joined(done, &ctx)?);
            }
            rows
        };
        sort_unique(&mut rows);
        // Debug, not info: identity lookups (`find`) are reads too, one per planned create.
        tracing::debug!(
            table,
            rows = rows.len(),
            requests = self.requests_sent() - sent_before,
            seconds = crate::output::seconds(started.elapsed()),
            "read ServiceNow table"
        );
        Ok(rows)
    }
}

/// A finished task's result; a panic in it is re-raised here rather than swallowed.
fn joined<T>(
    done: Result<Result<T, HttpError>, tokio::task::JoinError>,
    ctx: &ReadCtx,
) -> Result<T, HttpError> {
    match done {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(HttpError::new(
            "GET",
            ctx.sn.table_url(&ctx.table, None).as_str(),
            ErrorKind::Interrupted,
            format!("a page read was cancelled: {e}"),
        )),
    }
}

/// Sorts by sys_id and keeps the first of each (offset pages overlap when rows move).
fn sort_unique(rows: &mut Vec<Ci>) {
    rows.sort_by(|a, b| a.sys_id.cmp(&b.sys_id));
    rows.dedup_by(|later, earlier| later.sys_id == earlier.sys_id);
}

impl ReadCtx {
    fn page_size(&self) -> usize {
        self.sn.inner.page_size
    }

    /// All rows matching one query.
    async fn read_query(self: &Arc<Self>, query: Option<&str>) -> Result<Vec<Ci>, HttpError> {
        let query = Query::parse(query.unwrap_or(""));
        let ordered = query.ordered(None);
        let first = self.page(&ordered, Some(0)).await?;
        let Some(total) = first.total else {
            tracing::debug!(table = self.table, "no X-Total-Count; reading by key");
            return self.read_by_key(&query).await;
        };
        crate::progress::read_expected(Api::ServiceNow, total as u64);
        let limit = self.page_size();
        let ordered: Arc<str> = ordered.into();
        let window = PageWindow {
            in_flight: self.sn.inner.concurrency,
            max_lost: 1,
        };
        let fetch = |offset| {
            let (ctx, ordered) = (self.clone(), ordered.clone());
            async move { ctx.page(&ordered, Some(offset)).await }
        };
        let judge = |_, result: &Result<Page, HttpError>| match result {
            // A target read must be complete: a page lost for good fails it.
            Err(_) => PageFlow::Abort,
            // Nothing where rows were promised: the table shrank (or the total lied).
            Ok(page) if page.rows.is_empty() => PageFlow::Stop("the table shrank".into()),
            Ok(_) => PageFlow::Go,
        };
        let fetched = window
            .read(&mut (limit..total).step_by(limit), fetch, judge)
            .await;
        let mut rows = first.rows;
        let mut changed = false;
        for (_, page) in fetched.pages {
            let page = page?;
            changed |= page.total != Some(total) || page.rows.is_empty();
            rows.extend(page.rows);
        }
        sort_unique(&mut rows);
        if changed || rows.len() != total {
            tracing::warn!(
                table = self.table,
                expected = total,
                got = rows.len(),
                "the table changed during the read; reading it again by key"
            );
            return self.read_by_key(&query).await;
        }
        Ok(rows)
    }

    /// Pages by key: `sys_id>last^ORDERBYsys_id`, one after another.
    async fn read_by_key(&self, query: &Query) -> Result<Vec<Ci>, HttpError> {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let ordered = query.ordered(after.as_deref());
            let page = self.page(&ordered, None).await?;
            let count = page.rows.len();
            let last = page.rows.iter().map(|ci| &ci.sys_id).max().cloned();
            if let (Some(last), Some(after)) = (&last, &after) {
                if last <= after {
                    // The instance ignored the key condition: going on would loop forever.
                    return Err(HttpError::new(
                        "GET",
                        self.list_url(&ordered, None).as_str(),
                        ErrorKind::Decode,
                        "the instance ignored the `sys_id>` condition; the read cannot be completed",
                    ));
                }
            }
            rows.extend(page.rows);
            if count < self.page_size() {
                return Ok(rows);
            }
            after = last;
        }
    }

    fn list_url(&self, query: &str, offset: Option<usize>) -> Url {
        let mut url = self.sn.table_url(&self.table, None);
        {
            let mut pairs = url.query_pairs_mut();
            pairs
                .append_pair("sysparm_query", query)
                .append_pair("sysparm_fields", &self.fields)
                .append_pair("sysparm_exclude_reference_link", "true")
                .append_pair("sysparm_suppress_pagination_header", "true")
                .append_pair("sysparm_limit", &self.page_size().to_string());
            if let Some(offset) = offset {
                pairs.append_pair("sysparm_offset", &offset.to_string());
            }
        }
        url
    }

    /// One page, retried per the policy; a permit is held only while a request is out.
    async fn page(&self, query: &str, offset: Option<usize>) -> Result<Page, HttpError> {
        let url = self.list_url(query, offset);
        let what = match offset {
            Some(offset) => format!("reading {} at offset {offset}", self.table),
            None => format!("reading {} by key", self.table),
        };
        with_retry(&self.sn.inner.retry, &what, |_| async {
            let _permit = self.permits.acquire().await.map_err(|_| {
                HttpError::new(
                    "GET",
                    url.as_str(),
                    ErrorKind::Interrupted,
                    "the read was stopped",
                )
            })?;
            let response = self.sn.execute(Method::GET, &url, None).await?;
            let total = response
                .headers()
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            let body = ServiceNow::success_body(&Method::GET, &url, response).await?;
            let rows = wire::parse_list(&body, &self.requested).map_err(|e| {
                HttpError::from_body("GET", url.as_str(), &String::from_utf8_lossy(&body), &e)
            })?;
            tracing::debug!(table = self.table, offset, rows = rows.len(), "page read");
            crate::progress::page_read(Api::ServiceNow, rows.len() as u64);
            Ok(Page { total, rows })
        })
        .await
    }
}

/// A caller's encoded query, split into its `^NQ` groups with any `ORDERBY` dropped (reads
/// impose sys_id order), so that conditions can be added to every group.
#[derive(Debug, PartialEq)]
struct Query {
    groups: Vec<String>,
}

impl Query {
    fn parse(text: &str) -> Self {
        let mut groups: Vec<Vec<&str>> = Vec::new();
        let mut current: Vec<&str> = Vec::new();
        for term in split_terms(text) {
            if term.starts_with("ORDERBY") {
                continue;
            }
            if let Some(rest) = term.strip_prefix("NQ") {
                groups.push(std::mem::take(&mut current));
                if !rest.is_empty() {
                    current.push(rest);
                }
            } else if !term.is_empty() {
                current.push(term);
            }
        }
        groups.push(current);
        let groups: Vec<String> = groups
            .into_iter()
            .filter(|g| !g.is_empty())
            .map(|g| g.join("^"))
            .collect();
        Self { groups }
    }

    /// The query in sys_id order, restricted to sys_ids above `after` when given.
    fn ordered(&self, after: Option<&str>) -> String {
        let key = after.map(|a| format!("sys_id>{}", super::escape_query_value(a)));
        let groups: Vec<String> = match (&key, self.groups.is_empty()) {
            (Some(key), true) => vec![key.clone()],
            (Some(key), false) => self.groups.iter().map(|g| format!("{g}^{key}")).collect(),
            (None, _) => self.groups.clone(),
        };
        if groups.is_empty() {
            "ORDERBYsys_id".to_owned()
        } else {
            format!("{}^ORDERBYsys_id", groups.join("^NQ"))
        }
    }
}

/// Splits at each `^` that is not part of an escaped `^^`; terms keep their escapes.
fn split_terms(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut terms = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'^' {
            if bytes.get(i + 1) == Some(&b'^') {
                i += 2;
                continue;
            }
            terms.push(&text[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    terms.push(&text[start..]);
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_split_at_single_carets_only() {
        assert_eq!(split_terms("a=1^b=x^^y^ORc=2"), ["a=1", "b=x^^y", "ORc=2"]);
        assert_eq!(split_terms(""), [""]);
        assert_eq!(split_terms("a=^^^^"), ["a=^^^^"]);
    }

    #[test]
    fn queries_are_ordered_by_sys_id_and_keyed_per_group() {
        let q = Query::parse("active=true^ORDERBYname^NQname=a^^b^ORname=c");
        assert_eq!(q.groups, ["active=true", "name=a^^b^ORname=c"]);
        assert_eq!(
            q.ordered(None),
            "active=true^NQname=a^^b^ORname=c^ORDERBYsys_id"
        );
        assert_eq!(
            q.ordered(Some("abc")),
            "active=true^sys_id>abc^NQname=a^^b^ORname=c^sys_id>abc^ORDERBYsys_id"
        );
        let all = Query::parse("");
        assert_eq!(all.ordered(None), "ORDERBYsys_id");
        assert_eq!(all.ordered(Some("f")), "sys_id>f^ORDERBYsys_id");
        assert_eq!(
            Query::parse("ORDERBYDESCname").ordered(None),
            "ORDERBYsys_id"
        );
    }

    #[test]
    fn rows_are_sorted_and_unique() {
        let ci = |id: &str, v: &str| Ci::new(id, [("name", v.to_owned())]);
        let mut rows = vec![ci("b", "1"), ci("a", "2"), ci("b", "3"), ci("c", "4")];
        sort_unique(&mut rows);
        let ids: Vec<&str> = rows.iter().map(|c| c.sys_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(rows[1].get("name"), "1");
    }
}
