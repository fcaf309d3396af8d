//! Every config under `examples/` loads: users copy them, and CI runs `palisade check` on them.
//!
//! The examples reference secrets as `${env:NAME}`, which must be set for a load to succeed.
//! Edition 2024 makes `std::env::set_var` unsafe and the workspace forbids unsafe code, so
//! the test re-runs itself as a child process with those variables set.

use std::path::{Path, PathBuf};
use std::process::Command;

use palisade_gateway::Config;

/// Set in the child run; its presence means "the variables are set, load the files".
const CHILD: &str = "PALISADE_EXAMPLES_LOAD_CHILD";

#[test]
fn every_example_loads() {
    let files = example_files();
    assert!(
        files.len() >= 2,
        "expected at least 2 configs in examples/, found {files:?}"
    );

    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe);
        child.args([
            "--exact",
            "every_example_loads",
            "--nocapture",
            "--test-threads=1",
        ]);
        child.env(CHILD, "1");
        for name in env_references(&files) {
            child.env(&name, sample_value(&name));
        }
        let out = child.output().expect("re-running the test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "child run failed:\n{stdout}\n{stderr}"
        );
        // A filter that matched nothing would also succeed: make sure the test ran.
        assert!(
            stdout.contains("1 passed"),
            "child run did not run the test:\n{stdout}"
        );
        return;
    }

    let mut failures = Vec::new();
    for file in &files {
        match Config::load(file) {
            Ok(_) => println!("loaded {}", file.display()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "examples that do not load:\n{}",
        failures.join("\n")
    );
}

/// Every `*.toml` under the workspace's `examples/`, recursively, sorted.
fn example_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "toml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The `NAME`s of every `${env:NAME}` in `files`.
fn env_references(files: &[PathBuf]) -> Vec<String> {
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("an example is readable");
        for (at, _) in text.match_indices("${env:") {
            // `$${env:…}` is an escaped literal, not a reference.
            if text[..at].ends_with('$') {
                continue;
            }
            let rest = &text[at + "${env:".len()..];
            if let Some(end) = rest.find('}') {
                names.push(rest[..end].to_owned());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// A plausible value for a variable: URLs for names that say URL, otherwise a token.
fn sample_value(name: &str) -> String {
    if name.contains("URL") || name.contains("WEBHOOK") {
        "http://127.0.0.1:9/example".to_owned()
    } else {
        format!("example-{}-0123456789abcdef", name.to_ascii_lowercase())
    }
}
