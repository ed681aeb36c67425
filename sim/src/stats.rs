//! Request counters of one simulated API, read and reset through
//! `GET`/`DELETE /_sim/stats`: totals, and counts by route template
//! (`GET /api/vms`, `PATCH /api/now/table/{table}/{sys_id}`), by method, by
//! status and by injected fault, and the most requests ever in flight at once (how a client's
//! concurrency shows without timing anything). Admin routes (`/_sim/...`) are not counted.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Shared counters; cheap to lock (one short critical section per request).
#[derive(Default)]
pub struct Stats {
    inner: Mutex<Counters>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// Marks one request in flight until dropped.
pub struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Counters {
    total: u64,
    by_route: BTreeMap<String, RouteCounters>,
    by_method: BTreeMap<String, u64>,
    by_status: BTreeMap<u16, u64>,
    faults: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct RouteCounters {
    total: u64,
    by_status: BTreeMap<u16, u64>,
}

impl Stats {
    /// Counts one request. `route` is `METHOD /template`; `status` is what the
    /// handler (or the fault) produced; `fault` names an injected fault.
    pub fn record(&self, route: &str, method: &str, status: u16, fault: Option<&'static str>) {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        c.total += 1;
        let r = c.by_route.entry(route.to_owned()).or_default();
        r.total += 1;
        *r.by_status.entry(status).or_default() += 1;
        *c.by_method.entry(method.to_owned()).or_default() += 1;
        *c.by_status.entry(status).or_default() += 1;
        if let Some(f) = fault {
            *c.faults.entry(f).or_default() += 1;
        }
    }

    pub fn reset(&self) {
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = Counters::default();
        self.max_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// A request starts; it stays in flight until the guard drops.
    pub fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    /// `{"total", "by_route": {"GET /api/vms": {"total", "by_status"}}, "by_method",
    /// "by_status", "faults"}`; keys sorted.
    pub fn snapshot(&self) -> Value {
        let c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let statuses = |m: &BTreeMap<u16, u64>| -> Map<String, Value> {
            m.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
        };
        let by_route: Map<String, Value> = c
            .by_route
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    json!({"total": r.total, "by_status": statuses(&r.by_status)}),
                )
            })
            .collect();
        json!({
            "total": c.total,
            "by_route": by_route,
            "by_method": c.by_method,
            "by_status": statuses(&c.by_status),
            "faults": c.faults,
            "max_in_flight": self.max_in_flight.load(Ordering::SeqCst),
        })
    }

    /// Requests counted for one route (`"GET /api/vms"`), 0 if none.
    pub fn route_total(&self, route: &str) -> u64 {
        let c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        c.by_route.get(route).map_or(0, |r| r.total)
    }
}

/// The route a request is counted under: axum's matched route template, or,
/// when that is a catch-all (the ServiceNow router serves `/api/now/{*path}`),
/// a template derived from the path: `/api/now/table/{table}/{sys_id}`,
/// `/api/now/v1/batch`, `/api/now/attachment/{sys_id}/file`.
pub fn route_template(matched: Option<&str>, path: &str) -> String {
    let Some(matched) = matched else {
        return "<unmatched>".to_owned();
    };
    if !matched.contains("{*") {
        return matched.to_owned();
    }
    let Some(rest) = path.strip_prefix("/api/now/") else {
        return matched.to_owned();
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = String::from("/api/now");
    let mut i = 0;
    if let Some(v) = segs.first() {
        if v.len() > 1 && v.starts_with('v') && v[1..].bytes().all(|b| b.is_ascii_digit()) {
            out.push('/');
            out.push_str(v);
            i = 1;
        }
    }
    match segs.get(i) {
        Some(&"table") => {
            out.push_str("/table");
            for (k, name) in ["{table}", "{sys_id}"].iter().enumerate() {
                if segs.len() > i + 1 + k {
                    out.push('/');
                    out.push_str(name);
                }
            }
        }
        Some(&"attachment") => {
            out.push_str("/attachment");
            // `POST /attachment/file` uploads; `/attachment/{sys_id}/file` downloads.
            if segs.len() == i + 2 && segs[i + 1] == "file" {
                out.push_str("/file");
            } else if segs.len() > i + 1 {
                out.push_str("/{sys_id}");
            }
            if let Some(tail) = segs.get(i + 2) {
                out.push('/');
                out.push_str(tail);
            }
        }
        Some(first) => {
            out.push('/');
            out.push_str(first);
            for _ in segs.iter().skip(i + 1) {
                out.push_str("/{id}");
            }
        }
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_all_routes_get_a_template_from_the_path() {
        let t = |p: &str| route_template(Some("/api/now/{*path}"), p);
        assert_eq!(t("/api/now/table/incident"), "/api/now/table/{table}");
        assert_eq!(
            t("/api/now/table/cmdb_ci_vmware_instance/abc123"),
            "/api/now/table/{table}/{sys_id}"
        );
        assert_eq!(t("/api/now/v2/table/incident"), "/api/now/v2/table/{table}");
        assert_eq!(t("/api/now/v1/batch"), "/api/now/v1/batch");
        assert_eq!(
            t("/api/now/attachment/abc/file"),
            "/api/now/attachment/{sys_id}/file"
        );
        assert_eq!(t("/api/now/attachment/file"), "/api/now/attachment/file");
        assert_eq!(
            route_template(Some("/api/vms/{id}"), "/api/vms/1"),
            "/api/vms/{id}"
        );
        assert_eq!(route_template(None, "/nope"), "<unmatched>");
    }

    #[test]
    fn counts_by_route_method_status_and_fault() {
        let s = Stats::default();
        s.record("GET /api/vms", "GET", 200, None);
        s.record("GET /api/vms", "GET", 503, Some("error"));
        s.record("GET /api/vms/{id}", "GET", 404, None);
        let v = s.snapshot();
        assert_eq!(v["total"], 3);
        assert_eq!(v["by_route"]["GET /api/vms"]["total"], 2);
        assert_eq!(v["by_route"]["GET /api/vms"]["by_status"]["503"], 1);
        assert_eq!(v["by_method"]["GET"], 3);
        assert_eq!(v["by_status"]["404"], 1);
        assert_eq!(v["faults"]["error"], 1);
        assert_eq!(s.route_total("GET /api/vms"), 2);
        s.reset();
        assert_eq!(s.snapshot()["total"], 0);
    }
}
