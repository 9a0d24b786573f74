//! Attachments: content-addressed (named by the SHA-256 of their bytes), uploaded in
//! chunks that resume from the last stored byte, verified before they count.
//!
//! Bytes live in the database (`attachment_chunks`), so every server instance over one
//! PostgreSQL database serves them and a backup of the database holds them. A file is
//! "complete" only once all its bytes are stored and their hash matches its name; a
//! completion naming it is applied only then. Small files may come several to a request.
//!
//! Who may use a file (issue 19 item 4): an upload in progress belongs to its uploader
//! (`attachment_uploads`: another user's chunks go to their own upload, never into
//! someone else's); a user who sent a file's verified bytes holds it
//! (`attachment_holders`), even when the server had them already (an uploader always
//! sends the bytes: knowing a hash proves nothing). A user may read a file they hold,
//! one an order in their scope refers to, or any file if they are staff; `status`
//! answers "never uploaded" for anything else. A push that refers to a stored file its
//! technician may not read answers `missing_attachments` for it ([`unreadable`]), so a
//! reference to someone else's stored bytes grants nothing by itself. Left open (issue
//! A reference to a file *not yet stored* is accepted (deferred photo uploads need it)
//! and records who made it (`attachment_claims`, [`claim_unstored`]): that user reads
//! the file only once they send its bytes themselves, so bytes someone else uploads
//! later do not become readable through the reference.
//!
//! Storage quota (issue 19 item 7): each user may hold at most [`Quota::bytes`] of
//! files (those they sent, plus the full size of their uploads in progress). A file
//! that would go past it is refused before any of its bytes are stored: 413
//! `quota_exceeded` (protocol 1 clients: `payload_too_large`, which they also set the
//! completion aside for), so the device sets aside the completion that names it, with
//! the reason, instead of sending it again.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use outpost_protocol::compat;
use outpost_protocol::validate::is_sha256_hex;
use outpost_protocol::wire::{
    limits, AttachmentStatus, BatchFile, BatchFileResult, ErrorBody, ErrorCode,
};

use crate::auth::Principal;
use crate::db::Sql;
use crate::error::{ApiError, Error};
use crate::repo::{self, AttachmentRow};

pub fn check_hash(hash: &str) -> Result<(), ApiError> {
    if is_sha256_hex(hash) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "an attachment is named by the lowercase hex SHA-256 of its bytes",
        ))
    }
}

/// A user's storage quota for files, and the protocol its refusal is worded for.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub bytes: u64,
    /// The client's protocol (`quota_exceeded` is new in protocol 2).
    pub protocol: u32,
}

impl Quota {
    /// The refusal when `who` may not store `total` more bytes, else `None`.
    fn check(
        self,
        sql: &mut dyn Sql,
        who: &Principal,
        total: u64,
    ) -> Result<Option<ErrorBody>, Error> {
        let used = repo::storage_used(sql, &who.username)?;
        Ok(self.refusal(used, total))
    }

    /// The refusal when a user who stores `used` bytes may not store `total` more.
    fn refusal(self, used: u64, total: u64) -> Option<ErrorBody> {
        if used.saturating_add(total) <= self.bytes {
            return None;
        }
        let code = if self.protocol >= compat::since::QUOTA_EXCEEDED {
            ErrorCode::QuotaExceeded
        } else {
            ErrorCode::PayloadTooLarge
        };
        Some(ErrorBody::new(
            code,
            format!(
                "your storage quota for photos and signatures is used up: {used} of {} bytes \
                 stored, and this file needs {total}; ask your administrator to raise it",
                self.bytes
            ),
        ))
    }
}

fn status_of(hash: &str, row: Option<&AttachmentRow>) -> AttachmentStatus {
    AttachmentStatus {
        hash: hash.to_owned(),
        received: row.map_or(0, |r| r.received),
        total: row.and_then(|r| r.total),
        complete: row.is_some_and(|r| r.complete),
    }
}

/// Whether `who` may read the complete file `hash`: staff, a holder, or a technician
/// an order of whose refers to it.
pub fn may_read(sql: &mut dyn Sql, who: &Principal, hash: &str) -> Result<bool, Error> {
    Ok(who.is_staff()
        || repo::is_holder(sql, hash, &who.username)?
        || repo::attachment_visible_to(sql, hash, &who.username)?)
}

/// Of the files `hashes`, those the server stores but `who` may not read: a push may
/// refer to them only once `who` has sent their bytes. A file not stored yet may be
/// referred to (a photo whose upload waits for a better link; a completion still needs
/// its files stored, see `push`), and `who` becomes its holder by uploading it.
pub fn unreadable(
    sql: &mut dyn Sql,
    who: &Principal,
    hashes: &[String],
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for h in hashes {
        let stored = repo::get_attachment(sql, h)?.is_some_and(|r| r.complete);
        if stored && !may_read(sql, who, h)? && !out.contains(h) {
            out.push(h.clone());
        }
    }
    Ok(out)
}

/// Record that `who` refers to those of `hashes` the server does not store yet: they
/// may read such a file only once they send its bytes, never through the reference
/// (bytes someone else uploads later are not theirs to read).
pub fn claim_unstored(sql: &mut dyn Sql, who: &Principal, hashes: &[String]) -> Result<(), Error> {
    for h in hashes {
        if !repo::get_attachment(sql, h)?.is_some_and(|r| r.complete) {
            repo::add_claim(sql, h, &who.username)?;
        }
    }
    Ok(())
}

/// The upload state, as the caller may see it: a complete file they may read, else
/// their own upload in progress, else nothing (a file they may not read looks like one
/// never uploaded).
pub fn status(sql: &mut dyn Sql, who: &Principal, hash: &str) -> Result<AttachmentStatus, Error> {
    check_hash(hash)?;
    if let Some(r) = repo::get_attachment(sql, hash)?.filter(|r| r.complete) {
        if may_read(sql, who, hash)? {
            return Ok(status_of(hash, Some(&r)));
        }
    }
    let mine = repo::get_upload(sql, hash, &who.username)?.map(|(total, received)| AttachmentRow {
        total: Some(total),
        received,
        complete: false,
        uploaded_by: who.username.clone(),
    });
    Ok(status_of(hash, mine.as_ref()))
}

/// Store one chunk at `offset` of `who`'s upload of a file of `total` bytes. The inner
/// error is an answer to send after the transaction commits: a whole file whose bytes
/// do not match its name is discarded (the caller's upload only), so that the upload
/// can start again from byte 0.
pub fn put_chunk(
    sql: &mut dyn Sql,
    who: &Principal,
    hash: &str,
    offset: u64,
    (total, quota): (u64, Quota),
    data: Vec<u8>,
    now_us: i64,
) -> Result<Result<AttachmentStatus, ApiError>, Error> {
    check_hash(hash)?;
    if total == 0 || total > limits::ATTACHMENT_BYTES_MAX {
        return Err(ApiError::new(
            413,
            ErrorCode::PayloadTooLarge,
            format!(
                "an attachment must be 1 to {} bytes",
                limits::ATTACHMENT_BYTES_MAX
            ),
        )
        .into());
    }
    let stored = repo::get_attachment(sql, hash)?.filter(|r| r.complete);
    if let Some(r) = &stored {
        if may_read(sql, who, hash)? {
            return Ok(Ok(status_of(hash, Some(r))));
        }
    }
    let upload = repo::get_upload(sql, hash, &who.username)?;
    if upload.is_none() {
        if let Some(refusal) = quota.check(sql, who, total)? {
            return Err(ApiError::new(413, refusal.code, refusal.message).into());
        }
    }
    let (started_total, received) = upload.unwrap_or((total, 0));
    if started_total != total {
        return Err(ApiError::new(
            409,
            ErrorCode::OffsetMismatch,
            format!("this upload was started with another total size ({started_total})"),
        )
        .into());
    }
    if offset != received {
        return Err(ApiError::new(
            409,
            ErrorCode::OffsetMismatch,
            format!(
                "the server has {received} bytes of your upload of this file; resume from there"
            ),
        )
        .into());
    }
    let len = data.len() as u64;
    if len == 0 || offset + len > total {
        return Err(ApiError::bad_request(
            ErrorCode::OutOfRange,
            "the chunk is empty or goes past the file's total size",
        )
        .into());
    }
    repo::put_upload_chunk(sql, hash, &who.username, (offset, total), data, now_us)?;
    let received = received + len;
    if received < total {
        return Ok(Ok(AttachmentStatus {
            hash: hash.to_owned(),
            received,
            total: Some(total),
            complete: false,
        }));
    }
    let mut ctx = outpost_protocol::digest::Sha256Hex::default();
    for chunk in repo::upload_chunks(sql, hash, &who.username)? {
        ctx.update(&chunk);
    }
    if ctx.finish() != hash {
        repo::delete_upload(sql, hash, &who.username)?;
        return Ok(Err(ApiError::new(
            422,
            ErrorCode::HashMismatch,
            "the bytes do not match the file's name (SHA-256); upload it again from the start",
        )));
    }
    let row = AttachmentRow {
        total: Some(total),
        received: total,
        complete: true,
        uploaded_by: who.username.clone(),
    };
    repo::promote_upload(sql, hash, &who.username, stored.is_none())?;
    if stored.is_none() {
        repo::put_attachment(sql, hash, &row, now_us)?;
    }
    repo::add_holder(sql, hash, &who.username)?;
    Ok(Ok(status_of(hash, Some(&row))))
}

/// Store several small files, each whole; one result per file.
pub fn put_batch(
    sql: &mut dyn Sql,
    who: &Principal,
    files: &[BatchFile],
    quota: Quota,
    now_us: i64,
) -> Result<Vec<BatchFileResult>, Error> {
    let mut out = Vec::with_capacity(files.len());
    // What the user's quota counts: summed once, when the first file needs it, then
    // kept up to date as this request stores files (summing per file made a batch cost
    // the user's whole history once per file).
    let mut used: Option<u64> = None;
    for f in files {
        let fail = |code: ErrorCode, msg: &str| BatchFileResult {
            hash: f.hash.clone(),
            complete: false,
            error: Some(ErrorBody::new(code, msg)),
        };
        if check_hash(&f.hash).is_err() {
            out.push(fail(ErrorCode::InvalidBody, "not a SHA-256 name"));
            continue;
        }
        let Ok(data) = STANDARD.decode(f.data_base64.as_bytes()) else {
            out.push(fail(ErrorCode::InvalidBody, "data_base64 is not base64"));
            continue;
        };
        if data.is_empty() || data.len() as u64 > limits::BATCH_FILE_BYTES_MAX {
            out.push(fail(
                ErrorCode::PayloadTooLarge,
                "a batched file must be 1 byte to the batch size limit; upload larger ones in chunks",
            ));
            continue;
        }
        if outpost_protocol::attachment_hash(&data) != f.hash {
            out.push(fail(
                ErrorCode::HashMismatch,
                "the bytes do not match the name (SHA-256)",
            ));
            continue;
        }
        let total = data.len() as u64;
        let held = repo::is_holder(sql, &f.hash, &who.username)?;
        if !held {
            let now = match used {
                Some(u) => u,
                None => repo::storage_used(sql, &who.username)?,
            };
            used = Some(now);
            if let Some(refusal) = quota.refusal(now, total) {
                out.push(BatchFileResult {
                    hash: f.hash.clone(),
                    complete: false,
                    error: Some(refusal),
                });
                continue;
            }
        }
        // The bytes are verified: the sender holds the file, whether or not it was
        // stored already (by them or anyone else), and their own upload of it in
        // progress, if any, is done with. No one else's upload is touched.
        if let Some(u) = used.as_mut() {
            // What `storage_used` would say after this file: the file held now (its
            // size is `total`, the bytes match its name), its upload in progress gone.
            let upload = repo::get_upload(sql, &f.hash, &who.username)?;
            let pending = upload.map_or(0, |(t, _)| t);
            *u = u.saturating_sub(pending) + if held { 0 } else { total };
        }
        if !repo::get_attachment(sql, &f.hash)?.is_some_and(|r| r.complete) {
            repo::put_chunk(sql, &f.hash, 0, data)?;
            repo::put_attachment(
                sql,
                &f.hash,
                &AttachmentRow {
                    total: Some(total),
                    received: total,
                    complete: true,
                    uploaded_by: who.username.clone(),
                },
                now_us,
            )?;
        }
        repo::delete_upload(sql, &f.hash, &who.username)?;
        repo::add_holder(sql, &f.hash, &who.username)?;
        out.push(BatchFileResult {
            hash: f.hash.clone(),
            complete: true,
            error: None,
        });
    }
    Ok(out)
}

/// The bytes of a complete attachment the caller may read.
pub fn read(sql: &mut dyn Sql, who: &Principal, hash: &str) -> Result<Vec<u8>, Error> {
    check_hash(hash)?;
    let not_found = || Error::from(ApiError::not_found("no such attachment"));
    let row = repo::get_attachment(sql, hash)?.ok_or_else(not_found)?;
    if !row.complete || !may_read(sql, who, hash)? {
        return Err(not_found());
    }
    Ok(repo::chunks(sql, hash)?.concat())
}
