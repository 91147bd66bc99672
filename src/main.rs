//! `classroom`: the desktop client.
//!
//! - `classroom` opens the window on the start screen;
//! - `classroom join --server URL --session ID [--token T]` (or `--local`) opens it straight
//!   into a class's pre-join check (`--now` joins right away);
//! - `classroom 'classroom://join?server=…&session=…&token=…'` does the same from a link;
//! - `classroom --headless …` runs the same call engine without a window (synthetic media,
//!   JSON stats on stdout): see `classroom --help`.

use anyhow::Context;
use clap::Parser;

use classroom::call::headless::{self, HeadlessArgs};
use classroom::ui::launch::{DEFAULT_LOCAL_PORT, Launch, parse_link};
use classroom::ui::model::{JoinTarget, ServerChoice};

#[derive(Debug, Parser)]
#[command(
    name = "classroom",
    version,
    about = "Native desktop client for live classes"
)]
struct Cli {
    /// Run without a window: join, send synthetic media, print JSON stats.
    #[arg(long)]
    headless: bool,
    #[command(flatten)]
    call: HeadlessArgs,
    #[command(subcommand)]
    command: Option<AppCommand>,
}

#[derive(Debug, clap::Subcommand)]
enum AppCommand {
    /// Open the window straight into a class (what the LMS's Join button runs).
    Join(JoinArgs),
}

#[derive(Debug, clap::Args)]
struct JoinArgs {
    /// The class server (`http://…` or `https://…`).
    #[arg(long, conflicts_with = "local")]
    server: Option<String>,
    /// Run the class server in this process, on loopback (a local class).
    #[arg(long)]
    local: bool,
    /// Port of the local class server (0: any free one).
    #[arg(long, default_value_t = DEFAULT_LOCAL_PORT, requires = "local")]
    port: u16,
    /// The class to join.
    #[arg(long)]
    session: String,
    /// Your name as others see it.
    #[arg(long)]
    name: Option<String>,
    /// Sign-in token from the school (`auth.token`).
    #[arg(long, env = "CLASSROOM_TOKEN")]
    token: Option<String>,
    #[arg(long)]
    instructor: bool,
    /// Join right away, without the pre-join check.
    #[arg(long)]
    now: bool,
    /// Join with the microphone off.
    #[arg(long)]
    muted: bool,
    /// Join with the camera off.
    #[arg(long)]
    camera_off: bool,
    /// Join without audio: no microphone, no speakers.
    #[arg(long)]
    no_audio: bool,
}

fn default_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty() && user != "root")
        .unwrap_or_else(|| "Student".into())
}

fn main() -> anyhow::Result<()> {
    // Read before any thread starts (the C library's time zone lookup is not thread-safe).
    let utc_offset_secs = time::UtcOffset::current_local_offset()
        .map(|offset| offset.whole_seconds())
        .unwrap_or(0);
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // A link from the LMS: `classroom classroom://join?…`.
    let link = args
        .get(1)
        .and_then(|arg| arg.to_str())
        .filter(|arg| arg.starts_with("classroom://"))
        .map(str::to_owned);
    if link.is_some() {
        args.remove(1);
    }
    let cli = Cli::parse_from(args);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if cli.headless {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let result = runtime.block_on(headless::run(cli.call));
        // A blocking read of stdin cannot be cancelled: don't let it hold the exit.
        runtime.shutdown_timeout(std::time::Duration::from_millis(500));
        return result;
    }
    let launch = match (link, cli.command) {
        (Some(link), _) => {
            let mut target = parse_link(&link).context("cannot open the link")?;
            if target.name.is_empty() {
                target.name = default_name();
            }
            Launch::Join {
                target,
                now: false,
                mic_on: true,
                camera_on: true,
                audio_devices: true,
            }
        }
        (None, Some(AppCommand::Join(join))) => {
            let server = match (join.local, join.server) {
                (true, _) => ServerChoice::Local { port: join.port },
                (false, Some(url)) => ServerChoice::Remote(url),
                (false, None) => anyhow::bail!("say --server URL or --local"),
            };
            Launch::Join {
                target: JoinTarget {
                    server,
                    session: join.session,
                    name: join.name.unwrap_or_else(default_name),
                    token: join.token,
                    instructor: join.instructor,
                },
                now: join.now,
                mic_on: !join.muted,
                camera_on: !join.camera_off,
                audio_devices: !join.no_audio,
            }
        }
        (None, None) => Launch::Start,
    };
    classroom::ui::run_window(launch, utc_offset_secs)
}
