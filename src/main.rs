//! `classroom`: the desktop client.
//!
//! - `classroom` opens the window on the start screen;
//! - `classroom join --server URL --session ID [--token T]` (or `--local`) opens it straight
//!   into a class's pre-join check (`--now` joins right away);
//! - `classroom 'classroom://join?server=…&session=…&token=…'` does the same from a link;
//! - `classroom config show [--root DIR] [--json]` prints the effective configuration: the
//!   school's managed policy (`/etc/classroom/policy.toml`), the user's settings, environment
//!   and flags, with where each value came from;
//! - `classroom --headless …` runs the same call engine without a window (synthetic media,
//!   JSON stats on stdout): see `classroom --help`.

use anyhow::Context;
use clap::Parser;

use std::path::{Path, PathBuf};

use classroom::call::headless::{self, HeadlessArgs};
use classroom::policy::{EffectiveConfig, Overrides, Policy};
use classroom::ui::WindowSetup;
use classroom::ui::launch::{DEFAULT_LOCAL_PORT, Launch, parse_link};
use classroom::ui::model::{JoinTarget, ServerChoice};
use classroom::ui::store::Saved;

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
    /// The configuration: `config show` prints the effective one.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration and where each value comes from.
    Show {
        /// Read the system's policy under this root instead of `/` (a package test's
        /// throwaway root, an image being prepared).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
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
    /// The key of another app's local class, from its invitation link (`auth.key`).
    #[arg(long, env = "CLASSROOM_JOIN_KEY", hide_env_values = true)]
    key: Option<String>,
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

/// The user's saved settings and recent classes, if any.
fn saved_state() -> Option<Saved> {
    classroom::ui::store::Store::for_user()
        .filter(|store| store.exists())
        .map(|store| store.load())
}

/// The user's own choices that the effective configuration layers over the policy.
fn user_overrides(saved: Option<&Saved>, flag_server_url: Option<String>) -> Overrides {
    Overrides {
        user_server_url: saved.and_then(|saved| {
            saved
                .recent
                .iter()
                .find_map(|recent| match &recent.target.server {
                    classroom::ui::model::ServerChoice::Remote(url) => Some(url.clone()),
                    classroom::ui::model::ServerChoice::Local { .. } => None,
                })
        }),
        user_voice_processing: saved.map(|saved| saved.settings.voice_processing),
        user_voice_stages: saved.map(|saved| saved.settings.voice_stages),
        env_server_url: std::env::var("CLASSROOM_SERVER")
            .ok()
            .filter(|url| !url.is_empty()),
        flag_server_url,
    }
}

fn show_config(root: &Path, json: bool) -> anyhow::Result<()> {
    let policy = Policy::load(root)?;
    let config = EffectiveConfig::resolve(&policy, &user_overrides(saved_state().as_ref(), None));
    if json {
        return print_all(&format!("{}\n", serde_json::to_string_pretty(&config)?));
    }
    let origin = |origin: classroom::policy::Origin| {
        serde_json::to_value(origin)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<17} {:<40} {}",
        "server_url",
        config.server_url.value,
        origin(config.server_url.origin)
    );
    let _ = writeln!(
        text,
        "{:<17} {:<40} {}",
        "ice_servers",
        config.ice_servers.value.join(","),
        origin(config.ice_servers.origin)
    );
    for (name, value) in [
        ("local_class", &config.local_class),
        ("screen_share", &config.screen_share),
        ("chat", &config.chat),
        ("voice_processing", &config.voice_processing),
        ("echo_cancellation", &config.echo_cancellation),
        ("noise_suppression", &config.noise_suppression),
        ("gain_control", &config.gain_control),
        ("high_pass_filter", &config.high_pass_filter),
    ] {
        let _ = writeln!(
            text,
            "{name:<17} {:<40} {}",
            value.value,
            origin(value.origin)
        );
    }
    print_all(&text)
}

/// Writes `text` to standard output at once; a reader that stopped early (`| grep -q`, `| head`)
/// is not an error.
fn print_all(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
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
    if let Some(AppCommand::Config(ConfigCommand::Show { root, json })) = &cli.command {
        return show_config(root, *json);
    }
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
    let flag_server = match &cli.command {
        Some(AppCommand::Join(join)) => join.server.clone(),
        _ => None,
    };
    let mut launch = match (link, cli.command) {
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
                    key: join.key,
                    instructor: join.instructor,
                },
                now: join.now,
                mic_on: !join.muted,
                camera_on: !join.camera_off,
                audio_devices: !join.no_audio,
            }
        }
        (None, Some(AppCommand::Config(_))) | (None, None) => Launch::Start,
    };
    // The school's policy: a broken one is said on the start screen, and nothing of it is
    // applied (the app cannot tell what was meant).
    let (policy, policy_problem) = match Policy::load(Path::new("/")) {
        Ok(policy) => (policy, None),
        Err(error) => {
            tracing::error!(%error, "managed policy not applied");
            (
                Policy::default(),
                Some(format!("Your school's settings could not be read: {error}")),
            )
        }
    };
    // Read once: the overrides and the window both use it.
    let saved = saved_state();
    let config = EffectiveConfig::resolve(&policy, &user_overrides(saved.as_ref(), flag_server));
    if let Launch::Join { target, .. } = &mut launch {
        // A locked server wins over the link's or the command line's.
        if config.server_url.locked()
            && let classroom::ui::model::ServerChoice::Remote(url) = &mut target.server
        {
            *url = config.server_url.value.clone();
        }
        if !config.local_class.value
            && matches!(
                target.server,
                classroom::ui::model::ServerChoice::Local { .. }
            )
        {
            anyhow::bail!("local classes are turned off by your school's policy");
        }
    }
    classroom::ui::run_window(
        launch,
        WindowSetup {
            utc_offset_secs,
            config,
            policy_problem,
            saved,
        },
    )
}
