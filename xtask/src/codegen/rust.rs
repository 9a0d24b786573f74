//! Small readers over `syn`'s tree shared by the command and event readers: doc
//! comments, a path's last name, a type as source text for messages.

use quote::ToTokens;
use syn::{Attribute, Expr, Lit, Meta, Path, Type};

/// The `///` lines of an item, without the one space after `///`.
pub fn doc_lines(attrs: &[Attribute]) -> Vec<String> {
    let mut out = Vec::new();
    for a in attrs {
        let Meta::NameValue(nv) = &a.meta else {
            continue;
        };
        if !nv.path.is_ident("doc") {
            continue;
        }
        if let Expr::Lit(lit) = &nv.value {
            if let Lit::Str(s) = &lit.lit {
                let text = s.value();
                for line in text.split('\n') {
                    out.push(line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned());
                }
            }
        }
    }
    out
}

/// The last name of a path (`State` for `tauri::State<'_, Shell>`).
pub fn last_name(path: &Path) -> Option<String> {
    path.segments.last().map(|s| s.ident.to_string())
}

/// Whether `path` is exactly `a::b::…` (no generic arguments considered).
pub fn path_is(path: &Path, names: &[&str]) -> bool {
    path.leading_colon.is_none()
        && path.segments.len() == names.len()
        && path.segments.iter().zip(names).all(|(s, n)| s.ident == n)
}

/// A type as source text, for messages (`Vec<FixInput>`).
pub fn type_text(ty: &Type) -> String {
    ty.to_token_stream()
        .to_string()
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_lines_drop_the_space_after_the_slashes() {
        let f: syn::ItemFn = syn::parse_quote! {
            /// One page of orders.
            ///
            ///   Indented stays indented.
            fn f() {}
        };
        assert_eq!(
            doc_lines(&f.attrs),
            ["One page of orders.", "", "  Indented stays indented."]
        );
    }

    #[test]
    fn type_text_reads_like_source() {
        let t: Type = syn::parse_quote!(Option<Vec<&str>>);
        assert_eq!(type_text(&t), "Option<Vec<&str>>");
        let t: Type = syn::parse_quote!(State<'_, Shell>);
        assert_eq!(type_text(&t), "State<'_, Shell>");
    }
}
