//! cmdb-sim: simulators of the ManageIQ (CloudForms) and ServiceNow REST APIs
//! for cmdb-reconcile's tests, benchmarks and demo. It speaks raw API JSON and
//! shares no types with the main package.
//!
//! [`Sims::start`] generates an estate and its CMDB ([`generator`]), serves
//! ManageIQ over HTTP and ServiceNow over both HTTP and HTTPS (a throwaway CA,
//! [`tls`]), all on 127.0.0.1 with ephemeral ports, each API behind the
//! fault-injection and request-counting middleware ([`faults`], [`stats`]).
//! Admin routes on every listener: `GET|POST|DELETE /_sim/faults`,
//! `GET|DELETE /_sim/stats`, `GET /_sim/dump` on ServiceNow and
//! `POST /_sim/manageiq/vmotion`, `POST /_sim/manageiq/requests` and
//! `POST /_sim/manageiq/requests/advance` on ManageIQ ([`ManageIq::vmotion`],
//! [`ManageIq::add_request`], [`ManageIq::advance_requests`]).

pub mod faults;
pub mod generator;
pub mod manageiq;
mod serve;
pub mod servicenow;
pub mod stats;
pub mod tls;

pub use faults::{FaultConfig, FaultKind, FaultRule};

use anyhow::Context as _;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use faults::Instrument;
use generator::{Estate, GenOptions};
use manageiq::{ManageIq, MiqConfig};
use serde_json::{json, Value};
use serve::Server;
use servicenow::{ServiceNow, SnowConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Which simulated API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    ManageIq,
    ServiceNow,
}

/// How to start the simulators.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// VMs at `/api/vms` (templates come on top).
    pub vms: usize,
    /// Hypervisor hosts; `None`: about one per 25 VMs.
    pub hosts: Option<usize>,
    /// Fraction of CIs with one changed field (see [`generator::Expected`]).
    pub drift: f64,
    pub seed: u64,
    /// The generator's clock: timestamps in the estate and the CMDB derive from it.
    pub now: DateTime<Utc>,
    /// Provisioning requests the estate starts with (`/api/requests`); the default 12 cover
    /// every stage and every status.
    pub requests: usize,
    pub miq_faults: FaultConfig,
    pub snow_faults: FaultConfig,
    /// Whether [`Sims::servicenow_url`] is the HTTPS listener (both always run).
    pub snow_https: bool,
    /// Where to write the CA certificate (PEM) clients must trust for HTTPS.
    pub ca_pem_out: Option<PathBuf>,
    /// ServiceNow state file: loaded instead of seeding when it exists.
    pub state_file: Option<PathBuf>,
    pub miq_user: String,
    pub miq_password: String,
    pub miq_token_ttl: Duration,
    pub snow_user: String,
    pub snow_password: String,
    pub snow_client_id: String,
    pub snow_client_secret: String,
    pub snow_token_ttl_secs: u64,
    /// ServiceNow's `glide.invalid_query.returns_no_rows` (false, as an instance ships).
    pub snow_invalid_query_returns_no_rows: bool,
    /// ServiceNow's `glide.sys.default.tz`; `None`: America/Los_Angeles, as an instance ships.
    pub snow_system_time_zone: Option<chrono_tz::Tz>,
}

impl Default for SimOptions {
    fn default() -> Self {
        let miq = MiqConfig::default();
        let snow = SnowConfig::default();
        let (snow_user, snow_password) = snow.users.first().cloned().unwrap_or_default();
        let (snow_client_id, snow_client_secret) =
            snow.oauth_clients.first().cloned().unwrap_or_default();
        SimOptions {
            vms: 100,
            hosts: None,
            drift: 0.05,
            seed: 1,
            now: Utc::now(),
            requests: 12,
            miq_faults: FaultConfig::default(),
            snow_faults: FaultConfig::default(),
            snow_https: false,
            ca_pem_out: None,
            state_file: None,
            miq_user: miq.user,
            miq_password: miq.password,
            miq_token_ttl: miq.token_ttl,
            snow_user,
            snow_password,
            snow_client_id,
            snow_client_secret,
            snow_token_ttl_secs: snow.token_ttl_secs,
            snow_invalid_query_returns_no_rows: snow.invalid_query_returns_no_rows,
            snow_system_time_zone: snow.system_time_zone,
        }
    }
}

/// Both simulators, running.
pub struct Sims {
    opts: SimOptions,
    estate: Arc<Estate>,
    manageiq: ManageIq,
    servicenow: ServiceNow,
    ca_pem: String,
    miq: Server,
    snow_http: Server,
    snow_https: Server,
    miq_instrument: Arc<Instrument>,
    snow_instrument: Arc<Instrument>,
}

impl Sims {
    /// Generates the data and starts the three listeners on 127.0.0.1:0.
    pub async fn start(opts: SimOptions) -> anyhow::Result<Sims> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&opts.drift),
            "drift `{}` is not within 0..=1",
            opts.drift
        );
        opts.miq_faults.validate()?;
        opts.snow_faults.validate()?;

        let generated = generator::generate(&GenOptions {
            vms: opts.vms,
            drift: opts.drift,
            seed: opts.seed,
            now: opts.now,
            requests: opts.requests,
            hosts: opts.hosts,
        });
        let estate = Arc::new(generated.estate);

        let restore = opts.state_file.as_ref().is_some_and(|p| p.exists());
        let servicenow = ServiceNow::try_new(SnowConfig {
            users: vec![(opts.snow_user.clone(), opts.snow_password.clone())],
            oauth_clients: vec![(opts.snow_client_id.clone(), opts.snow_client_secret.clone())],
            token_ttl_secs: opts.snow_token_ttl_secs,
            state_file: opts.state_file.clone(),
            invalid_query_returns_no_rows: opts.snow_invalid_query_returns_no_rows,
            system_time_zone: opts.snow_system_time_zone,
        })
        .with_context(|| match &opts.state_file {
            Some(p) => format!("loading the ServiceNow state file `{}`", p.display()),
            None => "starting the ServiceNow simulator".to_owned(),
        })?;
        // A restored instance already holds the CMDB as a previous run left it.
        if !restore {
            for table in generated.cmdb.tables {
                servicenow.seed(&table.name, table.rows);
            }
        }

        let (chain_pem, key_pem) = tls::self_signed(opts.ca_pem_out.as_deref())?;
        let acceptor = serve::tls_acceptor(&chain_pem, &key_pem)?;
        // The chain is the server certificate then its CA; clients trust the CA.
        let ca_pem = chain_pem
            .rfind("-----BEGIN CERTIFICATE-----")
            .map_or(chain_pem.as_str(), |i| &chain_pem[i..])
            .to_owned();

        let miq_instrument = Instrument::new(Api::ManageIq, opts.miq_faults.clone());
        let snow_instrument = Instrument::new(Api::ServiceNow, opts.snow_faults.clone());

        let miq_api = ManageIq::new(
            estate.clone(),
            MiqConfig {
                user: opts.miq_user.clone(),
                password: opts.miq_password.clone(),
                token_ttl: opts.miq_token_ttl,
                ..MiqConfig::default()
            },
        );
        let miq_app = miq_instrument
            .layer(miq_api.router())
            .merge(miq_instrument.admin_router())
            .merge(miq_api.control_router());
        let snow_app = |router: Router| {
            let snow = servicenow.clone();
            snow_instrument
                .layer(router)
                .merge(snow_instrument.admin_router())
                .route("/_sim/dump", get(move || async move { Json(snow.dump()) }))
        };
        let snow_http_app = snow_app(servicenow.router());
        let snow_https_app = snow_app(servicenow.https_router());

        let miq = Server::spawn(bind().await?, miq_app, None)?;
        let snow_http = Server::spawn(bind().await?, snow_http_app, None)?;
        let snow_https = Server::spawn(bind().await?, snow_https_app, Some(acceptor))?;
        Ok(Sims {
            opts,
            estate,
            manageiq: miq_api,
            servicenow,
            ca_pem,
            miq,
            snow_http,
            snow_https,
            miq_instrument,
            snow_instrument,
        })
    }

    /// `http://127.0.0.1:PORT`; the API is under `/api`.
    pub fn manageiq_url(&self) -> String {
        format!("http://{}", self.miq.addr())
    }

    /// The HTTPS listener when [`SimOptions::snow_https`], else the HTTP one.
    pub fn servicenow_url(&self) -> String {
        if self.opts.snow_https {
            self.servicenow_https_url()
        } else {
            self.servicenow_http_url()
        }
    }

    pub fn servicenow_http_url(&self) -> String {
        format!("http://{}", self.snow_http.addr())
    }

    /// `https://127.0.0.1:PORT` (the certificate names `127.0.0.1` and `localhost`).
    pub fn servicenow_https_url(&self) -> String {
        format!("https://{}", self.snow_https.addr())
    }

    /// The certificate authority (PEM) that signed the HTTPS listener's certificate.
    pub fn ca_pem(&self) -> Option<String> {
        Some(self.ca_pem.clone())
    }

    pub fn options(&self) -> &SimOptions {
        &self.opts
    }

    fn instrument(&self, api: Api) -> &Instrument {
        match api {
            Api::ManageIq => &self.miq_instrument,
            Api::ServiceNow => &self.snow_instrument,
        }
    }

    /// Replaces the fault rules of `api` (counters start over).
    pub fn set_faults(&self, api: Api, cfg: FaultConfig) {
        self.instrument(api).faults.set(cfg);
    }

    /// The fault rules of `api` and how often each fired.
    pub fn faults(&self, api: Api) -> Value {
        self.instrument(api).faults.snapshot()
    }

    /// Request counts of `api` (same JSON as `GET /_sim/stats`).
    pub fn stats(&self, api: Api) -> Value {
        self.instrument(api).stats.snapshot()
    }

    pub fn reset_stats(&self, api: Api) {
        self.instrument(api).stats.reset();
    }

    /// Direct access to the ServiceNow store.
    pub fn servicenow(&self) -> &ServiceNow {
        &self.servicenow
    }

    /// The ManageIQ simulator, e.g. for [`ManageIq::vmotion`].
    pub fn manageiq(&self) -> &ManageIq {
        &self.manageiq
    }

    /// What was generated, including what a reconciliation should find. A vMotion since
    /// does not show here: [`ManageIq::estate`] is the estate as served now.
    pub fn estate(&self) -> &Estate {
        &self.estate
    }

    /// URLs and credentials, as `cmdb-sim --json` prints them. `ca_pem` is the
    /// path the certificate was written to, or null.
    pub fn connection_info(&self) -> Value {
        let o = &self.opts;
        json!({
            "manageiq": {
                "url": self.manageiq_url(),
                "user": o.miq_user,
                "password": o.miq_password,
            },
            "servicenow": {
                "url": self.servicenow_http_url(),
                "https_url": self.servicenow_https_url(),
                "user": o.snow_user,
                "password": o.snow_password,
                "ca_pem": o.ca_pem_out.as_ref().map(|p| p.display().to_string()),
                "client_id": o.snow_client_id,
                "client_secret": o.snow_client_secret,
            },
        })
    }

    /// Writes the ServiceNow tables to the state file, if one was given.
    pub fn save_state(&self) -> std::io::Result<()> {
        self.servicenow.save_state()
    }

    /// Stops all listeners and closes their connections.
    pub async fn stop(self) {
        self.miq.stop().await;
        self.snow_http.stop().await;
        self.snow_https.stop().await;
    }
}

async fn bind() -> anyhow::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("binding a listener on 127.0.0.1")
}
