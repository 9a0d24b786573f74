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

#[test]
fn a_days_log_stops_at_its_size_cap_and_says_so_once_even_across_restarts() {
    use std::io::Write;
    use std::sync::Arc;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("logs");
    use crate::clock::Clock as _;
    // The files are named by the real date (tracing-appender's clock): the cap counts
    // by the same date.
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
    let line = [b'x'; 99];
    let today = || -> u64 {
        log_files(&dir)
            .iter()
            .map(|n| std::fs::metadata(dir.join(n)).map_or(0, |m| m.len()))
            .sum()
    };
    // Two runs of the app on the same day, each writing 100 lines of 100 bytes.
    for _ in 0..2 {
        let mut log = super::log::capped_file(&dir, 2_000, clock.clone()).expect("the log opens");
        for _ in 0..100 {
            log.write_all(&line).expect("write");
            log.write_all(b"\n").expect("write");
        }
        log.flush().expect("flush");
    }
    let size = today();
    assert!(
        size <= 2_000 + 200,
        "a day's log is bounded: {size} bytes for a cap of 2000"
    );
    let text: String = log_files(&dir)
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n)).unwrap_or_default())
        .collect();
    assert_eq!(
        text.matches("reached its size cap").count(),
        1,
        "said once: {text}"
    );
    // The next day writes again.
    let tomorrow = Arc::new(crate::clock::FixedClock::new(
        crate::clock::SystemClock.now() + chrono::Duration::days(1),
    ));
    let mut log = super::log::capped_file(&dir, 2_000, tomorrow).expect("the log opens");
    log.write_all(b"a new day\n").expect("write");
    log.flush().expect("flush");
    let text: String = log_files(&dir)
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n)).unwrap_or_default())
        .collect();
    assert!(text.contains("a new day"), "{text}");
}
