//! Compilation: the TOML text, read through the schema, becomes a [`Mapping`], or the first
//! [`MappingError`] with the file, line, column and a hint when we have one.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

use super::eval::format_number;
use super::filter::is_field_name;
use super::schema::{
    RawClassify, RawFieldSpec, RawGuards, RawIdentify, RawLifecycle, RawMapping, RawRelate,
    RawReport, RawRetire, RawSource, RawTarget,
};
use super::template::parse_template;
use super::{
    is_vm_collection, ChoiceBy, Classify, Compare, Conditions, Extract, FieldRule, Filter, Guards,
    IdentityRule, Lifecycle, Limit, Mapping, MappingError, Path, Relate, RetirePolicy, SourceSpec,
    TargetSpec,
};
use crate::reconcile::plan::FieldMode;
use crate::text::{line_column, parse_duration};

impl Mapping {
    /// Compiles a mapping file. `origin` names the file in errors and reports.
    pub fn parse(text: &str, origin: &str) -> Result<Self, MappingError> {
        let loc = Locator { text, origin };
        let raw: RawMapping = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_owned();
            let hint = hint_for(&message);
            loc.error(e.span(), message, hint)
        })?;
        let name = raw.name.unwrap_or_else(|| name_from_origin(origin));
        let source = compile_source(raw.source, &loc)?;
        let target = compile_target(&raw.target, &loc)?;
        let name_field = raw
            .report
            .name
            .clone()
            .map(|n| n.trim().to_owned())
            .unwrap_or_else(|| "name".to_owned());
        let mut fields = compile_fields(&raw.fields, &name_field, &loc)?;
        // After [fields]: an identity rule may only name mapped fields.
        let identify = compile_identify(&raw.identify, &fields, &loc)?;
        compare_identity_ignoring_case(&mut fields, &identify);
        let retire = compile_retire(raw.retire.as_ref(), &loc)?;
        let retired_when = compile_retired_when(raw.retire.as_ref(), &loc)?;
        let lifecycle = compile_lifecycle(&raw.lifecycle, &source.collection, &loc)?;
        let guards = compile_guards(&raw.guards, &loc)?;
        let context = compile_report(raw.report, &source.collection, &loc)?;
        let relate = compile_relate(&raw.relate, &loc)?;
        let classify = compile_classify(raw.classify.as_ref(), &loc)?;
        Ok(Self {
            name,
            origin: origin.to_owned(),
            digest: fnv1a(text),
            source,
            target,
            identify,
            fields,
            retire,
            retired_when,
            lifecycle,
            guards,
            context,
            relate,
            name_field,
            classify,
        })
    }
}

/// Compiles a table of field rules written in the mapping language outside a mapping file
/// (a catalog link's `[dialog]`): each entry as `[fields]` takes it, positioned in `text`.
/// Journal modes (`append`) and lookups need a target table and are refused.
pub fn compile_rules(
    raw: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    text: &str,
    origin: &str,
) -> Result<Vec<FieldRule>, MappingError> {
    let loc = Locator { text, origin };
    let mut rules = Vec::new();
    for (field, spec) in raw {
        let rule = compile_field(field, spec, &loc)?;
        if rule.mode == FieldMode::Append || rule.lookup.is_some() {
            return Err(loc.error(
                Some(spec.span()),
                format!(
                    "`{}`: `mode = \"append\"` and `lookup` need a ServiceNow table",
                    rule.name
                ),
                None,
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// A TOML error from a file that is not a mapping, positioned like a mapping's.
pub fn toml_error(text: &str, origin: &str, error: &toml::de::Error) -> MappingError {
    let message = error.message().trim().to_owned();
    let hint = hint_for(&message);
    Locator { text, origin }.error(error.span(), message, hint)
}

/// A positioned error in a file that is not a mapping (a catalog link).
pub fn error_at(
    text: &str,
    origin: &str,
    span: Option<Range<usize>>,
    message: impl Into<String>,
) -> MappingError {
    Locator { text, origin }.error(span, message, None)
}

/// A short stable digest of a file's text (FNV-1a), as a mapping's `digest`.
pub fn digest(text: &str) -> String {
    fnv1a(text)
}

/// The mapping's name when the file gives none: the file name without `.toml`.
fn name_from_origin(origin: &str) -> String {
    let file = origin.rsplit(['/', '\\']).next().unwrap_or(origin);
    file.strip_suffix(".toml").unwrap_or(file).to_owned()
}

/// `[source]`: the collection, the filters that pick its records, extra attributes.
fn compile_source(raw: RawSource, loc: &Locator) -> Result<SourceSpec, MappingError> {
    let filters = raw
        .filter
        .iter()
        .map(|f| Filter::parse(f.get_ref()).map_err(|e| loc.error(Some(f.span()), e, None)))
        .collect::<Result<Vec<_>, _>>()?;
    let skip_when = raw.skip_when.unwrap_or_else(|| {
        if is_vm_collection(&raw.collection) {
            vec!["template".into()]
        } else {
            Vec::new()
        }
    });
    let window = match &raw.updated_within {
        None => None,
        Some(text) => {
            let secs = parse_duration(text.get_ref())
                .map_err(|e| loc.error(Some(text.span()), e, None))?;
            if secs <= 0 {
                return Err(loc.error(
                    Some(text.span()),
                    "`updated_within` must be a duration longer than 0",
                    Some("e.g. `updated_within = \"30d\"`".into()),
                ));
            }
            let field = raw.updated_field.as_deref().unwrap_or("updated_on").trim();
            let path = Path::parse(field).map_err(|e| loc.error(Some(text.span()), e, None))?;
            Some(super::Window {
                field: path,
                secs,
                text: text.get_ref().trim().to_owned(),
            })
        }
    };
    if raw.updated_field.is_some() && window.is_none() {
        return Err(loc.error(
            None,
            "[source] `updated_field` only applies with `updated_within`",
            None,
        ));
    }
    Ok(SourceSpec {
        collection: raw.collection,
        filters,
        extra_attributes: raw.attributes,
        skip_when,
        window,
    })
}

/// `[target]`: the table, the scope the job owns, create-time values, adoption, freeze.
fn compile_target(raw: &RawTarget, loc: &Locator) -> Result<TargetSpec, MappingError> {
    let table = raw.table.get_ref().trim().to_owned();
    if !is_field_name(&table) || table.contains('.') {
        return Err(loc.error(
            Some(raw.table.span()),
            format!("`{table}` is not a table name"),
            Some("e.g. `cmdb_ci_vmware_instance`".into()),
        ));
    }
    let scope = Conditions::parse(raw.scope.get_ref()).map_err(|e| {
        loc.error(
            Some(raw.scope.span()),
            format!("scope: {e}"),
            Some(
                "the scope names the CIs this job owns, e.g. `discovery_source=CloudForms`".into(),
            ),
        )
    })?;
    let freeze = raw
        .freeze
        .as_ref()
        .map(|f| {
            Conditions::parse(f.get_ref())
                .map_err(|e| loc.error(Some(f.span()), format!("freeze: {e}"), None))
        })
        .transpose()?;
    let read = raw
        .read
        .as_ref()
        .map(|r| {
            Conditions::parse(r.get_ref()).map_err(|e| {
                loc.error(
                    Some(r.span()),
                    format!("read: {e}"),
                    Some(
                        "the rows worth reading, e.g. `correlation_idSTARTSWITHcloudforms:`".into(),
                    ),
                )
            })
        })
        .transpose()?;
    let mut on_create = Vec::new();
    for (field, value) in &raw.on_create {
        let text = toml_text(value.get_ref()).ok_or_else(|| {
            loc.error(
                Some(value.span()),
                "an on_create value must be a string, number or boolean",
                None,
            )
        })?;
        on_create.push((field.clone(), text));
    }
    let classes = match &raw.classes {
        Some(classes) if !classes.is_empty() => {
            classes.iter().map(|c| c.trim().to_owned()).collect()
        }
        _ => vec![table.clone()],
    };
    Ok(TargetSpec {
        table,
        scope,
        on_create,
        adopt: raw.adopt,
        freeze,
        freeze_report: raw.freeze_report.unwrap_or(true),
        read,
        classes,
        on_contradiction: raw.on_contradiction.unwrap_or_default(),
        create: raw.create.unwrap_or(true),
    })
}

/// `[fields]`: one rule per CI field; the CI's `name` must be among them.
fn compile_fields(
    raw: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    name_field: &str,
    loc: &Locator,
) -> Result<Vec<FieldRule>, MappingError> {
    let mut fields = Vec::new();
    for (field, spec) in raw {
        fields.push(compile_field(field, spec, loc)?);
    }
    if !fields.iter().any(|f| f.name == name_field) {
        return Err(loc.error(
            None,
            format!("[fields] has no `{name_field}`"),
            Some(if name_field == "name" {
                "map the CI name, e.g. `name = \"name\"`, or name another mapped field in `[report] name`".into()
            } else {
                "`[report] name` must name a mapped field".into()
            }),
        ));
    }
    // Journal fields: the fields whose write carries an entry, by default every field the
    // mapping writes that is not a journal itself.
    let written: Vec<String> = fields
        .iter()
        .filter(|f| !matches!(f.mode, FieldMode::Append | FieldMode::Ignore))
        .map(|f| f.name.clone())
        .collect();
    for (field, spec) in raw {
        let Some(rule) = fields.iter_mut().find(|f| &f.name == field.get_ref()) else {
            continue;
        };
        if rule.mode != FieldMode::Append {
            continue;
        }
        if rule.on_change.is_empty() {
            rule.on_change.clone_from(&written);
        }
        if let Some(bad) = rule.on_change.iter().find(|f| !written.contains(f)) {
            return Err(loc.error(
                Some(spec.span()),
                format!(
                    "field `{}`: `on_change` names `{bad}`, which is not a field the mapping writes",
                    rule.name
                ),
                Some("name mapped fields that are not `append` or `ignore`".into()),
            ));
        }
    }
    Ok(fields)
}

/// `[[identify]]`: the rules in file order; at least one, each naming mapped fields only.
fn compile_identify(
    raw: &[Spanned<RawIdentify>],
    fields: &[FieldRule],
    loc: &Locator,
) -> Result<Vec<IdentityRule>, MappingError> {
    let mut identify = Vec::new();
    for rule in raw {
        let r = rule.get_ref();
        if r.fields.is_empty() {
            return Err(loc.error(
                Some(rule.span()),
                "an [[identify]] rule names no fields",
                None,
            ));
        }
        for field in &r.fields {
            if !fields.iter().any(|f| &f.name == field) {
                return Err(loc.error(
                    Some(rule.span()),
                    format!("identity field `{field}` is not mapped in [fields]"),
                    Some(
                        "identity compares the mapped value with the CI's field of the same name"
                            .into(),
                    ),
                ));
            }
        }
        identify.push(IdentityRule {
            fields: r.fields.clone(),
            weak: r.weak,
        });
    }
    if identify.is_empty() {
        return Err(loc.error(
            None,
            "no [[identify]] rule",
            Some(
                "add at least one, e.g. `[[identify]]` with `fields = [\"correlation_id\"]`".into(),
            ),
        ));
    }
    Ok(identify)
}

/// Identity values are matched without case (UUIDs come in both cases); comparing them the
/// same way keeps a matched CI from being rewritten only to change case.
fn compare_identity_ignoring_case(fields: &mut [FieldRule], identify: &[IdentityRule]) {
    for field in fields {
        if field.compare == Compare::Auto && identify.iter().any(|r| r.fields.contains(&field.name))
        {
            field.compare = Compare::IgnoreCase;
        }
    }
}

/// `[retire]`: what retiring a CI does; without the section CIs are never retired.
fn compile_retire(raw: Option<&RawRetire>, loc: &Locator) -> Result<RetirePolicy, MappingError> {
    let Some(r) = raw else {
        return Ok(RetirePolicy::None);
    };
    match r.action.get_ref().as_str() {
        "set" => {
            if r.set.is_empty() {
                return Err(loc.error(
                    Some(r.action.span()),
                    "retire action `set` needs a `set` table",
                    Some("e.g. `set = { install_status = \"7\" }`".into()),
                ));
            }
            let mut set = Vec::new();
            for (field, value) in &r.set {
                let v = toml_text(value).ok_or_else(|| {
                    loc.error(
                        Some(r.action.span()),
                        format!("retire value of `{field}` must be a string"),
                        None,
                    )
                })?;
                set.push((field.clone(), v));
            }
            Ok(RetirePolicy::Set(set))
        }
        "delete" => Ok(RetirePolicy::Delete),
        "none" => Ok(RetirePolicy::None),
        other => Err(loc.error(
            Some(r.action.span()),
            format!("unknown retire action `{other}`"),
            Some("one of `set`, `delete`, `none`".into()),
        )),
    }
}

/// The condition in ServiceNow's encoded-query form (as `scope`) that a retired CI meets,
/// whoever retired it; `install_status=7` (Retired) when the mapping does not say.
fn compile_retired_when(
    raw: Option<&RawRetire>,
    loc: &Locator,
) -> Result<Option<Conditions>, MappingError> {
    // A mapping that never retires has no notion of retired rows (a ticket table has no
    // `install_status`): nothing counts as retired, and no such field is read.
    let Some(raw) = raw else {
        return Ok(None);
    };
    let Some(text) = raw.retired_when.as_ref() else {
        return Ok(Some(
            Conditions::parse(DEFAULT_RETIRED_WHEN).expect("the default condition parses"),
        ));
    };
    Conditions::parse(text.get_ref()).map(Some).map_err(|e| {
        loc.error(
            Some(text.span()),
            format!("[retire] retired_when: {e}"),
            Some("the condition a retired CI meets, e.g. `install_status=7`".into()),
        )
    })
}

/// A CI is retired when ServiceNow's `install_status` says so (7, Retired).
const DEFAULT_RETIRED_WHEN: &str = "install_status=7";

/// `[lifecycle]`: heartbeat and grace, and the fields written when a VM goes missing or
/// comes back. Every key has a default; an empty field name turns that field off.
fn compile_lifecycle(
    raw: &RawLifecycle,
    collection: &str,
    loc: &Locator,
) -> Result<Lifecycle, MappingError> {
    let duration = |d: &Option<Spanned<String>>, default: i64| match d {
        None => Ok(default),
        Some(s) => parse_duration(s.get_ref()).map_err(|e| loc.error(Some(s.span()), e, None)),
    };
    let opt_field = |f: &Option<String>, default: &str| match f.as_deref() {
        None => Some(default.to_owned()),
        Some("") => None,
        Some(f) => Some(f.to_owned()),
    };
    Ok(Lifecycle {
        last_discovered: opt_field(&raw.last_discovered, "last_discovered"),
        first_discovered: opt_field(&raw.first_discovered, "first_discovered"),
        heartbeat_secs: duration(&raw.heartbeat, 86_400)?,
        retire_after_secs: duration(&raw.retire_after, 7 * 86_400)?,
        absent: match &raw.absent {
            Some(m) => pairs(m, "[lifecycle] absent", loc)?,
            None => vec![("install_status".into(), "100".into())],
        },
        restore: match &raw.restore {
            Some(m) => pairs(m, "[lifecycle] restore", loc)?,
            None => vec![
                ("install_status".into(), "1".into()),
                ("operational_status".into(), "1".into()),
            ],
        },
        // CloudForms flags VMs it no longer manages (archived, orphaned, retired); other
        // collections have no such attributes.
        missing_when: raw.missing_when.clone().unwrap_or_else(|| {
            if is_vm_collection(collection) {
                vec!["archived".into(), "orphaned".into(), "retired".into()]
            } else {
                Vec::new()
            }
        }),
    })
}

/// A table of CI field values: numbers and booleans become text, anything else is an error.
fn pairs(
    map: &BTreeMap<String, toml::Value>,
    what: &str,
    loc: &Locator,
) -> Result<Vec<(String, String)>, MappingError> {
    map.iter()
        .map(|(k, v)| {
            toml_text(v).map(|v| (k.clone(), v)).ok_or_else(|| {
                loc.error(
                    None,
                    format!("{what} value of `{k}` must be a string"),
                    None,
                )
            })
        })
        .collect()
}

/// `[guards]`: the limits checked on the plan before any write, and the source ratio below
/// which retirements are blocked.
fn compile_guards(raw: &RawGuards, loc: &Locator) -> Result<Guards, MappingError> {
    let ratio = raw.min_source_ratio.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&ratio) {
        return Err(loc.error(
            None,
            format!("[guards] min_source_ratio `{ratio}` must be between 0 and 1"),
            None,
        ));
    }
    Ok(Guards {
        max_retire: compile_limit(&raw.max_retire, Limit::Percent(5.0), loc)?,
        max_delete: compile_limit(&raw.max_delete, Limit::Percent(5.0), loc)?,
        max_update: compile_limit(&raw.max_update, Limit::Unlimited, loc)?,
        max_create: compile_limit(&raw.max_create, Limit::Unlimited, loc)?,
        min_source_ratio: ratio,
        percent_floor: raw.percent_floor.unwrap_or(10),
    })
}

/// One limit: a count, a percentage from 0 to 100 (`"5%"`) or `"unlimited"`.
fn compile_limit(
    raw: &Option<Spanned<toml::Value>>,
    default: Limit,
    loc: &Locator,
) -> Result<Limit, MappingError> {
    let Some(value) = raw else { return Ok(default) };
    let bad = || {
        loc.error(
            Some(value.span()),
            "a limit is a count (`50`), a percentage (`\"5%\"`) or `\"unlimited\"`",
            None,
        )
    };
    match value.get_ref() {
        toml::Value::Integer(n) if *n >= 0 => Ok(Limit::Count(*n as usize)),
        toml::Value::String(s) if s == "unlimited" => Ok(Limit::Unlimited),
        toml::Value::String(s) => {
            let p: f64 = s
                .strip_suffix('%')
                .ok_or_else(bad)?
                .trim()
                .parse()
                .map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) {
                return Err(bad());
            }
            Ok(Limit::Percent(p))
        }
        _ => Err(bad()),
    }
}

/// `[report]`: report-only facts taken from each record; by default provider, cluster and
/// owner.
fn compile_report(
    raw: RawReport,
    collection: &str,
    loc: &Locator,
) -> Result<Vec<(String, Path)>, MappingError> {
    // The default facts are a VM's; other collections have none of these attributes, and
    // asking CloudForms for them would be refused.
    let context = raw.context.unwrap_or_else(|| {
        if !is_vm_collection(collection) {
            return Default::default();
        }
        [
            ("provider", "ext_management_system.name"),
            ("cluster", "ems_cluster_name"),
            ("owner", "evm_owner_email"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    });
    let mut out = Vec::new();
    for (key, path) in context {
        let path = Path::parse(&path)
            .map_err(|e| loc.error(None, format!("[report] context `{key}`: {e}"), None))?;
        out.push((key, path));
    }
    Ok(out)
}

/// One `[fields]` entry: a source path string, or a table with exactly one source (`from`,
/// `template`, `const`, `from_tag`) and the steps that shape its value.
fn compile_field(
    field: &Spanned<String>,
    spec: &Spanned<toml::Value>,
    loc: &Locator,
) -> Result<FieldRule, MappingError> {
    let name = field.get_ref().clone();
    if !is_field_name(&name) || name.contains('.') {
        return Err(loc.error(
            Some(field.span()),
            format!("`{name}` is not a CI field name"),
            None,
        ));
    }
    let raw = field_spec(&name, spec, loc)?;
    let err = |message: String, hint: Option<&str>| {
        loc.error(
            Some(spec.span()),
            format!("field `{name}`: {message}"),
            hint.map(String::from),
        )
    };
    let (extract, describe) = compile_extract(&raw, &err)?;
    let map = match &raw.map {
        None => None,
        Some(m) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let v = toml_text(v)
                    .ok_or_else(|| err(format!("map value of `{k}` must be a string"), None))?;
                out.insert(k.clone(), v);
            }
            Some(out)
        }
    };
    let default = match &raw.default {
        None => None,
        Some(v) => Some(
            toml_text(v)
                .ok_or_else(|| err("`default` must be a string, number or boolean".into(), None))?,
        ),
    };
    if raw.decimals.is_some() && raw.convert.is_none() {
        return Err(err("`decimals` only applies with `convert`".into(), None));
    }
    if raw.decimals.is_some_and(|d| d > 6) {
        return Err(err("`decimals` must be 0 to 6".into(), None));
    }
    let max_length = match raw.max_length {
        None => None,
        Some(n) => Some(usize::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| {
            err(
                format!("`max_length` must be a count of characters, 1 or more, not `{n}`"),
                Some("the length of the CMDB column, e.g. `max_length = 255` for `name`"),
            )
        })?),
    };
    let compare = raw.compare.unwrap_or(
        if map.is_some() || raw.lookup.is_some() || raw.case.is_some() {
            Compare::IgnoreCase
        } else {
            Compare::Auto
        },
    );
    let lookup_and = compile_lookup_and(raw.lookup.as_ref(), &err)?;
    let mut map_patterns: Vec<(String, String)> = map
        .iter()
        .flatten()
        .filter(|(k, _)| k.contains('*'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Most literal characters first; the sort is stable, so ties keep key order.
    map_patterns.sort_by_key(|(k, _)| std::cmp::Reverse(k.chars().filter(|c| *c != '*').count()));
    let when = raw
        .when
        .iter()
        .flatten()
        .map(|f| Filter::parse(f).map_err(|e| err(format!("`when`: {e}"), None)))
        .collect::<Result<Vec<_>, _>>()?;
    let mode = raw.mode.unwrap_or_default();
    if raw.on_change.is_some() && mode != FieldMode::Append {
        return Err(err(
            "`on_change` only applies with `mode = \"append\"`".into(),
            None,
        ));
    }
    let choice = raw.choice.unwrap_or_default();
    if choice == ChoiceBy::Label
        && map.is_none()
        && default.is_none()
        && !matches!(extract, Extract::Const(_))
    {
        return Err(err(
            "`choice = \"label\"` needs the labels in `map`, `const` or `default`".into(),
            Some("e.g. `state = { from = \"status\", map = { Ok = \"Closed Complete\" }, choice = \"label\" }`"),
        ));
    }
    let describe = describe_steps(describe, &raw);
    Ok(FieldRule {
        choice,
        name,
        extract,
        pick: raw.pick,
        separator: raw.separator.unwrap_or_else(|| ", ".into()),
        convert: raw.convert,
        decimals: raw.decimals.unwrap_or(0),
        trim: raw.trim.unwrap_or(true),
        case: raw.case,
        map,
        map_patterns,
        when,
        default,
        lookup: raw.lookup,
        mode,
        // Filled in by `compile_fields` once every field is known.
        on_change: raw.on_change.clone().unwrap_or_default(),
        compare,
        on_empty: raw.on_empty.unwrap_or_default(),
        max_length,
        column: None,
        lookup_and,
        describe,
    })
}

/// Reads one field's spec: a string is short for `{ from = "<path>" }`.
fn field_spec(
    name: &str,
    spec: &Spanned<toml::Value>,
    loc: &Locator,
) -> Result<RawFieldSpec, MappingError> {
    match spec.get_ref() {
        toml::Value::String(path) => Ok(RawFieldSpec {
            from: Some(path.clone()),
            ..Default::default()
        }),
        toml::Value::Table(_) => spec.get_ref().clone().try_into::<RawFieldSpec>().map_err(|e| {
            let message = format!("field `{name}`: {}", e.message().trim());
            let hint = hint_for(&message).or_else(|| {
                Some("a field is a source path string or a table with one of `from`, `template`, `const`, `from_tag`".into())
            });
            loc.error(Some(spec.span()), message, hint)
        }),
        _ => Err(loc.error(
            Some(spec.span()),
            format!("field `{name}` must be a source path string or a table"),
            Some("e.g. `cpus = \"cpu_total_cores\"` or `state = { from = \"power_state\", map = { on = \"on\" } }`".into()),
        )),
    }
}

/// The field's one source, and its words for reports.
fn compile_extract(
    raw: &RawFieldSpec,
    err: &impl Fn(String, Option<&str>) -> MappingError,
) -> Result<(Extract, String), MappingError> {
    let sources = [
        raw.from.is_some(),
        raw.template.is_some(),
        raw.constant.is_some(),
        raw.from_tag.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(err(
            "needs exactly one of `from`, `template`, `const`, `from_tag`".into(),
            Some(
                "e.g. `{ from = \"hardware.memory_mb\" }` or `{ template = \"{name}.{domain}\" }`",
            ),
        ));
    }
    if let Some(from) = &raw.from {
        Ok((
            Extract::Path(Path::parse(from).map_err(|e| err(e, None))?),
            from.clone(),
        ))
    } else if let Some(template) = &raw.template {
        Ok((
            Extract::Template(parse_template(template).map_err(|e| err(e, None))?),
            format!("template \"{template}\""),
        ))
    } else if let Some(constant) = &raw.constant {
        let value = toml_text(constant)
            .ok_or_else(|| err("`const` must be a string, number or boolean".into(), None))?;
        Ok((Extract::Const(value.clone()), format!("const \"{value}\"")))
    } else {
        let category = raw.from_tag.clone().unwrap_or_default();
        if category.is_empty() || category.contains('/') {
            return Err(err(
                format!("`{category}` is not a tag category"),
                Some("name the category only: `environment` for /managed/environment/prod"),
            ));
        }
        Ok((Extract::Tag(category.clone()), format!("tag {category}")))
    }
}

/// The rule in words for reports: its source, then each step (`| pick first | bytes_to_gb`).
fn describe_steps(source: String, raw: &RawFieldSpec) -> String {
    let mut describe = source;
    if let Some(pick) = raw.pick {
        describe.push_str(&format!(" | pick {}", snake(&format!("{pick:?}"))));
    }
    if let Some(convert) = raw.convert {
        describe.push_str(&format!(" | {}", snake(&format!("{convert:?}"))));
    }
    if raw.map.is_some() {
        describe.push_str(" | map");
    }
    if let Some(lookup) = &raw.lookup {
        describe.push_str(&format!(" | lookup {}.{}", lookup.table, lookup.by));
        for (field, path) in &lookup.and {
            describe.push_str(&format!(" and {field} = {path}"));
        }
    }
    describe
}

/// `[[relate]]`: each relationship's type, this CI's role and how the other CI is found
/// (a field spec whose lookup gives the other CI's sys_id).
fn compile_relate(raw: &[Spanned<RawRelate>], loc: &Locator) -> Result<Vec<Relate>, MappingError> {
    let mut out: Vec<Relate> = Vec::new();
    for r in raw {
        let span = || Some(r.span());
        let relate = r.get_ref();
        let kind = relate.kind.trim().to_owned();
        if !kind.contains("::") {
            return Err(loc.error(
                span(),
                format!("[[relate]] type `{kind}` is not a relationship type name"),
                Some("a `cmdb_rel_type` name, `<parent descriptor>::<child descriptor>`, e.g. `Registered on::Has registered`".into()),
            ));
        }
        let parent = match relate.role.as_deref().map(str::trim) {
            None | Some("parent") => true,
            Some("child") => false,
            Some(other) => {
                return Err(loc.error(
                    span(),
                    format!("[[relate]] role `{other}`: one of `parent`, `child`"),
                    None,
                ))
            }
        };
        let name = Spanned::new(r.span(), "to".to_owned());
        let mut to = compile_field(&name, &relate.to, loc)?;
        // Named for what it is in reports and issues.
        to.name = format!("relate {kind}");
        if to.lookup.is_none() {
            return Err(loc.error(
                Some(relate.to.span()),
                format!("[[relate]] `{kind}`: `to` needs a `lookup` that finds the other CI"),
                Some("e.g. `to = { from = \"host.ems_ref\", lookup = { table = \"cmdb_ci_esx_server\", by = \"object_id\" } }`".into()),
            ));
        }
        let scope =
            match &relate.scope {
                Some(text) => Some(Conditions::parse(text).map_err(|e| {
                    loc.error(span(), format!("[[relate]] `{kind}` scope: {e}"), None)
                })?),
                None => None,
            };
        let when = relate
            .when
            .iter()
            .map(|f| {
                Filter::parse(f.get_ref()).map_err(|e| {
                    loc.error(
                        Some(f.span()),
                        format!("[[relate]] `{kind}` when: {e}"),
                        None,
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if out.iter().any(|o| o.kind == kind && o.parent == parent) {
            return Err(loc.error(
                span(),
                format!("[[relate]] `{kind}` is declared twice for the same role"),
                None,
            ));
        }
        out.push(Relate {
            kind,
            parent,
            to,
            scope,
            when,
        });
    }
    Ok(out)
}

/// `[classify]`: `from_tag = "*"` or a list of categories; the rows' `tag` column.
fn compile_classify(
    raw: Option<&Spanned<RawClassify>>,
    loc: &Locator,
) -> Result<Option<Classify>, MappingError> {
    let Some(raw) = raw else { return Ok(None) };
    let span = Some(raw.span());
    let c = raw.get_ref();
    let hint = || {
        Some(
            "`from_tag = \"*\"` (every category) or `from_tag = [\"environment\", \"department\"]`"
                .to_owned(),
        )
    };
    let categories = match &c.from_tag {
        toml::Value::String(s) if s.trim() == "*" => None,
        toml::Value::Array(items) => {
            let mut set = BTreeSet::new();
            for item in items {
                match item.as_str().map(str::trim) {
                    Some(cat) if !cat.is_empty() && !cat.contains('/') && cat != "*" => {
                        set.insert(cat.to_owned());
                    }
                    _ => {
                        return Err(loc.error(
                            span,
                            format!("[classify] from_tag: `{item}` is not a tag category"),
                            hint(),
                        ))
                    }
                }
            }
            if set.is_empty() {
                return Err(loc.error(span, "[classify] from_tag names no category", hint()));
            }
            Some(set)
        }
        other => {
            return Err(loc.error(
                span,
                format!("[classify] from_tag: `{other}` is neither \"*\" nor a list of categories"),
                hint(),
            ))
        }
    };
    let tag = c.tag.as_deref().map_or("CloudForms", str::trim).to_owned();
    if tag.is_empty() {
        return Err(loc.error(
            span,
            "[classify] tag is empty: the rows the job keeps must be told from others'",
            None,
        ));
    }
    Ok(Some(Classify { categories, tag }))
}

/// A lookup's `and` conditions: each a row field and the source path it must equal.
fn compile_lookup_and(
    lookup: Option<&super::Lookup>,
    err: &impl Fn(String, Option<&str>) -> MappingError,
) -> Result<Vec<(String, Path)>, MappingError> {
    let Some(lookup) = lookup else {
        return Ok(Vec::new());
    };
    lookup
        .and
        .iter()
        .map(|(field, path)| {
            if !is_field_name(field) {
                return Err(err(
                    format!("lookup `and`: `{field}` is not a field name"),
                    None,
                ));
            }
            Path::parse(path)
                .map(|p| (field.clone(), p))
                .map_err(|e| err(format!("lookup `and` `{field}`: {e}"), None))
        })
        .collect()
}

/// `FirstIpv4` -> `first_ipv4`: a step named in reports as the file spells it.
fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Turns byte offsets into positioned errors.
struct Locator<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Locator<'_> {
    fn error(
        &self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> MappingError {
        let (line, column) = line_column(self.text, span.map_or(0, |s| s.start));
        MappingError {
            origin: self.origin.to_owned(),
            line,
            column,
            message: message.into(),
            hint,
        }
    }
}

/// A TOML scalar as the text a CI field holds; `None` for arrays, tables and dates.
fn toml_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(format_number(*f)),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A hint for serde's messages about the file's shape, which say what but not where to look.
fn hint_for(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("see README.md, \"Mapping reference\", for the keys each section takes".into())
    } else if message.contains("unknown variant") {
        Some("the value must be one of those listed".into())
    } else if message.contains("missing field") {
        Some("every mapping needs [source], [target] with `table` and `scope`, and [fields]".into())
    } else {
        None
    }
}

/// 64-bit FNV-1a, hex: a stable fingerprint of the mapping text (not a security hash).
fn fnv1a(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}
