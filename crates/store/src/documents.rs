//! Technical documents cached for this device's orders (issue 22).
//!
//! The engine keeps the table `documents` equal to the server's index (the documents
//! the device's open orders need, [`Store::set_document_index`]), decides what fits
//! the budget ([`Store::plan_documents`]), and downloads the rest range by range
//! ([`Store::append_document_range`], [`Store::finish_document`]).
//!
//! At rest a document is encrypted like an attachment (`attachments.rs`): the same
//! data key, and a file name that is the keyed hash of its SHA-256
//! ([`Store::private_file_name`]), so the disk tells nothing about which manuals are
//! here. Unlike a photo it may be hundreds of megabytes and arrives in pieces, so it
//! is kept as a sequence of records, one per downloaded range of
//! [`DOCUMENT_CHUNK_BYTES`]: `nonce || ciphertext || tag` under AES-256-GCM, with
//! `"<sha256>:<index>"` as associated data (a record moved within or between files
//! does not decrypt). A download in progress is the same file with `.part` appended;
//! only whole records count, so an interrupted download resumes from the last whole
//! range and never leaves plaintext on disk. Once complete, the whole content is
//! checked against its SHA-256 before the file takes its real name.
//!
//! Budget: documents of an order due today (open, scheduled before the end of the day
//! or not scheduled) are always kept, even past the budget (the state says so); the
//! others are kept most recently needed first while they fit, the rest are not
//! downloaded or are deleted (`held = 'budget'`). A document no open local order needs
//! any more goes (the order was reassigned, completed or left the device).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use outpost_protocol::limits::DOCUMENT_CHUNK_BYTES;
use outpost_protocol::wire::DocumentIndex;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use uuid::Uuid;

use crate::db::Store;
use crate::error::StoreError;
use crate::key::random_bytes;

/// Bytes a record adds to its range: the nonce and the tag.
const RECORD_OVERHEAD: u64 = (NONCE_LEN + 16) as u64;
/// One whole record on disk.
const RECORD_BYTES: u64 = DOCUMENT_CHUNK_BYTES + RECORD_OVERHEAD;

/// A document as the order shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentRow {
    pub id: String,
    pub version: u64,
    pub name: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    /// The whole file is on this device: it opens without a network.
    pub available_offline: bool,
    /// Bytes downloaded so far (of a download in progress).
    pub received: u64,
    /// Not kept: the documents budget is full.
    pub over_budget: bool,
    /// The local orders that need it.
    pub orders: Vec<String>,
}

/// A download to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentWork {
    pub id: String,
    pub sha256: String,
    pub size: u64,
    /// Bytes already here: resume from this offset.
    pub received: u64,
}

/// What fits the budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentPlan {
    /// Kept but not (wholly) here yet, due today first.
    pub fetch: Vec<DocumentWork>,
    /// Documents not kept for the budget (deleted if they were here).
    pub held: usize,
    /// Bytes the documents due today need, when more than the budget (all kept).
    pub today_over_budget: Option<u64>,
}

/// The documents' state for the sync status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DocumentsState {
    /// Documents the device's open orders need.
    pub listed: usize,
    /// Of those, on this device.
    pub cached: usize,
    /// Not kept: the budget is full.
    pub over_budget: usize,
    /// A warning in words (today's documents past the budget, downloads waiting for
    /// a better connection), or `None`.
    pub note: Option<String>,
}

/// The `kv` entry that holds the documents' warning for the status.
const NOTE_KEY: &str = "documents_note";

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        std::fs::File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

fn disk(e: std::io::Error) -> StoreError {
    if e.raw_os_error() == Some(28) {
        StoreError::DiskFull
    } else {
        StoreError::Io(e)
    }
}

/// A time as `needed_at` keeps it: fixed width, so that text order is time order.
fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The associated data of record `index` of the document `sha256`.
fn record_aad(sha256: &str, index: u64) -> String {
    format!("{sha256}:{index}")
}

impl Store {
    fn document_path(&self, sha256: &str) -> PathBuf {
        let name = self.private_file_name(sha256);
        self.paths.documents.join(&name[..2]).join(name)
    }

    fn document_part_path(&self, sha256: &str) -> PathBuf {
        let mut p = self.document_path(sha256).into_os_string();
        p.push(".part");
        PathBuf::from(p)
    }

    fn document_cipher(&self) -> Result<LessSafeKey, StoreError> {
        let key = UnboundKey::new(&AES_256_GCM, self.attachment_key.as_ref())
            .map_err(|_| StoreError::Crypto)?;
        Ok(LessSafeKey::new(key))
    }

    /// Delete the files (whole and partial) of `sha256` unless another document row
    /// still names those bytes.
    fn drop_document_files_if_unused(&self, sha256: &str) -> Result<(), StoreError> {
        let used: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM documents WHERE sha256 = ?1")?
            .query_row([sha256], |r| r.get(0))?;
        if used == 0 {
            self.drop_document_files(sha256)?;
        }
        Ok(())
    }

    fn drop_document_files(&self, sha256: &str) -> Result<(), StoreError> {
        for p in [self.document_path(sha256), self.document_part_path(sha256)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Make the local documents the server's index: new ones listed (not yet here), a
    /// new version's old bytes deleted, documents no longer listed deleted with their
    /// files. Returns how many were deleted.
    pub fn set_document_index(
        &mut self,
        index: &DocumentIndex,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let old: Vec<(String, String)> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id, sha256 FROM documents")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        let mut stale: Vec<String> = Vec::new();
        let mut deleted = 0;
        let now = instant(now);
        self.write(|tx, _| {
            for d in &index.items {
                if !outpost_protocol::validate::is_sha256_hex(&d.sha256) {
                    continue;
                }
                let id = d.id.to_string();
                if let Some((_, sha)) = old.iter().find(|(i, _)| *i == id) {
                    if *sha != d.sha256 {
                        stale.push(sha.clone());
                    }
                }
                tx.prepare_cached("INSERT INTO documents (id, version, name, media_type, size, sha256, cached, needed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)
                     ON CONFLICT (id) DO UPDATE SET
                       cached = CASE WHEN documents.sha256 = excluded.sha256 THEN documents.cached ELSE 0 END,
                       version = excluded.version, name = excluded.name,
                       media_type = excluded.media_type, size = excluded.size,
                       sha256 = excluded.sha256")?.execute(
                    params![id, d.version as i64, d.name, d.media_type, d.size as i64, d.sha256, now],
                )?;
                tx.prepare_cached("DELETE FROM document_orders WHERE document_id = ?1")?.execute( [&id])?;
                for o in &d.orders {
                    tx.prepare_cached("INSERT OR IGNORE INTO document_orders (document_id, order_id) VALUES (?1, ?2)")?.execute(
                        params![id, o.to_string()],
                    )?;
                }
            }
            for (id, sha) in &old {
                if !index.items.iter().any(|d| d.id.to_string() == *id) {
                    tx.prepare_cached("DELETE FROM document_orders WHERE document_id = ?1")?.execute( [id])?;
                    deleted += tx.prepare_cached("DELETE FROM documents WHERE id = ?1")?.execute( [id])?;
                    stale.push(sha.clone());
                }
            }
            Ok::<_, StoreError>(())
        })?;
        for sha in stale {
            self.drop_document_files_if_unused(&sha)?;
        }
        Ok(deleted)
    }

    /// Delete the documents no open local order needs any more (the order was
    /// reassigned, completed, cancelled or removed from this device). Returns how many.
    pub fn forget_unneeded_documents(&mut self) -> Result<usize, StoreError> {
        let gone: Vec<(String, String)> = {
            let mut stmt = self.conn.prepare(
                "SELECT d.id, d.sha256 FROM documents d WHERE NOT EXISTS (
                    SELECT 1 FROM document_orders l JOIN work_orders o ON o.id = l.order_id
                    WHERE l.document_id = d.id AND o.left_scope_to IS NULL
                      AND o.status NOT IN ('completed', 'cancelled'))",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        if gone.is_empty() {
            return Ok(0);
        }
        self.write(|tx, _| {
            for (id, _) in &gone {
                tx.prepare_cached("DELETE FROM document_orders WHERE document_id = ?1")?
                    .execute([id])?;
                tx.prepare_cached("DELETE FROM documents WHERE id = ?1")?
                    .execute([id])?;
            }
            Ok::<_, StoreError>(())
        })?;
        for (_, sha) in &gone {
            self.drop_document_files_if_unused(sha)?;
        }
        Ok(gone.len())
    }

    /// Decide what the budget keeps (`budget` bytes; `tomorrow`: the end of the day,
    /// before which an open order is due today), delete what it does not, and list
    /// what is still to download: due today first, then most recently needed.
    pub fn plan_documents(
        &mut self,
        budget: u64,
        tomorrow: DateTime<Utc>,
    ) -> Result<DocumentPlan, StoreError> {
        self.forget_unneeded_documents()?;
        // (id, sha256, size, cached, due today), best first.
        let rows: Vec<(String, String, u64, bool, bool)> = {
            let mut stmt = self.conn.prepare(
                "SELECT d.id, d.sha256, d.size, d.cached,
                        EXISTS (SELECT 1 FROM document_orders l JOIN work_orders o ON o.id = l.order_id
                                WHERE l.document_id = d.id AND o.left_scope_to IS NULL
                                  AND o.status NOT IN ('completed', 'cancelled')
                                  AND (o.scheduled_start IS NULL OR o.scheduled_start < ?1)) AS today
                 FROM documents d
                 ORDER BY today DESC, d.needed_at DESC, d.size, d.id",
            )?;
            let rows = stmt
                .query_map([tomorrow.to_rfc3339()], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get::<_, i64>(2)?.max(0) as u64,
                        r.get::<_, i64>(3)? != 0,
                        r.get::<_, i64>(4)? != 0,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        let mut plan = DocumentPlan::default();
        let mut used: u64 = 0;
        let mut today_bytes: u64 = 0;
        let mut counted: Vec<&str> = Vec::new();
        let mut kept: Vec<&str> = Vec::new();
        let mut held: Vec<(&str, &str)> = Vec::new();
        for (id, sha, size, cached, today) in &rows {
            // The same bytes under two ids are one file.
            let extra = if counted.contains(&sha.as_str()) {
                0
            } else {
                *size
            };
            if *today {
                today_bytes += extra;
            }
            if *today || used + extra <= budget {
                used += extra;
                counted.push(sha);
                kept.push(id);
                if !cached {
                    plan.fetch.push(DocumentWork {
                        id: id.clone(),
                        sha256: sha.clone(),
                        size: *size,
                        received: self.document_received(sha)?,
                    });
                }
            } else {
                held.push((id, sha));
            }
        }
        if today_bytes > budget {
            plan.today_over_budget = Some(today_bytes);
        }
        plan.held = held.len();
        self.write(|tx, _| {
            for id in &kept {
                tx.prepare_cached("UPDATE documents SET held = NULL WHERE id = ?1")?
                    .execute([id])?;
            }
            for (id, _) in &held {
                tx.prepare_cached(
                    "UPDATE documents SET held = 'budget', cached = 0 WHERE id = ?1",
                )?
                .execute([id])?;
            }
            Ok::<_, StoreError>(())
        })?;
        for (_, sha) in &held {
            if !rows
                .iter()
                .any(|(id, s, ..)| s == sha && kept.contains(&id.as_str()))
            {
                self.drop_document_files(sha)?;
            }
        }
        Ok(plan)
    }

    /// Bytes of `sha256` already downloaded (whole records of its partial file), or
    /// its size when the file is whole.
    fn document_received(&self, sha256: &str) -> Result<u64, StoreError> {
        match std::fs::metadata(self.document_part_path(sha256)) {
            Ok(m) => Ok(m.len() / RECORD_BYTES * DOCUMENT_CHUNK_BYTES),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Keep one downloaded range of a document: `bytes` from `offset`, which must be
    /// where the partial file ends (a multiple of [`DOCUMENT_CHUNK_BYTES`]), and a whole
    /// range unless it is the last. Encrypted and synced before it counts. Returns the
    /// bytes now here.
    pub fn append_document_range(
        &mut self,
        work: &DocumentWork,
        offset: u64,
        bytes: &[u8],
    ) -> Result<u64, StoreError> {
        let end = offset + bytes.len() as u64;
        let whole = bytes.len() as u64 == DOCUMENT_CHUNK_BYTES;
        if !offset.is_multiple_of(DOCUMENT_CHUNK_BYTES)
            || bytes.is_empty()
            || end > work.size
            || !(whole || end == work.size)
        {
            return Err(StoreError::Decode(format!(
                "a range of document {} that does not fit ({offset}+{} of {})",
                work.id,
                bytes.len(),
                work.size
            )));
        }
        let part = self.document_part_path(&work.sha256);
        let parent = part
            .parent()
            .ok_or_else(|| StoreError::Decode("document path has no parent".into()))?
            .to_path_buf();
        crate::durable::create_dir_all_durable(&parent).map_err(disk)?;
        let index = offset / DOCUMENT_CHUNK_BYTES;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&part)
            .map_err(disk)?;
        let have = file.metadata()?.len() / RECORD_BYTES;
        if have != index {
            return Err(StoreError::Decode(format!(
                "document {}: range {index} arrived, {have} are kept",
                work.id
            )));
        }
        // A torn record past the last whole one is dropped.
        file.set_len(have * RECORD_BYTES).map_err(disk)?;
        file.seek(SeekFrom::End(0))?;
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut sealed = bytes.to_vec();
        self.document_cipher()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(record_aad(&work.sha256, index).as_bytes()),
                &mut sealed,
            )
            .map_err(|_| StoreError::Crypto)?;
        file.write_all(&nonce).map_err(disk)?;
        file.write_all(&sealed).map_err(disk)?;
        file.sync_data().map_err(disk)?;
        Ok(end)
    }

    /// Read every record of `path` (a document of `size` bytes named `sha256`), in
    /// order, handing each range's plaintext to `each`; `false` when a record does not
    /// decrypt or the file is not `size` bytes of content.
    fn read_document_records(
        &self,
        path: &Path,
        sha256: &str,
        size: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<bool, StoreError> {
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let cipher = self.document_cipher()?;
        let records = size.div_ceil(DOCUMENT_CHUNK_BYTES);
        let mut buf = Vec::with_capacity(RECORD_BYTES as usize);
        for index in 0..records {
            let plain_len = if index + 1 == records {
                size - index * DOCUMENT_CHUNK_BYTES
            } else {
                DOCUMENT_CHUNK_BYTES
            };
            buf.clear();
            buf.resize((plain_len + RECORD_OVERHEAD) as usize, 0);
            if file.read_exact(&mut buf).is_err() {
                return Ok(false);
            }
            let (nonce, sealed) = buf.split_at_mut(NONCE_LEN);
            let Ok(nonce) = Nonce::try_assume_unique_for_key(nonce) else {
                return Ok(false);
            };
            let Ok(plain) = cipher.open_in_place(
                nonce,
                Aad::from(record_aad(sha256, index).as_bytes()),
                sealed,
            ) else {
                return Ok(false);
            };
            each(plain)?;
        }
        // Nothing may follow the last record.
        let mut rest = [0u8; 1];
        Ok(matches!(file.read(&mut rest), Ok(0)))
    }

    /// A downloaded document is whole: check its content against its SHA-256 and give
    /// the file its real name. A damaged download is deleted (it starts again).
    pub fn finish_document(&mut self, work: &DocumentWork) -> Result<(), StoreError> {
        let part = self.document_part_path(&work.sha256);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let whole = self.read_document_records(&part, &work.sha256, work.size, &mut |b| {
            ctx.update(b);
            Ok(())
        })?;
        if !whole || hex::encode(ctx.finish().as_ref()) != work.sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(StoreError::DocumentDamaged(work.id.clone()));
        }
        let path = self.document_path(&work.sha256);
        std::fs::rename(&part, &path).map_err(disk)?;
        if let Some(parent) = path.parent() {
            sync_dir(parent).map_err(disk)?;
        }
        self.conn
            .prepare_cached("UPDATE documents SET cached = 1 WHERE sha256 = ?1")?
            .execute([&work.sha256])?;
        Ok(())
    }

    fn document_rows(&self, filter: &str, arg: &str) -> Result<Vec<DocumentRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT d.id, d.version, d.name, d.media_type, d.size, d.sha256, d.cached, d.held,
                    (SELECT group_concat(order_id) FROM document_orders l WHERE l.document_id = d.id)
             FROM documents d WHERE {filter} ORDER BY d.name, d.id"
        ))?;
        let rows = stmt
            .query_map([arg], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)? != 0,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(
                |(id, version, name, media_type, size, sha256, cached, held, orders)| {
                    let size = size.max(0) as u64;
                    let received = if cached {
                        size
                    } else {
                        self.document_received(&sha256)?.min(size)
                    };
                    Ok(DocumentRow {
                        id,
                        version: version.max(0) as u64,
                        name,
                        media_type,
                        size,
                        available_offline: cached,
                        received,
                        over_budget: held.as_deref() == Some("budget"),
                        orders: orders
                            .map(|o| o.split(',').map(str::to_owned).collect())
                            .unwrap_or_default(),
                        sha256,
                    })
                },
            )
            .collect()
    }

    /// The documents an order needs, as this device knows them.
    pub fn order_documents(&self, order_id: &str) -> Result<Vec<DocumentRow>, StoreError> {
        self.document_rows(
            "d.id IN (SELECT document_id FROM document_orders WHERE order_id = ?1)",
            order_id,
        )
    }

    /// Every document this device knows.
    pub fn all_documents(&self) -> Result<Vec<DocumentRow>, StoreError> {
        self.document_rows("?1 = ?1", "")
    }

    /// One document by id.
    pub fn document(&self, id: &str) -> Result<Option<DocumentRow>, StoreError> {
        Ok(self.document_rows("d.id = ?1", id)?.into_iter().next())
    }

    /// Decrypt a cached document to `out` (written to a temporary name beside it,
    /// synced and renamed, so a failed export leaves nothing); counts as needed now.
    /// Returns the bytes written.
    pub fn export_document(
        &mut self,
        id: &str,
        out: &Path,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let doc = self
            .document(id)?
            .filter(|d| d.available_offline)
            .ok_or_else(|| StoreError::DocumentNotCached(id.to_owned()))?;
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            out.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Uuid::new_v4().simple()
        ));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp).map_err(disk)?;
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            let whole = self.read_document_records(
                &self.document_path(&doc.sha256),
                &doc.sha256,
                doc.size,
                &mut |b| {
                    ctx.update(b);
                    file.write_all(b).map_err(disk)
                },
            )?;
            if !whole || hex::encode(ctx.finish().as_ref()) != doc.sha256 {
                return Err(StoreError::DocumentDamaged(id.to_owned()));
            }
            file.sync_all().map_err(disk)?;
            std::fs::rename(&tmp, out).map_err(disk)?;
            Ok(doc.size)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        if let Err(StoreError::DocumentDamaged(_)) = &result {
            self.mark_document_damaged(&doc.sha256)?;
        }
        let size = result?;
        self.touch_document(id, now)?;
        Ok(size)
    }

    /// A cached document's bytes, decrypted and checked (for a viewer); counts as
    /// needed now.
    pub fn document_bytes(&mut self, id: &str, now: DateTime<Utc>) -> Result<Vec<u8>, StoreError> {
        let doc = self
            .document(id)?
            .filter(|d| d.available_offline)
            .ok_or_else(|| StoreError::DocumentNotCached(id.to_owned()))?;
        let mut out = Vec::with_capacity(doc.size as usize);
        let whole = self.read_document_records(
            &self.document_path(&doc.sha256),
            &doc.sha256,
            doc.size,
            &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            },
        )?;
        if !whole || outpost_protocol::attachment_hash(&out) != doc.sha256 {
            self.mark_document_damaged(&doc.sha256)?;
            return Err(StoreError::DocumentDamaged(id.to_owned()));
        }
        self.touch_document(id, now)?;
        Ok(out)
    }

    /// A damaged file goes; the next sync downloads it again.
    fn mark_document_damaged(&mut self, sha256: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE documents SET cached = 0 WHERE sha256 = ?1")?
            .execute([sha256])?;
        self.drop_document_files(sha256)
    }

    fn touch_document(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE documents SET needed_at = ?2 WHERE id = ?1")?
            .execute(params![id, instant(now)])?;
        Ok(())
    }

    /// Keep the documents' warning for the status (`None` clears it).
    pub fn set_documents_note(&mut self, note: Option<&str>) -> Result<(), StoreError> {
        match note {
            Some(n) => self.set_setting(NOTE_KEY, n),
            None => {
                self.conn
                    .prepare_cached("DELETE FROM kv WHERE key = ?1")?
                    .execute([NOTE_KEY])?;
                Ok(())
            }
        }
    }

    /// The documents' counts and warning, for the status.
    pub fn documents_state(&self) -> Result<DocumentsState, StoreError> {
        let (listed, cached, over): (i64, i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT count(*), coalesce(sum(cached), 0),
                    coalesce(sum(CASE WHEN held = 'budget' THEN 1 ELSE 0 END), 0)
             FROM documents",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let note: Option<String> = self
            .conn
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
            .query_row([NOTE_KEY], |r| r.get(0))
            .optional()?;
        Ok(DocumentsState {
            listed: listed.max(0) as usize,
            cached: cached.max(0) as usize,
            over_budget: over.max(0) as usize,
            note,
        })
    }
}
