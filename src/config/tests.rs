//! Tests of the config: files, flags, env and secrets into a validated `Config`.

#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures and write files"
)]

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

fn plan_args(args: &[&str]) -> PlanArgs {
    let mut argv = vec!["cmdb-reconcile", "plan"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).expect("parses").command {
        Command::Plan(args) => args,
        _ => unreachable!("plan"),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_live_config_reads_secrets_from_files_and_resolves_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cf.secret", "s3cret\n");
    write(dir.path(), "sn.secret", "other");
    let config = write(
        dir.path(),
        "c.toml",
        "[cloudforms]\nurl = \"https://cf\"\nuser = \"svc\"\npassword_file = \"cf.secret\"\ngroup = \"ops\"\ntimeout = \"30s\"\n\
         [servicenow]\nurl = \"https://sn\"\nuser = \"svc\"\npassword_file = \"sn.secret\"\nconcurrency = 2\n\
         [apply]\nbatch_size = 25\nmax_plan_age = \"0\"\n[[sync]]\nmapping = \"m.toml\"\n",
    );
    let c = Config::for_plan(
        &plan_args(&["--config", config.to_str().unwrap()]),
        &ApplyOpts::default(),
    )
    .unwrap();
    assert_eq!(c.syncs[0].mapping, dir.path().join("m.toml"));
    assert_eq!(
        (&c.syncs[0].source, &c.syncs[0].target),
        (&Location::Live, &Location::Live)
    );
    let cf = c.cloudforms.unwrap();
    assert_eq!(
        cf.password.expose(),
        "s3cret",
        "the file's trailing newline is not part of it"
    );
    assert_eq!(cf.group.as_deref(), Some("ops"));
    assert_eq!(cf.http.timeout, Duration::from_secs(30));
    assert!(!format!("{cf:?}").contains("s3cret"));
    let sn = c.servicenow.unwrap();
    assert!(matches!(&sn.auth, SnAuth::Basic { password, .. } if password.expose() == "other"));
    assert_eq!(sn.concurrency, 2);
    assert_eq!(c.apply.batch_size, 25);
    assert_eq!(c.max_plan_age, None, "0 = no limit");
}

#[test]
fn flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        "[servicenow]\nurl = \"https://file\"\nuser = \"u\"\npassword = \"inline\"\n[[sync]]\nmapping = \"m.toml\"\nsource_file = \"vms.json\"\n",
    );
    let args = plan_args(&[
        "--config",
        config.to_str().unwrap(),
        "--servicenow-url",
        "https://flag",
        "--servicenow-password",
        "flagged",
    ]);
    let c = Config::for_plan(&args, &ApplyOpts::default()).unwrap();
    let sn = c.servicenow.unwrap();
    assert_eq!(sn.url, "https://flag");
    assert!(matches!(&sn.auth, SnAuth::Basic { password, .. } if password.expose() == "flagged"));
    assert_eq!(
        c.syncs[0].source,
        Location::File(dir.path().join("vms.json"))
    );
}

#[test]
fn missing_connections_and_bad_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.toml", "[[sync]]\nmapping = \"m.toml\"\n");
    let err = Config::for_plan(
        &plan_args(&["--config", config.to_str().unwrap()]),
        &ApplyOpts::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no [cloudforms] url"), "{err}");

    let config = write(
        dir.path(),
        "bad.toml",
        "[report]\ndir = \"r\"\n\n[servicenow]\npasword = \"x\"\n",
    );
    let err = Config::for_plan(
        &plan_args(&["--config", config.to_str().unwrap()]),
        &ApplyOpts::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    // The section holding the misspelt key, and the key.
    assert!(
        text.contains("bad.toml:4:1") && text.contains("pasword"),
        "{text}"
    );

    let config = write(dir.path(), "env.toml", "[servicenow]\nurl = \"https://sn\"\nuser = \"u\"\npassword_env = \"CMDB_TEST_UNSET_VAR\"\n");
    let err = Config::for_apply(
        &Some(config),
        &ConnectionArgs::default(),
        &ApplyOpts::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("CMDB_TEST_UNSET_VAR"), "{err}");
}

#[test]
fn oauth_is_chosen_by_a_client_id() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        "[servicenow]\nurl = \"https://sn\"\nclient_id = \"id\"\nclient_secret = \"sec\"\n",
    );
    let cfg = Config::for_apply(
        &Some(config),
        &ConnectionArgs::default(),
        &ApplyOpts::default(),
    )
    .unwrap();
    assert!(
        matches!(&cfg.servicenow.auth, SnAuth::OAuth { client_id, user: None, .. } if client_id == "id")
    );
    assert_eq!(cfg.options.concurrency, 8);
    assert_eq!(
        cfg.max_plan_age,
        Some(Duration::from_secs(86_400)),
        "24h by default"
    );
    assert_eq!(cfg.lease, LeaseConfig::default());
}

#[test]
fn the_lease_section() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        "[servicenow]\nurl = \"https://sn\"\nuser = \"u\"\npassword = \"p\"\n[lease]\ntable = \"u_lease\"\nttl = \"10m\"\nlock_file = \"run.lock\"\n",
    );
    let args = (
        &Some(config.clone()),
        &ConnectionArgs::default(),
        &ApplyOpts::default(),
    );
    let cfg = Config::for_apply(args.0, args.1, args.2).unwrap();
    assert_eq!(cfg.lease.table, "u_lease");
    assert_eq!(cfg.lease.ttl, Duration::from_secs(600));
    assert_eq!(cfg.lease.lock_file, Some(dir.path().join("run.lock")));
    std::fs::write(
        &config,
        "[servicenow]\nurl = \"https://sn\"\nuser = \"u\"\npassword = \"p\"\n[lease]\nttl = \"5s\"\n",
    )
    .unwrap();
    let e = Config::for_apply(args.0, args.1, args.2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[lease] ttl `5s` is shorter than 30s"), "{e}");
}

#[test]
fn the_apply_deadline_and_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let sn = "[servicenow]\nurl = \"https://sn\"\nuser = \"u\"\npassword = \"p\"\n";
    let load = |apply: &str, flags: &ApplyOpts| {
        let config = write(dir.path(), "c.toml", &format!("{sn}{apply}"));
        Config::for_apply(&Some(config), &ConnectionArgs::default(), flags)
    };
    let defaults = load("", &ApplyOpts::default()).unwrap().options;
    assert_eq!(defaults.deadline, Some(Duration::from_secs(30 * 60)));
    assert_eq!(defaults.breaker, 10);

    let file = "[apply]\ndeadline = \"45m\"\nbreaker = 4\n";
    let c = load(file, &ApplyOpts::default()).unwrap().options;
    assert_eq!(
        (c.deadline, c.breaker),
        (Some(Duration::from_secs(2700)), 4)
    );
    let flag = ApplyOpts {
        deadline: Some("10m".into()),
        ..ApplyOpts::default()
    };
    assert_eq!(
        load(file, &flag).unwrap().options.deadline,
        Some(Duration::from_secs(600)),
        "the flag wins"
    );
    let off = load(
        "[apply]\ndeadline = \"0\"\nbreaker = 0\n",
        &ApplyOpts::default(),
    )
    .unwrap()
    .options;
    assert_eq!((off.deadline, off.breaker), (None, 0), "0 turns each off");

    let e = load("[apply]\ndeadline = \"soon\"\n", &ApplyOpts::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[apply] deadline") && e.contains("`soon`"),
        "{e}"
    );
    let e = load(
        "",
        &ApplyOpts {
            deadline: Some("1 hour".into()),
            ..ApplyOpts::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--deadline"), "{e}");
}

#[test]
fn max_rps_per_api_from_the_file_or_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        "[cloudforms]\nurl = \"https://cf\"\nuser = \"svc\"\npassword = \"x\"\nmax_rps = 0\n\
         [servicenow]\nurl = \"https://sn\"\nuser = \"svc\"\npassword = \"y\"\nmax_rps = 240\n\
         [[sync]]\nmapping = \"m.toml\"\n",
    );
    let path = config.to_str().unwrap();
    let c = Config::for_plan(&plan_args(&["--config", path]), &ApplyOpts::default()).unwrap();
    assert_eq!(c.servicenow.unwrap().max_rps, Some(240.0));
    assert_eq!(c.cloudforms.unwrap().max_rps, None, "0: no ceiling");
    let c = Config::for_plan(
        &plan_args(&[
            "--config",
            path,
            "--servicenow-max-rps",
            "12.5",
            "--cloudforms-max-rps",
            "30",
        ]),
        &ApplyOpts::default(),
    )
    .unwrap();
    assert_eq!(c.servicenow.unwrap().max_rps, Some(12.5));
    assert_eq!(c.cloudforms.unwrap().max_rps, Some(30.0));
    let err = Config::for_plan(
        &plan_args(&["--config", path, "--servicenow-max-rps=-1"]),
        &ApplyOpts::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("[servicenow] max_rps `-1`"), "{err}");
    // Unset: no ceiling, pacing only from what the server says.
    let none = write(
        dir.path(),
        "d.toml",
        "[servicenow]\nurl = \"https://sn\"\nuser = \"svc\"\npassword = \"y\"\n[[sync]]\nmapping = \"m.toml\"\ntarget_file = \"t.csv\"\n",
    );
    let c = Config::for_plan(
        &plan_args(&[
            "--config",
            none.to_str().unwrap(),
            "--source-file",
            "s.json",
        ]),
        &ApplyOpts::default(),
    )
    .unwrap();
    assert_eq!(c.servicenow.unwrap().max_rps, None);
}

/// `[review]` and `[[sync]] review` (README "Review in ServiceNow").
#[test]
fn the_review_section_and_a_syncs_review_setting() {
    let dir = tempfile::tempdir().unwrap();
    let live = "[cloudforms]\nurl = \"https://cf\"\nuser = \"u\"\npassword = \"p\"\n\
                [servicenow]\nurl = \"https://sn\"\nuser = \"u\"\npassword = \"p\"\n";
    let load = |extra: &str| {
        let config = write(dir.path(), "c.toml", &format!("{live}{extra}"));
        Config::for_plan(
            &plan_args(&["--config", config.to_str().unwrap()]),
            &ApplyOpts::default(),
        )
    };
    let c = load("[[sync]]\nmapping = \"a.toml\"\n").unwrap();
    assert_eq!(c.syncs[0].review, ReviewMode::Auto, "auto unless asked");
    assert_eq!(c.review, ReviewConfig::default());

    let c = load(
        "[review]\nretire = true\nabsent = true\ncreates_above = 5\nupdates_above = \"never\"\n\
         type = \"normal\"\nassignment_group = \"0a52d3dcd7011200f2d224837e6103f2\"\n\
         fields = { category = \"CMDB\", risk = \"3\" }\n\
         [[sync]]\nmapping = \"a.toml\"\nreview = \"approve\"\n[[sync]]\nmapping = \"b.toml\"\n",
    )
    .unwrap();
    assert_eq!(c.syncs[0].review, ReviewMode::Approve);
    assert_eq!(c.syncs[1].review, ReviewMode::Auto);
    let p = &c.review.policy;
    assert!(p.retire && p.delete && p.absent);
    assert_eq!((p.creates_above, p.updates_above), (Some(5), None));
    assert_eq!(c.review.table, "change_request");
    assert_eq!(
        c.review.assignment_group.as_deref(),
        Some("0a52d3dcd7011200f2d224837e6103f2")
    );
    assert_eq!(
        c.review.fields,
        [
            ("category".to_owned(), "CMDB".to_owned()),
            ("risk".to_owned(), "3".to_owned())
        ]
    );

    let e = load("[[sync]]\nmapping = \"a.toml\"\nreview = \"maybe\"\n").unwrap_err();
    assert!(e.to_string().contains("\"maybe\""), "{e}");
    let e =
        load("[review]\ncreates_above = \"lots\"\n[[sync]]\nmapping = \"a.toml\"\n").unwrap_err();
    assert!(e.to_string().contains("creates_above"), "{e}");
    let e = load("[review]\nreviewers = 3\n[[sync]]\nmapping = \"a.toml\"\n").unwrap_err();
    assert!(format!("{e:#}").contains("reviewers"), "{e:#}");
    let e =
        load("[[sync]]\nmapping = \"a.toml\"\ntarget_file = \"t.json\"\nreview = \"approve\"\n")
            .unwrap_err();
    assert!(e.to_string().contains("live ServiceNow target"), "{e}");
}

#[test]
fn the_catalog_section() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[cloudforms]\nurl = \"https://cf\"\nuser = \"svc\"\npassword = \"p\"\n\
                [servicenow]\nurl = \"https://sn\"\nuser = \"svc\"\npassword = \"p\"\n";
    let load = |text: &str| {
        let config = write(dir.path(), "c.toml", &format!("{base}{text}"));
        Config::for_plan(
            &plan_args(&["--config", config.to_str().unwrap()]),
            &ApplyOpts::default(),
        )
    };
    // A config with a catalog and no sync is complete: the catalog CronJob's.
    let c = load("[catalog]\nlinks = [\"l.toml\"]\nstatus = \"s.toml\"\n").unwrap();
    let catalog = c.catalog.unwrap();
    assert_eq!(catalog.links, [dir.path().join("l.toml")]);
    assert_eq!(catalog.status, Some(dir.path().join("s.toml")));
    assert!(catalog.approve);
    assert_eq!(catalog.max_orders, Some(20));
    assert_eq!(catalog.settle, Duration::from_secs(2));
    assert_eq!(catalog.search_within, Duration::from_secs(30 * 86_400));
    assert_eq!(
        catalog.claim_timeout,
        Duration::from_secs(300),
        "the lease's ttl"
    );
    assert_eq!(
        catalog.lease.name, "cmdb-reconcile-catalog",
        "a lease of its own"
    );
    assert!(c.syncs.is_empty());
    let c = load(
        "[lease]\nname = \"cmdb-prod\"\nlock_file = \"run.lock\"\n\
         [catalog]\nlinks = [\"l.toml\"]\napprove = \"cloudforms\"\nmax_orders = 0\nsettle = \"5s\"\n",
    )
    .unwrap();
    let catalog = c.catalog.unwrap();
    assert!(!catalog.approve);
    assert_eq!(catalog.max_orders, None, "0: no limit");
    assert_eq!(catalog.lease.name, "cmdb-prod-catalog");
    assert_eq!(
        catalog.lease.lock_file,
        Some(dir.path().join("run.catalog.lock")),
        "its own lock file beside the configured one"
    );
    for (text, expected) in [
        ("[catalog]\n", "[catalog] needs `links`"),
        (
            "[catalog]\nlinks = [\"l.toml\"]\napprove = \"maybe\"\n",
            "[catalog] approve `maybe`",
        ),
        (
            "[catalog]\nlinks = [\"l.toml\"]\nlease_name = \"cmdb-reconcile\"\n",
            "needs a lease of its own",
        ),
        (
            "[catalog]\nlinks = [\"l.toml\"]\nretries = 3\n",
            "unknown field `retries`",
        ),
    ] {
        let e = load(text).unwrap_err().to_string();
        assert!(e.contains(expected), "{text}: {e}");
    }
    // Without a catalog, a config still needs a sync.
    assert!(load("")
        .unwrap_err()
        .to_string()
        .contains("nothing to plan"));
}
