//! Attachments: content-addressed (named by the SHA-256 of their bytes), uploaded in
//! chunks that resume from the last stored byte, verified before they count.
//!
//! Bytes live in the database (`attachment_chunks`), so every server instance over one
//! PostgreSQL database serves them and a backup of the database holds them. A file is
//! "complete" only once all its bytes are stored and their hash matches its name; a
//! completion naming it is applied only then. Small files may come several to a request.
//!
//! Left out on purpose: deduplication across users is by hash, so a user who already
//! has a file's bytes (and thus its hash) can refer to it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
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

fn status_of(hash: &str, row: Option<&AttachmentRow>) -> AttachmentStatus {
    AttachmentStatus {
        hash: hash.to_owned(),
        received: row.map_or(0, |r| r.received),
        total: row.and_then(|r| r.total),
        complete: row.is_some_and(|r| r.complete),
    }
}

/// Whether `who` may read the attachment.
pub fn may_read(
    sql: &mut dyn Sql,
    who: &Principal,
    hash: &str,
    row: &AttachmentRow,
) -> Result<bool, Error> {
    Ok(who.is_staff()
        || row.uploaded_by == who.username
        || repo::attachment_visible_to(sql, hash, &who.username)?)
}

/// The upload state, as the caller may see it (an attachment they may not read looks
/// like one never uploaded).
pub fn status(sql: &mut dyn Sql, who: &Principal, hash: &str) -> Result<AttachmentStatus, Error> {
    check_hash(hash)?;
    let row = repo::get_attachment(sql, hash)?;
    match row {
        Some(r) if may_read(sql, who, hash, &r)? || r.complete => Ok(status_of(hash, Some(&r))),
        _ => Ok(status_of(hash, None)),
    }
}

/// Store one chunk at `offset` of a file of `total` bytes.
pub fn put_chunk(
    sql: &mut dyn Sql,
    who: &Principal,
    hash: &str,
    offset: u64,
    total: u64,
    data: Vec<u8>,
    now_us: i64,
) -> Result<AttachmentStatus, Error> {
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
    let mut row = match repo::get_attachment(sql, hash)? {
        Some(r) if r.complete => return Ok(status_of(hash, Some(&r))),
        Some(r) => r,
        None => AttachmentRow {
            total: Some(total),
            received: 0,
            complete: false,
            uploaded_by: who.username.clone(),
        },
    };
    if row.total != Some(total) {
        return Err(ApiError::new(
            409,
            ErrorCode::OffsetMismatch,
            format!(
                "this upload was started with another total size ({:?})",
                row.total
            ),
        )
        .into());
    }
    if offset != row.received {
        return Err(ApiError::new(
            409,
            ErrorCode::OffsetMismatch,
            format!(
                "the server has {} bytes of this file; resume from there",
                row.received
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
    repo::put_chunk(sql, hash, offset, data)?;
    row.received += len;
    if row.received == total {
        let mut ctx = outpost_protocol::digest::Sha256Hex::default();
        for chunk in repo::chunks(sql, hash)? {
            ctx.update(&chunk);
        }
        if ctx.finish() != hash {
            repo::delete_attachment(sql, hash)?;
            return Err(ApiError::new(
                422,
                ErrorCode::HashMismatch,
                "the bytes do not match the file's name (SHA-256); upload it again from the start",
            )
            .into());
        }
        row.complete = true;
    }
    repo::put_attachment(sql, hash, &row, now_us)?;
    Ok(status_of(hash, Some(&row)))
}

/// Store several small files, each whole; one result per file.
pub fn put_batch(
    sql: &mut dyn Sql,
    who: &Principal,
    files: &[BatchFile],
    now_us: i64,
) -> Result<Vec<BatchFileResult>, Error> {
    let mut out = Vec::with_capacity(files.len());
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
        if repo::get_attachment(sql, &f.hash)?.is_some_and(|r| r.complete) {
            out.push(BatchFileResult {
                hash: f.hash.clone(),
                complete: true,
                error: None,
            });
            continue;
        }
        repo::delete_attachment(sql, &f.hash)?;
        let total = data.len() as u64;
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
    if !row.complete || !may_read(sql, who, hash, &row)? {
        return Err(not_found());
    }
    Ok(repo::chunks(sql, hash)?.concat())
}
