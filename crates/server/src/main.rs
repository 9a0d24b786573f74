//! `outpost-server`: the command line. `serve` runs the sync server; `seed`, `user`,
//! `device`, `epoch` and `prune` administer its store. Passwords are read from stdin,
//! never from arguments (which other users of the machine can see).

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use outpost_protocol::Role;
use outpost_server::{inventory, repo, seed, Clock as _, Db, ServerConfig, SystemClock, TlsFiles};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(name = "outpost-server", version, about = "Outpost's sync server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct DbArg {
    /// `sqlite:PATH` or `postgres://user@host:port/db`. Default: a SQLite file in the
    /// platform data directory.
    #[arg(long, env = "OUTPOST_SERVER_DB")]
    db: Option<String>,
}

/// Where documents' files are kept (issue 22).
#[derive(Debug, clap::Args)]
struct DocumentsDirArg {
    /// The directory for documents' large files (and files arriving). Default: a
    /// `documents` directory beside a SQLite database, or in the platform data
    /// directory for PostgreSQL. Every server instance and `documents add` must use
    /// the same.
    #[arg(long, env = "OUTPOST_SERVER_DOCUMENTS_DIR")]
    documents_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[arg(long, env = "OUTPOST_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        #[command(flatten)]
        db: DbArg,
        /// PEM certificate chain (with --tls-key: serve HTTPS).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Access token lifetime in seconds.
        #[arg(long, default_value_t = 900)]
        access_ttl_secs: u64,
        /// Grace period for a rotated refresh token, in seconds.
        #[arg(long, default_value_t = 30)]
        refresh_grace_secs: u64,
        /// Failed sign-ins allowed per user and per address before each further
        /// attempt waits a growing delay (1 s, 2 s, 4 s, … up to --login-delay-max-secs).
        #[arg(long, default_value_t = 10)]
        login_max_failures: u32,
        /// A user's or address's failures are forgotten after this long without one.
        #[arg(long, default_value_t = 900)]
        login_window_secs: u64,
        /// The longest delay between sign-in attempts (never a lockout).
        #[arg(long, default_value_t = 60)]
        login_delay_max_secs: u64,
        /// Password checks (Argon2, 19 MiB each) run at once; default: the core count.
        #[arg(long)]
        password_hashers: Option<usize>,
        /// Seconds a client may take to send a request's headers or finish the TLS
        /// handshake before the connection is closed.
        #[arg(long, default_value_t = 10)]
        header_read_timeout_secs: u64,
        /// Seconds one request (its body included) may take before it is answered 503.
        #[arg(long, default_value_t = 120)]
        request_timeout_secs: u64,
        /// Connections served at once (more wait in the kernel's backlog).
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Requests handled at once; one more is answered 503 with Retry-After (devices
        /// retry) instead of queuing with its memory held.
        #[arg(long, default_value_t = outpost_server::MAX_IN_FLIGHT_DEFAULT)]
        max_in_flight: usize,
        /// The most bytes of files (photos, signatures) one user may hold on the server,
        /// uploads in progress included; a file past it is refused and its completion
        /// set aside on the device with the reason. Default 2 GiB.
        #[arg(long, default_value_t = outpost_server::config::DEFAULT_ATTACHMENT_QUOTA_BYTES)]
        attachment_quota_bytes: u64,
        /// The most bytes of refused changes (open failed syncs) kept for one person; a
        /// refusal past it is answered but not stored, and stays on the device in front
        /// of the technician until a dispatcher has decided the waiting ones. Default
        /// 64 MiB.
        #[arg(long, default_value_t = outpost_server::config::DEFAULT_FAILED_SYNC_BUDGET_BYTES)]
        failed_sync_budget_bytes: u64,
        /// The bearer token `/metrics` asks for (without one, `/metrics` answers no one).
        #[arg(long, env = "OUTPOST_METRICS_TOKEN", hide_env_values = true)]
        metrics_token: Option<String>,
        /// The header a trusted reverse proxy sets to the client's address (e.g.
        /// x-forwarded-for; its last entry is used). Only behind such a proxy: a client
        /// reaching the server directly could otherwise choose its own address.
        #[arg(long)]
        trusted_proxy_header: Option<String>,
        /// The oldest sync protocol served (default: the previous release's). Raise it
        /// once every device is updated: older ones are then told to update Outpost.
        #[arg(long, default_value_t = outpost_protocol::compat::PREVIOUS_PROTOCOL_VERSION,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(outpost_protocol::PROTOCOL_VERSION)))]
        min_protocol: u32,
        /// The fleet view (`outpost fleet`, the dispatcher's Fleet screen) warns about
        /// devices not seen for longer than this many seconds (default: 24 hours).
        #[arg(long, env = "OUTPOST_FLEET_STALE_AFTER_SECS",
              default_value_t = outpost_protocol::fleet::STALE_AFTER_SECS_DEFAULT,
              value_parser = clap::value_parser!(u64).range(60..))]
        fleet_stale_after_secs: u64,
        #[command(flatten)]
        documents: DocumentsDirArg,
        /// The largest document taken (`documents add`), in bytes. Default 256 MiB.
        #[arg(long, env = "OUTPOST_SERVER_DOCUMENT_MAX_BYTES",
              default_value_t = outpost_protocol::limits::DOCUMENT_BYTES_MAX_DEFAULT)]
        document_max_bytes: u64,
        /// Documents up to this size are kept in the database's rows, larger ones as
        /// files in the documents directory. Default 1 MiB.
        #[arg(long, default_value_t = outpost_protocol::limits::DOCUMENT_INLINE_BYTES_DEFAULT)]
        document_inline_max_bytes: u64,
        /// The devices' documents budget in bytes (default: theirs, 500 MB); a budget
        /// a person set on a device wins.
        #[arg(long)]
        document_budget_bytes: Option<u64>,
    },
    /// Technical documents (manuals, drawings) for the equipment on orders: devices
    /// keep those their technician's open orders need.
    Documents {
        #[command(subcommand)]
        action: DocumentsAction,
    },
    /// Seed the demo fleet (idempotent).
    Seed {
        #[arg(long, required = true)]
        demo: bool,
        /// How many inventory items the demo fleet has (items already there are kept).
        #[arg(long, default_value_t = seed::DEMO_ITEMS,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=seed::DEMO_ITEMS_MAX as u64))]
        items: usize,
        #[command(flatten)]
        db: DbArg,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage devices.
    Device {
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// Give the database a new epoch: every device re-primes. Run after a restore.
    Epoch {
        #[command(subcommand)]
        action: EpochAction,
    },
    /// Manage the token signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Manage the inventory catalogue.
    Inventory {
        #[command(subcommand)]
        action: InventoryAction,
    },
    /// Drop change-log rows and idempotency records older than the retention. A device
    /// away longer than `--keep-days` re-primes when it comes back (its unsynced work
    /// is kept and sent); the default keeps every device within the supported offline
    /// period syncing by delta.
    Prune {
        #[arg(long, default_value_t = outpost_server::RETENTION_DAYS_DEFAULT)]
        keep_days: u64,
        /// Uploads started longer ago than this and never finished are dropped.
        #[arg(long, default_value_t = 7)]
        upload_keep_days: u64,
        #[command(flatten)]
        db: DbArg,
    },
    /// Print the OpenAPI description.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum DocumentsAction {
    /// Add a document linked to models, assets or orders (at least one). A file with
    /// the same name and the same links as a document already there is its new
    /// version: it replaces the old one on every device.
    Add {
        file: PathBuf,
        /// An equipment model (an order's equipment model, exactly), e.g. HX-200.
        #[arg(long)]
        model: Vec<String>,
        /// An asset tag (an order's equipment asset tag, exactly).
        #[arg(long)]
        asset: Vec<String>,
        /// An order id.
        #[arg(long)]
        order: Vec<Uuid>,
        /// The name devices show (default: the file's name).
        #[arg(long)]
        name: Option<String>,
        /// The media type (default: from the name's extension).
        #[arg(long)]
        media_type: Option<String>,
        /// Make the file the new version of this document (its links become these).
        #[arg(long)]
        replace: Option<Uuid>,
        /// The largest document taken, in bytes (default 256 MiB).
        #[arg(long, env = "OUTPOST_SERVER_DOCUMENT_MAX_BYTES",
              default_value_t = outpost_protocol::limits::DOCUMENT_BYTES_MAX_DEFAULT)]
        max_bytes: u64,
        /// Documents up to this size go into the database's rows (default 1 MiB).
        #[arg(long, default_value_t = outpost_protocol::limits::DOCUMENT_INLINE_BYTES_DEFAULT)]
        inline_max_bytes: u64,
        #[command(flatten)]
        documents: DocumentsDirArg,
        #[command(flatten)]
        db: DbArg,
    },
    /// List documents with their links.
    List {
        /// Removed documents too.
        #[arg(long)]
        all: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Remove a document: devices delete it on their next sync.
    Remove {
        id: Uuid,
        #[command(flatten)]
        documents: DocumentsDirArg,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Add a user; the password is read from stdin.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Disable a user: their tokens stop working at once.
    Disable {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Enable a disabled user.
    Enable {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Give a user a new password (read from stdin) and end all their sessions: every
    /// device they are signed in on must sign in again, with the new password.
    ResetPassword {
        #[arg(long)]
        username: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceAction {
    /// Revoke a device (a lost laptop): its tokens stop working at once.
    Revoke {
        #[arg(long)]
        device_id: Uuid,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, Subcommand)]
enum InventoryAction {
    /// Apply an inventory export from the business system (CSV or JSON: SKU, name,
    /// unit, price, quantity per location, the time it was taken). Only items that
    /// differ are written; parts used after the export's time are subtracted from its
    /// quantities (docs/server.md, "Inventory from the business system").
    Import {
        /// The export file.
        file: PathBuf,
        /// Its format (default: from the name, `.json`, or a first `{`; else CSV).
        #[arg(long, value_enum)]
        format: Option<inventory::FileFormat>,
        /// When the export was taken (RFC 3339), when the file does not say.
        #[arg(long, value_parser = parse_time)]
        taken_at: Option<chrono::DateTime<chrono::Utc>>,
        /// The export lists the whole catalogue: discontinue the items it does not list.
        #[arg(long)]
        discontinue_missing: bool,
        /// Items per write transaction (pushes wait at most one chunk).
        #[arg(long, default_value_t = inventory::ImportOptions::default().chunk_size,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
        chunk_size: usize,
        #[command(flatten)]
        db: DbArg,
    },
    /// Write the parts used on orders for the business system, recorded on the server
    /// in [--since, --until): time, order, technician, SKU, quantity, location.
    Export {
        /// The start of the window (RFC 3339): the `until` of the previous export.
        #[arg(long, value_parser = parse_time)]
        since: chrono::DateTime<chrono::Utc>,
        /// The end of the window (excluded). Default: five minutes ago, so that a push
        /// still being written when the export runs is in the next window, never lost
        /// between two.
        #[arg(long, value_parser = parse_time)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value = "csv")]
        format: inventory::FileFormat,
        #[command(flatten)]
        db: DbArg,
    },
    /// Remove an item from the catalogue: every device drops it on its next pull.
    Discontinue {
        #[arg(long)]
        sku: String,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Make a new signing key for every token from now on. The previous keys still
    /// verify the tokens they signed: nobody is signed out.
    Rotate {
        #[command(flatten)]
        db: DbArg,
    },
    /// Delete the signing keys replaced longer ago than the access-token lifetime: no
    /// valid token needs them (the newest key always stays; nobody is signed out).
    /// Restart running servers afterwards so they forget them too.
    Retire {
        /// The longest access-token lifetime any server of this database was started
        /// with (`serve --access-ttl-secs`), in seconds.
        #[arg(long, default_value_t = 900)]
        access_ttl_secs: u64,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, Subcommand)]
enum EpochAction {
    Reset {
        #[command(flatten)]
        db: DbArg,
    },
}

fn default_db() -> anyhow::Result<String> {
    let dirs = directories::ProjectDirs::from("", "", "outpost-server")
        .context("no data directory for this user; pass --db")?;
    Ok(format!(
        "sqlite:{}",
        dirs.data_dir().join("outpost-server.db").display()
    ))
}

fn db_url(db: &DbArg) -> anyhow::Result<String> {
    match &db.db {
        Some(u) => Ok(u.clone()),
        None => default_db(),
    }
}

/// The documents directory: given, beside a SQLite database, or the platform's.
fn documents_dir(arg: &DocumentsDirArg, db: &DbArg) -> anyhow::Result<PathBuf> {
    if let Some(d) = &arg.documents_dir {
        return Ok(d.clone());
    }
    if let Some(d) = outpost_server::documents::dir_beside(&db_url(db)?) {
        return Ok(d);
    }
    let dirs = directories::ProjectDirs::from("", "", "outpost-server")
        .context("no data directory for this user; pass --documents-dir")?;
    Ok(dirs.data_dir().join("documents"))
}

async fn open(db: &DbArg) -> anyhow::Result<Db> {
    let url = db_url(db)?;
    Db::open(&url)
        .await
        .with_context(|| format!("cannot open the database ({})", redact(&url)))
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outpost_server::arm_crash_points();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OUTPOST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            db,
            tls_cert,
            tls_key,
            access_ttl_secs,
            refresh_grace_secs,
            login_max_failures,
            login_window_secs,
            login_delay_max_secs,
            password_hashers,
            trusted_proxy_header,
            metrics_token,
            header_read_timeout_secs,
            request_timeout_secs,
            max_connections,
            max_in_flight,
            attachment_quota_bytes,
            failed_sync_budget_bytes,
            min_protocol,
            fleet_stale_after_secs,
            documents,
            document_max_bytes,
            document_inline_max_bytes,
            document_budget_bytes,
        } => {
            let storage = outpost_server::documents::Storage {
                dir: documents_dir(&documents, &db)?,
                inline_max: document_inline_max_bytes,
                max_bytes: document_max_bytes,
                device_budget: document_budget_bytes,
            };
            let db = open(&db).await?;
            let cfg = ServerConfig {
                access_ttl: Duration::from_secs(access_ttl_secs.max(1)),
                refresh_grace: Duration::from_secs(refresh_grace_secs),
                login_max_failures: login_max_failures.max(1),
                login_window: Duration::from_secs(login_window_secs.max(1)),
                login_delay_max: Duration::from_secs(login_delay_max_secs.max(1)),
                password_hashers: password_hashers
                    .unwrap_or(ServerConfig::default().password_hashers)
                    .max(1),
                trusted_proxy_header: trusted_proxy_header
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty()),
                metrics_token: metrics_token.filter(|t| !t.trim().is_empty()),
                header_read_timeout: Duration::from_secs(header_read_timeout_secs.max(1)),
                request_timeout: Duration::from_secs(request_timeout_secs.max(1)),
                max_connections: max_connections.max(1),
                max_in_flight: max_in_flight.max(1),
                attachment_quota_bytes,
                failed_sync_budget_bytes,
                min_protocol,
                fleet_stale_after: Duration::from_secs(fleet_stale_after_secs),
                documents: storage,
                clock: outpost_server::clock::serving_clock(),
                ..ServerConfig::default()
            };
            let state = outpost_server::state(db, cfg).await?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => None,
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            let mut running = outpost_server::spawn(listener, state, tls)?;
            tracing::info!(addr = %running.addr, "outpost-server listening on {scheme}://{}", running.addr);
            let stop = running.shutdown_sender();
            tokio::select! {
                _ = shutdown_signal() => {
                    tracing::info!("shutting down: finishing in-flight requests");
                    if let Some(tx) = stop {
                        let _ = tx.send(());
                    }
                    running.wait().await?;
                }
            }
        }
        Command::Documents { action } => documents_command(action).await?,
        Command::Seed { demo, items, db } => {
            if !demo {
                bail!("only --demo seeding exists");
            }
            let db = open(&db).await?;
            let report = seed::seed_demo_with(&db, &ServerConfig::default(), items).await?;
            println!(
                "seeded: {} users, {} work orders, {} inventory items added (password for demo users: {})",
                report.users_added,
                report.orders_added,
                report.items_added,
                seed::DEMO_PASSWORD
            );
        }
        Command::User { action } => match action {
            UserAction::Add {
                username,
                role,
                password_stdin,
                db,
            } => {
                let role: Role = role.parse().map_err(anyhow::Error::msg)?;
                let password = password_from_stdin(password_stdin)?;
                let db = open(&db).await?;
                if outpost_server::add_user(
                    &db,
                    &ServerConfig::default(),
                    &username,
                    role,
                    &password,
                )
                .await?
                {
                    println!("added {username} ({})", role.as_str());
                } else {
                    bail!("a user named {username} already exists");
                }
            }
            UserAction::ResetPassword {
                username,
                password_stdin,
                db,
            } => {
                let password = password_from_stdin(password_stdin)?;
                let db = open(&db).await?;
                if !outpost_server::reset_password(
                    &db,
                    &ServerConfig::default(),
                    &username,
                    &password,
                )
                .await?
                {
                    bail!("no user named {username}");
                }
                println!("new password for {username}; all their sessions ended");
            }
            UserAction::Disable { username, db } => {
                let db = open(&db).await?;
                let u = username.clone();
                if !db
                    .write(move |sql| repo::set_user_disabled(sql, &u, true))
                    .await?
                {
                    bail!("no user named {username}");
                }
                println!("disabled {username}: their tokens no longer work");
            }
            UserAction::Enable { username, db } => {
                let db = open(&db).await?;
                let u = username.clone();
                if !db
                    .write(move |sql| repo::set_user_disabled(sql, &u, false))
                    .await?
                {
                    bail!("no user named {username}");
                }
                println!("enabled {username}");
            }
        },
        Command::Device {
            action: DeviceAction::Revoke { device_id, db },
        } => {
            let db = open(&db).await?;
            let now_us = SystemClock.now().timestamp_micros();
            let n = db
                .write(move |sql| repo::revoke_device(sql, device_id, None, now_us))
                .await?;
            println!("revoked device {device_id} ({n} sign-ins); it must sign in again");
        }
        Command::Inventory {
            action: InventoryAction::Discontinue { sku, db },
        } => {
            let db = open(&db).await?;
            let now_us = SystemClock.now().timestamp_micros();
            let s = sku.clone();
            if !db
                .write(move |sql| repo::discontinue_item(sql, &s, now_us))
                .await?
            {
                bail!("no inventory item with SKU {sku}");
            }
            println!("discontinued {sku}: devices drop it on their next sync");
        }
        Command::Inventory {
            action:
                InventoryAction::Import {
                    file,
                    format,
                    taken_at,
                    discontinue_missing,
                    chunk_size,
                    db,
                },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let format = format.unwrap_or_else(|| {
                inventory::FileFormat::guess(&file.display().to_string(), &text)
            });
            let export = match format {
                inventory::FileFormat::Csv => inventory::parse_csv(&text, taken_at),
                inventory::FileFormat::Json => inventory::parse_json(&text, taken_at),
            }
            .with_context(|| format!("{} was not imported", file.display()))?;
            let (taken, count) = (export.taken_at, export.items.len());
            let db = open(&db).await?;
            let opts = inventory::ImportOptions {
                chunk_size,
                discontinue_missing,
            };
            let r = inventory::import(&db, &SystemClock, export, opts)
                .await
                .with_context(|| format!("{} was not imported", file.display()))?;
            println!(
                "imported {count} items as of {}: {} added, {} changed, {} unchanged, {} discontinued (in {} chunks)",
                taken.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.added,
                r.changed,
                r.unchanged,
                r.discontinued,
                r.chunks
            );
        }
        Command::Inventory {
            action:
                InventoryAction::Export {
                    since,
                    until,
                    format,
                    db,
                },
        } => {
            let until = until.unwrap_or_else(|| SystemClock.now() - inventory::EXPORT_SETTLE);
            if until < since {
                bail!("--until is before --since: nothing to export");
            }
            let db = open(&db).await?;
            let (s, u) = (since.timestamp_micros(), until.timestamp_micros());
            let rows = db.read(move |sql| inventory::parts_used(sql, s, u)).await?;
            let mut out = std::io::stdout().lock();
            inventory::write_parts(&mut out, format, since, until, &rows)?;
            eprintln!(
                "{} parts lines recorded from {} until {}",
                rows.len(),
                since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                until.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            );
        }
        Command::Epoch {
            action: EpochAction::Reset { db },
        } => {
            let db = open(&db).await?;
            let epoch = db.write(repo::reset_epoch).await?;
            println!("new epoch {epoch}: every device will re-prime on its next pull");
        }
        Command::Keys {
            action: KeysAction::Rotate { db },
        } => {
            let db = open(&db).await?;
            let now_us = SystemClock.now().timestamp_micros();
            let kid = db
                .write(move |sql| outpost_server::auth::rotate_signing_key(sql, now_us))
                .await?;
            println!(
                "new signing key {kid}: new tokens are signed with it; earlier ones still work"
            );
        }
        Command::Keys {
            action:
                KeysAction::Retire {
                    access_ttl_secs,
                    db,
                },
        } => {
            let db = open(&db).await?;
            let now_us = SystemClock.now().timestamp_micros();
            let ttl = Duration::from_secs(access_ttl_secs);
            let n = db
                .write(move |sql| outpost_server::auth::retire_signing_keys(sql, now_us, ttl))
                .await?;
            println!(
                "retired {n} signing keys replaced more than {access_ttl_secs} s ago (every \
                 token they signed has expired); restart running servers to drop them there too"
            );
        }
        Command::Prune {
            keep_days,
            upload_keep_days,
            db,
        } => {
            if keep_days < outpost_server::OFFLINE_DAYS_SUPPORTED {
                eprintln!(
                    "note: devices away longer than {keep_days} days will re-prime when they come back \
                     (their unsynced work is kept and sent); devices may be away {} days",
                    outpost_server::OFFLINE_DAYS_SUPPORTED
                );
            }
            let db = open(&db).await?;
            let now = SystemClock.now();
            let before = now - chrono::Duration::days(keep_days as i64);
            let uploads_before = now - chrono::Duration::days(upload_keep_days as i64);
            let (changes, idem, uploads) = db
                .write(move |sql| {
                    let (changes, idem) = repo::prune(sql, before.timestamp_micros())?;
                    let uploads = repo::prune_uploads(sql, uploads_before.timestamp_micros())?;
                    Ok((changes, idem, uploads))
                })
                .await?;
            println!("pruned {changes} change-log rows and {idem} idempotency records older than {keep_days} days, and {uploads} unfinished uploads older than {upload_keep_days} days");
        }
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&outpost_server::openapi::document()?)?
            );
        }
    }
    Ok(())
}

/// A time on the command line: RFC 3339 with a zone.
fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("{s:?} is not a time: use RFC 3339, e.g. 2026-12-07T06:00:00Z"))
}

/// The password given on stdin (`--password-stdin`), without its line ending.
fn password_from_stdin(password_stdin: bool) -> anyhow::Result<String> {
    if !password_stdin {
        bail!("give the password on stdin with --password-stdin");
    }
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from stdin")?;
    Ok(password.trim_end_matches(['\n', '\r']).to_owned())
}

/// `outpost-server documents …`.
async fn documents_command(action: DocumentsAction) -> anyhow::Result<()> {
    use outpost_server::documents::{self as docs, Link, LinkKind};
    match action {
        DocumentsAction::Add {
            file,
            model,
            asset,
            order,
            name,
            media_type,
            replace,
            max_bytes,
            inline_max_bytes,
            documents,
            db,
        } => {
            let storage = docs::Storage {
                dir: documents_dir(&documents, &db)?,
                inline_max: inline_max_bytes,
                max_bytes,
                device_budget: None,
            };
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .context("the file has no name; pass --name")?,
            };
            let mut links: Vec<Link> = Vec::new();
            for (kind, targets) in [
                (LinkKind::Model, model),
                (LinkKind::Asset, asset),
                (LinkKind::Order, order.iter().map(Uuid::to_string).collect()),
            ] {
                links.extend(targets.into_iter().map(|target| Link {
                    kind,
                    target: target.trim().to_owned(),
                }));
            }
            if links.is_empty() {
                bail!("link the document to something: --model, --asset or --order");
            }
            let new = docs::NewDocument {
                media_type: media_type.unwrap_or_else(|| docs::media_type_of(&name).to_owned()),
                name,
                links,
                replace,
            };
            let db = open(&db).await?;
            let reader = std::fs::File::open(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let received = {
                let storage = storage.clone();
                tokio::task::spawn_blocking(move || storage.receive(reader)).await??
            };
            let now_us = SystemClock.now().timestamp_micros();
            let (added, size, sha256) = docs::store(&db, &storage, new, received, now_us).await?;
            if added.replaced {
                println!(
                    "version {} of document {} ({size} bytes, sha256 {sha256}); devices replace the old one on their next sync",
                    added.version, added.id
                );
            } else {
                println!(
                    "added document {} ({size} bytes, sha256 {sha256})",
                    added.id
                );
            }
        }
        DocumentsAction::List { all, json, db } => {
            let db = open(&db).await?;
            let rows = db.read(move |sql| docs::list(sql, all)).await?;
            for d in rows {
                if json {
                    println!("{}", serde_json::to_string(&d)?);
                    continue;
                }
                let links: Vec<String> = d
                    .links
                    .iter()
                    .map(|l| format!("{}:{}", l.kind.as_str(), l.target))
                    .collect();
                println!(
                    "{}  v{}  {}  {}  {} bytes  {}{}",
                    d.id,
                    d.version,
                    d.name,
                    d.media_type,
                    d.size,
                    links.join(","),
                    if d.removed { "  (removed)" } else { "" }
                );
            }
        }
        DocumentsAction::Remove { id, documents, db } => {
            let dir = documents_dir(&documents, &db)?;
            let db = open(&db).await?;
            let Some(orphan) = db.write(move |sql| docs::remove(sql, id)).await? else {
                bail!("no document {id}");
            };
            if let Some(sha) = orphan {
                let storage = docs::Storage {
                    dir,
                    ..docs::Storage::default()
                };
                storage.delete_file(&sha);
            }
            println!("removed document {id}: devices delete it on their next sync");
        }
    }
    Ok(())
}
