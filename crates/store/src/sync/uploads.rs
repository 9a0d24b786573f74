//! The attachment files a push waits on: which files a batch names that the server
//! is not known to have, and marking a file uploaded once it has it.
//!
//! Left out on purpose: the files themselves (storing, reading and pruning them is
//! `attachments.rs`'s) and the upload request (the sync engine's).

use std::collections::HashSet;

use rusqlite::OptionalExtension;

use crate::db::Store;
use crate::error::StoreError;
use crate::outbox::OutboxRow;

impl Store {
    /// Hashes of attachments that `rows` name and that are not known to be uploaded.
    pub fn attachments_to_upload(&self, rows: &[OutboxRow]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for row in rows {
            for op in &row.mutation.ops {
                let hash = match op {
                    outpost_protocol::Op::Set(outpost_protocol::SetOp::Signature(Some(s))) => {
                        &s.hash
                    }
                    outpost_protocol::Op::Add(outpost_protocol::mutation::ListItem::Photos(p)) => {
                        &p.hash
                    }
                    _ => continue,
                };
                if !seen.insert(hash.clone()) {
                    continue;
                }
                let uploaded: Option<i64> = self
                    .conn
                    .prepare_cached("SELECT uploaded FROM attachments WHERE hash = ?1")?
                    .query_row([hash], |r| r.get(0))
                    .optional()?;
                if uploaded == Some(0) {
                    out.push(hash.clone());
                }
            }
        }
        Ok(out)
    }

    pub fn mark_uploaded(&mut self, hash: &str) -> Result<(), StoreError> {
        self.mark_all_uploaded(&[hash])
    }

    /// Mark the files of one upload batch as on the server, in one transaction (one
    /// commit, one flush, instead of one per file: a reconnect uploads a day's
    /// signatures). Losing the mark to a crash costs a second upload of the same bytes,
    /// which the server takes as already there.
    pub fn mark_all_uploaded(&mut self, hashes: &[&str]) -> Result<(), StoreError> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.write(|tx, _| {
            let mut stmt =
                tx.prepare_cached("UPDATE attachments SET uploaded = 1 WHERE hash = ?1")?;
            for hash in hashes {
                stmt.execute([hash])?;
            }
            Ok::<_, StoreError>(())
        })
    }
}
