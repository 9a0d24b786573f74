//! `make bench-scale` (issue 25 item 1): the fleet load generator
//! (`outpost_tests::load`) against the release `outpost-server` on loopback with 10,
//! 100, 1,000 and 5,000 devices, on three set-ups — one server on SQLite, one on
//! PostgreSQL, two instances over one PostgreSQL — each run a compressed day (30 s
//! window, see `load::Plan::day`) on a fresh copy of a database provisioned once per
//! set-up (the devices' users, a 10,000-item catalogue).
//!
//! Per run: throughput, p50/p99 latency of push and pull (and of priming pages and
//! signature uploads), CPU of the server process(es) and of PostgreSQL's processes
//! (from `/proc`, over the run), the server's peak RSS (`VmHWM`), the generator's own
//! CPU (it shares the machine), the database's size after the run, every error by kind,
//! the load average before and after. Results are kept in
//! `<target>/tmp/bench-scale/results.json` (one entry per set-up and device count; a
//! later run replaces its entry), and rendered into docs/benchmarks.md between the
//! `bench-scale` markers, with two SVG plots (plotters) beside it.
//!
//! Environment: `OUTPOST_SCALE_SETUPS` (default `sqlite,postgres,postgres-2`),
//! `OUTPOST_SCALE_DEVICES` (default `10,100,1000,5000`), `OUTPOST_SCALE_WINDOW_SECS`
//! (30), `OUTPOST_SCALE_ITEMS` (10000); PostgreSQL from `OUTPOST_TEST_PG_URL`
//! (scripts/with-postgres.sh). As a smoke test (`cargo test --benches`, part of
//! `make test`) it runs three devices for two seconds on SQLite and draws the plots
//! into a temporary directory, and writes nothing under docs/.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outpost_tests::load::{self, Plan, Report};
use outpost_tests::{loadavg, Server};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

const SETUPS: [&str; 3] = ["sqlite", "postgres", "postgres-2"];

/// One run's figures as the table shows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    setup: String,
    devices: usize,
    started: String,
    window_secs: f64,
    elapsed_secs: f64,
    primers: usize,
    requests_per_sec: f64,
    mutations_per_sec: f64,
    push_p50_ms: f64,
    push_p99_ms: f64,
    pull_p50_ms: f64,
    pull_p99_ms: f64,
    prime_p50_ms: f64,
    prime_p99_ms: f64,
    upload_p99_ms: f64,
    requests: u64,
    mutations_applied: u64,
    mutations_planned: u64,
    completions_acked: u64,
    completions_planned: u64,
    pull_rows: u64,
    prime_rows: u64,
    /// Percent of one core, over the run (window and drain).
    server_cpu_pct: f64,
    db_cpu_pct: f64,
    generator_cpu_pct: f64,
    server_rss_mib: f64,
    db_bytes: u64,
    errors: u64,
    errors_by: BTreeMap<String, u64>,
    duplicates: u64,
    load_before: String,
    load_after: String,
    deadline_hit: bool,
    budget_hit: bool,
}

/// CPU ticks (1/100 s) of a process: its own, plus its reaped children's if `children`.
fn cpu_ticks(pid: u32, children: bool) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let own = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let reaped = f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0);
    own + if children { reaped } else { 0 }
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// PostgreSQL's CPU ticks: the postmaster with its ended backends, and every live one.
fn pg_ticks(postmaster: u32) -> u64 {
    let mut total = cpu_ticks(postmaster, true);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if ppid(pid) == Some(postmaster) {
                    total += cpu_ticks(pid, false);
                }
            }
        }
    }
    total
}

/// A process's peak resident set, MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

fn sqlite_bytes(db: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

async fn pg_client(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

fn pg_url_of(base: &str, name: &str) -> anyhow::Result<String> {
    let (head, _) = base
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("OUTPOST_TEST_PG_URL has no database name"))?;
    Ok(format!("{head}/{name}"))
}

/// The database a set-up's runs are copied from.
enum Template {
    Sqlite(PathBuf),
    Postgres { base: String, name: String },
}

struct Config {
    devices: Vec<usize>,
    window: Duration,
    items: usize,
    quick: bool,
}

async fn template(setup: &str, cfg: &Config, dir: &Path) -> anyhow::Result<Template> {
    let most = cfg.devices.iter().copied().max().unwrap_or(1);
    if setup == "sqlite" {
        let db = dir.join("template.db");
        load::provision(&format!("sqlite:{}", db.display()), most, cfg.items).await?;
        return Ok(Template::Sqlite(db));
    }
    let base = std::env::var("OUTPOST_TEST_PG_URL").map_err(|_| {
        anyhow::anyhow!(
            "{setup}: needs PostgreSQL: scripts/with-postgres.sh cargo bench -p outpost-tests --bench fleet"
        )
    })?;
    let name = format!("outpost_scale_tpl_{}", std::process::id());
    let admin = pg_client(&base).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    load::provision(&pg_url_of(&base, &name)?, most, cfg.items).await?;
    Ok(Template::Postgres { base, name })
}

/// One run of `devices` on a fresh copy of the template.
async fn run_one(
    setup: &str,
    tpl: &Template,
    devices: usize,
    cfg: &Config,
    dir: &Path,
    n: usize,
) -> anyhow::Result<(Row, Report)> {
    let (db_url, pg) = match tpl {
        Template::Sqlite(t) => {
            let db = dir.join(format!("run-{n}.db"));
            outpost_tests::copy_sqlite(t, &db);
            (format!("sqlite:{}", db.display()), None)
        }
        Template::Postgres { base, name } => {
            let run = format!("outpost_scale_run_{}_{n}", std::process::id());
            let admin = pg_client(base).await?;
            // The template may still have a closing connection from provisioning.
            let mut tries = 0;
            loop {
                match admin
                    .batch_execute(&format!("CREATE DATABASE {run} TEMPLATE {name}"))
                    .await
                {
                    Ok(()) => break,
                    Err(e) if tries < 20 => {
                        tries += 1;
                        eprintln!("waiting for the template database: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let dir_row = admin.query_one("SHOW data_directory", &[]).await?;
            let data_dir: String = dir_row.get(0);
            let postmaster: u32 =
                std::fs::read_to_string(Path::new(&data_dir).join("postmaster.pid"))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .parse()?;
            (pg_url_of(base, &run)?, Some((admin, run, postmaster)))
        }
    };
    let instances = if setup == "postgres-2" { 2 } else { 1 };
    let servers: Vec<Server> = (0..instances)
        .map(|_| {
            Server::start_with(
                &db_url,
                &["--trusted-proxy-header", load::ADDRESS_HEADER],
                &[],
            )
        })
        .collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let plan = if cfg.quick {
        Plan {
            window: cfg.window,
            pull_every: Duration::from_millis(500),
            drain: Duration::from_secs(10),
            ..Plan::day(devices)
        }
    } else {
        Plan {
            window: cfg.window,
            ..Plan::day(devices)
        }
    };
    let load_before = loadavg();
    let started = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    // CPU is counted from the window's start: the set-up (sign-ins, the day's orders)
    // is left out (the report gives its length).
    let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    let pm = pg.as_ref().map(|p| p.2);
    let sample = || {
        (
            pids.iter().map(|p| cpu_ticks(*p, false)).sum::<u64>(),
            pm.map(pg_ticks).unwrap_or(0),
            cpu_ticks(std::process::id(), false),
        )
    };
    let mut before = (0, 0, 0);
    let report = load::run_with(&urls, &plan, &mut || before = sample()).await;
    let after = sample();
    let report = report?;
    let (cpu0, db0, gen0) = before;
    let secs = report.elapsed_secs.max(1e-9);
    let pct = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / secs;
    let rss = pids.iter().map(|p| peak_rss_mib(*p)).sum();
    drop(servers);
    let load_after = loadavg();
    let db_bytes = match (&pg, tpl) {
        (Some((admin, run, _)), _) => {
            let row = admin
                .query_one(&format!("SELECT pg_database_size('{run}')"), &[])
                .await?;
            let size: i64 = row.get(0);
            u64::try_from(size).unwrap_or(0)
        }
        (None, _) => sqlite_bytes(Path::new(db_url.trim_start_matches("sqlite:"))),
    };
    if let Some((admin, run, _)) = &pg {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {run} WITH (FORCE)"))
            .await?;
    } else {
        let db = db_url.trim_start_matches("sqlite:");
        for s in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{db}{s}"));
        }
    }
    let row = Row {
        setup: setup.to_owned(),
        devices,
        started,
        window_secs: report.window_secs,
        elapsed_secs: report.elapsed_secs,
        primers: report.primers,
        requests_per_sec: report.requests_per_sec,
        mutations_per_sec: report.mutations_per_sec,
        push_p50_ms: report.push.p50_ms,
        push_p99_ms: report.push.p99_ms,
        pull_p50_ms: report.pull.p50_ms,
        pull_p99_ms: report.pull.p99_ms,
        prime_p50_ms: report.prime.p50_ms,
        prime_p99_ms: report.prime.p99_ms,
        upload_p99_ms: report.upload.p99_ms,
        requests: report.prime.requests
            + report.pull.requests
            + report.upload.requests
            + report.push.requests,
        mutations_applied: report.mutations_applied,
        mutations_planned: report.mutations_planned,
        completions_acked: report.completions_acked,
        completions_planned: report.completions_planned,
        pull_rows: report.pull_rows,
        prime_rows: report.prime_rows,
        server_cpu_pct: pct(cpu0, after.0),
        db_cpu_pct: pct(db0, after.1),
        generator_cpu_pct: pct(gen0, after.2),
        server_rss_mib: rss,
        db_bytes,
        errors: report.errors,
        errors_by: report.errors_by.clone(),
        duplicates: report.duplicates,
        load_before,
        load_after,
        deadline_hit: report.deadline_hit,
        budget_hit: report.budget_hit,
    };
    Ok((row, report))
}

fn results_path() -> PathBuf {
    outpost_tests::target_tmp()
        .join("bench-scale")
        .join("results.json")
}

fn read_results(path: &Path) -> Vec<Row> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Whether a run is past what the set-up sustains: errors, the day's work not all
/// acknowledged, or a push or pull p99 over one second.
fn saturated(r: &Row) -> bool {
    r.errors > 0
        || r.completions_acked < r.completions_planned
        || r.push_p99_ms > 1000.0
        || r.pull_p99_ms > 1000.0
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// The generated part of docs/benchmarks.md's section.
fn markdown(rows: &[Row], cfg_items: usize) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "Command: `make bench-scale` (`scripts/with-postgres.sh cargo bench -p outpost-tests --bench fleet`); \
         one compressed day per run (`load::Plan::day`): a {}-item catalogue, 4 orders per device \
         (5 mutations each: en route, in progress, a checklist tick, a note with a part used, the \
         completion with a 2 KiB signature uploaded first), pushed in 2 bursts; a delta pull every 5 s \
         (the engine's 30 s, compressed six times); 2 % of the devices (at least one) prime the whole \
         catalogue, the others start from yesterday's cursor. Fresh database per run; the release \
         `outpost-server` with its defaults (request log at info); the generator runs on the same \
         2 cores (its CPU is shown). CPU: percent of one core over the run (window and drain), \
         from `/proc`; RSS: the server's peak (`VmHWM`, both instances summed for postgres-2). \
         Latencies per request (a pull of several pages counts each page). \"Day done\": \
         completions acknowledged of those planned. **bold**: past saturation (errors, the day \
         not done, or a p99 over 1 s).\n\n",
        cfg_items
    ));
    for setup in SETUPS {
        let mut rs: Vec<&Row> = rows.iter().filter(|r| r.setup == setup).collect();
        if rs.is_empty() {
            continue;
        }
        rs.sort_by_key(|r| r.devices);
        let title = match setup {
            "sqlite" => "One server on SQLite",
            "postgres" => "One server on PostgreSQL",
            _ => "Two instances over one PostgreSQL",
        };
        md.push_str(&format!("**{title}**\n\n"));
        md.push_str("| devices | run (load before → after) | requests/s | mutations/s | push p50 / p99 ms | pull p50 / p99 ms | prime page p50 / p99 ms | server CPU % | PostgreSQL CPU % | generator CPU % | server RSS MiB | DB MiB | errors | day done |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in rs {
            let b = |s: String| {
                if saturated(r) {
                    format!("**{s}**")
                } else {
                    s
                }
            };
            let errors = if r.errors == 0 {
                "0".to_owned()
            } else {
                format!(
                    "{} ({})",
                    r.errors,
                    r.errors_by
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            md.push_str(&format!(
                "| {} | {} ({} → {}) | {:.0} | {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} | {} | {:.0} | {:.0} | {} | {} | {}/{} |\n",
                b(r.devices.to_string()),
                r.started,
                r.load_before,
                r.load_after,
                r.requests_per_sec,
                r.mutations_per_sec,
                r.push_p50_ms,
                r.push_p99_ms,
                r.pull_p50_ms,
                r.pull_p99_ms,
                r.prime_p50_ms,
                r.prime_p99_ms,
                r.server_cpu_pct,
                if setup == "sqlite" { "—".to_owned() } else { format!("{:.0}", r.db_cpu_pct) },
                r.generator_cpu_pct,
                r.server_rss_mib,
                mib(r.db_bytes),
                errors,
                r.completions_acked,
                r.completions_planned,
            ));
        }
        md.push('\n');
    }
    md.push_str("![Throughput against device count](bench-scale-throughput.svg)\n\n");
    md.push_str("![p99 latency against device count](bench-scale-latency.svg)\n");
    md
}

/// A plotted quantity: its name, how to read it from a row, and whether its line is faint.
type Metric<'a> = (&'a str, &'a dyn Fn(&Row) -> f64, bool);

/// The two plots: throughput (mutations/s, requests/s) and p99 latency (push, pull)
/// against devices, one line per set-up, log scales.
fn plots(rows: &[Row], dir: &Path) -> anyhow::Result<()> {
    let colour = |s: &str| match s {
        "sqlite" => RGBColor(0x1f, 0x77, 0xb4),
        "postgres" => RGBColor(0xd6, 0x27, 0x28),
        _ => RGBColor(0x2c, 0xa0, 0x2c),
    };
    let max_dev = rows.iter().map(|r| r.devices).max().unwrap_or(10).max(10) as f64;
    let series = |setup: &str, f: &dyn Fn(&Row) -> f64| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.setup == setup)
            .map(|r| (r.devices as f64, f(r).max(0.01)))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let draw =
        |file: &str, caption: &str, ylabel: &str, metrics: &[Metric]| -> anyhow::Result<()> {
            let path = dir.join(file);
            let root = SVGBackend::new(&path, (900, 520)).into_drawing_area();
            root.fill(&WHITE)?;
            let ymax = rows
                .iter()
                .flat_map(|r| metrics.iter().map(move |(_, f, _)| f(r)))
                .fold(1.0_f64, f64::max)
                * 2.0;
            let mut chart = ChartBuilder::on(&root)
                .caption(caption, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d((5.0..max_dev * 1.6).log_scale(), (0.1..ymax).log_scale())?;
            chart
                .configure_mesh()
                .x_desc("devices")
                .y_desc(ylabel)
                .draw()?;
            for setup in SETUPS {
                for (name, f, dashed) in metrics {
                    let pts = series(setup, *f);
                    if pts.is_empty() {
                        continue;
                    }
                    let c = colour(setup);
                    let style: ShapeStyle = if *dashed {
                        c.mix(0.55).stroke_width(2)
                    } else {
                        c.stroke_width(2)
                    };
                    chart
                        .draw_series(LineSeries::new(pts.clone(), style))?
                        .label(format!("{setup}: {name}"))
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                    chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
            root.present()?;
            Ok(())
        };
    draw(
        "bench-scale-throughput.svg",
        "Throughput against devices (solid: mutations/s, faint: requests/s)",
        "per second",
        &[
            ("mutations/s", &|r: &Row| r.mutations_per_sec, false),
            ("requests/s", &|r: &Row| r.requests_per_sec, true),
        ],
    )?;
    draw(
        "bench-scale-latency.svg",
        "p99 latency against devices (solid: push, faint: pull)",
        "ms",
        &[
            ("push p99", &|r: &Row| r.push_p99_ms, false),
            ("pull p99", &|r: &Row| r.pull_p99_ms, true),
        ],
    )?;
    Ok(())
}

fn parse_list(var: &str, default: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn main() -> anyhow::Result<()> {
    let quick = !std::env::args().any(|a| a == "--bench");
    let env_num = |v: &str, d: usize| -> usize {
        std::env::var(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let setups = if quick {
        vec!["sqlite".to_owned()]
    } else {
        parse_list("OUTPOST_SCALE_SETUPS", "sqlite,postgres,postgres-2")
    };
    let cfg = Config {
        devices: if quick {
            vec![3]
        } else {
            parse_list("OUTPOST_SCALE_DEVICES", "10,100,1000,5000")
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect()
        },
        window: Duration::from_secs(if quick {
            2
        } else {
            env_num("OUTPOST_SCALE_WINDOW_SECS", 30) as u64
        }),
        items: if quick {
            200
        } else {
            env_num("OUTPOST_SCALE_ITEMS", 10_000)
        },
        quick,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let results = results_path();
    let mut rows = if quick {
        Vec::new()
    } else {
        read_results(&results)
    };
    rt.block_on(async {
        let dir = tempfile::tempdir_in(outpost_tests::target_tmp().parent().unwrap_or(Path::new(".")))
            .or_else(|_| tempfile::tempdir())?;
        let mut n = 0;
        for setup in &setups {
            anyhow::ensure!(SETUPS.contains(&setup.as_str()), "unknown set-up {setup}");
            let t = std::time::Instant::now();
            let tpl = template(setup, &cfg, dir.path()).await?;
            println!(
                "{setup}: provisioned {} devices and {} items in {:.1} s",
                cfg.devices.iter().max().unwrap_or(&0),
                cfg.items,
                t.elapsed().as_secs_f64()
            );
            for &devices in &cfg.devices {
                n += 1;
                let (row, report) = run_one(setup, &tpl, devices, &cfg, dir.path(), n).await?;
                println!(
                    "{setup} {devices:>5} devices: {:.0} req/s, {:.0} mut/s, push p50/p99 {:.1}/{:.1} ms, pull p50/p99 {:.1}/{:.1} ms, \
                     server CPU {:.0} %, db CPU {:.0} %, generator CPU {:.0} %, RSS {:.0} MiB, DB {} MiB, errors {} {:?}, day {}/{} (set-up {:.1} s, load {} → {})",
                    row.requests_per_sec,
                    row.mutations_per_sec,
                    row.push_p50_ms,
                    row.push_p99_ms,
                    row.pull_p50_ms,
                    row.pull_p99_ms,
                    row.server_cpu_pct,
                    row.db_cpu_pct,
                    row.generator_cpu_pct,
                    row.server_rss_mib,
                    mib(row.db_bytes),
                    row.errors,
                    row.errors_by,
                    row.completions_acked,
                    row.completions_planned,
                    report.setup_secs,
                    row.load_before,
                    row.load_after,
                );
                if quick {
                    anyhow::ensure!(row.errors == 0, "errors in the smoke run: {:?}", row.errors_by);
                    anyhow::ensure!(
                        row.completions_acked == row.completions_planned,
                        "the smoke run's day was not done"
                    );
                }
                rows.retain(|r| !(r.setup == row.setup && r.devices == row.devices));
                rows.push(row);
                if !quick {
                    if let Some(parent) = results.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&results, serde_json::to_vec_pretty(&rows)?)?;
                }
            }
            if let Template::Postgres { base, name } = &tpl {
                let admin = pg_client(base).await?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
            }
        }
        anyhow::Ok(())
    })?;
    if quick {
        let out = tempfile::tempdir()?;
        plots(&rows, out.path())?;
        let svg = std::fs::read_to_string(out.path().join("bench-scale-latency.svg"))?;
        anyhow::ensure!(
            svg.contains("<svg") && svg.contains("sqlite"),
            "the plot is empty"
        );
        println!("fleet: smoke run done (the full runs: make bench-scale)");
        return Ok(());
    }
    let docs = Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .parent()
    .map(|p| p.join("docs"))
    .ok_or_else(|| anyhow::anyhow!("no docs directory"))?;
    plots(&rows, &docs)?;
    outpost_tests::write_docs_section(&docs, "bench-scale", &markdown(&rows, cfg.items))?;
    println!("results: {}", results.display());
    Ok(())
}
