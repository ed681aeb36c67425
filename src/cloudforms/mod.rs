//! CloudForms (ManageIQ): everything the job says to or reads from it. The live client reads
//! a whole collection (`vms`, `hosts`, `requests`, ... whatever a sync's mapping names) over
//! the REST API, paged and concurrent, and says whether what it read is complete;
//! [`snapshot`] reads the same from a saved file.
//!
//! A read asks for the first page, takes the total from it (`subquery_count` when filtered,
//! else `count`; never the `links.last` the server gets wrong on exact multiples), then
//! fetches the other pages a few at a time, each retried per the [`RetryPolicy`]. It fails
//! only when nothing trustworthy came back (first page, authentication, a rejected query);
//! a page lost later, or fewer records than the server reported, gives the records read
//! and an `incomplete` reason, which blocks every retirement downstream.
//!
//! Authentication: HTTP Basic, sent pre-emptively, or (by default) a token from
//! `GET /api/auth` reused as `X-Auth-Token` and renewed once on a 401, so a read of 100
//! pages logs in once. The password and the token never appear in a message.

mod order;
mod page;
mod query;
pub mod snapshot;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::net::stats::{self, Api};
use crate::net::{
    build_client, with_retry, ClientError, ErrorKind, HttpError, HttpSettings, Pacer,
};
use crate::net::{Issued, PageFlow, PageWindow, RetryPolicy, Secret, Token, TokenCache};
use crate::reconcile::mapping::Filter;
use crate::reconcile::record::{Keep, Obj, SourceRead, Val};
use page::{Assembly, Page};
use query::CollectionQuery;

/// Lost pages after which the rest of a read is not attempted: the server is failing, and
/// hammering it page after page (each retried) would only make the run slower.
const MAX_LOST_PAGES: usize = 3;

/// How to reach CloudForms.
#[derive(Debug, Clone)]
pub struct CloudFormsConfig {
    /// Appliance base URL, e.g. `https://cloudforms.example.com` (the API is under `/api`;
    /// a URL already ending in `/api` is taken as is).
    pub url: String,
    pub user: String,
    pub password: Secret,
    /// Trade Basic auth for a token from `GET /api/auth` once, reuse it (`X-Auth-Token`),
    /// renew it on 401.
    pub use_token: bool,
    /// `X-MIQ-Group`: the group (description) to act as; URL-encoded if not ASCII.
    pub group: Option<String>,
    pub http: HttpSettings,
    /// Records per page; the server caps pages at 1000, so larger values count as 1000.
    pub page_size: usize,
    /// Pages read at the same time.
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// Requests per second at most (`None`: no ceiling but what 429s teach; see
    /// [`Pacer`](crate::net::Pacer)).
    pub max_rps: Option<f64>,
}

impl CloudFormsConfig {
    /// A configuration with the defaults: token auth, no group, pages of 1000, 4 at a time.
    pub fn new(url: impl Into<String>, user: impl Into<String>, password: Secret) -> Self {
        Self {
            url: url.into(),
            user: user.into(),
            password,
            use_token: true,
            group: None,
            http: HttpSettings::default(),
            page_size: query::MAX_PAGE_SIZE,
            concurrency: 4,
            retry: RetryPolicy::default(),
            max_rps: None,
        }
    }
}

/// A CloudForms API client. Cheap to share: reads may run concurrently.
pub struct CloudForms {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    /// `https://host/api`.
    api: Url,
    user: String,
    password: Secret,
    use_token: bool,
    group: Option<HeaderValue>,
    page_size: usize,
    concurrency: usize,
    retry: RetryPolicy,
    /// The `X-Auth-Token` every page shares; of several pages refused one expired token,
    /// only the first fetches a new one.
    token: TokenCache,
    requests: AtomicU64,
    /// Every request's turn, the login's too.
    pacer: Pacer,
}

impl std::fmt::Debug for CloudForms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &self.inner;
        f.debug_struct("CloudForms")
            .field("api", &inner.api.as_str())
            .field("user", &inner.user)
            .field("use_token", &inner.use_token)
            .field("group", &inner.group)
            .field("page_size", &inner.page_size)
            .field("concurrency", &inner.concurrency)
            .finish_non_exhaustive()
    }
}

/// How one request authenticates.
enum Auth {
    Basic,
    Token(Issued),
}

impl CloudForms {
    pub fn new(cfg: CloudFormsConfig) -> Result<Self, ClientError> {
        let client = build_client(&cfg.http, "CloudForms")?;
        let api = query::api_base(&cfg.url).map_err(ClientError::Build)?;
        stats::register(Api::CloudForms, &api);
        let group = cfg
            .group
            .as_deref()
            .map(group_header)
            .transpose()
            .map_err(ClientError::Build)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                api,
                user: cfg.user,
                password: cfg.password,
                use_token: cfg.use_token,
                group,
                page_size: cfg.page_size,
                concurrency: cfg.concurrency.max(1),
                retry: cfg.retry,
                token: TokenCache::default(),
                requests: AtomicU64::new(0),
                pacer: Pacer::new(Api::CloudForms, cfg.max_rps, cfg.retry.max_retry_after),
            }),
        })
    }

    /// Reads the whole collection (e.g. `vms`) with only `attributes` (plus `id`), the
    /// mapping's `filters` sent as `filter[]` where the server can apply them without
    /// dropping a record the core would keep (see the `query` module; the core applies them all
    /// again), ordered by id, in pages of `page_size`, the pages after the first
    /// concurrently. Records are de-duplicated by id (string or integer).
    ///
    /// `Err` only when nothing trustworthy was read: the first page failed after retries,
    /// authentication failed, or the server rejected the query. A page lost for good or
    /// fewer records than the server reported give `Ok` with `incomplete` set.
    ///
    /// `parent/sub` (`providers/folders`) reads the subcollection `sub` of every record of
    /// `parent`, one parent after the other, as [`CloudForms::read_nested`] says.
    pub async fn read(
        &self,
        collection: &str,
        attributes: &[String],
        filters: &[Filter],
    ) -> Result<SourceRead, HttpError> {
        self.read_since(collection, attributes, filters, None).await
    }

    /// [`read`](Self::read) of the records updated after a time only (`[source]
    /// updated_within`): `filter[]=<attribute>><time>`, the time unquoted in ISO 8601 UTC,
    /// as ManageIQ takes date-times (`>` only: `>=` is refused on date-times). The core
    /// applies the same cut again, so the read stays a superset of what it keeps.
    pub async fn read_since(
        &self,
        collection: &str,
        attributes: &[String],
        filters: &[Filter],
        updated_after: Option<(&str, chrono::DateTime<chrono::Utc>)>,
    ) -> Result<SourceRead, HttpError> {
        self.read_kept(collection, attributes, filters, updated_after, None)
            .await
    }

    /// [`read_since`](Self::read_since), each record reduced to what `keep` keeps as its
    /// page arrives ([`Mapping::source_keep`](crate::reconcile::mapping::Mapping::source_keep):
    /// what the plan reads), so the read never holds more than that.
    pub async fn read_kept(
        &self,
        collection: &str,
        attributes: &[String],
        filters: &[Filter],
        updated_after: Option<(&str, chrono::DateTime<chrono::Utc>)>,
        keep: Option<Arc<Keep>>,
    ) -> Result<SourceRead, HttpError> {
        match collection.split_once('/') {
            Some((parent, sub)) => {
                self.read_nested_kept(parent, sub, attributes, keep.as_ref())
                    .await
            }
            None => {
                self.read_flat(
                    collection,
                    attributes,
                    filters,
                    updated_after,
                    keep.as_ref(),
                )
                .await
            }
        }
    }

    /// The subcollection `sub` of every record of `parent` (`providers/folders`: each
    /// provider's `/api/providers/:id/folders`; ManageIQ serves VMware datacenters only
    /// there, integrations.md A.4). Each record gains `parent` = `{collection, id}`, its
    /// parent's. No filter is sent to the server (whether ManageIQ filters a subcollection
    /// is not verified): the core applies the mapping's filters. Complete only when the
    /// parents' read and every parent's subcollection read are: a subcollection that
    /// fails (not refused) makes the read incomplete; a refusal (4xx: a bad attribute, no
    /// permission) fails it, as for a collection.
    pub async fn read_nested(
        &self,
        parent: &str,
        sub: &str,
        attributes: &[String],
    ) -> Result<SourceRead, HttpError> {
        self.read_nested_kept(parent, sub, attributes, None).await
    }

    async fn read_nested_kept(
        &self,
        parent: &str,
        sub: &str,
        attributes: &[String],
        keep: Option<&Arc<Keep>>,
    ) -> Result<SourceRead, HttpError> {
        let parents = self
            .read_flat(parent, &["id".to_owned()], &[], None, None)
            .await?;
        let mut incomplete: Vec<String> = parents.incomplete.into_iter().collect();
        let mut records = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for p in &parents.records {
            let Some(id) = p.get("id").filter(|id| !id.is_null()) else {
                continue;
            };
            let id_text = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
            let path = format!("{parent}/{id_text}/{sub}");
            match self.read_flat(&path, attributes, &[], None, keep).await {
                Ok(read) => {
                    incomplete.extend(read.incomplete.map(|why| format!("{path}: {why}")));
                    for mut record in read.records {
                        let Val::Object(object) = &mut record else {
                            continue;
                        };
                        let key = object.get("id").map(Val::to_string).unwrap_or_default();
                        if !seen.insert(key) {
                            continue;
                        }
                        object.insert_missing(
                            "parent",
                            Val::Object(Obj::from_iter([
                                ("collection".into(), Val::from(parent)),
                                ("id".into(), id.clone()),
                            ])),
                        );
                        records.push(record);
                    }
                }
                Err(e) if e.status.is_some_and(|s| (400..500).contains(&s)) => return Err(e),
                Err(e) => incomplete.push(format!("{path}: {e}")),
            }
        }
        Ok(SourceRead {
            origin: format!(
                "{}/:id/{sub}",
                crate::net::redact(query::endpoint(&self.inner.api, parent).as_str())
            ),
            records,
            incomplete: (!incomplete.is_empty()).then(|| incomplete.join("; ")),
        })
    }

    async fn read_flat(
        &self,
        collection: &str,
        attributes: &[String],
        filters: &[Filter],
        updated_after: Option<(&str, chrono::DateTime<chrono::Utc>)>,
        keep: Option<&Arc<Keep>>,
    ) -> Result<SourceRead, HttpError> {
        let server = query::server_filters(filters);
        for (filter, why) in &server.local_only {
            tracing::debug!("mapping filter `{filter}` is applied locally only: {why}");
        }
        let mut expressions = server.expressions;
        if let Some((attribute, after)) = updated_after {
            // Before the `or` alternatives, which ManageIQ ORs onto the AND of the rest: the
            // window is then part of that AND (a superset still: the core cuts again).
            let at = expressions
                .iter()
                .position(|e| e.starts_with("or "))
                .unwrap_or(expressions.len());
            expressions.insert(at, query::updated_after(attribute, after));
        }
        loop {
            match self
                .read_with(collection, attributes, &expressions, keep)
                .await?
            {
                Outcome::Read(read) => return Ok(read),
                // An old server without `subquery_count` cannot say how many records
                // match: read everything (this cannot recur unfiltered) and let the core
                // filter.
                Outcome::NoFilteredTotal => {
                    tracing::warn!(
                        "{}: the server reports no `subquery_count` for filtered listings; \
                         reading the whole collection and filtering locally",
                        query::endpoint(&self.inner.api, collection)
                    );
                    expressions.clear();
                }
            }
        }
    }

    /// HTTP requests sent so far (logs, benchmarks).
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    async fn read_with(
        &self,
        collection: &str,
        attributes: &[String],
        filters: &[String],
        keep: Option<&Arc<Keep>>,
    ) -> Result<Outcome, HttpError> {
        let inner = &self.inner;
        let started = Instant::now();
        let requests_before = self.requests_sent();
        let query = Arc::new(CollectionQuery::new(
            &inner.api,
            collection,
            attributes,
            filters,
            inner.page_size,
        ));
        let first_url = query.page_url(0);
        let first = inner
            .fetch_page(&first_url, collection, keep.map(|k| &**k))
            .await
            .map_err(|e| inner.explain(e, collection, attributes, filters))?;
        let total = match first.total(query.filtered) {
            Some(total) => total,
            None if query.filtered && first.count.is_some() => return Ok(Outcome::NoFilteredTotal),
            None => {
                return Err(HttpError::new(
                    "GET",
                    first_url.as_str(),
                    ErrorKind::Decode,
                    "the response has no `count`: cannot tell how many records to read",
                ))
            }
        };
        crate::progress::read_expected(Api::CloudForms, total);
        let (stride, mut offsets) =
            page::remaining_offsets(total, query.limit, first.records.len());
        if stride < query.limit {
            tracing::warn!(
                "{}: the server returns at most {stride} records per page (asked {}); paging by {stride}",
                query.collection_url,
                query.limit
            );
        }
        let mut assembly = Assembly::new(total, stride);
        assembly.page(0, first.records);

        let window = PageWindow {
            in_flight: inner.concurrency,
            max_lost: MAX_LOST_PAGES,
        };
        let fetch = |offset| {
            let (inner, query) = (Arc::clone(inner), Arc::clone(&query));
            let collection = collection.to_owned();
            let keep = keep.cloned();
            async move {
                inner
                    .fetch_page(&query.page_url(offset), &collection, keep.as_deref())
                    .await
            }
        };
        let fetched = window.read(&mut offsets, fetch, judge_page).await;
        for (offset, result) in fetched.pages {
            match result {
                Ok(page) => {
                    assembly.page(offset, page.records);
                }
                Err(error) => assembly.lost(offset, error),
            }
        }
        if let Some(why) = fetched.stopped {
            assembly.abandon(offsets.remaining(), why);
        }
        let (records, incomplete) = assembly.finish();
        let origin = crate::net::redact(query.collection_url.as_str());
        // The caller reports the read; this adds what only the reader knows.
        tracing::debug!(
            records = records.len(),
            total,
            requests = self.requests_sent() - requests_before,
            seconds = crate::output::seconds(started.elapsed()),
            complete = incomplete.is_none(),
            "read {origin}"
        );
        Ok(Outcome::Read(SourceRead {
            origin,
            records,
            incomplete,
        }))
    }
}

/// What one page says about the rest of a read: past an empty page the offsets hold
/// nothing either, and a server refusing a page (4xx) will refuse the others.
fn judge_page(offset: u64, result: &Result<Page, HttpError>) -> PageFlow {
    match result {
        Ok(page) if page.records.is_empty() => {
            PageFlow::Stop(format!("the page at offset {offset} came back empty"))
        }
        Ok(_) => PageFlow::Go,
        Err(error) => {
            tracing::warn!("CloudForms page at offset {offset} lost: {error}");
            let refused = error.kind == ErrorKind::Status
                && error.status.is_some_and(|s| (400..500).contains(&s));
            if refused {
                PageFlow::Stop(format!("the server refused the page at offset {offset}"))
            } else {
                PageFlow::Go
            }
        }
    }
}

enum Outcome {
    Read(SourceRead),
    /// Filters were sent but the server gave no `subquery_count`.
    NoFilteredTotal,
}

impl Inner {
    /// One page, retried per the policy; parsed once from the body bytes.
    async fn fetch_page(
        &self,
        url: &Url,
        collection: &str,
        keep: Option<&Keep>,
    ) -> Result<Page, HttpError> {
        let what = format!("GET {url}");
        let page = with_retry(&self.retry, &what, move |_attempt| async move {
            let response = self.get(url).await?;
            let body = response.bytes().await.map_err(|e| body_error(url, &e))?;
            // A subcollection's listing is named by its last segment (`folders`).
            let name = collection.rsplit('/').next().unwrap_or(collection);
            page::parse_kept(url.as_str(), name, &body, keep)
        })
        .await?;
        crate::progress::page_read(Api::CloudForms, page.records.len() as u64);
        Ok(page)
    }

    /// A GET with authentication; the response when its status is a success. A 401 on a
    /// token gets one more try with a fresh token (tokens expire after `token_ttl` idle).
    async fn get(&self, url: &Url) -> Result<reqwest::Response, HttpError> {
        let mut auth = self.auth().await?;
        let mut response = self.send(url, &auth).await?;
        let mut refused = None;
        if response.status() == StatusCode::UNAUTHORIZED {
            if let Auth::Token(issued) = auth {
                auth = self.renew(issued.generation).await?;
                refused = Some(issued.secret);
                response = self.send(url, &auth).await?;
            }
        }
        if response.status().is_success() {
            return Ok(response);
        }
        let mut error = HttpError::from_response("GET", url.as_str(), response).await;
        // The server quotes a token it refuses; neither may reach a log.
        if let Auth::Token(issued) = &auth {
            error = redact_token(error, &issued.secret);
        }
        if let Some(token) = &refused {
            error = redact_token(error, token);
        }
        Err(error)
    }

    async fn send(&self, url: &Url, auth: &Auth) -> Result<reqwest::Response, HttpError> {
        self.send_with(reqwest::Method::GET, url, auth, None).await
    }

    /// One request of any method (a POST carries a JSON `body`), authenticated and paced.
    async fn send_with(
        &self,
        method: reqwest::Method,
        url: &Url,
        auth: &Auth,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, HttpError> {
        let verb = method.as_str().to_owned();
        let mut request = self
            .client
            .request(method, url.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(group) = &self.group {
            request = request.header("X-MIQ-Group", group.clone());
        }
        request = match auth {
            Auth::Basic => request.basic_auth(&self.user, Some(self.password.expose())),
            Auth::Token(issued) => {
                let mut value = HeaderValue::from_str(issued.secret.expose())
                    .map_err(|_| self.bad_token(url))?;
                value.set_sensitive(true);
                request.header("X-Auth-Token", value)
            }
        };
        let turn = self.pacer.turn().await;
        self.requests.fetch_add(1, Ordering::Relaxed);
        stats::request(Api::CloudForms);
        let response = request
            .send()
            .await
            .map_err(|e| HttpError::from_reqwest(&verb, url.as_str(), &e))?;
        self.pacer
            .answered(turn, response.status().as_u16(), response.headers());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            stats::rate_limited(Api::CloudForms);
        }
        Ok(response)
    }

    fn bad_token(&self, url: &Url) -> HttpError {
        HttpError::new(
            "GET",
            url.as_str(),
            ErrorKind::Decode,
            "the token from `/api/auth` cannot be sent as a header",
        )
    }

    /// The authentication of the next request: Basic, or the shared token (fetched once,
    /// while concurrent pages wait, so that they share one login).
    async fn auth(&self) -> Result<Auth, HttpError> {
        if !self.use_token {
            return Ok(Auth::Basic);
        }
        let issued = self.token.current(|_| self.login()).await?;
        Ok(Auth::Token(issued))
    }

    /// A new token after the server refused the one of `generation` (or the one another
    /// page already fetched).
    async fn renew(&self, generation: u64) -> Result<Auth, HttpError> {
        let issued = self.token.renew(generation, |_| self.login()).await?;
        Ok(Auth::Token(issued))
    }

    /// `GET /api/auth` with Basic: a token, used until the server refuses it. Its
    /// `expires_on` is not a deadline (the token lives `token_ttl` past its last use), so it
    /// is not read.
    async fn login(&self) -> Result<Token, HttpError> {
        let url = query::endpoint(&self.api, "auth");
        let response = self.send(&url, &Auth::Basic).await?;
        if !response.status().is_success() {
            return Err(HttpError::from_response("GET", url.as_str(), response).await);
        }
        let body = response.bytes().await.map_err(|e| body_error(&url, &e))?;
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            // Not echoed: a token response is a credential.
            HttpError::from_body("GET", url.as_str(), "", &e)
        })?;
        match value.get("auth_token").and_then(Value::as_str) {
            Some(token) if !token.is_empty() => Ok(Token {
                secret: Secret::new(token),
                renew_at: None,
                refresh: None,
            }),
            _ => Err(HttpError::new(
                "GET",
                url.as_str(),
                ErrorKind::Decode,
                "the response has no `auth_token`",
            )),
        }
    }

    /// Adds what the operator needs to fix a failed first page.
    fn explain(
        &self,
        mut error: HttpError,
        collection: &str,
        attributes: &[String],
        filters: &[String],
    ) -> HttpError {
        let hint = match error.status {
            Some(400) => {
                const INVALID: &str = "Invalid attributes specified: ";
                if let Some(at) = error.message.find(INVALID) {
                    let named: Vec<&str> = error.message[at + INVALID.len()..]
                        .split(',')
                        .map(str::trim)
                        .collect();
                    let ours: Vec<String> = attributes
                        .iter()
                        .filter(|a| named.contains(&a.as_str()))
                        .map(|a| format!("`{a}`"))
                        .collect();
                    let ours = if ours.is_empty() {
                        named.iter().map(|a| format!("`{a}`")).collect()
                    } else {
                        ours
                    };
                    Some(format!(
                        "the mapping's source attribute {} is unknown to CloudForms `{collection}` \
                         (OPTIONS /api/{collection} lists the valid ones)",
                        ours.join(", ")
                    ))
                } else if filters.is_empty() {
                    None
                } else {
                    let sent: Vec<String> = filters.iter().map(|f| format!("`{f}`")).collect();
                    Some(format!("filters sent: {}", sent.join(", ")))
                }
            }
            Some(401) => Some(format!(
                "check the CloudForms user `{}` and its password{}",
                self.user,
                if self.group.is_some() {
                    " and group"
                } else {
                    ""
                }
            )),
            Some(403) => Some(format!(
                "the user `{}` may not list `{collection}`: check its role",
                self.user
            )),
            _ => None,
        };
        if let Some(hint) = hint {
            error.message = format!("{} ({hint})", error.message);
        }
        error
    }
}

/// A 2xx body that could not be read to its end. reqwest calls a connection reset
/// mid-body a "decode" error when the body passes through its gzip decoder, but the JSON is
/// decoded by us later: whatever broke here was the transfer, and a retry may well succeed.
fn body_error(url: &Url, error: &reqwest::Error) -> HttpError {
    let mut error = HttpError::from_reqwest("GET", url.as_str(), error);
    if error.kind == ErrorKind::Decode {
        error.kind = ErrorKind::Interrupted;
    }
    error
}

/// `X-MIQ-Group`: as is when ASCII, else URL-encoded (the server decodes it).
fn group_header(group: &str) -> Result<HeaderValue, String> {
    let text = if group.is_ascii() {
        group.to_owned()
    } else {
        url::form_urlencoded::byte_serialize(group.as_bytes()).collect()
    };
    HeaderValue::from_str(&text)
        .map_err(|_| format!("group `{group}` cannot be sent as the X-MIQ-Group header"))
}

/// An error message may quote the token the server refused; it must not reach a log.
fn redact_token(mut error: HttpError, token: &Secret) -> HttpError {
    if !token.expose().is_empty() && error.message.contains(token.expose()) {
        error.message = error.message.replace(token.expose(), "********");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let cfg = CloudFormsConfig::new("https://cf", "admin", Secret::new("smartvm"));
        assert!(cfg.use_token);
        assert_eq!(cfg.page_size, 1000);
        assert_eq!(cfg.concurrency, 4);
        assert_eq!(cfg.group, None);
        assert!(!format!("{cfg:?}").contains("smartvm"));
    }

    #[test]
    fn groups_are_url_encoded_only_when_not_ascii() {
        assert_eq!(
            group_header("EvmGroup-super_administrator").unwrap(),
            "EvmGroup-super_administrator"
        );
        assert_eq!(
            group_header("Opérateurs réseau").unwrap(),
            "Op%C3%A9rateurs+r%C3%A9seau"
        );
        assert!(group_header("bad\nname").is_err());
    }

    #[test]
    fn refused_tokens_are_redacted_from_messages() {
        let token = Secret::new("0123abcd");
        let error = HttpError::new(
            "GET",
            "http://h/api/vms",
            ErrorKind::Status,
            "401 Unauthorized: Invalid Authentication Token 0123abcd specified",
        );
        let error = redact_token(error, &token);
        assert_eq!(
            error.message,
            "401 Unauthorized: Invalid Authentication Token ******** specified"
        );
    }

    #[test]
    fn the_client_prints_without_secrets() {
        let mut cfg = CloudFormsConfig::new("https://u:pw@cf/", "admin", Secret::new("smartvm"));
        cfg.group = Some("ops".into());
        let text = format!("{:?}", CloudForms::new(cfg).unwrap());
        assert!(
            text.contains("https://cf/api") && text.contains("admin"),
            "{text}"
        );
        assert!(!text.contains("smartvm") && !text.contains("pw"), "{text}");
    }

    #[test]
    fn a_bad_url_is_a_client_error_without_credentials() {
        let cfg = CloudFormsConfig::new("not a url", "admin", Secret::new("pw"));
        let err = CloudForms::new(cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not a URL"), "{err}");
        let cfg = CloudFormsConfig::new("ftp://u:pw@h", "admin", Secret::new("pw"));
        let err = CloudForms::new(cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("http or https") && !err.contains("pw"),
            "{err}"
        );
    }
}
