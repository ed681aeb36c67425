//! Targets: the CIs of a ServiceNow table from an export file ([`snapshot`]) or the live
//! Table API ([`servicenow`]), which also carries out writes for `apply`.

pub mod servicenow;
pub mod snapshot;
