//! Tests of JWT verification: each algorithm, every rejection (alg, headers, format,
//! signature, claims) and the key sources (file, JWKS, discovery) with refresh and rotation.

use std::time::Duration;

use palisade_testkit::jwks::{JwksServer, SigningKey, b64url, b64url_decode, now_secs};
use secrecy::SecretString;
use serde_json::json;

use super::*;

#[test]
fn roles_that_would_split_upstream_are_dropped() {
    let claim = serde_json::json!(["customer", "customer,admin", "a b", "ok-role", "tab\there"]);
    assert_eq!(string_list(Some(&claim)), ["customer", "ok-role"]);
    let scope = serde_json::json!("orders:read  profile");
    assert_eq!(string_list(Some(&scope)), ["orders:read", "profile"]);
}

const AUDIENCE: &str = "orders-api";

fn config(keys: JwtKeySource, issuer: &str, algorithms: &[JwtAlgorithm]) -> JwtConfig {
    JwtConfig {
        issuer: issuer.to_owned(),
        audiences: vec![AUDIENCE.to_owned(), "other-api".to_owned()],
        algorithms: algorithms.to_vec(),
        keys,
        roles_claim: "roles".to_owned(),
        leeway: Duration::from_secs(30),
        max_token_bytes: 8 * 1024,
        jwks_refresh: Duration::from_secs(600),
        jwks_cooldown: Duration::from_secs(30),
    }
}

fn jwks_url(server: &JwksServer) -> JwtKeySource {
    JwtKeySource::JwksUrl(server.jwks_url().parse().unwrap())
}

fn verifier_for(server: &JwksServer, algorithms: &[JwtAlgorithm]) -> JwtVerifier {
    JwtVerifier::new(&config(jwks_url(server), &server.issuer(), algorithms)).unwrap()
}

/// An issuer with one key for `alg`, and a verifier allowing `allowed` from its JWKS URL.
async fn issuer_with(
    alg: Algorithm,
    allowed: &[JwtAlgorithm],
) -> (JwksServer, String, JwtVerifier) {
    let server = JwksServer::start().await;
    let kid = server.add_key(alg);
    let verifier = verifier_for(&server, allowed);
    (server, kid, verifier)
}

async fn rs256() -> (JwksServer, String, JwtVerifier) {
    issuer_with(Algorithm::RS256, &[JwtAlgorithm::RS256]).await
}

fn claims(server: &JwksServer) -> Value {
    server.claims("alice", AUDIENCE)
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

/// A token from raw segments (already-encoded header and payload, any signature).
fn raw_token(header: &str, payload: &str, signature: &str) -> String {
    format!("{header}.{payload}.{signature}")
}

async fn assert_valid(alg: Algorithm, allowed: JwtAlgorithm) {
    let (server, kid, verifier) = issuer_with(alg, &[allowed]).await;
    let token = server.sign(&kid, claims(&server));
    let verified = verifier.verify(&token).await.expect("valid token");
    assert_eq!(verified.subject, "alice");
    assert_eq!(verified.issuer, server.issuer());
    assert_eq!(verified.kid.as_deref(), Some(kid.as_str()));
    assert!(verified.token_id.as_deref().unwrap().starts_with("jti-"));
    assert_eq!(verified.claims["aud"], AUDIENCE);
    assert_eq!(server.fetch_count(), 1);
    // Cached: a second token costs no fetch.
    verifier.verify(&token).await.expect("valid again");
    assert_eq!(server.fetch_count(), 1);
}

/// A token verified once is remembered by its exact bytes and key: using it again skips
/// the signature check but not the claims (it still expires), and a token that differs
/// in its signature is verified, and refused, afresh — and never remembered.
#[tokio::test]
async fn remembered_tokens_still_expire_and_forgeries_are_never_remembered() {
    let server = JwksServer::start().await;
    let kid = server.add_key(Algorithm::ES256);
    let mut config = config(jwks_url(&server), &server.issuer(), &[JwtAlgorithm::ES256]);
    config.leeway = Duration::ZERO;
    let verifier = JwtVerifier::new(&config).unwrap();
    // Two seconds at least (one, were `now` about to tick over), and short enough to wait.
    let exp = now_secs() + 2;
    let token = server.sign(&kid, with(claims(&server), "exp", json!(exp)));
    assert_eq!(verifier.verify(&token).await.unwrap().subject, "alice");
    assert_eq!(verifier.inner.verified.entries(), 1);
    assert_eq!(verifier.verify(&token).await.unwrap().subject, "alice");

    let (head, signature) = token.rsplit_once('.').unwrap();
    let mut forged: Vec<u8> = signature.bytes().collect();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head}.{}", String::from_utf8(forged).unwrap());
    assert_eq!(
        verifier.verify(&forged).await.unwrap_err(),
        JwtRejection::BadSignature
    );
    assert_eq!(
        verifier.inner.verified.entries(),
        1,
        "the forgery is not remembered"
    );

    while now_secs() < exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::Expired
    );
}

// --- valid tokens, one per algorithm family -------------------------------------------

#[tokio::test]
async fn valid_rs256() {
    assert_valid(Algorithm::RS256, JwtAlgorithm::RS256).await;
}

#[tokio::test]
async fn valid_ps256() {
    assert_valid(Algorithm::PS256, JwtAlgorithm::PS256).await;
}

#[tokio::test]
async fn valid_es256() {
    assert_valid(Algorithm::ES256, JwtAlgorithm::ES256).await;
}

#[tokio::test]
async fn valid_es384() {
    assert_valid(Algorithm::ES384, JwtAlgorithm::ES384).await;
}

#[tokio::test]
async fn valid_eddsa() {
    assert_valid(Algorithm::EdDSA, JwtAlgorithm::EdDSA).await;
}

/// During a rotation (`secret = [new, old]`) tokens signed with either verify; one
/// signed with neither is a bad signature; once the old one is dropped, its tokens fail.
#[tokio::test]
async fn hs256_with_two_secrets_during_a_rotation() {
    let server = JwksServer::start().await; // only for claims and signing
    let (new, old) = (
        "the-new-shared-secret-for-hs256-0123456789",
        "the-old-shared-secret-for-hs256-0123456789",
    );
    let verifier = |list: &[&str]| {
        JwtVerifier::new(&config(
            JwtKeySource::Secret(list.iter().map(|s| SecretString::from(*s)).collect()),
            &server.issuer(),
            &[JwtAlgorithm::HS256],
        ))
        .unwrap()
    };
    let header = json!({ "alg": "HS256", "typ": "JWT" });
    let sign = |secret: &str| {
        server.sign_with_header(
            header.clone(),
            claims(&server),
            SigningKey::Hmac(secret.as_bytes()),
        )
    };
    let during = verifier(&[new, old]);
    for secret in [new, old] {
        let verified = during.verify(&sign(secret)).await.expect("either secret");
        assert_eq!(verified.subject, "alice");
    }
    let neither = sign("a-third-secret-that-nobody-configured-0123");
    assert_eq!(
        during.verify(&neither).await.unwrap_err(),
        JwtRejection::BadSignature
    );
    let after = verifier(&[new]);
    assert!(after.verify(&sign(new)).await.is_ok());
    assert_eq!(
        after.verify(&sign(old)).await.unwrap_err(),
        JwtRejection::BadSignature
    );
}

#[tokio::test]
async fn valid_hs256_with_a_secret() {
    let server = JwksServer::start().await; // only for claims and signing
    let secret = "a-long-shared-secret-for-hs256-tests-0123456789";
    let verifier = JwtVerifier::new(&config(
        JwtKeySource::Secret(vec![SecretString::from(secret)]),
        &server.issuer(),
        &[JwtAlgorithm::HS256],
    ))
    .unwrap();
    let header = json!({ "alg": "HS256", "typ": "JWT" });
    let token = server.sign_with_header(
        header.clone(),
        claims(&server),
        SigningKey::Hmac(secret.as_bytes()),
    );
    let verified = verifier.verify(&token).await.expect("valid HS256");
    assert_eq!(verified.subject, "alice");
    assert_eq!(verified.kid, None);

    let forged =
        server.sign_with_header(header, claims(&server), SigningKey::Hmac(b"another secret"));
    assert_eq!(
        verifier.verify(&forged).await.unwrap_err(),
        JwtRejection::BadSignature
    );

    // An asymmetric token is refused by a secret-keyed verifier.
    let kid = server.add_key(Algorithm::RS256);
    let rsa = server.sign(&kid, claims(&server));
    assert_eq!(
        verifier.verify(&rsa).await.unwrap_err(),
        JwtRejection::AlgorithmNotAllowed
    );
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn valid_with_jwks_file() {
    let server = JwksServer::start().await;
    let kid = server.add_key(Algorithm::ES256);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, server.jwks().to_string()).unwrap();
    let verifier = JwtVerifier::new(&config(
        JwtKeySource::JwksFile(path.clone()),
        &server.issuer(),
        &[JwtAlgorithm::ES256],
    ))
    .unwrap();
    let token = server.sign(&kid, claims(&server));
    assert_eq!(verifier.verify(&token).await.unwrap().subject, "alice");
    assert_eq!(server.fetch_count(), 0);

    let other = server.add_unpublished_key(Algorithm::ES256);
    let token = server.sign(&other, claims(&server));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::UnknownKey
    );

    // Build errors: a missing file, a file with no usable key.
    let missing = config(
        JwtKeySource::JwksFile(dir.path().join("nope.json")),
        "i",
        &[JwtAlgorithm::ES256],
    );
    assert!(
        JwtVerifier::new(&missing)
            .unwrap_err()
            .contains("nope.json")
    );
    let empty_path = dir.path().join("empty.json");
    std::fs::write(&empty_path, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
    let empty = config(
        JwtKeySource::JwksFile(empty_path),
        "i",
        &[JwtAlgorithm::ES256],
    );
    assert!(
        JwtVerifier::new(&empty)
            .unwrap_err()
            .contains("no usable keys")
    );
}

// --- algorithm attacks ------------------------------------------------------------------

#[tokio::test]
async fn alg_none_is_rejected_in_every_spelling() {
    let (server, kid, verifier) = rs256().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": kid });
        let unsigned =
            server.sign_with_header(header.clone(), claims(&server), SigningKey::Unsigned);
        assert!(unsigned.ends_with('.'));
        assert_eq!(
            verifier.verify(&unsigned).await.unwrap_err(),
            JwtRejection::AlgorithmNotAllowed,
            "{alg}"
        );
        // Even with a real signature attached.
        let signed = server.sign_with_header(header, claims(&server), SigningKey::Kid(&kid));
        assert_eq!(
            verifier.verify(&signed).await.unwrap_err(),
            JwtRejection::AlgorithmNotAllowed,
            "{alg}"
        );
    }
    // Rejected from the header alone: no key was ever looked up.
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn hs256_keyed_with_the_rsa_public_key_is_rejected() {
    // The RS256→HS256 key-confusion trick: HMAC-sign with the issuer's public key PEM,
    // hoping the verifier feeds "the key" to HMAC.
    let (server, kid, verifier) = rs256().await;
    let pem = server.public_pem(&kid);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    for alg in ["HS256", "HS384", "HS512"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": kid });
        let forged =
            server.sign_with_header(header, claims(&server), SigningKey::Hmac(pem.as_bytes()));
        assert_eq!(
            verifier.verify(&forged).await.unwrap_err(),
            JwtRejection::AlgorithmNotAllowed,
            "{alg}"
        );
    }
    // Without a kid too.
    let header = json!({ "alg": "HS256" });
    let forged = server.sign_with_header(header, claims(&server), SigningKey::Hmac(pem.as_bytes()));
    assert_eq!(
        verifier.verify(&forged).await.unwrap_err(),
        JwtRejection::AlgorithmNotAllowed
    );
    assert_eq!(server.fetch_count(), 0);

    // A verifier cannot even be built to allow HS256 next to an asymmetric key set.
    let mixed = config(
        jwks_url(&server),
        &server.issuer(),
        &[JwtAlgorithm::RS256, JwtAlgorithm::HS256],
    );
    assert!(JwtVerifier::new(&mixed).is_err());
    let secret_rsa = config(
        JwtKeySource::Secret(vec![SecretString::from("s")]),
        &server.issuer(),
        &[JwtAlgorithm::HS256, JwtAlgorithm::RS256],
    );
    assert!(JwtVerifier::new(&secret_rsa).is_err());
}

#[tokio::test]
async fn alg_outside_the_allow_list_is_rejected() {
    let server = JwksServer::start().await;
    let rsa = server.add_key(Algorithm::RS256);
    let ec = server.add_key(Algorithm::ES256);
    let verifier = verifier_for(&server, &[JwtAlgorithm::RS256]);
    // A real ES256 token from a published key, but ES256 is not allowed.
    let token = server.sign(&ec, claims(&server));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::AlgorithmNotAllowed
    );
    // RS512 with the RSA key: same family, still not in the list.
    let header = json!({ "alg": "RS512", "kid": rsa });
    let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(&rsa));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::AlgorithmNotAllowed
    );
    // Names we do not know, and a non-string alg.
    for alg in [
        json!("XS256"),
        json!("rs256"),
        json!(""),
        json!(256),
        json!(null),
    ] {
        let header = json!({ "alg": alg, "kid": rsa });
        let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(&rsa));
        let err = verifier.verify(&token).await.unwrap_err();
        assert!(
            matches!(
                err,
                JwtRejection::AlgorithmNotAllowed | JwtRejection::Malformed
            ),
            "{alg}: {err:?}"
        );
    }
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn kid_of_a_key_that_cannot_verify_the_alg_is_rejected() {
    let server = JwksServer::start().await;
    let ec = server.add_key(Algorithm::ES256);
    let rsa = server.add_key(Algorithm::RS256);
    let verifier = verifier_for(&server, &[JwtAlgorithm::RS256, JwtAlgorithm::ES256]);
    // Header says RS256 and names the EC key's kid (signed by the RSA key).
    let header = json!({ "alg": "RS256", "kid": ec });
    let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(&rsa));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::AlgorithmNotAllowed
    );
}

// --- header parameters that are never followed --------------------------------------------

#[tokio::test]
async fn jku_x5u_jwk_x5c_and_crit_headers_are_rejected() {
    let (server, kid, verifier) = rs256().await;
    // Warm the cache, so any later fetch would show.
    verifier
        .verify(&server.sign(&kid, claims(&server)))
        .await
        .unwrap();
    assert_eq!(server.fetch_count(), 1);

    let attacker = server.add_unpublished_key(Algorithm::RS256);
    let cases = [
        ("jku", json!(server.jwks_url())),
        ("x5u", json!(format!("http://{}/cert.pem", server.addr()))),
        ("jwk", server.jwk(&attacker)),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
        ("crit", json!(["exp"])),
        ("crit", json!(["b64"])),
    ];
    for (name, value) in cases {
        for signer in [kid.as_str(), attacker.as_str()] {
            let mut header = json!({ "alg": "RS256", "typ": "JWT", "kid": signer });
            header[name] = value.clone();
            let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(signer));
            assert_eq!(
                verifier.verify(&token).await.unwrap_err(),
                JwtRejection::UnsupportedHeader,
                "{name}"
            );
        }
    }
    // Nothing was fetched because of them (the jku pointed right at the JWKS).
    assert_eq!(server.fetch_count(), 1);
}

// --- size and shape ------------------------------------------------------------------------

#[tokio::test]
async fn oversize_tokens_are_rejected_first() {
    let (server, kid, _) = rs256().await;
    let token = server.sign(&kid, with(claims(&server), "pad", json!("x".repeat(600))));
    let mut cfg = config(jwks_url(&server), &server.issuer(), &[JwtAlgorithm::RS256]);
    cfg.max_token_bytes = token.len();
    let exact = JwtVerifier::new(&cfg).unwrap();
    assert!(exact.verify(&token).await.is_ok());
    cfg.max_token_bytes = token.len() - 1;
    let smaller = JwtVerifier::new(&cfg).unwrap();
    assert_eq!(
        smaller.verify(&token).await.unwrap_err(),
        JwtRejection::TooLarge
    );
    // Checked before parsing: garbage over the limit is TooLarge, not Malformed.
    let garbage = "!".repeat(9000);
    assert_eq!(
        exact.verify(&garbage).await.unwrap_err(),
        JwtRejection::TooLarge
    );
    assert_eq!(server.fetch_count(), 1);
}

#[tokio::test]
async fn wrong_segment_counts_are_malformed() {
    let (server, kid, verifier) = rs256().await;
    let token = server.sign(&kid, claims(&server));
    let segments: Vec<&str> = token.split('.').collect();
    let two = format!("{}.{}", segments[0], segments[1]);
    let four = format!("{token}.{}", segments[2]);
    let five = format!("{token}.x.y");
    for bad in [
        two.as_str(),
        four.as_str(),
        five.as_str(),
        "",
        ".",
        "..",
        "abc",
    ] {
        assert_eq!(
            verifier.verify(bad).await.unwrap_err(),
            JwtRejection::Malformed,
            "{bad:?}"
        );
    }
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn malformed_base64_is_rejected() {
    let (server, kid, verifier) = rs256().await;
    let token = server.sign(&kid, claims(&server));
    let s: Vec<&str> = token.split('.').collect();
    let cases = [
        // Standard-alphabet characters, padding, whitespace, junk.
        raw_token(
            &s[0].replacen(|c: char| c.is_ascii_alphabetic(), "+", 1),
            s[1],
            s[2],
        ),
        raw_token(&format!("{}=", s[0]), s[1], s[2]),
        raw_token(s[0], &format!("{} ", s[1]), s[2]),
        raw_token(s[0], &format!("{}!", s[1]), s[2]),
        raw_token(s[0], s[1], &format!("{}/", s[2])),
        // An impossible length (4n+1).
        raw_token(
            s[0],
            &format!("{}A", &s[1][..s[1].len() - s[1].len() % 4]),
            s[2],
        ),
        // Non-zero unused bits in the last character ("QR" is "A" with a stray bit).
        raw_token(&b64url(br#"{"alg":"RS256"}"#), "QR", s[2]),
    ];
    for bad in &cases {
        assert_eq!(
            verifier.verify(bad).await.unwrap_err(),
            JwtRejection::Malformed,
            "{bad}"
        );
    }
    assert_eq!(server.fetch_count(), 0);
}

#[tokio::test]
async fn malformed_json_is_rejected() {
    let (server, kid, verifier) = rs256().await;
    let good_header = b64url(format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#).as_bytes());
    let good_payload = b64url(claims(&server).to_string().as_bytes());
    let cases = [
        raw_token(&b64url(b"{\"alg\":\"RS256\""), &good_payload, "AAAA"),
        raw_token(&b64url(b"[\"RS256\"]"), &good_payload, "AAAA"),
        raw_token(&b64url(b"\"RS256\""), &good_payload, "AAAA"),
        raw_token(&b64url(b"\xff\xfe"), &good_payload, "AAAA"),
        // Duplicate members: two algs, two subs (parser-differential tricks).
        raw_token(
            &b64url(br#"{"alg":"RS256","alg":"none"}"#),
            &good_payload,
            "AAAA",
        ),
        raw_token(&good_header, &b64url(b"{not json}"), "AAAA"),
        raw_token(&good_header, &b64url(b"[1,2,3]"), "AAAA"),
        raw_token(
            &good_header,
            &b64url(br#"{"sub":"alice","sub":"admin"}"#),
            "AAAA",
        ),
        raw_token(&good_header, &b64url(b"{} trailing"), "AAAA"),
        // A kid that is not a string.
        raw_token(
            &b64url(br#"{"alg":"RS256","kid":7}"#),
            &good_payload,
            "AAAA",
        ),
    ];
    for bad in &cases {
        assert_eq!(
            verifier.verify(bad).await.unwrap_err(),
            JwtRejection::Malformed,
            "{bad}"
        );
    }
    // A correctly signed token whose time claim is not a number.
    let token = server.sign(&kid, with(claims(&server), "exp", json!("tomorrow")));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::Malformed
    );
    assert_eq!(server.fetch_count(), 1);
}

// --- keys and signatures ------------------------------------------------------------------

#[tokio::test]
async fn bad_signature_is_rejected() {
    let (server, kid, verifier) = issuer_with(Algorithm::ES256, &[JwtAlgorithm::ES256]).await;
    let token = server.sign(&kid, claims(&server));
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = b64url_decode(signature);
    bytes[10] ^= 0x01;
    let flipped = format!("{message}.{}", b64url(&bytes));
    assert_eq!(
        verifier.verify(&flipped).await.unwrap_err(),
        JwtRejection::BadSignature
    );

    // Claims changed after signing.
    let (header, _) = message.split_once('.').unwrap();
    let tampered_claims = with(claims(&server), "sub", json!("admin"));
    let tampered = raw_token(
        header,
        &b64url(tampered_claims.to_string().as_bytes()),
        signature,
    );
    assert_eq!(
        verifier.verify(&tampered).await.unwrap_err(),
        JwtRejection::BadSignature
    );

    // Signed by another key under a published kid.
    let impostor = server.add_unpublished_key(Algorithm::ES256);
    let header = json!({ "alg": "ES256", "kid": kid });
    let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(&impostor));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::BadSignature
    );

    // An empty signature.
    assert_eq!(
        verifier.verify(&format!("{message}.")).await.unwrap_err(),
        JwtRejection::BadSignature
    );
}

#[tokio::test]
async fn unknown_kid_is_rejected_after_one_refresh() {
    let (server, kid, verifier) = rs256().await;
    verifier
        .verify(&server.sign(&kid, claims(&server)))
        .await
        .unwrap();
    assert_eq!(server.fetch_count(), 1);
    let unpublished = server.add_unpublished_key(Algorithm::RS256);
    let token = server.sign(&unpublished, claims(&server));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::UnknownKey
    );
    assert_eq!(
        server.fetch_count(),
        2,
        "an unknown kid triggers exactly one refresh"
    );
}

#[tokio::test]
async fn token_without_kid_uses_the_only_suitable_key() {
    let (server, kid, verifier) = rs256().await;
    let header = json!({ "alg": "RS256", "typ": "JWT" });
    let token = server.sign_with_header(header.clone(), claims(&server), SigningKey::Kid(&kid));
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.kid, None);
    // With two RSA keys, a token without kid is ambiguous.
    let second = server.add_key(Algorithm::RS256);
    let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(&second));
    let server_fetches = server.fetch_count();
    let fresh = verifier_for(&server, &[JwtAlgorithm::RS256]);
    assert_eq!(
        fresh.verify(&token).await.unwrap_err(),
        JwtRejection::UnknownKey
    );
    assert_eq!(server.fetch_count(), server_fetches + 1);
}

#[tokio::test]
async fn key_rotation_at_the_issuer_is_picked_up() {
    let (server, old, verifier) = rs256().await;
    verifier
        .verify(&server.sign(&old, claims(&server)))
        .await
        .unwrap();
    // The issuer rotates: a new key is published, the old one withdrawn.
    let new = server.add_key(Algorithm::RS256);
    server.remove_key(&old);
    let token = server.sign(&new, claims(&server));
    assert_eq!(
        verifier.verify(&token).await.unwrap().kid.as_deref(),
        Some(new.as_str())
    );
    assert_eq!(server.fetch_count(), 2);
    // The same verifier keeps accepting the new key, from its cache.
    verifier.verify(&token).await.unwrap();
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_refresh_single_flight_then_cool_down() {
    let (server, kid, verifier) = rs256().await;
    verifier
        .verify(&server.sign(&kid, claims(&server)))
        .await
        .unwrap();
    assert_eq!(server.fetch_count(), 1);

    server.set_delay(Duration::from_millis(300));
    let unknown = server.add_unpublished_key(Algorithm::RS256);
    let token = server.sign(&unknown, claims(&server));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let verifier = verifier.clone();
        let token = token.clone();
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().unwrap_err(), JwtRejection::UnknownKey);
    }
    assert_eq!(
        server.fetch_count(),
        2,
        "20 concurrent unknown kids, one fetch"
    );

    // Within the cooldown another unknown kid is refused without asking the issuer,
    // even though it would now be found there.
    server.set_delay(Duration::ZERO);
    let another = server.add_key(Algorithm::RS256);
    let token = server.sign(&another, claims(&server));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::UnknownKey
    );
    assert_eq!(server.fetch_count(), 2);
    // Known keys keep working meanwhile.
    verifier
        .verify(&server.sign(&kid, claims(&server)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_fetches_once_for_concurrent_requests() {
    let (server, kid, verifier) = rs256().await;
    server.set_delay(Duration::from_millis(200));
    let token = server.sign(&kid, claims(&server));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let verifier = verifier.clone();
        let token = token.clone();
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().unwrap().subject, "alice");
    }
    assert_eq!(server.fetch_count(), 1);
}

#[tokio::test]
async fn building_the_verifier_fetches_nothing() {
    let server = JwksServer::start().await;
    server.add_key(Algorithm::RS256);
    let _verifier = verifier_for(&server, &[JwtAlgorithm::RS256]);
    let _discovery = JwtVerifier::new(&config(
        JwtKeySource::Discovery(server.discovery_url().parse().unwrap()),
        &server.issuer(),
        &[JwtAlgorithm::RS256],
    ))
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.fetch_count() + server.discovery_count(), 0);
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_at_build() {
    let cfg = config(
        JwtKeySource::JwksUrl("http://id.example.com/jwks.json".parse().unwrap()),
        "https://id.example.com/",
        &[JwtAlgorithm::RS256],
    );
    assert!(JwtVerifier::new(&cfg).unwrap_err().contains("https"));
}

#[tokio::test]
async fn stale_keys_are_served_while_the_issuer_fails() {
    let server = JwksServer::start().await;
    let kid = server.add_key(Algorithm::ES256);
    let mut cfg = config(jwks_url(&server), &server.issuer(), &[JwtAlgorithm::ES256]);
    cfg.jwks_refresh = Duration::from_millis(200);
    let verifier = JwtVerifier::new(&cfg).unwrap();
    let token = server.sign(&kid, claims(&server));
    verifier.verify(&token).await.unwrap();
    assert_eq!(server.fetch_count(), 1);

    server.set_failing(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Stale now: served anyway, and a background refresh is attempted (and fails).
    verifier.verify(&token).await.unwrap();
    wait_for_fetches(&server, 2).await;
    verifier.verify(&token).await.unwrap();
    // After a failure the issuer is left alone for the cooldown.
    tokio::time::sleep(Duration::from_millis(100)).await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test]
async fn no_keys_and_a_failing_issuer_is_keys_unavailable() {
    let (server, kid, verifier) = rs256().await;
    server.set_failing(true);
    let token = server.sign(&kid, claims(&server));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::KeysUnavailable
    );
    assert_eq!(server.fetch_count(), 1);
    // Within the cooldown, no new attempt.
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::KeysUnavailable
    );
    assert_eq!(server.fetch_count(), 1);

    // An issuer that is not there at all.
    let port = server.addr().port();
    drop(server);
    let cfg = config(
        JwtKeySource::JwksUrl(
            format!("http://127.0.0.1:{port}/jwks.json")
                .parse()
                .unwrap(),
        ),
        "http://127.0.0.1/",
        &[JwtAlgorithm::RS256],
    );
    let verifier = JwtVerifier::new(&cfg).unwrap();
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::KeysUnavailable
    );
}

#[tokio::test]
async fn key_set_is_refreshed_after_its_freshness_ends() {
    let server = JwksServer::start().await;
    let kid = server.add_key(Algorithm::RS256);
    let mut cfg = config(jwks_url(&server), &server.issuer(), &[JwtAlgorithm::RS256]);
    cfg.jwks_refresh = Duration::from_millis(200);
    let verifier = JwtVerifier::new(&cfg).unwrap();
    let token = server.sign(&kid, claims(&server));
    verifier.verify(&token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    verifier.verify(&token).await.unwrap();
    wait_for_fetches(&server, 2).await;

    // A Cache-Control max-age (bounded to at least 60 s) takes precedence over jwks_refresh.
    server.set_cache_max_age(Some(3600));
    let verifier = JwtVerifier::new(&cfg).unwrap();
    verifier.verify(&token).await.unwrap();
    let fetched = server.fetch_count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    verifier.verify(&token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.fetch_count(), fetched);
}

async fn wait_for_fetches(server: &JwksServer, n: usize) {
    for _ in 0..100 {
        if server.fetch_count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("expected {n} fetches, saw {}", server.fetch_count());
}

// --- OIDC discovery ---------------------------------------------------------------------------

#[tokio::test]
async fn discovery_finds_the_key_set() {
    let server = JwksServer::start().await;
    let kid = server.add_key(Algorithm::RS256);
    let discovery = JwtKeySource::Discovery(server.discovery_url().parse().unwrap());
    let verifier =
        JwtVerifier::new(&config(discovery, &server.issuer(), &[JwtAlgorithm::RS256])).unwrap();
    let token = server.sign(&kid, claims(&server));
    assert_eq!(verifier.verify(&token).await.unwrap().subject, "alice");
    assert_eq!((server.discovery_count(), server.fetch_count()), (1, 1));
    // Rotation through discovery: the jwks_uri is remembered, only the set is refetched.
    let new = server.add_key(Algorithm::RS256);
    verifier
        .verify(&server.sign(&new, claims(&server)))
        .await
        .unwrap();
    assert_eq!((server.discovery_count(), server.fetch_count()), (1, 2));
}

#[tokio::test]
async fn discovery_with_another_issuer_is_refused() {
    let server = JwksServer::start().await;
    let kid = server.add_key(Algorithm::RS256);
    let token = server.sign(&kid, claims(&server));
    server.set_issuer("https://evil.example/");
    let discovery = JwtKeySource::Discovery(server.discovery_url().parse().unwrap());
    let issuer = format!("http://{}/", server.addr());
    let verifier = JwtVerifier::new(&config(discovery, &issuer, &[JwtAlgorithm::RS256])).unwrap();
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::KeysUnavailable
    );
    assert_eq!((server.discovery_count(), server.fetch_count()), (1, 0));
}

#[tokio::test]
async fn discovery_pointing_to_plain_http_elsewhere_is_refused() {
    let server = JwksServer::start().await;
    let kid = server.add_key(Algorithm::RS256);
    server.set_discovery_jwks_uri(Some("http://keys.example.com/jwks.json"));
    let discovery = JwtKeySource::Discovery(server.discovery_url().parse().unwrap());
    let verifier =
        JwtVerifier::new(&config(discovery, &server.issuer(), &[JwtAlgorithm::RS256])).unwrap();
    let token = server.sign(&kid, claims(&server));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::KeysUnavailable
    );
    assert_eq!((server.discovery_count(), server.fetch_count()), (1, 0));
}

// --- claims -------------------------------------------------------------------------------------

#[tokio::test]
async fn expired_token_is_rejected() {
    let (server, kid, verifier) = rs256().await;
    let now = now_secs();
    let token = server.sign(&kid, with(claims(&server), "exp", json!(now - 120)));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::Expired
    );
    // Within the 30 s leeway it still passes.
    let token = server.sign(&kid, with(claims(&server), "exp", json!(now - 10)));
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn token_without_exp_is_rejected() {
    let (server, kid, verifier) = rs256().await;
    let token = server.sign(&kid, without(claims(&server), "exp"));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::MissingExpiry
    );
}

#[tokio::test]
async fn nbf_in_the_future_is_rejected() {
    let (server, kid, verifier) = rs256().await;
    let now = now_secs();
    let token = server.sign(&kid, with(claims(&server), "nbf", json!(now + 120)));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::NotYetValid
    );
    let token = server.sign(&kid, with(claims(&server), "nbf", json!(now + 10)));
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn iat_in_the_future_is_rejected() {
    let (server, kid, verifier) = rs256().await;
    let now = now_secs();
    let token = server.sign(&kid, with(claims(&server), "iat", json!(now + 120)));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::IssuedInFuture
    );
    let token = server.sign(&kid, with(claims(&server), "iat", json!(now + 10)));
    assert!(verifier.verify(&token).await.is_ok());
    let token = server.sign(&kid, without(claims(&server), "iat"));
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let (server, kid, verifier) = rs256().await;
    let issuer = server.issuer();
    let variants = [
        json!("https://evil.example/"),
        json!(issuer.trim_end_matches('/')),
        json!(issuer.to_uppercase()),
        json!([issuer]),
        json!(null),
    ];
    for iss in variants {
        let token = server.sign(&kid, with(claims(&server), "iss", iss.clone()));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::WrongIssuer,
            "{iss}"
        );
    }
    let token = server.sign(&kid, without(claims(&server), "iss"));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::WrongIssuer
    );
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let (server, kid, verifier) = rs256().await;
    for aud in [
        json!("billing-api"),
        json!(["billing-api", "x"]),
        json!([]),
        json!(""),
    ] {
        let token = server.sign(&kid, with(claims(&server), "aud", aud.clone()));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::WrongAudience,
            "{aud}"
        );
    }
    let token = server.sign(&kid, without(claims(&server), "aud"));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::WrongAudience
    );
    // An array naming one of ours is fine, and so is any configured audience.
    let token = server.sign(
        &kid,
        with(claims(&server), "aud", json!(["billing-api", AUDIENCE])),
    );
    assert!(verifier.verify(&token).await.is_ok());
    let token = server.sign(&kid, with(claims(&server), "aud", json!("other-api")));
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn missing_subject_is_rejected() {
    let (server, kid, verifier) = rs256().await;
    let token = server.sign(&kid, without(claims(&server), "sub"));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err(),
        JwtRejection::MissingSubject
    );
    for sub in [json!(""), json!(42), json!(null), json!(["alice"])] {
        let token = server.sign(&kid, with(claims(&server), "sub", sub.clone()));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::MissingSubject,
            "{sub}"
        );
    }
}

#[tokio::test]
async fn roles_from_a_dotted_claim_and_scopes_from_scope_and_scp() {
    let server = JwksServer::start().await;
    let kid = server.add_key(Algorithm::RS256);
    let mut cfg = config(jwks_url(&server), &server.issuer(), &[JwtAlgorithm::RS256]);
    cfg.roles_claim = "realm_access.roles".into();
    let verifier = JwtVerifier::new(&cfg).unwrap();

    let mut c = claims(&server);
    c["realm_access"] = json!({ "roles": ["customer", "admin", 7] });
    c["scope"] = json!("orders:read orders:write");
    c["scp"] = json!(["orders:read", "profile"]);
    let verified = verifier.verify(&server.sign(&kid, c)).await.unwrap();
    assert_eq!(verified.roles, ["customer", "admin"]);
    assert_eq!(verified.scopes, ["orders:read", "orders:write", "profile"]);

    // Roles as a space-separated string; scp as a string; no scope claim.
    let mut c = claims(&server);
    c["realm_access"] = json!({ "roles": "customer  auditor" });
    c["scp"] = json!("orders:read");
    let verified = verifier.verify(&server.sign(&kid, c)).await.unwrap();
    assert_eq!(verified.roles, ["customer", "auditor"]);
    assert_eq!(verified.scopes, ["orders:read"]);

    // Nothing at the path: no roles, no scopes.
    let verified = verifier
        .verify(&server.sign(&kid, claims(&server)))
        .await
        .unwrap();
    assert!(verified.roles.is_empty() && verified.scopes.is_empty());

    // A claim whose name contains dots (URL-namespaced) is taken as is.
    cfg.roles_claim = "https://example.com/roles".into();
    let verifier = JwtVerifier::new(&cfg).unwrap();
    let c = with(
        claims(&server),
        "https://example.com/roles",
        json!(["admin"]),
    );
    assert_eq!(
        verifier.verify(&server.sign(&kid, c)).await.unwrap().roles,
        ["admin"]
    );
}

// --- helpers ------------------------------------------------------------------------------------

#[tokio::test]
async fn hints_read_kid_and_iss_without_trusting_them() {
    let server = JwksServer::start().await;
    let kid = server.add_key(Algorithm::RS256);
    let token = server.sign(&kid, claims(&server));
    let hints = unverified_hints(&token);
    assert_eq!(hints.kid.as_deref(), Some(kid.as_str()));
    assert_eq!(hints.alg.as_deref(), Some("RS256"));
    assert_eq!(hints.iss, Some(server.issuer()));

    let header = json!({ "alg": "none", "kid": format!("evil\n\u{1b}[31m{}", "k".repeat(500)) });
    let forged = server.sign_with_header(header, claims(&server), SigningKey::Unsigned);
    let hints = unverified_hints(&forged);
    let kid = hints.kid.unwrap();
    assert!(kid.starts_with("evil??[31m"));
    assert_eq!(kid.len(), 128);
    assert_eq!(unverified_hints("garbage"), TokenHints::default());
}

#[test]
fn rejection_reasons_are_snake_case_and_distinct() {
    use JwtRejection::*;
    let all = [
        TooLarge,
        Malformed,
        AlgorithmNotAllowed,
        UnsupportedHeader,
        UnknownKey,
        BadSignature,
        MissingExpiry,
        Expired,
        NotYetValid,
        IssuedInFuture,
        WrongIssuer,
        WrongAudience,
        MissingSubject,
        KeysUnavailable,
    ];
    let reasons: std::collections::HashSet<_> = all.iter().map(|r| r.reason()).collect();
    assert_eq!(reasons.len(), all.len());
    for r in all {
        assert!(
            r.reason()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        );
        assert_eq!(r.to_string(), r.reason());
    }
}

#[test]
fn strict_base64url() {
    assert_eq!(super::b64url_decode("").unwrap(), b"");
    assert_eq!(super::b64url_decode("QQ").unwrap(), b"A");
    assert_eq!(super::b64url_decode("QUI").unwrap(), b"AB");
    assert_eq!(super::b64url_decode("QUJD").unwrap(), b"ABC");
    assert_eq!(super::b64url_decode("-_-_").unwrap(), [0xfb, 0xff, 0xbf]);
    for bad in ["QQ==", "QR", "QUJ", "Q", "QUJD+", "QU/D", "QU D"] {
        assert!(super::b64url_decode(bad).is_none(), "{bad}");
    }
    for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\x00\xfe"] {
        assert_eq!(super::b64url_decode(&b64url(data)).unwrap(), data);
    }
}
