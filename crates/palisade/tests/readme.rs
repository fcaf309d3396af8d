//! The README's configuration reference is generated from the config types' JSON Schema
//! (`palisade config schema`); this test fails when the two drift apart.
//!
//! To regenerate after changing a config type: `PALISADE_BLESS=1 cargo test -p palisade --test readme`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const START: &str = "<!-- config-reference:start -->";
const END: &str = "<!-- config-reference:end -->";

fn readme_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md")
}

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
    let output = palisade_testkit::secrets::checked_output(
        Command::new(env!("CARGO_BIN_EXE_palisade")).args(["config", "schema"]),
    );
    let schema: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut out = vec![
        "| key | type | default | meaning |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    rows(&schema, &schema, "", &mut out);
    out.join("\n")
}

#[test]
fn readme_config_reference_matches_the_config_types() {
    let readme = std::fs::read_to_string(readme_path()).unwrap();
    let expected = generated_reference();
    let (before, rest) = readme
        .split_once(START)
        .expect("README has the reference start marker");
    let (current, after) = rest
        .split_once(END)
        .expect("README has the reference end marker");
    if current.trim() == expected.trim() {
        return;
    }
    if std::env::var_os("PALISADE_BLESS").is_some() {
        std::fs::write(
            readme_path(),
            format!("{before}{START}\n{expected}\n{END}{after}"),
        )
        .unwrap();
        return;
    }
    panic!(
        "README.md's configuration reference is out of date; run\n  PALISADE_BLESS=1 cargo test -p palisade --test readme\nexpected:\n{expected}"
    );
}

#[test]
fn readme_shows_the_two_commands() {
    let readme = std::fs::read_to_string(readme_path()).unwrap();
    assert!(readme.contains("cargo run --release -- demo"));
    assert!(readme.contains("scripts/test"));
}
