//! Simulators of the ManageIQ and ServiceNow APIs (built in a later issue).
pub mod servicenow;
pub mod tls;
