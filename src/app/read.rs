//! What a sync's plan is computed from, read side by side: the from-side records, the
//! to-side rows, the table's schema (refusing a mapping that names fields the table lacks),
//! the referenced rows lookups need, and the relationship rows of `[[relate]]` mappings.
//! Live from the APIs, or from snapshot and export files.

use crate::cloudforms::CloudForms;
use crate::config::{Config, Location, SyncConfig};
use crate::reconcile::classify::KvInput;
use crate::reconcile::mapping::Mapping;
use crate::reconcile::record::SourceRead;
use crate::reconcile::record::{Ci, References};
use crate::reconcile::relations::RelInput;
use crate::reconcile::schema::TableSchema;
use crate::servicenow::ServiceNow;
use crate::{cloudforms, servicenow};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

/// The relationship rows a mapping with `[[relate]]` is planned against: the types by name
/// (a type the instance lacks is an error before anything is planned), the `cmdb_rel_ci`
/// rows of those types, and the CIs at their other ends as each relationship's table holds
/// them. Offline, from exports; `None` when the mapping keeps no relationships or an
/// offline sync has no exports of them (then none are planned, and a warning says so).
pub(super) async fn read_relations(
    sync: &SyncConfig,
    mapping: &Mapping,
    sn: Option<&ServiceNow>,
) -> Result<Option<RelInput>> {
    if mapping.relate.is_empty() {
        return Ok(None);
    }
    let kinds: Vec<String> = mapping.relate.iter().map(|r| r.kind.clone()).collect();
    let (type_rows, rows) = match (&sync.target, sn, &sync.relationships, &sync.rel_types) {
        (Location::Live, Some(sn), _, _) => {
            let types = sn
                .read_where_in("cmdb_rel_type", "name", &kinds, &["name".to_owned()])
                .await
                .context("reading the relationship types (cmdb_rel_type)")?;
            let ids: Vec<&str> = types.iter().map(|t| t.sys_id.as_str()).collect();
            let rows = if ids.is_empty() {
                Vec::new()
            } else {
                let fields = ["parent", "child", "type", "sys_mod_count", "sys_updated_on"]
                    .map(String::from);
                sn.read_table(
                    "cmdb_rel_ci",
                    &fields,
                    Some(&format!("typeIN{}", ids.join(","))),
                )
                .await
                .context("reading the relationships (cmdb_rel_ci)")?
            };
            (types, rows)
        }
        (_, _, Some(rels), Some(types)) => (
            servicenow::snapshot::read(types)?,
            servicenow::snapshot::read(rels)?,
        ),
        _ => {
            tracing::warn!(mapping = %mapping.name, "the mapping keeps relationships but the sync has no cmdb_rel_ci / cmdb_rel_type exports: none are planned");
            return Ok(None);
        }
    };
    let mut input = RelInput::default();
    for t in &type_rows {
        input
            .types
            .insert(t.get("name").trim().to_owned(), t.sys_id.clone());
    }
    if let Some(missing) = kinds.iter().find(|k| !input.types.contains_key(*k)) {
        bail!(
            "relationship type `{missing}` (mapping `{}`) does not exist in cmdb_rel_type on the instance; nothing was planned",
            sync.mapping.display()
        );
    }
    input.rows = rows;
    input.rows.shrink_to_fit();
    read_other_ends(sync, mapping, sn, &mut input).await?;
    Ok(Some(input))
}

/// The classification rows a mapping with `[classify]` is planned against: the
/// `cmdb_key_value` rows whose `tag` is the mapping's (live), or an export of them (offline);
/// `None` when the mapping keeps none or an offline sync has no export (a warning says so).
pub(super) async fn read_classifications(
    sync: &SyncConfig,
    mapping: &Mapping,
    sn: Option<&ServiceNow>,
) -> Result<Option<KvInput>> {
    let Some(classify) = &mapping.classify else {
        return Ok(None);
    };
    let rows = match (&sync.target, sn, &sync.key_values) {
        (_, _, Some(path)) => servicenow::snapshot::read(path)?,
        (Location::Live, Some(sn), None) => {
            let fields = [
                "configuration_item",
                "key",
                "value",
                "tag",
                "sys_mod_count",
                "sys_updated_on",
            ]
            .map(String::from);
            let mut query = format!("tag={}", classify.tag);
            if let Some(categories) = &classify.categories {
                let keys: Vec<&str> = categories.iter().map(String::as_str).collect();
                query.push_str(&format!("^keyIN{}", keys.join(",")));
            }
            sn.read_table("cmdb_key_value", &fields, Some(&query))
                .await
                .context("reading the classifications (cmdb_key_value)")?
        }
        _ => {
            tracing::warn!(mapping = %mapping.name, "the mapping keeps classifications but the sync has no cmdb_key_value export: none are planned");
            return Ok(None);
        }
    };
    Ok(Some(KvInput { rows }))
}

/// The CIs at the other end of the relationship rows, from each relationship's table (live,
/// by sys_id) or its reference export (offline), with the fields its scope reads.
pub(super) async fn read_other_ends(
    sync: &SyncConfig,
    mapping: &Mapping,
    sn: Option<&ServiceNow>,
    input: &mut RelInput,
) -> Result<()> {
    for relate in &mapping.relate {
        let table = relate.other_table();
        let Some(type_id) = input.types.get(&relate.kind) else {
            continue;
        };
        let others: Vec<String> = input
            .rows
            .iter()
            .filter(|r| r.get("type") == type_id)
            .map(|r| {
                r.get(if relate.parent { "child" } else { "parent" })
                    .to_owned()
            })
            .collect();
        let rows = match (sn, sync.references.iter().find(|(t, _)| t == table)) {
            (_, Some((_, path))) => servicenow::snapshot::read(path)?,
            (Some(sn), None) if sync.target == Location::Live => {
                let mut fields = vec!["name".to_owned(), "sys_class_name".to_owned()];
                if let Some(scope) = &relate.scope {
                    fields.extend(scope.fields().map(str::to_owned));
                }
                sn.read_where_in(table, "sys_id", &others, &fields)
                    .await
                    .with_context(|| format!("reading the related CIs in `{table}`"))?
            }
            _ => Vec::new(),
        };
        input
            .others
            .extend(rows.into_iter().map(|ci| (ci.sys_id.clone(), ci)));
    }
    Ok(())
}

pub(super) async fn read_source(
    config: &Config,
    sync: &SyncConfig,
    mapping: &Mapping,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<SourceRead> {
    match &sync.source {
        Location::File(path) => Ok(cloudforms::snapshot::read(path)?),
        Location::Live => {
            let cfg = config
                .cloudforms
                .clone()
                .ok_or_else(|| anyhow!("no [cloudforms] connection configured"))?;
            let client = CloudForms::new(cfg)?;
            // `updated_within`: the window counts back from the run's one clock reading,
            // the same `now` the core cuts snapshots with.
            let window_field = mapping.source.window.as_ref().map(|w| w.field.to_string());
            let updated_after = mapping
                .source
                .window
                .as_ref()
                .zip(window_field.as_deref())
                .map(|(w, field)| (field, w.since(now)));
            // Each record is kept only as far as the plan reads it, page by page.
            let read = client
                .read_kept(
                    &mapping.source.collection,
                    &mapping.source_attributes(),
                    &mapping.source.filters,
                    updated_after,
                    Some(std::sync::Arc::new(mapping.source_keep())),
                )
                .await
                .with_context(|| format!("reading CloudForms for mapping `{}`", mapping.name))?;
            tracing::info!(
                records = read.records.len(),
                requests = client.requests_sent(),
                "read {}",
                read.origin
            );
            Ok(read)
        }
    }
}

pub(super) async fn read_target(
    sync: &SyncConfig,
    mapping: &Mapping,
    sn: Option<&ServiceNow>,
) -> Result<(Vec<Ci>, String)> {
    match (&sync.target, sn) {
        (Location::File(path), _) => Ok((
            servicenow::snapshot::read(path)?,
            path.display().to_string(),
        )),
        (Location::Live, Some(sn)) => {
            let table = &mapping.target.table;
            // Only the sync's classes: a parent table lists its subclasses' rows too.
            let classes = mapping.target.class_condition();
            let mut cis = sn
                .read_table(table, &mapping.target_fields(), Some(&classes))
                .await
                .with_context(|| {
                    format!(
                        "reading ServiceNow table `{table}` for mapping `{}`",
                        mapping.name
                    )
                })?;
            tracing::info!(
                cis = cis.len(),
                requests = sn.requests_sent(),
                "read table {table}"
            );
            // Held until the plan is made: no room beyond the rows (the read grew the list
            // by doubling).
            cis.shrink_to_fit();
            Ok((cis, format!("ServiceNow table {table}")))
        }
        (Location::Live, None) => bail!("no [servicenow] connection configured"),
    }
}

/// The target table's schema: from the instance for a live target, from dictionary exports
/// for a snapshot that comes with them, `None` otherwise. An instance that does not let the
/// integration user read the dictionary is a warning, not a failure: the mapping then goes
/// unchecked, as before.
pub(super) async fn read_schema(
    sync: &SyncConfig,
    mapping: &Mapping,
    sn: Option<&ServiceNow>,
) -> Result<Option<TableSchema>> {
    let table = &mapping.target.table;
    if let Some(path) = &sync.dictionary {
        let dictionary = servicenow::snapshot::read(path)?;
        let choices = match &sync.choices {
            Some(p) => servicenow::snapshot::read(p)?,
            None => Vec::new(),
        };
        // An export has no lineage: the table first, then the other tables it holds.
        let mut lineage = vec![table.clone()];
        for row in &dictionary {
            let name = row.get("name").trim();
            if !name.is_empty() && !lineage.iter().any(|l| l == name) {
                lineage.push(name.to_owned());
            }
        }
        return Ok(Some(TableSchema::from_dictionary(
            table,
            &lineage,
            &dictionary,
            &choices,
        )));
    }
    let (Location::Live, Some(sn)) = (&sync.target, sn) else {
        return Ok(None);
    };
    match servicenow::dictionary::read_schema(sn, table).await {
        Ok(schema) if schema.columns.is_empty() => {
            tracing::warn!(table = %table, "the dictionary of the table is empty (no read access to sys_dictionary?): the mapping's fields are not checked against it");
            Ok(None)
        }
        Ok(schema) => Ok(Some(schema)),
        Err(e) if matches!(e.status, Some(401 | 403)) => {
            tracing::warn!(table = %table, "cannot read the table's dictionary ({e}): the mapping's fields are not checked against it; grant read on sys_db_object, sys_dictionary and sys_choice");
            Ok(None)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "reading the dictionary of ServiceNow table `{table}`"
        ))),
    }
}

/// Refuses a mapping that names fields the table does not have: on an instance a write to
/// an unknown column is silently dropped, so the same update would be planned forever.
pub(super) fn check_fields(mapping: &Mapping, schema: &TableSchema, path: &Path) -> Result<()> {
    let unknown = schema.unknown_fields(mapping);
    if unknown.is_empty() {
        return check_labels(mapping, schema, path);
    }
    #[allow(
        clippy::disallowed_methods,
        reason = "the shell re-reads the mapping to point at the line"
    )]
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = unknown
        .iter()
        .map(|u| {
            let (line, column) = crate::text::key_position(&text, &u.field).unwrap_or((1, 1));
            let hint = u
                .closest
                .as_ref()
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            format!(
                "{}:{line}:{column}: field `{}` is not a column of `{}` (nor of {}){hint}",
                path.display(),
                u.field,
                schema.table,
                if schema.lineage.len() > 1 {
                    schema.lineage[1..].join(", ")
                } else {
                    "its parents".into()
                }
            )
        })
        .collect();
    bail!(
        "the mapping names {} of the table's columns that do not exist; nothing was planned:\n{}",
        unknown.len(),
        lines.join("\n")
    )
}

/// `choice = "label"` fields: every label must be one of the column's choices on the
/// instance (`sys_choice`), or nothing is planned.
fn check_labels(mapping: &Mapping, schema: &TableSchema, path: &Path) -> Result<()> {
    let unknown = mapping.unknown_labels(schema);
    if unknown.is_empty() {
        return Ok(());
    }
    #[allow(
        clippy::disallowed_methods,
        reason = "the shell re-reads the mapping to point at the line"
    )]
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = unknown
        .iter()
        .map(|(field, label, labels)| {
            let (line, column) = crate::text::key_position(&text, field).unwrap_or((1, 1));
            format!(
                "{}:{line}:{column}: field `{field}`: `{label}` is not a label of `{}.{field}`'s choices on the instance ({})",
                path.display(),
                schema.table,
                if labels.is_empty() {
                    "it has none".to_owned()
                } else {
                    labels.join(", ")
                }
            )
        })
        .collect();
    bail!(
        "the mapping writes {} choice labels the table does not have; nothing was planned:\n{}",
        unknown.len(),
        lines.join("\n")
    )
}

pub(super) async fn read_references(
    sync: &SyncConfig,
    mapping: &Mapping,
    source: &SourceRead,
    sn: Option<&ServiceNow>,
) -> Result<References> {
    let mut references = References::default();
    for (table, path) in &sync.references {
        references.add_table(table, servicenow::snapshot::read(path)?);
    }
    let Some(sn) = sn else { return Ok(references) };
    // The lookups are independent: read side by side (the client's pacing holds for all),
    // added in the mapping's order.
    let mut reads = tokio::task::JoinSet::new();
    for (index, (lookup, values)) in mapping.lookup_keys(&source.records).into_iter().enumerate() {
        if references.has_table(&lookup.table) {
            continue; // an export file was given for it
        }
        // The `and` fields are matched in the core: read them with the rows.
        let fields: Vec<String> = std::iter::once(lookup.by.clone())
            .chain(lookup.and.keys().cloned())
            .collect();
        let sn = sn.clone();
        reads.spawn(async move {
            let rows = sn
                .read_where_in(&lookup.table, &lookup.by, &values, &fields)
                .await
                .with_context(|| {
                    format!(
                        "resolving `{}` by `{}` in ServiceNow",
                        lookup.table, lookup.by
                    )
                });
            (index, lookup.table, rows)
        });
    }
    let mut read = Vec::with_capacity(reads.len());
    while let Some(done) = reads.join_next().await {
        read.push(done.context("a lookup's read stopped")?);
    }
    read.sort_by_key(|(index, _, _)| *index);
    for (_, table, rows) in read {
        references.add_table(&table, rows?);
    }
    Ok(references)
}
