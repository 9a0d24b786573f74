//! Reads `src-tauri/src/commands.rs`, the one place the desktop's commands are declared:
//! every top-level `#[tauri::command]` fn is a command, its name is the command's name,
//! its arguments (less the ones Tauri supplies itself: `State`, `AppHandle`, windows)
//! are the command's arguments, and the `T` of its `Res<T>` result is what it answers.
//! Also reads the `generate_handler!` list, which must name exactly those fns.
//!
//! [`command_names`] is what `outpost-desktop`'s build script calls for the permission
//! list; [`parse`] is the full reading the generator and the check use.
//!
//! Left out on purpose: commands in nested modules or other files, and options on the
//! attribute (`#[tauri::command(rename_all = …)]` changes the argument keys): both are
//! refused with a message rather than read half-way.

use syn::punctuated::Punctuated;
use syn::{Expr, FnArg, Item, ItemFn, Meta, Pat, ReturnType, Stmt, Token, Type};

use super::rust::{doc_lines, last_name, path_is, type_text};

/// Arguments Tauri fills in itself (by the last name of their type): not sent by the UI.
const INJECTED: &[&str] = &["State", "AppHandle", "Window", "WebviewWindow", "Webview"];

/// One command, as declared.
#[derive(Clone)]
pub struct Command {
    /// The fn's name: the name `invoke` takes.
    pub name: String,
    pub docs: Vec<String>,
    /// What the UI sends, in declaration order.
    pub args: Vec<Arg>,
    /// The `T` of `Res<T>`.
    pub ok: Type,
}

/// One argument the UI sends.
#[derive(Clone)]
pub struct Arg {
    /// As declared in Rust (`entry_id`); Tauri expects the key in camelCase.
    pub name: String,
    pub ty: Type,
}

/// What `commands.rs` declares.
#[derive(Debug, Clone)]
pub struct CommandsFile {
    /// In declaration order.
    pub commands: Vec<Command>,
    /// The `generate_handler!` list, by each entry's last name, in its order.
    pub handler: Vec<String>,
}

// By hand: `syn`'s types have no `Debug` without a feature the build would not share.
impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("name", &self.name)
            .field("args", &self.args)
            .field("ok", &type_text(&self.ok))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, type_text(&self.ty))
    }
}

fn parse_file(source: &str) -> Result<syn::File, String> {
    syn::parse_file(source).map_err(|e| format!("cannot parse: {e}"))
}

/// Whether `f` is a command; refuses options on the attribute.
fn is_command(f: &ItemFn) -> Result<bool, String> {
    for a in &f.attrs {
        if path_is(a.path(), &["tauri", "command"]) {
            return match &a.meta {
                Meta::Path(_) => Ok(true),
                _ => Err(format!(
                    "`{}`: options on #[tauri::command] are not read by the generator \
                     (they change how the UI calls it); declare it as plain #[tauri::command]",
                    f.sig.ident
                )),
            };
        }
    }
    Ok(false)
}

fn command_fns(file: &syn::File) -> impl Iterator<Item = &ItemFn> {
    file.items.iter().filter_map(|i| match i {
        Item::Fn(f) => Some(f),
        _ => None,
    })
}

/// The names of the commands in `source` (the text of `commands.rs`), in order.
pub fn command_names(source: &str) -> Result<Vec<String>, String> {
    let file = parse_file(source)?;
    let mut out = Vec::new();
    for f in command_fns(&file) {
        if is_command(f)? {
            out.push(f.sig.ident.to_string());
        }
    }
    Ok(out)
}

/// Read every command and the `generate_handler!` list of `source`.
pub fn parse(source: &str) -> Result<CommandsFile, String> {
    let file = parse_file(source)?;
    let mut commands = Vec::new();
    let mut handlers = Vec::new();
    for f in command_fns(&file) {
        if is_command(f)? {
            commands.push(command(f)?);
        }
        handlers.extend(handler_lists(f)?);
    }
    let handler = match handlers.len() {
        1 => handlers.remove(0),
        0 => return Err("no `tauri::generate_handler![…]` list in a top-level fn".into()),
        n => return Err(format!("{n} `generate_handler!` lists: keep one")),
    };
    if commands.is_empty() {
        return Err("no #[tauri::command] fn".into());
    }
    Ok(CommandsFile { commands, handler })
}

fn command(f: &ItemFn) -> Result<Command, String> {
    let name = f.sig.ident.to_string();
    let mut args = Vec::new();
    for input in &f.sig.inputs {
        let FnArg::Typed(pt) = input else {
            return Err(format!("`{name}` takes `self`: a command is a free fn"));
        };
        if let Type::Path(p) = &*pt.ty {
            if last_name(&p.path).is_some_and(|n| INJECTED.contains(&n.as_str())) {
                continue;
            }
        }
        let Pat::Ident(id) = &*pt.pat else {
            return Err(format!(
                "`{name}`: an argument is a pattern; name it (its name is the key the UI sends)"
            ));
        };
        args.push(Arg {
            name: id.ident.to_string(),
            ty: (*pt.ty).clone(),
        });
    }
    let ok = match &f.sig.output {
        ReturnType::Type(_, ty) => res_ok(ty),
        ReturnType::Default => None,
    }
    .ok_or_else(|| {
        format!("`{name}` must return `Res<T>` (the generator reads `T` as what it answers)")
    })?;
    Ok(Command {
        name,
        docs: doc_lines(&f.attrs),
        args,
        ok,
    })
}

/// The `T` of `Res<T>`.
fn res_ok(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if p.qself.is_some() || p.path.segments.len() != 1 || seg.ident != "Res" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(a) = &seg.arguments else {
        return None;
    };
    match a.args.iter().collect::<Vec<_>>().as_slice() {
        [syn::GenericArgument::Type(t)] => Some(t.clone()),
        _ => None,
    }
}

/// The `generate_handler!` lists among `f`'s statements.
fn handler_lists(f: &ItemFn) -> Result<Vec<Vec<String>>, String> {
    let mut out = Vec::new();
    for stmt in &f.block.stmts {
        let mac = match stmt {
            Stmt::Macro(m) => &m.mac,
            Stmt::Expr(Expr::Macro(m), _) => &m.mac,
            _ => continue,
        };
        if last_name(&mac.path).as_deref() != Some("generate_handler") {
            continue;
        }
        let paths = mac
            .parse_body_with(Punctuated::<syn::Path, Token![,]>::parse_terminated)
            .map_err(|e| format!("cannot read the generate_handler! list: {e}"))?;
        out.push(paths.iter().filter_map(last_name).collect());
    }
    Ok(out)
}

/// How `generate_handler!` differs from the command fns: one sentence per difference,
/// none when it lists each command once, in declaration order.
pub fn handler_drift(file: &CommandsFile) -> Vec<String> {
    let fns: Vec<&str> = file.commands.iter().map(|c| c.name.as_str()).collect();
    let listed: Vec<&str> = file.handler.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for f in &fns {
        if !listed.contains(f) {
            out.push(format!(
                "generate_handler! does not list the command `{f}`: add it"
            ));
        }
    }
    for (i, l) in listed.iter().enumerate() {
        if listed[..i].contains(l) {
            out.push(format!("generate_handler! lists `{l}` twice"));
        } else if !fns.contains(l) {
            out.push(format!(
                "generate_handler! lists `{l}`, which is not a #[tauri::command] fn: remove it"
            ));
        }
    }
    if out.is_empty() && fns != listed {
        out.push(format!(
            "generate_handler! lists the commands in another order than they are declared; \
             declared: {}",
            fns.join(", ")
        ));
    }
    out
}

/// The TypeScript reading of an argument's name: Tauri's key for it (`entry_id` is
/// `entryId`), and the generated function's name for a command.
pub fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    for (i, part) in snake.split('_').filter(|p| !p.is_empty()).enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            let mut chars = part.chars();
            if let Some(c) = chars.next() {
                out.extend(c.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"
        type Res<T> = Result<T, AppError>;

        pub fn handler() -> impl Fn(tauri::ipc::Invoke<tauri::Wry>) -> bool {
            tauri::generate_handler![get_order, stop_time_entry]
        }

        /// One order, whole.
        #[tauri::command]
        async fn get_order(shell: State<'_, Shell>, id: String) -> Res<OrderDetail> {
            shell.with(|o| o.order(&id))
        }

        #[tauri::command]
        async fn stop_time_entry(app: AppHandle, id: String, entry_id: String) -> Res<()> {
            Ok(())
        }

        fn helper() {}
    "#;

    #[test]
    fn reads_names_arguments_results_and_the_handler_list() {
        let file = parse(SOURCE).expect("parse");
        assert_eq!(file.handler, ["get_order", "stop_time_entry"]);
        let [get, stop] = file.commands.as_slice() else {
            panic!("two commands expected: {:?}", file.commands);
        };
        assert_eq!(get.name, "get_order");
        assert_eq!(get.docs, ["One order, whole."]);
        assert_eq!(
            get.args.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["id"]
        );
        assert_eq!(type_text(&get.ok), "OrderDetail");
        assert_eq!(
            stop.args
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            ["id", "entry_id"],
            "AppHandle is Tauri's, not the UI's"
        );
        assert_eq!(type_text(&stop.ok), "()");
        assert_eq!(
            command_names(SOURCE).expect("names"),
            ["get_order", "stop_time_entry"]
        );
        assert!(handler_drift(&file).is_empty());
    }

    #[test]
    fn a_command_must_answer_res() {
        let src = r#"
            fn handler() { tauri::generate_handler![a] }
            #[tauri::command]
            async fn a() -> Result<(), String> { Ok(()) }
        "#;
        let e = parse(src).expect_err("not Res");
        assert!(e.contains("`a` must return `Res<T>`"), "{e}");
    }

    #[test]
    fn options_on_the_attribute_are_refused() {
        let src = r#"
            #[tauri::command(rename_all = "snake_case")]
            async fn a(entry_id: String) -> Res<()> { Ok(()) }
        "#;
        let e = command_names(src).expect_err("options");
        assert!(e.contains("options on #[tauri::command]"), "{e}");
    }

    #[test]
    fn handler_drift_names_the_missing_the_extra_and_the_doubled() {
        let src = r#"
            fn handler() { tauri::generate_handler![a, c, c] }
            #[tauri::command] async fn a() -> Res<()> { Ok(()) }
            #[tauri::command] async fn b() -> Res<()> { Ok(()) }
        "#;
        let drift = handler_drift(&parse(src).expect("parse"));
        assert_eq!(
            drift,
            [
                "generate_handler! does not list the command `b`: add it",
                "generate_handler! lists `c`, which is not a #[tauri::command] fn: remove it",
                "generate_handler! lists `c` twice",
            ]
        );
        let src = r#"
            fn handler() { tauri::generate_handler![b, a] }
            #[tauri::command] async fn a() -> Res<()> { Ok(()) }
            #[tauri::command] async fn b() -> Res<()> { Ok(()) }
        "#;
        let drift = handler_drift(&parse(src).expect("parse"));
        assert_eq!(drift.len(), 1);
        assert!(drift[0].contains("another order"), "{drift:?}");
    }

    #[test]
    fn a_file_without_a_handler_list_is_refused() {
        let src = "#[tauri::command] async fn a() -> Res<()> { Ok(()) }";
        let e = parse(src).expect_err("no list");
        assert!(e.contains("generate_handler"), "{e}");
    }

    #[test]
    fn camel_case_is_tauris_key_for_an_argument() {
        assert_eq!(camel_case("entry_id"), "entryId");
        assert_eq!(camel_case("id"), "id");
        assert_eq!(camel_case("start_local_demo"), "startLocalDemo");
        assert_eq!(camel_case("sha256_sum"), "sha256Sum");
    }
}
