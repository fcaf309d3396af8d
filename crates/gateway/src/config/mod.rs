//! The config loader: `palisade.toml` → one validated, immutable [`Config`].
//!
//! Input: a TOML file, or its text and its path. Output: a [`Config`] (see [`model`]) whose
//! values are resolved, typed, defaulted and consistent with each other. Failure: a
//! [`ConfigError`] naming the file, the line and the key; the first problem found wins.
//!
//! The stages, one module each:
//!
//! 1. `toml` parses the text into a tree with byte spans; `locate` indexes its key paths
//!    (`route[1].upstream`) by line, so that any later stage can name a line.
//! 2. serde fills the `raw` structs: what the user writes, `deny_unknown_fields` throughout,
//!    defaults included. Its schema is `palisade config schema`.
//! 3. `build` (one file per section) resolves `${env:…}`/`${file:…}` references (`refs`) in every string,
//!    parses addresses, URLs, networks and methods, resolves paths against the config
//!    file's directory, and checks what serde cannot see (a route naming an unknown
//!    upstream, duplicate names, TLS without an https listener, …).
//!
//! To add a key: a field with a doc comment in `raw`, a field in `model`, one line in
//! the section's builder under `build`. OpenAPI documents are read by `openapi` and
//! merged into the routes by `openapi_routes`; outbound URLs follow `outbound`.

mod build;
pub mod envfile;
pub(crate) mod locate;
pub mod model;
pub mod openapi;
mod openapi_routes;
pub mod outbound;
mod raw;
mod refs;
mod units;

#[cfg(test)]
mod tests;

use std::env::VarError;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use model::*;
pub use units::{ByteSize, HumanDuration};

use locate::KeyIndex;

/// A config problem, located, displayed as
///
/// ```text
/// palisade.toml:12: key `route[1].upstream`: no upstream named `ordrs` (known: orders, billing)
/// ```
///
/// (the line and the key are left out when unknown).
///
/// Messages quote what the user wrote (a reference such as `${env:TOKEN}`), never the
/// secret a reference resolved to.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The config file, as given to [`Config::load`] or [`Config::from_str`].
    pub file: PathBuf,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// Key path such as `server.tls.cert`, `route[1].upstream`, `server.trusted_proxies[0]`.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// An error about `key`, at `line` of `file`.
    pub fn at(file: &Path, line: Option<usize>, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line,
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// An error about the file as a whole (it cannot be read, say).
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            key: None,
            message: message.into(),
        }
    }
}

// Handwritten rather than derived: the parts that are `None` are left out.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env_file(path, None)
    }

    /// `load`, with `${env:…}` also looking in `env_file` (`--env-file`) for variables the
    /// process environment does not have.
    pub fn load_with_env_file(path: &Path, env_file: Option<&Path>) -> Result<Config, ConfigError> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, format!("cannot read the config file: {e}")))?;
        let from_file = match env_file {
            Some(file) => envfile::read(file).map_err(|message| ConfigError::new(path, message))?,
            None => Default::default(),
        };
        let mut config = Config::from_str_with_env(&source, path, &|name| {
            std::env::var(name).or_else(|missing| from_file.get(name).cloned().ok_or(missing))
        })?;
        config.env_file = env_file.map(Path::to_path_buf);
        Ok(config)
    }

    /// Validates `source`, the text of the config file at `path`. Relative paths in it
    /// (TLS files, CAs, `${file:…}`) are resolved against `path`'s directory; `${env:…}`
    /// against this process's environment.
    pub fn from_str(source: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::from_str_with_env(source, path, &|name| std::env::var(name))
    }

    /// `from_str` with `env` in place of the process environment (tests, and callers
    /// that must not depend on it).
    pub(crate) fn from_str_with_env(
        source: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Result<String, VarError>,
    ) -> Result<Config, ConfigError> {
        let tree =
            toml::de::DeTable::parse(source).map_err(|e| locate::parse_error(&e, path, source))?;
        let keys = KeyIndex::build(source, tree.get_ref());
        let raw = raw::RawConfig::deserialize(toml::de::Deserializer::from(tree))
            .map_err(|e| locate::toml_error(&e, path, &keys))?;
        build::build(&raw, path, keys, env)
    }

    /// The JSON Schema of `palisade.toml` as the user writes it (`palisade config schema`),
    /// with every key's documentation and default.
    pub fn json_schema() -> serde_json::Value {
        let mut schema = schemars::schema_for!(raw::RawConfig);
        schema.insert("title".to_owned(), "palisade.toml".into());
        schema.to_value()
    }
}

/// What validation needs besides the raw config: where errors point, where relative paths
/// start, and where `${env:…}` looks.
pub(crate) struct LoadCtx<'a> {
    /// The config file, as given (error messages show it so).
    pub file: &'a Path,
    /// The config file's directory: relative paths and `${file:…}` start here.
    pub dir: &'a Path,
    pub keys: &'a KeyIndex,
    pub env: &'a dyn Fn(&str) -> Result<String, VarError>,
    /// `allow_literal_secrets = true`: secrets may be written in the file (development).
    pub allow_literal_secrets: bool,
    /// The keys of secrets accepted although written literally (`palisade check` fails them).
    pub literal_secrets: std::cell::RefCell<Vec<String>>,
}

/// Why a URL with a password written in the file is refused.
const URL_PASSWORD_MESSAGE: &str = "this URL holds a password: write it as a reference, the password alone (`postgres://user:${env:DB_PASSWORD}@host/db`, also in a `password=` parameter) or the whole URL (`${env:DATABASE_URL}`), not in the file (`allow_literal_secrets = true` accepts it, for development only)";

impl LoadCtx<'_> {
    /// Refuses a secret written literally at `key` (unless `allow_literal_secrets`): a
    /// config file is copied, committed and pasted into tickets; a reference is not the
    /// secret.
    pub(crate) fn secret_written_as_reference(
        &self,
        key: &str,
        raw: &str,
    ) -> Result<(), ConfigError> {
        if refs::is_one_reference(raw) {
            return Ok(());
        }
        self.literal_secret(
            key,
            "this is a secret: write it as a reference, `${env:NAME}` or `${file:PATH}`, and nothing else, not in the file (`allow_literal_secrets = true` accepts it, for development only)",
        )
    }

    /// Refuses a URL at `key` (written `raw`, resolving to `resolved`) whose password is
    /// written in the file: the user info's password and any password query parameter's
    /// value ([`refs::is_password_param`]) must each be one reference, or the whole URL one;
    /// a URL that does not parse is refused. `user_is_secret`: the user name is a
    /// credential too (a token in an OTLP endpoint).
    pub(crate) fn url_password_written_as_reference(
        &self,
        key: &str,
        raw: &str,
        resolved: &str,
        user_is_secret: bool,
    ) -> Result<(), ConfigError> {
        if refs::is_one_reference(raw) {
            return Ok(());
        }
        // Not echoed in the message: it may carry a password.
        let not_a_url = || self.error(key, "not a valid URL");
        let resolved = refs::url_passwords(resolved, user_is_secret).ok_or_else(not_a_url)?;
        let Some((written, placeholder)) = refs::written_url_passwords(raw, user_is_secret) else {
            // The written URL parses with no stand-in for its references: which of its
            // passwords are references is unknown, so any password counts as written.
            if resolved.is_empty() {
                return Ok(());
            }
            return self.literal_secret(key, URL_PASSWORD_MESSAGE);
        };
        let literal = written.iter().any(|part| *part != placeholder);
        // A password the written URL does not show as a part of its own came from a
        // reference spanning more than it (`${env:AT}` for the `@`): what is around the
        // reference may be the password, written in the file.
        let hidden = resolved.len() > written.len();
        if !literal && !hidden {
            return Ok(());
        }
        self.literal_secret(key, URL_PASSWORD_MESSAGE)
    }

    /// A secret at `key` written (in part) in the file: refused with `message`, or recorded
    /// for `palisade check` under `allow_literal_secrets`.
    fn literal_secret(&self, key: &str, message: &str) -> Result<(), ConfigError> {
        if self.allow_literal_secrets {
            self.literal_secrets.borrow_mut().push(key.to_owned());
            return Ok(());
        }
        Err(self.error(key, message))
    }

    /// An error about `key`, on its line (or its nearest parent's).
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, self.keys.line_of(key), key, message)
    }
}
