//! The collection envelope, in the real server's key order: `name`, `count`,
//! `subcount`, `subquery_count` (only with `filter[]`), `pages`, `resources`,
//! `actions`, `links`.

use super::error::{json_response, MiqError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

pub struct CollectionBody<'a, R> {
    pub name: &'a str,
    /// Everything in the collection the user may see: filters do not change it.
    pub count: u64,
    /// Records on this page.
    pub subcount: u64,
    /// Records matching `filter[]`, when there is one.
    pub subquery_count: Option<u64>,
    pub pages: Option<u64>,
    /// `None` with `hide=resources`.
    pub resources: Option<R>,
    pub actions: &'static [&'static str],
    pub collection_href: String,
    pub links: Vec<(&'static str, String)>,
}

impl<R: Serialize> Serialize for CollectionBody<'_, R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", self.name)?;
        m.serialize_entry("count", &self.count)?;
        m.serialize_entry("subcount", &self.subcount)?;
        if let Some(n) = self.subquery_count {
            m.serialize_entry("subquery_count", &n)?;
        }
        if let Some(pages) = self.pages {
            m.serialize_entry("pages", &pages)?;
        }
        if let Some(resources) = &self.resources {
            m.serialize_entry("resources", resources)?;
        }
        if !self.actions.is_empty() {
            m.serialize_entry(
                "actions",
                &CollectionActions {
                    names: self.actions,
                    href: &self.collection_href,
                },
            )?;
        }
        if !self.links.is_empty() {
            m.serialize_entry("links", &Links(&self.links))?;
        }
        m.end()
    }
}

struct CollectionActions<'a> {
    names: &'a [&'a str],
    href: &'a str,
}

impl Serialize for CollectionActions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.names
                .iter()
                .map(|name| serde_json::json!({"name": name, "method": "post", "href": self.href})),
        )
    }
}

struct Links<'a>(&'a [(&'static str, String)]);

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, href) in self.0 {
            m.serialize_entry(name, href)?;
        }
        m.end()
    }
}

/// Serializes `body` into a 200 JSON response.
pub fn ok_json<T: Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => json_response(StatusCode::OK, bytes),
        Err(e) => MiqError::for_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("simulator failed to render the response: {e}"),
        )
        .into_response(),
    }
}
