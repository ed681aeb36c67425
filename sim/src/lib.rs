//! Simulators of the ManageIQ and ServiceNow APIs (built in a later issue).
