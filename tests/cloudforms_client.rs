//! The live CloudForms reader over real HTTP against the ManageIQ simulator on 127.0.0.1:
//! paging and concurrency, filters, token and Basic auth, and every way a read can fail or
//! fall short (retried faults, a lost page, a truncated body, a server that never answers).

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use cmdb_reconcile::cloudforms::{CloudForms, CloudFormsConfig};
use cmdb_reconcile::net::{ErrorKind, RetryPolicy, Secret};
use cmdb_reconcile::reconcile::mapping::{Filter, Path};
use cmdb_reconcile::reconcile::record::SourceRead;
use cmdb_reconcile::reconcile::record::{SourceRecord, Val};
use cmdb_sim::generator::Vendor;
use cmdb_sim::{Api, FaultConfig, FaultKind, FaultRule, SimOptions, Sims};

const VMS: usize = 2500;

/// What the shipped VMware mapping asks for, nested relation keys and tags included.
const ATTRIBUTES: &[&str] = &[
    "allocated_disk_storage",
    "archived",
    "cpu_total_cores",
    "ems_ref",
    "evm_owner_email",
    "ext_management_system.guid",
    "ext_management_system.name",
    "host_name",
    "ipaddresses",
    "name",
    "power_state",
    "ram_size",
    "tags",
    "template",
    "uid_ems",
    "vendor",
];

async fn sims(options: SimOptions) -> Sims {
    Sims::start(SimOptions {
        vms: VMS,
        ..options
    })
    .await
    .expect("simulators start")
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        max_rate_limited_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(1),
    }
}

fn config(sims: &Sims) -> CloudFormsConfig {
    let o = sims.options();
    let mut cfg = CloudFormsConfig::new(
        sims.manageiq_url(),
        o.miq_user.clone(),
        Secret::new(o.miq_password.clone()),
    );
    cfg.retry = retry();
    cfg.http.timeout = Duration::from_secs(20);
    cfg
}

fn client(cfg: CloudFormsConfig) -> CloudForms {
    CloudForms::new(cfg).expect("client builds")
}

fn attributes() -> Vec<String> {
    ATTRIBUTES.iter().map(|a| a.to_string()).collect()
}

fn filter(text_path: &str, negate: bool, value: &str) -> Filter {
    Filter {
        path: Path::parse(text_path).unwrap(),
        negate,
        value: value.to_owned(),
        any_of: Vec::new(),
    }
}

/// The record ids as numbers, in read order.
fn ids(read: &SourceRead) -> Vec<u64> {
    read.records
        .iter()
        .map(|r| {
            let record = r.as_object().and_then(SourceRecord::from_object).unwrap();
            record.id.parse().unwrap()
        })
        .collect()
}

/// Requests counted for one route, optionally with one status.
fn hits(sims: &Sims, route: &str, status: Option<u16>) -> u64 {
    let stats = sims.stats(Api::ManageIq);
    let route = &stats["by_route"][route];
    match status {
        None => route["total"].as_u64().unwrap_or(0),
        Some(s) => route["by_status"][s.to_string()].as_u64().unwrap_or(0),
    }
}

fn fault_count(sims: &Sims, kind: &str) -> u64 {
    sims.stats(Api::ManageIq)["faults"][kind]
        .as_u64()
        .unwrap_or(0)
}

fn rule(kind: FaultKind, query: &str) -> FaultRule {
    FaultRule {
        path: "/api/vms".into(),
        query: Some(query.into()),
        ..FaultRule::new(kind)
    }
}

#[tokio::test]
async fn a_full_read_returns_every_vm_once_with_only_the_requested_attributes() {
    let sims = sims(SimOptions::default()).await;
    let cf = client(config(&sims));
    let read = cf.read("vms", &attributes(), &[]).await.unwrap();

    assert_eq!(read.incomplete, None);
    assert_eq!(read.origin, format!("{}/api/vms", sims.manageiq_url()));
    let estate = sims.estate();
    assert_eq!(estate.vms.len(), VMS);
    assert_eq!(read.records.len(), VMS);
    let got = ids(&read);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "ascending, distinct");
    let want: Vec<u64> = estate.vms.iter().map(|vm| vm.id).collect();
    assert_eq!(got, want);

    let allowed: HashSet<&str> = ATTRIBUTES
        .iter()
        .map(|a| a.split('.').next().unwrap())
        .chain(["id", "href"])
        .collect();
    let mut with_ems = 0;
    let mut managed_tags = 0;
    for (record, vm) in read.records.iter().zip(&estate.vms) {
        let object = record.as_object().unwrap();
        let extra: Vec<&str> = object
            .keys()
            .map(|k| &**k)
            .filter(|k| !allowed.contains(k))
            .collect();
        assert!(extra.is_empty(), "unrequested keys {extra:?} on {}", vm.id);
        assert_eq!(record["name"], vm.name.as_str());
        assert_eq!(record["vendor"], vm.vendor.as_str());
        assert_eq!(record["ems_ref"], vm.ems_ref.as_str());
        assert!(record["ipaddresses"].is_array());
        match vm.ems {
            Some(p) => {
                with_ems += 1;
                let provider = &estate.providers[p];
                assert_eq!(
                    record["ext_management_system"]["guid"],
                    provider.guid.as_str()
                );
                assert_eq!(
                    record["ext_management_system"]["name"],
                    provider.name.as_str()
                );
            }
            None => assert!(record["ext_management_system"]["guid"].is_null()),
        }
        // `attributes=tags`: every tag as an object with a name, `/managed` ones among them.
        let names: BTreeSet<&str> = record["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        let expected: BTreeSet<&str> = vm
            .tags
            .iter()
            .map(|&t| estate.tags[t as usize].name.as_str())
            .collect();
        assert_eq!(names, expected);
        managed_tags += names.iter().filter(|n| n.starts_with("/managed/")).count();
    }
    assert!(
        with_ems > VMS / 2 && with_ems < VMS,
        "{with_ems} VMs with a provider"
    );
    assert!(managed_tags > VMS, "{managed_tags} managed tags");

    // Three pages of 1000 and one login.
    assert_eq!(hits(&sims, "GET /api/vms", Some(200)), 3);
    assert_eq!(hits(&sims, "GET /api/auth", None), 1);
    assert_eq!(cf.requests_sent(), 4);
}

#[tokio::test]
async fn pages_after_the_first_are_fetched_concurrently() {
    let sims = sims(SimOptions::default()).await;
    // Every listing takes 200 ms: ten pages one after the other would take 2 s.
    sims.set_faults(
        Api::ManageIq,
        FaultConfig::default().with(FaultRule {
            path: "/api/vms".into(),
            latency_ms: 200,
            ..FaultRule::new(FaultKind::Latency)
        }),
    );
    let mut cfg = config(&sims);
    cfg.page_size = 250;
    cfg.concurrency = 4;
    let cf = client(cfg);
    let started = Instant::now();
    let read = cf.read("vms", &attributes(), &[]).await.unwrap();
    let elapsed = started.elapsed();

    assert_eq!(read.incomplete, None);
    assert_eq!(read.records.len(), VMS);
    assert_eq!(ids(&read).into_iter().collect::<HashSet<_>>().len(), VMS);
    assert_eq!(hits(&sims, "GET /api/vms", None), 10);
    // First page, then 9 pages 4 at a time: the server saw them overlap (timing nothing).
    let in_flight = sims.stats(Api::ManageIq)["max_in_flight"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        (2..=4).contains(&in_flight),
        "at most 4 pages at once, and more than one: {in_flight} ({elapsed:?})"
    );
}

#[tokio::test]
async fn filters_run_on_the_server_and_the_total_is_the_subquery_count() {
    let sims = sims(SimOptions::default()).await;
    let estate = sims.estate();
    let cf = client(config(&sims));

    let read = cf
        .read("vms", &attributes(), &[filter("vendor", false, "vmware")])
        .await
        .unwrap();
    let vmware: Vec<u64> = estate
        .vms
        .iter()
        .filter(|vm| vm.vendor == Vendor::Vmware)
        .map(|vm| vm.id)
        .collect();
    assert!(vmware.len() < VMS && !vmware.is_empty());
    assert_eq!(read.incomplete, None, "complete against subquery_count");
    assert_eq!(ids(&read), vmware);
    assert!(read.records.iter().all(|r| r["vendor"] == "vmware"));
    // Fewer VMs, fewer pages: the server did the filtering.
    assert_eq!(
        hits(&sims, "GET /api/vms", None),
        vmware.len().div_ceil(1000) as u64
    );
}

/// `!=` on the server drops NULL rows, which the core keeps: the reader must not lose the
/// VMs without a provider (archived, orphaned) that the local filter accepts.
#[tokio::test]
async fn server_filters_never_drop_a_vm_the_core_would_keep() {
    let sims = sims(SimOptions::default()).await;
    let estate = sims.estate();
    let cf = client(config(&sims));
    let lab = estate.providers[0].name.clone();
    let filters = [
        filter("ext_management_system.name", true, &lab),
        filter("power_state", true, "suspended"),
    ];
    let accepted = |read: &SourceRead| -> Vec<u64> {
        read.records
            .iter()
            .filter_map(|r| r.as_object().and_then(SourceRecord::from_object))
            .filter(|r| filters.iter().all(|f| f.accepts(r)))
            .map(|r| r.id.parse().unwrap())
            .collect()
    };

    let everything = cf.read("vms", &attributes(), &[]).await.unwrap();
    let filtered = cf.read("vms", &attributes(), &filters).await.unwrap();
    assert_eq!(filtered.incomplete, None);
    let expected = accepted(&everything);
    let got = accepted(&filtered);
    let missing: Vec<&u64> = expected.iter().filter(|id| !got.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} VMs lost on the server",
        missing.len()
    );
    assert_eq!(got, expected);
    // The server narrowed the read, and the VMs without a provider came through.
    assert!(filtered.records.len() < everything.records.len());
    let without_provider = estate.vms.iter().filter(|vm| vm.ems.is_none()).count();
    assert!(without_provider > 0);
    assert_eq!(
        filtered
            .records
            .iter()
            .filter(|r| r["ext_management_system"].is_null())
            .count(),
        without_provider
    );
}

#[tokio::test]
async fn one_token_serves_a_read_and_is_renewed_after_it_expires() {
    let sims = sims(SimOptions {
        miq_token_ttl: Duration::from_secs(1),
        ..SimOptions::default()
    })
    .await;
    let cf = client(config(&sims));

    let first = cf.read("vms", &attributes(), &[]).await.unwrap();
    assert_eq!(first.records.len(), VMS);
    assert_eq!(hits(&sims, "GET /api/auth", None), 1);
    assert_eq!(hits(&sims, "GET /api/vms", Some(200)), 3);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = cf.read("vms", &attributes(), &[]).await.unwrap();
    assert_eq!(second.incomplete, None);
    assert_eq!(second.records.len(), VMS);
    // The expired token was refused once (so it was the token, not Basic, that was sent),
    // a new one fetched, and the page sent again.
    assert_eq!(hits(&sims, "GET /api/vms", Some(401)), 1);
    assert_eq!(hits(&sims, "GET /api/auth", None), 2);
    assert_eq!(hits(&sims, "GET /api/vms", Some(200)), 6);
    assert_eq!(cf.requests_sent(), 4 + 5);
}

#[tokio::test]
async fn basic_only_mode_never_asks_for_a_token() {
    let sims = sims(SimOptions::default()).await;
    let mut cfg = config(&sims);
    cfg.use_token = false;
    cfg.group = Some("EvmGroup-super_administrator".into());
    let cf = client(cfg);
    let read = cf.read("vms", &attributes(), &[]).await.unwrap();
    assert_eq!(read.incomplete, None);
    assert_eq!(read.records.len(), VMS);
    assert_eq!(hits(&sims, "GET /api/auth", None), 0);
    assert_eq!(hits(&sims, "GET /api/vms", Some(200)), 3);

    // A group the user is not in: the server names it, decoded from the URL-encoded header.
    let mut cfg = config(&sims);
    cfg.use_token = false;
    cfg.group = Some("Opérateurs".into());
    let err = client(cfg)
        .read("vms", &attributes(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.status, Some(401));
    assert!(
        err.message
            .contains("Invalid Authorization Group Opérateurs"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_credentials_fail_clearly_and_never_show_the_password() {
    let sims = sims(SimOptions::default()).await;
    let password = "Wr0ng-Passw0rd-4711";
    for use_token in [true, false] {
        let mut cfg = config(&sims);
        cfg.password = Secret::new(password);
        cfg.use_token = use_token;
        let cf = client(cfg);
        let err = cf.read("vms", &attributes(), &[]).await.unwrap_err();
        let text = err.to_string();
        assert_eq!(err.status, Some(401), "{text}");
        assert!(text.contains("Authentication failed"), "{text}");
        assert!(text.contains("check the CloudForms user `admin`"), "{text}");
        let route = if use_token { "/api/auth" } else { "/api/vms" };
        assert!(err.url.contains(route), "{text}");
        assert!(!text.contains(password) && !format!("{err:?}").contains(password));
        // Not retried: the same credentials would fail the same way.
        assert_eq!(cf.requests_sent(), 1, "{text}");
    }
}

#[tokio::test]
async fn an_unknown_attribute_is_rejected_naming_it() {
    let sims = sims(SimOptions::default()).await;
    let cf = client(config(&sims));
    let mut asked = attributes();
    asked.push("cpu_totl_cores".into());
    let err = cf.read("vms", &asked, &[]).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.status, Some(400), "{text}");
    assert!(
        text.contains("Invalid attributes specified: cpu_totl_cores"),
        "{text}"
    );
    assert!(
        text.contains("the mapping's source attribute `cpu_totl_cores` is unknown"),
        "{text}"
    );
    assert_eq!(hits(&sims, "GET /api/vms", None), 1, "not retried");
}

#[tokio::test]
async fn gateway_errors_and_resets_are_retried_to_a_complete_read() {
    let sims = sims(SimOptions::default()).await;
    sims.set_faults(
        Api::ManageIq,
        FaultConfig::default()
            .with(FaultRule {
                status: Some(503),
                times: Some(1),
                ..rule(FaultKind::Error, "offset=0")
            })
            .with(FaultRule {
                status: Some(503),
                times: Some(2),
                ..rule(FaultKind::Error, "offset=1000")
            })
            .with(FaultRule {
                times: Some(1),
                ..rule(FaultKind::Reset, "offset=2000")
            }),
    );
    let cf = client(config(&sims));
    let read = cf.read("vms", &attributes(), &[]).await.unwrap();
    assert_eq!(read.incomplete, None);
    assert_eq!(read.records.len(), VMS);
    assert_eq!(ids(&read).into_iter().collect::<HashSet<_>>().len(), VMS);
    assert_eq!(fault_count(&sims, "error"), 3);
    assert_eq!(fault_count(&sims, "reset"), 1);
    assert_eq!(hits(&sims, "GET /api/vms", None), 3 + 4);
}

#[tokio::test]
async fn a_transient_server_error_on_the_first_page_is_retried_like_any_page() {
    let sims = sims(SimOptions::default()).await;
    // ManageIQ answers 500 for a Rails worker that lost its database connection, a
    // moment's trouble like a 503: the first page is read again, not the read abandoned.
    sims.set_faults(
        Api::ManageIq,
        FaultConfig::default()
            .with(FaultRule {
                status: Some(500),
                times: Some(2),
                ..rule(FaultKind::Error, "offset=0")
            })
            .with(FaultRule {
                status: Some(500),
                times: Some(1),
                ..rule(FaultKind::Error, "offset=1000")
            }),
    );
    let read = client(config(&sims))
        .read("vms", &attributes(), &[])
        .await
        .expect("the first page is retried");
    assert_eq!(read.incomplete, None);
    assert_eq!(read.records.len(), VMS);
    assert_eq!(hits(&sims, "GET /api/vms", Some(500)), 3);
    assert_eq!(hits(&sims, "GET /api/vms", None), 3 + 3);
}

#[tokio::test]
async fn a_page_lost_for_good_leaves_the_read_incomplete_with_the_other_pages() {
    let sims = sims(SimOptions::default()).await;
    sims.set_faults(
        Api::ManageIq,
        FaultConfig::default().with(FaultRule {
            status: Some(503),
            ..rule(FaultKind::Error, "offset=1000")
        }),
    );
    let cf = client(config(&sims));
    let read = cf.read("vms", &attributes(), &[]).await.unwrap();

    let reason = read.incomplete.clone().expect("incomplete");
    assert!(
        reason.contains("the page at offset 1000 was lost"),
        "{reason}"
    );
    assert!(reason.contains("offset=1000&limit=1000"), "{reason}");
    assert!(reason.contains("503 Service Unavailable"), "{reason}");
    assert!(reason.contains("read 1500 of the 2500 records"), "{reason}");
    let estate = sims.estate();
    let expected: Vec<u64> = estate.vms[..1000]
        .iter()
        .chain(&estate.vms[2000..])
        .map(|vm| vm.id)
        .collect();
    assert_eq!(ids(&read), expected);
    // The lost page was tried as often as the policy allows.
    assert_eq!(hits(&sims, "GET /api/vms", Some(503)), 4);
}

/// A server refusing pages, or losing several, is not asked for the rest page after page.
#[tokio::test]
async fn a_failing_server_is_not_hammered_for_the_remaining_pages() {
    let sims = sims(SimOptions::default()).await;
    let mut cfg = config(&sims);
    cfg.page_size = 250;
    cfg.concurrency = 1;
    let cf = client(cfg);

    sims.set_faults(
        Api::ManageIq,
        FaultConfig::default().with(FaultRule {
            status: Some(403),
            ..rule(FaultKind::Error, "offset=500&")
        }),
    );
    let read = cf.read("vms", &attributes(), &[]).await.unwrap();
    let reason = read.incomplete.expect("incomplete");
    assert!(reason.contains("403 Forbidden"), "{reason}");
    assert!(
        reason.contains("7 more pages were not read (the server refused the page at offset 500)"),
        "{reason}"
    );
    assert_eq!(read.records.len(), 500);
    assert_eq!(
        hits(&sims, "GET /api/vms", None),
        3,
        "a refusal is not retried"
    );

    sims.reset_stats(Api::ManageIq);
    let mut faults = FaultConfig::default();
    for offset in [500, 750, 1000] {
        faults = faults.with(FaultRule {
            status: Some(503),
            ..rule(FaultKind::Error, &format!("offset={offset}&"))
        });
    }
    sims.set_faults(Api::ManageIq, faults);
    let read = cf.read("vms", &attributes(), &[]).await.unwrap();
    let reason = read.incomplete.expect("incomplete");
    assert!(
        reason.contains("5 more pages were not read (3 pages were lost)"),
        "{reason}"
    );
    assert_eq!(read.records.len(), 500);
    // Two good pages, then three pages tried four times each.
    assert_eq!(hits(&sims, "GET /api/vms", None), 2 + 3 * 4);
}

#[tokio::test]
async fn a_truncated_body_is_retried_and_a_first_page_always_cut_short_is_an_error() {
    let sims = sims(SimOptions::default()).await;
    sims.set_faults(
        Api::ManageIq,
        FaultConfig::default().with(FaultRule {
            times: Some(1),
            fraction: Some(0.3),
            ..rule(FaultKind::Truncate, "offset=2000")
        }),
    );
    let cf = client(config(&sims));
    let read = cf.read("vms", &attributes(), &[]).await.unwrap();
    assert_eq!(read.incomplete, None);
    assert_eq!(read.records.len(), VMS);
    assert_eq!(fault_count(&sims, "truncate"), 1);

    sims.reset_stats(Api::ManageIq);
    sims.set_faults(
        Api::ManageIq,
        FaultConfig::default().with(rule(FaultKind::Truncate, "offset=0")),
    );
    let err = cf.read("vms", &attributes(), &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Interrupted, "{err}");
    assert!(
        err.url.contains("/api/vms?") && err.url.contains("offset=0"),
        "{err}"
    );
    assert_eq!(
        fault_count(&sims, "truncate"),
        4,
        "every attempt was cut short"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_fails_within_the_timeout() {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts connections, reads nothing, answers nothing.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut cfg = CloudFormsConfig::new(format!("http://{addr}"), "admin", Secret::new("pw"));
    cfg.http.timeout = Duration::from_millis(300);
    cfg.retry = RetryPolicy {
        max_attempts: 2,
        ..retry()
    };
    let cf = client(cfg);
    let started = Instant::now();
    let err = cf.read("vms", &attributes(), &[]).await.unwrap_err();
    let elapsed = started.elapsed();
    silent.abort();

    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(err.url.starts_with(&format!("http://{addr}/api/")), "{err}");
    assert_eq!(cf.requests_sent(), 2);
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

/// `updated_within`: the server returns only the requests updated after the time, asked
/// as ManageIQ takes date-times (`filter[]=updated_on>...Z`, unquoted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_read_asks_only_for_records_updated_after_a_time() {
    let now: chrono::DateTime<chrono::Utc> = "2026-11-27T06:00:00Z".parse().unwrap();
    let sims = sims(SimOptions {
        vms: 10,
        now,
        ..Default::default()
    })
    .await;
    let cf = client(config(&sims));
    let attrs = vec!["updated_on".to_owned()];
    let all = cf.read("requests", &attrs, &[]).await.unwrap();
    let since = now - chrono::TimeDelta::days(30);
    let recent = |read: &SourceRead| -> BTreeSet<String> {
        read.records
            .iter()
            .filter_map(|r| r.as_object().and_then(SourceRecord::from_object))
            .filter(|r| {
                r.data["updated_on"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t > since)
            })
            .map(|r| r.id.to_string())
            .collect()
    };
    let windowed = cf
        .read_since("requests", &attrs, &[], Some(("updated_on", since)))
        .await
        .unwrap();
    assert!(windowed.incomplete.is_none());
    assert!(
        windowed.records.len() < all.records.len(),
        "{} of {}: the estate has older requests",
        windowed.records.len(),
        all.records.len()
    );
    assert_eq!(recent(&windowed), recent(&all));
    assert_eq!(windowed.records.len(), recent(&all).len(), "only those");
}

/// An id as text, whether the server sent a string or a number.
fn text(v: &Val) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// `providers/folders`: every provider's folders subcollection, read provider by provider,
/// each record carrying its provider as `parent`; complete when every read was.
#[tokio::test]
async fn a_subcollection_is_read_under_every_parent_and_is_complete_only_if_all_are() {
    let sims = sims(SimOptions::default()).await;
    let cf = client(config(&sims));
    let attrs: Vec<String> = ["name", "type", "ems_ref", "ext_management_system.uid_ems"]
        .map(String::from)
        .to_vec();
    let read = cf.read("providers/folders", &attrs, &[]).await.unwrap();
    assert_eq!(read.incomplete, None);
    let estate = sims.estate();
    assert_eq!(read.records.len(), estate.folders.len());
    for record in &read.records {
        let folder = estate
            .folders
            .iter()
            .find(|f| text(&record["id"]) == f.id.to_string())
            .expect("a folder of the estate");
        let provider = &estate.providers[folder.ems];
        assert_eq!(
            text(&record["parent"]["id"]),
            provider.id.to_string(),
            "{record}"
        );
        assert_eq!(record["parent"]["collection"], "providers");
        assert_eq!(record["ems_ref"], folder.ems_ref.as_str());
    }
    let datacenters = read
        .records
        .iter()
        .filter(|r| {
            r["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("::Datacenter"))
        })
        .count();
    assert_eq!(datacenters, estate.datacenters.len());

    // One provider's folders lost for good: the others are read, and the read is incomplete.
    let lost = estate.providers[0].id;
    sims.set_faults(
        Api::ManageIq,
        FaultConfig::default().with(FaultRule {
            status: Some(503),
            path: format!("/api/providers/{lost}/folders"),
            ..rule(FaultKind::Error, "")
        }),
    );
    let read = cf.read("providers/folders", &attrs, &[]).await.unwrap();
    let reason = read.incomplete.expect("incomplete");
    assert!(
        reason.contains(&format!("providers/{lost}/folders")),
        "{reason}"
    );
    let others = estate.folders.iter().filter(|f| f.ems != 0).count();
    assert_eq!(read.records.len(), others);
}
