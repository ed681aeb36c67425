//! The renderers against hand-built plans: hostile inventory values stay inert in every format,
//! and snapshots pin the look of the Markdown and CSV reports.

mod report_fixture;

use cmdb_reconcile::apply::{OperationOutcome, OutcomeStatus};
use cmdb_reconcile::reconcile::plan::{IssueKind, RelAction, RelChange, RelEnd};
use cmdb_reconcile::report::html::Segment;
use cmdb_reconcile::report::model::{Action, ChangeRow, ReportModel};
use cmdb_reconcile::report::{csv, html, json, markdown};
use report_fixture::{hostile_plan, small_plan, HOSTILE};
use serde_json::Value;

/// The change rows' JSON block of a page, checked to be inert inside its `<script>` element
/// (no `<` at all, so no `</script>` or `<!--`; no raw U+2028/U+2029), and parsed.
fn page_data(page: &str) -> Value {
    let open = "<script type=\"application/json\" id=\"report-data\">";
    let start = page.find(open).expect("data block") + open.len();
    let text = &page[start..start + page[start..].find("</script>").unwrap()];
    assert!(!text.contains('<'), "a `<` in the data block");
    assert!(!text.contains(['\u{2028}', '\u{2029}']));
    serde_json::from_str(text).expect("the data block is JSON")
}

/// The cell's text of one segment kind and of the text both values share.
fn side(cell: &[Value], kind: Segment) -> Option<String> {
    let mut out = String::new();
    let mut seen = false;
    for pair in cell.chunks(2) {
        let k = pair[0].as_u64().unwrap();
        if k == Segment::Same as u64 || k == kind as u64 {
            out.push_str(pair[1].as_str().unwrap());
            seen = true;
        }
    }
    seen.then_some(out)
}

/// Checks that the data block holds every change row of the model, in order, with its CI, its
/// ids, context, field, values (read back from the diff), mode, source and written flag.
fn assert_rows_embedded(model: &ReportModel, data: &Value) {
    let strings: Vec<&str> = data["strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let string = |v: &Value| match v.as_i64().unwrap() {
        -1 => String::new(),
        i => strings[i as usize].to_owned(),
    };
    let keys: Vec<&str> = data["contextKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, model.context_keys);
    assert_eq!(data["total"], model.changes.len());
    let mut embedded: Vec<(&Value, &Value)> = Vec::new();
    for op in data["ops"].as_array().unwrap() {
        for row in op[10].as_array().unwrap() {
            embedded.push((op, row));
        }
    }
    assert_eq!(embedded.len(), model.changes.len());
    for ((op, row), expected) in embedded.into_iter().zip(&model.changes) {
        let ChangeRow {
            action,
            name,
            sys_id,
            source_id,
            matched_by,
            field,
            current,
            desired,
            mode,
            from,
            written,
            reason,
            context,
            ..
        } = expected;
        let what = format!("{action} {name:?} {field:?}");
        let action_index = op[0].as_u64().unwrap() as usize;
        assert_eq!(data["actions"][action_index][0], action.as_str(), "{what}");
        assert_eq!(op[1], name.as_str(), "{what}");
        assert_eq!(op[2], sys_id.as_str(), "{what}");
        assert_eq!(op[3], source_id.as_str(), "{what}");
        assert_eq!(op[4], matched_by.as_str(), "{what}");
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(
                string(&op[5][i]),
                context.get(*key).cloned().unwrap_or_default(),
                "{what} {key}"
            );
        }
        assert_eq!(op[6].as_str(), reason.as_deref(), "{what}");
        assert_eq!(string(&row[0]), *field, "{what}");
        assert_eq!(string(&row[1]), *mode, "{what}");
        let shown_from = if field.is_empty() { "" } else { from.as_str() };
        assert_eq!(string(&row[2]), shown_from, "{what}");
        assert_eq!(row[3], u8::from(*written), "{what}");
        let cell = row[4].as_array().unwrap();
        if field.is_empty() {
            assert_eq!(cell[0], Segment::Note as u8, "{what}");
            continue;
        }
        let new = side(cell, Segment::Ins).unwrap_or_default();
        assert_eq!(new, *desired, "{what}: desired value");
        if *action != Action::Create {
            let old = side(cell, Segment::Del).unwrap_or_default();
            assert_eq!(old, *current, "{what}: current value");
        }
    }
}

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
    "tbody", "tr", "th", "td", "del", "ins", "footer", "script", "noscript",
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
    let model = ReportModel::from_plan(&hostile_plan());
    let page = html::render(&model);
    assert!(!page.contains("<script>alert"));
    assert!(!page.contains("<img"));
    assert!(!page.contains("<b>in scope"));
    // The report's own two blocks: the change rows as JSON, and the script.
    assert_eq!(page.matches("<script").count(), 2, "only the report's own");
    assert_eq!(
        page.matches("</script>").count(),
        2,
        "only the report's own"
    );
    assert_eq!(
        page.matches("<script type=\"application/json\" id=\"report-data\">")
            .count(),
        1
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
    // Every hostile value is in the page: escaped in the HTML (the context filters list them
    // all), and as itself, byte for byte, in the rows' JSON (inert: `page_data` checks it).
    for value in HOSTILE.iter().filter(|v| !v.contains(['\t', '\r'])) {
        assert!(
            page.contains(&html::escape(value)),
            "{value:?} missing or unescaped"
        );
    }
    let data = page_data(&page);
    let names: Vec<&str> = data["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op[1].as_str().unwrap())
        .collect();
    for value in HOSTILE {
        assert!(names.contains(value), "{value:?} missing from the rows");
    }
    assert_rows_embedded(&model, &data);
    // No external asset (a report is read offline, behind the firewall): the tag and
    // attribute allowlists above have no `link`, `img`, `src` or `srcset`.
    assert!(!TAGS.contains(&"link") && !ATTRIBUTES.contains(&"src"));
    // The script puts values into the page as text only, never as markup.
    let script = include_str!("../src/report/assets/report.js");
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!script.contains(sink), "the script uses {sink}");
    }
}

#[test]
fn report_html_embeds_every_change_and_the_relationships_around_each_ci() {
    let mut plan = small_plan();
    let end = |sys_id: &str, source_id: Option<&str>, name: &str| RelEnd {
        sys_id: sys_id.to_owned(),
        source_id: source_id.map(str::to_owned),
        name: name.to_owned(),
    };
    let rel = |action, parent: RelEnd, child: RelEnd| RelChange {
        action,
        kind: "Runs on::Runs </script>".to_owned(),
        type_sys_id: "t1".to_owned(),
        parent,
        child,
        sys_id: (action == RelAction::Delete).then(|| "r1".to_owned()),
        sys_mod_count: String::new(),
        sys_updated_on: String::new(),
        reason: "host".to_owned(),
    };
    plan.relationships = vec![
        // Around the CI being created for VM 1000000000101 (web-03).
        rel(
            RelAction::Create,
            end("", Some("1000000000101"), "web-03"),
            end("e5x1", None, "esx-1 <img src=x onerror=alert(1)>"),
        ),
        // Around db-01 (a1b2c3), as parent and as child.
        rel(
            RelAction::Delete,
            end("a1b2c3", None, "db-01"),
            end("e5x2", None, "esx-2"),
        ),
        rel(
            RelAction::Create,
            end("e5x3", None, "cluster"),
            end("a1b2c3", None, "db-01"),
        ),
    ];
    let model = ReportModel::from_plan(&plan);
    let page = html::render(&model);
    let data = page_data(&page);
    assert_rows_embedded(&model, &data);
    // The relationships section is plain HTML; its rows are in the data for the headings.
    assert!(page.contains("<td>esx-1 &lt;img src=x onerror=alert(1)&gt;</td>"));
    assert!(!page.contains("<img"));
    let rels = data["rels"].as_array().unwrap();
    assert_eq!(rels.len(), model.relationships.len());
    for (embedded, row) in rels.iter().zip(&model.relationships) {
        assert_eq!(embedded[0], row.action);
        assert_eq!(embedded[1], row.kind.as_str());
        assert_eq!(embedded[2], row.parent.as_str());
        assert_eq!(embedded[3], row.child.as_str());
        assert_eq!(embedded[4], row.reason.as_str());
    }
    let around = |name: &str| -> Vec<u64> {
        let op = data["ops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|op| op[1] == name)
            .unwrap();
        op[9]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect()
    };
    assert_eq!(around("web-03"), [0]);
    assert_eq!(around("db-01"), [1, 2]);
    assert_eq!(around("app-07"), Vec::<u64>::new());
    assert_eq!(around("old-09"), Vec::<u64>::new());

    // A long relationships table: the first rows in the HTML, every row in the data, and a
    // button that draws the others.
    let many = plan.relationships[1].clone();
    plan.relationships = vec![many; html::STATIC_RELATIONSHIPS + 103];
    let model = ReportModel::from_plan(&plan);
    let page = html::render(&model);
    assert_eq!(
        page.matches("<tr class=\"rel delete\">").count(),
        html::STATIC_RELATIONSHIPS
    );
    assert!(page.contains(">Show the other 103 relationship rows</button>"));
    let data = page_data(&page);
    assert_eq!(
        data["rels"].as_array().unwrap().len(),
        model.relationships.len()
    );
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
    let model = ReportModel::from_plan(&small_plan());
    let cell = |field: &str| {
        let row = model
            .rows_of(Action::Update)
            .find(|r| r.field == field)
            .unwrap();
        html::segments_html(&html::change_segments(row))
    };
    assert_eq!(
        cell("short_description"),
        "Web server (<del>old</del><ins>new</ins>)"
    );
    assert_eq!(
        cell("cpus"),
        "<del>4</del><span class=\"arrow\"> → </span><ins>8</ins>"
    );
    // ... and those segments are what the page carries.
    let data = page_data(&page);
    let db = data["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op[1] == "db-01")
        .unwrap();
    assert_eq!(
        db[10][2][4],
        serde_json::json!([0, "Web server (", 1, "old", 2, "new", 0, ")"])
    );
    assert_eq!(db[10][0][4], serde_json::json!([1, "4", 3, "", 2, "8"]));
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
    // Each operation carries its outcome for its heading: [status, message, created sys_id];
    // none for app-07, which was to be written (so the script shows it as not attempted).
    let data = page_data(&page);
    assert_eq!(data["outcomes"], true);
    let op = |name: &str| {
        data["ops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|op| op[1] == name)
            .unwrap()
            .clone()
    };
    let status = |v: &Value| data["statuses"][v.as_u64().unwrap() as usize][1].clone();
    assert_eq!(status(&op("old-09")[8][0]), "Failed");
    assert_eq!(op("old-09")[8][1], "HTTP 403 <forbidden>");
    assert_eq!(status(&op("web-03")[8][0]), "Applied");
    assert_eq!(op("web-03")[8][2], "new-sys-id");
    assert_eq!(
        (&op("app-07")[8], &op("app-07")[7]),
        (&Value::Null, &Value::from(1))
    );
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

/// The rows' JSON of the small plan, pretty-printed: the layout the page's script reads.
#[test]
fn report_html_data_snapshot() {
    let text = html::data_json(&ReportModel::from_plan(&small_plan()));
    let data: Value = serde_json::from_str(&text).unwrap();
    insta::assert_snapshot!(serde_json::to_string_pretty(&data).unwrap());
}

#[test]
fn report_csv_snapshot() {
    insta::assert_snapshot!(csv::render(&ReportModel::from_plan(&small_plan())));
}
