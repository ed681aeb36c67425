//! Source paths: how a mapping names a value inside a CloudForms record
//! (`hardware.memory_mb`, `ipaddresses[0]`, `tags.0.name`), and which attribute the API must
//! be asked for so that the path has something to read.

use std::fmt;

use serde_json::Value;

/// A path into a source record: `hardware.memory_mb`, `ipaddresses[0]`, `tags.0.name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Key(String),
    Index(usize),
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
                let index = rest[1..close].trim().parse::<usize>().map_err(|_| {
                    format!(
                        "`{}` is not an array index in path `{text}`",
                        &rest[1..close]
                    )
                })?;
                segments.push(Segment::Index(index));
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(format!("unexpected `{rest}` in path `{text}`"));
                }
            }
        }
        Ok(Self(segments))
    }

    /// The value at this path, `None` when any step is missing.
    pub fn get<'a>(&self, data: &'a serde_json::Map<String, Value>) -> Option<&'a Value> {
        let mut segments = self.0.iter();
        let mut current = match segments.next()? {
            Segment::Key(k) => data.get(k)?,
            Segment::Index(_) => return None,
        };
        for segment in segments {
            current = match (segment, current) {
                (Segment::Key(k), Value::Object(map)) => map.get(k)?,
                (Segment::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// The CloudForms attribute to request for this path: the keys up to the first index
    /// (`ipaddresses[0]` needs `ipaddresses`, `hardware.memory_mb` needs itself).
    pub fn attribute(&self) -> String {
        let keys: Vec<&str> = self
            .0
            .iter()
            .map_while(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) => None,
            })
            .collect();
        keys.join(".")
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}
