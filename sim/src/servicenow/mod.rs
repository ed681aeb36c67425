//! ServiceNow simulator: Table, Batch, Attachment and OAuth APIs over an in-memory store.
//!
//! This first version only fixes the public contract; the behaviour is filled in by the
//! following commits.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

/// Settings of one simulated ServiceNow instance.
#[derive(Debug, Clone)]
pub struct SnowConfig {
    /// Basic-auth users and OAuth password-grant users: (user name, password).
    pub users: Vec<(String, String)>,
    /// OAuth clients: (client id, client secret).
    pub oauth_clients: Vec<(String, String)>,
    /// Lifetime of an OAuth access token, in seconds.
    pub token_ttl_secs: u64,
    /// Where `save_state` writes the tables and `new` reads them back.
    pub state_file: Option<PathBuf>,
}

impl Default for SnowConfig {
    fn default() -> Self {
        Self {
            users: vec![("admin".into(), "admin".into())],
            oauth_clients: vec![("cmdb-reconcile".into(), "secret".into())],
            token_ttl_secs: 1799,
            state_file: None,
        }
    }
}

/// A simulated ServiceNow instance; cheap to clone (the state is shared).
#[derive(Clone)]
pub struct ServiceNow {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: SnowConfig,
    tables: RwLock<HashMap<String, BTreeMap<String, Map<String, Value>>>>,
}

impl ServiceNow {
    /// A new instance, loading `cfg.state_file` when it exists.
    pub fn new(cfg: SnowConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                cfg,
                tables: RwLock::default(),
            }),
        }
    }

    /// Adds rows to `table`, filling the system fields the rows lack.
    pub fn seed(&self, table: &str, rows: Vec<Map<String, Value>>) {
        let mut tables = self.inner.tables.write().unwrap_or_else(|e| e.into_inner());
        let t = tables.entry(table.to_owned()).or_default();
        for row in rows {
            let id = row
                .get("sys_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            t.insert(id, row);
        }
    }

    /// All routes of the simulated instance, without fault or stats layers.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
    }

    /// Every table as `{"table": [rows...]}`.
    pub fn dump(&self) -> Value {
        let tables = self.inner.tables.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Map::new();
        for (name, rows) in tables.iter() {
            out.insert(
                name.clone(),
                Value::Array(rows.values().cloned().map(Value::Object).collect()),
            );
        }
        Value::Object(out)
    }

    /// Writes `dump()` to the state file, if one is configured.
    pub fn save_state(&self) -> std::io::Result<()> {
        match &self.inner.cfg.state_file {
            Some(path) => std::fs::write(path, serde_json::to_vec(&self.dump())?),
            None => Ok(()),
        }
    }
}
