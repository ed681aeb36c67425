//! The simulated instance's data dictionary, read from `schema.toml` (data, with the sources
//! of its values): tables with their parents, columns (type, max length, reference target,
//! default), per-table choice lists and defaults, the incident priority lookup, and the
//! records every instance is installed with.
//!
//! A table's column list is its parent's list followed by its own columns, so a column's index
//! in a parent table is also its index in every descendant's rows: a read through `cmdb_ci`
//! reads `cmdb_ci_vmware_instance` rows with `cmdb_ci`'s indexes.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

/// Index of a table in its [`Schema`].
pub(crate) type TableId = usize;

/// The columns every root table has; the instance maintains them.
const SYSTEM_COLUMNS: [(&str, &str, &str, usize); 6] = [
    ("sys_id", "Sys ID", "GUID", 32),
    ("sys_created_on", "Created", "glide_date_time", 40),
    ("sys_created_by", "Created by", "string", 40),
    ("sys_updated_on", "Updated", "glide_date_time", 40),
    ("sys_updated_by", "Updated by", "string", 40),
    ("sys_mod_count", "Updates", "integer", 40),
];

/// How a column's values are handled beyond being strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Cut at `max_length` on write.
    Text,
    /// UTC in the store; the user's time zone in display values.
    DateTime,
    Reference,
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub label: String,
    /// `sys_dictionary.internal_type`.
    pub internal_type: String,
    pub kind: Kind,
    pub max_length: usize,
    /// The target table of a reference.
    pub reference: Option<String>,
    /// `sys_dictionary.default_value` on the defining table.
    pub default: Option<String>,
}

/// A choice list: `(value, label)` in sequence order.
pub(crate) type Choices = Arc<Vec<(String, String)>>;

#[derive(Debug, Clone)]
pub(crate) struct TableDef {
    pub name: String,
    pub label: String,
    pub parent: Option<TableId>,
    /// Inherited columns first, then this table's own (from `own_start`).
    pub columns: Vec<Column>,
    index: HashMap<String, usize>,
    pub own_start: usize,
    /// This table and every table extending it, this one first.
    pub descendants: Vec<TableId>,
    /// The column naming a record (reference display values).
    pub display: Option<usize>,
    pub extendable: bool,
    pub number_prefix: Option<String>,
    /// States that make a task inactive (nearest definition up the hierarchy).
    pub close_states: Vec<String>,
    /// Defaults by column name, overrides of this table or its ancestors applied.
    defaults: HashMap<String, String>,
    /// Choice lists by column name, inherited unless redefined.
    choices: HashMap<String, Choices>,
    /// The choice lists this table itself defines (they become its `sys_choice` rows).
    pub own_choices: Vec<(String, Choices)>,
    /// Made at run time from seeded rows rather than read from `schema.toml`.
    pub custom: bool,
}

impl TableDef {
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    #[cfg(test)]
    pub(crate) fn col(&self, name: &str) -> Option<&Column> {
        self.column(name).map(|i| &self.columns[i])
    }

    /// The default a new record of this table gets for `column`, if any.
    pub(crate) fn default_for(&self, column: &str) -> Option<&str> {
        self.defaults.get(column).map(String::as_str)
    }

    pub(crate) fn choices(&self, column: &str) -> Option<&Choices> {
        self.choices.get(column)
    }

    /// The label of `value` in `column`'s choice list.
    pub(crate) fn choice_label(&self, column: &str, value: &str) -> Option<&str> {
        self.choices(column)?
            .iter()
            .find(|(v, _)| v == value)
            .map(|(_, l)| l.as_str())
    }

    fn push_column(&mut self, column: Column) {
        self.index.insert(column.name.clone(), self.columns.len());
        self.columns.push(column);
    }
}

/// One record of `[[record]]`.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub table: String,
    pub sys_id: Option<String>,
    pub fields: Vec<(String, String)>,
}

/// Every table, plus what the business rules of the simulated instance need.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    tables: Vec<TableDef>,
    by_name: HashMap<String, TableId>,
    /// Incident priority by `(impact, urgency)`, and the table it applies to (with descendants).
    priority: HashMap<(String, String), String>,
    pub priority_table: Option<TableId>,
    pub records: Vec<Record>,
}

// ---- the TOML as written

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    table: Vec<TableFile>,
    priority_lookup: PriorityFile,
    record: Vec<RecordFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    name: String,
    label: String,
    super_class: Option<String>,
    #[serde(default)]
    extendable: bool,
    display: Option<String>,
    number_prefix: Option<String>,
    close_states: Option<Vec<String>>,
    #[serde(default)]
    priority_lookup: bool,
    columns: Vec<ColumnFile>,
    #[serde(default)]
    defaults: HashMap<String, String>,
    #[serde(default)]
    choices: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: String,
    #[serde(rename = "type")]
    internal_type: String,
    max_length: Option<usize>,
    reference: Option<String>,
    default: Option<String>,
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorityFile {
    table: String,
    matrix: Vec<[String; 3]>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordFile {
    table: String,
    sys_id: Option<String>,
    fields: toml::Table,
}

/// `install_status` -> `Install status`.
fn label_of(name: &str) -> String {
    let text = name.strip_prefix("u_").unwrap_or(name).replace('_', " ");
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn kind_of(internal_type: &str) -> Kind {
    match internal_type {
        "string" => Kind::Text,
        "glide_date_time" => Kind::DateTime,
        "reference" => Kind::Reference,
        _ => Kind::Other,
    }
}

/// ServiceNow's default max length when a dictionary entry names none.
fn default_max_length(internal_type: &str) -> usize {
    match internal_type {
        "reference" | "GUID" => 32,
        "sys_class_name" => 80,
        _ => 40,
    }
}

fn parse_choices(list: &[String]) -> Choices {
    Arc::new(
        list.iter()
            .map(|item| match item.split_once('=') {
                Some((v, l)) => (v.to_owned(), l.to_owned()),
                None => (item.clone(), item.clone()),
            })
            .collect(),
    )
}

impl Schema {
    /// The schema of `schema.toml`, parsed once per process.
    pub(crate) fn builtin() -> Self {
        static BUILTIN: OnceLock<Schema> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                // The file is part of the build and tested: a parse error is a bug here.
                Self::parse(include_str!("schema.toml"))
                    .unwrap_or_else(|e| panic!("sim/src/servicenow/schema.toml: {e}"))
            })
            .clone()
    }

    fn parse(text: &str) -> Result<Self, String> {
        let file: SchemaFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut schema = Schema {
            tables: Vec::new(),
            by_name: HashMap::new(),
            priority: HashMap::new(),
            priority_table: None,
            records: Vec::new(),
        };
        for t in &file.table {
            let parent = match &t.super_class {
                None => None,
                Some(p) => Some(schema.id(p).ok_or_else(|| {
                    format!(
                        "table `{}` extends `{p}`, defined later or not at all",
                        t.name
                    )
                })?),
            };
            let id = schema.add_table(&t.name, &t.label, parent, t.extendable && parent.is_none());
            let def = &mut schema.tables[id];
            for c in &t.columns {
                if def.column(&c.name).is_some() {
                    return Err(format!("column `{}.{}` is defined twice", t.name, c.name));
                }
                def.push_column(Column {
                    label: c.label.clone().unwrap_or_else(|| label_of(&c.name)),
                    kind: kind_of(&c.internal_type),
                    max_length: c
                        .max_length
                        .unwrap_or_else(|| default_max_length(&c.internal_type)),
                    reference: c.reference.clone(),
                    default: c.default.clone(),
                    name: c.name.clone(),
                    internal_type: c.internal_type.clone(),
                });
                if let Some(d) = &c.default {
                    def.defaults.insert(c.name.clone(), d.clone());
                }
            }
            if let Some(display) = &t.display {
                def.display =
                    Some(def.column(display).ok_or_else(|| {
                        format!("display column `{}.{display}` is unknown", t.name)
                    })?);
            }
            for (column, value) in &t.defaults {
                if def.column(column).is_none() {
                    return Err(format!("default for unknown column `{}.{column}`", t.name));
                }
                def.defaults.insert(column.clone(), value.clone());
            }
            let mut own: Vec<(String, Choices)> = t
                .choices
                .iter()
                .map(|(column, list)| (column.clone(), parse_choices(list)))
                .collect();
            own.sort_by(|a, b| a.0.cmp(&b.0));
            for (column, list) in &own {
                if def.column(column).is_none() {
                    return Err(format!("choices for unknown column `{}.{column}`", t.name));
                }
                def.choices.insert(column.clone(), list.clone());
            }
            def.own_choices = own;
            def.number_prefix.clone_from(&t.number_prefix);
            if let Some(states) = &t.close_states {
                def.close_states.clone_from(states);
            }
            if t.priority_lookup && file.priority_lookup.table != t.name {
                return Err(format!(
                    "`{}` asks for the priority lookup of another table",
                    t.name
                ));
            }
        }
        for reference in schema
            .tables
            .iter()
            .flat_map(|t| t.columns.iter())
            .filter_map(|c| c.reference.as_deref())
        {
            if schema.id(reference).is_none() {
                return Err(format!("a reference names the unknown table `{reference}`"));
            }
        }
        schema.priority_table = Some(
            schema
                .id(&file.priority_lookup.table)
                .ok_or("the priority lookup names an unknown table")?,
        );
        schema.priority = file
            .priority_lookup
            .matrix
            .into_iter()
            .map(|[impact, urgency, priority]| ((impact, urgency), priority))
            .collect();
        for r in file.record {
            let table = schema
                .id(&r.table)
                .ok_or_else(|| format!("a record of the unknown table `{}`", r.table))?;
            let mut fields = Vec::new();
            for (k, v) in r.fields {
                if schema.tables[table].column(&k).is_none() {
                    return Err(format!(
                        "a record sets the unknown column `{}.{k}`",
                        r.table
                    ));
                }
                fields.push((k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)));
            }
            schema.records.push(Record {
                table: r.table,
                sys_id: r.sys_id,
                fields,
            });
        }
        Ok(schema)
    }

    /// Adds a table extending `parent` (or a root with the system columns).
    fn add_table(
        &mut self,
        name: &str,
        label: &str,
        parent: Option<TableId>,
        extendable: bool,
    ) -> TableId {
        let id = self.tables.len();
        let mut def = match parent {
            Some(p) => {
                let parent_def = &self.tables[p];
                TableDef {
                    name: name.to_owned(),
                    label: label.to_owned(),
                    parent: Some(p),
                    columns: parent_def.columns.clone(),
                    index: parent_def.index.clone(),
                    own_start: parent_def.columns.len(),
                    descendants: Vec::new(),
                    display: parent_def.display,
                    extendable: parent_def.extendable,
                    number_prefix: None,
                    close_states: parent_def.close_states.clone(),
                    defaults: parent_def.defaults.clone(),
                    choices: parent_def.choices.clone(),
                    own_choices: Vec::new(),
                    custom: false,
                }
            }
            None => TableDef {
                name: name.to_owned(),
                label: label.to_owned(),
                parent: None,
                columns: Vec::new(),
                index: HashMap::new(),
                own_start: 0,
                descendants: Vec::new(),
                display: None,
                extendable,
                number_prefix: None,
                close_states: Vec::new(),
                defaults: HashMap::new(),
                choices: HashMap::new(),
                own_choices: Vec::new(),
                custom: false,
            },
        };
        if parent.is_none() {
            for (name, label, internal_type, max_length) in SYSTEM_COLUMNS {
                def.push_column(Column {
                    name: name.to_owned(),
                    label: label.to_owned(),
                    internal_type: internal_type.to_owned(),
                    kind: kind_of(internal_type),
                    max_length,
                    reference: None,
                    default: None,
                });
            }
            if extendable {
                def.push_column(Column {
                    name: "sys_class_name".to_owned(),
                    label: "Class".to_owned(),
                    internal_type: "sys_class_name".to_owned(),
                    kind: Kind::Other,
                    max_length: 80,
                    reference: None,
                    default: None,
                });
            }
        }
        self.tables.push(def);
        self.by_name.insert(name.to_owned(), id);
        let mut at = Some(id);
        while let Some(t) = at {
            self.tables[t].descendants.push(id);
            at = self.tables[t].parent;
        }
        id
    }

    /// A table an administrator created by hand: a root table of string columns. Seeding rows
    /// into a table the schema does not know makes one (see [`super::ServiceNow::seed`]).
    pub(crate) fn add_custom_table(&mut self, name: &str) -> TableId {
        let id = self.add_table(name, &label_of(name), None, false);
        self.tables[id].custom = true;
        id
    }

    /// Adds a string column to a custom table; `None` for a table from `schema.toml`.
    pub(crate) fn add_custom_column(&mut self, table: TableId, name: &str) -> Option<usize> {
        let def = &mut self.tables[table];
        if !def.custom {
            return None;
        }
        if let Some(col) = def.column(name) {
            return Some(col);
        }
        def.push_column(Column {
            name: name.to_owned(),
            label: label_of(name),
            internal_type: "string".to_owned(),
            kind: Kind::Text,
            max_length: 4000,
            reference: None,
            default: None,
        });
        Some(def.columns.len() - 1)
    }

    pub(crate) fn id(&self, name: &str) -> Option<TableId> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn def(&self, id: TableId) -> &TableDef {
        &self.tables[id]
    }

    pub(crate) fn tables(&self) -> &[TableDef] {
        &self.tables
    }

    /// Whether `table` is `ancestor` or extends it.
    pub(crate) fn extends(&self, table: TableId, ancestor: TableId) -> bool {
        self.tables[ancestor].descendants.contains(&table)
    }

    /// The priority the lookup gives `impact` x `urgency`, for rows of `table`.
    pub(crate) fn priority(&self, table: TableId, impact: &str, urgency: &str) -> Option<&str> {
        let applies = self.priority_table.is_some_and(|p| self.extends(table, p));
        if !applies {
            return None;
        }
        self.priority
            .get(&(impact.to_owned(), urgency.to_owned()))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_schema_parses_and_children_extend_their_parents() {
        let s = Schema::builtin();
        let ci = s.id("cmdb_ci").expect("cmdb_ci");
        let vm = s.id("cmdb_ci_vm_instance").expect("vm");
        let vmware = s.id("cmdb_ci_vmware_instance").expect("vmware");
        assert!(s.extends(vmware, ci) && s.extends(vmware, vm) && !s.extends(vm, vmware));
        // Every column of a parent sits at the same index in the child.
        for (i, c) in s.def(ci).columns.iter().enumerate() {
            assert_eq!(s.def(vmware).columns[i].name, c.name);
        }
        let vmware_def = s.def(vmware);
        for column in [
            "sys_id",
            "sys_class_name",
            "name",
            "object_id",
            "cpus",
            "vcenter_uuid",
        ] {
            assert!(vmware_def.column(column).is_some(), "{column}");
        }
        assert_eq!(
            vmware_def
                .col("owned_by")
                .and_then(|c| c.reference.as_deref()),
            Some("sys_user")
        );
        assert_eq!(s.def(ci).descendants[0], ci);
        assert!(s.def(ci).descendants.contains(&vmware));
        assert!(s
            .def(s.id("sys_user").expect("sys_user"))
            .column("sys_class_name")
            .is_none());
    }

    #[test]
    fn overrides_apply_to_the_table_and_its_children_only() {
        let s = Schema::builtin();
        let task = s.def(s.id("task").expect("task"));
        let incident = s.def(s.id("incident").expect("incident"));
        let change = s.def(s.id("change_request").expect("change"));
        assert_eq!(task.default_for("state"), Some("1"));
        assert_eq!(incident.default_for("state"), Some("1"));
        assert_eq!(change.default_for("state"), Some("-5"));
        assert_eq!(incident.choice_label("state", "6"), Some("Resolved"));
        assert_eq!(task.choice_label("state", "6"), None);
        assert_eq!(
            change.choice_label("impact", "1"),
            Some("1 - High"),
            "inherited"
        );
        assert_eq!(incident.number_prefix.as_deref(), Some("INC"));
        assert_eq!(incident.close_states, ["7", "8"]);
        let ritm = s.def(s.id("sc_req_item").expect("ritm"));
        assert_eq!(ritm.close_states, ["3", "4", "7"], "inherited from task");
        let inc = s.id("incident").expect("incident");
        assert_eq!(s.priority(inc, "3", "3"), Some("5"));
        assert_eq!(s.priority(inc, "1", "2"), Some("2"));
        assert_eq!(s.priority(s.id("task").expect("task"), "1", "1"), None);
    }

    #[test]
    fn custom_tables_grow_string_columns() {
        let mut s = Schema::builtin();
        let t = s.add_custom_table("u_thing");
        assert!(s.def(t).column("sys_id").is_some());
        let col = s.add_custom_column(t, "u_x").expect("custom");
        assert_eq!(s.def(t).column("u_x"), Some(col));
        assert_eq!(s.add_custom_column(t, "u_x"), Some(col));
        assert_eq!(
            s.add_custom_column(s.id("incident").expect("incident"), "u_x"),
            None
        );
        assert_eq!(label_of("u_cmdb_thing"), "Cmdb thing");
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let bad = "[[table]]\nname = \"a\"\nlabel = \"A\"\nsuper_class = \"b\"\ncolumns = []\n\
                   [priority_lookup]\ntable = \"a\"\nmatrix = []\n[[record]]\ntable = \"a\"\nfields = {}\n";
        assert!(Schema::parse(bad)
            .expect_err("refused")
            .contains("extends `b`"));
    }
}
