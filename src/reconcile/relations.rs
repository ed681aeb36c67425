//! Relationships (`[[relate]]`): the `cmdb_rel_ci` rows each record's CI should have, against
//! the rows the CMDB holds, reconciled like fields. A missing row is created (for a CI this
//! plan creates, against the create, whose sys_id `apply` learns first); a row of a managed
//! type between a CI the job matched and a CI of the relationship's table that no longer
//! holds (a vMotion to another host, a storage migration) is deleted. Left alone: rows of
//! CIs no record was matched to (gone, quarantined), rows of a type whose other CI could not
//! be found this run, and rows whose other CI is outside the relationship's table or scope.
//! Deletes are withheld with the retirements when the source read cannot be trusted.
//!
//! Pure: the rows come from the adapters.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::desired::{Desired, Related};
use super::identity::Identification;
use super::mapping::Mapping;
use super::plan::{Create, RelAction, RelChange, RelEnd};
use super::record::Ci;

/// What the CMDB holds about relationships, as the adapters read it.
#[derive(Debug, Clone, Default)]
pub struct RelInput {
    /// `cmdb_rel_type` name -> sys_id, for the mapping's types.
    pub types: BTreeMap<String, String>,
    /// `cmdb_rel_ci` rows (`parent`, `child`, `type`) of those types.
    pub rows: Vec<Ci>,
    /// The CIs at the other end of those rows, by sys_id, as their relationship's table
    /// holds them (with the fields of its `scope`). A row whose other CI is missing here is
    /// not the job's to judge.
    pub others: HashMap<String, Ci>,
}

/// One end of a desired row, as a comparable key: an existing CI or a planned create.
/// Borrowed from the plan's inputs: a VM estate wants a few rows per VM, and owned keys
/// made the relationship plan one of the largest things a run holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum End<'a> {
    Ci(&'a str),
    New(&'a str),
}

/// A relationship row as a comparable key: (parent, child, type).
type RowKey<'a> = (End<'a>, End<'a>, &'a str);

/// The relationship changes of a plan: creates first, then deletes.
pub(super) struct RelPlan {
    pub changes: Vec<RelChange>,
}

/// What the records say: the rows wanted, the (CI, type) pairs not to judge this run, and
/// the CIs whose rows are judged at all (those matched to a record).
struct Wanted<'a> {
    /// (parent, child, type) and the name of the record that wants it, by key, each key
    /// once (the last record's name, as a map would keep it): a sorted list rather than a
    /// map, which took three times the room for the 70,000 rows of 100,000 VMs.
    rows: Vec<(RowKey<'a>, &'a str)>,
    unknown: BTreeSet<(&'a str, &'a str)>,
    judged: BTreeSet<&'a str>,
}

/// Plans the relationship rows: creates for rows the records have and the CMDB lacks, then
/// deletes for rows of managed types the records no longer have. `owned` says, by CI, which
/// matched CIs are the job's to write (in scope or adopted, not frozen).
pub(super) fn plan(
    mapping: &Mapping,
    desired: &[Desired],
    ident: &Identification,
    cis: &[Ci],
    owned: &[bool],
    creates: &[Create],
    input: &RelInput,
) -> RelPlan {
    let names: HashMap<&str, &str> = cis.iter().map(|c| (c.sys_id.as_str(), c.name())).collect();
    let wanted = wanted(mapping, desired, ident, cis, owned, creates);
    let (present, deletes) = stale_rows(mapping, &wanted, input, &names);
    // Sized at once: grown by doubling, the list would hold room for up to twice its rows.
    let mut changes =
        Vec::with_capacity(wanted.rows.len().saturating_sub(present.len()) + deletes.len());
    missing_rows(&wanted, &present, input, &names, &mut changes);
    changes.extend(deletes);
    RelPlan { changes }
}

/// The rows each record's CI should have (its CI: the matched one, or the create).
fn wanted<'a>(
    mapping: &'a Mapping,
    desired: &'a [Desired],
    ident: &Identification,
    cis: &'a [Ci],
    owned: &[bool],
    creates: &[Create],
) -> Wanted<'a> {
    let created: BTreeSet<&str> = creates.iter().map(|c| c.source_id.as_str()).collect();
    let mut out = Wanted {
        rows: Vec::new(),
        unknown: BTreeSet::new(),
        judged: BTreeSet::new(),
    };
    for (vm, d) in desired.iter().enumerate() {
        let this = match (ident.quarantined[vm], ident.matched[vm]) {
            (true, _) => continue,
            // Matched, but not the job's to write (foreign, frozen): its rows are left alone.
            (false, Some((ci, _))) if !owned[ci] => continue,
            (false, Some((ci, _))) => {
                out.judged.insert(cis[ci].sys_id.as_str());
                End::Ci(&cis[ci].sys_id)
            }
            (false, None) if created.contains(d.id.as_ref()) => End::New(&d.id),
            (false, None) => continue,
        };
        for (relate, related) in mapping.relate.iter().zip(&d.related) {
            match related {
                Related::Nothing => {}
                Related::Unknown => {
                    if let End::Ci(id) = this {
                        out.unknown.insert((id, &relate.kind));
                    }
                }
                Related::To(other) => {
                    let other = End::Ci(other);
                    let (parent, child) = if relate.parent {
                        (this, other)
                    } else {
                        (other, this)
                    };
                    out.rows.push(((parent, child, &relate.kind), &d.name));
                }
            }
        }
    }
    // Stable: of rows wanted twice, the later record's name is the one kept.
    out.rows.sort_by(|a, b| a.0.cmp(&b.0));
    out.rows.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 = later.1;
        }
        same
    });
    out.rows.shrink_to_fit();
    out
}

impl<'a> Wanted<'a> {
    fn wants(&self, key: &RowKey) -> bool {
        self.rows.binary_search_by(|(k, _)| k.cmp(key)).is_ok()
    }
}

/// The CMDB's rows of managed types: those still wanted (present), and those to delete.
fn stale_rows<'a>(
    mapping: &Mapping,
    wanted: &Wanted<'a>,
    input: &'a RelInput,
    names: &HashMap<&str, &str>,
) -> (BTreeSet<(End<'a>, End<'a>, &'a str)>, Vec<RelChange>) {
    let kind_of: HashMap<&str, &str> = input
        .types
        .iter()
        .map(|(name, id)| (id.as_str(), name.as_str()))
        .collect();
    let mut present = BTreeSet::new();
    let mut deletes = Vec::new();
    for row in &input.rows {
        let Some(&kind) = kind_of.get(row.get("type")) else {
            continue;
        };
        let (parent, child) = (row.get("parent"), row.get("child"));
        let key = (End::Ci(parent), End::Ci(child), kind);
        if wanted.wants(&key) {
            present.insert(key);
            continue;
        }
        for relate in mapping.relate.iter().filter(|r| r.kind == kind) {
            let (this, other) = if relate.parent {
                (parent, child)
            } else {
                (child, parent)
            };
            if !wanted.judged.contains(this) || wanted.unknown.contains(&(this, kind)) {
                continue;
            }
            // Only a CI of the relationship's table, in its scope, is the job's to unlink.
            let Some(other_ci) = input.others.get(other) else {
                continue;
            };
            if relate.scope.as_ref().is_some_and(|s| !s.matches(other_ci)) {
                continue;
            }
            deletes.push(RelChange {
                action: RelAction::Delete,
                kind: kind.to_owned(),
                type_sys_id: row.get("type").to_owned(),
                parent: known_end(parent, names, &input.others),
                child: known_end(child, names, &input.others),
                sys_id: Some(row.sys_id.clone()),
                sys_mod_count: row.get("sys_mod_count").to_owned(),
                sys_updated_on: row.get("sys_updated_on").to_owned(),
                reason: format!(
                    "the record no longer has this `{kind}` relationship (e.g. it moved)"
                ),
            });
            break;
        }
    }
    (present, deletes)
}

/// Creates for the wanted rows the CMDB lacks.
fn missing_rows(
    wanted: &Wanted,
    present: &BTreeSet<(End, End, &str)>,
    input: &RelInput,
    names: &HashMap<&str, &str>,
    creates: &mut Vec<RelChange>,
) {
    for ((parent, child, kind), name) in &wanted.rows {
        if present.contains(&(*parent, *child, *kind)) {
            continue;
        }
        let Some(type_sys_id) = input.types.get(*kind) else {
            continue; // the shell refuses a type the instance lacks before planning
        };
        let end = |e: &End| match e {
            End::Ci(id) => known_end(id, names, &input.others),
            End::New(source_id) => RelEnd {
                sys_id: String::new(),
                source_id: Some((*source_id).to_owned()),
                name: (*name).to_owned(),
            },
        };
        creates.push(RelChange {
            action: RelAction::Create,
            kind: (*kind).to_owned(),
            type_sys_id: type_sys_id.clone(),
            parent: end(parent),
            child: end(child),
            sys_id: None,
            sys_mod_count: String::new(),
            sys_updated_on: String::new(),
            reason: format!("the record has this `{kind}` relationship and the CMDB does not"),
        });
    }
}

/// An existing CI as a relationship end, named when the job knows it.
fn known_end(sys_id: &str, names: &HashMap<&str, &str>, others: &HashMap<String, Ci>) -> RelEnd {
    let name = others
        .get(sys_id)
        .map(|c| c.name().to_owned())
        .or_else(|| names.get(sys_id).map(|n| (*n).to_owned()))
        .unwrap_or_default();
    RelEnd {
        sys_id: sys_id.to_owned(),
        source_id: None,
        name,
    }
}
