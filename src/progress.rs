//! Progress on a terminal: records read per API (with pages), a spinner while a sync is
//! planned, and writes done out of planned with rate and ETA (indicatif).
//!
//! One process-wide handle, switched on by `main` only when stderr is a terminal, the logs
//! are text and `-q` was not given; every function here is a no-op otherwise, so the
//! clients, the app and the executor call it without threading a handle through their
//! signatures. Log lines and printed lines go through [`suspend`], so a bar never tears them.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::net::stats::Api;

struct Bars {
    multi: MultiProgress,
    reads: Mutex<HashMap<Api, (ProgressBar, u64)>>,
    writes: Mutex<Option<ProgressBar>>,
}

static BARS: OnceLock<Bars> = OnceLock::new();

/// Turns progress on for this process (stderr must be a terminal; see the module doc).
pub fn enable() {
    let _ = BARS.set(Bars {
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
        reads: Mutex::new(HashMap::new()),
        writes: Mutex::new(None),
    });
}

fn bars() -> Option<&'static Bars> {
    BARS.get()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
        // Whole writes per second: indicatif's own `per_sec` shows four decimals.
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        )
}

fn api_name(api: Api) -> &'static str {
    match api {
        Api::CloudForms => "CloudForms",
        Api::ServiceNow => "ServiceNow",
    }
}

/// The read bar of `api`, made on first use; the closure gets it and its page count.
fn with_read_bar(api: Api, f: impl FnOnce(&ProgressBar, &mut u64)) {
    let Some(bars) = bars() else { return };
    let mut reads = lock(&bars.reads);
    let (bar, pages) = reads.entry(api).or_insert_with(|| {
        let bar = bars.multi.add(ProgressBar::new(0));
        bar.set_style(style(
            "{prefix:>10} [{bar:30}] {human_pos}/{human_len} records, {msg} ({elapsed})",
        ));
        bar.set_prefix(api_name(api));
        bar.set_message("0 pages");
        (bar, 0)
    });
    f(bar, pages);
}

/// A read of `api` announced `records` more to come (a first page's total).
pub fn read_expected(api: Api, records: u64) {
    with_read_bar(api, |bar, _| bar.inc_length(records));
}

/// A page of `records` arrived from `api`.
pub fn page_read(api: Api, records: u64) {
    with_read_bar(api, |bar, pages| {
        *pages += 1;
        bar.inc(records);
        bar.set_message(format!("{pages} pages"));
    });
}

/// The reads are done: their bars go.
pub fn reads_finished() {
    let Some(bars) = bars() else { return };
    for (_, (bar, _)) in lock(&bars.reads).drain() {
        bar.finish_and_clear();
    }
}

/// A spinner saying what is going on (e.g. planning a sync) until the guard drops.
pub fn phase(message: String) -> Phase {
    let bar = bars().map(|bars| {
        let bar = bars.multi.add(ProgressBar::new_spinner());
        bar.set_style(style("{spinner} {msg} ({elapsed})"));
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    Phase(bar)
}

/// Clears its spinner when dropped.
pub struct Phase(Option<ProgressBar>);

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Writes begin: `total` operations to send.
pub fn writes_started(total: u64) {
    let Some(bars) = bars() else { return };
    let bar = bars.multi.add(ProgressBar::new(total));
    bar.set_style(style(
        "{prefix:>10} [{bar:30}] {human_pos}/{human_len} writes, {rate}, ETA {eta} ({elapsed})",
    ));
    bar.set_prefix("apply");
    bar.enable_steady_tick(Duration::from_millis(250));
    if let Some(old) = lock(&bars.writes).replace(bar) {
        old.finish_and_clear();
    }
}

/// `n` operations ended (written, failed or skipped).
pub fn writes_done(n: u64) {
    if let Some(bar) = bars().and_then(|b| lock(&b.writes).clone()) {
        bar.inc(n);
    }
}

/// The writes are over: every bar goes.
pub fn writes_finished() {
    let Some(bars) = bars() else { return };
    if let Some(bar) = lock(&bars.writes).take() {
        bar.finish_and_clear();
    }
    reads_finished();
}

/// Runs `f` (which prints) with the bars hidden, so its output is never torn by a redraw.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match bars() {
        Some(bars) => bars.multi.suspend(f),
        None => f(),
    }
}

/// The log writer: stderr, through [`suspend`], one event per write.
pub struct LogWriter(Vec<u8>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.0.is_empty() {
            let buf = std::mem::take(&mut self.0);
            suspend(|| std::io::Write::write_all(&mut std::io::stderr(), &buf))?;
        }
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

/// Makes a [`LogWriter`] per log event (for `tracing_subscriber::fmt().with_writer`).
pub fn log_writer() -> LogWriter {
    LogWriter(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_terminal_everything_is_a_no_op() {
        // `enable` is never called in tests: no bar exists, nothing panics, output passes.
        read_expected(Api::CloudForms, 10);
        page_read(Api::CloudForms, 5);
        let _spinner = phase("planning".into());
        writes_started(3);
        writes_done(1);
        writes_finished();
        assert_eq!(suspend(|| 7), 7);
    }
}
