//! Mechanical rules of the codebase, checked like any other test.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != "node_modules" && !name.to_string_lossy().starts_with('.') {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_doc_line_saying_what_it_is_for() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    assert!(files.len() > 20);
    let missing: Vec<_> = files.iter().filter(|f| !std::fs::read_to_string(f).unwrap_or_default().starts_with("//! ")).collect();
    assert!(missing.is_empty(), "files without a leading //! line: {missing:?}");
}

#[test]
fn every_crate_has_a_readme_stating_its_job_and_a_place_in_the_architecture() {
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for entry in std::fs::read_dir(root().join("crates")).expect("crates").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(name.starts_with("pbi-"), "crate folders are named pbi-*: {name}");
        let readme = std::fs::read_to_string(entry.path().join("README.md")).unwrap_or_default();
        let first = readme.lines().next().unwrap_or_default();
        assert!(first.len() > 20 && !first.starts_with('#'), "{name}/README.md must open with a sentence stating the crate's job");
        assert!(architecture.contains(&format!("### `crates/{name}`")), "ARCHITECTURE.md has no section for {name}");
        let manifest = std::fs::read_to_string(entry.path().join("Cargo.toml")).expect("Cargo.toml");
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}: folder name = crate name");
    }
}
