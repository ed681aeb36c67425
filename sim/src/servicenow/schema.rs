//! The little of ServiceNow's data dictionary the simulator knows: which fields are references
//! (and to which table), the labels of a few choice lists, and which field names a record.
//!
//! Tables are schemaless otherwise: a table's columns are the fields its rows ever carried.

/// The table a reference field points to, if `field` of `table` is a reference.
pub(crate) fn reference_target(table: &str, field: &str) -> Option<&'static str> {
    match (table, field) {
        ("cmdb_rel_ci", "parent" | "child") => Some("cmdb_ci"),
        ("cmdb_rel_ci", "type") => Some("cmdb_rel_type"),
        (
            _,
            "owned_by" | "assigned_to" | "managed_by" | "supported_by" | "opened_by" | "caller_id"
            | "resolved_by" | "closed_by",
        ) => Some("sys_user"),
        (_, "support_group" | "assignment_group") => Some("sys_user_group"),
        (_, "location") => Some("cmn_location"),
        (_, "cmdb_ci") => Some("cmdb_ci"),
        (_, "company" | "vendor" | "manufacturer") => Some("core_company"),
        (_, "department") => Some("cmn_department"),
        (_, "cost_center") => Some("cmn_cost_center"),
        _ => None,
    }
}

/// Whether a row of `table` can be the target of a reference to `target`.
///
/// The store keeps every class in its own table (no table inheritance), so a reference to the
/// base class `cmdb_ci` may land in any `cmdb_ci_*` table.
pub(crate) fn serves_reference(target: &str, table: &str) -> bool {
    table == target
        || (target == "cmdb_ci"
            && table
                .strip_prefix("cmdb_ci_")
                .is_some_and(|rest| !rest.is_empty()))
}

/// The label of a choice value, for `sysparm_display_value=true|all`.
pub(crate) fn choice_label(table: &str, field: &str, value: &str) -> Option<&'static str> {
    let label = match (field, value) {
        ("install_status", "1") => "Installed",
        ("install_status", "2") => "On Order",
        ("install_status", "3") => "In Maintenance",
        ("install_status", "4") => "Pending Install",
        ("install_status", "5") => "Pending Repair",
        ("install_status", "6") => "In Stock",
        ("install_status", "7") => "Retired",
        ("install_status", "8") => "Stolen",
        ("install_status", "100") => "Absent",
        ("operational_status", "1") => "Operational",
        ("operational_status", "2") => "Non-Operational",
        ("operational_status", "3") => "Repair in Progress",
        ("operational_status", "4") => "DR Standby",
        ("operational_status", "5") => "Ready",
        ("operational_status", "6") => "Retired",
        ("impact" | "urgency", "1") => "1 - High",
        ("impact" | "urgency", "2") => "2 - Medium",
        ("impact" | "urgency", "3") => "3 - Low",
        ("state", _) => return state_label(table, value),
        _ => return None,
    };
    Some(label)
}

/// `state` means something different on every task table.
fn state_label(table: &str, value: &str) -> Option<&'static str> {
    let label = match (table, value) {
        ("incident", "1") => "New",
        ("incident", "2") => "In Progress",
        ("incident", "3") => "On Hold",
        ("incident", "6") => "Resolved",
        ("incident", "7") => "Closed",
        ("incident", "8") => "Canceled",
        ("change_request", "-5") => "New",
        ("change_request", "-4") => "Assess",
        ("change_request", "-3") => "Authorize",
        ("change_request", "-2") => "Scheduled",
        ("change_request", "-1") => "Implement",
        ("change_request", "0") => "Review",
        ("change_request", "3") => "Closed",
        ("change_request", "4") => "Canceled",
        _ => return None,
    };
    Some(label)
}

/// The fields that name a record of `table` (its display value), in order of preference.
pub(crate) fn display_fields(table: &str) -> &'static [&'static str] {
    match table {
        "task" | "incident" | "problem" | "change_request" | "change_task" | "sc_request"
        | "sc_req_item" | "sc_task" => &["number", "short_description"],
        "sys_user" => &["name", "user_name"],
        _ => &["name", "number", "user_name"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_named_by_the_brief_point_to_their_tables() {
        assert_eq!(
            reference_target("cmdb_ci_vmware_instance", "owned_by"),
            Some("sys_user")
        );
        assert_eq!(
            reference_target("cmdb_ci_vm_instance", "support_group"),
            Some("sys_user_group")
        );
        assert_eq!(reference_target("incident", "cmdb_ci"), Some("cmdb_ci"));
        assert_eq!(reference_target("cmdb_rel_ci", "parent"), Some("cmdb_ci"));
        assert_eq!(
            reference_target("cmdb_rel_ci", "type"),
            Some("cmdb_rel_type")
        );
        // `type` and `parent` are plain fields elsewhere.
        assert_eq!(reference_target("cmdb_ci_vmware_instance", "type"), None);
        assert_eq!(reference_target("incident", "parent"), None);
        assert_eq!(reference_target("cmdb_ci_vmware_instance", "name"), None);
    }

    #[test]
    fn base_class_references_reach_every_ci_table() {
        assert!(serves_reference("cmdb_ci", "cmdb_ci"));
        assert!(serves_reference("cmdb_ci", "cmdb_ci_vmware_instance"));
        assert!(!serves_reference("cmdb_ci", "cmdb_ci_"));
        assert!(!serves_reference("cmdb_ci", "cmdb_rel_ci"));
        assert!(!serves_reference("sys_user", "sys_user_group"));
    }

    #[test]
    fn choice_labels_depend_on_the_table_only_for_state() {
        assert_eq!(
            choice_label("cmdb_ci_vmware_instance", "install_status", "100"),
            Some("Absent")
        );
        assert_eq!(
            choice_label("anything", "operational_status", "2"),
            Some("Non-Operational")
        );
        assert_eq!(choice_label("incident", "state", "6"), Some("Resolved"));
        assert_eq!(choice_label("change_request", "state", "-5"), Some("New"));
        assert_eq!(choice_label("cmdb_ci_vmware_instance", "state", "on"), None);
        assert_eq!(choice_label("incident", "install_status", "42"), None);
    }
}
