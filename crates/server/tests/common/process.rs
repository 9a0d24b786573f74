//! The real `outpost-server` binary as a child process: started with `serve` on a
//! loopback port 0 (the address is read from its log), stopped with SIGTERM, or run
//! for one admin command with its output captured.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_outpost-server")
}

/// Run `outpost-server ARGS…` to completion, with `stdin` fed in.
pub fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("OUTPOST_SERVER_DB")
        .env_remove("OUTPOST_SERVER_LISTEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start outpost-server");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("outpost-server ends")
}

/// Like [`run`], and it must succeed; returns stdout.
pub fn run_ok(args: &[&str], stdin: &str) -> String {
    let out = run(args, stdin);
    assert!(
        out.status.success(),
        "outpost-server {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `outpost-server serve`.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub base: String,
    pub addr: std::net::SocketAddr,
    log: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// `outpost-server serve --listen 127.0.0.1:0 --db URL EXTRA…`; waits until it listens.
    pub fn start(db_url: &str, extra: &[&str]) -> ServerProcess {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db_url])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("OUTPOST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start outpost-server serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on ") {
                    let url: String = line[at + "listening on ".len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url);
                    }
                }
                let mut l = sink.lock().unwrap_or_else(|e| e.into_inner());
                l.push_str(&line);
                l.push('\n');
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
                panic!("outpost-server did not start listening:\n{log}");
            }
        };
        let addr = base
            .rsplit_once("://")
            .map(|(_, a)| a)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("an address in {base:?}"));
        ServerProcess {
            child,
            base,
            addr,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Send SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Wait for the process to end (at most `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "outpost-server did not stop in {timeout:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
