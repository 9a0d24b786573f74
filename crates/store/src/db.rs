//! Opening, creating, checking and re-keying the SQLCipher database.
//!
//! The order of statements at open matters: `PRAGMA key` first; then one read that
//! proves the key; then the schema version is checked before anything is written, so a
//! wrong key, a damaged file or a database from a newer program is refused with the
//! file untouched. Only then are WAL, `synchronous=FULL` and the migrations applied.
//!
//! Every open store holds a shared lock on the data directory (`lock.rs`); a re-key
//! needs it exclusive, writes a re-encrypted copy beside the database, checks it on a
//! fresh connection and renames it over the old file (see [`Store::rekey_with`]).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use zeroize::Zeroizing;

use crate::durable::{create_dir_all_durable, sync_dir};
use crate::error::{OpenError, StoreError};
use crate::key::{random_bytes, DbKey};
use crate::lock::OpenLock;
use crate::MIGRATIONS;

pub const DB_FILE_NAME: &str = "outpost.db";
const ATTACHMENTS_DIR: &str = "attachments";
const PLAINTEXT_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Page cache per connection, in KiB. SQLCipher decrypts every page it reads, so a cache
/// that holds the working set matters far more than with plain SQLite (measured in
/// PLATFORM-NOTES: random reads 54k/s with the default 2 MiB, 242k/s with 64 MiB).
/// 32 MiB holds the orders and the hot part of a 50,000-item inventory.
pub const PAGE_CACHE_KIB: i64 = 32 * 1024;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a database's pages are encrypted and authenticated. SQLCipher must be told before
/// the first read, and nothing readable in the file says which layout it has, so
/// [`Store::open`] tries the current layout first and falls back to the earlier one.
/// Both keep SQLCipher's AES-256-CBC and a per-page HMAC; only the HMAC's hash differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CipherLayout {
    /// HMAC-SHA256 per page, with a 256-bit tag. Every page a transaction writes is
    /// encrypted and authenticated again; on CPUs with SHA-256 instructions (current
    /// x86 and ARM laptops; SHA-512 has none there) the HMAC of a 4 KiB page costs about
    /// half of what HMAC-SHA512 does, a fifth of SQLCipher's cost per page
    /// (docs/benchmarks.md, "Local write path"). New databases use this layout, and so
    /// did those written by the page-crypto provider this crate once had (the format
    /// is SQLCipher's either way: `tests/page_crypto.rs` opens one).
    HmacSha256,
    /// SQLCipher 4's defaults (HMAC-SHA512): databases created before the change keep
    /// it and keep opening.
    Sqlcipher4Defaults,
}

impl CipherLayout {
    /// Pragmas to run right after `PRAGMA key`, before the first read.
    fn pragmas(self) -> &'static str {
        match self {
            CipherLayout::HmacSha256 => "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;",
            CipherLayout::Sqlcipher4Defaults => "",
        }
    }

    /// The same for an attached database (`schema` is one of this file's constants).
    fn pragmas_for(self, schema: &str) -> &'static str {
        match (self, schema) {
            (CipherLayout::HmacSha256, "rekeyed") => {
                "PRAGMA rekeyed.cipher_hmac_algorithm = HMAC_SHA256;"
            }
            _ => "",
        }
    }
}

/// The layout new databases are created with.
const NEW_DATABASE_LAYOUT: CipherLayout = CipherLayout::HmacSha256;

/// Open a connection to `path`, SQLite and SQLCipher fully set up first.
///
/// `sqlite3_initialize` marks SQLite initialised, and lets the threads waiting for it
/// go, before it runs SQLCipher's own set-up (`SQLITE_EXTRA_INIT`: its private heap,
/// the OpenSSL provider, random masks); a connection keyed in that window fails with
/// "An error occurred with PRAGMA key or rekey". rusqlite does not serialise first
/// opens, so the process's first one runs alone here, on an in-memory connection whose
/// opening returns only once that set-up has ended, while other threads wait for it.
fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    static SET_UP: std::sync::Once = std::sync::Once::new();
    SET_UP.call_once(|| {
        // If this fails, the open below fails the same way and reports it.
        let _ = Connection::open_in_memory();
    });
    let conn = Connection::open_with_flags(path, flags)?;
    // Every literal statement is prepared once per connection and kept (`prepare_cached`
    // throughout the store): one user action runs a handful, a sync pass the same few
    // thousands of times. Room for all of them, so none is parsed twice.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Prepared statements kept per connection: more than the store's literal statements.
const STATEMENT_CACHE: usize = 256;

/// The suffix of the re-encrypted copy a re-key writes beside the database
/// (`outpost.db.rekey`): removed at open (a re-key that never swapped it in left it).
pub const REKEY_COPY_SUFFIX: &str = ".rekey";

/// Stages of a re-key ([`Store::rekey`]), reported as each is reached (to tests:
/// `Store::rekey_with`). Stopping after any of them (as a crash would) leaves a
/// database that opens with the old key (before `Swapped`) or the new one (from
/// `Swapped` on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyStage {
    /// A re-encrypted copy is written beside the database; the database is untouched.
    Exported,
    /// The copy opened on a fresh connection with the new key and passed the checks.
    Verified,
    /// The copy replaced the database (renamed over it, directory synced, the old
    /// WAL and shared-memory files removed). The store is reopened after this.
    Swapped,
}

/// Where a data directory keeps the files this crate owns.
#[derive(Debug, Clone)]
pub struct StorePaths {
    pub db: PathBuf,
    pub attachments: PathBuf,
    /// Cached technical documents, encrypted (`documents.rs`).
    pub documents: PathBuf,
}

impl StorePaths {
    pub fn in_dir(dir: &Path) -> StorePaths {
        StorePaths {
            db: dir.join(DB_FILE_NAME),
            attachments: dir.join(ATTACHMENTS_DIR),
            documents: dir.join("documents"),
        }
    }
}

/// An open, migrated, encrypted store.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) paths: StorePaths,
    pub(crate) attachment_key: Zeroizing<[u8; 32]>,
    /// The key of attachment files' names (`attachments.rs`), kept in the database.
    pub(crate) name_key: Zeroizing<[u8; 32]>,
    encrypted: bool,
    /// The key the database is under (none for the benchmark's plaintext store): a
    /// re-key that fails after closing the connection opens it again with this one.
    key: Option<DbKey>,
    /// The shared open lock, held for as long as the store lives (`lock.rs`).
    lock: OpenLock,
    /// The tab counts and assignee names of the last list page, kept until the data
    /// changes (`list.rs`): a keystroke of search does not count all orders again.
    pub(crate) list_cache: std::cell::RefCell<Option<crate::list::ListCache>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("db", &self.paths.db)
            .field("encrypted", &self.encrypted)
            .finish_non_exhaustive()
    }
}

/// A short value that tells whether a key is the one a database was made with, without
/// revealing the key: HMAC-SHA256 of a fixed label, truncated to 128 bits. `core` keeps
/// it beside the database so that a wrong key and a damaged file give different errors.
pub fn key_check_value(key: &DbKey) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.bytes());
    let tag = ring::hmac::sign(&k, b"outpost database key check v1");
    hex::encode(&tag.as_ref()[..16])
}

/// What `outpost db check` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    pub encrypted: bool,
    pub cipher_version: String,
    /// The page HMAC (`HMAC_SHA256` for databases made now, `HMAC_SHA512` for earlier
    /// ones); empty for a plaintext database.
    pub cipher_hmac: String,
    /// Who computes the page crypto: SQLCipher's own provider (`openssl`); empty for a
    /// plaintext database.
    pub cipher_provider: String,
    pub cipher_integrity: Vec<String>,
    pub integrity: Vec<String>,
    pub schema_version: i64,
    pub journal_mode: String,
    pub synchronous: String,
    pub sound: bool,
}

fn migrations() -> Migrations<'static> {
    Migrations::new(
        MIGRATIONS
            .iter()
            .map(|(name, sql)| match *name {
                // Fills the new search column of existing orders in Rust (Unicode case).
                "0004_order_list.sql" => M::up_with_hook(sql, crate::list::fill_search_text),
                // Fills the stock levels of the items already stored from their bodies.
                "0008_inventory_stock.sql" => {
                    M::up_with_hook(sql, crate::inventory::fill_inventory_stock)
                }
                _ => M::up(sql),
            })
            .collect(),
    )
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

/// Map the first error from a freshly keyed connection.
fn classify_first_read(e: rusqlite::Error) -> OpenError {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => OpenError::CannotDecrypt,
        Some(ErrorCode::DatabaseCorrupt) => OpenError::Corrupt(e.to_string()),
        _ => OpenError::Store(e.into()),
    }
}

fn open_to_store_error(e: OpenError) -> StoreError {
    match e {
        OpenError::Store(s) => s,
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// `db` with `suffix` appended to its file name (`outpost.db-wal`, `outpost.db.rekey`).
fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    db.with_file_name(name)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

/// Remove what a re-key that never swapped its copy in left beside the database. Only
/// called with the open lock held, so no re-key is running.
fn remove_rekey_leftovers(db: &Path) -> Result<(), StoreError> {
    let copy = sibling(db, REKEY_COPY_SUFFIX);
    for suffix in ["", "-journal", "-wal", "-shm"] {
        remove_if_present(&sibling(&copy, suffix))?;
    }
    Ok(())
}

/// Refuse a re-key when the file system cannot hold a second copy of the database:
/// the copy is at most the database and its WAL (the export skips free pages), plus a
/// tenth and 1 MiB for the copy's journal and the file system's own blocks.
fn check_space_for_copy(db: &Path, dir: &Path) -> Result<(), StoreError> {
    let used = file_len(db) + file_len(&sibling(db, "-wal"));
    let needed = used + used / 10 + (1 << 20);
    let available = fs4::available_space(dir).map_err(|e| io_err(dir, e))?;
    if available < needed {
        return Err(StoreError::NotEnoughSpace {
            needed,
            available,
            dir: dir.display().to_string(),
        });
    }
    Ok(())
}

fn table_counts(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let names: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        rows
    };
    names
        .into_iter()
        .map(|name| {
            let n: i64 = conn.query_row(
                &format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\"")),
                [],
                |r| r.get(0),
            )?;
            Ok((name, n))
        })
        .collect()
}

/// Open the re-encrypted copy on a fresh connection with the new key and check it
/// against what the database holds; then sync it to disk.
fn verify_copy(
    copy: &Path,
    key: &DbKey,
    expected: &[(String, i64)],
    version: i64,
) -> Result<(), StoreError> {
    let failed = |what: String| {
        StoreError::Migration(format!(
            "the re-encrypted copy failed its check ({what}); the database was not changed"
        ))
    };
    let conn = Store::open_keyed(copy, key, NEW_DATABASE_LAYOUT)
        .map_err(|e| failed(format!("it does not open with the new key: {e}")))?;
    let cipher: Vec<String> = {
        let mut stmt = conn.prepare_cached("PRAGMA cipher_integrity_check")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        rows
    };
    if !cipher.is_empty() {
        return Err(failed(cipher.join("; ")));
    }
    let integrity: String = conn
        .prepare_cached("PRAGMA integrity_check")?
        .query_row([], |r| r.get(0))?;
    if integrity != "ok" {
        return Err(failed(integrity));
    }
    let found_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found_version != version {
        return Err(failed(format!(
            "schema version {found_version}, expected {version}"
        )));
    }
    let found = table_counts(&conn)?;
    if found != expected {
        return Err(failed(format!(
            "row counts {found:?}, expected {expected:?}"
        )));
    }
    conn.close().map_err(|(_, e)| StoreError::from(e))?;
    std::fs::File::open(copy)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(copy, e))?;
    Ok(())
}

impl Store {
    /// Create a new encrypted database in `dir` (made if missing). Refuses if a
    /// database file is already there: a store is never created over another.
    pub fn create(dir: &Path, key: &DbKey) -> Result<Store, OpenError> {
        Self::create_inner(dir, Some(key))
    }

    /// A store on plain SQLite with the same code path, for the benchmark that measures
    /// what encryption costs and the test that a plaintext database is refused. Test
    /// builds only.
    #[cfg(feature = "test-support")]
    pub fn create_plaintext_for_benchmark(dir: &Path) -> Result<Store, OpenError> {
        Self::create_inner(dir, None)
    }

    fn create_inner(dir: &Path, key: Option<&DbKey>) -> Result<Store, OpenError> {
        let paths = StorePaths::in_dir(dir);
        create_dir_all_durable(dir).map_err(|e| io_err(dir, e))?;
        if paths.db.exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists", paths.db.display()),
            ))
            .into());
        }
        let lock = OpenLock::shared(dir)?;
        remove_rekey_leftovers(&paths.db)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = open_connection(&paths.db, flags)?;
        if let Some(key) = key {
            Self::apply_key(&conn, key, NEW_DATABASE_LAYOUT)?;
        }
        Self::finish_open(conn, paths, key.cloned(), lock)
    }

    /// Open an existing encrypted database with `key`.
    pub fn open(dir: &Path, key: &DbKey) -> Result<Store, OpenError> {
        let paths = StorePaths::in_dir(dir);
        if !paths.db.is_file() {
            return Err(OpenError::NotFound(paths.db.display().to_string()));
        }
        // Before the first read: a re-key in another process may be replacing the file.
        let lock = OpenLock::shared(dir)?;
        remove_rekey_leftovers(&paths.db)?;
        let mut header = [0u8; 16];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(&paths.db).map_err(|e| io_err(&paths.db, e))?;
            let n = f.read(&mut header).map_err(|e| io_err(&paths.db, e))?;
            if n == 0 {
                return Err(OpenError::Corrupt("the file is empty".into()));
            }
            if n < 16 {
                return Err(OpenError::Corrupt("the file is truncated".into()));
            }
        }
        if &header == PLAINTEXT_HEADER {
            return Err(OpenError::NotEncrypted);
        }
        // A database in the earlier layout does not decrypt with the current one, just as
        // with a wrong key: then try the earlier layout. A wrong key fails both.
        let conn = match Self::open_keyed(&paths.db, key, CipherLayout::HmacSha256) {
            Err(OpenError::CannotDecrypt) => {
                Self::open_keyed(&paths.db, key, CipherLayout::Sqlcipher4Defaults)?
            }
            other => other?,
        };
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(classify_first_read)?;
        if found > MIGRATIONS.len() as i64 {
            return Err(OpenError::NewerSchema {
                found,
                supported: MIGRATIONS.len(),
            });
        }
        Self::finish_open(conn, paths, Some(key.clone()), lock)
    }

    /// `PRAGMA key` and the layout's settings, first on a connection.
    fn apply_key(conn: &Connection, key: &DbKey, layout: CipherLayout) -> Result<(), StoreError> {
        conn.execute_batch(&key.pragma("key"))?;
        conn.execute_batch(layout.pragmas())?;
        Ok(())
    }

    /// Open `db` with `key` in `layout` and prove both with one read; nothing is written.
    fn open_keyed(db: &Path, key: &DbKey, layout: CipherLayout) -> Result<Connection, OpenError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = open_connection(db, flags)?;
        Self::apply_key(&conn, key, layout)?;
        Self::quiet_cipher_log(&conn);
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(classify_first_read)?;
        Ok(conn)
    }

    fn quiet_cipher_log(conn: &Connection) {
        // SQLCipher logs "hmac check failed" on a wrong key; the caller reports it
        // better. Older SQLCipher builds do not know this pragma: ignoring is right.
        let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE;");
    }

    /// The connection's settings, after the key is proven: WAL, `synchronous=FULL`,
    /// foreign keys, the page cache.
    fn configure(conn: &Connection, encrypted: bool) -> Result<(), OpenError> {
        if encrypted {
            Self::quiet_cipher_log(conn);
        }
        conn.busy_timeout(BUSY_TIMEOUT).map_err(StoreError::from)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(classify_first_read)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Migration(format!(
                "could not switch to WAL (journal mode is {mode})"
            ))
            .into());
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -{PAGE_CACHE_KIB};"
        ))
        .map_err(StoreError::from)?;
        Ok(())
    }

    fn finish_open(
        mut conn: Connection,
        paths: StorePaths,
        key: Option<DbKey>,
        lock: OpenLock,
    ) -> Result<Store, OpenError> {
        let encrypted = key.is_some();
        Self::configure(&conn, encrypted)?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        // The list's index, if a first snapshot dropped it and is no longer under way
        // (`sync/priming.rs`); nothing to do otherwise.
        if !crate::sync::priming_under_way(&conn)? {
            conn.execute_batch(crate::list::LIST_INDEX)
                .map_err(StoreError::from)?;
        }
        create_dir_all_durable(&paths.attachments).map_err(|e| io_err(&paths.attachments, e))?;
        let attachment_key = Self::load_or_make_key(&conn, "attachment_key")?;
        let name_key = Self::load_or_make_key(&conn, "attachment_name_key")?;
        let mut store = Store {
            conn,
            paths,
            attachment_key,
            name_key,
            encrypted,
            key,
            lock,
            list_cache: std::cell::RefCell::new(None),
        };
        store.rename_attachment_files()?;
        Ok(store)
    }

    /// A 256-bit key kept (hex) in the `kv` table under `name`, made on first use. The
    /// database is encrypted, so these keys are as safe as the data itself.
    fn load_or_make_key(conn: &Connection, name: &str) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        let existing: Option<Zeroizing<String>> = conn
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
            .query_row([name], |r| r.get::<_, String>(0))
            .optional()?
            .map(Zeroizing::new);
        let mut key = Zeroizing::new([0u8; 32]);
        match existing {
            Some(hex_key) => {
                hex::decode_to_slice(hex_key.as_bytes(), key.as_mut())
                    .map_err(|_| StoreError::Corrupt(format!("the {name} is damaged")))?;
            }
            None => {
                *key = random_bytes::<32>()?;
                let hex_key = Zeroizing::new(hex::encode(key.as_ref()));
                conn.prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2)")?
                    .execute([name, hex_key.as_str()])?;
            }
        }
        Ok(key)
    }

    pub fn paths(&self) -> &StorePaths {
        &self.paths
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// A pragma's current value as text (for checks and the benchmark).
    pub fn pragma_text(&self, name: &str) -> Result<String, StoreError> {
        let value: rusqlite::types::Value =
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
        Ok(match value {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            rusqlite::types::Value::Real(f) => f.to_string(),
            rusqlite::types::Value::Null => String::new(),
            rusqlite::types::Value::Blob(b) => hex::encode(b),
        })
    }

    /// Full integrity check: SQLCipher's per-page HMAC check (after a checkpoint) and
    /// SQLite's own.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        // Settings first: a damaged page can leave the connection unusable after the
        // integrity checks.
        let (cipher_version, cipher_hmac, cipher_provider) = if self.encrypted {
            (
                self.pragma_text("cipher_version")?,
                self.pragma_text("cipher_hmac_algorithm")?,
                self.pragma_text("cipher_provider")?,
            )
        } else {
            (String::new(), String::new(), String::new())
        };
        let synchronous = match self.pragma_text("synchronous")?.as_str() {
            "0" => "OFF",
            "1" => "NORMAL",
            "2" => "FULL",
            "3" => "EXTRA",
            _ => "unknown",
        }
        .to_string();
        let journal_mode = self.pragma_text("journal_mode")?;
        let schema_version = self.schema_version()?;
        // A damaged page can make the check statements fail rather than report: that
        // failure is itself a finding, not an error of the check.
        let collect = |sql: &str| -> Vec<String> {
            let run = || -> Result<Vec<String>, rusqlite::Error> {
                let mut stmt = self.conn.prepare(sql)?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            };
            run().unwrap_or_else(|e| vec![format!("{sql} failed: {e}")])
        };
        // cipher_integrity_check reads the database file alone, never the WAL. After a
        // power cut in the middle of a checkpoint the file can hold pages not (or half)
        // written that the WAL still holds whole, and SQLite rewrites them at the next
        // checkpoint: a sound database, which the page check would call damaged
        // (issue 17 item 3). Checkpoint first, so that the file holds what SQLite reads.
        let checkpointed = self
            .conn
            .prepare_cached("PRAGMA wal_checkpoint(FULL)")?
            .query_row([], |r| r.get::<_, i64>(0))
            .is_ok_and(|busy| busy == 0);
        let mut cipher_integrity = if self.encrypted {
            collect("PRAGMA cipher_integrity_check")
        } else {
            Vec::new()
        };
        if !checkpointed && !cipher_integrity.is_empty() {
            cipher_integrity.push(
                "(the WAL could not be checkpointed first, another connection was busy: \
                 some pages listed may be ones the WAL still holds whole; close Outpost \
                 and check again)"
                    .into(),
            );
        }
        let integrity = collect("PRAGMA integrity_check");
        let sound = cipher_integrity.is_empty()
            && integrity.len() == 1
            && integrity[0] == "ok"
            && self.encrypted;
        Ok(CheckReport {
            encrypted: self.encrypted,
            cipher_version,
            cipher_hmac,
            cipher_provider,
            cipher_integrity,
            integrity,
            schema_version,
            journal_mode,
            synchronous,
            sound,
        })
    }

    /// Re-encrypt the whole database under `new_key` without ever rewriting the file in
    /// place. The caller stages the new key before calling this and promotes it after:
    /// at every point the database on disk opens with the old key or the new one.
    ///
    /// 1. The open lock becomes exclusive: refused ("close Outpost first") while any
    ///    other store, in this process or another, has the database open.
    /// 2. Refused when the disk lacks room for a second copy (the message says how much).
    /// 3. `sqlcipher_export` writes a re-encrypted copy beside the database
    ///    (`outpost.db.rekey`, in the current page layout) in one transaction.
    /// 4. The copy is opened on a fresh connection with the new key and checked:
    ///    `cipher_integrity_check`, `integrity_check`, the schema version and every
    ///    table's row count against the database; then synced to disk.
    /// 5. The database is checkpointed and its connection closed (its WAL is then gone
    ///    or empty, so nothing of the old file can be applied to the new one).
    /// 6. The copy is renamed over the database, the directory synced, stale `-wal`
    ///    and `-shm` files removed; the store opens the new file with the new key.
    ///
    /// A failure before the swap removes the copy and keeps the store open on the old
    /// key. (Tests can stop after each [`RekeyStage`]: `Store::rekey_with`.)
    pub fn rekey(&mut self, new_key: &DbKey) -> Result<(), StoreError> {
        self.rekey_in_stages(new_key, &mut |_| ControlFlow::Continue(()))
    }

    /// [`Store::rekey`], telling `on_stage` of each [`RekeyStage`]: `Break` ends the
    /// procedure there and leaves the files as they are, as a crash would (the store
    /// is unusable if it stopped after `Swapped`). Test builds only.
    #[cfg(feature = "test-support")]
    pub fn rekey_with(
        &mut self,
        new_key: &DbKey,
        on_stage: &mut dyn FnMut(RekeyStage) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.rekey_in_stages(new_key, on_stage)
    }

    fn rekey_in_stages(
        &mut self,
        new_key: &DbKey,
        on_stage: &mut dyn FnMut(RekeyStage) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let Some(old_key) = self.key.clone() else {
            return Err(StoreError::Migration(
                "a plaintext database cannot be re-keyed".into(),
            ));
        };
        let db = self.paths.db.clone();
        let dir = db
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| StoreError::Decode("the database path has no directory".into()))?;
        let _exclusive = self.lock.exclusive(&dir)?;
        remove_rekey_leftovers(&db)?;
        check_space_for_copy(&db, &dir)?;
        let copy = sibling(&db, REKEY_COPY_SUFFIX);
        let expected = self.table_counts()?;
        let version = self.schema_version()?;

        if let Err(e) = self.export_to(&copy, new_key, version) {
            let _ = remove_rekey_leftovers(&db);
            return Err(e);
        }
        if on_stage(RekeyStage::Exported).is_break() {
            return Ok(());
        }
        if let Err(e) = verify_copy(&copy, new_key, &expected, version) {
            let _ = remove_rekey_leftovers(&db);
            return Err(e);
        }
        if on_stage(RekeyStage::Verified).is_break() {
            return Ok(());
        }

        // Close the only connection: checkpointed, so its WAL is empty or removed.
        let closed = self.close_connection();
        let wal_left = file_len(&sibling(&db, "-wal"));
        if let Err(e) = closed.and_then(|()| {
            if wal_left > 0 {
                Err(StoreError::Migration(format!(
                    "the database's WAL still holds {wal_left} bytes after the last connection closed"
                )))
            } else {
                Ok(())
            }
        }) {
            let _ = remove_rekey_leftovers(&db);
            self.reopen(&old_key)?;
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&copy, &db) {
            let _ = remove_rekey_leftovers(&db);
            self.reopen(&old_key)?;
            return Err(io_err(&db, e));
        }
        // From here on the database is under the new key, whatever happens.
        self.key = Some(new_key.clone());
        sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
        for stale in ["-wal", "-shm"] {
            remove_if_present(&sibling(&db, stale))?;
        }
        sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
        if on_stage(RekeyStage::Swapped).is_break() {
            return Ok(());
        }
        self.reopen(new_key)
    }

    /// Every table's row count (SQLite's own tables left out), by name.
    fn table_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        table_counts(&self.conn)
    }

    /// Write a re-encrypted copy of the database to `copy`, in one transaction.
    fn export_to(&self, copy: &Path, new_key: &DbKey, version: i64) -> Result<(), StoreError> {
        let copy_name = copy
            .to_str()
            .ok_or_else(|| StoreError::Decode("the data directory's path is not UTF-8".into()))?;
        // The connection was opened without SQLITE_OPEN_CREATE (opening never makes a
        // database), which ATTACH inherits: the copy starts as an empty file, which
        // SQLite takes for a new database.
        std::fs::File::create(copy).map_err(|e| io_err(copy, e))?;
        self.conn
            .prepare_cached("ATTACH DATABASE ?1 AS rekeyed KEY ?2")?
            .execute(rusqlite::params![
                copy_name,
                new_key.raw_key_literal().as_str()
            ])?;
        let export = || -> Result<(), StoreError> {
            self.conn
                .execute_batch(NEW_DATABASE_LAYOUT.pragmas_for("rekeyed"))?;
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let copied = self
                .conn
                .prepare_cached("SELECT sqlcipher_export('rekeyed')")?
                .query_row([], |_| Ok(()))
                .and_then(|()| {
                    self.conn
                        .execute_batch(&format!("PRAGMA rekeyed.user_version = {version};"))
                });
            match copied {
                Ok(()) => Ok(self.conn.execute_batch("COMMIT")?),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(e.into())
                }
            }
        };
        let result = export();
        let detached = self.conn.execute_batch("DETACH DATABASE rekeyed");
        result?;
        detached?;
        Ok(())
    }

    /// Checkpoint the WAL into the database and close the connection; the store keeps
    /// an in-memory placeholder until [`Store::reopen`].
    fn close_connection(&mut self) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("PRAGMA wal_checkpoint(TRUNCATE)")?
            .query_row([], |_| Ok(()))?;
        let placeholder = Connection::open_in_memory()?;
        let conn = std::mem::replace(&mut self.conn, placeholder);
        conn.close().map_err(|(_, e)| StoreError::from(e))
    }

    /// Open the database file again with `key` (after a re-key, or after one failed
    /// with the connection closed).
    fn reopen(&mut self, key: &DbKey) -> Result<(), StoreError> {
        let conn = Self::open_keyed(&self.paths.db, key, NEW_DATABASE_LAYOUT)
            .or_else(|e| match e {
                OpenError::CannotDecrypt => {
                    Self::open_keyed(&self.paths.db, key, CipherLayout::Sqlcipher4Defaults)
                }
                other => Err(other),
            })
            .map_err(open_to_store_error)?;
        Self::configure(&conn, true).map_err(open_to_store_error)?;
        self.conn = conn;
        self.key = Some(key.clone());
        self.list_cache.replace(None);
        Ok(())
    }

    /// Run `f` inside one transaction; everything it wrote is kept only if it returns Ok.
    /// Private to the store: outside it, every write is a typed method.
    pub(crate) fn write<T, E>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &StorePaths) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx, &self.paths)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Run raw SQL in one transaction: for tests that break the database on purpose (a
    /// trigger that fails an insert, a newer schema version). Test builds only.
    #[cfg(feature = "test-support")]
    pub fn execute_batch_for_tests(&mut self, sql: &str) -> Result<(), StoreError> {
        self.write(|tx, _| tx.execute_batch(sql).map_err(StoreError::from))
    }

    /// Read a small setting kept inside the encrypted database.
    pub fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Write a small setting inside the encrypted database.
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute([key, value])?;
        Ok(())
    }

    /// The device id, made once per data directory.
    pub fn device_id(
        &mut self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<uuid::Uuid, StoreError> {
        let existing: Option<String> = self
            .conn
            .prepare_cached("SELECT device_id FROM device WHERE singleton = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        if let Some(id) = existing {
            return uuid::Uuid::parse_str(&id).map_err(|e| StoreError::Decode(e.to_string()));
        }
        let id = uuid::Uuid::new_v4();
        self.conn
            .prepare_cached(
                "INSERT INTO device (singleton, device_id, created_at) VALUES (1, ?1, ?2)",
            )?
            .execute(rusqlite::params![id.to_string(), now.to_rfc3339()])?;
        Ok(id)
    }

    /// The schema as SQL text, for the golden schema test.
    pub fn schema_sql(&self) -> Result<String, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT type, name, sql FROM sqlite_master
             WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
             ORDER BY type, name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "-- {} {}\n{};\n",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows.join("\n"))
    }

    /// Open a connection at an older schema version, for migration tests only.
    #[cfg(any(test, feature = "test-support"))]
    pub fn create_at_version_for_tests(
        dir: &Path,
        key: &DbKey,
        version: usize,
    ) -> Result<Connection, OpenError> {
        let paths = StorePaths::in_dir(dir);
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut conn = open_connection(&paths.db, OpenFlags::default())?;
        Self::apply_key(&conn, key, NEW_DATABASE_LAYOUT)?;
        migrations()
            .to_version(&mut conn, version)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            // The open lock's file holds nothing; opening makes it.
            .filter(|e| e.file_name() != crate::lock::OPEN_LOCK_FILE)
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read"),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// A database as earlier versions made it: SQLCipher 4's default settings.
    fn create_with_sqlcipher4_defaults(dir: &Path, key: &DbKey) {
        let paths = StorePaths::in_dir(dir);
        std::fs::create_dir_all(dir).expect("dir");
        let mut conn = Connection::open(&paths.db).expect("open");
        conn.execute_batch(&key.pragma("key")).expect("key");
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .expect("wal");
        migrations().to_latest(&mut conn).expect("migrate");
        conn.execute(
            "INSERT INTO kv (key, value) VALUES ('made_by', 'an earlier version')",
            [],
        )
        .expect("write");
    }

    #[test]
    fn new_databases_authenticate_pages_with_hmac_sha256() {
        let tmp = tempfile::tempdir().expect("tmp");
        let key = DbKey::generate().expect("key");
        drop(Store::create(tmp.path(), &key).expect("create"));
        let store = Store::open(tmp.path(), &key).expect("reopen");
        let report = store.check().expect("check");
        assert_eq!(report.cipher_hmac, "HMAC_SHA256");
        assert!(report.sound, "{report:?}");
        // The setting is part of the file's format: without it the pages do not verify.
        let conn = Connection::open(&store.paths.db).expect("open");
        conn.execute_batch(&key.pragma("key")).expect("key");
        Store::quiet_cipher_log(&conn);
        let err = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .expect_err("default settings do not read it");
        assert!(matches!(classify_first_read(err), OpenError::CannotDecrypt));
    }

    #[test]
    fn databases_made_with_sqlcipher4_defaults_still_open_and_a_rekey_moves_them_to_the_current_layout(
    ) {
        let tmp = tempfile::tempdir().expect("tmp");
        let key = DbKey::generate().expect("key");
        create_with_sqlcipher4_defaults(tmp.path(), &key);
        {
            let mut store = Store::open(tmp.path(), &key).expect("open earlier layout");
            assert_eq!(
                store.get_setting("made_by").expect("read").as_deref(),
                Some("an earlier version")
            );
            store.set_setting("written", "now").expect("write");
            let report = store.check().expect("check");
            assert_eq!(report.cipher_hmac, "HMAC_SHA512");
            assert!(report.sound, "{report:?}");
        }
        let mut store = Store::open(tmp.path(), &key).expect("reopen");
        assert_eq!(
            store.get_setting("written").expect("read").as_deref(),
            Some("now")
        );
        // A re-key writes a new file, in the current layout; it opens with the new key.
        let new_key = DbKey::generate().expect("key");
        store.rekey(&new_key).expect("rekey");
        assert_eq!(
            store
                .get_setting("written")
                .expect("read after the re-key")
                .as_deref(),
            Some("now")
        );
        drop(store);
        let store = Store::open(tmp.path(), &new_key).expect("open with the new key");
        assert_eq!(store.check().expect("check").cipher_hmac, "HMAC_SHA256");
    }

    #[test]
    fn a_wrong_key_fails_in_both_layouts_and_changes_nothing() {
        for earlier in [false, true] {
            let tmp = tempfile::tempdir().expect("tmp");
            let key = DbKey::generate().expect("key");
            if earlier {
                create_with_sqlcipher4_defaults(tmp.path(), &key);
            } else {
                drop(Store::create(tmp.path(), &key).expect("create"));
            }
            let before = files(tmp.path());
            let wrong = DbKey::generate().expect("key");
            let err = Store::open(tmp.path(), &wrong).expect_err("wrong key");
            assert!(matches!(err, OpenError::CannotDecrypt), "{err}");
            assert_eq!(files(tmp.path()), before, "files unchanged byte for byte");
        }
    }
}
