//! The PostgreSQL backend (tokio-postgres), for fleets that outgrow one machine. The
//! server keeps no state of its own beside it, so several instances can share one
//! database behind a load balancer.
//!
//! Every write transaction first takes one transaction-level advisory lock
//! (`pg_advisory_xact_lock`), so writes are serialized across all instances: change-log
//! sequences are handed out and committed in order (a pull never skips a row) and the
//! idempotency check-then-insert cannot race. Reads run in REPEATABLE READ, READ ONLY
//! transactions for a consistent snapshot. Queries run on the blocking pool and drive
//! tokio-postgres futures with `Handle::block_on`. Connections come from
//! `deadpool-postgres` (issue 19 item 9): at most 16, a closed one replaced, each with
//! its cache of prepared statements. Migrations (the shared files of `migrations/server/`, see
//! [`super::migrations`]) are applied at connect under the same lock, so two instances
//! starting together do not collide; each applied version is a row of
//! `outpost_migrations`.
//!
//! TLS (issue 19 item 9; [`Target::parse`]): the URL's `sslmode` is `disable`,
//! `prefer`, `require` or `verify-full` (`verify-ca` is taken as `verify-full`), and
//! `sslrootcert` names the PEM file of the roots to trust (else Mozilla's,
//! `webpki-roots`). Through rustls, every TLS connection verifies the server's
//! certificate and name, so `require` verifies too (stricter than libpq). Without
//! `sslmode`, a loopback host or a Unix socket connects without TLS, as before, and any
//! other host gets `verify-full`. Connecting times out after 10 s unless the URL says
//! `connect_timeout`, and waiting for a free pooled connection after 30 s (the pool's
//! wait timeout).

use bytes::BytesMut;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use tokio::runtime::Handle;
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{IsolationLevel, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::CertificateDer;

use super::migrations::{latest_version, Dialect, MIGRATIONS};
use super::{Backend, Row, Sql, TxFn, V};
use crate::clock::{Clock as _, SystemClock};
use crate::error::Error;

/// The advisory lock key that serializes writers ("OUTPOST" in spirit).
const WRITE_LOCK_KEY: i64 = 0x4f55_5450_4f53;
/// Connections kept per server instance.
const CONNECTIONS_MAX: usize = 16;
/// The longest a transaction waits for a free connection.
const CHECKOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl ToSql for V {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            V::I(v) => match *ty {
                Type::INT4 => v
                    .map(i32::try_from)
                    .transpose()
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Sync + Send>)?
                    .to_sql(ty, out),
                Type::BOOL => v.map(|x| x != 0).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            // PostgreSQL text cannot hold U+0000 (SQLite's can), and JSON strings may.
            // No stored key has one (usernames, SKUs and attachment names are checked
            // where they are made), so it becomes U+FFFD: a lookup still finds nothing
            // and a write keeps the rest of the text, as on SQLite, instead of failing
            // the whole request. (Row bodies are JSON, where it is written `\u0000`.)
            V::T(Some(v)) if v.contains('\0') => v.replace('\0', "\u{FFFD}").to_sql(ty, out),
            V::T(v) => v.to_sql(ty, out),
            V::B(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Where and how to connect: the URL's settings, and the TLS connector.
struct Target {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
}

/// The TLS a URL asks for (libpq's `sslmode` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    /// TLS, the certificate and the host name verified (`require` and `verify-ca` too).
    VerifyFull,
}

impl Target {
    /// Read `sslmode` and `sslrootcert` out of the URL (tokio-postgres knows neither
    /// `verify-full` nor `sslrootcert`) and build the rest of it with tokio-postgres.
    fn parse(url: &str) -> Result<Target, Error> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = None;
        let mut root = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = Some(ssl_mode(v)?),
                Some(("sslrootcert", v)) => root = Some(v.to_owned()),
                _ => rest.push(pair),
            }
        }
        let bare = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: tokio_postgres::Config = bare
            .parse()
            .map_err(|e| Error::Unavailable(format!("the PostgreSQL URL: {e}")))?;
        let mode = mode.unwrap_or_else(|| default_mode(config.get_hosts()));
        config.ssl_mode(match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::VerifyFull => PgSslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let mut roots = rustls::RootCertStore::empty();
        match &root {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| Error::Unavailable(format!("sslrootcert {path}: {e}")))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(Error::Unavailable(format!(
                        "sslrootcert {path} holds no certificate"
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Unavailable(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Target {
            config,
            tls: MakeRustlsConnect::new(tls),
        })
    }
}

fn ssl_mode(v: &str) -> Result<SslMode, Error> {
    match v {
        "disable" => Ok(SslMode::Disable),
        "prefer" | "allow" => Ok(SslMode::Prefer),
        "require" | "verify-ca" | "verify-full" => Ok(SslMode::VerifyFull),
        other => Err(Error::Unavailable(format!(
            "sslmode {other:?}: use disable, prefer, require or verify-full"
        ))),
    }
}

/// Without `sslmode`: no TLS to this machine (loopback, a Unix socket), verified TLS to
/// any other host.
fn default_mode(hosts: &[Host]) -> SslMode {
    let local = |h: &Host| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    };
    if !hosts.is_empty() && hosts.iter().all(local) {
        SslMode::Disable
    } else {
        SslMode::VerifyFull
    }
}

pub struct PgBackend {
    pool: Pool,
    handle: Handle,
}

fn pg_sql(sql: &str) -> String {
    sql.replace('?', "$")
}

impl PgBackend {
    pub fn connect(url: &str, handle: Handle) -> Result<Self, Error> {
        let target = Target::parse(url)?;
        let manager = Manager::from_config(
            target.config,
            target.tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(CONNECTIONS_MAX)
            .wait_timeout(Some(CHECKOUT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::store(format!("PostgreSQL connection pool: {e}")))?;
        let backend = PgBackend { pool, handle };
        backend.migrate()?;
        backend.write(&mut |sql| crate::repo::bootstrap(sql))?;
        Ok(backend)
    }

    /// A pooled connection: deadpool hands out an idle one (a closed one is dropped and
    /// replaced), opens a new one up to [`CONNECTIONS_MAX`], or waits at most
    /// [`CHECKOUT_TIMEOUT`] (a stuck query elsewhere must not hang every request).
    fn checkout(&self) -> Result<Object, Error> {
        self.handle.block_on(self.pool.get()).map_err(|e| match e {
            PoolError::Timeout(TimeoutType::Wait) => Error::Unavailable(format!(
                "all {CONNECTIONS_MAX} PostgreSQL connections stayed busy for {} s",
                CHECKOUT_TIMEOUT.as_secs()
            )),
            PoolError::Timeout(_) => {
                Error::Unavailable("connecting to PostgreSQL timed out".into())
            }
            PoolError::Backend(e) => Error::from(e),
            other => Error::Unavailable(format!("PostgreSQL connection pool: {other}")),
        })
    }

    /// Give `conn` back to the pool, or drop it after a failure that may have left it
    /// unusable (a network error, a timeout).
    fn checkin(conn: Object, healthy: bool) {
        if !healthy {
            drop(Object::take(conn));
        }
    }

    fn migrate(&self) -> Result<(), Error> {
        let mut conn = self.checkout()?;
        let h = &self.handle;
        let result = (|| -> Result<(), Error> {
            let tx = h.block_on(conn.transaction())?;
            h.block_on(tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK_KEY]))?;
            h.block_on(tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS outpost_migrations (version BIGINT PRIMARY KEY, applied_us BIGINT NOT NULL)",
            ))?;
            let rows = h.block_on(tx.query(
                "SELECT COALESCE(MAX(version), 0) FROM outpost_migrations",
                &[],
            ))?;
            let current: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
            let latest = latest_version();
            if current > latest {
                return Err(Error::store(format!(
                    "the database schema is version {current}, newer than this server ({latest}); upgrade the server"
                )));
            }
            for m in MIGRATIONS.iter().filter(|m| m.version > current) {
                h.block_on(tx.batch_execute(&m.sql(Dialect::Postgres)))?;
                let now = SystemClock.now().timestamp_micros();
                h.block_on(tx.execute(
                    "INSERT INTO outpost_migrations (version, applied_us) VALUES ($1, $2)",
                    &[&m.version, &now],
                ))?;
            }
            h.block_on(tx.commit())?;
            Ok(())
        })();
        Self::checkin(conn, result.is_ok());
        result
    }

    fn run(&self, f: &mut TxFn<'_>, write: bool) -> Result<(), Error> {
        let mut conn = self.checkout()?;
        let h = &self.handle;
        let result = (|| -> Result<(), Error> {
            let tx = if write {
                h.block_on(conn.transaction())?
            } else {
                h.block_on(
                    conn.build_transaction()
                        .isolation_level(IsolationLevel::RepeatableRead)
                        .read_only(true)
                        .start(),
                )?
            };
            if write {
                h.block_on(tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK_KEY]))?;
            }
            let mut pg = PgTx { tx: &tx, handle: h };
            match f(&mut pg) {
                Ok(()) => {
                    h.block_on(tx.commit())?;
                    Ok(())
                }
                Err(e) => {
                    // Roll back now, on this connection, before it returns to the pool.
                    h.block_on(tx.rollback())?;
                    Err(e)
                }
            }
        })();
        let healthy = !matches!(result, Err(Error::Unavailable(_)));
        Self::checkin(conn, healthy);
        result
    }
}

struct PgTx<'t, 'c> {
    tx: &'t deadpool_postgres::Transaction<'c>,
    handle: &'t Handle,
}

impl PgTx<'_, '_> {
    /// The prepared statement for `sql`, from the connection's cache (deadpool's).
    fn statement(&mut self, sql: &str) -> Result<Statement, Error> {
        Ok(self.handle.block_on(self.tx.prepare_cached(&pg_sql(sql)))?)
    }
}

fn params(p: &[V]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Sql for PgTx<'_, '_> {
    fn exec(&mut self, sql: &str, p: &[V]) -> Result<u64, Error> {
        let stmt = self.statement(sql)?;
        Ok(self.handle.block_on(self.tx.execute(&stmt, &params(p)))?)
    }

    fn query(&mut self, sql: &str, p: &[V]) -> Result<Vec<Row>, Error> {
        let stmt = self.statement(sql)?;
        let rows = self.handle.block_on(self.tx.query(&stmt, &params(p)))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut vals = Vec::with_capacity(r.len());
            for (i, col) in r.columns().iter().enumerate() {
                let v = match *col.type_() {
                    Type::INT8 => V::I(r.try_get::<_, Option<i64>>(i)?),
                    Type::INT4 => V::I(r.try_get::<_, Option<i32>>(i)?.map(i64::from)),
                    Type::INT2 => V::I(r.try_get::<_, Option<i16>>(i)?.map(i64::from)),
                    Type::BOOL => V::I(r.try_get::<_, Option<bool>>(i)?.map(i64::from)),
                    Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                        V::T(r.try_get::<_, Option<String>>(i)?)
                    }
                    Type::BYTEA => V::B(r.try_get::<_, Option<Vec<u8>>>(i)?),
                    ref other => {
                        return Err(Error::store(format!(
                            "column {} has unsupported type {other}",
                            col.name()
                        )))
                    }
                };
                vals.push(v);
            }
            out.push(Row(vals));
        }
        Ok(out)
    }
}

impl Backend for PgBackend {
    fn write(&self, f: &mut TxFn<'_>) -> Result<(), Error> {
        self.run(f, true)
    }

    fn read(&self, f: &mut TxFn<'_>) -> Result<(), Error> {
        self.run(f, false)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;

    fn mode(url: &str) -> PgSslMode {
        Target::parse(url).expect("parses").config.get_ssl_mode()
    }

    #[test]
    fn another_host_gets_verified_tls_unless_the_url_says_otherwise() {
        assert_eq!(mode("postgres://u@db.internal:5432/x"), PgSslMode::Require);
        assert_eq!(mode("postgres://u@10.0.0.7/x"), PgSslMode::Require);
        assert_eq!(mode("postgres://u@127.0.0.1:5432/x"), PgSslMode::Disable);
        assert_eq!(mode("postgres://u@localhost/x"), PgSslMode::Disable);
        assert_eq!(mode("postgres://u@[::1]/x"), PgSslMode::Disable);
        assert_eq!(
            mode("postgres://u@db.internal/x?sslmode=disable"),
            PgSslMode::Disable
        );
        assert_eq!(
            mode("postgres://u@127.0.0.1/x?sslmode=verify-full"),
            PgSslMode::Require
        );
        assert!(Target::parse("postgres://u@h/x?sslmode=maybe").is_err());
        assert!(Target::parse("postgres://u@h/x?sslrootcert=/no/such/file.pem").is_err());
    }

    #[test]
    fn other_url_settings_still_reach_tokio_postgres_and_connecting_times_out() {
        let t = Target::parse("postgres://u@h/x?application_name=outpost&sslmode=require")
            .expect("parses");
        assert_eq!(t.config.get_application_name(), Some("outpost"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(10))
        );
    }
}
