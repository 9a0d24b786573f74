//! `perf record` around a benchmark's processes, for the profiles the benchmarks' docs
//! read (call graphs by DWARF unwinding; `perf report -i FILE` or `perf script`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `perf record` attached to a running process until [`Recording::stop`].
pub struct Recording(Child);

impl Recording {
    /// Record process `pid` (every thread) into `out`. Waits half a second, so the
    /// recording has started before the work to be profiled does.
    pub fn attach(pid: u32, out: &Path) -> Recording {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).expect("the profile's directory");
        }
        let child = Command::new("perf")
            .args(["record", "-F", "2000", "--call-graph", "dwarf,32768", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start perf record (is perf installed?)");
        std::thread::sleep(Duration::from_millis(500));
        Recording(child)
    }

    /// Stop recording (SIGINT, as Ctrl-C would) and wait for the file to be written.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// `cmd` run under `perf record` into `out`: the same program, arguments, environment
/// and working directory.
pub fn wrapped(cmd: &Command, out: &Path) -> Command {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("the profile's directory");
    }
    let mut c = Command::new("perf");
    c.args(["record", "-F", "1000", "--call-graph", "dwarf,32768", "-o"])
        .arg(out)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    c
}
