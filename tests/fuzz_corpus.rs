//! Replays the fuzz corpus (tests/fuzz/corpus/<target>/*) through the
//! same harness the cargo-fuzz targets run, so every input that once
//! found a bug, and every seed, is checked by `cargo test`.

#[path = "fuzz/harness.rs"]
mod harness;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    for f in files {
        let data = std::fs::read(&f).expect("corpus file");
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "corpus input {} fails", f.display());
    }
}

#[test]
fn decode_corpus() {
    replay("decode", harness::decode_input);
}

#[test]
fn execute_corpus() {
    replay("execute", harness::execute_input);
}
