//! `drift.html`: one self-contained page a CMDB owner can read and filter in a browser.
//!
//! Self-contained because reports are mailed, attached to tickets and opened from shares behind
//! the firewall: inline CSS and a little inline JavaScript, no external asset, no CDN.
//!
//! Everything from the inventory is untrusted (a VM may be named `<script>...`). All of it goes
//! through [`escape`] into text or double-quoted attribute values; none of it ever reaches the
//! script, which is a constant and reads filter values back from escaped `data-*` attributes.
//! Context keys (which are data too) never become attribute names: filters refer to them by
//! index (`data-c0`, `data-c1`...).

use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};

use super::model::{plural, Action, ChangeRow, IssueGroup, OutcomeStatus, ReportModel};

/// Escapes text for HTML text and double- or single-quoted attribute values.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // NUL is replaced by parsers anyway; other controls are not valid HTML text.
            c if c.is_control() && c != '\n' && c != '\t' && c != '\r' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Values longer than this are not diffed character by character: the diff would be slow and
/// unreadable, so they are shown as a whole deletion and insertion.
const MAX_DIFF_CHARS: usize = 2000;

/// Below this similarity a character diff is noise (e.g. one sys_id replaced by another).
const MIN_DIFF_RATIO: f32 = 0.4;

/// An inline character diff of two values: deletions in `<del>`, insertions in `<ins>`.
pub fn inline_diff(current: &str, desired: &str) -> String {
    if current.chars().count() > MAX_DIFF_CHARS || desired.chars().count() > MAX_DIFF_CHARS {
        return whole_diff(current, desired);
    }
    // A number is one unit: `1<del>00</del>` for 100 -> 1 misleads more than it helps.
    if is_number(current) || is_number(desired) {
        return whole_diff(current, desired);
    }
    let diff = TextDiff::from_chars(current, desired);
    if diff.ratio() < MIN_DIFF_RATIO {
        return whole_diff(current, desired);
    }
    let mut out = String::new();
    for op in diff.ops() {
        for change in diff.iter_changes(op) {
            let text = escape(change.value());
            match change.tag() {
                ChangeTag::Equal => out.push_str(&text),
                ChangeTag::Delete => {
                    let _ = write!(out, "<del>{text}</del>");
                }
                ChangeTag::Insert => {
                    let _ = write!(out, "<ins>{text}</ins>");
                }
            }
        }
    }
    // Adjacent single-character runs of the same tag read better as one run.
    out.replace("</del><del>", "").replace("</ins><ins>", "")
}

fn is_number(value: &str) -> bool {
    value.trim().parse::<f64>().is_ok()
}

fn whole_diff(current: &str, desired: &str) -> String {
    format!(
        "<del>{}</del><span class=\"arrow\"> → </span><ins>{}</ins>",
        escape(current),
        escape(desired)
    )
}

const EMPTY: &str = "<span class=\"empty\">empty</span>";

/// The change cell of a row: what the value is now and what it becomes.
fn change_cell(row: &ChangeRow) -> String {
    if row.field.is_empty() {
        return match row.action {
            Action::Delete => "<span class=\"note\">the CI is deleted</span>".to_owned(),
            _ => "<span class=\"note\">no field change</span>".to_owned(),
        };
    }
    match (row.action, row.current.is_empty(), row.desired.is_empty()) {
        (Action::Create, _, true) => EMPTY.to_owned(),
        (Action::Create, _, false) => format!("<ins>{}</ins>", escape(&row.desired)),
        (_, true, true) => EMPTY.to_owned(),
        (_, true, false) => format!(
            "{EMPTY}<span class=\"arrow\"> → </span><ins>{}</ins>",
            escape(&row.desired)
        ),
        (_, false, true) => format!(
            "<del>{}</del><span class=\"arrow\"> → </span>{EMPTY}",
            escape(&row.current)
        ),
        (_, false, false) => inline_diff(&row.current, &row.desired),
    }
}

fn outcome_class(status: OutcomeStatus) -> &'static str {
    match status {
        OutcomeStatus::Applied => "ok",
        OutcomeStatus::Failed | OutcomeStatus::Unknown | OutcomeStatus::OverwroteConcurrentEdit => {
            "bad"
        }
        OutcomeStatus::SkippedStale | OutcomeStatus::Skipped => "warn",
        OutcomeStatus::NotAttempted => "muted",
    }
}

/// The HTML report.
pub fn render(model: &ReportModel) -> String {
    let mut h = String::with_capacity(16 * 1024 + model.changes.len() * 600);
    let head = &model.header;
    let title = format!("Drift report: {} → {}", head.mapping, head.table);
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"cmdb-reconcile\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>",
        escape(&title)
    );
    header(&mut h, model);
    h.push_str("<main class=\"wrap\">\n");
    banners(&mut h, model);
    cards(&mut h, model);
    outcomes(&mut h, model);
    nav(&mut h, model);
    changes(&mut h, model);
    drift(&mut h, model);
    relationships(&mut h, model);
    classifications(&mut h, model);
    issues(
        &mut h,
        "quarantined",
        "Quarantined records",
        "Held back from every write until the data is fixed.",
        "No record is quarantined.",
        &model.quarantined,
    );
    issues(
        &mut h,
        "issues",
        "Issues",
        "Problems with records and values; the rest of the plan goes ahead.",
        "No other issue.",
        &model.issues,
    );
    h.push_str("</main>\n");
    let _ = writeln!(
        h,
        "<footer class=\"wrap\">cmdb-reconcile · mapping digest <code>{}</code> · generated {}</footer>",
        escape(&head.mapping_digest),
        escape(&head.generated_at)
    );
    let _ = writeln!(h, "<script>{JS}</script>\n</body>\n</html>");
    h
}

fn header(h: &mut String, model: &ReportModel) {
    let head = &model.header;
    let _ = writeln!(
        h,
        "<header class=\"top\"><div class=\"wrap\">\
         <div class=\"kicker\">CMDB drift report</div>\
         <h1>{} <span class=\"to\">→</span> <code>{}</code></h1>\
         <dl class=\"meta\">\
         <div><dt>Generated</dt><dd>{}</dd></div>\
         <div><dt>Source</dt><dd>{} · {} records{}{}</dd></div>\
         <div><dt>Target</dt><dd>{} · {} CIs, {} in scope</dd></div>\
         <div><dt>Scope</dt><dd><code>{}</code></dd></div>\
         <div><dt>Mapping</dt><dd>{}</dd></div>\
         </dl></div></header>",
        escape(&head.mapping),
        escape(&head.table),
        escape(&head.generated_at),
        escape(&head.source_origin),
        head.source_records,
        {
            let mut extra = String::new();
            if head.source_filtered_out > 0 {
                let _ = write!(extra, ", {} filtered out", head.source_filtered_out);
            }
            if head.source_inactive > 0 {
                let _ = write!(extra, ", {} inactive", head.source_inactive);
            }
            extra
        },
        if head.source_complete {
            ""
        } else {
            " · <strong class=\"bad\">incomplete</strong>"
        },
        escape(&head.target_origin),
        head.target_cis,
        head.target_in_scope,
        escape(&head.scope),
        escape(&head.mapping_origin),
    );
}

fn banners(h: &mut String, model: &ReportModel) {
    let safety = &model.safety;
    if safety.writes_blocked {
        h.push_str(
            "<div class=\"banner danger\" role=\"alert\"><strong>A safety guard tripped: \
             <code>apply</code> will write nothing.</strong><ul>",
        );
        for guard in &safety.guards_tripped {
            let _ = write!(
                h,
                "<li><code>{}</code>: {} planned, limit {}. {}</li>",
                escape(&guard.guard),
                guard.planned,
                escape(&guard.limit),
                escape(&guard.message)
            );
        }
        h.push_str("</ul>");
        if safety.mass_change_allowed {
            h.push_str("<p>Mass change was allowed for this run.</p>");
        }
        h.push_str("</div>\n");
    }
    if let Some(reason) = &safety.retirements_blocked {
        let _ = writeln!(
            h,
            "<div class=\"banner warn\" role=\"alert\"><strong>Retirements are blocked: \
             {} withheld.</strong> {}</div>",
            safety.retirements_withheld,
            escape(reason)
        );
    }
    if let Some(reason) = &safety.source_incomplete {
        if safety.retirements_blocked.is_none() {
            let _ = writeln!(
                h,
                "<div class=\"banner warn\" role=\"alert\"><strong>The source read is \
                 incomplete.</strong> {}</div>",
                escape(reason)
            );
        }
    }
    if !safety.writes_blocked && safety.mass_change_allowed {
        h.push_str(
            "<div class=\"banner info\">Mass change was explicitly allowed for this run.</div>\n",
        );
    }
}

fn cards(h: &mut String, model: &ReportModel) {
    let s = &model.summary;
    let c = &s.counts;
    let mut update_note = Vec::new();
    if s.restores > 0 {
        update_note.push(plural(s.restores, "restore", "restores"));
    }
    if s.report_only > 0 {
        update_note.push(format!("+{} not written (ignore)", s.report_only));
    }
    let withheld = if model.safety.retirements_withheld > 0 {
        format!("{} withheld", model.safety.retirements_withheld)
    } else {
        String::new()
    };
    let issues_note = if c.quarantined > 0 {
        format!("{} quarantined", c.quarantined)
    } else {
        String::new()
    };
    // The summary table's words and numbers (`Counts`).
    let cards: [(&str, &str, usize, String); 9] = [
        ("create", "Create", c.create, String::new()),
        ("update", "Update", c.update, update_note.join(" · ")),
        ("heartbeat", "Heartbeat", c.heartbeat, String::new()),
        ("absent", "Absent", c.absent, String::new()),
        ("retire", "Retire", c.retire, withheld),
        ("delete", "Delete", c.delete, String::new()),
        ("unchanged", "Unchanged", c.unchanged, String::new()),
        ("quarantined", "Quarantined", c.quarantined, String::new()),
        ("issues", "Issues", c.issues, issues_note),
    ];
    h.push_str("<section class=\"cards\" aria-label=\"Summary\">");
    for (class, label, count, note) in cards {
        let zero = if count == 0 { " zero" } else { "" };
        let _ = write!(
            h,
            "<div class=\"card c-{class}{zero}\"><div class=\"n\">{count}</div>\
             <div class=\"l\">{label}</div><div class=\"s\">{}</div></div>",
            escape(&note)
        );
    }
    h.push_str("</section>\n");
}

fn outcomes(h: &mut String, model: &ReportModel) {
    let Some(outcome) = &model.outcomes else {
        return;
    };
    h.push_str("<section id=\"outcome\"><h2>Apply outcome</h2><div class=\"cards small\">");
    for (status, count) in outcome.counts() {
        let zero = if count == 0 { " zero" } else { "" };
        let _ = write!(
            h,
            "<div class=\"card o-{}{zero}\"><div class=\"n\">{count}</div>\
             <div class=\"l\">{}</div></div>",
            outcome_class(status),
            status.label()
        );
    }
    h.push_str("</div>");
    let problems: Vec<_> = outcome
        .outcomes
        .iter()
        .filter(|o| o.status != OutcomeStatus::Applied)
        .collect();
    if !problems.is_empty() {
        h.push_str(
            "<table class=\"plain\"><thead><tr><th>Status</th><th>sys_id</th><th>VM</th>\
             <th>Message</th></tr></thead><tbody>",
        );
        for o in problems {
            let _ = write!(
                h,
                "<tr><td><span class=\"status {}\">{}</span></td><td><code>{}</code></td>\
                 <td><code>{}</code></td><td>{}</td></tr>",
                outcome_class(o.status),
                o.status.label(),
                escape(o.sys_id.as_deref().unwrap_or("")),
                escape(o.source_id.as_deref().unwrap_or("")),
                escape(&o.message)
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>\n");
}

fn nav(h: &mut String, model: &ReportModel) {
    let q: usize = model.quarantined.iter().map(|g| g.issues.len()).sum();
    let i: usize = model.issues.iter().map(|g| g.issues.len()).sum();
    let _ = writeln!(
        h,
        "<nav class=\"toc\"><a href=\"#changes\">Changes <b>{}</b></a>\
         <a href=\"#drift\">Drift by field <b>{}</b></a>\
         <a href=\"#quarantined\">Quarantined <b>{q}</b></a>\
         <a href=\"#issues\">Issues <b>{i}</b></a></nav>",
        model.changes.len(),
        model.drift_by_field.len(),
    );
}

fn select(h: &mut String, attribute: &str, label: &str, values: &[(String, String)]) {
    let _ = write!(
        h,
        "<label class=\"sel\"><span>{}</span><select data-filter=\"{}\">\
         <option value=\"\">all</option>",
        escape(label),
        escape(attribute)
    );
    for (value, text) in values {
        let _ = write!(
            h,
            "<option value=\"{}\">{}</option>",
            escape(value),
            escape(text)
        );
    }
    h.push_str("</select></label>");
}

fn changes(h: &mut String, model: &ReportModel) {
    h.push_str("<section id=\"changes\"><h2>Changes</h2>\n");
    if model.changes.is_empty() {
        h.push_str("<p class=\"none\">No change: the CMDB matches the inventory.</p></section>\n");
        return;
    }
    let actions = model.actions_present();
    h.push_str("<div class=\"filters\" role=\"search\">");
    h.push_str(
        "<input type=\"search\" id=\"q\" placeholder=\"Filter by any text: name, sys_id, value…\" \
         aria-label=\"Filter changes\">",
    );
    let action_values: Vec<(String, String)> = actions
        .iter()
        .map(|a| (a.as_str().to_owned(), a.label().to_owned()))
        .collect();
    select(h, "data-action", "Action", &action_values);
    let fields: Vec<(String, String)> = model
        .fields_present()
        .into_iter()
        .map(|f| (f.clone(), f))
        .collect();
    select(h, "data-field", "Field", &fields);
    for (index, key) in model.context_keys.iter().enumerate() {
        let values: Vec<(String, String)> = model
            .context_values(key)
            .into_iter()
            .map(|v| (v.clone(), v))
            .collect();
        select(h, &format!("data-c{index}"), key, &values);
    }
    let _ = writeln!(
        h,
        "<button type=\"button\" id=\"reset\">Reset</button>\
         <span id=\"shown\" aria-live=\"polite\">{0} of {0} changes</span></div>",
        model.changes.len()
    );
    let with_outcomes = model.outcomes.is_some();
    for action in actions {
        let rows: Vec<&ChangeRow> = model.rows_of(action).collect();
        // Consecutive rows of one CI are one operation: shown as a CI heading and its fields.
        let mut operations: Vec<Vec<&ChangeRow>> = Vec::new();
        for row in rows.iter().copied() {
            match operations.last_mut() {
                Some(op) if same_operation(op[0], row) => op.push(row),
                _ => operations.push(vec![row]),
            }
        }
        let _ = writeln!(
            h,
            "<section class=\"group a-{0}\" data-group=\"{0}\"><h3><span class=\"pill a-{0}\">{1}</span> \
             <span class=\"count\">{2} · {3}</span></h3><p class=\"desc\">{4}</p>\n\
             <table class=\"changes\"><colgroup><col class=\"w-field\"><col class=\"w-change\">\
             <col class=\"w-mode\"><col class=\"w-from\"></colgroup><thead><tr><th>Field</th>\
             <th>Change</th><th>Mode</th><th>From</th></tr></thead>",
            action.as_str(),
            action.label(),
            plural(operations.len(), "CI", "CIs"),
            plural(rows.len(), "change", "changes"),
            action.description(),
        );
        for operation in operations {
            h.push_str("<tbody class=\"op\">");
            operation_heading(h, model, operation[0], with_outcomes);
            for row in operation {
                change_row(h, model, row);
            }
            h.push_str("</tbody>\n");
        }
        h.push_str("</table></section>\n");
    }
    h.push_str(
        "<p class=\"none\" id=\"nomatch\" hidden>No change matches the filters.</p></section>\n",
    );
}

fn same_operation(a: &ChangeRow, b: &ChangeRow) -> bool {
    a.action == b.action && a.sys_id == b.sys_id && a.source_id == b.source_id
}

/// The heading row of one operation: the CI, the ids a reviewer looks it up by, its context,
/// why it is retired and what `apply` did with it.
fn operation_heading(h: &mut String, model: &ReportModel, row: &ChangeRow, outcomes: bool) {
    let name = if row.name.is_empty() {
        "<span class=\"empty\">no name</span>".to_owned()
    } else {
        escape(&row.name)
    };
    let _ = write!(
        h,
        "<tr class=\"cihead\"><td colspan=\"4\"><div class=\"line\"><span class=\"name\">{name}</span>"
    );
    let ids = [
        ("sys_id", "sys_id", &row.sys_id),
        ("VM", "CloudForms VM id", &row.source_id),
        ("by", "identity rule that matched", &row.matched_by),
    ];
    for (label, title, value) in ids {
        if !value.is_empty() {
            let _ = write!(
                h,
                "<span class=\"id\" title=\"{title}\">{label} <code>{}</code></span>",
                escape(value)
            );
        }
    }
    for key in &model.context_keys {
        if let Some(value) = row.context.get(key) {
            let _ = write!(
                h,
                "<span class=\"chip\"><span class=\"k\">{}</span> {}</span>",
                escape(key),
                escape(value)
            );
        }
    }
    if outcomes {
        h.push_str("<span class=\"outcome\">");
        match &row.outcome {
            Some(o) => {
                let _ = write!(
                    h,
                    "<span class=\"status {}\">{}</span>",
                    outcome_class(o.status),
                    o.status.label()
                );
                if let (Action::Create, Some(sys_id)) = (row.action, &o.sys_id) {
                    let _ = write!(
                        h,
                        " <span class=\"id\">new sys_id <code>{}</code></span>",
                        escape(sys_id)
                    );
                }
            }
            None if row.written => h.push_str("<span class=\"status muted\">not attempted</span>"),
            None => h.push_str("<span class=\"status muted\">not written</span>"),
        }
        h.push_str("</span>");
    }
    h.push_str("</div>");
    if let Some(reason) = &row.reason {
        let _ = write!(h, "<div class=\"reason\">{}</div>", escape(reason));
    }
    relationships_of(h, model, row);
    if let Some(o) = row.outcome.as_ref().filter(|o| !o.message.is_empty()) {
        let _ = write!(
            h,
            "<div class=\"message {}\">{}</div>",
            outcome_class(o.status),
            escape(&o.message)
        );
    }
    h.push_str("</td></tr>");
}

fn change_row(h: &mut String, model: &ReportModel, row: &ChangeRow) {
    let _ = write!(
        h,
        "<tr class=\"{}\" data-row=\"\" data-action=\"{}\" data-field=\"{}\"",
        if row.written { "row" } else { "row unwritten" },
        row.action.as_str(),
        escape(&row.field)
    );
    for (index, key) in model.context_keys.iter().enumerate() {
        if let Some(value) = row.context.get(key) {
            let _ = write!(h, " data-c{index}=\"{}\"", escape(value));
        }
    }
    h.push('>');
    let _ = write!(
        h,
        "<td class=\"field\"><code>{}</code></td>",
        escape(&row.field)
    );
    let _ = write!(h, "<td class=\"diff\">{}</td>", change_cell(row));
    let mode = if row.mode.is_empty() {
        String::new()
    } else if row.written {
        format!("<span class=\"mode\">{}</span>", escape(&row.mode))
    } else {
        format!(
            "<span class=\"mode ignore\">{}</span> <span class=\"hint\">not written</span>",
            escape(&row.mode)
        )
    };
    let _ = write!(h, "<td class=\"modecell\">{mode}</td>");
    // A delete's `from` is its reason, already in the heading.
    let from = if row.field.is_empty() {
        String::new()
    } else {
        format!("<code class=\"expr\">{}</code>", escape(&row.from))
    };
    let _ = writeln!(h, "<td class=\"from\">{from}</td></tr>");
}

fn relationships(h: &mut String, model: &ReportModel) {
    if model.relationships.is_empty() && model.relationship_deletes_withheld == 0 {
        return;
    }
    h.push_str("<section id=\"relationships\"><h2>Relationships</h2>");
    if model.relationship_deletes_withheld > 0 {
        let _ = write!(
            h,
            "<p class=\"desc\">{} relationship deletes withheld with the retirements.</p>",
            model.relationship_deletes_withheld
        );
    }
    if model.relationships.is_empty() {
        h.push_str("<p class=\"none\">No relationship changes.</p></section>\n");
        return;
    }
    h.push_str(
        "<table class=\"plain rels\"><thead><tr><th>Action</th><th>Type</th><th>Parent</th>\
         <th>Child</th><th>Reason</th></tr></thead><tbody>",
    );
    for r in &model.relationships {
        let _ = write!(
            h,
            "<tr class=\"rel {}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.action,
            r.action,
            escape(&r.kind),
            escape(&r.parent),
            escape(&r.child),
            escape(&r.reason)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn classifications(h: &mut String, model: &ReportModel) {
    if model.classifications.is_empty() && model.classification_deletes_withheld == 0 {
        return;
    }
    h.push_str("<section id=\"classifications\"><h2>Classifications</h2>");
    if model.classification_deletes_withheld > 0 {
        let _ = write!(
            h,
            "<p class=\"desc\">{} classification deletes withheld with the retirements.</p>",
            model.classification_deletes_withheld
        );
    }
    if model.classifications.is_empty() {
        h.push_str("<p class=\"none\">No classification changes.</p></section>\n");
        return;
    }
    h.push_str(
        "<table class=\"plain rels\"><thead><tr><th>Action</th><th>CI</th><th>Key</th>\
         <th>Value</th><th>Reason</th></tr></thead><tbody>",
    );
    for r in &model.classifications {
        let _ = write!(
            h,
            "<tr class=\"rel {}\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            r.action,
            r.action,
            escape(&r.ci),
            escape(&r.key),
            escape(&r.value),
            escape(&r.reason)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// The relationship changes around one CI, under its heading.
fn relationships_of(h: &mut String, model: &ReportModel, row: &ChangeRow) {
    let around: Vec<_> = model
        .relationships
        .iter()
        .filter(|r| {
            r.touches(
                &row.sys_id,
                if row.sys_id.is_empty() {
                    &row.source_id
                } else {
                    ""
                },
            )
        })
        .collect();
    if around.is_empty() {
        return;
    }
    h.push_str("<div class=\"rels-of\">");
    for r in around {
        let _ = write!(
            h,
            "<span class=\"chip rel {}\">{} <code>{}</code> {} → {}</span>",
            r.action,
            r.action,
            escape(&r.kind),
            escape(&r.parent),
            escape(&r.child)
        );
    }
    h.push_str("</div>");
}

fn drift(h: &mut String, model: &ReportModel) {
    h.push_str("<section id=\"drift\"><h2>Drift by field</h2>");
    if model.drift_by_field.is_empty() {
        h.push_str("<p class=\"none\">No field drifted.</p></section>\n");
        return;
    }
    h.push_str(
        "<p class=\"desc\">Changes planned per field across drift updates (restores and heartbeats aside). A field that drifts on \
         many CIs usually points at a mapping rule or a process writing the CMDB by hand.</p>\
         <table class=\"plain drift\"><thead><tr><th>Field</th><th></th><th class=\"num\">Changes</th>\
         <th class=\"num\">Written</th></tr></thead><tbody>",
    );
    let max = model
        .drift_by_field
        .iter()
        .map(|d| d.changes)
        .max()
        .unwrap_or(1)
        .max(1);
    for d in &model.drift_by_field {
        let width = d.changes * 100 / max;
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td class=\"barcell\"><div class=\"bar\" \
             style=\"width:{width}%\"></div></td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&d.field),
            d.changes,
            d.written
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn issues(
    h: &mut String,
    id: &str,
    title: &str,
    description: &str,
    none: &str,
    groups: &[IssueGroup],
) {
    let _ = write!(h, "<section id=\"{id}\"><h2>{title}</h2>");
    if groups.is_empty() {
        let _ = writeln!(h, "<p class=\"none\">{none}</p></section>");
        return;
    }
    let _ = write!(h, "<p class=\"desc\">{description}</p>");
    for group in groups {
        let _ = write!(
            h,
            "<div class=\"issue-group k-{}\"><h3>{} <span class=\"count\">{}</span></h3>\
             <p class=\"desc\">{}</p><table class=\"plain issues\"><colgroup><col class=\"w-name\">\
             <col class=\"w-ids\"><col class=\"w-ids\"><col class=\"w-ifield\"><col class=\"w-why\">\
             </colgroup><thead><tr><th>Name</th><th>VMs</th><th>CIs</th><th>Field</th><th>Why</th>\
             </tr></thead><tbody>",
            escape(&group.kind),
            escape(&group.label),
            group.issues.len(),
            escape(&group.description)
        );
        for issue in &group.issues {
            let codes = |values: &[String]| {
                values
                    .iter()
                    .map(|v| format!("<code>{}</code>", escape(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let _ = write!(
                h,
                "<tr><td class=\"name\">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td>\
                 <td>{}</td></tr>",
                escape(&issue.name),
                codes(&issue.source_ids),
                codes(&issue.sys_ids),
                escape(&issue.field),
                escape(&issue.message)
            );
        }
        h.push_str("</tbody></table></div>");
    }
    h.push_str("</section>\n");
}

/// The stylesheet, kept as a file so editors check it as CSS.
const CSS: &str = include_str!("assets/report.css");

/// The filter script. A constant: no report data is ever interpolated into it; it reads the
/// (escaped) `data-*` attributes of the rows and the values of the filter controls.
const JS: &str = include_str!("assets/report.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("a\u{0}b"), "a\u{FFFD}b");
    }

    #[test]
    fn diff_marks_deleted_and_inserted_characters() {
        assert_eq!(
            inline_diff("100", "1"),
            "<del>100</del><span class=\"arrow\"> → </span><ins>1</ins>"
        );
        assert_eq!(
            inline_diff("web-01", "web-02"),
            "web-0<del>1</del><ins>2</ins>"
        );
        assert_eq!(inline_diff("a<b", "a<c"), "a&lt;<del>b</del><ins>c</ins>");
    }

    #[test]
    fn long_values_are_not_diffed_by_character() {
        let a = "x".repeat(MAX_DIFF_CHARS + 1);
        let b = format!("{a}y");
        assert!(inline_diff(&a, &b).starts_with("<del>"));
    }
}
