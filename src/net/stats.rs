//! What this process said to each API, for the run's metrics: requests sent, 429s received and
//! retries made. Process-wide counters (one run per process), bumped where the clients already
//! count requests and where [`Attempts`](super::Attempts) decides to try again; read once at
//! the end of the run by `metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The two APIs the job speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Api {
    CloudForms,
    ServiceNow,
}

impl Api {
    pub const ALL: [Api; 2] = [Api::CloudForms, Api::ServiceNow];

    /// The `api` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::CloudForms => "cloudforms",
            Api::ServiceNow => "servicenow",
        }
    }

    fn index(self) -> usize {
        match self {
            Api::CloudForms => 0,
            Api::ServiceNow => 1,
        }
    }
}

/// The counts of one API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiCounts {
    /// HTTP requests sent (token requests included).
    pub requests: u64,
    /// Responses `429 Too Many Requests`.
    pub rate_limited: u64,
    /// Attempts made again after a failed one (any reason the retry policy accepts).
    pub retries: u64,
}

struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
}

static COUNTERS: [Counters; 2] = [
    Counters {
        requests: AtomicU64::new(0),
        rate_limited: AtomicU64::new(0),
        retries: AtomicU64::new(0),
    },
    Counters {
        requests: AtomicU64::new(0),
        rate_limited: AtomicU64::new(0),
        retries: AtomicU64::new(0),
    },
];

/// Base URLs (scheme, host, port) of the clients built so far: a retry knows only its
/// error's URL, and this says which API that is.
static ORIGINS: Mutex<Vec<(String, Api)>> = Mutex::new(Vec::new());

/// One request sent to `api`.
pub fn request(api: Api) {
    COUNTERS[api.index()]
        .requests
        .fetch_add(1, Ordering::Relaxed);
}

/// One `429` received from `api`.
pub fn rate_limited(api: Api) {
    COUNTERS[api.index()]
        .rate_limited
        .fetch_add(1, Ordering::Relaxed);
}

/// Remembers that requests to `base`'s origin go to `api` (called when a client is built).
pub fn register(api: Api, base: &url::Url) {
    let origin = base.origin().ascii_serialization();
    let mut origins = ORIGINS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !origins.iter().any(|(o, a)| *o == origin && *a == api) {
        origins.push((origin, api));
    }
}

/// One retry of a request to `url` (an error's URL); not counted when no client claims it.
pub fn retried(url: &str) {
    let Ok(url) = url::Url::parse(url) else {
        return;
    };
    let origin = url.origin().ascii_serialization();
    let api = ORIGINS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|(o, _)| *o == origin)
        .map(|(_, api)| *api);
    if let Some(api) = api {
        COUNTERS[api.index()]
            .retries
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// The counts of `api` so far.
pub fn counts(api: Api) -> ApiCounts {
    let c = &COUNTERS[api.index()];
    ApiCounts {
        requests: c.requests.load(Ordering::Relaxed),
        rate_limited: c.rate_limited.load(Ordering::Relaxed),
        retries: c.retries.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_counted_against_the_api_of_their_origin() {
        // Other tests in this process count too: compare before and after.
        let base = url::Url::parse("http://127.0.0.1:1/api").unwrap();
        register(Api::CloudForms, &base);
        let before = counts(Api::CloudForms).retries;
        retried("http://127.0.0.1:1/api/vms?offset=0");
        retried("http://127.0.0.1:2/api/vms"); // nobody's
        retried("not a url");
        assert_eq!(counts(Api::CloudForms).retries, before + 1);
    }
}
