//! `classroom`: the desktop client.
//!
//! - `classroom` opens the window on the start screen;
//! - `classroom join --server URL --session ID [--token T]` (or `--local`) opens it straight
//!   into a class's pre-join check (`--now` joins right away);
//! - `classroom 'classroom://join?server=…&session=…&token=…'` does the same from a link;
//! - `classroom config show [--root DIR] [--json]` prints the effective configuration: the
//!   school's managed policy (`/etc/classroom/policy.toml`), the user's settings, environment
//!   and flags, with where each value came from;
//! - `classroom bot …` (hidden from `--help`; `classroom --headless …` is the same) is the
//!   test and load participant: the same call engine without a window, synthetic media, JSON
//!   stats on stdout; see `classroom bot --help`.

use anyhow::Context;
use clap::Parser;

use std::path::{Path, PathBuf};

use classroom::call::headless::{self, HeadlessArgs};
use classroom::controller::store::Saved;
use classroom::media::voice::VoiceStage;
use classroom::policy::{EffectiveConfig, Overrides, Policy};
use classroom::ui::WindowSetup;
use classroom::ui::launch::{DEFAULT_LOCAL_PORT, Launch, parse_link};
use classroom::ui::model::{JoinTarget, ServerChoice};

#[derive(Debug, Parser)]
#[command(
    name = "classroom",
    version,
    about = "Native desktop client for live classes"
)]
struct Cli {
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
    /// The test and load participant: joins without a window, sends synthetic media, prints
    /// JSON stats. Not for users; `--headless` as the first argument means the same.
    #[command(hide = true)]
    Bot(Box<HeadlessArgs>),
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

/// A link from the LMS (`classroom classroom://join?…`) taken out of the arguments; and
/// what the test scripts have always run, `classroom --headless …`, read as `classroom bot …`.
fn split_link(mut args: Vec<std::ffi::OsString>) -> (Option<String>, Vec<std::ffi::OsString>) {
    let link = args
        .get(1)
        .and_then(|arg| arg.to_str())
        .filter(|arg| arg.starts_with("classroom://"))
        .map(str::to_owned);
    if link.is_some() {
        args.remove(1);
    }
    if args.get(1).is_some_and(|arg| arg == "--headless") {
        args[1] = "bot".into();
    }
    (link, args)
}

fn default_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty() && user != "root")
        .unwrap_or_else(|| "Student".into())
}

/// The user's saved settings and recent classes, if any.
fn saved_state() -> Option<Saved> {
    classroom::controller::store::Store::for_user()
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
    let switches = [
        ("local_class", &config.local_class),
        ("screen_share", &config.screen_share),
        ("chat", &config.chat),
        ("voice_processing", &config.voice_processing),
        ("force_relay", &config.force_relay),
    ]
    .into_iter()
    .chain(VoiceStage::ALL.map(|stage| (stage.key(), config.voice_stage(stage))));
    for (name, value) in switches {
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
    let (link, args) = split_link(std::env::args_os().collect());
    let cli = Cli::parse_from(args);
    tracing_subscriber::fmt()
        .with_env_filter(classroom_signaling::quiet_declined_events(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        ))
        .with_writer(std::io::stderr)
        .init();
    if let Some(AppCommand::Config(ConfigCommand::Show { root, json })) = &cli.command {
        return show_config(root, *json);
    }
    if let Some(AppCommand::Bot(bot)) = cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let result = runtime.block_on(headless::run(*bot));
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
        (None, Some(AppCommand::Config(_) | AppCommand::Bot(_))) | (None, None) => Launch::Start,
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
        std::sync::Arc::new(classroom::media::devices::SystemDevices),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn args(line: &str) -> Vec<std::ffi::OsString> {
        line.split_whitespace().map(Into::into).collect()
    }

    #[test]
    fn the_users_help_shows_start_join_and_config_and_none_of_the_bots_flags() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("join") && help.contains("config"), "{help}");
        for bot_only in [
            "bot",
            "--stats-interval-ms",
            "--simulate-receive-loss",
            "--headless",
        ] {
            assert!(
                !help.contains(bot_only),
                "{bot_only} in the user's help:\n{help}"
            );
        }
        let mut command = Cli::command();
        let bot = command
            .find_subcommand_mut("bot")
            .expect("the bot subcommand");
        let bot_help = bot.render_long_help().to_string();
        assert!(bot_help.contains("--stats-interval-ms"), "{bot_help}");
    }

    #[test]
    fn headless_as_the_first_argument_still_runs_the_bot() {
        let (link, rewritten) = split_link(args("classroom --headless --session s --user u"));
        assert!(link.is_none());
        let cli = Cli::try_parse_from(rewritten).expect("parses");
        let Some(AppCommand::Bot(bot)) = cli.command else {
            panic!("not the bot: {:?}", cli.command);
        };
        assert_eq!((bot.session.as_str(), bot.user.as_str()), ("s", "u"));
    }

    #[test]
    fn a_link_is_taken_out_before_parsing() {
        let (link, rest) = split_link(args("classroom classroom://join?server=x&session=y"));
        assert_eq!(link.as_deref(), Some("classroom://join?server=x&session=y"));
        assert!(Cli::try_parse_from(rest).expect("parses").command.is_none());
    }
}
