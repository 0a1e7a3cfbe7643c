//! The `weir` binary.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand};
use weir_types::jobgraph;

// Records and batches are many small allocations made on one thread and freed
// on another; mimalloc handles that pattern better than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Weir: stream processing with WebAssembly user functions.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job file on the embedded mini-cluster (everything in this process).
    Run {
        /// The job file (YAML or JSON).
        job: PathBuf,
        /// Default parallelism of every vertex (overrides the job's `parallelism`).
        #[arg(short, long)]
        parallelism: Option<u32>,
        /// Do not draw the progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Set a configuration key, Flink style, e.g.
        /// `-Dexecution.checkpointing.interval=1s`,
        /// `-Dstate.checkpoints.dir=DIR` (or `s3://`, `az://`, `gs://` URL),
        /// `-Dstate.checkpoints.num-retained=3`,
        /// `-Drestart-strategy.type=fixed-delay`, `-Ds3.endpoint=URL`.
        #[arg(short = 'D', value_name = "KEY=VALUE")]
        define: Vec<String>,
        /// Resume from a checkpoint: `latest` (the newest completed
        /// checkpoint of this job under `state.checkpoints.dir`) or a
        /// checkpoint directory `DIR/<job>/chk-<n>` (`DIR` may be a URL).
        #[arg(long, value_name = "DIR|latest", conflicts_with = "from_savepoint")]
        from_checkpoint: Option<String>,
        /// Resume from a savepoint (the path a stop with savepoint printed:
        /// `<state.savepoints.dir>/<job>/chk-<n>`), at any parallelism.
        #[arg(long, value_name = "DIR")]
        from_savepoint: Option<PathBuf>,
    },
    /// Write a Nexmark event stream (persons, auctions, bids) as JSON-lines
    /// files, for replay with a `type: nexmark` source and `replay: DIR`.
    Nexmark {
        /// Output directory (created; `part-<i>.jsonl` files are replaced).
        out: PathBuf,
        /// Number of events, all kinds counted.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Generator seed.
        #[arg(long, default_value_t = jobgraph::NEXMARK_DEFAULT_SEED)]
        seed: u64,
        /// Event-time rate in events per second.
        #[arg(long, default_value_t = jobgraph::NEXMARK_DEFAULT_RATE)]
        rate: u64,
        /// Event time of the first event, ms since the epoch
        /// (default 2015-07-15T00:00:00Z).
        #[arg(long, default_value_t = jobgraph::NEXMARK_DEFAULT_BASE_TIME)]
        base_time: i64,
        /// Kinds to write, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "person,auction,bid")]
        kinds: Vec<NexmarkKindArg>,
        /// Number of files (event i goes to file i mod files).
        #[arg(long, default_value_t = 1)]
        files: u32,
    },
    /// Work with user functions.
    Udf {
        #[command(subcommand)]
        command: UdfCommand,
    },
}

/// A Nexmark event kind on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
enum NexmarkKindArg {
    Person,
    Auction,
    Bid,
}

impl From<NexmarkKindArg> for jobgraph::NexmarkKind {
    fn from(kind: NexmarkKindArg) -> Self {
        match kind {
            NexmarkKindArg::Person => Self::Person,
            NexmarkKindArg::Auction => Self::Auction,
            NexmarkKindArg::Bid => Self::Bid,
        }
    }
}

#[derive(Subcommand)]
enum UdfCommand {
    /// Build a Rust UDF crate into a WebAssembly component (wasm32-wasip2).
    Build {
        /// The crate directory.
        dir: PathBuf,
        /// Copy the component here (default: print where it was built).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_target(false)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Our error messages already include their causes; `{e:#}` would repeat them.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// With checkpointing on, SIGTERM and SIGINT stop the job with a savepoint
/// (Flink's stop-with-savepoint) instead of ending the process.
fn stop_on_signals(checkpoints_enabled: bool) -> Option<Arc<AtomicBool>> {
    if !checkpoints_enabled {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Without the handler the signal still ends the process, which a
        // later --from-checkpoint recovers from.
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            tracing::warn!("cannot handle signal {signal}: {e}");
        }
    }
    Some(stop)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            job,
            parallelism,
            no_progress,
            define,
            from_checkpoint,
            from_savepoint,
        } => {
            let mut checkpoints = weir_task::CheckpointConfig::default();
            for pair in &define {
                checkpoints.set_pair(pair)?;
            }
            let checkpoints_enabled = checkpoints.enabled();
            let options = weir_cli::run::RunOptions {
                parallelism,
                progress: !no_progress && std::io::stderr().is_terminal(),
                checkpoints,
                restore: from_checkpoint
                    .map(|from| match from.as_str() {
                        "latest" => weir_task::Restore::Latest,
                        path => weir_task::Restore::Checkpoint(path.into()),
                    })
                    .or(from_savepoint.map(weir_task::Restore::Checkpoint)),
                stop: stop_on_signals(checkpoints_enabled),
            };
            let (graph, summary) = weir_cli::run::run_file(&job, &options)?;
            eprint!("{}", weir_cli::run::format_summary(&graph, &summary));
            if let Some(savepoint) = &summary.savepoint {
                eprintln!(
                    "Stopped with a savepoint; resume with: weir run {} --from-savepoint {savepoint}",
                    job.display()
                );
            }
            Ok(())
        }
        Command::Nexmark {
            out,
            events,
            seed,
            rate,
            base_time,
            kinds,
            files,
        } => {
            let options = weir_cli::nexmark::GenerateOptions {
                events,
                seed,
                rate,
                base_time,
                kinds: kinds.into_iter().map(Into::into).collect(),
                files,
                progress: std::io::stderr().is_terminal(),
            };
            let written = weir_cli::nexmark::generate(&out, &options)?;
            eprintln!("wrote {written} records to {}", out.display());
            Ok(())
        }
        Command::Udf {
            command: UdfCommand::Build { dir, output },
        } => {
            let wasm = weir_cli::udf::build_rust_udf(&dir)?;
            match output {
                Some(out) => {
                    std::fs::copy(&wasm, &out).map_err(|e| {
                        anyhow::anyhow!("cannot copy {} to {}: {e}", wasm.display(), out.display())
                    })?;
                    println!("{}", out.display());
                }
                None => println!("{}", wasm.display()),
            }
            Ok(())
        }
    }
}
