//! The Batch API (`POST /api/now/v1/batch`): many Table API writes in one round trip.
//!
//! Items travel as `{"id","method","url","headers","body": base64 JSON}`; the answer lists
//! `serviced_requests` (each with its own status, headers and base64 body) and
//! `unserviced_requests`, the ids the instance did not get to (time or size quota). Those,
//! and only those, are sent again: an item the answer does not mention may have run, so it is
//! reported as failed rather than risked twice. Re-sending stops when a round services
//! nothing a few times in a row, so the loop always ends.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use url::{Position, Url};

use crate::net::{Attempts, ErrorKind, HttpError, RetryPolicy};
use crate::reconcile::record::{Ci, FieldNames};

use super::{fields_body, wire, ServiceNow};

/// Items per batch request, and their encoded size: well inside the instance's 5 MB request
/// limit, so a batch is refused for size only if a single item is enormous.
const MAX_ITEMS_PER_REQUEST: usize = 1000;
const MAX_BYTES_PER_REQUEST: usize = 4 * 1024 * 1024;

/// Rounds in a row that may service nothing before the remaining items are given up (the
/// attempts of [`RetryPolicy`] for this purpose; its delays pace the rounds).
const MAX_STALLED_ROUNDS: u32 = 3;

/// One write carried by a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRequest {
    Create {
        table: String,
        fields: Vec<(String, String)>,
    },
    Update {
        table: String,
        sys_id: String,
        fields: Vec<(String, String)>,
    },
    Delete {
        table: String,
        sys_id: String,
    },
}

impl BatchRequest {
    fn method(&self) -> Method {
        match self {
            Self::Create { .. } => Method::POST,
            Self::Update { .. } => Method::PATCH,
            Self::Delete { .. } => Method::DELETE,
        }
    }

    fn is_delete(&self) -> bool {
        matches!(self, Self::Delete { .. })
    }

    /// The item's absolute URL (for errors); the batch carries its path and query.
    fn url(&self, sn: &ServiceNow) -> Url {
        let mut url = match self {
            Self::Create { table, .. } => sn.table_url(table, None),
            Self::Update { table, sys_id, .. } | Self::Delete { table, sys_id } => {
                sn.table_url(table, Some(sys_id))
            }
        };
        if !self.is_delete() {
            url.query_pairs_mut()
                .append_pair("sysparm_exclude_reference_link", "true");
        }
        url
    }

    /// The item as the batch carries it. Its URL is relative to the instance, which does
    /// not see a path prefix a proxy in front of it may add.
    fn encode(&self, id: usize, sn: &ServiceNow) -> String {
        let absolute = self.url(sn);
        let prefix = sn.inner.base.path().trim_end_matches('/');
        let path = &absolute[Position::BeforePath..];
        let relative = path.strip_prefix(prefix).unwrap_or(path);
        let mut item = json!({
            "id": id.to_string(),
            "method": self.method().as_str(),
            "url": relative,
            "headers": [
                {"name": "Content-Type", "value": "application/json"},
                {"name": "Accept", "value": "application/json"},
            ],
        });
        match self {
            Self::Create { fields, .. } | Self::Update { fields, .. } => {
                item["body"] = Value::String(STANDARD.encode(fields_body(fields)));
            }
            Self::Delete { .. } => {}
        }
        item.to_string()
    }
}

/// The Batch API's answer, read leniently (ids and statuses may come as numbers or text).
#[derive(Deserialize)]
struct BatchResponse {
    #[serde(default)]
    serviced_requests: Vec<ServicedItem>,
    #[serde(default)]
    unserviced_requests: Vec<Value>,
}

#[derive(Deserialize)]
struct ServicedItem {
    id: Value,
    status_code: Value,
    #[serde(default)]
    headers: Vec<ItemHeader>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Deserialize)]
struct ItemHeader {
    name: String,
    value: Value,
}

/// One item's outcome.
type ItemResult = Result<Option<Ci>, HttpError>;

/// What one batch request came back with: results by item index, and the indices to re-send.
struct RoundTrip {
    serviced: Vec<(usize, ItemResult)>,
    unserviced: Vec<usize>,
}

fn id_index(id: &Value) -> Option<usize> {
    wire::value_text(id).trim().parse().ok()
}

impl ServiceNow {
    /// Sends `requests` through the Batch API; items the instance leaves unserviced are
    /// re-sent in further batches. Returns one result per request, in order: the written
    /// record, `None` for a delete (a record already gone counts as deleted), or the item's
    /// error. The outer error means no item was serviced: the first batch request failed
    /// (and, like any failed write, may or may not have been carried out).
    pub async fn batch(
        &self,
        requests: &[BatchRequest],
    ) -> Result<Vec<Result<Option<Ci>, HttpError>>, HttpError> {
        let encoded: Vec<String> = requests
            .iter()
            .enumerate()
            .map(|(i, r)| r.encode(i, self))
            .collect();
        let mut results: Vec<Option<ItemResult>> = vec![None; requests.len()];
        let mut names = FieldNames::default();
        let mut pending: Vec<usize> = (0..requests.len()).collect();
        // A round that services nothing is a failed attempt of the round after it: the
        // policy's backoff paces the re-sends, and the rounds are bounded.
        let stall_policy = RetryPolicy {
            max_attempts: MAX_STALLED_ROUNDS,
            ..self.inner.retry
        };
        let mut stalls = Attempts::new(&stall_policy, "batch");
        let batch_url = self.url(&["api", "now", "v1", "batch"]);
        while !pending.is_empty() {
            let mut unserviced = Vec::new();
            let mut progressed = false;
            for chunk in chunks(&pending, &encoded) {
                match self
                    .batch_round(&batch_url, chunk, requests, &encoded, &mut names)
                    .await
                {
                    Ok(trip) => {
                        progressed |= !trip.serviced.is_empty();
                        for (index, result) in trip.serviced {
                            results[index] = Some(result);
                        }
                        unserviced.extend(trip.unserviced);
                    }
                    Err(e) if results.iter().all(Option::is_none) => return Err(e),
                    Err(e) => {
                        // Some writes happened: report them, and this failure for the rest.
                        tracing::warn!("batch request failed after earlier items ran: {e}");
                        return Ok(results
                            .into_iter()
                            .map(|r| r.unwrap_or_else(|| Err(e.clone())))
                            .collect());
                    }
                }
            }
            if progressed {
                stalls.reset();
            } else {
                let stalled = HttpError::new(
                    "POST",
                    batch_url.as_str(),
                    ErrorKind::Interrupted,
                    "the instance serviced none of the requests in a batch",
                );
                if let Err(mut error) = stalls.wait(stalled).await {
                    error.message = format!(
                        "the instance left the request unserviced in {MAX_STALLED_ROUNDS} batches in a row"
                    );
                    for index in unserviced {
                        results[index] = Some(Err(error.clone()));
                    }
                    break;
                }
            }
            if !unserviced.is_empty() {
                tracing::debug!(
                    unserviced = unserviced.len(),
                    "re-sending unserviced batch items"
                );
            }
            unserviced.sort_unstable();
            unserviced.dedup();
            pending = unserviced;
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(HttpError::new(
                        "POST",
                        batch_url.as_str(),
                        ErrorKind::Decode,
                        "the batch response did not mention the request",
                    ))
                })
            })
            .collect())
    }

    /// One batch request carrying the items `chunk` (indices into `requests`).
    async fn batch_round(
        &self,
        url: &Url,
        chunk: &[usize],
        requests: &[BatchRequest],
        encoded: &[String],
        names: &mut FieldNames,
    ) -> Result<RoundTrip, HttpError> {
        let id = self
            .inner
            .batch_ids
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let items: Vec<&str> = chunk.iter().map(|&i| encoded[i].as_str()).collect();
        let body = format!(
            r#"{{"batch_request_id":"{id}","rest_requests":[{}]}}"#,
            items.join(",")
        );
        let response = self
            .execute(Method::POST, url, Some(body.as_bytes()))
            .await?;
        let bytes = Self::success_body(&Method::POST, url, response).await?;
        let answer: BatchResponse = serde_json::from_slice(&bytes).map_err(|e| {
            HttpError::from_body("POST", url.as_str(), &String::from_utf8_lossy(&bytes), &e)
        })?;
        let in_chunk: HashSet<usize> = chunk.iter().copied().collect();
        let mut trip = RoundTrip {
            serviced: Vec::with_capacity(answer.serviced_requests.len()),
            unserviced: answer
                .unserviced_requests
                .iter()
                .filter_map(id_index)
                .filter(|i| in_chunk.contains(i))
                .collect(),
        };
        let mut seen = HashSet::new();
        for item in answer.serviced_requests {
            let Some(index) = id_index(&item.id).filter(|i| in_chunk.contains(i)) else {
                continue;
            };
            if seen.insert(index) {
                let result = self.item_result(&requests[index], item, names);
                trip.serviced.push((index, result));
            }
        }
        trip.unserviced.retain(|i| !seen.contains(i));
        Ok(trip)
    }

    /// A serviced item as the result the single-record call would have given.
    fn item_result(
        &self,
        request: &BatchRequest,
        item: ServicedItem,
        names: &mut FieldNames,
    ) -> ItemResult {
        let method = request.method();
        let url = request.url(self);
        let status = match &item.status_code {
            Value::Number(n) => n.as_u64(),
            other => wire::value_text(other).trim().parse().ok(),
        }
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok());
        let decoded = match item.body.as_deref().map(str::trim) {
            None | Some("") => Ok(Vec::new()),
            Some(text) => {
                let compact: String = text.split_ascii_whitespace().collect();
                STANDARD.decode(compact)
            }
        };
        let Ok(body) = decoded else {
            return Err(HttpError::new(
                method.as_str(),
                url.as_str(),
                ErrorKind::Decode,
                "the batch item's body is not base64",
            ));
        };
        let Some(status) = status else {
            return Err(HttpError::new(
                method.as_str(),
                url.as_str(),
                ErrorKind::Decode,
                "the batch item has no usable status_code",
            ));
        };
        if status == StatusCode::NOT_FOUND && request.is_delete() {
            return Ok(None);
        }
        if !status.is_success() {
            let mut headers = HeaderMap::new();
            for header in &item.headers {
                let value = wire::value_text(&header.value);
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(header.name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    headers.append(name, value);
                }
            }
            let text = String::from_utf8_lossy(&body);
            return Err(HttpError::from_status(
                method.as_str(),
                url.as_str(),
                status.as_u16(),
                &headers,
                &text,
            ));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        wire::parse_one(&body, names).map(Some).map_err(|e| {
            HttpError::from_body(
                method.as_str(),
                url.as_str(),
                &String::from_utf8_lossy(&body),
                &e,
            )
        })
    }
}

/// `pending` in runs that fit one batch request (at least one item each).
fn chunks<'a>(pending: &'a [usize], encoded: &[String]) -> Vec<&'a [usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (n, &index) in pending.iter().enumerate() {
        let size = encoded[index].len() + 1;
        let full = n - start >= MAX_ITEMS_PER_REQUEST || bytes + size > MAX_BYTES_PER_REQUEST;
        if n > start && full {
            out.push(&pending[start..n]);
            start = n;
            bytes = 0;
        }
        bytes += size;
    }
    if start < pending.len() {
        out.push(&pending[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::net::Secret;
    use crate::servicenow::{ServiceNowConfig, SnAuth};

    fn sn(url: &str) -> ServiceNow {
        ServiceNow::new(ServiceNowConfig::new(
            url,
            SnAuth::Basic {
                user: "a".into(),
                password: Secret::new("b"),
            },
        ))
        .expect("client")
    }

    #[test]
    fn items_name_relative_urls_and_carry_base64_json() {
        let sn = sn("https://proxy.example.com/snow/");
        let update = BatchRequest::Update {
            table: "cmdb_ci".into(),
            sys_id: "abc".into(),
            fields: vec![("name".into(), "vm1".into())],
        };
        let item: Value = serde_json::from_str(&update.encode(7, &sn)).expect("json");
        assert_eq!(item["id"], "7");
        assert_eq!(item["method"], "PATCH");
        assert_eq!(
            item["url"],
            "/api/now/table/cmdb_ci/abc?sysparm_exclude_reference_link=true"
        );
        let body = STANDARD
            .decode(item["body"].as_str().expect("body"))
            .expect("base64");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).expect("json"),
            json!({"name": "vm1"})
        );
        let delete = BatchRequest::Delete {
            table: "cmdb_ci".into(),
            sys_id: "x/y".into(),
        };
        let item: Value = serde_json::from_str(&delete.encode(0, &sn)).expect("json");
        assert_eq!(item["url"], "/api/now/table/cmdb_ci/x%2Fy");
        assert!(item.get("body").is_none());
    }

    #[test]
    fn chunks_respect_count_and_size() {
        let encoded: Vec<String> = (0..2500).map(|_| "x".repeat(10)).collect();
        let pending: Vec<usize> = (0..2500).collect();
        let sizes: Vec<usize> = chunks(&pending, &encoded).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let big: Vec<String> = (0..3).map(|_| "x".repeat(3 * 1024 * 1024)).collect();
        let sizes: Vec<usize> = chunks(&[0, 1, 2], &big).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1, 1, 1]);
        assert!(chunks(&[], &big).is_empty());
    }

    #[test]
    fn item_results_follow_the_single_record_rules() {
        let sn = sn("https://acme.example.com");
        let mut names = FieldNames::default();
        let delete = BatchRequest::Delete {
            table: "t".into(),
            sys_id: "1".into(),
        };
        let item = |status: Value, body: &str| ServicedItem {
            id: json!("0"),
            status_code: status,
            headers: vec![ItemHeader {
                name: "Retry-After".into(),
                value: json!("3"),
            }],
            body: Some(STANDARD.encode(body)),
        };
        assert!(matches!(
            sn.item_result(&delete, item(json!(404), "{}"), &mut names),
            Ok(None)
        ));
        assert!(matches!(
            sn.item_result(&delete, item(json!("204"), ""), &mut names),
            Ok(None)
        ));
        let create = BatchRequest::Create {
            table: "t".into(),
            fields: vec![],
        };
        let created = sn.item_result(
            &create,
            item(json!(201), r#"{"result":{"sys_id":"9","name":"n"}}"#),
            &mut names,
        );
        assert!(matches!(&created, Ok(Some(ci)) if ci.sys_id == "9" && ci.get("name") == "n"));
        let refused = sn
            .item_result(
                &create,
                item(
                    json!(429),
                    r#"{"error":{"message":"Rate limit exceeded"},"status":"failure"}"#,
                ),
                &mut names,
            )
            .expect_err("refused");
        assert_eq!(refused.status, Some(429));
        assert_eq!(refused.retry_after, Some(Duration::from_secs(3)));
        assert!(refused
            .to_string()
            .starts_with("POST https://acme.example.com/api/now/table/t?"));
        assert!(refused.message.contains("Rate limit exceeded"));
        let mut garbled = item(json!(200), "");
        garbled.body = Some("%%%".into());
        assert!(sn.item_result(&create, garbled, &mut names).is_err());
        assert!(sn
            .item_result(&create, item(json!("nope"), "{}"), &mut names)
            .is_err());
    }
}
