//! Technical documents (issue 22): manuals, drawings and the like that an administrator
//! adds (`outpost-server documents add`) and links to equipment models, asset tags or
//! orders, and that devices cache for the open orders of their technician.
//!
//! Bytes are named by their SHA-256 like attachments, but a document can be far larger
//! (manuals of 50–200 MB exist), so they never pass through memory whole: an incoming
//! file is streamed to a temporary file in the documents directory while it is hashed
//! and counted (refused past [`Storage::max_bytes`] with 413), synced, and then either
//! read into the database row (up to [`Storage::inline_max`]) or renamed to
//! `<dir>/<first two hex digits>/<sha256>`. Reads stream from there, by range.
//!
//! Who may read a document: staff, and a user to whom an order linked to it is assigned
//! (linked directly, or through the order's equipment model or asset tag). For anyone
//! else a document does not exist: 404, never 403, so its existence does not leak.
//! The index a device caches from ([`index`]) lists the documents of the caller's
//! *open* assigned orders.
//!
//! A new version: adding a file with the same name and the same links as a document
//! that is not removed replaces that document's file (same id, `version` + 1), as does
//! `--replace ID`. Devices see the new SHA-256 in their next index and fetch it.
//!
//! Files are added on the server's host (`documents add`, no request timeout) or by
//! staff over HTTP (`POST /v1/documents`, within the request timeout); both take the
//! same path through [`Storage::begin`] and [`add`].
//!
//! Left out on purpose: document history (only the current file is kept).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use outpost_protocol::wire::{DocumentIndex, DocumentInfo, ErrorCode};
use outpost_protocol::Status;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::{Sql, V};
use crate::error::{ApiError, Error};

/// What a link names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// An order's `equipment.model`.
    Model,
    /// An order's `equipment.asset_tag`.
    Asset,
    /// An order id.
    Order,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Model => "model",
            LinkKind::Asset => "asset",
            LinkKind::Order => "order",
        }
    }

    fn parse(s: &str) -> Result<LinkKind, Error> {
        match s {
            "model" => Ok(LinkKind::Model),
            "asset" => Ok(LinkKind::Asset),
            "order" => Ok(LinkKind::Order),
            other => Err(Error::store(format!(
                "unknown document link kind {other:?}"
            ))),
        }
    }
}

/// One link of a document: matched exactly against an order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Link {
    pub kind: LinkKind,
    pub target: String,
}

impl Link {
    fn matches(&self, o: &OrderKeys) -> bool {
        match self.kind {
            LinkKind::Model => !o.model.is_empty() && o.model == self.target,
            LinkKind::Asset => !o.asset.is_empty() && o.asset == self.target,
            LinkKind::Order => o.id.to_string() == self.target,
        }
    }
}

/// A document as `documents list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentRow {
    pub id: Uuid,
    pub name: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    pub version: u64,
    pub added_us: i64,
    pub removed: bool,
    pub links: Vec<Link>,
}

/// Where and how documents' bytes are kept.
#[derive(Debug, Clone)]
pub struct Storage {
    /// Large files, and every incoming file while it arrives.
    pub dir: PathBuf,
    /// Files up to this size go into the database's row.
    pub inline_max: u64,
    /// The largest document taken.
    pub max_bytes: u64,
    /// The devices' documents budget the administrator set (`None`: the devices'
    /// default); a budget set on a device wins.
    pub device_budget: Option<u64>,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            dir: std::env::temp_dir().join("outpost-server-documents"),
            inline_max: outpost_protocol::limits::DOCUMENT_INLINE_BYTES_DEFAULT,
            max_bytes: outpost_protocol::limits::DOCUMENT_BYTES_MAX_DEFAULT,
            device_budget: None,
        }
    }
}

/// The documents directory beside a SQLite database (`sqlite:PATH` or a bare path):
/// `documents` in the database file's directory. `None` for PostgreSQL, which has no
/// file to stand beside.
pub fn dir_beside(db_url: &str) -> Option<PathBuf> {
    if db_url.starts_with("postgres://") || db_url.starts_with("postgresql://") {
        return None;
    }
    let path = db_url.strip_prefix("sqlite:").unwrap_or(db_url);
    let path = path.strip_prefix("//").unwrap_or(path);
    let parent = Path::new(path).parent()?;
    Some(if parent.as_os_str().is_empty() {
        PathBuf::from("documents")
    } else {
        parent.join("documents")
    })
}

/// The media type of a file, from its name's extension.
pub fn media_type_of(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "txt" | "text" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        _ => "application/octet-stream",
    }
}

/// A file received into the documents directory under a temporary name, synced.
#[derive(Debug)]
pub struct Received {
    tmp: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// A file arriving: written to a temporary file as it comes, hashed and counted. Dropped
/// before [`Incoming::finish`] (refused, or the sender went away), it leaves nothing.
pub struct Incoming {
    storage: Storage,
    tmp: PathBuf,
    file: Option<std::fs::File>,
    ctx: ring::digest::Context,
    size: u64,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("tmp", &self.tmp)
            .field("size", &self.size)
            .finish()
    }
}

impl Incoming {
    /// The next bytes; 413 once the file passes the size limit.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.size += bytes.len() as u64;
        if self.size > self.storage.max_bytes {
            return Err(self.storage.too_large(self.size).into());
        }
        self.ctx.update(bytes);
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::store("the document's file is closed"))?;
        file.write_all(bytes)
            .map_err(|e| io("writing", &self.tmp, e))
    }

    /// All bytes are here: sync the temporary file.
    pub fn finish(mut self) -> Result<Received, Error> {
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::store("the document's file is closed"))?;
        file.sync_all().map_err(|e| io("syncing", &self.tmp, e))?;
        Ok(Received {
            tmp: std::mem::take(&mut self.tmp),
            size: self.size,
            sha256: hex::encode(self.ctx.clone().finish().as_ref()),
        })
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Where a received file's bytes went.
#[derive(Debug)]
pub enum Placed {
    /// Into the database row.
    Inline(Vec<u8>),
    /// Renamed to its file in the documents directory.
    File,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(28) {
        Error::DiskFull(format!("{what} {}: {e}", path.display()))
    } else {
        Error::store(format!("{what} {}: {e}", path.display()))
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    if cfg!(unix) {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("syncing", dir, e))?;
    }
    Ok(())
}

impl Storage {
    /// The file of the bytes whose SHA-256 is `sha256` (when not inline).
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2.min(sha256.len())]).join(sha256)
    }

    /// The 413 answer for a document of `size` bytes (or more).
    pub fn too_large(&self, size: u64) -> ApiError {
        ApiError::new(
            413,
            ErrorCode::PayloadTooLarge,
            format!(
                "the document is {} bytes or more; this server takes documents up to {} bytes \
                 (outpost-server serve --document-max-bytes)",
                size, self.max_bytes
            ),
        )
    }

    /// Start receiving a file into a temporary file in the documents directory.
    pub fn begin(&self) -> Result<Incoming, Error> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io("creating", &self.dir, e))?;
        let tmp = self.dir.join(format!(".incoming-{}", Uuid::new_v4()));
        let file = std::fs::File::create(&tmp).map_err(|e| io("creating", &tmp, e))?;
        Ok(Incoming {
            storage: self.clone(),
            tmp,
            file: Some(file),
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            size: 0,
        })
    }

    /// Stream `reader` into a temporary file in the documents directory, hashing and
    /// counting; refused (413, the temporary file removed) as soon as it passes
    /// [`Storage::max_bytes`].
    pub fn receive(&self, mut reader: impl Read) -> Result<Received, Error> {
        let mut incoming = self.begin()?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::store(format!("reading the document: {e}"))),
            };
            incoming.write(&buf[..n])?;
        }
        incoming.finish()
    }

    /// Put a received file where it is kept: its bytes for the row when small, else
    /// renamed to its file (synced). The temporary file is gone either way.
    pub fn place(&self, r: Received) -> Result<Placed, Error> {
        let result = (|| {
            if r.size <= self.inline_max {
                let bytes = std::fs::read(&r.tmp).map_err(|e| io("reading", &r.tmp, e))?;
                return Ok(Placed::Inline(bytes));
            }
            let path = self.blob_path(&r.sha256);
            let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
            std::fs::create_dir_all(&parent).map_err(|e| io("creating", &parent, e))?;
            std::fs::rename(&r.tmp, &path).map_err(|e| io("renaming to", &path, e))?;
            sync_dir(&parent)?;
            Ok(Placed::File)
        })();
        let _ = std::fs::remove_file(&r.tmp);
        result
    }

    /// Delete the file of bytes no document names any more (after the transaction
    /// that dropped their row committed). A missing file is fine.
    pub fn delete_file(&self, sha256: &str) {
        let path = self.blob_path(sha256);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), "an unused document file stays: {e}"),
        }
    }
}

/// What `documents add` is given besides the file.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub name: String,
    pub media_type: String,
    pub links: Vec<Link>,
    /// Replace this document's file (else: the document with the same name and links,
    /// if any).
    pub replace: Option<Uuid>,
}

/// What an add did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub id: Uuid,
    pub version: u64,
    /// Whether an existing document got the new file.
    pub replaced: bool,
    /// Bytes no document names any more: their file is deleted after the commit.
    pub orphan: Option<String>,
}

fn links_of(sql: &mut dyn Sql, id: &str) -> Result<Vec<Link>, Error> {
    let mut links = sql
        .query(
            "SELECT kind, target FROM document_links WHERE document_id = ?1",
            &[id.into()],
        )?
        .iter()
        .map(|r| {
            Ok(Link {
                kind: LinkKind::parse(&r.text(0)?)?,
                target: r.text(1)?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    links.sort();
    Ok(links)
}

/// Drop the row of `sha256`'s bytes when no document that is not removed names them;
/// the SHA-256 when it was dropped (its file, if any, goes after the commit).
fn drop_unused_blob(sql: &mut dyn Sql, sha256: &str) -> Result<Option<String>, Error> {
    let used = sql.query(
        "SELECT 1 FROM documents WHERE sha256 = ?1 AND removed = 0 LIMIT 1",
        &[sha256.into()],
    )?;
    if used.is_empty() {
        sql.exec(
            "DELETE FROM document_blobs WHERE sha256 = ?1",
            &[sha256.into()],
        )?;
        Ok(Some(sha256.to_owned()))
    } else {
        Ok(None)
    }
}

/// Whether the bytes of `sha256` are known (inline or in a file).
pub fn has_blob(sql: &mut dyn Sql, sha256: &str) -> Result<bool, Error> {
    Ok(!sql
        .query(
            "SELECT 1 FROM document_blobs WHERE sha256 = ?1",
            &[sha256.into()],
        )?
        .is_empty())
}

/// Receive nothing more: put `received` where it is kept and record it (`new`), then
/// delete the file of bytes no document names any more. The one way a file becomes
/// a document, for the command line and HTTP alike.
pub async fn store(
    db: &crate::Db,
    storage: &Storage,
    new: NewDocument,
    received: Received,
    now_us: i64,
) -> Result<(Added, u64, String), Error> {
    let (sha256, size) = (received.sha256.clone(), received.size);
    let placed = {
        let storage = storage.clone();
        tokio::task::spawn_blocking(move || storage.place(received))
            .await
            .map_err(|e| Error::store(format!("placing a document: {e}")))??
    };
    let inline = match placed {
        Placed::Inline(b) => Some(b),
        Placed::File => None,
    };
    let sha = sha256.clone();
    let added = db
        .write(move |sql| add(sql, &new, (&sha, size), inline, now_us))
        .await?;
    if let Some(old) = &added.orphan {
        // Only if no add of the same bytes committed since.
        let o = old.clone();
        if !db.read(move |sql| has_blob(sql, &o)).await? {
            storage.delete_file(old);
        }
    }
    Ok((added, size, sha256))
}

/// Record a document (or a new version of one) whose bytes are placed: `inline` holds
/// them when they go into the row.
pub fn add(
    sql: &mut dyn Sql,
    new: &NewDocument,
    (sha256, size): (&str, u64),
    inline: Option<Vec<u8>>,
    now_us: i64,
) -> Result<Added, Error> {
    if new.links.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "link the document to at least one model, asset or order",
        )
        .into());
    }
    let mut wanted = new.links.clone();
    wanted.sort();
    wanted.dedup();
    // The document this file replaces: the one named, or the one with the same name
    // and links.
    let existing: Option<(String, u64, String)> = match new.replace {
        Some(id) => {
            let rows = sql.query(
                "SELECT id, version, sha256 FROM documents WHERE id = ?1 AND removed = 0",
                &[id.into()],
            )?;
            let Some(r) = rows.first() else {
                return Err(ApiError::not_found(format!("no document {id} to replace")).into());
            };
            Some((r.text(0)?, r.u64(1)?, r.text(2)?))
        }
        None => {
            let rows = sql.query(
                "SELECT id, version, sha256 FROM documents WHERE name = ?1 AND removed = 0 ORDER BY id",
                &[new.name.as_str().into()],
            )?;
            let mut found = None;
            for r in rows {
                let id = r.text(0)?;
                if links_of(sql, &id)? == wanted {
                    found = Some((id, r.u64(1)?, r.text(2)?));
                    break;
                }
            }
            found
        }
    };
    if !has_blob(sql, sha256)? {
        sql.exec(
            "INSERT INTO document_blobs (sha256, size, data) VALUES (?1, ?2, ?3)",
            &[sha256.into(), size.into(), V::B(inline)],
        )?;
    }
    let added = match existing {
        Some((id, version, old_sha)) => {
            let version = version + 1;
            sql.exec(
                "UPDATE documents SET name = ?2, media_type = ?3, size = ?4, sha256 = ?5,
                 version = ?6, added_us = ?7 WHERE id = ?1",
                &[
                    id.as_str().into(),
                    new.name.as_str().into(),
                    new.media_type.as_str().into(),
                    size.into(),
                    sha256.into(),
                    version.into(),
                    now_us.into(),
                ],
            )?;
            if new.replace.is_some() {
                sql.exec(
                    "DELETE FROM document_links WHERE document_id = ?1",
                    &[id.as_str().into()],
                )?;
                insert_links(sql, &id, &wanted)?;
            }
            let orphan = if old_sha == sha256 {
                None
            } else {
                drop_unused_blob(sql, &old_sha)?
            };
            Added {
                id: Uuid::parse_str(&id).map_err(|e| Error::store(format!("document id: {e}")))?,
                version,
                replaced: true,
                orphan,
            }
        }
        None => {
            let id = Uuid::new_v4();
            sql.exec(
                "INSERT INTO documents (id, name, media_type, size, sha256, version, added_us, removed)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, 0)",
                &[
                    id.into(),
                    new.name.as_str().into(),
                    new.media_type.as_str().into(),
                    size.into(),
                    sha256.into(),
                    now_us.into(),
                ],
            )?;
            insert_links(sql, &id.to_string(), &wanted)?;
            Added {
                id,
                version: 1,
                replaced: false,
                orphan: None,
            }
        }
    };
    Ok(added)
}

fn insert_links(sql: &mut dyn Sql, id: &str, links: &[Link]) -> Result<(), Error> {
    for l in links {
        sql.exec(
            "INSERT INTO document_links (document_id, kind, target) VALUES (?1, ?2, ?3)",
            &[id.into(), l.kind.as_str().into(), l.target.as_str().into()],
        )?;
    }
    Ok(())
}

/// Remove a document: devices drop it on their next sync. `None` when there is no
/// such document (or it was removed already); else the bytes no document names any
/// more, whose file goes after the commit.
pub fn remove(sql: &mut dyn Sql, id: Uuid) -> Result<Option<Option<String>>, Error> {
    let rows = sql.query(
        "SELECT sha256 FROM documents WHERE id = ?1 AND removed = 0",
        &[id.into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let sha = r.text(0)?;
    sql.exec(
        "UPDATE documents SET removed = 1 WHERE id = ?1",
        &[id.into()],
    )?;
    Ok(Some(drop_unused_blob(sql, &sha)?))
}

fn row_of(sql: &mut dyn Sql, r: &crate::db::Row) -> Result<DocumentRow, Error> {
    let id = r.text(0)?;
    Ok(DocumentRow {
        id: Uuid::parse_str(&id).map_err(|e| Error::store(format!("document id: {e}")))?,
        name: r.text(1)?,
        media_type: r.text(2)?,
        size: r.u64(3)?,
        sha256: r.text(4)?,
        version: r.u64(5)?,
        added_us: r.i64(6)?,
        removed: r.i64(7)? != 0,
        links: links_of(sql, &id)?,
    })
}

const DOCUMENT_COLUMNS: &str =
    "SELECT id, name, media_type, size, sha256, version, added_us, removed FROM documents";

/// Every document (removed ones too when asked), by name.
pub fn list(sql: &mut dyn Sql, include_removed: bool) -> Result<Vec<DocumentRow>, Error> {
    let rows = sql.query(
        &format!("{DOCUMENT_COLUMNS} WHERE removed = 0 OR ?1 = 1 ORDER BY name, id"),
        &[include_removed.into()],
    )?;
    rows.iter().map(|r| row_of(sql, r)).collect()
}

/// One document that is not removed.
pub fn get(sql: &mut dyn Sql, id: Uuid) -> Result<Option<DocumentRow>, Error> {
    let rows = sql.query(
        &format!("{DOCUMENT_COLUMNS} WHERE id = ?1 AND removed = 0"),
        &[id.into()],
    )?;
    match rows.first() {
        Some(r) => Ok(Some(row_of(sql, r)?)),
        None => Ok(None),
    }
}

/// What links match on an order.
#[derive(Debug)]
struct OrderKeys {
    id: Uuid,
    model: String,
    asset: String,
    open: bool,
}

/// The fields of an order's body that links match on; the rest of the body is
/// skipped, not decoded (a technician's index reads every order assigned to them).
#[derive(Deserialize)]
struct KeysOfOrder {
    id: Uuid,
    status: Status,
    #[serde(default)]
    equipment: KeysOfEquipment,
}

#[derive(Deserialize, Default)]
struct KeysOfEquipment {
    #[serde(default)]
    asset_tag: String,
    #[serde(default)]
    model: String,
}

/// The orders assigned to `username`, with what links match on.
fn orders_of(sql: &mut dyn Sql, username: &str) -> Result<Vec<OrderKeys>, Error> {
    let rows = sql.query(
        "SELECT body FROM orders WHERE assignee = ?1",
        &[username.into()],
    )?;
    rows.iter()
        .map(|r| {
            let o: KeysOfOrder = serde_json::from_str(&r.text(0)?)?;
            Ok(OrderKeys {
                id: o.id,
                model: o.equipment.model,
                asset: o.equipment.asset_tag,
                open: !o.status.is_terminal(),
            })
        })
        .collect()
}

/// The documents the caller's open orders need, each with those orders.
pub fn index(sql: &mut dyn Sql, who: &Principal) -> Result<DocumentIndex, Error> {
    let documents = list(sql, false)?;
    if documents.is_empty() {
        return Ok(DocumentIndex::default());
    }
    let orders: Vec<OrderKeys> = orders_of(sql, &who.username)?
        .into_iter()
        .filter(|o| o.open)
        .collect();
    if orders.is_empty() {
        return Ok(DocumentIndex::default());
    }
    let mut items: BTreeMap<Uuid, DocumentInfo> = BTreeMap::new();
    for doc in documents {
        let mut needed: Vec<Uuid> = orders
            .iter()
            .filter(|o| doc.links.iter().any(|l| l.matches(o)))
            .map(|o| o.id)
            .collect();
        if needed.is_empty() {
            continue;
        }
        needed.sort();
        items.insert(
            doc.id,
            DocumentInfo {
                id: doc.id,
                version: doc.version,
                name: doc.name,
                media_type: doc.media_type,
                size: doc.size,
                sha256: doc.sha256,
                orders: needed,
            },
        );
    }
    Ok(DocumentIndex {
        items: items.into_values().collect(),
        budget_bytes: None,
    })
}

/// A document the caller may read, with its bytes when they are in the row (else
/// they are in [`Storage::blob_path`]). Not found, removed, or not the caller's to
/// read: 404 alike.
pub fn readable(
    sql: &mut dyn Sql,
    who: &Principal,
    id: Uuid,
) -> Result<(DocumentRow, Option<Vec<u8>>), Error> {
    let not_found = || Error::from(ApiError::not_found("no such document"));
    let doc = get(sql, id)?.ok_or_else(not_found)?;
    if !who.is_staff() {
        let orders = orders_of(sql, &who.username)?;
        let linked = orders
            .iter()
            .any(|o| doc.links.iter().any(|l| l.matches(o)));
        if !linked {
            return Err(not_found());
        }
    }
    let rows = sql.query(
        "SELECT data FROM document_blobs WHERE sha256 = ?1",
        &[doc.sha256.as_str().into()],
    )?;
    let inline = match rows.first() {
        None => return Err(Error::store(format!("document {id} has no bytes"))),
        Some(r) => match r.0.first() {
            Some(V::B(Some(b))) => Some(b.clone()),
            _ => None,
        },
    };
    Ok((doc, inline))
}

/// The one byte range a `Range` header asks for, as `(start, end)` with `end`
/// exclusive, for a file of `size` bytes. `Ok(None)`: no usable range, send the whole
/// file (a header this server does not read, like several ranges, is ignored as HTTP
/// allows). `Err(())`: a range that starts past the end (416).
#[allow(clippy::result_unit_err)]
pub fn byte_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // The last N bytes.
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 {
            return Err(());
        }
        return Ok(Some((size.saturating_sub(n), size)));
    }
    let Ok(start) = a.parse::<u64>() else {
        return Ok(None);
    };
    if start >= size {
        return Err(());
    }
    let end = if b.is_empty() {
        size
    } else {
        match b.parse::<u64>() {
            Ok(last) if last >= start => last.saturating_add(1).min(size),
            _ => return Ok(None),
        }
    };
    Ok(Some((start, end)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_range_header_is_read_as_http_says_and_a_range_past_the_end_is_refused() {
        assert_eq!(byte_range("bytes=0-", 10), Ok(Some((0, 10))));
        assert_eq!(byte_range("bytes=4-", 10), Ok(Some((4, 10))));
        assert_eq!(byte_range("bytes=2-5", 10), Ok(Some((2, 6))));
        assert_eq!(byte_range("bytes=2-50", 10), Ok(Some((2, 10))));
        assert_eq!(byte_range("bytes=-3", 10), Ok(Some((7, 10))));
        assert_eq!(byte_range("bytes=10-", 10), Err(()));
        assert_eq!(byte_range("bytes=0-1,4-5", 10), Ok(None));
        assert_eq!(byte_range("lines=1-2", 10), Ok(None));
        assert_eq!(byte_range("bytes=5-2", 10), Ok(None));
    }

    #[test]
    fn a_document_past_the_size_limit_is_refused_with_413_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage {
            dir: dir.path().join("documents"),
            inline_max: 10,
            max_bytes: 1000,
            device_budget: None,
        };
        let err = storage.receive(&[7u8; 1001][..]).unwrap_err();
        match err {
            Error::Api(e) => {
                assert_eq!(e.status, 413);
                assert_eq!(e.body.code, ErrorCode::PayloadTooLarge);
                assert!(
                    e.body.message.contains("up to 1000 bytes")
                        && e.body.message.contains("--document-max-bytes"),
                    "{}",
                    e.body.message
                );
            }
            other => panic!("{other:?}"),
        }
        let left: Vec<_> = std::fs::read_dir(&storage.dir).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        // At the limit it is taken: inline when small, else a file named by its hash.
        let r = storage.receive(&[7u8; 1000][..]).unwrap();
        let sha = r.sha256.clone();
        assert!(matches!(storage.place(r).unwrap(), Placed::File));
        assert_eq!(
            std::fs::read(storage.blob_path(&sha)).unwrap(),
            vec![7u8; 1000]
        );
        let r = storage.receive(&b"small"[..]).unwrap();
        assert!(matches!(storage.place(r).unwrap(), Placed::Inline(b) if b == b"small"));
    }
}
