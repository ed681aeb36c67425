//! Simulators of the ManageIQ and ServiceNow APIs (work in progress).
pub mod generator;
pub mod manageiq;
pub mod servicenow;
pub mod tls;
