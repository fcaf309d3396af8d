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
        let forms = [
            ("as is", secret.clone()),
            ("base64", STANDARD.encode(secret)),
            ("base64 unpadded", STANDARD_NO_PAD.encode(secret)),
            ("base64url", URL_SAFE.encode(secret)),
            ("base64url unpadded", URL_SAFE_NO_PAD.encode(secret)),
        ];
        if let Some((form, _)) = forms.iter().find(|(_, f)| text.contains(f.as_str())) {
            let preview: String = secret.chars().take(4).collect();
            found.push(format!("{preview}… ({form})"));
        }
    }
    found
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
}
