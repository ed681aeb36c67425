//! Rows as the Table API renders them: which fields (`sysparm_fields`, dot-walks such as
//! `owned_by.email` returned under that flat key) and how (`sysparm_display_value`,
//! `sysparm_exclude_reference_link`): choice labels, reference display values and links, and
//! date-times in the acting user's time zone.

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::schema::{Kind, TableId};
use super::store::{Row, Store};

/// How ServiceNow writes date-times, stored (UTC) and displayed (the user's zone) alike.
const DATETIME: &str = "%Y-%m-%d %H:%M:%S";

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
    /// The acting user's time zone: "the display value is based on the user's time zone"
    /// (c_TableAPI.md, `sysparm_display_value`).
    pub tz: Tz,
}

/// The column a field finally reads, after any dot-walk.
#[derive(Debug, Clone)]
struct Leaf {
    name: String,
    kind: Kind,
    /// The table a reference points to.
    reference: Option<(TableId, String)>,
}

/// A field a request names, bound to a table: a column, or a dot-walk starting at a
/// reference column and following references.
#[derive(Debug, Clone)]
pub(crate) struct FieldSpec {
    /// The name as requested, which is also the key it is returned under.
    pub key: String,
    col: usize,
    /// For `a.b.c`: the table `a` points to and `b`'s index in it, then `b`'s target and `c`.
    walk: Vec<(TableId, usize)>,
    /// `variables.<name>` of a requested item: the variable named (or whose
    /// `item_option_new` sys_id is) this; `col` is then the item's `sys_id`.
    variable: Option<String>,
    leaf: Leaf,
}

/// One value to render, with the class of the row it was read from (whose choice lists apply).
pub(crate) struct Cell<'a> {
    pub class: Option<TableId>,
    pub value: &'a str,
}

impl FieldSpec {
    /// Binds `name` to `table`; `None` for a field the table does not have, or a dot-walk
    /// that does not follow references to an existing field.
    pub(crate) fn resolve(store: &Store, table: TableId, name: &str) -> Option<Self> {
        if let Some(variable) = name.strip_prefix("variables.") {
            return Self::variable(store, table, name, variable);
        }
        let mut segments = name.split('.');
        let def = store.def(table);
        let col = def.column(segments.next()?)?;
        let mut column = &def.columns[col];
        let mut walk = Vec::new();
        for segment in segments {
            let target = store.table(column.reference.as_deref()?)?;
            let target_def = store.def(target);
            let next = target_def.column(segment)?;
            walk.push((target, next));
            column = &target_def.columns[next];
        }
        let reference = column
            .reference
            .as_deref()
            .and_then(|r| Some((store.table(r)?, r.to_owned())));
        Some(Self {
            key: name.to_owned(),
            col,
            walk,
            variable: None,
            leaf: Leaf {
                name: column.name.clone(),
                kind: column.kind,
                reference,
            },
        })
    }

    /// `variables.<name>` on `sc_req_item` (or a table extending it): the value of the item's
    /// variable of that name, as Snow-Shell's `-IncludeCustomVariable` and PSSnow #43 read it
    /// (integrations.md B.2), returned under the flat key. `<name>` may also be the
    /// variable's `item_option_new` sys_id, the form a list filter on variables writes
    /// (UNVERIFIED). `None` (an unknown field, ignored) on other tables or for a name no
    /// variable definition has.
    fn variable(store: &Store, table: TableId, key: &str, variable: &str) -> Option<Self> {
        let items = store.table("sc_req_item")?;
        if !store.schema().extends(table, items) || variable.is_empty() {
            return None;
        }
        let definitions = store.table("item_option_new")?;
        let known = store.find(definitions, variable).is_some()
            || store
                .rows_where(definitions, "name", variable)
                .next()
                .is_some();
        if !known {
            return None;
        }
        Some(Self {
            key: key.to_owned(),
            col: store.def(table).column("sys_id")?,
            walk: Vec::new(),
            variable: Some(variable.to_owned()),
            leaf: Leaf {
                name: "value".to_owned(),
                kind: Kind::Text,
                reference: None,
            },
        })
    }

    /// The fields a response carries: those of `sysparm_fields` that exist (in the order
    /// asked, each once), or every column of `table` (its own and its parents') when it is
    /// absent or empty.
    pub(crate) fn list(store: &Store, table: TableId, sysparm_fields: Option<&str>) -> Vec<Self> {
        let requested: Vec<&str> = sysparm_fields
            .into_iter()
            .flat_map(|f| f.split(','))
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        if requested.is_empty() {
            return store
                .def(table)
                .columns
                .iter()
                .filter_map(|c| Self::resolve(store, table, &c.name))
                .collect();
        }
        let mut specs: Vec<Self> = Vec::with_capacity(requested.len());
        for name in requested {
            if specs.iter().all(|s| s.key != name) {
                specs.extend(Self::resolve(store, table, name));
            }
        }
        specs
    }

    /// This field of `row` (of `class`), following references for a dot-walk; an empty cell
    /// of no class when the walk breaks off (an empty or dangling reference).
    pub(crate) fn cell<'s>(&self, store: &'s Store, class: TableId, row: &'s Row) -> Cell<'s> {
        if let Some(variable) = &self.variable {
            return variable_cell(store, row.get(self.col), variable);
        }
        let (mut class, mut value) = (class, row.get(self.col));
        for &(target, col) in &self.walk {
            let Some((found, next)) = store.find(target, value) else {
                return Cell {
                    class: None,
                    value: "",
                };
            };
            class = found;
            value = next.get(col);
        }
        Cell {
            class: Some(class),
            value,
        }
    }

    /// Just the value of [`FieldSpec::cell`], for matching and ordering.
    pub(crate) fn value<'s>(&self, store: &'s Store, class: TableId, row: &'s Row) -> &'s str {
        self.cell(store, class, row).value
    }

    /// The column this field reads in the row itself, when it reads nothing else (no
    /// dot-walk, no variable): what a column index can look up.
    pub(crate) fn plain_column(&self) -> Option<usize> {
        (self.walk.is_empty() && self.variable.is_none()).then_some(self.col)
    }

    /// Whether this is the record's own `sys_id`.
    pub(crate) fn is_sys_id(&self) -> bool {
        self.key == "sys_id"
    }
}

/// The value of the variable `variable` (a name or an `item_option_new` sys_id) of the
/// requested item `item`: its `sc_item_option` found through `sc_item_option_mtom`; an empty
/// cell when the item has no such variable.
fn variable_cell<'s>(store: &'s Store, item: &'s str, variable: &str) -> Cell<'s> {
    let empty = Cell {
        class: None,
        value: "",
    };
    let (Some(mtom), Some(options), Some(definitions)) = (
        store.table("sc_item_option_mtom"),
        store.table("sc_item_option"),
        store.table("item_option_new"),
    ) else {
        return empty;
    };
    if item.is_empty() {
        return empty;
    }
    for (link_class, link) in store.rows_where(mtom, "request_item", item) {
        let option_id = store.value(link_class, link, "sc_item_option");
        let Some((option_class, option)) = store.find(options, option_id) else {
            continue;
        };
        let definition_id = store.value(option_class, option, "item_option_new");
        let Some((def_class, definition)) = store.find(definitions, definition_id) else {
            continue;
        };
        if definition_id == variable || store.value(def_class, definition, "name") == variable {
            return Cell {
                class: Some(option_class),
                value: store.value(option_class, option, "value"),
            };
        }
    }
    empty
}

/// A stored UTC date-time in `tz`; `None` for a value that is not one.
pub(crate) fn local_time(value: &str, tz: Tz) -> Option<String> {
    let utc = NaiveDateTime::parse_from_str(value, DATETIME)
        .ok()?
        .and_utc();
    Some(utc.with_timezone(&tz).format(DATETIME).to_string())
}

/// A row as the JSON object of the requested fields, serialized straight from the store: a
/// page of 1000 rows builds no intermediate JSON values.
pub(crate) struct RowJson<'a> {
    pub store: &'a Store,
    /// The table the row is in (its class).
    pub class: TableId,
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
                leaf: &spec.leaf,
                cell: spec.cell(self.store, self.class, self.row),
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
    leaf: &'a Leaf,
    cell: Cell<'a>,
    opts: &'a RenderOptions<'a>,
}

impl Serialize for CellJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Cell { class, value } = self.cell;
        if let Some((target, name)) = &self.leaf.reference {
            return serialize_reference(s, self.store, (*target, name), value, self.opts);
        }
        let display = || -> std::borrow::Cow<'_, str> {
            if self.leaf.kind == Kind::DateTime {
                if let Some(local) = local_time(value, self.opts.tz) {
                    return local.into();
                }
            }
            class
                .and_then(|c| self.store.def(c).choice_label(&self.leaf.name, value))
                .unwrap_or(value)
                .into()
        };
        match self.opts.display {
            DisplayMode::Value => s.serialize_str(value),
            DisplayMode::Display => s.serialize_str(&display()),
            DisplayMode::All => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("display_value", &display())?;
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
    (target, target_name): (TableId, &str),
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
    // Looked up only when the response shows it.
    let display = || {
        store
            .find(target, sys_id)
            .map_or("", |(class, row)| store.display_value(class, row))
    };
    // The link names the reference's table; with table inheritance it finds a row of any
    // class below it.
    let link = (!opts.exclude_links)
        .then(|| format!("{}/api/now/table/{target_name}/{sys_id}", opts.base_url));
    let entries: [(&str, Option<&str>); 3] = match (opts.display, link.as_deref()) {
        (DisplayMode::Value, None) => return s.serialize_str(sys_id),
        (DisplayMode::Display, None) => return s.serialize_str(display()),
        (DisplayMode::Value, link) => [("link", link), ("value", Some(sys_id)), ("", None)],
        (DisplayMode::Display, link) => [
            ("display_value", Some(display())),
            ("link", link),
            ("", None),
        ],
        (DisplayMode::All, link) => [
            ("display_value", Some(display())),
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

    const BASE: &str = "https://127.0.0.1:8443";
    const VMS: &str = "cmdb_ci_vmware_instance";

    fn opts(display: DisplayMode, exclude_links: bool) -> RenderOptions<'static> {
        RenderOptions {
            display,
            exclude_links,
            base_url: BASE,
            tz: Tz::UTC,
        }
    }

    fn insert(store: &mut Store, table: &str, v: Value) -> String {
        let st = Stamp {
            user: "admin".into(),
            now: "2024-01-01 00:00:00".into(),
        };
        let table = store.table(table).expect("table");
        store
            .insert(table, string_fields(v.as_object().expect("object")), &st)
            .expect("inserted")
    }

    /// A user and a VM owned by the user; returns (store, user id, vm id).
    fn fixture() -> (Store, String, String) {
        let mut store = Store::new();
        let user = insert(
            &mut store,
            "sys_user",
            json!({"user_name": "ann", "name": "Ann Lee", "email": "ann@example.com"}),
        );
        let vm = insert(
            &mut store,
            VMS,
            json!({"name": "vm1", "owned_by": user, "support_group": "", "install_status": "7"}),
        );
        (store, user, vm)
    }

    fn render_in(
        store: &Store,
        table: &str,
        sys_id: &str,
        fields: Option<&str>,
        o: &RenderOptions<'_>,
    ) -> Value {
        let table = store.table(table).expect("table");
        let specs = FieldSpec::list(store, table, fields);
        let (class, row) = store.find(table, sys_id).expect("row");
        serde_json::to_value(RowJson {
            store,
            class,
            row,
            fields: &specs,
            opts: o,
        })
        .expect("serializable")
    }

    fn render(store: &Store, vm: &str, fields: Option<&str>, o: &RenderOptions<'_>) -> Value {
        render_in(store, VMS, vm, fields, o)
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
    fn the_rows_class_gives_the_choice_labels_through_a_parent() {
        let mut store = Store::new();
        let inc = insert(&mut store, "incident", json!({"state": "6"}));
        let o = opts(DisplayMode::Display, true);
        assert_eq!(
            render_in(&store, "task", &inc, Some("state"), &o),
            json!({"state": "Resolved"})
        );
    }

    #[test]
    fn date_times_display_in_the_users_time_zone() {
        let (store, _, vm) = fixture();
        let mut o = opts(DisplayMode::All, true);
        o.tz = "Europe/Paris".parse().expect("a zone");
        assert_eq!(
            render(&store, &vm, Some("sys_created_on"), &o),
            json!({"sys_created_on": {"display_value": "2024-01-01 01:00:00", "value": "2024-01-01 00:00:00"}})
        );
        o.tz = "America/Los_Angeles".parse().expect("a zone");
        o.display = DisplayMode::Display;
        assert_eq!(
            render(&store, &vm, Some("sys_created_on"), &o),
            json!({"sys_created_on": "2023-12-31 16:00:00"})
        );
        assert_eq!(local_time("", Tz::UTC), None);
    }

    #[test]
    fn fields_select_dot_walk_and_ignore_unknowns() {
        let (mut store, _, vm) = fixture();
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
        let orphan = insert(&mut store, VMS, json!({"name": "vm2", "owned_by": ""}));
        assert_eq!(
            render(&store, &orphan, Some("owned_by.email"), &o),
            json!({"owned_by.email": ""})
        );
    }

    #[test]
    fn every_column_of_the_table_and_its_parents_when_fields_are_absent() {
        let (store, _, vm) = fixture();
        let o = opts(DisplayMode::Value, true);
        let all = render(&store, &vm, None, &o);
        assert_eq!(all, render(&store, &vm, Some(""), &o));
        let row = all.as_object().expect("object");
        for key in [
            "name",
            "owned_by",
            "sys_id",
            "sys_mod_count",
            "sys_class_name",
            "serial_number",
            "object_id",
            "cpus",
            "vcenter_uuid",
        ] {
            assert!(row.contains_key(key), "{key} in {row:?}");
        }
        assert_eq!(row["serial_number"], "");
        // Through the parent, only the parent's columns.
        let through_ci = render_in(&store, "cmdb_ci", &vm, None, &o);
        assert!(through_ci.get("cpus").is_none());
        assert_eq!(through_ci["sys_class_name"], VMS);
    }

    #[test]
    fn references_to_cis_resolve_to_rows_of_any_ci_class() {
        let (mut store, _, vm) = fixture();
        let inc = insert(&mut store, "incident", json!({"cmdb_ci": vm}));
        assert_eq!(
            render_in(
                &store,
                "incident",
                &inc,
                Some("cmdb_ci,cmdb_ci.name,cmdb_ci.cpus"),
                &opts(DisplayMode::Display, false)
            ),
            json!({
                "cmdb_ci": {
                    "display_value": "vm1",
                    "link": format!("{BASE}/api/now/table/cmdb_ci/{vm}"),
                },
                "cmdb_ci.name": "vm1",
            })
        );
    }
}
