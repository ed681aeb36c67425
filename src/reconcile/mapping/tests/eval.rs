//! Unit tests of evaluation: paths, constants, templates, maps, conversions, picks, case,
//! tags and reference lookups.

use serde_json::json;

use super::*;

#[test]
fn plain_and_nested_paths() {
    let data = json!({"id": 1, "name": "web", "hardware": {"memory_mb": 2048, "disks": [{"size": 10}, {"size": 20}]}});
    assert_eq!(
        value("m = \"hardware.memory_mb\"", "m", data.clone()),
        Some("2048".into())
    );
    assert_eq!(
        value("d = \"hardware.disks[1].size\"", "d", data.clone()),
        Some("20".into())
    );
    assert_eq!(
        value("d = \"hardware.disks.0.size\"", "d", data.clone()),
        Some("10".into())
    );
    assert_eq!(value("d = \"hardware.nope\"", "d", data), None);
}

#[test]
fn ids_may_be_integers_or_strings() {
    assert_eq!(record(json!({"id": 7})).id, "7");
    assert_eq!(record(json!({"id": "10000000002056"})).id, "10000000002056");
    let Val::Object(no_id) = Val::from_json(json!({"name": "x"}), &mut FieldNames::default())
    else {
        unreachable!()
    };
    assert!(SourceRecord::from_object(&no_id).is_none());
}

#[test]
fn constants_and_templates() {
    let data = json!({"id": 1, "name": "web", "domain": "example.com"});
    assert_eq!(
        value("c = { const = \"CloudForms\" }", "c", data.clone()),
        Some("CloudForms".into())
    );
    assert_eq!(
        value("c = { const = 42 }", "c", data.clone()),
        Some("42".into())
    );
    assert_eq!(
        value("f = { template = \"{name}.{domain}\" }", "f", data.clone()),
        Some("web.example.com".into())
    );
    assert_eq!(
        value("f = { template = \"{{{name}}}\" }", "f", data.clone()),
        Some("{web}".into())
    );
    // A template with a missing part has no value, rather than a half-built one.
    assert_eq!(
        value("f = { template = \"{name}.{nope}\" }", "f", data),
        None
    );
}

#[test]
fn value_maps_with_and_without_default() {
    let spec = "s = { from = \"power_state\", map = { on = \"on\", suspended = \"paused\" }, default = \"off\" }";
    assert_eq!(
        value(spec, "s", json!({"id": 1, "power_state": "suspended"})),
        Some("paused".into())
    );
    assert_eq!(
        value(spec, "s", json!({"id": 1, "power_state": "ON"})),
        Some("on".into())
    );
    assert_eq!(
        value(spec, "s", json!({"id": 1, "power_state": "unknown"})),
        Some("off".into())
    );
    assert_eq!(value(spec, "s", json!({"id": 1})), Some("off".into()));
    let strict = "s = { from = \"power_state\", map = { on = \"on\" } }";
    assert!(
        matches!(eval(strict, "s", json!({"id": 1, "power_state": "never"})), Err(EvalError::BadValue(m)) if m.contains("`never`"))
    );
}

#[test]
fn a_map_entry_of_empty_text_is_no_value() {
    // `""` says "the source does not know": no value, the default does not stand in for it,
    // and the CI is left alone (on_empty = "skip").
    let spec =
        "s = { from = \"power_state\", map = { on = \"on\", unknown = \"\" }, default = \"off\" }";
    assert_eq!(
        eval(spec, "s", json!({"id": 1, "power_state": "unknown"})),
        Ok(None)
    );
    assert_eq!(
        value(spec, "s", json!({"id": 1, "power_state": "on"})),
        Some("on".into())
    );
    assert_eq!(
        value(spec, "s", json!({"id": 1, "power_state": "never"})),
        Some("off".into())
    );
}

#[test]
fn shipped_mappings_leave_an_unknown_power_state_alone() {
    // CloudForms says `unknown` when the provider cannot tell (a disconnected host): the VM
    // is not off, and its CI must not say so. Other states it does not list are reported.
    let shipped = [
        include_str!("../../../../mappings/vmware-vm.toml"),
        include_str!("../../../../mappings/vm.toml"),
    ];
    for text in shipped {
        let m = Mapping::parse(text, "shipped.toml").unwrap();
        let state = m.field("state").unwrap();
        let eval = |power: &str| {
            state.eval(
                &record(json!({"id": 1, "power_state": power})),
                &References::default(),
            )
        };
        assert_eq!(eval("unknown"), Ok(None));
        assert_eq!(eval("on"), Ok(Some("on".into())));
        assert_eq!(eval("off"), Ok(Some("off".into())));
        assert_eq!(eval("suspended"), Ok(Some("paused".into())));
        assert!(matches!(eval("standby"), Err(EvalError::BadValue(_))));
        assert_eq!(
            state.eval(&record(json!({"id": 1})), &References::default()),
            Ok(None)
        );
    }
}

#[test]
fn max_length_cuts_on_characters() {
    let m = mapping("d = { from = \"d\", max_length = 5 }");
    let rule = m.field("d").unwrap();
    assert_eq!(rule.max_length, Some(5));
    let fit = |text: &str| {
        let mut value = text.to_owned();
        let had = rule.fit(&mut value);
        (value, had)
    };
    // Five characters of two, three and four bytes each: cut after the fifth, not the fifth byte.
    assert_eq!(
        fit("\u{e9}\u{e9}\u{20ac}\u{1f600}\u{fc}xyz"),
        ("\u{e9}\u{e9}\u{20ac}\u{1f600}\u{fc}".into(), Some(8))
    );
    assert_eq!(fit("abcde"), ("abcde".into(), None));
    assert_eq!(fit("abcdef"), ("abcde".into(), Some(6)));
    // Without a length nothing is cut.
    let m = mapping("d = \"d\"");
    let mut long = "x".repeat(10_000);
    assert_eq!(m.field("d").unwrap().fit(&mut long), None);
    assert_eq!(long.len(), 10_000);
}

#[test]
fn max_length_must_be_a_positive_count() {
    for bad in ["0", "-1"] {
        let e = error(&format!("d = {{ from = \"d\", max_length = {bad} }}"));
        assert!(e.to_string().contains("`max_length` must be"), "{bad}: {e}");
    }
    error("d = { from = \"d\", max_length = \"255\" }");
}

#[test]
fn unit_conversions() {
    let data = json!({"id": 1, "disk": 42949672960u64, "mem": 3072, "text": "2048", "bad": "lots"});
    assert_eq!(
        value(
            "g = { from = \"disk\", convert = \"bytes_to_gb\" }",
            "g",
            data.clone()
        ),
        Some("40".into())
    );
    assert_eq!(
        value(
            "g = { from = \"mem\", convert = \"mb_to_gb\", decimals = 1 }",
            "g",
            data.clone()
        ),
        Some("3".into())
    );
    assert_eq!(
        value(
            "g = { from = \"mem\", convert = \"mb_to_gb\", decimals = 2 }",
            "g",
            json!({"id": 1, "mem": 1536})
        ),
        Some("1.5".into())
    );
    assert_eq!(
        value(
            "g = { from = \"text\", convert = \"mb_to_gb\" }",
            "g",
            data.clone()
        ),
        Some("2".into())
    );
    assert_eq!(
        value(
            "g = { from = \"mem\", convert = \"gb_to_mb\" }",
            "g",
            json!({"id": 1, "mem": 2})
        ),
        Some("2048".into())
    );
    assert_eq!(
        value(
            "g = { from = \"disk\", convert = \"bytes_to_mb\" }",
            "g",
            data.clone()
        ),
        Some("40960".into())
    );
    assert!(
        matches!(eval("g = { from = \"bad\", convert = \"mb_to_gb\" }", "g", data), Err(EvalError::BadValue(m)) if m.contains("`lots`"))
    );
}

#[test]
fn picks_from_lists() {
    let data = json!({"id": 1, "ips": ["fe80::1", "10.0.0.5", "10.0.0.6"], "empty": []});
    assert_eq!(
        value(
            "i = { from = \"ips\", pick = \"first_ipv4\" }",
            "i",
            data.clone()
        ),
        Some("10.0.0.5".into())
    );
    assert_eq!(
        value(
            "i = { from = \"ips\", pick = \"first_ipv6_any\" }",
            "i",
            data.clone()
        ),
        Some("fe80::1".into())
    );
    assert_eq!(
        value(
            "i = { from = \"ips\", pick = \"first\" }",
            "i",
            data.clone()
        ),
        Some("fe80::1".into())
    );
    assert_eq!(
        value("i = { from = \"ips\", pick = \"last\" }", "i", data.clone()),
        Some("10.0.0.6".into())
    );
    assert_eq!(
        value(
            "i = { from = \"ips\", pick = \"count\" }",
            "i",
            data.clone()
        ),
        Some("3".into())
    );
    assert_eq!(
        value(
            "i = { from = \"ips\", pick = \"join\", separator = \";\" }",
            "i",
            data.clone()
        ),
        Some("fe80::1;10.0.0.5;10.0.0.6".into())
    );
    assert_eq!(
        value("i = \"ips\"", "i", data.clone()),
        Some("fe80::1, 10.0.0.5, 10.0.0.6".into())
    );
    assert_eq!(
        value(
            "i = { from = \"empty\", pick = \"first_ipv4\" }",
            "i",
            data.clone()
        ),
        None
    );
    // A single value counts as a list of one.
    assert_eq!(
        value(
            "i = { from = \"ip\", pick = \"first_ipv4\" }",
            "i",
            json!({"id": 1, "ip": "10.1.1.1"})
        ),
        Some("10.1.1.1".into())
    );
    assert_eq!(
        value(
            "i = { from = \"ip\", pick = \"first_ipv4\" }",
            "i",
            json!({"id": 1, "ip": "fe80::1"})
        ),
        None
    );
}

#[test]
fn address_picks_skip_link_local_and_loopback() {
    // VMware Tools lists an APIPA address (169.254/16) while DHCP has not answered yet, and
    // loopback and IPv6 link-local addresses on every guest: none of them is the VM's address.
    let pick = |pick: &str, ips: serde_json::Value| {
        value(
            &format!("i = {{ from = \"ips\", pick = \"{pick}\" }}"),
            "i",
            json!({"id": 1, "ips": ips}),
        )
    };
    let v4 = json!([
        "127.0.0.1",
        "169.254.12.7",
        "0.0.0.0",
        "fe80::1",
        "10.0.0.5"
    ]);
    assert_eq!(pick("first_ipv4", v4.clone()), Some("10.0.0.5".into()));
    assert_eq!(pick("first_ipv4_any", v4), Some("127.0.0.1".into()));
    let v6 = json!([
        "::1",
        "fe80::250:56ff:fe9a:1",
        "FEBF::1",
        "::",
        "10.0.0.5",
        "2001:db8::7"
    ]);
    assert_eq!(pick("first_ipv6", v6.clone()), Some("2001:db8::7".into()));
    assert_eq!(pick("first_ipv6_any", v6), Some("::1".into()));
    // Only such addresses: no value, so the CI's address is left alone (on_empty = skip).
    assert_eq!(
        pick("first_ipv4", json!(["169.254.0.1", "127.0.1.1"])),
        None
    );
    assert_eq!(pick("first_ipv6", json!(["fe80::1"])), None);
    // A single value counts as a list of one, here too.
    assert_eq!(pick("first_ipv4", json!("169.254.1.1")), None);
    assert_eq!(
        pick("first_ipv4_any", json!("169.254.1.1")),
        Some("169.254.1.1".into())
    );
    // Just outside the ranges.
    assert_eq!(
        pick("first_ipv4", json!(["169.255.0.1"])),
        Some("169.255.0.1".into())
    );
    assert_eq!(
        pick("first_ipv6", json!(["fec0::1"])),
        Some("fec0::1".into())
    );
    assert_eq!(
        mapping("i = { from = \"ips\", pick = \"first_ipv4_any\" }")
            .field("i")
            .unwrap()
            .describe,
        "ips | pick first_ipv4_any"
    );
}

#[test]
fn trim_and_case() {
    let data = json!({"id": 1, "name": "  Web01  "});
    assert_eq!(
        value("n = \"name\"", "n", data.clone()),
        Some("Web01".into())
    );
    assert_eq!(
        value(
            "n = { from = \"name\", case = \"lower\" }",
            "n",
            data.clone()
        ),
        Some("web01".into())
    );
    assert_eq!(
        value(
            "n = { from = \"name\", case = \"upper\" }",
            "n",
            data.clone()
        ),
        Some("WEB01".into())
    );
    assert_eq!(
        value("n = { from = \"name\", trim = false }", "n", data),
        Some("  Web01  ".into())
    );
}

#[test]
fn booleans_and_objects() {
    assert_eq!(
        value("t = \"template\"", "t", json!({"id": 1, "template": false})),
        Some("false".into())
    );
    assert!(matches!(
        eval(
            "h = \"hardware\"",
            "h",
            json!({"id": 1, "hardware": {"a": 1}})
        ),
        Err(EvalError::BadValue(_))
    ));
}

#[test]
fn tags_by_category() {
    let data = json!({"id": 1, "tags": [
        {"href": "x", "id": "1", "name": "/managed/environment/prod"},
        {"name": "/managed/department/finance"},
        "/managed/department/engineering",
        {"name": "/user/environment/ignored"}
    ]});
    let spec = "u = { from_tag = \"environment\", map = { prod = \"Production\" } }";
    assert_eq!(value(spec, "u", data.clone()), Some("Production".into()));
    assert_eq!(
        value("d = { from_tag = \"department\" }", "d", data.clone()),
        Some("engineering, finance".into())
    );
    assert_eq!(
        value(
            "d = { from_tag = \"department\", pick = \"first\" }",
            "d",
            data.clone()
        ),
        Some("engineering".into())
    );
    assert_eq!(value("d = { from_tag = \"location\" }", "d", data), None);
}

#[test]
fn reference_lookups() {
    let m = mapping("o = { from = \"email\", lookup = { table = \"sys_user\", by = \"email\" } }");
    let rule = m.field("o").unwrap();
    let rec = record(json!({"id": 1, "email": "Ann@Example.com"}));
    let none = References::default();
    assert!(
        matches!(rule.eval(&rec, &none), Err(EvalError::Unresolved(m)) if m.contains("not loaded"))
    );
    let mut refs = References::default();
    let user = |id: &str, email: &str| Ci {
        sys_id: id.into(),
        fields: [("email".into(), email.to_string())].into_iter().collect(),
    };
    refs.add_table(
        "sys_user",
        vec![
            user("u1", "ann@example.com"),
            user("u2", "bob@example.com"),
            user("u3", "bob@example.com"),
        ],
    );
    assert_eq!(rule.eval(&rec, &refs), Ok(Some("u1".into())));
    let bob = record(json!({"id": 2, "email": "bob@example.com"}));
    assert!(
        matches!(rule.eval(&bob, &refs), Err(EvalError::Unresolved(m)) if m.contains("2 `sys_user` rows"))
    );
    let nobody = record(json!({"id": 3, "email": "eve@example.com"}));
    assert!(
        matches!(rule.eval(&nobody, &refs), Err(EvalError::Unresolved(m)) if m.contains("no `sys_user` row"))
    );
}

#[test]
fn lookups_by_several_fields() {
    // MoRefs repeat across vCenters: a host is its MoRef and its vCenter's UUID.
    let m = mapping(
        "h = { from = \"host.ems_ref\", lookup = { table = \"cmdb_ci_esx_server\", by = \"object_id\", and = { vcenter_uuid = \"ext_management_system.guid\" } } }",
    );
    let rule = m.field("h").unwrap();
    assert!(
        rule.describe.ends_with(
            "lookup cmdb_ci_esx_server.object_id and vcenter_uuid = ext_management_system.guid"
        ),
        "{}",
        rule.describe
    );
    assert!(m
        .source_attributes()
        .contains(&"ext_management_system.guid".to_string()));
    let host = |id: &str, moref: &str, vc: &str| Ci {
        sys_id: id.into(),
        fields: [
            ("object_id".into(), moref.to_string()),
            ("vcenter_uuid".into(), vc.to_string()),
        ]
        .into_iter()
        .collect(),
    };
    let mut refs = References::default();
    refs.add_table(
        "cmdb_ci_esx_server",
        vec![host("h1", "host-10", "vc-a"), host("h2", "host-10", "vc-b")],
    );
    let on = |vc: &str| {
        record(
            json!({"id": 1, "host": {"ems_ref": "host-10"}, "ext_management_system": {"guid": vc}}),
        )
    };
    assert_eq!(rule.eval(&on("vc-b"), &refs), Ok(Some("h2".into())));
    assert!(
        matches!(rule.eval(&on("vc-c"), &refs), Err(EvalError::Unresolved(m)) if m.contains("no `cmdb_ci_esx_server` row has object_id `host-10` and vcenter_uuid `vc-c`"))
    );
    let no_vc = record(json!({"id": 2, "host": {"ems_ref": "host-10"}}));
    assert!(
        matches!(rule.eval(&no_vc, &refs), Err(EvalError::Unresolved(m)) if m.contains("needs `ext_management_system.guid`"))
    );
}

#[test]
fn lookups_find_a_name_in_either_normal_form() {
    let m = mapping("o = { from = \"owner\", lookup = { table = \"sys_user\", by = \"name\" } }");
    let rule = m.field("o").unwrap();
    let user = |id: &str, name: &str| Ci {
        sys_id: id.into(),
        fields: [("name".into(), name.to_string())].into_iter().collect(),
    };
    let mut refs = References::default();
    // One user stored composed (NFC), one decomposed (NFD).
    refs.add_table(
        "sys_user",
        vec![user("u1", "Jos\u{e9} Nu\u{f1}ez"), user("u2", "Zoe\u{308}")],
    );
    let nfd = record(json!({"id": 1, "owner": "Jose\u{301} Nun\u{303}ez"}));
    assert_eq!(rule.eval(&nfd, &refs), Ok(Some("u1".into())));
    let nfc = record(json!({"id": 2, "owner": "ZO\u{cb}"}));
    assert_eq!(rule.eval(&nfc, &refs), Ok(Some("u2".into())));
}

#[test]
fn star_paths_project_every_element() {
    let data = json!({"id": 1, "miq_request_tasks": [
        {"options": {"vm_target_name": "web-01"}},
        {"options": {}},
        {"options": {"vm_target_name": "web-02"}}
    ]});
    let path = "miq_request_tasks[*].options.vm_target_name";
    assert_eq!(
        value(&format!("v = \"{path}\""), "v", data.clone()),
        Some("web-01, web-02".into())
    );
    assert_eq!(
        value(
            &format!("v = {{ from = \"{path}\", pick = \"count\" }}"),
            "v",
            data.clone()
        ),
        Some("2".into())
    );
    assert_eq!(
        value(
            &format!("v = {{ from = \"{path}\", pick = \"last\" }}"),
            "v",
            data.clone()
        ),
        Some("web-02".into())
    );
    // In a template a list is its values joined.
    assert_eq!(
        value(
            &format!("v = {{ template = \"VMs: {{{path}}}\" }}"),
            "v",
            data.clone()
        ),
        Some("VMs: web-01, web-02".into())
    );
    // No tasks, no value; and the attribute asked of the API is the array.
    assert_eq!(
        value(
            &format!("v = \"{path}\""),
            "v",
            json!({"id": 2, "miq_request_tasks": []})
        ),
        None
    );
    let m = mapping(&format!("v = \"{path}\""));
    assert!(m
        .source_attributes()
        .contains(&"miq_request_tasks".to_owned()));
    assert!(Path::parse("a[x]").is_err());
}

#[test]
fn maps_over_composite_keys_with_patterns() {
    let spec = r#"s = { template = "{request_state}/{status}", map = { "pending/*" = "1", "active/*" = "2", "finished/Ok" = "7", "finished/*" = "", "*" = "9" } }"#;
    let at = |state: &str, status: &str| {
        value(
            spec,
            "s",
            json!({"id": 1, "request_state": state, "status": status}),
        )
    };
    assert_eq!(at("pending", "Ok"), Some("1".into()));
    assert_eq!(at("active", "Warn"), Some("2".into()));
    // The exact key beats the pattern; case does not matter.
    assert_eq!(at("finished", "ok"), Some("7".into()));
    // `finished/*` is more specific than `*`; its "" is no value (the row is left alone).
    assert_eq!(at("finished", "Error"), None);
    assert_eq!(at("queued", "Ok"), Some("9".into()));
    use crate::reconcile::mapping::eval::glob_matches;
    assert!(glob_matches("a*c", "abbbc") && glob_matches("*", "") && !glob_matches("a*c", "abd"));
}

#[test]
fn when_gives_a_field_a_value_only_for_matching_records() {
    let spec = r#"n = { from = "message", when = ["request_state=finished", "status=Ok"], default = "x" }"#;
    assert_eq!(
        value(
            spec,
            "n",
            json!({"id": 1, "request_state": "finished", "status": "Ok", "message": "done"})
        ),
        Some("done".into())
    );
    // Outside `when` not even the default applies.
    assert_eq!(
        value(
            spec,
            "n",
            json!({"id": 1, "request_state": "finished", "status": "Error", "message": "boom"})
        ),
        None
    );
    let m = mapping(spec);
    assert!(m.source_attributes().contains(&"request_state".to_owned()));
}

#[test]
fn append_fields_default_to_every_written_field() {
    let m = mapping(
        "state = \"s\"\nnote = { from = \"m\", mode = \"ignore\" }\nwork_notes = { template = \"{m}\", mode = \"append\" }\n",
    );
    let notes = m.field("work_notes").unwrap();
    assert_eq!(notes.on_change, ["name", "state"]);
    let m = mapping(
        "state = \"s\"\nwork_notes = { template = \"{m}\", mode = \"append\", on_change = [\"state\"] }\n",
    );
    assert_eq!(m.field("work_notes").unwrap().on_change, ["state"]);
    let e =
        error("work_notes = { template = \"{m}\", mode = \"append\", on_change = [\"nope\"] }\n");
    assert!(e.message.contains("`nope`"), "{e}");
    let e = error("state = { from = \"s\", on_change = [\"name\"] }\n");
    assert!(e.message.contains("only applies"), "{e}");
}

#[test]
fn in_filters_and_optional_placeholders() {
    let f = Filter::parse("request_type IN template, clone_to_vm").unwrap();
    assert_eq!(f.to_string(), "request_type IN template,clone_to_vm");
    assert!(f.accepts(&record(json!({"id": 1, "request_type": "Clone_to_VM"}))));
    assert!(!f.accepts(&record(json!({"id": 1, "request_type": "vm_reconfigure"}))));
    assert!(!f.accepts(&record(json!({"id": 1}))));
    let other = Filter::parse("request_type IN vm_reconfigure,vm_migrate").unwrap();
    let eq = Filter::parse("request_type=template").unwrap();
    let ne = Filter::parse("request_type!=template").unwrap();
    assert!(disjoint(
        std::slice::from_ref(&f),
        std::slice::from_ref(&other)
    ));
    assert!(!disjoint(
        std::slice::from_ref(&f),
        std::slice::from_ref(&eq)
    ));
    assert!(disjoint(&[other], &[eq]));
    assert!(!disjoint(&[f], &[ne]));
    assert!(Filter::parse("request_type IN ").is_err());
    // `{x?}` may be missing; `{x}` may not.
    let spec = "v = { template = \"{name} on {host?}\" }";
    assert_eq!(
        value(spec, "v", json!({"id": 1, "name": "a"})),
        Some("a on".into()),
        "trimmed"
    );
    assert_eq!(
        value(spec, "v", json!({"id": 1, "name": "a", "host": "h"})),
        Some("a on h".into())
    );
    assert_eq!(value(spec, "v", json!({"id": 1, "host": "h"})), None);
}
