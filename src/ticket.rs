//! The run ticket: how operations hears of each scheduled run in ServiceNow. `run` (not a
//! dry run, and not `apply`) opens an incident (or another task table) when it starts,
//! resolves and closes it when the run succeeds ("green"), and leaves it open with raised
//! urgency and a work note saying what went wrong when the run fails, is refused or ends
//! partially ("red").
//!
//! Ticketing never stops the job: a ticket that cannot be written is logged and the run goes
//! on, because the CMDB matters more than the note about it.

use crate::servicenow::ServiceNow;

/// `[ticket]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketConfig {
    /// `incident` (default) or another task table with the same state model.
    pub table: String,
    /// Extra fields set when the ticket opens (assignment_group, category, caller_id...).
    pub fields: Vec<(String, String)>,
    /// Close the resolved ticket too (state 7), not only resolve it (state 6).
    pub close: bool,
}

impl Default for TicketConfig {
    fn default() -> Self {
        Self {
            table: "incident".into(),
            fields: Vec::new(),
            close: true,
        }
    }
}

/// An open run ticket.
pub struct Ticket {
    sn: ServiceNow,
    table: String,
    sys_id: String,
    close: bool,
}

// incident state and priority choices (reference: servicenow-api.md, Tickets).
const IN_PROGRESS: &str = "2";
const RESOLVED: &str = "6";
const CLOSED: &str = "7";
const LOW: &str = "3";
const MEDIUM: &str = "2";
const HIGH: &str = "1";

impl Ticket {
    /// Opens the ticket; `None` (logged) when ServiceNow would not take it.
    pub async fn open(
        sn: &ServiceNow,
        cfg: &TicketConfig,
        what: &str,
        description: &str,
        run_id: &str,
    ) -> Option<Self> {
        let mut fields = vec![
            (
                "short_description".to_owned(),
                format!("cmdb-reconcile {what}"),
            ),
            ("description".to_owned(), description.to_owned()),
            ("state".to_owned(), IN_PROGRESS.to_owned()),
            ("impact".to_owned(), LOW.to_owned()),
            ("urgency".to_owned(), LOW.to_owned()),
            ("correlation_id".to_owned(), run_id.to_owned()),
        ];
        for (k, v) in &cfg.fields {
            fields.retain(|(f, _)| f != k);
            fields.push((k.clone(), v.clone()));
        }
        match sn.create(&cfg.table, &fields).await {
            Ok(ci) => {
                tracing::info!(table = %cfg.table, sys_id = %ci.sys_id, number = ci.get("number"), "run ticket opened");
                Some(Self {
                    sn: sn.clone(),
                    table: cfg.table.clone(),
                    sys_id: ci.sys_id,
                    close: cfg.close,
                })
            }
            Err(e) => {
                tracing::warn!("cannot open the run ticket: {e}; the run goes on without it");
                None
            }
        }
    }

    /// Success: resolved with the summary as close notes, then closed.
    pub async fn succeed(self, summary: &str) {
        let resolve = [
            ("state", RESOLVED),
            ("close_code", "Solution provided"),
            ("close_notes", summary),
            ("work_notes", summary),
        ];
        if let Err(e) = self
            .sn
            .update(&self.table, &self.sys_id, &pairs(&resolve))
            .await
        {
            tracing::warn!("cannot resolve the run ticket {}: {e}", self.sys_id);
            return;
        }
        if self.close {
            if let Err(e) = self
                .sn
                .update(&self.table, &self.sys_id, &pairs(&[("state", CLOSED)]))
                .await
            {
                tracing::warn!("cannot close the run ticket {}: {e}", self.sys_id);
            }
        }
    }

    /// Done, but the CMDB needs a person (duplicate CIs): stays open at medium urgency with
    /// what to look at; never closed as a plain success.
    pub async fn warn(self, summary: &str) {
        let note = [("urgency", MEDIUM), ("work_notes", summary)];
        if let Err(e) = self
            .sn
            .update(&self.table, &self.sys_id, &pairs(&note))
            .await
        {
            tracing::warn!("cannot update the run ticket {}: {e}", self.sys_id);
        }
    }

    /// Failure, refusal or partial success: stays open, urgency raised, with what happened.
    pub async fn fail(self, summary: &str) {
        let note = [("urgency", HIGH), ("impact", "2"), ("work_notes", summary)];
        if let Err(e) = self
            .sn
            .update(&self.table, &self.sys_id, &pairs(&note))
            .await
        {
            tracing::warn!("cannot update the run ticket {}: {e}", self.sys_id);
        }
    }
}

fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
