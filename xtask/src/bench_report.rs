//! `cargo xtask bench-report`: the generated part of docs/benchmarks.md ("Latest run"),
//! written from what `make bench` printed. Each benchmark prints one line per figure,
//!
//! ```text
//! bench-result: {"id": "reconnect", "group": "Sync", "figure": "…", "outpost": "813 ms",
//!                "target": "≤ 300 ms", "met": false, "command": "cargo bench …"}
//! ```
//!
//! and the baseline (the PouchDB run in `bench/pouchdb`, or a plain-SQLite run a
//! benchmark makes itself) prints `bench-result: {"baseline_for": "reconnect", "text":
//! "…"}`. `make bench` also writes `bench-meta: {"started": <unix s>, "load": "…"}` at
//! the start and `bench-meta: {"finished": <unix s>, "finished_at": "…", "load_end":
//! "…"}` at the end (the task itself reads no clock). Fields of a figure: `id`, `figure`, `outpost`, `command` required;
//! `group`, `target`, `met` (true, false or absent = no target), `baseline` (text, when
//! the benchmark measured it), `quick` (smoke sizes) optional. A later line with the
//! same `id` replaces an earlier one.
//!
//! The block sits between the two markers below; everything else in the file (the
//! history of each figure, what changed and why) is kept as written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

pub const USAGE: &str =
    "write docs/benchmarks.md's \"Latest run\" from `make bench`'s log: --log FILE [--out FILE]";

pub const BEGIN: &str =
    "<!-- bench-report:begin (written by `make bench`: edit the benchmarks, not this block) -->";
pub const END: &str = "<!-- bench-report:end -->";

/// What one run printed.
#[derive(Debug, Default)]
pub struct Run {
    /// Figures in the order their ids first appeared (a repeated id replaces the row).
    pub figures: Vec<Value>,
    /// Baseline text by figure id.
    pub baselines: Vec<(String, String)>,
    pub started: Option<u64>,
    pub finished: Option<u64>,
    /// When the run finished, as `date -u` wrote it.
    pub finished_at: Option<String>,
    pub load_start: Option<String>,
    pub load_end: Option<String>,
}

/// The `bench-result:` and `bench-meta:` lines of `log`; other lines are ignored. A
/// line that starts with the prefix but is not a JSON object is an error: a benchmark
/// printed something the report cannot read.
pub fn parse(log: &str) -> Result<Run, String> {
    let mut run = Run::default();
    for (n, line) in log.lines().enumerate() {
        let line = line.trim();
        let (json, meta) = if let Some(rest) = line.strip_prefix("bench-result:") {
            (rest, false)
        } else if let Some(rest) = line.strip_prefix("bench-meta:") {
            (rest, true)
        } else {
            continue;
        };
        let v: Value = serde_json::from_str(json.trim())
            .map_err(|e| format!("line {}: not a JSON object ({e}): {line}", n + 1))?;
        if meta {
            let text = |k: &str| v[k].as_str().map(str::to_string);
            run.started = v["started"].as_u64().or(run.started);
            run.finished = v["finished"].as_u64().or(run.finished);
            run.finished_at = text("finished_at").or(run.finished_at.take());
            run.load_start = text("load").or(run.load_start.take());
            run.load_end = text("load_end").or(run.load_end.take());
        } else if let Some(id) = v["baseline_for"].as_str() {
            let text = field(&v, "text", n)?;
            run.baselines.retain(|(b, _)| b != id);
            run.baselines.push((id.to_string(), text));
        } else {
            for key in ["id", "figure", "outpost", "command"] {
                field(&v, key, n)?;
            }
            let id = v["id"].clone();
            match run.figures.iter_mut().find(|f| f["id"] == id) {
                Some(slot) => *slot = v,
                None => run.figures.push(v),
            }
        }
    }
    if run.figures.is_empty() {
        return Err("no `bench-result:` lines: did the benchmarks run?".into());
    }
    Ok(run)
}

fn field(v: &Value, key: &str, n: usize) -> Result<String, String> {
    v[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("line {}: `{key}` missing or not a string", n + 1))
}

/// What the machine is, read from /proc (a line; "unknown" parts where unreadable).
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown OS".into());
    format!(
        "{model}, {cores} cores, {:.0} GiB, {os}",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

/// The "Latest run" block, markers included. `context` is the run's circumstances
/// (date, commit, machine, load, duration) in one paragraph.
pub fn render(run: &Run, context: &str) -> String {
    let mut d = String::new();
    let _ = writeln!(d, "{BEGIN}");
    d.push_str("## Latest run\n\n");
    let _ = writeln!(d, "{context}\n");
    let quick = run.figures.iter().any(|f| f["quick"] == Value::Bool(true));
    if quick {
        d.push_str(
            "**Quick run** (`make bench-quick`): smoke-test sizes, checking that every \
             benchmark and the baseline run end to end. These are not the figures.\n\n",
        );
    }
    let mut groups: Vec<&str> = Vec::new();
    for f in &run.figures {
        let g = f["group"].as_str().unwrap_or("Other");
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for g in groups {
        let _ = writeln!(d, "### {g}\n");
        d.push_str("| figure | Outpost | baseline, same run | target | command |\n");
        d.push_str("|---|---|---|---|---|\n");
        for f in run
            .figures
            .iter()
            .filter(|f| f["group"].as_str().unwrap_or("Other") == g)
        {
            let id = f["id"].as_str().unwrap_or_default();
            let baseline = f["baseline"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    run.baselines
                        .iter()
                        .find(|(b, _)| b == id)
                        .map(|(_, t)| t.clone())
                })
                .unwrap_or_else(|| "—".into());
            let target = match (f["target"].as_str(), f["met"].as_bool()) {
                (Some(t), Some(true)) => format!("{t}: met"),
                (Some(t), Some(false)) => format!("{t}: **not met**"),
                (Some(t), None) => t.to_string(),
                (None, _) => "—".into(),
            };
            let _ = writeln!(
                d,
                "| {} | {} | {} | {} | `{}` |",
                cell(f["figure"].as_str().unwrap_or_default()),
                cell(f["outpost"].as_str().unwrap_or_default()),
                cell(&baseline),
                cell(&target),
                f["command"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('|', "\\|"),
            );
        }
        d.push('\n');
    }
    let _ = writeln!(d, "{END}");
    d
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `doc` with its block replaced by `block`, or `block` inserted after the title's
/// first paragraph when the document has none yet.
pub fn splice(doc: &str, block: &str) -> Result<String, String> {
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => {
            let after = &doc[e + END.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            Ok(format!("{}{block}{after}", &doc[..b]))
        }
        (None, None) => {
            // After the title and the paragraph under it.
            let at = doc
                .find("\n## ")
                .map(|i| i + 1)
                .unwrap_or(doc.len());
            Ok(format!("{}{block}\n{}", &doc[..at], &doc[at..]))
        }
        _ => Err(format!(
            "the document has a broken report block (one of `{BEGIN}` / `{END}` is missing or out of order)"
        )),
    }
}

fn context(run: &Run) -> String {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let took = match (run.started, run.finished) {
        (Some(s), Some(f)) => format!(
            "; the whole run took {:.1} min",
            f.saturating_sub(s) as f64 / 60.0
        ),
        _ => String::new(),
    };
    format!(
        "`make bench` finished {} at commit `{commit}` on {}. Load average (1, 5, 15 min) \
         at the start {}, at the end {}{took}. Outpost's figures are its release binaries \
         on loopback; the baseline column is measured in the same run, minutes apart \
         (PouchDB 9 replicating from express-pouchdb for the sync figures, plain SQLite \
         for the write path).",
        run.finished_at.as_deref().unwrap_or("(time not recorded)"),
        machine(),
        run.load_start.as_deref().unwrap_or("?"),
        run.load_end.as_deref().unwrap_or("?"),
    )
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

pub fn run(root: &Path, args: &[String]) -> Result<ExitCode, String> {
    let log = arg(args, "--log").ok_or("--log FILE is required (what `make bench` printed)")?;
    let out = arg(args, "--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("docs").join("benchmarks.md"));
    let text = std::fs::read_to_string(log).map_err(|e| format!("cannot read {log}: {e}"))?;
    let parsed = parse(&text)?;
    let block = render(&parsed, &context(&parsed));
    let doc = match std::fs::read_to_string(&out) {
        Ok(doc) => splice(&doc, &block)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("# Benchmarks\n\n{block}"),
        Err(e) => return Err(format!("cannot read {}: {e}", out.display())),
    };
    std::fs::write(&out, doc).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let unmet = parsed
        .figures
        .iter()
        .filter(|f| f["met"] == Value::Bool(false))
        .count();
    println!(
        "wrote {} ({} figures, {} with a target not met)",
        out.display(),
        parsed.figures.len(),
        unmet
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"
compiling…
bench-meta: {"started": 1700000000, "load": "0.10 0.20 0.30"}
bench-result: {"id": "reconnect", "group": "Sync", "figure": "reconnect, 1,000 orders", "outpost": "900 ms", "target": "≤ 300 ms", "met": false, "command": "cargo bench -p outpost-tests --bench reconnect"}
some other output | with a pipe
bench-result: {"id": "p50", "group": "Local write path", "figure": "one action, p50", "outpost": "0.22 ms", "baseline": "plain SQLite 0.16 ms", "target": "< 0.3 ms", "met": true, "command": "cargo bench -p outpost-store --bench write_path"}
bench-result: {"baseline_for": "reconnect", "text": "PouchDB 670 ms"}
bench-result: {"id": "reconnect", "group": "Sync", "figure": "reconnect, 1,000 orders", "outpost": "280 ms", "target": "≤ 300 ms", "met": true, "command": "cargo bench -p outpost-tests --bench reconnect"}
"#;

    #[test]
    fn figures_render_by_group_with_their_baseline_target_and_command_and_a_repeat_replaces() {
        let run = parse(LOG).expect("parses");
        assert_eq!(run.figures.len(), 2, "the repeated id replaced its row");
        assert_eq!(run.load_start.as_deref(), Some("0.10 0.20 0.30"));
        let block = render(&run, "context");
        let sync = block.find("### Sync").expect("the sync group");
        let write = block
            .find("### Local write path")
            .expect("the write path group");
        assert!(sync < write, "groups in the order they first appeared");
        assert!(block.contains(
            "| reconnect, 1,000 orders | 280 ms | PouchDB 670 ms | ≤ 300 ms: met | `cargo bench -p outpost-tests --bench reconnect` |"
        ));
        assert!(
            block.contains("| one action, p50 | 0.22 ms | plain SQLite 0.16 ms | < 0.3 ms: met |")
        );
        assert!(!block.contains("900 ms"));
        assert!(!block.contains("Quick run"));
    }

    #[test]
    fn an_unmet_target_is_bold_and_a_quick_run_says_so() {
        let log = r#"bench-result: {"id": "a", "figure": "f", "outpost": "2 s", "target": "≤ 1 s", "met": false, "command": "c", "quick": true}"#;
        let block = render(&parse(log).expect("parses"), "ctx");
        assert!(block.contains("≤ 1 s: **not met**"));
        assert!(block.contains("Quick run"));
        assert!(block.contains("### Other"));
    }

    #[test]
    fn a_log_without_results_or_with_a_broken_line_is_refused_with_the_line() {
        assert!(parse("nothing here\n").is_err());
        let err = parse("bench-result: {not json").expect_err("refused");
        assert!(err.contains("line 1"), "{err}");
        let err = parse(r#"bench-result: {"id": "a", "figure": "f"}"#).expect_err("refused");
        assert!(err.contains("outpost"), "{err}");
    }

    #[test]
    fn the_block_is_replaced_in_place_and_the_rest_of_the_document_is_kept() {
        let doc = "# Benchmarks\n\nIntro.\n\n## History\n\nOld figures.\n";
        let first = splice(doc, &format!("{BEGIN}\nA\n{END}\n")).expect("inserted");
        assert_eq!(
            first,
            format!("# Benchmarks\n\nIntro.\n\n{BEGIN}\nA\n{END}\n\n## History\n\nOld figures.\n")
        );
        let second = splice(&first, &format!("{BEGIN}\nB\n{END}\n")).expect("replaced");
        assert_eq!(second, first.replace("\nA\n", "\nB\n"));
        let broken = format!("{END}\n{BEGIN}\n");
        assert!(splice(&broken, "x").is_err());
    }
}
