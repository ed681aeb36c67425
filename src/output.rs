//! What the job prints besides its log events, and where: decided once in `main` from the
//! flags and whether stdout/stderr are terminals (README "Output and logs").
//!
//! - The summary table goes to stdout on a terminal, or anywhere with `--summary`; never with
//!   `-q` unless asked, so a successful cron run prints nothing and cron mails nobody.
//! - Errors, refusals and "busy" are one line on stderr: plain text for people, a JSON log
//!   event in JSON mode (one log stream a collector can parse).
//! - Every printed line goes through [`printable`]: server text (an error body, a lease
//!   holder's name) cannot move the cursor, recolour the terminal or hide a line.

use std::sync::OnceLock;
use std::time::Duration;

use crate::report::summary::printable;

/// How this process prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Logs are JSON lines: stderr lines become log events too.
    pub json: bool,
    /// Print the summary table (and the apply outcome lines) on stdout.
    pub summary: bool,
}

impl Default for Mode {
    /// A library caller (tests, the demo) that set no mode: text, with the summary.
    fn default() -> Self {
        Self {
            json: false,
            summary: true,
        }
    }
}

impl Mode {
    /// The mode for the flags: `--summary` forces the table; otherwise it is printed only
    /// when stdout is a terminal and `-q` was not given.
    pub fn new(json: bool, quiet: bool, summary_flag: bool, stdout_is_terminal: bool) -> Self {
        Self {
            json,
            summary: summary_flag || (stdout_is_terminal && !quiet),
        }
    }
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// Sets the mode for the process (the first call wins).
pub fn init(mode: Mode) {
    let _ = MODE.set(mode);
}

/// The process's mode.
pub fn mode() -> Mode {
    MODE.get().copied().unwrap_or_default()
}

/// Prints the summary (table, outcome lines) on stdout when the mode says so.
pub fn summary(text: &str) {
    if mode().summary && !text.is_empty() {
        let text = printable(text);
        crate::progress::suspend(|| {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        });
    }
}

/// The level of a [`notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Warn,
    Error,
}

/// One line on stderr for a person, `prefix: message` (`error`, `refused`, `busy`), or in
/// JSON mode a log event with the message and the prefix as its `kind`.
pub fn notice(level: Level, prefix: &str, message: &str) {
    if mode().json {
        let message = printable(message);
        match level {
            Level::Warn => tracing::warn!(kind = prefix, "{message}"),
            Level::Error => tracing::error!(kind = prefix, "{message}"),
        }
    } else {
        let line = format!("{prefix}: {message}");
        let line = printable(&line);
        crate::progress::suspend(|| eprintln!("{line}"));
    }
}

/// An error line: `error: ...` (see [`notice`]).
pub fn error(message: &str) {
    notice(Level::Error, "error", message);
}

/// A duration as log fields carry it: seconds, rounded to the millisecond.
pub fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_needs_a_terminal_or_the_flag_and_quiet_silences_it() {
        assert!(Mode::new(false, false, false, true).summary);
        assert!(
            !Mode::new(false, false, false, false).summary,
            "cron: no table"
        );
        assert!(
            !Mode::new(false, true, false, true).summary,
            "-q on a terminal"
        );
        assert!(Mode::new(true, true, true, false).summary, "--summary wins");
    }

    #[test]
    fn durations_are_seconds_to_the_millisecond() {
        assert_eq!(seconds(Duration::from_nanos(124_961_464)), 0.125);
        assert_eq!(seconds(Duration::from_secs(19)), 19.0);
        assert_eq!(seconds(Duration::ZERO), 0.0);
    }
}
