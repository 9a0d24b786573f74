//! The `outpost` binary as a script or a support engineer uses it: real processes, real
//! encrypted data directories, exit codes and `--json` output.
//!
//! Most tests use `OUTPOST_DB_KEY` (automation). The tests at the end use the real OS
//! credential store (Secret Service), so they are ignored in a plain `cargo test`
//! (with the reason); `make test` runs them with `--include-ignored` inside a D-Bus
//! session with an unlocked GNOME keyring, and there they fail when no credential store
//! answers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_outpost");

struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
    key: Option<String>,
}

fn random_key() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")
}

impl Dir {
    fn with_env_key() -> Dir {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("data");
        Dir {
            _tmp: tmp,
            path,
            key: Some(random_key()),
        }
    }

    fn with_keyring() -> Dir {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("data");
        Dir {
            _tmp: tmp,
            path,
            key: None,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(&self.path).args(args);
        c.env_remove("OUTPOST_DATA_DIR")
            .env_remove("OUTPOST_DB_PASSPHRASE")
            .env_remove("OUTPOST_FAILPOINT");
        match &self.key {
            Some(k) => c.env("OUTPOST_DB_KEY", k),
            None => c.env_remove("OUTPOST_DB_KEY"),
        };
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run outpost")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "outpost {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("valid JSON on stdout")
    }
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).expect("inside").display().to_string(),
                    std::fs::read(&p).expect("read"),
                );
            }
        }
    }
    out
}

/// A valid 1×1 PNG, with the file name appended after its end (ignored by decoders,
/// but it makes each file's hash different).
fn png_file(dir: &Path, name: &str) -> PathBuf {
    const PNG_1X1: &[u8] = b"\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90\x77\x53\xde\x00\x00\x00\x0c\x49\x44\x41\x54\x78\x9c\x63\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";
    let path = dir.join(name);
    let mut bytes = PNG_1X1.to_vec();
    bytes.extend_from_slice(name.as_bytes());
    std::fs::write(&path, bytes).expect("write png");
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_technician_session_from_init_to_completion_through_the_cli() {
    let d = Dir::with_env_key();
    d.ok(&["init", "--user", "tech1"]);
    d.ok(&["demo", "load"]);

    let orders = d.json(&["orders", "list"]);
    let list = orders.as_array().expect("orders list is an array");
    assert_eq!(list.len(), 5);
    for o in list {
        for key in [
            "id",
            "number",
            "title",
            "status",
            "priority",
            "notes",
            "sync_state",
        ] {
            assert!(o.get(key).is_some(), "order JSON has {key}: {o}");
        }
        assert_eq!(o["sync_state"], "synced");
    }
    let first = list[0]["id"].as_str().expect("id").to_owned();

    let created = d.json(&[
        "orders",
        "create",
        "--title",
        "Follow-up: replace valve",
        "--customer",
        "Polar Hotel",
    ]);
    assert!(created["id"].is_string());
    assert_eq!(
        created["number"],
        Value::Null,
        "numbers come from the server"
    );
    assert_eq!(created["sync_state"], "saved");

    let edited = d.json(&[
        "orders",
        "edit",
        &first,
        "--note",
        "Power isolated",
        "--note",
        "Seal replaced",
        "--check",
        "safety",
        "--check",
        "test",
        "--part",
        "SEAL-22=1",
        "--status",
        "in_progress",
    ]);
    let notes: Vec<&str> = edited["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| n["text"].as_str().expect("text"))
        .collect();
    assert_eq!(notes, ["Power isolated", "Seal replaced"]);
    assert_eq!(edited["status"], "in_progress");
    assert_eq!(edited["sync_state"], "saved");

    let sig = png_file(d.path.parent().expect("parent"), "signature.png");
    let photo = png_file(d.path.parent().expect("parent"), "after.png");
    let done = d.json(&[
        "orders",
        "complete",
        &first,
        "--signature",
        sig.to_str().expect("path"),
        "--signer",
        "Ada Lovelace",
        "--photo",
        photo.to_str().expect("path"),
    ]);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["signature"]["signer"], "Ada Lovelace");
    assert_eq!(done["photos"].as_array().expect("photos").len(), 1);

    let shown = d.json(&["orders", "show", &first[..32]]);
    assert_eq!(
        shown["id"],
        first.as_str(),
        "a unique id prefix finds the order"
    );
    let number = shown["number"].as_u64().expect("number").to_string();
    let by_number = d.json(&["orders", "show", &number]);
    assert_eq!(by_number["id"], first.as_str(), "so does its number");

    let outbox = d.json(&["outbox", "list"]);
    let outbox = outbox.as_array().expect("outbox list is an array");
    let kinds: Vec<&str> = outbox
        .iter()
        .map(|r| r["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["create", "update", "complete"]);
    assert!(outbox.iter().all(|r| r["state"] == "pending"));

    let inventory = d.json(&["inventory", "search", "seal"]);
    assert_eq!(inventory.as_array().expect("array")[0]["sku"], "SEAL-22");

    let check = d.json(&["db", "check"]);
    assert_eq!(check["encrypted"], true);
    assert_eq!(check["sound"], true);
    assert_eq!(check["synchronous"], "FULL");

    let human = d.ok(&["orders", "list"]);
    assert!(
        human.contains("pending") && human.contains("Follow-up: replace valve"),
        "{human}"
    );
}

#[test]
fn invalid_input_exits_3_with_field_errors_and_changes_nothing() {
    let d = Dir::with_env_key();
    d.ok(&["init"]);
    d.ok(&["demo", "load"]);
    let id = d.json(&["orders", "list"])[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let before = files(&d.path);

    let out = d.run(&["orders", "edit", &id, "--status", "completed"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("status: cannot change status"),
        "{}",
        stderr(&out)
    );

    let out = d.run(&["--json", "orders", "create", "--title", "   "]);
    assert_eq!(out.status.code(), Some(3));
    let err: Value = serde_json::from_str(stderr(&out).trim()).expect("JSON error on stderr");
    assert_eq!(err["error"]["code"], "invalid");
    assert_eq!(err["error"]["field_errors"][0]["field"], "title");

    let out = d.run(&["orders", "edit", &id, "--part", "SEAL-22=lots"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a malformed argument is a usage error"
    );

    let sig = png_file(d.path.parent().expect("parent"), "sig.png");
    let out = d.run(&[
        "orders",
        "complete",
        &id,
        "--signature",
        sig.to_str().expect("path"),
        "--signer",
        "A",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "required checklist items are not done"
    );
    assert!(
        stderr(&out).contains("must be done before completing"),
        "{}",
        stderr(&out)
    );

    let out = d.run(&["orders", "show", "no-such-order"]);
    assert_eq!(out.status.code(), Some(6));

    assert_eq!(
        files(&d.path).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        d.json(&["outbox", "list"]).as_array().expect("array").len(),
        0
    );
}

#[test]
fn key_problems_and_damage_each_have_their_own_message_and_exit_code() {
    let d = Dir::with_env_key();
    d.ok(&["init"]);
    d.ok(&["demo", "load"]);
    let before = files(&d.path);

    let wrong = Dir {
        _tmp: tempfile::tempdir().expect("temp"),
        path: d.path.clone(),
        key: Some(random_key()),
    };
    let out = wrong.run(&["orders", "list"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("key is wrong"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains(wrong.key.as_deref().expect("key")),
        "the key is never printed"
    );
    assert_eq!(files(&d.path), before, "a wrong key changes nothing");

    let missing = Dir {
        _tmp: tempfile::tempdir().expect("temp"),
        path: d.path.clone(),
        key: None,
    };
    let out = missing.run(&["orders", "list"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("OUTPOST_DB_KEY"), "{}", stderr(&out));
    assert_eq!(files(&d.path), before);

    let uninitialised = Dir::with_env_key();
    let out = uninitialised.run(&["orders", "list"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("outpost init"), "{}", stderr(&out));

    let db = d.path.join("outpost.db");
    let mut bytes = std::fs::read(&db).expect("read");
    let len = bytes.len();
    for b in &mut bytes[len / 2..len / 2 + 4096] {
        *b = !*b;
    }
    std::fs::write(&db, &bytes).expect("damage");
    let out = d.run(&["db", "check"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let mut header = bytes.clone();
    for b in &mut header[..4096] {
        *b = !*b;
    }
    std::fs::write(&db, &header).expect("damage the first page");
    let out = d.run(&["orders", "list"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
}

#[test]
fn init_never_overwrites_an_existing_database() {
    let d = Dir::with_env_key();
    d.ok(&["init"]);
    let before = files(&d.path);
    let out = d.run(&["init"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already holds"), "{}", stderr(&out));
    assert_eq!(files(&d.path), before);
}

#[test]
fn a_passphrase_protects_a_database_without_a_credential_store() {
    let d = Dir::with_keyring();
    let mut child = d
        .command(&["init", "--passphrase-stdin"])
        // No session bus: this machine has no credential store.
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
        .env_remove("DISPLAY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"correct horse battery\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = d
        .command(&["orders", "list"])
        .env("OUTPOST_DB_PASSPHRASE", "correct horse battery")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = d
        .command(&["orders", "list"])
        .env("OUTPOST_DB_PASSPHRASE", "wrong horse")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("passphrase is wrong"),
        "{}",
        stderr(&out)
    );

    // `outpost db passphrase`: opened with the current one, the new one from stdin.
    let mut child = d
        .command(&["db", "passphrase"])
        .env("OUTPOST_DB_PASSPHRASE", "correct horse battery")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"a brand new passphrase\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    for (pass, code) in [
        ("correct horse battery", Some(4)),
        ("a brand new passphrase", Some(0)),
    ] {
        let out = d
            .command(&["orders", "list"])
            .env("OUTPOST_DB_PASSPHRASE", pass)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), code, "{pass}: {}", stderr(&out));
    }
}

#[test]
fn without_a_credential_store_init_refuses_and_names_the_choices() {
    let d = Dir::with_keyring();
    let out = d
        .command(&["init"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
        .env_remove("DISPLAY")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--passphrase-stdin") && err.contains("OUTPOST_DB_KEY"),
        "{err}"
    );
    assert!(!d.path.join("outpost.db").exists(), "no plaintext fallback");
}

// ----- the real OS credential store -----

/// The keyring tests are ignored unless asked for; asked for, they need an answering
/// Secret Service and fail here without one.
fn require_secret_service() {
    let probe = Dir::with_keyring();
    let out = probe.run(&["init"]);
    assert!(
        out.status.success(),
        "this test needs the Secret Service (an unlocked keyring in a D-Bus session), which did not answer: run it through `make test` (scripts/test.sh): {}",
        stderr(&out)
    );
}

fn db_id(d: &Dir) -> String {
    let text = std::fs::read_to_string(d.path.join("outpost-key.json")).expect("key file");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["db_id"].as_str().expect("db_id").to_owned()
}

fn secret_tool_lookup(entry: &str) -> Option<String> {
    // keyring's Secret Service entries carry the attributes service and username.
    let out = Command::new("secret-tool")
        .args(["lookup", "service", "outpost", "username", entry])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
#[ignore = "needs the Secret Service (an unlocked keyring in a D-Bus session): make test runs it"]
fn the_key_lives_in_the_os_credential_store_one_entry_per_data_directory() {
    require_secret_service();
    let a = Dir::with_keyring();
    let b = Dir::with_keyring();
    a.ok(&["init"]);
    b.ok(&["init"]);
    let (ida, idb) = (db_id(&a), db_id(&b));
    assert_ne!(ida, idb);
    let ka = secret_tool_lookup(&format!("db-key:{ida}")).expect("a's key in the keyring");
    let kb = secret_tool_lookup(&format!("db-key:{idb}")).expect("b's key in the keyring");
    assert_eq!(ka.len(), 64);
    assert_ne!(ka, kb, "two data directories never share a key");
    a.ok(&["demo", "load"]);
    assert_eq!(
        b.json(&["orders", "list"]).as_array().expect("array").len(),
        0
    );
    assert_eq!(
        a.json(&["orders", "list"]).as_array().expect("array").len(),
        5
    );
    // The key file holds no secret.
    let key_file = std::fs::read_to_string(a.path.join("outpost-key.json")).expect("key file");
    assert!(!key_file.contains(&ka));

    // OUTPOST_DB_KEY set: the only key tried, never written to the store.
    let env = Dir {
        _tmp: tempfile::tempdir().expect("temp"),
        path: a.path.clone(),
        key: Some(random_key()),
    };
    assert_eq!(env.run(&["orders", "list"]).status.code(), Some(4));
    assert_eq!(
        secret_tool_lookup(&format!("db-key:{ida}")).as_deref(),
        Some(ka.as_str())
    );
    let fresh = Dir::with_env_key();
    fresh.ok(&["init"]);
    assert_eq!(
        secret_tool_lookup(&format!("db-key:{}", db_id(&fresh))),
        None
    );
}

#[test]
#[ignore = "needs the Secret Service (an unlocked keyring in a D-Bus session): make test runs it"]
fn rekey_killed_at_each_step_still_opens_with_the_os_credential_store() {
    require_secret_service();
    for step in [
        "rekey:staged",
        "rekey:exported",
        "rekey:verified",
        "rekey:swapped",
        "rekey:rekeyed",
        "rekey:promoted",
        "rekey:key-file-updated",
    ] {
        let d = Dir::with_keyring();
        d.ok(&["init"]);
        d.ok(&["demo", "load"]);
        let id = d.json(&["orders", "list"])[0]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        d.ok(&["orders", "edit", &id, "--note", "unsynced work"]);
        let old = secret_tool_lookup(&format!("db-key:{}", db_id(&d))).expect("key");
        let out = d
            .command(&["db", "rekey"])
            .env("OUTPOST_FAILPOINT", step)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{step}: the process was killed");
        let listed = d.json(&["outbox", "list"]);
        assert_eq!(
            listed.as_array().expect("array").len(),
            1,
            "{step}: work kept"
        );
        let check = d.json(&["db", "check"]);
        assert_eq!(check["sound"], true, "{step}");
        let now = secret_tool_lookup(&format!("db-key:{}", db_id(&d))).expect("key");
        assert_eq!(
            secret_tool_lookup(&format!("db-key-staged:{}", db_id(&d))),
            None,
            "{step}: the staged key is settled"
        );
        if ["rekey:staged", "rekey:exported", "rekey:verified"].contains(&step) {
            assert_eq!(now, old, "the database was not re-keyed yet");
        } else {
            assert_ne!(now, old, "{step}: the new key is in force");
        }
    }
    let d = Dir::with_keyring();
    d.ok(&["init"]);
    let old = secret_tool_lookup(&format!("db-key:{}", db_id(&d))).expect("key");
    d.ok(&["db", "rekey"]);
    let new = secret_tool_lookup(&format!("db-key:{}", db_id(&d))).expect("key");
    assert_ne!(old, new);
    d.ok(&["db", "check"]);
}
