//! The config loader (`Config::from_str`) on fuzzed TOML text: never panics, whatever the
//! text; a config that loads goes on to build its route table and its schemas as the
//! gateway does at start (both may refuse it, neither may panic), and its JSON Schema
//! export is stable.
//!
//! Relative paths in the text resolve against an empty temporary directory.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use palisade_gateway::Config;
use palisade_gateway::routes::Router;
use palisade_gateway::validate::Validation;

fn config_path() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("palisade.toml");
        (dir, path)
    })
    .1
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = config_path();
    match Config::from_str(text, path) {
        Ok(config) => {
            let _ = Router::build(&config.routes);
            let _ = Validation::build(&config);
        }
        Err(error) => {
            // The message must render (it quotes lines of the text).
            let _ = error.to_string();
        }
    }
});
