//! The REST layer below axum: a request as plain data, a response as plain data, the error
//! envelopes, and the dispatch of `/api/now/...` paths to their handlers.
//!
//! Keeping this independent of axum lets the Batch API run its items through exactly the code
//! that serves direct requests.

use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{attachment, batch, catalog, cmdb, table, tinyurl, Inner};

/// What ServiceNow sends as the type of its JSON bodies.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// One authenticated API call.
pub(crate) struct ApiRequest<'a> {
    pub method: Method,
    /// The URL path, e.g. `/api/now/v2/table/incident/<sys_id>`.
    pub path: &'a str,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    pub body: &'a [u8],
    /// The request's `Content-Type` (an attachment's type).
    pub content_type: Option<&'a str>,
    /// The user the call acts as (`sys_created_by`, `sys_updated_by`).
    pub user: &'a str,
    /// `scheme://host[:port]` the client reached us at, for absolute URLs.
    pub base_url: &'a str,
}

impl ApiRequest<'_> {
    /// The first value of a query parameter.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean `sysparm_*` flag; clients send `true`, `True` or `TRUE`.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.param(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// An API answer: status, headers besides Content-Type, and a body (none for 204): JSON,
/// unless `content_type` says otherwise (an attachment's file).
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    /// The body, already serialized: pages are written straight from the store.
    pub body: Option<Vec<u8>>,
    /// The body's type when it is not JSON.
    pub content_type: Option<String>,
}

/// `{"result": ...}`.
#[derive(Serialize)]
struct Envelope<T> {
    result: T,
}

impl ApiResponse {
    pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Self {
        Self {
            status,
            headers: Vec::new(),
            // Only maps with string keys and strings are serialized here, which cannot fail.
            body: Some(serde_json::to_vec(body).unwrap_or_default()),
            content_type: None,
        }
    }

    /// `{"result": ...}` with `status`.
    pub(crate) fn result_with(status: StatusCode, result: &impl Serialize) -> Self {
        Self::json(status, &Envelope { result })
    }

    /// `{"result": ...}` with 200.
    pub(crate) fn result(result: &impl Serialize) -> Self {
        Self::result_with(StatusCode::OK, result)
    }

    pub(crate) fn no_content() -> Self {
        Self::empty(StatusCode::NO_CONTENT)
    }

    /// `status` with no body.
    pub(crate) fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
            content_type: None,
        }
    }

    /// 200 with `bytes` of `content_type`.
    pub(crate) fn bytes(content_type: &str, bytes: Vec<u8>) -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: Some(bytes),
            content_type: Some(content_type.to_owned()),
        }
    }

    /// The Content-Type of the body, if there is one.
    pub(crate) fn body_type(&self) -> Option<&str> {
        self.body
            .as_ref()
            .map(|_| self.content_type.as_deref().unwrap_or(JSON_CONTENT_TYPE))
    }

    /// The ServiceNow error envelope.
    pub(crate) fn error(status: StatusCode, message: &str, detail: impl Into<Value>) -> Self {
        Self::json(
            status,
            &json!({"error": {"message": message, "detail": detail.into()}, "status": "failure"}),
        )
    }

    pub(crate) fn not_found() -> Self {
        Self::error(
            StatusCode::NOT_FOUND,
            "No Record found",
            "Record doesn't exist or ACL restricts the record retrieval",
        )
    }

    pub(crate) fn no_such_resource() -> Self {
        Self::error(
            StatusCode::BAD_REQUEST,
            "Requested URI does not represent any resource",
            Value::Null,
        )
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not Supported",
            "The requested method is not supported for this resource",
        )
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The body parsed back, for tests.
    #[cfg(test)]
    pub(crate) fn json_body(&self) -> Value {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null)
    }
}

impl IntoResponse for ApiResponse {
    fn into_response(self) -> Response {
        let body_type = self.body_type().and_then(|t| HeaderValue::from_str(t).ok());
        let mut response = (self.status, self.body.unwrap_or_default()).into_response();
        let headers = response.headers_mut();
        if let Some(body_type) = body_type {
            headers.insert(axum::http::header::CONTENT_TYPE, body_type);
        }
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.append(name, value);
            }
        }
        response
    }
}

/// A JSON object request body, or the 400 an instance answers.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiResponse> {
    let bad = |detail: &str| {
        ApiResponse::error(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            detail,
        )
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("Empty request body"));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(bad("The payload is not a JSON object.")),
        Err(_) => Err(bad("The payload is not valid JSON.")),
    }
}

/// A JSON object request body, an empty body being an empty object (a POST with no body
/// creates a record of defaults, a PATCH with none changes nothing).
pub(crate) fn json_object_or_empty(body: &[u8]) -> Result<Map<String, Value>, ApiResponse> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    json_object(body)
}

/// The API a path addresses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Endpoint<'p> {
    Table {
        table: &'p str,
        sys_id: Option<&'p str>,
    },
    Batch,
    /// `/attachment`, `/attachment/{sys_id}`, `/attachment/{sys_id}/file`.
    Attachment {
        sys_id: Option<&'p str>,
        file: bool,
    },
    /// `POST /attachment/file?table_name=&table_sys_id=&file_name=`.
    AttachmentUpload,
    /// `/cmdb/instance/{class}[/{sys_id}[/relation[/{rel_sys_id}]]]`.
    CmdbInstance {
        class: &'p str,
        sys_id: Option<&'p str>,
        relation: Option<Option<&'p str>>,
    },
    TinyUrl,
}

/// Parses `/api/now[/vN]/table/{table}[/{sys_id}]`, `/api/now[/vN]/batch`,
/// `/api/now[/vN]/attachment...`, `/api/now[/vN]/cmdb/instance/...` and `/api/now/tinyurl`.
pub(crate) fn endpoint(path: &str) -> Option<Endpoint<'_>> {
    let rest = path.strip_prefix("/api/now/")?;
    let mut segments: Vec<&str> = rest.split('/').collect();
    if segments.last() == Some(&"") {
        segments.pop();
    }
    let is_version = |s: &str| {
        s.strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if segments.first().is_some_and(|s| is_version(s)) {
        segments.remove(0);
    }
    match segments.as_slice() {
        ["table", table] => Some(Endpoint::Table {
            table,
            sys_id: None,
        }),
        ["table", table, sys_id] => Some(Endpoint::Table {
            table,
            sys_id: Some(sys_id),
        }),
        ["batch"] => Some(Endpoint::Batch),
        ["tinyurl"] => Some(Endpoint::TinyUrl),
        ["attachment"] => Some(Endpoint::Attachment {
            sys_id: None,
            file: false,
        }),
        ["attachment", "file"] => Some(Endpoint::AttachmentUpload),
        ["attachment", sys_id] => Some(Endpoint::Attachment {
            sys_id: Some(sys_id),
            file: false,
        }),
        ["attachment", sys_id, "file"] => Some(Endpoint::Attachment {
            sys_id: Some(sys_id),
            file: true,
        }),
        ["cmdb", "instance", class, rest @ ..] => {
            let (sys_id, relation) = match rest {
                [] => (None, None),
                [sys_id] => (Some(*sys_id), None),
                [sys_id, "relation"] => (Some(*sys_id), Some(None)),
                [sys_id, "relation", rel] => (Some(*sys_id), Some(Some(*rel))),
                _ => return None,
            };
            Some(Endpoint::CmdbInstance {
                class,
                sys_id,
                relation,
            })
        }
        _ => None,
    }
}

/// Runs one API call. `in_batch` refuses nested batches.
pub(crate) fn dispatch(inner: &Inner, req: &ApiRequest<'_>, in_batch: bool) -> ApiResponse {
    if let Some(rest) = req.path.strip_prefix("/api/sn_sc/") {
        return catalog::handle(inner, req, rest);
    }
    match endpoint(req.path) {
        Some(Endpoint::Table { table, sys_id }) => table::handle(inner, req, table, sys_id),
        Some(Endpoint::Batch) if !in_batch => match req.method {
            Method::POST => batch::handle(inner, req),
            _ => ApiResponse::method_not_allowed(),
        },
        Some(Endpoint::Attachment { sys_id, file }) => attachment::handle(inner, req, sys_id, file),
        Some(Endpoint::AttachmentUpload) => match req.method {
            Method::POST => attachment::upload(inner, req),
            _ => ApiResponse::method_not_allowed(),
        },
        Some(Endpoint::CmdbInstance {
            class,
            sys_id,
            relation,
        }) => cmdb::handle(inner, req, class, sys_id, relation),
        Some(Endpoint::TinyUrl) => match req.method {
            Method::POST => tinyurl::create(inner, req),
            _ => ApiResponse::method_not_allowed(),
        },
        Some(Endpoint::Batch) | None => ApiResponse::no_such_resource(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_and_without_a_version() {
        let t = |table, sys_id| Some(Endpoint::Table { table, sys_id });
        assert_eq!(endpoint("/api/now/table/incident"), t("incident", None));
        assert_eq!(endpoint("/api/now/v2/table/incident/"), t("incident", None));
        assert_eq!(
            endpoint("/api/now/v1/table/incident/abc"),
            t("incident", Some("abc"))
        );
        assert_eq!(endpoint("/api/now/v1/batch"), Some(Endpoint::Batch));
        assert_eq!(endpoint("/api/now/batch"), Some(Endpoint::Batch));
        assert_eq!(
            endpoint("/api/now/attachment"),
            Some(Endpoint::Attachment {
                sys_id: None,
                file: false
            })
        );
        assert_eq!(
            endpoint("/api/now/v1/attachment/abc/file"),
            Some(Endpoint::Attachment {
                sys_id: Some("abc"),
                file: true
            })
        );
        assert_eq!(
            endpoint("/api/now/attachment/file"),
            Some(Endpoint::AttachmentUpload)
        );
        assert_eq!(endpoint("/api/now/tinyurl"), Some(Endpoint::TinyUrl));
        assert_eq!(
            endpoint("/api/now/cmdb/instance/cmdb_ci/abc/relation/def"),
            Some(Endpoint::CmdbInstance {
                class: "cmdb_ci",
                sys_id: Some("abc"),
                relation: Some(Some("def"))
            })
        );
        assert_eq!(endpoint("/api/now/cmdb/instance/cmdb_ci/abc/other"), None);
        assert_eq!(endpoint("/api/now/vx/table/incident"), None);
        assert_eq!(endpoint("/api/now/table"), None);
        assert_eq!(endpoint("/api/now/table/a/b/c"), None);
        assert_eq!(endpoint("/api/global/table/a"), None);
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(json_object(br#"{"a": 1}"#).is_ok());
        for bad in [&b""[..], b"  ", b"{", b"[1]", b"\"x\""] {
            let err = json_object(bad).expect_err("refused");
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            let body = err.json_body();
            assert_eq!(body["status"], "failure");
            assert_eq!(body["error"]["message"], "Exception while reading request");
        }
    }

    #[test]
    fn the_404_envelope_is_exactly_the_reference() {
        assert_eq!(
            ApiResponse::not_found().json_body(),
            json!({
                "error": {
                    "message": "No Record found",
                    "detail": "Record doesn't exist or ACL restricts the record retrieval",
                },
                "status": "failure",
            })
        );
    }
}
