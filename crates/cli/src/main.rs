//! `outpost`: the headless Outpost client.
//!
//! A thin layer over `outpost-core`: parse arguments, call one use case, print the
//! result for a person (tables) or for a program (`--json` on stdout). Errors go to
//! stderr in plain words, with an exit code per kind of problem (see `EXIT CODES`).
//! This interface is public: keep it stable.
//!
//! Layout: `args` (the command line and its help text), `cmd` (one module per command
//! family), `print` (shared output); this file picks the data directory, dispatches,
//! and turns an error into its message and exit code. It holds no command's logic.

use std::process::ExitCode;

use clap::Parser;
use outpost_core::CoreError;

use args::{Cli, Command, DbCmd, DemoCmd, DocumentsCmd, InventoryCmd, OutboxCmd};

mod args;
mod cmd;
mod print;

fn run(cli: Cli) -> Result<(), CoreError> {
    // `--data-dir` (or OUTPOST_DATA_DIR, which clap reads), else the platform's.
    let dir = outpost_core::rules::data_dir(cli.data_dir)?;
    let json = cli.json;
    match cli.command {
        Command::Init {
            passphrase_stdin,
            user,
        } => cmd::init::run(&dir, passphrase_stdin, user, json),
        Command::Orders(sub) => cmd::orders::run(&dir, sub, json),
        Command::Inventory(InventoryCmd::Search { query, limit }) => {
            cmd::inventory::search(&dir, &query, limit, json)
        }
        Command::Documents(DocumentsCmd::List { order }) => {
            cmd::documents::list(&dir, &order, json)
        }
        Command::Documents(DocumentsCmd::Export { id, output }) => {
            cmd::documents::export(&dir, &id, &output, json)
        }
        Command::Documents(DocumentsCmd::Budget { size }) => {
            cmd::documents::budget(&dir, size.as_deref(), json)
        }
        Command::Outbox(OutboxCmd::List) => cmd::outbox::list(&dir, json),
        Command::Db(DbCmd::Check) => cmd::db::check(&dir, json),
        Command::Db(DbCmd::Rekey) => cmd::db::rekey(&dir, json),
        Command::Db(DbCmd::Passphrase) => cmd::db::passphrase(&dir, json),
        Command::Login {
            server,
            username,
            password_stdin: _,
        } => cmd::sync::login(&dir, &server, &username, json),
        Command::Sync { watch: true } => cmd::sync::watch(&dir, json),
        Command::Sync { watch: false } => cmd::sync::sync(&dir, json),
        Command::Status => cmd::sync::status(&dir, json),
        Command::Failed(sub) => cmd::failed::run(&dir, sub, json),
        Command::Conflicts(sub) => cmd::conflicts::run(&dir, sub, json),
        Command::Demo(DemoCmd::Load) => cmd::demo::load(&dir, json),
        Command::Fleet { stale_after } => cmd::fleet::run(&dir, stale_after, json),
    }
}

fn main() -> ExitCode {
    outpost_core::arm_crash_points();
    // First, while the process has one thread: the key variables leave the environment.
    cmd::keep_key_env(outpost_core::KeyEnv::take_from_process_env());
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                let body = serde_json::json!({"error": {
                    "code": e.code(),
                    "message": e.to_string(),
                    "field_errors": e.field_errors().map(|v| &v.errors),
                }});
                eprintln!("{body}");
            } else {
                eprintln!("error: {e}");
                if let Some(v) = e.field_errors() {
                    for fe in &v.errors {
                        eprintln!("  {}: {}", fe.field, fe.message);
                    }
                }
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
