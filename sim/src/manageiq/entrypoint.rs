//! `GET /api` (the entry point clients load first: collections, version,
//! identity) and `OPTIONS /api/vms` (the attribute catalogue), shaped like
//! the recorded responses of a real appliance.

use super::catalog;
use crate::generator::Estate;
use chrono::Utc;
use serde_json::{json, Value};

pub const API_VERSION: &str = "4.4.0";

/// Collections the simulator serves, with the descriptions the real server uses.
pub const COLLECTIONS: &[(&str, &str)] = &[
    ("clusters", "Clusters"),
    ("data_stores", "Datastores"),
    ("groups", "Groups"),
    ("hosts", "Hosts"),
    ("providers", "Providers"),
    ("provision_requests", "Provision Requests"),
    ("request_tasks", "Request Tasks"),
    ("requests", "Requests"),
    ("service_catalogs", "Service Catalogs"),
    ("service_requests", "Service Requests"),
    ("service_templates", "Service Templates"),
    ("tags", "Tags"),
    ("templates", "Templates"),
    ("users", "Users"),
    ("vms", "Virtual Machines"),
];

pub fn entry_point(base: &str, userid: &str, group: &str, estate: &Estate) -> Value {
    let admin = &estate.users[0];
    let group_id = estate.groups[0].id;
    let collections: Vec<Value> = COLLECTIONS
        .iter()
        .map(|(name, description)| {
            json!({"name": name, "href": format!("{base}/api/{name}"), "description": description})
        })
        .collect();
    json!({
        "name": "API",
        "description": "REST API",
        "version": API_VERSION,
        "versions": [{"name": API_VERSION, "href": format!("{base}/api/v{API_VERSION}")}],
        "settings": {"locale": "en", "asynchronous_notifications": true},
        "identity": {
            "userid": userid,
            "name": admin.name,
            "user_href": format!("{base}/api/users/{}", admin.id),
            "group": group,
            "group_href": format!("{base}/api/groups/{group_id}"),
            "role": "EvmRole-super_administrator",
            "role_href": format!("{base}/api/roles/1"),
            "tenant": "My Company",
            "groups": [group],
            "miq_groups": [{
                "href": format!("{base}/api/groups/{group_id}"),
                "id": group_id.to_string(),
                "description": group,
                "group_type": "system",
                "sequence": 1,
                "created_on": admin.created_on,
                "updated_on": admin.created_on,
                "settings": null,
                "tenant_id": catalog::TENANT_ID.to_string(),
                "detailed_description": null,
                "sui_product_features": ["sui_core", "sui_vm_details_view", "sui_vm_tags"],
                "product_features": ["everything"],
            }],
        },
        "server_info": {
            "version": "5.11.12.3",
            "build": "20211123155033_4c7d2b4",
            "release": "Ivanchuk",
            "appliance": "EVM",
            "time": Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "server_href": format!("{base}/api/servers/1"),
            "zone_href": format!("{base}/api/zones/1"),
            "region_href": format!("{base}/api/regions/1"),
            "enterprise_href": format!("{base}/api/enterprises/1"),
            "plugins": {
                "ManageIQ::Api::Engine": {"display_name": "REST API", "version": API_VERSION},
            },
        },
        "timezones": [
            {"name": "UTC", "description": "(GMT+00:00) UTC"},
            {"name": "London", "description": "(GMT+00:00) London"},
            {"name": "Paris", "description": "(GMT+01:00) Paris"},
            {"name": "Eastern Time (US & Canada)", "description": "(GMT-05:00) Eastern Time (US & Canada)"},
        ],
        "product_info": {
            "name": "CloudForms",
            "name_full": "Red Hat CloudForms",
            "copyright": "Copyright (c) 2021 Red Hat, Inc.",
            "support_website": "https://access.redhat.com",
            "support_website_text": "Red Hat",
            "branding_info": {
                "brand": "/assets/layout/brand.svg",
                "logo": "/assets/layout/login-screen-logo.png",
                "favicon": "/assets/favicon.ico",
            },
            "authentication": {
                "mode": "database",
                "oidc_enabled": false,
                "saml_enabled": false,
                "sso_enabled": false,
            },
        },
        "authorization": {
            "product_features": {
                "everything": {
                    "name": "Everything",
                    "description": "Access to Everything",
                    "children": ["vm_infra_explorer"],
                },
                "vm_infra_explorer": {
                    "name": "Virtual Machines",
                    "description": "Virtual Machine Views",
                    "children": [],
                },
            },
        },
        "collections": collections,
    })
}

/// `OPTIONS /api/vms`: the attributes the simulator serves, sorted like the
/// real catalogue.
pub fn vm_options() -> Value {
    let mut attributes: Vec<&str> = catalog::PHYSICAL.iter().map(|a| a.name).collect();
    attributes.sort_unstable();
    let mut virtual_attributes: Vec<&str> = catalog::VIRTUAL.iter().map(|a| a.name).collect();
    virtual_attributes.sort_unstable();
    let mut relationships: Vec<&str> = catalog::RELATIONS.iter().map(|r| r.name).collect();
    relationships.sort_unstable();
    json!({
        "attributes": attributes,
        "virtual_attributes": virtual_attributes,
        "relationships": relationships,
        "subcollections": ["custom_attributes", "tags"],
        "data": {},
    })
}
