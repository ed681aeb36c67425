//! The pure core: data in, plan out. No async, no I/O, no clock, no environment.
//!
//! Invariant: nothing here can fail on bad data. A bad record or value becomes an
//! [`plan::Issue`] in the plan; the run goes on.

pub mod catalog;
pub mod classify;
mod desired;
pub mod diff;
pub mod identity;
pub mod mapping;
pub mod plan;
pub mod planner;
mod policy;
pub mod record;
pub mod relations;
pub mod review;
pub mod schema;
