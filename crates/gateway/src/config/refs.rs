//! `${env:NAME}` and `${file:PATH}` references in config strings.
//!
//! Secrets never sit in the config file: it names where they are. Any string value may be,
//! or contain, a reference, resolved once at load.
//!
//! Input: a string as written in the config and the key it was written at. Output: the
//! string with each reference replaced by its value. `${file:PATH}` is relative to the
//! config file's directory and loses one trailing newline (`\n` or `\r\n`), so a secret
//! written with `echo` works. `$${` is a literal `${`; a `$` not followed by `{` is itself.
//!
//! Failure: a `ConfigError` at that key naming the reference: an unset, empty or
//! non-UTF-8 variable, an unreadable or empty file, an unknown scheme (`${foo:x}`), an
//! unclosed `${`. A reference never silently becomes an empty string. Substituted values are
//! not scanned again, so a value from the environment cannot smuggle in a reference, and
//! messages quote the reference, never the value it resolved to.

use std::env::VarError;
use std::path::Path;

use super::{ConfigError, LoadCtx};

/// How to write a reference, appended to the messages about malformed ones.
const SYNTAX: &str =
    "a reference is `${env:NAME}` or `${file:PATH}`; write `$${` for a literal `${`";

/// Whether `value` is one reference and nothing else: a secret field must be exactly that,
/// since text around a reference (`hunter2${env:X}`) is written in the file.
pub(crate) fn is_one_reference(value: &str) -> bool {
    value
        .strip_prefix("${")
        .and_then(|body| body.strip_suffix('}'))
        .is_some_and(|inner| {
            !inner.contains('}') && (inner.starts_with("env:") || inner.starts_with("file:"))
        })
}

/// What stands for one reference in [`with_placeholders`].
pub(crate) const PLACEHOLDER: char = '\u{1}';

/// `value` as written, each reference replaced by [`PLACEHOLDER`] (and `$${` by `${`): its
/// structure (a URL's `:`, `@`, `?`) without what the references will bring. An unclosed
/// `${` runs to the end (resolving it fails anyway).
pub(crate) fn with_placeholders(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let tail = &rest[dollar..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            out.push(PLACEHOLDER);
            rest = body.find('}').map_or("", |close| &body[close + 1..]);
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Query parameter names (compared ignoring case) whose value is a password: libpq's
/// `password` and `sslpassword` (sqlx-postgres reads `password`), and `pass`, which the
/// redis crate reads for a socket URL.
pub(crate) fn is_password_param(name: &str) -> bool {
    ["password", "sslpassword", "pass"]
        .iter()
        .any(|p| name.eq_ignore_ascii_case(p))
}

/// The parts of a URL that hold a password, decoded: the one in its user info
/// (`user:PASSWORD@`), the user name too when `user_is_secret`, and the values of the
/// [`is_password_param`] query parameters. Empty parts are left out. `None`: not a URL.
///
/// Parsed by the `url` crate, as the drivers parse it: it drops tabs and newlines anywhere
/// and percent-decodes parameter names, so `pass%77ord=` or `pass\tword=` is a password
/// to them and must be one here.
pub(crate) fn url_passwords(url: &str, user_is_secret: bool) -> Option<Vec<String>> {
    let parsed = url::Url::parse(url).ok()?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut out = Vec::new();
    if let Some(password) = parsed.password() {
        out.push(decode(password));
    }
    if user_is_secret {
        out.push(decode(parsed.username()));
    }
    out.extend(
        parsed
            .query_pairs()
            .filter(|(name, _)| is_password_param(name))
            .map(|(_, value)| value.into_owned()),
    );
    out.retain(|part| !part.is_empty());
    Some(out)
}

/// [`url_passwords`] of `raw` as written, each reference replaced by a stand-in, and that
/// stand-in: a password part equal to it is exactly one reference. `None`: no stand-in
/// makes it parse.
///
/// DEL parses in a non-special URL's host, user info, path and query, and is not trimmed
/// from the ends as C0 controls are; a port or an `https` host needs digits. A stand-in is
/// used only when the URL as written (tabs and newlines dropped, percent-decoded) does not
/// hold it already, so it cannot be literal text.
pub(crate) fn written_url_passwords(
    raw: &str,
    user_is_secret: bool,
) -> Option<(Vec<String>, String)> {
    let written = with_placeholders(raw);
    let bare: String = written
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let bare = percent_encoding::percent_decode_str(&bare).decode_utf8_lossy();
    ["\u{7f}", "40417"]
        .into_iter()
        .filter(|stand_in| !bare.contains(stand_in))
        .find_map(|stand_in| {
            let url = written.replace(PLACEHOLDER, stand_in);
            url_passwords(&url, user_is_secret).map(|parts| (parts, stand_in.to_owned()))
        })
}

/// `value` (written at `key`) with its references resolved.
pub(crate) fn resolve(value: &str, key: &str, ctx: &LoadCtx<'_>) -> Result<String, ConfigError> {
    resolve_in(value, ctx.dir, ctx.env).map_err(|message| ctx.error(key, message))
}

/// The resolver proper; errors are bare messages that the caller locates.
fn resolve_in(
    value: &str,
    dir: &Path,
    env: &dyn Fn(&str) -> Result<String, VarError>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let tail = &rest[dollar..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            // Don't quote the text after an unclosed `${`: it may be a literal secret.
            let close = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{`: {SYNTAX}"))?;
            out.push_str(&lookup(&body[..close], dir, env)?);
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one reference; `inner` is what is between `${` and `}`.
fn lookup(
    inner: &str,
    dir: &Path,
    env: &dyn Fn(&str) -> Result<String, VarError>,
) -> Result<String, String> {
    let reference = format!("`${{{inner}}}`");
    let value = match inner.split_once(':') {
        Some(("env", name)) => {
            let portable =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !portable {
                return Err(format!(
                    "{reference}: a variable name is letters, digits and `_`"
                ));
            }
            match env(name) {
                Ok(v) => v,
                Err(VarError::NotPresent) => return Err(format!("{reference} is not set")),
                Err(VarError::NotUnicode(_)) => {
                    return Err(format!("{reference} is not valid UTF-8"));
                }
            }
        }
        Some(("file", path)) => {
            if path.is_empty() {
                return Err(format!("{reference}: the file path is empty"));
            }
            let full = dir.join(path);
            let text = std::fs::read_to_string(&full)
                .map_err(|e| format!("{reference} cannot be read ({}): {e}", full.display()))?;
            // One trailing newline is how files end, not part of the secret.
            let text = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            text.to_owned()
        }
        _ => return Err(format!("unknown reference {reference}: {SYNTAX}")),
    };
    // An empty secret is as good as none; say so rather than run without one.
    if value.is_empty() {
        return Err(format!("{reference} is empty"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "TOKEN" => Ok("s3cret".into()),
            "HOST" => Ok("example.com".into()),
            "EMPTY" => Ok(String::new()),
            "SNEAKY" => Ok("${env:TOKEN}".into()),
            _ => Err(VarError::NotPresent),
        }
    }

    fn resolve(value: &str) -> Result<String, String> {
        resolve_in(value, Path::new("/nonexistent-dir"), &env)
    }

    fn resolve_with_dir(value: &str, dir: &Path) -> Result<String, String> {
        resolve_in(value, dir, &env)
    }

    #[test]
    fn plain_strings_are_unchanged() {
        for s in ["", "abc", "$", "a$b", "$$", "price: $5", "{}", "}$"] {
            assert_eq!(resolve(s).as_deref(), Ok(s));
        }
    }

    #[test]
    fn env_references() {
        assert_eq!(resolve("${env:TOKEN}").unwrap(), "s3cret");
        assert_eq!(
            resolve("https://${env:HOST}/x").unwrap(),
            "https://example.com/x"
        );
        assert_eq!(
            resolve("${env:HOST}${env:HOST}").unwrap(),
            "example.comexample.com"
        );
    }

    #[test]
    fn missing_env_names_the_reference() {
        let err = resolve("${env:PALISADE_ADMIN_TOKEN}").unwrap_err();
        assert_eq!(err, "`${env:PALISADE_ADMIN_TOKEN}` is not set");
        assert_eq!(
            resolve("${env:EMPTY}").unwrap_err(),
            "`${env:EMPTY}` is empty"
        );
        assert!(resolve("${env:}").unwrap_err().contains("variable name"));
        assert!(resolve("${env:A B}").unwrap_err().contains("variable name"));
    }

    #[test]
    fn values_are_not_rescanned() {
        assert_eq!(resolve("${env:SNEAKY}").unwrap(), "${env:TOKEN}");
    }

    #[test]
    fn escapes() {
        assert_eq!(resolve("$${env:TOKEN}").unwrap(), "${env:TOKEN}");
        assert_eq!(resolve("a$${b").unwrap(), "a${b");
        assert_eq!(resolve("$${").unwrap(), "${");
    }

    #[test]
    fn malformed_references() {
        let err = resolve("${foo:x}").unwrap_err();
        assert!(err.starts_with("unknown reference `${foo:x}`"), "{err}");
        assert!(
            resolve("${TOKEN}")
                .unwrap_err()
                .starts_with("unknown reference `${TOKEN}`")
        );
        let err = resolve("abc${env:TOKEN").unwrap_err();
        assert!(err.starts_with("unclosed `${`"), "{err}");
        assert!(!err.contains("TOKEN"), "{err}");
    }

    #[test]
    fn file_references() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lf"), "token-lf\n").unwrap();
        std::fs::write(dir.path().join("crlf"), "token-crlf\r\n").unwrap();
        std::fs::write(dir.path().join("two"), "two\n\n").unwrap();
        std::fs::write(dir.path().join("none"), "bare").unwrap();
        std::fs::write(dir.path().join("nl"), "\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/x"), "in-sub\n").unwrap();

        let r = |v: &str| resolve_with_dir(v, dir.path());
        assert_eq!(r("${file:lf}").unwrap(), "token-lf");
        assert_eq!(r("${file:crlf}").unwrap(), "token-crlf");
        assert_eq!(
            r("${file:two}").unwrap(),
            "two\n",
            "only one newline is trimmed"
        );
        assert_eq!(r("${file:none}").unwrap(), "bare");
        assert_eq!(r("${file:sub/x}").unwrap(), "in-sub");
        assert_eq!(r("Bearer ${file:lf}").unwrap(), "Bearer token-lf");
        assert_eq!(r("${file:nl}").unwrap_err(), "`${file:nl}` is empty");
        let abs: PathBuf = dir.path().join("lf");
        assert_eq!(
            r(&format!("${{file:{}}}", abs.display())).unwrap(),
            "token-lf"
        );

        let err = r("${file:missing.txt}").unwrap_err();
        assert!(
            err.starts_with("`${file:missing.txt}` cannot be read"),
            "{err}"
        );
        assert!(r("${file:}").unwrap_err().contains("empty"));
    }

    #[test]
    fn errors_are_located_at_the_key() {
        let keys = super::super::locate::KeyIndex::default();
        let ctx = LoadCtx {
            file: Path::new("palisade.toml"),
            dir: Path::new("."),
            keys: &keys,
            env: &env,
            allow_literal_secrets: false,
            literal_secrets: Default::default(),
        };
        let err = super::resolve("${env:NOPE}", "server.admin_token", &ctx).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("server.admin_token"));
        assert_eq!(
            err.to_string(),
            "palisade.toml: key `server.admin_token`: `${env:NOPE}` is not set"
        );
    }

    #[test]
    fn references_are_told_from_literals() {
        assert!(is_one_reference("${env:TOKEN}"));
        assert!(!is_one_reference("plain-secret-value"));
        assert!(is_one_reference("${file:/run/secrets/token}"));
        for partial in [
            "Bearer ${env:TOKEN}",
            "${env:TOKEN}x",
            "${env:A}${env:B}",
            "$${env:TOKEN}",
            "${foo:bar}",
            "",
        ] {
            assert!(!is_one_reference(partial), "{partial}");
        }
    }

    #[test]
    fn url_passwords_are_found_as_the_drivers_read_them() {
        assert_eq!(
            url_passwords(
                "postgres://u:pw@db/p?sslmode=require&PassWord=a&sslpassword=b#x",
                false
            )
            .unwrap(),
            ["pw", "a", "b"]
        );
        // Names as the drivers read them: percent-decoded, tabs and newlines dropped.
        for url in [
            "postgres://u@db/app?pass%77ord=hunter2",
            "postgres://u@db/app?pass\tword=hunter2",
            "postgres://u@db/app?pass\nword=hunter2",
            "redis+unix:///run/redis.sock?pass=hunter2",
        ] {
            assert_eq!(url_passwords(url, false).unwrap(), ["hunter2"], "{url:?}");
        }
        assert_eq!(
            url_passwords("postgres://u:p%40ss@db/", false).unwrap(),
            ["p@ss"]
        );
        assert!(
            url_passwords("postgres://u@db/p?password=", false)
                .unwrap()
                .is_empty()
        );
        assert!(
            url_passwords("redis://cache:6379/0", false)
                .unwrap()
                .is_empty()
        );
        assert!(url_passwords("not a url", false).is_none());
        assert_eq!(
            url_passwords("https://token@collector/", true).unwrap(),
            ["token"]
        );
        assert_eq!(
            url_passwords("https://u:p@collector/", true).unwrap(),
            ["p", "u"]
        );
    }

    #[test]
    fn written_url_passwords_see_references_in_any_position() {
        assert_eq!(
            with_placeholders("redis://:${file:/run/pw}@${env:HOST}:6379/0"),
            "redis://:\u{1}@\u{1}:6379/0"
        );
        for url in [
            "redis://:${file:/run/pw}@${env:HOST}:6379/0",
            "postgres://u@db/p?sslmode=require&sslpassword=${env:PW}",
            "postgres://u:${env:PW}@db:${env:PORT}/app",
        ] {
            let (parts, stand_in) = written_url_passwords(url, false).unwrap();
            assert_eq!(parts, [stand_in], "{url}");
        }
        let (parts, placeholder) =
            written_url_passwords("https://${env:TOKEN}@${env:HOST}/v1", true).unwrap();
        assert_eq!(parts, [placeholder]);
        // A literal that looks like the fallback stand-in is not taken for a reference.
        assert!(written_url_passwords("postgres://u:40417@db:${env:PORT}/app", false).is_none());
        let (parts, placeholder) =
            written_url_passwords("postgres://u:hunter2@db:${env:PORT}/app", false).unwrap();
        assert_ne!(parts, [placeholder]);
    }
}
