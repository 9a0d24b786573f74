//! Reads `src-tauri/src/events.rs`, the one place the shell's events are declared: every
//! top-level `const NAME: Event<P> = Event::new("name");` is an event the UI may listen
//! to, `P` its payload.
//!
//! Left out on purpose: names built at run time (the generator needs a literal) and
//! declarations elsewhere; both are refused or not seen, so keep them in that file.

use syn::{Expr, Item, ItemConst, Lit, Type};

use super::rust::{doc_lines, last_name, type_text};

/// One event, as declared.
#[derive(Clone)]
pub struct Event {
    /// The Rust constant (`SYNC_STATUS`); the UI's listener is its camelCase.
    pub const_name: String,
    /// The name on the wire (`sync-status`).
    pub name: String,
    pub docs: Vec<String>,
    pub payload: Type,
}

// By hand: `syn`'s types have no `Debug` without a feature the build would not share.
impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:?}): {}",
            self.const_name,
            self.name,
            type_text(&self.payload)
        )
    }
}

/// Every event declared in `source` (the text of `events.rs`), in order.
pub fn parse(source: &str) -> Result<Vec<Event>, String> {
    let file = syn::parse_file(source).map_err(|e| format!("cannot parse: {e}"))?;
    let mut out: Vec<Event> = Vec::new();
    for item in &file.items {
        let Item::Const(c) = item else { continue };
        let Some(payload) = event_payload(&c.ty) else {
            continue;
        };
        let name = literal_name(c)?;
        if let Some(other) = out.iter().find(|e| e.name == name) {
            return Err(format!(
                "`{}` and `{}` are both the event {name:?}",
                other.const_name, c.ident
            ));
        }
        out.push(Event {
            const_name: c.ident.to_string(),
            name,
            docs: doc_lines(&c.attrs),
            payload,
        });
    }
    if out.is_empty() {
        return Err("no `const …: Event<…> = Event::new(\"…\")` declaration".into());
    }
    Ok(out)
}

/// The `P` of `Event<P>`.
fn event_payload(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    if last_name(&p.path).as_deref() != Some("Event") {
        return None;
    }
    let syn::PathArguments::AngleBracketed(a) = &p.path.segments.last()?.arguments else {
        return None;
    };
    match a.args.iter().collect::<Vec<_>>().as_slice() {
        [syn::GenericArgument::Type(t)] => Some(t.clone()),
        _ => None,
    }
}

/// The name in `Event::new("name")`.
fn literal_name(c: &ItemConst) -> Result<String, String> {
    let refused = || {
        format!(
            "`{}`: declare it as `Event::new(\"event-name\")` with the name written out",
            c.ident
        )
    };
    let Expr::Call(call) = &*c.expr else {
        return Err(refused());
    };
    let Expr::Path(f) = &*call.func else {
        return Err(refused());
    };
    if last_name(&f.path).as_deref() != Some("new") || call.args.len() != 1 {
        return Err(refused());
    }
    match call.args.first() {
        Some(Expr::Lit(l)) => match &l.lit {
            Lit::Str(s) => Ok(s.value()),
            _ => Err(refused()),
        },
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_declared_event_and_skips_other_constants() {
        let src = r#"
            pub struct Event<P: ?Sized> { name: &'static str, payload: PhantomData<fn(&P)> }
            /// The engine's status, on every change.
            pub const SYNC_STATUS: Event<EngineStatusView> = Event::new("sync-status");
            pub const ORDERS_CHANGED: Event<str> = Event::new("orders-changed");
            const FIRST_CHECK_DELAY: Duration = Duration::from_secs(20);
        "#;
        let events = parse(src).expect("parse");
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.const_name.as_str(),
                    e.name.as_str(),
                    type_text(&e.payload),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("SYNC_STATUS", "sync-status", "EngineStatusView".to_owned()),
                ("ORDERS_CHANGED", "orders-changed", "str".to_owned()),
            ]
        );
        assert_eq!(events[0].docs, ["The engine's status, on every change."]);
    }

    #[test]
    fn a_name_must_be_written_out_once() {
        let e = parse(r#"const A: Event<()> = Event::new(NAME);"#).expect_err("not literal");
        assert!(e.contains("`A`: declare it as"), "{e}");
        let e =
            parse(r#"const A: Event<()> = Event::new("x"); const B: Event<()> = Event::new("x");"#)
                .expect_err("twice");
        assert!(e.contains("`A` and `B` are both the event \"x\""), "{e}");
    }
}
