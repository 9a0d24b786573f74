//! A database migrated before the server's two schema files became one
//! (`migrations/server/sqlite/0001_init.sql` and `migrations/server/postgres/0001_init.sql`,
//! now `migrations/server/0001_init.sql`) opens as up to date on both backends: it is
//! not migrated again, its version bookkeeping is untouched and its rows stay.
//!
//! The old database is made here the way the old server made it: the first migration's
//! statements (which `db::migrations`' unit tests pin, by hash, to those of the two old
//! files) under each backend's old bookkeeping, written out literally so that a change
//! to the runners cannot change what "old" means.

mod common;

use common::*;
use outpost_server::db::migrations::{latest_version, Dialect, MIGRATIONS};
use outpost_server::repo::META_EPOCH;

both!(a_database_from_the_old_schema_files_is_up_to_date);

/// The epoch the old database was made with: a database migrated again (or made
/// afresh) would get a new one, and every device would have to start over.
const OLD_EPOCH: &str = "made-by-the-old-schema-files";

/// Make the old database at `url` (SQLite: the file `server.db` in `dir`).
async fn make_old_database(kind: Kind, url: &str, dir: &std::path::Path) {
    match kind {
        Kind::Sqlite => {
            let sql = MIGRATIONS[0].sql(Dialect::Sqlite);
            let mut conn =
                rusqlite::Connection::open(dir.join("server.db")).expect("open old SQLite");
            // The old runner: rusqlite_migration, which sets `user_version` to 1.
            rusqlite_migration::Migrations::new(vec![rusqlite_migration::M::up(&sql)])
                .to_latest(&mut conn)
                .expect("the old migration");
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                [META_EPOCH, OLD_EPOCH],
            )
            .expect("old epoch");
        }
        Kind::Postgres => {
            let sql = MIGRATIONS[0].sql(Dialect::Postgres);
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect to the old database");
            tokio::spawn(conn);
            // The old runner's own table, with version 1 recorded at a known time.
            client
                .batch_execute(&format!(
                    "CREATE TABLE outpost_migrations (version BIGINT PRIMARY KEY, applied_us BIGINT NOT NULL);\n\
                     {sql}\n\
                     INSERT INTO outpost_migrations (version, applied_us) VALUES (1, 42);\n\
                     INSERT INTO meta (key, value) VALUES ('{META_EPOCH}', '{OLD_EPOCH}');"
                ))
                .await
                .expect("the old migration");
        }
    }
}

/// The version bookkeeping: SQLite's `user_version`, or PostgreSQL's
/// `outpost_migrations` rows as `(version, applied_us)`.
async fn bookkeeping(kind: Kind, url: &str, dir: &std::path::Path) -> Vec<(i64, i64)> {
    match kind {
        Kind::Sqlite => {
            let conn =
                rusqlite::Connection::open(dir.join("server.db")).expect("open SQLite again");
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .expect("user_version");
            vec![(version, 0)]
        }
        Kind::Postgres => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect again");
            tokio::spawn(conn);
            client
                .query(
                    "SELECT version, applied_us FROM outpost_migrations ORDER BY version",
                    &[],
                )
                .await
                .expect("outpost_migrations")
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }
    }
}

async fn a_database_from_the_old_schema_files_is_up_to_date(kind: Kind) {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_db_url(kind, dir.path()).await;
    make_old_database(kind, &url, dir.path()).await;
    let before = bookkeeping(kind, &url, dir.path()).await;
    let expected = match kind {
        Kind::Sqlite => vec![(1, 0)],
        Kind::Postgres => vec![(1, 42)],
    };
    assert_eq!(before, expected, "the old bookkeeping");

    // Migrating again would fail on the existing tables; opening succeeds.
    let db = outpost_server::Db::open(&url)
        .await
        .expect("a database from the old schema files opens");
    let epoch = db
        .read(|sql| outpost_server::repo::meta_get(sql, META_EPOCH))
        .await
        .expect("read the epoch");
    assert_eq!(epoch.as_deref(), Some(OLD_EPOCH), "the old rows stay");
    // The byte-string column works with the backend's own type.
    db.write(|sql| {
        sql.exec(
            "INSERT INTO attachment_chunks (hash, offset_bytes, data) VALUES (?1, ?2, ?3)",
            &["h".into(), 0_i64.into(), vec![0_u8, 255, 7].into()],
        )
    })
    .await
    .expect("write a chunk");
    let data = db
        .read(|sql| {
            sql.query(
                "SELECT data FROM attachment_chunks WHERE hash = ?1",
                &["h".into()],
            )?[0]
                .blob(0)
        })
        .await
        .expect("read the chunk");
    assert_eq!(data, vec![0_u8, 255, 7]);
    drop(db);
    // Version 1 is not migrated again (its bookkeeping stays as it was); the later
    // migrations run on top of it.
    let after = bookkeeping(kind, &url, dir.path()).await;
    match kind {
        Kind::Sqlite => assert_eq!(after, vec![(latest_version(), 0)], "not migrated again"),
        Kind::Postgres => {
            assert_eq!(after[0], expected[0], "not migrated again");
            let versions: Vec<i64> = after.iter().map(|v| v.0).collect();
            assert_eq!(versions, (1..=latest_version()).collect::<Vec<_>>());
        }
    }
}
