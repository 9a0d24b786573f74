//! Use-case tests on real SQLCipher databases in temporary directories, with an
//! in-memory credential store shared between opens.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::*;
use crate::credentials::current_key_entry;

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid timestamp")
}

pub(crate) fn options(
    dir: &Path,
    creds: &MemoryCredentialStore,
    env_key: Option<&str>,
) -> OpenOptions {
    OpenOptions {
        data_dir: dir.to_path_buf(),
        credentials: Arc::new(creds.clone()),
        env: KeyEnv {
            db_key: env_key.map(|k| Zeroizing::new(k.to_owned())),
            passphrase: None,
        },
        clock: Arc::new(FixedClock::new(t0())),
    }
}

pub(crate) fn fresh() -> (tempfile::TempDir, MemoryCredentialStore, Outpost) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let creds = MemoryCredentialStore::default();
    let mut app = Outpost::init(options(tmp.path(), &creds, None), None).expect("init");
    app.set_username("tech1").expect("username");
    app.load_demo_data().expect("demo data");
    (tmp, creds, app)
}

/// Every file under `dir` with its bytes, to prove that a refused open changed nothing.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(dir)
                    .expect("inside dir")
                    .display()
                    .to_string();
                out.insert(name, std::fs::read(&path).expect("read file"));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub(crate) fn first_order(app: &Outpost) -> String {
    app.orders().expect("orders")[0].order.id.to_string()
}

fn png(marker: &str) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(marker.as_bytes());
    bytes
}

#[test]
fn a_marker_written_in_an_order_and_an_attachment_is_nowhere_in_the_files_but_reads_back() {
    let (tmp, creds, mut app) = fresh();
    let marker = format!("MARKER-{}", uuid::Uuid::new_v4().simple());
    let id = first_order(&app);
    app.edit_order(
        &id,
        OrderEdit {
            notes: vec![format!("note {marker}")],
            check: vec!["safety".into(), "test".into()],
            ..OrderEdit::default()
        },
    )
    .expect("edit");
    let signature = png(&format!("signature {marker}"));
    let photo = crate::photos::synthetic_photo(320, 240, 7);
    let photo_window = photo[photo.len() / 2..photo.len() / 2 + 32].to_vec();
    app.complete_order(
        &id,
        Completion {
            signature_png: Evidence {
                bytes: signature.clone(),
                name: "sig.png".into(),
            },
            signer: format!("Signer {marker}"),
            photos: vec![Evidence {
                bytes: photo.clone(),
                name: "photo.jpg".into(),
            }],
        },
    )
    .expect("complete");

    // With the store still open (WAL and shared memory present) and after closing it.
    for stage in ["open", "closed"] {
        let files = snapshot(tmp.path());
        assert!(
            files.keys().any(|f| f.starts_with("attachments")),
            "attachments were written as files"
        );
        if stage == "open" {
            assert!(
                files.keys().any(|f| f.ends_with("-wal")),
                "the WAL is among the files searched: {:?}",
                files.keys().collect::<Vec<_>>()
            );
        }
        for (name, bytes) in &files {
            assert!(
                !contains(bytes, marker.as_bytes()),
                "the marker is readable in {name} ({stage})"
            );
            assert!(
                !contains(bytes, &photo_window),
                "the photo's bytes are readable in {name} ({stage})"
            );
        }
        if stage == "open" {
            let row = app.order(&id).expect("order");
            assert!(row.order.notes.iter().any(|n| n.text.contains(&marker)));
            let sig = row.order.signature.as_ref().expect("signature");
            assert_eq!(app.attachment(&sig.hash).expect("attachment"), signature);
            let stored = app.attachment(&row.order.photos[0].hash).expect("photo");
            assert_eq!(stored, photo, "a small JPEG is stored as taken");
            drop(app);
            app = Outpost::open(options(tmp.path(), &creds, None)).expect("reopen");
        }
    }
    let row = app.order(&id).expect("order");
    assert!(row.order.notes.iter().any(|n| n.text.contains(&marker)));
}

#[test]
fn the_database_cannot_be_read_without_its_key() {
    let (tmp, _creds, app) = fresh();
    drop(app);
    let db = outpost_store::StorePaths::in_dir(tmp.path()).db;
    let bytes = std::fs::read(&db).expect("read");
    assert!(
        !bytes.starts_with(b"SQLite format 3\0"),
        "no plaintext header"
    );
    for word in ["CREATE TABLE", "work_orders", "Nordvik Bakery"] {
        assert!(!contains(&bytes, word.as_bytes()), "{word} is not readable");
    }
    let random = outpost_store::DbKey::generate().expect("key");
    let err = outpost_store::Store::open(tmp.path(), &random).expect_err("random key");
    assert!(
        matches!(err, outpost_store::OpenError::CannotDecrypt),
        "{err}"
    );
}

#[test]
fn a_wrong_key_is_refused_with_its_own_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let creds = MemoryCredentialStore::default();
    let key = "11".repeat(32);
    drop(Outpost::init(options(tmp.path(), &creds, Some(&key)), None).expect("init"));
    let before = snapshot(tmp.path());
    let err = Outpost::open(options(tmp.path(), &creds, Some(&"22".repeat(32))))
        .expect_err("wrong key refused");
    assert_eq!(err.code(), "wrong_key", "{err}");
    assert!(err.to_string().contains("key is wrong"), "{err}");
    assert_eq!(err.exit_code(), 4);
    assert_eq!(
        snapshot(tmp.path()),
        before,
        "files unchanged byte for byte"
    );
    assert!(
        creds.names().is_empty(),
        "OUTPOST_DB_KEY is never written to the credential store"
    );
}

#[test]
fn a_wrong_key_in_the_credential_store_is_refused() {
    let (tmp, creds, app) = fresh();
    let db_id = app.key_info().db_id.clone();
    drop(app);
    creds
        .set(&current_key_entry(&db_id), &"33".repeat(32))
        .expect("overwrite");
    let before = snapshot(tmp.path());
    let err = Outpost::open(options(tmp.path(), &creds, None)).expect_err("refused");
    assert_eq!(err.code(), "wrong_key", "{err}");
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_missing_key_is_refused_and_no_new_key_or_database_is_made() {
    let (tmp, creds, app) = fresh();
    let db_id = app.key_info().db_id.clone();
    drop(app);
    creds.delete(&current_key_entry(&db_id)).expect("delete");
    let before = snapshot(tmp.path());
    let err = Outpost::open(options(tmp.path(), &creds, None)).expect_err("refused");
    assert_eq!(err.code(), "key_missing", "{err}");
    assert!(err.to_string().contains("not in"), "{err}");
    assert_eq!(snapshot(tmp.path()), before);
    assert!(creds.names().is_empty(), "no key was made");
    let again = Outpost::init(options(tmp.path(), &creds, None), None).expect_err("no re-init");
    assert_eq!(again.code(), "already_initialized");
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_corrupt_file_is_reported_as_damage_not_as_a_wrong_key() {
    let (tmp, creds, app) = fresh();
    drop(app);
    let db = outpost_store::StorePaths::in_dir(tmp.path()).db;
    let mut bytes = std::fs::read(&db).expect("read");
    for b in bytes.iter_mut().skip(100).take(3000) {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bytes).expect("write");
    let before = snapshot(tmp.path());
    let err = Outpost::open(options(tmp.path(), &creds, None)).expect_err("refused");
    assert_eq!(err.code(), "corrupt", "{err}");
    assert!(err.to_string().contains("damaged"), "{err}");
    assert_eq!(err.exit_code(), 5);
    assert_eq!(snapshot(tmp.path()), before);

    std::fs::write(&db, b"").expect("truncate");
    let err = Outpost::open(options(tmp.path(), &creds, None)).expect_err("refused");
    assert_eq!(err.code(), "corrupt", "{err}");
}

#[test]
fn a_database_from_a_newer_program_is_refused_untouched() {
    let (tmp, creds, mut app) = fresh();
    app.store()
        .execute_batch_for_tests("PRAGMA user_version = 99")
        .expect("set version");
    drop(app);
    let before = snapshot(tmp.path());
    let err = Outpost::open(options(tmp.path(), &creds, None)).expect_err("refused");
    assert_eq!(err.code(), "newer_schema", "{err}");
    assert!(err.to_string().contains("newer version"), "{err}");
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_plaintext_database_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let creds = MemoryCredentialStore::default();
    drop(Outpost::init(options(tmp.path(), &creds, Some(&"44".repeat(32))), None).expect("init"));
    let db = outpost_store::StorePaths::in_dir(tmp.path()).db;
    std::fs::remove_file(&db).expect("remove");
    drop(outpost_store::Store::create_plaintext_for_benchmark(tmp.path()).expect("plain db"));
    let err =
        Outpost::open(options(tmp.path(), &creds, Some(&"44".repeat(32)))).expect_err("refused");
    assert_eq!(err.code(), "not_encrypted", "{err}");
}

#[test]
fn rekey_interrupted_after_each_step_still_opens_and_settles_on_one_key() {
    for step in RekeyStep::ALL {
        let (tmp, creds, mut app) = fresh();
        let id = first_order(&app);
        app.edit_order(
            &id,
            OrderEdit {
                notes: vec!["before the re-key".into()],
                ..OrderEdit::default()
            },
        )
        .expect("edit");
        let db_id = app.key_info().db_id.clone();
        let old_key = creds
            .get(&current_key_entry(&db_id))
            .expect("get")
            .expect("key");
        app.rekey_stopping_after(Some(step)).expect("partial rekey");
        drop(app);
        let app = Outpost::open(options(tmp.path(), &creds, None))
            .unwrap_or_else(|e| panic!("opens after a crash at {step:?}: {e}"));
        assert_eq!(
            app.outbox().expect("outbox").len(),
            1,
            "{step:?}: work kept"
        );
        assert!(app.check().expect("check").store.sound, "{step:?}");
        drop(app);
        assert_eq!(
            creds.names(),
            vec![current_key_entry(&db_id)],
            "{step:?}: the staged key is settled"
        );
        let now_key = creds
            .get(&current_key_entry(&db_id))
            .expect("get")
            .expect("key");
        let swapped = !matches!(
            step,
            RekeyStep::Staged | RekeyStep::Exported | RekeyStep::Verified
        );
        assert_eq!(
            now_key.as_str() != old_key.as_str(),
            swapped,
            "{step:?}: the new key is in force exactly when the new file is"
        );
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".rekey"))
            .collect();
        assert!(leftovers.is_empty(), "{step:?}: {leftovers:?} left behind");
        // And again: the settled state opens too.
        Outpost::open(options(tmp.path(), &creds, None)).expect("opens again");
    }
}

#[test]
fn a_full_rekey_changes_the_key() {
    let (tmp, creds, mut app) = fresh();
    let db_id = app.key_info().db_id.clone();
    let old = creds
        .get(&current_key_entry(&db_id))
        .expect("get")
        .expect("key");
    app.rekey().expect("rekey");
    drop(app);
    let new = creds
        .get(&current_key_entry(&db_id))
        .expect("get")
        .expect("key");
    assert_ne!(old.as_str(), new.as_str());
    let err = Outpost::open(options(tmp.path(), &creds, Some(old.as_str()))).expect_err("old key");
    assert_eq!(err.code(), "wrong_key");
    Outpost::open(options(tmp.path(), &creds, None)).expect("new key opens");
}

#[test]
fn two_data_directories_keep_separate_keys() {
    let creds = MemoryCredentialStore::default();
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let app_a = Outpost::init(options(a.path(), &creds, None), None).expect("init a");
    let app_b = Outpost::init(options(b.path(), &creds, None), None).expect("init b");
    assert_ne!(app_a.key_info().db_id, app_b.key_info().db_id);
    let key_a = creds
        .get(&current_key_entry(&app_a.key_info().db_id))
        .expect("a")
        .expect("a");
    let key_b = creds
        .get(&current_key_entry(&app_b.key_info().db_id))
        .expect("b")
        .expect("b");
    assert_ne!(key_a.as_str(), key_b.as_str());
    assert_eq!(creds.names().len(), 2);
    drop((app_a, app_b));
    Outpost::open(options(a.path(), &creds, None)).expect("a opens");
    Outpost::open(options(b.path(), &creds, None)).expect("b opens");
    let err = Outpost::open(options(b.path(), &creds, Some(key_a.as_str()))).expect_err("a's key");
    assert_eq!(err.code(), "wrong_key");
}

#[test]
fn without_a_credential_store_init_asks_for_an_explicit_choice() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let creds = MemoryCredentialStore::unavailable();
    let err = Outpost::init(options(tmp.path(), &creds, None), None).expect_err("no store");
    assert_eq!(err.code(), "no_credential_store");
    assert!(err.to_string().contains("--passphrase-stdin"), "{err}");
    assert!(
        !Outpost::is_initialized(tmp.path()),
        "no plaintext fallback was made"
    );

    let app = Outpost::init(
        options(tmp.path(), &creds, None),
        Some("long enough passphrase"),
    )
    .expect("passphrase init");
    assert_eq!(app.key_info().key_source, KeySource::Passphrase);
    drop(app);
    let mut opts = options(tmp.path(), &creds, None);
    let err = Outpost::open(opts).expect_err("no passphrase");
    assert_eq!(err.code(), "key_missing");
    opts = options(tmp.path(), &creds, None);
    opts.env.passphrase = Some(Zeroizing::new("wrong passphrase!".into()));
    assert_eq!(Outpost::open(opts).expect_err("wrong").code(), "wrong_key");
    opts = options(tmp.path(), &creds, None);
    opts.env.passphrase = Some(Zeroizing::new("long enough passphrase".into()));
    Outpost::open(opts).expect("right passphrase");
}

#[test]
fn invalid_input_gets_field_errors_and_writes_nothing() {
    let (tmp, _creds, mut app) = fresh();
    let id = first_order(&app);
    let before = app.order(&id).expect("order").order;
    let err = app
        .edit_order(
            &id,
            OrderEdit {
                status: Some(Status::Completed),
                notes: vec!["   ".into()],
                ..OrderEdit::default()
            },
        )
        .expect_err("refused");
    assert_eq!(err.code(), "invalid");
    let fields: Vec<_> = err
        .field_errors()
        .expect("field errors")
        .errors
        .iter()
        .map(|e| e.field.clone())
        .collect();
    assert_eq!(fields, ["status"], "the status machine speaks first");
    let err = app
        .create_order(NewOrder {
            title: " ".into(),
            ..NewOrder::default()
        })
        .expect_err("no title");
    assert_eq!(err.field_errors().expect("fields").errors[0].field, "title");
    let err = app
        .edit_order(
            &id,
            OrderEdit {
                parts: vec![("NO-SUCH-SKU".into(), Quantity::from_units(1))],
                ..OrderEdit::default()
            },
        )
        .expect_err("unknown sku");
    assert_eq!(err.code(), "invalid");
    let err = app
        .complete_order(
            &id,
            Completion {
                signature_png: Evidence {
                    bytes: b"GIF89a".to_vec(),
                    name: "sig.gif".into(),
                },
                signer: "A".into(),
                photos: vec![],
            },
        )
        .expect_err("not a png");
    assert_eq!(err.code(), "invalid");
    // Evidence for a completion that fails validation is not written either.
    let err = app
        .complete_order(
            &id,
            Completion {
                signature_png: Evidence {
                    bytes: png("never stored"),
                    name: "sig.png".into(),
                },
                signer: "A".into(),
                photos: vec![],
            },
        )
        .expect_err("checklist not done");
    assert_eq!(err.code(), "invalid");
    assert_eq!(app.order(&id).expect("order").order, before);
    assert!(app.outbox().expect("outbox").is_empty());
    let attachments = snapshot(tmp.path())
        .into_keys()
        .filter(|k| k.starts_with("attachments"))
        .count();
    assert_eq!(attachments, 0, "no evidence files were left behind");
}

#[test]
fn the_outbox_row_and_the_edit_commit_together_or_not_at_all() {
    let (_tmp, _creds, mut app) = fresh();
    let id = first_order(&app);
    let before = app.order(&id).expect("order").order;
    // Make the outbox insert fail after the order row was updated in the same
    // transaction, as a full disk or a crash between the two statements would.
    app.store()
        .execute_batch_for_tests(
            "CREATE TEMP TRIGGER fail_outbox BEFORE INSERT ON outbox
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .expect("trigger");
    let err = app
        .edit_order(
            &id,
            OrderEdit {
                notes: vec!["lost?".into()],
                ..OrderEdit::default()
            },
        )
        .expect_err("injected failure");
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(
        app.order(&id).expect("order").order,
        before,
        "row rolled back"
    );
    assert!(app.outbox().expect("outbox").is_empty());

    app.store()
        .execute_batch_for_tests("DROP TRIGGER temp.fail_outbox")
        .expect("drop trigger");
    app.edit_order(
        &id,
        OrderEdit {
            notes: vec!["kept".into()],
            ..OrderEdit::default()
        },
    )
    .expect("edit");
    assert_eq!(app.outbox().expect("outbox").len(), 1);
    assert_eq!(app.order(&id).expect("order").sync_state, SyncState::Saved);
}

#[test]
fn unsent_edits_coalesce_and_a_sent_mutation_is_sealed() {
    let (_tmp, _creds, mut app) = fresh();
    let id = first_order(&app);
    let note = |text: &str| OrderEdit {
        notes: vec![text.into()],
        ..OrderEdit::default()
    };
    app.edit_order(&id, note("one")).expect("edit");
    app.edit_order(&id, note("two")).expect("edit");
    let rows = app.outbox().expect("outbox");
    assert_eq!(rows.len(), 1, "unsent edits of one order coalesce");
    assert_eq!(rows[0].mutation.ops.len(), 2);
    let sealed_body = rows[0].body.clone();

    app.store()
        .mark_sent(&[rows[0].mutation_id.clone()])
        .expect("mark sent");
    app.edit_order(&id, note("three")).expect("edit");
    let rows = app.outbox().expect("outbox");
    assert_eq!(rows.len(), 2, "an edit after a send makes a new mutation");
    assert_eq!(
        rows[0].body, sealed_body,
        "the sent body is unchanged byte for byte"
    );
    assert_eq!(rows[1].mutation.ops.len(), 1);
    assert_eq!(app.order(&id).expect("order").order.notes.len(), 3);

    // The schema itself refuses to change a sealed body.
    let err = app
        .store()
        .execute_batch_for_tests("UPDATE outbox SET body = '{}' WHERE seq = 1")
        .expect_err("sealed");
    assert!(err.to_string().contains("sealed"), "{err}");

    // Another order's edit never folds into this one's row.
    let other = app.orders().expect("orders")[1].order.id.to_string();
    app.edit_order(&other, note("elsewhere")).expect("edit");
    assert_eq!(app.outbox().expect("outbox").len(), 3);
}

#[test]
fn the_device_id_is_made_once_per_data_directory() {
    let (tmp, creds, app) = fresh();
    let id = app.device_id();
    drop(app);
    let again = Outpost::open(options(tmp.path(), &creds, None)).expect("open");
    assert_eq!(again.device_id(), id);
    let (_tmp2, _creds2, other) = fresh();
    assert_ne!(other.device_id(), id);
}

#[test]
fn a_new_order_is_pending_a_number_and_assigned_to_its_maker() {
    let (_tmp, _creds, mut app) = fresh();
    let row = app
        .create_order(NewOrder {
            title: "Follow-up: replace valve".into(),
            customer: "Polar Hotel".into(),
            ..NewOrder::default()
        })
        .expect("create");
    assert_eq!(row.order.number, None);
    assert_eq!(row.order.assignee.as_deref(), Some("tech1"));
    assert_eq!(row.sync_state, SyncState::Saved);
    let json = serde_json::to_value(&row).expect("json");
    for key in [
        "id",
        "number",
        "title",
        "status",
        "priority",
        "notes",
        "sync_state",
    ] {
        assert!(json.get(key).is_some(), "--json output has {key}");
    }
}

#[test]
fn sign_out_is_refused_while_work_is_unsynced_and_lists_it() {
    let (_tmp, _creds, mut app) = fresh();
    let id = first_order(&app);
    let device_id = app.device_id();
    app.store()
        .set_session(&outpost_store::Session {
            server_url: "http://127.0.0.1:9".into(),
            username: "tech1".into(),
            role: outpost_protocol::Role::Technician,
            device_id,
            access_token: "a".into(),
            access_expires_at: t0(),
            refresh_token: "r".into(),
            refresh_expires_at: t0(),
            needs_sign_in: None,
        })
        .expect("session");
    app.edit_order(
        &id,
        OrderEdit {
            notes: vec!["not yet sent".into()],
            ..OrderEdit::default()
        },
    )
    .expect("edit");
    let e = app.sign_out().expect_err("refused");
    assert_eq!(e.code(), "unsynced_work");
    assert!(e.to_string().contains("1 change"), "{e}");
    let pending = app.pending_changes().expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].order_id, id);
    assert_eq!(pending[0].state, "pending");
    assert!(app.session().expect("session").is_some(), "still signed in");
}

#[test]
fn on_a_device_that_never_signed_in_my_van_is_the_local_users_and_the_picker_puts_it_first() {
    let (_tmp, _creds, mut app) = fresh();
    // One item stocked only in the warehouse: the picker lists it after the van's.
    let mut spare = demo::inventory("tech1").remove(0);
    spare.sku = "AAA-1".into();
    spare.name = "Anchor bolt".into();
    spare
        .stock
        .retain(|s| !outpost_protocol::stock::is_van(&s.location));
    app.store().put_inventory(&[spare]).expect("put");

    let input = |place| views::InventoryPageInput {
        place,
        query: String::new(),
        offset: 0,
        limit: 50,
    };
    let mine = app
        .inventory_page(&input(views::StockPlace::MyVan))
        .expect("my van");
    assert_eq!(mine.location.as_deref(), Some("van-tech1"));
    assert!(mine.yours);
    assert_eq!(mine.items.len(), 5, "the five demo items are in the van");
    let filter = mine
        .items
        .iter()
        .find(|i| i.item.sku == "FLT-100")
        .expect("the filter");
    assert_eq!(filter.here, Some(40.0));
    let warehouse = app
        .inventory_page(&input(views::StockPlace::Warehouse))
        .expect("warehouse");
    assert_eq!(warehouse.location, None);
    assert_eq!(warehouse.items.len(), 6);
    let names: Vec<&str> = warehouse
        .items
        .iter()
        .map(|i| i.item.sku.as_str())
        .collect();
    assert_eq!(
        names[..2],
        ["FLT-100", "AAA-1"],
        "by name: Air filter, Anchor bolt"
    );

    let order = first_order(&app);
    let picker = app.part_picker(&order, "", 10).expect("picker");
    let skus: Vec<(&str, bool)> = picker
        .items
        .iter()
        .map(|i| (i.item.sku.as_str(), i.here.is_some()))
        .collect();
    assert_eq!(skus.len(), 6);
    assert!(skus[..5].iter().all(|(_, in_van)| *in_van), "{skus:?}");
    assert_eq!(
        skus[5],
        ("AAA-1", false),
        "the warehouse-only item comes last"
    );
}
