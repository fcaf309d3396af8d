//! Tests of path canonicalization: the accepted and rejected tables, equivalence,
//! idempotence, and agreement with the fast path and a reference model.

use super::*;
use PathRejection::*;

fn ok(raw: &str) -> String {
    match canonicalize(raw) {
        Ok(p) => p.as_str().to_owned(),
        Err(e) => panic!("{raw:?} was rejected: {e:?}"),
    }
}

fn err(raw: &str) -> PathRejection {
    match canonicalize(raw) {
        Ok(p) => panic!("{raw:?} was accepted as {p}"),
        Err(e) => e,
    }
}

/// Inputs that are accepted, with their canonical form.
const ACCEPTED: &[(&str, &str)] = &[
    // already canonical (fast path)
    ("/", "/"),
    ("/api", "/api"),
    ("/api/orders", "/api/orders"),
    ("/api/orders/", "/api/orders/"),
    ("/api/orders/42", "/api/orders/42"),
    ("/a-b_c~d.e", "/a-b_c~d.e"),
    ("/a!$&'()*+,=:@b", "/a!$&'()*+,=:@b"),
    ("/.well-known/jwks.json", "/.well-known/jwks.json"),
    ("/...", "/..."),
    ("/a/.../b", "/a/.../b"),
    ("/.a/..b/a./b..", "/.a/..b/a./b.."),
    // dot segments
    ("/api/../admin", "/admin"),
    ("/api/./x", "/api/x"),
    ("/api/v1/../x", "/api/x"),
    ("/a/b/..", "/a/"),
    ("/a/b/.", "/a/b/"),
    ("/a/b/../", "/a/"),
    ("/a/./", "/a/"),
    ("/a/..", "/"),
    ("/.", "/"),
    ("/./", "/"),
    ("/a/b/c/../../d", "/a/d"),
    ("/a/./b/./c", "/a/b/c"),
    ("/api/%2e%2e/admin", "/admin"),
    ("/api/%2E%2E/admin", "/admin"),
    ("/api/.%2E/admin", "/admin"),
    ("/api/%2e./admin", "/admin"),
    ("/api/%2e/admin", "/api/admin"),
    ("/a/b/%2e%2e", "/a/"),
    // duplicate slashes
    ("//api", "/api"),
    ("//api///x", "/api/x"),
    ("/api//", "/api/"),
    ("//", "/"),
    ("///", "/"),
    ("/a//..//b", "/b"),
    ("//a//..//", "/"),
    // decoding unreserved characters
    ("/api/%7Euser", "/api/~user"),
    ("/api/%7euser", "/api/~user"),
    ("/api/%41", "/api/A"),
    ("/%61%62%63", "/abc"),
    ("/%30%39%2D%5F", "/09-_"),
    // kept escapes, upper-cased
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/caf%C3%A9", "/caf%C3%A9"),
    ("/a%20b", "/a%20b"),
    ("/a%3f", "/a%3F"),
    ("/a%23", "/a%23"),
    ("/a%2B", "/a%2B"),
    ("/%e2%82%ac", "/%E2%82%AC"),
    ("/%f0%9f%98%80", "/%F0%9F%98%80"),
    ("/%ef%bf%bf", "/%EF%BF%BF"),
];

#[test]
fn accepted_table() {
    for &(raw, want) in ACCEPTED {
        assert_eq!(ok(raw), want, "canonicalize({raw:?})");
    }
}

#[test]
fn rejected_table() {
    let cases: &[(&str, PathRejection)] = &[
        ("", NotOriginForm),
        ("api", NotOriginForm),
        ("*", NotOriginForm),
        ("http://example.com/a", NotOriginForm),
        ("%2F", NotOriginForm),
        ("/../admin", EscapesRoot),
        ("/..", EscapesRoot),
        ("/../", EscapesRoot),
        ("/a/../..", EscapesRoot),
        ("/a/../../b", EscapesRoot),
        ("/./..", EscapesRoot),
        ("//../a", EscapesRoot),
        ("//..//a/..", EscapesRoot),
        ("/%2e%2e", EscapesRoot),
        ("/api/%2e%2e/%2e%2e/admin", EscapesRoot),
        ("/api/orders%2F1", EncodedSlash),
        ("/api/orders%2f1", EncodedSlash),
        ("/%2f", EncodedSlash),
        ("/a/..%2f..%2fetc", EncodedSlash),
        ("/api/orders/1%00", ControlCharacter),
        ("/a%0a", ControlCharacter),
        ("/a%0D%0Ab", ControlCharacter),
        ("/a%1f", ControlCharacter),
        ("/a%7f", ControlCharacter),
        ("/a\0b", ControlCharacter),
        ("/a\nb", ControlCharacter),
        ("/a\tb", ControlCharacter),
        ("/a\x7fb", ControlCharacter),
        ("/api;x=1/orders", MatrixParameters),
        ("/api/orders;jsessionid=1", MatrixParameters),
        ("/;", MatrixParameters),
        ("/..;/admin", MatrixParameters),
        ("/a%zz", InvalidPercentEncoding),
        ("/a%2", InvalidPercentEncoding),
        ("/a%", InvalidPercentEncoding),
        ("/a%g1", InvalidPercentEncoding),
        ("/a%-1", InvalidPercentEncoding),
        ("/a%+1", InvalidPercentEncoding),
        ("/a%c3%z9", InvalidPercentEncoding),
        // an encoded '%' is a second layer of encoding; an encoded ';' is a ';'
        ("/a%25", DoubleEncoding),
        ("/%252e%252e/admin", DoubleEncoding),
        ("/a/%252E%252E/b", DoubleEncoding),
        ("/%25%32%65", DoubleEncoding),
        ("/a%3bb", MatrixParameters),
        ("/..%3B/admin", MatrixParameters),
        // look-alikes that NFKC turns into '.', '/', '\\'
        ("/%EF%BC%8E%EF%BC%8E/admin", Lookalike),
        ("/a%ef%bc%8fb", Lookalike),
        ("/a%EF%BC%BCb", Lookalike),
        ("/a%E2%80%A4", Lookalike),
        ("/a%e2%80%a5", Lookalike),
        ("/a%c0%ae", InvalidUtf8),
        ("/a%c0%ae%c0%ae/x", InvalidUtf8),
        ("/a%ff", InvalidUtf8),
        ("/a%80", InvalidUtf8),
        ("/a%c3", InvalidUtf8),
        ("/a%c3a", InvalidUtf8),
        ("/a%c3%41", InvalidUtf8),
        ("/a%e2%82", InvalidUtf8),
        ("/a%e0%80%af", InvalidUtf8),
        ("/a%ed%a0%80", InvalidUtf8),
        ("/a%f4%90%80%80", InvalidUtf8),
        ("/a%f5%80%80%80", InvalidUtf8),
        ("/a%c1%bf", InvalidUtf8),
        ("/a\\b", Backslash),
        ("/a%5cb", Backslash),
        ("/a%5Cb", Backslash),
        ("/..\\", Backslash),
        ("/a b", InvalidCharacter),
        ("/a\"b", InvalidCharacter),
        ("/a<b", InvalidCharacter),
        ("/a>b", InvalidCharacter),
        ("/a{b}", InvalidCharacter),
        ("/a|b", InvalidCharacter),
        ("/a^b", InvalidCharacter),
        ("/a`b", InvalidCharacter),
        ("/a[b]", InvalidCharacter),
        ("/a#b", InvalidCharacter),
        ("/a?b", InvalidCharacter),
        ("/café", InvalidCharacter),
    ];
    for &(raw, want) in cases {
        assert_eq!(err(raw), want, "canonicalize({raw:?})");
    }
}

#[test]
fn first_problem_wins() {
    assert_eq!(err("/../%2f"), EscapesRoot);
    assert_eq!(err("/%2f/.."), EncodedSlash);
    assert_eq!(err("/a;b%00"), MatrixParameters);
}

#[test]
fn reasons_are_fixed_and_short() {
    let all = [
        NotOriginForm,
        InvalidPercentEncoding,
        EncodedSlash,
        Backslash,
        ControlCharacter,
        MatrixParameters,
        InvalidUtf8,
        InvalidCharacter,
        EscapesRoot,
    ];
    for r in all {
        assert!(!r.reason().is_empty() && r.reason().len() < 80, "{r:?}");
        assert_eq!(r.to_string(), r.reason());
    }
    assert_eq!(EncodedSlash.reason(), "the path contains an encoded slash");
}

#[test]
fn trailing_slash_is_distinct() {
    assert_ne!(ok("/api/orders/"), ok("/api/orders"));
    assert_eq!(
        canonicalize("/api/orders//").unwrap(),
        canonicalize("/api/orders/").unwrap()
    );
}

#[test]
fn equivalent_spellings_are_equal() {
    let a = canonicalize("/api/orders").unwrap();
    for alt in [
        "//api/orders",
        "/api/./orders",
        "/x/../api/orders",
        "/%61pi/%6Frders",
        "/api/x/%2e%2e/orders",
    ] {
        assert_eq!(canonicalize(alt).unwrap(), a, "{alt}");
    }
    assert_eq!(a.to_string(), "/api/orders");
}

#[test]
fn idempotent_over_table() {
    for &(raw, _) in ACCEPTED {
        let once = canonicalize(raw).unwrap();
        let twice = canonicalize(once.as_str()).unwrap();
        assert_eq!(once, twice, "not idempotent for {raw:?}");
    }
}

#[test]
fn fast_path_agrees_with_general_path() {
    for &(raw, _) in ACCEPTED {
        let general = normalize(raw.as_bytes()).unwrap();
        assert_eq!(canonicalize(raw).unwrap(), general, "{raw:?}");
        if is_already_canonical(raw.as_bytes()) {
            assert_eq!(general.as_str(), raw, "fast path would change {raw:?}");
        }
    }
}

/// A deliberately naive model of the rules (several passes, `split`), to cross-check
/// the one-pass implementation on random inputs. Only acceptance and output are
/// compared: which problem is reported first may differ.
fn reference(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') {
        return None;
    }
    // pass 1: escapes and characters; each run of escaped non-ASCII bytes must be UTF-8
    let mut text = String::new();
    let mut run: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            if !h.bytes().all(|x| x.is_ascii_hexdigit()) {
                return None;
            }
            let v = u8::from_str_radix(h, 16).ok()?;
            if v >= 0x80 {
                run.push(v);
                text.push_str(&format!("%{v:02X}"));
                i += 3;
                continue;
            }
            std::str::from_utf8(&run).ok()?;
            run.clear();
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                text.push(char::from(v));
            } else if v == b'/' || v == b'\\' || v == b'%' || v == b';' || v < 0x20 || v == 0x7f {
                return None;
            } else {
                text.push_str(&format!("%{v:02X}"));
            }
            i += 3;
        } else if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@/".contains(&c) {
            std::str::from_utf8(&run).ok()?;
            run.clear();
            text.push(char::from(c));
            i += 1;
        } else {
            return None;
        }
    }
    std::str::from_utf8(&run).ok()?;
    // pass 2: look-alikes of '.', '/' and '\\' (U+FF0E, U+FF0F, U+FF3C, U+2024, U+2025)
    for lookalike in [
        "%EF%BC%8E",
        "%EF%BC%8F",
        "%EF%BC%BC",
        "%E2%80%A4",
        "%E2%80%A5",
    ] {
        if text.contains(lookalike) {
            return None;
        }
    }
    // pass 3: segments
    let segs: Vec<&str> = text[1..].split('/').collect();
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing = false;
    for (k, seg) in segs.iter().enumerate() {
        let last = k + 1 == segs.len();
        match *seg {
            "" => trailing = last || trailing,
            "." => trailing = last,
            ".." => {
                stack.pop()?;
                trailing = last;
            }
            s => {
                stack.push(s);
                trailing = false;
            }
        }
    }
    let mut out = String::from("/");
    out.push_str(&stack.join("/"));
    if trailing && !stack.is_empty() {
        out.push('/');
    }
    Some(out)
}

#[test]
fn reference_model_agrees_on_table() {
    for &(raw, _) in ACCEPTED {
        assert_eq!(reference(raw), Some(ok(raw)), "{raw:?}");
    }
}

fn check_output_shape(input: &str, out: &str) {
    assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    for bad in ["//", "/./", "/../", ";", "\\"] {
        assert!(!out.contains(bad), "{input:?} -> {out:?} contains {bad:?}");
    }
    assert!(
        !out.ends_with("/.") && !out.ends_with("/.."),
        "{input:?} -> {out:?}"
    );
    let b = out.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = &b[i + 1..i + 3];
            assert!(
                hex.iter()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c)),
                "{input:?} -> {out:?} has a lower-case or bad escape"
            );
            let v = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
            assert_ne!(
                CLASS[usize::from(v)],
                UNRESERVED,
                "{input:?} -> {out:?} left {v:#x} escaped"
            );
            assert!(
                !matches!(v, b'/' | b'\\') && v >= 0x20 && v != 0x7f,
                "{input:?} -> {out:?}"
            );
            i += 3;
        } else {
            assert!(
                matches!(CLASS[usize::from(b[i])], UNRESERVED | PCHAR | SLASH),
                "{input:?} -> {out:?}"
            );
            i += 1;
        }
    }
}

#[test]
fn pseudo_random_inputs() {
    const FRAGMENTS: &[&str] = &[
        "/", "/", "/", ".", "..", "%2e", "%2E", "%2f", "a", "b", "%41", ";", "%00", "\\", "%c0%ae",
        "%25", "~", "%7e", "%c3%a9", "%C3", "%a9", "%", "2e", "%5c", " ", "%20", "//", "/..", "/.",
        ":", "@", "=",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..50_000 {
        let mut input = String::new();
        if next() % 16 != 0 {
            input.push('/');
        }
        for _ in 0..(next() % 12) {
            input.push_str(FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize]);
        }
        let result = canonicalize(&input);
        assert_eq!(
            result.as_ref().ok().map(|p| p.as_str().to_owned()),
            reference(&input),
            "{input:?}"
        );
        match result {
            Ok(p) => {
                accepted += 1;
                check_output_shape(&input, p.as_str());
                assert_eq!(
                    canonicalize(p.as_str()).as_ref(),
                    Ok(&p),
                    "not idempotent: {input:?}"
                );
                assert!(is_already_canonical(p.as_str().as_bytes()) || p.as_str().contains('%'));
            }
            Err(_) => rejected += 1,
        }
    }
    // The generator must exercise both outcomes to mean anything.
    assert!(
        accepted > 5_000 && rejected > 5_000,
        "accepted {accepted}, rejected {rejected}"
    );
}
