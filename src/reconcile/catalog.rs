//! The catalog pass's pure part (README "Service catalog"): catalog links as written
//! (a ServiceNow catalog item <-> a CloudForms service template, RITM variables -> dialog
//! fields in the mapping language), and the plan of orders: which approved, active requested
//! items (RITMs) of linked items become CloudForms orders, with which dialog values, and which
//! are resumed because CloudForms already holds a request carrying their number.
//!
//! Pure: the RITMs, the resolved links and the requests found come from the adapters.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::mapping::{
    compile_rules, digest, error_at, toml_error, Extract, FieldRule, MappingError, TemplatePart,
};
use super::plan::{
    FieldValue, GuardTrip, Issue, IssueKind, MappingInfo, Order, OrderAction, Plan, Safety,
    SourceSummary, TargetSummary,
};
use super::record::{Ci, FieldNames, References, SourceRecord, Val};

/// The prefix of `correlation_id` on a RITM claimed by a catalog pass that has not yet
/// written its request id: `cloudforms:claim:<run>`.
pub const CLAIM_PREFIX: &str = "cloudforms:claim:";
/// The format of a claim marker's time (UTC), the first part after [`CLAIM_PREFIX`].
pub const CLAIM_TIME: &str = "%Y%m%dT%H%M%SZ";
/// The prefix of `correlation_id` on a RITM whose order is placed: `cloudforms:request:<id>`,
/// the identity the status write-back mapping finds it by (as the provisioning tickets').
pub const REQUEST_PREFIX: &str = "cloudforms:request:";
/// `correlation_display` of every RITM the job claims or ordered.
pub const DISPLAY: &str = "CloudForms";
/// The catalog plan's `target.table` (its `mapping.collection` is `service_templates`):
/// CloudForms' requests, searched for the RITM numbers.
pub const TARGET: &str = "service_requests";
/// What a plan, a report or a log shows in place of a secret dialog value.
pub const SECRET: &str = "(secret)";

/// A catalog link file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    name: Option<String>,
    item: Spanned<RawItem>,
    template: Spanned<RawTemplate>,
    #[serde(default)]
    dialog: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    sys_id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    id: Option<toml::Value>,
    name: Option<String>,
    catalog: Option<String>,
    ritm_field: Option<String>,
}

/// How a link names one side: by its key or by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Key(String),
    Name(String),
}

impl Named {
    pub fn describe(&self) -> String {
        match self {
            Self::Key(k) => format!("`{k}`"),
            Self::Name(n) => format!("named `{n}`"),
        }
    }
}

/// A compiled catalog link: a ServiceNow catalog item to a CloudForms service template.
#[derive(Debug, Clone)]
pub struct CatalogLink {
    pub name: String,
    pub origin: String,
    pub digest: String,
    /// The `sc_cat_item`: by sys_id or by name.
    pub item: Named,
    /// The service template: by id or by name.
    pub template: Named,
    /// The template's catalog (`service_template_catalog`) by name, when the link names it:
    /// a template of that name in another catalog is not this link's.
    pub catalog: Option<String>,
    /// The dialog field the RITM number is always sent in (`ritm_number`), so CloudForms'
    /// requests can be searched for it.
    pub ritm_field: String,
    /// The other dialog fields, from the RITM (`variables.<name>`, or a RITM column).
    pub dialog: Vec<FieldRule>,
    /// The dialog fields marked `secret = true`: their values are sent to CloudForms and
    /// never written to a plan, a report or a log (`apply` reads them from the RITM).
    pub secret: BTreeSet<String>,
}

impl CatalogLink {
    /// Compiles a link file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, MappingError> {
        let raw: RawLink = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
        let name = raw.name.unwrap_or_else(|| {
            let file = origin.rsplit(['/', '\\']).next().unwrap_or(origin);
            file.strip_suffix(".toml").unwrap_or(file).to_owned()
        });
        let one = |key: Option<String>, name: Option<String>, span, what: &str, keyword: &str| {
            let key = key.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty());
            let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
            match (key, name) {
                (Some(k), None) => Ok(Named::Key(k)),
                (None, Some(n)) => Ok(Named::Name(n)),
                _ => Err(error_at(
                    text,
                    origin,
                    Some(span),
                    format!("[{what}] needs exactly one of `{keyword}` and `name`"),
                )),
            }
        };
        let item_span = raw.item.span();
        let item = raw.item.into_inner();
        let item = one(item.sys_id, item.name, item_span, "item", "sys_id")?;
        let template_span = raw.template.span();
        let template = raw.template.into_inner();
        let id = match &template.id {
            None => None,
            Some(toml::Value::Integer(n)) => Some(n.to_string()),
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(error_at(
                    text,
                    origin,
                    Some(template_span),
                    "[template] `id` must be a number or a string",
                ))
            }
        };
        let template_named = one(id, template.name, template_span.clone(), "template", "id")?;
        let ritm_field = template
            .ritm_field
            .map(|f| f.trim().to_owned())
            .unwrap_or_else(|| "ritm_number".to_owned());
        let bare = |f: &str| f.strip_prefix("dialog_").unwrap_or(f).to_owned();
        if ritm_field.is_empty() {
            return Err(error_at(
                text,
                origin,
                Some(template_span),
                "[template] `ritm_field` must name the dialog field the RITM number goes in",
            ));
        }
        // `secret = true` is the link's own key, not the mapping language's: taken off the
        // rule before it is compiled.
        let mut secret_keys = BTreeSet::new();
        let mut rules = BTreeMap::new();
        for (field, spec) in raw.dialog.iter() {
            let span = spec.span();
            let mut value = spec.get_ref().clone();
            if let toml::Value::Table(table) = &mut value {
                match table.remove("secret") {
                    None | Some(toml::Value::Boolean(false)) => {}
                    Some(toml::Value::Boolean(true)) => {
                        secret_keys.insert(field.get_ref().clone());
                    }
                    Some(_) => {
                        return Err(error_at(
                            text,
                            origin,
                            Some(span),
                            format!(
                                "[dialog] `{}`: `secret` must be true or false",
                                field.get_ref()
                            ),
                        ))
                    }
                }
            }
            rules.insert(field.clone(), Spanned::new(span, value));
        }
        let dialog = compile_rules(&rules, text, origin)?;
        // One rule per entry, in the map's order.
        let secret: BTreeSet<String> = rules
            .keys()
            .zip(&dialog)
            .filter(|(k, _)| secret_keys.contains(k.get_ref()))
            .map(|(_, r)| r.name.clone())
            .collect();
        // A field that is not secret must not carry what a secret one reads: its value would
        // be written to the plan. Nor may its `when` test it: whether the field is in the
        // plan would tell whether the secret matched.
        let read = |rule: &FieldRule| {
            let mut paths = rule_paths(rule);
            paths.truncate(paths.len() - rule.when.len());
            paths
        };
        let secret_reads: BTreeSet<String> = dialog
            .iter()
            .filter(|r| secret.contains(&r.name))
            .flat_map(read)
            .collect();
        if let Some((rule, path)) = dialog
            .iter()
            .filter(|r| !secret.contains(&r.name))
            .find_map(|r| {
                rule_paths(r)
                    .into_iter()
                    .find(|p| secret_reads.contains(p))
                    .map(|p| (r, p))
            })
        {
            let span = rules
                .iter()
                .zip(&dialog)
                .find(|(_, r)| std::ptr::eq(*r, rule))
                .map(|((_, v), _)| v.span());
            return Err(error_at(
                text,
                origin,
                span,
                format!(
                    "[dialog] `{}` reads `{path}`, which a secret field reads: mark it `secret = true` too",
                    rule.name
                ),
            ));
        }
        if let Some((k, _)) = raw
            .dialog
            .iter()
            .find(|(k, _)| bare(k.get_ref()) == bare(&ritm_field))
        {
            return Err(error_at(
                text,
                origin,
                Some(k.span()),
                format!(
                    "[dialog] `{}` is the RITM number's field (`ritm_field`): the job fills it",
                    k.get_ref()
                ),
            ));
        }
        Ok(Self {
            name,
            origin: origin.to_owned(),
            digest: digest(text),
            item,
            template: template_named,
            catalog: template
                .catalog
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty()),
            ritm_field,
            dialog,
            secret,
        })
    }

    /// Whether the dialog rule `rule` is marked `secret`.
    pub fn is_secret(&self, rule: &FieldRule) -> bool {
        self.secret.contains(&rule.name)
    }

    /// How a plan, a report or `check` shows where a dialog field comes from: the rule's
    /// expression; for a secret, only the paths it reads (a `const`, a template's text, a
    /// map or a default could hold the value itself, or part of it).
    pub fn describe(&self, rule: &FieldRule) -> String {
        if !self.is_secret(rule) {
            return rule.describe.clone();
        }
        match rule_paths(rule).as_slice() {
            [] if matches!(rule.extract, Extract::Const(_)) => format!("const {SECRET}"),
            [] => SECRET.to_owned(),
            paths => format!("{} {SECRET}", paths.join(", ")),
        }
    }

    /// The RITM fields the secret dialog fields read (`variables.<name>` and columns): what
    /// `apply` reads again to send them.
    pub fn secret_fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for rule in self.dialog.iter().filter(|r| self.is_secret(r)) {
            for path in rule_paths(rule) {
                let top = |p: &str| p.split(['.', '[']).next().map(str::to_owned);
                match path.strip_prefix("variables.") {
                    Some(v) => out.extend(top(v).map(|v| format!("variables.{v}"))),
                    None if path != "variables" => out.extend(top(&path).filter(|p| !p.is_empty())),
                    None => {}
                }
            }
        }
        out
    }

    /// The values of the secret dialog fields `fields` for `ritm` (read at `apply`), by
    /// field. An error names the field, never the value.
    pub fn secret_values(
        &self,
        ritm: &Ci,
        fields: &[String],
    ) -> Result<BTreeMap<String, String>, String> {
        let record = ritm_record(ritm);
        let source = record
            .as_object()
            .and_then(SourceRecord::from_object)
            .ok_or_else(|| "the requested item could not be read as a record".to_owned())?;
        let refs = References::default();
        let mut out = BTreeMap::new();
        for field in fields {
            let Some(rule) = self
                .dialog
                .iter()
                .find(|r| r.name == *field && self.is_secret(r))
            else {
                return Err(format!(
                    "the catalog link `{}` has no secret dialog field `{field}`",
                    self.name
                ));
            };
            match rule.eval(&source, &refs) {
                Ok(Some(value)) => {
                    out.insert(field.clone(), value);
                }
                Ok(None) => {
                    return Err(format!(
                        "the secret dialog field `{field}` ({}) has no value on the requested item now",
                        self.describe(rule)
                    ))
                }
                Err(_) => {
                    return Err(format!(
                        "the secret dialog field `{field}` ({}) cannot be made from the requested item now (the value is not shown)",
                        self.describe(rule)
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The RITM variables the dialog reads (`variables.<name>`), sorted.
    pub fn variables(&self) -> BTreeSet<String> {
        self.paths()
            .into_iter()
            .filter_map(|p| p.strip_prefix("variables.").map(str::to_owned))
            .filter_map(|p| p.split(['.', '[']).next().map(str::to_owned))
            .collect()
    }

    /// The RITM columns the dialog reads besides variables, sorted.
    pub fn columns(&self) -> BTreeSet<String> {
        self.paths()
            .into_iter()
            .filter(|p| !p.starts_with("variables.") && p != "variables")
            .filter_map(|p| p.split(['.', '[']).next().map(str::to_owned))
            .filter(|p| !p.is_empty())
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        self.dialog.iter().flat_map(rule_paths).collect()
    }
}

/// The record paths one dialog rule reads.
fn rule_paths(rule: &FieldRule) -> Vec<String> {
    let mut out = Vec::new();
    match &rule.extract {
        Extract::Path(p) => out.push(p.attribute()),
        Extract::Template(parts) => out.extend(parts.iter().filter_map(|p| match p {
            TemplatePart::Field(p) | TemplatePart::Optional(p) => Some(p.attribute()),
            TemplatePart::Text(_) => None,
        })),
        Extract::Const(_) | Extract::Tag(_) => {}
    }
    out.extend(rule.when.iter().map(|w| w.path.attribute()));
    out
}

/// The digest of a plan of orders' links, in the order planned: `apply` compares it with
/// the links it reads the secret dialog fields by.
pub fn links_digest<'l>(links: impl IntoIterator<Item = &'l CatalogLink>) -> String {
    let digests: Vec<&str> = links.into_iter().map(|l| l.digest.as_str()).collect();
    digest(&digests.join(","))
}

/// A link with both ends found: the item's sys_id and the template's id.
#[derive(Debug, Clone)]
pub struct ResolvedLink<'a> {
    pub link: &'a CatalogLink,
    pub item_sys_id: String,
    pub item: String,
    pub template_id: String,
    pub template: String,
    pub catalog: String,
}

/// What the plan of orders is computed from.
pub struct OrderInput<'a> {
    pub links: &'a [ResolvedLink<'a>],
    /// The candidate RITMs: approved, active, of a linked item, not ordered yet (empty
    /// `correlation_id`, or a claim marker left by a pass that stopped), with the columns and
    /// `variables.<name>` fields the links read.
    pub ritms: &'a [Ci],
    pub ritms_origin: String,
    /// RITM number -> the CloudForms requests whose dialog carries it.
    pub ordered: &'a BTreeMap<String, Vec<String>>,
    /// How many CloudForms requests were searched for them.
    pub searched: usize,
    pub ordered_origin: String,
    /// Why CloudForms' requests could not all be searched: then nothing is ordered, since an
    /// earlier order of a RITM cannot be ruled out.
    pub search_incomplete: Option<String>,
    /// The RITM `state` value of Work in Progress (from `sys_choice`).
    pub claim_state: String,
    /// Whether the job approves the requests it orders (else CloudForms' own approval).
    pub approve: bool,
    /// At most this many orders per pass (`None`: no limit); more refuses the plan.
    pub max_orders: Option<usize>,
    /// A claim marker younger than this (by the time it carries) may belong to a pass that
    /// is still running: that RITM is left alone this pass. Older ones are resumed.
    pub claim_timeout: chrono::TimeDelta,
    /// How far back CloudForms' requests were searched (`search_within`): a claim older than
    /// that may have an order the search could not see, so it is never ordered again.
    pub search_within: chrono::TimeDelta,
    pub allow_mass_change: bool,
    pub now: DateTime<Utc>,
}

/// The RITM as a record for the dialog's rules: its columns, and `variables` as an object.
fn ritm_record(ritm: &Ci) -> Val {
    let mut record = Map::new();
    let mut variables = Map::new();
    for (field, value) in &ritm.fields {
        match field.strip_prefix("variables.") {
            Some(name) => {
                variables.insert(name.to_owned(), Value::String(value.to_owned()));
            }
            None => {
                record.insert(field.to_string(), Value::String(value.to_owned()));
            }
        }
    }
    record.insert("id".into(), Value::String(ritm.sys_id.clone()));
    record.insert("sys_id".into(), Value::String(ritm.sys_id.clone()));
    record.insert("variables".into(), Value::Object(variables));
    Val::from_json(Value::Object(record), &mut FieldNames::default())
}

/// When a claim marker (`cloudforms:claim:<UTC time>:...`) was written, by the time it
/// carries; `None` for any other `correlation_id` (a marker without a readable time gives
/// `MIN_UTC`: its age is unknown, so it is never ordered on).
pub fn claimed_at(correlation_id: &str) -> Option<DateTime<Utc>> {
    let rest = correlation_id.trim().strip_prefix(CLAIM_PREFIX)?;
    let stamp = rest.split(':').next().unwrap_or_default();
    Some(
        chrono::NaiveDateTime::parse_from_str(stamp, CLAIM_TIME)
            .map(|t| t.and_utc())
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    )
}

/// Plans the catalog pass's orders. Never fails: a RITM whose dialog values cannot be made
/// is an issue and is not ordered; a search that was cut short or too many orders refuse the
/// plan (a guard), as the CMDB's guards do.
pub fn plan_orders(input: &OrderInput) -> Plan {
    let refs = References::default();
    let mut orders = Vec::new();
    let mut issues = Vec::new();
    let mut ritms: Vec<&Ci> = input.ritms.iter().collect();
    ritms.sort_by(|a, b| (a.get("number"), &a.sys_id).cmp(&(b.get("number"), &b.sys_id)));
    ritms.dedup_by(|a, b| a.sys_id == b.sys_id);
    let mut in_flight = 0;
    for ritm in ritms {
        let fresh_claim = claimed_at(ritm.get("correlation_id"))
            .is_some_and(|at| input.now - at < input.claim_timeout);
        let number = ritm.get("number").trim().to_owned();
        let Some(link) = input
            .links
            .iter()
            .find(|l| l.item_sys_id == ritm.get("cat_item").trim())
        else {
            // Read by item, so never the case; a RITM of no linked item is never touched.
            continue;
        };
        let issue = |kind, field: Option<String>, message: String| Issue {
            kind,
            source_ids: vec![number.clone()],
            sys_ids: vec![ritm.sys_id.clone()],
            name: number.clone(),
            field,
            message,
        };
        if number.is_empty() {
            issues.push(issue(
                IssueKind::BadRecord,
                None,
                "the requested item has no number: it cannot be searched for in CloudForms, so it is not ordered".into(),
            ));
            continue;
        }
        let record = ritm_record(ritm);
        let Some(source) = record.as_object().and_then(SourceRecord::from_object) else {
            continue;
        };
        let mut dialog = Vec::new();
        let mut secret = Vec::new();
        let mut bad = false;
        for rule in &link.link.dialog {
            let is_secret = link.link.is_secret(rule);
            match rule.eval(&source, &refs) {
                Ok(Some(value)) => {
                    // A secret's value stays out of the plan: `apply` reads it again.
                    let value = if is_secret {
                        secret.push(rule.name.clone());
                        SECRET.to_owned()
                    } else {
                        value
                    };
                    dialog.push(FieldValue {
                        field: rule.name.clone(),
                        value,
                        from: link.link.describe(rule),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    bad = true;
                    let message = match e {
                        // The message may quote the value.
                        _ if is_secret => {
                            format!(
                                "its value does not fit `{}` (not shown: the field is secret)",
                                link.link.describe(rule)
                            )
                        }
                        super::mapping::EvalError::BadValue(m)
                        | super::mapping::EvalError::Unresolved(m) => m,
                    };
                    issues.push(issue(
                        IssueKind::BadValue,
                        Some(rule.name.clone()),
                        format!(
                            "dialog field `{}`: {message}; the item is not ordered",
                            rule.name
                        ),
                    ));
                }
            }
        }
        if bad {
            continue;
        }
        dialog.push(FieldValue {
            field: link.link.ritm_field.clone(),
            value: number.clone(),
            from: "the RITM number (ritm_field)".into(),
        });
        let found = input.ordered.get(&number).cloned().unwrap_or_default();
        if found.len() > 1 {
            issues.push(issue(
                IssueKind::DuplicateSource,
                None,
                format!(
                    "CloudForms holds {} requests carrying {number} ({}): the item is left alone until someone cancels the extra ones",
                    found.len(),
                    found.join(", ")
                ),
            ));
            continue;
        }
        let request_id = found.into_iter().next();
        if request_id.is_none() {
            // A claim the search cannot vouch for: older than the window searched (its order,
            // if it was placed, is out of sight), or stamped ahead of this pass's clock (skew
            // or a hand edit: its age is unknown). Never ordered on a guess; a person decides.
            let claim = ritm.get("correlation_id").trim();
            let unvouched = claimed_at(claim).and_then(|at| {
                if at == DateTime::<Utc>::MIN_UTC {
                    Some(format!("its claim `{claim}` carries no time this pass can read"))
                } else if at > input.now + chrono::TimeDelta::minutes(5) {
                    Some(format!("its claim `{claim}` is stamped after this pass's clock"))
                } else if input.now - at > input.search_within {
                    Some(format!("its claim `{claim}` is older than the {} of CloudForms' requests searched, so an order placed then would not be found", crate::text::format_duration(input.search_within.to_std().unwrap_or_default())))
                } else {
                    None
                }
            });
            if let Some(why) = unvouched {
                issues.push(issue(
                    IssueKind::BadRecord,
                    Some("correlation_id".into()),
                    format!("{why}: it is not ordered; clear `correlation_id` to order it, or write the request's id there"),
                ));
                continue;
            }
        }
        if request_id.is_none() && fresh_claim {
            // Claimed lately and not ordered yet: the pass that claimed it may be ordering
            // now. (One that already ordered is resumed: writing its request back is safe.)
            in_flight += 1;
            continue;
        }
        let (action, reason) = match (&request_id, ritm.get("correlation_id").trim()) {
            (Some(id), _) => (
                OrderAction::Resume,
                format!("CloudForms request {id} already carries {number}: written back, not ordered again"),
            ),
            (None, c) if c.starts_with(CLAIM_PREFIX) => (
                OrderAction::Order,
                format!("claimed by an earlier pass ({c}) that did not order: ordered now"),
            ),
            (None, _) => (
                OrderAction::Order,
                format!("approved and active, of catalog item `{}`", link.item),
            ),
        };
        orders.push(Order {
            action,
            ritm_sys_id: ritm.sys_id.clone(),
            ritm_number: number.clone(),
            link: link.link.name.clone(),
            item_sys_id: link.item_sys_id.clone(),
            item: link.item.clone(),
            template_id: link.template_id.clone(),
            template: link.template.clone(),
            catalog: link.catalog.clone(),
            dialog,
            ritm_field: link.link.ritm_field.clone(),
            // A resume sends no dialog: nothing secret to make again at apply time.
            secret: if action == OrderAction::Resume {
                Vec::new()
            } else {
                secret
            },
            sys_mod_count: ritm.get("sys_mod_count").to_owned(),
            sys_updated_on: ritm.get("sys_updated_on").to_owned(),
            claim_state: input.claim_state.clone(),
            request_id,
            approve: input.approve.then(|| {
                format!("Approved in ServiceNow: requested item {number} (approval = approved); ordered by cmdb-reconcile")
            }),
            reason,
        });
    }
    let mut safety = Safety {
        mass_change_allowed: input.allow_mass_change,
        ..Default::default()
    };
    // A search cut short cannot rule out an earlier order: nothing is ordered (no flag lifts
    // this), and the pass ends partial.
    let incomplete = input.search_incomplete.as_ref().map(|why| {
        format!(
            "CloudForms' requests could not all be searched for the RITM numbers ({why}): an earlier order cannot be ruled out, so {} planned orders are withheld",
            orders.len()
        )
    });
    if incomplete.is_some() {
        orders.clear();
    }
    let new_orders = orders
        .iter()
        .filter(|o| o.action == OrderAction::Order)
        .count();
    if let Some(max) = input.max_orders {
        if new_orders > max && !input.allow_mass_change {
            safety.guards_tripped.push(GuardTrip {
                guard: "max_orders".into(),
                limit: max.to_string(),
                planned: new_orders,
                message: format!(
                    "{new_orders} orders planned, more than max_orders = {max}; check the catalog links, then run with --allow-mass-change to order them all"
                ),
            });
        }
    }
    let origins: Vec<&str> = input.links.iter().map(|l| l.link.origin.as_str()).collect();
    let mut plan = Plan::new(
        input.now,
        MappingInfo {
            name: "catalog".into(),
            origin: origins.join(", "),
            digest: links_digest(input.links.iter().map(|l| l.link)),
            table: "sc_req_item".into(),
            scope: "approved, active requested items of linked catalog items".into(),
            collection: "service_templates".into(),
        },
        SourceSummary {
            origin: input.ritms_origin.clone(),
            complete: incomplete.is_none(),
            incomplete_reason: incomplete,
            records: input.ritms.len(),
            // Claimed by a pass that may still be running (younger than `claim_timeout`).
            filtered_out: in_flight,
            inactive: 0,
            window: None,
        },
        // The orders' target is CloudForms' requests: those searched, and those of them
        // that carry a RITM number (reports word it so: `target_counts`).
        TargetSummary {
            origin: input.ordered_origin.clone(),
            table: TARGET.into(),
            cis: input.searched,
            in_scope: input.ordered.values().map(Vec::len).sum(),
        },
        safety,
        Vec::new(),
        Vec::new(),
        Vec::new(),
        issues,
        0,
    );
    if orders.iter().any(|o| !o.secret.is_empty()) {
        plan.format_version = super::plan::SECRET_FORMAT_VERSION;
    }
    plan.orders = orders;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = r#"
name = "linux"
[item]
name = "Linux VM"
[template]
name = "Linux VM"
catalog = "Virtual Machines"
[dialog]
vm_name = { from = "variables.vm_name", case = "lower", trim = true }
memory_mb = { from = "variables.memory_gb", convert = "gb_to_mb", default = "2048" }
owner = "requested_for"
"#;

    fn ritm(sys_id: &str, number: &str, vars: &[(&str, &str)], correlation: &str) -> Ci {
        let mut fields: Vec<(String, String)> = vec![
            ("number".into(), number.into()),
            ("cat_item".into(), "item1".into()),
            ("requested_for".into(), "u1".into()),
            ("sys_mod_count".into(), "3".into()),
            ("correlation_id".into(), correlation.into()),
        ];
        fields.extend(
            vars.iter()
                .map(|(k, v)| (format!("variables.{k}"), (*v).to_owned())),
        );
        Ci::new(sys_id, fields)
    }

    /// `link` resolved to the item `item1` and the template 7, "Linux VM", in `catalog`.
    fn resolved<'a>(link: &'a CatalogLink, catalog: &str) -> ResolvedLink<'a> {
        ResolvedLink {
            link,
            item_sys_id: "item1".into(),
            item: "Linux VM".into(),
            template_id: "7".into(),
            template: "Linux VM".into(),
            catalog: catalog.into(),
        }
    }

    fn input<'a>(
        links: &'a [ResolvedLink<'a>],
        ritms: &'a [Ci],
        ordered: &'a BTreeMap<String, Vec<String>>,
    ) -> OrderInput<'a> {
        OrderInput {
            links,
            ritms,
            ritms_origin: "sn".into(),
            ordered,
            searched: 40,
            ordered_origin: "cf".into(),
            search_incomplete: None,
            claim_state: "2".into(),
            approve: true,
            max_orders: Some(2),
            claim_timeout: chrono::TimeDelta::minutes(5),
            search_within: chrono::TimeDelta::days(30),
            allow_mass_change: false,
            now: "2026-12-02T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn a_link_compiles_with_its_variables_and_refuses_what_it_cannot_send() {
        let link = CatalogLink::parse(LINK, "links/linux.toml").unwrap();
        assert_eq!(link.item, Named::Name("Linux VM".into()));
        assert_eq!(link.ritm_field, "ritm_number");
        assert_eq!(
            link.variables().into_iter().collect::<Vec<_>>(),
            ["memory_gb", "vm_name"]
        );
        assert_eq!(
            link.columns().into_iter().collect::<Vec<_>>(),
            ["requested_for"]
        );
        let both = LINK.replace(
            "name = \"Linux VM\"\n[template]",
            "name = \"x\"\nsys_id = \"y\"\n[template]",
        );
        let e = CatalogLink::parse(&both, "l.toml").unwrap_err().to_string();
        assert!(
            e.contains("l.toml:") && e.contains("[item] needs exactly one"),
            "{e}"
        );
        let ritm = format!("{LINK}ritm_number = \"number\"\n");
        let e = CatalogLink::parse(&ritm, "l.toml").unwrap_err().to_string();
        assert!(e.contains("the job fills it"), "{e}");
        let unknown = LINK.replace("[dialog]", "colour = 1\n[dialog]");
        assert!(CatalogLink::parse(&unknown, "l.toml").is_err());
    }

    #[test]
    fn approved_items_become_orders_and_found_requests_resume() {
        let link = CatalogLink::parse(LINK, "linux.toml").unwrap();
        let links = [resolved(&link, "Virtual Machines")];
        let ritms = [
            ritm("b", "RITM0002", &[("vm_name", " Web-02 ")], ""),
            ritm(
                "a",
                "RITM0001",
                &[("vm_name", "web-01"), ("memory_gb", "4")],
                "cloudforms:claim:20261202T094500Z:host:1:ab",
            ),
            // Claimed two minutes ago: that pass may still be running.
            ritm(
                "d",
                "RITM0004",
                &[("vm_name", "x")],
                "cloudforms:claim:20261202T095800Z:h:2:cd",
            ),
            ritm(
                "c",
                "RITM0003",
                &[("vm_name", "x"), ("memory_gb", "many")],
                "",
            ),
        ];
        let ordered = BTreeMap::from([("RITM0002".to_owned(), vec!["42".to_owned()])]);
        let plan = plan_orders(&input(&links, &ritms, &ordered));
        let got: Vec<(&str, OrderAction, Option<&str>)> = plan
            .orders
            .iter()
            .map(|o| (o.ritm_number.as_str(), o.action, o.request_id.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("RITM0001", OrderAction::Order, None),
                ("RITM0002", OrderAction::Resume, Some("42")),
            ]
        );
        let dialog: Vec<(&str, &str)> = plan.orders[0]
            .dialog
            .iter()
            .map(|f| (f.field.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(
            dialog,
            [
                ("memory_mb", "4096"),
                ("owner", "u1"),
                ("vm_name", "web-01"),
                ("ritm_number", "RITM0001")
            ]
        );
        assert_eq!(plan.orders[1].dialog[2].value, "web-02");
        assert!(plan.orders[0].reason.contains("claimed by an earlier pass"));
        assert!(plan.orders[0]
            .approve
            .as_deref()
            .unwrap_or("")
            .contains("RITM0001"));
        assert_eq!(plan.source.filtered_out, 1, "the fresh claim is left alone");
        assert_eq!(plan.issues.len(), 1);
        assert_eq!(plan.issues[0].kind, IssueKind::BadValue);
        assert_eq!(plan.issues[0].name, "RITM0003");
        assert!(plan.safety.guards_tripped.is_empty());
        assert!(plan.has_changes());
    }

    /// A claim the search cannot vouch for is never ordered: older than the window searched
    /// (its order would be out of sight), stamped after the pass's clock, or unreadable.
    #[test]
    fn claims_the_search_cannot_vouch_for_are_issues_not_orders() {
        let link = CatalogLink::parse(LINK, "linux.toml").unwrap();
        let links = [resolved(&link, "Virtual Machines")];
        let vars = [("vm_name", "web")];
        let ritms = [
            ritm(
                "a",
                "RITM0001",
                &vars,
                "cloudforms:claim:20261001T090000Z:h:1:ab",
            ),
            ritm(
                "b",
                "RITM0002",
                &vars,
                "cloudforms:claim:20261202T110000Z:h:1:ab",
            ),
            ritm("c", "RITM0003", &vars, "cloudforms:claim:garbled"),
            // Claimed an hour ago, within the window: resumed (ordered) as before.
            ritm(
                "d",
                "RITM0004",
                &vars,
                "cloudforms:claim:20261202T090000Z:h:1:ab",
            ),
        ];
        let ordered = BTreeMap::new();
        let plan = plan_orders(&input(&links, &ritms, &ordered));
        let ordered: Vec<&str> = plan.orders.iter().map(|o| o.ritm_number.as_str()).collect();
        assert_eq!(ordered, ["RITM0004"]);
        let issues: Vec<(&str, &str)> = plan
            .issues
            .iter()
            .map(|i| (i.name.as_str(), i.field.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            issues,
            [
                ("RITM0001", "correlation_id"),
                ("RITM0002", "correlation_id"),
                ("RITM0003", "correlation_id"),
            ]
        );
        assert!(
            plan.issues[0].message.contains("older than the 30d"),
            "{}",
            plan.issues[0].message
        );
        assert!(plan.issues[1].message.contains("after this pass's clock"));
        assert!(plan.issues[2].message.contains("no time"));
    }

    /// Two RITMs, `RITM0001` and `RITM0002`, whose `root_password` variables are `passwords`.
    fn secret_ritms(passwords: [&str; 2]) -> [Ci; 2] {
        let [a, b] = passwords;
        [
            ritm(
                "a",
                "RITM0001",
                &[("vm_name", "a"), ("root_password", a)],
                "",
            ),
            ritm(
                "b",
                "RITM0002",
                &[("vm_name", "b"), ("root_password", b)],
                "",
            ),
        ]
    }

    /// A secret dialog field is planned as `(secret)`, never its value (not even in an
    /// issue), and made again from the RITM by `secret_values` at apply.
    #[test]
    fn secret_dialog_fields_stay_out_of_the_plan() {
        let text = format!(
            "{LINK}root_password = {{ from = \"variables.root_password\", convert = \"gb_to_mb\", secret = true }}\n"
        );
        let link = CatalogLink::parse(&text, "linux.toml").unwrap();
        assert_eq!(link.secret.iter().collect::<Vec<_>>(), ["root_password"]);
        assert_eq!(
            link.secret_fields().into_iter().collect::<Vec<_>>(),
            ["variables.root_password"]
        );
        let links = [resolved(&link, "")];
        let ritms = secret_ritms(["73", "hunter2"]);
        let none = BTreeMap::new();
        let plan = plan_orders(&input(&links, &ritms, &none));
        assert_eq!(plan.orders.len(), 1);
        let order = &plan.orders[0];
        assert_eq!(order.secret, ["root_password"]);
        let field = order
            .dialog
            .iter()
            .find(|f| f.field == "root_password")
            .unwrap();
        assert_eq!(field.value, SECRET);
        assert_eq!(plan.issues.len(), 1);
        assert_eq!(plan.issues[0].field.as_deref(), Some("root_password"));
        let json = serde_json::to_string(&plan).unwrap();
        assert!(
            !json.contains("74752") && !json.contains("hunter2"),
            "{json}"
        );
        // At apply: made from the RITM read then, by the same rule.
        let values = link.secret_values(&ritms[0], &order.secret).unwrap();
        assert_eq!(values["root_password"], "74752");
        let e = link.secret_values(&ritms[1], &order.secret).unwrap_err();
        assert!(e.contains("root_password") && !e.contains("hunter2"), "{e}");
        let gone = ritm("a", "RITM0001", &[("vm_name", "a")], "");
        assert!(link.secret_values(&gone, &order.secret).is_err());
        // A field that is not secret may not carry what a secret one reads.
        let constant = format!("{LINK}api_key = {{ const = \"k-123456\", secret = true }}\n");
        let constant = CatalogLink::parse(&constant, "l.toml").unwrap();
        let links = [resolved(&constant, "")];
        let plan = plan_orders(&input(&links, &ritms[..1], &none));
        let json = serde_json::to_string(&plan).unwrap();
        assert!(
            json.contains("const (secret)") && !json.contains("k-123456"),
            "{json}"
        );
        let leak = format!("{text}hint = {{ template = \"pw {{variables.root_password}}\" }}\n");
        let e = CatalogLink::parse(&leak, "l.toml").unwrap_err().to_string();
        assert!(e.contains("`hint` reads `variables.root_password`"), "{e}");
        let odd = LINK.replace("trim = true }", "trim = true, secret = \"yes\" }");
        let e = CatalogLink::parse(&odd, "l.toml").unwrap_err().to_string();
        assert!(e.contains("`secret` must be true or false"), "{e}");
    }

    /// A plan whose orders carry secrets is format 2 (a build that does not know secrets
    /// refuses it); a resume carries none (it sends no dialog); a secret's template text is
    /// not shown; a field that is not secret may not test a secret in its `when`.
    #[test]
    fn secrets_raise_the_format_and_show_only_what_they_read() {
        let text = format!(
            "{LINK}root_password = {{ template = \"{{variables.root_password}}:S4lt\", secret = true }}\n"
        );
        let link = CatalogLink::parse(&text, "linux.toml").unwrap();
        let links = [resolved(&link, "")];
        let ritms = secret_ritms(["pw", "pw"]);
        let ordered = BTreeMap::from([("RITM0002".to_owned(), vec!["42".to_owned()])]);
        let plan = plan_orders(&input(&links, &ritms, &ordered));
        assert_eq!(
            plan.format_version,
            crate::reconcile::plan::SECRET_FORMAT_VERSION
        );
        let by = |n: &str| plan.orders.iter().find(|o| o.ritm_number == n).unwrap();
        assert_eq!(by("RITM0001").action, OrderAction::Order);
        assert_eq!(by("RITM0001").secret, ["root_password"]);
        assert_eq!(by("RITM0002").action, OrderAction::Resume);
        assert!(by("RITM0002").secret.is_empty());
        let json = serde_json::to_string(&plan).unwrap();
        assert!(
            json.contains("variables.root_password (secret)") && !json.contains("S4lt"),
            "{json}"
        );
        // Without secrets, the format every build reads.
        let plain = CatalogLink::parse(LINK, "linux.toml").unwrap();
        let links = [resolved(&plain, "")];
        let none = BTreeMap::new();
        let plan = plan_orders(&input(&links, &ritms[..1], &none));
        assert_eq!(plan.format_version, crate::reconcile::plan::FORMAT_VERSION);
        // A `when` on the secret would tell, by the field being there, whether it matched.
        let oracle = format!(
            "{text}hint = {{ const = \"x\", when = [\"variables.root_password=hunter2\"] }}\n"
        );
        let e = CatalogLink::parse(&oracle, "l.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`hint` reads `variables.root_password`"), "{e}");
    }

    #[test]
    fn claim_markers_carry_their_time() {
        assert_eq!(
            claimed_at("cloudforms:claim:20261202T094500Z:host:1:ab"),
            Some("2026-12-02T09:45:00Z".parse().unwrap())
        );
        assert_eq!(
            claimed_at("cloudforms:claim:garbled"),
            Some(DateTime::<Utc>::MIN_UTC)
        );
        assert_eq!(claimed_at("cloudforms:request:42"), None);
        assert_eq!(claimed_at(""), None);
    }

    #[test]
    fn too_many_orders_refuse_the_plan_and_an_incomplete_search_orders_nothing() {
        let link = CatalogLink::parse(LINK, "linux.toml").unwrap();
        let links = [resolved(&link, "")];
        let ritms: Vec<Ci> = (1..=3)
            .map(|n| {
                ritm(
                    &format!("s{n}"),
                    &format!("RITM000{n}"),
                    &[("vm_name", "a")],
                    "",
                )
            })
            .collect();
        let none = BTreeMap::new();
        let plan = plan_orders(&input(&links, &ritms, &none));
        assert_eq!(plan.orders.len(), 3);
        assert_eq!(plan.safety.guards_tripped[0].guard, "max_orders");
        let mut allowed = input(&links, &ritms, &none);
        allowed.allow_mass_change = true;
        assert!(plan_orders(&allowed).safety.guards_tripped.is_empty());
        let mut cut = input(&links, &ritms[..1], &none);
        cut.search_incomplete = Some("a page was lost".into());
        cut.allow_mass_change = true;
        let plan = plan_orders(&cut);
        assert!(plan.orders.is_empty());
        assert!(!plan.source.complete);
        assert!(plan
            .source
            .incomplete_reason
            .unwrap_or_default()
            .contains("a page was lost"));
        // Two requests already carry one number: nothing is ordered for it.
        let twice = BTreeMap::from([("RITM0001".to_owned(), vec!["1".to_owned(), "2".to_owned()])]);
        let plan = plan_orders(&input(&links, &ritms[..1], &twice));
        assert!(plan.orders.is_empty());
        assert_eq!(plan.issues[0].kind, IssueKind::DuplicateSource);
    }
}
