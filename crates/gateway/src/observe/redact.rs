//! The last line of defence against secrets in logs: every log line is scanned before it is
//! written, and what looks like a credential is masked wherever it appears.
//!
//! Why on the finished line: fields are redacted where they are logged (query values by
//! name, no credential headers, key ids instead of keys), but a secret can still arrive
//! inside any string a client controls — a path, a header value quoted in an error, a JSON
//! member name. Masking the serialized line catches all of them without every call site
//! having to remember. Only JSON string contents are touched, never numbers or structure:
//! - a Palisade API key `pal_<id>_<secret>` keeps its public id: `pal_<id>_***`;
//! - a JWT (`eyJ….….…`) becomes `jwt:<fingerprint>`, a keyed hash (per process) that
//!   correlates lines about one token without revealing it;
//! - a card number (13–19 digits, optionally grouped by single spaces or dashes, passing
//!   the Luhn check, not part of a longer word) keeps its last four: `card:****1234`.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::OnceLock;

/// Masks credentials inside the JSON strings of one serialized log line.
pub fn mask_line(line: &str) -> Cow<'_, str> {
    // Fast path: nothing that could start a secret.
    if !line.contains("pal_") && !line.contains("eyJ") && !has_long_digit_run(line) {
        return Cow::Borrowed(line);
    }
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if !in_string {
            in_string = b == b'"';
            out.push(char::from(b));
            i += 1;
            continue;
        }
        match b {
            b'\\' => {
                // An escape pair is copied whole (so `\"` never ends the string here).
                let end = (i + 2).min(bytes.len());
                out.push_str(&line[i..end]);
                i = end;
            }
            b'"' => {
                in_string = false;
                out.push('"');
                i += 1;
            }
            _ => {
                let at_boundary = i == 0 || !is_word(bytes[i - 1]);
                if let Some((len, masked)) = at_boundary.then(|| secret_at(&line[i..])).flatten() {
                    out.push_str(&masked);
                    i += len;
                } else {
                    // Copy one whole character.
                    let len = utf8_len(b);
                    let end = (i + len).min(bytes.len());
                    out.push_str(&line[i..end]);
                    i = end;
                }
            }
        }
    }
    Cow::Owned(out)
}

/// A secret starting at the beginning of `text`: its length and its masked form.
fn secret_at(text: &str) -> Option<(usize, String)> {
    api_key_at(text)
        .or_else(|| jwt_at(text))
        .or_else(|| card_at(text))
}

/// `pal_` + 12 base62 + `_` + 43 base62, not followed by another word character.
fn api_key_at(text: &str) -> Option<(usize, String)> {
    let rest = text.strip_prefix("pal_")?;
    let id = rest.get(..12)?;
    let secret = rest.get(13..13 + 43)?;
    let separator = rest.as_bytes().get(12)?;
    let len = 4 + 12 + 1 + 43;
    let ends = text.as_bytes().get(len).is_none_or(|b| !is_word(*b));
    let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    (*separator == b'_' && base62(id) && base62(secret) && ends)
        .then(|| (len, format!("pal_{id}_***")))
}

/// Three base64url segments separated by dots, the first a JSON header (`eyJ`).
fn jwt_at(text: &str) -> Option<(usize, String)> {
    if !text.starts_with("eyJ") {
        return None;
    }
    let bytes = text.as_bytes();
    let segment = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-' || **b == b'_')
            .count()
    };
    let header = segment(0);
    if header < 10 || bytes.get(header) != Some(&b'.') {
        return None;
    }
    let claims = segment(header + 1);
    let second_dot = header + 1 + claims;
    if claims < 2 || bytes.get(second_dot) != Some(&b'.') {
        return None;
    }
    let len = second_dot + 1 + segment(second_dot + 1);
    Some((len, format!("jwt:{}", fingerprint(&text[..len]))))
}

/// 13–19 digits, in groups split by single spaces or dashes, Luhn-valid, standing alone.
fn card_at(text: &str) -> Option<(usize, String)> {
    let bytes = text.as_bytes();
    let mut digits = String::new();
    let mut len = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => {
                digits.push(char::from(bytes[i]));
                len = i + 1;
            }
            b' ' | b'-'
                if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) && !digits.is_empty() => {}
            _ => break,
        }
        i += 1;
    }
    let stands_alone = bytes.get(len).is_none_or(|b| !is_word(*b));
    if !(13..=19).contains(&digits.len()) || !stands_alone || !luhn(&digits) {
        return None;
    }
    Some((len, format!("card:****{}", &digits[digits.len() - 4..])))
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = (digits.bytes().rev().enumerate())
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether `line` has 13 or more digits in a row, counting across spaces and dashes: the
/// shortest card number. (Fewer would send every line down the slow path: every timestamp
/// has a four-digit year.)
fn has_long_digit_run(line: &str) -> bool {
    let mut run = 0;
    for b in line.bytes() {
        if b.is_ascii_digit() {
            run += 1;
            if run >= 13 {
                return true;
            }
        } else if b != b' ' && b != b'-' {
            run = 0;
        }
    }
    false
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// 8 hex digits of HMAC-SHA-256 under a key made at process start: the same token gives the
/// same fingerprint in every line of one run, and nothing outside the process can compute
/// or reverse it.
fn fingerprint(token: &str) -> String {
    static KEY: OnceLock<aws_lc_rs::hmac::Key> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"palisade")
        })
    });
    let tag = aws_lc_rs::hmac::sign(key, token.as_bytes());
    tag.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The log writer: masks each finished line and hands it to the output thread.
pub struct MaskedLine;

impl Write for MaskedLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole line per write.
        match std::str::from_utf8(buf) {
            Ok(line) => super::output::enqueue(mask_line(line).as_bytes()),
            Err(_) => super::output::enqueue(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "pal_02eaGUt6L2Ll_aUDtlyH4qgvx6bx4m0UchcH7sVGpECsvwGavag7zIki";
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

    #[test]
    fn an_ordinary_line_takes_the_fast_path() {
        let line = r#"{"timestamp":"2026-11-30T04:54:19.123456Z","event":"request","status":200,"latency_ms":1.25,"path":"/api/orders/1234"}"#;
        assert!(matches!(mask_line(line), Cow::Borrowed(_)));
        // Thirteen digits, grouped or not, are worth a look.
        assert!(has_long_digit_run("4111 1111 1111 1"));
        assert!(has_long_digit_run("4111-1111-1111-1111"));
        assert!(!has_long_digit_run("2026-11-30T04:54:19"));
    }

    #[test]
    fn keys_tokens_and_cards_are_masked_inside_strings_only() {
        let line = format!(
            r#"{{"path":"/api/x/{KEY}","error":"bad token {JWT}","note":"card 4111 1111 1111 1111 ok","latency_ms":4111111111111111.0,"request_id":"c5054d08000000000000"}}"#
        );
        let masked = mask_line(&line);
        assert!(!masked.contains("aUDtlyH4qgvx"), "{masked}");
        assert!(
            masked.contains("pal_02eaGUt6L2Ll_***"),
            "the key id stays: {masked}"
        );
        assert!(
            !masked.contains("c2lnbmF0dXJl") && masked.contains("jwt:"),
            "{masked}"
        );
        assert!(masked.contains("card:****1111 ok"), "{masked}");
        assert!(
            masked.contains(r#""latency_ms":4111111111111111.0"#),
            "numbers are data: {masked}"
        );
        assert!(
            masked.contains("c5054d08000000000000"),
            "ids are not cards: {masked}"
        );
        let value: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert!(value.is_object(), "still one JSON object");
    }

    #[test]
    fn the_same_token_has_the_same_fingerprint() {
        let a = mask_line(&format!(r#"{{"a":"{JWT}"}}"#)).into_owned();
        let b = mask_line(&format!(r#"{{"b":"x {JWT} y"}}"#)).into_owned();
        let fp = |s: &str| s.split("jwt:").nth(1).unwrap()[..8].to_owned();
        assert_eq!(fp(&a), fp(&b));
    }

    #[test]
    fn lookalikes_and_escapes_are_left_alone() {
        for line in [
            r#"{"n":"4111111111111112"}"#,           // fails Luhn
            r#"{"n":"order-41111111111111111111"}"#, // 20 digits
            r#"{"n":"x4111111111111111"}"#,          // part of a word
            r#"{"n":"pal_short_key"}"#,
            r#"{"n":"eyJ not a token"}"#,
            r#"{"n":"quote \" 4111"}"#,
        ] {
            assert_eq!(mask_line(line), line);
        }
    }
}
