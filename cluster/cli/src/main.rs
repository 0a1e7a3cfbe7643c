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

// One FFI call into the allocator already linked in, made before `main`.
#[allow(unsafe_code)]
#[cfg(target_os = "linux")]
mod allocator {
    use std::ffi::{c_int, c_long};

    unsafe extern "C" {
        /// `mi_option_set` of mimalloc's `mimalloc.h` (linked in by the
        /// `mimalloc` crate).
        fn mi_option_set(option: c_int, value: c_long);
    }

    /// `mi_option_arena_eager_commit` in mimalloc's `mi_option_e`.
    const ARENA_EAGER_COMMIT: c_int = 4;

    /// Commits mimalloc's arena memory on demand rather than when an arena
    /// is reserved. mimalloc never decommits blocks of an arena committed
    /// eagerly, so memory freed after a job stayed in the process's RSS: a
    /// JobManager that had run 20 jobs was about 20 MB bigger than one
    /// that ran none. The option must be set before the first allocation
    /// reserves an arena, hence a constructor (`.init_array`) rather than
    /// a call in `main`. `MIMALLOC_ARENA_EAGER_COMMIT` in the environment
    /// still wins.
    extern "C" fn configure() {
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            // SAFETY: sets a plain integer option; any value is valid.
            unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) };
        }
    }

    #[used]
    #[unsafe(link_section = ".init_array")]
    static CONFIGURE: extern "C" fn() = configure;
}

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
        /// File format: JSON lines (`part-<i>.jsonl`), or CSV of one kind
        /// with a header line (`part-<i>.csv`).
        #[arg(long, value_enum, default_value = "jsonl")]
        format: NexmarkFormatArg,
    },
    /// Work with user functions.
    Udf {
        #[command(subcommand)]
        command: UdfCommand,
    },
    /// Start a JobManager: a long-running server with a REST API (upload
    /// components, deploy jobs) and local slots.
    Jobmanager {
        /// A TOML configuration file (Flink's key names, e.g.
        /// `"rest.port" = 8081`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Set a configuration key, e.g. `-Drest.port=8081`,
        /// `-Dtaskmanager.numberOfTaskSlots=4`,
        /// `-Dhigh-availability.storageDir=DIR`, `-Drest.auth.token=T`, and
        /// every checkpoint and restart key of `weir run` (job defaults).
        #[arg(short = 'D', value_name = "KEY=VALUE")]
        define: Vec<String>,
        /// The cluster's certificate directory (`security.ssl.internal.dir`):
        /// with it the JobManager accepts TaskManagers on
        /// `jobmanager.rpc.port` (6123).
        #[arg(long, value_name = "DIR")]
        certs: Option<PathBuf>,
    },
    /// Start a TaskManager that offers its slots to a JobManager over QUIC
    /// with mutual TLS, and reconnects by itself when the JobManager
    /// restarts.
    Taskmanager {
        /// The JobManager's cluster endpoint, `HOST:PORT`
        /// (`jobmanager.rpc.address`, `jobmanager.rpc.port`).
        #[arg(long, value_name = "HOST:PORT")]
        jobmanager: Option<String>,
        /// Slots to offer (`taskmanager.numberOfTaskSlots`; default: the
        /// number of cores).
        #[arg(long)]
        slots: Option<u32>,
        /// This TaskManager's address (`taskmanager.host`), which it binds.
        #[arg(long)]
        host: Option<String>,
        /// The cluster's certificate directory (`security.ssl.internal.dir`).
        #[arg(long, value_name = "DIR")]
        certs: Option<PathBuf>,
        /// A TOML configuration file (may be the JobManager's).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Set a configuration key, e.g. `-Dheartbeat.interval=1s`.
        #[arg(short = 'D', value_name = "KEY=VALUE")]
        define: Vec<String>,
    },
    /// List the TaskManagers of a JobManager with their slots.
    Taskmanagers {
        #[command(flatten)]
        remote: Remote,
    },
    /// Certificates for the cluster's mutual TLS.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Submit a job file to a JobManager; local UDFs (`.wasm` files or Rust
    /// crates) are built and uploaded first.
    Submit {
        /// The job file (YAML or JSON).
        job: PathBuf,
        /// Default parallelism of every vertex.
        #[arg(short, long)]
        parallelism: Option<u32>,
        /// Start from this savepoint (a path the JobManager can read).
        #[arg(long, value_name = "DIR")]
        from_savepoint: Option<String>,
        /// Set a configuration key for this job, overriding the job file's
        /// `configuration:`, e.g. `-Dexecution.checkpointing.interval=10s`.
        #[arg(short = 'D', value_name = "KEY=VALUE")]
        define: Vec<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the JobManager's jobs.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one job.
    Status {
        /// The job id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel a job (no savepoint).
    Cancel {
        /// The job id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Take a savepoint of a running job (it keeps running) and wait until
    /// it is taken; prints its location.
    Savepoint {
        /// The job id.
        id: String,
        /// Where it goes (default: the JobManager's `state.savepoints.dir`).
        dir: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop a job with a savepoint and wait until it is taken.
    Stop {
        /// The job id.
        id: String,
        /// Where the savepoint goes (default: the JobManager's
        /// `state.savepoints.dir`).
        #[arg(long, value_name = "DIR")]
        target: Option<String>,
        /// Accepted for Flink compatibility: bounded jobs drain anyway.
        #[arg(long)]
        drain: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

/// How to reach the JobManager.
#[derive(clap::Args)]
struct Remote {
    /// The JobManager's REST URL.
    #[arg(long, env = "WEIR_JOBMANAGER", default_value = weir_cli::client::DEFAULT_JOBMANAGER)]
    jobmanager: String,
    /// Its bearer token (`rest.auth.token`).
    #[arg(long, env = "WEIR_TOKEN")]
    token: Option<String>,
    /// Print the JobManager's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl Remote {
    fn client(&self) -> weir_cli::client::Client {
        weir_cli::client::Client::new(&self.jobmanager, self.token.clone())
    }
}

/// The format of `weir nexmark`'s files on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
enum NexmarkFormatArg {
    Jsonl,
    Csv,
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
enum CertCommand {
    /// Create a development CA and a node certificate in DIR (new files
    /// only), for every process of a cluster to use with `--certs DIR`.
    Init {
        /// The directory (created).
        dir: PathBuf,
        /// More names or addresses for the node certificate (informative:
        /// peers verify the cluster CA, not host names).
        #[arg(long)]
        host: Vec<String>,
    },
}

/// `-D key=value` pairs as trimmed pairs.
fn key_values(define: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    define
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| anyhow::anyhow!("`{pair}` is not key=value"))
        })
        .collect()
}

#[derive(Subcommand)]
enum UdfCommand {
    /// Create a UDF project: the function, a unit test, a README, a sample
    /// input and a job that runs it (`cd DIR && weir run job.yaml`).
    New {
        /// The project directory to create; its name names the function.
        dir: PathBuf,
        /// The language: rust, python, js, ts or c.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// What the function does: map, filter, flat-map, keyed-process or
        /// aggregate.
        #[arg(long, default_value = "map")]
        kind: String,
    },
    /// Build a UDF project (a Rust crate, or `app.py`, `app.js`, `app.ts`
    /// or `app.c`) into a WebAssembly component; cached by content.
    Build {
        /// The project directory.
        dir: PathBuf,
        /// Copy the component here (default: print where it was built).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Run a UDF project's unit tests on the host (cargo test, pytest,
    /// node --test, or the C tests built with cc).
    Test {
        /// The project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Upload a component to a JobManager; prints its artifact id.
    Upload {
        /// The `.wasm` component.
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
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
        // Colour codes only for a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
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

/// How long a stop with savepoint asked for by a signal may take before
/// the process exits anyway (its committed output and latest checkpoint
/// stay; `--from-checkpoint latest` resumes).
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// With checkpointing on, SIGTERM and SIGINT stop the job with a savepoint
/// (Flink's stop-with-savepoint) instead of ending the process. A second
/// signal ends the process at once (exit code 128 + signal), and so does
/// a stop that has not finished after [`STOP_GRACE`].
fn stop_on_signals(checkpoints_enabled: bool) -> Option<Arc<AtomicBool>> {
    if !checkpoints_enabled {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Without the handlers the signal still ends the process, which a
        // later --from-checkpoint recovers from. The conditional exit is
        // registered first, so it sees the flag as the first signal left it.
        let registered = signal_hook::flag::register_conditional_shutdown(
            signal,
            128 + signal,
            Arc::clone(&stop),
        )
        .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)));
        if let Err(e) = registered {
            tracing::warn!("cannot handle signal {signal}: {e}");
        }
    }
    let watched = Arc::clone(&stop);
    let watchdog = std::thread::Builder::new()
        .name("weir-stop-watchdog".into())
        .spawn(move || {
            while !watched.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            eprintln!(
                "stopping with a savepoint (a second signal ends the process at once)"
            );
            std::thread::sleep(STOP_GRACE);
            eprintln!(
                "error: the stop with savepoint did not finish within {} s; exiting (resume with --from-checkpoint latest)",
                STOP_GRACE.as_secs()
            );
            std::process::exit(1);
        });
    if let Err(e) = watchdog {
        tracing::warn!("cannot start the stop watchdog: {e}");
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
            // The job file's own `configuration:` first, then -D.
            let mut checkpoints = weir_task::CheckpointConfig::default();
            if let Ok(graph) = jobgraph::JobGraph::from_file(&job) {
                checkpoints
                    .set_all(
                        graph
                            .configuration
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str())),
                    )
                    .map_err(|e| anyhow::anyhow!("{}: configuration: {e}", job.display()))?;
            }
            for pair in &define {
                checkpoints.set_pair(pair)?;
            }
            let checkpoints_enabled = checkpoints.enabled();
            let options = weir_cli::run::RunOptions {
                parallelism,
                progress: !no_progress && std::io::stderr().is_terminal(),
                checkpoints,
                defines: define.clone(),
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
            format,
        } => {
            let options = weir_cli::nexmark::GenerateOptions {
                events,
                seed,
                rate,
                base_time,
                kinds: kinds.into_iter().map(Into::into).collect(),
                files,
                progress: std::io::stderr().is_terminal(),
                format: match format {
                    NexmarkFormatArg::Jsonl => weir_cli::nexmark::FileFormat::JsonLines,
                    NexmarkFormatArg::Csv => weir_cli::nexmark::FileFormat::Csv,
                },
            };
            let written = weir_cli::nexmark::generate(&out, &options)?;
            eprintln!("wrote {written} records to {}", out.display());
            Ok(())
        }
        Command::Udf {
            command: UdfCommand::Build { dir, output },
        } => {
            let wasm = weir_cli::udf::build_udf(&dir)?;
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
        Command::Udf {
            command: UdfCommand::New { dir, lang, kind },
        } => {
            let language: weir_cli::udf::Language =
                lang.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let kind: weir_cli::udf::Kind = kind.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let files = weir_cli::udf::new_project(&dir, language, kind)?;
            for file in files {
                println!("{}", dir.join(file).display());
            }
            eprintln!(
                "created {}: `cd {} && weir udf test && weir run job.yaml`",
                dir.display(),
                dir.display()
            );
            Ok(())
        }
        Command::Udf {
            command: UdfCommand::Test { dir },
        } => {
            weir_cli::udf::test_udf(&dir)?;
            Ok(())
        }
        Command::Udf {
            command: UdfCommand::Upload { file, remote },
        } => {
            let info = remote.client().upload(&file)?;
            if remote.json {
                println!("{info}");
            } else {
                let field = |k: &str| {
                    info.get(k)
                        .map(|v| v.to_string().trim_matches('"').to_string())
                };
                println!("{}", field("id").unwrap_or_default());
                eprintln!(
                    "uploaded {} ({} bytes, world {})",
                    file.display(),
                    field("size").unwrap_or_default(),
                    field("world").unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Jobmanager {
            config,
            define,
            certs,
        } => {
            let mut overrides = key_values(&define)?;
            if let Some(certs) = certs {
                overrides.push((
                    "security.ssl.internal.dir".into(),
                    certs.display().to_string(),
                ));
            }
            let config = weir_jobmanager::JobManagerConfig::load(
                config.as_deref(),
                std::env::vars(),
                &overrides,
            )?;
            weir_cli::server::serve(config)
        }
        Command::Taskmanager {
            jobmanager,
            slots,
            host,
            certs,
            config,
            define,
        } => {
            let mut overrides = key_values(&define)?;
            if let Some(address) = jobmanager {
                let (host, port) = address
                    .rsplit_once(':')
                    .ok_or_else(|| anyhow::anyhow!("--jobmanager `{address}` is not HOST:PORT"))?;
                overrides.push((
                    "jobmanager.rpc.address".into(),
                    host.trim_start_matches('[').trim_end_matches(']').into(),
                ));
                overrides.push(("jobmanager.rpc.port".into(), port.into()));
            }
            if let Some(slots) = slots {
                overrides.push(("taskmanager.numberoftaskslots".into(), slots.to_string()));
            }
            if let Some(host) = host {
                overrides.push(("taskmanager.host".into(), host));
            }
            if let Some(certs) = certs {
                overrides.push((
                    "security.ssl.internal.dir".into(),
                    certs.display().to_string(),
                ));
            }
            let keys = weir_jobmanager::config::load_keys(
                config.as_deref(),
                std::env::vars(),
                &overrides,
            )?;
            let config = weir_taskmanager::TaskManagerConfig::from_keys(&keys)?;
            weir_cli::cluster::taskmanager(config)
        }
        Command::Taskmanagers { remote } => {
            let answer = remote.client().get("/v1/taskmanagers")?;
            if remote.json {
                println!("{answer}");
            } else {
                print!("{}", weir_cli::cluster::format_taskmanagers(&answer));
            }
            Ok(())
        }
        Command::Cert {
            command: CertCommand::Init { dir, host },
        } => weir_cli::cluster::cert_init(&dir, &host),
        Command::Submit {
            job,
            parallelism,
            from_savepoint,
            define,
            remote,
        } => {
            let id = remote.client().submit_file(
                &job,
                parallelism,
                from_savepoint.as_deref(),
                &define,
            )?;
            if remote.json {
                println!("{}", serde_json::json!({ "jobid": id }));
            } else {
                println!("{id}");
                eprintln!("submitted; follow it with: weir status {id}");
            }
            Ok(())
        }
        Command::List { remote } => {
            let answer = remote.client().get("/v1/jobs")?;
            if remote.json {
                println!("{answer}");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = answer["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|j| {
                    ["id", "name", "state"]
                        .iter()
                        .map(|k| j[k].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .collect();
            print!(
                "{}",
                weir_cli::client::table(&["ID", "NAME", "STATE"], &rows)
            );
            Ok(())
        }
        Command::Status { id, remote } => {
            let job = remote.client().get(&format!("/v1/jobs/{id}"))?;
            if remote.json {
                println!("{job}");
            } else {
                print!("{}", weir_cli::server::format_status(&job));
            }
            Ok(())
        }
        Command::Cancel { id, remote } => {
            remote.client().cancel(&id)?;
            eprintln!("cancelling job {id}");
            Ok(())
        }
        Command::Stop {
            id,
            target,
            drain,
            remote,
        } => {
            let client = remote.client();
            let request = client.stop(&id, target.as_deref(), drain)?;
            // Wait for the savepoint, as `flink stop` does.
            let location = client.wait_for_savepoint(&id, &request)?;
            if remote.json {
                println!("{}", serde_json::json!({ "location": location }));
            } else {
                println!("{location}");
                eprintln!(
                    "stopped with a savepoint; resume with: weir submit JOB --from-savepoint {location}"
                );
            }
            Ok(())
        }
        Command::Savepoint { id, dir, remote } => {
            let client = remote.client();
            let request = client.trigger_savepoint(&id, dir.as_deref())?;
            let location = client.wait_for_savepoint(&id, &request)?;
            if remote.json {
                println!("{}", serde_json::json!({ "location": location }));
            } else {
                println!("{location}");
            }
            Ok(())
        }
    }
}
