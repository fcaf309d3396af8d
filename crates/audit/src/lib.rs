//! `palisade audit`: a black-box test of a live API against the ten-control checklist.
//!
//! Input: [`Options`] (the base URL, an optional OpenAPI document, identities, a request
//! budget and pace, and optional local material: a repository, an advisory database, a log
//! file). Output: a [`Report`] with one [`ControlResult`] per control, in checklist order,
//! which [`report`] renders as a table, JSON, SARIF or JUnit.
//!
//! Failure: a control whose probes could not run is `NOT_TESTED` (with the reason) or
//! `ERROR`, never `PASS`. Usage problems (an unreadable spec, a bad identity) are
//! [`AuditError`]s, raised before any request is sent.
//!
//! Every request goes through one [`budget::Budget`], so `--max-requests`, `--rps` and the
//! overall deadline hold by construction: an audit cannot turn into a load test, nor hang on
//! a slow target. Requests never leave the target's host (redirects are not followed).
//! The credentials the audit was given (identity values, the target URL's password) never
//! reach the report: every text in it is masked on the way out ([`mask`]).

pub mod budget;
pub mod checks;
pub mod client;
pub mod model;
pub mod patterns;
pub mod report;
pub mod secrets_scan;
pub mod spec;

pub use model::{ControlResult, Finding, Report, Severity, Status};

use std::path::PathBuf;
use std::sync::Arc;

use budget::Budget;
use client::Prober;

/// One caller the audit can act as: `NAME:HEADER=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub header: String,
    pub value: String,
}

impl std::str::FromStr for Identity {
    type Err = String;

    /// Parses `NAME:HEADER=VALUE` (`alice:X-Api-Key=pal_…`, `bob:Authorization=Bearer ey…`).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("identity `{}` is not NAME:HEADER=VALUE", mask(text));
        let (name, rest) = text.split_once(':').ok_or_else(bad)?;
        let (header, value) = rest.split_once('=').ok_or_else(bad)?;
        let (name, header) = (name.trim(), header.trim());
        if name.is_empty() || value.is_empty() {
            return Err(bad());
        }
        // Neither part is quoted back: a mistyped `Authorization: Bearer …=` puts the
        // credential in what looks like the header name.
        if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
            return Err(format!(
                "identity `{name}`: the header name is not valid (NAME:HEADER=VALUE, e.g. alice:X-Api-Key=…)"
            ));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "identity `{name}`: the value is not a valid header value"
            ));
        }
        Ok(Identity {
            name: name.to_owned(),
            header: header.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// What to audit and how gently.
#[derive(Debug, Clone)]
pub struct Options {
    /// The API's base URL; every probe stays on its scheme, host and port (the http
    /// redirect probe only changes scheme and port).
    pub target: url::Url,
    pub openapi: Option<PathBuf>,
    pub identities: Vec<Identity>,
    pub admin_identity: Option<Identity>,
    /// Most requests (TLS handshakes included) the whole audit may send.
    pub max_requests: u32,
    /// Most requests per second; 0 means unpaced (tests only).
    pub rps: f64,
    pub insecure: bool,
    /// Where plain http is served, for the redirect check (default: 80 when the target is
    /// https on 443).
    pub http_port: Option<u16>,
    /// The operation the rate-limit burst is sent to (operationId or `METHOD /path`);
    /// default: the spec's login operation.
    pub rate_limit_operation: Option<String>,
    /// Requests in the rate-limit burst at most.
    pub burst: u32,
    /// The longest the whole audit may take: no request leaves after it, and what it cut
    /// short is NOT_TESTED.
    pub deadline: std::time::Duration,
    pub repo: Option<PathBuf>,
    pub advisories: Option<PathBuf>,
    pub log: Option<PathBuf>,
    /// A progress bar on stderr (the CLI sets it only when stderr is a terminal).
    pub progress: bool,
}

/// The default overall deadline of an audit: 10 minutes.
pub const DEFAULT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

impl Options {
    /// Options with the defaults of the CLI: 300 requests at most, 10 per second, 10 minutes.
    pub fn new(target: url::Url) -> Self {
        Options {
            target,
            openapi: None,
            identities: Vec::new(),
            admin_identity: None,
            max_requests: 300,
            rps: 10.0,
            insecure: false,
            http_port: None,
            rate_limit_operation: None,
            burst: 30,
            deadline: DEFAULT_DEADLINE,
            repo: None,
            advisories: None,
            log: None,
            progress: false,
        }
    }
}

/// A problem with the audit's inputs, found before any request is sent (exit status 2).
#[derive(Debug)]
pub struct AuditError(pub String);

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuditError {}

/// Runs every control and returns the report. Checks that need credentials run before the
/// authentication probes, whose forged tokens may (rightly) get the auditor's address
/// locked out, and the rate-limit burst runs last for the same reason.
pub async fn run(options: Options) -> Result<Report, AuditError> {
    let spec = match &options.openapi {
        Some(path) => Some(spec::Spec::load(path).map_err(AuditError)?),
        None => None,
    };
    if !matches!(options.target.scheme(), "http" | "https") || options.target.host().is_none() {
        return Err(AuditError(format!(
            "{} is not an http(s) URL with a host",
            options.target
        )));
    }
    let budget =
        Arc::new(Budget::new(options.max_requests, options.rps).with_deadline(options.deadline));
    let prober = Prober::new(&options, budget.clone()).map_err(AuditError)?;
    let ctx = checks::Context {
        options: &options,
        spec: spec.as_ref(),
        prober: &prober,
    };
    let progress = Progress::start(options.progress, budget.clone());
    let mut results: Vec<ControlResult> = Vec::with_capacity(10);
    progress.step(1);
    results.push(checks::tls::run(&ctx).await);
    progress.step(3);
    let mut objects = checks::authz::Objects::default();
    results.push(checks::authz::run(&ctx, &mut objects).await);
    progress.step(5);
    results.push(checks::validation::run(&ctx, &objects).await);
    progress.step(2);
    results.push(checks::authn::run(&ctx, &objects).await);
    progress.step(4);
    results.push(checks::ratelimit::run(&ctx, &objects).await);
    progress.step(6);
    results.push(checks::errors::run(&ctx, &objects).await);
    // Objects the audit created (and that are still there) are deleted by their owner.
    checks::authz::cleanup(&ctx, &objects).await;
    progress.step(7);
    results.push(checks::logging::run(&ctx));
    progress.step(8);
    results.push(checks::gateway::run(&ctx));
    progress.step(9);
    results.push(checks::secrets::run(&ctx));
    progress.step(10);
    results.push(checks::deps::run(&ctx));
    drop(progress);
    results.sort_by_key(|r| r.id);
    let mut report = Report {
        command: "audit",
        target: options.target.to_string(),
        requests: budget.used(),
        max_requests: options.max_requests,
        controls: results,
    };
    mask_credentials(&mut report, &credentials(&options));
    Ok(report)
}

/// The progress bar on stderr: its length is the request budget, its position the requests
/// sent so far (read by a ticker, since every check sends through the one budget), its
/// message the control running, numbered in the order the controls run (which is not the
/// checklist's: see [`run`]). Hidden (`progress` false) it draws nothing at all.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    done: std::sync::atomic::AtomicU8,
}

impl Progress {
    fn start(show: bool, budget: Arc<Budget>) -> Self {
        if !show {
            return Progress {
                bar: None,
                ticker: None,
                done: std::sync::atomic::AtomicU8::new(0),
            };
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(u64::from(budget.max())),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "palisade audit {msg:<32} [{bar:30}] {pos}/{len} requests",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
                ticking.set_position(u64::from(budget.used()));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        Progress {
            bar: Some(bar),
            ticker: Some(ticker),
            done: std::sync::atomic::AtomicU8::new(0),
        }
    }

    /// Control `id` starts: `[n/10] name`, n counting in run order.
    fn step(&self, id: u8) {
        let n = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            let name = model::CONTROLS[usize::from(id) - 1].1;
            bar.set_message(format!("[{n}/10] {name}"));
        }
    }

    fn finish(&self) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    /// An audit dropped half-way (its caller gave up) stops the ticker and clears the bar.
    fn drop(&mut self) {
        self.finish();
    }
}

/// Identity values shorter than this are names rather than secrets (`X-User=alice`) and are
/// left as they are; the log check uses the same bound.
pub const MIN_CREDENTIAL_LEN: usize = 8;

/// What the report must never show: every identity's value (and the token after `Bearer `)
/// and the target URL's password, longest first so a value is masked whole.
fn credentials(options: &Options) -> Vec<String> {
    let mut secrets: Vec<String> = options
        .identities
        .iter()
        .chain(&options.admin_identity)
        .flat_map(|id| {
            let token = id.value.strip_prefix("Bearer ").map(str::to_owned);
            std::iter::once(id.value.clone()).chain(token)
        })
        .filter(|s| s.chars().count() >= MIN_CREDENTIAL_LEN)
        .collect();
    // The URL's password is a secret whatever its length (as written in the URL).
    secrets.extend(
        options
            .target
            .password()
            .filter(|p| p.len() >= 3)
            .map(str::to_owned),
    );
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// Replaces every credential in every text of the report (target, reasons, findings) with
/// its [`mask`]. This is the one exit every output format goes through, so a target that
/// echoes a credential back (in a body, a header, an error) cannot make the report print it.
fn mask_credentials(report: &mut Report, secrets: &[String]) {
    let clean = |text: &mut String| {
        for secret in secrets {
            if text.contains(secret.as_str()) {
                *text = text.replace(secret.as_str(), &mask(secret));
            }
        }
    };
    report.target = patterns::redact_urls(&report.target);
    clean(&mut report.target);
    for control in &mut report.controls {
        if let Some(reason) = control.reason.as_mut() {
            clean(reason);
        }
        for finding in &mut control.findings {
            clean(&mut finding.title);
            clean(&mut finding.evidence);
            if let Some(location) = finding.location.as_mut() {
                clean(location);
            }
        }
    }
}

/// A preview of a secret: its length and at most its first four characters (a quarter of
/// them for short values), never the rest.
pub fn mask(secret: &str) -> String {
    let count = secret.chars().count();
    let head: String = secret.chars().take((count / 4).min(4)).collect();
    format!("{head}… ({count} chars)")
}

/// A stable, non-reversible fingerprint (16 hex digits of SHA-256), so two runs can say
/// "the same finding" without the report carrying the value.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_and_never_echo_the_value() {
        let id: Identity = "alice:X-Api-Key=pal_abc=def".parse().unwrap();
        assert_eq!(
            id,
            Identity {
                name: "alice".into(),
                header: "X-Api-Key".into(),
                value: "pal_abc=def".into()
            }
        );
        let err = "alice=supersecretvalue".parse::<Identity>().unwrap_err();
        assert!(!err.contains("supersecretvalue"), "{err}");
        let err = "alice:Authorization: Bearer supersecretvalue=="
            .parse::<Identity>()
            .unwrap_err();
        assert!(!err.contains("supersecret"), "{err}");
        let err = "alice:X-Api-Key=supersecret\nvalue"
            .parse::<Identity>()
            .unwrap_err();
        assert!(!err.contains("supersecret"), "{err}");
        assert!("bad header:X Y=1".parse::<Identity>().is_err());
    }

    #[test]
    fn fingerprints_are_stable_and_masks_short() {
        assert_eq!(fingerprint(&["a", "b"]), fingerprint(&["a", "b"]));
        assert_ne!(fingerprint(&["a", "b"]), fingerprint(&["ab"]));
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA… (20 chars)");
        assert_eq!(
            mask("random"),
            "r… (6 chars)",
            "a short secret shows little"
        );
        assert_eq!(mask("abc"), "… (3 chars)");
    }

    #[test]
    fn credentials_are_masked_in_every_text_of_the_report() {
        let mut options = Options::new("https://user:hunter2hunter2@api.example/".parse().unwrap());
        options.identities = vec![
            "alice:Authorization=Bearer eyJhbGciOi.secretpayload.sig"
                .parse()
                .unwrap(),
            "bob:X-Api-Key=pal_bobsecretkey123".parse().unwrap(),
            "carol:X-User=carol".parse().unwrap(),
        ];
        let echoed = "echo: eyJhbGciOi.secretpayload.sig and pal_bobsecretkey123 for carol";
        let mut report = Report {
            command: "audit",
            target: options.target.to_string(),
            requests: 1,
            max_requests: 1,
            controls: vec![ControlResult::conclude(
                2,
                vec![Finding::new(
                    2,
                    Severity::High,
                    echoed,
                    Some(echoed.into()),
                    echoed,
                )],
                true,
                "",
            )],
        };
        report.controls[0].reason = Some(format!("error for {}", options.target));
        mask_credentials(&mut report, &credentials(&options));
        let text = format!("{report:?}");
        for secret in ["hunter2hunter2", "secretpayload", "pal_bobsecretkey123"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("for carol"), "short values are names: {text}");
        assert!(report.target.contains("user:****@"), "{}", report.target);
    }
}
