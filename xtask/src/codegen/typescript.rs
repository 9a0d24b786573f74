//! Writes the UI's typed bindings: `commands.ts` (one function per command, arguments and
//! answer typed) and `events.ts` (one listener per event, payload typed), both over an
//! `invoke`/`listen` the UI passes in, so that the generated code depends on nothing and
//! `ui/src/lib/ipc.ts` keeps its error handling.
//!
//! Rust types are read by name: the few that TypeScript has (strings, booleans, numbers
//! up to 32 bits), `Option`, `Vec`, and otherwise a type that ts-rs exported into
//! `ui/src/generated/` (imported from there). Left out on purpose: 64-bit integers (a
//! JSON number loses precision past 2^53, and ts-rs makes them `bigint`), maps, tuples
//! and generic types of our own: the generator refuses them with a message, and a view
//! type in `outpost-core` is the way to send them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use syn::{GenericArgument, PathArguments, Type};

use super::commands::{camel_case, Command};
use super::events::Event;
use super::rust::type_text;

/// Where a type appears, which decides what `()` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Sent by the UI: `()` makes no sense there.
    Argument,
    /// A command's answer: `()` is `void`.
    Answer,
    /// An event's payload: `()` arrives as `null`.
    Payload,
}

/// The ts-rs types a module imports, each with its first user (for the message when its
/// file is missing).
pub type Imports = BTreeMap<String, String>;

/// Words JavaScript reserves: an argument with one of these names cannot be a parameter.
const RESERVED: &[&str] = &[
    "arguments",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "eval",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

/// The TypeScript of `ty`; `user` names where it is used, for messages and imports.
pub fn ts_type(
    ty: &Type,
    place: Place,
    user: &str,
    imports: &mut Imports,
) -> Result<String, String> {
    let refuse = |why: &str| format!("{user}: `{}` {why}", type_text(ty));
    match ty {
        Type::Reference(r) => ts_type(&r.elem, place, user, imports),
        Type::Paren(p) => ts_type(&p.elem, place, user, imports),
        Type::Tuple(t) if t.elems.is_empty() => match place {
            Place::Answer => Ok("void".into()),
            Place::Payload => Ok("null".into()),
            Place::Argument => Err(refuse("is not something the UI can send")),
        },
        Type::Path(p) if p.qself.is_none() => {
            let Some(seg) = p.path.segments.last() else {
                return Err(refuse("is an empty path"));
            };
            let name = seg.ident.to_string();
            let args: Vec<&Type> = match &seg.arguments {
                PathArguments::None => Vec::new(),
                PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .filter_map(|g| match g {
                        GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                PathArguments::Parenthesized(_) => {
                    return Err(refuse("is a function type"));
                }
            };
            match (name.as_str(), args.as_slice()) {
                ("String" | "str", []) => Ok("string".into()),
                ("bool", []) => Ok("boolean".into()),
                ("u8" | "u16" | "u32" | "i8" | "i16" | "i32" | "f32" | "f64", []) => {
                    Ok("number".into())
                }
                ("u64" | "i64" | "u128" | "i128" | "usize" | "isize", []) => Err(refuse(
                    "does not fit a JSON number: use u32, or a view type in outpost-core",
                )),
                // Inside `Option` or `Vec`, `()` is never meant: read as an argument.
                ("Option", [inner]) => {
                    let inner = ts_type(inner, Place::Argument, user, imports)?;
                    Ok(format!("{inner} | null"))
                }
                ("Vec", [inner]) => {
                    let inner = ts_type(inner, Place::Argument, user, imports)?;
                    Ok(if inner.contains(' ') {
                        format!("({inner})[]")
                    } else {
                        format!("{inner}[]")
                    })
                }
                (_, []) if name.starts_with(|c: char| c.is_ascii_uppercase()) => {
                    imports
                        .entry(name.clone())
                        .or_insert_with(|| user.to_owned());
                    Ok(name)
                }
                _ => Err(refuse(
                    "is not a type the generator knows: use a view type in outpost-core \
                     (derive ts_rs::TS) instead",
                )),
            }
        }
        _ => Err(refuse("is not a type the generator knows")),
    }
}

/// A `/** … */` comment from doc lines, indented by `indent` spaces.
fn jsdoc(out: &mut String, docs: &[String], indent: usize) {
    if docs.iter().all(|l| l.trim().is_empty()) {
        return;
    }
    let pad = " ".repeat(indent);
    let _ = writeln!(out, "{pad}/**");
    for line in docs {
        let line = line.replace("*/", "*\\/");
        if line.is_empty() {
            let _ = writeln!(out, "{pad} *");
        } else {
            let _ = writeln!(out, "{pad} * {line}");
        }
    }
    let _ = writeln!(out, "{pad} */");
}

fn header(out: &mut String, source: &str) {
    let _ = writeln!(
        out,
        "// Generated by `cargo xtask codegen` from {source}: do not edit.\n\
         // Change the declarations there and run it again (`cargo test -p outpost-xtask`\n\
         // fails while this file is out of step)."
    );
}

fn import_lines(out: &mut String, imports: &Imports) {
    for name in imports.keys() {
        let _ = writeln!(out, "import type {{ {name} }} from '../{name}';");
    }
    if !imports.is_empty() {
        out.push('\n');
    }
}

/// A generated module's start: the header, its imports, and the union of the names it
/// binds (`declaration` is the doc comment and `export type X =`).
fn module_head(
    source: &str,
    imports: &Imports,
    declaration: &str,
    names: impl Iterator<Item = String>,
) -> String {
    let mut out = String::new();
    header(&mut out, source);
    import_lines(&mut out, imports);
    out.push_str(declaration);
    union(&mut out, names);
    out
}

fn union(out: &mut String, names: impl Iterator<Item = String>) {
    for n in names {
        let _ = write!(out, "\n  | '{n}'");
    }
    out.push_str(";\n");
}

/// `commands.ts` for `commands` (declared in `source`), with the ts-rs types it imports.
pub fn commands_module(commands: &[Command], source: &str) -> Result<(String, Imports), String> {
    let mut imports = Imports::new();
    let mut body = String::new();
    for c in commands {
        let mut params = Vec::new();
        let mut keys = Vec::new();
        for a in &c.args {
            let user = format!("command `{}`, argument `{}`", c.name, a.name);
            let key = camel_case(&a.name);
            if RESERVED.contains(&key.as_str()) {
                return Err(format!(
                    "{user}: `{key}` is a reserved word in TypeScript; rename it"
                ));
            }
            let ty = ts_type(&a.ty, Place::Argument, &user, &mut imports)?;
            params.push(format!("{key}: {ty}"));
            keys.push(key);
        }
        let answer = ts_type(
            &c.ok,
            Place::Answer,
            &format!("command `{}`, answer", c.name),
            &mut imports,
        )?;
        let args = if keys.is_empty() {
            String::new()
        } else {
            format!(", {{ {} }}", keys.join(", "))
        };
        jsdoc(&mut body, &c.docs, 4);
        let _ = writeln!(
            body,
            "    {}: ({}) =>\n      invoke<{answer}>('{}'{args}),",
            camel_case(&c.name),
            params.join(", "),
            c.name,
        );
    }

    let mut out = module_head(
        source,
        &imports,
        "/** Every command the shell registers, by the name Tauri's `invoke` takes. */\nexport type CommandName =",
        commands.iter().map(|c| c.name.clone()),
    );
    out.push_str(
        "\n/**\n \
         * How a command reaches the shell: `ui/src/lib/ipc.ts` passes its wrapper over\n \
         * Tauri's `invoke`; the keys of `args` are the Rust argument names in camelCase,\n \
         * as Tauri expects them.\n \
         */\n\
         export type Invoke = <T>(command: CommandName, args?: Record<string, unknown>) => Promise<T>;\n\
         \n\
         /** One function per command: its arguments in declaration order, its answer typed. */\n\
         export function bindCommands(invoke: Invoke) {\n  return {\n",
    );
    out.push_str(&body);
    out.push_str("  };\n}\n\n/** The bound commands. */\nexport type Commands = ReturnType<typeof bindCommands>;\n");
    Ok((out, imports))
}

/// `events.ts` for `events` (declared in `source`), with the ts-rs types it imports.
pub fn events_module(events: &[Event], source: &str) -> Result<(String, Imports), String> {
    let mut imports = Imports::new();
    let mut body = String::new();
    for e in events {
        let user = format!("event `{}`, payload", e.const_name);
        let payload = ts_type(&e.payload, Place::Payload, &user, &mut imports)?;
        jsdoc(&mut body, &e.docs, 4);
        let _ = writeln!(
            body,
            "    {}: (handler: (payload: {payload}) => void) =>\n      listen<{payload}>('{}', handler),",
            camel_case(&e.const_name.to_ascii_lowercase()),
            e.name,
        );
    }

    let mut out = module_head(
        source,
        &imports,
        "/** Every event the shell sends, by the name Tauri's `listen` takes. */\nexport type EventName =",
        events.iter().map(|e| e.name.clone()),
    );
    out.push_str(
        "\n/**\n \
         * How a listener is attached: `ui/src/lib/ipc.ts` passes its wrapper over Tauri's\n \
         * `listen`; the promise gives the function that detaches it.\n \
         */\n\
         export type Listen = <P>(event: EventName, handler: (payload: P) => void) => Promise<() => void>;\n\
         \n\
         /** One function per event, its payload typed. */\n\
         export function bindEvents(listen: Listen) {\n  return {\n",
    );
    out.push_str(&body);
    out.push_str("  };\n}\n\n/** The bound listeners. */\nexport type Events = ReturnType<typeof bindEvents>;\n");
    Ok((out, imports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ty: Type, place: Place) -> Result<String, String> {
        ts_type(&ty, place, "here", &mut Imports::new())
    }

    #[test]
    fn rust_types_read_as_typescript() {
        let mut imports = Imports::new();
        let t: Type = syn::parse_quote!(Option<Vec<FixInput>>);
        assert_eq!(
            ts_type(&t, Place::Argument, "cmd `a`", &mut imports).as_deref(),
            Ok("FixInput[] | null")
        );
        assert_eq!(imports.get("FixInput").map(String::as_str), Some("cmd `a`"));
        assert_eq!(
            ts(syn::parse_quote!(Vec<Option<u32>>), Place::Answer).as_deref(),
            Ok("(number | null)[]")
        );
        assert_eq!(
            ts(syn::parse_quote!(&str), Place::Payload).as_deref(),
            Ok("string")
        );
        assert_eq!(
            ts(syn::parse_quote!(()), Place::Answer).as_deref(),
            Ok("void")
        );
        assert_eq!(
            ts(syn::parse_quote!(()), Place::Payload).as_deref(),
            Ok("null")
        );
        assert_eq!(
            ts(syn::parse_quote!(bool), Place::Argument).as_deref(),
            Ok("boolean")
        );
    }

    #[test]
    fn what_does_not_cross_cleanly_is_refused_with_its_place() {
        let e = ts(syn::parse_quote!(u64), Place::Argument).expect_err("u64");
        assert!(
            e.starts_with("here: `u64` does not fit a JSON number"),
            "{e}"
        );
        let e = ts(syn::parse_quote!(HashMap<String, u32>), Place::Answer).expect_err("map");
        assert!(
            e.contains("`HashMap<String, u32>` is not a type the generator knows"),
            "{e}"
        );
        let e = ts(syn::parse_quote!(()), Place::Argument).expect_err("unit");
        assert!(e.contains("not something the UI can send"), "{e}");
    }

    #[test]
    fn the_commands_module_has_one_typed_function_per_command() {
        let file = super::super::commands::parse(
            r#"
            fn handler() { tauri::generate_handler![stop_time_entry, quit_app] }
            /// Stop the running timer.
            #[tauri::command]
            async fn stop_time_entry(shell: State<'_, Shell>, id: String, entry_id: String) -> Res<OrderDetail> { todo!() }
            #[tauri::command]
            async fn quit_app(app: AppHandle) -> Res<()> { Ok(()) }
            "#,
        )
        .expect("parse");
        let (text, imports) = commands_module(&file.commands, "commands.rs").expect("render");
        assert_eq!(imports.keys().collect::<Vec<_>>(), ["OrderDetail"]);
        assert!(
            text.contains("import type { OrderDetail } from '../OrderDetail';\n"),
            "{text}"
        );
        assert!(
            text.contains("export type CommandName =\n  | 'stop_time_entry'\n  | 'quit_app';\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "    /**\n     * Stop the running timer.\n     */\n    stopTimeEntry: (id: string, entryId: string) =>\n      invoke<OrderDetail>('stop_time_entry', { id, entryId }),\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("    quitApp: () =>\n      invoke<void>('quit_app'),\n"),
            "{text}"
        );
    }

    #[test]
    fn a_reserved_word_cannot_be_an_argument() {
        let file = super::super::commands::parse(
            r#"
            fn handler() { tauri::generate_handler![a] }
            #[tauri::command] async fn a(default: String) -> Res<()> { Ok(()) }
            "#,
        )
        .expect("parse");
        let e = commands_module(&file.commands, "commands.rs").expect_err("reserved");
        assert!(
            e.contains("argument `default`: `default` is a reserved word"),
            "{e}"
        );
    }

    #[test]
    fn the_events_module_has_one_typed_listener_per_event() {
        let events = super::super::events::parse(
            r#"
            pub const ORDERS_CHANGED: Event<str> = Event::new("orders-changed");
            pub const CLOSE_REQUESTED: Event<()> = Event::new("close-requested");
            "#,
        )
        .expect("parse");
        let (text, imports) = events_module(&events, "events.rs").expect("render");
        assert!(imports.is_empty());
        assert!(
            text.contains("    ordersChanged: (handler: (payload: string) => void) =>\n      listen<string>('orders-changed', handler),\n"),
            "{text}"
        );
        assert!(
            text.contains("    closeRequested: (handler: (payload: null) => void) =>"),
            "{text}"
        );
        assert!(
            text.contains(
                "export type EventName =\n  | 'orders-changed'\n  | 'close-requested';\n"
            ),
            "{text}"
        );
    }
}
