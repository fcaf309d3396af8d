//! Control 7, logging: what the API writes must not carry secrets.
//!
//! Input: `--log FILE` (from outside, logs cannot be seen: without it the control is
//! NOT_TESTED). Output: FAIL when the file holds an identity's credential (the audit knows
//! what it sent), a token, a provider key, a card number, the value of any password-named
//! key (JSON, query or form, key=value) or an `Authorization` Bearer/Basic credential, of
//! any length: values the log masked (`***`, `[redacted]`) are not findings. Findings show
//! a masked preview and a fingerprint, never the value.

use std::sync::LazyLock;

use regex::Regex;

use super::Context;
use crate::model::{ControlResult, Finding, Severity};
use crate::{fingerprint, mask, patterns};

const ID: u8 = 7;

pub fn run(ctx: &Context<'_>) -> ControlResult {
    let Some(path) = &ctx.options.log else {
        return ControlResult::not_tested(
            ID,
            "logs are not visible from outside; pass --log FILE to scan one",
        );
    };
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return ControlResult::error(ID, format!("cannot read {}: {e}", path.display())),
    };
    ControlResult::conclude(
        ID,
        scan_log(ctx, &text, &path.display().to_string()),
        true,
        "",
    )
}

/// The findings for a log's text.
pub fn scan_log(ctx: &Context<'_>, text: &str, name: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut push = |kind: &str, line_no: usize, value: &str| {
        findings.push(Finding::new(
            ID,
            Severity::High,
            format!("{kind} in the log"),
            Some(format!("{name}:{line_no}")),
            format!("{} fingerprint {}", mask(value), fingerprint(&[value])),
        ));
    };
    let credentials: Vec<(&str, &str)> = ctx
        .options
        .identities
        .iter()
        .chain(&ctx.options.admin_identity)
        .map(|id| {
            (
                id.name.as_str(),
                id.value.strip_prefix("Bearer ").unwrap_or(&id.value),
            )
        })
        .filter(|(_, v)| v.chars().count() >= crate::MIN_CREDENTIAL_LEN)
        .collect();
    for (i, line) in text.lines().enumerate() {
        for (name, value) in &credentials {
            if line.contains(value) {
                push(&format!("{name}'s credential"), i + 1, value);
            }
        }
        let mut seen: Vec<String> = Vec::new();
        for hit in patterns::secrets(line)
            .into_iter()
            .chain(log_secrets(line))
            .chain(patterns::card_numbers(line))
        {
            if credentials.iter().any(|(_, v)| hit.text.contains(v))
                || seen.iter().any(|s| s.contains(&hit.text))
            {
                continue;
            }
            push(hit.kind, i + 1, &hit.text);
            seen.push(hit.text);
        }
    }
    findings
}

/// `"key": "value"` in JSON (escaped quotes allowed in the value).
static JSON_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""([A-Za-z0-9_.-]{1,64})"\s*:\s*"((?:[^"\\]|\\.){0,512})""#).expect("regex")
});
/// `key=value` in a query string, a form body or a key=value (logfmt) line; the value
/// quoted or up to the next separator.
static KV_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:^|[^A-Za-z0-9_.-])([A-Za-z0-9_.-]{1,64})\s*=\s*(?:"([^"]{0,512})"|([^&\s"',;]{1,512}))"#)
        .expect("regex")
});
/// An `Authorization` (or `Proxy-Authorization`) header's Bearer or Basic credential, as a
/// header line, a JSON member or a key=value.
static AUTHORIZATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\bauthorization"?\s*[:=]\s*"?\s*(?:bearer|basic)\s+([^\s",;]+)"#)
        .expect("regex")
});

/// Whether a key names a password: `password`, `db_password`, `newPassword`, `passwd`,
/// `pwd`, `pass`, `passphrase`, `password_confirmation`.
fn password_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let k = k
        .strip_suffix("confirmation")
        .or_else(|| k.strip_suffix("confirm"))
        .unwrap_or(&k);
    k == "pass"
        || ["password", "passwd", "pwd", "passphrase"]
            .iter()
            .any(|p| k.ends_with(p))
}

/// Whether a logged value was masked by whoever wrote the log (`***`, `[redacted]`,
/// `pal_xxx_***`, `[FILTERED]`, `<hidden>`), or is empty or a placeholder: not a finding.
fn masked(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    v.is_empty()
        || v.chars().all(|c| matches!(c, '*' | '•' | '…' | '.' | 'x'))
        || v.contains("***")
        || v.contains('…')
        || [
            "redact", "filtered", "hidden", "masked", "removed", "omitted",
        ]
        .iter()
        .any(|w| v.contains(w))
        || v.starts_with('<')
        || v.starts_with("${")
        || v.starts_with("{{")
        || matches!(
            v.as_str(),
            "null" | "none" | "nil" | "undefined" | "true" | "false"
        )
}

/// What a log must never hold whatever its length or entropy: the value of any
/// password-named key and any Authorization credential, unless masked.
pub fn log_secrets(line: &str) -> Vec<patterns::Hit> {
    let mut hits = Vec::new();
    for caps in AUTHORIZATION.captures_iter(line) {
        let value = &caps[1];
        if !masked(value) {
            hits.push(patterns::Hit {
                kind: "Authorization credential",
                text: value.to_owned(),
            });
        }
    }
    let pairs = JSON_PAIR
        .captures_iter(line)
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .chain(KV_PAIR.captures_iter(line).map(|c| {
            let value = c.get(2).or_else(|| c.get(3)).map_or("", |m| m.as_str());
            (c[1].to_owned(), value.to_owned())
        }));
    for (key, value) in pairs {
        if password_key(&key) && !masked(&value) {
            hits.push(patterns::Hit {
                kind: "password",
                text: value,
            });
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_keys_and_masks() {
        for key in [
            "password",
            "db_password",
            "newPassword",
            "pwd",
            "pass",
            "passwd",
            "password_confirmation",
        ] {
            assert!(password_key(key), "{key}");
        }
        for key in ["bypass", "compass", "user", "token"] {
            assert!(!password_key(key), "{key}");
        }
        for value in [
            "***",
            "[redacted]",
            "pal_xxx_***",
            "[FILTERED]",
            "<hidden>",
            "",
            "****",
        ] {
            assert!(masked(value), "{value}");
        }
        assert!(!masked("hunter2"));
    }
}
