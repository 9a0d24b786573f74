//! Wire types of the sync API (protocol v1): what travels between a device and
//! `outpost-server` over HTTP, and the stable error codes both sides branch on.
//!
//! Every request body refuses unknown fields, so a client of another shape gets a clear
//! `invalid_body` instead of a silent partial read (the server is never older than a
//! protocol it serves, so an unknown member is a client speaking a version the server
//! does not, and dropping it would also make the idempotency hash cover less than was
//! sent). Responses and rows the device reads ignore members they do not know, and the
//! server sends new outcomes, entity kinds and variants only to clients that announced
//! a version that knows them (`crate::compat`; docs/protocol.md, "Compatibility"). A
//! device that still meets a change kind it does not know skips that row
//! ([`ChangeBody::Unknown`]) and says so. The cursor is opaque on purpose: the client
//! stores it and sends it back, never parses it.
//!
//! Left out on purpose: transport details (compression, TLS) and the server's own
//! storage shapes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{InventoryItem, Role, WorkOrder};
use crate::mutation::{EntityKind, Mutation, MutationKind, Op, SetOp, FORMAT_VERSION};
use crate::validate::FieldError;

/// Request header carrying the client's [`crate::PROTOCOL_VERSION`]. The server serves
/// the current and the previous version ([`crate::compat::served_version`]); another
/// is refused with `unsupported_protocol` and a message saying whom to update.
pub const PROTOCOL_HEADER: &str = "x-outpost-protocol";

/// Request header in which a device reports the work it has not sent
/// ([`crate::unsent::UnsentReport`]). Optional: a server accepts requests without it.
pub const UNSENT_HEADER: &str = "x-outpost-unsent";

/// Bearer token header (standard `Authorization: Bearer <access_token>`).
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// The endpoints of the API, relative to the server's base URL.
pub mod paths {
    pub const HEALTH: &str = "/health";
    pub const METRICS: &str = "/metrics";
    pub const OPENAPI: &str = "/openapi.json";
    pub const LOGIN: &str = "/v1/auth/login";
    pub const REFRESH: &str = "/v1/auth/refresh";
    pub const LOGOUT: &str = "/v1/auth/logout";
    pub const PUSH: &str = "/v1/push";
    pub const PULL: &str = "/v1/pull";
    /// `GET` one order the caller may see: `/v1/orders/{id}`.
    pub const ORDERS: &str = "/v1/orders";
    /// `GET /v1/conflicts?status=open|resolved|all`.
    pub const CONFLICTS: &str = "/v1/conflicts";
    /// `GET /v1/failed-syncs?status=open|resolved|all`.
    pub const FAILED_SYNCS: &str = "/v1/failed-syncs";
    /// `GET /v1/inventory/alerts`: items whose stock went below zero.
    pub const STOCK_ALERTS: &str = "/v1/inventory/alerts";
    /// `PUT /v1/attachments/{hash}?offset=N&total=T` (a chunk), `GET /v1/attachments/{hash}`
    /// (the bytes), `GET /v1/attachments/{hash}/status`.
    pub const ATTACHMENTS: &str = "/v1/attachments";
    /// `POST`: several small files in one request.
    pub const ATTACHMENTS_BATCH: &str = "/v1/attachments-batch";
    /// `GET /v1/fleet?stale_after_secs=N`: every device's sync health (dispatchers).
    pub const FLEET: &str = "/v1/fleet";
    /// `GET`: the documents the caller's open orders need ([`super::DocumentIndex`]);
    /// `POST ?name=…&model=…`: add one (staff); `GET /v1/documents/{id}/content`: a
    /// document's bytes (HTTP `Range`, `ETag`).
    pub const DOCUMENTS: &str = "/v1/documents";
}

/// Limits both sides know (`crate::limits`), here too for the wire's readers.
pub use crate::limits;

/// Stable error codes. A client branches on these, never on messages or HTTP reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // Request shape (400, 413, 415).
    MalformedJson,
    InvalidUtf8,
    InvalidBody,
    PayloadTooLarge,
    UnsupportedProtocol,
    UnsupportedFormat,
    OutOfRange,
    // Auth (401, 403, 429).
    Unauthorized,
    InvalidCredentials,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    RefreshReused,
    UserDisabled,
    DeviceRevoked,
    DeviceMismatch,
    RateLimited,
    Forbidden,
    // Resources (404, 405, 409, 422).
    NotFound,
    MethodNotAllowed,
    ResyncRequired,
    OffsetMismatch,
    HashMismatch,
    /// The user's storage quota for files is used up (413; protocol 2 clients only:
    /// protocol 1 clients get `payload_too_large`, `compat::since::QUOTA_EXCEEDED`).
    QuotaExceeded,
    // Per-mutation outcomes inside a push answer.
    MutationIdReused,
    ValidationFailed,
    UnknownEntity,
    AlreadyExists,
    AlreadyResolved,
    VersionMismatch,
    UnknownSku,
    // Server side (5xx).
    Internal,
    Unavailable,
    /// A code this client does not know yet (a newer server); treat as permanent.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "malformed_json",
            InvalidUtf8 => "invalid_utf8",
            InvalidBody => "invalid_body",
            PayloadTooLarge => "payload_too_large",
            UnsupportedProtocol => "unsupported_protocol",
            UnsupportedFormat => "unsupported_format",
            OutOfRange => "out_of_range",
            Unauthorized => "unauthorized",
            InvalidCredentials => "invalid_credentials",
            TokenExpired => "token_expired",
            TokenInvalid => "token_invalid",
            TokenRevoked => "token_revoked",
            RefreshReused => "refresh_reused",
            UserDisabled => "user_disabled",
            DeviceRevoked => "device_revoked",
            DeviceMismatch => "device_mismatch",
            RateLimited => "rate_limited",
            Forbidden => "forbidden",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            ResyncRequired => "resync_required",
            OffsetMismatch => "offset_mismatch",
            HashMismatch => "hash_mismatch",
            QuotaExceeded => "quota_exceeded",
            MutationIdReused => "mutation_id_reused",
            ValidationFailed => "validation_failed",
            UnknownEntity => "unknown_entity",
            AlreadyExists => "already_exists",
            AlreadyResolved => "already_resolved",
            VersionMismatch => "version_mismatch",
            UnknownSku => "unknown_sku",
            Internal => "internal",
            Unavailable => "unavailable",
            Unknown => "unknown",
        }
    }

    /// Whether a request that got this code may succeed if sent again unchanged (after a
    /// refresh of the access token for `token_expired`).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::Internal
                | ErrorCode::Unavailable
                | ErrorCode::TokenExpired
        )
    }

    /// Whether the device must sign in again (its tokens will never work again).
    pub fn needs_sign_in(self) -> bool {
        matches!(
            self,
            ErrorCode::TokenRevoked
                | ErrorCode::RefreshReused
                | ErrorCode::UserDisabled
                | ErrorCode::DeviceRevoked
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response (4xx and 5xx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// What went wrong, in words a person understands; never contains secrets.
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_errors: Vec<FieldError>,
    /// For `rate_limited`: seconds to wait (also in the `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            field_errors: Vec::new(),
            retry_after_secs: None,
        }
    }
}

// ---------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------

/// `POST /v1/auth/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// 1 to 64 of a-z, 0-9, '.', '_' and '-' (what any account's name is); anything
    /// else is refused before a password is checked (400).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9._-]{1,64}$"))]
    pub username: String,
    pub password: String,
    /// The device's id (a UUID made once per data directory).
    pub device_id: Uuid,
}

/// `POST /v1/auth/refresh`: trade a refresh token for a new pair. The old refresh token
/// stops working (after a short grace period for a lost reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
    pub device_id: Uuid,
}

/// `POST /v1/auth/logout`: the refresh token (and its device's session) stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    pub refresh_token: String,
}

/// The answer to login and refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    /// Keep secret (inside the encrypted store); send only to `/v1/auth/refresh`.
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub username: String,
    pub role: Role,
    pub device_id: Uuid,
    /// The server's clock, so the device can flag a large skew.
    pub server_time: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------
// Push
// ---------------------------------------------------------------------------------

/// `POST /v1/push`: a batch of mutations, applied in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub mutations: Vec<Mutation>,
}

/// One result per mutation, in the order sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushResponse {
    pub results: Vec<MutationResult>,
    pub server_time: DateTime<Utc>,
    /// The change-log sequences this push wrote (one range: a push is one write
    /// transaction), with the server's epoch; absent when it wrote none, and from
    /// servers before issue 24. A device that recorded every result of this answer
    /// may confirm the range on its next pulls (`PullRequest::confirmed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<LogRange>,
}

/// A range of change-log sequences of one epoch, both ends included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogRange {
    pub epoch: String,
    pub first: u64,
    pub last: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MutationResult {
    pub mutation_id: Uuid,
    pub outcome: PushOutcome,
}

/// What became of one mutation.
///
/// `applied`, `applied_with_conflicts`, `duplicate` and `rejected` acknowledge the
/// mutation (the device removes it from its queue; a rejection becomes a failed sync on
/// the device). `missing_attachments` is retryable: upload the named files, then resend
/// the same body.
///
/// On the wire an object tagged by its `result` member (serde's internal tagging). It
/// is read by a hand-written `Deserialize` (module `outcome_de`) that streams the
/// members after a leading `result` straight into the variant, instead of buffering
/// the whole object (with the order it carries) first; any member order is accepted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PushOutcome {
    Applied(Applied),
    AppliedWithConflicts(AppliedWithConflicts),
    /// The same mutation (same id, same body) was applied before; this is its first
    /// recorded outcome.
    Duplicate {
        #[cfg_attr(feature = "openapi", schema(no_recursion))]
        first: Box<PushOutcome>,
    },
    Rejected(Rejection),
    MissingAttachments {
        hashes: Vec<String>,
    },
    /// Protocol 2: not looked at, because an earlier mutation of the same order in the
    /// same push (`behind`) was refused, held whole or waits for its attachments.
    /// Nothing was written; the mutation stays queued and is sent again after it.
    HeldBehind {
        behind: Uuid,
    },
}

mod outcome_de {
    //! `Deserialize` for [`PushOutcome`]: the same documents as serde's derive for an
    //! internally tagged enum accepts from JSON objects. The derive buffers every
    //! member (the order with all its notes) into an intermediate tree before it looks
    //! at the tag, then reads the variant from that tree; a push reply of 100 orders
    //! spent most of its parse time there. The server always writes `result` first, so
    //! the members after it are read into the variant directly; a document with
    //! `result` elsewhere is still read, through `serde_json::Value`.

    use std::fmt;

    use serde::de::value::MapAccessDeserializer;
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
    use serde::Deserialize;

    use super::{Applied, AppliedWithConflicts, PushOutcome, Rejection};

    const TAG: &str = "result";

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Tag {
        Applied,
        AppliedWithConflicts,
        Duplicate,
        Rejected,
        MissingAttachments,
        HeldBehind,
    }

    #[derive(Deserialize)]
    struct HeldBody {
        behind: uuid::Uuid,
    }

    #[derive(Deserialize)]
    struct DuplicateBody {
        first: Box<PushOutcome>,
    }

    #[derive(Deserialize)]
    struct MissingBody {
        hashes: Vec<String>,
    }

    impl<'de> Deserialize<'de> for PushOutcome {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(OutcomeVisitor)
        }
    }

    /// The variant `tag` names, read from `d` (the object's other members).
    fn variant<'de, D: Deserializer<'de>>(tag: Tag, d: D) -> Result<PushOutcome, D::Error> {
        Ok(match tag {
            Tag::Applied => PushOutcome::Applied(Applied::deserialize(d)?),
            Tag::AppliedWithConflicts => {
                PushOutcome::AppliedWithConflicts(AppliedWithConflicts::deserialize(d)?)
            }
            Tag::Duplicate => PushOutcome::Duplicate {
                first: DuplicateBody::deserialize(d)?.first,
            },
            Tag::Rejected => PushOutcome::Rejected(Rejection::deserialize(d)?),
            Tag::MissingAttachments => PushOutcome::MissingAttachments {
                hashes: MissingBody::deserialize(d)?.hashes,
            },
            Tag::HeldBehind => PushOutcome::HeldBehind {
                behind: HeldBody::deserialize(d)?.behind,
            },
        })
    }

    /// A member name: the tag, or another (kept for the buffered path).
    enum Key {
        Tag,
        Other(String),
    }

    struct KeySeed;

    impl<'de> DeserializeSeed<'de> for KeySeed {
        type Value = Key;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
            d.deserialize_str(KeySeed)
        }
    }

    impl Visitor<'_> for KeySeed {
        type Value = Key;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a member name")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
            Ok(if v == TAG {
                Key::Tag
            } else {
                Key::Other(v.to_owned())
            })
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
            Ok(if v == TAG { Key::Tag } else { Key::Other(v) })
        }
    }

    struct OutcomeVisitor;

    impl<'de> Visitor<'de> for OutcomeVisitor {
        type Value = PushOutcome;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a push outcome (an object with a `result` member)")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PushOutcome, A::Error> {
            let mut buffered = serde_json::Map::new();
            let tag = loop {
                match map.next_key_seed(KeySeed)? {
                    Some(Key::Tag) => break map.next_value::<Tag>()?,
                    Some(Key::Other(name)) => {
                        let value: serde_json::Value = map.next_value()?;
                        buffered.insert(name, value);
                    }
                    None => return Err(de::Error::missing_field(TAG)),
                }
            };
            if buffered.is_empty() {
                // `result` came first: the rest of the object is the variant's.
                return variant(tag, MapAccessDeserializer::new(map));
            }
            while let Some((name, value)) = map.next_entry::<String, serde_json::Value>()? {
                buffered.insert(name, value);
            }
            variant(tag, serde_json::Value::Object(buffered)).map_err(de::Error::custom)
        }
    }
}

impl PushOutcome {
    /// Whether the device may drop the mutation from its outbox.
    pub fn is_acknowledged(&self) -> bool {
        !matches!(
            self,
            PushOutcome::MissingAttachments { .. } | PushOutcome::HeldBehind { .. }
        )
    }

    /// The outcome itself, looking through `duplicate`.
    pub fn first(&self) -> &PushOutcome {
        match self {
            PushOutcome::Duplicate { first } => first.first(),
            other => other,
        }
    }
}

/// The mutation took effect (or changed nothing because every value was already so).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Applied {
    pub entity: EntityKind,
    pub entity_id: Uuid,
    /// The entity's version after the mutation.
    pub version: u64,
    /// The order's human number (server-assigned), for work orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// False when every operation was already in effect (no version bump).
    pub changed: bool,
    /// The order as the server now holds it (for work orders), so the device can take
    /// the server's truth at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<WorkOrder>,
}

/// Some operations took effect; the `set`s of `fields` wait in an open conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppliedWithConflicts {
    pub entity_id: Uuid,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    pub conflict_id: Uuid,
    /// Field keys ([`SetOp::field_key`]) that wait for a person. Empty when the whole
    /// mutation is held (see [`ConflictKind`]).
    pub fields: Vec<String>,
    pub conflict_kind: ConflictKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<WorkOrder>,
}

/// A permanent refusal, recorded as a failed sync for dispatchers (`failed_sync_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_errors: Vec<FieldError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_sync_id: Option<Uuid>,
    /// For `already_resolved`: how the conflict or failed sync was settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

// ---------------------------------------------------------------------------------
// Conflicts, failed syncs, resolutions
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    Open,
    Resolved,
}

/// Why a conflict was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// Some `set`s met a newer change of the same field by another device; the rest of
    /// the mutation applied.
    Fields,
    /// A completion arrived for an order another device cancelled after the base; the
    /// whole completion (with its evidence) is held.
    CompletionAfterCancel,
    /// A completion arrived for an order reassigned after the base.
    CompletionAfterReassign,
    /// An edit (checklist, fields, parts; not notes alone) arrived for an order another
    /// device cancelled after the base; the whole edit is held.
    UpdateAfterCancel,
    /// A technician who was the assignee at the base pushed after a reassignment; the
    /// whole mutation is held.
    Reassigned,
}

impl ConflictKind {
    /// Whether the whole mutation waits (nothing of it applied).
    pub fn holds_whole_mutation(self) -> bool {
        !matches!(self, ConflictKind::Fields)
    }

    /// The order field whose change on the server holds the whole mutation: `status`
    /// after a cancellation, `assignee` after a reassignment; none for field conflicts.
    pub fn held_by_field(self) -> Option<&'static str> {
        match self {
            ConflictKind::Fields => None,
            ConflictKind::CompletionAfterCancel | ConflictKind::UpdateAfterCancel => Some("status"),
            ConflictKind::CompletionAfterReassign | ConflictKind::Reassigned => Some("assignee"),
        }
    }
}

/// One field that waits for a person: the device's `set`, the server's current value
/// and the value at the device's base (when the server still knows it), each as the
/// same `set` operation so a resolution can send back whichever is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConflictField {
    pub field: String,
    pub device: SetOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<SetOp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<SetOp>,
    /// Who set the server's value and when (issue 20: the dispatcher's desk shows it
    /// beside the value). Left out when unknown; devices ignore it when they do not
    /// know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_set: Option<FieldChange>,
}

/// The last change of a field on the server: who made it, the device's clock when they
/// acted, and when the server received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_time: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResolutionOutcome {
    AcceptedDevice,
    KeptServer,
    Merged,
    /// A failed sync dismissed without change.
    Dismissed,
    /// A failed sync settled by applying the given operations.
    Applied,
}

/// How a conflict or failed sync was settled, by whom and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Resolution {
    pub outcome: ResolutionOutcome,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
    /// The resolving mutation.
    pub mutation_id: Uuid,
    /// The operations applied to the order (empty when the server's state was kept).
    pub ops: Vec<Op>,
    /// The order's version after the resolution, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_version: Option<u64>,
    /// The dispatcher's reason (the resolving mutation's `reason`), for the
    /// technician. Left out when empty; devices ignore it when they do not know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An open or settled conflict, with the full payload of the mutation that caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConflictRecord {
    pub id: Uuid,
    /// 1 while open; 2 once resolved. A resolution names the version it expects.
    pub version: u64,
    pub status: RecordStatus,
    pub kind: ConflictKind,
    pub order_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_number: Option<u64>,
    /// The order's assignee when the conflict was opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    pub username: String,
    pub device_id: Uuid,
    /// When the server received the mutation and opened the conflict (its clock).
    pub created_at: DateTime<Utc>,
    /// The device's clock when the person acted (the mutation's `device_time`), beside
    /// the server's receive time. Absent in records written before protocol 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_time: Option<DateTime<Utc>>,
    pub fields: Vec<ConflictField>,
    /// For a record that holds the whole mutation: the change on the server that made
    /// it wait (the cancellation for `*_after_cancel`, the reassignment for
    /// `completion_after_reassign` and `reassigned`), who made it, their device's time
    /// and when the server received it, for the dispatcher's desk. Left out when
    /// unknown; devices that do not know it ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<FieldChange>,
    pub mutation: Mutation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

/// What a person chose for a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolutionChoice {
    /// Take the device's version (for a held completion: complete the order with it).
    AcceptDevice,
    /// Keep the server's state; nothing changes.
    KeepServer,
    /// Take the device's value for these field keys and keep the server's for the rest.
    PerField(Vec<String>),
}

impl ConflictRecord {
    /// The operations that carry out `choice`.
    pub fn resolution_ops(&self, choice: &ResolutionChoice) -> Vec<Op> {
        match choice {
            ResolutionChoice::KeepServer => Vec::new(),
            ResolutionChoice::AcceptDevice if self.kind.holds_whole_mutation() => {
                let mut ops = self.mutation.ops.clone();
                if self.mutation.kind == MutationKind::Complete {
                    ops.push(Op::Set(SetOp::Status(crate::status::Status::Completed)));
                    let has_time = ops
                        .iter()
                        .any(|op| matches!(op, Op::Set(SetOp::CompletedAt(Some(_)))));
                    if !has_time {
                        ops.push(Op::Set(SetOp::CompletedAt(Some(self.mutation.device_time))));
                    }
                }
                ops
            }
            ResolutionChoice::AcceptDevice => self
                .fields
                .iter()
                .map(|f| Op::Set(f.device.clone()))
                .collect(),
            ResolutionChoice::PerField(keys) => self
                .fields
                .iter()
                .filter(|f| keys.contains(&f.field))
                .map(|f| Op::Set(f.device.clone()))
                .collect(),
        }
    }

    /// Add a later held change `m` of the same device and order to this open record,
    /// so that one device's repeated conflicts on one order stay one record (one place
    /// to decide, and no pile of records a client can grow at will by pushing on an
    /// old base): each field takes the later device and server values (the earliest
    /// base is kept), new fields are added, the held mutation absorbs the later ops
    /// ([`Mutation::absorb_held`]: nothing pushed is dropped), and a hold of the whole
    /// change outranks a field conflict. The version goes up, so a decision made on
    /// the earlier state is refused as `version_mismatch` instead of settling changes
    /// nobody saw.
    pub fn absorb(&mut self, m: &Mutation, kind: ConflictKind, fields: Vec<ConflictField>) {
        for f in fields {
            match self.fields.iter_mut().find(|e| e.field == f.field) {
                Some(e) => {
                    e.device = f.device;
                    e.server = f.server;
                    e.server_set = f.server_set;
                    if e.base.is_none() {
                        e.base = f.base;
                    }
                }
                None => self.fields.push(f),
            }
        }
        if kind.holds_whole_mutation() {
            self.kind = kind;
        }
        self.mutation.absorb_held(m);
        self.device_time = Some(m.device_time);
        self.version += 1;
    }

    /// Whether `username`, a technician, is shown the server's side of the fields:
    /// only when the order was theirs when the record was opened. A former assignee
    /// pushing on an old base sees their own change and what they knew (the base), not
    /// the order as it is now.
    pub fn shows_server_side_to(&self, username: &str) -> bool {
        self.assignee.as_deref() == Some(username)
    }

    /// Leave out the server's side of every field (see
    /// [`ConflictRecord::shows_server_side_to`]).
    pub fn without_server_side(mut self) -> Self {
        for f in &mut self.fields {
            f.server = None;
            f.server_set = None;
        }
        self.held_by = None;
        self
    }

    /// The `resolve` mutation a device sends for `choice` (through push, like any
    /// other change, so a dispatcher's decision is offline-first too).
    pub fn resolve_mutation(
        &self,
        choice: &ResolutionChoice,
        mutation_id: Uuid,
        device_id: Uuid,
        device_time: DateTime<Utc>,
    ) -> Mutation {
        let ops = self.resolution_ops(choice);
        Mutation {
            mutation_id,
            device_id,
            entity: EntityKind::Conflict,
            entity_id: self.id,
            kind: MutationKind::Resolve,
            base_version: self.version,
            format: FORMAT_VERSION,
            device_time,
            seen: self.seen_for(&ops),
            ops,
            base_epoch: None,
            reason: None,
        }
    }

    /// What the person deciding saw of each field `ops` sets: the server's side of
    /// this record (a field the record does not hold, or holds without a server value,
    /// is left out and not checked).
    pub fn seen_for(&self, ops: &[Op]) -> Vec<SetOp> {
        ops.iter()
            .filter_map(|op| match op {
                Op::Set(set) => {
                    let key = set.field_key();
                    self.fields
                        .iter()
                        .find(|f| f.field == key)
                        .and_then(|f| f.server.clone())
                }
                _ => None,
            })
            .collect()
    }
}

/// A mutation the server refused, with everything a dispatcher needs to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedSyncRecord {
    pub id: Uuid,
    /// 1 while open; 2 once resolved.
    pub version: u64,
    pub status: RecordStatus,
    pub order_id: Uuid,
    /// The order's assignee when the mutation was refused, if the order exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    pub username: String,
    pub device_id: Uuid,
    /// When the server received the mutation (its clock).
    pub received_at: DateTime<Utc>,
    /// The device's clock when the person acted (the mutation's `device_time`). Absent
    /// in records written before protocol 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_time: Option<DateTime<Utc>>,
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_errors: Vec<FieldError>,
    pub mutation: Mutation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

impl FailedSyncRecord {
    /// The `resolve` mutation for a failed sync: no ops dismisses it; ops are applied to
    /// the order as the dispatcher's decision.
    pub fn resolve_mutation(
        &self,
        ops: Vec<Op>,
        mutation_id: Uuid,
        device_id: Uuid,
        device_time: DateTime<Utc>,
    ) -> Mutation {
        Mutation {
            mutation_id,
            device_id,
            entity: EntityKind::FailedSync,
            entity_id: self.id,
            kind: MutationKind::Resolve,
            base_version: self.version,
            format: FORMAT_VERSION,
            device_time,
            ops,
            base_epoch: None,
            reason: None,
            seen: Vec::new(),
        }
    }
}

/// `GET /v1/conflicts` and `GET /v1/failed-syncs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConflictList {
    pub items: Vec<ConflictRecord>,
    /// The answer stopped at its byte budget (`limits::LIST_BYTES_MAX`): older records
    /// exist (protocol 2 clients only; left out when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedSyncList {
    pub items: Vec<FailedSyncRecord>,
    /// The answer stopped at its byte budget (`limits::LIST_BYTES_MAX`): older records
    /// exist (protocol 2 clients only; left out when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

/// An inventory item whose stock went below zero (parts used beyond what was booked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockAlert {
    pub sku: String,
    pub name: String,
    pub location: String,
    pub quantity: crate::domain::Quantity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockAlertList {
    pub items: Vec<StockAlert>,
}

// ---------------------------------------------------------------------------------
// Documents (issue 22)
// ---------------------------------------------------------------------------------

/// One document (a manual, a drawing) the caller's open orders need, in its current
/// version. The bytes are at `GET /v1/documents/{id}/content`, whose `ETag` is the
/// quoted `sha256`. A new version keeps the `id` and changes `version`, `sha256` and
/// `size`; a removed document is no longer listed. Only a device reads this: unknown
/// members are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentInfo {
    pub id: Uuid,
    /// Bumped each time a new file replaces the document (1 for the first).
    pub version: u64,
    /// The file name the administrator gave (e.g. `hx-200-service-manual.pdf`).
    pub name: String,
    /// e.g. `application/pdf`, `image/png`, `text/plain`.
    pub media_type: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// The caller's open orders that need it (linked directly, or through their
    /// equipment's model or asset tag).
    pub orders: Vec<Uuid>,
}

/// `POST /v1/documents`: what an upload did (staff only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentAdded {
    pub id: Uuid,
    pub version: u64,
    /// The file replaced an existing document's (same name and links, or `replace`).
    pub replaced: bool,
    pub size: u64,
    pub sha256: String,
}

/// `GET /v1/documents`: every document the caller's open orders need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentIndex {
    pub items: Vec<DocumentInfo>,
    /// The administrator's default for the devices' documents budget, in bytes
    /// (`serve --document-budget-bytes`); a budget the person set on the device wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_bytes: Option<u64>,
}

// ---------------------------------------------------------------------------------
// Pull
// ---------------------------------------------------------------------------------

/// `POST /v1/pull`. No cursor means "prime me": a snapshot first, then the log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    #[serde(default)]
    pub cursor: Option<String>,
    /// Rows per page (at most [`limits::PULL_LIMIT_MAX`]).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Bytes of rows per page (at most [`limits::PULL_BYTES_MAX`]).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Issue 24: the log ranges of this device's own pushes whose answers it received
    /// and recorded (each push answer's `written`). Order rows in them that only the
    /// device's acknowledged mutations made are left out of the page (the device holds
    /// them from the answers); the cursor moves past them all the same. Sent only
    /// after a push answer carried `written`, so never to a server that does not know
    /// the member (which refuses unknown members). At most
    /// [`limits::CONFIRMED_RANGES_MAX`] ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confirmed: Vec<LogRange>,
}

/// One page. Apply `changes` and store `cursor` in one local transaction; ask again
/// while `has_more`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullResponse {
    pub changes: Vec<Change>,
    pub cursor: String,
    pub has_more: bool,
    /// Present while a snapshot is being sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priming: Option<PrimingProgress>,
    pub server_time: DateTime<Utc>,
    /// Protocol 2: the server's epoch the page's versions belong to; a device sends it
    /// back as `base_epoch` on the mutations it makes on these rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PrimingPhase {
    Orders,
    Conflicts,
    FailedSyncs,
    Inventory,
}

/// Progress of a snapshot: `done` of `total` rows sent (total counted when it began).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrimingProgress {
    pub phase: PrimingPhase,
    pub done: u64,
    pub total: u64,
    /// The log sequence the snapshot stands for; the log is followed from here.
    pub snapshot_seq: u64,
}

/// The kind of entity a change row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeEntity {
    WorkOrder,
    InventoryItem,
    Conflict,
    FailedSync,
    /// A kind this version does not know (from a newer server): skipped.
    #[serde(other)]
    Unknown,
}

impl ChangeEntity {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeEntity::WorkOrder => "work_order",
            ChangeEntity::InventoryItem => "inventory_item",
            ChangeEntity::Conflict => "conflict",
            ChangeEntity::FailedSync => "failed_sync",
            ChangeEntity::Unknown => "unknown",
        }
    }
}

impl std::str::FromStr for ChangeEntity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "work_order" => Ok(ChangeEntity::WorkOrder),
            "inventory_item" => Ok(ChangeEntity::InventoryItem),
            "conflict" => Ok(ChangeEntity::Conflict),
            "failed_sync" => Ok(ChangeEntity::FailedSync),
            _ => Err(format!("unknown entity {s:?}")),
        }
    }
}

/// One row of a pull page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// The change-log sequence; 0 for snapshot rows.
    pub seq: u64,
    pub entity: ChangeEntity,
    /// The entity's id (a UUID, or the SKU for inventory items).
    pub id: String,
    pub version: u64,
    /// The mutations that produced this row (a pulled row naming one of the device's
    /// pending mutations acknowledges it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutation_ids: Vec<Uuid>,
    pub change: ChangeBody,
}

/// The row itself, or what happened to it.
///
/// On the wire `{"kind": …, "row": …}` (serde's adjacent tagging). Read by a
/// hand-written `Deserialize` (module `change_body_de`) so that a kind this version
/// does not know reads as [`ChangeBody::Unknown`] with its row skipped unread, instead
/// of failing the whole page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", content = "row", rename_all = "snake_case")]
pub enum ChangeBody {
    WorkOrder(WorkOrder),
    InventoryItem(InventoryItem),
    Conflict(ConflictRecord),
    FailedSync(FailedSyncRecord),
    /// The entity left the caller's scope (reassigned away); remove it locally unless it
    /// carries unsynced work.
    LeftScope(LeftScope),
    /// The entity was deleted.
    Tombstone,
    /// A kind this version does not know (from a newer server; its row is not read).
    /// The device skips it, counts it and says so in its status.
    Unknown,
}

mod change_body_de {
    //! `Deserialize` for [`ChangeBody`]: what serde's derive for an adjacently tagged
    //! enum reads, plus any unknown `kind` as [`ChangeBody::Unknown`] (its `row` is
    //! skipped, not buffered). The server writes `kind` first, so the row is read
    //! straight into its type; a document with `row` first is read through
    //! `serde_json::Value`.

    use std::fmt;

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde::Deserialize;

    use super::ChangeBody;

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "lowercase")]
    enum Field {
        Kind,
        Row,
        #[serde(other)]
        Other,
    }

    #[derive(Debug, Clone, Copy, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        WorkOrder,
        InventoryItem,
        Conflict,
        FailedSync,
        LeftScope,
        Tombstone,
        #[serde(other)]
        Unknown,
    }

    impl<'de> Deserialize<'de> for ChangeBody {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(BodyVisitor)
        }
    }

    /// The variant `kind` names, from its buffered row (`None`: there was no row).
    fn variant<E: de::Error>(kind: Kind, row: Option<serde_json::Value>) -> Result<ChangeBody, E> {
        fn read<T: serde::de::DeserializeOwned, E: de::Error>(
            row: Option<serde_json::Value>,
        ) -> Result<T, E> {
            serde_json::from_value(row.ok_or_else(|| E::missing_field("row"))?).map_err(E::custom)
        }
        Ok(match kind {
            Kind::WorkOrder => ChangeBody::WorkOrder(read(row)?),
            Kind::InventoryItem => ChangeBody::InventoryItem(read(row)?),
            Kind::Conflict => ChangeBody::Conflict(read(row)?),
            Kind::FailedSync => ChangeBody::FailedSync(read(row)?),
            Kind::LeftScope => ChangeBody::LeftScope(read(row)?),
            Kind::Tombstone => ChangeBody::Tombstone,
            Kind::Unknown => ChangeBody::Unknown,
        })
    }

    /// The row of `kind`, read from the map's next value.
    fn next_row<'de, A: MapAccess<'de>>(kind: Kind, map: &mut A) -> Result<ChangeBody, A::Error> {
        Ok(match kind {
            Kind::WorkOrder => ChangeBody::WorkOrder(map.next_value()?),
            Kind::InventoryItem => ChangeBody::InventoryItem(map.next_value()?),
            Kind::Conflict => ChangeBody::Conflict(map.next_value()?),
            Kind::FailedSync => ChangeBody::FailedSync(map.next_value()?),
            Kind::LeftScope => ChangeBody::LeftScope(map.next_value()?),
            Kind::Tombstone => {
                map.next_value::<IgnoredAny>()?;
                ChangeBody::Tombstone
            }
            Kind::Unknown => {
                map.next_value::<IgnoredAny>()?;
                ChangeBody::Unknown
            }
        })
    }

    struct BodyVisitor;

    impl<'de> Visitor<'de> for BodyVisitor {
        type Value = ChangeBody;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a change body (an object with a `kind` member)")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChangeBody, A::Error> {
            let mut kind: Option<Kind> = None;
            let mut body: Option<ChangeBody> = None;
            let mut buffered: Option<serde_json::Value> = None;
            while let Some(field) = map.next_key::<Field>()? {
                match field {
                    Field::Kind => kind = Some(map.next_value()?),
                    Field::Row => match kind {
                        Some(k) => body = Some(next_row(k, &mut map)?),
                        None => buffered = Some(map.next_value()?),
                    },
                    Field::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
            match body {
                Some(b) => Ok(b),
                None => variant(kind, buffered),
            }
        }
    }
}

impl Change {
    /// Whether this row is of a kind this version does not know.
    pub fn is_unknown(&self) -> bool {
        self.entity == ChangeEntity::Unknown || matches!(self.change, ChangeBody::Unknown)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeftScope {
    /// Who holds the order now (to show "reassigned to …").
    #[serde(default)]
    pub now_assigned_to: Option<String>,
}

// ---------------------------------------------------------------------------------
// Attachments
// ---------------------------------------------------------------------------------

/// The state of an upload: `received` bytes are stored; resume from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachmentStatus {
    pub hash: String,
    pub received: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Stored and its SHA-256 verified.
    pub complete: bool,
}

/// `POST /v1/attachments-batch`: small files in one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchUploadRequest {
    pub files: Vec<BatchFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchFile {
    pub hash: String,
    /// The bytes, standard base64 with padding.
    pub data_base64: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchUploadResponse {
    pub results: Vec<BatchFileResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchFileResult {
    pub hash: String,
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

// ---------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    pub protocol_version: u32,
    pub server_time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_outcomes() -> Vec<PushOutcome> {
        let mut order = WorkOrder::blank(Uuid::from_u128(7));
        order.title = "Pump \"seal\" } {\"result\":1}".into();
        order.version = 3;
        let applied = Applied {
            entity: crate::mutation::EntityKind::WorkOrder,
            entity_id: order.id,
            version: 3,
            number: Some(12),
            changed: true,
            order: Some(order.clone()),
        };
        vec![
            PushOutcome::Applied(applied.clone()),
            PushOutcome::Applied(Applied {
                number: None,
                order: None,
                changed: false,
                ..applied.clone()
            }),
            PushOutcome::AppliedWithConflicts(AppliedWithConflicts {
                entity_id: order.id,
                version: 4,
                number: None,
                conflict_id: Uuid::from_u128(9),
                fields: vec!["title".into()],
                conflict_kind: ConflictKind::Fields,
                order: Some(order),
            }),
            PushOutcome::Duplicate {
                first: Box::new(PushOutcome::Duplicate {
                    first: Box::new(PushOutcome::Applied(applied)),
                }),
            },
            PushOutcome::Rejected(Rejection {
                code: ErrorCode::ValidationFailed,
                message: "title: must not be empty".into(),
                field_errors: vec![FieldError {
                    field: "title".into(),
                    code: "required".into(),
                    message: "must not be empty".into(),
                }],
                failed_sync_id: Some(Uuid::from_u128(3)),
                resolution: None,
            }),
            PushOutcome::MissingAttachments {
                hashes: vec!["ab".repeat(32)],
            },
            PushOutcome::HeldBehind {
                behind: Uuid::from_u128(5),
            },
        ]
    }

    /// What the server writes (`result` first) reads back, from text and from a
    /// `serde_json::Value` alike.
    #[test]
    fn push_outcomes_read_back_as_written() {
        for outcome in sample_outcomes() {
            let text = serde_json::to_string(&outcome).expect("json");
            assert!(text.starts_with(r#"{"result":"#), "{text}");
            let back: PushOutcome = serde_json::from_str(&text).expect("parse");
            assert_eq!(back, outcome);
            let value = serde_json::to_value(&outcome).expect("json");
            let back: PushOutcome = serde_json::from_value(value).expect("from a value");
            assert_eq!(back, outcome);
        }
    }

    /// `result` anywhere in the object, and members the client does not know, read as
    /// the derive for an internally tagged enum reads them.
    #[test]
    fn push_outcomes_read_with_the_tag_anywhere_and_unknown_members() {
        for outcome in sample_outcomes() {
            let serde_json::Value::Object(members) = serde_json::to_value(&outcome).expect("json")
            else {
                panic!("an outcome is an object");
            };
            let mut names: Vec<&String> = members.keys().collect();
            names.sort();
            names.reverse();
            let mut text = String::from(r#"{"from_a_newer_server":[1,{"x":null}]"#);
            for name in names {
                text.push(',');
                text.push_str(&serde_json::to_string(name).expect("json"));
                text.push(':');
                text.push_str(&serde_json::to_string(&members[name]).expect("json"));
            }
            text.push('}');
            let back: PushOutcome = serde_json::from_str(&text).expect("parse");
            assert_eq!(back, outcome, "{text}");
            // `result` first, an unknown member last: read without buffering.
            let written = serde_json::to_string(&outcome).expect("json");
            let text = format!(
                "{},\"from_a_newer_server\":{{\"y\":[2]}}}}",
                written.strip_suffix('}').expect("an object")
            );
            let back: PushOutcome = serde_json::from_str(&text).expect("parse");
            assert_eq!(back, outcome, "{text}");
        }
    }

    #[test]
    fn a_push_outcome_without_its_tag_or_of_an_unknown_kind_is_an_error() {
        for bad in [
            r#"{"hashes":[]}"#,
            r#"{}"#,
            r#"{"result":"exploded"}"#,
            r#"{"result":"missing_attachments"}"#,
            r#"{"hashes":[],"result":"rejected"}"#,
            r#"[]"#,
        ] {
            assert!(serde_json::from_str::<PushOutcome>(bad).is_err(), "{bad}");
        }
        let ok: PushOutcome =
            serde_json::from_str(r#"{"hashes":[],"result":"missing_attachments"}"#).expect("parse");
        assert_eq!(ok, PushOutcome::MissingAttachments { hashes: vec![] });
    }

    #[test]
    fn unknown_error_codes_from_a_newer_server_still_parse() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"code":"brand_new","message":"x"}"#).expect("parse");
        assert_eq!(body.code, ErrorCode::Unknown);
        let known: ErrorBody =
            serde_json::from_str(r#"{"code":"resync_required","message":"x"}"#).expect("parse");
        assert_eq!(known.code, ErrorCode::ResyncRequired);
    }

    #[test]
    fn error_codes_serialize_as_their_names() {
        for code in [
            ErrorCode::MalformedJson,
            ErrorCode::MutationIdReused,
            ErrorCode::AlreadyResolved,
            ErrorCode::ResyncRequired,
        ] {
            let json = serde_json::to_value(code).expect("serialize");
            assert_eq!(json, serde_json::json!(code.as_str()));
        }
    }

    #[test]
    fn push_outcomes_have_a_readable_tag() {
        let o = PushOutcome::MissingAttachments {
            hashes: vec!["a".repeat(64)],
        };
        let json = serde_json::to_value(&o).expect("serialize");
        assert_eq!(json["result"], "missing_attachments");
        assert!(!o.is_acknowledged());
        let dup = PushOutcome::Duplicate {
            first: Box::new(PushOutcome::Rejected(Rejection {
                code: ErrorCode::ValidationFailed,
                message: "x".into(),
                field_errors: vec![],
                failed_sync_id: None,
                resolution: None,
            })),
        };
        let back: PushOutcome =
            serde_json::from_value(serde_json::to_value(&dup).expect("serialize")).expect("parse");
        assert_eq!(back, dup);
        assert!(matches!(back.first(), PushOutcome::Rejected(_)));
    }

    #[test]
    fn change_rows_round_trip() {
        let c = Change {
            seq: 7,
            entity: ChangeEntity::WorkOrder,
            id: Uuid::nil().to_string(),
            version: 3,
            mutation_ids: vec![],
            change: ChangeBody::LeftScope(LeftScope {
                now_assigned_to: Some("tech2".into()),
            }),
        };
        let json = serde_json::to_value(&c).expect("serialize");
        assert_eq!(json["change"]["kind"], "left_scope");
        assert_eq!(json["change"]["row"]["now_assigned_to"], "tech2");
        let back: Change = serde_json::from_value(json).expect("parse");
        assert_eq!(back, c);
        let t = Change {
            change: ChangeBody::Tombstone,
            ..c
        };
        let json = serde_json::to_value(&t).expect("serialize");
        assert_eq!(json["change"], serde_json::json!({"kind": "tombstone"}));
        assert_eq!(serde_json::from_value::<Change>(json).expect("parse"), t);
    }

    /// A newer server's entity kind in a pull page: the page still reads, and the row
    /// is marked unknown so the device can skip it (docs/protocol.md, "Compatibility").
    #[test]
    fn a_pull_page_with_a_kind_this_version_does_not_know_still_reads() {
        let page = r#"{"changes":[
            {"seq":1,"entity":"invoice","id":"i-1","version":1,"change":{"kind":"invoice","row":{"total":3}}},
            {"seq":2,"entity":"work_order","id":"x","version":2,"change":{"kind":"tombstone"}}
        ],"cursor":"c","has_more":false,"server_time":"2026-01-01T00:00:00Z"}"#;
        let page: PullResponse = serde_json::from_str(page).expect("the page reads");
        assert_eq!(page.changes.len(), 2);
        assert!(page.changes[0].is_unknown());
        assert!(!page.changes[1].is_unknown());
        // A known kind with its row first, and a known entity with an unknown kind.
        let row_first: ChangeBody =
            serde_json::from_str(r#"{"row":{"now_assigned_to":"tech2"},"kind":"left_scope"}"#)
                .expect("read");
        assert_eq!(
            row_first,
            ChangeBody::LeftScope(LeftScope {
                now_assigned_to: Some("tech2".into())
            })
        );
        let c: Change = serde_json::from_str(
            r#"{"seq":3,"entity":"work_order","id":"x","version":1,"change":{"kind":"archived","row":[1]}}"#,
        )
        .expect("read");
        assert!(c.is_unknown());
        assert!(serde_json::from_str::<ChangeBody>(r#"{"kind":"work_order"}"#).is_err());
        assert!(serde_json::from_str::<ChangeBody>(r#"{"row":{}}"#).is_err());
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        assert!(serde_json::from_str::<LoginRequest>(
            r#"{"username":"a","password":"b","device_id":"00000000-0000-0000-0000-000000000000","x":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<PullRequest>(r#"{"cursor":null,"page":3}"#).is_err());
    }
}
