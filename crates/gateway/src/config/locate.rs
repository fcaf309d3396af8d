//! Where a key is in the config file, so that every error can name a line.
//!
//! Input: the source text and its parsed `toml::de::DeTable` (a tree whose keys and values
//! carry byte spans). Output: a `KeyIndex` from key paths to 1-based lines, and the
//! conversion of toml's errors (which carry only a span) into `ConfigError`s that carry a
//! line and a key path. Key paths read like the file: tables `server.tls`, keys
//! `server.tls.cert`, arrays of tables `route[0]`, `route[0].path`, array items
//! `server.trusted_proxies[1]`.
//!
//! Failure: none of its own. A key that is not in the file (typically a missing required
//! key) falls back to its nearest parent's line; an error whose span no key contains is
//! reported without a key.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// Key paths of one source file and where they are.
#[derive(Clone, Default)]
pub(crate) struct KeyIndex {
    /// In document-tree order, parents before their children.
    entries: Vec<Entry>,
    by_path: HashMap<String, usize>,
    /// Byte offset of the start of each line, for span → line.
    line_starts: Vec<usize>,
}

#[derive(Clone)]
struct Entry {
    path: String,
    line: usize,
    /// The key's span, or for an array item the item's span.
    key: Range<usize>,
    /// The value's span. For a `[table]` or `[[array]]` it is the header only: the keys
    /// under a header are entries of their own.
    value: Range<usize>,
}

impl KeyIndex {
    /// Indexes every key and array item of `root`, which was parsed from `source`.
    pub(crate) fn build(source: &str, root: &DeTable<'_>) -> KeyIndex {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut index = KeyIndex {
            line_starts,
            ..KeyIndex::default()
        };
        index.add_table("", root);
        index
    }

    /// Parses `source` as well as it can and indexes what it got; for sources with syntax
    /// errors, where a partial index still locates the error.
    pub(crate) fn build_recoverable(source: &str) -> KeyIndex {
        let (root, _errors) = DeTable::parse_recoverable(source);
        KeyIndex::build(source, root.get_ref())
    }

    /// The 1-based line of `key`, or of its nearest parent present in the file
    /// (`route[1].upstream` → `route[1]` → `route`); `None` if no parent is.
    pub(crate) fn line_of(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some(&i) = self.by_path.get(key) {
                return Some(self.entries[i].line);
            }
            key = parent_path(key)?;
        }
    }

    /// The 1-based line that byte `offset` is on.
    pub(crate) fn line_at(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset)
            .max(1)
    }

    /// The deepest key whose key span or value span contains `span`.
    fn innermost(&self, span: &Range<usize>) -> Option<&Entry> {
        let mut best: Option<(usize, &Entry)> = None;
        for e in &self.entries {
            let Some(len) = containing_len(e, span) else {
                continue;
            };
            // `<=` so that on a tie the later entry wins: children follow their parents,
            // and `route` and `route[0]` share the span of the first `[[route]]` header.
            if best.is_none_or(|(best_len, _)| len <= best_len) {
                best = Some((len, e));
            }
        }
        best.map(|(_, e)| e)
    }

    fn add_table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            let path = join(prefix, key.get_ref());
            self.add(path.clone(), key.span(), value.span());
            self.add_value(&path, value.get_ref());
        }
    }

    fn add_value(&mut self, path: &str, value: &DeValue<'_>) {
        match value {
            DeValue::Table(table) => self.add_table(path, table),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    self.add(item_path.clone(), item.span(), item.span());
                    self.add_value(&item_path, item.get_ref());
                }
            }
            _ => {}
        }
    }

    fn add(&mut self, path: String, key: Range<usize>, value: Range<usize>) {
        let line = self.line_at(key.start);
        self.by_path.insert(path.clone(), self.entries.len());
        self.entries.push(Entry {
            path,
            line,
            key,
            value,
        });
    }
}

/// The length of the smallest of `e`'s spans that contains `span`, if any does.
fn containing_len(e: &Entry, span: &Range<usize>) -> Option<usize> {
    [&e.key, &e.value]
        .into_iter()
        .filter(|s| s.start <= span.start && span.end <= s.end)
        .map(|s| s.len())
        .min()
}

impl fmt::Debug for KeyIndex {
    // The index is bookkeeping; printing it would bury the `Config` it is part of.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyIndex({} keys)", self.entries.len())
    }
}

/// A config error for a document toml could not parse (a syntax error).
pub(crate) fn parse_error(err: &toml::de::Error, file: &Path, source: &str) -> ConfigError {
    toml_error(err, file, &KeyIndex::build_recoverable(source))
}

/// A config error for an error toml reported while parsing or deserializing, located by
/// its span: the line from the span's start, the key from the innermost key around it.
pub(crate) fn toml_error(err: &toml::de::Error, file: &Path, keys: &KeyIndex) -> ConfigError {
    let message = clean(err.message());
    // The document's own span is empty at 0: an error there is about the whole file
    // (`missing field `server``), not about whatever key happens to be on line 1.
    let span = err.span().filter(|s| *s != (0..0));
    let mut key = span
        .as_ref()
        .and_then(|s| keys.innermost(s))
        .map(|e| e.path.clone());
    let mut line = span.map(|s| keys.line_at(s.start));

    // serde reports a missing field at its table; name the field itself, on the table's line.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        let path = join(key.as_deref().unwrap_or(""), field);
        line = line.or_else(|| keys.line_of(&path));
        key = Some(path);
    }
    ConfigError {
        file: file.to_path_buf(),
        line,
        key,
        message,
    }
}

/// toml's message in the config's own words: serde says "sequence", "map" and names our
/// private structs, where the user wrote an array or a table.
fn clean(message: &str) -> String {
    let mut message = message
        .trim()
        .replace("expected a sequence", "expected an array");
    message = message.replace("expected a map", "expected a table");
    if let Some(at) = message.find("expected struct ") {
        message.replace_range(at.., "expected a table");
    }
    message
}

/// `server` + `tls` → `server.tls`; a key that is not a bare TOML key is quoted.
fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// `route[1].upstream` → `route[1]` → `route` → `None`.
fn parent_path(key: &str) -> Option<&str> {
    if key.ends_with(']') {
        return key.rfind('[').map(|i| &key[..i]);
    }
    // Skip a quoted last segment (`a."b.c"`) whole.
    let search = if let Some(unclosed) = key.strip_suffix('"') {
        &key[..unclosed.rfind('"')?]
    } else {
        key
    };
    search.rfind('.').map(|i| &key[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"# a comment
[server]
http = "127.0.0.1:8080"
trusted_proxies = [
  "10.0.0.0/8",
  "::1",
]

[server.tls]
self_signed = true

[[upstream]]
name = "orders"
url = "http://127.0.0.1:3000"

[[route]]
name = "a"
path = "/a"

[[route]]
name = "b"
limit = { n = 5, "odd.key" = 1 }
"#;

    fn index() -> KeyIndex {
        let root = DeTable::parse(SRC).unwrap();
        KeyIndex::build(SRC, root.get_ref())
    }

    #[test]
    fn lines_of_keys_tables_and_items() {
        let k = index();
        assert_eq!(k.line_of("server"), Some(2));
        assert_eq!(k.line_of("server.http"), Some(3));
        assert_eq!(k.line_of("server.trusted_proxies"), Some(4));
        assert_eq!(k.line_of("server.trusted_proxies[0]"), Some(5));
        assert_eq!(k.line_of("server.trusted_proxies[1]"), Some(6));
        assert_eq!(k.line_of("server.tls"), Some(9));
        assert_eq!(k.line_of("server.tls.self_signed"), Some(10));
        assert_eq!(k.line_of("upstream[0]"), Some(12));
        assert_eq!(k.line_of("upstream[0].url"), Some(14));
        assert_eq!(k.line_of("route[0]"), Some(16));
        assert_eq!(k.line_of("route[1]"), Some(20));
        assert_eq!(k.line_of("route[1].name"), Some(21));
        assert_eq!(k.line_of("route[1].limit.n"), Some(22));
        assert_eq!(k.line_of("route[1].limit.\"odd.key\""), Some(22));
    }

    #[test]
    fn missing_keys_fall_back_to_their_parent() {
        let k = index();
        assert_eq!(k.line_of("route[1].upstream"), Some(20));
        assert_eq!(k.line_of("server.tls.cert"), Some(9));
        assert_eq!(k.line_of("route[7].path"), Some(16));
        assert_eq!(k.line_of("limits.max_body"), None);
        assert_eq!(k.line_of(""), None);
    }

    #[test]
    fn innermost_key_around_a_span() {
        let k = index();
        let at = |needle: &str| {
            let start = SRC.find(needle).unwrap();
            k.innermost(&(start..start + needle.len()))
                .map(|e| e.path.as_str())
        };
        assert_eq!(at("\"::1\""), Some("server.trusted_proxies[1]"));
        assert_eq!(at("self_signed"), Some("server.tls.self_signed"));
        assert_eq!(at("true"), Some("server.tls.self_signed"));
        assert_eq!(at("[server.tls]"), Some("server.tls"));
        assert_eq!(at("[[upstream]]"), Some("upstream[0]"));
        assert_eq!(at("5"), Some("route[1].limit.n"));
        assert_eq!(at("# a comment"), None);
    }

    #[test]
    fn messages_use_toml_words() {
        assert_eq!(
            clean("invalid type: integer `5`, expected struct RawServer"),
            "invalid type: integer `5`, expected a table"
        );
        assert_eq!(
            clean("invalid type: string \"x\", expected a sequence\n"),
            "invalid type: string \"x\", expected an array"
        );
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("route[1].upstream"), Some("route[1]"));
        assert_eq!(parent_path("route[1]"), Some("route"));
        assert_eq!(parent_path("route"), None);
        assert_eq!(parent_path("a.\"b.c\""), Some("a"));
    }
}
