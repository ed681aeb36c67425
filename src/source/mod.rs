//! Sources of VM records: a CloudForms snapshot file ([`snapshot`]) or the live REST API
//! ([`cloudforms`]). Both give a [`SourceRead`] that says whether it is complete.

pub mod cloudforms;
pub mod snapshot;

use serde_json::Value;

/// What a source read produced: the records as JSON values, whether the read is complete
/// (and why not), and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRead {
    pub origin: String,
    pub records: Vec<Value>,
    /// Why the read is not complete; `None` when every record the server has was read.
    pub incomplete: Option<String>,
}
