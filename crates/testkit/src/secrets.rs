//! Every secret a test hands to palisade, and the check that palisade never writes one.
//!
//! Tests record what they give the gateway (admin tokens, peppers, HMAC secrets, API keys,
//! signed tokens, TLS private keys); when a [`GatewayProcess`](crate::GatewayProcess) ends,
//! everything it wrote to stdout, stderr and log files in its directory is searched for
//! each recorded secret and its base64 forms. A find fails the test that started it. So the
//! whole integration suite, whatever each test is about, is also a leak test.

use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Shorter values are not searched for: they would match by chance.
const MIN_LEN: usize = 8;

static RECORDED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records `secret` (if long enough to search for) and returns it unchanged.
pub fn record(secret: impl Into<String>) -> String {
    let secret = secret.into();
    if secret.len() >= MIN_LEN {
        let mut recorded = RECORDED.lock().unwrap_or_else(|p| p.into_inner());
        if !recorded.contains(&secret) {
            recorded.push(secret.clone());
        }
    }
    secret
}

/// Records the contents of a secret file (`${file:…}`) as the gateway reads it: without
/// one trailing newline.
pub fn record_file_contents(contents: &[u8]) {
    let text = String::from_utf8_lossy(contents);
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    record(text);
}

/// Records the secret part of a Palisade API key (`pal_<id>_<secret>`) besides the whole
/// key, so the secret alone (the log masker keeps only the id) is searched for too.
pub fn record_api_key(key: &str) -> String {
    if let Some((_, secret)) = key.rsplit_once('_') {
        record(secret);
    }
    record(key)
}

/// Runs `command` (a palisade subcommand outside [`GatewayProcess`](crate::GatewayProcess))
/// to its end and returns its output, failing the test if its stdout or stderr holds a
/// recorded secret. Environment variables with secret names set on `command` are recorded
/// first. A secret the command is meant to print (a new key) is recorded after it ran.
pub fn checked_output(command: &mut std::process::Command) -> std::process::Output {
    for (name, value) in command.get_envs() {
        if let Some(value) = value
            && is_secret_name(&name.to_string_lossy())
        {
            record(value.to_string_lossy());
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let written = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let leaks = leaks_in(&written);
    assert!(
        leaks.is_empty(),
        "{:?} wrote secrets to its stdout or stderr: {leaks:?}",
        command.get_args().collect::<Vec<_>>()
    );
    output
}

/// Whether an environment variable of this name holds a secret by its name.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["TOKEN", "PEPPER", "SECRET", "PASSWORD", "WEBHOOK"]
        .iter()
        .any(|word| name.contains(word))
}

/// The recorded secrets found in `text`, each described by its form and a masked preview
/// (never the whole secret: the failure message is output too).
pub fn leaks_in(text: &str) -> Vec<String> {
    let recorded = RECORDED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut found = Vec::new();
    for secret in &recorded {
        let mut forms = vec![
            ("as is", secret.clone()),
            ("base64", STANDARD.encode(secret)),
            ("base64 unpadded", STANDARD_NO_PAD.encode(secret)),
            ("base64url", URL_SAFE.encode(secret)),
            ("base64url unpadded", URL_SAFE_NO_PAD.encode(secret)),
        ];
        for offset in 0..3 {
            forms.push((
                "base64, inside a longer value",
                embedded(secret, offset, false),
            ));
            forms.push((
                "base64url, inside a longer value",
                embedded(secret, offset, true),
            ));
        }
        if let Some((form, _)) = forms
            .iter()
            .find(|(_, f)| !f.is_empty() && text.contains(f.as_str()))
        {
            let preview: String = secret.chars().take(4).collect();
            found.push(format!("{preview}… ({form})"));
        }
    }
    found
}

/// The base64 characters that encode `secret` wherever it sits in a longer encoded value:
/// after `offset` other bytes (0–2, the three alignments), only the 3-byte groups made of the
/// secret's bytes alone, which do not depend on what surrounds it.
fn embedded(secret: &str, offset: usize, url_safe: bool) -> String {
    let mut bytes = vec![0u8; offset];
    bytes.extend_from_slice(secret.as_bytes());
    bytes.truncate(bytes.len() / 3 * 3);
    let engine = if url_safe {
        URL_SAFE_NO_PAD
    } else {
        STANDARD_NO_PAD
    };
    let encoded = engine.encode(&bytes);
    // With an offset, the first group mixes in the bytes before the secret.
    let skip = if offset == 0 { 0 } else { 4 };
    encoded.get(skip..).unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_as_is_and_in_base64() {
        let secret = record("leak-test-secret-0123456789");
        assert!(leaks_in("nothing here").is_empty());
        assert_eq!(leaks_in(&format!("x {secret} y")), ["leak… (as is)"]);
        let encoded = URL_SAFE_NO_PAD.encode(&secret);
        let found = leaks_in(&format!("token={encoded}"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("base64"), "{found:?}");
        record("short");
        assert!(
            leaks_in("short").is_empty(),
            "short values are not searched for"
        );
        // Inside a longer encoded value, at each of the three alignments.
        let secret = record("embedded-secret-9d1c7e35");
        for prefix in ["", "a", "ab", "abc:"] {
            for suffix in ["", "z", "zz"] {
                let value = format!("{prefix}{secret}{suffix}");
                for encoded in [STANDARD.encode(&value), URL_SAFE_NO_PAD.encode(&value)] {
                    let found = leaks_in(&format!("Basic {encoded}"));
                    assert!(
                        found.iter().any(|f| f.starts_with("embe")),
                        "{prefix:?}+{suffix:?}: {found:?}"
                    );
                }
            }
        }
        assert!(is_secret_name("PALISADE_KEY_PEPPER"));
        assert!(!is_secret_name("ORDERS_HOST"));
    }
}

#[cfg(test)]
mod check_tests {
    use std::time::Duration;

    use crate::GatewayProcess;

    #[test]
    fn a_process_that_prints_a_recorded_secret_fails_its_test() {
        let secret = super::record("printed-secret-4f7a9c2e1b");
        let mut process = GatewayProcess::builder("/bin/sh")
            .args(["-c", "echo \"$1\"", "sh", secret.as_str()])
            .spawn();
        assert_eq!(process.wait_exit(Duration::from_secs(10)), Some(0));
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(process)));
        let message = dropped.expect_err("the leak check must fail");
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("prin… (as is)"), "{message}");
        assert!(
            !message.contains(&secret),
            "the report never quotes the secret"
        );
    }

    #[test]
    fn a_secret_after_a_line_that_is_not_utf8_is_still_found() {
        let secret = super::record("after-bad-bytes-7c2e91d4");
        let mut process = GatewayProcess::builder("/bin/sh")
            .args([
                "-c",
                "printf 'x\\377y\\n'; echo \"$1\"",
                "sh",
                secret.as_str(),
            ])
            .spawn();
        assert_eq!(process.wait_exit(Duration::from_secs(10)), Some(0));
        assert!(
            process.stdout().contains("x\u{fffd}y\n"),
            "lossy, not the end"
        );
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(process)));
        assert!(dropped.is_err(), "the leak check must see the later line");
    }

    #[test]
    fn a_command_run_outside_the_harness_is_checked_too() {
        let secret = super::record("command-secret-3b8f0a6d");
        let mut quiet = std::process::Command::new("/bin/sh");
        quiet.args(["-c", "echo fine"]);
        assert!(super::checked_output(&mut quiet).status.success());
        let mut leaky = std::process::Command::new("/bin/sh");
        leaky.args(["-c", "echo \"$1\" >&2", "sh", secret.as_str()]);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::checked_output(&mut leaky)
        }));
        let message = result.expect_err("the leak must fail the test");
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("comm… (as is)"), "{message}");
        // A secret in the command's environment is recorded by its name.
        let mut env = std::process::Command::new("/bin/sh");
        env.args(["-c", "echo $SOME_TOKEN"])
            .env("SOME_TOKEN", "env-token-5e6f7a8b9c");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::checked_output(&mut env)
        }));
        assert!(result.is_err());
    }
}
