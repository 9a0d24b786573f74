//! The wire decoders. Requests are read the way the server reads them
//! (`outpost_server::http::parse_json`, `pull::Cursor::decode`,
//! `attachments::check_hash`); answers the way the device reads them
//! (`serde_json::from_slice`, crates/sync/src/client.rs). Beyond "no panic", what a
//! decoder accepts must survive a round trip through the encoder the other side uses:
//! a value that changed on the way would be a change nobody made.

use outpost_protocol::wire::{
    AttachmentStatus, BatchUploadRequest, BatchUploadResponse, ChangeBody, PullRequest,
    PullResponse, PushRequest, PushResponse,
};
use outpost_protocol::Mutation;
use outpost_server::http::parse_json;
use outpost_server::pull::Cursor;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `value` written as JSON and read back by `read` is `value` again.
fn round_trips<T, E: std::fmt::Debug>(value: &T, read: impl Fn(&[u8]) -> Result<T, E>)
where
    T: Serialize + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_vec(value).expect("a decoded value encodes");
    let again = read(&text).unwrap_or_else(|e| {
        panic!(
            "the re-encoded value does not decode: {e:?}\n{}",
            String::from_utf8_lossy(&text)
        )
    });
    assert_eq!(&again, value, "a round trip changed the value");
}

/// The device's reading of an answer body.
fn answer<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// `POST /v1/push` as the server reads it, and each mutation's stored body (the
/// device's outbox form, whose hash is the idempotency check) read back; the answer
/// as the device reads it.
pub fn push_request(data: &[u8]) {
    if let Ok(req) = parse_json::<PushRequest>(data) {
        round_trips(&req, parse_json::<PushRequest>);
        for m in &req.mutations {
            let body = m.to_body().expect("a decoded mutation encodes");
            let again: Mutation = serde_json::from_slice(&body).expect("a stored body reads");
            assert_eq!(&again, m, "a mutation's stored body changed it");
        }
    }
    if let Ok(res) = answer::<PushResponse>(data) {
        round_trips(&res, answer::<PushResponse>);
    }
}

/// `POST /v1/pull` as the server reads it (with its cursor), and a page as the device
/// reads it; a page with a kind this build does not know is only read, since such a
/// row is skipped and never written back.
pub fn pull(data: &[u8]) {
    if let Ok(req) = parse_json::<PullRequest>(data) {
        round_trips(&req, parse_json::<PullRequest>);
        if let Some(c) = req.cursor.as_deref() {
            cursor_str(c);
        }
    }
    if let Ok(page) = answer::<PullResponse>(data) {
        let unknown = page
            .changes
            .iter()
            .any(|c| c.is_unknown() || matches!(c.change, ChangeBody::Unknown));
        if !unknown {
            round_trips(&page, answer::<PullResponse>);
        }
    }
}

/// A cursor the server wrote reads back as itself.
fn cursor_str(s: &str) {
    if let Some(c) = Cursor::decode(s) {
        let again = Cursor::decode(&c.encode()).expect("an encoded cursor decodes");
        assert_eq!(again, c, "a cursor changed on a round trip");
    }
}

/// Any string as a pull cursor.
pub fn cursor(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        cursor_str(s);
    }
}

/// `POST /v1/attachments-batch` as the server reads it (with each file's name
/// checked), and the upload answers as the device reads them.
pub fn attachments(data: &[u8]) {
    if let Ok(req) = parse_json::<BatchUploadRequest>(data) {
        round_trips(&req, parse_json::<BatchUploadRequest>);
        for f in &req.files {
            let ok = outpost_server::attachments::check_hash(&f.hash).is_ok();
            let hex = f.hash.len() == 64
                && f.hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            assert_eq!(ok, hex, "an attachment name is lowercase hex SHA-256");
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = outpost_server::attachments::check_hash(s);
    }
    if let Ok(res) = answer::<BatchUploadResponse>(data) {
        round_trips(&res, answer::<BatchUploadResponse>);
    }
    if let Ok(st) = answer::<AttachmentStatus>(data) {
        round_trips(&st, answer::<AttachmentStatus>);
    }
}
