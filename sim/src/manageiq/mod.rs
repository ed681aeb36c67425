//! The ManageIQ (CloudForms) REST API simulator: authentication, the entry
//! point, `/api/vms` and `/api/templates` with the real server's query
//! language and response shapes, and the smaller collections a
//! reconciliation might read, and the provisioning requests (`/api/requests`,
//! `/api/provision_requests`, `/api/service_requests`, their `request_tasks`; see
//! `manageiq/requests.rs`). It serves a generated [`Estate`], read-only but for [`ManageIq::vmotion`]
//! (also `POST /_sim/manageiq/vmotion`), which moves a VM to another host and datastore
//! between two runs, and [`ManageIq::advance_requests`] / [`ManageIq::add_request`] (also
//! `POST /_sim/manageiq/requests/advance`, `POST /_sim/manageiq/requests`), which move the
//! requests through ManageIQ's state machine and add the VMs they create. The service
//! catalog (`/api/service_catalogs`, `/api/service_templates`, see
//! `manageiq/service_catalog.rs`) takes orders (`{"action":"order"}`, also
//! [`ManageIq::order_service`]), each a new service request in that state machine.
//!
//! Fidelity notes (each mirrors manageiq-api, see the reference document):
//! ids and `*_id` columns are strings; NULL physical columns are left out of
//! records while NULL virtual attributes are rendered; `count` ignores
//! filters; `links.last` points past the end when the total is a multiple of
//! the limit; unknown routes answer Rails' `{"status":404,"error":"Not Found"}`.

mod auth;
mod catalog;
mod entrypoint;
mod error;
mod field;
mod filter;
mod flat;
mod query;
mod render;
mod requests;
mod service_catalog;
mod vms;

pub use error::MiqError;

use crate::generator::{iso, Advanced, Estate, NewRequest, OrderError, Stage};
use auth::Authenticator;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use flat::FlatCollection;
use query::CollectionQuery;
use render::{ok_json, CollectionBody};
use serde_json::{json, Value};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use vms::{Kind, ListRequest, Plan, SelectionCache, VmView};

/// Credentials and session settings of the simulated appliance.
#[derive(Debug, Clone)]
pub struct MiqConfig {
    pub user: String,
    pub password: String,
    /// The user's group; `X-MIQ-Group` must name it when sent.
    pub group: String,
    /// Lifetime of an `X-Auth-Token` (sliding).
    pub token_ttl: Duration,
}

impl Default for MiqConfig {
    /// The appliance's factory login, `admin` / `smartvm`.
    fn default() -> Self {
        MiqConfig {
            user: "admin".into(),
            password: "smartvm".into(),
            group: "EvmGroup-super_administrator".into(),
            token_ttl: Duration::from_secs(600),
        }
    }
}

/// The simulator. Cheap to clone.
#[derive(Clone)]
pub struct ManageIq {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced whole by a vMotion (copy on write): a request keeps the snapshot it started with.
    live: RwLock<Arc<Live>>,
    auth: Authenticator,
    flat: Vec<FlatCollection>,
    /// `/api/providers/:id/folders`, by provider id.
    folders: Vec<(u64, FlatCollection)>,
}

/// An estate and the listings computed from it, replaced together.
struct Live {
    estate: Arc<Estate>,
    selections: SelectionCache,
}

/// Where [`ManageIq::vmotion`] put a VM (ids as served).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    pub vm: u64,
    pub host: u64,
    pub ems_cluster: u64,
    pub storage: u64,
}

#[derive(Clone)]
struct AuthUser(String);

impl ManageIq {
    pub fn new(estate: Arc<Estate>, cfg: MiqConfig) -> Self {
        let flat = flat::collections(&estate);
        let folders = flat::folders(&estate);
        ManageIq {
            inner: Arc::new(Inner {
                auth: Authenticator::new(&cfg.user, &cfg.password, &cfg.group, cfg.token_ttl),
                live: RwLock::new(Arc::new(Live {
                    estate,
                    selections: SelectionCache::default(),
                })),
                flat,
                folders,
            }),
        }
    }

    fn live(&self) -> Arc<Live> {
        self.inner
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The estate as served now (after any vMotion).
    pub fn estate(&self) -> Arc<Estate> {
        self.live().estate.clone()
    }

    /// Moves VM `vm_id` (a `/api/vms` id) to host `host_id` of the same provider, as a vMotion
    /// does: its `host_id`, `ems_cluster_id`, `v_owning_datacenter` and relations follow. With
    /// `storage_id` (a datastore of that provider) it moves storage too (a Storage vMotion);
    /// without it, it keeps its datastore when the new cluster has it, else takes the new
    /// cluster's first one. Disk file names follow the datastore.
    pub fn vmotion(
        &self,
        vm_id: u64,
        host_id: u64,
        storage_id: Option<u64>,
    ) -> Result<Placement, String> {
        let mut live = self
            .inner
            .live
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut estate = Estate::clone(&live.estate);
        let e = &mut estate;
        let v = e
            .vms
            .binary_search_by_key(&vm_id, |vm| vm.id)
            .map_err(|_| format!("no VM with id {vm_id}"))?;
        let ems = e.vms[v]
            .ems
            .ok_or_else(|| format!("VM {vm_id} has no provider (archived or orphaned)"))?;
        let h = e
            .hosts
            .iter()
            .position(|h| h.id == host_id)
            .ok_or_else(|| format!("no host with id {host_id}"))?;
        if e.hosts[h].ems != ems {
            return Err(format!(
                "host {host_id} is not in VM {vm_id}'s provider (ems {})",
                e.providers[ems].id
            ));
        }
        let cluster = e.hosts[h].cluster;
        let storage = match storage_id {
            Some(id) => {
                let s = e
                    .storages
                    .iter()
                    .position(|s| s.id == id)
                    .ok_or_else(|| format!("no datastore with id {id}"))?;
                if e.clusters[e.storages[s].cluster].ems != ems {
                    return Err(format!(
                        "datastore {id} is not in VM {vm_id}'s provider (ems {})",
                        e.providers[ems].id
                    ));
                }
                s
            }
            None => match e.vms[v].storage {
                Some(s) if e.storages[s].cluster == cluster => s,
                _ => e
                    .storages
                    .iter()
                    .position(|s| s.cluster == cluster)
                    .ok_or_else(|| format!("cluster of host {host_id} has no datastore"))?,
            },
        };
        let (old_ds, new_ds) = (
            e.vms[v]
                .storage
                .map(|s| format!("[{}] ", e.storages[s].name)),
            format!("[{}] ", e.storages[storage].name),
        );
        let datacenter = e.clusters[cluster].datacenter;
        let vm = &mut e.vms[v];
        vm.host = Some(h);
        vm.cluster = Some(cluster);
        vm.datacenter = Some(datacenter);
        vm.storage = Some(storage);
        if let Some(old) = old_ds {
            for d in &mut vm.disks {
                if let Some(rest) = d.filename.strip_prefix(&old) {
                    d.filename = format!("{new_ds}{rest}");
                }
            }
        }
        let placement = Placement {
            vm: vm_id,
            host: e.hosts[h].id,
            ems_cluster: e.clusters[cluster].id,
            storage: e.storages[storage].id,
        };
        *live = Arc::new(Live {
            estate: Arc::new(estate),
            selections: SelectionCache::default(),
        });
        Ok(placement)
    }

    /// Applies `change` to a copy of the estate and serves the copy from now on (a request
    /// already running keeps the snapshot it started with).
    /// `skip` answers instead, without copying, when it returns `Some` for the current estate
    /// (a copy of 100,000 VMs is not free).
    fn mutate<T>(
        &self,
        skip: impl FnOnce(&Estate) -> Option<T>,
        change: impl FnOnce(&mut Estate) -> T,
    ) -> T {
        let mut live = self
            .inner
            .live
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(out) = skip(&live.estate) {
            return out;
        }
        let mut estate = Estate::clone(&live.estate);
        let out = change(&mut estate);
        *live = Arc::new(Live {
            estate: Arc::new(estate),
            selections: SelectionCache::default(),
        });
        out
    }

    /// Moves every unfinished provisioning request one step through ManageIQ's state machine
    /// (see [`crate::generator::requests`]): awaiting approval -> approved, tasks pending (or,
    /// fated `Denied`, denied: approval_state denied, finished, status Denied); pending ->
    /// active; active -> finished with its fate, rolled up as `MiqRequest#update_request_status`
    /// does. A task finishing `Ok` or `Warn` creates its VM, listed at `/api/vms` from now on.
    /// Every request that moves gets `updated_on` = now (the real clock, whole seconds),
    /// always later than any `updated_on` before, so `filter[]=updated_on>last` finds it.
    /// Also `POST /_sim/manageiq/requests/advance`.
    pub fn advance_requests(&self) -> Advanced {
        let idle = |e: &Estate| {
            let moving = e.requests.iter().any(|r| r.stage != Stage::Finished);
            (!moving).then(|| Advanced {
                updated_on: next_stamp(e),
                ..Advanced::default()
            })
        };
        self.mutate(idle, |e| {
            let stamp = next_stamp(e);
            e.advance_requests(&stamp)
        })
    }

    /// Queues a new request awaiting approval (`pending_approval`, `pending`, status Ok),
    /// created now; its `fate` decides how advancing ends it. Returns its id. Also
    /// `POST /_sim/manageiq/requests`.
    pub fn add_request(&self, new: NewRequest) -> Result<u64, String> {
        self.mutate(
            |_| None,
            |e| {
                let stamp = next_stamp(e);
                e.add_request(new, &stamp)
            },
        )
    }

    /// Orders service template `template_id` (of `/api/service_templates`) with `dialog` (keys
    /// `dialog_*`, see [`crate::generator::dialog_values`]) as `userid` (`None` or a userid
    /// the estate lacks: the first requester), as `POST /api/service_templates/:id
    /// {"action":"order",...}` does: a service request awaiting approval, created now, whose
    /// fate is the template's ("Failing VM" ends finished/Error). Returns its id.
    pub fn order_service(
        &self,
        template_id: u64,
        dialog: serde_json::Map<String, Value>,
        userid: Option<String>,
    ) -> Result<u64, OrderError> {
        let missing = |e: &Estate| {
            (!e.service_templates.iter().any(|t| t.id == template_id))
                .then_some(Err(OrderError::NotFound))
        };
        self.mutate(missing, |e| {
            let stamp = next_stamp(e);
            e.order_service(template_id, dialog, userid, &stamp)
        })
    }

    /// Approves (`approve`) or denies request `id` awaiting approval, as the `approve` /
    /// `deny` action of `POST /api/requests/:id` does (see
    /// [`crate::generator::Estate::decide_request`]); `updated_on` = now.
    pub fn decide_request(&self, id: u64, approve: bool) -> Result<(), String> {
        self.mutate(
            |e| {
                (!e.requests.iter().any(|r| r.id == id))
                    .then(|| Err(format!("no request with id {id}")))
            },
            |e| {
                let stamp = next_stamp(e);
                e.decide_request(id, approve, &stamp)
            },
        )
    }

    /// The simulator's control routes (no authentication, as `/_sim/faults`):
    /// `POST /_sim/manageiq/vmotion` with `{"vm": id, "host": id, "storage": id}` (`storage`
    /// optional; ids as numbers or strings) answers the new placement, or 400 naming the problem.
    /// `POST /_sim/manageiq/requests/advance` ([`ManageIq::advance_requests`]) answers
    /// `{"updated_on": "...Z", "requests": [ids that moved], "vms": [ids of VMs created]}`;
    /// `POST /_sim/manageiq/requests` with `{"vm_name": "...", "fate": "Ok"|"Warn"|"Error"|
    /// "Timeout"|"Denied", "userid": "...", "type": "provision"|"service", "template": id}`
    /// (all but `vm_name` optional: fate Ok, the first requester, provision, the first
    /// template) queues a request ([`ManageIq::add_request`]) and answers it as
    /// `/api/requests/:id` renders it, or 400 naming the problem.
    pub fn control_router(&self) -> Router {
        Router::new()
            .route("/_sim/manageiq/vmotion", post(vmotion))
            .route("/_sim/manageiq/requests/advance", post(advance_requests))
            .route("/_sim/manageiq/requests", post(add_request))
            .with_state(self.clone())
    }

    /// All API routes under `/api`; no fault or stats layers.
    pub fn router(&self) -> Router {
        let mut api = Router::new()
            .route("/api", get(entry_point))
            .route("/api/auth", get(auth_token).delete(auth_logout))
            .route("/api/vms", get(list_vms).options(vm_options))
            .route("/api/vms/{id}", get(show_vm))
            .route("/api/vms/{id}/tags", get(vm_tags))
            .route("/api/vms/{id}/custom_attributes", get(vm_custom_attributes))
            .route("/api/templates", get(list_templates))
            .route("/api/templates/{id}", get(show_template))
            .route("/api/providers/{id}/folders", get(list_folders))
            .route("/api/providers/{id}/folders/{folder}", get(show_folder));
        for name in requests::COLLECTIONS {
            api = api
                .route(
                    &format!("/api/{name}"),
                    get(move |s: State<ManageIq>, h: HeaderMap, u: Uri| {
                        list_requests(s, h, u, name)
                    }),
                )
                .route(
                    &format!("/api/{name}/{{id}}"),
                    get(
                        move |s: State<ManageIq>, h: HeaderMap, u: Uri, p: Path<String>| {
                            show_request(s, h, u, p, name)
                        },
                    )
                    .post(
                        move |s: State<ManageIq>,
                              h: HeaderMap,
                              p: Path<String>,
                              b: axum::body::Bytes| {
                            request_action(s, h, p, b, name)
                        },
                    ),
                )
                .route(
                    &format!("/api/{name}/{{id}}/request_tasks"),
                    get(
                        move |s: State<ManageIq>, h: HeaderMap, u: Uri, p: Path<String>| {
                            list_request_tasks(s, h, u, p, name)
                        },
                    ),
                )
                .route(
                    &format!("/api/{name}/{{id}}/request_tasks/{{task}}"),
                    get(
                        move |s: State<ManageIq>,
                              h: HeaderMap,
                              u: Uri,
                              p: Path<(String, String)>| {
                            show_request_task(s, h, u, p, name)
                        },
                    ),
                );
        }
        api = api
            .route("/api/service_catalogs", get(list_catalogs))
            .route("/api/service_catalogs/{id}", get(show_catalog))
            .route(
                "/api/service_catalogs/{id}/service_templates",
                get(list_catalog_templates).post(order_in_catalog_bulk),
            )
            .route(
                "/api/service_catalogs/{id}/service_templates/{sid}",
                get(show_catalog_template).post(order_in_catalog),
            )
            .route(
                "/api/service_templates",
                get(list_templates_of_catalogs).post(order_bulk),
            )
            .route(
                "/api/service_templates/{id}",
                get(show_service_template).post(order_template),
            );
        api = api
            .route("/api/request_tasks", get(list_all_tasks))
            .route("/api/request_tasks/{id}", get(show_any_task));
        for index in 0..self.inner.flat.len() {
            let name = self.inner.flat[index].name;
            api = api
                .route(
                    &format!("/api/{name}"),
                    get(move |s: State<ManageIq>, h: HeaderMap, u: Uri| list_flat(s, h, u, index)),
                )
                .route(
                    &format!("/api/{name}/{{id}}"),
                    get(
                        move |s: State<ManageIq>, h: HeaderMap, u: Uri, p: Path<String>| {
                            show_flat(s, h, u, p, index)
                        },
                    ),
                );
        }
        api.route_layer(middleware::from_fn_with_state(self.clone(), require_auth))
            .method_not_allowed_fallback(unsupported_method)
            .fallback(|| async { error::route_not_found() })
            .with_state(self.clone())
    }
}

async fn require_auth(State(miq): State<ManageIq>, mut req: Request, next: Next) -> Response {
    match miq.inner.auth.check(req.headers()) {
        Ok(user) => {
            req.extensions_mut().insert(AuthUser(user));
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn unsupported_method(method: Method, uri: Uri) -> Response {
    let collection = uri.path().trim_start_matches("/api/");
    MiqError::bad_request(format!(
        "Unsupported HTTP Method {} for the Collection {collection} specified",
        method.as_str().to_lowercase()
    ))
    .into_response()
}

/// `http://host:port` as the client addressed us (hrefs are built from it).
fn base_url(headers: &HeaderMap) -> String {
    let host = auth::header(headers, "host").unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// The request URL as received, for `links`.
fn request_url(base: &str, uri: &Uri) -> String {
    match uri.query() {
        Some(q) => format!("{base}{}?{q}", uri.path()),
        None => format!("{base}{}", uri.path()),
    }
}

async fn entry_point(
    State(miq): State<ManageIq>,
    Extension(AuthUser(user)): Extension<AuthUser>,
    headers: HeaderMap,
) -> Response {
    let base = base_url(&headers);
    ok_json(&entrypoint::entry_point(
        &base,
        &user,
        miq.inner.auth.group(),
        &miq.estate(),
    ))
}

async fn auth_token(
    State(miq): State<ManageIq>,
    Extension(AuthUser(user)): Extension<AuthUser>,
) -> Response {
    let issued = miq.inner.auth.issue(&user);
    ok_json(&json!({
        "auth_token": issued.token,
        "token_ttl": issued.ttl_secs,
        "expires_on": issued.expires_on.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }))
}

async fn auth_logout(State(miq): State<ManageIq>, headers: HeaderMap) -> StatusCode {
    if let Some(token) = auth::header(&headers, "x-auth-token") {
        miq.inner.auth.revoke(token);
    }
    StatusCode::NO_CONTENT
}

async fn vm_options() -> Response {
    ok_json(&entrypoint::vm_options())
}

async fn list_vms(state: State<ManageIq>, headers: HeaderMap, uri: Uri) -> Response {
    list(state, headers, uri, Kind::Vms).await
}

async fn list_templates(state: State<ManageIq>, headers: HeaderMap, uri: Uri) -> Response {
    list(state, headers, uri, Kind::Templates).await
}

/// Filtering and sorting a large estate is CPU work: keep it off the reactor.
async fn list(State(miq): State<ManageIq>, headers: HeaderMap, uri: Uri, kind: Kind) -> Response {
    let work = move || {
        let base = base_url(&headers);
        let url = request_url(&base, &uri);
        let q = CollectionQuery::parse(uri.query());
        let live = miq.live();
        let req = match ListRequest::new(kind, &q) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
        match vms::page_body(kind, &live.estate, &live.selections, &q, &req, &url, &base) {
            Ok(body) => ok_json(&body),
            Err(e) => e.into_response(),
        }
    };
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| internal(format!("list handler failed: {e}")))
}

fn internal(message: String) -> Response {
    MiqError::for_status(StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
}

/// Parses a resource id; the real server rejects non-numeric ones.
fn parse_id(collection: &str, id: &str) -> Result<u64, MiqError> {
    id.parse::<u64>()
        .map_err(|_| MiqError::bad_request(format!("Invalid {collection} id {id} specified")))
}

fn find_vm(estate: &Estate, kind: Kind, id: &str) -> Result<usize, MiqError> {
    let n = parse_id(kind.name(), id)?;
    kind.items(estate)
        .binary_search_by_key(&n, |vm| vm.id)
        .map_err(|_| kind.not_found(id))
}

async fn show_vm(
    state: State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    id: Path<String>,
) -> Response {
    show(state, headers, uri, id, Kind::Vms)
}

async fn show_template(
    state: State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    id: Path<String>,
) -> Response {
    show(state, headers, uri, id, Kind::Templates)
}

fn show(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    kind: Kind,
) -> Response {
    let q = CollectionQuery::parse(uri.query());
    let estate = miq.estate();
    let result = Plan::new(&q).and_then(|plan| Ok((plan, find_vm(&estate, kind, &id)?)));
    match result {
        Ok((plan, index)) => {
            let base = base_url(&headers);
            ok_json(&VmView {
                kind,
                vm: &kind.items(&estate)[index],
                estate: &estate,
                plan: &plan,
                base: &base,
            })
        }
        Err(e) => e.into_response(),
    }
}

async fn vm_tags(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let estate = miq.estate();
    let index = match find_vm(&estate, Kind::Vms, &id) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let base = base_url(&headers);
    let vm = &estate.vms[index];
    let tags = catalog::managed_tags(vm, &estate, &base, "vms");
    subcollection(
        &uri,
        "tags",
        tags,
        estate.tags.len(),
        &base,
        &["assign", "unassign"],
    )
}

async fn vm_custom_attributes(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let estate = miq.estate();
    let index = match find_vm(&estate, Kind::Vms, &id) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let base = base_url(&headers);
    let vm = &estate.vms[index];
    let list: Vec<Value> = vm
        .custom_attributes
        .iter()
        .map(|ca| catalog::custom_attribute_json(vm, ca, &base, "vms"))
        .collect();
    let count = list.len();
    subcollection(
        &uri,
        "custom_attributes",
        Value::Array(list),
        count,
        &base,
        &["add", "edit", "delete"],
    )
}

/// A VM's subcollection: hrefs only unless `expand=resources`; `actions`
/// are offered on the subcollection and on each expanded record.
fn subcollection(
    uri: &Uri,
    name: &'static str,
    records: Value,
    count: usize,
    base: &str,
    actions: &'static [&'static str],
) -> Response {
    let q = CollectionQuery::parse(uri.query());
    let records = match records {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    let resources: Vec<Value> = records
        .into_iter()
        .map(|mut r| {
            let href = r.get("href").cloned().unwrap_or(Value::Null);
            if !q.expands("resources") {
                return json!({ "href": href });
            }
            let list: Vec<Value> = actions
                .iter()
                .map(|a| json!({"name": a, "method": "post", "href": href}))
                .collect();
            if let Value::Object(m) = &mut r {
                m.insert("actions".into(), Value::Array(list));
            }
            r
        })
        .collect();
    ok_json(&CollectionBody {
        name,
        count: count as u64,
        subcount: resources.len() as u64,
        subquery_count: None,
        pages: None,
        resources: Some(resources),
        actions,
        collection_href: format!("{base}{}", uri.path()),
        links: Vec::new(),
    })
}

async fn list_flat(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    index: usize,
) -> Response {
    list_of(&miq.inner.flat[index], &headers, &uri)
}

fn list_of(collection: &FlatCollection, headers: &HeaderMap, uri: &Uri) -> Response {
    list_with(
        collection,
        headers,
        uri,
        &CollectionQuery::parse(uri.query()),
    )
}

fn list_with(
    collection: &FlatCollection,
    headers: &HeaderMap,
    uri: &Uri,
    q: &CollectionQuery,
) -> Response {
    let base = base_url(headers);
    let url = request_url(&base, uri);
    match collection.page(q, &url, &base) {
        Ok(body) => ok_json(&body),
        Err(e) => e.into_response(),
    }
}

async fn show_flat(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    index: usize,
) -> Response {
    show_of(&miq.inner.flat[index], &headers, &uri, &id)
}

/// A provider's folders subcollection, or the provider's 404.
fn provider_folders<'a>(miq: &'a ManageIq, provider: &str) -> Result<&'a FlatCollection, MiqError> {
    let n = parse_id("providers", provider)?;
    miq.inner
        .folders
        .iter()
        .find(|(id, _)| *id == n)
        .map(|(_, c)| c)
        .ok_or_else(|| {
            MiqError::record_not_found(format!(
                "Couldn't find ExtManagementSystem with 'id'={provider}"
            ))
        })
}

async fn list_folders(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(provider): Path<String>,
) -> Response {
    match provider_folders(&miq, &provider) {
        Ok(c) => list_of(c, &headers, &uri),
        Err(e) => e.into_response(),
    }
}

async fn show_folder(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path((provider, id)): Path<(String, String)>,
) -> Response {
    match provider_folders(&miq, &provider) {
        Ok(c) => show_of(c, &headers, &uri, &id),
        Err(e) => e.into_response(),
    }
}

fn show_of(collection: &FlatCollection, headers: &HeaderMap, uri: &Uri, id: &str) -> Response {
    show_with(
        collection,
        headers,
        &CollectionQuery::parse(uri.query()),
        id,
    )
}

fn show_with(
    collection: &FlatCollection,
    headers: &HeaderMap,
    q: &CollectionQuery,
    id: &str,
) -> Response {
    let found = parse_id(collection.name, id).and_then(|n| {
        collection.find(n).ok_or_else(|| {
            MiqError::record_not_found(format!("Couldn't find {} with 'id'={id}", collection.klass))
        })
    });
    let selection = match collection.selection(q) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    match found {
        Ok(i) => {
            let base = base_url(headers);
            ok_json(&collection.view(i, &selection, &base))
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /_sim/manageiq/vmotion`.
async fn vmotion(State(miq): State<ManageIq>, body: axum::body::Bytes) -> Response {
    fn id(body: &Value, key: &str) -> Option<u64> {
        match body.get(key)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
    let bad = |message: String| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": message})),
        )
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("body is not JSON: {e}")).into_response(),
    };
    let (Some(vm), Some(host)) = (id(&body, "vm"), id(&body, "host")) else {
        return bad("`vm` and `host` (ids) are required".into()).into_response();
    };
    let storage = id(&body, "storage");
    if body.get("storage").is_some_and(|s| !s.is_null()) && storage.is_none() {
        return bad("`storage` is not an id".into()).into_response();
    }
    match miq.vmotion(vm, host, storage) {
        Ok(p) => ok_json(&p),
        Err(e) => bad(e).into_response(),
    }
}

/// The next `updated_on` of the requests: now (whole seconds), or one second after the
/// latest one when the clock has not passed it (two steps in one second, or an estate
/// generated with a future `now`).
fn next_stamp(e: &Estate) -> String {
    let now = chrono::Utc::now();
    let now = now - chrono::Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
    let latest = e
        .requests
        .iter()
        .filter_map(|r| chrono::DateTime::parse_from_rfc3339(&r.updated_on).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .max();
    match latest {
        Some(l) if l >= now => iso(l + chrono::Duration::seconds(1)),
        _ => iso(now),
    }
}

/// A request query: `expand=request_tasks` renders the tasks under `request_tasks` (a
/// subcollection, not an attribute: `attributes=request_tasks` is invalid, as on the server,
/// whose reflection is `miq_request_tasks`).
fn request_query(uri: &Uri) -> Result<CollectionQuery, MiqError> {
    let mut q = CollectionQuery::parse(uri.query());
    if q.attributes.iter().any(|a| a == "request_tasks") {
        return Err(MiqError::bad_request(
            "Invalid attributes specified: request_tasks",
        ));
    }
    if q.expands("request_tasks") {
        q.attributes.push("request_tasks".into());
    }
    Ok(q)
}

async fn list_requests(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    name: &'static str,
) -> Response {
    let base = base_url(&headers);
    let c = requests::collection(&miq.estate(), name, &base);
    match request_query(&uri) {
        Ok(q) => list_with(&c, &headers, &uri, &q),
        Err(e) => e.into_response(),
    }
}

async fn show_request(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    name: &'static str,
) -> Response {
    let base = base_url(&headers);
    let c = requests::collection(&miq.estate(), name, &base);
    match request_query(&uri) {
        Ok(q) => show_with(&c, &headers, &q, &id),
        Err(e) => e.into_response(),
    }
}

/// A request's tasks, or the request's 404.
fn request_tasks(miq: &ManageIq, name: &'static str, id: &str) -> Result<FlatCollection, MiqError> {
    let n = parse_id(name, id)?;
    let klass = requests::klass(name);
    requests::tasks_of(&miq.estate(), name, n)
        .ok_or_else(|| MiqError::record_not_found(format!("Couldn't find {klass} with 'id'={id}")))
}

async fn list_request_tasks(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    name: &'static str,
) -> Response {
    match request_tasks(&miq, name, &id) {
        Ok(c) => list_of(&c, &headers, &uri),
        Err(e) => e.into_response(),
    }
}

async fn show_request_task(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, task)): Path<(String, String)>,
    name: &'static str,
) -> Response {
    match request_tasks(&miq, name, &id) {
        Ok(c) => show_of(&c, &headers, &uri, &task),
        Err(e) => e.into_response(),
    }
}

async fn list_all_tasks(State(miq): State<ManageIq>, headers: HeaderMap, uri: Uri) -> Response {
    list_of(&requests::all_tasks(&miq.estate()), &headers, &uri)
}

async fn show_any_task(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    show_of(&requests::all_tasks(&miq.estate()), &headers, &uri, &id)
}

fn control_error(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// `POST /_sim/manageiq/requests/advance`.
async fn advance_requests(State(miq): State<ManageIq>) -> Response {
    ok_json(&miq.advance_requests())
}

/// `POST /_sim/manageiq/requests`.
async fn add_request(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use crate::generator::{Fate, RequestKind};
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return control_error(format!("body is not JSON: {e}")),
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let Some(vm_name) = text("vm_name") else {
        return control_error("`vm_name` (a string) is required".into());
    };
    let fate = match text("fate") {
        None => Fate::Ok,
        Some(f) => match Fate::parse(f) {
            Some(f) => f,
            None => {
                return control_error(format!(
                    "`fate` `{f}` is none of Ok, Warn, Error, Timeout, Denied"
                ))
            }
        },
    };
    let kind = match text("type") {
        None | Some("provision") => RequestKind::Provision,
        Some("service") => RequestKind::Service,
        Some(t) => return control_error(format!("`type` `{t}` is neither provision nor service")),
    };
    let template_id = match body.get("template") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    };
    if body.get("template").is_some_and(|t| !t.is_null()) && template_id.is_none() {
        return control_error("`template` is not an id".into());
    }
    let new = NewRequest {
        vm_name: vm_name.to_owned(),
        fate,
        userid: text("userid").map(str::to_owned),
        kind,
        template_id,
    };
    match miq.add_request(new) {
        Ok(id) => {
            let estate = miq.estate();
            let base = base_url(&headers);
            match estate.requests.iter().find(|r| r.id == id) {
                Some(r) => ok_json(&requests::request_json(&estate, r, &base)),
                None => internal(format!("request {id} vanished")),
            }
        }
        Err(e) => control_error(e),
    }
}

async fn list_catalogs(State(miq): State<ManageIq>, headers: HeaderMap, uri: Uri) -> Response {
    list_of(&service_catalog::catalogs(&miq.estate()), &headers, &uri)
}

async fn show_catalog(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    show_of(
        &service_catalog::catalogs(&miq.estate()),
        &headers,
        &uri,
        &id,
    )
}

/// The id of catalog `id`, or its 404.
fn catalog_id(e: &Estate, id: &str) -> Result<u64, MiqError> {
    let n = parse_id("service_catalogs", id)?;
    e.service_catalogs
        .iter()
        .any(|c| c.id == n)
        .then_some(n)
        .ok_or_else(|| {
            MiqError::record_not_found(format!(
                "Couldn't find ServiceTemplateCatalog with 'id'={id}"
            ))
        })
}

async fn list_catalog_templates(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let e = miq.estate();
    match catalog_id(&e, &id) {
        Ok(c) => list_of(&service_catalog::templates(&e, Some(c)), &headers, &uri),
        Err(err) => err.into_response(),
    }
}

async fn show_catalog_template(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, sid)): Path<(String, String)>,
) -> Response {
    let e = miq.estate();
    match catalog_id(&e, &id) {
        Ok(c) => show_of(
            &service_catalog::templates(&e, Some(c)),
            &headers,
            &uri,
            &sid,
        ),
        Err(err) => err.into_response(),
    }
}

async fn list_templates_of_catalogs(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    list_of(
        &service_catalog::templates(&miq.estate(), None),
        &headers,
        &uri,
    )
}

async fn show_service_template(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    show_of(
        &service_catalog::templates(&miq.estate(), None),
        &headers,
        &uri,
        &id,
    )
}

/// An order body: a JSON object whose `action` is `order`.
fn order_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, MiqError> {
    let map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => return Err(MiqError::bad_request("Failed to parse request body")),
    };
    match map.get("action").and_then(Value::as_str) {
        Some("order") => Ok(map),
        other => Err(MiqError::bad_request(format!(
            "Unsupported Action {} for the service_templates resource specified",
            other.unwrap_or("")
        ))),
    }
}

/// Orders one template (checked to be in `catalog` when given) with the dialog fields of
/// `fields`; the new request as `/api/service_requests/:id` renders it.
fn order_one(
    miq: &ManageIq,
    user: &str,
    base: &str,
    id: &str,
    catalog: Option<u64>,
    fields: &serde_json::Map<String, Value>,
) -> Result<Value, MiqError> {
    let not_found =
        || MiqError::record_not_found(format!("Couldn't find ServiceTemplate with 'id'={id}"));
    let n = parse_id("service_templates", id)?;
    let e = miq.estate();
    let t = e
        .service_templates
        .iter()
        .find(|t| t.id == n)
        .ok_or_else(not_found)?;
    if catalog.is_some_and(|c| e.service_catalogs[t.catalog].id != c) {
        return Err(not_found());
    }
    if fields.contains_key("schedule_time") {
        return Err(MiqError::bad_request(
            "Scheduled orders (schedule_time) are not simulated",
        ));
    }
    let dialog = crate::generator::dialog_values(fields);
    let request = miq
        .order_service(n, dialog, Some(user.to_owned()))
        .map_err(|err| match err {
            OrderError::NotFound => not_found(),
            OrderError::Invalid(m) => MiqError::bad_request(m),
        })?;
    let e = miq.estate();
    let r = e
        .requests
        .iter()
        .find(|r| r.id == request)
        .ok_or_else(|| MiqError::bad_request(format!("request {request} vanished")))?;
    let mut json = requests::request_json(&e, r, base);
    if let Value::Object(m) = &mut json {
        m.insert(
            "href".into(),
            format!("{base}/api/service_requests/{request}").into(),
        );
    }
    Ok(json)
}

fn order_response(result: Result<Value, MiqError>) -> Response {
    match result {
        Ok(v) => ok_json(&v),
        Err(e) => e.into_response(),
    }
}

async fn order_template(
    State(miq): State<ManageIq>,
    Extension(AuthUser(user)): Extension<AuthUser>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let base = base_url(&headers);
    order_response(order_body(&body).and_then(|f| order_one(&miq, &user, &base, &id, None, &f)))
}

async fn order_in_catalog(
    State(miq): State<ManageIq>,
    Extension(AuthUser(user)): Extension<AuthUser>,
    headers: HeaderMap,
    Path((cid, sid)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let base = base_url(&headers);
    let result = catalog_id(&miq.estate(), &cid).and_then(|c| {
        order_body(&body).and_then(|f| order_one(&miq, &user, &base, &sid, Some(c), &f))
    });
    order_response(result)
}

/// A bulk order: `{"action":"order","resources":[{"href":...,<fields>},...]}`.
fn order_many(
    miq: &ManageIq,
    user: &str,
    base: &str,
    catalog: Option<u64>,
    body: &[u8],
) -> Result<Value, MiqError> {
    let map = order_body(body)?;
    let Some(resources) = map.get("resources").and_then(Value::as_array) else {
        return Err(MiqError::bad_request(
            "Must specify resources for the order action",
        ));
    };
    let results: Vec<Value> = resources
        .iter()
        .map(|r| {
            let fields = r.as_object().cloned().unwrap_or_default();
            let id = service_catalog::resource_template_id(&fields)
                .map_or_else(String::new, |n| n.to_string());
            order_one(miq, user, base, &id, catalog, &fields)
                .unwrap_or_else(|e| json!({"success": false, "message": e.message}))
        })
        .collect();
    Ok(json!({ "results": results }))
}

async fn order_bulk(
    State(miq): State<ManageIq>,
    Extension(AuthUser(user)): Extension<AuthUser>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let base = base_url(&headers);
    order_response(order_many(&miq, &user, &base, None, &body))
}

async fn order_in_catalog_bulk(
    State(miq): State<ManageIq>,
    Extension(AuthUser(user)): Extension<AuthUser>,
    headers: HeaderMap,
    Path(cid): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let base = base_url(&headers);
    let result = catalog_id(&miq.estate(), &cid)
        .and_then(|c| order_many(&miq, &user, &base, Some(c), &body));
    order_response(result)
}

/// `POST /api/<request collection>/:id` with `{"action": "approve"|"deny", "reason": "..."}`:
/// the action result `{"success": true, "message": "Approving Service Request id: N", "href"}`
/// (`spec/requests/service_requests_spec.rb`, integrations.md A.2); without a reason 400
/// "Must specify a reason for approving a Service Request" (A.2; the noun per collection is
/// UNVERIFIED); another action 400 "Unsupported Action ...".
async fn request_action(
    State(miq): State<ManageIq>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
    name: &'static str,
) -> Response {
    let noun = match name {
        "service_requests" => "Service Request",
        "provision_requests" => "Provision Request",
        _ => "Request",
    };
    let result = (|| {
        let n = parse_id(name, &id)?;
        let klass = requests::klass(name);
        let kind = requests::kind_of(name);
        let e = miq.estate();
        if !e
            .requests
            .iter()
            .any(|r| r.id == n && kind.is_none_or(|k| r.kind == k))
        {
            return Err(MiqError::record_not_found(format!(
                "Couldn't find {klass} with 'id'={id}"
            )));
        }
        let map = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            _ => return Err(MiqError::bad_request("Failed to parse request body")),
        };
        let action = map.get("action").and_then(Value::as_str).unwrap_or("");
        let (approve, verb) = match action {
            "approve" => (true, "approving"),
            "deny" => (false, "denying"),
            other => {
                return Err(MiqError::bad_request(format!(
                    "Unsupported Action {other} for the {name} resource specified"
                )))
            }
        };
        let reason = map.get("reason").and_then(Value::as_str).unwrap_or("");
        if reason.trim().is_empty() {
            return Err(MiqError::bad_request(format!(
                "Must specify a reason for {verb} a {noun}"
            )));
        }
        miq.decide_request(n, approve)
            .map_err(MiqError::bad_request)?;
        let verb = if approve { "Approving" } else { "Denying" };
        Ok(json!({
            "success": true,
            "message": format!("{verb} {noun} id: {n}"),
            "href": format!("{}/api/{name}/{n}", base_url(&headers)),
        }))
    })();
    match result {
        Ok(v) => ok_json(&v),
        Err(e) => e.into_response(),
    }
}
