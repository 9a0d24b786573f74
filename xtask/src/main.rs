//! `cargo xtask <task> [options]`: runs one of the repository's own tasks (see the
//! library's documentation for what each one owns). An unknown task prints the list.

use std::path::Path;
use std::process::ExitCode;

use outpost_xtask::{bench_report, codegen, reliability, repo_root, tidy};

/// One task: its name on the command line, a line of help, and its entry point (the
/// repository's root and the arguments after the task's name).
struct Task {
    name: &'static str,
    usage: &'static str,
    run: fn(&Path, &[String]) -> Result<ExitCode, String>,
}

const TASKS: &[Task] = &[
    Task {
        name: "bench-report",
        usage: bench_report::USAGE,
        run: bench_report::run,
    },
    Task {
        name: "codegen",
        usage: codegen::USAGE,
        run: codegen::run,
    },
    Task {
        name: "reliability",
        usage: reliability::USAGE,
        run: reliability::run,
    },
    Task {
        name: "tidy",
        usage: tidy::USAGE,
        run: tidy::run,
    },
];

fn usage() -> ExitCode {
    eprintln!("usage: cargo xtask <task> [options]\n\ntasks:");
    for t in TASKS {
        eprintln!("  {:<12} {}", t.name, t.usage);
    }
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, rest)) = args.split_first() else {
        return usage();
    };
    let Some(task) = TASKS.iter().find(|t| t.name == name) else {
        eprintln!("unknown task {name:?}");
        return usage();
    };
    match (task.run)(&repo_root(), rest) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cargo xtask {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
