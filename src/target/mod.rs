//! Targets: the CIs of a ServiceNow table from a snapshot file (here) and, later, the live API.

pub mod snapshot;
pub mod servicenow;
