//! Checks the crate itself: it stays sans-IO and documented.

use std::path::Path;

#[test]
fn manifest_names_no_io_crates() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for forbidden in ["tokio", "quinn", "rusqlite", "rustls"] {
        assert!(!manifest.contains(forbidden), "sync-protocol must not depend on {forbidden}: it does no I/O");
    }
}

#[test]
fn every_module_starts_with_a_doc_comment() {
    let mut folders = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut files = 0;
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("//!"), "{} must start with a //! module doc", path.display());
            files += 1;
        }
    }
    assert!(files > 5, "the walk found the crate's modules ({files})");
}
