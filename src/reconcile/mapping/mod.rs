//! The mapping language: a TOML file that says which source records become which CIs, how
//! each CI field is derived, how VMs and CIs are identified, what the job owns and how CIs
//! are retired. [`Mapping::parse`] compiles the text into rules; [`FieldRule::eval`] derives a
//! field's value from one record.
//!
//! Parsing is pure (text in, rules or a positioned error out): the caller reads the file.
//!
//! The files follow the pipeline: `schema` reads the TOML as written, `compile` checks it and
//! builds the rules (with positioned errors), `eval` applies a rule to one record. `path`,
//! `filter` and `template` are the small expression languages the file is written in. This
//! file holds the compiled types and the questions adapters ask of a mapping.

mod compile;
mod eval;
mod filter;
mod path;
mod schema;
mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

pub use compile::{compile_rules, digest, error_at, toml_error};
pub use eval::{format_number, scalar_str, scalar_text, tag_values, EvalError};
pub use filter::{disjoint, Condition, Conditions, Filter};
pub use path::Path;
pub use template::TemplatePart;

use super::plan::FieldMode;
use super::record::{SourceRecord, Val};

/// A mapping file that could not be compiled: where, what, and a hint when we have one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
pub struct MappingError {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// A compiled mapping: one source collection to one CMDB table.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub name: String,
    pub origin: String,
    /// FNV-1a of the file text: lets `apply` tell that the mapping changed since the plan.
    pub digest: String,
    pub source: SourceSpec,
    pub target: TargetSpec,
    pub identify: Vec<IdentityRule>,
    pub fields: Vec<FieldRule>,
    pub retire: RetirePolicy,
    /// CIs that count as retired, however they got there (by this job or by hand): left
    /// alone when their VM is missing, restored when it is back. `[retire] retired_when`,
    /// default `install_status=7`; a CI holding every `[retire] set` value counts too.
    /// `None` without a `[retire]` section: a mapping that never retires has no notion of it.
    pub retired_when: Option<Conditions>,
    pub lifecycle: Lifecycle,
    pub guards: Guards,
    /// Report-only facts taken from each record (provider, cluster, owner...).
    pub context: Vec<(String, Path)>,
    /// `[[relate]]`: the relationships kept between each CI and others.
    pub relate: Vec<Relate>,
    /// The mapped field that names a record and a row in reports (`[report] name`, default
    /// `name`; a ticket table has none, and names a ticket by its `short_description`).
    pub name_field: String,
    /// `[classify]`: the CloudForms tags kept as the CI's `cmdb_key_value` rows.
    pub classify: Option<Classify>,
}

/// `[source] updated_within`: only records updated within this long before the run are
/// read (`filter[]=updated_on>...` live; the same cut applied to snapshots by the core). Such
/// a read is not the whole collection, so a row whose record was not read is not judged:
/// never marked Absent or retired, and no relationship row is deleted on its strength.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The record's update time (`updated_on`), an ISO 8601 date-time.
    pub field: Path,
    pub secs: i64,
    /// As written (`30d`), for reports.
    pub text: String,
}

impl Window {
    /// The earliest update time a record may have to be read, for a run at `now`.
    pub fn since(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now - chrono::TimeDelta::seconds(self.secs)
    }

    /// Whether a record was updated after `since`. A record whose update time is missing or
    /// unreadable is kept: seeing a record never harms, and it is not read past.
    pub fn admits(&self, record: &SourceRecord, since: chrono::DateTime<chrono::Utc>) -> bool {
        let found = self.field.get(record.data);
        let Some(text) = found.as_deref().and_then(scalar_str) else {
            return true;
        };
        match chrono::DateTime::parse_from_rfc3339(text.trim()) {
            Ok(t) => t.with_timezone(&chrono::Utc) > since,
            Err(_) => true,
        }
    }
}

/// CloudForms tags (`/managed/<category>/<entry>`) kept as `cmdb_key_value` rows of the CI
/// (`key` = category, `value` = entry), reconciled like relationships. Only rows whose `tag`
/// column is `tag` and whose key is one of `categories` are the job's to create or delete.
#[derive(Debug, Clone, PartialEq)]
pub struct Classify {
    /// The categories kept; `None`: every `/managed` category.
    pub categories: Option<BTreeSet<String>>,
    /// The `tag` column of the rows the job writes (and the only rows it deletes).
    pub tag: String,
}

impl Classify {
    /// Whether rows of this key are the job's.
    pub fn keeps(&self, key: &str) -> bool {
        self.categories.as_ref().is_none_or(|c| c.contains(key))
    }
}

/// A relationship the mapping keeps between its CI and another CI, reconciled like a field:
/// a missing row is created, a row of the type that no longer holds (a vMotion to another
/// host) is deleted, and rows the job cannot judge are left alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Relate {
    /// The `cmdb_rel_type` name, `"<parent descriptor>::<child descriptor>"`.
    pub kind: String,
    /// Whether the mapping's CI is the parent (else the child).
    pub parent: bool,
    /// How the other CI is found: a field rule whose lookup gives its sys_id.
    pub to: FieldRule,
    /// Only rows whose other CI matches this are ever deleted (`None`: any CI of the lookup's
    /// table).
    pub scope: Option<Conditions>,
    /// Source filters the record must pass to have this relationship at all (a host is
    /// contained by its datacenter only when it is in no cluster); a record failing one has
    /// no row of this type, like a record without the other CI.
    pub when: Vec<Filter>,
}

impl Relate {
    /// The table the other CI lives in.
    pub fn other_table(&self) -> &str {
        self.to.lookup.as_ref().map_or("", |l| l.table.as_str())
    }
}

/// Which records of which collection are mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub collection: String,
    pub filters: Vec<Filter>,
    /// Extra attributes to request besides those the fields need.
    pub extra_attributes: Vec<String>,
    /// Boolean attributes that, when true, make a record no row at all (filtered out, never
    /// missing): CloudForms' `template` for the `vms` and `templates` collections by
    /// default, nothing for other collections.
    pub skip_when: Vec<String>,
    /// `updated_within`: only recently updated records are read (not the whole collection).
    pub window: Option<Window>,
}

/// CloudForms collections whose records are VMs (or templates): the collections that the
/// VM-specific defaults (`skip_when`, `missing_when`) apply to. Other collections (hosts,
/// clusters, requests, ...) have no such attributes, and asking for them would be refused.
pub(crate) fn is_vm_collection(collection: &str) -> bool {
    matches!(
        collection,
        "vms" | "templates" | "instances" | "cloud_instances"
    )
}

/// The target table, the scope of CIs the job owns, and create-time constants.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    pub table: String,
    pub scope: Conditions,
    pub on_create: Vec<(String, String)>,
    /// Whether a VM matching a CI outside the scope may take it over.
    pub adopt: bool,
    /// CIs matching this are never written.
    pub freeze: Option<Conditions>,
    /// Whether a frozen row the job would have written is reported (`frozen`, default); a
    /// closed ticket is done, and `freeze_report = false` counts it as unchanged instead.
    pub freeze_report: bool,
    /// `[target] read`: only rows meeting this are read (sent with the live query, applied
    /// to exports alike); a row left out is not seen at all, by identification either, so it
    /// narrows by what every row a record could be holds (the identity key's prefix).
    pub read: Option<Conditions>,
    /// The classes (`sys_class_name`) of the table's rows the sync owns: by default the
    /// table's own class only, because a parent table (`cmdb_ci_vm_instance`) also lists
    /// every row of its subclasses (`cmdb_ci_vmware_instance`), which another sync may own.
    pub classes: Vec<String>,
    /// What becomes of a VM whose match contradicts another identity field.
    pub on_contradiction: OnContradiction,
    /// `[target] create = false`: records without a row are left out (no create), for a
    /// sync that only writes rows another process made (the catalog's RITM status
    /// write-back never creates a requested item).
    pub create: bool,
}

impl TargetSpec {
    /// Whether a row is of a class the sync owns (a row without `sys_class_name`, as in an
    /// export that lacks the column, is taken to be the table's own).
    pub fn owns_class(&self, ci: &super::record::Ci) -> bool {
        let class = ci.get("sys_class_name").trim();
        class.is_empty() || self.classes.iter().any(|c| c.eq_ignore_ascii_case(class))
    }

    /// The encoded-query condition that reads only the sync's classes.
    pub fn class_condition(&self) -> String {
        let classes = format!("sys_class_nameIN{}", self.classes.join(","));
        match &self.read {
            Some(read) => format!("{classes}^{}", read.text),
            None => classes,
        }
    }

    /// Whether a row is one the sync reads (`[target] read`).
    pub fn reads(&self, ci: &super::record::Ci) -> bool {
        self.read.as_ref().is_none_or(|r| r.matches(ci))
    }
}

/// What becomes of a VM whose identity rule found a CI that holds another strong identity
/// field with a different value (a moref reused after a vCenter rebuild, another BIOS UUID).
/// Either way the CI is not re-keyed and not retired in that run, and the pair is reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnContradiction {
    /// The VM and the CI are held: neither written nor retired (default).
    #[default]
    Quarantine,
    /// The VM is planned as a new CI (identified by every strong identity field it holds);
    /// the contradicting CI is left alone.
    New,
}

/// One identification rule: CI fields whose desired values must all be present and equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRule {
    pub fields: Vec<String>,
    /// A weak rule (e.g. name) may be shared by several VMs; it matches only when exactly one
    /// VM and one CI share the key. A strong rule's key must be unique among the VMs.
    pub weak: bool,
}

impl IdentityRule {
    pub fn describe(&self) -> String {
        self.fields.join("+")
    }
}

/// How a CI is retired once its VM is gone for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetirePolicy {
    /// Set these fields (e.g. install_status = 7).
    Set(Vec<(String, String)>),
    /// Delete the CI.
    Delete,
    /// Never retire (report only).
    None,
}

/// The lifecycle of CIs whose VMs go missing, come back, or stay.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    /// Field holding when the VM was last seen; `None` turns heartbeats and grace off.
    pub last_discovered: Option<String>,
    pub first_discovered: Option<String>,
    /// `last_discovered` is refreshed at most this often (seconds); 0 = never by itself.
    pub heartbeat_secs: i64,
    /// A CI is retired once `last_discovered` is older than this (seconds).
    pub retire_after_secs: i64,
    /// Fields that mark a CI Absent on the first miss.
    pub absent: Vec<(String, String)>,
    /// Fields written when a VM comes back to an Absent or Retired CI.
    pub restore: Vec<(String, String)>,
    /// Boolean record attributes that make a VM count as missing (archived, orphaned, retired).
    pub missing_when: Vec<String>,
}

/// Limits checked on the plan before any write.
#[derive(Debug, Clone, PartialEq)]
pub struct Guards {
    pub max_retire: Limit,
    pub max_delete: Limit,
    pub max_update: Limit,
    pub max_create: Limit,
    /// Retirements are blocked when the source holds fewer records than this fraction of the
    /// in-scope CIs.
    pub min_source_ratio: f64,
    /// A percentage limit never allows fewer than this many CIs, so that a small CMDB can
    /// still retire a handful (5% of 40 CIs would otherwise be 2).
    pub percent_floor: usize,
}

/// A limit as a count or a percentage of the in-scope CIs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Count(usize),
    Percent(f64),
    Unlimited,
}

impl Limit {
    /// The count this limit allows out of `base` in-scope CIs; a percentage allows at least
    /// `floor`.
    pub fn allowed(self, base: usize, floor: usize) -> Option<usize> {
        match self {
            Self::Count(n) => Some(n),
            Self::Percent(p) => Some(((base as f64 * p / 100.0).floor() as usize).max(floor)),
            Self::Unlimited => None,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
            Self::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// Where a field's raw value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Extract {
    Path(Path),
    Template(Vec<TemplatePart>),
    Const(String),
    /// Values of a CloudForms tag category (`/managed/<category>/<value>`), sorted.
    Tag(String),
}

/// How a list becomes one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    First,
    Last,
    /// The first IPv4 address no other host could reach the VM by: loopback (127/8),
    /// link-local (169.254/16, which a guest holds while DHCP has not answered) and
    /// unspecified (0.0.0.0) are skipped.
    FirstIpv4,
    /// The first IPv6 address, skipping loopback (::1), link-local (fe80::/10) and
    /// unspecified (::).
    FirstIpv6,
    /// The first IPv4 address of any kind.
    FirstIpv4Any,
    /// The first IPv6 address of any kind.
    FirstIpv6Any,
    Join,
    Count,
}

/// Unit conversions (binary units: 1 GB = 1024 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convert {
    BytesToKb,
    BytesToMb,
    BytesToGb,
    BytesToTb,
    KbToMb,
    KbToGb,
    MbToGb,
    MbToTb,
    GbToMb,
    GbToTb,
    MbToBytes,
    GbToBytes,
}

impl Convert {
    fn factor(self) -> f64 {
        const K: f64 = 1024.0;
        match self {
            Self::BytesToKb | Self::KbToMb | Self::MbToGb | Self::GbToTb => 1.0 / K,
            Self::BytesToMb | Self::KbToGb | Self::MbToTb => 1.0 / (K * K),
            Self::BytesToGb => 1.0 / (K * K * K),
            Self::BytesToTb => 1.0 / (K * K * K * K),
            Self::GbToMb => K,
            Self::MbToBytes => K * K,
            Self::GbToBytes => K * K * K,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    Lower,
    Upper,
}

/// What a field's fixed values name for a choice column: the stored value (default) or the
/// choice's label, looked up in the instance's `sys_choice`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceBy {
    #[default]
    Value,
    Label,
}

/// How a desired value is compared with the CI's (ServiceNow returns every value as a string).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Numbers as numbers, IP addresses as addresses, anything else exactly (trimmed).
    #[default]
    Auto,
    Exact,
    /// Case-insensitive (choices, names).
    IgnoreCase,
    Number,
    Ip,
}

/// What an empty or missing source value means for the CI field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnEmpty {
    /// Leave the CI's value alone: the source does not know (e.g. no IP while powered off).
    #[default]
    Skip,
    /// Clear the CI's value.
    Clear,
}

/// A reference lookup: the derived value is found in `table.by` and replaced by its sys_id.
/// `and` narrows it by more fields of the row, each equal to a source path's value: a key of
/// several fields (an ESX host is its MoRef *and* its vCenter's UUID: MoRefs repeat across
/// vCenters).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    pub table: String,
    pub by: String,
    /// Row field -> source path, as written in the mapping.
    #[serde(default)]
    pub and: BTreeMap<String, String>,
}

/// One CI field and how it is derived.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRule {
    pub name: String,
    /// `choice = "label"`: the values `map`, `const` and `default` give are the labels of
    /// the column's choices (`Closed Complete`), written as the values the instance's
    /// `sys_choice` gives them ([`Mapping::apply_schema`]); a plan without the table's
    /// choices is refused rather than write labels.
    pub choice: ChoiceBy,
    pub extract: Extract,
    pub pick: Option<Pick>,
    pub separator: String,
    pub convert: Option<Convert>,
    pub decimals: u32,
    pub trim: bool,
    pub case: Option<Case>,
    pub map: Option<BTreeMap<String, String>>,
    /// The map's keys holding `*`, most specific first (most literal characters, then key
    /// order): tried after the exact and case-insensitive keys.
    pub map_patterns: Vec<(String, String)>,
    /// `when`: source filters a record must pass for the field to have a value at all
    /// (otherwise it has none, and `on_empty` says what that means).
    pub when: Vec<Filter>,
    pub default: Option<String>,
    pub lookup: Option<Lookup>,
    pub mode: FieldMode,
    /// For `mode = "append"` (a journal field such as `work_notes`): the fields whose write
    /// carries the entry. The entry is written on create and with an update that writes one
    /// of these, never compared with the row (a journal does not read back as written).
    pub on_change: Vec<String>,
    pub compare: Compare,
    pub on_empty: OnEmpty,
    /// The target column's length in characters: a longer value is cut to it (as ServiceNow
    /// would cut it on write), reported, and compared cut, so it does not drift on every run.
    /// `None`: not known. Set from the mapping's `max_length` today; a reader of the table's
    /// dictionary (`sys_dictionary.max_length`) can fill the fields the mapping leaves unset
    /// before planning, since the planner reads the length only from here.
    pub max_length: Option<usize>,
    /// The target column as the table's dictionary describes it, when the plan was given
    /// the dictionary ([`Mapping::apply_schema`]): a value that does not fit a reference or
    /// choice column is reported and not written.
    pub column: Option<crate::reconcile::schema::Column>,
    /// The lookup's `and` conditions, compiled: row field and the source path to match.
    pub lookup_and: Vec<(String, Path)>,
    /// The expression in words, for reports ("which mapping field produced this value").
    pub describe: String,
}

/// Text columns up to this length are stored in fixed-width database columns that cut what
/// is longer; longer ones (1000, 4000, ...) are stored as large text and not cut. Source: a
/// ServiceNow community answer citing KB0685779 (varchar(40), (100), (255) for small to
/// 255; mediumtext above); UNVERIFIED against an instance.
const CUT_UP_TO: usize = 255;

/// Queries on a compiled mapping: what to read from each side, and the rule of a field.
impl Mapping {
    /// Fits the mapping to the target table as its dictionary describes it: fields without
    /// a `max_length` of their own take the column's (where the platform cuts), and every
    /// field learns its column, so values that do not fit it are reported, not written.
    /// The caller has already refused fields the table lacks.
    pub fn apply_schema(&mut self, schema: &crate::reconcile::schema::TableSchema) {
        for rule in &mut self.fields {
            let Some(column) = schema.column(&rule.name) else {
                continue;
            };
            if rule.choice == ChoiceBy::Label {
                let value = |label: &mut String| {
                    if let Some(v) = column.value_of_label(label) {
                        *label = v.to_owned();
                    }
                };
                rule.map
                    .iter_mut()
                    .flat_map(|m| m.values_mut())
                    .for_each(value);
                rule.map_patterns.iter_mut().for_each(|(_, v)| value(v));
                rule.default.iter_mut().for_each(value);
                if let Extract::Const(c) = &mut rule.extract {
                    value(c);
                }
                rule.choice = ChoiceBy::Value;
            }
            if rule.max_length.is_none() && column.kind == "string" {
                rule.max_length = column.max_length.filter(|n| *n <= CUT_UP_TO);
            }
            rule.column = Some(column.clone());
        }
    }

    /// The labels of `choice = "label"` fields that the table's choices do not have, as
    /// `(field, label, the column's labels)`; a field the table lacks is left to
    /// [`TableSchema::unknown_fields`](crate::reconcile::schema::TableSchema::unknown_fields).
    pub fn unknown_labels(
        &self,
        schema: &crate::reconcile::schema::TableSchema,
    ) -> Vec<(String, String, Vec<String>)> {
        let mut out = Vec::new();
        for rule in self.fields.iter().filter(|r| r.choice == ChoiceBy::Label) {
            let Some(column) = schema.column(&rule.name) else {
                continue;
            };
            let mut labels: Vec<&String> = rule.map.iter().flat_map(|m| m.values()).collect();
            labels.extend(&rule.default);
            if let Extract::Const(c) = &rule.extract {
                labels.push(c);
            }
            let mut seen = BTreeSet::new();
            for label in labels {
                if !label.trim().is_empty()
                    && column.value_of_label(label).is_none()
                    && seen.insert(label.clone())
                {
                    out.push((
                        rule.name.clone(),
                        label.clone(),
                        column.labels.values().map(|(l, _)| l.clone()).collect(),
                    ));
                }
            }
        }
        out
    }

    /// The fields whose values are choice labels (`choice = "label"`), which need the
    /// table's choices to be planned.
    pub fn label_fields(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|r| r.choice == ChoiceBy::Label)
            .map(|r| r.name.as_str())
            .collect()
    }

    /// The CloudForms attributes the mapping reads (for `attributes=`), sorted.
    pub fn source_attributes(&self) -> Vec<String> {
        let mut paths: Vec<&Path> = Vec::new();
        let mut attrs: BTreeSet<String> = BTreeSet::new();
        for field in &self.fields {
            match &field.extract {
                Extract::Path(p) => paths.push(p),
                Extract::Template(parts) => {
                    paths.extend(parts.iter().filter_map(|part| match part {
                        TemplatePart::Field(p) | TemplatePart::Optional(p) => Some(p),
                        TemplatePart::Text(_) => None,
                    }))
                }
                Extract::Tag(_) => {
                    attrs.insert("tags".into());
                }
                Extract::Const(_) => {}
            }
            paths.extend(field.lookup_and.iter().map(|(_, p)| p));
        }
        for relate in &self.relate {
            if let Extract::Path(p) = &relate.to.extract {
                paths.push(p);
            }
            paths.extend(relate.to.lookup_and.iter().map(|(_, p)| p));
            paths.extend(relate.when.iter().map(|f| &f.path));
        }
        if self.classify.is_some() {
            attrs.insert("tags".into());
        }
        paths.extend(self.source.filters.iter().map(|f| &f.path));
        paths.extend(
            self.fields
                .iter()
                .flat_map(|f| f.when.iter().map(|w| &w.path)),
        );
        paths.extend(self.source.window.iter().map(|w| &w.field));
        paths.extend(self.context.iter().map(|(_, p)| p));
        attrs.extend(
            paths
                .iter()
                .map(|p| p.attribute())
                .filter(|a| !a.is_empty()),
        );
        attrs.extend(self.lifecycle.missing_when.iter().cloned());
        attrs.extend(self.source.extra_attributes.iter().cloned());
        attrs.extend(self.source.skip_when.iter().cloned());
        attrs.remove("id");
        attrs.remove("href");
        // An attribute asked for whole covers the keys under it: `options` (a serialized
        // hash, not an association) must be asked for as `options`, since ManageIQ reads
        // `options.vm_target_name` as an association and refuses it.
        let whole: Vec<String> = attrs.iter().cloned().collect();
        attrs.retain(|a| {
            !whole.iter().any(|w| {
                a.len() > w.len() && a.starts_with(w.as_str()) && a[w.len()..].starts_with('.')
            })
        });
        attrs.into_iter().collect()
    }

    /// What of each source record the plan reads: every path of [`source_attributes`]
    /// (fields, templates, lookups, relationships, filters, windows, context), the boolean
    /// attributes and extra attributes whole, of tags only their names, and the record's
    /// `id` and `name` (its name in reports).
    ///
    /// [`source_attributes`]: Self::source_attributes
    pub fn source_keep(&self) -> super::record::Keep {
        let mut keep = super::record::Keep::default();
        let mut tags = false;
        for field in self.fields.iter().chain(self.relate.iter().map(|r| &r.to)) {
            match &field.extract {
                Extract::Path(p) => keep.add(p.keys()),
                Extract::Template(parts) => {
                    for part in parts {
                        if let TemplatePart::Field(p) | TemplatePart::Optional(p) = part {
                            keep.add(p.keys());
                        }
                    }
                }
                Extract::Tag(_) => tags = true,
                Extract::Const(_) => {}
            }
            for (_, p) in &field.lookup_and {
                keep.add(p.keys());
            }
            for filter in &field.when {
                keep.add(filter.path.keys());
            }
        }
        for relate in &self.relate {
            for filter in &relate.when {
                keep.add(filter.path.keys());
            }
        }
        for filter in &self.source.filters {
            keep.add(filter.path.keys());
        }
        if let Some(window) = &self.source.window {
            keep.add(window.field.keys());
        }
        for (_, p) in &self.context {
            keep.add(p.keys());
        }
        if tags || self.classify.is_some() {
            // Tags are read by name (`/managed/<category>/<value>`), or as plain strings.
            keep.add(["tags", "name"]);
        }
        for attr in self
            .lifecycle
            .missing_when
            .iter()
            .chain(&self.source.extra_attributes)
            .chain(&self.source.skip_when)
        {
            keep.add(attr.split('.'));
        }
        keep.add(["id"]);
        keep.add(["name"]);
        keep
    }

    /// The CI fields the plan reads (for `sysparm_fields`), sorted: mapped fields, identity,
    /// scope, freeze, lifecycle and retire fields, plus the version fields.
    pub fn target_fields(&self) -> Vec<String> {
        let mut fields: BTreeSet<String> = BTreeSet::new();
        fields.extend(self.fields.iter().map(|f| f.name.clone()));
        fields.extend(self.target.scope.fields().map(str::to_owned));
        fields.insert("sys_class_name".to_owned());
        if let Some(freeze) = &self.target.freeze {
            fields.extend(freeze.fields().map(str::to_owned));
        }
        if let Some(read) = &self.target.read {
            fields.extend(read.fields().map(str::to_owned));
        }
        fields.extend(self.target.on_create.iter().map(|(f, _)| f.clone()));
        if let RetirePolicy::Set(set) = &self.retire {
            fields.extend(set.iter().map(|(f, _)| f.clone()));
        }
        fields.extend(
            self.retired_when
                .iter()
                .flat_map(|r| r.fields())
                .map(str::to_owned),
        );
        let lc = &self.lifecycle;
        fields.extend(lc.absent.iter().chain(&lc.restore).map(|(f, _)| f.clone()));
        fields.extend(lc.last_discovered.iter().cloned());
        fields.extend(
            [
                "sys_id",
                "sys_updated_on",
                "sys_mod_count",
                "sys_created_on",
            ]
            .map(String::from),
        );
        fields.into_iter().collect()
    }

    /// For each reference lookup (table, field), the distinct values the records need
    /// resolved, sorted: a live target reads only those rows.
    pub fn lookup_keys(&self, records: &[Val]) -> Vec<(Lookup, Vec<String>)> {
        // Only `by` narrows the read: the `and` fields are read with the rows and matched
        // in the core.
        use rayon::prelude::*;
        let mut out: Vec<(Lookup, Vec<String>)> = Vec::new();
        for rule in self.fields.iter().chain(self.relate.iter().map(|r| &r.to)) {
            let Some(lookup) = &rule.lookup else { continue };
            let index = match out.iter().position(|(l, _)| l == lookup) {
                Some(i) => i,
                None => {
                    out.push((lookup.clone(), Vec::new()));
                    out.len() - 1
                }
            };
            // On every core: a key per record (100,000 at 100,000 VMs), sorted and made
            // unique once below.
            let keys = records.par_iter().filter_map(|value| {
                let Val::Object(object) = value else {
                    return None;
                };
                rule.lookup_key(&SourceRecord::from_object(object)?)
            });
            out[index].1.par_extend(keys);
        }
        for (_, keys) in &mut out {
            keys.par_sort_unstable();
            keys.dedup();
        }
        out
    }

    /// A row's name in reports: its `[report] name` field.
    pub fn row_name<'c>(&self, ci: &'c super::record::Ci) -> &'c str {
        ci.get(&self.name_field)
    }

    /// The field rule for a CI field, if mapped.
    pub fn field(&self, name: &str) -> Option<&FieldRule> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests;
