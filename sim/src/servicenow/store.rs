//! The in-memory tables: each row lives in the table of its class, keyed by sys_id (kept in
//! sys_id order, which is also the order PySNC pages in), every value a string, its columns
//! exactly those the [`Schema`] gives its class. A table is read with its descendants' rows
//! (table inheritance); writes fill defaults, cut strings at their max length, drop unknown
//! columns, and run the few business rules an instance runs on every write (numbers, the
//! incident priority lookup, `active` from `state`).
//!
//! A row is its values packed into one string plus their end offsets, indexed by its class's
//! column list: with 100,000 CIs, field names per row, or one allocation per value, would
//! dominate memory and scatter a table scan over the heap. A compiled field is a plain index,
//! valid in every descendant's rows (see [`super::schema`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::schema::{Kind, Schema, TableDef, TableId};

/// Fields the instance maintains itself; clients cannot write them (except `sys_id` on insert).
pub(crate) const SYSTEM_FIELDS: [&str; 7] = [
    "sys_id",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
    // The class is the table a record is created in; changing it would move the record.
    "sys_class_name",
];

/// When and by whom the dictionary and the built-in records were "installed": fixed, so that
/// they are byte-identical in every instance and every state file.
const INSTALLED_ON: &str = "2020-01-01 00:00:00";
const INSTALLER: &str = "system";

/// `getNextObjNumberPadded()`: a new instance's counters give `INC0010001` first (the brief of
/// issue 10; a fresh instance's demo data ends below 10000).
const FIRST_NUMBER: u64 = 10_001;
const NUMBER_DIGITS: usize = 7;

/// One stored row: values by column index, packed. A row shorter than its class's column list
/// reads "" past its end (trailing empty values are not stored).
#[derive(Debug, Default)]
pub(crate) struct Row {
    text: Box<str>,
    /// End offset in `text` of each column's value. `u32` keeps rows small; a row is bounded
    /// by the request body limit, far below 4 GiB.
    ends: Box<[u32]>,
}

impl Row {
    fn pack(values: &[String]) -> Self {
        let len = values
            .iter()
            .rposition(|v| !v.is_empty())
            .map_or(0, |last| last + 1);
        let values = &values[..len];
        let mut text = String::with_capacity(values.iter().map(String::len).sum());
        let mut ends = Vec::with_capacity(len);
        for value in values {
            text.push_str(value);
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        Self {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// The value of column `col`.
    pub(crate) fn get(&self, col: usize) -> &str {
        let Some(&end) = self.ends.get(col) else {
            return "";
        };
        let start = col.checked_sub(1).map_or(0, |prev| self.ends[prev]);
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    fn unpack(&self, width: usize) -> Vec<String> {
        (0..width.max(self.ends.len()))
            .map(|col| self.get(col).to_owned())
            .collect()
    }
}

/// Who writes and when, stamped into `sys_*` fields.
pub(crate) struct Stamp {
    pub user: String,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub now: String,
}

impl Stamp {
    pub(crate) fn now(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            now: now_string(),
        }
    }
}

/// The current time as ServiceNow writes datetimes: `YYYY-MM-DD HH:MM:SS` in UTC.
pub(crate) fn now_string() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A fresh sys_id: 32 lowercase hex digits.
pub(crate) fn new_sys_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A sys_id derived from `key`: the same in every instance, so that installed records keep
/// their ids across restarts and state files.
pub(crate) fn stable_sys_id(key: &str) -> String {
    let fnv = |seed: u64| {
        key.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x84222325_cbf29ce4)
    )
}

pub(crate) fn is_sys_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A JSON value as ServiceNow stores it: everything is a string.
pub(crate) fn field_string(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // Clients that echo a rendered reference back (`{"value": ..., "display_value": ...}`)
        // mean its value.
        Value::Object(o) if o.contains_key("value") => field_string(&o["value"]),
        other => other.to_string(),
    }
}

/// A client's JSON object as stored strings, in the client's field order.
pub(crate) fn string_fields(object: &Map<String, Value>) -> Vec<(String, String)> {
    object
        .iter()
        .map(|(k, v)| (k.clone(), field_string(v)))
        .collect()
}

/// A value as the column keeps it: strings are cut at their max length (in characters), as
/// an instance cuts them.
fn fit(def: &TableDef, col: usize, value: String) -> String {
    let column = &def.columns[col];
    if column.kind == Kind::Text && value.chars().count() > column.max_length {
        value.chars().take(column.max_length).collect()
    } else {
        value
    }
}

/// Why a write was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// An insert named a sys_id that the table already holds.
    DuplicateSysId(String),
}

/// All tables of the instance: the schema's, plus custom ones made by seeding.
pub(crate) struct Store {
    schema: Schema,
    /// Rows by class: `data[t]` holds the rows whose class is table `t`.
    data: Vec<BTreeMap<String, Row>>,
    /// The last number given per prefix (`INC` -> 10001), read from the rows on first use.
    counters: HashMap<String, u64>,
    /// Bumped by every change of `data` (or of the schema): what was computed from the rows
    /// at one generation holds until the next.
    generation: u64,
    /// Column indexes, built on first use by a query (an instance's database has indexes
    /// too) and kept in step with every write: see [`Store::rows_with_values`].
    indexes: Mutex<Indexes>,
    /// The full results of recent list queries, by query, valid for one generation: a client
    /// paging through a filtered table by offset is served each page without scanning the
    /// table again.
    selections: Mutex<Vec<Selection>>,
}

/// `(class, column)` -> the `(ASCII-lowercased value, sys_id)` pairs of every row of that
/// class (including empty values), ordered, so that one value's rows are a range.
type Indexes = HashMap<(TableId, usize), BTreeSet<(Box<str>, Box<str>)>>;

/// The rows a query matched, in its order, each as its class and sys_id.
pub(crate) type Selected = Arc<Vec<(TableId, Box<str>)>>;

/// Query results kept at once (a job reads a few tables side by side).
const SELECTIONS_KEPT: usize = 8;

struct Selection {
    key: String,
    generation: u64,
    rows: Selected,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An instance as installed: the dictionary served as `sys_db_object`, `sys_dictionary`
    /// and `sys_choice` rows, and the records of `schema.toml` (the admin user, the standard
    /// relationship types).
    pub(crate) fn new() -> Self {
        let schema = Schema::builtin();
        let mut store = Self {
            data: schema.tables().iter().map(|_| BTreeMap::new()).collect(),
            schema,
            counters: HashMap::new(),
            generation: 0,
            indexes: Mutex::new(HashMap::new()),
            selections: Mutex::new(Vec::new()),
        };
        let installer = Stamp {
            user: INSTALLER.to_owned(),
            now: INSTALLED_ON.to_owned(),
        };
        for id in 0..store.schema.tables().len() {
            store.install_table(id);
        }
        for record in store.schema.records.clone() {
            let mut fields = record.fields.clone();
            let key = fields.first().map(|(_, v)| v.clone()).unwrap_or_default();
            let sys_id = record
                .sys_id
                .clone()
                .unwrap_or_else(|| stable_sys_id(&format!("{}:{key}", record.table)));
            fields.push(("sys_id".to_owned(), sys_id));
            store.load(&record.table, fields, &installer);
        }
        store
    }

    pub(crate) fn schema(&self) -> &Schema {
        &self.schema
    }

    pub(crate) fn table(&self, name: &str) -> Option<TableId> {
        self.schema.id(name)
    }

    pub(crate) fn def(&self, table: TableId) -> &TableDef {
        self.schema.def(table)
    }

    /// The rows of `table` and its descendants, in sys_id order (reversed when `desc`), each
    /// with the table it is in.
    pub(crate) fn rows(
        &self,
        table: TableId,
        desc: bool,
    ) -> impl Iterator<Item = (TableId, &Row)> + '_ {
        self.rows_with_ids(table, desc).map(|(t, _, r)| (t, r))
    }

    /// [`Store::rows`], each with its sys_id.
    pub(crate) fn rows_with_ids(
        &self,
        table: TableId,
        desc: bool,
    ) -> Box<dyn Iterator<Item = (TableId, &String, &Row)> + '_> {
        let mut runs: Vec<Run<'_>> = self
            .schema
            .def(table)
            .descendants
            .iter()
            .copied()
            .filter(|t| !self.data[*t].is_empty())
            .map(|t| {
                let rows = self.data[t].iter().map(move |(id, r)| (t, id, r));
                let run: Box<dyn Iterator<Item = _>> = if desc {
                    Box::new(rows.rev())
                } else {
                    Box::new(rows)
                };
                run.peekable()
            })
            .collect();
        match runs.len() {
            0 => Box::new(std::iter::empty()),
            1 => Box::new(runs.pop().into_iter().flatten()),
            // Each class's rows are in sys_id order: merged lazily, so that a page near the
            // start reads only what it needs.
            _ => Box::new(Merge { runs, desc }),
        }
    }

    /// How many rows `table` and its descendants hold.
    pub(crate) fn count(&self, table: TableId) -> usize {
        self.schema
            .def(table)
            .descendants
            .iter()
            .map(|&t| self.data[t].len())
            .sum()
    }

    /// The row of `table` (or a descendant) with this sys_id, and the table it is in.
    pub(crate) fn find(&self, table: TableId, sys_id: &str) -> Option<(TableId, &Row)> {
        if sys_id.is_empty() {
            return None;
        }
        self.schema
            .def(table)
            .descendants
            .iter()
            .find_map(|&t| Some((t, self.data[t].get(sys_id)?)))
    }

    /// The row of class `class` with exactly this sys_id, with the sys_id as stored.
    pub(crate) fn row_of(&self, class: TableId, sys_id: &str) -> Option<(&String, &Row)> {
        self.data.get(class)?.get_key_value(sys_id)
    }

    /// The rows of `table` and its descendants whose column `col` (a column index valid in
    /// all of them, see [`super::schema`]) may hold one of `keys` (ASCII-lowercased), in no
    /// particular order: every row whose value equals a key ignoring ASCII case, and only
    /// those. Through the column's index, built on first use; at most `cap` rows (`None`
    /// when there are more).
    pub(crate) fn rows_with_values<'s>(
        &'s self,
        table: TableId,
        col: usize,
        keys: &[String],
        cap: usize,
    ) -> Option<Vec<(TableId, &'s String, &'s Row)>> {
        let mut indexes = self.indexes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for &class in &self.schema.def(table).descendants {
            if self.data[class].is_empty() {
                continue;
            }
            let index = indexes.entry((class, col)).or_insert_with(|| {
                self.data[class]
                    .iter()
                    .map(|(id, row)| (index_key(row.get(col)), Box::from(id.as_str())))
                    .collect()
            });
            for key in keys {
                let from = (Box::from(key.as_str()), Box::from(""));
                for (_, id) in index
                    .range((Bound::Included(from), Bound::Unbounded))
                    .take_while(|(value, _)| **value == **key)
                {
                    if out.len() == cap {
                        return None;
                    }
                    if let Some((id, row)) = self.data[class].get_key_value(&**id) {
                        out.push((class, id, row));
                    }
                }
            }
        }
        Some(out)
    }

    /// The result of `compute` for `key` at the store's current generation: computed again
    /// only when the rows have changed since (or it was dropped to make room).
    pub(crate) fn selection(&self, key: &str, compute: impl FnOnce() -> Selected) -> Selected {
        let kept = |selections: &Vec<Selection>| {
            selections
                .iter()
                .find(|s| s.key == key && s.generation == self.generation)
                .map(|s| s.rows.clone())
        };
        if let Some(rows) = kept(
            &self
                .selections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            return rows;
        }
        // Computed without the lock: pages of other queries are not held up meanwhile.
        let rows = compute();
        let mut selections = self
            .selections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        selections.retain(|s| s.generation == self.generation && s.key != key);
        if selections.len() >= SELECTIONS_KEPT {
            selections.remove(0);
        }
        selections.push(Selection {
            key: key.to_owned(),
            generation: self.generation,
            rows: rows.clone(),
        });
        rows
    }

    /// Stores `row` as the row `sys_id` of `class` (replacing any), keeping the indexes in
    /// step. Every change of a table's rows goes through here or [`Store::take`].
    fn put(&mut self, class: TableId, sys_id: String, row: Row) {
        self.generation += 1;
        let indexes = self
            .indexes
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self.data[class].get(&sys_id);
        for (&(c, col), index) in indexes.iter_mut() {
            if c != class {
                continue;
            }
            let new_key = index_key(row.get(col));
            if let Some(old) = old {
                let old_key = index_key(old.get(col));
                if old_key == new_key {
                    continue;
                }
                index.remove(&(old_key, Box::from(sys_id.as_str())));
            }
            index.insert((new_key, Box::from(sys_id.as_str())));
        }
        self.data[class].insert(sys_id, row);
    }

    /// Removes the row `sys_id` of `class`, keeping the indexes in step.
    fn take(&mut self, class: TableId, sys_id: &str) -> Option<Row> {
        self.generation += 1;
        let row = self.data[class].remove(sys_id)?;
        let indexes = self
            .indexes
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for (&(c, col), index) in indexes.iter_mut() {
            if c == class {
                index.remove(&(index_key(row.get(col)), Box::from(sys_id)));
            }
        }
        Some(row)
    }

    /// The value of the column named `name` in a row of `class`, "" when it has none.
    pub(crate) fn value<'r>(&self, class: TableId, row: &'r Row, name: &str) -> &'r str {
        self.schema
            .def(class)
            .column(name)
            .map_or("", |c| row.get(c))
    }

    /// The display value of a row: its class's display column.
    pub(crate) fn display_value<'r>(&self, class: TableId, row: &'r Row) -> &'r str {
        self.schema.def(class).display.map_or("", |c| row.get(c))
    }

    /// A row as a JSON object with every column of its class.
    pub(crate) fn to_json(&self, class: TableId, row: &Row) -> Map<String, Value> {
        self.schema
            .def(class)
            .columns
            .iter()
            .enumerate()
            .map(|(col, c)| (c.name.clone(), Value::String(row.get(col).to_owned())))
            .collect()
    }

    /// The rows of `table` whose `column` equals `value` exactly.
    pub(crate) fn rows_where<'s>(
        &'s self,
        table: TableId,
        column: &str,
        value: &'s str,
    ) -> impl Iterator<Item = (TableId, &'s Row)> + 's {
        // Through the column's index: its key ignores ASCII case, so the exact comparison
        // still decides.
        let mut found = match self.schema.def(table).column(column) {
            Some(col) => self
                .rows_with_values(table, col, &[value.to_ascii_lowercase()], usize::MAX)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, _, r)| r.get(col) == value)
                .collect(),
            None => Vec::new(),
        };
        found.sort_by(|a, b| a.1.cmp(b.1));
        found.into_iter().map(|(t, _, r)| (t, r))
    }

    /// The sys_user row of the user called `user_name`.
    pub(crate) fn user<'s>(&'s self, user_name: &'s str) -> Option<(TableId, &'s Row)> {
        let users = self.table("sys_user")?;
        self.rows_where(users, "user_name", user_name).next()
    }

    /// The sys_id of the user called `user_name`, "" when there is no such user.
    fn user_sys_id(&self, user_name: &str) -> String {
        self.user(user_name)
            .map(|(t, r)| self.value(t, r, "sys_id").to_owned())
            .unwrap_or_default()
    }

    /// The next `number` for a new record of `table`: its (nearest) prefix, then the counter.
    fn next_number(&mut self, table: TableId) -> String {
        let mut at = Some(table);
        let prefix = loop {
            let Some(t) = at else { return String::new() };
            if let Some(p) = &self.schema.def(t).number_prefix {
                break p.clone();
            }
            at = self.schema.def(t).parent;
        };
        if !self.counters.contains_key(&prefix) {
            let highest = self
                .schema
                .tables()
                .iter()
                .enumerate()
                .filter_map(|(t, def)| Some((t, def.column("number")?)))
                .flat_map(|(t, col)| self.data[t].values().map(move |r| r.get(col)))
                .filter_map(|n| {
                    let digits = n.strip_prefix(prefix.as_str())?;
                    digits
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                        .then(|| digits.parse::<u64>().ok())
                        .flatten()
                })
                .max()
                .unwrap_or(0);
            self.counters
                .insert(prefix.clone(), highest.max(FIRST_NUMBER - 1));
        }
        let counter = self.counters.entry(prefix.clone()).or_default();
        *counter += 1;
        format!("{prefix}{:0width$}", *counter, width = NUMBER_DIGITS)
    }

    /// A dictionary default as a value: the three scripts an instance's defaults use here, or
    /// the literal.
    fn evaluate_default(&mut self, table: TableId, default: &str, stamp: &Stamp) -> String {
        match default {
            "javascript:gs.nowDateTime()" => stamp.now.clone(),
            "javascript:gs.getUserID()" => self.user_sys_id(&stamp.user),
            "javascript:getNextObjNumberPadded();" => self.next_number(table),
            other if other.starts_with("javascript:") => String::new(),
            other => other.to_owned(),
        }
    }

    /// Inserts a row as a client would: unknown columns are ignored, strings cut, defaults
    /// filled, system fields the instance's, except that a valid unused `sys_id` is honoured
    /// (ServiceNow lets integrations choose it). The row's class is `table`.
    pub(crate) fn insert(
        &mut self,
        table: TableId,
        fields: Vec<(String, String)>,
        stamp: &Stamp,
    ) -> Result<String, WriteError> {
        let sys_id = match fields.iter().find(|(k, _)| k == "sys_id") {
            Some((_, id)) if is_sys_id(id) => {
                let root = self.root_of(table);
                if self.find(root, id).is_some() {
                    return Err(WriteError::DuplicateSysId(id.clone()));
                }
                id.clone()
            }
            _ => new_sys_id(),
        };
        let width = self.schema.def(table).columns.len();
        let mut row = vec![String::new(); width];
        let mut given = vec![false; width];
        for (name, value) in fields {
            let def = self.schema.def(table);
            if let Some(col) = def
                .column(&name)
                .filter(|_| !SYSTEM_FIELDS.contains(&name.as_str()))
            {
                row[col] = fit(def, col, value);
                given[col] = true;
            }
        }
        for col in 0..width {
            let def = self.schema.def(table);
            if given[col] {
                continue;
            }
            if let Some(default) = def.default_for(&def.columns[col].name).map(str::to_owned) {
                let value = self.evaluate_default(table, &default, stamp);
                row[col] = fit(self.schema.def(table), col, value);
            }
        }
        let def = self.schema.def(table);
        let system = [
            ("sys_id", sys_id.clone()),
            ("sys_created_on", stamp.now.clone()),
            ("sys_created_by", stamp.user.clone()),
            ("sys_updated_on", stamp.now.clone()),
            ("sys_updated_by", stamp.user.clone()),
            ("sys_mod_count", "0".to_owned()),
            ("sys_class_name", def.name.clone()),
        ];
        for (name, value) in system {
            if let Some(col) = def.column(name) {
                row[col] = value;
            }
        }
        self.run_rules(table, &mut row, true, true);
        let notes = self.take_journal(table, &mut row);
        self.put(table, sys_id.clone(), Row::pack(&row));
        self.append_journal(table, &sys_id, notes, stamp);
        Ok(sys_id)
    }

    /// Journal fields (`work_notes`, `comments`) are not stored on the record: their values
    /// are taken out of `row` (left "") and returned as `(element, value)` entries.
    fn take_journal(&self, class: TableId, row: &mut [String]) -> Vec<(String, String)> {
        let def = self.schema.def(class);
        let mut notes = Vec::new();
        for (col, c) in def.columns.iter().enumerate() {
            if c.internal_type == "journal_input" && !row[col].is_empty() {
                notes.push((c.name.clone(), std::mem::take(&mut row[col])));
            }
        }
        notes
    }

    /// One `sys_journal_field` row per entry, as an instance writes them.
    fn append_journal(
        &mut self,
        class: TableId,
        sys_id: &str,
        notes: Vec<(String, String)>,
        stamp: &Stamp,
    ) {
        let Some(journal) = self.schema.id("sys_journal_field") else {
            return;
        };
        let table = self.schema.def(class).name.clone();
        for (element, value) in notes {
            let fields = vec![
                ("element".to_owned(), element),
                ("element_id".to_owned(), sys_id.to_owned()),
                ("name".to_owned(), table.clone()),
                ("value".to_owned(), value),
            ];
            // A fresh sys_id never collides: the insert cannot fail.
            let _ = self.insert(journal, fields, stamp);
        }
    }

    /// The business rules an instance runs on insert and update that the simulator models:
    /// the incident priority lookup (`def-prio-lookup-rules.md`) and "Task Active State
    /// Management" (`active` is false exactly in the table's close states, TaskStateUtil).
    fn run_rules(&self, class: TableId, row: &mut [String], priority: bool, state: bool) {
        let def = self.schema.def(class);
        let col = |name: &str| def.column(name);
        if priority {
            if let (Some(i), Some(u), Some(p)) = (col("impact"), col("urgency"), col("priority")) {
                if let Some(computed) = self.schema.priority(class, &row[i], &row[u]) {
                    row[p] = computed.to_owned();
                }
            }
        }
        if state && !def.close_states.is_empty() {
            if let (Some(s), Some(a)) = (col("state"), col("active")) {
                let closed = def.close_states.iter().any(|c| *c == row[s]);
                row[a] = if closed { "false" } else { "true" }.to_owned();
            }
        }
    }

    fn root_of(&self, table: TableId) -> TableId {
        let mut t = table;
        while let Some(p) = self.schema.def(t).parent {
            t = p;
        }
        t
    }

    /// Stores a row as given (seeding, state files, installed records), filling only the
    /// system fields it lacks. A `sys_class_name` naming a descendant of `table_name` puts the
    /// row in that class. A table the schema does not know becomes a custom table of string
    /// columns (as an administrator would have created it); unknown columns of a known table
    /// are dropped. A row whose sys_id is already present replaces it.
    pub(crate) fn load(&mut self, table_name: &str, fields: Vec<(String, String)>, stamp: &Stamp) {
        let table = match self.schema.id(table_name) {
            Some(t) => t,
            None => {
                let t = self.schema.add_custom_table(table_name);
                self.data.push(BTreeMap::new());
                self.schema_changed();
                self.install_table(t);
                t
            }
        };
        let class = fields
            .iter()
            .find(|(k, _)| k == "sys_class_name")
            .and_then(|(_, v)| self.schema.id(v))
            .filter(|&c| self.schema.extends(c, table))
            .unwrap_or(table);
        let mut row = vec![String::new(); self.schema.def(class).columns.len()];
        for (name, value) in fields {
            let col = match self.schema.def(class).column(&name) {
                Some(col) => col,
                None => match self.schema.add_custom_column(class, &name) {
                    Some(col) => {
                        row.push(String::new());
                        self.schema_changed();
                        self.install_column(class, col);
                        col
                    }
                    None => continue,
                },
            };
            row[col] = fit(self.schema.def(class), col, value);
        }
        let def = self.schema.def(class);
        let defaults = [
            ("sys_id", None),
            ("sys_created_on", Some(&stamp.now)),
            ("sys_created_by", Some(&stamp.user)),
            ("sys_updated_on", Some(&stamp.now)),
            ("sys_updated_by", Some(&stamp.user)),
            ("sys_mod_count", None),
            ("sys_class_name", Some(&def.name)),
        ];
        for (name, default) in defaults {
            let Some(col) = def.column(name) else {
                continue;
            };
            if row[col].is_empty() {
                row[col] = match (name, default) {
                    ("sys_id", _) => new_sys_id(),
                    ("sys_mod_count", _) => "0".to_owned(),
                    (_, value) => value.cloned().unwrap_or_default(),
                };
            }
        }
        let sys_id = def
            .column("sys_id")
            .map(|c| row[c].clone())
            .unwrap_or_default();
        self.put(class, sys_id, Row::pack(&row));
    }

    /// The schema changed (a custom table or column): column indexes start over.
    fn schema_changed(&mut self) {
        self.generation += 1;
        self.indexes
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Applies a client's changes, through `table`, to a row of it or of a descendant: only
    /// `table`'s columns are written. `None` when there is no such row, else whether anything
    /// changed: like ServiceNow, an update that changes nothing is not a write and leaves
    /// `sys_mod_count` and `sys_updated_on` alone.
    pub(crate) fn update(
        &mut self,
        table: TableId,
        sys_id: &str,
        fields: Vec<(String, String)>,
        stamp: &Stamp,
    ) -> Option<bool> {
        let (class, stored) = self.find(table, sys_id)?;
        let width = self.schema.def(class).columns.len();
        let mut row = stored.unpack(width);
        let mut changed = false;
        let mut touched: Vec<&str> = Vec::new();
        let addressed = self.schema.def(table);
        for (name, value) in &fields {
            let Some(col) = addressed.column(name) else {
                continue;
            };
            if SYSTEM_FIELDS.contains(&name.as_str()) {
                continue;
            }
            let value = fit(addressed, col, value.clone());
            if row[col] != value {
                row[col] = value;
                changed = true;
                touched.push(name.as_str());
            }
        }
        let before: Vec<String> = row.clone();
        let touched_any = |names: &[&str]| touched.iter().any(|t| names.contains(t));
        self.run_rules(
            class,
            &mut row,
            touched_any(&["impact", "urgency", "priority"]),
            touched_any(&["state"]),
        );
        changed |= row != before;
        let notes = self.take_journal(class, &mut row);
        // Adding a journal entry updates the record.
        changed |= !notes.is_empty();
        if changed {
            let def = self.schema.def(class);
            if let Some(c) = def.column("sys_mod_count") {
                let count = row[c].parse::<u64>().unwrap_or(0).saturating_add(1);
                row[c] = count.to_string();
            }
            for (name, value) in [
                ("sys_updated_on", &stamp.now),
                ("sys_updated_by", &stamp.user),
            ] {
                if let Some(c) = def.column(name) {
                    row[c].clone_from(value);
                }
            }
            self.put(class, sys_id.to_owned(), Row::pack(&row));
        }
        self.append_journal(class, sys_id, notes, stamp);
        Some(changed)
    }

    /// Removes a row of `table` or a descendant; false when there was none.
    pub(crate) fn delete(&mut self, table: TableId, sys_id: &str) -> bool {
        match self.find(table, sys_id) {
            Some((class, _)) => self.take(class, sys_id).is_some(),
            None => false,
        }
    }

    /// The `sys_db_object` row of a table and the `sys_dictionary` and `sys_choice` rows of its
    /// own columns.
    fn install_table(&mut self, table: TableId) {
        let installer = Stamp {
            user: INSTALLER.to_owned(),
            now: INSTALLED_ON.to_owned(),
        };
        let def = self.schema.def(table).clone();
        let parent = def
            .parent
            .map(|p| stable_sys_id(&format!("sys_db_object:{}", self.schema.def(p).name)))
            .unwrap_or_default();
        let object = vec![
            (
                "sys_id".to_owned(),
                stable_sys_id(&format!("sys_db_object:{}", def.name)),
            ),
            ("name".to_owned(), def.name.clone()),
            ("label".to_owned(), def.label.clone()),
            ("super_class".to_owned(), parent),
            ("is_extendable".to_owned(), def.extendable.to_string()),
            (
                "number_prefix".to_owned(),
                def.number_prefix.clone().unwrap_or_default(),
            ),
        ];
        self.load("sys_db_object", object, &installer);
        let collection = vec![
            (
                "sys_id".to_owned(),
                stable_sys_id(&format!("sys_dictionary:{}:", def.name)),
            ),
            ("name".to_owned(), def.name.clone()),
            ("element".to_owned(), String::new()),
            ("column_label".to_owned(), def.label.clone()),
            ("internal_type".to_owned(), "collection".to_owned()),
            ("max_length".to_owned(), "40".to_owned()),
        ];
        self.load("sys_dictionary", collection, &installer);
        for col in def.own_start..def.columns.len() {
            self.install_column(table, col);
        }
        for (element, choices) in &def.own_choices {
            for (sequence, (value, label)) in choices.iter().enumerate() {
                let choice = vec![
                    (
                        "sys_id".to_owned(),
                        stable_sys_id(&format!("sys_choice:{}:{element}:{value}", def.name)),
                    ),
                    ("name".to_owned(), def.name.clone()),
                    ("element".to_owned(), element.clone()),
                    ("value".to_owned(), value.clone()),
                    ("label".to_owned(), label.clone()),
                    ("sequence".to_owned(), sequence.to_string()),
                    ("inactive".to_owned(), "false".to_owned()),
                    ("language".to_owned(), "en".to_owned()),
                ];
                self.load("sys_choice", choice, &installer);
            }
        }
    }

    fn install_column(&mut self, table: TableId, col: usize) {
        let installer = Stamp {
            user: INSTALLER.to_owned(),
            now: INSTALLED_ON.to_owned(),
        };
        let def = self.schema.def(table);
        let c = &def.columns[col];
        let choice = if def.choices(&c.name).is_some() {
            "1"
        } else {
            "0"
        };
        let entry = vec![
            (
                "sys_id".to_owned(),
                stable_sys_id(&format!("sys_dictionary:{}:{}", def.name, c.name)),
            ),
            ("name".to_owned(), def.name.clone()),
            ("element".to_owned(), c.name.clone()),
            ("column_label".to_owned(), c.label.clone()),
            ("internal_type".to_owned(), c.internal_type.clone()),
            ("max_length".to_owned(), c.max_length.to_string()),
            (
                "reference".to_owned(),
                c.reference.clone().unwrap_or_default(),
            ),
            (
                "default_value".to_owned(),
                c.default.clone().unwrap_or_default(),
            ),
            ("choice".to_owned(), choice.to_owned()),
            ("display".to_owned(), (def.display == Some(col)).to_string()),
            (
                "read_only".to_owned(),
                SYSTEM_FIELDS.contains(&c.name.as_str()).to_string(),
            ),
            ("mandatory".to_owned(), "false".to_owned()),
            ("active".to_owned(), "true".to_owned()),
        ];
        self.load("sys_dictionary", entry, &installer);
    }

    /// The names of all tables, sorted.
    pub(crate) fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .schema
            .tables()
            .iter()
            .map(|t| t.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Loads `{"table": [rows...]}` (the shape `write_json` writes).
    pub(crate) fn load_json(&mut self, dump: &Value, stamp: &Stamp) -> Result<(), String> {
        let tables = dump
            .as_object()
            .ok_or("the state is not a JSON object of tables")?;
        for (name, rows) in tables {
            let rows = rows
                .as_array()
                .ok_or_else(|| format!("table `{name}` is not a list of rows"))?;
            for row in rows {
                let row = row
                    .as_object()
                    .ok_or_else(|| format!("a row of table `{name}` is not an object"))?;
                self.load(name, string_fields(row), stamp);
            }
        }
        Ok(())
    }

    /// Writes every table that holds rows as `{"table": [rows...]}` (each row in the table of
    /// its class, with its class's columns) without building the whole document first.
    pub(crate) fn write_json(&self, out: impl Write) -> serde_json::Result<()> {
        serde_json::to_writer(out, &StoreJson(self))
    }

    /// Every table as `{"table": [rows...]}`, tables in name order.
    pub(crate) fn dump(&self) -> Value {
        serde_json::to_value(StoreJson(self)).unwrap_or_default()
    }
}

/// A column value as its index keys it: equality ignoring ASCII case, as queries compare.
fn index_key(value: &str) -> Box<str> {
    value.to_ascii_lowercase().into_boxed_str()
}

type Run<'s> = std::iter::Peekable<Box<dyn Iterator<Item = (TableId, &'s String, &'s Row)> + 's>>;

/// Runs of rows, each in sys_id order (descending when `desc`), merged into one.
struct Merge<'s> {
    runs: Vec<Run<'s>>,
    desc: bool,
}

impl<'s> Iterator for Merge<'s> {
    type Item = (TableId, &'s String, &'s Row);

    fn next(&mut self) -> Option<Self::Item> {
        let mut best: Option<(usize, &'s String)> = None;
        for (i, run) in self.runs.iter_mut().enumerate() {
            let Some(&(_, id, _)) = run.peek() else {
                continue;
            };
            // On a tie the first run leads ascending and the last descending: the order of
            // one sorted list of all runs, reversed for `desc`.
            let better = best.is_none_or(|(_, b)| if self.desc { id >= b } else { id < b });
            if better {
                best = Some((i, id));
            }
        }
        let (i, _) = best?;
        self.runs[i].next()
    }
}

struct StoreJson<'s>(&'s Store);
struct TableJson<'s>(&'s Store, TableId);
struct RowJson<'s>(&'s TableDef, &'s Row);

impl Serialize for StoreJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let store = self.0;
        let mut tables: Vec<(&str, TableId)> = store
            .schema
            .tables()
            .iter()
            .enumerate()
            .filter(|(t, _)| !store.data[*t].is_empty())
            .map(|(t, def)| (def.name.as_str(), t))
            .collect();
        tables.sort();
        let mut map = s.serialize_map(Some(tables.len()))?;
        for (name, t) in tables {
            map.serialize_entry(name, &TableJson(store, t))?;
        }
        map.end()
    }
}

impl Serialize for TableJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rows = &self.0.data[self.1];
        let def = self.0.schema.def(self.1);
        let mut seq = s.serialize_seq(Some(rows.len()))?;
        for row in rows.values() {
            seq.serialize_element(&RowJson(def, row))?;
        }
        seq.end()
    }
}

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.columns.len()))?;
        for (col, c) in self.0.columns.iter().enumerate() {
            map.serialize_entry(&c.name, self.1.get(col))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stamp(now: &str) -> Stamp {
        Stamp {
            user: "admin".into(),
            now: now.into(),
        }
    }

    fn fields(v: Value) -> Vec<(String, String)> {
        string_fields(v.as_object().expect("an object"))
    }

    fn id(store: &Store, name: &str) -> TableId {
        store.table(name).expect("a schema table")
    }

    fn row(store: &Store, table: &str, sys_id: &str) -> Map<String, Value> {
        let (class, row) = store.find(id(store, table), sys_id).expect("row");
        store.to_json(class, row)
    }

    #[test]
    fn values_are_stored_as_strings() {
        assert_eq!(field_string(&json!(4)), "4");
        assert_eq!(field_string(&json!(2.5)), "2.5");
        assert_eq!(field_string(&json!(true)), "true");
        assert_eq!(field_string(&json!(null)), "");
        assert_eq!(
            field_string(&json!({"value": "abc", "display_value": "x"})),
            "abc"
        );
        assert_eq!(field_string(&json!(["a"])), "[\"a\"]");
    }

    #[test]
    fn insert_maintains_system_fields_and_drops_unknown_columns() {
        let mut store = Store::new();
        let vms = id(&store, "cmdb_ci_vmware_instance");
        let sys_id = store
            .insert(
                vms,
                fields(
                    json!({"name": "vm1", "cpus": 2, "sys_mod_count": "9", "sys_created_by": "x",
                              "sys_class_name": "cmdb_ci", "u_nope": "dropped"}),
                ),
                &stamp("2024-01-02 03:04:05"),
            )
            .expect("inserted");
        assert!(is_sys_id(&sys_id) && sys_id.bytes().all(|b| !b.is_ascii_uppercase()));
        let r = row(&store, "cmdb_ci_vmware_instance", &sys_id);
        assert_eq!(r["name"], "vm1");
        assert_eq!(r["cpus"], "2");
        assert_eq!(r["sys_id"], sys_id.as_str());
        assert_eq!(r["sys_mod_count"], "0");
        assert_eq!(r["sys_created_by"], "admin");
        assert_eq!(r["sys_created_on"], "2024-01-02 03:04:05");
        assert_eq!(r["sys_class_name"], "cmdb_ci_vmware_instance");
        assert!(!r.contains_key("u_nope"));
        // Every column of the class, empty when unset; defaults filled.
        assert_eq!(r["serial_number"], "");
        assert_eq!(r["install_status"], "1");
        assert_eq!(r["template"], "false");
    }

    #[test]
    fn strings_are_cut_at_their_max_length() {
        let mut store = Store::new();
        let lease = id(&store, "u_cmdb_reconcile_lease");
        let long = "é".repeat(50);
        let sys_id = store
            .insert(
                lease,
                fields(json!({"u_name": long})),
                &stamp("2024-01-01 00:00:00"),
            )
            .expect("inserted");
        assert_eq!(
            row(&store, "u_cmdb_reconcile_lease", &sys_id)["u_name"],
            "é".repeat(40)
        );
    }

    #[test]
    fn task_inserts_get_numbers_defaults_and_the_priority_lookup() {
        let mut store = Store::new();
        let incident = id(&store, "incident");
        let st = stamp("2024-01-01 00:00:00");
        let first = store.insert(incident, Vec::new(), &st).expect("inserted");
        let r = row(&store, "incident", &first);
        assert_eq!(r["number"], "INC0010001");
        assert_eq!(r["state"], "1");
        assert_eq!(r["active"], "true");
        assert_eq!(
            (
                r["impact"].as_str(),
                r["urgency"].as_str(),
                r["priority"].as_str()
            ),
            (Some("3"), Some("3"), Some("5"))
        );
        assert_eq!(r["opened_at"], "2024-01-01 00:00:00");
        assert_eq!(
            r["opened_by"], "6816f79cc0a8016401c5a33be04be441",
            "admin's sys_id"
        );
        assert_eq!(r["sys_class_name"], "incident");
        let second = store
            .insert(
                incident,
                fields(json!({"impact": "1", "urgency": "2", "priority": "5"})),
                &st,
            )
            .expect("inserted");
        let r = row(&store, "incident", &second);
        assert_eq!(r["number"], "INC0010002");
        assert_eq!(r["priority"], "2", "computed, not the client's");
        let change = store
            .insert(id(&store, "change_request"), Vec::new(), &st)
            .expect("inserted");
        let r = row(&store, "change_request", &change);
        assert_eq!(
            (r["number"].as_str(), r["state"].as_str()),
            (Some("CHG0010001"), Some("-5"))
        );
        assert_eq!(r["priority"], "4", "no lookup outside incident");
        for (table, number) in [
            ("sc_request", "REQ0010001"),
            ("sc_req_item", "RITM0010001"),
            ("sc_task", "SCTASK0010001"),
        ] {
            let sys_id = store
                .insert(id(&store, table), Vec::new(), &st)
                .expect("inserted");
            assert_eq!(row(&store, table, &sys_id)["number"], number);
        }
        // Updates: closing deactivates, a new urgency re-computes the priority.
        let later = stamp("2024-02-02 00:00:00");
        assert_eq!(
            store.update(
                incident,
                &first,
                fields(json!({"state": "7", "urgency": "1"})),
                &later
            ),
            Some(true)
        );
        let r = row(&store, "incident", &first);
        assert_eq!(
            (r["active"].as_str(), r["priority"].as_str()),
            (Some("false"), Some("3"))
        );
        // The counter continues from the rows a restarted instance finds.
        let mut again = Store::new();
        again.load_json(&store.dump(), &st).expect("loaded");
        let third = again.insert(incident, Vec::new(), &st).expect("inserted");
        assert_eq!(row(&again, "incident", &third)["number"], "INC0010003");
    }

    #[test]
    fn journal_fields_append_entries_and_read_empty() {
        let mut store = Store::new();
        let incident = id(&store, "incident");
        let st = stamp("2024-01-01 00:00:00");
        let sys_id = store
            .insert(
                incident,
                fields(json!({"short_description": "s", "work_notes": "first"})),
                &st,
            )
            .expect("inserted");
        assert_eq!(row(&store, "incident", &sys_id)["work_notes"], "");
        let later = stamp("2024-01-02 00:00:00");
        // A note alone is a change: the record is updated.
        assert_eq!(
            store.update(
                incident,
                &sys_id,
                fields(json!({"work_notes": "second", "comments": "for the caller"})),
                &later
            ),
            Some(true)
        );
        let r = row(&store, "incident", &sys_id);
        assert_eq!(
            (r["work_notes"].as_str(), r["comments"].as_str()),
            (Some(""), Some(""))
        );
        assert_eq!(
            (r["sys_mod_count"].as_str(), r["sys_updated_on"].as_str()),
            (Some("1"), Some("2024-01-02 00:00:00"))
        );
        // An empty note is no entry and no change.
        assert_eq!(
            store.update(incident, &sys_id, fields(json!({"work_notes": ""})), &later),
            Some(false)
        );
        let journal = id(&store, "sys_journal_field");
        let mut entries: Vec<(String, String, String, String)> = store
            .rows(journal, false)
            .map(|(class, r)| {
                let v = |n: &str| store.value(class, r, n).to_owned();
                (v("element"), v("element_id"), v("name"), v("value"))
            })
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            [
                (
                    "comments".to_owned(),
                    sys_id.clone(),
                    "incident".to_owned(),
                    "for the caller".to_owned()
                ),
                (
                    "work_notes".to_owned(),
                    sys_id.clone(),
                    "incident".to_owned(),
                    "first".to_owned()
                ),
                (
                    "work_notes".to_owned(),
                    sys_id.clone(),
                    "incident".to_owned(),
                    "second".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn priority_is_recomputed_and_resolving_needs_no_close_fields() {
        let mut store = Store::new();
        let incident = id(&store, "incident");
        let st = stamp("2024-01-01 00:00:00");
        let sys_id = store.insert(incident, Vec::new(), &st).expect("inserted");
        // A written priority does not stick: the lookup of impact 3 x urgency 3 is 5.
        store.update(incident, &sys_id, fields(json!({"priority": "1"})), &st);
        assert_eq!(row(&store, "incident", &sys_id)["priority"], "5");
        for (impact, urgency, priority) in [
            ("1", "1", "1"),
            ("1", "2", "2"),
            ("2", "2", "3"),
            ("2", "3", "4"),
            ("3", "3", "5"),
        ] {
            store.update(
                incident,
                &sys_id,
                fields(json!({"impact": impact, "urgency": urgency})),
                &st,
            );
            assert_eq!(
                row(&store, "incident", &sys_id)["priority"],
                priority,
                "{impact}x{urgency}"
            );
        }
        // The Table API runs no UI policy: Resolved without close_code and close_notes is stored.
        assert_eq!(
            store.update(incident, &sys_id, fields(json!({"state": "6"})), &st),
            Some(true)
        );
        let r = row(&store, "incident", &sys_id);
        assert_eq!(
            (r["state"].as_str(), r["close_code"].as_str()),
            (Some("6"), Some(""))
        );
    }

    #[test]
    fn insert_honours_a_chosen_sys_id_once() {
        let mut store = Store::new();
        let users = id(&store, "sys_user");
        let chosen = "0123456789abcdef0123456789abcdef";
        let st = stamp("2024-01-01 00:00:00");
        let sys_id = store
            .insert(users, fields(json!({"sys_id": chosen})), &st)
            .expect("inserted");
        assert_eq!(sys_id, chosen);
        assert_eq!(
            store.insert(users, fields(json!({"sys_id": chosen})), &st),
            Err(WriteError::DuplicateSysId(chosen.into()))
        );
        let other = store
            .insert(users, fields(json!({"sys_id": "nope"})), &st)
            .expect("inserted");
        assert_ne!(other, "nope");
    }

    #[test]
    fn update_bumps_only_on_a_real_change() {
        let mut store = Store::new();
        let groups = id(&store, "sys_user_group");
        let sys_id = store
            .insert(
                groups,
                fields(json!({"name": "a"})),
                &stamp("2024-01-01 00:00:00"),
            )
            .expect("inserted");
        let later = stamp("2024-02-02 00:00:00");
        assert_eq!(
            store.update(
                groups,
                &sys_id,
                fields(json!({"name": "a", "nope": 1})),
                &later
            ),
            Some(false)
        );
        assert_eq!(
            store.update(groups, &sys_id, fields(json!({"name": "b"})), &later),
            Some(true)
        );
        assert_eq!(
            store.update(groups, "missing", fields(json!({"name": "b"})), &later),
            None
        );
        let r = row(&store, "sys_user_group", &sys_id);
        assert_eq!(r["name"], "b");
        assert_eq!(r["sys_mod_count"], "1");
        assert_eq!(r["sys_updated_on"], "2024-02-02 00:00:00");
        assert_eq!(r["sys_created_on"], "2024-01-01 00:00:00");
    }

    #[test]
    fn parents_read_and_write_their_descendants_rows() {
        let mut store = Store::new();
        let st = stamp("2024-01-01 00:00:00");
        let (ci, vm, vmware) = (
            id(&store, "cmdb_ci"),
            id(&store, "cmdb_ci_vm_instance"),
            id(&store, "cmdb_ci_vmware_instance"),
        );
        let a = store
            .insert(vmware, fields(json!({"name": "a", "cpus": "2"})), &st)
            .expect("inserted");
        let b = store
            .insert(vm, fields(json!({"name": "b"})), &st)
            .expect("inserted");
        assert_eq!(store.count(ci), 2);
        assert_eq!(store.count(vm), 2);
        assert_eq!(store.count(vmware), 1);
        let mut ids: Vec<&str> = store
            .rows(ci, false)
            .map(|(t, r)| store.value(t, r, "sys_id"))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "sys_id order across classes");
        ids.reverse();
        assert_eq!(
            store
                .rows(ci, true)
                .map(|(t, r)| store.value(t, r, "sys_id"))
                .collect::<Vec<_>>(),
            ids
        );
        // Through the parent, only the parent's columns are written.
        assert_eq!(
            store.update(ci, &a, fields(json!({"name": "a2", "cpus": "9"})), &st),
            Some(true)
        );
        let r = row(&store, "cmdb_ci_vmware_instance", &a);
        assert_eq!(
            (r["name"].as_str(), r["cpus"].as_str()),
            (Some("a2"), Some("2"))
        );
        assert!(store.delete(ci, &b));
        assert!(!store.delete(vmware, &b));
        assert_eq!(store.count(ci), 1);
    }

    #[test]
    fn the_dictionary_and_built_in_records_are_installed() {
        let store = Store::new();
        let dict = id(&store, "sys_dictionary");
        let entry = store
            .rows_where(dict, "element", "u_name")
            .map(|(t, r)| store.to_json(t, r))
            .next()
            .expect("u_name");
        assert_eq!(entry["name"], "u_cmdb_reconcile_lease");
        assert_eq!(entry["max_length"], "40");
        assert_eq!(entry["internal_type"], "string");
        let objects = id(&store, "sys_db_object");
        let vmware = store
            .rows_where(objects, "name", "cmdb_ci_vmware_instance")
            .next()
            .expect("row");
        let parent = store.value(vmware.0, vmware.1, "super_class").to_owned();
        let (t, r) = store.find(objects, &parent).expect("parent row");
        assert_eq!(store.value(t, r, "name"), "cmdb_ci_vm_instance");
        let choices = id(&store, "sys_choice");
        assert!(store
            .rows_where(choices, "element", "install_status")
            .any(|(t, r)| store.value(t, r, "label") == "Absent"));
        let (t, admin) = store.user("admin").expect("admin");
        assert_eq!(
            store.value(t, admin, "sys_id"),
            "6816f79cc0a8016401c5a33be04be441"
        );
        let rel = id(&store, "cmdb_rel_type");
        for name in [
            "Registered on::Has registered",
            "Members::Member of",
            "Contains::Contained by",
            "Provides storage for::Stored on",
            "Runs on::Runs",
        ] {
            assert!(
                store.rows_where(rel, "name", name).next().is_some(),
                "{name}"
            );
        }
        // The same ids in every instance.
        assert_eq!(Store::new().dump(), store.dump());
    }

    #[test]
    fn load_keeps_given_fields_routes_classes_and_round_trips_through_json() {
        let mut store = Store::new();
        let st = stamp("2024-01-01 00:00:00");
        store.load(
            "sys_user",
            fields(json!({"sys_id": "u1", "user_name": "ann", "sys_mod_count": "4"})),
            &st,
        );
        store.load("cmdb_ci", fields(json!({"sys_id": "c1", "name": "x", "cpus": "4", "sys_class_name": "cmdb_ci_vm_instance"})), &st);
        store.load("u_custom", fields(json!({"sys_id": "k1", "u_a": "1"})), &st);
        store.load("u_custom", fields(json!({"u_b": "2"})), &st);
        let dump = store.dump();
        assert_eq!(dump["cmdb_ci_vm_instance"][0]["cpus"], "4");
        assert!(dump.get("cmdb_ci").is_none(), "rows live in their class");
        assert_eq!(dump["u_custom"].as_array().map(Vec::len), Some(2));
        let mut text = Vec::new();
        store.write_json(&mut text).expect("written");
        assert_eq!(serde_json::from_slice::<Value>(&text).expect("json"), dump);
        let mut again = Store::new();
        again
            .load_json(&dump, &stamp("2030-01-01 00:00:00"))
            .expect("loaded");
        assert_eq!(again.dump(), dump);
        assert!(Store::new().load_json(&json!([1]), &st).is_err());
    }

    #[test]
    fn every_generated_column_is_in_the_schema() {
        let generated = crate::generator::generate(&crate::generator::GenOptions {
            vms: 300,
            hosts: None,
            drift: 0.1,
            seed: 3,
            now: chrono::DateTime::UNIX_EPOCH,
            requests: 0,
        });
        let store = Store::new();
        for table in &generated.cmdb.tables {
            let id = store
                .table(&table.name)
                .unwrap_or_else(|| panic!("table `{}`", table.name));
            for row in &table.rows {
                let class = row
                    .get("sys_class_name")
                    .and_then(Value::as_str)
                    .and_then(|c| store.table(c))
                    .unwrap_or(id);
                for field in row.keys() {
                    assert!(
                        store.def(class).column(field).is_some(),
                        "`{}.{field}` is written by the generator but not in schema.toml",
                        store.def(class).name
                    );
                }
            }
        }
    }

    #[test]
    fn stable_sys_ids_are_sys_ids() {
        let a = stable_sys_id("x");
        assert!(is_sys_id(&a));
        assert_eq!(a, stable_sys_id("x"));
        assert_ne!(a, stable_sys_id("y"));
    }
}
