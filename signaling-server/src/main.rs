//! `classroom-signaling`: serve a class, or manage its roster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use classroom_signaling::auth::{Identity, issue_token};
use classroom_signaling::config::{
    FileConfig, FileSfu, FileTurn, OriginPolicy, ServerConfig, check_secret,
};
use classroom_signaling::store::Store;
use classroom_wire::{IceServer, Role};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "classroom-signaling",
    version,
    about = "Classroom signaling server (Socket.IO) and roster tool"
)]
struct Cli {
    /// TOML config file (flags and environment override it).
    #[arg(long, global = true, env = "CLASSROOM_CONFIG")]
    config: Option<PathBuf>,
    /// SQLite database for classes, enrollments and chat history.
    #[arg(long, global = true, env = "CLASSROOM_DATABASE")]
    database: Option<PathBuf>,
    /// HS256 secret shared with the LMS for sign-in tokens.
    #[arg(
        long,
        global = true,
        env = "CLASSROOM_JWT_SECRET",
        hide_env_values = true
    )]
    jwt_secret: Option<String>,
    /// Issuer (`iss`) every sign-in token must carry, when set.
    #[arg(long, global = true, env = "CLASSROOM_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Audience (`aud`) every sign-in token must carry, when set; without it, a token with an
    /// `aud` is refused.
    #[arg(long, global = true, env = "CLASSROOM_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Longest lifetime of a sign-in token in seconds (`exp - iat`; default 86400).
    #[arg(long, global = true, env = "CLASSROOM_MAX_TOKEN_LIFETIME_SECS")]
    max_token_lifetime_secs: Option<u64>,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "CLASSROOM_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Csv,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(Box<ServeArgs>),
    /// Manage classes.
    #[command(subcommand)]
    Class(ClassCommand),
    /// Enroll a user in a class (or change their role).
    Enroll {
        class_id: String,
        user_id: String,
        #[arg(long, value_enum, default_value = "student")]
        role: RoleArg,
    },
    /// Remove a user from a class.
    Unenroll { class_id: String, user_id: String },
    /// List who is enrolled in a class.
    Roster { class_id: String },
    /// Export a class's polls and quizzes with their answers.
    Polls {
        class_id: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
    },
    /// Issue a sign-in token with the configured secret (for tests and local setups).
    Token {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "student")]
        role: RoleArg,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
}

#[derive(Subcommand)]
enum ClassCommand {
    /// Create a class (or rename it).
    Create {
        id: String,
        #[arg(long)]
        title: Option<String>,
    },
    /// List classes with their enrollment counts.
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Student,
    Instructor,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Student => Role::Student,
            RoleArg::Instructor => Role::Instructor,
        }
    }
}

#[derive(Args, Default, Clone)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "CLASSROOM_LISTEN")]
    listen: Option<SocketAddr>,
    /// Development mode: trust the identity in join-session when no token is given, create
    /// sessions on first join. For local classes only.
    #[arg(long, env = "CLASSROOM_DEV")]
    dev: bool,
    /// Development mode: this user id is every class's instructor, and nobody else is (without
    /// it, the first in each class to ask is).
    #[arg(long, env = "CLASSROOM_DEV_INSTRUCTOR", requires = "dev")]
    dev_instructor: Option<String>,
    /// Create sessions on first join even outside development mode.
    #[arg(long, env = "CLASSROOM_AUTO_CREATE_SESSIONS")]
    auto_create_sessions: Option<bool>,
    /// LMS endpoint asked about enrollment: POST {sessionId, userId} -> {enrolled, role?}.
    #[arg(long, env = "CLASSROOM_ENROLLMENT_HOOK")]
    enrollment_hook: Option<String>,
    /// Secret that signs each request to the enrollment hook (HMAC-SHA256, 32 bytes or more).
    #[arg(long, env = "CLASSROOM_ENROLLMENT_HOOK_SECRET", hide_env_values = true)]
    enrollment_hook_secret: Option<String>,
    /// Accept an http:// enrollment hook (otherwise https only).
    #[arg(long, env = "CLASSROOM_ENROLLMENT_HOOK_ALLOW_HTTP")]
    enrollment_hook_allow_http: bool,
    /// STUN/TURN URL handed to clients (repeatable); replaces the default public STUN servers.
    #[arg(
        long = "ice-server",
        env = "CLASSROOM_ICE_SERVERS",
        value_delimiter = ','
    )]
    ice_servers: Vec<String>,
    /// Shared secret of a TURN server with time-limited credentials.
    #[arg(long, env = "CLASSROOM_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// TURN URL for the time-limited credentials (repeatable).
    #[arg(long = "turn-url", env = "CLASSROOM_TURN_URLS", value_delimiter = ',')]
    turn_urls: Vec<String>,
    /// Run the server's own TURN relay: UDP and TCP on --turn-port, TLS on --turn-tls-port
    /// with --tls-cert and --tls-key. Clients get its URLs and credentials on join (a secret is
    /// made up unless --turn-secret is given; give it to share credentials with a coturn).
    #[arg(long, env = "CLASSROOM_TURN")]
    turn: bool,
    /// The address TURN listens on (default: the --listen address).
    #[arg(long, env = "CLASSROOM_TURN_ADDRESS")]
    turn_address: Option<std::net::IpAddr>,
    /// TURN's UDP and TCP port (default 3478; 0: any free port).
    #[arg(long, env = "CLASSROOM_TURN_PORT")]
    turn_port: Option<u16>,
    /// TURN over TLS's port (default 5349; 443 for firewalls that let nothing else out: see
    /// docs/turn.md).
    #[arg(long, env = "CLASSROOM_TURN_TLS_PORT")]
    turn_tls_port: Option<u16>,
    /// The certificate (PEM, with its chain) TURN over TLS presents.
    #[arg(long, env = "CLASSROOM_TLS_CERT")]
    tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "CLASSROOM_TLS_KEY")]
    tls_key: Option<std::path::PathBuf>,
    /// The address TURN over TLS listens on (default: the TURN address): a second address lets
    /// it take port 443 beside the HTTPS one.
    #[arg(long, env = "CLASSROOM_TURN_TLS_ADDRESS")]
    turn_tls_address: Option<std::net::IpAddr>,
    /// The name the certificate is for, put in the turns: URL clients are given.
    #[arg(long, env = "CLASSROOM_TURN_TLS_HOST")]
    turn_tls_host: Option<String>,
    /// The address relay sockets open on (default: the TURN address).
    #[arg(long, env = "CLASSROOM_TURN_RELAY_ADDRESS")]
    turn_relay_address: Option<std::net::IpAddr>,
    /// The address TURN tells clients, when they reach it through a 1:1 NAT.
    #[arg(long, env = "CLASSROOM_TURN_PUBLIC_IP")]
    turn_public_ip: Option<std::net::IpAddr>,
    /// A range relays may reach although it is internal (repeatable; by default loopback,
    /// private, link-local and the server's own addresses are refused).
    #[arg(
        long = "turn-allow-peer",
        env = "CLASSROOM_TURN_ALLOW_PEERS",
        value_delimiter = ','
    )]
    turn_allow_peers: Vec<classroom_signaling::turn::Cidr>,
    /// Allocations one user may hold at once (default 50).
    #[arg(long, env = "CLASSROOM_TURN_USER_QUOTA")]
    turn_user_quota: Option<usize>,
    /// Allocations the relay holds at once (default 10000).
    #[arg(long, env = "CLASSROOM_TURN_TOTAL_QUOTA")]
    turn_total_quota: Option<usize>,
    /// Bits per second one allocation may relay, both ways (default 20000000; 0: no cap).
    #[arg(long, env = "CLASSROOM_TURN_MAX_BPS")]
    turn_max_bps: Option<u64>,
    /// Web origin allowed to connect (repeatable, e.g. https://lms.example.org; pages this server
    /// serves are always allowed); without one, any origin. `loopback` allows only pages served
    /// from this machine.
    #[arg(
        long = "allowed-origin",
        env = "CLASSROOM_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// A key every client must give in the handshake (`auth: { key }`), at least 16 characters.
    #[arg(long, env = "CLASSROOM_JOIN_KEY", hide_env_values = true)]
    join_key: Option<String>,
    /// Bearer token for GET /metrics; without one, metrics are served only with --dev.
    #[arg(long, env = "CLASSROOM_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Whether classes run on the server's SFU: off (every class a mesh), always, or auto
    /// (a mesh up to --mesh-max participants, the SFU above).
    #[arg(long, env = "CLASSROOM_SFU", value_enum)]
    sfu: Option<classroom_signaling::sfu::SfuMode>,
    /// Who waits to be let in until an instructor admits them, in every class until its
    /// instructor changes it: open (nobody), ask (every student), roster (students not on
    /// the class's roster).
    #[arg(long, env = "CLASSROOM_WAITING_ROOM", default_value = "open", value_parser = parse_waiting_room)]
    waiting_room: classroom_wire::WaitingPolicy,
    /// The largest class --sfu auto keeps a mesh (it moves back below it) [default: 4].
    #[arg(long, env = "CLASSROOM_MESH_MAX")]
    mesh_max: Option<usize>,
    /// Above how many speakers each participant on the SFU hears only the loudest few
    /// (--sfu-loudest) [default: 10].
    #[arg(long, env = "CLASSROOM_SFU_AUDIO_ABOVE")]
    sfu_audio_above: Option<usize>,
    /// How many of the loudest speakers are heard in a class above --sfu-audio-above
    /// [default: 3].
    #[arg(long, env = "CLASSROOM_SFU_LOUDEST")]
    sfu_loudest: Option<usize>,
    /// The address the SFU receives media on (one UDP port for every peer); default: the
    /// --listen address.
    #[arg(long, env = "CLASSROOM_MEDIA_ADDRESS")]
    media_address: Option<std::net::IpAddr>,
    /// The SFU's UDP port (0: any free port) [default: 3479].
    #[arg(long, env = "CLASSROOM_MEDIA_PORT")]
    media_port: Option<u16>,
    /// The address the SFU advertises to clients, when they reach it through a 1:1 NAT.
    #[arg(long, env = "CLASSROOM_PUBLIC_IP")]
    public_ip: Option<std::net::IpAddr>,
    /// How often, in seconds, a signed-in member's enrollment is checked again (default 60):
    /// someone removed from the class is disconnected.
    #[arg(long, env = "CLASSROOM_ENROLLMENT_RECHECK_SECS")]
    enrollment_recheck_secs: Option<u64>,
    #[arg(long, env = "CLASSROOM_PING_INTERVAL_MS")]
    ping_interval_ms: Option<u64>,
    #[arg(long, env = "CLASSROOM_PING_TIMEOUT_MS")]
    ping_timeout_ms: Option<u64>,
    #[arg(long, env = "CLASSROOM_MAX_PARTICIPANTS")]
    max_participants: Option<usize>,
    #[arg(long, env = "CLASSROOM_EVENTS_PER_SECOND")]
    events_per_second: Option<f64>,
    #[arg(long, env = "CLASSROOM_EVENT_BURST")]
    event_burst: Option<f64>,
    #[arg(long, env = "CLASSROOM_CHAT_HISTORY")]
    chat_history: Option<usize>,
    /// Events per second of all the connections of one address (default 2000; 0: no limit).
    #[arg(long, env = "CLASSROOM_EVENTS_PER_SECOND_PER_ADDRESS")]
    events_per_second_per_address: Option<f64>,
    /// Events one address may send at once (default 8000).
    #[arg(long, env = "CLASSROOM_EVENT_BURST_PER_ADDRESS")]
    event_burst_per_address: Option<f64>,
    /// Events per second of all the connections of one signed-in user (default 200; 0: none).
    #[arg(long, env = "CLASSROOM_EVENTS_PER_SECOND_PER_USER")]
    events_per_second_per_user: Option<f64>,
    /// Events one signed-in user may send at once (default 800).
    #[arg(long, env = "CLASSROOM_EVENT_BURST_PER_USER")]
    event_burst_per_user: Option<f64>,
    /// Chat messages per second of one member, over all its connections (default 2).
    #[arg(long, env = "CLASSROOM_CHAT_PER_SECOND")]
    chat_per_second: Option<f64>,
    /// Chat messages one member may send at once (default 10).
    #[arg(long, env = "CLASSROOM_CHAT_BURST")]
    chat_burst: Option<f64>,
    /// Days chat history is kept (default 180; 0: for ever).
    #[arg(long, env = "CLASSROOM_CHAT_RETENTION_DAYS")]
    chat_retention_days: Option<u64>,
    /// Hours a session made on first join (development mode) is kept once empty and idle:
    /// its chat, polls and bars (default 24; 0: as long as chat).
    #[arg(long, env = "CLASSROOM_AD_HOC_RETENTION_HOURS")]
    ad_hoc_retention_hours: Option<u64>,
    /// Largest Engine.IO packet in bytes; a client sending more is disconnected.
    #[arg(long, env = "CLASSROOM_MAX_PAYLOAD")]
    max_payload: Option<u64>,
    /// Longest chat message in characters.
    #[arg(long, env = "CLASSROOM_MAX_CHAT_CHARS")]
    max_chat_chars: Option<usize>,
    /// Socket.IO connections held at once (default 20000; 0: no limit).
    #[arg(long, env = "CLASSROOM_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Connections from one address (default 1000; 0: no limit, behind a reverse proxy).
    #[arg(long, env = "CLASSROOM_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let mut config = ServerConfig::default();
    let (mut file_turn, mut file_sfu) = (None, None);
    if let Some(path) = &cli.config {
        let file = FileConfig::load(path)?;
        file_turn = file.turn.clone();
        file_sfu = file.sfu.clone();
        config.apply_file(file);
    }
    if cli.database.is_some() {
        config.database = cli.database.clone();
    }
    if cli.jwt_secret.is_some() {
        config.jwt_secret = cli.jwt_secret.clone();
    }
    if cli.jwt_issuer.is_some() {
        config.token_rules.issuer = cli.jwt_issuer.clone();
    }
    if cli.jwt_audience.is_some() {
        config.token_rules.audience = cli.jwt_audience.clone();
    }
    if let Some(v) = cli.max_token_lifetime_secs {
        config.token_rules.max_lifetime = Duration::from_secs(v);
    }
    match cli.command {
        None => serve(config, cli.serve, file_turn, file_sfu),
        Some(Command::Serve(args)) => serve(config, *args, file_turn, file_sfu),
        Some(Command::Class(ClassCommand::Create { id, title })) => {
            let store = open_store(&config)?;
            store.create_class(&id, title.as_deref().unwrap_or(&id))?;
            println!("class {id} ready");
            Ok(())
        }
        Some(Command::Class(ClassCommand::List)) => {
            for c in open_store(&config)?.list_classes()? {
                println!("{}\t{}\t{} enrolled", c.id, c.title, c.enrolled);
            }
            Ok(())
        }
        Some(Command::Enroll {
            class_id,
            user_id,
            role,
        }) => {
            open_store(&config)?.enroll(&class_id, &user_id, role.into())?;
            println!("{user_id} enrolled in {class_id}");
            Ok(())
        }
        Some(Command::Polls { class_id, format }) => {
            let polls = open_store(&config)?.poll_results(&class_id)?;
            match format {
                ExportFormat::Csv => print!("{}", classroom_signaling::store::polls_csv(&polls)),
                ExportFormat::Json => println!("{}", serde_json::to_string_pretty(&polls)?),
            }
            Ok(())
        }
        Some(Command::Unenroll { class_id, user_id }) => {
            if !open_store(&config)?.unenroll(&class_id, &user_id)? {
                bail!("{user_id} was not enrolled in {class_id}");
            }
            println!("{user_id} removed from {class_id}");
            Ok(())
        }
        Some(Command::Roster { class_id }) => {
            for (user, role) in open_store(&config)?.roster(&class_id)? {
                println!(
                    "{user}\t{}",
                    if role.is_instructor() {
                        "instructor"
                    } else {
                        "student"
                    }
                );
            }
            Ok(())
        }
        Some(Command::Token {
            user,
            name,
            role,
            ttl_secs,
        }) => {
            let secret = config
                .jwt_secret
                .as_deref()
                .context("no JWT secret: pass --jwt-secret or CLASSROOM_JWT_SECRET")?;
            check_secret("JWT secret (--jwt-secret, CLASSROOM_JWT_SECRET)", secret)?;
            let identity = Identity {
                user_id: user,
                user_name: name,
                role: role.into(),
            };
            println!(
                "{}",
                issue_token(
                    secret,
                    &identity,
                    Duration::from_secs(ttl_secs),
                    &config.token_rules
                )?
            );
            Ok(())
        }
    }
}

/// `--allowed-origin` values as a policy: `loopback`, `*` (any), or a list of origins.
fn origin_policy(values: Vec<String>) -> OriginPolicy {
    match values.as_slice() {
        [one] if one == "loopback" => OriginPolicy::Loopback,
        [one] if one == "*" => OriginPolicy::Any,
        _ => OriginPolicy::List(values),
    }
}

fn open_store(config: &ServerConfig) -> Result<Store> {
    let path = config
        .database
        .as_deref()
        .context("no database: pass --database or CLASSROOM_DATABASE")?;
    Ok(Store::open(Some(path))?)
}

fn serve(
    mut config: ServerConfig,
    args: ServeArgs,
    file_turn: Option<FileTurn>,
    file_sfu: Option<FileSfu>,
) -> Result<()> {
    if let Some(v) = args.listen {
        config.listen = v;
    }
    let file_turn = file_turn.unwrap_or_default();
    if args.turn || file_turn.enabled == Some(true) {
        config.turn = Some(turn_config(&args, &file_turn, config.listen.ip())?);
    }
    config.sfu = sfu_config(&args, &file_sfu.unwrap_or_default(), config.listen.ip());
    if args.dev {
        config.dev_mode = true;
        config.auto_create_sessions = true;
    }
    if args.dev_instructor.is_some() {
        config.dev_instructor = args.dev_instructor;
    }
    if let Some(v) = args.auto_create_sessions {
        config.auto_create_sessions = v;
    }
    if args.enrollment_hook.is_some() {
        config.enrollment_hook = args.enrollment_hook;
    }
    if args.enrollment_hook_secret.is_some() {
        config.enrollment_hook_secret = args.enrollment_hook_secret;
    }
    if args.enrollment_hook_allow_http {
        config.enrollment_hook_allow_http = true;
    }
    if !args.ice_servers.is_empty() {
        config.ice_servers = args
            .ice_servers
            .into_iter()
            .map(|url| IceServer {
                urls: vec![url],
                username: None,
                credential: None,
            })
            .collect();
    }
    if args.turn_secret.is_some() {
        config.turn_secret = args.turn_secret;
    }
    if !args.turn_urls.is_empty() {
        config.turn_urls = args.turn_urls;
    }
    if !args.allowed_origins.is_empty() {
        config.origins = origin_policy(args.allowed_origins);
    }
    config.waiting_room = args.waiting_room;
    if args.join_key.is_some() {
        config.join_key = args.join_key;
    }
    if args.metrics_token.is_some() {
        config.metrics_token = args.metrics_token;
    }
    if let Some(v) = args.enrollment_recheck_secs {
        config.enrollment_recheck = Duration::from_secs(v);
    }
    if let Some(v) = args.ping_interval_ms {
        config.ping_interval = Duration::from_millis(v);
    }
    if let Some(v) = args.ping_timeout_ms {
        config.ping_timeout = Duration::from_millis(v);
    }
    let l = &mut config.limits;
    if let Some(v) = args.max_participants {
        l.max_participants_per_session = v;
    }
    if let Some(v) = args.events_per_second {
        l.events_per_second = v;
    }
    if let Some(v) = args.event_burst {
        l.event_burst = v;
    }
    if let Some(v) = args.chat_history {
        l.chat_history_len = v;
    }
    if let Some(v) = args.chat_per_second {
        l.chat_per_second = v;
    }
    if let Some(v) = args.events_per_second_per_address {
        l.events_per_second_per_address = v;
    }
    if let Some(v) = args.event_burst_per_address {
        l.event_burst_per_address = v;
    }
    if let Some(v) = args.events_per_second_per_user {
        l.events_per_second_per_user = v;
    }
    if let Some(v) = args.event_burst_per_user {
        l.event_burst_per_user = v;
    }
    if let Some(v) = args.chat_burst {
        l.chat_burst = v;
    }
    if let Some(v) = args.chat_retention_days {
        l.chat_retention_days = v;
    }
    if let Some(v) = args.ad_hoc_retention_hours {
        l.ad_hoc_retention_hours = v;
    }
    if let Some(v) = args.max_payload {
        l.max_transport_payload = v;
    }
    if let Some(v) = args.max_chat_chars {
        l.max_chat_chars = v;
    }
    if let Some(v) = args.max_connections {
        l.max_connections = v;
    }
    if let Some(v) = args.max_connections_per_ip {
        l.max_connections_per_ip = v;
    }
    // Before anything listens: a refused configuration must not be announced as listening.
    config.validate()?;
    raise_open_file_limit();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        // One line on stdout that scripts and tests read; logs go to stderr.
        println!("classroom-signaling listening on http://{addr}");
        classroom_signaling::serve(config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Each connection is a file descriptor: lift the soft limit to the hard one.
fn raise_open_file_limit() {
    #[cfg(unix)]
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!("cannot raise the open file limit");
            }
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLASSROOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let filter = classroom_signaling::quiet_declined_events(filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn parse_waiting_room(s: &str) -> Result<classroom_wire::WaitingPolicy, String> {
    match s {
        "open" => Ok(classroom_wire::WaitingPolicy::Open),
        "ask" => Ok(classroom_wire::WaitingPolicy::Ask),
        "roster" => Ok(classroom_wire::WaitingPolicy::Roster),
        other => Err(format!("{other:?}: expected open, ask or roster")),
    }
}

/// The SFU's settings: each flag, else the file's `[sfu]` key, else the default.
fn sfu_config(
    args: &ServeArgs,
    file: &FileSfu,
    listen: std::net::IpAddr,
) -> classroom_signaling::sfu::SfuConfig {
    use classroom_signaling::sfu::{AudioSelection, SfuConfig, SfuMode};
    SfuConfig {
        mode: args.sfu.or(file.mode).unwrap_or(SfuMode::Off),
        media_bind: std::net::SocketAddr::new(
            args.media_address.or(file.media_address).unwrap_or(listen),
            args.media_port.or(file.media_port).unwrap_or(3479),
        ),
        public_ip: args.public_ip.or(file.public_ip),
        mesh_max: args.mesh_max.or(file.mesh_max).unwrap_or(4).max(2),
        audio: AudioSelection {
            above: args.sfu_audio_above.or(file.audio_above).unwrap_or(10),
            // Nobody is heard at all would be a broken class, not a quiet one.
            loudest: args.sfu_loudest.or(file.loudest).unwrap_or(3).max(1),
        },
    }
}

/// The TURN relay's settings: each flag, else the file's `[turn]` key, else the default.
fn turn_config(
    args: &ServeArgs,
    file: &FileTurn,
    listen: std::net::IpAddr,
) -> anyhow::Result<classroom_signaling::turn::TurnConfig> {
    use classroom_signaling::turn::{Cidr, TurnConfig, TurnTls};
    let ip = args.turn_address.or(file.address).unwrap_or(listen);
    let mut t = TurnConfig::new(ip);
    t.port = args.turn_port.or(file.port).unwrap_or(3478);
    t.relay_ip = args.turn_relay_address.or(file.relay_address).unwrap_or(ip);
    t.public_ip = args.turn_public_ip.or(file.public_ip);
    t.allow_peers = if args.turn_allow_peers.is_empty() {
        file.allow_peers
            .iter()
            .flatten()
            .map(|range| {
                range
                    .parse::<Cidr>()
                    .map_err(|e| anyhow::anyhow!("[turn] allow_peers: {range:?}: {e}"))
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        args.turn_allow_peers.clone()
    };
    if let Some(n) = args.turn_user_quota.or(file.user_quota) {
        t.max_allocations_per_user = n;
    }
    if let Some(n) = args.turn_total_quota.or(file.total_quota) {
        t.max_allocations = n;
    }
    if let Some(n) = args.turn_max_bps.or(file.max_bps) {
        t.max_bps_per_allocation = n;
    }
    let cert = args.tls_cert.clone().or_else(|| file.tls_cert.clone());
    let key = args.tls_key.clone().or_else(|| file.tls_key.clone());
    t.tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TurnTls {
            ip: args.turn_tls_address.or(file.tls_address),
            port: args.turn_tls_port.or(file.tls_port).unwrap_or(5349),
            host: args.turn_tls_host.clone().or_else(|| file.tls_host.clone()),
            cert,
            key,
        }),
        (None, None) => None,
        _ => anyhow::bail!(
            "TURN over TLS needs both a certificate and a key (--tls-cert and --tls-key, or \
             [turn] tls_cert and tls_key)"
        ),
    };
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["classroom-signaling"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).expect("flags parse").serve
    }

    /// The `[sfu]` table fills what no flag sets; a flag wins over its key; without either,
    /// the defaults the flags document.
    #[test]
    fn the_sfu_takes_the_files_sfu_table_and_flags_override_it() {
        use classroom_signaling::sfu::SfuMode;
        let file: FileConfig = toml::from_str(
            r#"
            [sfu]
            mode = "auto"
            mesh_max = 6
            audio_above = 20
            loudest = 4
            media_address = "203.0.113.2"
            media_port = 3480
            public_ip = "198.51.100.7"
            "#,
        )
        .expect("an [sfu] table parses");
        let table = file.sfu.expect("the table");
        let listen = std::net::IpAddr::from([127, 0, 0, 1]);
        let c = sfu_config(&serve_args(&[]), &table, listen);
        assert_eq!((c.mode, c.mesh_max), (SfuMode::Auto, 6));
        assert_eq!((c.audio.above, c.audio.loudest), (20, 4));
        assert_eq!(c.media_bind, "203.0.113.2:3480".parse().unwrap());
        assert_eq!(c.public_ip, Some(std::net::IpAddr::from([198, 51, 100, 7])));

        let c = sfu_config(
            &serve_args(&["--sfu", "always", "--mesh-max", "3", "--media-port", "0"]),
            &table,
            listen,
        );
        assert_eq!(
            (c.mode, c.mesh_max, c.media_bind.port()),
            (SfuMode::Always, 3, 0)
        );
        assert_eq!(c.audio.loudest, 4, "a key no flag overrides stays");

        let c = sfu_config(&serve_args(&[]), &FileSfu::default(), listen);
        assert_eq!((c.mode, c.mesh_max), (SfuMode::Off, 4));
        assert_eq!((c.audio.above, c.audio.loudest), (10, 3));
        assert_eq!(c.media_bind, std::net::SocketAddr::new(listen, 3479));
        // A class where nobody is heard, or a mesh of one, is not configurable.
        let c = sfu_config(
            &serve_args(&["--sfu-loudest", "0", "--mesh-max", "1"]),
            &table,
            listen,
        );
        assert_eq!((c.audio.loudest, c.mesh_max), (1, 2));
        // A misspelt key is refused, not ignored.
        assert!(toml::from_str::<FileConfig>("[sfu]\nmesh_maxx = 3").is_err());
        assert!(toml::from_str::<FileConfig>("[sfu]\nmode = \"sometimes\"").is_err());
    }

    /// The `[turn]` table fills what no flag sets; a flag wins over its key.
    #[test]
    fn the_relay_takes_the_files_turn_table_and_flags_override_it() {
        let file: FileConfig = toml::from_str(
            r#"
            [turn]
            enabled = true
            address = "203.0.113.1"
            port = 3479
            tls_cert = "/etc/classroom/turn.pem"
            tls_key = "/etc/classroom/turn.key"
            tls_port = 443
            tls_host = "turn.school.example"
            allow_peers = ["10.20.0.0/16"]
            user_quota = 7
            max_bps = 1000000
            "#,
        )
        .expect("a [turn] table parses");
        let turn = file.turn.expect("the table");
        let listen = std::net::IpAddr::from([127, 0, 0, 1]);
        let t = turn_config(&serve_args(&[]), &turn, listen).expect("settings");
        assert_eq!(t.listen_ip, std::net::IpAddr::from([203, 0, 113, 1]));
        assert_eq!(t.port, 3479);
        assert_eq!(t.max_allocations_per_user, 7);
        assert_eq!(t.max_bps_per_allocation, 1_000_000);
        assert_eq!(t.allow_peers.len(), 1);
        let tls = t.tls.expect("TLS from the file");
        assert_eq!(
            (tls.port, tls.host.as_deref()),
            (443, Some("turn.school.example"))
        );

        let t = turn_config(
            &serve_args(&["--turn-port", "3480", "--turn-user-quota", "3"]),
            &turn,
            listen,
        )
        .expect("settings");
        assert_eq!((t.port, t.max_allocations_per_user), (3480, 3));
        // Without the table, the defaults.
        let t = turn_config(&serve_args(&[]), &FileTurn::default(), listen).expect("settings");
        assert_eq!((t.listen_ip, t.port, t.tls.is_none()), (listen, 3478, true));
        // A bad range and half a certificate are said.
        let bad = FileTurn {
            allow_peers: Some(vec!["10.0.0.0/40".into()]),
            ..FileTurn::default()
        };
        let error = turn_config(&serve_args(&[]), &bad, listen)
            .unwrap_err()
            .to_string();
        assert!(error.contains("allow_peers"), "{error}");
        let half = FileTurn {
            tls_cert: Some("/x.pem".into()),
            ..FileTurn::default()
        };
        let error = turn_config(&serve_args(&[]), &half, listen)
            .unwrap_err()
            .to_string();
        assert!(error.contains("certificate and a key"), "{error}");
    }
}
