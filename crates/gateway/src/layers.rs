//! The gateway's modules in layers that only point down, and the test that keeps them so.
//!
//! `docs/architecture.md` draws the same table. A module may name any module of a lower
//! layer. Within a layer it may name only what [`SIDEWAYS`] lists: in the controls' layer
//! that is another control's *output type* (`Principal`, `Permit`), never its internals,
//! so a change inside one control cannot ripple into another.
//!
//! The test reads every `crate::…` path of `src/` outside comments and test modules.

/// Lowest first.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "L0 data and leaves",
        &[
            "path",
            "body",
            "json",
            "workers",
            "quota",
            "config",
            "headers",
            "rejection",
        ],
    ),
    ("L1 request context and observation", &["ctx", "observe"]),
    (
        "L2 controls",
        &[
            "tls",
            "routes",
            "limits",
            "authn",
            "authz",
            "ratelimit",
            "validate",
            "proxy",
        ],
    ),
    ("L3 rescue and pipeline", &["rescue", "pipeline"]),
    ("L4 process", &["running", "park", "admin", "server"]),
];

/// The imports allowed within one layer: (importing module, path prefix it may name).
const SIDEWAYS: &[(&str, &str)] = &[
    // L0: configuration is data built from leaves.
    ("config", "json"),
    ("headers", "config"),
    ("rejection", "path"),
    ("rejection", "quota"),
    // L1
    ("observe", "ctx"),
    // L2: output types only.
    ("authz", "authn::Principal"),
    ("ratelimit", "authn::Principal"),
    ("proxy", "authn::Principal"),
    ("proxy", "authz::Permit"),
    // L3
    ("pipeline", "rescue"),
    // L4
    ("server", "running"),
    ("server", "park"),
    ("server", "admin"),
    ("admin", "running"),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The source without comments and without its inline `#[cfg(test)] mod … {` block (by
/// convention the last item of a file; `mod tests;` in a file of its own is skipped
/// by name).
fn production_code(text: &str) -> String {
    let test_module = text
        .match_indices("#[cfg(test)]\nmod ")
        .find(|(at, found)| {
            let rest = &text[at + found.len()..];
            let name_end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest[name_end..].starts_with(" {")
        });
    let text = match test_module {
        Some((at, _)) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            // `//` inside a string literal (a URL) would cut too much; crate paths never
            // appear after one on the same line in this code base.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b::C` path in `code`, as `a::b::C`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        out.push(rest[..end].trim_end_matches(':').to_owned());
    }
    out
}

/// Whether `module` may name `crate::{path}`.
fn allowed(module: &str, path: &str) -> Result<(), String> {
    let target = path.split("::").next().unwrap_or("");
    if target == module {
        return Ok(());
    }
    let own =
        layer_of(module).ok_or_else(|| format!("{module} is in no layer (add it to LAYERS)"))?;
    let theirs = layer_of(target).ok_or_else(|| format!("`crate::{path}` is in no layer"))?;
    let sideways = SIDEWAYS.iter().any(|(from, prefix)| {
        *from == module && (path == *prefix || path.starts_with(&format!("{prefix}::")))
    });
    if theirs < own || (theirs == own && sideways) {
        return Ok(());
    }
    Err(format!(
        "`crate::{path}` ({}) from {module} ({})",
        LAYERS[theirs].0, LAYERS[own].0
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_module_has_a_layer_and_imports_only_downward() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut wrong = Vec::new();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap();
            let first = relative.iter().next().unwrap().to_str().unwrap();
            let module = first.trim_end_matches(".rs");
            if matches!(module, "lib" | "layers") {
                continue;
            }
            let code = production_code(&std::fs::read_to_string(&file).unwrap());
            for path in crate_paths(&code) {
                if let Err(why) = allowed(module, &path) {
                    wrong.push(format!("{}: {why}", relative.display()));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "imports that point up or sideways:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn the_reader_finds_paths_and_skips_comments_and_tests() {
        let code = production_code(
            "use crate::authn::Principal; // crate::server\n\
             let x = $crate::observe::y; crate::a::b(crate::c);\n\
             #[cfg(test)]\nmod tests;\nuse crate::d;\n\
             #[cfg(test)]\nmod tests { use crate::server; }",
        );
        assert_eq!(crate_paths(&code), ["authn::Principal", "a::b", "c", "d"]);
    }

    #[test]
    fn upward_and_sideways_imports_are_refused() {
        assert!(allowed("config", "pipeline::Pipeline").is_err());
        assert!(allowed("ctx", "ratelimit::RateLimiter").is_err());
        assert!(allowed("proxy", "authz::inspect::response").is_err());
        assert!(allowed("authn", "authz::Permit").is_err());
        assert!(allowed("nowhere", "config").is_err());
        assert!(allowed("pipeline", "nowhere::X").is_err());
        assert!(allowed("proxy", "authz::Permit").is_ok());
        assert!(allowed("pipeline", "config::Config").is_ok());
        assert!(allowed("authz", "authz::inspect").is_ok());
    }
}
