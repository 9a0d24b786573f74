//! The server's schema migrations, written once for both backends.
//!
//! Each file in `migrations/server/` is numbered and holds SQL that SQLite and
//! PostgreSQL both accept, except for the type names the two spell differently: those
//! are placeholders ([`BINARY_TYPE`]) that [`Migration::sql`] replaces with the
//! backend's own name as the backend loads the migration. The numbers are the schema
//! versions a database records (SQLite's `user_version` through rusqlite_migration,
//! which counts applied migrations; PostgreSQL's `outpost_migrations` table), so they
//! run from 1 without gaps and a released migration is never renumbered or edited.
//!
//! Left out on purpose: any templating beyond plain text replacement (a migration
//! that needs different statements per backend would be a sign the shared SQL surface
//! no longer fits, not something to paper over here), and the running of migrations,
//! which each backend keeps with its own bookkeeping (`sqlite.rs`, `postgres.rs`).

/// The placeholder for a byte-string column type: `BLOB` on SQLite, `BYTEA` on
/// PostgreSQL. Left unreplaced it is a syntax error on both, never a silent default.
pub const BINARY_TYPE: &str = "{{BINARY_TYPE}}";

/// The SQL dialect a migration is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The column type for byte strings.
    pub fn binary_type(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BLOB",
            Dialect::Postgres => "BYTEA",
        }
    }
}

/// One migration: the schema version it brings a database to, and its SQL with
/// placeholders.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    template: &'static str,
}

impl Migration {
    /// The SQL to run on `dialect`, placeholders replaced.
    pub fn sql(&self, dialect: Dialect) -> String {
        self.template.replace(BINARY_TYPE, dialect.binary_type())
    }
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        template: include_str!("../../../../migrations/server/0001_init.sql"),
    },
    Migration {
        version: 2,
        template: include_str!("../../../../migrations/server/0002_device_time.sql"),
    },
    Migration {
        version: 3,
        template: include_str!("../../../../migrations/server/0003_device_unsent.sql"),
    },
    Migration {
        version: 4,
        template: include_str!("../../../../migrations/server/0004_attachment_owners.sql"),
    },
    Migration {
        version: 5,
        template: include_str!("../../../../migrations/server/0005_attachment_claims.sql"),
    },
    Migration {
        version: 6,
        template: include_str!("../../../../migrations/server/0006_device_health.sql"),
    },
    Migration {
        version: 7,
        template: include_str!("../../../../migrations/server/0007_stock_moves.sql"),
    },
    Migration {
        version: 8,
        template: include_str!("../../../../migrations/server/0008_documents.sql"),
    },
    Migration {
        version: 9,
        template: include_str!("../../../../migrations/server/0009_lookup_indexes.sql"),
    },
];

/// The newest schema version this server knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIALECTS: [Dialect; 2] = [Dialect::Sqlite, Dialect::Postgres];

    /// A migration's statements: every line but the `--` comments (which may name
    /// both backends' types), each ending in a newline whatever the checkout's endings.
    fn statements(sql: &str) -> String {
        sql.lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .flat_map(|l| [l, "\n"])
            .collect()
    }

    /// SQLite's runner counts applied migrations, PostgreSQL's records their numbers:
    /// the two agree only while the numbers run 1, 2, 3, … in order.
    #[test]
    fn versions_run_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "migration {i}");
        }
        assert_eq!(latest_version(), MIGRATIONS.len() as i64);
    }

    /// Each backend's statements have its own byte-string type, not the other's, and
    /// nothing that looks like a placeholder is left over anywhere.
    #[test]
    fn each_backend_gets_its_own_types_and_no_placeholder() {
        for m in MIGRATIONS {
            for dialect in DIALECTS {
                let sql = m.sql(dialect);
                assert!(
                    !sql.contains("{{") && !sql.contains("}}"),
                    "migration {} for {dialect:?} keeps a placeholder",
                    m.version
                );
                let statements = statements(&sql);
                let other = match dialect {
                    Dialect::Sqlite => Dialect::Postgres,
                    Dialect::Postgres => Dialect::Sqlite,
                };
                assert!(
                    !statements.contains(other.binary_type()),
                    "migration {} for {dialect:?} names {}",
                    m.version,
                    other.binary_type()
                );
            }
        }
        let init = &MIGRATIONS[0];
        assert!(init
            .sql(Dialect::Sqlite)
            .contains("data         BLOB NOT NULL"));
        assert!(init
            .sql(Dialect::Postgres)
            .contains("data         BYTEA NOT NULL"));
    }

    /// SHA-256 of a migration's statements.
    fn statements_sha256(sql: &str) -> String {
        hex::encode(
            ring::digest::digest(&ring::digest::SHA256, statements(sql).as_bytes()).as_ref(),
        )
    }

    /// Released migrations are never edited: the statements each backend runs for
    /// version 1 are byte for byte those of the two files it ran before they became
    /// one (`migrations/server/sqlite/0001_init.sql` and
    /// `migrations/server/postgres/0001_init.sql`, of which only the comments
    /// changed), so a database made from those is already at version 1.
    #[test]
    fn the_released_first_migration_is_unchanged_for_each_backend() {
        let init = &MIGRATIONS[0];
        assert_eq!(
            statements_sha256(&init.sql(Dialect::Sqlite)),
            "56ecd10d5b867d3f6ca775ef2d361b0e34d72a5ee12cef5f05a6e9d3d5249be9"
        );
        assert_eq!(
            statements_sha256(&init.sql(Dialect::Postgres)),
            "28fde5fc13e6c91860262eb3ba2d4b34d2d608824f10f82677ad6d075f7e31cc"
        );
    }
}
