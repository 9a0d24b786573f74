//! Result files for docs/RELIABILITY.md: `<target>/reliability/<part>.json`, one JSON
//! object per part (`part`, `title`, `what`, `command`, `seed`, `lost`, `doubled`,
//! `rows`, …; the format `cargo xtask reliability` reads). A part whose tests run in
//! parallel adds one row per test with [`add_row`], under a file lock, so that the
//! rows of every test end up in the one file.

use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use serde_json::{json, Value};

/// `<target>/reliability`.
pub fn dir() -> PathBuf {
    let tmp = crate::target_tmp();
    tmp.parent()
        .map(|t| t.join("reliability"))
        .unwrap_or_else(|| tmp.join("reliability"))
}

/// What a part is, for its file's header fields.
pub struct Part<'a> {
    pub part: &'a str,
    pub title: &'a str,
    pub what: &'a str,
    pub command: &'a str,
}

/// Write a part's whole result file.
pub fn write(part: &str, body: &Value) {
    let dir = dir();
    std::fs::create_dir_all(&dir).expect("the results directory");
    let path = dir.join(format!("{part}.json"));
    std::fs::write(
        &path,
        serde_json::to_string_pretty(body).unwrap_or_default(),
    )
    .expect("write a result file");
    println!("results: {}", path.display());
}

/// Add one row (one test's outcome: its `test` name first, and its `lost` and
/// `doubled` counts) to a part's result file, in place of that test's row from an
/// earlier run; the part's `lost` and `doubled` are the rows' sums.
pub fn add_row(part: &Part<'_>, row: Value) {
    let dir = dir();
    std::fs::create_dir_all(&dir).expect("the results directory");
    let path = dir.join(format!("{}.json", part.part));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .expect("open a result file");
    file.lock().expect("lock the result file");
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let mut body: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
        json!({
            "part": part.part,
            "title": part.title,
            "what": part.what,
            "command": part.command,
            "seed": "-",
            "lost": 0,
            "doubled": 0,
            "rows": [],
        })
    });
    if let Some(rows) = body["rows"].as_array_mut() {
        rows.retain(|r| r["test"] != row["test"]);
        rows.push(row);
        rows.sort_by_key(|r| r["test"].to_string());
        let sum = |key: &str| {
            rows.iter()
                .map(|r| r[key].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
        let (lost, doubled) = (sum("lost"), sum("doubled"));
        body["lost"] = json!(lost);
        body["doubled"] = json!(doubled);
    }
    let out = serde_json::to_string_pretty(&body).unwrap_or_default();
    let _ = file.set_len(0);
    let _ = file.rewind();
    file.write_all(out.as_bytes()).expect("write a result file");
}
