//! The gateway config most integration tests start from, and the secrets it reads.
//!
//! Tests of the admin API and of API keys share one admin token ([`ADMIN_TOKEN`]) and one
//! key pepper ([`KEY_PEPPER`]). The config reads them from the environment, as a deployment
//! would, and [`TestConfig::gateway`] sets both; so a test writes only what it is about:
//! its limits, upstreams and routes.
//!
//! ```no_run
//! # use palisade_testkit::config::TestConfig;
//! let gw = TestConfig::new()
//!     .store("sqlite://keys.db")
//!     .tables("[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080\"\n")
//!     .gateway("target/debug/palisade")
//!     .start();
//! ```

use std::path::Path;

use crate::{GatewayBuilder, GatewayProcess};

/// The admin API's bearer token, set as `PALISADE_ADMIN_TOKEN`.
pub const ADMIN_TOKEN: &str = "testkit-admin-token-0123456789abcdef";
/// The API key pepper, set as `PALISADE_KEY_PEPPER`.
pub const KEY_PEPPER: &str = "testkit-key-pepper-0123456789abcdef0123456789";

/// A gateway config: `[server]` with the HTTP and admin listeners on free ports and the
/// admin token from the environment; a `[store]` if asked for; then the test's own tables.
#[derive(Debug, Clone, Default)]
pub struct TestConfig {
    server: String,
    store: Option<String>,
    tables: String,
}

impl TestConfig {
    pub fn new() -> TestConfig {
        TestConfig::default()
    }

    /// More `[server]` keys, as TOML lines (`trusted_proxies = ["127.0.0.1"]`).
    pub fn server(mut self, lines: &str) -> TestConfig {
        self.server.push_str(lines);
        if !lines.ends_with('\n') {
            self.server.push('\n');
        }
        self
    }

    /// A `[store]` at `url` (`sqlite://keys.db` is a file in the gateway's directory), its
    /// pepper from the environment.
    pub fn store(mut self, url: impl Into<String>) -> TestConfig {
        self.store = Some(url.into());
        self
    }

    /// The rest of the config (limits, upstreams, routes…), as TOML tables; appended.
    pub fn tables(mut self, toml: &str) -> TestConfig {
        self.tables.push_str(toml);
        self
    }

    /// The config text.
    pub fn render(&self) -> String {
        let mut text = format!(
            "[server]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             admin_token = \"${{env:PALISADE_ADMIN_TOKEN}}\"\n{}",
            self.server
        );
        if let Some(url) = &self.store {
            text.push_str(&format!(
                "\n[store]\nurl = \"{url}\"\nkey_pepper = \"${{env:PALISADE_KEY_PEPPER}}\"\n"
            ));
        }
        text.push('\n');
        text.push_str(&self.tables);
        text
    }

    /// A launcher of `bin` (`env!("CARGO_BIN_EXE_palisade")`) with this config, and the
    /// admin token (and, with a store, the key pepper) in its environment.
    pub fn gateway(&self, bin: impl AsRef<Path>) -> GatewayBuilder {
        let builder = GatewayProcess::builder(bin)
            .config(self.render())
            .env("PALISADE_ADMIN_TOKEN", ADMIN_TOKEN);
        match self.store {
            Some(_) => builder.env("PALISADE_KEY_PEPPER", KEY_PEPPER),
            None => builder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_server_store_and_tables_in_order() {
        let text = TestConfig::new()
            .server("trusted_proxies = [\"127.0.0.1\"]")
            .store("sqlite://keys.db")
            .tables("[limits]\nmax_body = \"1KiB\"\n")
            .render();
        assert_eq!(
            text,
            "[server]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             admin_token = \"${env:PALISADE_ADMIN_TOKEN}\"\ntrusted_proxies = [\"127.0.0.1\"]\n\
             \n[store]\nurl = \"sqlite://keys.db\"\nkey_pepper = \"${env:PALISADE_KEY_PEPPER}\"\n\
             \n[limits]\nmax_body = \"1KiB\"\n"
        );
        assert!(!TestConfig::new().render().contains("[store]"));
    }
}
