//! cmdb-reconcile: keeps a ServiceNow CMDB true to what CloudForms (ManageIQ) knows about VMs.
//!
//! The pipeline runs one way: source records and target CIs go into the pure [`reconcile`]
//! core, which returns a [`reconcile::plan::Plan`]; [`report`] renders it. See ARCHITECTURE.md.

pub mod app;
pub mod apply;
pub mod cli;
pub mod cloudforms;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod lease;
pub mod metrics;
pub mod net;
pub mod output;
pub mod progress;
pub mod reconcile;
pub mod report;
pub mod review;
pub mod servicenow;
pub mod text;
pub mod ticket;
