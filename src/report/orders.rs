//! The report model of the catalog pass's orders: one row per requested item (RITM) the
//! plan orders from CloudForms or resumes, worded for people, with what `apply` did.

use serde::Serialize;

use super::model::{OperationOutcome, RowOutcome};
use crate::reconcile::catalog::{SECRET, TARGET};
use crate::reconcile::plan::{Order, Plan};

/// The target's counts in a report's header: for the catalog's orders the CloudForms
/// requests searched (`N requests searched, M carry a RITM number`), for a sync its CIs.
pub(super) fn target_counts(plan: &Plan) -> String {
    if plan.mapping.collection == "service_templates" && plan.target.table == TARGET {
        format!(
            "{} requests searched, {} carry a RITM number",
            plan.target.cis, plan.target.in_scope
        )
    } else {
        format!("{} CIs, {} in scope", plan.target.cis, plan.target.in_scope)
    }
}

/// One planned order, worded for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRow {
    /// `order` or `resume`.
    pub action: &'static str,
    pub ritm: String,
    pub ritm_sys_id: String,
    /// The ServiceNow catalog item.
    pub item: String,
    /// The CloudForms service template, `name (id)`, in its catalog when known.
    pub template: String,
    /// The dialog fields sent, `name=value`, comma-separated.
    pub dialog: String,
    /// For `resume`: the request already carrying the RITM number.
    pub request: String,
    /// `job` (the job approves the request, citing the RITM's approval) or `CloudForms`.
    pub approval: &'static str,
    pub reason: String,
    pub outcome: Option<RowOutcome>,
}

impl OrderRow {
    pub(super) fn from_order(order: &Order) -> Self {
        let template = if order.catalog.is_empty() {
            format!("{} ({})", order.template, order.template_id)
        } else {
            format!(
                "{} ({}) in {}",
                order.template, order.template_id, order.catalog
            )
        };
        Self {
            action: order.action.as_str(),
            ritm: order.ritm_number.clone(),
            ritm_sys_id: order.ritm_sys_id.clone(),
            item: order.item.clone(),
            template,
            dialog: order
                .dialog
                .iter()
                .map(|f| {
                    // A secret's value is never in a plan; should one carry it, it is not shown.
                    let value = if order.secret.contains(&f.field) {
                        SECRET
                    } else {
                        f.value.as_str()
                    };
                    format!("{}={value}", f.field)
                })
                .collect::<Vec<_>>()
                .join(", "),
            request: order.request_id.clone().unwrap_or_default(),
            approval: if order.approve.is_some() {
                "job"
            } else {
                "CloudForms"
            },
            reason: order.reason.clone(),
            outcome: None,
        }
    }

    /// Attaches the outcome of this RITM's order (matched by the RITM's sys_id).
    pub(super) fn attach(&mut self, outcomes: &[OperationOutcome]) {
        self.outcome = outcomes
            .iter()
            .find(|o| o.sys_id.as_deref() == Some(self.ritm_sys_id.as_str()))
            .map(|o| RowOutcome {
                status: o.status,
                message: o.message.clone(),
                sys_id: o.sys_id.clone(),
            });
    }
}
