//! Making names durable. POSIX makes a file's bytes durable with an fsync of the file,
//! but a new (or renamed) name only with an fsync of the directory that holds it: a
//! power cut after `mkdir` without it may take the new directory, and everything saved
//! inside it since, even though each file in it was synced (issue 17 item 3, found by
//! the power-cut test in tests/tests/powercut.rs).

use std::path::Path;

/// Make the names in `dir` durable (Unix: fsync the directory; Windows has no such call
/// for directories and makes the names durable itself).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        std::fs::File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

/// `create_dir_all`, durably: every directory it creates is synced into its parent.
/// Costs nothing when `dir` already exists.
pub fn create_dir_all_durable(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(d) = next.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d);
        next = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        sync_dir(
            d.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_level_is_made_and_an_existing_directory_is_left_alone() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let deep = tmp.path().join("a").join("b").join("c");
        create_dir_all_durable(&deep).expect("made");
        assert!(deep.is_dir());
        create_dir_all_durable(&deep).expect("made");
        assert!(deep.is_dir());
    }
}
