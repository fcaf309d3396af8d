//! The documentation is checked like the code: README.md and `docs/*.md`.
//!
//! - `docs/config-reference.md`'s table is generated from the config types' JSON Schema
//!   (`palisade config schema`); the test fails when the two drift apart. Regenerate it with
//!   `PALISADE_BLESS=1 cargo test -p palisade --test it docs::`.
//! - Every ```` ```toml ```` snippet loads through the real binary (`palisade check -c FILE`:
//!   exit 0 or 1 is "loads", exit 2 is "does not load"). The convention for fragments, files
//!   and skipped snippets is in `docs/README.md` ("Config snippets in these pages").
//! - The README stays a front door: at most [`README_MAX_LINES`] lines, with the two
//!   commands.
//! - Every relative link points to an existing file, and every `#anchor` to a heading.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use palisade_testkit::secrets::checked_output;
use serde_json::Value;

const START: &str = "<!-- config-reference:start -->";
const END: &str = "<!-- config-reference:end -->";

/// The README is the front door; the manual is in `docs/`.
const README_MAX_LINES: usize = 200;

/// The README's two commands, each with its one-line explanation, exactly as shown.
const TWO_COMMANDS: [&str; 2] = [
    "cargo run --release -- demo     # gateway + sample API on localhost, prints a guided tour",
    "scripts/test                    # installs missing test dependencies, runs the whole suite",
];

/// Marks the snippet whose fence follows on the next line as not loadable on purpose.
const NOT_CHECKED: &str = "<!-- not-checked:";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config_reference_path() -> PathBuf {
    repo_root().join("docs/config-reference.md")
}

/// README.md and every `docs/*.md`, as (path relative to the root, text), sorted.
fn markdown_files() -> Vec<(String, String)> {
    let root = repo_root();
    let mut names = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.expect("a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    names.extend(docs);
    names
        .into_iter()
        .map(|name| {
            let text =
                std::fs::read_to_string(root.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, text)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The generated configuration reference.
// ---------------------------------------------------------------------------------------

/// Follows a local `$ref` into `$defs`, also through an optional (`anyOf [T, null]`).
fn resolve<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    if let Some(variants) = node["anyOf"].as_array() {
        let present: Vec<&Value> = variants.iter().filter(|v| v["type"] != "null").collect();
        if let [only] = present[..] {
            return resolve(schema, only);
        }
    }
    match node["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/$defs/");
            &schema["$defs"][name]
        }
        None => node,
    }
}

fn type_name(schema: &Value, node: &Value) -> String {
    if let Some(reference) = node["$ref"].as_str() {
        let name = reference.trim_start_matches("#/$defs/");
        if let Some(choices) = schema["$defs"][name]["enum"].as_array() {
            return (choices.iter())
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(" or ");
        }
        return match name {
            "Duration" => "duration".into(),
            "ByteSize" => "size".into(),
            other => format!("table ({other})"),
        };
    }
    if let Some(variants) = node["anyOf"].as_array() {
        let named: Vec<String> = variants
            .iter()
            .filter(|v| v["type"] != "null")
            .map(|v| type_name(schema, v))
            .collect();
        return named.join(" or ");
    }
    let types: Vec<&str> = match &node["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => vec![],
    };
    types
        .iter()
        .map(|t| match *t {
            "array" => format!("array of {}", type_name(schema, &node["items"])),
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// One row per key, and a recursion into every nested table.
fn rows(schema: &Value, table: &Value, prefix: &str, out: &mut Vec<String>) {
    let table = resolve(schema, table);
    let required: Vec<&str> = table["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = table["properties"].as_object() else {
        return;
    };
    for (name, property) in properties {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let target = resolve(schema, property);
        let nested_object = target["type"] == "object" && target.get("properties").is_some();
        let items = resolve(schema, &property["items"]);
        let array_of_tables = property["type"] == "array" && items.get("properties").is_some();
        let default = match &property["default"] {
            Value::Null if required.contains(&name.as_str()) => "required".to_owned(),
            Value::Null => "—".to_owned(),
            value => format!("`{value}`"),
        };
        let kind = if nested_object {
            "table".to_owned()
        } else if array_of_tables {
            "array of tables".to_owned()
        } else {
            type_name(schema, property)
        };
        let description = property["description"]
            .as_str()
            .or(target["description"].as_str())
            .unwrap_or("");
        let shown = if array_of_tables {
            format!("[[{key}]]")
        } else if nested_object {
            format!("[{key}]")
        } else {
            key.clone()
        };
        out.push(format!(
            "| `{shown}` | {kind} | {default} | {} |",
            one_line(description)
        ));
        if nested_object {
            rows(schema, target, &key, out);
        } else if array_of_tables {
            rows(schema, items, &format!("{key}[]"), out);
        }
    }
}

fn generated_reference() -> String {
    let output =
        checked_output(Command::new(env!("CARGO_BIN_EXE_palisade")).args(["config", "schema"]));
    let schema: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut out = vec![
        "| key | type | default | meaning |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    rows(&schema, &schema, "", &mut out);
    out.join("\n")
}

#[test]
fn config_reference_matches_the_config_types() {
    let path = config_reference_path();
    let page = std::fs::read_to_string(&path).unwrap();
    let expected = generated_reference();
    let (before, rest) = page
        .split_once(START)
        .expect("docs/config-reference.md has the reference start marker");
    let (current, after) = rest
        .split_once(END)
        .expect("docs/config-reference.md has the reference end marker");
    if current.trim() == expected.trim() {
        return;
    }
    if std::env::var_os("PALISADE_BLESS").is_some() {
        std::fs::write(&path, format!("{before}{START}\n{expected}\n{END}{after}")).unwrap();
        return;
    }
    panic!(
        "docs/config-reference.md is out of date; run\n  PALISADE_BLESS=1 cargo test -p palisade --test it docs::\nexpected:\n{expected}"
    );
}

// ---------------------------------------------------------------------------------------
// The README as a front door.
// ---------------------------------------------------------------------------------------

#[test]
fn readme_is_short_and_shows_the_two_commands() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, at most {README_MAX_LINES}: move detail to docs/"
    );
    for command in TWO_COMMANDS {
        assert!(
            readme.lines().any(|line| line == command),
            "README.md must show, on a line of its own:\n{command}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Every ```toml snippet loads.
// ---------------------------------------------------------------------------------------

/// A ```toml block: where it is, and its text with the fence's indentation removed.
struct Snippet {
    file: String,
    /// 1-based line of the opening fence; the snippet's line `n` is `fence + n`.
    fence: usize,
    text: String,
    /// The reason given by a `<!-- not-checked: … -->` right above the fence.
    not_checked: Option<String>,
}

fn toml_snippets(file: &str, text: &str) -> Vec<Snippet> {
    let lines: Vec<&str> = text.lines().collect();
    let mut snippets = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let trimmed = lines[at].trim_start();
        if !trimmed.starts_with("```") {
            at += 1;
            continue;
        }
        let indent = lines[at].len() - trimmed.len();
        let is_toml = trimmed.trim_end() == "```toml";
        let fence = at;
        let mut body = Vec::new();
        at += 1;
        while at < lines.len() && lines[at].trim() != "```" {
            let line = lines[at];
            let cut = line.len() - line.trim_start().len();
            body.push(&line[cut.min(indent)..]);
            at += 1;
        }
        assert!(
            at < lines.len(),
            "{file}:{}: a code block is never closed",
            fence + 1
        );
        at += 1;
        if !is_toml {
            continue;
        }
        let above = fence.checked_sub(1).map(|i| lines[i].trim());
        let not_checked = above
            .and_then(|line| line.strip_prefix(NOT_CHECKED))
            .map(|rest| rest.trim_end_matches("-->").trim().to_owned());
        if let Some(reason) = &not_checked {
            assert!(
                !reason.is_empty(),
                "{file}:{fence}: `{NOT_CHECKED} … -->` needs a reason"
            );
        }
        snippets.push(Snippet {
            file: file.to_owned(),
            fence: fence + 1,
            text: body.join("\n"),
            not_checked,
        });
    }
    snippets
}

/// Whether `text` has this table header on a line of its own (a comment may follow).
fn has_header(text: &str, header: &str) -> bool {
    text.lines()
        .any(|line| line.split('#').next().unwrap_or("").trim() == header)
}

/// The snippet as a whole config: itself first (so the binary's line numbers are the
/// snippet's), then the base parts it does not define itself.
fn as_config(snippet: &str) -> String {
    if has_header(snippet, "[server]") {
        return format!("{snippet}\n");
    }
    let mut config = format!(
        "{snippet}\n\n# Base added by the docs test.\n[server]\nhttp = \"127.0.0.1:8080\"\n"
    );
    if !has_header(snippet, "[[upstream]]") {
        config.push_str(
            "\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:3000\"\n\
             \n[[upstream]]\nname = \"sample\"\nurl = \"http://127.0.0.1:3000\"\n",
        );
    }
    if !has_header(snippet, "[store]") {
        config.push_str(
            "\n[store]\nurl = \"sqlite://docs-test.db\"\nkey_pepper = \"${env:DOCS_TEST_KEY_PEPPER}\"\n",
        );
    }
    config
}

/// The `NAME`s of every `${kind:NAME}` in `text` (`$${` is an escaped literal).
fn references(text: &str, kind: &str) -> BTreeSet<String> {
    let open = format!("${{{kind}:");
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(&open) {
        if text[..at].ends_with('$') {
            continue;
        }
        let rest = &text[at + open.len()..];
        if let Some(end) = rest.find('}') {
            names.insert(rest[..end].to_owned());
        }
    }
    names
}

/// A plausible value for an environment variable, by its name (as `examples_load` in the
/// gateway crate does): URLs for names that say so, otherwise a long token.
fn sample_value(name: &str) -> String {
    if name.contains("REDIS") {
        "redis://127.0.0.1:1/0".to_owned()
    } else if name.contains("URL") || name.contains("WEBHOOK") || name.contains("ENDPOINT") {
        "http://127.0.0.1:9/example".to_owned()
    } else {
        format!("example-{}-0123456789abcdef", name.to_ascii_lowercase())
    }
}

/// What every snippet's directory holds: `examples/` (a link to the repository's),
/// and `certs/` with a server certificate, its key and a CA.
struct Fixture {
    pki: palisade_testkit::TestPki,
}

impl Fixture {
    fn directory(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::os::unix::fs::symlink(repo_root().join("examples"), dir.path().join("examples"))
            .expect("link examples/");
        self.pki.write_to(&dir.path().join("certs"));
        dir
    }
}

/// What `palisade check` made of a snippet.
enum Outcome {
    Loads,
    /// What to show: where, the binary's message and the config as loaded.
    DoesNotLoad(String),
}

/// Loads `snippet` with `palisade check`.
fn load(fixture: &Fixture, snippet: &Snippet) -> Outcome {
    let dir = fixture.directory();
    let config = as_config(&snippet.text);
    for path in references(&config, "file") {
        let file = dir.path().join(&path);
        std::fs::create_dir_all(file.parent().expect("a file has a directory")).unwrap();
        let value = palisade_testkit::secrets::record(format!(
            "example-file-{}-0123456789abcdef",
            path.replace('/', "-")
        ));
        std::fs::write(&file, value).unwrap();
    }
    let path = dir.path().join("palisade.toml");
    std::fs::write(&path, &config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
    command
        .args(["check", "--format", "json", "-c"])
        .arg(&path)
        .current_dir(dir.path());
    for name in references(&config, "env") {
        command.env(&name, sample_value(&name));
    }
    let output = checked_output(&mut command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    if matches!(code, Some(0 | 1)) {
        return Outcome::Loads;
    }
    // `[telemetry] otlp_endpoint` needs the `otel` feature; without it, the refusal that
    // names the feature is the expected answer.
    if !cfg!(feature = "otel") && code == Some(2) && stderr.contains("`otel` feature") {
        return Outcome::Loads;
    }
    // The binary names `FILE:LINE`; the snippet comes first in FILE, so that line is on
    // the page at `fence + LINE`.
    let page_line = stderr
        .split_once(".toml:")
        .and_then(|(_, rest)| rest.split(':').next())
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n <= snippet.text.lines().count())
        .map(|n| format!(" (the error is at {}:{})", snippet.file, snippet.fence + n))
        .unwrap_or_default();
    let numbered: Vec<String> = config
        .lines()
        .enumerate()
        .map(|(i, line)| format!("{:>4} | {line}", i + 1))
        .collect();
    Outcome::DoesNotLoad(format!(
        "{}:{}: this ```toml snippet does not load (palisade check exit {code:?}){page_line}:\n{}\n  config as loaded:\n{}",
        snippet.file,
        snippet.fence,
        stderr.trim_end(),
        numbered.join("\n")
    ))
}

#[test]
fn every_toml_snippet_loads() {
    let fixture = Fixture {
        pki: palisade_testkit::TestPki::new(),
    };
    let mut checked = 0;
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    for (file, text) in markdown_files() {
        for snippet in toml_snippets(&file, &text) {
            if let Some(reason) = &snippet.not_checked {
                skipped.push(format!("{}:{} ({reason})", snippet.file, snippet.fence));
                continue;
            }
            checked += 1;
            if let Outcome::DoesNotLoad(failure) = load(&fixture, &snippet) {
                failures.push(failure);
            }
        }
    }
    println!("{checked} snippets loaded; not checked: {skipped:?}");
    assert!(checked >= 8, "only {checked} ```toml snippets were found");
    assert!(
        failures.is_empty(),
        "{} of {checked} snippets do not load:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn snippet_extraction_follows_the_convention() {
    let page = "text\n<!-- not-checked: needs a live issuer -->\n```toml\n[a]\n```\n\n- item\n\n  ```toml\n  [b]\n  x = 1\n  ```\n```sh\necho\n```\n";
    let snippets = toml_snippets("page.md", page);
    assert_eq!(snippets.len(), 2);
    assert_eq!(snippets[0].fence, 3);
    assert_eq!(
        snippets[0].not_checked.as_deref(),
        Some("needs a live issuer")
    );
    assert_eq!(snippets[1].text, "[b]\nx = 1");
    assert_eq!(snippets[1].not_checked, None);

    assert!(has_header("[store]   # API keys\n", "[store]"));
    assert!(!has_header("[store.x]\n", "[store]"));
    let fragment = as_config("[[route]]\nname = \"r\"");
    assert!(
        fragment.starts_with("[[route]]\nname = \"r\"\n"),
        "the snippet comes first"
    );
    assert!(has_header(&fragment, "[server]") && has_header(&fragment, "[store]"));
    let with_upstream = as_config("[[upstream]]\nname = \"x\"\nurl = \"http://127.0.0.1:1\"");
    assert_eq!(with_upstream.matches("[[upstream]]").count(), 1);
    let whole = "[server]\nhttp = \"127.0.0.1:1\"";
    assert_eq!(as_config(whole), format!("{whole}\n"));
    assert_eq!(
        references(
            "a = \"${env:A}\" b = \"$${env:B}\" c = \"${file:s/c}\"",
            "env"
        ),
        BTreeSet::from(["A".to_owned()])
    );
}

// ---------------------------------------------------------------------------------------
// Links.
// ---------------------------------------------------------------------------------------

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The lines outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            out.push((i + 1, line));
        }
    }
    out
}

/// The anchors of a page's headings (a repeated heading gets `-1`, `-2`, …).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let base = anchor(heading.trim_start_matches('#'));
        let mut candidate = base.clone();
        let mut n = 0;
        while seen.contains(&candidate) {
            n += 1;
            candidate = format!("{base}-{n}");
        }
        seen.insert(candidate);
    }
    seen
}

/// `(line, target)` of every inline link `[text](target)` outside code.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (number, line) in prose_lines(text) {
        // Drop code spans: `[x](y)` inside backticks is not a link.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((number, after[..end].trim().to_owned()));
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn relative_links_point_to_existing_files_and_headings() {
    let root = repo_root();
    let pages = markdown_files();
    let mut broken = Vec::new();
    let mut count = 0;
    for (file, text) in &pages {
        let dir = Path::new(file).parent().unwrap_or(Path::new(""));
        for (line, target) in links(text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            count += 1;
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                root.join(file)
            } else {
                root.join(dir).join(path)
            };
            if !linked.exists() {
                broken.push(format!("{file}:{line}: {target}: no such file"));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            if linked.extension().is_none_or(|ext| ext != "md") {
                continue;
            }
            let linked_text = std::fs::read_to_string(&linked).unwrap();
            if !anchors(&linked_text).contains(fragment) {
                broken.push(format!(
                    "{file}:{line}: {target}: no heading with that anchor"
                ));
            }
        }
    }
    assert!(count >= 20, "only {count} relative links were found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_are_githubs() {
    assert_eq!(anchor(" JWT / OIDC"), "jwt--oidc");
    assert_eq!(
        anchor("`palisade audit`: auditing a live API"),
        "palisade-audit-auditing-a-live-api"
    );
    assert_eq!(anchor("Tracing (OpenTelemetry)"), "tracing-opentelemetry");
    assert_eq!(
        anchors("# A\n## A\n```\n# not a heading\n```\n"),
        BTreeSet::from(["a".to_owned(), "a-1".to_owned()])
    );
}
