//! The SQLite backend: the embedded default (one file, no setup).
//!
//! One writer connection behind a mutex (SQLite allows one writer anyway; holding it
//! in-process avoids busy retries) and a small pool of reader connections, which WAL
//! lets run beside the writer on a consistent snapshot. `synchronous=FULL`: an
//! acknowledged push survives power loss. Migrations (the shared files of
//! `migrations/server/`, see [`super::migrations`]) are applied with rusqlite_migration
//! at open, which records the version in `user_version`; a database from a newer server
//! is refused.
//!
//! WAL checkpoints run off the write path: SQLite's automatic checkpoint would copy the
//! WAL back into the database (and sync it) inside whichever commit crosses the
//! threshold, so every few pushes one waited for it. Instead a background thread with
//! its own connection runs a `PASSIVE` checkpoint (which never blocks the writer or the
//! readers) once the writer has committed about [`CHECKPOINT_AFTER_BYTES`] since the
//! last wake-up. The writer's own automatic checkpoint stays on at a much larger size
//! ([`WRITER_AUTOCHECKPOINT_PAGES`]) as a backstop, so the WAL stays bounded even if the
//! background thread falls behind. Durability is unchanged: a commit is durable when its
//! WAL frames are synced (`synchronous=FULL`), whoever checkpoints them later.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

use super::migrations::{Dialect, MIGRATIONS};
use super::{Backend, Row, Sql, TxFn, V};
use crate::error::Error;

/// Readers kept open for reuse.
const READERS_MAX: usize = 8;

/// Bytes the writer commits (counted as the bytes of the values it binds, which is
/// what grows the WAL) before the background checkpointer is woken: about SQLite's
/// default of 1,000 pages.
pub const CHECKPOINT_AFTER_BYTES: usize = 4 << 20;

/// The writer's own automatic checkpoint (pages of WAL), a backstop only: the
/// background checkpointer normally keeps the WAL far below this.
pub const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_384;

pub struct SqliteBackend {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    checkpointer: Checkpointer,
}

struct Writer {
    conn: Connection,
    /// Bytes committed since the checkpointer was last woken.
    since_checkpoint: usize,
}

/// The background checkpoint thread: woken through a one-slot channel (wake-ups while
/// it works coalesce into one more run); it ends when the sender is dropped.
struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, Error> {
        let conn = open_conn(path)?;
        let (wake, woken) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run_checkpoints(&conn, &woken))
            .map_err(|e| Error::store(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Ask for a checkpoint; never blocks (one already asked for covers this one).
    fn wake(&self) {
        if let Some(wake) = &self.wake {
            match wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {
                    tracing::warn!("the SQLite checkpoint thread has stopped");
                }
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel ends the thread after its current checkpoint.
        self.wake.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the SQLite checkpoint thread panicked");
            }
        }
    }
}

/// Copy committed WAL frames into the database file, once per wake-up. `PASSIVE`: as
/// many frames as no reader still needs, without waiting for anyone.
fn run_checkpoints(conn: &Connection, woken: &Receiver<()>) {
    while woken.recv().is_ok() {
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match done {
            Ok((busy, wal_frames, copied)) => {
                tracing::trace!(busy, wal_frames, copied, "WAL checkpoint");
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

impl rusqlite::ToSql for V {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            V::I(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            V::T(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            V::B(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            V::I(None) | V::T(None) | V::B(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

fn configure(conn: &Connection) -> Result<(), Error> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn open_conn(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    configure(&conn)?;
    Ok(conn)
}

/// Make the names in `dir` durable (Unix: fsync the directory; elsewhere the file
/// system does it itself).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        std::fs::File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

/// `create_dir_all`, durably: each directory it creates is synced into its parent (a
/// new name is durable only once its directory is synced; without it a power cut can
/// take the database's directory, issue 17 item 3). The device's store has the same
/// rule (outpost_store::create_dir_all_durable); the server may not depend on it.
fn create_dir_all_durable(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(d) = next.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d);
        next = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        sync_dir(
            d.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
    }
    Ok(())
}

impl SqliteBackend {
    pub fn open(path: &Path) -> Result<Self, Error> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let cannot =
            |e: std::io::Error| Error::store(format!("cannot create {}: {e}", dir.display()));
        create_dir_all_durable(dir).map_err(cannot)?;
        let new = !path.exists();
        let mut writer = open_conn(path)?;
        writer.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
        let sql: Vec<String> = MIGRATIONS.iter().map(|m| m.sql(Dialect::Sqlite)).collect();
        let migrations: Migrations = sql.iter().map(|sql| M::up(sql)).collect();
        migrations.to_latest(&mut writer).map_err(|e| {
            Error::store(format!(
                "cannot migrate {}: {e} (a database from a newer server is refused)",
                path.display()
            ))
        })?;
        if new {
            // SQLite syncs the directory for its journal and WAL, not for a new
            // database file: sync its name once, so that a power cut cannot take it.
            sync_dir(dir).map_err(cannot)?;
        }
        let backend = SqliteBackend {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                conn: writer,
                since_checkpoint: 0,
            }),
            readers: Mutex::new(Vec::new()),
            checkpointer: Checkpointer::start(path)?,
        };
        backend.write(&mut |sql| crate::repo::bootstrap(sql))?;
        Ok(backend)
    }
}

/// A transaction, counting the bytes of the values it binds (what a write adds to the
/// WAL, roughly).
struct SqliteTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    bytes: usize,
}

fn value_bytes(params: &[V]) -> usize {
    params
        .iter()
        .map(|v| match v {
            V::I(_) => 8,
            V::T(t) => t.as_ref().map_or(1, String::len),
            V::B(b) => b.as_ref().map_or(1, Vec::len),
        })
        .sum()
}

impl Sql for SqliteTx<'_> {
    fn exec(&mut self, sql: &str, params: &[V]) -> Result<u64, Error> {
        self.bytes += value_bytes(params);
        let mut stmt = self.tx.prepare_cached(sql)?;
        let n = stmt.execute(rusqlite::params_from_iter(params.iter()))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[V]) -> Result<Vec<Row>, Error> {
        let mut stmt = self.tx.prepare_cached(sql)?;
        let cols = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut vals = Vec::with_capacity(cols);
            for i in 0..cols {
                vals.push(match r.get_ref(i)? {
                    ValueRef::Null => V::T(None),
                    ValueRef::Integer(v) => V::I(Some(v)),
                    ValueRef::Real(v) => V::I(Some(v as i64)),
                    ValueRef::Text(t) => V::T(Some(
                        std::str::from_utf8(t)
                            .map_err(|e| Error::store(format!("stored text: {e}")))?
                            .to_owned(),
                    )),
                    ValueRef::Blob(b) => V::B(Some(b.to_vec())),
                });
            }
            out.push(Row(vals));
        }
        Ok(out)
    }
}

impl Backend for SqliteBackend {
    fn write(&self, f: &mut TxFn<'_>) -> Result<(), Error> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = writer
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut sql = SqliteTx { tx: &tx, bytes: 0 };
        f(&mut sql)?;
        let bytes = sql.bytes;
        tx.commit()?;
        writer.since_checkpoint += bytes;
        if writer.since_checkpoint >= CHECKPOINT_AFTER_BYTES {
            writer.since_checkpoint = 0;
            self.checkpointer.wake();
        }
        Ok(())
    }

    fn read(&self, f: &mut TxFn<'_>) -> Result<(), Error> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => open_conn(&self.path)?,
        };
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            f(&mut SqliteTx { tx: &tx, bytes: 0 })?;
            tx.commit()?;
            Ok(())
        })();
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if readers.len() < READERS_MAX {
            readers.push(conn);
        }
        result
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit that grows the WAL past the threshold gets its frames copied into the
    /// database file by the background thread (the writer's own automatic checkpoint
    /// is far larger, so it cannot be what did it), and the rows stay readable.
    #[test]
    fn the_background_thread_checkpoints_the_wal() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::store(e.to_string()))?;
        let path = dir.path().join("ckpt.db");
        let backend = SqliteBackend::open(&path)?;
        let file_len = || std::fs::metadata(&path).map_or(0, |m| m.len());
        let before = file_len();
        let text = "x".repeat(64 * 1024);
        let rows = CHECKPOINT_AFTER_BYTES / text.len() + 8;
        assert!(
            ((rows * text.len()) as i64) < WRITER_AUTOCHECKPOINT_PAGES * 4096 / 2,
            "well below the writer's own checkpoint"
        );
        backend.write(&mut |sql| {
            for i in 0..rows {
                sql.exec(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                    &[format!("k{i}").into(), text.as_str().into()],
                )?;
            }
            Ok(())
        })?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while file_len() < before + (rows * text.len()) as u64 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not checkpointed: database file {} bytes",
                file_len()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut n = 0;
        backend.read(&mut |sql| {
            n = sql.query("SELECT COUNT(*) FROM meta WHERE key LIKE 'k%'", &[])?[0].i64(0)?;
            Ok(())
        })?;
        assert_eq!(n, rows as i64);
        Ok(())
    }
}
