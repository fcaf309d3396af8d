//! The patterns the audit looks for in text: secrets (repository, logs), internals leaked by
//! error responses, card numbers.
//!
//! Input: text. Output: matches with what kind they are and the matched text (which callers
//! mask before it reaches a report). The patterns are deliberately specific (provider
//! prefixes, checksums, entropy), because a scanner that cries wolf gets switched off.

use std::sync::LazyLock;

use regex::Regex;

/// A match: the pattern's name, and the secret-bearing text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub kind: &'static str,
    pub text: String,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
}

/// Provider key formats, private keys and JWTs: a match is a secret whatever surrounds it.
static PROVIDER: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    vec![
        ("AWS access key id", re(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
        ("GitHub token", re(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
        (
            "GitHub fine-grained token",
            re(r"\bgithub_pat_[A-Za-z0-9_]{60,}\b"),
        ),
        ("GitLab token", re(r"\bglpat-[A-Za-z0-9_-]{20,}\b")),
        ("Slack token", re(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
        ("Stripe secret key", re(r"\b[sr]k_live_[A-Za-z0-9]{20,}\b")),
        ("Google API key", re(r"\bAIza[0-9A-Za-z_-]{35}\b")),
        ("OpenAI key", re(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b")),
        (
            "SendGrid key",
            re(r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b"),
        ),
        (
            "Palisade API key",
            re(r"\bpal_[A-Za-z0-9]{12}_[A-Za-z0-9]{43}\b"),
        ),
        (
            "private key",
            re(
                r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
            ),
        ),
        (
            "JWT",
            re(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}\b"),
        ),
        (
            "credentials in a URL",
            re(r"\b[a-z][a-z0-9+.-]{1,15}://[^\s:/@]{1,64}:[^\s@/]{3,128}@[A-Za-z0-9.-]+"),
        ),
    ]
});

/// `NAME = "value"` where NAME says secret: `SECRET_KEY = "…"`, `"password": "…"`.
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b([A-Za-z0-9_.-]*(?:secret|passw(?:or)?d|pwd|token|api[_-]?key|private[_-]?key|access[_-]?key|client[_-]?secret|pepper|salt|credential)[A-Za-z0-9_.-]*)["']?\s*(?::=|=>|[:=])\s*["']([^"'\s]{1,256})["']"#,
    )
});

/// `NAME=value` without quotes, as in `.env` files.
static ENV_ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?im)^\s*(?:export\s+)?([A-Za-z0-9_]*(?:SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|APIKEY|PRIVATE_KEY|ACCESS_KEY|PEPPER)[A-Za-z0-9_]*)\s*=\s*([^\s"'#]{1,256})\s*$"#,
    )
});

/// Literals that are no secret at all, yet guard something: the weak-secret finding.
pub const WEAK_LITERALS: [&str; 18] = [
    "secret",
    "random",
    "changeme",
    "change-me",
    "password",
    "passw0rd",
    "123456",
    "admin",
    "test",
    "dev",
    "development",
    "default",
    "key",
    "mysecret",
    "supersecret",
    "secret123",
    "your-256-bit-secret",
    "qwerty",
];

/// Values that are obviously placeholders or references, never reported.
fn placeholder(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    v.starts_with("${")
        || v.starts_with('<')
        || v.starts_with('%')
        || v.starts_with("{{")
        || v.starts_with("process.env")
        || v.starts_with("os.environ")
        || v.starts_with("env(")
        || v.contains("xxxx")
        || v.contains("example")
        || v.contains("placeholder")
        || v.contains("your_")
        || v.contains("your-") && v != "your-256-bit-secret"
        || v.contains("redacted")
        || v.contains("****")
        || v.contains('…')
        || v == "null"
        || v == "none"
        || v == "true"
        || v == "false"
        || v.is_empty()
}

/// Shannon entropy in bits per character.
pub fn entropy(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in text.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = text.chars().count() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Secrets in `text`: provider formats, and values assigned to secret-named variables that
/// are high-entropy (16+ characters, 3.5+ bits each) or a known weak literal.
pub fn secrets(text: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (kind, regex) in PROVIDER.iter() {
        for m in regex.find_iter(text) {
            hits.push(Hit {
                kind,
                text: m.as_str().to_owned(),
            });
        }
    }
    for regex in [&*ASSIGNMENT, &*ENV_ASSIGNMENT] {
        for caps in regex.captures_iter(text) {
            let value = &caps[2];
            if placeholder(value) || hits.iter().any(|h| h.text.contains(value)) {
                continue;
            }
            if WEAK_LITERALS.contains(&value.to_ascii_lowercase().as_str()) {
                hits.push(Hit {
                    kind: "weak secret literal",
                    text: value.to_owned(),
                });
            } else if value.len() >= 16 && entropy(value) >= 3.5 {
                hits.push(Hit {
                    kind: "high-entropy secret assignment",
                    text: value.to_owned(),
                });
            }
        }
    }
    hits
}

/// Card numbers: 13–19 digits (spaces or dashes allowed) that pass the Luhn check.
pub fn card_numbers(text: &str) -> Vec<Hit> {
    static CARD: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d(?:[ -]?\d){12,18}\b"));
    CARD.find_iter(text)
        .filter(|m| {
            let digits: Vec<u32> = m.as_str().chars().filter_map(|c| c.to_digit(10)).collect();
            luhn(&digits) && digits.iter().any(|&d| d != digits[0])
        })
        .map(|m| Hit {
            kind: "card number",
            text: m.as_str().to_owned(),
        })
        .collect()
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                (d * 2) % 9 + u32::from(d == 9) * 9
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Internals an error response should never carry.
static LEAKS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    vec![
        (
            "stack trace",
            re(
                r"(?m)^\s+at [\w.$<>\[\] ]+ ?\(.*:\d+(?::\d+)?\)|Traceback \(most recent call last\)|(?m)^\s+at [\w.$]+\([\w]+\.(?:java|kt|scala):\d+\)|panicked at |goroutine \d+ \[|\.rb:\d+:in `|Exception in thread |(?m)^\s+File \x22[^\x22]+\x22, line \d+",
            ),
        ),
        (
            "SQL error text",
            re(
                r"(?i)SQL syntax|SQLSTATE|\bORA-\d{5}\b|\bPG::|syntax error at or near|SQLITE_ERROR|sqlite3\.OperationalError|Unclosed quotation mark|mysql_fetch|duplicate key value violates|relation \x22[^\x22]+\x22 does not exist|ECONNREFUSED [0-9.]+:(?:5432|3306|1433|27017)",
            ),
        ),
        (
            "server file path",
            re(
                r"(?:/(?:srv|home|var|usr|opt|app|root|builds?)/[\w.@/-]+\.(?:js|ts|py|rb|go|java|php|rs|cs)\b)|[A-Z]:\\[\w\\ .-]+\.(?:cs|java|php|py|js)\b",
            ),
        ),
        (
            "framework debug page",
            re(
                r"Whitelabel Error Page|DEBUG = True|Werkzeug Debugger|Action Controller: Exception caught|Laravel|Symfony\\Component|Microsoft\.AspNetCore\.Diagnostics|<title>Django|express/lib/router",
            ),
        ),
        (
            "credentials in a URL",
            re(r"\b[a-z][a-z0-9+.-]{1,15}://[^\s:/@]{1,64}:[^\s@/]{3,128}@[A-Za-z0-9.-]+"),
        ),
    ]
});

/// Text with the password of any `scheme://user:password@host` replaced by `****`, so
/// evidence can quote a leak without repeating it.
pub fn redact_urls(text: &str) -> String {
    static USERINFO: LazyLock<Regex> =
        LazyLock::new(|| re(r"(\b[a-z][a-z0-9+.-]{1,15}://[^\s:/@]{1,64}:)[^\s@/]{3,128}@"));
    USERINFO.replace_all(text, "${1}****@").into_owned()
}

/// Evidence text with URL passwords and every secret [`secrets`] recognises masked.
pub fn redact(text: &str) -> String {
    let mut out = redact_urls(text);
    for hit in secrets(&out) {
        out = out.replace(&hit.text, &crate::mask(&hit.text));
    }
    out
}

/// Internals in an error body: stack traces, SQL errors, file paths, debug pages.
pub fn leaks(text: &str) -> Vec<Hit> {
    LEAKS
        .iter()
        .filter_map(|(kind, regex)| {
            regex.find(text).map(|m| Hit {
                kind,
                text: m.as_str().trim().to_owned(),
            })
        })
        .collect()
}

/// SQL error text only (what an injection probe must never provoke).
pub fn sql_errors(text: &str) -> Option<Hit> {
    leaks(text).into_iter().find(|h| h.kind == "SQL error text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_keys_private_keys_and_weak_literals_are_found() {
        let text = "aws = AKIAIOSFODNN7EXAMPLA\n-----BEGIN RSA PRIVATE KEY-----\nSECRET_KEY = \"random\"\n\
                    api_token: \"q8Zp3LxV9kT2mW7rB4nY6sH1\"\nPASSWORD=${env:DB}\nname = \"hello\"";
        let kinds: Vec<&str> = secrets(text).iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            [
                "AWS access key id",
                "private key",
                "weak secret literal",
                "high-entropy secret assignment"
            ]
        );
        assert!(secrets("DB_PASSWORD=changeme\n")[0].kind == "weak secret literal");
        assert!(secrets("TOKEN=<your token here>\nAPI_KEY=xxxxxxxx\n").is_empty());
    }

    #[test]
    fn card_numbers_need_the_luhn_check() {
        assert_eq!(card_numbers("card 4111 1111 1111 1111 ok").len(), 1);
        assert!(card_numbers("order 4111111111111112").is_empty());
        assert!(card_numbers("id 0000000000000000").is_empty());
    }

    #[test]
    fn leaks_are_named() {
        let crash = "Error: connect ECONNREFUSED 10.0.3.17:5432\n    at Pool.connect (/srv/api/node_modules/pg-pool/index.js:45:11)\n";
        let kinds: Vec<&str> = leaks(crash).iter().map(|h| h.kind).collect();
        assert_eq!(kinds, ["stack trace", "SQL error text", "server file path"]);
        assert!(leaks(r#"{"error":"not found"}"#).is_empty());
        assert!(leaks(r#"{"type":"urn:palisade:problem:unauthorized","title":"Unauthorized","status":401}"#).is_empty());
    }
}
