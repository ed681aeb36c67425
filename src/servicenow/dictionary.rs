//! Reads a table's schema from the instance: its lineage through `sys_db_object`
//! (`super_class` references the parent's row), the `sys_dictionary` rows of the table and
//! every ancestor (a subclass inherits its parents' columns), and the active `sys_choice`
//! rows of those tables. Four to six round trips per table, once per run.
//!
//! Source: ServiceNow's "Data dictionary tables" documentation (sys_db_object holds a record
//! per table, sys_dictionary a row per column or table, columns inherited from the parent).

use super::ServiceNow;
use crate::net::HttpError;
use crate::reconcile::schema::TableSchema;

/// How deep a class hierarchy goes before we stop following `super_class` (the CMDB's is
/// about six levels; a loop in bad data must not spin forever).
const MAX_DEPTH: usize = 16;

/// The schema of `table` (its columns and its parents'); see the module docs.
pub async fn read_schema(sn: &ServiceNow, table: &str) -> Result<TableSchema, HttpError> {
    let lineage = lineage(sn, table).await?;
    let dictionary_fields = strings(&[
        "name",
        "element",
        "internal_type",
        "max_length",
        "reference",
    ]);
    let choice_fields = strings(&["name", "element", "value", "label", "inactive"]);
    let (dictionary, choices) = tokio::join!(
        sn.read_where_in("sys_dictionary", "name", &lineage, &dictionary_fields),
        sn.read_where_in("sys_choice", "name", &lineage, &choice_fields),
    );
    Ok(TableSchema::from_dictionary(
        table,
        &lineage,
        &dictionary?,
        &choices?,
    ))
}

/// The table and its ancestors, the table first.
async fn lineage(sn: &ServiceNow, table: &str) -> Result<Vec<String>, HttpError> {
    let fields = strings(&["name", "super_class"]);
    let mut lineage = vec![table.to_owned()];
    let rows = sn
        .find(
            "sys_db_object",
            &[("name".to_owned(), table.to_owned())],
            &fields,
        )
        .await?;
    let mut parent = rows
        .first()
        .map(|r| r.get("super_class").to_owned())
        .unwrap_or_default();
    while !parent.trim().is_empty() && lineage.len() < MAX_DEPTH {
        let Some(row) = sn.get("sys_db_object", &parent, &fields).await? else {
            break;
        };
        let name = row.get("name").trim().to_owned();
        if name.is_empty() || lineage.contains(&name) {
            break;
        }
        lineage.push(name);
        parent = row.get("super_class").to_owned();
    }
    Ok(lineage)
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}
