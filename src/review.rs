//! Review in ServiceNow: the part of a plan that needs approval (`reconcile::review::split`)
//! goes to the CMDB owners as a change request, and a later run applies exactly the plan
//! they approved. This module speaks to the change and its attachments; `app/review.rs`
//! wires it into `run`.
//!
//! One change per held plan. The change carries the plan's digest in `correlation_id`
//! (64 hex characters; the column holds 100, integrations.md B.3) and the sync in
//! `correlation_display` (`cmdb-reconcile:<mapping>`), so a run finds its open changes by
//! one query and never opens a second change for a plan it already sent. The plan itself
//! is attached (`plan.json`, as `apply` reads it), beside `drift.html` and `drift.csv`:
//! ServiceNow is the state store, so a CronJob with no persistent volume applies the
//! approved plan from the attachment after checking it against the digest.
//!
//! The state, approval and close code values are read from `sys_choice` by their labels
//! (the base labels of ServiceNowDocs "State model and transitions": New, Assess,
//! Authorize, Scheduled, Implement, Review, Closed, Canceled; "Approval status": Approved,
//! Rejected; the base close codes Successful, Successful with issues, Unsuccessful), never
//! assumed: an instance whose lists lack one fails the run with the labels it has.

use anyhow::{anyhow, Context, Result};

use crate::reconcile::plan::Plan;
use crate::reconcile::record::Ci;
use crate::reconcile::review::ReviewPolicy;
use crate::report::summary::Counts;
use crate::servicenow::ServiceNow;

/// A sync's review setting (`[[sync]] review`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReviewMode {
    /// Plan and apply (today's `run`).
    #[default]
    Auto,
    /// What the `[review]` policy holds waits for an approved change request.
    Approve,
}

/// `[review]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewConfig {
    pub policy: ReviewPolicy,
    /// The change table (`change_request`, or a table extending it).
    pub table: String,
    /// The change's `type` (`normal` by default; a `standard` change is pre-approved, which
    /// defeats the review).
    pub change_type: String,
    /// The CMDB owners' group (`assignment_group`, a `sys_user_group` sys_id): who approves.
    pub assignment_group: Option<String>,
    /// More fields set when the change opens (category, risk, a `std_change_producer_version`
    /// ...): the change's template.
    pub fields: Vec<(String, String)>,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            policy: ReviewPolicy::default(),
            table: "change_request".into(),
            change_type: "normal".into(),
            assignment_group: None,
            fields: Vec::new(),
        }
    }
}

/// The files a change carries, as attached.
pub const PLAN_FILE: &str = "plan.json";
pub const ATTACHED: [&str; 3] = ["drift.html", "drift.csv", PLAN_FILE];
pub const OUTCOME_FILE: &str = "outcome.json";

/// The change's values of states, approvals and close codes, from `sys_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeChoices {
    /// New, Assess, Authorize, Scheduled, Implement, Review, Closed: the normal model's order.
    pub path: Vec<String>,
    pub canceled: String,
    pub approved: String,
    pub rejected: String,
    pub successful: String,
    pub successful_issues: String,
    pub unsuccessful: String,
}

/// The labels looked for (lower-cased), per element; alternatives in order.
const STATE_LABELS: [&[&str]; 7] = [
    &["new"],
    &["assess"],
    &["authorize", "authorise"],
    &["scheduled"],
    &["implement"],
    &["review"],
    &["closed"],
];

impl ChangeChoices {
    /// Reads the choices of `table`'s `state` and `close_code` and of `approval` (a task
    /// column: a change table's own rows win over `task`'s).
    pub async fn read(sn: &ServiceNow, table: &str) -> Result<Self> {
        let fields: Vec<String> = ["name", "element", "value", "label", "inactive"]
            .map(str::to_owned)
            .to_vec();
        let query = format!(
            "nameIN{},task^elementINstate,approval,close_code",
            crate::servicenow::escape_query_value(table)
        );
        let rows = sn
            .read_table("sys_choice", &fields, Some(&query))
            .await
            .with_context(|| format!("reading the sys_choice rows of `{table}`"))?;
        Self::resolve(table, &rows).map_err(|e| anyhow!(e))
    }

    /// The values for the labels (pure; see [`ChangeChoices::read`]).
    pub fn resolve(table: &str, rows: &[Ci]) -> Result<Self, String> {
        let value = |element: &str, labels: &[&str]| -> Result<String, String> {
            let active = |r: &&Ci| {
                r.get("element") == element && !r.get("inactive").eq_ignore_ascii_case("true")
            };
            let candidates: Vec<&Ci> = rows.iter().filter(active).collect();
            let own = candidates.iter().any(|r| r.get("name") == table);
            let scoped: Vec<&&Ci> = candidates
                .iter()
                .filter(|r| !own || r.get("name") == table)
                .collect();
            for label in labels {
                if let Some(r) = scoped
                    .iter()
                    .find(|r| r.get("label").trim().eq_ignore_ascii_case(label))
                {
                    return Ok(r.get("value").trim().to_owned());
                }
            }
            let found: Vec<&str> = scoped.iter().map(|r| r.get("label")).collect();
            Err(format!(
                "sys_choice has no `{}` choice for {table}.{element} (it has: {}); the review workflow needs the base change model's labels",
                labels[0],
                if found.is_empty() { "none".to_owned() } else { found.join(", ") }
            ))
        };
        let path = STATE_LABELS
            .iter()
            .map(|labels| value("state", labels))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path,
            canceled: value("state", &["canceled", "cancelled"])?,
            approved: value("approval", &["approved"])?,
            rejected: value("approval", &["rejected"])?,
            successful: value("close_code", &["successful"])?,
            successful_issues: value("close_code", &["successful with issues"])?,
            unsuccessful: value("close_code", &["unsuccessful"])?,
        })
    }

    fn state(&self, i: usize) -> &str {
        &self.path[i]
    }
    pub fn new_state(&self) -> &str {
        self.state(0)
    }
    pub fn assess(&self) -> &str {
        self.state(1)
    }
    pub fn implement(&self) -> &str {
        self.state(4)
    }
    pub fn review(&self) -> &str {
        self.state(5)
    }
    pub fn closed(&self) -> &str {
        self.state(6)
    }

    /// The states to pass through, in order, to reach `to` from `from` (empty when `from`
    /// is `to` or beyond it, or not on the path).
    pub fn steps(&self, from: &str, to: &str) -> Vec<String> {
        let at = |s: &str| self.path.iter().position(|p| p == s);
        match (at(from), at(to)) {
            (Some(f), Some(t)) if f < t => self.path[f + 1..=t].to_vec(),
            _ => Vec::new(),
        }
    }
}

/// What a run does with an open change, from its approval (README "Review in ServiceNow").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Approved: apply its plan, then close it with the outcome.
    Apply,
    /// Rejected: cancel it and discard its plan.
    Discard,
    /// No decision yet: wait.
    Wait,
}

impl Decision {
    pub fn of(change: &OpenChange, choices: &ChangeChoices) -> Self {
        if change.approval == choices.approved {
            Self::Apply
        } else if change.approval == choices.rejected {
            Self::Discard
        } else {
            Self::Wait
        }
    }
}

/// An open change of one sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenChange {
    pub sys_id: String,
    pub number: String,
    pub state: String,
    pub approval: String,
    /// The digest of the plan it holds.
    pub digest: String,
    pub opened: String,
}

/// `correlation_display` of a sync's changes.
pub fn tag(mapping: &str) -> String {
    let tag = format!("cmdb-reconcile:{mapping}");
    tag.chars().take(100).collect()
}

/// The sync's open (active) changes, oldest first.
pub async fn open_changes(sn: &ServiceNow, table: &str, tag: &str) -> Result<Vec<OpenChange>> {
    let fields: Vec<String> = [
        "number",
        "state",
        "approval",
        "correlation_id",
        "sys_created_on",
    ]
    .map(str::to_owned)
    .to_vec();
    let rows = sn
        .find(
            table,
            &[
                ("correlation_display".to_owned(), tag.to_owned()),
                ("active".to_owned(), "true".to_owned()),
            ],
            &fields,
        )
        .await
        .with_context(|| format!("looking for the open changes of `{tag}` in {table}"))?;
    let mut changes: Vec<OpenChange> = rows
        .iter()
        .map(|r| OpenChange {
            sys_id: r.sys_id.clone(),
            number: r.get("number").to_owned(),
            state: r.get("state").trim().to_owned(),
            approval: r.get("approval").trim().to_owned(),
            digest: r.get("correlation_id").trim().to_owned(),
            opened: r.get("sys_created_on").to_owned(),
        })
        .collect();
    changes.sort_by(|a, b| (&a.opened, &a.number).cmp(&(&b.opened, &b.number)));
    Ok(changes)
}

/// The change's description: what the held plan writes, why it is held, what the run
/// applied at once, the guards and what the safety rules withheld.
pub fn describe(held: &Plan, now: &Plan, reasons: &[String], digest: &str) -> String {
    let line = |c: &Counts| {
        c.pairs()
            .filter(|(name, n)| *n > 0 && !matches!(*name, "unchanged" | "quarantined" | "issues"))
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (rel_creates, rel_deletes) = held.relationship_counts();
    let (kv_creates, kv_deletes) = held.classification_counts();
    let mut text = format!(
        "cmdb-reconcile asks to write {} ({}), as planned at {} UTC from {}.\n\nHeld for approval: {}",
        held.mapping.table,
        held.mapping.name,
        held.generated_at.format("%Y-%m-%d %H:%M:%S"),
        held.source.origin,
        line(&Counts::of(held)),
    );
    if rel_creates + rel_deletes > 0 {
        text.push_str(&format!(
            "; relationship rows: create {rel_creates}, delete {rel_deletes}"
        ));
    }
    if kv_creates + kv_deletes > 0 {
        text.push_str(&format!(
            "; classification rows: create {kv_creates}, delete {kv_deletes}"
        ));
    }
    text.push_str("\nWhy: ");
    text.push_str(&reasons.join("; "));
    let applied = line(&Counts::of(now));
    text.push_str(&format!(
        "\nApplied at once (no approval needed): {}",
        if applied.is_empty() {
            "nothing"
        } else {
            &applied
        }
    ));
    if let Some(reason) = &held.safety.retirements_blocked {
        text.push_str(&format!(
            "\nWithheld by the safety rules: {} retirements ({reason})",
            held.safety.retirements_withheld
        ));
    }
    for trip in &held.safety.guards_tripped {
        text.push_str(&format!("\nGuard {}: {}", trip.guard, trip.message));
    }
    let c = Counts::of(held);
    if c.quarantined > 0 {
        text.push_str(&format!(
            "\nQuarantined (never written until a person decides): {}",
            c.quarantined
        ));
    }
    text.push_str(&format!(
        "\n\nAttached: drift.html (the drift to review), drift.csv, plan.json (what is applied once approved; SHA-256 of its writes {digest}, in correlation_id). Approve to have the next run apply exactly this plan; reject to discard it."
    ));
    text
}

/// Opens a change for a held plan (one attempt: a lost answer is found by the next run's
/// query, never sent again).
pub async fn open(
    sn: &ServiceNow,
    cfg: &ReviewConfig,
    tag: &str,
    digest: &str,
    short: &str,
    description: &str,
) -> Result<OpenChange> {
    let mut fields: Vec<(String, String)> = vec![
        (
            "short_description".into(),
            short.chars().take(160).collect(),
        ),
        (
            "description".into(),
            description.chars().take(4000).collect(),
        ),
        ("type".into(), cfg.change_type.clone()),
    ];
    if let Some(group) = &cfg.assignment_group {
        fields.push(("assignment_group".into(), group.clone()));
    }
    for (k, v) in &cfg.fields {
        fields.retain(|(f, _)| f != k);
        fields.push((k.clone(), v.clone()));
    }
    // Last, so a template cannot take the change away from the job.
    fields.retain(|(f, _)| f != "correlation_id" && f != "correlation_display");
    fields.push(("correlation_id".into(), digest.to_owned()));
    fields.push(("correlation_display".into(), tag.to_owned()));
    let row = sn
        .create(&cfg.table, &fields)
        .await
        .with_context(|| format!("opening a change in {}", cfg.table))?;
    Ok(OpenChange {
        sys_id: row.sys_id.clone(),
        number: row.get("number").to_owned(),
        state: row.get("state").trim().to_owned(),
        approval: row.get("approval").trim().to_owned(),
        digest: digest.to_owned(),
        opened: row.get("sys_created_on").to_owned(),
    })
}

/// Writes `fields` to a change; returns it as the instance stored it.
pub async fn write(
    sn: &ServiceNow,
    table: &str,
    change: &OpenChange,
    fields: &[(&str, &str)],
) -> Result<Ci> {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    sn.update(table, &change.sys_id, &fields)
        .await
        .with_context(|| format!("updating change {}", change.number))
}

/// Moves a change along the model to `to`, a state at a time (the model refuses skips).
pub async fn advance(
    sn: &ServiceNow,
    table: &str,
    choices: &ChangeChoices,
    change: &mut OpenChange,
    to: &str,
) -> Result<()> {
    for state in choices.steps(&change.state, to) {
        let row = write(sn, table, change, &[("state", &state)]).await?;
        change.state = state;
        // The instance's approval flow may have moved (Assess asks the approvers).
        change.approval = row.get("approval").trim().to_owned();
    }
    Ok(())
}

/// Cancels a change with a work note.
pub async fn cancel(
    sn: &ServiceNow,
    table: &str,
    choices: &ChangeChoices,
    change: &OpenChange,
    note: &str,
) -> Result<()> {
    write(
        sn,
        table,
        change,
        &[("work_notes", note), ("state", &choices.canceled)],
    )
    .await
    .map(drop)
}

/// Attaches the files of `ATTACHED` from `dir` that the change does not carry yet (a run
/// that stopped half way is completed, never attached twice).
pub async fn attach_missing(
    sn: &ServiceNow,
    table: &str,
    change: &OpenChange,
    dir: &std::path::Path,
) -> Result<usize> {
    let have = sn
        .attachments(table, &change.sys_id)
        .await
        .with_context(|| format!("listing the attachments of change {}", change.number))?;
    let mut added = 0;
    for name in ATTACHED {
        if have.iter().any(|a| a.file_name == name) {
            continue;
        }
        let bytes = read_file(&dir.join(name))?;
        sn.attach(table, &change.sys_id, name, content_type(name), &bytes)
            .await
            .with_context(|| format!("attaching {name} to change {}", change.number))?;
        added += 1;
    }
    Ok(added)
}

/// The plan an approved change carries: its one `plan.json`, whose writes must have the
/// digest the change records. The outer error is ServiceNow's (try again next run); the
/// inner one says why this change's plan may never be applied.
pub async fn attached_plan(
    sn: &ServiceNow,
    table: &str,
    change: &OpenChange,
) -> Result<Result<Plan, String>> {
    let files = sn
        .attachments(table, &change.sys_id)
        .await
        .with_context(|| format!("listing the attachments of change {}", change.number))?;
    let plans: Vec<_> = files.iter().filter(|a| a.file_name == PLAN_FILE).collect();
    let [file] = plans.as_slice() else {
        return Ok(Err(format!(
            "change {} carries {} {PLAN_FILE} attachments; exactly one is applied",
            change.number,
            plans.len()
        )));
    };
    let Some(bytes) = sn
        .download(&file.sys_id)
        .await
        .with_context(|| format!("downloading {PLAN_FILE} of change {}", change.number))?
    else {
        return Ok(Err(format!(
            "{PLAN_FILE} of change {} is gone",
            change.number
        )));
    };
    Ok(verified(&bytes, change))
}

/// A downloaded `plan.json` parsed and checked against the change's digest (pure).
pub fn verified(bytes: &[u8], change: &OpenChange) -> Result<Plan, String> {
    let origin = format!("{PLAN_FILE} of change {}", change.number);
    let plan = crate::app::parse_plan(&String::from_utf8_lossy(bytes), &origin)
        .map_err(|e| format!("{e:#}"))?;
    let found = crate::reconcile::review::digest(&plan);
    if found != change.digest {
        return Err(format!(
            "{origin} does not match the change's correlation_id (its writes hash to {found}, the change records {}); it was changed after the change was opened and is not applied",
            change.digest
        ));
    }
    Ok(plan)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html",
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(name: &str, element: &str, value: &str, label: &str) -> Ci {
        Ci::new(
            format!("{name}{element}{value}"),
            [
                ("name", name.to_owned()),
                ("element", element.to_owned()),
                ("value", value.to_owned()),
                ("label", label.to_owned()),
                ("inactive", "false".to_owned()),
            ],
        )
    }

    fn base() -> Vec<Ci> {
        let mut rows = vec![
            // task's own states: a change's rows win over these.
            choice("task", "state", "1", "Open"),
            choice("task", "state", "3", "Closed Complete"),
            choice("task", "approval", "approved", "Approved"),
            choice("task", "approval", "rejected", "Rejected"),
            choice("task", "approval", "requested", "Requested"),
        ];
        for (v, l) in [
            ("-5", "New"),
            ("-4", "Assess"),
            ("-3", "Authorize"),
            ("-2", "Scheduled"),
            ("-1", "Implement"),
            ("0", "Review"),
            ("3", "Closed"),
            ("4", "Canceled"),
        ] {
            rows.push(choice("change_request", "state", v, l));
        }
        for (v, l) in [
            ("successful", "Successful"),
            ("successful_issues", "Successful with issues"),
            ("unsuccessful", "Unsuccessful"),
        ] {
            rows.push(choice("change_request", "close_code", v, l));
        }
        rows
    }

    #[test]
    fn values_come_from_the_labels_and_the_change_table_wins() {
        let c = ChangeChoices::resolve("change_request", &base()).unwrap();
        assert_eq!(c.path, ["-5", "-4", "-3", "-2", "-1", "0", "3"]);
        assert_eq!(c.canceled, "4");
        assert_eq!(
            (c.approved.as_str(), c.rejected.as_str()),
            ("approved", "rejected")
        );
        assert_eq!(c.successful_issues, "successful_issues");
        assert_eq!(c.steps("-2", "-1"), ["-1"]);
        assert_eq!(c.steps("-3", "-1"), ["-2", "-1"]);
        assert!(c.steps("-1", "-2").is_empty());
        assert!(c.steps("9", "-1").is_empty());
    }

    #[test]
    fn a_site_with_other_values_is_followed_and_a_missing_label_is_named() {
        let mut rows = base();
        for r in &mut rows {
            if r.get("label") == "Scheduled" {
                *r = choice("change_request", "state", "12", "Scheduled");
            }
        }
        let c = ChangeChoices::resolve("change_request", &rows).unwrap();
        assert_eq!(c.path[3], "12");
        rows.retain(|r| r.get("label") != "Unsuccessful");
        let e = ChangeChoices::resolve("change_request", &rows).unwrap_err();
        assert!(
            e.contains("unsuccessful") && e.contains("close_code"),
            "{e}"
        );
    }

    fn plan_json(cpus: &str) -> String {
        serde_json::json!({
            "format_version": 1, "generated_at": "2026-12-01T00:00:00Z",
            "mapping": {"name": "m", "origin": "m.toml", "digest": "d", "table": "t",
                        "scope": "", "collection": "vms"},
            "source": {"origin": "s", "complete": true, "incomplete_reason": null,
                       "records": 1, "filtered_out": 0, "inactive": 0},
            "target": {"origin": "t", "table": "t", "cis": 1, "in_scope": 1},
            "summary": {"creates": 0, "updates": 1, "restores": 0, "heartbeats": 0,
                        "retirements": 0, "deletes": 0, "marked_absent": 0, "unchanged": 0,
                        "quarantined": 0, "issues": 0, "drift_by_field": {}},
            "safety": {"retirements_blocked": null, "retirements_withheld": 0,
                       "guards_tripped": [], "mass_change_allowed": false},
            "creates": [],
            "updates": [{"sys_id": "ci1", "source_id": "1", "name": "vm1", "kind": "drift",
                "matched_by": "uuid", "sys_updated_on": "2026-11-01 00:00:00",
                "sys_mod_count": "1", "context": {},
                "changes": [{"field": "cpus", "current": "2", "desired": cpus,
                             "mode": "authoritative", "from": "cpus"}]}],
            "retirements": [], "issues": []
        })
        .to_string()
    }

    #[test]
    fn only_the_plan_with_the_changes_digest_is_applied() {
        let approved = plan_json("4");
        let plan = crate::app::parse_plan(&approved, "p").unwrap();
        let change = OpenChange {
            sys_id: "s".into(),
            number: "CHG7".into(),
            state: "-2".into(),
            approval: "approved".into(),
            digest: crate::reconcile::review::digest(&plan),
            opened: String::new(),
        };
        assert_eq!(verified(approved.as_bytes(), &change), Ok(plan));
        // Someone replaced the attachment with a plan that writes something else.
        let e = verified(plan_json("64").as_bytes(), &change).unwrap_err();
        assert!(e.contains("CHG7") && e.contains("correlation_id"), "{e}");
        let e = verified(b"<html>", &change).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
    }

    #[test]
    fn approval_decides() {
        let c = ChangeChoices::resolve("change_request", &base()).unwrap();
        let change = |approval: &str| OpenChange {
            sys_id: "s".into(),
            number: "CHG1".into(),
            state: "-4".into(),
            approval: approval.into(),
            digest: "d".into(),
            opened: String::new(),
        };
        assert_eq!(Decision::of(&change("approved"), &c), Decision::Apply);
        assert_eq!(Decision::of(&change("rejected"), &c), Decision::Discard);
        assert_eq!(Decision::of(&change("requested"), &c), Decision::Wait);
        assert_eq!(Decision::of(&change("not requested"), &c), Decision::Wait);
    }
}
