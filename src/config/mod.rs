//! Configuration: the config file, overridden by flags and environment variables, validated
//! into a [`Config`]. Relative paths in a config file are relative to the file's own folder,
//! so a config works from any working directory. Secrets come from an environment variable or
//! a file (Kubernetes Secrets), never needing the command line, and never print ([`Secret`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

mod file;

use file::{
    FileApply, FileCatalog, FileCloudForms, FileConfig, FileHttp, FileKeep, FileLease, FileMetrics,
    FileServiceNow, FileSync,
};

use crate::apply::ApplyOptions;
use crate::cli::{ApplyOpts, ConnectionArgs, PlanArgs, ReportArgs};
use crate::cloudforms::CloudFormsConfig;
use crate::lease::LeaseConfig;
use crate::metrics;
use crate::net::{HttpSettings, RetryPolicy, Secret};
use crate::report::retention::Keep;
use crate::report::Format;
use crate::servicenow::{ServiceNowConfig, SnAuth};
use crate::text::{line_column, parse_duration};
use crate::ticket::TicketConfig;
// Review in ServiceNow (README "Review in ServiceNow").
use crate::reconcile::review::ReviewPolicy;
use crate::review::{ReviewConfig, ReviewMode};
use file::{FileLimit, FileReview};

/// Why a configuration cannot be used. Every message names the setting, file or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {what} `{}`", path.display())]
    Read {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A setting is wrong or missing; the message says which and how to give it.
    #[error("{0}")]
    Invalid(String),
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// `ConfigError::Invalid` from a format string.
macro_rules! invalid {
    ($($arg:tt)*) => { ConfigError::Invalid(format!($($arg)*)) };
}

/// Where records or CIs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    /// The live API of the `[cloudforms]` or `[servicenow]` section.
    Live,
}

/// One mapping to reconcile: a source collection into a CMDB table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    pub mapping: PathBuf,
    pub source: Location,
    pub target: Location,
    /// Referenced tables from export files (offline): table -> file. Live targets read
    /// referenced tables from ServiceNow.
    pub references: Vec<(String, PathBuf)>,
    /// Offline: exports of the target table's `sys_dictionary` rows (its own and its
    /// parents') and `sys_choice` rows, to check the mapping against as a live plan does.
    pub dictionary: Option<PathBuf>,
    pub choices: Option<PathBuf>,
    /// Offline: exports of `cmdb_rel_ci` and `cmdb_rel_type`, for a mapping with
    /// `[[relate]]` (the other CIs come from `references`).
    pub relationships: Option<PathBuf>,
    pub rel_types: Option<PathBuf>,
    /// Offline: an export of `cmdb_key_value`, for a mapping with `[classify]`.
    pub key_values: Option<PathBuf>,
    /// `review`: apply at once, or hold what `[review]` says for an approved change.
    pub review: ReviewMode,
}

impl SyncConfig {
    /// A sync that reads both systems live, with nothing from files.
    pub fn live(mapping: PathBuf) -> Self {
        Self {
            mapping,
            source: Location::Live,
            target: Location::Live,
            references: Vec::new(),
            dictionary: None,
            choices: None,
            relationships: None,
            rel_types: None,
            key_values: None,
            review: ReviewMode::Auto,
        }
    }
}

/// Validated settings for one invocation.
#[derive(Debug, Clone)]
pub struct Config {
    pub report_dir: PathBuf,
    /// When set, reports go exactly here (one sync only).
    pub out_dir: Option<PathBuf>,
    pub formats: Vec<Format>,
    pub syncs: Vec<SyncConfig>,
    pub cloudforms: Option<CloudFormsConfig>,
    pub servicenow: Option<ServiceNowConfig>,
    pub apply: ApplyOptions,
    /// `apply` refuses plans older than this; `None` = no limit.
    pub max_plan_age: Option<Duration>,
    /// `[ticket]`: track each `run` in a ServiceNow ticket.
    pub ticket: Option<TicketConfig>,
    /// `[review]`: what the syncs with `review = "approve"` hold for a change request.
    pub review: ReviewConfig,
    /// `[lease]`: how runs that write keep each other out.
    pub lease: LeaseConfig,
    /// Operations: metrics destinations and report retention.
    pub ops: OpsConfig,
    /// `[catalog]`: the catalog pass (orders and the RITM status write-back).
    pub catalog: Option<CatalogConfig>,
}

/// `[catalog]`: which ServiceNow catalog items are ordered from CloudForms and how
/// (README "Service catalog").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogConfig {
    /// The catalog link files (an item <-> a template, variables -> dialog fields).
    pub links: Vec<PathBuf>,
    /// The status write-back mapping (CloudForms service requests -> the RITMs), planned
    /// and applied after the orders; `None`: no write-back.
    pub status: Option<PathBuf>,
    /// Whether the job approves the requests it orders (`approve = "job"`, the default:
    /// ServiceNow already approved the RITM) or leaves them to CloudForms (`"cloudforms"`).
    pub approve: bool,
    /// At most this many new orders per pass; more refuses the pass's plan.
    pub max_orders: Option<usize>,
    /// Between claiming RITMs and reading the claims back.
    pub settle: Duration,
    /// CloudForms' requests updated this far back are searched for RITM numbers.
    pub search_within: Duration,
    /// A RITM claimed less than this long ago is left to the pass that claimed it (it may
    /// still be running); older claims are resumed. Default: the lease's `ttl`, as long as a
    /// dead pass's lease claim keeps the next pass out anyway.
    pub claim_timeout: Duration,
    /// The catalog pass's own lease (its own name and lock file), so that a long CMDB run
    /// does not hold the frequent catalog pass up while two catalog passes exclude each other.
    pub lease: LeaseConfig,
}

/// Operations settings: `[metrics]` and `[report] keep`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsConfig {
    /// `[metrics] file` and `push_gateway` (flags override them).
    pub metrics: metrics::Target,
    /// `[report] keep`: old report folders are pruned after each plan; `None` keeps all.
    pub report_keep: Option<Keep>,
}

/// What `apply` needs: the ServiceNow connection, how to apply, and the lease.
#[derive(Debug, Clone)]
pub struct ApplyConfig {
    pub servicenow: ServiceNowConfig,
    pub options: ApplyOptions,
    /// Refuse plans older than this; `None` = no limit.
    pub max_plan_age: Option<Duration>,
    pub lease: LeaseConfig,
    pub ops: OpsConfig,
    /// The CloudForms connection, for a plan that orders (the catalog pass); `None`
    /// when the config has no [cloudforms] section.
    pub cloudforms: Option<CloudFormsConfig>,
    /// `[catalog]`, for a plan that orders.
    pub catalog: Option<CatalogConfig>,
}

fn parse_formats(names: &[String], origin: &str) -> Result<Vec<Format>> {
    if names.is_empty() {
        return Ok(Format::ALL.to_vec());
    }
    let mut formats = Vec::new();
    for name in names {
        let format: Format = name.parse().map_err(|_| {
            invalid!(
                "{origin}: unknown report format `{name}` (one of {})",
                Format::NAMES.join(", ")
            )
        })?;
        if !formats.contains(&format) {
            formats.push(format);
        }
    }
    Ok(formats)
}

#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
fn read_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        what: "config file".into(),
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = line_column(&text, e.span().map_or(0, |s| s.start));
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().to_owned(),
        }
    })
}

/// Resolves a secret: flag or env var (clap) first, then `*_file`, then `*_env`, then inline.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
fn secret(
    flag: &Option<String>,
    file: &Option<PathBuf>,
    env: &Option<String>,
    inline: &Option<String>,
    what: &str,
) -> Result<Option<Secret>> {
    if let Some(v) = flag {
        return Ok(Some(Secret::new(v.clone())));
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            what: format!("{what} file"),
            path: path.clone(),
            source,
        })?;
        // Files written by `echo` or a Secret volume end with a newline that is not part of it.
        return Ok(Some(Secret::new(
            text.trim_end_matches(['\n', '\r']).to_owned(),
        )));
    }
    if let Some(var) = env {
        let value = std::env::var(var)
            .map_err(|_| invalid!("{what}: environment variable `{var}` is not set"))?;
        return Ok(Some(Secret::new(value)));
    }
    Ok(inline.clone().map(Secret::new))
}

fn duration(text: &Option<String>, default: Duration, what: &str) -> Result<Duration> {
    match text {
        None => Ok(default),
        Some(t) => parse_duration(t)
            .map(|secs| Duration::from_secs(secs.max(0) as u64))
            .map_err(|e| invalid!("{what}: {e}")),
    }
}

/// A duration where `0` means none (no limit).
fn optional_duration(text: &str, what: &str) -> Result<Option<Duration>> {
    let d = duration(&Some(text.to_owned()), Duration::ZERO, what)?;
    Ok((!d.is_zero()).then_some(d))
}

fn http_settings(h: &FileHttp, base: &Path, section: &str) -> Result<(HttpSettings, RetryPolicy)> {
    let defaults = HttpSettings::default();
    let settings = HttpSettings {
        timeout: duration(
            &h.timeout,
            defaults.timeout,
            &format!("[{section}] timeout"),
        )?,
        connect_timeout: duration(
            &h.connect_timeout,
            defaults.connect_timeout,
            &format!("[{section}] connect_timeout"),
        )?,
        verify_tls: h.verify_tls.unwrap_or(true),
        ca_file: h.ca_file.as_ref().map(|p| rel(base, p)),
        client_cert: h.client_cert.as_ref().map(|p| rel(base, p)),
        client_key: h.client_key.as_ref().map(|p| rel(base, p)),
    };
    if settings.client_key.is_some() && settings.client_cert.is_none() {
        return Err(invalid!(
            "[{section}] client_key needs client_cert (the certificate it belongs to)"
        ));
    }
    let retry = RetryPolicy {
        max_attempts: h
            .retries
            .map(|r| r + 1)
            .unwrap_or(RetryPolicy::default().max_attempts),
        ..RetryPolicy::default()
    };
    Ok((settings, retry))
}

/// `max_rps` from the flag (or env var) or the file: a rate, `0` (or nothing) for none.
fn max_rps(flag: Option<f64>, file: Option<f64>, section: &str) -> Result<Option<f64>> {
    match flag.or(file) {
        None => Ok(None),
        Some(r) if r.is_finite() && r >= 0.0 => Ok((r > 0.0).then_some(r)),
        Some(r) => Err(invalid!(
            "[{section}] max_rps `{r}`: a number of requests per second, 0 for no ceiling"
        )),
    }
}

fn rel(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn cloudforms(
    file: Option<&FileCloudForms>,
    flags: &ConnectionArgs,
    base: &Path,
) -> Result<Option<CloudFormsConfig>> {
    let empty = FileCloudForms::default();
    let f = file.unwrap_or(&empty);
    let Some(url) = flags.cloudforms_url.clone().or_else(|| f.url.clone()) else {
        return Ok(None);
    };
    let user = flags
        .cloudforms_user
        .clone()
        .or_else(|| f.user.clone())
        .ok_or_else(|| invalid!("[cloudforms] needs `user` (or CLOUDFORMS_USER)"))?;
    let password = secret(
        &flags.cloudforms_password,
        &f.password_file.as_ref().map(|p| rel(base, p)),
        &f.password_env,
        &f.password,
        "[cloudforms] password",
    )?
    .ok_or_else(|| {
        invalid!(
            "[cloudforms] needs a password: CLOUDFORMS_PASSWORD, `password_file` or `password_env`"
        )
    })?;
    let (http, retry) = http_settings(&f.http, base, "cloudforms")?;
    let mut cfg = CloudFormsConfig::new(url, user, password);
    cfg.group = flags.cloudforms_group.clone().or_else(|| f.group.clone());
    cfg.use_token = f.use_token.unwrap_or(true);
    cfg.http = http;
    cfg.retry = retry;
    cfg.max_rps = max_rps(flags.cloudforms_max_rps, f.http.max_rps, "cloudforms")?;
    if let Some(n) = f.http.page_size {
        cfg.page_size = n.clamp(1, 1000);
    }
    if let Some(n) = f.http.concurrency {
        cfg.concurrency = n.max(1);
    }
    Ok(Some(cfg))
}

fn servicenow(
    file: Option<&FileServiceNow>,
    flags: &ConnectionArgs,
    base: &Path,
) -> Result<Option<ServiceNowConfig>> {
    let empty = FileServiceNow::default();
    let f = file.unwrap_or(&empty);
    let Some(url) = flags.servicenow_url.clone().or_else(|| f.url.clone()) else {
        return Ok(None);
    };
    let user = flags.servicenow_user.clone().or_else(|| f.user.clone());
    let password = secret(
        &flags.servicenow_password,
        &f.password_file.as_ref().map(|p| rel(base, p)),
        &f.password_env,
        &f.password,
        "[servicenow] password",
    )?;
    let client_id = flags
        .servicenow_client_id
        .clone()
        .or_else(|| f.client_id.clone());
    let oauth = match f.auth.as_deref() {
        Some("oauth") => true,
        Some("basic") => false,
        None => client_id.is_some(),
        Some(other) => {
            return Err(invalid!(
                "[servicenow] auth `{other}`: one of `basic`, `oauth`"
            ))
        }
    };
    let auth = if oauth {
        let client_secret = secret(
            &flags.servicenow_client_secret,
            &f.client_secret_file.as_ref().map(|p| rel(base, p)),
            &f.client_secret_env,
            &f.client_secret,
            "[servicenow] client_secret",
        )?
        .ok_or_else(|| invalid!("[servicenow] OAuth needs a client secret: SERVICENOW_CLIENT_SECRET, `client_secret_file` or `client_secret_env`"))?;
        SnAuth::OAuth {
            client_id: client_id.ok_or_else(|| {
                invalid!("[servicenow] OAuth needs `client_id` (or SERVICENOW_CLIENT_ID)")
            })?,
            client_secret,
            user,
            password,
        }
    } else {
        SnAuth::Basic {
            user: user.ok_or_else(|| invalid!("[servicenow] needs `user` (or SERVICENOW_USER)"))?,
            password: password.ok_or_else(|| invalid!("[servicenow] needs a password: SERVICENOW_PASSWORD, `password_file` or `password_env`"))?,
        }
    };
    let (http, retry) = http_settings(&f.http, base, "servicenow")?;
    let mut cfg = ServiceNowConfig::new(url, auth);
    cfg.http = http;
    cfg.retry = retry;
    cfg.max_rps = max_rps(flags.servicenow_max_rps, f.http.max_rps, "servicenow")?;
    if let Some(n) = f.http.page_size {
        cfg.page_size = n.clamp(1, 10_000);
    }
    if let Some(n) = f.http.concurrency {
        cfg.concurrency = n.max(1);
    }
    Ok(Some(cfg))
}

/// The parts every command shares: file sections, connections, apply settings.
struct Loaded {
    file: FileConfig,
    base: PathBuf,
    origin: String,
}

fn load(config: &Option<PathBuf>) -> Result<Loaded> {
    Ok(match config {
        Some(path) => Loaded {
            file: read_file_config(path)?,
            base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            origin: path.display().to_string(),
        },
        None => Loaded {
            file: FileConfig::default(),
            base: PathBuf::new(),
            origin: "the command line".into(),
        },
    })
}

fn apply_options(file: &FileApply, flags: &ApplyOpts) -> Result<(ApplyOptions, Option<Duration>)> {
    let defaults = ApplyOptions::default();
    let options = ApplyOptions {
        concurrency: flags
            .concurrency
            .or(file.concurrency)
            .unwrap_or(defaults.concurrency)
            .max(1),
        batch_size: flags
            .batch_size
            .or(file.batch_size)
            .unwrap_or(defaults.batch_size),
        retry: RetryPolicy {
            max_attempts: file
                .retries
                .map(|r| r + 1)
                .unwrap_or(defaults.retry.max_attempts),
            ..defaults.retry
        },
        deadline: match (&flags.deadline, &file.deadline) {
            (Some(flag), _) => optional_duration(flag, "--deadline")?,
            (None, Some(text)) => optional_duration(text, "[apply] deadline")?,
            (None, None) => defaults.deadline,
        },
        breaker: file.breaker.unwrap_or(defaults.breaker),
        ..defaults
    };
    let age = flags
        .max_plan_age
        .clone()
        .or_else(|| file.max_plan_age.clone());
    let age = duration(&age, Duration::from_secs(86_400), "max_plan_age")?;
    Ok((options, (!age.is_zero()).then_some(age)))
}

fn ops(file: &FileConfig, base: &Path) -> Result<OpsConfig> {
    let FileMetrics {
        file: path,
        push_gateway,
    } = &file.metrics;
    let report_keep = match &file.report.keep {
        None => None,
        Some(FileKeep::Runs(n)) => Some(Keep::parse(&n.to_string())),
        Some(FileKeep::Text(text)) => Some(Keep::parse(text)),
    }
    .transpose()
    .map_err(|e| invalid!("[report] keep: {e}"))?;
    if let Some(url) = push_gateway {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(invalid!(
                    "[metrics] push_gateway `{}` is not an http(s) URL",
                    crate::net::redact(url)
                ))
            }
        }
    }
    Ok(OpsConfig {
        metrics: metrics::Target {
            file: path.as_ref().map(|p| rel(base, p)),
            push_gateway: push_gateway.clone(),
        },
        report_keep,
    })
}

fn catalog(file: &FileCatalog, base: &Path, lease: &LeaseConfig) -> Result<CatalogConfig> {
    if file.links.is_empty() {
        return Err(invalid!(
            "[catalog] needs `links`: the catalog link files (README \"Service catalog\")"
        ));
    }
    let approve = match file.approve.as_deref().map(str::trim) {
        None | Some("job") => true,
        Some("cloudforms") => false,
        Some(other) => {
            return Err(invalid!(
                "[catalog] approve `{other}`: \"job\" (the job approves what ServiceNow approved) or \"cloudforms\" (CloudForms' own approval)"
            ))
        }
    };
    let name = file
        .lease_name
        .clone()
        .unwrap_or_else(|| format!("{}-catalog", lease.name));
    if name == lease.name {
        return Err(invalid!(
            "[catalog] lease_name `{name}` is the [lease] name: the catalog pass needs a lease of its own"
        ));
    }
    Ok(CatalogConfig {
        links: file.links.iter().map(|p| rel(base, p)).collect(),
        status: file.status.as_ref().map(|p| rel(base, p)),
        approve,
        max_orders: Some(file.max_orders.unwrap_or(20)).filter(|n| *n > 0),
        settle: duration(&file.settle, Duration::from_secs(2), "[catalog] settle")?,
        search_within: duration(
            &file.search_within,
            Duration::from_secs(30 * 86_400),
            "[catalog] search_within",
        )?,
        claim_timeout: duration(&file.claim_timeout, lease.ttl, "[catalog] claim_timeout")?,
        lease: LeaseConfig {
            name,
            lock_file: file.lock_file.as_ref().map(|p| rel(base, p)).or_else(|| {
                lease
                    .lock_file
                    .as_ref()
                    .map(|p| p.with_extension("catalog.lock"))
            }),
            ..lease.clone()
        },
    })
}

fn lease(file: &FileLease, base: &Path) -> Result<LeaseConfig> {
    let defaults = LeaseConfig::default();
    let ttl = duration(&file.ttl, defaults.ttl, "[lease] ttl")?;
    if ttl < Duration::from_secs(30) {
        return Err(invalid!(
            "[lease] ttl `{}` is shorter than 30s: a claim would expire between renewals",
            file.ttl.as_deref().unwrap_or_default()
        ));
    }
    Ok(LeaseConfig {
        servicenow: file.servicenow.unwrap_or(defaults.servicenow),
        table: file.table.clone().unwrap_or(defaults.table),
        name: file.name.clone().unwrap_or(defaults.name),
        ttl,
        settle: duration(&file.settle, defaults.settle, "[lease] settle")?,
        lock_file: file.lock_file.as_ref().map(|p| rel(base, p)),
    })
}

/// `[[sync]] review`: `auto` or `approve`.
fn review_mode(text: Option<&str>, origin: &str) -> Result<ReviewMode> {
    match text.map(str::trim) {
        None | Some("auto") => Ok(ReviewMode::Auto),
        Some("approve") => Ok(ReviewMode::Approve),
        Some(other) => Err(invalid!(
            "`{origin}`: [[sync]] review = \"{other}\" is neither \"auto\" nor \"approve\""
        )),
    }
}

/// `[review]`, defaults for what it leaves out.
fn review(file: Option<FileReview>, origin: &str) -> Result<ReviewConfig> {
    let defaults = ReviewConfig::default();
    let Some(file) = file else {
        return Ok(defaults);
    };
    let limit = |given: Option<FileLimit>, default: Option<usize>, key: &str| match given {
        None => Ok(default),
        Some(FileLimit::Count(n)) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        Some(FileLimit::Text(t)) if t.trim() == "never" => Ok(None),
        Some(FileLimit::Text(t)) => Err(invalid!(
            "`{origin}`: [review] {key} = \"{t}\" is neither a count nor \"never\""
        )),
    };
    let p = &defaults.policy;
    let table = file.table.unwrap_or(defaults.table);
    if table.trim().is_empty() {
        return Err(invalid!("`{origin}`: [review] table is empty"));
    }
    Ok(ReviewConfig {
        policy: ReviewPolicy {
            retire: file.retire.unwrap_or(p.retire),
            delete: file.delete.unwrap_or(p.delete),
            absent: file.absent.unwrap_or(p.absent),
            creates_above: limit(file.creates_above, p.creates_above, "creates_above")?,
            updates_above: limit(file.updates_above, p.updates_above, "updates_above")?,
        },
        table,
        change_type: file.change_type.unwrap_or(defaults.change_type),
        assignment_group: file.assignment_group.filter(|g| !g.trim().is_empty()),
        fields: file.fields.into_iter().collect(),
    })
}

/// The syncs to plan: the config file's `[[sync]]` entries, or one from the flags, with the
/// flags overriding a single entry and `--reference` added to each.
fn syncs(
    file: &[FileSync],
    args: &PlanArgs,
    base: &Path,
    origin: &str,
    catalog: bool,
) -> Result<Vec<SyncConfig>> {
    let rel = |p: &Path| rel(base, p);

    let mut syncs = Vec::new();
    for s in file {
        syncs.push(SyncConfig {
            mapping: rel(&s.mapping),
            source: s
                .source_file
                .as_deref()
                .map_or(Location::Live, |p| Location::File(rel(p))),
            target: s
                .target_file
                .as_deref()
                .map_or(Location::Live, |p| Location::File(rel(p))),
            references: s
                .references
                .iter()
                .map(|(t, p)| (t.clone(), rel(p)))
                .collect(),
            dictionary: s.dictionary.as_deref().map(rel),
            choices: s.choices.as_deref().map(rel),
            relationships: s.relationships.as_deref().map(rel),
            rel_types: s.rel_types.as_deref().map(rel),
            key_values: s.key_values.as_deref().map(rel),
            review: review_mode(s.review.as_deref(), origin)?,
        });
    }

    let flags_given =
        args.mapping.is_some() || args.source_file.is_some() || args.target_file.is_some();
    if flags_given {
        match syncs.len() {
                0 => syncs.push(SyncConfig {
                    mapping: args
                        .mapping
                        .clone()
                        .ok_or_else(|| invalid!("`--mapping` is required without a config file's [[sync]] entry"))?,
                    source: args.source_file.clone().map_or(Location::Live, Location::File),
                    target: args.target_file.clone().map_or(Location::Live, Location::File),
                    references: Vec::new(),
                    dictionary: None,
                    choices: None,
                    relationships: None,
                    rel_types: None,
                    key_values: None,
                    review: ReviewMode::Auto,
                }),
                1 => {
                    let sync = &mut syncs[0];
                    if let Some(m) = &args.mapping {
                        sync.mapping = m.clone();
                    }
                    if let Some(s) = &args.source_file {
                        sync.source = Location::File(s.clone());
                    }
                    if let Some(t) = &args.target_file {
                        sync.target = Location::File(t.clone());
                    }
                }
                n => return Err(invalid!("`{origin}` has {n} [[sync]] entries; --mapping, --source-file and --target-file can override only one")),
            }
    }
    if syncs.is_empty() && !catalog {
        return Err(invalid!("nothing to plan: give --config with a [[sync]] entry, or --mapping (with --source-file and --target-file, or a [cloudforms] and [servicenow] connection)"));
    }
    for sync in &mut syncs {
        sync.references.extend(args.references.iter().cloned());
    }

    Ok(syncs)
}

impl Config {
    /// Builds the configuration of `plan` (and `run`) from its flags and the config file.
    pub fn for_plan(args: &PlanArgs, apply: &ApplyOpts) -> Result<Self> {
        let Loaded { file, base, origin } = load(&args.config)?;
        let syncs = syncs(&file.sync, args, &base, &origin, file.catalog.is_some())?;
        let cloudforms = cloudforms(file.cloudforms.as_ref(), &args.connections, &base)?;
        let servicenow = servicenow(file.servicenow.as_ref(), &args.connections, &base)?;
        for sync in &syncs {
            if sync.source == Location::Live && cloudforms.is_none() {
                return Err(invalid!("`{}` reads CloudForms live but no [cloudforms] url is set (config file or CLOUDFORMS_URL); or give --source-file", sync.mapping.display()));
            }
            if sync.target == Location::Live && servicenow.is_none() {
                return Err(invalid!("`{}` reads ServiceNow live but no [servicenow] url is set (config file or SERVICENOW_URL); or give --target-file", sync.mapping.display()));
            }
        }
        let (apply_opts, max_plan_age) = apply_options(&file.apply, apply)?;
        let formats = if args.report.format.is_empty() {
            parse_formats(file.report.formats.as_deref().unwrap_or_default(), &origin)?
        } else {
            parse_formats(&args.report.format, "--format")?
        };
        if args.report.out_dir.is_some() && syncs.len() > 1 {
            return Err(invalid!(
                "--out-dir names one folder but {} syncs are planned; set [report] dir instead",
                syncs.len()
            ));
        }
        let report_dir = file
            .report
            .dir
            .as_deref()
            .map_or_else(|| PathBuf::from("reports"), |p| rel(&base, p));
        let ReportArgs { out_dir, .. } = &args.report;
        let ops = ops(&file, &base)?;
        for sync in &syncs {
            if sync.review == ReviewMode::Approve && sync.target != Location::Live {
                return Err(invalid!("`{}` has review = \"approve\", which asks for approval in a ServiceNow change request: it needs a live ServiceNow target, not a target_file", sync.mapping.display()));
            }
        }
        let lease_cfg = lease(&file.lease, &base)?;
        let catalog = file
            .catalog
            .as_ref()
            .map(|c| catalog(c, &base, &lease_cfg))
            .transpose()?;
        Ok(Self {
            catalog,
            report_dir,
            out_dir: out_dir.clone(),
            formats,
            syncs,
            cloudforms,
            servicenow,
            apply: apply_opts,
            max_plan_age,
            lease: lease(&file.lease, &base)?,
            ticket: file.ticket.map(|t| {
                let defaults = TicketConfig::default();
                TicketConfig {
                    table: t.table.unwrap_or(defaults.table),
                    fields: t.fields.into_iter().collect(),
                    close: t.close.unwrap_or(defaults.close),
                }
            }),
            review: review(file.review, &origin)?,
            ops,
        })
    }

    /// The configuration of `apply`: the ServiceNow connection and apply settings.
    pub fn for_apply(
        config: &Option<PathBuf>,
        connections: &ConnectionArgs,
        apply: &ApplyOpts,
    ) -> Result<ApplyConfig> {
        let Loaded { file, base, .. } = load(config)?;
        let servicenow =
            servicenow(file.servicenow.as_ref(), connections, &base)?.ok_or_else(|| {
                invalid!("apply needs a [servicenow] url (config file or SERVICENOW_URL)")
            })?;
        let (options, max_plan_age) = apply_options(&file.apply, apply)?;
        let lease_cfg = lease(&file.lease, &base)?;
        let catalog_cfg = file
            .catalog
            .as_ref()
            .map(|c| catalog(c, &base, &lease_cfg))
            .transpose()?;
        Ok(ApplyConfig {
            // Only a config that orders needs CloudForms to apply: without [catalog], an
            // apply with ServiceNow's credentials alone works as it always did.
            cloudforms: match &catalog_cfg {
                Some(_) => cloudforms(file.cloudforms.as_ref(), connections, &base)?,
                None => None,
            },
            catalog: catalog_cfg,
            servicenow,
            options,
            max_plan_age,
            lease: lease(&file.lease, &base)?,
            ops: ops(&file, &base)?,
        })
    }
}

#[cfg(test)]
mod tests;
