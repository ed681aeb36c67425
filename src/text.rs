//! Pure text helpers shared by the config and mapping parsers: where a byte offset sits as a
//! line and column (for positioned errors), and the duration syntax (`0`, `90s`, `24h`, `7d`),
//! read and written.
//!
//! They live outside `reconcile/` because `config.rs` needs them too, and the config should
//! not reach into the core's mapping language for its own error messages.

/// The 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where a key is set in a TOML text (`key = ...` at the start of a line), else where the
/// word first appears: for pointing an error at a mapping's field. 1-based line and column.
pub fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some((n + 1, line.len() - trimmed.len() + 1));
            }
        }
    }
    for (n, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find(key) {
            let start = from + at;
            let end = start + key.len();
            let before = line[..start].chars().next_back();
            let after = line[end..].chars().next();
            if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
                return Some((n + 1, line[..start].chars().count() + 1));
            }
            from = end;
        }
    }
    None
}

/// Parses a duration: `0`, `90s`, `30m`, `24h`, `7d`, `2w`.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(0);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like `24h` or `7d`"))?;
    let scale = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("`{text}` is not a duration like `24h` or `7d`")),
    };
    // A duration of centuries is a typo, not a setting; it must not overflow either way.
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// A duration as the config writes it: the largest unit that divides it (`30m`, `90s`,
/// `2h`), milliseconds below a second.
pub fn format_duration(d: std::time::Duration) -> String {
    if d.subsec_nanos() != 0 || d.is_zero() {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let unit = [(604_800, "w"), (86_400, "d"), (3600, "h"), (60, "m")]
        .into_iter()
        .find(|(scale, _)| secs.is_multiple_of(*scale));
    match unit {
        Some((scale, unit)) => format!("{}{unit}", secs / scale),
        None => format!("{secs}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_where_they_are_set() {
        let text =
            "[fields]\nname = \"name\"\n  owend_by = \"x\"\n[target]\nscope = \"u_flag=true\"\n";
        assert_eq!(key_position(text, "owend_by"), Some((3, 3)));
        assert_eq!(key_position(text, "u_flag"), Some((5, 10)));
        assert_eq!(key_position(text, "flag"), None);
    }

    #[test]
    fn absurd_durations_are_errors_not_overflows() {
        assert!(parse_duration("20000000000000w").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert!(parse_duration("7 days").is_err());
    }

    #[test]
    fn durations_are_written_as_read() {
        use std::time::Duration;
        for text in ["30m", "90s", "2h", "3d", "2w", "61s"] {
            let secs = parse_duration(text).unwrap() as u64;
            assert_eq!(format_duration(Duration::from_secs(secs)), text);
        }
        assert_eq!(format_duration(Duration::from_millis(800)), "800ms");
    }

    #[test]
    fn lines_and_columns_count_characters_from_one() {
        let text = "a = 1\nné = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // `é` is two bytes but one column; an offset inside it counts from its start.
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 8), (2, 2));
        assert_eq!(line_column(text, 1000), (3, 1));
    }
}
