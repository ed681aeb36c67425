//! `cmdb-sim`: runs both simulators until Ctrl-C or SIGTERM and prints how to
//! reach them (human text, or one JSON line with `--json`).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Parser;
use cmdb_sim::{FaultConfig, SimOptions, Sims};
use std::path::PathBuf;

/// Simulated CloudForms (ManageIQ) and ServiceNow APIs on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "cmdb-sim", version)]
struct Cli {
    /// VMs in the generated estate (templates come on top).
    #[arg(long, default_value_t = 1000)]
    vms: usize,
    /// Provisioning requests the estate starts with (`/api/requests`); 12 cover every state
    /// and every status.
    #[arg(long, default_value_t = 12)]
    requests: usize,
    /// Advance every unfinished provisioning request one step this often (`30s`, `2m`, `1h`,
    /// `500ms`), as time passes on an appliance; without it only
    /// `POST /_sim/manageiq/requests/advance` moves them.
    #[arg(long, value_parser = duration)]
    request_step: Option<std::time::Duration>,
    /// Fraction of CIs whose cpus/memory/state/ip_address/name drifted.
    #[arg(long, default_value_t = 0.05)]
    drift: f64,
    /// Seed of the generator: the same seed gives the same estate and CMDB.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The generator's clock (RFC 3339); default: now. Fix it for byte-identical data.
    #[arg(long)]
    now: Option<DateTime<Utc>>,
    /// ServiceNow state file: loaded at start if it exists, written on exit.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Where to write the CA certificate (PEM) clients must trust for HTTPS.
    #[arg(long)]
    ca_pem: Option<PathBuf>,
    /// ManageIQ fault rules, JSON (`{"seed":1,"rules":[...]}` or `[...]`).
    #[arg(long)]
    miq_faults: Option<String>,
    /// ServiceNow fault rules, JSON.
    #[arg(long)]
    snow_faults: Option<String>,
    /// Print one JSON line with URLs and credentials instead of text.
    #[arg(long)]
    json: bool,
    /// ManageIQ login (HTTP Basic, and `GET /api/auth` for a token).
    #[arg(long, env = "CMDB_SIM_MIQ_USER", default_value = "admin")]
    miq_user: String,
    #[arg(long, env = "CMDB_SIM_MIQ_PASSWORD", default_value = "smartvm")]
    miq_password: String,
    /// ServiceNow login (HTTP Basic, and the OAuth password grant).
    #[arg(long, env = "CMDB_SIM_SNOW_USER", default_value = "admin")]
    snow_user: String,
    #[arg(long, env = "CMDB_SIM_SNOW_PASSWORD", default_value = "admin")]
    snow_password: String,
    /// ServiceNow property `glide.invalid_query.returns_no_rows`: a query naming a field the
    /// table lacks returns no rows. An instance ships with it off (the part is ignored).
    #[arg(long)]
    snow_invalid_query_returns_no_rows: bool,
    /// ServiceNow system time zone (`glide.sys.default.tz`) of users without one, for
    /// date-time display values; an instance ships with none, which means America/Los_Angeles.
    #[arg(long, value_parser = time_zone)]
    snow_time_zone: Option<chrono_tz::Tz>,
}

fn time_zone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse()
        .map_err(|_| format!("`{name}` is not a time zone name (e.g. Europe/Paris, UTC)"))
}

/// `500ms`, `30s`, `2m`, `1h` (a bare number is seconds).
fn duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 30s, 2m or 500ms"))?;
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "" | "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        "h" => std::time::Duration::from_secs(n * 3600),
        _ => return Err(format!("`{text}`: the unit is none of ms, s, m, h")),
    };
    if d.is_zero() {
        return Err("a request step must be longer than zero".into());
    }
    Ok(d)
}

fn faults(flag: &str, json: Option<&str>) -> anyhow::Result<FaultConfig> {
    json.map_or(Ok(FaultConfig::default()), |text| {
        FaultConfig::from_json(text).with_context(|| format!("reading `{flag}`"))
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let opts = SimOptions {
        vms: cli.vms,
        requests: cli.requests,
        drift: cli.drift,
        seed: cli.seed,
        now: cli.now.unwrap_or_else(Utc::now),
        miq_faults: faults("--miq-faults", cli.miq_faults.as_deref())?,
        snow_faults: faults("--snow-faults", cli.snow_faults.as_deref())?,
        ca_pem_out: cli.ca_pem,
        state_file: cli.state_file,
        miq_user: cli.miq_user,
        miq_password: cli.miq_password,
        snow_user: cli.snow_user,
        snow_password: cli.snow_password,
        snow_invalid_query_returns_no_rows: cli.snow_invalid_query_returns_no_rows,
        snow_system_time_zone: cli.snow_time_zone,
        ..SimOptions::default()
    };
    let sims = Sims::start(opts).await?;
    if let Some(step) = cli.request_step {
        let miq = sims.manageiq().clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(step);
            tick.tick().await; // the first tick is now: requests start as generated
            loop {
                tick.tick().await;
                let moved = miq.advance_requests();
                if !moved.requests.is_empty() {
                    tracing::info!(requests = ?moved.requests, vms = ?moved.vms, "requests advanced");
                }
            }
        });
    }
    let info = sims.connection_info();
    if cli.json {
        println!("{info}");
    } else {
        print_human(&sims, &info);
    }
    wait_for_shutdown().await?;
    if sims.options().state_file.is_some() {
        sims.save_state()
            .context("saving the ServiceNow state file")?;
    }
    sims.stop().await;
    Ok(())
}

fn print_human(sims: &Sims, info: &serde_json::Value) {
    let (m, s) = (&info["manageiq"], &info["servicenow"]);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    println!(
        "ManageIQ   {}/api   user {} password {}",
        text(&m["url"]),
        text(&m["user"]),
        text(&m["password"])
    );
    println!(
        "ServiceNow {} and {}   user {} password {}   OAuth client {} secret {}",
        text(&s["url"]),
        text(&s["https_url"]),
        text(&s["user"]),
        text(&s["password"]),
        text(&s["client_id"]),
        text(&s["client_secret"]),
    );
    if let Some(path) = s["ca_pem"].as_str() {
        println!("HTTPS CA certificate: {path}");
    }
    let e = sims.estate();
    println!(
        "Estate: {} VMs, {} templates, {} hosts, {} provisioning requests; CMDB drift {} CIs, {} VMs without CI, {} CIs without VM",
        e.vms.len(),
        e.templates.len(),
        e.hosts.len(),
        e.requests.len(),
        e.expected.drifted.len(),
        e.expected.vms_without_ci.len(),
        e.expected.cis_without_vm.len(),
    );
    println!("Admin: GET|POST|DELETE /_sim/faults, GET|DELETE /_sim/stats, GET /_sim/dump (ServiceNow), POST /_sim/manageiq/vmotion, POST /_sim/manageiq/requests[/advance] (ManageIQ). Ctrl-C stops.");
}

async fn wait_for_shutdown() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn request_steps_parse() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("7"), Ok(Duration::from_secs(7)));
        assert!(duration("0s").is_err());
        assert!(duration("soon").is_err());
        assert!(duration("3d").is_err());
    }
}
