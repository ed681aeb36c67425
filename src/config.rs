//! Configuration: the config file, overridden by flags (and environment variables where the
//! CLI declares them), validated into a [`Config`]. Relative paths in a config file are
//! relative to the file's own folder, so a config works from any working directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cli::{PlanArgs, ReportArgs};
use crate::report::Format;

/// Where records or CIs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
}

/// One mapping to reconcile: a source collection into a CMDB table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    pub mapping: PathBuf,
    pub source: Location,
    pub target: Location,
    /// Referenced tables for lookups: table -> export file.
    pub references: Vec<(String, PathBuf)>,
}

/// Validated settings for one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub report_dir: PathBuf,
    /// When set, reports go exactly here (one sync only).
    pub out_dir: Option<PathBuf>,
    pub formats: Vec<Format>,
    pub syncs: Vec<SyncConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    report: FileReport,
    #[serde(default)]
    sync: Vec<FileSync>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReport {
    dir: Option<PathBuf>,
    formats: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSync {
    mapping: PathBuf,
    source_file: Option<PathBuf>,
    target_file: Option<PathBuf>,
    #[serde(default)]
    references: BTreeMap<String, PathBuf>,
}

fn parse_formats(names: &[String], origin: &str) -> Result<Vec<Format>> {
    if names.is_empty() {
        return Ok(Format::ALL.to_vec());
    }
    let mut formats = Vec::new();
    for name in names {
        let format: Format = name.parse().map_err(|_| {
            anyhow::anyhow!(
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

fn read_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file `{}`", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                (
                    before.matches('\n').count() + 1,
                    before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
                )
            })
            .unwrap_or((1, 1));
        anyhow::anyhow!("{}:{line}:{column}: {}", path.display(), e.message().trim())
    })
}

impl Config {
    /// Builds the configuration of `plan` from its flags and, if given, the config file.
    pub fn for_plan(args: &PlanArgs) -> Result<Self> {
        let (file, base) = match &args.config {
            Some(path) => {
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (read_file_config(path)?, base)
            }
            None => (FileConfig::default(), PathBuf::new()),
        };
        let origin = args
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "--format".into());
        let rel = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let mut syncs = Vec::new();
        for (i, s) in file.sync.iter().enumerate() {
            let what = |key: &str| format!("[[sync]] #{} in `{}` has no `{key}`", i + 1, origin);
            syncs.push(SyncConfig {
                mapping: rel(&s.mapping),
                source: Location::File(rel(s
                    .source_file
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!(what("source_file")))?)),
                target: Location::File(rel(s
                    .target_file
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!(what("target_file")))?)),
                references: s
                    .references
                    .iter()
                    .map(|(t, p)| (t.clone(), rel(p)))
                    .collect(),
            });
        }

        let flags_given =
            args.mapping.is_some() || args.source_file.is_some() || args.target_file.is_some();
        if flags_given {
            match syncs.len() {
                0 => {
                    let need = |v: &Option<PathBuf>, flag: &str| {
                        v.clone().ok_or_else(|| anyhow::anyhow!("`{flag}` is required without a config file's [[sync]] entry"))
                    };
                    syncs.push(SyncConfig {
                        mapping: need(&args.mapping, "--mapping")?,
                        source: Location::File(need(&args.source_file, "--source-file")?),
                        target: Location::File(need(&args.target_file, "--target-file")?),
                        references: Vec::new(),
                    });
                }
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
                n => bail!("`{origin}` has {n} [[sync]] entries; --mapping, --source-file and --target-file can override only one"),
            }
        }
        if syncs.is_empty() {
            bail!("nothing to plan: give --config with a [[sync]] entry, or --mapping, --source-file and --target-file");
        }
        for sync in &mut syncs {
            sync.references.extend(args.references.iter().cloned());
        }
        Self::finish(file.report, base, &args.report, syncs, &origin)
    }

    fn finish(
        report: FileReport,
        base: PathBuf,
        flags: &ReportArgs,
        syncs: Vec<SyncConfig>,
        origin: &str,
    ) -> Result<Self> {
        let formats = if flags.format.is_empty() {
            parse_formats(report.formats.as_deref().unwrap_or_default(), origin)?
        } else {
            parse_formats(&flags.format, "--format")?
        };
        if flags.out_dir.is_some() && syncs.len() > 1 {
            bail!(
                "--out-dir names one folder but {} syncs are planned; set [report] dir instead",
                syncs.len()
            );
        }
        let report_dir = match report.dir {
            Some(d) if d.is_absolute() => d,
            Some(d) => base.join(d),
            None => PathBuf::from("reports"),
        };
        Ok(Self {
            report_dir,
            out_dir: flags.out_dir.clone(),
            formats,
            syncs,
        })
    }
}
