//! How deeply a JSON text nests, found without parsing it.
//!
//! Why before parsing: a parser (or a validator walking the parsed tree) recurses once per
//! level, so `[[[[…` ten thousand deep could exhaust the stack; this scan is a loop over the
//! bytes with one counter, and stops at the first byte past the limit.

/// The deepest nesting `limits.max_json_depth` may allow: the JSON parser (serde_json,
/// whose recursion limit is 128) refuses a 128th level itself, and a body it refuses would
/// be told "not valid JSON" instead of what is wrong with it.
pub const MAX_SUPPORTED: usize = 127;

/// Whether `text` nests arrays and objects deeper than `max` levels. Brackets inside
/// strings do not count; the text need not be valid JSON (the parser judges that).
pub fn exceeds(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{MAX_SUPPORTED, exceeds};
    use crate::json::parse_strict;

    /// Issue 6: every depth the config accepts is one the parser reads, so a body past the
    /// configured limit is refused by this check (and its message), never by the parser.
    #[test]
    fn the_deepest_allowed_nesting_is_one_the_parser_reads() {
        let nested = |depth: usize| {
            let arrays = "[".repeat(depth) + &"]".repeat(depth);
            let objects = "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth);
            [arrays, objects]
        };
        for text in nested(MAX_SUPPORTED) {
            assert!(!exceeds(text.as_bytes(), MAX_SUPPORTED));
            assert!(parse_strict(text.as_bytes()).is_ok());
        }
        for text in nested(MAX_SUPPORTED + 1) {
            assert!(exceeds(text.as_bytes(), MAX_SUPPORTED));
            // Why the bound is not higher: the parser gives up here.
            assert!(parse_strict(text.as_bytes()).is_err());
        }
    }

    #[test]
    fn counts_only_structure_outside_strings() {
        assert!(!exceeds(br#"{"a": [1, {"b": 2}]}"#, 3));
        assert!(exceeds(br#"{"a": [1, {"b": 2}]}"#, 2));
        assert!(!exceeds(br#"{"a": "[[[[[[\"[[[["}"#, 1));
        assert!(!exceeds(br#"[1, 2] [3]"#, 1), "siblings do not add up");
    }

    #[test]
    fn ten_thousand_levels_are_found_without_recursion() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(exceeds(deep.as_bytes(), 64));
        assert!(!exceeds(deep.as_bytes(), 10_000));
    }
}
