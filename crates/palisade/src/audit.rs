//! `palisade audit URL`: the black-box auditor's command line.
//!
//! Input: the flags below. Output: the report on stdout (or `--out FILE`) in the chosen
//! format, a progress bar on stderr when it is a terminal (nothing on stderr otherwise).
//! Exit status: 0 when every control is PASS, WARN or NOT TESTED; 1 when one is FAIL or
//! ERROR (an unreachable target must not pass a CI job); 2 for bad usage (an unreadable
//! spec, a malformed identity, a negative `--rps`, an unwritable output file).
//!
//! Identities are parsed here rather than by clap, whose error message would quote the
//! whole argument, credential included; ours never shows the value.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use palisade_audit::report::{self, Format};
use palisade_audit::{Identity, Options};
use std::time::Duration;

#[derive(clap::Args)]
pub(crate) struct AuditArgs {
    /// The API's base URL (https://api.example.com); probes never leave its host.
    url: url::Url,
    /// OpenAPI 3.0/3.1 document: the operations, their parameters, which are public.
    #[arg(long, value_name = "FILE")]
    openapi: Option<PathBuf>,
    /// A caller, NAME:HEADER=VALUE (e.g. alice:X-Api-Key=pal_…). Two enable the
    /// object-level authorization tests.
    #[arg(long = "identity", value_name = "NAME:HEADER=VALUE")]
    identities: Vec<String>,
    /// An admin caller, NAME:HEADER=VALUE: enables the function-level tests.
    #[arg(long, value_name = "NAME:HEADER=VALUE")]
    admin_identity: Option<String>,
    /// Most requests the audit may send, TLS handshakes included.
    #[arg(long, default_value_t = 300)]
    max_requests: u32,
    /// Most requests per second (0: unpaced).
    #[arg(long, default_value_t = 10.0)]
    rps: f64,
    /// The longest the whole audit may take, in seconds; what it cuts short is NOT TESTED.
    #[arg(long, value_name = "SECONDS", default_value_t = palisade_audit::DEFAULT_DEADLINE.as_secs())]
    deadline: u64,
    /// Accept an invalid or self-signed certificate.
    #[arg(long)]
    insecure: bool,
    /// Where the target serves plain http, for the redirect check (default 80 when the
    /// target is https on 443).
    #[arg(long, value_name = "PORT")]
    http_port: Option<u16>,
    /// The operation the rate-limit burst targets (operationId or "METHOD /path");
    /// default: the spec's login operation.
    #[arg(long, value_name = "OPERATION")]
    rate_limit_op: Option<String>,
    /// Requests in the rate-limit burst at most.
    #[arg(long, default_value_t = 30)]
    burst: u32,
    /// A git repository to scan for secrets (working tree and history) and lock files.
    #[arg(long, value_name = "PATH")]
    repo: Option<PathBuf>,
    /// A local advisory database (RustSec advisory-db or a directory of OSV JSON files).
    #[arg(long, value_name = "PATH")]
    advisories: Option<PathBuf>,
    /// The API's log file, scanned for secrets, tokens, passwords and card numbers.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// table, json, sarif or junit.
    #[arg(long, default_value = "table")]
    format: Format,
    /// Write the report here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: AuditArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("palisade: error: {message}");
        ExitCode::from(crate::EXIT_BAD_CONFIG)
    };
    if !(args.rps.is_finite() && args.rps >= 0.0) {
        return usage(format!(
            "--rps {} is not a number of requests per second (0 or more)",
            args.rps
        ));
    }
    if args.deadline == 0 {
        return usage("--deadline must be at least 1 second".to_owned());
    }
    let mut options = Options::new(args.url);
    options.openapi = args.openapi;
    for text in &args.identities {
        match text.parse::<Identity>() {
            Ok(identity) => options.identities.push(identity),
            Err(error) => return usage(format!("--identity: {error}")),
        }
    }
    if let Some(text) = &args.admin_identity {
        match text.parse::<Identity>() {
            Ok(identity) => options.admin_identity = Some(identity),
            Err(error) => return usage(format!("--admin-identity: {error}")),
        }
    }
    options.max_requests = args.max_requests;
    options.rps = args.rps;
    options.deadline = Duration::from_secs(args.deadline);
    options.insecure = args.insecure;
    options.http_port = args.http_port;
    options.rate_limit_operation = args.rate_limit_op;
    options.burst = args.burst;
    options.repo = args.repo;
    options.advisories = args.advisories;
    options.log = args.log;
    options.progress = std::io::stderr().is_terminal();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return usage(format!("cannot start the async runtime: {error}")),
    };
    let report = match runtime.block_on(palisade_audit::run(options)) {
        Ok(report) => report,
        Err(error) => return usage(error.to_string()),
    };
    let text = report::render(&report, args.format);
    match &args.out {
        Some(path) => {
            if let Err(error) = std::fs::write(path, &text) {
                return usage(format!("cannot write {}: {error}", path.display()));
            }
        }
        None => print!("{text}"),
    }
    if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
