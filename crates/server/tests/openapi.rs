//! The checked-in `docs/openapi.json` must be what the code generates (the routes'
//! `#[utoipa::path]` attributes, the wire types' schemas, `src/openapi.rs`).
//! Regenerate with `OUTPOST_UPDATE_OPENAPI=1 cargo test -p outpost-server --test openapi`.

#[test]
fn the_checked_in_openapi_document_is_current() {
    let path = std::path::Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../docs/openapi.json");
    let doc = outpost_server::openapi::document().expect("the document builds");
    let generated = serde_json::to_string_pretty(&doc).expect("json") + "\n";
    if std::env::var("OUTPOST_UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == generated,
        "docs/openapi.json is stale: run OUTPOST_UPDATE_OPENAPI=1 cargo test -p outpost-server --test openapi"
    );
}
