//! A device driven through the `outpost` command-line client, one process per command:
//! what a kill test needs (a process the test can kill, and a data directory that
//! outlives it). [`CliDevice::report`] reads the oracle's invariants through the same
//! commands a support person would use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use outpost_protocol::Mutation;

use crate::oracle::DeviceReport;

/// A data directory of its own and the key that opens it.
pub struct CliDevice {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub key: String,
    /// The `outpost` binary this device runs.
    pub binary: PathBuf,
}

impl CliDevice {
    /// A new device (not yet signed in) running `binary`.
    pub fn new(name: &str, binary: &Path) -> CliDevice {
        CliDevice {
            name: name.to_owned(),
            dir: tempfile::tempdir().expect("temp dir"),
            key: crate::random_key(),
            binary: binary.to_path_buf(),
        }
    }

    /// `outpost --data-dir DIR ARGS…` with the key in its environment (not started).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .env("OUTPOST_DB_KEY", &self.key)
            .env_remove("FAILPOINTS")
            .env_remove("OUTPOST_FAILPOINT")
            .stdin(Stdio::null());
        c
    }

    /// Run a command to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run outpost")
    }

    /// Run a command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{}: outpost {args:?} failed ({}): {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `outpost --json ARGS…`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all))
            .unwrap_or_else(|e| panic!("{}: outpost {args:?} printed no JSON: {e}", self.name))
    }

    /// Run a command that must succeed, timed from spawn to exit with its peak RSS
    /// ([`measure`]): what a benchmark of the client as a person starts it reads.
    pub fn measured(&self, args: &[&str], stdin: Option<&str>) -> Measured {
        measure(self.command(args), stdin)
    }

    /// Sign in as `user` (demo password) to `url`.
    pub fn login(&self, url: &str, user: &str) {
        use std::io::Write;
        let mut child = self
            .command(&[
                "login",
                "--server",
                url,
                "--username",
                user,
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start outpost login");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{}\n", crate::DEMO_PASSWORD).as_bytes())
            .expect("password");
        let out = child.wait_with_output().expect("wait for login");
        assert!(
            out.status.success(),
            "{}: login failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The orders on this device (`orders list`).
    pub fn orders(&self) -> Vec<serde_json::Value> {
        self.json(&["orders", "list"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The outbox rows (`outbox list`).
    pub fn outbox(&self) -> Vec<serde_json::Value> {
        self.json(&["outbox", "list"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Mutations this device shows a person as failed or held (`failed list`,
    /// `conflicts list`), for [`crate::oracle::ServerState::add_device_records`].
    pub fn held_mutations(&self) -> Vec<Mutation> {
        let mut out = Vec::new();
        for what in ["failed", "conflicts"] {
            let list = self.json(&[what, "list"]);
            for row in list.as_array().into_iter().flatten() {
                collect_mutations(row, &mut out);
            }
        }
        out
    }

    /// The oracle's invariants, read through `outbox list`, `db check` and `orders
    /// list`.
    pub fn report(&self) -> DeviceReport {
        let outbox = self.outbox().len();
        let check = self.run(&["--json", "db", "check"]);
        let integrity = if check.status.success() {
            Vec::new()
        } else {
            vec![format!(
                "db check exit {}: {}{}",
                check.status,
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            )]
        };
        let stuck = self
            .orders()
            .iter()
            .filter(|o| o["sync_state"] == "saved" || o["sync_state"] == "syncing")
            .map(|o| format!("order {} is {}", o["id"], o["sync_state"]))
            .collect();
        DeviceReport {
            name: self.name.clone(),
            outbox,
            integrity,
            stuck,
        }
    }
}

/// One process run to its end: wall time from spawn to exit, peak resident set
/// (`VmHWM`, KiB) and what it printed on stdout.
#[derive(Debug, Clone)]
pub struct Measured {
    pub took: Duration,
    pub peak_rss_kib: u64,
    pub stdout: String,
}

/// Run `cmd` (stdin, stdout and stderr piped; `stdin` written to it, if any) to its end:
/// the wall time and the peak RSS, read from `/proc/PID/status` every 5 ms while it
/// runs (the high-water mark, so a poll misses at most its last 5 ms). Panics with the
/// process's stderr if it fails.
pub fn measure(mut cmd: Command, stdin: Option<&str>) -> Measured {
    let start = Instant::now();
    let mut child = crate::spawn_with_input(&mut cmd, stdin);
    // Both outputs are read on threads of their own: a long output cannot block the child.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_rss_kib = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            {
                peak_rss_kib = peak_rss_kib.max(kib);
            }
        }
        if child.try_wait().expect("wait for the process").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = start.elapsed();
    let status = child.wait().expect("wait for the process");
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    assert!(
        status.success(),
        "{cmd:?} failed ({status}): {}",
        String::from_utf8_lossy(&stderr)
    );
    Measured {
        took,
        peak_rss_kib,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
    }
}

/// Every object under `v` that reads as a mutation.
fn collect_mutations(v: &serde_json::Value, out: &mut Vec<Mutation>) {
    if let Ok(m) = serde_json::from_value::<Mutation>(v.clone()) {
        out.push(m);
        return;
    }
    match v {
        serde_json::Value::Object(map) => map.values().for_each(|x| collect_mutations(x, out)),
        serde_json::Value::Array(items) => items.iter().for_each(|x| collect_mutations(x, out)),
        _ => {}
    }
}
