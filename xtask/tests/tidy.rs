//! The architecture holds: every invariant that ARCHITECTURE.md lists and a machine can
//! check (`outpost_xtask::tidy`) is checked over the whole workspace. A failure names
//! the rule, the place and what to do instead.

use outpost_xtask::{repo_root, tidy};

#[test]
fn every_architecture_invariant_holds_over_the_workspace() {
    let found = tidy::check_workspace(&repo_root()).unwrap_or_else(|e| panic!("tidy: {e}"));
    assert!(
        found.is_empty(),
        "{} architecture rule(s) broken:\n  - {}\n",
        found.len(),
        found
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  - ")
    );
}
