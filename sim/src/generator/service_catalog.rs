//! The service catalog of the estate (`/api/service_catalogs`, `/api/service_templates`) and
//! ordering from it: [`Estate::order_service`] creates a service request
//! (`ServiceTemplateProvisionRequest`) through the same path as [`Estate::add_request`], with
//! the order's dialog values kept in `options.dialog` as ManageIQ stores them (integrations.md
//! A.1: a field sent as `option_0_vm_target_name` comes back as
//! `dialog_option_0_vm_target_name`; one sent as `dialog_x` stays `dialog_x`).
//!
//! Every estate with a template on a provider has one catalog, "Virtual Machines", with two
//! templates on the first such template (Linux if there is one): "Linux VM", whose orders
//! finish `Ok` and create their VM, and "Failing VM", whose orders finish `Error` (the
//! simulator's way to make a failure: the fate of an order is its template's
//! [`ServiceTemplate::fate`], which a real template does not have). The catalog is added
//! after everything else is drawn, so no other generated value changed.
//!
//! The dialog of both templates (the simulator's): `vm_name` (label "VM Name", required) and
//! `ritm_number` (optional, where an integration puts the ServiceNow RITM number so that the
//! request can be found by it). The VM is named after `dialog_vm_name`, else
//! `dialog_option_0_vm_target_name`.

use super::cmdb::CmdbTable;
use super::{iso, Estate, Fate, RequestKind};
use serde::Serialize;
use serde_json::{Map, Value};

/// A `ServiceTemplateCatalog`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceCatalog {
    pub id: u64,
    pub name: String,
    pub description: String,
}

/// A `ServiceTemplate` (a catalog item) provisioning one VM from a template.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceTemplate {
    pub id: u64,
    pub name: String,
    pub description: String,
    /// Index into [`Estate::service_catalogs`].
    pub catalog: usize,
    /// Index into [`Estate::templates`]: the VM template it clones.
    pub template: usize,
    /// How every order of it ends (the simulator's).
    pub fate: Fate,
    pub guid: String,
    pub created_on: String,
}

/// A dialog field of the simulated templates: (name, label, required).
pub const DIALOG_FIELDS: [(&str, &str, bool); 2] = [
    ("vm_name", "VM Name", true),
    ("ritm_number", "RITM Number", false),
];

/// Adds the catalog and its templates (nothing when no template has a provider).
pub(super) fn plant(e: &mut Estate) {
    let with_provider = |t: &&super::Vm| t.ems.is_some();
    let template = e
        .templates
        .iter()
        .position(|t| with_provider(&t) && t.hardware.platform == "linux")
        .or_else(|| e.templates.iter().position(|t| with_provider(&t)));
    let Some(template) = template else {
        return;
    };
    let created_on = iso(e.now - chrono::Duration::days(90));
    let catalog = e.take_id();
    e.service_catalogs.push(ServiceCatalog {
        id: catalog,
        name: "Virtual Machines".into(),
        description: "Virtual machines provisioned by CloudForms".into(),
    });
    let tpl_name = e.templates[template].name.clone();
    for (n, (name, description, fate)) in [
        (
            "Linux VM",
            format!("A Linux VM cloned from {tpl_name}"),
            Fate::Ok,
        ),
        (
            "Failing VM",
            "A VM whose provisioning always fails (the simulator ends every order Error)".into(),
            Fate::Error,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = e.take_id();
        e.service_templates.push(ServiceTemplate {
            id,
            name: name.into(),
            description,
            catalog: e.service_catalogs.len() - 1,
            template,
            fate,
            guid: format!("5e1f7c2a-0b6d-4c3e-9a8f-{:012x}", id * 16 + n as u64),
            created_on: created_on.clone(),
        });
    }
}

/// The dialog values of an order body as ManageIQ keeps them: every key but `action`, `href`
/// and `schedule_time`, prefixed `dialog_` unless it is already.
pub fn dialog_values(body: &Map<String, Value>) -> Map<String, Value> {
    body.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "action" | "href" | "schedule_time"))
        .map(|(k, v)| {
            let key = if k.starts_with("dialog_") {
                k.clone()
            } else {
                format!("dialog_{k}")
            };
            (key, v.clone())
        })
        .collect()
}

impl Estate {
    /// Orders service template `template_id` with `dialog` (keys as [`dialog_values`] makes
    /// them) as `userid` (`None`: the first requester): a service request awaiting approval,
    /// created at `stamp`, whose fate is the template's. Returns the request's id, or why the
    /// order is refused (no such template; a required dialog field empty, worded as
    /// ManageIQ's dialog validation, UNVERIFIED).
    pub fn order_service(
        &mut self,
        template_id: u64,
        dialog: Map<String, Value>,
        userid: Option<String>,
        stamp: &str,
    ) -> Result<u64, OrderError> {
        let st = self
            .service_templates
            .iter()
            .position(|t| t.id == template_id)
            .ok_or(OrderError::NotFound)?;
        let st = self.service_templates[st].clone();
        let text = |key: &str| {
            dialog
                .get(key)
                .map(|v| match v {
                    Value::String(s) => s.trim().to_owned(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .filter(|s| !s.is_empty())
        };
        let missing: Vec<&str> = DIALOG_FIELDS
            .iter()
            .filter(|(name, _, required)| *required && text(&format!("dialog_{name}")).is_none())
            .map(|(_, label, _)| *label)
            .collect();
        let vm_name = text("dialog_vm_name").or_else(|| text("dialog_option_0_vm_target_name"));
        let (Some(vm_name), true) = (vm_name, missing.is_empty()) else {
            let errors: Vec<String> = missing.iter().map(|l| format!("{l} is required")).collect();
            return Err(OrderError::Invalid(format!(
                "Failed to order Service Template id:{} name:'{}' - {}",
                st.id,
                st.name,
                errors.join(", ")
            )));
        };
        let userid = userid.filter(|u| self.users.iter().any(|x| x.userid == *u));
        let id = self
            .add_request(
                super::NewRequest {
                    vm_name,
                    fate: st.fate,
                    userid,
                    kind: RequestKind::Service,
                    template_id: Some(self.templates[st.template].id),
                },
                stamp,
            )
            .map_err(OrderError::Invalid)?;
        if let Some(r) = self.requests.iter_mut().find(|r| r.id == id) {
            r.service_template_id = Some(st.id);
            r.dialog = Some(dialog);
        }
        Ok(id)
    }
}

/// Why [`Estate::order_service`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// No service template with that id.
    #[error("no service template with that id")]
    NotFound,
    /// A bad order (the message ManageIQ's 400 carries).
    #[error("{0}")]
    Invalid(String),
}

/// The sys_id of the `sc_cat_item` row of service template `id` (stable, made from the id).
pub fn cat_item_sys_id(id: u64) -> String {
    format!("5c0ca7a1{id:024x}")
}

/// The ServiceNow side of the catalog: an `sc_cat_item` per service template (same name,
/// `short_description` = its description, approved on order) and its variables
/// (`item_option_new`): `vm_name` ("VM Name", single line text, mandatory) and
/// `justification` ("Business justification", multi line text, optional).
pub fn servicenow_rows(e: &Estate) -> Vec<CmdbTable> {
    let obj = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut items = Vec::new();
    let mut variables = Vec::new();
    for t in &e.service_templates {
        let item = cat_item_sys_id(t.id);
        items.push(obj(serde_json::json!({
            "sys_id": item, "name": t.name, "short_description": t.description,
            "active": "true", "category": e.service_catalogs[t.catalog].name,
            "u_sim_approval": "approved",
        })));
        for (n, (name, question, kind, mandatory)) in [
            ("vm_name", "VM Name", "16", "true"),
            ("justification", "Business justification", "6", "false"),
        ]
        .into_iter()
        .enumerate()
        {
            variables.push(obj(serde_json::json!({
                "sys_id": format!("1e0a0b1c{:020x}{n:04x}", t.id),
                "name": name, "question_text": question, "type": kind, "cat_item": item,
                "order": ((n + 1) * 100).to_string(), "mandatory": mandatory, "active": "true",
            })));
        }
    }
    vec![
        CmdbTable {
            name: "sc_cat_item".into(),
            rows: items,
        },
        CmdbTable {
            name: "item_option_new".into(),
            rows: variables,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::super::{generate, GenOptions, Stage};
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn estate() -> Estate {
        generate(&GenOptions {
            vms: 60,
            drift: 0.05,
            seed: 3,
            now: chrono::Utc
                .with_ymd_and_hms(2026, 12, 1, 8, 0, 0)
                .single()
                .expect("valid date"),
            requests: 12,
            hosts: None,
        })
        .estate
    }

    #[test]
    fn dialog_keys_are_kept_as_manageiq_stores_them() {
        let Value::Object(body) = json!({"action": "order", "href": "h", "vm_name": "a",
            "dialog_ritm_number": "RITM1", "option_0_vm_target_name": "b"})
        else {
            unreachable!("an object literal")
        };
        assert_eq!(
            Value::Object(dialog_values(&body)),
            json!({"dialog_vm_name": "a", "dialog_ritm_number": "RITM1",
                   "dialog_option_0_vm_target_name": "b"})
        );
    }

    #[test]
    fn an_order_is_a_service_request_with_its_templates_fate() {
        let mut e = estate();
        let names: Vec<&str> = e
            .service_templates
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["Linux VM", "Failing VM"]);
        let failing = e.service_templates[1].id;
        let Value::Object(dialog) = json!({"dialog_vm_name": "svc-9"}) else {
            unreachable!("an object literal")
        };
        let id = e
            .order_service(failing, dialog, None, "2026-12-02T10:00:00Z")
            .expect("ordered");
        let r = e.requests.iter().find(|r| r.id == id).expect("queued");
        assert_eq!(r.kind, RequestKind::Service);
        assert_eq!((r.fate, r.stage), (Fate::Error, Stage::PendingApproval));
        assert_eq!(r.service_template_id, Some(failing));
        assert_eq!(r.vm_name, "svc-9");
        assert_eq!(
            e.order_service(failing, Map::new(), None, "2026-12-02T10:00:01Z"),
            Err(OrderError::Invalid(format!(
                "Failed to order Service Template id:{failing} name:'Failing VM' - VM Name is required"
            )))
        );
        assert_eq!(
            e.order_service(1, Map::new(), None, "2026-12-02T10:00:01Z"),
            Err(OrderError::NotFound)
        );
    }
}
