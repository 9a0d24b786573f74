//! An empty Tauri window built from the same dependencies and configuration as
//! `outpost-desktop`, for the memory benchmark's baseline (`scripts/bench-desktop.sh`):
//! the app's idle PSS is reported beside this one's, measured in the same run.
//!
//! The configured `main` window (which would load Outpost's UI) is dropped and one
//! window showing a blank page is opened instead. No commands, no tray, no state.

use tauri::{WebviewUrl, WebviewWindowBuilder};

fn main() {
    let mut context = tauri::generate_context!();
    context.config_mut().app.windows.clear();
    let app = tauri::Builder::default()
        .setup(|app| {
            let url = WebviewUrl::App("blank.html".into());
            WebviewWindowBuilder::new(app, "main", url)
                .title("empty")
                .inner_size(1200.0, 800.0)
                .build()?;
            eprintln!("empty-window-ready");
            Ok(())
        })
        .build(context);
    match app {
        Ok(app) => app.run(|_, _| {}),
        Err(e) => {
            eprintln!("empty window failed: {e}");
            std::process::exit(1);
        }
    }
}
