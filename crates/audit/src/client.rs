//! The prober: the only way checks talk to the target.
//!
//! Input: a request relative to the target (method, path, headers, body). Output: an
//! [`Exchange`] (the request line, who sent it and the start of its body, never its headers'
//! values; and what came back, the body cut at 64 KiB, each request bounded by a timeout
//! and the audit's deadline), also kept in the audit's record that the passive checks (errors, gateway
//! consistency) read afterwards. Failure: [`ProbeError`] when the budget is spent, the URL
//! would leave the target's host, or the transport fails. Redirects are never followed, so
//! the audit never leaves the host it was given.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;

use crate::Options;
use crate::budget::{Budget, Exhausted};

/// Longest body kept from a response.
const MAX_BODY: usize = 64 * 1024;
/// Longest a request may take, body included (less when the audit's deadline is nearer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest request body shown in evidence.
const SHOWN_REQUEST_BODY: usize = 160;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// The request budget is spent; nothing was sent.
    Budget,
    /// The URL would leave the target's host; nothing was sent.
    OffHost(String),
    /// Connect, TLS or read failure.
    Transport(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Budget => f.write_str("the request budget is spent"),
            ProbeError::OffHost(url) => write!(f, "{url} is not on the target's host"),
            ProbeError::Transport(e) => write!(f, "{e}"),
        }
    }
}

impl From<Exhausted> for ProbeError {
    fn from(_: Exhausted) -> Self {
        ProbeError::Budget
    }
}

/// A request to send, relative to the target's base URL.
#[derive(Debug, Clone)]
pub struct Probe {
    pub method: Method,
    /// Path and query, appended to the base URL's path (`/api/orders?limit=1`).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Who the audit acts as (`anonymous`, an identity's name), for evidence.
    pub actor: String,
}

impl Probe {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Probe {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
            actor: "anonymous".to_owned(),
        }
    }

    /// Acts as `identity`: sends its header; evidence names only the identity, never the
    /// header's value.
    pub fn as_identity(mut self, identity: &crate::Identity) -> Self {
        self.headers
            .push((identity.header.clone(), identity.value.clone()));
        self.actor = identity.name.clone();
        self
    }

    /// Sends a credential header that is not an identity's (a forged token) as `actor`.
    pub fn credential(mut self, name: &str, value: &str, actor: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self.actor = actor.to_owned();
        self
    }

    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.headers
            .push(("content-type".to_owned(), "application/json".to_owned()));
        self
    }

    pub fn raw_body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self.headers
            .push(("content-type".to_owned(), content_type.to_owned()));
        self
    }
}

/// One request and its answer, as evidence.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// The full URL as sent.
    pub url: String,
    /// The path and query relative to the target, for messages.
    pub path: String,
    pub actor: String,
    /// The start of the request body (for evidence).
    pub request_body: Option<String>,
    pub request_body_len: usize,
    pub status: u16,
    /// Response headers, names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Exchange {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    pub fn success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `GET /api/orders/4 as bob → 200`, plus the request body's start.
    pub fn request_line(&self) -> String {
        let body = match &self.request_body {
            Some(b) if self.request_body_len > SHOWN_REQUEST_BODY => {
                format!(" body {b}… ({} bytes)", self.request_body_len)
            }
            Some(b) => format!(" body {b}"),
            None => String::new(),
        };
        format!(
            "{} {} as {}{body} → {}",
            self.method, self.path, self.actor, self.status
        )
    }

    /// The request line and the start of the response body.
    pub fn evidence(&self) -> String {
        let shown: String = self.body.chars().take(200).collect();
        let more = if self.body.chars().count() > 200 {
            "…"
        } else {
            ""
        };
        crate::patterns::redact(&format!("{} {shown}{more}", self.request_line()))
    }
}

pub struct Prober {
    client: reqwest::Client,
    budget: Arc<Budget>,
    base: url::Url,
    record: Mutex<Vec<Arc<Exchange>>>,
}

impl Prober {
    pub fn new(options: &Options, budget: Arc<Budget>) -> Result<Self, String> {
        // The CLI installs it first; library users (and tests) may not have.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(options.insecure)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("palisade-audit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Prober {
            client,
            budget,
            base: options.target.clone(),
            record: Mutex::new(Vec::new()),
        })
    }

    pub fn base(&self) -> &url::Url {
        &self.base
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The URL for a path relative to the target (the base URL's own path is a prefix).
    pub fn url_for(&self, path: &str) -> Result<url::Url, ProbeError> {
        let prefix = self.base.path().trim_end_matches('/');
        let mut url = self.base.clone();
        let (path_part, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        url.set_path(&format!("{prefix}{path_part}"));
        url.set_query(query);
        url.set_fragment(None);
        Ok(url)
    }

    /// Sends a probe to the target.
    pub async fn send(&self, probe: Probe) -> Result<Arc<Exchange>, ProbeError> {
        let url = self.url_for(&probe.path)?;
        self.send_to(url, probe).await
    }

    /// Sends a probe to `url`, which must be on the target's host (the redirect check uses
    /// the http port).
    pub async fn send_to(&self, url: url::Url, probe: Probe) -> Result<Arc<Exchange>, ProbeError> {
        if url.host_str() != self.base.host_str() {
            return Err(ProbeError::OffHost(url.to_string()));
        }
        self.budget.acquire().await?;
        let timeout = self
            .budget
            .time_left()
            .map_or(REQUEST_TIMEOUT, |left| left.min(REQUEST_TIMEOUT));
        let mut request = self
            .client
            .request(probe.method.clone(), url.clone())
            .timeout(timeout);
        for (name, value) in &probe.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &probe.body {
            request = request.body(body.clone());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| ProbeError::Transport(describe(&e)))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while body.len() < MAX_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        body.truncate(MAX_BODY);
        let exchange = Arc::new(Exchange {
            method: probe.method.to_string(),
            url: url.to_string(),
            path: probe.path.clone(),
            actor: probe.actor.clone(),
            request_body: probe.body.as_ref().map(|b| {
                String::from_utf8_lossy(&b[..b.len().min(SHOWN_REQUEST_BODY)]).into_owned()
            }),
            request_body_len: probe.body.as_ref().map_or(0, Vec::len),
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(exchange.clone());
        Ok(exchange)
    }

    /// Every exchange so far, in order.
    pub fn record(&self) -> Vec<Arc<Exchange>> {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The error with its causes, which reqwest keeps in its source chain.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
