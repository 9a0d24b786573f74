//! The desktop app's use cases around sync, so that the shell's commands stay one line:
//! sign-in (first run included), sign-out (refused while work is unsynced), the engine's
//! status as the sync indicator shows it, and the review screens for failed syncs and
//! conflicts. The view types cross to the UI and are exported to TypeScript with the
//! others (`views::export_bindings`).

use chrono::{DateTime, Utc};
use outpost_protocol::wire::{ConflictRecord, FailedSyncRecord, RecordStatus};
use outpost_protocol::{Op, SetOp, ValidationErrors};
use outpost_store::FailedSync;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::records::{set_from_text, ConflictView, FieldChoice};
use crate::views::FieldErrorView;
use crate::{
    ClientOptions, CoreError, EngineStatus, LoginAttempt, OpenOptions, OutboxState, Outpost,
    Progress,
};

/// The sign-in form.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct SignInInput {
    pub server_url: String,
    pub username: String,
    pub password: String,
    /// Only on first run where no credential store holds the database key.
    pub passphrase: Option<String>,
}

impl SignInInput {
    /// Every field's problem at once, before anything is created or sent.
    pub fn validate(&self) -> Result<(), CoreError> {
        let mut errors = ValidationErrors::default();
        crate::rules::check_server_url(&self.server_url, &mut errors);
        if self.username.trim().is_empty() {
            errors.push("username", "required", "type your user name");
        }
        if self.password.is_empty() {
            errors.push("password", "required", "type your password");
        }
        if let Some(p) = self.passphrase.as_deref() {
            crate::rules::check_passphrase(p, &mut errors);
        }
        Ok(errors.into_result()?)
    }
}

/// One change that has not reached the server (shown when sign-out is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct PendingChangeView {
    pub order_id: String,
    pub order_title: Option<String>,
    /// `create`, `update`, `complete`, `resolve`…
    pub kind: String,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub created_at: String,
}

/// Long work in progress, for the sync indicator's bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ProgressView {
    /// In words: "Sending changes", "Downloading your orders"…
    pub label: String,
    pub done: u32,
    /// 0 when unknown (a pull of the log).
    pub total: u32,
}

impl From<&Progress> for ProgressView {
    fn from(p: &Progress) -> Self {
        let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        match p {
            Progress::Pushing { done, total, .. } => ProgressView {
                label: "Sending changes".into(),
                done: n(*done as u64),
                total: n(*total as u64),
            },
            Progress::Uploading { done, total } => ProgressView {
                label: "Uploading photos and signatures".into(),
                done: n(*done as u64),
                total: n(*total as u64),
            },
            Progress::Priming { phase, done, total } => ProgressView {
                label: match phase {
                    outpost_protocol::wire::PrimingPhase::Orders => "Downloading your orders",
                    outpost_protocol::wire::PrimingPhase::Conflicts
                    | outpost_protocol::wire::PrimingPhase::FailedSyncs => {
                        "Downloading what waits for a decision"
                    }
                    outpost_protocol::wire::PrimingPhase::Inventory => "Downloading the inventory",
                }
                .into(),
                done: n(*done),
                total: n(*total),
            },
            Progress::Pulling { rows } => ProgressView {
                label: "Receiving changes".into(),
                done: n(*rows),
                total: 0,
            },
            Progress::Documents {
                file,
                files,
                done_bytes,
                total_bytes,
            } => ProgressView {
                label: format!("Downloading documents for offline use ({file} of {files}, KB)"),
                done: n(done_bytes / 1000),
                total: n(total_bytes / 1000),
            },
        }
    }
}

/// The sync indicator's state. The engine's states (`outpost_sync::Connectivity`) under
/// the names the CLI's status also uses (`connectivity_name`), and `Local`: no server,
/// the local demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SyncConnectivity {
    Offline,
    Online,
    Syncing,
    /// The server answered but the pass failed (the status's `reason` says why).
    Error,
    /// The session will never work again: sign in again (unsynced work is kept).
    SignInRequired,
    /// No server: the local demo.
    Local,
}

impl From<&outpost_sync::Connectivity> for SyncConnectivity {
    fn from(c: &outpost_sync::Connectivity) -> Self {
        use outpost_sync::Connectivity as C;
        match c {
            C::Offline => SyncConnectivity::Offline,
            C::Online => SyncConnectivity::Online,
            C::Syncing => SyncConnectivity::Syncing,
            C::Error(_) => SyncConnectivity::Error,
            C::SignInRequired(_) => SyncConnectivity::SignInRequired,
        }
    }
}

/// The sync indicator: the engine's status, or the local counts when no engine runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct EngineStatusView {
    pub connectivity: SyncConnectivity,
    /// Why, in words, for `error` and `sign_in_required` (and the last offline reason).
    pub reason: Option<String>,
    /// Changes not yet acknowledged by the server.
    pub pending: u32,
    pub failed: u32,
    pub conflicts: u32,
    /// Pulled changes of a kind this version does not know, skipped: "update Outpost
    /// to see them".
    pub skipped: u32,
    pub last_sync: Option<DateTime<Utc>>,
    pub progress: Option<ProgressView>,
    /// Bumped when a pass finds new failed syncs or conflicts.
    pub notices: u32,
    /// The cached documents' warning in words (today's past the budget, downloads
    /// waiting for a better connection), or null.
    pub documents_note: Option<String>,
}

fn n32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl From<&EngineStatus> for EngineStatusView {
    fn from(s: &EngineStatus) -> Self {
        let reason = match &s.connectivity {
            outpost_sync::Connectivity::Error(r)
            | outpost_sync::Connectivity::SignInRequired(r) => Some(r.clone()),
            _ => s.last_error.clone(),
        };
        EngineStatusView {
            connectivity: SyncConnectivity::from(&s.connectivity),
            reason,
            pending: n32(s.pending),
            failed: n32(s.failed),
            conflicts: n32(s.conflicts),
            skipped: n32(s.skipped),
            last_sync: s.last_sync,
            progress: s.progress.as_ref().map(ProgressView::from),
            notices: u32::try_from(s.notices).unwrap_or(u32::MAX),
            documents_note: s.documents_note.clone(),
        }
    }
}

/// A change the server refused, as the technician reviews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct FailedSyncView {
    pub id: String,
    pub order_id: String,
    pub order_title: Option<String>,
    pub kind: String,
    pub code: String,
    /// The reason in plain words.
    pub message: String,
    pub field_errors: Vec<FieldErrorView>,
    pub created_at: String,
    /// The full payload, pretty-printed JSON.
    pub payload: String,
}

impl From<&FailedSync> for FailedSyncView {
    fn from(f: &FailedSync) -> Self {
        FailedSyncView {
            id: f.id.clone(),
            order_id: f.order_id.clone(),
            order_title: f.order_title.clone(),
            kind: f.kind.clone(),
            code: f.code.clone(),
            message: f.message.clone(),
            field_errors: f
                .field_errors
                .iter()
                .map(|e| FieldErrorView {
                    field: e.field.clone(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            created_at: f.created_at.clone(),
            payload: serde_json::to_string_pretty(&f.mutation).unwrap_or_default(),
        }
    }
}

/// A failed sync anywhere in the fleet, as a dispatcher reviews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct FleetFailedSyncView {
    pub id: String,
    pub order_id: String,
    pub username: String,
    pub code: String,
    pub message: String,
    pub field_errors: Vec<FieldErrorView>,
    pub received_at: DateTime<Utc>,
    /// `open` or `resolved`.
    pub status: String,
    pub payload: String,
}

impl From<&FailedSyncRecord> for FleetFailedSyncView {
    fn from(r: &FailedSyncRecord) -> Self {
        FleetFailedSyncView {
            id: r.id.to_string(),
            order_id: r.order_id.to_string(),
            username: r.username.clone(),
            code: r.code.as_str().to_owned(),
            message: r.message.clone(),
            field_errors: r
                .field_errors
                .iter()
                .map(|e| FieldErrorView {
                    field: e.field.clone(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            received_at: r.received_at,
            status: status_name(r.status).to_owned(),
            payload: serde_json::to_string_pretty(&r.mutation).unwrap_or_default(),
        }
    }
}

fn status_name(s: RecordStatus) -> &'static str {
    match s {
        RecordStatus::Open => "open",
        RecordStatus::Resolved => "resolved",
    }
}

/// A correction typed on the "edit and resubmit" form: a field key from the failed
/// sync's field errors (`checklist.meter`, `title`…) and its new value as text (`true`
/// for a checklist step done).
#[derive(Debug, Clone, Deserialize, TS)]
pub struct FixInput {
    pub field: String,
    pub value: String,
}

/// One field of a conflict, side by side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ConflictFieldView {
    pub field: String,
    /// The value before either change (when known), as text.
    pub base: Option<String>,
    /// The server's value now (what someone else set).
    pub theirs: Option<String>,
    /// This device's value.
    pub mine: String,
    /// A text field: a merged text can be typed.
    pub text: bool,
}

/// A conflict as the review screen shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ConflictDetailView {
    pub id: String,
    pub order_id: Option<String>,
    pub order_number: Option<u32>,
    /// `open` or `resolved`.
    pub status: String,
    /// What kind of conflict, in words.
    pub summary: String,
    /// Who made the device's change.
    pub username: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub fields: Vec<ConflictFieldView>,
    /// The conflict holds a whole change (a completion after a cancellation, an edit
    /// after a reassignment): it is accepted or dropped as a whole.
    pub whole_change: bool,
    /// A resolution from this device is on its way.
    pub resolving: bool,
    /// How it was settled, in words, once it was.
    pub resolution: Option<String>,
    /// The details have not arrived yet (sync first).
    pub details_pending: bool,
    /// The full payload, pretty-printed JSON.
    pub payload: String,
}

/// The value inside a `set`, as text: strings as they are, the rest as JSON.
fn set_value_text(op: &SetOp) -> String {
    match serde_json::to_value(op) {
        Ok(v) => match v.get("value") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => v.to_string(),
        },
        Err(_) => String::new(),
    }
}

impl From<&ConflictView> for ConflictDetailView {
    fn from(c: &ConflictView) -> Self {
        let payload = serde_json::to_string_pretty(&c.raw).unwrap_or_default();
        match &c.record {
            Some(r) => detail_of(c, r, payload),
            None => ConflictDetailView {
                id: c.id.clone(),
                order_id: c.order_id.clone(),
                order_number: None,
                status: c.status.clone(),
                summary: "The server holds this change for a decision; its details arrive with the next sync.".into(),
                username: None,
                created_at: None,
                fields: Vec::new(),
                whole_change: false,
                resolving: c.resolving,
                resolution: None,
                details_pending: true,
                payload,
            },
        }
    }
}

fn detail_of(c: &ConflictView, r: &ConflictRecord, payload: String) -> ConflictDetailView {
    let whole = r.kind.holds_whole_mutation();
    ConflictDetailView {
        id: c.id.clone(),
        order_id: Some(r.order_id.to_string()),
        order_number: r.order_number.and_then(|n| u32::try_from(n).ok()),
        status: status_name(r.status).to_owned(),
        summary: conflict_summary(r),
        username: Some(r.username.clone()),
        created_at: Some(r.created_at),
        fields: r
            .fields
            .iter()
            .map(|f| ConflictFieldView {
                field: f.field.clone(),
                base: f.base.as_ref().map(set_value_text),
                theirs: f.server.as_ref().map(set_value_text),
                mine: set_value_text(&f.device),
                text: matches!(f.device, SetOp::Title(_) | SetOp::Description(_)),
            })
            .collect(),
        whole_change: whole,
        resolving: c.resolving,
        resolution: r.resolution.as_ref().map(|res| {
            format!(
                "{} by {}",
                match res.outcome {
                    outpost_protocol::wire::ResolutionOutcome::AcceptedDevice =>
                        "the device's change accepted",
                    outpost_protocol::wire::ResolutionOutcome::KeptServer =>
                        "the server's version kept",
                    outpost_protocol::wire::ResolutionOutcome::Merged => "merged",
                    outpost_protocol::wire::ResolutionOutcome::Dismissed => "dismissed",
                    outpost_protocol::wire::ResolutionOutcome::Applied => "applied",
                },
                res.decided_by
            )
        }),
        details_pending: false,
        payload,
    }
}

fn conflict_summary(r: &ConflictRecord) -> String {
    if r.kind.holds_whole_mutation() {
        format!(
            "{}'s {} change arrived after the order was cancelled or reassigned: accept it or keep the order as it is.",
            r.username,
            serde_json::to_value(r.mutation.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        )
    } else {
        format!(
            "{} and someone else changed the same field{} from the same version: choose what stands.",
            r.username,
            if r.fields.len() == 1 { "" } else { "s" }
        )
    }
}

/// A person's choice for one field: `mine`, `theirs`, or `merged` with its text.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct ConflictChoiceInput {
    pub field: String,
    pub choice: String,
    pub merged: Option<String>,
}

/// The conflict form.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct ResolveInput {
    pub choices: Vec<ConflictChoiceInput>,
    /// For a whole-change conflict: accept the device's change (else keep the server's).
    pub accept_whole_change: bool,
}

impl ResolveInput {
    pub fn into_choices(self) -> Result<(Vec<(String, FieldChoice)>, bool), CoreError> {
        let mut out = Vec::new();
        for c in self.choices {
            let choice = match c.choice.as_str() {
                "mine" => FieldChoice::Mine,
                "theirs" => FieldChoice::Theirs,
                "merged" => match c.merged {
                    Some(text) if !text.trim().is_empty() => FieldChoice::Value(text),
                    _ => {
                        return Err(ValidationErrors::single(
                            &c.field,
                            "required",
                            "type the merged text, or choose mine or theirs",
                        )
                        .into())
                    }
                },
                other => {
                    return Err(CoreError::BadInput(format!(
                        "{other:?} is not a choice (mine, theirs or merged)"
                    )))
                }
            };
            out.push((c.field, choice));
        }
        Ok((out, self.accept_whole_change))
    }
}

impl Outpost {
    /// First run: validate the form, then make the data directory and its key (the OS
    /// credential store, or the passphrase given). Nothing is created on a form error.
    pub fn init_for_sign_in(opts: OpenOptions, input: &SignInInput) -> Result<Outpost, CoreError> {
        input.validate()?;
        Outpost::init(opts, input.passphrase.as_deref())
    }

    /// Check the sign-in form against this device (the data directory is open) and make
    /// its request, to be sent without the database ([`crate::LoginAttempt`]).
    pub fn prepare_sign_in(
        &self,
        input: &SignInInput,
        client: &ClientOptions,
    ) -> Result<LoginAttempt, CoreError> {
        input.validate()?;
        self.prepare_login(
            input.server_url.trim(),
            input.username.trim(),
            &input.password,
            client,
        )
    }

    /// Every change not yet acknowledged, oldest first.
    pub fn pending_changes(&self) -> Result<Vec<PendingChangeView>, CoreError> {
        let rows = self.store.outbox()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let title = self.store.order(&r.entity_id).ok().map(|o| o.order.title);
            out.push(PendingChangeView {
                order_id: r.entity_id,
                order_title: title,
                kind: r.kind,
                state: match r.state {
                    OutboxState::Pending => "pending",
                    OutboxState::Sent => "sent",
                    OutboxState::Failed => "failed",
                }
                .to_owned(),
                created_at: r.created_at,
            });
        }
        Ok(out)
    }

    /// Sign out: refused while any change has not reached the server, so that no one
    /// loses work by signing out. The session's tokens are forgotten; the orders stay
    /// (encrypted) for the next sign-in.
    pub fn sign_out(&mut self) -> Result<(), CoreError> {
        let pending = self.store.outbox_len()?;
        if pending > 0 {
            return Err(CoreError::UnsyncedWork(pending));
        }
        Ok(self.store.clear_session()?)
    }

    /// The indicator's counts when no engine runs (local demo, before sign-in).
    pub fn local_status(&self) -> Result<EngineStatusView, CoreError> {
        let c = self.store.sync_counts()?;
        let signed_in = self.store.session()?;
        Ok(EngineStatusView {
            connectivity: match &signed_in {
                None => SyncConnectivity::Local,
                Some(s) if s.needs_sign_in.is_some() => SyncConnectivity::SignInRequired,
                Some(_) => SyncConnectivity::Offline,
            },
            reason: signed_in.and_then(|s| s.needs_sign_in),
            pending: n32(c.pending),
            failed: n32(c.failed),
            conflicts: n32(c.conflicts),
            skipped: n32(c.skipped),
            last_sync: self.store.last_sync_at()?,
            progress: None,
            notices: 0,
            documents_note: self.store.documents_state()?.note,
        })
    }

    pub fn failed_sync_views(&self) -> Result<Vec<FailedSyncView>, CoreError> {
        Ok(self
            .failed_syncs()?
            .iter()
            .map(FailedSyncView::from)
            .collect())
    }

    /// "Edit and resubmit": the corrections become `set`s applied before the change.
    pub fn resubmit_failed(
        &mut self,
        id: &str,
        fixes: &[FixInput],
    ) -> Result<crate::OrderRow, CoreError> {
        let ops = fixes
            .iter()
            .map(|f| set_from_text(&f.field, &f.value).map(Op::Set))
            .collect::<Result<Vec<_>, _>>()?;
        self.retry_failed(id, ops)
    }

    pub fn conflict_views(&self) -> Result<Vec<ConflictDetailView>, CoreError> {
        Ok(self
            .conflicts()?
            .iter()
            .map(ConflictDetailView::from)
            .collect())
    }

    pub fn resolve_conflict_with(
        &mut self,
        id: &str,
        input: ResolveInput,
    ) -> Result<ConflictDetailView, CoreError> {
        let (choices, accept) = input.into_choices()?;
        Ok(ConflictDetailView::from(
            &self.resolve_conflict(id, &choices, accept)?,
        ))
    }

    /// The fleet's open failed syncs (a dispatcher's review).
    pub fn fleet_failed_views(&self) -> Result<Vec<FleetFailedSyncView>, CoreError> {
        Ok(self
            .server_failed_syncs()?
            .iter()
            .filter(|r| r.status == RecordStatus::Open)
            .map(FleetFailedSyncView::from)
            .collect())
    }

    /// A dispatcher dismisses a failed sync (the order stays as the server has it).
    pub fn dismiss_fleet_failed(&mut self, id: &str) -> Result<(), CoreError> {
        let record = self
            .server_failed_syncs()?
            .into_iter()
            .find(|r| r.id.to_string() == id)
            .ok_or_else(|| CoreError::NotFound(format!("no failed sync {id} in the fleet")))?;
        self.resolve_failed_sync(&record, Vec::new())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn input(url: &str, user: &str, pw: &str, pass: Option<&str>) -> SignInInput {
        SignInInput {
            server_url: url.into(),
            username: user.into(),
            password: pw.into(),
            passphrase: pass.map(str::to_owned),
        }
    }

    fn fields(e: CoreError) -> Vec<String> {
        e.field_errors()
            .map(|v| v.errors.iter().map(|f| f.field.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_indicator_names_the_engines_states_as_the_cli_does() {
        use outpost_sync::Connectivity as C;
        let engine = [
            C::Offline,
            C::Online,
            C::Syncing,
            C::Error("500".into()),
            C::SignInRequired("expired".into()),
        ];
        for c in &engine {
            assert_eq!(
                serde_json::to_value(SyncConnectivity::from(c)).unwrap(),
                serde_json::json!(crate::connectivity_name(c)),
                "{c:?}"
            );
        }
        assert_eq!(
            serde_json::to_value(SyncConnectivity::Local).unwrap(),
            serde_json::json!("local")
        );
    }

    #[test]
    fn the_sign_in_form_reports_every_field_at_once() {
        let e = input("", " ", "", Some("short")).validate().unwrap_err();
        assert_eq!(
            fields(e),
            vec!["server_url", "username", "password", "passphrase"]
        );
        let e = input("ftp://x", "tech1", "pw", None)
            .validate()
            .unwrap_err();
        assert_eq!(fields(e), vec!["server_url"]);
        assert!(input("https://outpost.example", "tech1", "pw", None)
            .validate()
            .is_ok());
    }

    #[test]
    fn a_form_error_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions::new(dir.path().join("data"), crate::KeyEnv::default());
        let e = Outpost::init_for_sign_in(opts, &input("", "tech1", "pw", None)).unwrap_err();
        assert_eq!(e.code(), "invalid");
        assert!(!dir.path().join("data").exists());
    }

    #[test]
    fn merged_needs_its_text_and_choices_are_checked() {
        let r = ResolveInput {
            choices: vec![ConflictChoiceInput {
                field: "title".into(),
                choice: "merged".into(),
                merged: Some("  ".into()),
            }],
            accept_whole_change: false,
        };
        assert_eq!(fields(r.into_choices().unwrap_err()), vec!["title"]);
        let r = ResolveInput {
            choices: vec![ConflictChoiceInput {
                field: "title".into(),
                choice: "both".into(),
                merged: None,
            }],
            accept_whole_change: false,
        };
        assert_eq!(r.into_choices().unwrap_err().code(), "bad_input");
    }

    #[test]
    fn set_values_show_as_text() {
        assert_eq!(set_value_text(&SetOp::Title("Pump".into())), "Pump");
        assert_eq!(
            set_value_text(&SetOp::ChecklistDone {
                item_id: "a".into(),
                done: true
            }),
            r#"{"done":true,"item_id":"a"}"#
        );
    }
}
