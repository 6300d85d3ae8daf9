use std::process::ExitCode;

use amaze_exporter::app::{self, AppError};
use amaze_exporter::cli::{Cli, Command, LogFormat};
use amaze_exporter::config::Config;
use amaze_exporter::demo::{self, DemoArgs, DemoError};
use clap::Parser;

// Scrapes build tens of thousands of small label strings; mimalloc halves their cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads for decoding large bodies, computing scrapes and file reads.
const BLOCKING_THREADS: usize = 16;

/// Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration.
fn main() -> ExitCode {
    no_huge_pages();
    raise_open_files();
    let cli = Cli::parse();
    if let Some(Command::Check {
        config,
        config_flag,
    }) = cli.command
    {
        let Some(config) = config.or(config_flag) else {
            // clap requires one of them.
            return ExitCode::from(2);
        };
        return match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: valid, {} SLA{}",
                    config.display(),
                    c.slas.len(),
                    if c.slas.len() == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(2)
            }
        };
    }
    if let Some(Command::Rules {
        config,
        config_flag,
    }) = &cli.command
    {
        let config = config
            .as_ref()
            .or(config_flag.as_ref())
            .cloned()
            .unwrap_or_else(|| "config/amaze.yaml".into());
        let config = &config;
        return match Config::load(config) {
            Ok(c) => {
                print!(
                    "{}",
                    amaze_exporter::exposition::fleet::rules(
                        &c.catalog(),
                        &config.display().to_string()
                    )
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(2)
            }
        };
    }
    if let Some(Command::Demo {
        config,
        target,
        erode,
        breach_after,
        duration,
    }) = cli.command
    {
        let args = DemoArgs {
            config,
            target,
            erode,
            breach_after,
            duration,
        };
        return match demo::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("amaze-exporter demo: {e}");
                ExitCode::from(if matches!(e, DemoError::Config(_)) {
                    2
                } else {
                    1
                })
            }
        };
    }
    amaze_exporter::logging::init(&cli.run);
    let json = cli.run.log_format == LogFormat::Json;
    match serve(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Printed once: a config's problems as plain lines for the
            // operator (one JSON log line when logs are JSON, for the log
            // pipeline), anything else as a log line like the rest.
            match e.downcast_ref::<AppError>() {
                Some(AppError::Config(_) | AppError::WebConfig(_)) => {
                    if json {
                        tracing::error!("{e}");
                    } else {
                        eprintln!("amaze-exporter: {e}");
                    }
                    ExitCode::from(2)
                }
                _ => {
                    // Each error's message already holds its cause.
                    tracing::error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Raises the soft limit on open files to the hard one, as Go programs
/// (Prometheus exporters) do at start: log sources hold a file each and
/// connections a socket each, and the usual soft limit of 1,024 is far
/// below what a service may have.
fn raise_open_files() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("amaze-exporter: cannot raise the open-file limit: {e}");
    }
}

/// Window state is hundreds of MB of small sketches, allocated at once when a
/// snapshot is restored. With transparent huge pages each first touch zeroes
/// 2 MiB; restarts measured 1.5 to 2.5x slower on a cold VM (BENCHMARKS.md).
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments only and
    // touches no memory of ours; failure (an old kernel) changes nothing.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn serve(cli: Cli) -> anyhow::Result<()> {
    // Few blocking threads: each keeps its allocator's freed pages for a
    // while, so hundreds of them (tokio's default cap is 512) would inflate
    // memory under load for no gain on a few cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()?;
    let ran = runtime.block_on(app::run(cli.run, amaze_exporter::shutdown::signal()));
    // State is synced and snapshotted by now; a file read stuck in the
    // kernel (a hung mount) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ran?;
    Ok(())
}
