//! The config file as written: serde structs that mirror its TOML sections, with unknown
//! keys refused. `mod.rs` validates them into a [`super::Config`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) report: FileReport,
    #[serde(default)]
    pub(super) sync: Vec<FileSync>,
    pub(super) cloudforms: Option<FileCloudForms>,
    pub(super) servicenow: Option<FileServiceNow>,
    #[serde(default)]
    pub(super) apply: FileApply,
    pub(super) ticket: Option<FileTicket>,
    #[serde(default)]
    pub(super) lease: FileLease,
    #[serde(default)]
    pub(super) metrics: FileMetrics,
    pub(super) review: Option<FileReview>,
    pub(super) catalog: Option<FileCatalog>,
}

/// `[review]`: what needs approval and the change request that asks for it (README
/// "Review in ServiceNow").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileReview {
    pub(super) retire: Option<bool>,
    pub(super) delete: Option<bool>,
    pub(super) absent: Option<bool>,
    pub(super) creates_above: Option<FileLimit>,
    pub(super) updates_above: Option<FileLimit>,
    pub(super) table: Option<String>,
    #[serde(rename = "type")]
    pub(super) change_type: Option<String>,
    pub(super) assignment_group: Option<String>,
    #[serde(default)]
    pub(super) fields: BTreeMap<String, String>,
}

/// A count (`20`) or `"never"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum FileLimit {
    Count(u64),
    Text(String),
}

/// `[catalog]`: ServiceNow catalog items ordered from CloudForms (README "Service catalog").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCatalog {
    #[serde(default)]
    pub(super) links: Vec<PathBuf>,
    pub(super) status: Option<PathBuf>,
    pub(super) approve: Option<String>,
    pub(super) max_orders: Option<usize>,
    pub(super) settle: Option<String>,
    pub(super) search_within: Option<String>,
    pub(super) claim_timeout: Option<String>,
    pub(super) lease_name: Option<String>,
    pub(super) lock_file: Option<PathBuf>,
}

/// `[metrics]`: where the run's metrics go (README "Monitoring").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileMetrics {
    pub(super) file: Option<PathBuf>,
    pub(super) push_gateway: Option<String>,
}

/// `[report] keep`: a number of runs (`30`) or an age (`"14d"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum FileKeep {
    Runs(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLease {
    pub(super) servicenow: Option<bool>,
    pub(super) table: Option<String>,
    pub(super) name: Option<String>,
    pub(super) ttl: Option<String>,
    pub(super) settle: Option<String>,
    pub(super) lock_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTicket {
    pub(super) table: Option<String>,
    pub(super) close: Option<bool>,
    #[serde(default)]
    pub(super) fields: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileReport {
    pub(super) dir: Option<PathBuf>,
    pub(super) formats: Option<Vec<String>>,
    pub(super) keep: Option<FileKeep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSync {
    pub(super) mapping: PathBuf,
    pub(super) source_file: Option<PathBuf>,
    pub(super) target_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) references: BTreeMap<String, PathBuf>,
    pub(super) dictionary: Option<PathBuf>,
    pub(super) choices: Option<PathBuf>,
    pub(super) relationships: Option<PathBuf>,
    pub(super) rel_types: Option<PathBuf>,
    pub(super) key_values: Option<PathBuf>,
    /// `auto` (default) or `approve` (README "Review in ServiceNow").
    pub(super) review: Option<String>,
}

/// A secret's possible homes, most preferred first: a file, an environment variable, inline.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHttp {
    pub(super) verify_tls: Option<bool>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) timeout: Option<String>,
    pub(super) connect_timeout: Option<String>,
    pub(super) page_size: Option<usize>,
    pub(super) concurrency: Option<usize>,
    pub(super) retries: Option<u32>,
    /// Requests per second at most (0: no ceiling).
    pub(super) max_rps: Option<f64>,
    /// mTLS: the client certificate (PEM; the chain after it) and its private key (PEM; may
    /// be in the certificate file instead).
    pub(super) client_cert: Option<PathBuf>,
    pub(super) client_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCloudForms {
    pub(super) url: Option<String>,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) group: Option<String>,
    pub(super) use_token: Option<bool>,
    #[serde(flatten)]
    pub(super) http: FileHttp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileServiceNow {
    pub(super) url: Option<String>,
    /// `basic` (default) or `oauth`.
    pub(super) auth: Option<String>,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) client_secret_env: Option<String>,
    pub(super) client_secret_file: Option<PathBuf>,
    #[serde(flatten)]
    pub(super) http: FileHttp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileApply {
    pub(super) concurrency: Option<usize>,
    pub(super) batch_size: Option<usize>,
    pub(super) max_plan_age: Option<String>,
    pub(super) retries: Option<u32>,
    pub(super) deadline: Option<String>,
    pub(super) breaker: Option<usize>,
}
