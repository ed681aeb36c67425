//! The Attachment API (ServiceNowDocs `api-reference/rest-apis/c_AttachmentAPI.md`):
//! `POST /attachment/file?table_name=&table_sys_id=&file_name=` with the file as the body and
//! its type as `Content-Type` (201, `Location`, the metadata); `GET /attachment` (metadata of
//! `sys_attachment` rows, `sysparm_query`, and the plain `table_name=..&table_sys_id=..`
//! parameters servicenow.itsm sends; `X-Total-Count`); `GET /attachment/{sys_id}` (metadata);
//! `GET /attachment/{sys_id}/file` (the bytes, their type, `X-Attachment-Metadata`);
//! `DELETE /attachment/{sys_id}` (204).
//!
//! The metadata is a `sys_attachment` row plus `download_link` and `sys_tags`, as in the doc's
//! examples; the bytes are kept base64-encoded in `sys_attachment_doc` rows, as an instance
//! keeps them (so state files keep them too). Files are not compressed: `compressed` is false
//! and `size_compressed` empty ("If the file is not compressed, empty"). Error messages of the
//! refusals are assumptions; their statuses are the doc's (400 for a missing parameter, 404
//! for a record that does not exist).

use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::api::{ApiRequest, ApiResponse};
use super::schema::TableId;
use super::store::{Row, Stamp, Store};
use super::table::{compiled_query, invalid_table, number_param, select};
use super::Inner;

/// File bytes per `sys_attachment_doc` row: 3000 bytes are 4000 base64 characters, the
/// column's length.
const CHUNK_BYTES: usize = 3000;

/// `sysparm_limit` of the attachment list when none is sent (the doc's default).
const DEFAULT_LIMIT: usize = 1000;

fn tables(store: &Store) -> Option<(TableId, TableId)> {
    Some((
        store.table("sys_attachment")?,
        store.table("sys_attachment_doc")?,
    ))
}

/// The metadata of an attachment, as the API returns it.
fn metadata(store: &Store, base_url: &str, class: TableId, row: &Row) -> Map<String, Value> {
    let mut meta = store.to_json(class, row);
    meta.remove("sys_class_name");
    let sys_id = store.value(class, row, "sys_id");
    meta.insert(
        "download_link".to_owned(),
        Value::String(format!("{base_url}/api/now/attachment/{sys_id}/file")),
    );
    meta.insert("sys_tags".to_owned(), Value::String(String::new()));
    meta
}

/// Serves `/attachment`, `/attachment/{sys_id}` and `/attachment/{sys_id}/file`.
pub(crate) fn handle(
    inner: &Inner,
    req: &ApiRequest<'_>,
    sys_id: Option<&str>,
    file: bool,
) -> ApiResponse {
    match (&req.method, sys_id, file) {
        (&Method::GET, None, _) => list(inner, req),
        (&Method::GET, Some(id), false) => {
            let store = inner.read_store();
            let Some((attachments, _)) = tables(&store) else {
                return ApiResponse::not_found();
            };
            match store.find(attachments, id) {
                Some((class, row)) => {
                    ApiResponse::result(&metadata(&store, req.base_url, class, row))
                }
                None => ApiResponse::not_found(),
            }
        }
        (&Method::GET, Some(id), true) => download(inner, req, id),
        (&Method::DELETE, Some(id), false) => {
            let mut store = inner.write_store();
            let Some((attachments, docs)) = tables(&store) else {
                return ApiResponse::not_found();
            };
            if !store.delete(attachments, id) {
                return ApiResponse::not_found();
            }
            let chunks: Vec<String> = store
                .rows_where(docs, "sys_attachment", id)
                .map(|(class, row)| store.value(class, row, "sys_id").to_owned())
                .collect();
            for chunk in chunks {
                store.delete(docs, &chunk);
            }
            ApiResponse::no_content()
        }
        _ => ApiResponse::method_not_allowed(),
    }
}

fn list(inner: &Inner, req: &ApiRequest<'_>) -> ApiResponse {
    let store = inner.read_store();
    let Some((attachments, _)) = tables(&store) else {
        return ApiResponse::result(&Vec::<Value>::new());
    };
    let query = compiled_query(inner, &store, req, attachments);
    let limit = number_param(req, "sysparm_limit", DEFAULT_LIMIT);
    let offset = number_param(req, "sysparm_offset", 0);
    let (total, page) = select(&store, attachments, &query, offset, limit);
    let rows: Vec<Map<String, Value>> = page
        .into_iter()
        .map(|(class, row)| metadata(&store, req.base_url, class, row))
        .collect();
    ApiResponse::result(&rows).with_header("X-Total-Count", total.to_string())
}

fn download(inner: &Inner, req: &ApiRequest<'_>, sys_id: &str) -> ApiResponse {
    let store = inner.read_store();
    let Some((attachments, docs)) = tables(&store) else {
        return ApiResponse::not_found();
    };
    let Some((class, row)) = store.find(attachments, sys_id) else {
        return ApiResponse::not_found();
    };
    let mut chunks: Vec<(u64, &str)> = store
        .rows_where(docs, "sys_attachment", sys_id)
        .map(|(c, r)| {
            let position = store.value(c, r, "position").parse().unwrap_or(0);
            (position, store.value(c, r, "data"))
        })
        .collect();
    chunks.sort_by_key(|(position, _)| *position);
    let mut bytes = Vec::new();
    for (_, data) in chunks {
        match STANDARD.decode(data) {
            Ok(chunk) => bytes.extend(chunk),
            Err(_) => {
                return ApiResponse::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Attachment data is corrupt",
                    Value::Null,
                )
            }
        }
    }
    let meta = Value::Object(metadata(&store, req.base_url, class, row)).to_string();
    let content_type = store.value(class, row, "content_type");
    ApiResponse::bytes(
        if content_type.is_empty() {
            "application/octet-stream"
        } else {
            content_type
        },
        bytes,
    )
    .with_header("X-Attachment-Metadata", meta)
}

/// Serves `POST /attachment/file`.
pub(crate) fn upload(inner: &Inner, req: &ApiRequest<'_>) -> ApiResponse {
    let missing = |what: &str| {
        ApiResponse::error(
            StatusCode::BAD_REQUEST,
            &format!("Missing parameter: {what}"),
            Value::Null,
        )
    };
    let (Some(table_name), Some(table_sys_id), Some(file_name)) = (
        req.param("table_name"),
        req.param("table_sys_id"),
        req.param("file_name"),
    ) else {
        return missing("table_name, table_sys_id and file_name are required");
    };
    // "This header is mandatory to post file attachments."
    let Some(content_type) = req.content_type.filter(|t| !t.trim().is_empty()) else {
        return missing("Content-Type");
    };
    let stamp = Stamp::now(req.user);
    let mut store = inner.write_store();
    let Some(target) = store.table(table_name) else {
        return invalid_table(table_name);
    };
    if store.find(target, table_sys_id).is_none() {
        return ApiResponse::not_found();
    }
    let Some((attachments, docs)) = tables(&store) else {
        return ApiResponse::no_such_resource();
    };
    let fields = vec![
        ("file_name".to_owned(), file_name.to_owned()),
        ("table_name".to_owned(), table_name.to_owned()),
        ("table_sys_id".to_owned(), table_sys_id.to_owned()),
        ("content_type".to_owned(), content_type.to_owned()),
        ("size_bytes".to_owned(), req.body.len().to_string()),
        ("compressed".to_owned(), "false".to_owned()),
    ];
    let Ok(sys_id) = store.insert(attachments, fields, &stamp) else {
        return ApiResponse::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Operation Failed",
            Value::Null,
        );
    };
    for (position, chunk) in req.body.chunks(CHUNK_BYTES).enumerate() {
        let doc = vec![
            ("sys_attachment".to_owned(), sys_id.clone()),
            ("position".to_owned(), position.to_string()),
            ("length".to_owned(), chunk.len().to_string()),
            ("data".to_owned(), STANDARD.encode(chunk)),
        ];
        if store.insert(docs, doc, &stamp).is_err() {
            return ApiResponse::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Operation Failed",
                Value::Null,
            );
        }
    }
    let Some((class, row)) = store.find(attachments, &sys_id) else {
        return ApiResponse::not_found();
    };
    let meta = metadata(&store, req.base_url, class, row);
    ApiResponse::result_with(StatusCode::CREATED, &meta).with_header(
        "Location",
        format!("{}/api/now/attachment/{sys_id}", req.base_url),
    )
}
