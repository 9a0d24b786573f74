//! How the web view paints on Linux: through WebKitGTK's accelerated compositing (GL)
//! when the machine has a GPU, or straight to memory on the CPU when it has none.
//!
//! Without a GPU (no DRM render node, as in virtual machines, remote desktops and
//! Xvfb), WebKitGTK's compositing runs on Mesa's software GL (llvmpipe): the CPU then
//! emulates a GPU, which costs about 100 MiB of extra memory in the web process and
//! makes each frame slower than painting without compositing (measured in
//! `src-tauri/README.md`, "Rendering mode"). So by default Outpost turns compositing
//! off exactly when there is no GPU to composite with. `OUTPOST_GPU_COMPOSITING=on|off`
//! overrides the choice, and a WebKit variable a person set themselves is left alone.
//! The choice is made before GTK or WebKit start, and logged.

use std::path::Path;

/// WebKitGTK's own switch: no accelerated compositing, pages painted on the CPU.
pub const WEBKIT_DISABLE_COMPOSITING: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
/// Outpost's override: `on`, `off` or `auto` (the default).
pub const OVERRIDE: &str = "OUTPOST_GPU_COMPOSITING";

/// What the machine and the environment say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `OUTPOST_GPU_COMPOSITING`, if set.
    pub override_value: Option<String>,
    /// A WebKit rendering variable is already set (by a person or a launcher).
    pub webkit_preset: bool,
    /// A DRM render node exists (`/dev/dri/renderD*`): there is a GPU to use.
    pub render_node: bool,
    /// Mesa is told to render in software (`LIBGL_ALWAYS_SOFTWARE`).
    pub software_gl_forced: bool,
}

/// The decision, with the reason that goes into the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Set `WEBKIT_DISABLE_COMPOSITING_MODE=1`.
    pub disable_compositing: bool,
    pub reason: String,
}

pub fn choose(f: &Facts) -> Choice {
    let choice = |disable_compositing: bool, reason: &str| Choice {
        disable_compositing,
        reason: reason.to_owned(),
    };
    if f.webkit_preset {
        return choice(
            false,
            "a WebKit rendering variable is already set; left as it is",
        );
    }
    match f.override_value.as_deref().map(str::trim) {
        Some("on") => return choice(false, "OUTPOST_GPU_COMPOSITING=on"),
        Some("off") => return choice(true, "OUTPOST_GPU_COMPOSITING=off"),
        Some("auto") | Some("") | None => {}
        Some(other) => {
            let auto = choose(&Facts {
                override_value: None,
                ..f.clone()
            });
            return Choice {
                reason: format!(
                    "OUTPOST_GPU_COMPOSITING={other:?} is not on, off or auto; automatic: {}",
                    auto.reason
                ),
                ..auto
            };
        }
    }
    if f.software_gl_forced {
        choice(true, "LIBGL_ALWAYS_SOFTWARE is set: no GPU compositing")
    } else if !f.render_node {
        choice(
            true,
            "no GPU render node (/dev/dri/renderD*): painting on the CPU",
        )
    } else {
        choice(
            false,
            "a GPU render node is present: WebKit's GPU compositing",
        )
    }
}

/// Read the facts from this process's environment and `/dev/dri`.
pub fn facts() -> Facts {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    Facts {
        override_value: std::env::var(OVERRIDE).ok(),
        webkit_preset: set(WEBKIT_DISABLE_COMPOSITING) || set("WEBKIT_DISABLE_DMABUF_RENDERER"),
        render_node: has_render_node(Path::new("/dev/dri")),
        software_gl_forced: std::env::var("LIBGL_ALWAYS_SOFTWARE")
            .is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"),
    }
}

fn has_render_node(dri: &Path) -> bool {
    std::fs::read_dir(dri).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// Decide and apply, before any thread starts and before GTK is initialised (the
/// environment is read by WebKit when the first web view is made). Returns the choice
/// for the log, which is not set up yet.
pub fn apply() -> Choice {
    if !cfg!(target_os = "linux") {
        // WebView2 and WKWebView choose their own rendering; nothing to decide.
        return Choice {
            disable_compositing: false,
            reason: "not Linux: the platform's web view decides".to_owned(),
        };
    }
    let choice = choose(&facts());
    if choice.disable_compositing {
        std::env::set_var(WEBKIT_DISABLE_COMPOSITING, "1");
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(render_node: bool) -> Facts {
        Facts {
            override_value: None,
            webkit_preset: false,
            render_node,
            software_gl_forced: false,
        }
    }

    #[test]
    fn a_machine_with_a_gpu_keeps_compositing_and_one_without_paints_on_the_cpu() {
        assert!(!choose(&facts(true)).disable_compositing);
        assert!(choose(&facts(false)).disable_compositing);
        let forced = Facts {
            software_gl_forced: true,
            ..facts(true)
        };
        assert!(choose(&forced).disable_compositing);
    }

    #[test]
    fn the_override_wins_and_a_bad_value_falls_back_to_automatic_with_a_reason() {
        let with = |v: &str, gpu: bool| Facts {
            override_value: Some(v.into()),
            ..facts(gpu)
        };
        assert!(!choose(&with("on", false)).disable_compositing);
        assert!(choose(&with("off", true)).disable_compositing);
        assert!(choose(&with("auto", false)).disable_compositing);
        let bad = choose(&with("maybe", false));
        assert!(bad.disable_compositing);
        assert!(bad.reason.contains("\"maybe\""), "{}", bad.reason);
    }

    #[test]
    fn a_webkit_variable_someone_set_is_left_alone() {
        let preset = Facts {
            webkit_preset: true,
            override_value: Some("off".into()),
            ..facts(false)
        };
        assert!(!choose(&preset).disable_compositing);
    }

    #[test]
    fn render_nodes_are_found_by_name() {
        let tmp = std::env::temp_dir().join(format!("outpost-dri-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("dir");
        assert!(!has_render_node(&tmp));
        std::fs::write(tmp.join("card0"), b"").expect("card");
        assert!(!has_render_node(&tmp));
        std::fs::write(tmp.join("renderD128"), b"").expect("render node");
        assert!(has_render_node(&tmp));
        std::fs::remove_dir_all(&tmp).expect("clean up");
        assert!(!has_render_node(&tmp), "a missing /dev/dri means no GPU");
    }
}
