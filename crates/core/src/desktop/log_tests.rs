//! The desktop's log is rolled and bounded (issue 21 item 6).

use super::log::{rolling_file, LOG_FILES_KEPT, LOG_PREFIX};

fn log_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the log folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(LOG_PREFIX))
        .collect();
    names.sort();
    names
}

#[test]
fn the_desktop_log_keeps_a_bounded_number_of_files_and_writes_to_a_new_one() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("logs");
    std::fs::create_dir_all(&dir).expect("log folder");
    // A month of old logs, and the single ever-growing file of earlier releases.
    for day in 1..=30 {
        std::fs::write(
            dir.join(format!("{LOG_PREFIX}.2026-11-{day:02}.log")),
            b"old\n",
        )
        .expect("old log");
    }
    std::fs::write(dir.join(format!("{LOG_PREFIX}.log")), b"older\n").expect("old log");
    let mut writer = rolling_file(&dir).expect("the log opens");
    writer.write_all(b"a line\n").expect("write");
    writer.flush().expect("flush");
    let names = log_files(&dir);
    assert!(
        names.len() <= LOG_FILES_KEPT,
        "at most {LOG_FILES_KEPT} files: {names:?}"
    );
    let written: Vec<&String> = names
        .iter()
        .filter(|n| std::fs::read_to_string(dir.join(n)).is_ok_and(|t| t.contains("a line")))
        .collect();
    assert_eq!(written.len(), 1, "{names:?}");
    assert!(written[0].ends_with(".log"), "{written:?}");
}
