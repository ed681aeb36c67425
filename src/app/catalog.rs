//! The catalog pass (README "Service catalog"): approved ServiceNow requested items (RITMs)
//! of linked catalog items become CloudForms orders, and CloudForms' progress is written
//! back to them. Run as its own command (`catalog`, for a frequent CronJob) and at the end of
//! `run`. Two plans per pass, each with its reports in the run folder:
//!
//! 1. `catalog`: the orders (the core's `plan_orders`), carried out by `apply::orders`.
//! 2. the status write-back: an ordinary sync (`[catalog] status`, e.g.
//!    `mappings/ritm-status.toml`: CloudForms `service_requests` -> `sc_req_item`), planned
//!    and applied like any other after the orders.
//!
//! The pass holds a lease of its own (`[catalog] lease_name`, default `<[lease] name>-catalog`,
//! with its own lock file): two catalog passes exclude each other, but a long CMDB run does
//! not hold the frequent catalog pass up (they write different tables).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};

use super::{
    apply_one, plan_one, refused, release, run_dir, take_lease, worst, write_index, Planned, Status,
};
use crate::apply::orders::{apply_orders, requests_by_ritm, OrderOptions};
use crate::apply::{self, OperationOutcome};
use crate::cli::RunArgs;
use crate::cloudforms::CloudForms;
use crate::config::{CatalogConfig, Config, SyncConfig};
use crate::lease::{Clock, Lease};
use crate::output::{self, Level};
use crate::reconcile::catalog::{
    links_digest, plan_orders, CatalogLink, Named, OrderInput, ResolvedLink, CLAIM_PREFIX,
};
use crate::reconcile::plan::Plan;
use crate::reconcile::record::{Ci, Val};
use crate::report::{self, Format};
use crate::servicenow::{escape_query_value, ServiceNow};
use crate::{metrics, progress};

/// The folder of the orders' reports in the run folder.
const FOLDER: &str = "catalog";

/// `catalog`: the catalog pass alone, under the catalog lease.
pub async fn catalog(args: &RunArgs, now: DateTime<Utc>) -> Result<Status> {
    let clock = Clock::new(now);
    let config = Config::for_plan(&args.plan, &args.apply_opts)?;
    metrics::set_config(config.ops.metrics.clone());
    let Some(catalog) = &config.catalog else {
        bail!("the config has no [catalog] section: nothing to order (README \"Service catalog\")");
    };
    let lease = if args.dry_run {
        None
    } else {
        match take_lease(
            &catalog.lease,
            config.servicenow.as_ref(),
            args.apply_opts.force_unlock,
            now,
        )
        .await?
        {
            Some(lease) => Some(lease),
            None => return Ok(Status::Busy),
        }
    };
    let run = run_dir(&config, now);
    let result = pass(
        &config,
        catalog,
        clock,
        args.plan.plan_opts.allow_mass_change,
        args.dry_run,
        &run,
        lease.as_ref().map(Lease::lost_flag),
    )
    .await;
    let status = match result {
        Ok(planned) => {
            let detailed = args.plan.plan_opts.detailed_exitcode;
            let (plans, statuses): (Vec<Planned>, Vec<Option<Status>>) =
                planned.into_iter().unzip();
            output::summary(&super::summary_table(&plans));
            let applied: Vec<bool> = plans
                .iter()
                .zip(&statuses)
                .map(|(p, s)| s.is_some() && !refused(&p.plan) && p.plan.has_changes())
                .collect();
            write_index(&run, now, &plans, &applied)?;
            Ok(worst(plans.iter().zip(&statuses).map(|(p, status)| {
                status.unwrap_or_else(|| Status::of(&p.plan, None, detailed))
            })))
        }
        Err(e) => Err(e),
    };
    match lease {
        Some(lease) => Ok(release(lease, status?).await),
        None => status,
    }
}

/// The catalog pass inside `run`, after the syncs, under the catalog lease: `None` when
/// another catalog pass holds it (the frequent CronJob is doing the work; not an error).
/// `now` is when the pass starts (its reports go in the run folder of `now`).
#[cfg(feature = "demo")]
pub(crate) async fn in_run(
    config: &Config,
    now: DateTime<Utc>,
    allow_mass_change: bool,
    dry_run: bool,
    force_unlock: bool,
) -> Result<Option<Vec<(Planned, Option<Status>)>>> {
    in_run_clocked(
        config,
        now,
        Clock::new(now),
        allow_mass_change,
        dry_run,
        force_unlock,
    )
    .await
}

/// [`in_run`] at the end of a run that started at `run_start` on `clock`: the pass's lease,
/// plan and claims are stamped with the time they happen (`clock`), not the run's start,
/// which may be the syncs' duration ago.
pub(crate) async fn in_run_clocked(
    config: &Config,
    run_start: DateTime<Utc>,
    clock: Clock,
    allow_mass_change: bool,
    dry_run: bool,
    force_unlock: bool,
) -> Result<Option<Vec<(Planned, Option<Status>)>>> {
    let now = clock.now();
    let Some(catalog) = &config.catalog else {
        return Ok(Some(Vec::new()));
    };
    let lease = if dry_run {
        None
    } else {
        match take_lease(
            &catalog.lease,
            config.servicenow.as_ref(),
            force_unlock,
            now,
        )
        .await?
        {
            Some(lease) => Some(lease),
            None => {
                output::notice(
                    Level::Warn,
                    "catalog",
                    "another catalog pass holds the catalog lease: this run's catalog pass is skipped",
                );
                return Ok(None);
            }
        }
    };
    let result = pass(
        config,
        catalog,
        clock,
        allow_mass_change,
        dry_run,
        &run_dir(config, run_start),
        lease.as_ref().map(Lease::lost_flag),
    )
    .await;
    match lease {
        Some(lease) => {
            let lost = lease.lost();
            lease.release().await;
            let mut planned = result?;
            if lost {
                for (_, status) in &mut planned {
                    *status = Some(status.unwrap_or(Status::Clean).max(Status::Partial));
                }
            }
            Ok(Some(planned))
        }
        None => result.map(Some),
    }
}

/// One pass: the orders planned (and applied), then the status write-back. Each plan with
/// the status it ended with when applied (`None`: planned only).
async fn pass(
    config: &Config,
    catalog: &CatalogConfig,
    clock: Clock,
    allow_mass_change: bool,
    dry_run: bool,
    run: &Path,
    lease_lost: Option<Arc<AtomicBool>>,
) -> Result<Vec<(Planned, Option<Status>)>> {
    let now = clock.now();
    let sn_cfg = config
        .servicenow
        .clone()
        .ok_or_else(|| anyhow!("[catalog] needs a [servicenow] connection"))?;
    let cf_cfg = config
        .cloudforms
        .clone()
        .ok_or_else(|| anyhow!("[catalog] needs a [cloudforms] connection"))?;
    let sn = ServiceNow::new(sn_cfg)?;
    let cf = CloudForms::new(cf_cfg)?;
    let mut out = Vec::new();

    let plan = plan_catalog(catalog, &sn, &cf, now, allow_mass_change).await?;
    let dir = run.join(FOLDER);
    let mut formats = config.formats.clone();
    if !formats.contains(&Format::Json) {
        formats.push(Format::Json);
    }
    report::write_reports(&plan, None, &dir, &formats)?;
    metrics::planned(&plan);
    let planned = Planned { plan, dir };
    let status = if dry_run {
        None
    } else {
        let guard = apply::Guard::new(&config.apply);
        if let Some(lost) = &lease_lost {
            guard.watch_lease(Arc::clone(lost));
        }
        Some(apply_catalog(&planned, &sn, &cf, catalog, clock, &guard).await?)
    };
    out.push((planned, status));

    if let Some(status_mapping) = &catalog.status {
        let sync = SyncConfig::live(status_mapping.clone());
        let name = super::load_mapping(status_mapping)?.name;
        let folder = if name == FOLDER {
            format!("{name}-status")
        } else {
            name
        };
        let p = plan_one(
            config,
            &sync,
            clock.now(),
            allow_mass_change,
            run.join(folder),
        )
        .await?;
        let status = if dry_run {
            None
        } else {
            let guard = apply::Guard::new(&config.apply);
            if let Some(lost) = &lease_lost {
                guard.watch_lease(Arc::clone(lost));
            }
            Some(apply_one(config, &p, &guard).await?)
        };
        out.push((p, status));
    }
    Ok(out)
}

/// `apply` of a reviewed `catalog/plan.json`: its orders, under the catalog lease.
pub(super) async fn apply_file(
    cfg: crate::config::ApplyConfig,
    planned: Planned,
    args: &crate::cli::ApplyArgs,
    now: DateTime<Utc>,
) -> Result<Status> {
    let catalog = cfg.catalog.clone().ok_or_else(|| {
        anyhow!("the plan orders from CloudForms, but the config has no [catalog] section")
    })?;
    let cf_cfg = cfg.cloudforms.clone().ok_or_else(|| {
        anyhow!("the plan orders from CloudForms, but the config has no [cloudforms] connection")
    })?;
    let Some(lease) = take_lease(
        &catalog.lease,
        Some(&cfg.servicenow),
        args.apply_opts.force_unlock,
        now,
    )
    .await?
    else {
        return Ok(Status::Busy);
    };
    let sn = ServiceNow::new(cfg.servicenow.clone())?;
    let cf = CloudForms::new(cf_cfg)?;
    let guard = apply::Guard::new(&cfg.options);
    guard.watch_lease(lease.lost_flag());
    let status = apply_catalog(&planned, &sn, &cf, &catalog, Clock::new(now), &guard).await;
    Ok(release(lease, status?).await)
}

/// Applies a plan of orders (unless a guard refuses it), writes outcome.json and refreshes
/// the reports; also what `apply` does with a `catalog/plan.json`.
pub(super) async fn apply_catalog(
    planned: &Planned,
    sn: &ServiceNow,
    cf: &CloudForms,
    catalog: &CatalogConfig,
    clock: Clock,
    guard: &apply::Guard,
) -> Result<Status> {
    let plan = &planned.plan;
    if refused(plan) {
        for trip in &plan.safety.guards_tripped {
            output::notice(
                Level::Warn,
                "refused",
                &format!("catalog: guard {}: {}", trip.guard, trip.message),
            );
        }
        return Ok(Status::Refused);
    }
    if plan.orders.is_empty() {
        return Ok(Status::of(plan, Some(&Default::default()), false));
    }
    // The secret dialog fields are made again from the RITMs, by the links' rules: only by
    // the rules the plan was made with.
    let links = if plan.orders.iter().any(|o| !o.secret.is_empty()) {
        let links = load_links(&catalog.links)?;
        if links_digest(&links) != plan.mapping.digest {
            output::notice(
                Level::Warn,
                "refused",
                "catalog: the plan sends secret dialog fields, and the catalog links changed since it was made (their digest differs), so they cannot be made as planned; plan again",
            );
            return Ok(Status::Refused);
        }
        links
    } else {
        Vec::new()
    };
    let opts = OrderOptions {
        marker: claim_marker(),
        clock,
        settle: catalog.settle,
        links,
        search_since: clock.now()
            - chrono::TimeDelta::from_std(catalog.search_within)
                .unwrap_or(chrono::TimeDelta::MAX / 2),
    };
    let started = std::time::Instant::now();
    let outcomes: Vec<OperationOutcome> = apply_orders(plan, sn, cf, &opts, guard).await;
    metrics::phase(&plan.mapping.name, "apply", started.elapsed());
    metrics::applied(plan, &outcomes);
    report::write_reports(plan, Some(&outcomes), &planned.dir, &Format::ALL)?;
    let counts = apply::tally(&outcomes);
    for o in &outcomes {
        let line = format!(
            "catalog: {} {}: {}",
            o.status,
            o.source_id.as_deref().unwrap_or("?"),
            o.message
        );
        let line = report::summary::printable(&line);
        if o.status.needs_attention() {
            tracing::warn!("{line}");
        } else {
            tracing::info!("{line}");
        }
    }
    Ok(Status::of(plan, Some(&counts), false))
}

/// This run's part of its claim markers: where and a random part, unique per run and short
/// enough for `correlation_id` (100 characters) with its prefix and time (stamped per claim,
/// when it is written).
fn claim_marker() -> String {
    let host: String = crate::lease::Holder::this_process()
        .host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(40)
        .collect();
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Reads what the orders are planned from and plans them.
async fn plan_catalog(
    catalog: &CatalogConfig,
    sn: &ServiceNow,
    cf: &CloudForms,
    now: DateTime<Utc>,
    allow_mass_change: bool,
) -> Result<Plan> {
    let reading = std::time::Instant::now();
    let links = load_links(&catalog.links)?;
    let (claim_state, resolved) = tokio::join!(claim_state(sn), resolve(&links, sn, cf));
    let claim_state = claim_state?;
    let resolved = resolved?;

    // Candidates: approved, active RITMs of linked items, not taken (an empty correlation_id:
    // `=` never matches empty, so ISEMPTY), or claimed by a pass that never wrote its order
    // back. Another pass cannot be claiming now: this pass holds the catalog lease.
    let mut fields: Vec<String> = [
        "number",
        "cat_item",
        "state",
        "approval",
        "active",
        "correlation_id",
        "sys_mod_count",
        "sys_updated_on",
    ]
    .map(str::to_owned)
    .to_vec();
    for link in &links {
        fields.extend(link.columns());
        fields.extend(
            link.variables()
                .into_iter()
                .map(|v| format!("variables.{v}")),
        );
    }
    fields.sort();
    fields.dedup();
    let items: Vec<String> = resolved.iter().map(|l| l.item_sys_id.clone()).collect();
    let base = format!(
        "cat_itemIN{}^active=true^approval=approved",
        items
            .iter()
            .map(|i| escape_query_value(i))
            .collect::<Vec<_>>()
            .join(",")
    );
    let fresh = format!("{base}^correlation_idISEMPTY");
    let stopped = format!("{base}^correlation_idSTARTSWITH{CLAIM_PREFIX}");
    let (a, b) = tokio::join!(
        sn.read_table("sc_req_item", &fields, Some(&fresh)),
        sn.read_table("sc_req_item", &fields, Some(&stopped))
    );
    let mut ritms: Vec<Ci> = a.context("reading the requested items to order")?;
    ritms.extend(b.context("reading the requested items claimed earlier")?);
    let ritms_origin = format!("ServiceNow sc_req_item ({fresh}, or claimed earlier)");

    let mut ordered = BTreeMap::new();
    let mut searched = 0;
    let mut search_incomplete = None;
    let mut ordered_origin =
        String::from("CloudForms service_requests (not searched: nothing to order)");
    if !ritms.is_empty() {
        let since = now
            - chrono::TimeDelta::from_std(catalog.search_within)
                .unwrap_or(chrono::TimeDelta::MAX / 2);
        let read = cf
            .service_requests_since(since)
            .await
            .context("searching CloudForms' service requests for the RITM numbers")?;
        let mut ritm_fields: Vec<String> = links.iter().map(|l| l.ritm_field.clone()).collect();
        ritm_fields.sort();
        ritm_fields.dedup();
        ordered = requests_by_ritm(&read.records, &ritm_fields);
        searched = read.records.len();
        search_incomplete = read.incomplete;
        ordered_origin = format!(
            "{} (updated in the last {})",
            read.origin,
            crate::text::format_duration(catalog.search_within)
        );
    }
    progress::reads_finished();
    metrics::phase("catalog", "read", reading.elapsed());
    let plan = plan_orders(&OrderInput {
        links: &resolved,
        ritms: &ritms,
        ritms_origin,
        ordered: &ordered,
        searched,
        ordered_origin,
        search_incomplete,
        claim_state,
        approve: catalog.approve,
        max_orders: catalog.max_orders,
        claim_timeout: chrono::TimeDelta::from_std(catalog.claim_timeout)
            .unwrap_or(chrono::TimeDelta::MAX),
        search_within: chrono::TimeDelta::from_std(catalog.search_within)
            .unwrap_or(chrono::TimeDelta::MAX),
        allow_mass_change,
        now,
    });
    tracing::info!(
        mapping = "catalog",
        candidates = ritms.len(),
        orders = plan.orders.len(),
        issues = plan.issues.len(),
        "catalog planned"
    );
    Ok(plan)
}

#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
fn load_links(paths: &[PathBuf]) -> Result<Vec<CatalogLink>> {
    let mut links: Vec<CatalogLink> = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read catalog link `{}`", path.display()))?;
        let link = CatalogLink::parse(&text, &path.display().to_string())?;
        if let Some(other) = links.iter().find(|l| l.item == link.item) {
            bail!(
                "catalog links `{}` and `{}` both take item {}: one item orders one template",
                other.origin,
                link.origin,
                link.item.describe()
            );
        }
        links.push(link);
    }
    Ok(links)
}

/// `check` of a catalog link file: `None` when the file is not one (no `[item]` table), else
/// what it links or why it cannot be used.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
pub(super) fn check_link(path: &Path) -> Option<Result<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    if !table.contains_key("item") {
        return None;
    }
    Some(
        CatalogLink::parse(&text, &path.display().to_string())
            .map(|link| {
                let mut dialog: Vec<String> = link
                    .dialog
                    .iter()
                    .map(|r| {
                        let secret = if link.is_secret(r) { " (secret)" } else { "" };
                        format!("{}{secret} <- {}", r.name, link.describe(r))
                    })
                    .collect();
                dialog.push(format!("{} <- the RITM number", link.ritm_field));
                format!(
                    "ok: {} (catalog link `{}`: item {} -> service template {}{})\n  dialog: {}",
                    path.display(),
                    link.name,
                    link.item.describe(),
                    link.template.describe(),
                    link.catalog
                        .as_ref()
                        .map(|c| format!(" in catalog `{c}`"))
                        .unwrap_or_default(),
                    dialog.join(", ")
                )
            })
            .map_err(Into::into),
    )
}

/// The RITM state of a claimed item, Work in Progress, as the instance's `sys_choice` has it
/// (integrations.md B.1: read the choices, the numbers differ between sources).
async fn claim_state(sn: &ServiceNow) -> Result<String> {
    let fields = ["value", "label"].map(str::to_owned);
    let choices = sn
        .read_table(
            "sys_choice",
            &fields,
            Some("name=sc_req_item^element=state^inactive=false"),
        )
        .await
        .context("reading the states of sc_req_item from sys_choice")?;
    let choices = if choices.is_empty() {
        // The choices are often defined on the parent table only.
        sn.read_table(
            "sys_choice",
            &fields,
            Some("name=task^element=state^inactive=false"),
        )
        .await
        .context("reading the states of task from sys_choice")?
    } else {
        choices
    };
    choices
        .iter()
        .find(|c| c.get("label").trim().eq_ignore_ascii_case("Work in Progress"))
        .map(|c| c.get("value").trim().to_owned())
        .ok_or_else(|| {
            let labels: Vec<&str> = choices.iter().map(|c| c.get("label")).collect();
            anyhow!(
                "sys_choice has no `Work in Progress` state for sc_req_item (states: {}): the catalog pass cannot claim requested items",
                labels.join(", ")
            )
        })
}

/// Finds each link's item in ServiceNow and template in CloudForms; a link that does not
/// resolve to exactly one of each stops the pass (the configuration is wrong).
async fn resolve<'a>(
    links: &'a [CatalogLink],
    sn: &ServiceNow,
    cf: &CloudForms,
) -> Result<Vec<ResolvedLink<'a>>> {
    let templates = cf
        .read(
            "service_templates",
            &["name".to_owned(), "service_template_catalog_id".to_owned()],
            &[],
        )
        .await
        .context("reading CloudForms' service templates")?;
    let catalogs = cf
        .read("service_catalogs", &["name".to_owned()], &[])
        .await
        .context("reading CloudForms' service catalogs")?;
    // A link by name is matched against every template: on a partial read a second template
    // of that name could be missing, and the wrong one ordered.
    for read in [&templates, &catalogs] {
        if let Some(why) = &read.incomplete {
            bail!("{} was not read in full ({why}): the catalog links cannot be resolved, so nothing is ordered", read.origin);
        }
    }
    let text = |v: &Val, k: &str| match v.get(k) {
        Some(Val::String(s)) => s.trim().to_owned(),
        Some(Val::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let catalog_name = |id: &str| {
        catalogs
            .records
            .iter()
            .find(|c| text(c, "id") == id)
            .map(|c| text(c, "name"))
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for link in links {
        let query = match &link.item {
            Named::Key(k) => format!("sys_id={}", escape_query_value(k)),
            Named::Name(n) => format!("name={}^active=true", escape_query_value(n)),
        };
        let items = sn
            .read_table(
                "sc_cat_item",
                &["name".to_owned(), "active".to_owned()],
                Some(&query),
            )
            .await
            .with_context(|| format!("reading the catalog item of `{}`", link.origin))?;
        let [item] = items.as_slice() else {
            bail!(
                "`{}`: ServiceNow has {} active catalog items {} (sc_cat_item); a link needs exactly one",
                link.origin,
                items.len(),
                link.item.describe()
            );
        };
        let matching: Vec<&Val> = templates
            .records
            .iter()
            .filter(|t| match &link.template {
                Named::Key(k) => text(t, "id") == *k,
                Named::Name(n) => text(t, "name") == *n,
            })
            .filter(|t| {
                link.catalog
                    .as_ref()
                    .is_none_or(|c| catalog_name(&text(t, "service_template_catalog_id")) == *c)
            })
            .collect();
        let [template] = matching.as_slice() else {
            bail!(
                "`{}`: CloudForms has {} service templates {}{} ; a link needs exactly one",
                link.origin,
                matching.len(),
                link.template.describe(),
                link.catalog
                    .as_ref()
                    .map(|c| format!(" in catalog `{c}`"))
                    .unwrap_or_default()
            );
        };
        out.push(ResolvedLink {
            link,
            item_sys_id: item.sys_id.clone(),
            item: item.get("name").to_owned(),
            template_id: text(template, "id"),
            template: text(template, "name"),
            catalog: catalog_name(&text(template, "service_template_catalog_id")),
        });
    }
    Ok(out)
}
