//! `outpost`: the headless Outpost client.
//!
//! A thin layer over `outpost-core`: parse arguments, call one use case, print the
//! result for a person (tables) or for a program (`--json` on stdout). Errors go to
//! stderr in plain words, with an exit code per kind of problem (see `EXIT CODES`).
//! This interface is public: keep it stable.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use outpost_core::{
    connectivity_name, ClientOptions, Completion, CoreError, EngineConfig, Evidence, FieldChoice,
    NewOrder, OpenOptions, OrderEdit, OrderRow, Outpost, PassOptions, Progress,
};
use outpost_protocol::{Priority, Quantity, Status, WorkOrder};
use zeroize::Zeroizing;

/// `println!` that stops quietly when stdout is closed (`outpost orders list | head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

const EXIT_CODES: &str = "EXIT CODES:
  0  success
  1  unexpected error (file system, database)
  2  bad command line
  3  invalid input (field errors are listed)
  4  key problem (wrong, missing, or no credential store)
  5  database damaged, not encrypted, or from a newer Outpost
  6  not found (no data directory, no such order)
  7  the sync server cannot be reached, or the sync failed (the reason is printed)
  8  sign-in needed (not signed in, wrong password, device revoked, user disabled)
  9  another Outpost process is syncing this data directory

ENVIRONMENT:
  OUTPOST_DATA_DIR       data directory (default: the platform's data directory)
  OUTPOST_DB_KEY         64 hex digits; when set, the only key tried (automation)
  OUTPOST_DB_PASSPHRASE  opens a passphrase-protected database
  OUTPOST_SERVER_URL     default server for `outpost login` (--server wins)";

#[derive(Parser, Debug)]
#[command(name = "outpost", version, about = "Outpost headless client: work orders on an encrypted local store", after_help = EXIT_CODES)]
struct Cli {
    /// Data directory [default: the platform data directory]
    #[arg(long, global = true, env = "OUTPOST_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the encrypted database and its key in the data directory
    Init {
        /// Protect the database with a passphrase read from stdin instead of a random key in the OS credential store
        #[arg(long)]
        passphrase_stdin: bool,
        /// The name written as the author of notes
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Work orders
    #[command(subcommand)]
    Orders(OrdersCmd),
    /// The inventory cache
    #[command(subcommand)]
    Inventory(InventoryCmd),
    /// Changes waiting for the server
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// The local database
    #[command(subcommand)]
    Db(DbCmd),
    /// Demo data for trying Outpost without a server
    #[command(subcommand)]
    Demo(DemoCmd),
    /// Sign in to a sync server (initialises the data directory if needed)
    Login {
        /// The sync server, e.g. https://sync.example.com
        #[arg(long, env = "OUTPOST_SERVER_URL", value_name = "URL")]
        server: String,
        #[arg(long, value_name = "U")]
        username: String,
        /// Read the password from stdin
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Push the outbox and pull changes now (one full pass, ignoring any backoff)
    Sync {
        /// Keep syncing in the background until stopped, printing status changes
        #[arg(long)]
        watch: bool,
    },
    /// Connectivity, pending changes, failures, conflicts and the last sync
    Status,
    /// Changes the server refused: review, retry or discard them
    #[command(subcommand)]
    Failed(FailedCmd),
    /// Changes the server kept for a person to decide
    #[command(subcommand)]
    Conflicts(ConflictsCmd),
}

#[derive(Subcommand, Debug)]
enum FailedCmd {
    /// Failed syncs on this device, oldest first
    List,
    /// One failed sync with the server's reason and the full payload
    Show { id: String },
    /// Send the change again (fix the order first, e.g. with `orders edit`)
    Retry { id: String },
    /// Drop the change; the order goes back to the server's state
    Discard {
        id: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ConflictsCmd {
    /// Conflicts on this device, open first
    List,
    /// Both versions, field by field
    Show { id: String },
    /// Decide: each --field NAME=mine|theirs|VALUE; fields not named keep the server's value
    Resolve {
        id: String,
        #[arg(long = "field", value_name = "NAME=CHOICE", value_parser = parse_choice)]
        fields: Vec<(String, FieldChoice)>,
        /// For a held completion or a push after a reassignment: apply the device's whole change
        #[arg(long, conflicts_with = "fields")]
        accept_mine: bool,
    },
}

fn parse_choice(s: &str) -> Result<(String, FieldChoice), String> {
    let (field, choice) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=mine|theirs|VALUE"))?;
    Ok((field.trim().to_owned(), choice.parse()?))
}

#[derive(Subcommand, Debug)]
enum OrdersCmd {
    /// List the work orders on this device
    List,
    /// Show one order (by id, id prefix or number)
    Show { id: String },
    /// Create an order (a follow-up found in the field)
    Create {
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        customer: String,
        #[arg(long, default_value = "")]
        address: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, value_parser = parse_priority)]
        priority: Option<Priority>,
    },
    /// Edit an order: every option given is saved together, as one action
    Edit(EditArgs),
    /// Complete an order with the customer's signature
    Complete {
        id: String,
        /// The customer's signature as a PNG file
        #[arg(long, value_name = "PNG")]
        signature: PathBuf,
        /// Who signed
        #[arg(long, value_name = "NAME")]
        signer: String,
        /// A photo (JPEG or PNG); repeat for more
        #[arg(long, value_name = "FILE")]
        photo: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct EditArgs {
    id: String,
    /// Append a note entry; repeat for more
    #[arg(long)]
    note: Vec<String>,
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
    #[arg(long, value_parser = parse_priority)]
    priority: Option<Priority>,
    /// Mark a checklist item done; repeat for more
    #[arg(long, value_name = "ITEM_ID")]
    check: Vec<String>,
    /// Mark a checklist item not done
    #[arg(long, value_name = "ITEM_ID")]
    uncheck: Vec<String>,
    /// A part used, as SKU=QUANTITY; repeat for more
    #[arg(long, value_name = "SKU=QTY", value_parser = parse_part)]
    part: Vec<(String, Quantity)>,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Add a required checklist step, as ITEM_ID=LABEL (a dispatcher's edit)
    #[arg(long, value_name = "ITEM_ID=LABEL", value_parser = parse_step)]
    add_step: Vec<(String, String)>,
}

fn parse_step(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((id, label)) if !id.trim().is_empty() && !label.trim().is_empty() => {
            Ok((id.trim().to_owned(), label.trim().to_owned()))
        }
        _ => Err(format!(
            "{s:?} is not ITEM_ID=LABEL (e.g. meter=\"Photograph the meter\")"
        )),
    }
}

#[derive(Subcommand, Debug)]
enum InventoryCmd {
    /// Find items by SKU or name
    Search {
        query: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
enum OutboxCmd {
    /// Mutations not yet acknowledged by the server, oldest first
    List,
}

#[derive(Subcommand, Debug)]
enum DbCmd {
    /// Check integrity and encryption (exit 0 when sound)
    Check,
    /// Re-encrypt under a new random key kept in the OS credential store
    Rekey,
}

#[derive(Subcommand, Debug)]
enum DemoCmd {
    /// Load demo orders and inventory, as if pulled from a server
    Load,
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse()
}

fn parse_status(s: &str) -> Result<Status, String> {
    s.parse()
}

fn parse_part(s: &str) -> Result<(String, Quantity), String> {
    let (sku, qty) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not SKU=QUANTITY (for example FLT-100=2)"))?;
    let sku = sku.trim();
    if sku.is_empty() {
        return Err("the SKU is empty".into());
    }
    Ok((sku.to_owned(), qty.parse()?))
}

fn default_data_dir() -> Result<PathBuf, CoreError> {
    directories::ProjectDirs::from("", "", "Outpost")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| {
            CoreError::BadInput(
                "no home directory to put the data in: give --data-dir or set OUTPOST_DATA_DIR"
                    .into(),
            )
        })
}

fn read_file(path: &PathBuf) -> Result<Evidence, CoreError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CoreError::BadInput(format!("cannot read {}: {e}", path.display())))?;
    Ok(Evidence {
        bytes,
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CoreError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CoreError::Io(format!("cannot encode output: {e}")))?;
    outln!("{text}");
    Ok(())
}

fn number(o: &WorkOrder) -> String {
    o.number
        .map(|n| format!("#{n}"))
        .unwrap_or_else(|| "pending".into())
}

fn print_order(row: &OrderRow) {
    let o = &row.order;
    outln!("{} {}  ({})", number(o), o.title, o.id);
    outln!("  status:    {}", o.status);
    outln!("  priority:  {}", o.priority.as_str());
    outln!("  sync:      {}", row.sync_state.as_str());
    if let Some(a) = &o.assignee {
        outln!("  assignee:  {a}");
    }
    if !o.customer.name.is_empty() {
        outln!("  customer:  {} {}", o.customer.name, o.customer.phone);
    }
    if !o.site.address.is_empty() {
        outln!("  site:      {}", o.site.address);
    }
    if !o.equipment.asset_tag.is_empty() {
        outln!(
            "  equipment: {} {} {}",
            o.equipment.asset_tag,
            o.equipment.model,
            o.equipment.serial
        );
    }
    if let Some(w) = &o.scheduled {
        outln!(
            "  scheduled: {} – {} UTC ({})",
            w.start.format("%Y-%m-%d %H:%M"),
            w.end.format("%H:%M"),
            w.time_zone
        );
    }
    if !o.description.is_empty() {
        outln!("  {}", o.description);
    }
    if !o.checklist.is_empty() {
        outln!("  checklist:");
        for c in &o.checklist {
            let mark = if c.done { "x" } else { " " };
            let req = if c.required { " (required)" } else { "" };
            outln!("    [{mark}] {}: {}{req}", c.id, c.label);
        }
    }
    if !o.parts_used.is_empty() {
        outln!("  parts used:");
        for p in &o.parts_used {
            outln!("    {} × {}", p.sku, p.quantity);
        }
    }
    if !o.notes.is_empty() {
        outln!("  notes:");
        for n in &o.notes {
            outln!(
                "    {} {}: {}",
                n.at.format("%Y-%m-%d %H:%M"),
                n.author,
                n.text
            );
        }
    }
    if let Some(s) = &o.signature {
        outln!("  signed by: {}", s.signer);
    }
    if !o.photos.is_empty() {
        outln!("  photos:    {}", o.photos.len());
    }
    if let Some(t) = o.completed_at {
        outln!("  completed: {}", t.format("%Y-%m-%d %H:%M UTC"));
    }
}

fn open(dir: &PathBuf) -> Result<Outpost, CoreError> {
    Outpost::open(OpenOptions::new(dir))
}

fn run(cli: Cli) -> Result<(), CoreError> {
    let dir = match cli.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let json = cli.json;
    match cli.command {
        Command::Init {
            passphrase_stdin,
            user,
        } => {
            let pass = if passphrase_stdin {
                let mut s = Zeroizing::new(String::new());
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| CoreError::BadInput(format!("cannot read the passphrase: {e}")))?;
                let trimmed = Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_owned());
                Some(trimmed)
            } else {
                None
            };
            let mut app = Outpost::init(OpenOptions::new(&dir), pass.as_ref().map(|p| p.as_str()))?;
            if let Some(u) = user {
                app.set_username(&u)?;
            }
            if json {
                print_json(&serde_json::json!({
                    "data_dir": dir.display().to_string(),
                    "device_id": app.device_id(),
                    "key": app.key_info(),
                }))?;
            } else {
                outln!(
                    "Initialised {} (encrypted; key: {}).",
                    dir.display(),
                    app.key_info().key_source.describe()
                );
            }
        }
        Command::Orders(cmd) => {
            let mut app = open(&dir)?;
            match cmd {
                OrdersCmd::List => {
                    let rows = app.orders()?;
                    if json {
                        print_json(&rows)?;
                    } else if rows.is_empty() {
                        outln!("No work orders on this device.");
                    } else {
                        outln!(
                            "{:<8} {:<11} {:<8} {:<8} {:<16} TITLE",
                            "NUMBER",
                            "STATUS",
                            "PRIORITY",
                            "SYNC",
                            "SCHEDULED"
                        );
                        for r in rows {
                            let o = &r.order;
                            let when = o
                                .scheduled
                                .as_ref()
                                .map(|w| w.start.format("%Y-%m-%d %H:%M").to_string())
                                .unwrap_or_else(|| "-".into());
                            outln!(
                                "{:<8} {:<11} {:<8} {:<8} {:<16} {}  [{}]",
                                number(o),
                                o.status.as_str(),
                                o.priority.as_str(),
                                r.sync_state.as_str(),
                                when,
                                o.title,
                                o.id
                            );
                        }
                    }
                }
                OrdersCmd::Show { id } => {
                    let row = app.order(&id)?;
                    if json {
                        print_json(&row)?;
                    } else {
                        print_order(&row);
                    }
                }
                OrdersCmd::Create {
                    title,
                    customer,
                    address,
                    description,
                    priority,
                } => {
                    let row = app.create_order(NewOrder {
                        title,
                        description,
                        customer,
                        address,
                        priority,
                    })?;
                    if json {
                        print_json(&row)?;
                    } else {
                        outln!("Created (saved on this device):");
                        print_order(&row);
                    }
                }
                OrdersCmd::Edit(a) => {
                    let row = app.edit_order(
                        &a.id,
                        OrderEdit {
                            title: a.title,
                            description: a.description,
                            notes: a.note,
                            status: a.status,
                            priority: a.priority,
                            check: a.check,
                            uncheck: a.uncheck,
                            parts: a.part,
                            add_checklist: a
                                .add_step
                                .into_iter()
                                .map(|(id, label)| outpost_protocol::ChecklistItem {
                                    id,
                                    label,
                                    required: true,
                                    done: false,
                                })
                                .collect(),
                        },
                    )?;
                    if json {
                        print_json(&row)?;
                    } else {
                        outln!("Saved on this device:");
                        print_order(&row);
                    }
                }
                OrdersCmd::Complete {
                    id,
                    signature,
                    signer,
                    photo,
                } => {
                    let signature_png = read_file(&signature)?;
                    let photos = photo.iter().map(read_file).collect::<Result<Vec<_>, _>>()?;
                    let row = app.complete_order(
                        &id,
                        Completion {
                            signature_png,
                            signer,
                            photos,
                        },
                    )?;
                    if json {
                        print_json(&row)?;
                    } else {
                        outln!("Completed (saved on this device):");
                        print_order(&row);
                    }
                }
            }
        }
        Command::Inventory(InventoryCmd::Search { query, limit }) => {
            let app = open(&dir)?;
            let items = app.search_inventory(&query, limit)?;
            if json {
                print_json(&items)?;
            } else if items.is_empty() {
                outln!("No inventory items match {query:?}.");
            } else {
                outln!("{:<12} {:>10} {:<6} NAME", "SKU", "STOCK", "UNIT");
                for i in items {
                    outln!(
                        "{:<12} {:>10} {:<6} {}",
                        i.sku,
                        i.total_stock().to_string(),
                        i.unit,
                        i.name
                    );
                }
            }
        }
        Command::Outbox(OutboxCmd::List) => {
            let app = open(&dir)?;
            let rows = app.outbox()?;
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                outln!("The outbox is empty: the server has everything.");
            } else {
                outln!(
                    "{:<5} {:<9} {:<8} {:<8} {:>4} {:>3}  ORDER",
                    "SEQ",
                    "KIND",
                    "STATE",
                    "BASE",
                    "OPS",
                    "TRY"
                );
                for r in rows {
                    outln!(
                        "{:<5} {:<9} {:<8} {:<8} {:>4} {:>3}  {}",
                        r.seq,
                        r.kind,
                        format!("{:?}", r.state).to_lowercase(),
                        r.base_version,
                        r.mutation.ops.len(),
                        r.attempts,
                        r.entity_id
                    );
                }
            }
        }
        Command::Db(DbCmd::Check) => {
            let app = open(&dir)?;
            let report = app.check()?;
            if json {
                print_json(&report)?;
            } else {
                outln!("data directory: {}", report.data_dir);
                outln!(
                    "encrypted:      {} (SQLCipher {}, page HMAC {}, crypto {})",
                    if report.store.encrypted { "yes" } else { "NO" },
                    report.store.cipher_version,
                    report.store.cipher_hmac,
                    report.store.cipher_provider
                );
                outln!("key:            {}", report.key.key_source.describe());
                outln!("schema:         {}", report.store.schema_version);
                outln!(
                    "journal:        {}, synchronous={}",
                    report.store.journal_mode,
                    report.store.synchronous
                );
                outln!(
                    "integrity:      {}",
                    if report.store.sound {
                        "ok"
                    } else {
                        "PROBLEMS FOUND"
                    }
                );
                for line in report
                    .store
                    .cipher_integrity
                    .iter()
                    .chain(report.store.integrity.iter().filter(|l| *l != "ok"))
                {
                    outln!("  {line}");
                }
            }
            if !report.store.sound {
                return Err(CoreError::Corrupt(
                    "the database check found problems (listed above)".into(),
                ));
            }
        }
        Command::Db(DbCmd::Rekey) => {
            let mut app = open(&dir)?;
            app.rekey()?;
            if json {
                print_json(&serde_json::json!({"rekeyed": true}))?;
            } else {
                outln!("Re-encrypted under a new key, kept in the OS credential store.");
            }
        }
        Command::Login {
            server,
            username,
            password_stdin: _,
        } => login(&dir, &server, &username, json)?,
        Command::Sync { watch: true } => watch(&dir, json)?,
        Command::Sync { watch: false } => sync(&dir, json)?,
        Command::Status => status(&dir, json)?,
        Command::Failed(cmd) => failed(&dir, cmd, json)?,
        Command::Conflicts(cmd) => conflicts(&dir, cmd, json)?,
        Command::Demo(DemoCmd::Load) => {
            let mut app = open(&dir)?;
            let n = app.load_demo_data()?;
            if json {
                print_json(&serde_json::json!({"orders": n}))?;
            } else {
                outln!("Loaded {n} demo orders and a demo inventory.");
            }
        }
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, CoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CoreError::Io(format!("cannot start the async runtime: {e}")))
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {msg:<24} [{bar:30}] {pos}/{len}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

fn login(dir: &PathBuf, server: &str, username: &str, json: bool) -> Result<(), CoreError> {
    let mut password = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| CoreError::BadInput(format!("cannot read the password: {e}")))?;
    let password = Zeroizing::new(password.trim_end_matches(['\n', '\r']).to_owned());
    let mut app = if Outpost::is_initialized(dir) {
        open(dir)?
    } else {
        Outpost::init(OpenOptions::new(dir), None)?
    };
    let info =
        runtime()?.block_on(app.login(server, username, &password, &ClientOptions::default()))?;
    if json {
        print_json(&info)?;
    } else {
        outln!(
            "Signed in to {} as {} ({}).",
            info.server_url,
            info.username,
            info.role.as_str()
        );
        if info.clock_skew_secs.abs() > 300 {
            outln!(
                "Warning: this computer's clock is {} minutes {} the server's; times on your records may look wrong.",
                info.clock_skew_secs.abs() / 60,
                if info.clock_skew_secs > 0 { "ahead of" } else { "behind" }
            );
        }
    }
    Ok(())
}

fn sync(dir: &PathBuf, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    let bar = if json { None } else { progress_bar() };
    let bar2 = bar.clone();
    let mut on_progress = move |p: Progress| {
        if let Some(b) = &bar2 {
            match p {
                Progress::Pushing { done, total } => {
                    b.set_message("pushing changes");
                    b.set_length(total as u64);
                    b.set_position(done as u64);
                }
                Progress::Uploading { done, total } => {
                    b.set_message("uploading photos");
                    b.set_length(total as u64);
                    b.set_position(done as u64);
                }
                Progress::Priming { phase, done, total } => {
                    b.set_message(format!("downloading {phase:?}").to_lowercase());
                    b.set_length(total);
                    b.set_position(done);
                }
                Progress::Pulling { rows } => {
                    b.set_message("pulling changes");
                    b.set_length(rows);
                    b.set_position(rows);
                }
            }
        }
    };
    let pass = PassOptions {
        ignore_backoff: true,
        ..PassOptions::default()
    };
    let result =
        runtime()?.block_on(app.sync_once(&ClientOptions::default(), pass, &mut on_progress));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = result?;
    if json {
        print_json(&report)?;
    } else {
        outln!(
            "Synced: {} change(s) sent, {} acknowledged, {} row(s) received.",
            report.pushed,
            report.acknowledged,
            report.pulled_rows
        );
        if report.remaining.failed > 0 || report.remaining.conflicts > 0 {
            outln!(
                "Needs a person: {} failed sync(s), {} conflict(s).",
                report.remaining.failed,
                report.remaining.conflicts
            );
        }
        if report.remaining.pending > 0 {
            outln!("Still waiting: {} change(s).", report.remaining.pending);
        }
    }
    // Reached the server; the outbox is drained except what waits for a person.
    if report.remaining.pending > 0 {
        return Err(CoreError::Sync(outpost_core::SyncError::BadAnswer(
            format!(
                "{} change(s) could not be sent yet; they stay queued",
                report.remaining.pending
            ),
        )));
    }
    Ok(())
}

fn watch(dir: &PathBuf, json: bool) -> Result<(), CoreError> {
    let app = open(dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CoreError::Io(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let engine = app.start_engine(EngineConfig::default())?;
        let mut rx = engine.subscribe();
        let mut last = String::new();
        loop {
            let line = {
                let s = rx.borrow_and_update().clone();
                if json {
                    serde_json::to_string(&s).unwrap_or_default()
                } else {
                    format!(
                        "{}: {} pending, {} failed, {} conflicts{}",
                        connectivity_name(&s.connectivity),
                        s.pending,
                        s.failed,
                        s.conflicts,
                        s.last_error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )
                }
            };
            if line != last {
                outln!("{line}");
                last = line;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { break; },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        engine.stop(std::time::Duration::from_secs(10)).await;
        Ok::<(), CoreError>(())
    })
}

fn status(dir: &PathBuf, json: bool) -> Result<(), CoreError> {
    let app = open(dir)?;
    let opts = ClientOptions {
        connect_timeout: std::time::Duration::from_secs(3),
        ..ClientOptions::default()
    };
    let s = runtime()?.block_on(app.status(&opts))?;
    if json {
        print_json(&s)?;
    } else {
        outln!("connectivity: {}", s.connectivity);
        if let (Some(u), Some(server)) = (&s.signed_in_as, &s.server) {
            outln!("signed in:    {u} at {server}");
        }
        outln!("pending:      {}", s.pending);
        outln!("failed:       {}", s.failed);
        outln!("conflicts:    {}", s.conflicts);
        outln!(
            "last sync:    {}",
            s.last_sync
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "never".into())
        );
        if let Some(r) = &s.reason {
            outln!("reason:       {r}");
        }
    }
    Ok(())
}

fn failed(dir: &PathBuf, cmd: FailedCmd, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    match cmd {
        FailedCmd::List => {
            let items = app.failed_syncs()?;
            if json {
                print_json(&items)?;
            } else if items.is_empty() {
                outln!("No failed syncs.");
            } else {
                for f in items {
                    outln!(
                        "{}  {} of {}: {}",
                        f.id,
                        f.kind,
                        f.order_title.as_deref().unwrap_or(&f.order_id),
                        f.message
                    );
                }
            }
        }
        FailedCmd::Show { id } => {
            let f = app.failed_sync(&id)?;
            if json {
                print_json(&f)?;
            } else {
                outln!("failed sync {}", f.id);
                outln!(
                    "  order:   {} {}",
                    f.order_id,
                    f.order_title.unwrap_or_default()
                );
                outln!("  change:  {}", f.kind);
                outln!("  reason:  {} ({})", f.message, f.code);
                for e in &f.field_errors {
                    outln!("    {}: {}", e.field, e.message);
                }
                outln!("  payload:");
                let text = serde_json::to_string_pretty(&f.mutation).unwrap_or_default();
                for line in text.lines() {
                    outln!("    {line}");
                }
            }
        }
        FailedCmd::Retry { id } => {
            let row = app.retry_failed(&id, Vec::new())?;
            if json {
                print_json(&row)?;
            } else {
                outln!("Queued again; it travels with the next sync.");
            }
        }
        FailedCmd::Discard { id, yes } => {
            let f = app.failed_sync(&id)?;
            if !yes {
                use std::io::IsTerminal;
                if !std::io::stdin().is_terminal() {
                    return Err(CoreError::BadInput(
                        "discarding drops the change for good: confirm with --yes".into(),
                    ));
                }
                eprint!(
                    "Discard the {} of {}? It is dropped for good. [y/N] ",
                    f.kind,
                    f.order_title.as_deref().unwrap_or(&f.order_id)
                );
                let mut answer = String::new();
                let _ = std::io::stdin().read_line(&mut answer);
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err(CoreError::BadInput("not discarded".into()));
                }
            }
            app.discard_failed(&f.id)?;
            if json {
                print_json(&serde_json::json!({"discarded": f.id}))?;
            } else {
                outln!("Discarded; the order shows the server's state again.");
            }
        }
    }
    Ok(())
}

fn conflicts(dir: &PathBuf, cmd: ConflictsCmd, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    match cmd {
        ConflictsCmd::List => {
            let items = app.conflicts()?;
            if json {
                print_json(&items)?;
            } else if items.is_empty() {
                outln!("No conflicts.");
            } else {
                for c in items {
                    let what = c
                        .record
                        .as_ref()
                        .map(|r| {
                            format!(
                                "{:?} on order {} ({})",
                                r.kind,
                                r.order_number
                                    .map(|n| format!("#{n}"))
                                    .unwrap_or_else(|| r.order_id.to_string()),
                                r.fields
                                    .iter()
                                    .map(|f| f.field.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                        .unwrap_or_else(|| "details arrive with the next sync".into());
                    let state = if c.resolving {
                        "resolving"
                    } else {
                        c.status.as_str()
                    };
                    outln!("{}  {:<9} {}", c.id, state, what);
                }
            }
        }
        ConflictsCmd::Show { id } => {
            let c = app.conflict(&id)?;
            if json {
                print_json(&c)?;
            } else {
                outln!(
                    "conflict {} ({})",
                    c.id,
                    if c.resolving {
                        "resolving"
                    } else {
                        c.status.as_str()
                    }
                );
                if let Some(r) = &c.record {
                    outln!(
                        "  order:  {} by {} on {}",
                        r.order_id,
                        r.username,
                        r.created_at.format("%Y-%m-%d %H:%M")
                    );
                    outln!("  kind:   {:?}", r.kind);
                    outln!(
                        "  {:<24} {:<28} {:<28} {}",
                        "FIELD",
                        "BASE",
                        "SERVER (theirs)",
                        "DEVICE (mine)"
                    );
                    let show = |s: &Option<outpost_protocol::SetOp>| {
                        s.as_ref()
                            .and_then(|s| serde_json::to_value(s).ok())
                            .map(|v| v["value"].to_string())
                            .unwrap_or_else(|| "-".into())
                    };
                    for f in &r.fields {
                        outln!(
                            "  {:<24} {:<28} {:<28} {}",
                            f.field,
                            show(&f.base),
                            show(&f.server),
                            show(&Some(f.device.clone()))
                        );
                    }
                    if let Some(res) = &r.resolution {
                        outln!(
                            "  resolved: {:?} by {} at {}",
                            res.outcome,
                            res.decided_by,
                            res.decided_at
                        );
                    }
                } else {
                    outln!("  details arrive with the next sync");
                }
            }
        }
        ConflictsCmd::Resolve {
            id,
            fields,
            accept_mine,
        } => {
            if fields.is_empty() && !accept_mine {
                return Err(CoreError::BadInput(
                    "say what stands: --field NAME=mine|theirs|VALUE (repeat), or --accept-mine"
                        .into(),
                ));
            }
            let c = app.resolve_conflict(&id, &fields, accept_mine)?;
            if json {
                print_json(&c)?;
            } else {
                outln!("Resolution saved; it travels with the next sync.");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
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
