//! CloudForms' side of the catalog pass: ordering a service template, approving a request,
//! reading one request, and finding the requests that carry a RITM number.
//!
//! - Order: `POST /api/service_templates/:id` with `{"action":"order", <dialog fields>}`; the
//!   answer is the new request, `href` `/api/service_requests/:id` (integrations.md A.1).
//! - Approve: `POST /api/service_requests/:id` with `{"action":"approve","reason":…}`; the
//!   reason is mandatory (A.2).
//! - Search: `options` is a serialized hash that the API cannot filter on (B.4), so the
//!   requests of the window are read with `attributes=options` and matched here.
//!
//! A POST is sent once, never retried: an order is not idempotent. A lost answer is the
//! caller's to settle by searching for the RITM number before anything is sent again.

use reqwest::Method;
use serde_json::Value;

use super::{query, Auth, CloudForms};
use crate::net::{with_retry, ErrorKind, HttpError};
use crate::reconcile::record::SourceRead;

impl CloudForms {
    /// `POST /api/<path>` with a JSON body, sent once; the answer's JSON.
    pub async fn post_action(&self, path: &str, body: &Value) -> Result<Value, HttpError> {
        let inner = &self.inner;
        let url = query::endpoint(&inner.api, path);
        let mut auth = inner.auth().await?;
        let mut response = inner
            .send_with(Method::POST, &url, &auth, Some(body))
            .await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            // A token refused before the server read the body: the order was not placed.
            if let Auth::Token(issued) = auth {
                auth = inner.renew(issued.generation).await?;
                response = inner
                    .send_with(Method::POST, &url, &auth, Some(body))
                    .await?;
            }
        }
        if !response.status().is_success() {
            let mut error = HttpError::from_response("POST", url.as_str(), response).await;
            if let Auth::Token(issued) = &auth {
                error = super::redact_token(error, &issued.secret);
            }
            return Err(error);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| HttpError::from_reqwest("POST", url.as_str(), &e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            HttpError::from_body("POST", url.as_str(), &String::from_utf8_lossy(&bytes), &e)
        })
    }

    /// `GET /api/<path>` (with its query, e.g. `service_requests/42?expand=request_tasks`),
    /// retried per the policy; the answer's JSON.
    pub async fn get_json(&self, path_and_query: &str) -> Result<Value, HttpError> {
        let inner = &self.inner;
        let (path, q) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut url = query::endpoint(&inner.api, path);
        if !q.is_empty() {
            url.set_query(Some(q));
        }
        let what = format!("GET {url}");
        with_retry(&inner.retry, &what, |_| {
            let url = url.clone();
            async move {
                let response = inner.get(&url).await?;
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| super::body_error(&url, &e))?;
                serde_json::from_slice::<Value>(&bytes).map_err(|e| {
                    HttpError::from_body("GET", url.as_str(), &String::from_utf8_lossy(&bytes), &e)
                })
            }
        })
        .await
    }

    /// Orders service template `template_id` with `dialog` (field -> value, sent as flat keys
    /// beside `action`, as ManageIQ takes them); the new request's id.
    pub async fn order(
        &self,
        template_id: &str,
        dialog: &[(String, String)],
    ) -> Result<String, HttpError> {
        let mut body = serde_json::Map::new();
        body.insert("action".into(), Value::String("order".into()));
        for (field, value) in dialog {
            body.insert(field.clone(), Value::String(value.clone()));
        }
        let path = format!("service_templates/{template_id}");
        let answer = self.post_action(&path, &Value::Object(body)).await?;
        // A bulk answer (`results`) holds the one request; a single order is the request.
        let request = answer
            .get("results")
            .and_then(|r| r.get(0))
            .unwrap_or(&answer);
        match request.get("id") {
            Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(HttpError::new(
                "POST",
                query::endpoint(&self.inner.api, &path).as_str(),
                ErrorKind::Decode,
                "the answer to the order names no request `id`",
            )),
        }
    }

    /// Approves request `id` with `reason` (mandatory in ManageIQ).
    pub async fn approve(&self, id: &str, reason: &str) -> Result<(), HttpError> {
        let body = serde_json::json!({ "action": "approve", "reason": reason });
        self.post_action(&format!("service_requests/{id}"), &body)
            .await
            .map(drop)
    }

    /// The service requests updated after `since` with their `options`, to search for RITM
    /// numbers in their dialog values.
    pub async fn service_requests_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<SourceRead, HttpError> {
        self.read_since(
            "service_requests",
            &["options".to_owned()],
            &[],
            Some(("updated_on", since)),
        )
        .await
    }
}
