//! The renderers against hand-built plans: hostile inventory values stay inert in every format,
//! and snapshots pin the look of the Markdown and CSV reports.

mod report_fixture;

use cmdb_reconcile::apply::{OperationOutcome, OutcomeStatus};
use cmdb_reconcile::reconcile::plan::IssueKind;
use cmdb_reconcile::report::model::{Action, ReportModel};
use cmdb_reconcile::report::{csv, html, json, markdown};
use report_fixture::{hostile_plan, small_plan, HOSTILE};

fn starts_like_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

#[test]
fn report_csv_neutralises_every_cell_and_still_parses() {
    let model = ReportModel::from_plan(&hostile_plan());
    let text = csv::render(&model);
    let mut reader = ::csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.headers().unwrap(), csv::HEADER.as_slice());
    let records: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let issues: usize = model
        .quarantined
        .iter()
        .chain(&model.issues)
        .map(|g| g.issues.len())
        .sum();
    // A row per change, then a row per issue.
    assert_eq!(records.len(), model.changes.len() + issues);
    for record in &records {
        assert_eq!(record.len(), csv::HEADER.len());
        for cell in record {
            assert!(!starts_like_formula(cell), "live formula in cell {cell:?}");
        }
    }
    for (record, row) in records.iter().zip(&model.changes) {
        let expected = [
            row.action.as_str(),
            &row.source_id,
            &row.matched_by,
            &row.sys_id,
            &row.name,
            &row.field,
            &row.current,
            &row.desired,
            &row.mode,
            &row.from,
        ];
        for (cell, original) in record.iter().zip(expected) {
            // Round trip: the reader gets the original back, prefixed with `'` when it was
            // formula-like (the prefix is what spreadsheets hide).
            if starts_like_formula(original) {
                assert_eq!(cell.strip_prefix('\''), Some(original));
            } else {
                assert_eq!(cell, original);
            }
        }
    }
    // The hostile values reached the CSV (neutralised), they were not dropped.
    for value in HOSTILE {
        assert!(
            records.iter().any(|r| r.iter().any(|c| c.ends_with(value))),
            "{value:?} missing from the CSV"
        );
    }
}

#[test]
fn report_every_issue_kind_shows_in_every_format() {
    let plan = hostile_plan();
    let model = ReportModel::from_plan(&plan);
    let plan_json = json::render_plan(&plan).unwrap();
    let csv_text = csv::render(&model);
    let mut reader = ::csv::Reader::from_reader(csv_text.as_bytes());
    let actions: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    let md = markdown::render(&model);
    let page = html::render(&model);
    for kind in IssueKind::ALL {
        let group = model
            .quarantined
            .iter()
            .chain(&model.issues)
            .find(|g| g.kind == kind.as_str())
            .unwrap_or_else(|| panic!("{kind:?} has no group in the model"));
        assert!(!group.label.is_empty() && !group.description.is_empty());
        assert!(
            plan_json.contains(&format!("\"kind\": \"{}\"", kind.as_str())),
            "{kind:?} missing from plan.json"
        );
        assert!(
            actions.iter().any(|a| a == kind.as_str()),
            "{kind:?} missing from drift.csv"
        );
        assert!(md.contains(&group.label), "{kind:?} missing from drift.md");
        assert!(
            page.contains(&html::escape(&group.label)),
            "{kind:?} missing from drift.html"
        );
    }
}

/// The tags the HTML renderer is allowed to emit; anything else came from the data.
const TAGS: &[&str] = &[
    "!doctype", "html", "head", "meta", "title", "style", "body", "header", "div", "h1", "h2",
    "h3", "dl", "dt", "dd", "code", "strong", "span", "main", "ul", "li", "p", "section", "nav",
    "a", "b", "label", "select", "option", "input", "button", "table", "colgroup", "col", "thead",
    "tbody", "tr", "th", "td", "del", "ins", "footer", "script",
];

const ATTRIBUTES: &[&str] = &[
    "lang",
    "charset",
    "name",
    "content",
    "class",
    "role",
    "aria-label",
    "aria-live",
    "href",
    "data-filter",
    "value",
    "type",
    "id",
    "placeholder",
    "hidden",
    "data-group",
    "data-row",
    "colspan",
    "data-action",
    "data-field",
    "title",
    "style",
];

/// Every tag and attribute in the page outside the script and style blocks, in order.
fn tags(page: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        let mut parts = tag.trim_start_matches('/').split_whitespace();
        let name = parts.next().unwrap_or("").to_ascii_lowercase();
        if name == "!doctype" {
            continue;
        }
        // Attribute names: the text before `=` of each `name="value"` (values never hold a
        // space-free `"` since they are escaped).
        let mut attributes = Vec::new();
        let mut attr_text = tag.trim_start_matches('/');
        attr_text = &attr_text[attr_text
            .find(char::is_whitespace)
            .unwrap_or(attr_text.len())..];
        let mut inside = false;
        let mut current = String::new();
        for c in attr_text.chars() {
            match c {
                '"' => inside = !inside,
                c if inside => {
                    let _ = c;
                }
                '=' => {
                    attributes.push(std::mem::take(&mut current));
                }
                c if c.is_whitespace() => {
                    if !current.is_empty() {
                        attributes.push(std::mem::take(&mut current));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            attributes.push(current);
        }
        if (name == "style" || name == "script") && !tag.starts_with('/') {
            let close = format!("</{name}>");
            let end = rest.find(&close).expect("unclosed block");
            rest = &rest[end..];
        }
        found.push((name, attributes));
    }
    found
}

#[test]
fn report_html_escapes_everything_from_the_inventory() {
    let page = html::render(&ReportModel::from_plan(&hostile_plan()));
    assert!(!page.contains("<script>alert"));
    assert!(!page.contains("<img"));
    assert!(!page.contains("<b>in scope"));
    assert_eq!(
        page.matches("<script").count(),
        1,
        "only the report's own script"
    );
    assert_eq!(
        page.matches("</script>").count(),
        1,
        "only the report's own script"
    );
    for (name, attributes) in tags(&page) {
        assert!(TAGS.contains(&name.as_str()), "unexpected tag <{name}>");
        for attribute in attributes {
            let known = ATTRIBUTES.contains(&attribute.as_str())
                || attribute
                    .strip_prefix("data-c")
                    .is_some_and(|n| n.parse::<usize>().is_ok());
            assert!(known, "unexpected attribute {attribute:?} on <{name}>");
        }
    }
    // Every hostile value is in the page, escaped.
    for value in HOSTILE.iter().filter(|v| !v.contains(['\t', '\r'])) {
        assert!(
            page.contains(&html::escape(value)),
            "{value:?} missing or unescaped"
        );
    }
    // No external asset (a report is read offline, behind the firewall): the tag and
    // attribute allowlists above have no `link`, `img`, `src` or `srcset`.
    assert!(!TAGS.contains(&"link") && !ATTRIBUTES.contains(&"src"));
}

#[test]
fn report_html_has_filters_for_action_field_and_context() {
    let page = html::render(&ReportModel::from_plan(&small_plan()));
    assert!(page.contains("<input type=\"search\" id=\"q\""));
    for filter in ["data-action", "data-field", "data-c0", "data-c1", "data-c2"] {
        assert!(
            page.contains(&format!("<select data-filter=\"{filter}\">")),
            "{filter}"
        );
    }
    assert!(page.contains("<span>provider</span>"));
    assert!(page.contains("<option value=\"vcenter-east\">vcenter-east</option>"));
    // Drift is shown as a character diff; unrelated values as a whole replacement.
    assert!(page.contains("<td class=\"diff\">Web server (<del>old</del><ins>new</ins>)</td>"));
    assert!(page.contains("<del>4</del><span class=\"arrow\"> → </span><ins>8</ins>"));
    // No safety banner on a safe plan.
    assert!(!page.contains("class=\"banner"));
}

#[test]
fn report_html_shows_the_safety_banner() {
    let page = html::render(&ReportModel::from_plan(&hostile_plan()));
    assert!(page.contains("<div class=\"banner danger\""));
    assert!(page.contains("apply</code> will write nothing"));
    assert!(page.contains("Retirements are blocked: 388 withheld."));
}

/// The number of table cells in a Markdown table row (unescaped `|` separators minus one).
fn cells(line: &str) -> usize {
    let mut pipes = 0;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '|' => pipes += 1,
            _ => {}
        }
    }
    pipes - 1
}

#[test]
fn report_markdown_keeps_hostile_values_inside_their_cells() {
    let md = markdown::render(&ReportModel::from_plan(&hostile_plan()));
    assert!(!md.contains("<script"));
    assert!(!md.contains("</script"));
    assert!(!md.contains("<img"));
    assert!(!md.contains('\r'));
    assert!(!md.contains('\t'));
    // Within one table every row has as many cells as its header.
    let mut width = None;
    for line in md.lines() {
        if line.starts_with('|') {
            let n = cells(line);
            assert_eq!(*width.get_or_insert(n), n, "row split by a value: {line}");
        } else {
            width = None;
        }
    }
    assert!(md.contains("line one<br>line two"));
    assert!(md.contains("pipe \\| in \\`ticks\\`"));
    assert!(md.contains("&quot;quotes&quot;") || md.contains("\"quotes\" &amp; 'apostrophes'"));
}

#[test]
fn report_model_groups_rows_by_action_and_keeps_every_operation() {
    let plan = hostile_plan();
    let model = ReportModel::from_plan(&plan);
    let actions: Vec<Action> = model.changes.iter().map(|r| r.action).collect();
    let mut sorted = actions.clone();
    sorted.sort();
    assert_eq!(actions, sorted);
    assert_eq!(model.actions_present(), Action::ALL.to_vec());
    // The delete has no field change but still has its row, with the reason.
    let delete: Vec<_> = model.rows_of(Action::Delete).collect();
    assert_eq!(delete.len(), 1);
    assert_eq!(delete[0].field, "");
    assert!(delete[0].from.contains("deletes retired CIs"));
    // Ignore-mode drift is shown but marked as not written.
    let ignored = model
        .changes
        .iter()
        .find(|r| r.name == "ignored-only")
        .unwrap();
    assert!(!ignored.written);
    assert_eq!(model.summary.report_only, 1);
    let quarantining = IssueKind::ALL.iter().filter(|k| k.quarantines()).count();
    assert_eq!(model.quarantined.len(), quarantining);
    assert_eq!(model.issues.len(), IssueKind::ALL.len() - quarantining);
    assert_eq!(model.context_keys[..3], ["provider", "cluster", "owner"]);
    assert!(model.safety.writes_blocked);
    assert!(model.safety.needs_attention());
}

#[test]
fn report_outcomes_are_matched_to_their_operations() {
    let plan = small_plan();
    let outcomes = vec![
        OperationOutcome {
            sys_id: Some("new-sys-id".to_owned()),
            source_id: Some("1000000000101".to_owned()),
            status: OutcomeStatus::Applied,
            message: String::new(),
        },
        OperationOutcome {
            sys_id: Some("a1b2c3".to_owned()),
            source_id: Some("1000000000011".to_owned()),
            status: OutcomeStatus::SkippedStale,
            message: "CI changed since the plan (sys_mod_count 4 -> 5)".to_owned(),
        },
        OperationOutcome {
            sys_id: Some("0a0b0c".to_owned()),
            source_id: None,
            status: OutcomeStatus::Failed,
            message: "HTTP 403 <forbidden>".to_owned(),
        },
    ];
    let model = ReportModel::from_plan(&plan).with_outcomes(&outcomes);
    let report = model.outcomes.as_ref().unwrap();
    assert_eq!(
        (
            report.applied,
            report.failed,
            report.skipped_stale,
            report.skipped,
            report.not_attempted
        ),
        (1, 1, 1, 0, 1)
    );
    let status = |name: &str| {
        model
            .changes
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.outcome.as_ref())
            .map(|o| o.status)
    };
    assert_eq!(status("web-03"), Some(OutcomeStatus::Applied));
    assert_eq!(status("db-01"), Some(OutcomeStatus::SkippedStale));
    assert_eq!(status("old-09"), Some(OutcomeStatus::Failed));
    assert_eq!(status("app-07"), None);

    let page = html::render(&model);
    assert!(page.contains("Apply outcome"));
    assert!(page.contains("HTTP 403 &lt;forbidden&gt;"));
    assert!(page.contains("not attempted"));
    let md = markdown::render(&model);
    assert!(md.contains("## Apply outcome"));
    assert!(md.contains("Failed: HTTP 403 &lt;forbidden&gt;"));
}

/// Every outcome status, each on its own operation of the small plan.
fn every_outcome() -> Vec<OperationOutcome> {
    let outcome =
        |sys_id: Option<&str>, source_id: Option<&str>, status, message: &str| OperationOutcome {
            sys_id: sys_id.map(str::to_owned),
            source_id: source_id.map(str::to_owned),
            status,
            message: message.to_owned(),
        };
    vec![
        outcome(
            Some("new-sys-id"),
            Some("1000000000101"),
            OutcomeStatus::Unknown,
            "the answer was lost and reading the CI back failed",
        ),
        outcome(
            Some("a1b2c3"),
            Some("1000000000011"),
            OutcomeStatus::OverwroteConcurrentEdit,
            "sys_mod_count 4 before, 6 after our one write",
        ),
        outcome(
            Some("0a0b0c"),
            None,
            OutcomeStatus::NotAttempted,
            "stopped: 10 writes in a row failed",
        ),
    ]
}

#[test]
fn report_new_outcomes_show_in_every_format() {
    let model = ReportModel::from_plan(&small_plan()).with_outcomes(&every_outcome());
    let report = model.outcomes.as_ref().unwrap();
    assert_eq!(
        (
            report.unknown,
            report.overwrote_concurrent_edit,
            report.not_attempted
        ),
        // app-07 has no outcome at all: not attempted either.
        (1, 1, 2)
    );
    let page = html::render(&model);
    let md = markdown::render(&model);
    for text in [&page, &md] {
        for label in ["Unknown", "Overwrote a concurrent edit", "Not attempted"] {
            assert!(text.contains(label), "{label} missing");
        }
        assert!(text.contains("sys_mod_count 4 before, 6 after"));
    }
    let csv_text = csv::render(&model);
    let mut reader = ::csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        &header.iter().collect::<Vec<_>>()[..csv::HEADER.len()],
        csv::HEADER
    );
    assert_eq!(
        header.iter().skip(csv::HEADER.len()).collect::<Vec<_>>(),
        ["outcome", "outcome_message"]
    );
    let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let outcome_of = |name: &str| {
        rows.iter()
            .find(|r| &r[4] == name)
            .map(|r| (r[10].to_owned(), r[11].to_owned()))
            .unwrap()
    };
    assert_eq!(outcome_of("web-03").0, "unknown");
    assert_eq!(
        outcome_of("db-01"),
        (
            "overwrote_concurrent_edit".to_owned(),
            "sys_mod_count 4 before, 6 after our one write".to_owned()
        )
    );
    assert_eq!(outcome_of("old-09").0, "not_attempted");
    assert_eq!(outcome_of("app-07").0, "not_attempted");
}

#[test]
fn report_markdown_snapshot() {
    insta::assert_snapshot!(markdown::render(&ReportModel::from_plan(&small_plan())));
}

#[test]
fn report_csv_snapshot() {
    insta::assert_snapshot!(csv::render(&ReportModel::from_plan(&small_plan())));
}
