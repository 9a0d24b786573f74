//! The command line's shape: the clap types (commands, options, help text, the
//! `EXIT CODES` section) and the small parsers for option values such as `SKU=QTY`.
//!
//! Only what the user may type and how it reads back; running a command lives in
//! `cmd`, and printing in `print`. Help text is part of the public interface: changing
//! a doc comment here changes `outpost --help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use outpost_core::FieldChoice;
use outpost_protocol::{Priority, Quantity, Status};

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
  9  another Outpost process is syncing this data directory, or has it open
     during a re-key (close it first)

ENVIRONMENT:
  OUTPOST_DATA_DIR       data directory (default: the platform's data directory)
  OUTPOST_DB_KEY         64 hex digits; when set, the only key tried (automation)
  OUTPOST_DB_PASSPHRASE  opens a passphrase-protected database
  OUTPOST_SERVER_URL     default server for `outpost login` (--server wins)";

#[derive(Parser, Debug)]
#[command(name = "outpost", version, about = "Outpost headless client: work orders on an encrypted local store", after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Data directory [default: the platform data directory]
    #[arg(long, global = true, env = "OUTPOST_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
    /// Technical documents (manuals) of the orders, kept on this device for offline use
    #[command(subcommand)]
    Documents(DocumentsCmd),
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
    /// Every technician's device as the server saw it, worst first: last push and
    /// pull, unsent changes, failed syncs, conflicts, app version (dispatchers only)
    Fleet {
        /// Warn about devices not seen for longer than this (e.g. 24h, 2d, 90m)
        /// [default: the server's, 24h]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
        stale_after: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum FailedCmd {
    /// Failed syncs on this device, oldest first; for a dispatcher, the fleet's open
    /// ones, one item per order
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
pub(crate) enum ConflictsCmd {
    /// Conflicts on this device, open first; for a dispatcher, the fleet's open ones,
    /// one item per order with each field side by side
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
pub(crate) enum OrdersCmd {
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
    /// Assign an order to a technician (dispatchers only)
    Assign {
        id: String,
        /// The technician's user name
        #[arg(long, value_name = "USER")]
        to: String,
    },
    /// Cancel an order; the reason is added to its notes (dispatchers only)
    Cancel {
        id: String,
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Reopen a cancelled order: back to scheduled (dispatchers only)
    Reopen { id: String },
}

#[derive(Args, Debug)]
pub(crate) struct EditArgs {
    pub(crate) id: String,
    /// Append a note entry; repeat for more
    #[arg(long)]
    pub(crate) note: Vec<String>,
    #[arg(long, value_parser = parse_status)]
    pub(crate) status: Option<Status>,
    #[arg(long, value_parser = parse_priority)]
    pub(crate) priority: Option<Priority>,
    /// Mark a checklist item done; repeat for more
    #[arg(long, value_name = "ITEM_ID")]
    pub(crate) check: Vec<String>,
    /// Mark a checklist item not done
    #[arg(long, value_name = "ITEM_ID")]
    pub(crate) uncheck: Vec<String>,
    /// A part used, as SKU=QUANTITY; repeat for more
    #[arg(long, value_name = "SKU=QTY", value_parser = parse_part)]
    pub(crate) part: Vec<(String, Quantity)>,
    #[arg(long)]
    pub(crate) title: Option<String>,
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// Add a required checklist step, as ITEM_ID=LABEL (a dispatcher's edit)
    #[arg(long, value_name = "ITEM_ID=LABEL", value_parser = parse_step)]
    pub(crate) add_step: Vec<(String, String)>,
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
pub(crate) enum InventoryCmd {
    /// Find items by SKU or name
    Search {
        query: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum DocumentsCmd {
    /// An order's documents (by id or number): available offline, or not yet
    List { order: String },
    /// Write a document kept on this device to a file (decrypted); works offline
    Export {
        id: String,
        #[arg(long, value_name = "FILE")]
        output: std::path::PathBuf,
    },
    /// Show the documents budget, or set it (e.g. 500MB, 2GB, 300000000; "default"
    /// goes back to the administrator's or 500 MB). The least recently needed documents
    /// go first, never those of an order due today.
    Budget {
        #[arg(value_name = "SIZE")]
        size: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum OutboxCmd {
    /// Mutations not yet acknowledged by the server, oldest first
    List,
}

#[derive(Subcommand, Debug)]
pub(crate) enum DbCmd {
    /// Check integrity and encryption (exit 0 when sound)
    Check,
    /// Re-encrypt under a new random key kept in the OS credential store
    Rekey,
    /// Change the passphrase of a passphrase-protected database: the new one is read
    /// from stdin (the database opens with OUTPOST_DB_PASSPHRASE); only the key file
    /// is rewritten
    Passphrase,
}

#[derive(Subcommand, Debug)]
pub(crate) enum DemoCmd {
    /// Load demo orders and inventory, as if pulled from a server
    Load,
}

/// `90s`, `45m`, `24h`, `2d` (a bare number is hours) as seconds.
pub(crate) fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "h"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 24h, 2d or 90m"))?;
    let per = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("{other:?} is not a unit: use s, m, h or d")),
    };
    match n.checked_mul(per) {
        Some(0) => Err("the duration must be longer than zero".into()),
        Some(secs) => Ok(secs),
        None => Err(format!("{s:?} is too long")),
    }
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

#[cfg(test)]
mod tests {
    use super::parse_duration_secs;

    #[test]
    fn a_duration_reads_with_its_unit_and_a_bare_number_is_hours() {
        assert_eq!(parse_duration_secs("24h"), Ok(86_400));
        assert_eq!(parse_duration_secs("2d"), Ok(172_800));
        assert_eq!(parse_duration_secs("90m"), Ok(5_400));
        assert_eq!(parse_duration_secs("30s"), Ok(30));
        assert_eq!(parse_duration_secs("12"), Ok(43_200));
        assert!(parse_duration_secs("0h").is_err());
        assert!(parse_duration_secs("2 weeks").is_err());
        assert!(parse_duration_secs("h").is_err());
    }
}
