//! `demo`: the whole job against the built-in simulators, in-process on 127.0.0.1. It shows a
//! newcomer, on a fresh machine with no CloudForms and no ServiceNow, what a run does: plan
//! (and the drift report), apply, the next run's lifecycle step (CIs marked Absent are
//! retired), then plan again to show that no drift is left. Beside the VMs, the provisioning
//! requests become tickets: AMBER while they run; CloudForms then moves them on (the
//! simulator's state machine) and the next run turns them GREEN and closed or RED and open.
//! And the service catalog: a user orders a Linux VM in ServiceNow's catalog (`order_now`),
//! the catalog pass orders it from CloudForms (its RITM AMBER), CloudForms provisions it, and
//! the next run puts the new VM in the CMDB with its relationships and closes the RITM GREEN
//! with the VM's name.
//! Then the review step: with `review = "approve"` the VM sync's drift goes to a change
//! request, the simulator approves it, and the next run applies it and closes the change.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};

use crate::app::{self, Planned, Status};
use crate::cli::DemoArgs;
use crate::cloudforms::CloudFormsConfig;
use crate::config::{Config, SyncConfig};
use crate::net::Secret;
use crate::report::Format;
use crate::review::ReviewMode;
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

/// The catalog links and the RITM status write-back (`[catalog]`), built in likewise.
const CATALOG: &[(&str, &str)] = &[
    (
        "catalog-linux-vm.toml",
        include_str!("../mappings/catalog/linux-vm.toml"),
    ),
    (
        "catalog-failing-vm.toml",
        include_str!("../mappings/catalog/failing-vm.toml"),
    ),
    (
        "ritm-status.toml",
        include_str!("../mappings/ritm-status.toml"),
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
    let catalog = catalog_config(&dir)?;
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
        review: Default::default(),
        ops: Default::default(),
        catalog: Some(catalog.clone()),
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

    let ritm = order_in_catalog(config, dir, now, sims).await?;

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
    println!("\n3. The next run: CIs marked Absent in step 2 whose grace has passed are retired, the VMs the requests made get CIs, their tickets turn GREEN or RED, and the new request's opens AMBER; then the catalog pass: the VM ordered in the catalog is in the CMDB, and its RITM closes GREEN");
    let next_config = config(dir.join("3-next-run"));
    let next = app::plan_all(&next_config, now, false).await?;
    print!("{}", app::summary_table(&next));
    apply(&next_config, &next).await?;
    print_colours(sims);
    catalog_follows(&next_config, now, sims, &ritm).await?;

    review_step(config, dir, now, sims).await?;

    println!("\n6. Plan again: nothing should be left to change");
    let replan = config(dir.join("6-replan"));
    let mut last: Vec<Planned> = app::plan_all(&replan, now, false).await?;
    let passed = app::catalog_pass(&replan, now, false, true, false)
        .await?
        .unwrap_or_default();
    last.extend(passed.into_iter().map(|(p, _)| p));
    print!("{}", app::summary_table(&last));
    if last.iter().any(|p| p.plan.has_changes()) {
        bail!(
            "drift left after apply; see {}",
            dir.join("6-replan")
                .join(crate::report::index::INDEX_FILE)
                .display()
        );
    }
    Ok(())
}

/// Review in ServiceNow (README "Review in ServiceNow"): the VM sync asks the CMDB owners
/// before it writes. Someone edits CIs by hand; the run applies nothing of the drift but
/// opens a change request with the reports attached; the simulator approves it (as the
/// owners would); the next run applies exactly the approved plan and closes the change.
async fn review_step(
    config: &impl Fn(PathBuf) -> Config,
    dir: &Path,
    now: DateTime<Utc>,
    sims: &cmdb_sim::Sims,
) -> Result<()> {
    const VMS: &str = "cmdb_ci_vmware_instance";
    let snow = sims.servicenow();
    let edited: Vec<String> = snow
        .rows(VMS)
        .iter()
        .filter_map(|r| r.get("sys_id").and_then(serde_json::Value::as_str))
        .take(3)
        .map(str::to_owned)
        .collect();
    for sys_id in &edited {
        let mut edit = serde_json::Map::new();
        edit.insert("cpus".into(), serde_json::Value::String("64".into()));
        snow.update_row(VMS, sys_id, edit);
    }
    let reviewed = |out: PathBuf| {
        let mut c = config(out);
        for sync in &mut c.syncs {
            if sync.mapping.ends_with("vmware-vm.toml") {
                sync.review = ReviewMode::Approve;
            }
        }
        c.review.policy.updates_above = Some(0);
        c
    };
    println!(
        "\n4. Review in ServiceNow: someone sets {} VM CIs to 64 CPUs by hand; the VM sync now has review = \"approve\", so the run asks before it puts them back",
        edited.len()
    );
    let (planned, status) =
        app::plan_and_apply(&reviewed(dir.join("4-review")), now, false).await?;
    print!("{}", app::summary_table(&planned));
    let change = snow
        .rows("change_request")
        .into_iter()
        .find(|r| {
            r.get("correlation_display")
                .and_then(serde_json::Value::as_str)
                == Some("cmdb-reconcile:vmware-vm")
        })
        .context("the run opened no change request")?;
    let get = |f: &str| {
        change
            .get(f)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let attached = snow
        .rows("sys_attachment")
        .iter()
        .filter(|a| {
            a.get("table_sys_id").and_then(serde_json::Value::as_str) == Some(&get("sys_id"))
        })
        .count();
    println!(
        "   {status:?} (exit code {}): change {} opened, approval {}, {attached} files attached (drift.html, drift.csv, plan.json); the CIs still hold 64 CPUs",
        status.exit_code(),
        get("number"),
        get("approval"),
    );
    if status != Status::AwaitingApproval {
        bail!("the review run ended {status:?}, not waiting for approval");
    }
    snow.decide_change(&get("sys_id"), true);
    println!(
        "   the CMDB owners approve {} in ServiceNow (the simulator approves it)",
        get("number")
    );

    println!("\n5. The next run applies exactly the approved plan and closes the change");
    let (planned, status) =
        app::plan_and_apply(&reviewed(dir.join("5-approved")), now, false).await?;
    print!("{}", app::summary_table(&planned));
    let closed = snow
        .get("change_request", &get("sys_id"))
        .context("the change is gone")?;
    let field = |f: &str| {
        closed
            .get(f)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    println!(
        "   {status:?}: change {} state {} (Closed), close code {}, outcome.json attached",
        get("number"),
        field("state"),
        field("close_code")
    );
    if status != Status::Clean || field("state") != "3" {
        bail!(
            "the approved plan was not applied and closed ({status:?}, state {})",
            field("state")
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

/// `[catalog]` of the demo: the shipped links and status mapping, written into `dir`.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
fn catalog_config(dir: &Path) -> Result<crate::config::CatalogConfig> {
    let mut paths = Vec::new();
    for (name, text) in CATALOG {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        paths.push(path);
    }
    let status = paths.pop();
    Ok(crate::config::CatalogConfig {
        links: paths,
        status,
        approve: true,
        max_orders: Some(20),
        settle: std::time::Duration::from_secs(1),
        search_within: std::time::Duration::from_secs(30 * 86_400),
        claim_timeout: std::time::Duration::from_secs(300),
        lease: crate::lease::LeaseConfig {
            name: "cmdb-reconcile-catalog".into(),
            ..Default::default()
        },
    })
}

/// A user orders a Linux VM in ServiceNow's catalog (`order_now`, as the portal does), and
/// the catalog pass (the frequent CronJob) orders it from CloudForms: its RITM goes AMBER.
/// Returns the RITM's sys_id.
async fn order_in_catalog(
    config: &impl Fn(PathBuf) -> Config,
    dir: &Path,
    now: DateTime<Utc>,
    sims: &cmdb_sim::Sims,
) -> Result<String> {
    let opts = sims.options();
    let item = sims
        .servicenow()
        .rows("sc_cat_item")
        .into_iter()
        .find(|r| r.get("name").and_then(serde_json::Value::as_str) == Some("Linux VM"))
        .and_then(|r| {
            r.get("sys_id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
        .context("the simulated catalog has no `Linux VM` item")?;
    let placed: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/api/sn_sc/servicecatalog/items/{item}/order_now",
            sims.servicenow_url()
        ))
        .basic_auth(&opts.snow_user, Some(&opts.snow_password))
        .json(&serde_json::json!({"sysparm_quantity": 1, "variables": {"vm_name": "demo-web-01"}}))
        .send()
        .await
        .context("ordering in the ServiceNow catalog")?
        .json()
        .await
        .context("the answer of order_now")?;
    let request = placed["result"]["sys_id"].as_str().unwrap_or_default();
    let ritm = sims
        .servicenow()
        .rows("sc_req_item")
        .into_iter()
        .find(|r| r.get("request").and_then(serde_json::Value::as_str) == Some(request))
        .context("order_now made no requested item")?;
    let get = |f: &str| {
        ritm.get(f)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    println!(
        "\n   A user orders \"Linux VM\" (vm_name demo-web-01) in the ServiceNow catalog: {} {}, approved",
        placed["result"]["number"].as_str().unwrap_or("REQ?"),
        get("number")
    );
    println!("   The catalog pass (its own frequent CronJob) orders it from CloudForms:");
    let passed = app::catalog_pass(&config(dir.join("2-catalog")), now, false, false, false)
        .await?
        .unwrap_or_default();
    let plans: Vec<Planned> = passed.into_iter().map(|(p, _)| p).collect();
    print!("{}", app::summary_table(&plans));
    print_ritm(sims, &get("sys_id"));
    Ok(get("sys_id"))
}

/// After the next run: the RITM closed GREEN with the VM's name, and the VM in the CMDB
/// with its relationships.
async fn catalog_follows(
    config: &Config,
    now: DateTime<Utc>,
    sims: &cmdb_sim::Sims,
    ritm: &str,
) -> Result<()> {
    let passed = app::catalog_pass(config, now, false, false, false)
        .await?
        .unwrap_or_default();
    let plans: Vec<Planned> = passed.into_iter().map(|(p, _)| p).collect();
    print!("{}", app::summary_table(&plans));
    print_ritm(sims, ritm);
    let text = |row: &serde_json::Map<String, serde_json::Value>, f: &str| {
        row.get(f)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let Some(ci) = sims
        .servicenow()
        .rows("cmdb_ci_vmware_instance")
        .into_iter()
        .find(|r| text(r, "name") == "demo-web-01")
    else {
        bail!("the ordered VM demo-web-01 has no CI after the run");
    };
    let sys_id = text(&ci, "sys_id");
    let rels = sims
        .servicenow()
        .rows("cmdb_rel_ci")
        .into_iter()
        .filter(|r| text(r, "parent") == sys_id || text(r, "child") == sys_id)
        .count();
    println!("   CMDB: demo-web-01 is CI {sys_id} with {rels} relationships (host, datastore, cluster...)");
    Ok(())
}

/// The RITM as the service desk sees it: its colour, state and the latest work note.
fn print_ritm(sims: &cmdb_sim::Sims, sys_id: &str) {
    let Some(row) = sims.servicenow().get("sc_req_item", sys_id) else {
        return;
    };
    let get = |f: &str| row.get(f).and_then(serde_json::Value::as_str).unwrap_or("");
    let colour = match get("state") {
        "3" => "GREEN (Closed Complete)",
        "4" => "RED (Closed Incomplete)",
        _ => "AMBER (Work in Progress)",
    };
    println!(
        "   {}: {colour}, correlation_id {}{}",
        get("number"),
        get("correlation_id"),
        if get("close_notes").is_empty() {
            String::new()
        } else {
            format!("\n     close notes: {}", get("close_notes"))
        }
    );
}
