//! The mapping file's TOML schema: serde structs that mirror the file as written, spans kept
//! where an error must point at a value. Nothing here checks meaning; `compile` does.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{Case, ChoiceBy, Compare, Convert, Lookup, OnContradiction, OnEmpty, Pick};
use crate::reconcile::plan::FieldMode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMapping {
    pub(super) name: Option<String>,
    pub(super) source: RawSource,
    pub(super) target: RawTarget,
    #[serde(default)]
    pub(super) identify: Vec<Spanned<RawIdentify>>,
    pub(super) fields: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    pub(super) retire: Option<RawRetire>,
    #[serde(default)]
    pub(super) lifecycle: RawLifecycle,
    #[serde(default)]
    pub(super) guards: RawGuards,
    #[serde(default)]
    pub(super) report: RawReport,
    #[serde(default)]
    pub(super) relate: Vec<Spanned<RawRelate>>,
    pub(super) classify: Option<Spanned<RawClassify>>,
}

/// `[classify]`: CloudForms tags kept as `cmdb_key_value` rows of the CI.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClassify {
    /// `"*"` (every `/managed` category) or a list of categories.
    pub(super) from_tag: toml::Value,
    /// The rows' `tag` column (default `CloudForms`).
    pub(super) tag: Option<String>,
}

/// `[[relate]]`: a relationship (`cmdb_rel_ci`) between the mapping's CI and another CI.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelate {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) role: Option<String>,
    pub(super) to: Spanned<toml::Value>,
    pub(super) scope: Option<String>,
    /// Source filters (`ems_cluster_id=NULL`): the record has this relationship only when
    /// every one passes.
    #[serde(default)]
    pub(super) when: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    #[serde(default = "default_collection")]
    pub(super) collection: String,
    #[serde(default)]
    pub(super) filter: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) attributes: Vec<String>,
    pub(super) skip_when: Option<Vec<String>>,
    pub(super) updated_within: Option<Spanned<String>>,
    pub(super) updated_field: Option<String>,
}

fn default_collection() -> String {
    "vms".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub(super) table: Spanned<String>,
    pub(super) scope: Spanned<String>,
    #[serde(default)]
    pub(super) on_create: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) adopt: bool,
    pub(super) freeze: Option<Spanned<String>>,
    pub(super) freeze_report: Option<bool>,
    pub(super) read: Option<Spanned<String>>,
    pub(super) classes: Option<Vec<String>>,
    pub(super) on_contradiction: Option<OnContradiction>,
    pub(super) create: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentify {
    pub(super) fields: Vec<String>,
    #[serde(default)]
    pub(super) weak: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFieldSpec {
    pub(super) from: Option<String>,
    pub(super) template: Option<String>,
    #[serde(rename = "const")]
    pub(super) constant: Option<toml::Value>,
    pub(super) from_tag: Option<String>,
    pub(super) pick: Option<Pick>,
    pub(super) separator: Option<String>,
    pub(super) convert: Option<Convert>,
    pub(super) decimals: Option<u32>,
    pub(super) trim: Option<bool>,
    pub(super) case: Option<Case>,
    pub(super) map: Option<BTreeMap<String, toml::Value>>,
    pub(super) default: Option<toml::Value>,
    pub(super) lookup: Option<Lookup>,
    pub(super) mode: Option<FieldMode>,
    pub(super) on_change: Option<Vec<String>>,
    pub(super) when: Option<Vec<String>>,
    pub(super) compare: Option<Compare>,
    pub(super) on_empty: Option<OnEmpty>,
    pub(super) max_length: Option<i64>,
    pub(super) choice: Option<ChoiceBy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetire {
    pub(super) action: Spanned<String>,
    #[serde(default)]
    pub(super) set: BTreeMap<String, toml::Value>,
    pub(super) retired_when: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLifecycle {
    pub(super) last_discovered: Option<String>,
    pub(super) first_discovered: Option<String>,
    pub(super) heartbeat: Option<Spanned<String>>,
    pub(super) retire_after: Option<Spanned<String>>,
    pub(super) absent: Option<BTreeMap<String, toml::Value>>,
    pub(super) restore: Option<BTreeMap<String, toml::Value>>,
    pub(super) missing_when: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGuards {
    pub(super) max_retire: Option<Spanned<toml::Value>>,
    pub(super) max_delete: Option<Spanned<toml::Value>>,
    pub(super) max_update: Option<Spanned<toml::Value>>,
    pub(super) max_create: Option<Spanned<toml::Value>>,
    pub(super) min_source_ratio: Option<f64>,
    pub(super) percent_floor: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    pub(super) context: Option<BTreeMap<String, String>>,
    pub(super) name: Option<String>,
}
