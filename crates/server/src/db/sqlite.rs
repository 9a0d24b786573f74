//! The SQLite backend: the embedded default (one file, no setup).
//!
//! One writer connection behind a mutex (SQLite allows one writer anyway; holding it
//! in-process avoids busy retries) and a small pool of reader connections, which WAL
//! lets run beside the writer on a consistent snapshot. `synchronous=FULL`: an
//! acknowledged push survives power loss. Migrations come from
//! `migrations/server/sqlite/`, applied with rusqlite_migration at open; a database from
//! a newer server is refused.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

use super::{Backend, Row, Sql, TxFn, V};
use crate::error::Error;

const MIGRATIONS: &[&str] = &[include_str!(
    "../../../../migrations/server/sqlite/0001_init.sql"
)];

/// Readers kept open for reuse.
const READERS_MAX: usize = 8;

pub struct SqliteBackend {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
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

impl SqliteBackend {
    pub fn open(path: &Path) -> Result<Self, Error> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::store(format!("cannot create {}: {e}", dir.display())))?;
            }
        }
        let mut writer = open_conn(path)?;
        let migrations = Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect());
        migrations.to_latest(&mut writer).map_err(|e| {
            Error::store(format!(
                "cannot migrate {}: {e} (a database from a newer server is refused)",
                path.display()
            ))
        })?;
        let backend = SqliteBackend {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        };
        backend.write(&mut |sql| crate::repo::bootstrap(sql))?;
        Ok(backend)
    }
}

struct SqliteTx<'a>(&'a rusqlite::Transaction<'a>);

impl Sql for SqliteTx<'_> {
    fn exec(&mut self, sql: &str, params: &[V]) -> Result<u64, Error> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let n = stmt.execute(rusqlite::params_from_iter(params.iter()))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[V]) -> Result<Vec<Row>, Error> {
        let mut stmt = self.0.prepare_cached(sql)?;
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
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        f(&mut SqliteTx(&tx))?;
        tx.commit()?;
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
            f(&mut SqliteTx(&tx))?;
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
