//! Key management for a data directory: where the database key comes from, how a new
//! one is made, and the crash-safe re-key.
//!
//! The key file beside the database (`outpost-key.json`) holds no secret: the
//! database's random id (which names its credential-store entries), where the key
//! comes from, a key check value (so a wrong key and a damaged file give different
//! errors), and for passphrases the key derivation's salt and costs and the database
//! key wrapped under the passphrase (`keywrap.rs`). Sources, always an explicit choice:
//! - the OS credential store (the default): a random key made by the CSPRNG;
//! - a passphrase (machines without a credential store): a random key wrapped with
//!   AES-256-GCM under an Argon2id key of the passphrase. Key files of earlier versions
//!   (format 1: the database key was PBKDF2 of the passphrase) keep opening and are
//!   converted once, at the first open, by wrapping that same key: the database is
//!   not rewritten. Changing the passphrase rewraps, nothing more;
//! - `OUTPOST_DB_KEY` (automation): when set it is the only key tried and is never
//!   written to the credential store.

use std::io::Write;
use std::path::{Path, PathBuf};

use outpost_store::{key_check_value, DbKey, OpenError, Store};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::credentials::{current_key_entry, staged_key_entry, CredentialStore};
use crate::error::CoreError;
pub use crate::keywrap::{Kdf, WrappedKey};

pub const KEY_FILE_NAME: &str = "outpost-key.json";

/// Where a database's key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    CredentialStore,
    Passphrase,
    Environment,
}

impl KeySource {
    pub fn describe(self) -> &'static str {
        match self {
            KeySource::CredentialStore => "a random key in the OS credential store",
            KeySource::Passphrase => "a passphrase",
            KeySource::Environment => "OUTPOST_DB_KEY",
        }
    }
}

/// The key file's format: 1 until passphrases were wrapped (PBKDF2 derived the
/// database key), 2 since (Argon2id wraps a random one).
pub const KEY_FILE_FORMAT: u32 = 2;

/// The non-secret key file kept beside the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub format: u32,
    pub db_id: String,
    pub key_source: KeySource,
    pub key_check: String,
    #[serde(default)]
    pub staged_key_check: Option<String>,
    #[serde(default)]
    pub kdf: Option<Kdf>,
    /// The database key under the passphrase's key (passphrase sources, format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped_key: Option<WrappedKey>,
}

impl KeyFile {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(KEY_FILE_NAME)
    }

    pub fn read(dir: &Path) -> Result<Option<KeyFile>, CoreError> {
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                CoreError::Corrupt(format!(
                    "{} is damaged ({e}); restore it from a backup",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CoreError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// Write atomically: a temporary file, synced, renamed over the old one.
    pub fn write(&self, dir: &Path) -> Result<(), CoreError> {
        let path = Self::path(dir);
        let tmp = dir.join(format!(".{KEY_FILE_NAME}.tmp"));
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| CoreError::Io(format!("cannot encode the key file: {e}")))?;
        let result = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        result.map_err(|e| {
            if e.raw_os_error() == Some(28) {
                CoreError::DiskFull
            } else {
                CoreError::Io(format!("{}: {e}", path.display()))
            }
        })
    }
}

/// Key material from the process environment, taken once by the embedder's `main`
/// ([`KeyEnv::take_from_process_env`]) and handed to every open in [`OpenOptions`].
///
/// [`OpenOptions`]: crate::OpenOptions
#[derive(Default, Clone)]
pub struct KeyEnv {
    /// `OUTPOST_DB_KEY`: 64 hex digits.
    pub db_key: Option<Zeroizing<String>>,
    /// `OUTPOST_DB_PASSPHRASE`: opens a passphrase-protected database without a prompt.
    pub passphrase: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for KeyEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEnv")
            .field("db_key", &self.db_key.as_ref().map(|_| "<set>"))
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl KeyEnv {
    /// Read `OUTPOST_DB_KEY` and `OUTPOST_DB_PASSPHRASE` and remove them from the
    /// process environment, so that nothing later (a library, a child process such as
    /// the web view's helpers, a crash report) finds them there. Call it first thing in
    /// `main`, while the process has one thread: removing a variable races with any
    /// other thread that reads the environment. An empty variable counts as unset and
    /// is removed too. (The bytes the kernel placed at start, `/proc/<pid>/environ` on
    /// Linux, stay as they were: rewriting them would take `unsafe` code.)
    pub fn take_from_process_env() -> KeyEnv {
        let take = |name: &str| {
            let value = std::env::var(name).ok().map(Zeroizing::new);
            std::env::remove_var(name);
            value.filter(|v| !v.is_empty())
        };
        KeyEnv {
            db_key: take("OUTPOST_DB_KEY"),
            passphrase: take("OUTPOST_DB_PASSPHRASE"),
        }
    }

    fn env_key(&self) -> Result<Option<DbKey>, CoreError> {
        match &self.db_key {
            None => Ok(None),
            Some(hex) => DbKey::from_hex(hex).map(Some).map_err(|_| {
                CoreError::BadInput("OUTPOST_DB_KEY must be exactly 64 hex digits".into())
            }),
        }
    }
}

/// Steps of a re-key, named so that tests can stop after each one. A crash after any
/// of them leaves a database that opens with the key it had or with the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyStep {
    /// The new key is in the credential store as "staged" (read back) and in the key
    /// file.
    Staged,
    /// The store wrote a re-encrypted copy beside the database (`outpost.db.rekey`).
    Exported,
    /// The copy opened on a fresh connection with the new key and checked out.
    Verified,
    /// The copy replaced the database (renamed over it, directory synced).
    Swapped,
    /// The store is open again on the new file, under the new key.
    Rekeyed,
    /// The credential store's current entry holds the new key (read back).
    Promoted,
    /// The key file names the new key; only the staged entry's removal is left.
    KeyFileUpdated,
}

impl RekeyStep {
    /// Every step, in order.
    pub const ALL: [RekeyStep; 7] = [
        RekeyStep::Staged,
        RekeyStep::Exported,
        RekeyStep::Verified,
        RekeyStep::Swapped,
        RekeyStep::Rekeyed,
        RekeyStep::Promoted,
        RekeyStep::KeyFileUpdated,
    ];

    /// The value of `OUTPOST_FAILPOINT` that kills the process after this step (test
    /// builds only).
    #[cfg(any(test, feature = "test-support"))]
    pub fn failpoint_name(self) -> &'static str {
        match self {
            RekeyStep::Staged => "rekey:staged",
            RekeyStep::Exported => "rekey:exported",
            RekeyStep::Verified => "rekey:verified",
            RekeyStep::Swapped => "rekey:swapped",
            RekeyStep::Rekeyed => "rekey:rekeyed",
            RekeyStep::Promoted => "rekey:promoted",
            RekeyStep::KeyFileUpdated => "rekey:key-file-updated",
        }
    }

    #[cfg(any(test, feature = "test-support"))]
    fn of_stage(stage: outpost_store::RekeyStage) -> RekeyStep {
        use outpost_store::RekeyStage;
        match stage {
            RekeyStage::Exported => RekeyStep::Exported,
            RekeyStage::Verified => RekeyStep::Verified,
            RekeyStage::Swapped => RekeyStep::Swapped,
        }
    }
}

/// What opening found, for `outpost db check` and messages.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub db_id: String,
    pub key_source: KeySource,
    pub key_from_environment: bool,
}

pub(crate) struct KeyManager<'a> {
    pub dir: &'a Path,
    pub creds: &'a dyn CredentialStore,
    pub env: &'a KeyEnv,
}

fn check_new_passphrase(pass: &str) -> Result<(), CoreError> {
    if crate::rules::passphrase_too_short(pass) {
        return Err(CoreError::BadInput(format!(
            "the passphrase must be at least {} characters",
            crate::rules::PASSPHRASE_MIN_CHARS
        )));
    }
    Ok(())
}

fn no_store_message(creds: &dyn CredentialStore, why: &str) -> String {
    format!(
        "{} is not available ({why}). Choose how to protect the database: \
         `outpost init --passphrase-stdin` (you type a passphrase; losing it loses the local data), \
         or set OUTPOST_DB_KEY to 64 hex digits (automation only).",
        creds.describe()
    )
}

impl KeyManager<'_> {
    /// Write `key` under `name` in the credential store and read it back: some stores
    /// accept a write they cannot keep (a locked collection), and a key that is not
    /// really there must never be relied on.
    fn put_key(&self, name: &str, key: &DbKey) -> Result<(), CoreError> {
        let no_store = |why: &str| CoreError::NoCredentialStore(no_store_message(self.creds, why));
        let hex = key.to_hex();
        self.creds
            .set(name, &hex)
            .map_err(|e| no_store(&e.to_string()))?;
        let back = self.creds.get(name).map_err(|e| no_store(&e.to_string()))?;
        if back.as_deref().map(|s| s.as_str()) != Some(hex.as_str()) {
            return Err(no_store("it did not keep the key it was given"));
        }
        Ok(())
    }

    /// Make a new key according to the choice and create the database with it.
    pub fn create(&self, passphrase: Option<&str>) -> Result<(Store, KeyInfo, DbKey), CoreError> {
        let db_id = uuid::Uuid::new_v4().to_string();
        let (key, source, kdf, wrapped_key) = if let Some(key) = self.env.env_key()? {
            (key, KeySource::Environment, None, None)
        } else if let Some(pass) = passphrase {
            check_new_passphrase(pass)?;
            let key = DbKey::generate()?;
            let kdf = Kdf::new_argon2id()?;
            let wrapped = crate::keywrap::wrap(&kdf, pass, &db_id, &key)?;
            (key, KeySource::Passphrase, Some(kdf), Some(wrapped))
        } else {
            let key = DbKey::generate()?;
            self.put_key(&current_key_entry(&db_id), &key)?;
            (key, KeySource::CredentialStore, None, None)
        };
        let key_file = KeyFile {
            format: KEY_FILE_FORMAT,
            db_id: db_id.clone(),
            key_source: source,
            key_check: key_check_value(&key),
            staged_key_check: None,
            kdf,
            wrapped_key,
        };
        key_file.write(self.dir)?;
        let store = Store::create(self.dir, &key)?;
        Ok((
            store,
            KeyInfo {
                db_id,
                key_source: source,
                key_from_environment: source == KeySource::Environment,
            },
            key,
        ))
    }

    /// The keys to try, in order, each with whether it is the staged one.
    fn candidates(&self, kf: &KeyFile) -> Result<Vec<(DbKey, bool)>, CoreError> {
        if let Some(key) = self.env.env_key()? {
            return Ok(vec![(key, false)]);
        }
        match kf.key_source {
            KeySource::Environment => Err(CoreError::KeyMissing(
                "this database was created with OUTPOST_DB_KEY and that variable is not set: set it to the same 64 hex digits".into(),
            )),
            KeySource::Passphrase => {
                let kdf = kf.kdf.as_ref().ok_or_else(|| {
                    CoreError::Corrupt("the key file names a passphrase but has no salt".into())
                })?;
                let pass = self.env.passphrase.as_ref().ok_or_else(|| {
                    CoreError::KeyMissing(
                        "this database is protected by a passphrase: set OUTPOST_DB_PASSPHRASE (or enter it in the app)".into(),
                    )
                })?;
                match &kf.wrapped_key {
                    Some(wrapped) => match crate::keywrap::unwrap(kdf, wrapped, pass, &kf.db_id)? {
                        Some(key) => Ok(vec![(key, false)]),
                        None => Err(self.wrong_key(kf)),
                    },
                    None => Ok(vec![(kdf.legacy_key(pass)?, false)]),
                }
            }
            KeySource::CredentialStore => {
                let unavailable = |e: crate::credentials::CredentialError| {
                    CoreError::KeyMissing(format!(
                        "the key of this database is kept in {}, which cannot be reached ({e}). \
                         Unlock it, or set OUTPOST_DB_KEY if you hold a copy of the key.",
                        self.creds.describe()
                    ))
                };
                let mut out = Vec::new();
                for (name, staged) in [
                    (current_key_entry(&kf.db_id), false),
                    (staged_key_entry(&kf.db_id), true),
                ] {
                    if let Some(hex) = self.creds.get(&name).map_err(unavailable)? {
                        match DbKey::from_hex(&hex) {
                            Ok(k) => out.push((k, staged)),
                            Err(_) => continue,
                        }
                    }
                }
                if out.is_empty() {
                    return Err(CoreError::KeyMissing(format!(
                        "the key of this database (id {}) is not in {}. Outpost will not make a new \
                         one over existing data: restore the key, or set OUTPOST_DB_KEY if you hold a copy.",
                        kf.db_id,
                        self.creds.describe()
                    )));
                }
                Ok(out)
            }
        }
    }

    /// Open the existing database, trying the current key then a staged one, and finish
    /// any re-key a crash interrupted.
    pub fn open(&self) -> Result<(Store, KeyInfo, DbKey), CoreError> {
        let db_path = outpost_store::StorePaths::in_dir(self.dir).db;
        let kf = match KeyFile::read(self.dir)? {
            Some(kf) => kf,
            None if db_path.exists() => {
                if let Some(key) = self.env.env_key()? {
                    let store =
                        Store::open(self.dir, &key).map_err(|e| self.open_error(e, None))?;
                    return Ok((
                        store,
                        KeyInfo {
                            db_id: String::new(),
                            key_source: KeySource::Environment,
                            key_from_environment: true,
                        },
                        key,
                    ));
                }
                return Err(CoreError::KeyMissing(format!(
                    "{} is missing, so Outpost cannot find this database's key: restore it, or set OUTPOST_DB_KEY",
                    KeyFile::path(self.dir).display()
                )));
            }
            None => return Err(CoreError::NotInitialized(self.dir.display().to_string())),
        };
        let candidates = self.candidates(&kf)?;
        let mut right_key_failed = false;
        let staged_entry_exists = candidates.iter().any(|(_, staged)| *staged);
        for (key, staged) in &candidates {
            match Store::open(self.dir, key) {
                Ok(store) => {
                    self.settle(&kf, key, *staged, staged_entry_exists)?;
                    return Ok((
                        store,
                        KeyInfo {
                            db_id: kf.db_id.clone(),
                            key_source: kf.key_source,
                            key_from_environment: self.env.db_key.is_some(),
                        },
                        key.clone(),
                    ));
                }
                Err(OpenError::CannotDecrypt) => {
                    let kcv = key_check_value(key);
                    if kcv == kf.key_check || kf.staged_key_check.as_deref() == Some(kcv.as_str()) {
                        right_key_failed = true;
                    }
                }
                Err(other) => return Err(self.open_error(other, Some(&kf))),
            }
        }
        if right_key_failed {
            return Err(CoreError::Corrupt(
                "the key is right but the database cannot be decrypted: the file is damaged. Restore it from a backup, or sign in on a new data directory".into(),
            ));
        }
        Err(self.wrong_key(&kf))
    }

    fn wrong_key(&self, kf: &KeyFile) -> CoreError {
        if self.env.db_key.is_some() {
            CoreError::WrongKey(
                "the key is wrong: OUTPOST_DB_KEY does not open this database. Set it to the key the database was made with (or unset it to use the stored key); nothing was changed".into(),
            )
        } else if kf.key_source == KeySource::Passphrase {
            CoreError::WrongKey(
                "the passphrase is wrong: it does not open this database; nothing was changed"
                    .into(),
            )
        } else {
            CoreError::WrongKey(format!(
                "the key is wrong: the key in {} does not open this database; nothing was changed",
                self.creds.describe()
            ))
        }
    }

    fn open_error(&self, e: OpenError, kf: Option<&KeyFile>) -> CoreError {
        match (e, kf) {
            (OpenError::CannotDecrypt, Some(kf)) => self.wrong_key(kf),
            (e, _) => e.into(),
        }
    }

    /// After a successful open: make the key that worked the current one everywhere.
    fn settle(
        &self,
        kf: &KeyFile,
        key: &DbKey,
        was_staged: bool,
        staged_entry_exists: bool,
    ) -> Result<(), CoreError> {
        let kcv = key_check_value(key);
        if self.env.db_key.is_some() {
            // The environment key is never written to the credential store.
            if kf.key_check != kcv {
                let mut updated = kf.clone();
                updated.key_check = kcv;
                updated.staged_key_check = None;
                updated.write(self.dir)?;
            }
            return Ok(());
        }
        if kf.key_source == KeySource::Passphrase && kf.wrapped_key.is_none() {
            return self.convert_legacy_passphrase(kf, key);
        }
        if kf.key_source != KeySource::CredentialStore {
            return Ok(());
        }
        if was_staged {
            self.put_key(&current_key_entry(&kf.db_id), key)?;
        }
        if kf.key_check != kcv || kf.staged_key_check.is_some() {
            let mut updated = kf.clone();
            updated.key_check = kcv;
            updated.staged_key_check = None;
            updated.write(self.dir)?;
        }
        if staged_entry_exists {
            self.creds
                .delete(&staged_key_entry(&kf.db_id))
                .map_err(|e| CoreError::KeyMissing(e.to_string()))?;
        }
        Ok(())
    }

    /// An earlier key file (format 1) derived the database key from the passphrase with
    /// PBKDF2: wrap that same key under an Argon2id key of the passphrase and write the
    /// key file in the current format. The database is not touched; the key file is
    /// replaced atomically, so a crash leaves the one or the other, and both open.
    fn convert_legacy_passphrase(&self, kf: &KeyFile, key: &DbKey) -> Result<(), CoreError> {
        let Some(pass) = self.env.passphrase.as_ref() else {
            return Ok(());
        };
        let kdf = Kdf::new_argon2id()?;
        let wrapped = crate::keywrap::wrap(&kdf, pass, &kf.db_id, key)?;
        let mut updated = kf.clone();
        updated.format = KEY_FILE_FORMAT;
        updated.kdf = Some(kdf);
        updated.wrapped_key = Some(wrapped);
        updated.key_check = key_check_value(key);
        updated.write(self.dir)
    }

    /// Wrap `key` (the open database's) under a new passphrase: a new salt, a new
    /// Argon2id key, one atomic key-file write. `current`, when given, must unwrap the
    /// key as the key file stands (the app asks for it; the CLI opened the database
    /// with it already). Nothing else changes: the database is not rewritten.
    pub fn change_passphrase(
        &self,
        key: &DbKey,
        current: Option<&str>,
        new: &str,
    ) -> Result<(), CoreError> {
        let kf = KeyFile::read(self.dir)?
            .ok_or_else(|| CoreError::NotInitialized(self.dir.display().to_string()))?;
        if kf.key_source != KeySource::Passphrase {
            return Err(CoreError::BadInput(format!(
                "this database is protected by {}, not by a passphrase: there is no passphrase to change",
                kf.key_source.describe()
            )));
        }
        if let Some(current) = current {
            let right = match (&kf.kdf, &kf.wrapped_key) {
                (Some(kdf), Some(wrapped)) => {
                    crate::keywrap::unwrap(kdf, wrapped, current, &kf.db_id)?.as_ref() == Some(key)
                }
                (Some(kdf), None) => &kdf.legacy_key(current)? == key,
                (None, _) => false,
            };
            if !right {
                return Err(CoreError::WrongKey(
                    "the current passphrase is wrong; nothing was changed".into(),
                ));
            }
        }
        check_new_passphrase(new)?;
        let kdf = Kdf::new_argon2id()?;
        let wrapped = crate::keywrap::wrap(&kdf, new, &kf.db_id, key)?;
        let mut updated = kf;
        updated.format = KEY_FILE_FORMAT;
        updated.kdf = Some(kdf);
        updated.wrapped_key = Some(wrapped);
        updated.write(self.dir)
    }

    /// Re-encrypt under a new random key, crash-safe at every step (the store writes a
    /// re-encrypted copy and swaps it in: `Store::rekey`). In test builds `stop_after`
    /// ends the procedure after a step as a crash would, and `OUTPOST_FAILPOINT` does
    /// the same for a whole process ([`stops_after`]); a product build always goes on.
    pub fn rekey(
        &self,
        store: &mut Store,
        stop_after: Option<RekeyStep>,
    ) -> Result<Option<DbKey>, CoreError> {
        if self.env.db_key.is_some() {
            return Err(CoreError::BadInput(
                "OUTPOST_DB_KEY is set: a re-key makes a new key for the credential store, so unset OUTPOST_DB_KEY first".into(),
            ));
        }
        let mut kf = KeyFile::read(self.dir)?
            .ok_or_else(|| CoreError::NotInitialized(self.dir.display().to_string()))?;
        if kf.key_source != KeySource::CredentialStore {
            return Err(CoreError::BadInput(format!(
                "this database is protected by {}; only a database whose key is in the OS credential store can be re-keyed",
                kf.key_source.describe()
            )));
        }
        let reached = |step: RekeyStep| stops_after(step, stop_after);
        let new_key = DbKey::generate()?;
        let new_kcv = key_check_value(&new_key);
        self.put_key(&staged_key_entry(&kf.db_id), &new_key)?;
        kf.staged_key_check = Some(new_kcv.clone());
        kf.write(self.dir)?;
        if reached(RekeyStep::Staged) {
            return Ok(None);
        }
        match rekey_store(store, &new_key, stop_after)? {
            Some(RekeyStep::Swapped) => return Ok(Some(new_key)),
            Some(_) => return Ok(None),
            None => {}
        }
        if reached(RekeyStep::Rekeyed) {
            return Ok(Some(new_key));
        }
        self.put_key(&current_key_entry(&kf.db_id), &new_key)?;
        if reached(RekeyStep::Promoted) {
            return Ok(Some(new_key));
        }
        kf.key_check = new_kcv;
        kf.staged_key_check = None;
        kf.write(self.dir)?;
        if reached(RekeyStep::KeyFileUpdated) {
            return Ok(Some(new_key));
        }
        self.creds
            .delete(&staged_key_entry(&kf.db_id))
            .map_err(|e| {
                CoreError::NoCredentialStore(no_store_message(self.creds, &e.to_string()))
            })?;
        Ok(Some(new_key))
    }
}

/// Whether a re-key ends after `step`, as a crash there would: when the test asked for
/// it (`stop_after`), or when `OUTPOST_FAILPOINT` names the step, by aborting the
/// process as a power cut or a kill would. Test builds only.
#[cfg(any(test, feature = "test-support"))]
fn stops_after(step: RekeyStep, stop_after: Option<RekeyStep>) -> bool {
    if std::env::var("OUTPOST_FAILPOINT").ok().as_deref() == Some(step.failpoint_name()) {
        std::process::abort();
    }
    stop_after == Some(step)
}

/// A product build has no way to stop a re-key half-way.
#[cfg(not(any(test, feature = "test-support")))]
fn stops_after(_step: RekeyStep, _stop_after: Option<RekeyStep>) -> bool {
    false
}

/// The store's part of a re-key (export, verify, swap); in test builds it may end
/// after one of those steps ([`stops_after`]), which is returned.
#[cfg(any(test, feature = "test-support"))]
fn rekey_store(
    store: &mut Store,
    new_key: &DbKey,
    stop_after: Option<RekeyStep>,
) -> Result<Option<RekeyStep>, CoreError> {
    use std::ops::ControlFlow;
    let mut stopped = None;
    store.rekey_with(new_key, &mut |stage| {
        let step = RekeyStep::of_stage(stage);
        if stops_after(step, stop_after) {
            stopped = Some(step);
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(stopped)
}

#[cfg(not(any(test, feature = "test-support")))]
fn rekey_store(
    store: &mut Store,
    new_key: &DbKey,
    _stop_after: Option<RekeyStep>,
) -> Result<Option<RekeyStep>, CoreError> {
    store.rekey(new_key)?;
    Ok(None)
}
