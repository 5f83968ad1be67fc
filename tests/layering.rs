//! Dependency rules of the layout (style.md): `mp4` is pure (no other crate module, no async,
//! no I/O), `crypto` knows bytes only, `index` builds on `mp4` alone. Checked by reading the
//! sources, so a forbidden `use` fails the build's tests instead of a review.

use std::path::Path;

fn sources(dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    for e in std::fs::read_dir(&root).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
        }
    }
    assert!(!out.is_empty(), "no sources in {dir}");
    out
}

fn assert_uses_only(dir: &str, allowed: &[&str], forbidden_words: &[&str]) {
    for (path, text) in sources(dir) {
        for line in text.lines() {
            let l = line.trim_start();
            if let Some(rest) = l.strip_prefix("use crate::") {
                let module = rest.split([':', ';', '{']).next().unwrap_or("");
                assert!(module == dir || allowed.contains(&module), "{path}: '{l}' crosses a layer boundary");
            }
            for w in forbidden_words {
                assert!(!l.starts_with("use ") || !l.contains(w), "{path}: '{l}' is not allowed in {dir}");
            }
        }
    }
}

#[test]
fn mp4_is_pure() {
    assert_uses_only("mp4", &[], &["tokio", "hyper", "std::fs", "std::net"]);
}

#[test]
fn crypto_knows_bytes_only() {
    assert_uses_only("crypto", &[], &["tokio", "hyper", "std::fs"]);
}

#[test]
fn index_builds_on_mp4() {
    assert_uses_only("index", &["mp4"], &["tokio", "hyper"]);
}

#[test]
fn only_storage_mmap_is_unsafe() {
    for dir in ["mp4", "index", "packaging", "http", "crypto", "codec", "drm", "storage"] {
        for (path, text) in sources(dir) {
            if path.ends_with("storage/mmap.rs") {
                continue;
            }
            assert!(!text.contains("unsafe {") && !text.contains("allow(unsafe_code)"), "{path} uses unsafe");
        }
    }
}
