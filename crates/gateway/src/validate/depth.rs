//! How deeply a JSON text nests, found without parsing it.
//!
//! Why before parsing: a parser (or a validator walking the parsed tree) recurses once per
//! level, so `[[[[…` ten thousand deep could exhaust the stack; this scan is a loop over the
//! bytes with one counter, and stops at the first byte past the limit.

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
    use super::exceeds;

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
