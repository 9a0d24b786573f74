//! Attachment uploads: small files in batches, large ones resumably in chunks.
//!
//! The pass decides which photos go when (a completion's evidence before the
//! completion, other photos last or not at all on a metered link); this module only
//! sends the files it is given and marks each one uploaded as the server confirms it.
//! Files up to [`PassOptions::small_file_bytes`] go [`PassOptions::batch_files`] to a
//! request; larger ones go through the resumable upload, which picks up where a broken
//! connection left off.
//! Downloads are not here ([`fetch_attachment`](crate::fetch_attachment)).

use chrono::{DateTime, Utc};
use outpost_store::Store;

use crate::auth::authed;
use crate::error::SyncError;
use crate::pass::{PassOptions, PassReport, Progress};
use crate::transport::Transport;

/// Upload the attachments named by `hashes` (which the store holds), reporting
/// [`Progress::Uploading`] as each file is handled.
pub(crate) async fn upload(
    store: &mut Store,
    client: &impl Transport,
    now: DateTime<Utc>,
    hashes: &[String],
    opts: &PassOptions,
    report: &mut PassReport,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), SyncError> {
    let total = hashes.len();
    let mut small: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, hash) in hashes.iter().enumerate() {
        let data = store.attachment(hash)?;
        if data.len() <= opts.small_file_bytes {
            small.push((hash.clone(), data));
        } else {
            report.bytes_sent += authed!(store, client, now, report, |t| client.upload_resumable(
                &t,
                hash,
                &data,
                opts.chunk_bytes
            ))?;
            store.mark_uploaded(hash)?;
            report.uploaded += 1;
        }
        progress(Progress::Uploading { done: i + 1, total });
    }
    for group in small.chunks(opts.batch_files.max(1)) {
        report.bytes_sent += group.iter().map(|(_, d)| d.len() * 4 / 3).sum::<usize>();
        let resp = authed!(store, client, now, report, |t| client
            .upload_batch(&t, group))?;
        for r in resp.results {
            if r.complete {
                store.mark_uploaded(&r.hash)?;
                report.uploaded += 1;
            } else if let Some(e) = r.error {
                return Err(SyncError::Server {
                    status: 422,
                    code: e.code,
                    message: format!("attachment {}: {}", r.hash, e.message),
                    retry_after: None,
                });
            }
        }
    }
    Ok(())
}
