//! The Attachment API (ServiceNowDocs `api-reference/rest-apis/c_AttachmentAPI.md`): a file
//! uploaded to a record as it is (`POST /api/now/attachment/file?table_name=&table_sys_id=
//! &file_name=`, its type as `Content-Type`, 201 with the metadata), the metadata of a
//! record's files (`GET /api/now/attachment?sysparm_query=table_name=..^table_sys_id=..`),
//! and a file's bytes (`GET /api/now/attachment/{sys_id}/file`). The review workflow keeps a
//! held plan and its reports on its change request this way.

use reqwest::{Method, StatusCode};

use super::ServiceNow;
use crate::net::{with_retry, HttpError};

/// One attachment's metadata (a `sys_attachment` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub sys_id: String,
    pub file_name: String,
    pub size_bytes: u64,
}

fn attachment(value: &serde_json::Value) -> Attachment {
    let text = |f: &str| {
        value
            .get(f)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Attachment {
        sys_id: text("sys_id"),
        file_name: text("file_name"),
        size_bytes: text("size_bytes").parse().unwrap_or(0),
    }
}

fn parse(method: &str, url: &str, body: &[u8]) -> Result<serde_json::Value, HttpError> {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|mut v| v["result"].take())
        .map_err(|e| HttpError::from_body(method, url, &String::from_utf8_lossy(body), &e))
}

impl ServiceNow {
    /// Attaches `bytes` to a record as `file_name` (one attempt: a retry could attach it
    /// twice; callers list the record's files first and upload only those missing).
    pub async fn attach(
        &self,
        table: &str,
        sys_id: &str,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Attachment, HttpError> {
        let mut url = self.url(&["api", "now", "attachment", "file"]);
        url.query_pairs_mut()
            .append_pair("table_name", table)
            .append_pair("table_sys_id", sys_id)
            .append_pair("file_name", file_name);
        let response = self
            .execute_typed(
                Method::POST,
                &url,
                Some((bytes, content_type)),
                "application/json",
            )
            .await?;
        let body = Self::success_body(&Method::POST, &url, response).await?;
        Ok(attachment(&parse("POST", url.as_str(), &body)?))
    }

    /// The files attached to a record, oldest first (a read: retried per the policy).
    pub async fn attachments(
        &self,
        table: &str,
        sys_id: &str,
    ) -> Result<Vec<Attachment>, HttpError> {
        let what = format!("listing the attachments of {table}/{sys_id}");
        with_retry(&self.inner.retry, &what, |_| {
            self.attachments_once(table, sys_id)
        })
        .await
    }

    async fn attachments_once(
        &self,
        table: &str,
        sys_id: &str,
    ) -> Result<Vec<Attachment>, HttpError> {
        let mut url = self.url(&["api", "now", "attachment"]);
        url.query_pairs_mut().append_pair(
            "sysparm_query",
            &format!(
                "table_name={}^table_sys_id={}^ORDERBYsys_created_on",
                super::escape_query_value(table),
                super::escape_query_value(sys_id)
            ),
        );
        let response = self.execute(Method::GET, &url, None).await?;
        let body = Self::success_body(&Method::GET, &url, response).await?;
        let result = parse("GET", url.as_str(), &body)?;
        Ok(result
            .as_array()
            .map(|rows| rows.iter().map(attachment).collect())
            .unwrap_or_default())
    }

    /// The bytes of an attachment; `None` when it does not exist (any more). Retried per
    /// the policy.
    pub async fn download(&self, sys_id: &str) -> Result<Option<Vec<u8>>, HttpError> {
        let what = format!("downloading attachment {sys_id}");
        with_retry(&self.inner.retry, &what, |_| self.download_once(sys_id)).await
    }

    async fn download_once(&self, sys_id: &str) -> Result<Option<Vec<u8>>, HttpError> {
        let url = self.url(&["api", "now", "attachment", sys_id, "file"]);
        // The file comes in its own type ("Accept: */*" in the API's examples).
        let response = self.execute_typed(Method::GET, &url, None, "*/*").await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Self::success_body(&Method::GET, &url, response)
            .await
            .map(Some)
    }
}
