//! Attachment uploads: small files in batches, large ones resumably in chunks.
//!
//! The pass decides which photos go when (a completion's evidence before the
//! completion, other photos last or not at all on a metered link); this module only
//! sends the files it is given and marks each one uploaded as the server confirms it.
//! Files up to [`UploadSizes::small_file_bytes`] go up to [`UploadSizes::batch_files`]
//! and [`UploadSizes::batch_bytes`] to a request; larger ones go through the resumable
//! upload, which picks up where a broken connection left off.
//!
//! A request refused as too large (413, often a reverse proxy's body limit) shrinks the
//! sizes for the rest of the pass, by halves down to a floor
//! (`outpost_protocol::limits::{BATCH_FILES_FLOOR, CHUNK_BYTES_FLOOR}`), and is tried
//! again. A file that cannot be sent (missing or damaged on this device, refused by name
//! in a batch answer, past the user's storage quota (`quota_exceeded`), too large even
//! at the floor) is reported back with the reason
//! instead of failing the pass: the pass sets aside the completion that names it, and only that
//! one. Downloads are not here ([`fetch_attachment`](crate::fetch_attachment)).

use chrono::{DateTime, Utc};
use outpost_protocol::limits;
use outpost_protocol::wire::{ErrorCode, Rejection};
use outpost_store::{Store, StoreError};

use crate::auth::authed;
use crate::error::SyncError;
use crate::pass::{PassReport, Progress};
use crate::transport::Transport;

/// The sizes uploads use in one pass: from [`crate::PassOptions`], made smaller when a
/// request is refused as too large.
#[derive(Debug, Clone)]
pub(crate) struct UploadSizes {
    pub small_file_bytes: usize,
    pub batch_files: usize,
    /// The files' bytes in one batch (at least one file goes, whatever its size).
    pub batch_bytes: usize,
    pub chunk_bytes: usize,
}

/// A file that cannot be sent, and why, in words for the person whose completion names
/// it.
#[derive(Debug, Clone)]
pub(crate) struct Unsendable {
    pub hash: String,
    pub why: Rejection,
}

/// A refusal the device makes itself (no failed-sync record on the server yet).
pub(crate) fn rejection(code: ErrorCode, message: String) -> Rejection {
    Rejection {
        code,
        message,
        field_errors: Vec::new(),
        failed_sync_id: None,
        resolution: None,
    }
}

/// Whether the server (or a proxy in front of it) refused the request as too large.
pub(crate) fn too_large(e: &SyncError) -> bool {
    matches!(e, SyncError::Server { status: 413, .. })
}

/// A file this device cannot read, as the reason a person sees.
fn unreadable(hash: &str, e: &StoreError) -> Option<Unsendable> {
    let short = &hash[..hash.len().min(12)];
    let (code, what) = match e {
        StoreError::AttachmentNotFound(_) => (ErrorCode::NotFound, "is missing on this device"),
        StoreError::AttachmentDamaged { .. } => {
            (ErrorCode::HashMismatch, "is damaged on this device")
        }
        StoreError::Io(_) => (ErrorCode::NotFound, "cannot be read on this device"),
        _ => return None,
    };
    Some(Unsendable {
        hash: hash.to_owned(),
        why: rejection(
            code,
            format!(
                "the photo or signature file (attachment {short}…) {what} ({e}): add the \
                 photo or signature again and retry, or discard this change"
            ),
        ),
    })
}

/// A file the server (or a proxy) refused, as the reason a person sees.
fn refused(hash: &str, code: ErrorCode, detail: &str) -> Unsendable {
    let short = &hash[..hash.len().min(12)];
    Unsendable {
        hash: hash.to_owned(),
        why: rejection(
            code,
            format!(
                "the server refused the photo or signature file (attachment {short}…): {detail}"
            ),
        ),
    }
}

/// Upload the attachments named by `hashes` (which the store holds), reporting
/// [`Progress::Uploading`] as files are sent (a batch of small ones when it is answered)
/// or found unsendable. Returns the files that cannot be
/// sent, with the reason; an error means trying again later may help (nothing is set
/// aside for it).
pub(crate) async fn upload(
    store: &mut Store,
    client: &impl Transport,
    now: DateTime<Utc>,
    hashes: &[String],
    sizes: &mut UploadSizes,
    report: &mut PassReport,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Vec<Unsendable>, SyncError> {
    let total = hashes.len();
    // Files handled: counted as each is sent (a small one when its batch is answered),
    // not as it is read from the store (issue 24 item 4: "50 of 50" before a byte went).
    let mut done = 0;
    let mut handled = |n: usize, progress: &mut (dyn FnMut(Progress) + Send)| {
        done += n;
        progress(Progress::Uploading { done, total });
    };
    let mut unsendable = Vec::new();
    let mut small: Vec<(String, Vec<u8>)> = Vec::new();
    for hash in hashes {
        match store.attachment(hash) {
            Ok(data) if data.len() <= sizes.small_file_bytes => {
                small.push((hash.clone(), data));
                continue;
            }
            Ok(data) => {
                if let Some(u) = resumable(store, client, now, hash, &data, sizes, report).await? {
                    unsendable.push(u);
                }
            }
            Err(e) => unsendable.push(unreadable(hash, &e).ok_or(e)?),
        }
        handled(1, progress);
    }
    let mut rest: &[(String, Vec<u8>)] = &small;
    while !rest.is_empty() {
        let most = sizes
            .batch_files
            .max(limits::BATCH_FILES_FLOOR)
            .min(rest.len());
        let mut n = 1;
        let mut bytes = rest[0].1.len();
        while n < most && bytes + rest[n].1.len() <= sizes.batch_bytes {
            bytes += rest[n].1.len();
            n += 1;
        }
        let group = &rest[..n];
        match authed!(store, client, now, report, |t| client
            .upload_batch(&t, group))
        {
            Ok(resp) => {
                report.bytes_sent += group.iter().map(|(_, d)| d.len() * 4 / 3).sum::<usize>();
                let done: Vec<&str> = resp
                    .results
                    .iter()
                    .filter(|r| r.complete)
                    .map(|r| r.hash.as_str())
                    .collect();
                store.mark_all_uploaded(&done)?;
                if !done.is_empty() {
                    crate::crash_point!("client:after-upload");
                }
                report.uploaded += done.len();
                for r in resp.results.iter().filter(|r| !r.complete) {
                    if let Some(e) = &r.error {
                        unsendable.push(refused(&r.hash, e.code, &e.message));
                    }
                }
                rest = &rest[n..];
                handled(n, progress);
            }
            Err(e) if too_large(&e) && n > limits::BATCH_FILES_FLOOR => {
                sizes.batch_files = (n / 2).max(limits::BATCH_FILES_FLOOR);
                tracing::info!(
                    batch_files = sizes.batch_files,
                    "upload refused as too large: fewer files per request"
                );
            }
            Err(e) if too_large(&e) => {
                // One file, refused even alone in a batch (its base64 is a third larger):
                // in chunks instead.
                let (hash, data) = &group[0];
                if let Some(u) = resumable(store, client, now, hash, data, sizes, report).await? {
                    unsendable.push(u);
                }
                rest = &rest[1..];
                handled(1, progress);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(unsendable)
}

/// Upload one file in chunks, halving the chunk while the request is refused as too
/// large, down to the floor. `Some` when the file cannot be sent.
async fn resumable(
    store: &mut Store,
    client: &impl Transport,
    now: DateTime<Utc>,
    hash: &str,
    data: &[u8],
    sizes: &mut UploadSizes,
    report: &mut PassReport,
) -> Result<Option<Unsendable>, SyncError> {
    loop {
        let chunk = sizes.chunk_bytes;
        match authed!(store, client, now, report, |t| client.upload_resumable(
            &t, hash, data, chunk
        )) {
            Ok(sent) => {
                report.bytes_sent += sent;
                store.mark_uploaded(hash)?;
                crate::crash_point!("client:after-upload");
                report.uploaded += 1;
                return Ok(None);
            }
            // Past the user's storage quota: sending it again will not help until
            // someone acts, so the completion that names it is set aside with the reason.
            Err(SyncError::Server {
                code: ErrorCode::QuotaExceeded,
                message,
                ..
            }) => return Ok(Some(refused(hash, ErrorCode::QuotaExceeded, &message))),
            Err(e) if too_large(&e) && chunk.min(data.len()) > limits::CHUNK_BYTES_FLOOR => {
                sizes.chunk_bytes = (chunk.min(data.len()) / 2).max(limits::CHUNK_BYTES_FLOOR);
                tracing::info!(chunk_bytes = sizes.chunk_bytes, "upload refused as too large: smaller chunks");
            }
            Err(e) if too_large(&e) => {
                return Ok(Some(refused(
                    hash,
                    ErrorCode::PayloadTooLarge,
                    &format!(
                        "even a chunk of {} bytes is too large for the server or a proxy in front of it ({e})",
                        chunk.min(data.len())
                    ),
                )))
            }
            // Anything else (a body cut short reads as a 400 on the server's side, an
            // offset that moved, the network) may pass: the pass fails and the upload
            // resumes next time from the last byte stored.
            Err(e) => return Err(e),
        }
    }
}
