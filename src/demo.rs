//! `demo`: the whole job against the built-in simulators, in-process on 127.0.0.1. It shows a
//! newcomer, on a fresh machine with no CloudForms and no ServiceNow, what a run does: plan
//! (and the drift report), apply, the next run's lifecycle step (CIs marked Absent are
//! retired), then plan again to show that no drift is left. Beside the VMs, the provisioning
//! requests become tickets: AMBER while they run; CloudForms then moves them on (the
//! simulator's state machine) and the next run turns them GREEN and closed or RED and open.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};

use crate::app::{self, Planned, Status};
use crate::cli::DemoArgs;
use crate::cloudforms::CloudFormsConfig;
use crate::config::{Config, SyncConfig};
use crate::net::Secret;
use crate::report::Format;
use crate::servicenow::{ServiceNowConfig, SnAuth};

/// The shipped VMware mappings, built in so the demo runs from any folder, parents first
/// (the order `run` applies them in): vCenters, datacenters, clusters, ESX hosts,
/// datastores, then the VMs; then the provisioning tickets.
const MAPPINGS: &[(&str, &str)] = &[
    ("vcenter.toml", include_str!("../mappings/vcenter.toml")),
    (
        "vmware-datacenter.toml",
        include_str!("../mappings/vmware-datacenter.toml"),
    ),
    (
        "vmware-cluster.toml",
        include_str!("../mappings/vmware-cluster.toml"),
    ),
    (
        "vmware-esx-host.toml",
        include_str!("../mappings/vmware-esx-host.toml"),
    ),
    (
        "vmware-datastore.toml",
        include_str!("../mappings/vmware-datastore.toml"),
    ),
    ("vmware-vm.toml", include_str!("../mappings/vmware-vm.toml")),
    (
        "provision-incident.toml",
        include_str!("../mappings/provision-incident.toml"),
    ),
];

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
    let mut syncs = Vec::new();
    for (name, text) in MAPPINGS {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        syncs.push(SyncConfig::live(path));
    }
    // New provisioning requests, one of each fate, beside the ones the estate has: they wait
    // for approval now, and end as their fate says once CloudForms moves them on.
    for (i, fate) in cmdb_sim::generator::requests::Fate::ALL
        .into_iter()
        .enumerate()
    {
        let kind = if i % 2 == 0 {
            cmdb_sim::generator::requests::RequestKind::Provision
        } else {
            cmdb_sim::generator::requests::RequestKind::Service
        };
        sims.manageiq()
            .add_request(cmdb_sim::generator::requests::NewRequest {
                vm_name: format!("demo-{}", fate.as_str().to_lowercase()),
                fate,
                userid: None,
                kind,
                template_id: None,
            })
            .map_err(|e| anyhow::anyhow!("adding a demo request: {e}"))?;
    }

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
    // One folder per step (`out_dir`), and in it one per sync (README "Reports").
    let config = |out: PathBuf| Config {
        report_dir: dir.clone(),
        out_dir: Some(out),
        formats: Format::ALL.to_vec(),
        syncs: syncs.clone(),
        cloudforms: Some(cloudforms.clone()),
        servicenow: Some(servicenow.clone()),
        apply: Default::default(),
        lease: Default::default(),
        max_plan_age: None,
        ticket: None,
        ops: Default::default(),
        catalog: None,
    };

    let steps = run_steps(&config, &dir, now, &sims).await;
    let stats = sims.stats(cmdb_sim::Api::ServiceNow);
    sims.stop().await;
    steps?;
    println!(
        "\nZero drift. ServiceNow answered {} requests in all. Quarantined records and issues stay in the report for a person to decide.",
        stats.get("total").and_then(serde_json::Value::as_u64).unwrap_or(0)
    );
    Ok(Status::Clean)
}

/// The story: plan and review, apply, the next run's lifecycle step, and zero drift.
async fn run_steps(
    config: &impl Fn(PathBuf) -> Config,
    dir: &Path,
    now: DateTime<Utc>,
    sims: &cmdb_sim::Sims,
) -> Result<()> {
    println!("\n1. Plan: read both APIs, map, identify, diff");
    let first_config = config(dir.join("1-plan"));
    let first = app::plan_all(&first_config, now, false).await?;
    print!("{}", app::summary_table(&first));
    let index = dir.join("1-plan").join(crate::report::index::INDEX_FILE);
    let html = dir.join("1-plan").join("vmware-vm").join("drift.html");
    println!(
        "   open {} for every sync, {} to review the VMs' drift",
        index.display(),
        html.display()
    );

    println!("\n2. Apply the reviewed plan");
    apply(&first_config, &first).await?;
    print_colours(sims);

    // CloudForms moves on between two scheduled runs: approvals, clones, failures.
    let mut moved = 0;
    for _ in 0..3 {
        moved += sims.manageiq().advance_requests().requests.len();
    }
    // Meanwhile someone orders another VM: the next run opens its ticket (AMBER) in the same
    // report that turns the finished requests' tickets GREEN and RED.
    sims.manageiq()
        .add_request(cmdb_sim::generator::requests::NewRequest {
            vm_name: "demo-latecomer".to_owned(),
            fate: cmdb_sim::generator::requests::Fate::Ok,
            userid: None,
            kind: cmdb_sim::generator::requests::RequestKind::Provision,
            template_id: None,
        })
        .map_err(|e| anyhow::anyhow!("adding a demo request: {e}"))?;
    println!(
        "\n   CloudForms works on: {moved} request steps (approved or denied, cloning, finished Ok, Warn, Error or Timeout), and a new request arrives"
    );

    // A CI whose VM is gone is first marked Absent; only a later run retires it, once its
    // grace has passed (README "Lifecycle and safety"). The next scheduled run does that.
    println!("\n3. The next run: CIs marked Absent in step 2 whose grace has passed are retired, the VMs the requests made get CIs, their tickets turn GREEN or RED, and the new request's opens AMBER");
    let next_config = config(dir.join("3-next-run"));
    let next = app::plan_all(&next_config, now, false).await?;
    print!("{}", app::summary_table(&next));
    apply(&next_config, &next).await?;
    print_colours(sims);

    println!("\n4. Plan again: nothing should be left to change");
    let last: Vec<Planned> = app::plan_all(&config(dir.join("4-replan")), now, false).await?;
    print!("{}", app::summary_table(&last));
    if last.iter().any(|p| p.plan.has_changes()) {
        bail!(
            "drift left after apply; see {}",
            dir.join("4-replan")
                .join(crate::report::index::INDEX_FILE)
                .display()
        );
    }
    Ok(())
}

/// The provisioning tickets by colour, as operations reads them: Closed is GREEN, open with
/// raised urgency RED, any other open one AMBER.
fn print_colours(sims: &cmdb_sim::Sims) {
    let (mut amber, mut green, mut red) = (0, 0, 0);
    for row in sims.servicenow().rows("incident") {
        let get = |f: &str| row.get(f).and_then(serde_json::Value::as_str).unwrap_or("");
        if !get("correlation_id").starts_with("cloudforms:request:") {
            continue;
        }
        match (get("state"), get("urgency")) {
            ("7", _) => green += 1,
            (_, "1" | "2") => red += 1,
            _ => amber += 1,
        }
    }
    println!("   provisioning tickets: {amber} AMBER (open), {green} GREEN (closed), {red} RED (open, urgent)");
}

/// Applies the plans, which must all go through.
async fn apply(config: &Config, planned: &[Planned]) -> Result<()> {
    let status = app::run_apply(config, planned).await?;
    if status != Status::Clean {
        let dir = config.out_dir.as_deref().unwrap_or(&config.report_dir);
        bail!(
            "applying the plan ended with {status:?}; see the outcome.json of each sync under {}",
            dir.display()
        );
    }
    Ok(())
}
