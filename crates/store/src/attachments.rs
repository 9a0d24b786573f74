//! Encrypted attachment files (photos, signatures).
//!
//! An attachment is known everywhere by the SHA-256 of its plaintext (its name on the
//! wire, `protocol/src/digest.rs`), but its file on disk is named by a *keyed* hash:
//! HMAC-SHA256 of that SHA-256 under a naming key kept inside the encrypted database.
//! A plain SHA-256 as a file name would let anyone holding the disk confirm that a
//! known photo is there; the keyed name tells them nothing without the database key.
//! Every content-addressed file the device keeps (cached documents too) follows the
//! same rule: [`Store::private_file_name`].
//!
//! Each file holds `nonce || ciphertext || tag` under AES-256-GCM with the data key
//! kept inside the database (so a re-key of the database never touches them). The
//! SHA-256 is the associated data, so a file moved under another name fails to
//! decrypt. Files are written to a temporary name, synced and renamed, so a crash
//! never leaves a half-written attachment under a real name.
//!
//! Files of earlier versions, named by the plain SHA-256, are renamed at open
//! ([`Store::rename_attachment_files`]): each rename is atomic, the pass is repeated
//! until the database records that it finished, so a crash in the middle only leaves
//! work for the next open.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::db::Store;
use crate::durable::{create_dir_all_durable, sync_dir};
use crate::error::StoreError;
use crate::key::random_bytes;

/// When a sync pass last looked for files nothing needs ([`Store::prune_attachments_if_due`]).
const KV_PRUNED_AT: &str = "attachments_pruned_at";

use outpost_protocol::attachment_hash;
/// The largest attachment accepted (photos are downscaled before this matters): the
/// server's limit, so that nothing is kept that could never be uploaded.
use outpost_protocol::limits::ATTACHMENT_BYTES_MAX as ATTACHMENT_MAX_BYTES;

#[derive(Debug, Clone, Serialize)]
pub struct AttachmentMeta {
    pub hash: String,
    pub size: u64,
    pub media_type: String,
}

/// The `kv` entry that records that every file has its keyed name.
const NAMES_DONE_KEY: &str = "attachment_names";
const NAMES_DONE_VALUE: &str = "keyed-hmac-sha256-v1";

/// Where a file named `name` lives under `dir`: a directory per first two characters.
fn file_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(&name[..2]).join(name)
}

/// The keyed name of a content-addressed file whose SHA-256 is `hash`: HMAC-SHA256 of
/// the hash under `name_key`, hex.
fn private_name(name_key: &[u8], hash: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, name_key);
    hex::encode(ring::hmac::sign(&key, hash.as_bytes()).as_ref())
}

/// Where the file of the attachment whose SHA-256 is `hash` lives under `dir`, named
/// under `name_key` ([`Store::private_file_name`]'s rule), for code that holds the
/// paths and the key but not the `Store` (inside a write transaction).
pub(crate) fn keyed_file_path(dir: &Path, name_key: &[u8], hash: &str) -> PathBuf {
    file_path(dir, &private_name(name_key, hash))
}

impl Store {
    /// The name on disk of a content-addressed file whose SHA-256 is `hash`:
    /// HMAC-SHA256 of the hash under this data directory's naming key, hex. The rule
    /// for every such file the device keeps (attachments, cached documents).
    pub fn private_file_name(&self, hash: &str) -> String {
        private_name(self.name_key.as_ref(), hash)
    }

    fn attachment_path(&self, hash: &str) -> PathBuf {
        file_path(&self.paths.attachments, &self.private_file_name(hash))
    }

    /// Give files of earlier versions (named by the plain SHA-256) their keyed names.
    /// Idempotent and crash-safe: each rename is atomic and synced, a file already
    /// renamed is skipped, and the pass is recorded as done only after all of them.
    pub(crate) fn rename_attachment_files(&mut self) -> Result<(), StoreError> {
        let done: Option<String> = self
            .conn
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
            .query_row([NAMES_DONE_KEY], |r| r.get(0))
            .optional()?;
        if done.as_deref() == Some(NAMES_DONE_VALUE) {
            return Ok(());
        }
        let hashes: Vec<String> = {
            let mut stmt = self.conn.prepare_cached("SELECT hash FROM attachments")?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        let dir = self.paths.attachments.clone();
        for hash in hashes
            .iter()
            .filter(|h| outpost_protocol::validate::is_sha256_hex(h))
        {
            let old = file_path(&dir, hash);
            if !old.is_file() {
                continue;
            }
            let new = self.attachment_path(hash);
            let parent = new
                .parent()
                .ok_or_else(|| StoreError::Decode("attachment path has no parent".into()))?;
            create_dir_all_durable(parent)?;
            if new.is_file() {
                // Both exist only if the same content was written again under its new
                // name: the old copy is redundant.
                std::fs::remove_file(&old)?;
            } else {
                std::fs::rename(&old, &new)?;
            }
            sync_dir(parent)?;
            if let Some(old_parent) = old.parent() {
                sync_dir(old_parent)?;
                // Remove the old two-letter directory once it is empty.
                let _ = std::fs::remove_dir(old_parent);
            }
        }
        self.conn
            .prepare_cached(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute([NAMES_DONE_KEY, NAMES_DONE_VALUE])?;
        Ok(())
    }

    fn cipher(&self) -> Result<LessSafeKey, StoreError> {
        let key = UnboundKey::new(&AES_256_GCM, self.attachment_key.as_ref())
            .map_err(|_| StoreError::Crypto)?;
        Ok(LessSafeKey::new(key))
    }

    /// Encrypt and keep `bytes`; returns its hash. Importing the same bytes twice keeps
    /// one file.
    pub fn put_attachment(
        &mut self,
        bytes: &[u8],
        media_type: &str,
        now: DateTime<Utc>,
    ) -> Result<AttachmentMeta, StoreError> {
        let size = bytes.len() as u64;
        if size > ATTACHMENT_MAX_BYTES {
            return Err(StoreError::TooLarge {
                size,
                limit: ATTACHMENT_MAX_BYTES,
            });
        }
        let hash = attachment_hash(bytes);
        let name = self.private_file_name(&hash);
        let path = file_path(&self.paths.attachments, &name);
        if !path.exists() {
            let nonce_bytes = random_bytes::<NONCE_LEN>()?;
            let mut sealed = bytes.to_vec();
            self.cipher()?
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce_bytes),
                    Aad::from(hash.as_bytes()),
                    &mut sealed,
                )
                .map_err(|_| StoreError::Crypto)?;
            let parent = path
                .parent()
                .ok_or_else(|| StoreError::Decode("attachment path has no parent".into()))?;
            create_dir_all_durable(parent)?;
            let tmp = parent.join(format!(".{name}.tmp"));
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&nonce_bytes)?;
                f.write_all(&sealed)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(parent)?.sync_all()
            };
            if let Err(e) = write() {
                let _ = std::fs::remove_file(&tmp);
                return Err(if e.raw_os_error() == Some(28) {
                    StoreError::DiskFull
                } else {
                    StoreError::Io(e)
                });
            }
        }
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO attachments (hash, size, media_type, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![hash, size as i64, media_type, now.to_rfc3339()])?;
        Ok(AttachmentMeta {
            hash,
            size,
            media_type: media_type.to_owned(),
        })
    }

    /// Decrypt an attachment and check that its content still matches its name.
    pub fn attachment(&self, hash: &str) -> Result<Vec<u8>, StoreError> {
        if !outpost_protocol::validate::is_sha256_hex(hash) {
            return Err(StoreError::AttachmentNotFound(hash.to_owned()));
        }
        let path = self.attachment_path(hash);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::AttachmentNotFound(hash.to_owned()))
            }
            Err(e) => return Err(e.into()),
        };
        if data.len() < NONCE_LEN {
            return Err(StoreError::AttachmentDamaged {
                hash: hash.to_owned(),
            });
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| StoreError::Crypto)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .cipher()?
            .open_in_place(nonce, Aad::from(hash.as_bytes()), &mut buf)
            .map_err(|_| StoreError::AttachmentDamaged {
                hash: hash.to_owned(),
            })?;
        if attachment_hash(plain) != hash {
            return Err(StoreError::AttachmentDamaged {
                hash: hash.to_owned(),
            });
        }
        Ok(plain.to_vec())
    }

    /// Hashes of attachments not yet uploaded, oldest first; except those named only by
    /// changes set aside as failed syncs (the server refused them, e.g. past the user's
    /// storage quota): they wait for a person's retry, which queues their change again,
    /// instead of being sent and refused on every pass.
    pub fn attachments_pending_upload(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT a.hash FROM attachments a
             WHERE a.uploaded = 0
               AND NOT (EXISTS (SELECT 1 FROM outbox b
                                WHERE b.state = 'failed' AND instr(b.body, a.hash) > 0)
                        AND NOT EXISTS (SELECT 1 FROM outbox b
                                        WHERE b.state <> 'failed' AND instr(b.body, a.hash) > 0))
             ORDER BY a.created_at",
        )?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// [`Store::prune_attachments`] when the last look was `every` ago or more (or
    /// never, or in this clock's future: the clock was set back); `None` when not due.
    /// A sync pass looks this way: the look reads every local order's body, and a file
    /// kept a little longer costs only its disk space.
    pub fn prune_attachments_if_due(
        &mut self,
        now: DateTime<Utc>,
        every: chrono::Duration,
    ) -> Result<Option<usize>, StoreError> {
        let last = self
            .get_setting(KV_PRUNED_AT)?
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        if last.is_some_and(|t| t <= now && now - t < every) {
            return Ok(None);
        }
        let removed = self.prune_attachments()?;
        self.set_setting(KV_PRUNED_AT, &now.to_rfc3339())?;
        Ok(Some(removed))
    }

    /// Delete attachment files that nothing needs any more: uploaded, and named by no
    /// local order, no unacknowledged (pending, sent or failed) mutation and no open
    /// conflict. Returns how many were removed.
    ///
    /// Runs after every pass, so it must not cost a scan of every body per file (a
    /// reconnect after a day offline holds a thousand signatures: that was most of the
    /// pass's time). The candidates come from one pass over the bodies (the string values
    /// of their JSON that could be a hash); each candidate is then checked with the
    /// substring rule ([`Store::named_by_any_row`]), so the quick pass only narrows what
    /// is checked and never deletes a file a body still names.
    pub fn prune_attachments(&mut self) -> Result<usize, StoreError> {
        let candidates: Vec<String> = {
            let mut stmt = self.conn.prepare(
                "WITH named(hash) AS (
                   SELECT j.value FROM outbox b, json_tree(b.body) j
                    WHERE json_valid(b.body) AND j.type = 'text' AND length(j.value) = 64
                   UNION
                   SELECT j.value FROM work_orders o, json_tree(o.body) j
                    WHERE json_valid(o.body) AND j.type = 'text' AND length(j.value) = 64
                   UNION
                   SELECT j.value FROM sync_records r, json_tree(r.body) j
                    WHERE r.status = 'open' AND json_valid(r.body)
                      AND j.type = 'text' AND length(j.value) = 64)
                 SELECT a.hash FROM attachments a
                 WHERE a.uploaded = 1 AND a.hash NOT IN (SELECT hash FROM named)",
            )?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        let mut removed = 0;
        for hash in &candidates {
            if self.named_by_any_row(hash)? {
                continue;
            }
            let path = self.attachment_path(hash);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.conn
                .prepare_cached("DELETE FROM attachments WHERE hash = ?1")?
                .execute([hash])?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Whether any local order, queued mutation (pending, sent or failed) or open record
    /// names `hash` anywhere in its body.
    fn named_by_any_row(&self, hash: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM outbox b WHERE instr(b.body, ?1) > 0)
                 OR EXISTS (SELECT 1 FROM work_orders o WHERE instr(o.body, ?1) > 0)
                 OR EXISTS (SELECT 1 FROM sync_records r
                            WHERE r.status = 'open' AND instr(r.body, ?1) > 0)",
            )?
            .query_row([hash], |r| r.get(0))?)
    }

    /// Remove what an action that then failed (a full disk part-way through a
    /// completion) stored of `hashes`: each file and row that nothing names (no local
    /// order, no queued mutation, no open record) and that was never uploaded. The
    /// file goes first, so that the space comes back even when the disk is too full to
    /// delete the row (a row without its file is written again by the next import of
    /// the same bytes). Returns how many files were removed.
    pub fn forget_unnamed_attachments(&mut self, hashes: &[String]) -> Result<usize, StoreError> {
        let mut removed = 0;
        for hash in hashes {
            let uploaded: bool = self
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM attachments WHERE hash = ?1 AND uploaded = 1)",
                )?
                .query_row([hash], |r| r.get(0))?;
            if uploaded || self.named_by_any_row(hash)? {
                continue;
            }
            match std::fs::remove_file(self.attachment_path(hash)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.conn
                .prepare_cached("DELETE FROM attachments WHERE hash = ?1")?
                .execute([hash])?;
        }
        Ok(removed)
    }

    pub fn attachment_meta(&self, hash: &str) -> Result<Option<AttachmentMeta>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT hash, size, media_type FROM attachments WHERE hash = ?1")?
            .query_row([hash], |r| {
                Ok(AttachmentMeta {
                    hash: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    media_type: r.get(2)?,
                })
            })
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use outpost_protocol::{MutationKind, Op, SetOp, WorkOrder};
    use uuid::Uuid;

    use crate::db::Store;
    use crate::test_support::update_at;

    #[test]
    fn pruning_keeps_every_file_something_still_needs() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let key = crate::DbKey::generate().expect("key");
        let mut store = Store::create(tmp.path(), &key).expect("store");
        let now = Utc::now();
        let needed = store
            .put_attachment(b"needed by a pending mutation", "image/png", now)
            .expect("put");
        let orphan = store
            .put_attachment(b"nobody needs this", "image/png", now)
            .expect("put");
        let order = WorkOrder::blank(Uuid::now_v7());
        let mut m = update_at(order.id, 3, vec![Op::Set(SetOp::Title("t".into()))]);
        m.kind = MutationKind::Create;
        m.ops.push(Op::Set(SetOp::Signature(Some(
            outpost_protocol::Signature {
                hash: needed.hash.clone(),
                signer: "A".into(),
            },
        ))));
        store.record(m, now).expect("record");
        for h in [&needed.hash, &orphan.hash] {
            store.mark_uploaded(h).expect("uploaded");
        }
        assert_eq!(store.prune_attachments().expect("prune"), 1);
        assert!(store.attachment(&needed.hash).is_ok(), "referenced: kept");
        assert!(
            store.attachment(&orphan.hash).is_err(),
            "unreferenced and uploaded: removed"
        );
    }

    /// The quick pass over the bodies finds hashes that are whole JSON strings; a hash
    /// a body holds some other way (inside a longer text) still keeps its file, and one
    /// the order row names (after its mutation left the outbox) too.
    #[test]
    fn pruning_keeps_a_file_named_inside_a_longer_text_or_by_the_order_row() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let key = crate::DbKey::generate().expect("key");
        let mut store = Store::create(tmp.path(), &key).expect("store");
        let now = Utc::now();
        let in_text = store
            .put_attachment(b"named inside a note", "image/png", now)
            .expect("put");
        let gone = store
            .put_attachment(b"named by nothing", "image/png", now)
            .expect("put");
        let order = WorkOrder::blank(Uuid::now_v7());
        let mut m = update_at(order.id, 3, vec![Op::Set(SetOp::Title("t".into()))]);
        m.kind = MutationKind::Create;
        m.ops.push(Op::AppendNote {
            note: outpost_protocol::NoteEntry {
                id: Uuid::now_v7(),
                author: "tech1".into(),
                text: format!("see photo sha256:{}, taken at the valve", in_text.hash),
                at: now,
            },
        });
        store.record(m, now).expect("record");
        for h in [&in_text.hash, &gone.hash] {
            store.mark_uploaded(h).expect("uploaded");
        }
        assert_eq!(store.prune_attachments().expect("prune"), 1);
        assert!(
            store.attachment(&in_text.hash).is_ok(),
            "named in a text: kept"
        );
        assert!(
            store.attachment(&gone.hash).is_err(),
            "named by nothing: removed"
        );
    }
}
