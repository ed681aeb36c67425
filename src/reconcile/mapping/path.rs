//! Source paths: how a mapping names a value inside a CloudForms record
//! (`hardware.memory_mb`, `ipaddresses[0]`, `tags.0.name`, `miq_request_tasks[*].options.vm_target_name`),
//! and which attribute the API must be asked for so that the path has something to read.

use std::borrow::Cow;
use std::fmt;

use crate::reconcile::record::{Obj, Val};

/// A path into a source record: `hardware.memory_mb`, `ipaddresses[0]`, `tags.0.name`, and
/// with `[*]` the same rest of the path under every element of an array
/// (`miq_request_tasks[*].options.vm_target_name`: a list, one value per task).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Key(String),
    Index(usize),
    /// `[*]`: every element of an array.
    Each,
}

impl Path {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty source path".into());
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if key.is_empty() && rest.is_empty() {
                return Err(format!("empty segment in path `{text}`"));
            }
            if !key.is_empty() {
                match key.parse::<usize>() {
                    Ok(i) => segments.push(Segment::Index(i)),
                    Err(_) => segments.push(Segment::Key(key.to_owned())),
                }
            }
            while !rest.is_empty() {
                let close = rest
                    .find(']')
                    .ok_or_else(|| format!("unclosed `[` in path `{text}`"))?;
                let inner = rest[1..close].trim();
                if inner == "*" {
                    segments.push(Segment::Each);
                } else {
                    let index = inner.parse::<usize>().map_err(|_| {
                        format!(
                            "`{}` is not an array index (or `*`) in path `{text}`",
                            &rest[1..close]
                        )
                    })?;
                    segments.push(Segment::Index(index));
                }
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(format!("unexpected `{rest}` in path `{text}`"));
                }
            }
        }
        Ok(Self(segments))
    }

    /// The value at this path, `None` when any step is missing. Borrowed from the record,
    /// except under `[*]`: that builds the array of what the rest of the path finds under each
    /// element (elements where it finds nothing are left out; an array found is flattened).
    pub fn get<'a>(&self, data: &'a Obj) -> Option<Cow<'a, Val>> {
        let (first, rest) = self.0.split_first()?;
        let Segment::Key(k) = first else {
            return None;
        };
        walk(data.get(k)?, rest)
    }

    /// The keys along the path, array steps left out (what a record must keep for it).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|s| match s {
            Segment::Key(k) => Some(k.as_str()),
            Segment::Index(_) | Segment::Each => None,
        })
    }

    /// Whether the path has a `[*]` step (it then gives a list).
    pub fn projects(&self) -> bool {
        self.0.contains(&Segment::Each)
    }

    /// The CloudForms attribute to request for this path: the keys up to the first index
    /// (`ipaddresses[0]` needs `ipaddresses`, `hardware.memory_mb` needs itself,
    /// `miq_request_tasks[*].options` needs `miq_request_tasks`).
    pub fn attribute(&self) -> String {
        let keys: Vec<&str> = self
            .0
            .iter()
            .map_while(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) | Segment::Each => None,
            })
            .collect();
        keys.join(".")
    }
}

/// The rest of a path from `current`.
fn walk<'a>(mut current: &'a Val, segments: &[Segment]) -> Option<Cow<'a, Val>> {
    for (at, segment) in segments.iter().enumerate() {
        current = match (segment, current) {
            (Segment::Key(k), Val::Object(map)) => map.get(k)?,
            (Segment::Index(i), Val::Array(items)) => items.get(*i)?,
            (Segment::Each, Val::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match walk(item, &segments[at + 1..]).map(Cow::into_owned) {
                        Some(Val::Array(inner)) => out.extend(inner.into_vec()),
                        Some(Val::Null) | None => {}
                        Some(value) => out.push(value),
                    }
                }
                return Some(Cow::Owned(Val::Array(out.into_boxed_slice())));
            }
            _ => return None,
        };
    }
    Some(Cow::Borrowed(current))
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Each => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}
