//! What the tests over HTTP share: the simulators at a fixed `now`, quick retries, and a
//! live config of the shipped VMware mapping against them.
#![allow(dead_code, reason = "each test crate uses a part")]
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cmdb_reconcile::app::{self, Planned};
use cmdb_reconcile::cloudforms::CloudFormsConfig;
use cmdb_reconcile::config::{Config, SyncConfig};
use cmdb_reconcile::net::{RetryPolicy, Secret};
use cmdb_reconcile::report::Format;
use cmdb_reconcile::servicenow::{ServiceNowConfig, SnAuth};
use cmdb_sim::{SimOptions, Sims};

pub const TABLE: &str = "cmdb_ci_vmware_instance";

pub fn now() -> DateTime<Utc> {
    "2026-11-27T06:00:00Z".parse().unwrap()
}

pub async fn sims(vms: usize) -> Sims {
    Sims::start(SimOptions {
        vms,
        drift: 0.05,
        seed: 11,
        now: now(),
        ..Default::default()
    })
    .await
    .expect("simulators start")
}

/// Fast retries: the tests prove behaviour, not patience.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        max_rate_limited_attempts: 60,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
    }
}

pub fn config(sims: &Sims, dir: &Path) -> Config {
    let o = sims.options();
    let mut cf = CloudFormsConfig::new(
        sims.manageiq_url(),
        o.miq_user.clone(),
        Secret::new(o.miq_password.clone()),
    );
    cf.retry = quick_retry();
    cf.page_size = 200;
    let mut sn = ServiceNowConfig::new(
        sims.servicenow_url(),
        SnAuth::Basic {
            user: o.snow_user.clone(),
            password: Secret::new(o.snow_password.clone()),
        },
    );
    sn.retry = quick_retry();
    sn.page_size = 200;
    let mapping = dir.join("vmware-vm.toml");
    std::fs::write(&mapping, include_str!("../../mappings/vmware-vm.toml")).unwrap();
    let apply = cmdb_reconcile::apply::ApplyOptions {
        retry: quick_retry(),
        ..Default::default()
    };
    Config {
        report_dir: dir.to_path_buf(),
        out_dir: None,
        formats: Format::ALL.to_vec(),
        syncs: vec![SyncConfig::live(mapping)],
        cloudforms: Some(cf),
        servicenow: Some(sn),
        apply,
        max_plan_age: None,
        lease: Default::default(),
        ticket: None,
        review: Default::default(),
        ops: Default::default(),
        catalog: None,
    }
}

pub async fn plan(config: &Config, out: &Path) -> Planned {
    let mut c = config.clone();
    c.out_dir = Some(out.to_path_buf());
    app::plan_all(&c, now(), false)
        .await
        .expect("plan")
        .remove(0)
}

/// The connection and report sections of a test config against these simulators, with the
/// password variables [`bin`] sets, CloudForms' timeout `cf_timeout`.
pub fn connections(sims: &Sims, cf_timeout: &str) -> String {
    format!(
        "[cloudforms]\nurl = \"{}\"\nuser = \"admin\"\npassword_env = \"TEST_CF_PASSWORD\"\ntimeout = \"{cf_timeout}\"\nretries = 1\n\n\
         [servicenow]\nurl = \"{}\"\nuser = \"admin\"\npassword_env = \"TEST_SN_PASSWORD\"\ntimeout = \"30s\"\nretries = 1\n\n\
         [report]\ndir = \"reports\"\n\n",
        sims.manageiq_url(),
        sims.servicenow_url()
    )
}

/// The binary against these simulators, in `dir`: their passwords in the environment the
/// test configs name (`TEST_CF_PASSWORD`, `TEST_SN_PASSWORD`), text logs, nothing inherited
/// that would change what it reads.
pub fn bin(dir: &Path, sims: &Sims) -> std::process::Command {
    let o = sims.options();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cmdb-reconcile"));
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("CMDB_RECONCILE_CONFIG")
        .env("TEST_CF_PASSWORD", &o.miq_password)
        .env("TEST_SN_PASSWORD", &o.snow_password)
        .args(["--log-format", "text"]);
    cmd
}

/// A finished command's stdout and stderr, as one text.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A text field of a simulator row ("" when absent).
pub fn field<'a>(row: &'a serde_json::Map<String, serde_json::Value>, f: &str) -> &'a str {
    row.get(f).and_then(serde_json::Value::as_str).unwrap_or("")
}

/// The simulated ServiceNow's rows of these tables, table by table: a snapshot to compare
/// before and after a run that must write nothing.
pub fn rows_of(
    sims: &Sims,
    tables: &[&str],
) -> Vec<Vec<serde_json::Map<String, serde_json::Value>>> {
    tables.iter().map(|t| sims.servicenow().rows(t)).collect()
}
