//! Shared HTTP plumbing for the adapters (`cloudforms/`, `servicenow/`, `apply/`): what the
//! two clients and the executor must do alike, written once.
//!
//! - `http`: a client per API with timeouts and TLS settings, and [`HttpError`], which names
//!   the method and URL (never a credential) and says whether a retry may help;
//! - `retry`: the retry decision as a pure function, and the one loop that applies it
//!   ([`with_retry`], or [`Attempts`] for callers with work between attempts);
//! - `pace`: the [`Pacer`] every request to one API waits its turn at: a configured rate,
//!   lowered by 429s and recovering slowly, the pause after a 429, and the budget the
//!   server's rate-limit headers describe;
//! - `token`: [`Secret`], and the [`TokenCache`] both clients keep their session token in;
//! - `pages`: the [`PageWindow`] both clients read the pages after the first through;
//! - `stats`: requests, 429s and retries per API, for the run's metrics.

mod http;
mod pace;
mod pages;
mod retry;
pub mod stats;
mod token;

#[cfg(test)]
mod mtls_tests;

pub use self::http::{
    build_client, printable, redact, retry_after, ClientError, ErrorKind, HttpError, HttpSettings,
};
pub use self::pace::{Pacer, Turn};
pub use self::pages::{Fetched, PageFlow, PageWindow};
pub use self::retry::{decide, with_retry, Attempts, Decision, RetryPolicy};
pub use self::token::{Issued, Secret, Token, TokenCache};
