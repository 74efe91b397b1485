//! `kraliki-bench`: the figures in the README's Benchmark section, each measured beside a
//! baseline in the same run, against a scratch database on the configured server.
//!
//! Outside the product: it drives the real server (`kraliki_api::Application`) and its command
//! dispatcher from the outside, and needs no benchmark hook inside them. Prints figures only;
//! `--log` (or `RUST_LOG`) turns the server's logs on.

mod ivr;
mod media;
mod pacing;
mod routing;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kraliki-bench",
    version,
    about = "Benchmarks of Kraliki Voice against baselines run side by side"
)]
struct Cli {
    /// A TOML settings file (also KRALIKI_CONFIG); DATABASE_URL names the server to measure on.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Show the server's logs (off: the output is the figures).
    #[arg(long, global = true)]
    log: bool,
    #[command(flatten)]
    args: store::BenchArgs,
    #[command(subcommand)]
    internal: Option<Internal>,
}

/// The media benchmark's other processes, started by it.
#[derive(Debug, Subcommand)]
enum Internal {
    /// The echo voice provider (OpenAI Realtime and Gemini Live dialects).
    #[command(hide = true)]
    Echo,
    /// The load generator: Twilio's side of N Media Streams.
    #[command(hide = true)]
    Phones,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kraliki-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.internal {
        Some(Internal::Echo) => runtime.block_on(media::serve_echo()),
        Some(Internal::Phones) => runtime.block_on(media::serve_phones()),
        None => {
            let settings = match kraliki_api::Settings::load(cli.config.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("kraliki-bench: invalid configuration: {e}");
                    return ExitCode::from(2);
                }
            };
            if cli.log || std::env::var_os("RUST_LOG").is_some() {
                kraliki_api::telemetry::init_logging(&settings);
            }
            runtime.block_on(store::run(settings, cli.args))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kraliki-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
