//! Tauri's build step: reads `tauri.conf.json` and the capabilities, embeds the icons,
//! and generates an `allow-<command>` permission for each of the app's own commands,
//! so that `capabilities/main.json` can grant the window exactly the commands it uses
//! (without an app manifest, Tauri allows every app command to every window).
//!
//! The commands are the `#[tauri::command]` fns of `src/commands.rs`, read here with the
//! same reader as `cargo xtask codegen` (`outpost_xtask::codegen::commands`), so there is
//! no list to keep in step by hand.

const COMMANDS_RS: &str = "src/commands.rs";

fn main() {
    // A build script reports failure by panicking; each message names the problem.
    println!("cargo:rerun-if-changed={COMMANDS_RS}");
    let source = std::fs::read_to_string(COMMANDS_RS)
        .unwrap_or_else(|e| panic!("cannot read {COMMANDS_RS}: {e}"));
    let names = outpost_xtask::codegen::commands::command_names(&source)
        .unwrap_or_else(|e| panic!("{COMMANDS_RS}: {e}"));
    // Tauri wants a `'static` list; a build script ends right after, so leak it.
    let commands: &'static [&'static str] = names
        .into_iter()
        .map(|n| &*n.leak())
        .collect::<Vec<&'static str>>()
        .leak();
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(commands));
    if let Err(e) = tauri_build::try_build(attributes) {
        panic!("tauri build step failed: {e:#}");
    }
}
