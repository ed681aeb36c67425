//! ServiceNow simulator: the Table, Batch, Attachment, CMDB Instance, tiny URL, OAuth and
//! Service Catalog (`order_now`, [`catalog`]) APIs
//! over an in-memory instance whose tables follow a data dictionary, speaking raw JSON as an
//! instance does.
//!
//! Layout: [`schema`] is the dictionary (`schema.toml`: tables, parents, columns, defaults,
//! choices), [`store`] holds the rows and runs the write rules, [`query`] parses and
//! evaluates encoded queries, [`render`] turns rows into JSON per the display options,
//! [`table`], [`batch`], [`attachment`], [`change`] (the change request state model), [`cmdb`] and [`tinyurl`] serve those APIs, [`auth`]
//! checks credentials and issues OAuth tokens, and [`api`] ties requests to handlers
//! independently of axum so that batch items and direct calls share one code path.
//!
//! Absolute URLs (`Link`, `Location`, reference links) need the scheme the client used, which
//! an HTTP/1.1 request over TLS does not carry: serve [`ServiceNow::https_router`] on the TLS
//! listener and [`ServiceNow::router`] on the plain one.

mod api;
mod attachment;
mod auth;
mod batch;
mod catalog;
mod change;
mod cmdb;
mod query;
mod render;
mod schema;
mod store;
mod table;
mod tinyurl;

use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use chrono_tz::Tz;
use serde_json::{Map, Value};

use self::api::ApiRequest;
use self::auth::Auth;
use self::store::{string_fields, Stamp, Store};

/// Largest request body accepted: a PySNC `update_multiple` over thousands of CIs is one batch.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// Who seeded and state-file rows are stamped as when they lack `sys_created_by`.
const SYSTEM_USER: &str = "system";

/// Who [`ServiceNow::update_row`]'s hand edits are stamped as.
const HAND_EDIT_USER: &str = "admin";

/// Settings of one simulated ServiceNow instance. `Debug` shows user and client names only,
/// never their secrets.
#[derive(Clone)]
pub struct SnowConfig {
    /// Basic-auth users, also accepted by the OAuth password grant: (user name, password).
    pub users: Vec<(String, String)>,
    /// OAuth clients: (client id, client secret).
    pub oauth_clients: Vec<(String, String)>,
    /// Lifetime of an OAuth access token, in seconds.
    pub token_ttl_secs: u64,
    /// Where [`ServiceNow::save_state`] writes the tables and [`ServiceNow::new`] reads them.
    pub state_file: Option<PathBuf>,
    /// The property `glide.invalid_query.returns_no_rows`: a query with an invalid part (an
    /// unknown field) returns no rows instead of ignoring the part. False on a new instance
    /// (c_TableAPI.md).
    pub invalid_query_returns_no_rows: bool,
    /// The property `glide.sys.default.tz`, the time zone of users without one; `None` (empty,
    /// as on a new instance) means America/Los_Angeles (t_SetASystemTimeZone.md).
    pub system_time_zone: Option<Tz>,
}

impl Default for SnowConfig {
    fn default() -> Self {
        Self {
            users: vec![("admin".into(), "admin".into())],
            oauth_clients: vec![("cmdb-reconcile".into(), "secret".into())],
            token_ttl_secs: 1799,
            state_file: None,
            invalid_query_returns_no_rows: false,
            system_time_zone: None,
        }
    }
}

impl std::fmt::Debug for SnowConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(name, _)| name.clone()).collect()
        };
        f.debug_struct("SnowConfig")
            .field("users", &names(&self.users))
            .field("oauth_clients", &names(&self.oauth_clients))
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("state_file", &self.state_file)
            .field(
                "invalid_query_returns_no_rows",
                &self.invalid_query_returns_no_rows,
            )
            .field("system_time_zone", &self.system_time_zone)
            .finish()
    }
}

/// A simulated ServiceNow instance; cheap to clone (clones share the state).
#[derive(Clone)]
pub struct ServiceNow {
    inner: Arc<Inner>,
}

/// The state behind every clone and every route.
pub(crate) struct Inner {
    state_file: Option<PathBuf>,
    store: RwLock<Store>,
    auth: Auth,
    /// Items a batch runs before the rest go to `unserviced_requests`.
    batch_max_items: AtomicUsize,
    invalid_query_returns_no_rows: AtomicBool,
    system_time_zone: Tz,
}

impl Inner {
    pub(crate) fn invalid_query_returns_no_rows(&self) -> bool {
        self.invalid_query_returns_no_rows.load(Ordering::Relaxed)
    }

    /// The time zone of `user_name`'s display values: their `sys_user.time_zone`, else the
    /// system's.
    pub(crate) fn user_time_zone(&self, store: &Store, user_name: &str) -> Tz {
        store
            .user(user_name)
            .map(|(class, row)| store.value(class, row, "time_zone"))
            .and_then(|zone| zone.parse().ok())
            .unwrap_or(self.system_time_zone)
    }

    pub(crate) fn read_store(&self) -> RwLockReadGuard<'_, Store> {
        // A panic elsewhere never leaves a row half-written (writes are single inserts or
        // assignments), so a poisoned lock's data is still sound.
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_store(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn batch_max_items(&self) -> usize {
        self.batch_max_items.load(Ordering::Relaxed)
    }
}

/// What every route's handler gets.
#[derive(Clone)]
pub(crate) struct RouteState {
    snow: ServiceNow,
    /// `http` or `https`, for absolute URLs.
    scheme: &'static str,
}

fn load_state(path: Option<&Path>) -> std::io::Result<Store> {
    let mut store = Store::new();
    let Some(path) = path.filter(|p| p.exists()) else {
        return Ok(store);
    };
    let invalid = |e: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("reading state file `{}`: {e}", path.display()),
        )
    };
    let text = std::fs::read(path)?;
    let dump: Value = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
    store
        .load_json(&dump, &Stamp::now(SYSTEM_USER))
        .map_err(invalid)?;
    Ok(store)
}

impl ServiceNow {
    /// A new instance, loading `cfg.state_file` when it exists. A state file that cannot be
    /// read is logged and the instance starts empty; use [`ServiceNow::try_new`] to fail
    /// instead.
    pub fn new(cfg: SnowConfig) -> Self {
        let store = load_state(cfg.state_file.as_deref()).unwrap_or_else(|e| {
            tracing::error!("servicenow simulator starts empty: {e}");
            Store::new()
        });
        Self::with_store(cfg, store)
    }

    /// Like [`ServiceNow::new`], but a state file that exists and cannot be loaded is an error.
    pub fn try_new(cfg: SnowConfig) -> std::io::Result<Self> {
        let store = load_state(cfg.state_file.as_deref())?;
        Ok(Self::with_store(cfg, store))
    }

    fn with_store(cfg: SnowConfig, store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                auth: Auth::new(&cfg),
                state_file: cfg.state_file,
                store: RwLock::new(store),
                batch_max_items: AtomicUsize::new(usize::MAX),
                invalid_query_returns_no_rows: AtomicBool::new(cfg.invalid_query_returns_no_rows),
                system_time_zone: cfg.system_time_zone.unwrap_or(Tz::America__Los_Angeles),
            }),
        }
    }

    /// Adds rows to `table` as given (values stringified), filling `sys_id` when absent and
    /// the other system fields (`sys_created_on`, `sys_updated_on`, `sys_mod_count`, ...) the
    /// rows lack; no other defaults. A row whose `sys_class_name` names a table extending
    /// `table` goes to that table. Fields the table does not have are dropped; a table the
    /// instance does not have is created as a custom table of string columns, the way an
    /// administrator creates a table, with a column for each field seeded. A row with the
    /// sys_id of an existing one replaces it.
    pub fn seed(&self, table: &str, rows: Vec<Map<String, Value>>) {
        let stamp = Stamp::now(SYSTEM_USER);
        let mut store = self.inner.write_store();
        for row in rows {
            store.load(table, string_fields(&row), &stamp);
        }
    }

    /// All routes, for a plain-HTTP listener; no fault or stats layers.
    pub fn router(&self) -> Router {
        self.router_with_scheme("http")
    }

    /// The same routes for a TLS listener: absolute URLs in responses say `https`.
    pub fn https_router(&self) -> Router {
        self.router_with_scheme("https")
    }

    fn router_with_scheme(&self, scheme: &'static str) -> Router {
        Router::new()
            .route("/oauth_token.do", post(auth::token_endpoint))
            .route("/api/now/{*path}", any(api_endpoint))
            .route("/api/sn_sc/{*path}", any(api_endpoint))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(RouteState {
                snow: self.clone(),
                scheme,
            })
    }

    /// Every table holding rows as `{"table": [rows...]}` (tables by name, rows by sys_id;
    /// each row in the table of its class, with every column of it).
    pub fn dump(&self) -> Value {
        self.inner.read_store().dump()
    }

    /// Writes [`ServiceNow::dump`] to the state file, if one is configured, replacing it
    /// atomically so that a crash never leaves half a file.
    pub fn save_state(&self) -> std::io::Result<()> {
        let Some(path) = &self.inner.state_file else {
            return Ok(());
        };
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
            self.inner.read_store().write_json(&mut out)?;
            out.flush()?;
            drop(out);
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("writing state file `{}`: {e}", path.display()),
            )
        })
    }

    /// The rows of `table` and of the tables extending it, in sys_id order, each with every
    /// column of its own class (empty for a table the instance does not have).
    pub fn rows(&self, table: &str) -> Vec<Map<String, Value>> {
        let store = self.inner.read_store();
        store.table(table).map_or_else(Vec::new, |t| {
            store
                .rows(t, false)
                .map(|(class, row)| store.to_json(class, row))
                .collect()
        })
    }

    /// One row of `table` (or of a table extending it), with every column of its class.
    pub fn get(&self, table: &str, sys_id: &str) -> Option<Map<String, Value>> {
        let store = self.inner.read_store();
        let (class, row) = store.find(store.table(table)?, sys_id)?;
        Some(store.to_json(class, row))
    }

    /// How many rows `table` and the tables extending it hold.
    pub fn count(&self, table: &str) -> usize {
        let store = self.inner.read_store();
        store.table(table).map_or(0, |t| store.count(t))
    }

    /// The names of the tables the instance has, sorted.
    pub fn tables(&self) -> Vec<String> {
        self.inner.read_store().table_names()
    }

    /// Sets the property `glide.invalid_query.returns_no_rows` (see [`SnowConfig`]).
    pub fn set_invalid_query_returns_no_rows(&self, on: bool) {
        self.inner
            .invalid_query_returns_no_rows
            .store(on, Ordering::Relaxed);
    }

    /// Changes a row (of `table` or a table extending it) as an operator's hand edit would:
    /// system fields are left to the instance, which bumps `sys_mod_count` and
    /// `sys_updated_on` if anything changed. False when there is no such row.
    pub fn update_row(&self, table: &str, sys_id: &str, fields: Map<String, Value>) -> bool {
        let mut store = self.inner.write_store();
        let Some(table) = store.table(table) else {
            return false;
        };
        store
            .update(
                table,
                sys_id,
                string_fields(&fields),
                &Stamp::now(HAND_EDIT_USER),
            )
            .is_some()
    }

    /// The approvers' decision on a change request (or a table extending it), as the
    /// instance's approval flow records it ([`change`]): `approved` moves a change waiting
    /// in Assess or Authorize to Scheduled, anything else (`rejected`) sends it back to New.
    /// Either way `approval` holds the decision. False when there is no such change or it
    /// is not waiting for approval (not in Assess or Authorize).
    pub fn decide_change(&self, sys_id: &str, approved: bool) -> bool {
        let mut store = self.inner.write_store();
        let Some(table) = store.table("change_request") else {
            return false;
        };
        let waiting = store.find(table, sys_id).is_some_and(|(class, row)| {
            matches!(
                store.value(class, row, "state"),
                change::ASSESS | change::AUTHORIZE
            )
        });
        if !waiting {
            return false;
        }
        let (approval, state) = if approved {
            ("approved", change::SCHEDULED)
        } else {
            ("rejected", change::NEW)
        };
        let fields = vec![
            ("approval".to_owned(), approval.to_owned()),
            ("state".to_owned(), state.to_owned()),
        ];
        store
            .update(table, sys_id, fields, &Stamp::now(HAND_EDIT_USER))
            .is_some()
    }

    /// Removes a row (of `table` or a table extending it); false when there was none.
    pub fn delete_row(&self, table: &str, sys_id: &str) -> bool {
        let mut store = self.inner.write_store();
        store.table(table).is_some_and(|t| store.delete(t, sys_id))
    }

    /// Caps the items one batch request runs; the rest are returned as `unserviced_requests`.
    /// `None` (the default) runs them all.
    pub fn set_batch_max_items(&self, max: Option<usize>) {
        self.inner
            .batch_max_items
            .store(max.unwrap_or(usize::MAX), Ordering::Relaxed);
    }
}

/// `scheme://host[:port]` as the client addressed us.
fn base_url(default_scheme: &str, uri: &Uri, headers: &HeaderMap) -> String {
    let scheme = uri.scheme_str().unwrap_or(default_scheme);
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// Every `/api/now/...` call: authenticate, then dispatch.
async fn api_endpoint(
    State(state): State<RouteState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &state.snow.inner;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(user) = inner.auth.authenticate(authorization, Instant::now()) else {
        return auth::unauthenticated().into_response();
    };
    let base_url = base_url(state.scheme, &uri, &headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let req = ApiRequest {
        method,
        path: uri.path(),
        query,
        body: &body,
        content_type,
        user: &user,
        base_url: &base_url,
    };
    api::dispatch(inner, &req, false).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_secrets() {
        let cfg = SnowConfig {
            users: vec![("ann".into(), "hunter2".into())],
            oauth_clients: vec![("app".into(), "s3cr3t".into())],
            ..SnowConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(shown.contains("ann") && shown.contains("app"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn state_write_errors_name_the_file() {
        let path = std::env::temp_dir()
            .join(format!("cmdb-sim-missing-{}", uuid::Uuid::new_v4()))
            .join("state.json");
        let snow = ServiceNow::new(SnowConfig {
            state_file: Some(path.clone()),
            ..SnowConfig::default()
        });
        let err = snow.save_state().expect_err("no such directory");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        // Without a state file there is nothing to write.
        assert!(ServiceNow::new(SnowConfig::default()).save_state().is_ok());
    }

    #[test]
    fn base_url_prefers_the_request_authority() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8443".parse().expect("header"));
        let origin_form: Uri = "/api/now/table/x".parse().expect("uri");
        assert_eq!(
            base_url("https", &origin_form, &headers),
            "https://127.0.0.1:8443"
        );
        let absolute: Uri = "http://localhost:9/api/now/table/x".parse().expect("uri");
        assert_eq!(base_url("https", &absolute, &headers), "http://localhost:9");
        assert_eq!(
            base_url("http", &origin_form, &HeaderMap::new()),
            "http://localhost"
        );
    }
}
