//! `barrage serve`: the built-in target server from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::exit;
use crate::scenario;
use crate::server::{self, Mode};
use crate::ui;

/// `barrage serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// What the server does: echo messages back, relay them between the
    /// members of chat rooms (broadcast), or push messages on a timer (push).
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    pub mode: Mode,
    /// Accept loops, each on its own thread with its own SO_REUSEPORT
    /// listener on the same port (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// Server processes sharing the port with SO_REUSEPORT, each with its
    /// own file-descriptor budget, so the server holds as many sockets as
    /// the clients of `run --processes`. Needs a fixed port; not with
    /// `--mode broadcast` (rooms would not span processes). Each process
    /// runs `--workers` accept loops (default: CPUs ÷ N, at least 1).
    /// Default: one process.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub processes: Option<u16>,
    /// Serve wss:// (TLS). Without --cert/--key a self-signed certificate
    /// for localhost, 127.0.0.1 and ::1 is made and written to --cert-out.
    #[arg(long)]
    pub tls: bool,
    /// Certificate chain (PEM) to serve with --tls.
    #[arg(long, requires = "key", requires = "tls")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Where the self-signed certificate is written, for clients to trust
    /// (scenario `tls: { ca: PATH }`).
    #[arg(
        long,
        default_value = "reports/serve-cert.pem",
        conflicts_with = "cert"
    )]
    pub cert_out: PathBuf,
    /// Accept permessage-deflate when a client offers it.
    #[arg(long)]
    pub compression: bool,
    /// With --compression, reset the server's compression context after
    /// every message (server_no_context_takeover).
    #[arg(long, requires = "compression")]
    pub no_context_takeover: bool,
    /// A subprotocol the server supports (repeatable); the first one the
    /// client offers is chosen.
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// With --mode push: messages each connection is sent per second
    /// (`10/s`, `600/m`, or a bare number per second). Default 10/s.
    #[arg(long, value_name = "RATE", value_parser = scenario::parse_rate)]
    pub push_rate: Option<scenario::Rate>,
    /// With --mode push: the size of each pushed message (`256`, `1KiB`).
    /// Default 128 bytes.
    #[arg(long, value_name = "SIZE", value_parser = parse_push_size)]
    pub push_size: Option<usize>,
    /// Largest message a client may send (`64MiB`, `1MiB`, `4096`; 125 B to
    /// 1 GiB), counted after its fragments are put together (and after
    /// inflating, with --compression); a larger one closes the connection
    /// with 1009 (message too big). Default 1MiB, as the client side's
    /// `max_message_size`.
    #[arg(long, value_name = "SIZE", value_parser = parse_max_message_size)]
    pub max_message_size: Option<usize>,
    /// Closes a connection whose request headers are not all in within this
    /// time (`10s`, `500ms`): the upgrade request, and a request after a
    /// non-WebSocket answer. Stops slowloris clients from holding sockets.
    /// Default 10s.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub header_timeout: Option<Duration>,
    /// Closes an upgraded connection that sends nothing (no message, no
    /// ping, not a byte) for this long (`60s`, `5m`), with 1001 "idle
    /// timeout". Default off: push and broadcast subscribers may
    /// legitimately never send, and would be cut off.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub idle_timeout: Option<Duration>,
}

/// Largest --push-size: the largest binary message barrage sends (a client
/// needs a `max_message_size` at least as large).
const MAX_PUSH_SIZE: usize = 64 << 20;

fn parse_push_size(s: &str) -> Result<usize, String> {
    let n = scenario::parse_size(s)?;
    if n > MAX_PUSH_SIZE {
        return Err(format!("{s} is over the limit of 64 MiB"));
    }
    Ok(n)
}

/// Bounds of --max-message-size: those of the client's `max_message_size`.
const MESSAGE_SIZE_BOUNDS: (usize, usize) = (125, 1 << 30);

fn parse_max_message_size(s: &str) -> Result<usize, String> {
    let n = scenario::parse_size(s)?;
    let (min, max) = MESSAGE_SIZE_BOUNDS;
    if !(min..=max).contains(&n) {
        return Err(format!("{s} is outside 125 bytes to 1 GiB"));
    }
    Ok(n)
}

/// A timeout: a duration with a unit, more than zero.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = scenario::parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s} is not a timeout: give a duration over zero"));
    }
    Ok(d)
}

/// The server options `barrage serve` was given; writes the self-signed
/// certificate when one is made.
fn serve_options(a: &ServeArgs) -> anyhow::Result<server::Options> {
    // Silently ignoring them would leave a user wondering where the pushes are.
    if a.mode != Mode::Push && (a.push_rate.is_some() || a.push_size.is_some()) {
        anyhow::bail!("--push-rate and --push-size need --mode push");
    }
    let defaults = server::Options::default();
    let tls = if !a.tls {
        None
    } else if let (Some(cert), Some(key)) = (&a.cert, &a.key) {
        Some(crate::tls::server_config_from_files(cert, key)?)
    } else {
        let (cert, key) = crate::tls::self_signed()?;
        if let Some(dir) = a.cert_out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        crate::report::write::write_atomic(&a.cert_out, cert.as_bytes())?;
        crate::say!(
            "barrage serve: self-signed certificate written to {} (trust it with tls: {{ ca: {} }})",
            a.cert_out.display(),
            a.cert_out.display()
        );
        Some(crate::tls::server_config(&cert, &key)?)
    };
    Ok(server::Options {
        mode: a.mode,
        tls,
        compression: a.compression,
        no_context_takeover: a.no_context_takeover,
        subprotocols: a.subprotocols.clone(),
        push_rate: a.push_rate.map_or(defaults.push_rate, |r| r.per_second),
        push_size: a.push_size.unwrap_or(defaults.push_size),
        max_message_size: a.max_message_size.unwrap_or(defaults.max_message_size),
        header_timeout: a.header_timeout.or(defaults.header_timeout),
        idle_timeout: a.idle_timeout.or(defaults.idle_timeout),
    })
}

/// The mode as the startup line tells it.
fn describe_mode(o: &server::Options) -> String {
    match o.mode {
        Mode::Push => format!("push ({}/s, {} B per message)", o.push_rate, o.push_size),
        Mode::Broadcast => "broadcast (rooms: /room/NAME, else lobby)".to_string(),
        Mode::Echo => o.mode.name().to_string(),
    }
}

pub async fn serve(a: ServeArgs) -> u8 {
    if let Some(n) = a.processes.filter(|n| *n > 1) {
        return serve_processes(a, n).await;
    }
    let workers = a
        .workers
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let fd_limit = crate::engine::preflight::raise_fd_limit();
    let opts = match serve_options(&a) {
        Ok(o) => o,
        Err(e) => {
            ui::error(&format!("{e:#}"));
            return exit::BAD_INPUT;
        }
    };
    let scheme = if opts.tls.is_some() { "wss" } else { "ws" };
    let mode = describe_mode(&opts);
    let handle = match server::start_workers(a.listen, opts, workers).await {
        Ok(h) => h,
        Err(e) => {
            ui::error(&format!("cannot listen on {}: {e}", a.listen));
            return exit::RUN_FAILED;
        }
    };
    crate::say!(
        "barrage serve: {mode} on {scheme}://{}/ with {workers} worker(s), up to {fd_limit} descriptors (Ctrl-C to stop)",
        handle.local_addr
    );
    stop_signal().await;
    let stats = handle.stats.clone();
    handle.shutdown().await;
    crate::say!(
        "barrage serve: stopped after {} connection(s), {} message(s) sent, {} dropped",
        stats.connections.load(std::sync::atomic::Ordering::Relaxed),
        stats.messages.load(std::sync::atomic::Ordering::Relaxed),
        stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
    );
    exit::PASSED
}

/// Waits for Ctrl-C or SIGTERM.
async fn stop_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `serve --processes N`: N child `barrage serve` processes on one port.
async fn serve_processes(a: ServeArgs, n: u16) -> u8 {
    if a.listen.port() == 0 {
        ui::error(
            &"--processes needs a fixed port (--listen 127.0.0.1:9001): every process must listen on the same one",
        );
        return exit::BAD_INPUT;
    }
    if a.mode == Mode::Broadcast {
        ui::error(
            &"--mode broadcast cannot use --processes: a room would be split between processes that do not see each other",
        );
        return exit::BAD_INPUT;
    }
    if a.mode != Mode::Push && (a.push_rate.is_some() || a.push_size.is_some()) {
        ui::error(&"--push-rate and --push-size need --mode push");
        return exit::BAD_INPUT;
    }
    let workers = a.workers.map(usize::from).unwrap_or_else(|| {
        (std::thread::available_parallelism().map_or(1, |c| c.get()) / usize::from(n)).max(1)
    });
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        a.listen.to_string(),
        "--mode".into(),
        a.mode.name().into(),
        "--workers".into(),
        workers.to_string(),
    ];
    if a.tls {
        // One certificate for all processes: made here when not given.
        let (cert, key) = match (&a.cert, &a.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => match self_signed_files(&a.cert_out) {
                Ok(p) => p,
                Err(e) => {
                    ui::error(&format!("{e:#}"));
                    return exit::BAD_INPUT;
                }
            },
        };
        args.extend(["--tls".into(), "--cert".into(), cert.display().to_string()]);
        args.extend(["--key".into(), key.display().to_string()]);
    }
    if a.compression {
        args.push("--compression".into());
    }
    if a.no_context_takeover {
        args.push("--no-context-takeover".into());
    }
    for p in &a.subprotocols {
        args.extend(["--subprotocol".into(), p.clone()]);
    }
    if let Some(r) = a.push_rate {
        args.extend(["--push-rate".into(), format!("{}/s", r.per_second)]);
    }
    if let Some(sz) = a.push_size {
        args.extend(["--push-size".into(), sz.to_string()]);
    }
    if let Some(sz) = a.max_message_size {
        args.extend(["--max-message-size".into(), sz.to_string()]);
    }
    for (flag, d) in [
        ("--header-timeout", a.header_timeout),
        ("--idle-timeout", a.idle_timeout),
    ] {
        if let Some(d) = d {
            args.extend([flag.into(), format!("{}ns", d.as_nanos())]);
        }
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            ui::error(&format!("cannot find the barrage executable: {e}"));
            return exit::RUN_FAILED;
        }
    };
    let mut children = Vec::new();
    for _ in 0..n {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(&args).process_group(0);
        // SAFETY: prctl is async-signal-safe; the child gets SIGTERM should
        // this process die without stopping it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(c) => children.push(c),
            Err(e) => {
                ui::error(&format!("cannot start a server process: {e}"));
                break;
            }
        }
    }
    crate::say!(
        "barrage serve: {} processes on {} (Ctrl-C to stop)",
        children.len(),
        a.listen
    );
    let started = children.len();
    let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
    let mut waits = tokio::task::JoinSet::new();
    for mut c in children {
        waits.spawn(async move { c.wait().await.is_ok_and(|s| s.success()) });
    }
    // A process that ends by itself (e.g. the port is taken) ends them all.
    let failed = tokio::select! {
        _ = stop_signal() => false,
        _ = waits.join_next() => true,
    };
    for pid in pids {
        // SAFETY: kill on our own child's pid (still unreaped, so not reused).
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    while waits.join_next().await.is_some() {}
    if failed || started < usize::from(n) {
        exit::RUN_FAILED
    } else {
        exit::PASSED
    }
}

/// Makes a self-signed certificate and writes it to `cert_out` and its key
/// next to it (`*.key.pem`, readable by the owner only).
fn self_signed_files(cert_out: &std::path::Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    let (cert, key) = crate::tls::self_signed()?;
    if let Some(dir) = cert_out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::report::write::write_atomic(cert_out, cert.as_bytes())?;
    let key_path = cert_out.with_extension("key.pem");
    // Created owner-only: the key is never readable by others, even briefly.
    let _ = std::fs::remove_file(&key_path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    std::io::Write::write_all(&mut f, key.as_bytes())?;
    crate::say!(
        "barrage serve: self-signed certificate written to {} (trust it with tls: {{ ca: {} }})",
        cert_out.display(),
        cert_out.display()
    );
    Ok((cert_out.to_path_buf(), key_path))
}
