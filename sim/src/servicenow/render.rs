//! Rows as the Table API renders them: which fields (`sysparm_fields`, dot-walks such as
//! `owned_by.email` returned under that flat key) and how (`sysparm_display_value`,
//! `sysparm_exclude_reference_link`): choice labels, reference display values and links.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::schema;
use super::store::{Row, Store, Table};

/// `sysparm_display_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DisplayMode {
    /// `false` (the default): stored values.
    Value,
    /// `true`: labels and display values.
    Display,
    /// `all`: `{"display_value", "value"}` for every field.
    All,
}

impl DisplayMode {
    /// Case-insensitive, since pysnow sends Python's `False`; anything else means `false`.
    pub(crate) fn parse(param: Option<&str>) -> Self {
        match param {
            Some(p) if p.eq_ignore_ascii_case("true") => Self::Display,
            Some(p) if p.eq_ignore_ascii_case("all") => Self::All,
            _ => Self::Value,
        }
    }
}

/// How a response renders its rows.
pub(crate) struct RenderOptions<'a> {
    pub display: DisplayMode,
    pub exclude_links: bool,
    /// `scheme://host[:port]`, for reference links.
    pub base_url: &'a str,
}

/// A field a request names, bound to a table: a column, or a dot-walk starting at a
/// reference column.
#[derive(Debug)]
pub(crate) struct FieldSpec {
    /// The name as requested, which is also the key it is returned under.
    pub key: String,
    col: usize,
    /// For `a.b.c`: the table `a` points to and `["b", "c"]`.
    walk: Option<(&'static str, Vec<String>)>,
}

/// One value to render, with the table and field it belongs to (after any dot-walk), which
/// decide whether it is a reference or a choice.
pub(crate) struct Cell<'a> {
    pub table: &'a str,
    pub field: &'a str,
    pub value: &'a str,
}

impl FieldSpec {
    /// Binds `name` to `table`; `None` for a field the table does not have, or a dot-walk that
    /// does not follow references to an existing field.
    pub(crate) fn resolve(
        store: &Store,
        table_name: &str,
        table: &Table,
        name: &str,
    ) -> Option<Self> {
        let mut segments = name.split('.');
        let first = segments.next()?;
        let col = table.column(first)?;
        let rest: Vec<String> = segments.map(str::to_owned).collect();
        if rest.is_empty() {
            return Some(Self {
                key: name.to_owned(),
                col,
                walk: None,
            });
        }
        let start = schema::reference_target(table_name, first)?;
        let mut target = start;
        for (i, segment) in rest.iter().enumerate() {
            if !store.target_has_column(target, segment) {
                return None;
            }
            if i + 1 < rest.len() {
                target = schema::reference_target(target, segment)?;
            }
        }
        Some(Self {
            key: name.to_owned(),
            col,
            walk: Some((start, rest)),
        })
    }

    /// The fields a response carries: those of `sysparm_fields` that exist (in the order
    /// asked, each once), or every column when it is absent or empty.
    pub(crate) fn list(
        store: &Store,
        table_name: &str,
        table: &Table,
        sysparm_fields: Option<&str>,
    ) -> Vec<Self> {
        let requested: Vec<&str> = sysparm_fields
            .into_iter()
            .flat_map(|f| f.split(','))
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        if requested.is_empty() {
            return (0..table.columns().len())
                .map(|col| Self {
                    key: table.columns()[col].clone(),
                    col,
                    walk: None,
                })
                .collect();
        }
        let mut specs: Vec<Self> = Vec::with_capacity(requested.len());
        for name in requested {
            if specs.iter().all(|s| s.key != name) {
                specs.extend(Self::resolve(store, table_name, table, name));
            }
        }
        specs
    }

    /// This field of `row` (of `table_name`) with what it belongs to, following references
    /// for a dot-walk; an empty cell of no table when the walk breaks off.
    pub(crate) fn cell<'a>(
        &'a self,
        store: &'a Store,
        table_name: &'a str,
        row: &'a Row,
    ) -> Cell<'a> {
        let value = Table::cell(row, self.col);
        let Some((target, rest)) = &self.walk else {
            return Cell {
                table: table_name,
                field: &self.key,
                value,
            };
        };
        let (table, field, value) = walk(store, target, value, rest).unwrap_or(("", "", ""));
        Cell {
            table,
            field,
            value,
        }
    }

    /// Just the value of [`FieldSpec::cell`], for matching and ordering.
    pub(crate) fn value<'s>(&self, store: &'s Store, row: &'s Row) -> &'s str {
        let value = Table::cell(row, self.col);
        match &self.walk {
            None => value,
            Some((target, rest)) => walk(store, target, value, rest).map_or("", |(_, _, v)| v),
        }
    }
}

/// Follows `rest` from a reference to `target` holding `sys_id`: the table, field and value
/// reached, or `None` where a reference is empty or dangling.
fn walk<'s, 'f>(
    store: &'s Store,
    target: &'static str,
    sys_id: &'s str,
    rest: &'f [String],
) -> Option<(&'s str, &'f str, &'s str)> {
    let (mut target, mut value) = (target, sys_id);
    for (i, segment) in rest.iter().enumerate() {
        let (table_name, table, row) = store.find_ref(target, value)?;
        value = table.value(row, segment);
        if i + 1 == rest.len() {
            return Some((table_name, segment, value));
        }
        target = schema::reference_target(table_name, segment)?;
    }
    None
}

/// A row as the JSON object of the requested fields, serialized straight from the store: a
/// page of 1000 rows builds no intermediate JSON values.
pub(crate) struct RowJson<'a> {
    pub store: &'a Store,
    pub table_name: &'a str,
    pub row: &'a Row,
    pub fields: &'a [FieldSpec],
    pub opts: &'a RenderOptions<'a>,
}

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for spec in self.fields {
            let cell = CellJson {
                store: self.store,
                cell: spec.cell(self.store, self.table_name, self.row),
                opts: self.opts,
            };
            map.serialize_entry(&spec.key, &cell)?;
        }
        map.end()
    }
}

/// One field's JSON, per the display options.
struct CellJson<'a> {
    store: &'a Store,
    cell: Cell<'a>,
    opts: &'a RenderOptions<'a>,
}

impl Serialize for CellJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Cell {
            table,
            field,
            value,
        } = self.cell;
        if let Some(target) = schema::reference_target(table, field) {
            return serialize_reference(s, self.store, target, value, self.opts);
        }
        let label = || schema::choice_label(table, field, value).unwrap_or(value);
        match self.opts.display {
            DisplayMode::Value => s.serialize_str(value),
            DisplayMode::Display => s.serialize_str(label()),
            DisplayMode::All => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("display_value", label())?;
                map.serialize_entry("value", value)?;
                map.end()
            }
        }
    }
}

/// A reference: the bare sys_id or display value, or an object with `display_value`,
/// `value` and `link` as the options ask; an empty reference is `""`.
fn serialize_reference<S: Serializer>(
    s: S,
    store: &Store,
    target: &str,
    sys_id: &str,
    opts: &RenderOptions<'_>,
) -> Result<S::Ok, S::Error> {
    if sys_id.is_empty() {
        return match opts.display {
            DisplayMode::All => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("display_value", "")?;
                map.serialize_entry("value", "")?;
                map.end()
            }
            _ => s.serialize_str(""),
        };
    }
    let found = store.find_ref(target, sys_id);
    let display = found.map_or("", |(name, table, row)| {
        Store::display_value(name, table, row)
    });
    // The link names the table the row is in, so that following it finds the row in a store
    // without table inheritance.
    let link = (!opts.exclude_links).then(|| {
        let table = found.map_or(target, |(name, _, _)| name);
        format!("{}/api/now/table/{table}/{sys_id}", opts.base_url)
    });
    let entries: [(&str, Option<&str>); 3] = match (opts.display, link.as_deref()) {
        (DisplayMode::Value, None) => return s.serialize_str(sys_id),
        (DisplayMode::Display, None) => return s.serialize_str(display),
        (DisplayMode::Value, link) => [("link", link), ("value", Some(sys_id)), ("", None)],
        (DisplayMode::Display, link) => {
            [("display_value", Some(display)), ("link", link), ("", None)]
        }
        (DisplayMode::All, link) => [
            ("display_value", Some(display)),
            ("value", Some(sys_id)),
            ("link", link),
        ],
    };
    let present = || entries.iter().filter_map(|(k, v)| Some((*k, (*v)?)));
    let mut map = s.serialize_map(Some(present().count()))?;
    for (key, value) in present() {
        map.serialize_entry(key, value)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servicenow::store::{string_fields, Stamp};
    use serde_json::{json, Value};

    fn row(
        store: &Store,
        table_name: &str,
        row: &Row,
        fields: &[FieldSpec],
        opts: &RenderOptions<'_>,
    ) -> Value {
        serde_json::to_value(RowJson {
            store,
            table_name,
            row,
            fields,
            opts,
        })
        .expect("serializable")
    }

    const BASE: &str = "https://127.0.0.1:8443";

    fn opts(display: DisplayMode, exclude_links: bool) -> RenderOptions<'static> {
        RenderOptions {
            display,
            exclude_links,
            base_url: BASE,
        }
    }

    /// A user, a group and a VM owned by the user; returns (store, user id, vm id).
    fn fixture() -> (Store, String, String) {
        let mut store = Store::default();
        let st = Stamp {
            user: "admin".into(),
            now: "2024-01-01 00:00:00".into(),
        };
        let insert = |store: &mut Store, table: &str, v: Value| {
            store
                .insert(table, string_fields(v.as_object().expect("object")), &st)
                .expect("inserted")
        };
        let user = insert(
            &mut store,
            "sys_user",
            json!({"user_name": "ann", "name": "Ann Lee", "email": "ann@example.com"}),
        );
        let vm = insert(
            &mut store,
            "cmdb_ci_vmware_instance",
            json!({"name": "vm1", "owned_by": user, "support_group": "", "install_status": "7"}),
        );
        (store, user, vm)
    }

    fn render(store: &Store, vm: &str, fields: Option<&str>, o: &RenderOptions<'_>) -> Value {
        let table = store.table("cmdb_ci_vmware_instance").expect("table");
        let specs = FieldSpec::list(store, "cmdb_ci_vmware_instance", table, fields);
        row(
            store,
            "cmdb_ci_vmware_instance",
            table.get(vm).expect("row"),
            &specs,
            o,
        )
    }

    #[test]
    fn display_mode_parses_case_insensitively() {
        assert_eq!(DisplayMode::parse(Some("False")), DisplayMode::Value);
        assert_eq!(DisplayMode::parse(Some("TRUE")), DisplayMode::Display);
        assert_eq!(DisplayMode::parse(Some("All")), DisplayMode::All);
        assert_eq!(DisplayMode::parse(None), DisplayMode::Value);
    }

    #[test]
    fn references_render_per_display_and_link_options() {
        let (store, user, vm) = fixture();
        let link = format!("{BASE}/api/now/table/sys_user/{user}");
        let f = Some("owned_by,support_group");
        assert_eq!(
            render(&store, &vm, f, &opts(DisplayMode::Value, false)),
            json!({"owned_by": {"link": link, "value": user}, "support_group": ""})
        );
        assert_eq!(
            render(&store, &vm, f, &opts(DisplayMode::Value, true)),
            json!({"owned_by": user, "support_group": ""})
        );
        assert_eq!(
            render(&store, &vm, f, &opts(DisplayMode::Display, false)),
            json!({"owned_by": {"display_value": "Ann Lee", "link": link}, "support_group": ""})
        );
        assert_eq!(
            render(&store, &vm, f, &opts(DisplayMode::Display, true)),
            json!({"owned_by": "Ann Lee", "support_group": ""})
        );
        assert_eq!(
            render(&store, &vm, f, &opts(DisplayMode::All, true)),
            json!({
                "owned_by": {"display_value": "Ann Lee", "value": user},
                "support_group": {"display_value": "", "value": ""},
            })
        );
        assert_eq!(
            render(&store, &vm, f, &opts(DisplayMode::All, false))["owned_by"],
            json!({"display_value": "Ann Lee", "value": user, "link": link})
        );
    }

    #[test]
    fn choices_show_labels_only_when_asked() {
        let (store, _, vm) = fixture();
        let f = Some("install_status,name");
        assert_eq!(
            render(&store, &vm, f, &opts(DisplayMode::Value, true)),
            json!({"install_status": "7", "name": "vm1"})
        );
        assert_eq!(
            render(&store, &vm, f, &opts(DisplayMode::Display, true)),
            json!({"install_status": "Retired", "name": "vm1"})
        );
        assert_eq!(
            render(&store, &vm, f, &opts(DisplayMode::All, true)),
            json!({
                "install_status": {"display_value": "Retired", "value": "7"},
                "name": {"display_value": "vm1", "value": "vm1"},
            })
        );
    }

    #[test]
    fn fields_select_dot_walk_and_ignore_unknowns() {
        let (store, _, vm) = fixture();
        let o = opts(DisplayMode::Value, true);
        assert_eq!(
            render(
                &store,
                &vm,
                Some(" name ,nope,owned_by.email,owned_by.nope,name,name.x,sys_id"),
                &o
            )
            .as_object()
            .expect("object")
            .keys()
            .collect::<Vec<_>>(),
            vec!["name", "owned_by.email", "sys_id"]
        );
        assert_eq!(
            render(&store, &vm, Some("owned_by.email"), &o),
            json!({"owned_by.email": "ann@example.com"})
        );
        // An empty reference walks to an empty value.
        let (mut store, _, _) = fixture();
        let st = Stamp {
            user: "admin".into(),
            now: "2024-01-01 00:00:00".into(),
        };
        let orphan = store
            .insert(
                "cmdb_ci_vmware_instance",
                string_fields(
                    json!({"name": "vm2", "owned_by": ""})
                        .as_object()
                        .expect("object"),
                ),
                &st,
            )
            .expect("inserted");
        assert_eq!(
            render(&store, &orphan, Some("owned_by.email"), &o),
            json!({"owned_by.email": ""})
        );
    }

    #[test]
    fn all_columns_when_fields_are_absent_or_empty() {
        let (store, _, vm) = fixture();
        let o = opts(DisplayMode::Value, true);
        let all = render(&store, &vm, None, &o);
        assert_eq!(all, render(&store, &vm, Some(""), &o));
        let keys: Vec<&String> = all.as_object().expect("object").keys().collect();
        for key in [
            "name",
            "owned_by",
            "sys_id",
            "sys_mod_count",
            "sys_class_name",
        ] {
            assert!(keys.iter().any(|k| *k == key), "{key} in {keys:?}");
        }
    }

    #[test]
    fn references_to_cis_resolve_across_ci_tables() {
        let (mut store, _, vm) = fixture();
        let st = Stamp {
            user: "admin".into(),
            now: "2024-01-01 00:00:00".into(),
        };
        let inc = store
            .insert(
                "incident",
                string_fields(
                    json!({"number": "INC0010001", "cmdb_ci": vm})
                        .as_object()
                        .expect("object"),
                ),
                &st,
            )
            .expect("inserted");
        let table = store.table("incident").expect("table");
        let specs = FieldSpec::list(&store, "incident", table, Some("cmdb_ci,cmdb_ci.name"));
        let rendered = row(
            &store,
            "incident",
            table.get(&inc).expect("row"),
            &specs,
            &opts(DisplayMode::Display, false),
        );
        assert_eq!(
            rendered,
            json!({
                "cmdb_ci": {
                    "display_value": "vm1",
                    "link": format!("{BASE}/api/now/table/cmdb_ci_vmware_instance/{vm}"),
                },
                "cmdb_ci.name": "vm1",
            })
        );
    }
}
