//! Sizes both sides must agree on, in one place: what the server accepts (`*_MAX`) and
//! what a client sends by default (`*_DEFAULT`, always within the maximum), so that a
//! client never builds a request the server refuses.
//!
//! Client-only settings that the server never sees (retry delays, the photo size on
//! import) live with the client; the server's own capacities (connection pools, caches)
//! live in the server.

/// Mutations in one push: at most, and a client's batch by default. The default is the
/// most (issue 24: a reconnect with 2,000 mutations took 536 ms in batches of 100 and
/// 434 ms in batches of 500, each round costing a request, a server transaction and
/// the device's own); [`PUSH_BYTES_DEFAULT`] still bounds a batch of large ones. On
/// SQLite the server's write lock is then held for up to about 40 ms per push.
pub const PUSH_MUTATIONS_MAX: usize = 500;
pub const PUSH_MUTATIONS_DEFAULT: usize = 500;
/// Operations in one mutation (its `ops` and `seen` together), and in one push. The
/// server checks both before its write transaction (the merge runs inside it), and a
/// device never coalesces a mutation beyond the first. A whole order (every list full,
/// every field set) fits in one mutation; a client's default push, bounded by
/// [`PUSH_BYTES_DEFAULT`], cannot reach the second (both checked below).
pub const OPS_PER_MUTATION_MAX: usize = 5_000;
pub const OPS_PER_PUSH_MAX: usize = 50_000;
/// Bytes of mutation bodies a client puts in one push by default (one mutation larger
/// than this still travels, alone). Every default request fits under the 1 MiB body
/// limit reverse proxies commonly apply (nginx's `client_max_body_size`).
pub const PUSH_BYTES_DEFAULT: usize = 768 * 1024;
/// Bytes of one JSON request body (push, login, pull, batch upload).
pub const JSON_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Bytes of records in one list answer (conflicts, failed syncs: each carries its whole
/// mutation); the answer stops there, newest first, and says `more` (a single larger
/// record still travels alone).
pub const LIST_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Rows in one pull page, and the default.
pub const PULL_LIMIT_MAX: u32 = 5_000;
pub const PULL_LIMIT_DEFAULT: u32 = 1_000;
/// Bytes of rows in one pull page (a single larger row still travels alone).
pub const PULL_BYTES_MAX: u64 = 8 * 1024 * 1024;
pub const PULL_BYTES_DEFAULT: u64 = 2 * 1024 * 1024;
/// Log rows one pull page reads at most, per row it may send (`limit`): rows a page
/// leaves out (the device's own acknowledged rows, and earlier rows of an entity the
/// page carries later) are read but not sent, and a page stops reading there.
pub const PULL_SCAN_PER_ROW: u32 = 4;
/// Ranges of its own pushes a device confirms with one pull (`PullRequest::confirmed`);
/// a device with more keeps the latest (an older range left out only means its rows
/// come back).
pub const CONFIRMED_RANGES_MAX: usize = 64;
/// Size of one attachment (also the most a client reads of a download's answer).
pub const ATTACHMENT_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// Bytes of one JSON answer a client reads (push, pull, sign-in, uploads, and error
/// answers): a longer one, announced by its `Content-Length` or not, is refused as soon
/// as it passes this, so a broken server or a proxy in front of it cannot make a device
/// hold more in memory. Room for a full pull page (`PULL_BYTES_MAX`) or the single
/// larger row that travels alone (an order at every validation limit is about 30 MB as
/// JSON). A push answer that would be larger (many mutations, each answered with its
/// order) is refused like any bad answer and the batch is split until each answer fits.
pub const ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A document's bytes per download request (issue 22): the device asks for one range
/// of this size at a time, and keeps each range as one encrypted record, so an
/// interrupted download resumes from the last whole range.
pub const DOCUMENT_CHUNK_BYTES: u64 = 1024 * 1024;

/// The largest document a server takes by default (`outpost-server serve
/// --document-max-bytes`, `documents add`): manuals of 50–200 MB exist.
pub const DOCUMENT_BYTES_MAX_DEFAULT: u64 = 256 * 1024 * 1024;

/// Documents up to this size are kept in the server's database rows by default;
/// larger ones as files in its documents directory (`--document-inline-max-bytes`).
pub const DOCUMENT_INLINE_BYTES_DEFAULT: u64 = 1024 * 1024;

/// The device's default budget for cached documents (a person or the administrator
/// sets another): 500 MB.
pub const DOCUMENT_BUDGET_BYTES_DEFAULT: u64 = 500 * 1000 * 1000;
/// One chunk of a resumable upload: at most, and a client's chunk by default.
pub const CHUNK_BYTES_MAX: usize = 4 * 1024 * 1024;
pub const CHUNK_BYTES_DEFAULT: usize = 512 * 1024;
/// The smallest chunk a client shrinks to when an upload is refused as too large (413,
/// a proxy's body limit): halving stops here, and a chunk refused at this size means
/// the file cannot be sent through that proxy.
pub const CHUNK_BYTES_FLOOR: usize = 16 * 1024;
/// One file in a batch upload: at most, and the size up to which a client batches
/// files by default (larger ones go resumably in chunks).
pub const BATCH_FILE_BYTES_MAX: u64 = 256 * 1024;
pub const BATCH_FILE_BYTES_DEFAULT: usize = 32 * 1024;
/// Files in one batch upload: at most, and a client's batch by default (a batch of
/// larger files stops first at [`BATCH_UPLOAD_BYTES_DEFAULT`]).
pub const BATCH_FILES_MAX: usize = 100;
pub const BATCH_FILES_DEFAULT: usize = 100;
/// The files' bytes in one batch upload by default (base64 adds a third): a batch is
/// bounded by bytes and count, so that a hundred signatures of a kilobyte go in one
/// request while sixteen photos of 32 KiB still fit under a proxy's common 1 MiB body
/// limit.
pub const BATCH_UPLOAD_BYTES_DEFAULT: usize = 512 * 1024;
/// The fewest files a client puts in a batch upload when one is refused as too large;
/// a single file refused so goes in chunks instead.
pub const BATCH_FILES_FLOOR: usize = 1;

// Every default is within its maximum (checked when the crate compiles).
const _: () = {
    assert!(PUSH_MUTATIONS_DEFAULT <= PUSH_MUTATIONS_MAX);
    assert!(OPS_PER_MUTATION_MAX <= OPS_PER_PUSH_MAX);
    assert!(PUSH_BYTES_DEFAULT <= JSON_BODY_BYTES_MAX);
    assert!(PULL_LIMIT_DEFAULT <= PULL_LIMIT_MAX);
    assert!(PULL_BYTES_DEFAULT <= PULL_BYTES_MAX);
    assert!(PULL_BYTES_MAX < ANSWER_BYTES_MAX as u64);
    assert!(CHUNK_BYTES_DEFAULT <= CHUNK_BYTES_MAX);
    assert!(BATCH_FILE_BYTES_DEFAULT as u64 <= BATCH_FILE_BYTES_MAX);
    assert!(BATCH_FILES_DEFAULT <= BATCH_FILES_MAX);
    assert!(BATCH_FILE_BYTES_DEFAULT <= BATCH_UPLOAD_BYTES_DEFAULT);
    assert!(0 < CHUNK_BYTES_FLOOR && CHUNK_BYTES_FLOOR <= CHUNK_BYTES_DEFAULT);
    assert!(0 < BATCH_FILES_FLOOR && BATCH_FILES_FLOOR <= BATCH_FILES_DEFAULT);
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{BatchFile, BatchUploadRequest};

    /// The request body limit reverse proxies commonly apply (nginx's
    /// `client_max_body_size` is 1 MiB unless configured).
    const COMMON_PROXY_BODY_LIMIT: usize = 1024 * 1024;

    /// A whole order fits in one mutation: every list at its most items, a done tick
    /// and a stopped timer per item, and every scalar field.
    #[test]
    fn a_whole_order_fits_in_one_mutation() {
        let lists = 5; // checklist, notes, time entries, parts, photos
        let scalars = 11;
        let whole =
            lists * crate::validate::LIST_MAX_ITEMS + 2 * crate::validate::LIST_MAX_ITEMS + scalars;
        assert!(whole <= OPS_PER_MUTATION_MAX, "{whole} ops");
    }

    /// A client's default push cannot carry more ops than a push may: the smallest op
    /// on the wire, into the default bytes of a push.
    #[test]
    fn a_clients_default_push_stays_within_the_ops_per_push() {
        use crate::mutation::{ListName, Op, SetOp};
        let smallest = [
            Op::Set(SetOp::Title(String::new())),
            Op::Set(SetOp::Scheduled(None)),
            Op::Remove {
                list: ListName::Checklist,
                item_id: String::new(),
            },
        ]
        .iter()
        .map(|op| serde_json::to_vec(op).expect("an op serializes").len() + 1)
        .min()
        .expect("ops");
        assert!(
            PUSH_BYTES_DEFAULT / smallest <= OPS_PER_PUSH_MAX,
            "{} ops of {smallest} bytes",
            PUSH_BYTES_DEFAULT / smallest
        );
    }

    #[test]
    fn a_clients_default_requests_fit_under_a_reverse_proxys_common_body_limit() {
        // A batch upload at its default bounds: as many files of the largest size a
        // client batches as its bytes allow, or the most files sharing those bytes.
        let batch_of = |files: usize, each: usize| {
            let data_base64 = "A".repeat(each.div_ceil(3) * 4);
            let batch = BatchUploadRequest {
                files: (0..files)
                    .map(|_| BatchFile {
                        hash: "0".repeat(64),
                        data_base64: data_base64.clone(),
                    })
                    .collect(),
            };
            serde_json::to_vec(&batch)
                .expect("a batch serializes")
                .len()
        };
        let largest = BATCH_UPLOAD_BYTES_DEFAULT / BATCH_FILE_BYTES_DEFAULT;
        let batch_bytes =
            batch_of(largest.min(BATCH_FILES_DEFAULT), BATCH_FILE_BYTES_DEFAULT).max(batch_of(
                BATCH_FILES_DEFAULT,
                BATCH_UPLOAD_BYTES_DEFAULT / BATCH_FILES_DEFAULT,
            ));
        // A push: `{"mutations":[` bodies joined by commas `]}`.
        let push_bytes = PUSH_BYTES_DEFAULT + PUSH_MUTATIONS_DEFAULT + 16;
        // A chunk of a resumable upload travels as it is.
        let chunk_bytes = CHUNK_BYTES_DEFAULT;
        for (request, bytes) in [
            ("batch upload", batch_bytes),
            ("push", push_bytes),
            ("upload chunk", chunk_bytes),
        ] {
            assert!(
                bytes < COMMON_PROXY_BODY_LIMIT,
                "a default {request} is up to {bytes} bytes"
            );
        }
    }
}
