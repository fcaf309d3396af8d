//! JWT parsing and verification (`authn::jwt`) on fuzzed tokens.
//!
//! The first byte picks the mode:
//! - even: the rest is a raw token, given to `unverified_hints` (the log hints read
//!   without verifying) and to `JwtVerifier::verify` with a fixed HS256/HS384 secret;
//! - odd: the rest is a header and a payload JSON text (split at a 0xFF byte), which the
//!   target encodes and signs with the fixed secret, so fuzzing reaches the claim checks
//!   behind the signature.
//!
//! Invariants: hints are printable ASCII of at most 128 characters; a strict base64url
//! segment has one spelling; a token that verifies names our issuer and audience, a
//! non-empty subject, an expiry not past, an allowed algorithm, and clean roles/scopes.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use palisade_fuzz::{b64url, block_on, fields};
use palisade_gateway::authn::jwt::{JwtVerifier, b64url_decode, unverified_hints};
use palisade_gateway::config::{JwtAlgorithm, JwtConfig, JwtKeySource};
use secrecy::SecretString;
use serde_json::Value;

/// A made-up test secret (not used anywhere else).
const SECRET: &str = "fuzz-only-hmac-secret-0123456789abcdef";
const ISSUER: &str = "https://issuer.fuzz.example";
const AUDIENCE: &str = "orders-api";
const LEEWAY_SECS: f64 = 30.0;

fn verifier() -> &'static JwtVerifier {
    static VERIFIER: OnceLock<JwtVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        JwtVerifier::new(&JwtConfig {
            issuer: ISSUER.to_owned(),
            audiences: vec![AUDIENCE.to_owned(), "other-api".to_owned()],
            algorithms: vec![JwtAlgorithm::HS256, JwtAlgorithm::HS384],
            keys: JwtKeySource::Secret(vec![SecretString::from(SECRET)]),
            roles_claim: "realm_access.roles".to_owned(),
            leeway: Duration::from_secs(30),
            max_token_bytes: 8 * 1024,
            jwks_refresh: Duration::from_secs(600),
            jwks_cooldown: Duration::from_secs(30),
        })
        .expect("the fuzz verifier builds")
    })
}

fn check_hints(token: &str) {
    let hints = unverified_hints(token);
    for value in [&hints.kid, &hints.alg, &hints.iss].into_iter().flatten() {
        assert!(value.chars().count() <= 128, "hint too long: {value:?}");
        assert!(
            value.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "hint not log-safe: {value:?}"
        );
    }
}

fn check_segments(token: &str) {
    for segment in token.split('.').take(4) {
        if let Some(bytes) = b64url_decode(segment) {
            assert_eq!(b64url(&bytes), segment, "two spellings of one segment");
        }
    }
}

fn verify(token: &str) {
    let Ok(verified) = block_on(verifier().verify(token)) else {
        return;
    };
    let mut parts = token.split('.');
    let header: Value = serde_json::from_slice(&b64url_decode(parts.next().unwrap()).unwrap())
        .expect("a verified header is JSON");
    assert!(
        matches!(header["alg"].as_str(), Some("HS256" | "HS384")),
        "verified with alg {:?}",
        header["alg"]
    );
    assert!(!verified.subject.is_empty());
    assert_eq!(verified.issuer, ISSUER);
    assert_eq!(verified.claims["iss"], ISSUER);
    let aud = &verified.claims["aud"];
    let ours = |a: &Value| matches!(a.as_str(), Some(AUDIENCE | "other-api"));
    assert!(ours(aud) || aud.as_array().is_some_and(|list| list.iter().any(ours)));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let exp = verified.claims["exp"]
        .as_f64()
        .expect("a verified token has exp");
    assert!(exp + LEEWAY_SECS + 5.0 > now, "expired token verified");
    for entry in verified.roles.iter().chain(&verified.scopes) {
        assert!(!entry.is_empty() && entry.bytes().all(|b| b.is_ascii_graphic() && b != b','));
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let parts = fields(rest, 2);
        let signing_input = format!(
            "{}.{}",
            b64url(parts[0].as_bytes()),
            b64url(parts[1].as_bytes())
        );
        let alg = if parts[0].contains("HS384") {
            Algorithm::HS384
        } else {
            Algorithm::HS256
        };
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, alg)
            .expect("HMAC signing cannot fail");
        format!("{signing_input}.{signature}")
    };
    check_hints(&token);
    check_segments(&token);
    verify(&token);
});
