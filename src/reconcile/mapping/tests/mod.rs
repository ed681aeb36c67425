//! Unit tests of the mapping language: every transform, comparison default and error.

use serde_json::json;

use super::*;
use crate::reconcile::plan::FieldMode;
use crate::reconcile::record::{Ci, FieldNames, References, SourceRecord, Val};

const HEAD: &str = r#"
[source]
[target]
table = "cmdb_ci_vm_instance"
scope = "discovery_source=CloudForms"
[[identify]]
fields = ["name"]
"#;

fn mapping(fields: &str) -> Mapping {
    Mapping::parse(
        &format!("{HEAD}[fields]\nname = \"name\"\n{fields}"),
        "m.toml",
    )
    .unwrap()
}

fn error(fields: &str) -> MappingError {
    Mapping::parse(
        &format!("{HEAD}[fields]\nname = \"name\"\n{fields}"),
        "m.toml",
    )
    .unwrap_err()
}

fn record(data: serde_json::Value) -> SourceRecord<'static> {
    let Val::Object(map) = Val::from_json(data, &mut FieldNames::default()) else {
        panic!("not an object")
    };
    // Records borrow their data; a test's few may live as long as the test binary.
    SourceRecord::from_object(Box::leak(Box::new(map))).unwrap()
}

fn eval(fields: &str, field: &str, data: serde_json::Value) -> Result<Option<String>, EvalError> {
    let m = mapping(fields);
    m.field(field)
        .unwrap()
        .eval(&record(data), &References::default())
}

fn value(fields: &str, field: &str, data: serde_json::Value) -> Option<String> {
    eval(fields, field, data).unwrap()
}

mod eval;

#[test]
fn modes_and_compare_defaults() {
    let m = mapping(
        "a = { from = \"a\", mode = \"fill_empty\" }\nb = { from = \"b\", mode = \"create_only\" }\nc = { from = \"c\", mode = \"ignore\" }\nd = { from = \"d\", map = { x = \"X\" } }\ne = { from = \"e\", compare = \"ip\" }",
    );
    assert_eq!(m.field("name").unwrap().mode, FieldMode::Authoritative);
    assert_eq!(m.field("a").unwrap().mode, FieldMode::FillEmpty);
    assert_eq!(m.field("b").unwrap().mode, FieldMode::CreateOnly);
    assert_eq!(m.field("c").unwrap().mode, FieldMode::Ignore);
    assert_eq!(m.field("a").unwrap().compare, Compare::Auto);
    // Identity fields (here `name`) and value maps compare without case.
    assert_eq!(m.field("name").unwrap().compare, Compare::IgnoreCase);
    assert_eq!(m.field("d").unwrap().compare, Compare::IgnoreCase);
    assert_eq!(m.field("e").unwrap().compare, Compare::Ip);
}

#[test]
fn source_attributes_cover_every_path() {
    let m = Mapping::parse(
        include_str!("../../../../mappings/vmware-vm.toml"),
        "vmware-vm.toml",
    )
    .unwrap();
    let attrs = m.source_attributes();
    for a in [
        "name",
        "ems_ref",
        "ext_management_system.uid_ems",
        "ipaddresses",
        "tags",
        "archived",
        "template",
        "vendor",
        "hardware.guest_os_full_name",
        "ems_cluster_name",
    ] {
        assert!(attrs.contains(&a.to_string()), "{a} missing from {attrs:?}");
    }
    let fields = m.target_fields();
    for f in [
        "name",
        "object_id",
        "discovery_source",
        "install_status",
        "last_discovered",
        "sys_mod_count",
        "sys_updated_on",
    ] {
        assert!(
            fields.contains(&f.to_string()),
            "{f} missing from {fields:?}"
        );
    }
}

#[test]
fn retired_when_defaults_to_install_status_7_and_takes_a_condition() {
    let ci =
        |fields: &[(&str, &str)]| Ci::new("s1", fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let default = mapping("[retire]\naction = \"none\"\n");
    let when = default.retired_when.as_ref().unwrap();
    assert!(when.matches(&ci(&[("install_status", "7")])));
    assert!(!when.matches(&ci(&[("install_status", "100")])));
    // A mapping that never retires (no `[retire]`: a ticket table) has no notion of it, and
    // reads no `install_status` its table may lack.
    let never = mapping("");
    assert_eq!(never.retired_when, None);
    let m = mapping(
        "[retire]\naction = \"set\"\nset = { install_status = \"7\" }\nretired_when = \"install_status IN 7,8^operational_status=6\"\n",
    );
    let when = m.retired_when.as_ref().unwrap();
    assert!(when.matches(&ci(&[("install_status", "8"), ("operational_status", "6")])));
    assert!(!when.matches(&ci(&[("install_status", "7"), ("operational_status", "1")])));
    assert!(m.target_fields().contains(&"operational_status".to_owned()));
    let e = error("[retire]\naction = \"none\"\nretired_when = \"install_status\"\n");
    assert!(e.message.contains("retired_when"), "{e}");
    assert_eq!(e.line, 12, "{e}");
}

#[test]
fn on_contradiction_defaults_to_quarantine() {
    let with = |value: &str| {
        let head = HEAD.replace(
            "[[identify]]",
            &format!("on_contradiction = \"{value}\"\n[[identify]]"),
        );
        Mapping::parse(&format!("{head}[fields]\nname = \"name\"\n"), "m.toml")
    };
    assert_eq!(
        mapping("").target.on_contradiction,
        OnContradiction::Quarantine
    );
    assert_eq!(
        with("new").unwrap().target.on_contradiction,
        OnContradiction::New
    );
    let bad = with("rekey").unwrap_err();
    assert!(bad.message.contains("rekey"), "{bad}");
}

#[test]
fn errors_name_file_line_and_column() {
    let e = error("bad = { from = \"x\", convert = \"bytes_to_gib\" }");
    assert_eq!((e.origin.as_str(), e.line), ("m.toml", 10));
    assert!(e.message.contains("bytes_to_gib"), "{e}");
    assert!(e.to_string().starts_with("m.toml:10:7: field `bad`"), "{e}");

    let e = error("bad = { form = \"x\" }");
    assert!(e.message.contains("form") && e.hint.is_some(), "{e}");

    let e = error("bad = { from = \"x\", template = \"{y}\" }");
    assert!(e.message.contains("exactly one of"), "{e}");

    let e = error("bad = 12");
    assert!(e.message.contains("source path string or a table"), "{e}");

    let e = error("bad = { template = \"{unclosed\" }");
    assert!(e.message.contains("unclosed"), "{e}");

    let e = error("bad = { from = \"a[x]\" }");
    assert!(e.message.contains("not an array index"), "{e}");
}

#[test]
fn structural_errors() {
    let e = Mapping::parse(
        "[source]\n[target]\ntable = \"t\"\n[fields]\nname = \"name\"\n",
        "x.toml",
    )
    .unwrap_err();
    assert!(e.message.contains("scope"), "{e}");
    let e = Mapping::parse(&format!("{HEAD}[fields]\ncpus = \"c\"\n"), "x.toml").unwrap_err();
    assert!(e.message.contains("no `name`"), "{e}");
    let e = Mapping::parse(
        &format!("{HEAD}[[identify]]\nfields = [\"serial\"]\n[fields]\nname = \"name\"\n"),
        "x.toml",
    )
    .unwrap_err();
    assert!(e.message.contains("`serial` is not mapped"), "{e}");
    let e = Mapping::parse(
        &format!("{HEAD}[fields]\nname = \"name\"\n[retire]\naction = \"shred\"\n"),
        "x.toml",
    )
    .unwrap_err();
    assert!(e.message.contains("shred") && e.line == 11, "{e}");
    let e = Mapping::parse("[source\n", "x.toml").unwrap_err();
    assert_eq!(e.line, 1);
    let e = Mapping::parse(
        &format!("{HEAD}[fields]\nname = \"name\"\n[guards]\nmax_retire = \"500%\"\n"),
        "x.toml",
    )
    .unwrap_err();
    assert!(e.message.contains("limit"), "{e}");
    let e = Mapping::parse(
        &format!("{HEAD}[fields]\nname = \"name\"\n[lifecycle]\nretire_after = \"7 days\"\n"),
        "x.toml",
    )
    .unwrap_err();
    assert!(e.message.contains("duration"), "{e}");
}

#[test]
fn scope_conditions() {
    let c = Conditions::parse(
        "discovery_source=CloudForms^install_status!=7^sys_class_nameINa,b^nameISNOTEMPTY",
    )
    .unwrap();
    let ci = |pairs: &[(&str, &str)]| Ci {
        sys_id: "s".into(),
        fields: pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.to_string()))
            .collect(),
    };
    assert!(c.matches(&ci(&[
        ("discovery_source", "cloudforms"),
        ("install_status", "1"),
        ("sys_class_name", "b"),
        ("name", "x")
    ])));
    assert!(!c.matches(&ci(&[
        ("discovery_source", "CloudForms"),
        ("install_status", "7"),
        ("sys_class_name", "b"),
        ("name", "x")
    ])));
    assert!(!c.matches(&ci(&[
        ("discovery_source", "CloudForms"),
        ("sys_class_name", "c"),
        ("name", "x")
    ])));
    assert!(!c.matches(&ci(&[
        ("discovery_source", "CloudForms"),
        ("sys_class_name", "a")
    ])));
    assert_eq!(
        c.required_values(),
        vec![("discovery_source".to_string(), "CloudForms".to_string())]
    );
    assert!(Conditions::parse("").is_err());
    assert!(Conditions::parse("bad field=1").is_err());
}

#[test]
fn source_filters() {
    let f = Filter::parse("vendor=vmware").unwrap();
    assert!(f.accepts(&record(json!({"id": 1, "vendor": "VMware"}))));
    assert!(!f.accepts(&record(json!({"id": 1, "vendor": "redhat"}))));
    let f = Filter::parse("vendor!='redhat'").unwrap();
    assert!(f.accepts(&record(json!({"id": 1, "vendor": "vmware"}))));
    let f = Filter::parse("cloud=false").unwrap();
    assert!(f.accepts(&record(json!({"id": 1, "cloud": false}))));
    let f = Filter::parse("retires_on=NULL").unwrap();
    assert!(f.accepts(&record(json!({"id": 1, "retires_on": null}))));
    assert!(Filter::parse("vendor").is_err());
}

#[test]
fn limits() {
    assert_eq!(Limit::Percent(5.0).allowed(1000, 10), Some(50));
    assert_eq!(Limit::Percent(5.0).allowed(40, 10), Some(10));
    assert_eq!(Limit::Percent(5.0).allowed(40, 0), Some(2));
    assert_eq!(Limit::Count(3).allowed(1000, 10), Some(3));
    assert_eq!(Limit::Unlimited.allowed(1000, 10), None);
}

#[test]
fn shipped_mappings_compile() {
    let shipped = [
        (
            "vmware-vm.toml",
            include_str!("../../../../mappings/vmware-vm.toml"),
        ),
        ("vm.toml", include_str!("../../../../mappings/vm.toml")),
    ];
    for (name, text) in shipped {
        Mapping::parse(text, name).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn vm_defaults_apply_only_to_vm_collections() {
    let vms = Mapping::parse(
        include_str!("../../../../mappings/vmware-vm.toml"),
        "vmware-vm.toml",
    )
    .unwrap();
    assert_eq!(vms.source.skip_when, ["template"]);
    assert_eq!(
        vms.lifecycle.missing_when,
        ["archived", "orphaned", "retired"]
    );
    // A host has no `template` or `archived`: asking CloudForms for them would be refused.
    let hosts = Mapping::parse(
        "[source]\ncollection = \"hosts\"\n[target]\ntable = \"cmdb_ci_esx_server\"\nscope = \"discovery_source=CloudForms\"\n[[identify]]\nfields = [\"name\"]\n[fields]\nname = \"name\"\n",
        "hosts.toml",
    )
    .unwrap();
    assert!(hosts.source.skip_when.is_empty());
    assert!(hosts.lifecycle.missing_when.is_empty());
    assert!(hosts.context.is_empty(), "no VM facts in its report");
    let attrs = hosts.source_attributes();
    for vm_only in [
        "template",
        "archived",
        "orphaned",
        "retired",
        "evm_owner_email",
    ] {
        assert!(
            !attrs.contains(&vm_only.to_string()),
            "{vm_only} in {attrs:?}"
        );
    }
}

#[test]
fn filters_are_disjoint_only_when_no_record_can_pass_both() {
    let f = |texts: &[&str]| -> Vec<Filter> {
        texts.iter().map(|t| Filter::parse(t).unwrap()).collect()
    };
    assert!(disjoint(&f(&["vendor=vmware"]), &f(&["vendor!=vmware"])));
    assert!(disjoint(&f(&["vendor=vmware"]), &f(&["vendor=redhat"])));
    assert!(disjoint(
        &f(&["cloud=false", "vendor=VMware"]),
        &f(&["vendor!=vmware"])
    ));
    assert!(!disjoint(&f(&["vendor=vmware"]), &f(&[])));
    assert!(!disjoint(&f(&["vendor!=vmware"]), &f(&["vendor!=redhat"])));
    assert!(!disjoint(&f(&["vendor=vmware"]), &f(&["cloud=false"])));
}

#[test]
fn a_relationship_when_filters_records_and_is_requested_from_the_source() {
    let relate = r#"
[[relate]]
type = "Contains::Contained by"
role = "child"
when = ["ems_cluster_id=NULL"]
to = { from = "v_owning_datacenter", lookup = { table = "cmdb_ci_vcenter_datacenter", by = "name" } }
"#;
    let m = mapping(relate);
    assert_eq!(m.relate[0].when.len(), 1);
    let attrs = m.source_attributes();
    assert!(
        attrs.contains(&"ems_cluster_id".to_owned())
            && attrs.contains(&"v_owning_datacenter".to_owned()),
        "{attrs:?}"
    );
    let clustered = record(json!({"id": "1", "ems_cluster_id": 7}));
    let alone = record(json!({"id": "2", "ems_cluster_id": null}));
    assert!(!m.relate[0].when[0].accepts(&clustered));
    assert!(m.relate[0].when[0].accepts(&alone));
    let e = error(&relate.replace("ems_cluster_id=NULL", "ems_cluster_id"));
    assert!(e.message.contains("when") && e.line > 1, "{e}");
}

#[test]
fn classify_takes_every_category_or_a_list_and_asks_for_tags() {
    let all = mapping("[classify]\nfrom_tag = \"*\"\n");
    let c = all.classify.as_ref().unwrap();
    assert!(c.keeps("anything") && c.tag == "CloudForms");
    assert!(all.source_attributes().contains(&"tags".to_owned()));
    let some = mapping("[classify]\nfrom_tag = [\"environment\"]\ntag = \"CFME\"\n");
    let c = some.classify.as_ref().unwrap();
    assert!(c.keeps("environment") && !c.keeps("department") && c.tag == "CFME");
    for bad in [
        "from_tag = \"environment\"",
        "from_tag = []",
        "from_tag = [\"a/b\"]",
        "from_tag = \"*\"\ntag = \" \"",
    ] {
        let e = error(&format!("[classify]\n{bad}\n"));
        assert!(e.message.contains("[classify]"), "{bad}: {e}");
    }
}

/// A live read keeps of each record only `source_keep`: everything the mapping asks the
/// server for (`source_attributes`) must survive it, and what it does not ask for must not.
#[test]
fn what_a_mapping_keeps_of_a_record_covers_every_attribute_it_asks_for() {
    let shipped = [
        include_str!("../../../../mappings/vmware-vm.toml"),
        include_str!("../../../../mappings/vm.toml"),
        include_str!("../../../../mappings/vcenter.toml"),
        include_str!("../../../../mappings/vmware-cluster.toml"),
        include_str!("../../../../mappings/vmware-datacenter.toml"),
        include_str!("../../../../mappings/vmware-datastore.toml"),
        include_str!("../../../../mappings/vmware-esx-host.toml"),
        include_str!("../../../../mappings/provision-incident.toml"),
    ];
    for text in shipped {
        let mapping = Mapping::parse(text, "shipped.toml").unwrap_or_else(|e| panic!("{e}"));
        let keep = mapping.source_keep();
        for attribute in mapping.source_attributes() {
            // A record holding just the attribute (and its id) keeps all of it.
            let mut value = json!("value");
            for key in attribute.rsplit('.') {
                let mut object = serde_json::Map::new();
                object.insert(key.to_owned(), value);
                value = serde_json::Value::Object(object);
            }
            value["id"] = json!("1");
            let kept = keep.compact(value.clone(), &mut FieldNames::default());
            assert_eq!(kept, value, "{}: `{attribute}`", mapping.name);
        }
        let unasked = keep.compact(
            json!({"id": "1", "never_mapped": {"deep": 1}}),
            &mut FieldNames::default(),
        );
        assert_eq!(unasked, json!({"id": "1"}), "{}", mapping.name);
    }
}
