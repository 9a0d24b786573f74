//! Encrypted attachment files (photos, signatures).
//!
//! Each file is named by the SHA-256 of its plaintext and holds `nonce || ciphertext ||
//! tag` under AES-256-GCM with the data key kept inside the database (so a re-key of
//! the database never touches them). The hash is the associated data, so a file moved
//! under another name fails to decrypt. Files are written to a temporary name, synced
//! and renamed, so a crash never leaves a half-written attachment under a real name.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::db::Store;
use crate::error::StoreError;
use crate::key::random_bytes;

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

pub(crate) fn file_path(dir: &Path, hash: &str) -> PathBuf {
    dir.join(&hash[..2]).join(hash)
}

impl Store {
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
        let path = file_path(&self.paths.attachments, &hash);
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
            std::fs::create_dir_all(parent)?;
            let tmp = parent.join(format!(".{hash}.tmp"));
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
        self.conn.execute(
            "INSERT OR IGNORE INTO attachments (hash, size, media_type, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![hash, size as i64, media_type, now.to_rfc3339()],
        )?;
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
        let path = file_path(&self.paths.attachments, hash);
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

    /// Hashes of attachments not yet uploaded, oldest first.
    pub fn attachments_pending_upload(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT hash FROM attachments WHERE uploaded = 0 ORDER BY created_at")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Delete attachment files that nothing needs any more: uploaded, and named by no
    /// local order, no unacknowledged (pending, sent or failed) mutation and no open
    /// conflict. Returns how many were removed.
    pub fn prune_attachments(&mut self) -> Result<usize, StoreError> {
        let doomed: Vec<String> = {
            let mut stmt = self.conn.prepare(
                "SELECT a.hash FROM attachments a
                 WHERE a.uploaded = 1
                   AND NOT EXISTS (SELECT 1 FROM outbox b WHERE instr(b.body, a.hash) > 0)
                   AND NOT EXISTS (SELECT 1 FROM work_orders o WHERE instr(o.body, a.hash) > 0)
                   AND NOT EXISTS (SELECT 1 FROM sync_records r
                                   WHERE r.status = 'open' AND instr(r.body, a.hash) > 0)",
            )?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        for hash in &doomed {
            let path = file_path(&self.paths.attachments, hash);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.conn
                .execute("DELETE FROM attachments WHERE hash = ?1", [hash])?;
        }
        Ok(doomed.len())
    }

    pub fn attachment_meta(&self, hash: &str) -> Result<Option<AttachmentMeta>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT hash, size, media_type FROM attachments WHERE hash = ?1",
                [hash],
                |r| {
                    Ok(AttachmentMeta {
                        hash: r.get(0)?,
                        size: r.get::<_, i64>(1)? as u64,
                        media_type: r.get(2)?,
                    })
                },
            )
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
}
