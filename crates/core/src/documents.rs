//! Technical documents on the device (issue 22): what an order's documents are and
//! whether each can be opened offline, reading one (decrypted) for a viewer or into a
//! file, and the budget that bounds how much is kept.
//!
//! The engine keeps the cache (`outpost_sync`'s documents step); nothing here touches
//! the network.

use std::path::Path;

use serde::Serialize;
use ts_rs::TS;

use crate::{CoreError, Outpost};

/// One document of an order, as the order shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DocumentView {
    pub id: String,
    /// The file name the administrator gave.
    pub name: String,
    pub media_type: String,
    /// Bytes.
    #[ts(type = "number")]
    pub size: u64,
    /// Bumped by each new file on the server.
    #[ts(type = "number")]
    pub version: u64,
    /// On this device: it opens without a network.
    pub available_offline: bool,
    /// Bytes downloaded so far (a download in progress).
    #[ts(type = "number")]
    pub received: u64,
    /// Not kept: the documents budget is full.
    pub over_budget: bool,
}

/// A cached document's bytes for the viewer in the window. The bytes cross as base64
/// (the IPC carries JSON); the viewer decodes them and renders them itself, offline.
/// A document is untrusted input: nothing in it is read here, and the UI must not let
/// anything in it reach the app's commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DocumentContent {
    pub id: String,
    pub name: String,
    pub media_type: String,
    #[ts(type = "number")]
    pub size: u64,
    /// The whole file, base64 (standard alphabet, padded).
    pub data_base64: String,
}

impl From<outpost_store::DocumentRow> for DocumentView {
    fn from(d: outpost_store::DocumentRow) -> Self {
        DocumentView {
            id: d.id,
            name: d.name,
            media_type: d.media_type,
            size: d.size,
            version: d.version,
            available_offline: d.available_offline,
            received: d.received,
            over_budget: d.over_budget,
        }
    }
}

impl Outpost {
    /// The documents an order needs (by id or number), each available offline or not
    /// yet.
    pub fn order_documents(&self, reference: &str) -> Result<Vec<DocumentView>, CoreError> {
        let id = self.store.resolve_order_id(reference)?;
        Ok(self
            .store
            .order_documents(&id)?
            .into_iter()
            .map(DocumentView::from)
            .collect())
    }

    /// Decrypt a cached document into `out`; a clear error when it is not on this
    /// device. Returns the bytes written.
    pub fn export_document(&mut self, id: &str, out: &Path) -> Result<u64, CoreError> {
        let now = self.now();
        Ok(self.store.export_document(id, out, now)?)
    }

    /// A cached document's bytes (for the viewer), checked against its SHA-256.
    pub fn document_bytes(&mut self, id: &str) -> Result<Vec<u8>, CoreError> {
        let now = self.now();
        Ok(self.store.document_bytes(id, now)?)
    }

    /// A cached document for the viewer: its name, type and bytes (base64), checked
    /// against its SHA-256; counts as needed now (the budget keeps it longer). Not on
    /// this device: `not_found`, saying so.
    pub fn document_content(&mut self, id: &str) -> Result<DocumentContent, CoreError> {
        use base64::Engine as _;
        let bytes = self.document_bytes(id)?;
        let doc = self
            .store
            .document(id)?
            .ok_or_else(|| CoreError::NotFound(format!("document {id} is not on this device")))?;
        Ok(DocumentContent {
            id: doc.id,
            name: doc.name,
            media_type: doc.media_type,
            size: bytes.len() as u64,
            data_base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
        })
    }

    /// The documents budget in force, in bytes: the person's, else the
    /// administrator's (from the server), else 500 MB.
    pub fn documents_budget(&self) -> Result<u64, CoreError> {
        Ok(outpost_sync::documents_budget(&self.store)?)
    }

    /// Set the documents budget (`None`: back to the administrator's or the
    /// default). Applied on the next sync: the least recently needed documents go
    /// first, never those of an order due today.
    pub fn set_documents_budget(&mut self, bytes: Option<u64>) -> Result<(), CoreError> {
        let value = bytes.map(|b| b.to_string()).unwrap_or_default();
        Ok(self
            .store
            .set_setting(outpost_sync::SETTING_DOCUMENTS_BUDGET, &value)?)
    }
}
