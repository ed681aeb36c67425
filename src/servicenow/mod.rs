//! ServiceNow: everything the job says to or reads from it. The live connector does Table
//! API reads (paged, concurrent, complete-or-error), single-record writes, and the Batch API,
//! with Basic or OAuth authentication; [`snapshot`] reads exports of a table.
//!
//! Layout: this file holds the configuration, the client and the single-record calls;
//! [`read`](self::read) pages through tables, [`batch`](self::batch) speaks the Batch API,
//! [`auth`](self::auth) produces `Authorization` headers and [`wire`](self::wire) decodes
//! Table API JSON into [`Ci`] values. Every call goes through [`ServiceNow::execute`], which
//! counts requests and renews a refused OAuth token once.
//!
//! Reads are retried per [`RetryPolicy`] (a read has no side effects); writes are tried once,
//! because whether a failed create may be re-sent is the executor's call: it must first look
//! the CI up, in case the create happened and only the answer was lost.

pub mod attachment;
mod auth;
mod batch;
pub mod dictionary;
mod read;
pub mod snapshot;
pub(crate) mod wire;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::net::stats::Api;
use crate::net::{
    build_client, redact, with_retry, ClientError, HttpError, HttpSettings, Pacer, RetryPolicy,
    Secret,
};
use crate::reconcile::record::{Ci, FieldNames};

pub use self::batch::BatchRequest;

/// Values per `IN` query in [`ServiceNow::read_where_in`]: long enough to save round trips,
/// short enough to keep URLs well under the 8 KB proxies commonly accept.
const IN_CHUNK: usize = 100;

/// How the connector authenticates.
#[derive(Debug, Clone)]
pub enum SnAuth {
    /// Pre-emptive Basic auth on every request.
    Basic { user: String, password: Secret },
    /// OAuth: password grant when user/password are given, else client_credentials.
    OAuth {
        client_id: String,
        client_secret: Secret,
        user: Option<String>,
        password: Option<Secret>,
    },
}

/// Where and how to reach one instance. `Debug` never shows a secret ([`Secret`]).
#[derive(Debug, Clone)]
pub struct ServiceNowConfig {
    /// Instance base URL, e.g. `https://acme.service-now.com` (no `/api`).
    pub url: String,
    pub auth: SnAuth,
    pub http: HttpSettings,
    /// Rows per page (capped at [`ServiceNowConfig::MAX_PAGE_SIZE`]).
    pub page_size: usize,
    /// Page reads in flight at once.
    pub concurrency: usize,
    /// How hard reads try (writes are tried once).
    pub retry: RetryPolicy,
    /// Requests per second at most, every request counted (`None`: no ceiling but what the
    /// instance's 429s and rate-limit headers teach; see [`Pacer`]).
    pub max_rps: Option<f64>,
}

impl ServiceNowConfig {
    /// Rows per page: large enough for few round trips, small enough that a page stays far
    /// from the instance's 60 s transaction limit.
    pub const DEFAULT_PAGE_SIZE: usize = 1000;
    /// The Table API's own ceiling (`sysparm_limit` default).
    pub const MAX_PAGE_SIZE: usize = 10_000;
    pub const DEFAULT_CONCURRENCY: usize = 4;

    /// A configuration with default HTTP settings, page size, concurrency and retries.
    pub fn new(url: impl Into<String>, auth: SnAuth) -> Self {
        Self {
            url: url.into(),
            auth,
            http: HttpSettings::default(),
            page_size: Self::DEFAULT_PAGE_SIZE,
            concurrency: Self::DEFAULT_CONCURRENCY,
            retry: RetryPolicy::default(),
            max_rps: None,
        }
    }
}

/// A client of one ServiceNow instance; cheap to clone (clones share connections, the OAuth
/// token and the request counter).
#[derive(Clone)]
pub struct ServiceNow {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// The instance URL without credentials, query or fragment.
    base: Url,
    auth: auth::Authorizer,
    page_size: usize,
    concurrency: usize,
    retry: RetryPolicy,
    traffic: Traffic,
    batch_ids: AtomicU64,
}

/// What every request to the instance goes through, token requests included: its turn at
/// the pacer, and the count.
struct Traffic {
    count: AtomicU64,
    pacer: Pacer,
}

impl fmt::Debug for ServiceNow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceNow")
            .field("url", &self.inner.base.as_str())
            .field("page_size", &self.inner.page_size)
            .field("concurrency", &self.inner.concurrency)
            .finish_non_exhaustive()
    }
}

/// `^` is the encoded-query separator; a literal caret inside a value is written `^^`.
pub fn escape_query_value(v: &str) -> String {
    v.replace('^', "^^")
}

/// `field=value`, or `fieldISEMPTY` for an empty value (which `=` does not reliably match).
fn equals_condition(field: &str, value: &str) -> String {
    if value.is_empty() {
        format!("{field}ISEMPTY")
    } else {
        format!("{field}={}", escape_query_value(value))
    }
}

/// `by` is one of `values`: one `IN` list, plus `^OR by=value` for values holding a comma
/// (which `IN` would split).
fn in_condition(by: &str, values: &[&str]) -> String {
    let (with_comma, plain): (Vec<&str>, Vec<&str>) = values.iter().partition(|v| v.contains(','));
    let mut parts = Vec::with_capacity(1 + with_comma.len());
    if !plain.is_empty() {
        let list: Vec<String> = plain.iter().map(|v| escape_query_value(v)).collect();
        parts.push(format!("{by}IN{}", list.join(",")));
    }
    parts.extend(with_comma.iter().map(|v| equals_condition(by, v)));
    parts.join("^OR")
}

/// A configured URL fit for a message: [`redact`] when it parses, else with anything between
/// `://` and an `@` of its authority removed (a URL that fails to parse may still hold a
/// password).
fn shown_url(text: &str) -> String {
    if Url::parse(text).is_ok() {
        return redact(text);
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => text.to_owned(),
    }
}

/// A JSON object of the fields to write.
fn fields_body(fields: &[(String, String)]) -> Vec<u8> {
    let object: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    // A map of strings always serializes.
    serde_json::to_vec(&object).unwrap_or_default()
}

impl ServiceNow {
    /// Builds the client; fails on a URL that is not http(s), a bad CA file, or an OAuth
    /// configuration naming a user without a password.
    pub fn new(cfg: ServiceNowConfig) -> Result<Self, ClientError> {
        let shown = shown_url(cfg.url.trim());
        let mut base = Url::parse(cfg.url.trim())
            .map_err(|e| ClientError::Build(format!("ServiceNow URL `{shown}`: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::Build(format!(
                "ServiceNow URL `{shown}` must be an http or https URL"
            )));
        }
        // Credentials belong in `auth`, never in a URL that could reach a log.
        let _ = base.set_username("");
        let _ = base.set_password(None);
        base.set_query(None);
        base.set_fragment(None);
        let auth = auth::Authorizer::new(&cfg.auth, &base).map_err(ClientError::Build)?;
        let http = build_client(&cfg.http, "ServiceNow")?;
        crate::net::stats::register(Api::ServiceNow, &base);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                page_size: cfg.page_size.clamp(1, ServiceNowConfig::MAX_PAGE_SIZE),
                concurrency: cfg.concurrency.max(1),
                retry: cfg.retry,
                traffic: Traffic {
                    count: AtomicU64::new(0),
                    pacer: Pacer::new(Api::ServiceNow, cfg.max_rps, cfg.retry.max_retry_after),
                },
                batch_ids: AtomicU64::new(0),
            }),
        })
    }

    /// The pace requests are sent at now, per second (`None`: unpaced; see [`Pacer`]).
    pub fn pace(&self) -> Option<f64> {
        self.inner.traffic.pacer.rate()
    }

    /// The number of HTTP requests sent so far (token requests included).
    pub fn requests_sent(&self) -> u64 {
        self.inner.traffic.count.load(Ordering::Relaxed)
    }

    /// `{base}/{segments...}`, each segment percent-encoded (a sys_id cannot add a path).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn table_url(&self, table: &str, sys_id: Option<&str>) -> Url {
        match sys_id {
            Some(sys_id) => self.url(&["api", "now", "table", table, sys_id]),
            None => self.url(&["api", "now", "table", table]),
        }
    }

    /// Sends one request and returns the response whatever its status. A 401 gets the OAuth
    /// token renewed and the request sent once more (that is authentication, not a retry).
    async fn execute(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
    ) -> Result<reqwest::Response, HttpError> {
        self.execute_typed(
            method,
            url,
            body.map(|b| (b, "application/json")),
            "application/json",
        )
        .await
    }

    /// [`ServiceNow::execute`] with a body of the given content type and an `Accept` of
    /// the caller's (the Attachment API takes and gives files as they are).
    async fn execute_typed(
        &self,
        method: Method,
        url: &Url,
        body: Option<(&[u8], &str)>,
        accept: &str,
    ) -> Result<reqwest::Response, HttpError> {
        let inner = &*self.inner;
        let mut credential = inner.auth.current(&inner.http, &inner.traffic).await?;
        let mut renewed = false;
        loop {
            let mut request = inner
                .http
                .request(method.clone(), url.clone())
                .header(ACCEPT, accept)
                .header(AUTHORIZATION, credential.header.clone());
            if let Some((body, content_type)) = body {
                request = request
                    .header(CONTENT_TYPE, content_type)
                    .body(body.to_vec());
            }
            let turn = inner.traffic.pacer.turn().await;
            inner.traffic.count.fetch_add(1, Ordering::Relaxed);
            crate::net::stats::request(Api::ServiceNow);
            let response = request
                .send()
                .await
                .map_err(|e| HttpError::from_reqwest(method.as_str(), url.as_str(), &e))?;
            // Every request to the instance waits its turn at one pacer: a 429 (and its
            // Retry-After) slows and pauses them all, not just this one.
            inner
                .traffic
                .pacer
                .answered(turn, response.status().as_u16(), response.headers());
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                crate::net::stats::rate_limited(Api::ServiceNow);
            }
            if response.status() == StatusCode::UNAUTHORIZED && !renewed {
                let fresh = inner
                    .auth
                    .renew(&inner.http, &inner.traffic, credential.generation)
                    .await?;
                if let Some(fresh) = fresh {
                    tracing::debug!(%method, url = url.as_str(), "token refused; renewed it");
                    credential = fresh;
                    renewed = true;
                    continue;
                }
            }
            return Ok(response);
        }
    }

    /// The body of a 2xx response, or the error the response stands for.
    async fn success_body(
        method: &Method,
        url: &Url,
        response: reqwest::Response,
    ) -> Result<Vec<u8>, HttpError> {
        if !response.status().is_success() {
            return Err(HttpError::from_response(method.as_str(), url.as_str(), response).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| HttpError::from_reqwest(method.as_str(), url.as_str(), &e))?;
        Ok(body.into())
    }

    /// A single record from a 2xx response (every field it carries).
    async fn record(
        method: &Method,
        url: &Url,
        response: reqwest::Response,
    ) -> Result<Ci, HttpError> {
        let body = Self::success_body(method, url, response).await?;
        wire::parse_one(&body, FieldNames::default()).map_err(|e| {
            HttpError::from_body(
                method.as_str(),
                url.as_str(),
                &String::from_utf8_lossy(&body),
                &e,
            )
        })
    }

    /// All rows of `table` matching the encoded `query` (`None` = all), with only `fields`
    /// (`sys_id` is always added; no fields means sys_ids only). References come as bare
    /// sys_ids. Pages are read in sys_id order, concurrently once the first page's
    /// `X-Total-Count` gives the total, each retried per the policy; rows are de-duplicated
    /// and returned in sys_id order. A page lost for good fails the read: a target read must
    /// be complete. A table that changes during the read is read again by key
    /// (`sys_id>last`), which neither skips nor repeats rows.
    pub async fn read_table(
        &self,
        table: &str,
        fields: &[String],
        query: Option<&str>,
    ) -> Result<Vec<Ci>, HttpError> {
        self.read_queries(table, fields, vec![query.map(str::to_owned)])
            .await
    }

    /// Rows of `table` whose `by` field is one of `values` (blank values are skipped), with
    /// `fields`: `IN` queries of up to 100 values each, read concurrently.
    pub async fn read_where_in(
        &self,
        table: &str,
        by: &str,
        values: &[String],
        fields: &[String],
    ) -> Result<Vec<Ci>, HttpError> {
        let mut distinct: Vec<&str> = values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.is_empty() {
            return Ok(Vec::new());
        }
        let queries = distinct
            .chunks(IN_CHUNK)
            .map(|chunk| Some(in_condition(by, chunk)))
            .collect();
        self.read_queries(table, fields, queries).await
    }

    /// Rows matching all `conditions` (`field` equals `value`; an empty value means the
    /// field is empty), for looking a CI up by identity. No conditions match every row.
    pub async fn find(
        &self,
        table: &str,
        conditions: &[(String, String)],
        fields: &[String],
    ) -> Result<Vec<Ci>, HttpError> {
        let query: Vec<String> = conditions
            .iter()
            .map(|(field, value)| equals_condition(field, value))
            .collect();
        let query = query.join("^");
        self.read_table(table, fields, (!query.is_empty()).then_some(query.as_str()))
            .await
    }

    /// One record with `fields` (and `sys_id`); `None` when the instance has no such record.
    pub async fn get(
        &self,
        table: &str,
        sys_id: &str,
        fields: &[String],
    ) -> Result<Option<Ci>, HttpError> {
        let what = format!("reading {table}/{sys_id}");
        with_retry(&self.inner.retry, &what, |_| {
            self.get_once(table, sys_id, fields)
        })
        .await
    }

    /// [`ServiceNow::get`] tried once, for a caller that runs its own retries (the executor
    /// reading back a write, which stops when its guard says so).
    pub async fn get_once(
        &self,
        table: &str,
        sys_id: &str,
        fields: &[String],
    ) -> Result<Option<Ci>, HttpError> {
        // `/table/{table}/` with an empty id would list the table instead.
        if sys_id.trim().is_empty() {
            return Ok(None);
        }
        let mut names = FieldNames::default();
        let requested = wire::Requested::new(&mut names, fields);
        let mut url = self.table_url(table, Some(sys_id));
        url.query_pairs_mut()
            .append_pair("sysparm_fields", &requested.sysparm_fields())
            .append_pair("sysparm_exclude_reference_link", "true");
        let response = self.execute(Method::GET, &url, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = Self::success_body(&Method::GET, &url, response).await?;
        wire::parse_one(&body, &requested).map(Some).map_err(|e| {
            HttpError::from_body("GET", url.as_str(), &String::from_utf8_lossy(&body), &e)
        })
    }

    /// Creates a record (one attempt); returns it as the instance stored it.
    pub async fn create(&self, table: &str, fields: &[(String, String)]) -> Result<Ci, HttpError> {
        let mut url = self.table_url(table, None);
        url.query_pairs_mut()
            .append_pair("sysparm_exclude_reference_link", "true");
        let body = fields_body(fields);
        let response = self.execute(Method::POST, &url, Some(&body)).await?;
        Self::record(&Method::POST, &url, response).await
    }

    /// Changes `fields` of a record (PATCH, one attempt); returns the updated record.
    pub async fn update(
        &self,
        table: &str,
        sys_id: &str,
        fields: &[(String, String)],
    ) -> Result<Ci, HttpError> {
        let mut url = self.table_url(table, Some(sys_id));
        url.query_pairs_mut()
            .append_pair("sysparm_exclude_reference_link", "true");
        let body = fields_body(fields);
        let response = self.execute(Method::PATCH, &url, Some(&body)).await?;
        Self::record(&Method::PATCH, &url, response).await
    }

    /// Deletes a record (one attempt). A record already gone (404) counts as deleted.
    pub async fn delete(&self, table: &str, sys_id: &str) -> Result<(), HttpError> {
        let url = self.table_url(table, Some(sys_id));
        let response = self.execute(Method::DELETE, &url, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Self::success_body(&Method::DELETE, &url, response)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic() -> SnAuth {
        SnAuth::Basic {
            user: "admin".into(),
            password: Secret::new("hunter2"),
        }
    }

    #[test]
    fn carets_are_doubled() {
        assert_eq!(escape_query_value("a^b^^c"), "a^^b^^^^c");
        assert_eq!(escape_query_value("plain"), "plain");
    }

    #[test]
    fn conditions_escape_their_values() {
        assert_eq!(equals_condition("name", "a^ORb"), "name=a^^ORb");
        assert_eq!(equals_condition("name", ""), "nameISEMPTY");
        assert_eq!(
            in_condition("email", &["a@x", "b^c@x", "d,e@x"]),
            "emailINa@x,b^^c@x^ORemail=d,e@x"
        );
        assert_eq!(in_condition("email", &["d,e"]), "email=d,e");
    }

    #[test]
    fn urls_are_built_from_segments_without_credentials() {
        let mut cfg = ServiceNowConfig::new("https://bob:pw@acme.example.com/snow/?x=1", basic());
        cfg.page_size = 0;
        cfg.concurrency = 0;
        let sn = ServiceNow::new(cfg).expect("client");
        assert_eq!(
            sn.table_url("incident", Some("a/../b")).as_str(),
            "https://acme.example.com/snow/api/now/table/incident/a%2F..%2Fb"
        );
        assert_eq!(sn.inner.page_size, 1);
        assert_eq!(sn.inner.concurrency, 1);
        assert!(!format!("{sn:?}").contains("pw"));
        let plain =
            ServiceNow::new(ServiceNowConfig::new("http://127.0.0.1:9", basic())).expect("client");
        assert_eq!(
            plain.url(&["api", "now", "v1", "batch"]).as_str(),
            "http://127.0.0.1:9/api/now/v1/batch"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_their_credentials() {
        for url in ["ftp://acme", "not a url", "mailto:x@y"] {
            let err = ServiceNow::new(ServiceNowConfig::new(url, basic()))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("ServiceNow URL"), "{url}: {err}");
        }
        let err = ServiceNow::new(ServiceNowConfig::new("https://u:topsecret@/x", basic()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("topsecret"), "{err}");
    }

    #[test]
    fn page_size_is_capped() {
        let mut cfg = ServiceNowConfig::new("https://acme.example.com", basic());
        cfg.page_size = 50_000;
        let sn = ServiceNow::new(cfg).expect("client");
        assert_eq!(sn.inner.page_size, ServiceNowConfig::MAX_PAGE_SIZE);
    }

    #[test]
    fn write_bodies_are_json_objects_of_strings() {
        let body = fields_body(&[
            ("name".into(), "vm \"1\"".into()),
            ("cpus".into(), "4".into()),
        ]);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
            serde_json::json!({"name": "vm \"1\"", "cpus": "4"})
        );
    }
}
