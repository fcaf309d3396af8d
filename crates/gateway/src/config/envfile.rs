//! `--env-file`: variables for `${env:…}` references from a file, read only when asked.
//!
//! Why only on request: a `.env` picked up silently from the working directory is a way
//! for a stray file to change a production gateway's secrets. Variables already in the
//! process environment win over the file (the usual dotenv rule), so an orchestrator's
//! values are never shadowed. The file is read again on every reload, like every other
//! reference.
//!
//! Format: `NAME=value` lines; `export ` before the name is allowed; `#` starts a comment
//! line; blank lines are skipped; a value in single or double quotes is taken literally
//! (no escapes, no interpolation). Errors name the line, never a value.

use std::collections::HashMap;
use std::path::Path;

/// Reads `path` into name → value.
pub fn read(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the env file {}: {e}", path.display()))?;
    parse(&text).map_err(|(line, why)| format!("{}:{line}: {why}", path.display()))
}

fn parse(text: &str) -> Result<HashMap<String, String>, (usize, &'static str)> {
    let mut vars = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err((index + 1, "expected NAME=value"));
        };
        let name = name.trim();
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            return Err((index + 1, "a variable name is letters, digits and `_`"));
        }
        let value = value.trim();
        let value = match value.as_bytes().first() {
            Some(quote @ (b'"' | b'\'')) => value
                .strip_prefix(char::from(*quote))
                .and_then(|v| v.strip_suffix(char::from(*quote)))
                .ok_or((index + 1, "unterminated quote"))?,
            _ => value,
        };
        vars.insert(name.to_owned(), value.to_owned());
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_quotes_and_comments() {
        let vars = parse(
            "# secrets for development\n\nPALISADE_ADMIN_TOKEN=abc=def\nexport PEPPER = \"with spaces # not a comment\"\nEMPTY=\nSINGLE='$literal'\n",
        )
        .unwrap();
        assert_eq!(vars["PALISADE_ADMIN_TOKEN"], "abc=def");
        assert_eq!(vars["PEPPER"], "with spaces # not a comment");
        assert_eq!(vars["EMPTY"], "");
        assert_eq!(vars["SINGLE"], "$literal");
    }

    #[test]
    fn errors_name_the_line_not_the_value() {
        assert_eq!(
            parse("A=1\nsecret-value\n").unwrap_err(),
            (2, "expected NAME=value")
        );
        assert_eq!(parse("A=\"open\n").unwrap_err().0, 1);
        assert_eq!(parse("1A=x\n").unwrap_err().0, 1);
    }
}
