//! `demo`: the whole job against the built-in simulators, in-process on 127.0.0.1. It shows a
//! newcomer, on a fresh machine with no CloudForms and no ServiceNow, what a run does: plan
//! (and the drift report), apply, then plan again to show that no drift is left.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};

use crate::app::{self, Planned, Status};
use crate::cli::DemoArgs;
use crate::cloudforms::CloudFormsConfig;
use crate::config::{Config, Location, SyncConfig};
use crate::net::Secret;
use crate::report::Format;
use crate::servicenow::{ServiceNowConfig, SnAuth};

/// The shipped VMware mapping, built in so the demo runs from any folder.
const MAPPING: &str = include_str!("../mappings/vmware-vm.toml");

#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
pub async fn demo(args: &DemoArgs, now: DateTime<Utc>) -> Result<Status> {
    println!(
        "Starting the CloudForms and ServiceNow simulators with {} VMs (seed {})...",
        args.vms, args.seed
    );
    let sims = cmdb_sim::Sims::start(cmdb_sim::SimOptions {
        vms: args.vms,
        drift: args.drift,
        seed: args.seed,
        now,
        ..Default::default()
    })
    .await
    .context("starting the simulators")?;
    let opts = sims.options().clone();
    println!(
        "  CloudForms: {}/api  (user {})",
        sims.manageiq_url(),
        opts.miq_user
    );
    println!(
        "  ServiceNow: {}  (user {})",
        sims.servicenow_url(),
        opts.snow_user
    );

    let dir = args.out_dir.clone().unwrap_or_else(|| {
        PathBuf::from("reports").join(format!("demo-{}", now.format("%Y%m%dT%H%M%SZ")))
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mapping_path = dir.join("vmware-vm.toml");
    std::fs::write(&mapping_path, MAPPING)
        .with_context(|| format!("cannot write `{}`", mapping_path.display()))?;

    let mut cloudforms = CloudFormsConfig::new(
        sims.manageiq_url(),
        opts.miq_user.clone(),
        Secret::new(opts.miq_password.clone()),
    );
    cloudforms.concurrency = 4;
    let servicenow = ServiceNowConfig::new(
        sims.servicenow_url(),
        SnAuth::Basic {
            user: opts.snow_user.clone(),
            password: Secret::new(opts.snow_password.clone()),
        },
    );
    let config = |out: PathBuf| Config {
        report_dir: dir.clone(),
        out_dir: Some(out),
        formats: Format::ALL.to_vec(),
        syncs: vec![SyncConfig {
            mapping: mapping_path.clone(),
            source: Location::Live,
            target: Location::Live,
            references: Vec::new(),
            dictionary: None,
            choices: None,
        }],
        cloudforms: Some(cloudforms.clone()),
        servicenow: Some(servicenow.clone()),
        apply: Default::default(),
        lease: Default::default(),
        max_plan_age: None,
        ticket: None,
        ops: Default::default(),
    };

    println!("\n1. Plan: read both APIs, map, identify, diff");
    let first_config = config(dir.join("1-plan"));
    let first = app::plan_all(&first_config, now, false).await?;
    print!("{}", app::summary_table(&first));
    let html = dir.join("1-plan").join("drift.html");
    println!("   open {} to review the drift", html.display());

    println!("\n2. Apply the reviewed plan");
    let status = app::run_apply(&first_config, &first).await?;
    if status != Status::Clean {
        bail!(
            "applying the plan ended with {status:?}; see {}",
            dir.join("1-plan").join("outcome.json").display()
        );
    }

    println!("\n3. Plan again: nothing should be left to change");
    let second: Vec<Planned> = app::plan_all(&config(dir.join("3-replan")), now, false).await?;
    print!("{}", app::summary_table(&second));
    let left = second.iter().filter(|p| p.plan.has_changes()).count();
    let stats = sims.stats(cmdb_sim::Api::ServiceNow);
    sims.stop().await;
    if left > 0 {
        bail!(
            "drift left after apply; see {}",
            dir.join("3-replan").join("drift.md").display()
        );
    }
    println!(
        "\nZero drift. ServiceNow answered {} requests in all. Quarantined records and issues stay in the report for a person to decide.",
        stats.get("total").and_then(serde_json::Value::as_u64).unwrap_or(0)
    );
    Ok(Status::Clean)
}
