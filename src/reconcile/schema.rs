//! A target table's schema as the instance's dictionary describes it (`sys_dictionary` rows
//! of the table and its parents, `sys_choice` rows), and the checks a mapping and its values
//! must pass before anything is written: every field the mapping names is a column, values
//! fit their columns (length, reference, choice).
//!
//! Pure: the rows come from the adapters (a live read or an export file).

use std::collections::{BTreeMap, BTreeSet};

use super::mapping::Mapping;
use super::record::Ci;

/// One column of the table (or of a parent it inherits from).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Column {
    /// `internal_type` (`string`, `reference`, `integer`, `glide_date_time`, ...).
    pub kind: String,
    /// `max_length` for text columns (`None` when the dictionary gives none).
    pub max_length: Option<usize>,
    /// The referenced table, for reference columns.
    pub reference: Option<String>,
    /// The active choices, when the column has any (`sys_choice`).
    pub choices: BTreeSet<String>,
    /// The choices' labels: the label lower-cased -> (the label, its value), for fields
    /// written by label (`choice = "label"`).
    pub labels: BTreeMap<String, (String, String)>,
}

/// The columns of a table and its parents, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSchema {
    pub table: String,
    /// The table and its ancestors, the table first (`cmdb_ci_vmware_instance`,
    /// `cmdb_ci_vm_instance`, `cmdb_ci`, ...).
    pub lineage: Vec<String>,
    pub columns: BTreeMap<String, Column>,
}

/// A field the mapping names that the table does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    pub field: String,
    /// The closest existing column name, when one is close.
    pub closest: Option<String>,
}

impl TableSchema {
    /// Builds the schema from `sys_dictionary` rows (`name`, `element`, `internal_type`,
    /// `max_length`, `reference`) and `sys_choice` rows (`name`, `element`, `value`,
    /// `inactive`). Rows of tables outside `lineage` are ignored; a column defined on the
    /// table itself wins over its parent's definition (dictionary overrides).
    pub fn from_dictionary(
        table: &str,
        lineage: &[String],
        dictionary: &[Ci],
        choices: &[Ci],
    ) -> Self {
        let depth = |t: &str| {
            lineage
                .iter()
                .position(|l| l.eq_ignore_ascii_case(t.trim()))
        };
        let mut columns: BTreeMap<String, (usize, Column)> = BTreeMap::new();
        for row in dictionary {
            let element = row.get("element").trim();
            let Some(level) = depth(row.get("name")) else {
                continue;
            };
            if element.is_empty() {
                continue; // the row describing the table itself
            }
            let column = Column {
                kind: row.get("internal_type").trim().to_owned(),
                max_length: row.get("max_length").trim().parse().ok().filter(|n| *n > 0),
                reference: Some(row.get("reference").trim())
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned),
                choices: BTreeSet::new(),
                labels: BTreeMap::new(),
            };
            match columns.get(element) {
                Some((existing, _)) if *existing <= level => {}
                _ => {
                    columns.insert(element.to_owned(), (level, column));
                }
            }
        }
        // A label's value from the table nearest the table itself (a subclass's own choice
        // list overrides its parent's).
        let mut label_depth: BTreeMap<(String, String), usize> = BTreeMap::new();
        for row in choices {
            let inactive = row.get("inactive").trim().eq_ignore_ascii_case("true");
            let Some(level) = depth(row.get("name")).filter(|_| !inactive) else {
                continue;
            };
            let element = row.get("element").trim();
            if let Some((_, column)) = columns.get_mut(element) {
                let value = row.get("value").trim();
                column.choices.insert(value.to_owned());
                let label = row.get("label").trim();
                if label.is_empty() {
                    continue;
                }
                let key = (element.to_owned(), label.to_lowercase());
                if label_depth.get(&key).is_some_and(|d| *d <= level) {
                    continue;
                }
                label_depth.insert(key, level);
                column
                    .labels
                    .insert(label.to_lowercase(), (label.to_owned(), value.to_owned()));
            }
        }
        Self {
            table: table.to_owned(),
            lineage: lineage.to_vec(),
            columns: columns.into_iter().map(|(k, (_, c))| (k, c)).collect(),
        }
    }

    /// The column named `field`, if the table (or a parent) has it. System fields
    /// (`sys_...`) are on every table.
    pub fn column(&self, field: &str) -> Option<&Column> {
        self.columns.get(field)
    }

    fn has(&self, field: &str) -> bool {
        field.starts_with("sys_") || self.columns.contains_key(field)
    }

    /// The fields the mapping reads or writes that the table does not have, each with the
    /// closest existing name. A misspelt field writes nothing on a real instance (unknown
    /// columns are ignored), so the same update would be planned on every run forever.
    pub fn unknown_fields(&self, mapping: &Mapping) -> Vec<UnknownField> {
        mapping
            .target_fields()
            .into_iter()
            .filter(|f| !self.has(f))
            .map(|field| UnknownField {
                closest: self.closest(&field),
                field,
            })
            .collect()
    }

    fn closest(&self, field: &str) -> Option<String> {
        self.columns
            .keys()
            .map(|c| (strsim::jaro_winkler(field, c), c))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| c.clone())
    }
}

impl Column {
    /// The value of the choice labelled `label` (case aside), if the column has one.
    pub fn value_of_label(&self, label: &str) -> Option<&str> {
        self.labels
            .get(&label.trim().to_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// Why `value` does not fit this column, if it does not: a reference that is not a
    /// sys_id, or a value outside the column's choices. (Length is not checked here: a value
    /// that is too long is cut, not refused; see `max_length`.)
    pub fn misfit(&self, value: &str) -> Option<String> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        if self.kind == "reference" && !is_sys_id(value) {
            return Some(format!(
                "`{value}` is not a sys_id, and the column references `{}`",
                self.reference.as_deref().unwrap_or("another table")
            ));
        }
        if !self.choices.is_empty() && !self.choices.contains(value) {
            let shown: Vec<&str> = self.choices.iter().map(String::as_str).take(12).collect();
            return Some(format!(
                "`{value}` is not one of the column's choices ({})",
                shown.join(", ")
            ));
        }
        None
    }
}

/// 32 hexadecimal digits: the shape of every sys_id.
pub fn is_sys_id(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::record::Ci;

    fn row(pairs: &[(&str, &str)]) -> Ci {
        Ci::new(
            "",
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    fn schema() -> TableSchema {
        let lineage =
            ["cmdb_ci_vmware_instance", "cmdb_ci_vm_instance", "cmdb_ci"].map(String::from);
        let dictionary = vec![
            row(&[
                ("name", "cmdb_ci"),
                ("element", "name"),
                ("internal_type", "string"),
                ("max_length", "255"),
            ]),
            row(&[
                ("name", "cmdb_ci"),
                ("element", "owned_by"),
                ("internal_type", "reference"),
                ("reference", "sys_user"),
            ]),
            row(&[
                ("name", "cmdb_ci"),
                ("element", "install_status"),
                ("internal_type", "integer"),
            ]),
            row(&[
                ("name", "cmdb_ci_vm_instance"),
                ("element", "state"),
                ("internal_type", "string"),
                ("max_length", "40"),
            ]),
            row(&[("name", "cmdb_ci_vmware_instance"), ("element", "")]),
            // Another table's column is not ours.
            row(&[
                ("name", "cmdb_ci_esx_server"),
                ("element", "cpu_speed"),
                ("internal_type", "integer"),
            ]),
            // The table's own definition wins over its parent's.
            row(&[
                ("name", "cmdb_ci_vmware_instance"),
                ("element", "name"),
                ("internal_type", "string"),
                ("max_length", "100"),
            ]),
        ];
        let choices = vec![
            row(&[
                ("name", "cmdb_ci_vm_instance"),
                ("element", "state"),
                ("value", "on"),
            ]),
            row(&[
                ("name", "cmdb_ci_vm_instance"),
                ("element", "state"),
                ("value", "off"),
            ]),
            row(&[
                ("name", "cmdb_ci_vm_instance"),
                ("element", "state"),
                ("value", "gone"),
                ("inactive", "true"),
            ]),
        ];
        TableSchema::from_dictionary("cmdb_ci_vmware_instance", &lineage, &dictionary, &choices)
    }

    #[test]
    fn columns_come_from_the_table_and_its_parents() {
        let s = schema();
        assert_eq!(
            s.columns.keys().collect::<Vec<_>>(),
            ["install_status", "name", "owned_by", "state"]
        );
        assert_eq!(s.column("name").unwrap().max_length, Some(100));
        assert_eq!(
            s.column("owned_by").unwrap().reference.as_deref(),
            Some("sys_user")
        );
        assert_eq!(
            s.column("state")
                .unwrap()
                .choices
                .iter()
                .collect::<Vec<_>>(),
            ["off", "on"]
        );
    }

    #[test]
    fn values_that_do_not_fit() {
        let s = schema();
        let owner = s.column("owned_by").unwrap();
        assert_eq!(owner.misfit("6816f79cc0a8016401c5a33be04be441"), None);
        assert!(owner
            .misfit("ann@example.com")
            .unwrap()
            .contains("not a sys_id"));
        let state = s.column("state").unwrap();
        assert_eq!(state.misfit("on"), None);
        assert_eq!(state.misfit(""), None);
        assert!(state
            .misfit("gone")
            .unwrap()
            .contains("not one of the column's choices (off, on)"));
    }

    #[test]
    fn unknown_fields_are_named_with_the_closest_column() {
        let mapping = Mapping::parse(
            "[source]\ncollection = \"vms\"\n[target]\ntable = \"cmdb_ci_vmware_instance\"\nscope = \"install_status!=7\"\n\
             [[identify]]\nfields = [\"name\"]\n[fields]\nname = \"name\"\nstate = \"power_state\"\nowend_by = \"owner\"\n\
             [lifecycle]\nlast_discovered = \"\"\nabsent = {}\nrestore = {}\n[retire]\naction = \"none\"\n",
            "m.toml",
        )
        .unwrap();
        let unknown = schema().unknown_fields(&mapping);
        assert_eq!(
            unknown,
            [UnknownField {
                field: "owend_by".into(),
                closest: Some("owned_by".into())
            }]
        );
    }

    #[test]
    fn fields_written_by_choice_label_take_the_instances_values() {
        let lineage = ["sc_req_item", "task"].map(String::from);
        let dictionary = vec![
            row(&[
                ("name", "task"),
                ("element", "state"),
                ("internal_type", "integer"),
            ]),
            row(&[
                ("name", "task"),
                ("element", "priority"),
                ("internal_type", "integer"),
            ]),
        ];
        let choice = |table: &str, value: &str, label: &str| {
            row(&[
                ("name", table),
                ("element", "state"),
                ("value", value),
                ("label", label),
            ])
        };
        // The table's own list overrides its parent's, whatever order the rows come in.
        let choices = vec![
            choice("task", "5", "Closed Skipped"),
            choice("sc_req_item", "7", "Closed Skipped"),
            choice("task", "3", "Closed Complete"),
            choice("sc_req_item", "2", "Work in Progress"),
        ];
        let schema = TableSchema::from_dictionary("sc_req_item", &lineage, &dictionary, &choices);
        let state = schema.column("state").unwrap();
        assert_eq!(state.value_of_label("closed skipped"), Some("7"));
        assert_eq!(state.value_of_label(" Closed Complete "), Some("3"));
        assert_eq!(state.value_of_label("Closed"), None);

        let text = r#"
[source]
collection = "service_requests"
[target]
table = "sc_req_item"
scope = "correlation_display=CloudForms"
[[identify]]
fields = ["name"]
[fields]
name = "id"
state = { from = "status", map = { Ok = "Closed Complete", Error = "Closed Skipped", "*" = "Work in Progress" }, choice = "label" }
priority = { const = "Urgent", choice = "label" }
"#;
        let mut mapping = Mapping::parse(text, "m.toml").unwrap();
        assert_eq!(mapping.label_fields(), ["priority", "state"]);
        let unknown = mapping.unknown_labels(&schema);
        assert_eq!(
            unknown,
            [(
                "priority".to_owned(),
                "Urgent".to_owned(),
                Vec::<String>::new()
            )]
        );
        mapping.apply_schema(&schema);
        let rule = mapping.fields.iter().find(|f| f.name == "state").unwrap();
        let values: Vec<(&str, &str)> = rule
            .map
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(values, [("*", "2"), ("Error", "7"), ("Ok", "3")]);
        assert_eq!(rule.map_patterns, [("*".to_owned(), "2".to_owned())]);

        // Labels need somewhere to be: a bare path gives the source's own values.
        let bare = text.replace(
            r#"priority = { const = "Urgent", choice = "label" }"#,
            r#"priority = { from = "priority", choice = "label" }"#,
        );
        let e = Mapping::parse(&bare, "m.toml").unwrap_err().to_string();
        assert!(
            e.contains("needs the labels in `map`, `const` or `default`"),
            "{e}"
        );
    }
}
