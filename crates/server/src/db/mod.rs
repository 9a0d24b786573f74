//! Storage: one small SQL surface ([`Sql`]) that both backends implement, and the
//! [`Backend`] trait that runs a closure inside a read or write transaction.
//!
//! Why this shape: the server's rules (push, pull, auth) are written once, in
//! [`crate::repo`], against `Sql`; each backend only knows how to bind a handful of
//! value types, run a statement and keep transactions. Both dialects accept the same
//! SQL here (numbered `?N` placeholders become `$N` on PostgreSQL; booleans are 0/1
//! integers). Write transactions are serialized (one writer on SQLite; a
//! transaction-level advisory lock on PostgreSQL), which is what makes change-log
//! sequences become visible in order and makes idempotency checks race-free across
//! several server instances.
//!
//! Closures run on tokio's blocking pool ([`Db::write`], [`Db::read`]), so a slow query
//! never stalls the async workers.

pub mod migrations;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use crate::error::Error;

/// A bound parameter or a read column.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    I(Option<i64>),
    T(Option<String>),
    B(Option<Vec<u8>>),
}

impl From<i64> for V {
    fn from(v: i64) -> Self {
        V::I(Some(v))
    }
}
impl From<u64> for V {
    fn from(v: u64) -> Self {
        V::I(Some(i64::try_from(v).unwrap_or(i64::MAX)))
    }
}
impl From<bool> for V {
    fn from(v: bool) -> Self {
        V::I(Some(i64::from(v)))
    }
}
impl From<&str> for V {
    fn from(v: &str) -> Self {
        V::T(Some(v.to_owned()))
    }
}
impl From<String> for V {
    fn from(v: String) -> Self {
        V::T(Some(v))
    }
}
impl From<&String> for V {
    fn from(v: &String) -> Self {
        V::T(Some(v.clone()))
    }
}
impl From<Option<String>> for V {
    fn from(v: Option<String>) -> Self {
        V::T(v)
    }
}
impl From<Option<&str>> for V {
    fn from(v: Option<&str>) -> Self {
        V::T(v.map(str::to_owned))
    }
}
impl From<Option<i64>> for V {
    fn from(v: Option<i64>) -> Self {
        V::I(v)
    }
}
impl From<Vec<u8>> for V {
    fn from(v: Vec<u8>) -> Self {
        V::B(Some(v))
    }
}
impl From<uuid::Uuid> for V {
    fn from(v: uuid::Uuid) -> Self {
        V::T(Some(v.to_string()))
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<V>);

impl Row {
    fn col(&self, i: usize) -> Result<&V, Error> {
        self.0
            .get(i)
            .ok_or_else(|| Error::store(format!("column {i} missing")))
    }

    pub fn opt_i64(&self, i: usize) -> Result<Option<i64>, Error> {
        match self.col(i)? {
            V::I(v) => Ok(*v),
            V::T(None) | V::B(None) => Ok(None),
            other => Err(Error::store(format!(
                "column {i}: expected an integer, got {other:?}"
            ))),
        }
    }

    pub fn i64(&self, i: usize) -> Result<i64, Error> {
        self.opt_i64(i)?
            .ok_or_else(|| Error::store(format!("column {i} is null")))
    }

    pub fn u64(&self, i: usize) -> Result<u64, Error> {
        let v = self.i64(i)?;
        u64::try_from(v).map_err(|_| Error::store(format!("column {i} is negative")))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, Error> {
        match self.col(i)? {
            V::T(v) => Ok(v.clone()),
            V::I(None) | V::B(None) => Ok(None),
            other => Err(Error::store(format!(
                "column {i}: expected text, got {other:?}"
            ))),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, Error> {
        self.opt_text(i)?
            .ok_or_else(|| Error::store(format!("column {i} is null")))
    }

    pub fn take_text(&mut self, i: usize) -> Result<String, Error> {
        match self.0.get_mut(i) {
            Some(V::T(v)) => v
                .take()
                .ok_or_else(|| Error::store(format!("column {i} is null"))),
            _ => self.text(i),
        }
    }

    pub fn blob(&self, i: usize) -> Result<Vec<u8>, Error> {
        match self.col(i)? {
            V::B(Some(v)) => Ok(v.clone()),
            other => Err(Error::store(format!(
                "column {i}: expected bytes, got {other:?}"
            ))),
        }
    }
}

/// The SQL both backends run. Placeholders are `?1`, `?2`, …
pub trait Sql {
    fn exec(&mut self, sql: &str, params: &[V]) -> Result<u64, Error>;
    fn query(&mut self, sql: &str, params: &[V]) -> Result<Vec<Row>, Error>;
}

/// A closure run inside a transaction.
pub type TxFn<'a> = dyn FnMut(&mut dyn Sql) -> Result<(), Error> + 'a;

/// A storage backend. `write` runs the closure in a serialized write transaction and
/// commits when it returns `Ok`; `read` runs it in a read-only transaction with a
/// consistent snapshot. Both block: call them through [`Db`].
pub trait Backend: Send + Sync + 'static {
    fn write(&self, f: &mut TxFn<'_>) -> Result<(), Error>;
    fn read(&self, f: &mut TxFn<'_>) -> Result<(), Error>;
    /// "sqlite" or "postgres".
    fn kind(&self) -> &'static str;
}

/// The handle the rest of the server uses.
#[derive(Clone)]
pub struct Db {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("kind", &self.backend.kind())
            .finish()
    }
}

fn run_once<R>(
    f: impl FnOnce(&mut dyn Sql) -> Result<R, Error>,
    go: impl FnOnce(&mut TxFn<'_>) -> Result<(), Error>,
) -> Result<R, Error>
where
    R: Send,
{
    let mut f = Some(f);
    let mut out = None;
    go(&mut |sql: &mut dyn Sql| {
        let f = f
            .take()
            .ok_or_else(|| Error::store("transaction closure ran twice"))?;
        out = Some(f(sql)?);
        Ok(())
    })?;
    out.ok_or_else(|| Error::store("transaction closure did not run"))
}

impl Db {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Db { backend }
    }

    /// Open a database from a URL: `sqlite:PATH` (or a bare path) or `postgres://…`.
    /// Migrations are applied.
    pub fn open_blocking(url: &str, handle: &tokio::runtime::Handle) -> Result<Db, Error> {
        let backend: Arc<dyn Backend> =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                Arc::new(postgres::PgBackend::connect(url, handle.clone())?)
            } else {
                let path = url.strip_prefix("sqlite:").unwrap_or(url);
                let path = path.strip_prefix("//").unwrap_or(path);
                Arc::new(sqlite::SqliteBackend::open(std::path::Path::new(path))?)
            };
        Ok(Db { backend })
    }

    pub async fn open(url: &str) -> Result<Db, Error> {
        let url = url.to_owned();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || Db::open_blocking(&url, &handle))
            .await
            .map_err(|e| Error::store(format!("open task failed: {e}")))?
    }

    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// Run `f` in a write transaction, on the blocking pool.
    pub async fn write<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> Result<R, Error> + Send + 'static,
    {
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || run_once(f, |g| backend.write(g)))
            .await
            .map_err(|e| Error::store(format!("write task failed: {e}")))?
    }

    /// Run `f` in a read transaction, on the blocking pool.
    pub async fn read<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> Result<R, Error> + Send + 'static,
    {
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || run_once(f, |g| backend.read(g)))
            .await
            .map_err(|e| Error::store(format!("read task failed: {e}")))?
    }

    /// The same, for callers already off the async workers (CLI commands, seeding).
    pub fn write_blocking<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send,
        F: FnOnce(&mut dyn Sql) -> Result<R, Error>,
    {
        run_once(f, |g| self.backend.write(g))
    }

    pub fn read_blocking<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send,
        F: FnOnce(&mut dyn Sql) -> Result<R, Error>,
    {
        run_once(f, |g| self.backend.read(g))
    }
}
