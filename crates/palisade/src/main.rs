//! The `palisade` command line: defense in depth for HTTP APIs.
//!
//! Exit status (documented in `--help` and the README):
//! - 0: success (a server that was asked to stop drained and stopped).
//! - 1: a checklist control failed (`check`, `audit`).
//! - 2: bad usage, a config that does not load, or a server that cannot start (for
//!   example an address already in use); the message names the file, line and key.

mod audit;
mod check;
mod demo;
mod keys;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use palisade_gateway::config::LogOutput;
use palisade_gateway::{Config, Server};

/// Exit status for bad usage or a bad config (clap uses 2 for usage errors too).
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "Defense in depth for HTTP APIs: a security gateway in one binary.",
    after_help = "Exit status: 0 success; 1 a checklist control failed (check, audit); \
                  2 bad usage, a config that does not load, or a server that cannot start."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a config file.
    Serve {
        /// The config file.
        #[arg(short, long, default_value = "palisade.toml")]
        config: PathBuf,
        /// Also resolve `${env:NAME}` from this file (NAME=value lines; the process
        /// environment wins). Never read unless given; read again on reload.
        #[arg(long)]
        env_file: Option<PathBuf>,
    },
    /// Read a config and report the checklist as the gateway would enforce it; exit 1
    /// when a control fails, 2 when the config does not load.
    Check(check::CheckArgs),
    /// Probe a live API (any API) for each checklist control; exit 1 when one fails.
    Audit(audit::AuditArgs),
    /// Run the gateway in front of the bundled sample API and print a guided tour.
    Demo(demo::DemoArgs),
    /// Manage API keys in the config's [store]: create, list, revoke, rotate.
    Keys(keys::KeysArgs),
    /// Work with the config format.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run only the bundled sample API (it trusts X-Palisade-* headers: keep it behind palisade).
    SampleApi {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the JSON Schema of palisade.toml.
    Schema,
}

fn main() -> ExitCode {
    // One crypto provider for the whole process, installed before anything uses rustls.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // A panic's message may hold a request's secret: written masked, as one JSON line.
    std::panic::set_hook(Box::new(palisade_gateway::observe::redact::panic_hook));
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Schema,
        } => {
            let schema = Config::json_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Serve { config, env_file } => {
            // The config says where the log goes, so it is read before the logger starts;
            // an error here goes to stderr.
            let config = match Config::load_with_env_file(&config, env_file.as_deref()) {
                Ok(config) => config,
                Err(error) => return fail(Failure::Config(error.to_string())),
            };
            if let Err(message) = palisade_gateway::observe::init_logging(&config.log) {
                return fail(Failure::Config(message));
            }
            block_on(serve(config))
        }
        Command::Check(args) => check::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Demo(args) => run(demo::run(args)),
        Command::Keys(args) => {
            palisade_gateway::observe::init_stderr_logging();
            run_quiet(keys::run(args))
        }
        Command::SampleApi { listen } => run(sample_api(listen)),
    }
}

/// What a long-running command can fail with, and the exit status each maps to.
enum Failure {
    /// Bad config or a server that cannot start: exit 2.
    Config(String),
}

/// Runs a long-lived command, with the JSON-lines logger on stdout.
fn run(future: impl Future<Output = Result<(), Failure>>) -> ExitCode {
    if let Err(message) = palisade_gateway::observe::init_logging(&LogOutput::Stdout) {
        return fail(Failure::Config(message));
    }
    block_on(future)
}

/// Runs a short command whose stdout is its output (no log lines mixed in).
fn run_quiet(future: impl Future<Output = Result<(), Failure>>) -> ExitCode {
    block_on(future)
}

fn block_on(future: impl Future<Output = Result<(), Failure>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("palisade: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let result = runtime.block_on(future);
    // The log writer is a thread of its own: let it write the last lines before exit.
    palisade_gateway::observe::output::flush(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(failure),
    }
}

fn fail(failure: Failure) -> ExitCode {
    match failure {
        Failure::Config(message) => {
            eprintln!("palisade: error: {message}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

async fn serve(config: Config) -> Result<(), Failure> {
    let server = Server::start(config)
        .await
        .map_err(|e| Failure::Config(e.to_string()))?;
    server
        .run_until_signalled()
        .await
        .map_err(|e| Failure::Config(format!("cannot install signal handlers: {e}")))
}

async fn sample_api(listen: std::net::SocketAddr) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::Config(format!("cannot listen on {listen}: {e}")))?;
    tracing::info!(event = "listening", listener = "sample-api", addr = %listen);
    palisade_sample_api::serve(listener)
        .await
        .map_err(|e| Failure::Config(format!("sample API stopped: {e}")))
}
