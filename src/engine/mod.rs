//! Runs a scenario: opens the connections at the configured rate, starts the
//! phases together once every attempt has resolved, paces each connection
//! with its phase's [`pacing::Pacer`], and collects a snapshot every tick.
//!
//! One task per connection ([`connection`]); one collector task; the caller's
//! [`CancellationToken`] reaches all of them.

mod connection;
mod correlate;
mod interpret;
mod lifecycle;
pub mod pacing;
mod population;
pub mod preflight;
mod program;
mod roles;
mod sequence;
mod setup;
mod wake;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::metrics::evaluate::{EvalContext, evaluate};
use crate::metrics::{Aborted, Collector, Counters, Recorder, RunData, StageData, TickInfo};
use crate::scenario::{Phase, Scenario, Threshold, WsUrl};

pub use connection::DRAIN;

/// How often snapshots are taken.
pub const TICK: Duration = Duration::from_secs(1);

/// Errors that stop a run before any load is sent.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The target's host name did not resolve.
    #[error("cannot resolve target {target}: {reason}")]
    Resolve {
        /// The target URL.
        target: String,
        /// What the resolver said.
        reason: String,
    },
    /// The run cannot fit this machine or mixes address families.
    #[error(transparent)]
    Preflight(#[from] preflight::PreflightError),
    /// The scenario's TLS settings cannot be used (a file missing or unreadable).
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsSetupError),
}

/// Settings of one engine run besides the scenario.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Cancelling it stops the run gracefully (close frames, data kept).
    pub cancel: CancellationToken,
    /// Where to send each tick's run data delta (the UI), if anywhere.
    pub ticks: Option<mpsc::UnboundedSender<Arc<RunData>>>,
    /// Seed for masks, handshake keys and `{{random}}`; default from the clock.
    pub seed: u64,
    /// Live pause and rate changes (the dashboard's keys).
    pub control: Arc<Control>,
    /// Cancelling it ends the run early as planned, not as an interruption
    /// (`barrage search` once it has its answer).
    pub finish: CancellationToken,
}

/// When the phases start and over how many connections the rate is spread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadStart {
    at: Instant,
}

/// State shared by every connection task of a run.
pub(crate) struct Shared {
    recorder: Recorder,
    phases: Vec<Phase>,
    /// `phase_offsets[i]` = start of phase i from the load start; last = end.
    phase_offsets: Vec<Duration>,
    addr: SocketAddr,
    /// Local addresses to bind to, round-robin by connection id; empty: any.
    source_ips: Vec<std::net::IpAddr>,
    /// What every connection offers in its upgrade, TLS settings, pings.
    protocol: setup::Protocol,
    connect_timeout: Duration,
    /// `connections.rate` of this shard, per second.
    connect_rate: f64,
    /// Each connection's role and each role's flow.
    roles: roles::Roles,
    /// Feeder rows bound to connections.
    feeder: Option<Arc<crate::scenario::Feeder>>,
    /// `delivery:`: the timestamp's JSON path and nanoseconds per unit.
    delivery: Option<(Vec<String>, u64)>,
    /// `sequence:`: the counter's JSON path and the stream key's.
    sequence: Option<(Vec<String>, Option<Vec<String>>)>,
    /// `backlog:`: unclaimed messages kept per connection.
    backlog: usize,
    /// `fanout:`: who is in which room.
    rooms: Option<sequence::Rooms>,
    /// When the phases started, unix ns (0 before): a delivery counts in
    /// the phase its timestamp falls in, read without a lock.
    load_start_unix_ns: AtomicU64,
    /// The slice of the run's connection ids this process runs;
    /// `{{shard}}` is its index.
    shard: crate::scenario::ShardSpec,
    /// Reopening dropped connections.
    reconnect: Option<crate::scenario::ReconnectPolicy>,
    /// Churn: each connection's lifetime range.
    lifetime: Option<crate::scenario::Lifetime>,
    /// Fired when connections must look at shared state again: the start,
    /// a stop, the pools' sizes changed (re-pace at once rather than at a
    /// far-off send) or slots were retired. A connection waits on this one
    /// signal for all of them, without a lock while nothing happens.
    wake: wake::Wake,
    /// Per connection slot, its generation: bumped when a phase lowering
    /// the count closes the slot's connection (newest first). A connection
    /// runs while its slot is at the generation it started with; one
    /// atomic a slot instead of a token and its waiter per connection.
    slot_gens: Box<[AtomicU32]>,
    cancel: CancellationToken,
    /// Connection faults are logged (`-v`): their reasons are kept for
    /// the line logged when the connection is lost. Read once per run.
    log_faults: bool,
    control: Arc<Control>,
    start: watch::Receiver<Option<LoadStart>>,
    resolved: AtomicU64,
    resolved_notify: Notify,
    epoch: Instant,
    epoch_unix_ns: u64,
    seed: u64,
}

/// A connection's place among this process's connection slots (up to the
/// most any phase asks for), and the generation of the slot it runs in.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub index: u32,
    pub generation: u32,
}

impl Shared {
    /// Unix time in ns of `t`, without a clock call.
    fn unix_ns(&self, t: Instant) -> u64 {
        self.epoch_unix_ns + t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// When the phases started (read without a lock; only meaningful once
    /// they have).
    fn phases_at(&self) -> Instant {
        let ns = self
            .load_start_unix_ns
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(self.epoch_unix_ns);
        self.epoch + Duration::from_nanos(ns)
    }

    /// How long connection `id` waits after its load before closing: its
    /// place in the opening ramp, so connections close at the rate they
    /// opened (`connections.rate`).
    fn close_delay(&self, id: u64) -> Duration {
        Duration::from_secs_f64(self.shard.local_index(id) as f64 / self.connect_rate)
    }

    /// The stage a connection event happening now belongs to: the running
    /// phase's, or setup (0) before and after the phases.
    fn stage_now(&self) -> usize {
        let Some(start) = *self.start.borrow() else {
            return 0;
        };
        let Some(t) = Instant::now().checked_duration_since(start.at) else {
            return 0;
        };
        self.phase_offsets
            .windows(2)
            .position(|w| t >= w[0] && t < w[1])
            .map_or(0, |i| i + 1)
    }

    /// The phase stage (1..=phases) a unix time in ns falls in, if the
    /// phases had started by then.
    #[inline]
    fn stage_at_unix(&self, unix_ns: u64) -> Option<usize> {
        let start = self
            .load_start_unix_ns
            .load(std::sync::atomic::Ordering::Relaxed);
        if start == 0 || unix_ns < start {
            return None;
        }
        let t = Duration::from_nanos(unix_ns - start);
        self.phase_offsets
            .windows(2)
            .position(|w| t >= w[0] && t < w[1])
            .map(|i| i + 1)
    }

    /// Records into `stage` of connection `id`'s role: its connection
    /// events (attempts, connect timings) count where the attempt began.
    #[inline]
    fn setup(&self, id: u64, stage: usize, f: impl FnOnce(&mut StageData)) {
        let role = self.roles.of(id);
        self.recorder.with(|t| f(t.cell(role, stage)));
    }

    /// Counts a connection event of `id` in `stage` of its role.
    #[inline]
    fn setup_count(&self, id: u64, stage: usize, f: impl FnOnce(&mut Counters)) {
        self.setup(id, stage, |d| f(&mut d.counters));
    }

    /// Tells the connections that the pools' sizes changed, slots were
    /// retired, the phases started or the run stopped: each looks again.
    fn repace_all(&self) {
        self.roles.publish();
        self.wake.all();
    }

    /// Whether `slot`'s connection was retired (a phase lowered the count).
    fn retired(&self, slot: Slot) -> bool {
        self.slot_gens[slot.index as usize].load(SeqCst) != slot.generation
    }

    /// A connection attempt has succeeded or failed.
    fn setup_resolved(&self) {
        self.resolved.fetch_add(1, SeqCst);
        self.resolved_notify.notify_one();
    }
}

/// Resolves `url` to the first address it names.
pub async fn resolve(url: &WsUrl) -> Result<SocketAddr, EngineError> {
    let err = |reason: String| EngineError::Resolve {
        target: crate::scenario::redact_url(&url.original),
        reason,
    };
    let mut addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| err(e.to_string()))?;
    addrs.next().ok_or_else(|| err("no address".into()))
}

/// Runs `scenario` against `url` and returns what was measured.
pub async fn run(
    scenario: &Scenario,
    url: &WsUrl,
    opts: EngineOptions,
) -> Result<RunData, EngineError> {
    let addr = resolve(url).await.map_err(|e| match e {
        // A target's query values from `${env:…}` are withheld too.
        EngineError::Resolve { target, reason } => EngineError::Resolve {
            target: scenario.env_secrets.redact(&target),
            reason,
        },
        e => e,
    })?;
    preflight::check_families(scenario, addr)?;
    let started_at = SystemTime::now();
    let epoch = Instant::now();
    let started_at_ms = started_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let phases = scenario.phases.clone();
    let mut phase_offsets = vec![Duration::ZERO];
    for p in &phases {
        phase_offsets.push(*phase_offsets.last().expect("non-empty") + p.duration);
    }
    let (start_tx, start_rx) = watch::channel(None);
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    let roles = roles::Roles::new(scenario, &mut rng);
    let role_names: Vec<String> = roles.roles.iter().map(|r| r.name.clone()).collect();
    let role_counts = roles.counts();
    let recorder = Recorder::new(role_names.len(), phases.len());
    let host_header = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let protocol = setup::Protocol::new(scenario, url, &host_header)?;
    // Stops the connections: on Ctrl-C (the caller's token, its parent) or
    // when an `abort_on_fail` threshold breaks.
    let run_cancel = opts.cancel.child_token();
    {
        let (finish, run_cancel) = (opts.finish.clone(), run_cancel.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = finish.cancelled() => run_cancel.cancel(),
                _ = run_cancel.cancelled() => {}
            }
        });
    }
    let shared = Arc::new(Shared {
        recorder: recorder.clone(),
        phases: phases.clone(),
        phase_offsets: phase_offsets.clone(),
        addr,
        source_ips: scenario.source_ips.clone(),
        protocol,
        connect_timeout: scenario.connections.timeout,
        connect_rate: scenario.connections.rate.per_second,
        roles,
        feeder: scenario.feeder.clone(),
        delivery: scenario
            .delivery
            .as_ref()
            .map(|d| (d.field.split('.').map(String::from).collect(), d.unit.ns())),
        sequence: scenario
            .sequence
            .as_ref()
            .map(|q| (q.field_keys(), q.key_keys())),
        backlog: scenario.backlog,
        rooms: scenario.fanout.as_ref().map(sequence::Rooms::new),
        load_start_unix_ns: AtomicU64::new(0),
        shard: scenario.shard_spec(),
        reconnect: scenario.reconnect.clone(),
        lifetime: scenario.connections.lifetime,
        wake: wake::Wake::new(),
        slot_gens: (0..scenario.peak_connections())
            .map(|_| AtomicU32::new(0))
            .collect(),
        cancel: run_cancel.clone(),
        log_faults: connection::faults_logged(),
        control: opts.control.clone(),
        start: start_rx.clone(),
        resolved: AtomicU64::new(0),
        resolved_notify: Notify::new(),
        epoch,
        epoch_unix_ns: started_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64,
        seed: opts.seed,
    });

    let record: Vec<bool> = phases.iter().map(|p| p.record).collect();
    // A stop wakes the connections through the same signal as the rest.
    let stop_watch = {
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.cancel.cancelled().await;
            shared.wake.all();
        })
    };
    let stop_collector = CancellationToken::new();
    let collector = tokio::spawn(collect(
        Collector::new(
            recorder.clone(),
            opts.control.clone(),
            role_names.clone(),
            record.clone(),
            epoch,
            started_at_ms,
        ),
        RunData::new(&role_names, phases.len(), started_at_ms),
        record,
        start_rx,
        phase_offsets.clone(),
        opts.ticks.clone(),
        stop_collector.clone(),
        Abort {
            thresholds: scenario
                .thresholds
                .iter()
                .filter(|t| t.abort_on_fail)
                .cloned()
                .collect(),
            cancel: run_cancel.clone(),
        },
    ));

    let mut tasks = JoinSet::new();
    let spawned = ramp(&shared, scenario, &mut tasks, &run_cancel).await;
    wait_resolved(&shared, spawned, &run_cancel).await;

    let open = recorder.gauges().open.load(SeqCst);
    let mut load_started = None;
    if open > 0 && !run_cancel.is_cancelled() {
        let at = Instant::now();
        load_started = Some(at - epoch);
        shared.roles.publish();
        shared
            .load_start_unix_ns
            .store(shared.unix_ns(at), std::sync::atomic::Ordering::Relaxed);
        let _ = start_tx.send(Some(LoadStart { at }));
        // The connections wait for the start on the wake token.
        shared.repace_all();
        if scenario.phases.iter().any(|p| p.connections.is_some()) {
            let targets = (0..phases.len())
                .map(|i| scenario.phase_population(i))
                .collect();
            tasks.spawn(population::steer(shared.clone(), targets, at, spawned));
        }
    } else {
        // No start: the connections waiting for one see the sender gone.
        drop(start_tx);
        shared.repace_all();
    }
    // Every task ends by itself (phases, drain and close are all bounded);
    // the deadline only guards against a bug leaving one behind.
    let total = *phase_offsets.last().expect("non-empty");
    let closing = Duration::from_secs_f64(
        f64::from(scenario.peak_connections()) / scenario.connections.rate.per_second,
    );
    let hard_stop = Instant::now() + total + DRAIN + closing + Duration::from_secs(5);
    let mut stopped_at = None;
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = run_cancel.cancelled(), if stopped_at.is_none() => stopped_at = Some(epoch.elapsed()),
            _ = tokio::time::sleep_until(hard_stop.into()) => {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    let elapsed = epoch.elapsed();
    stop_watch.abort();
    stop_collector.cancel();
    let (mut data, aborted) = collector.await.expect("collector task does not panic");
    let ms = |d: Duration| d.as_millis() as u64;
    let f = &mut data.facts;
    f.elapsed_ms = ms(elapsed);
    f.load_started_ms = load_started.map(ms);
    f.stopped_ms = stopped_at
        .or_else(|| run_cancel.is_cancelled().then(|| epoch.elapsed()))
        .map(ms);
    f.interrupted = opts.cancel.is_cancelled();
    f.runs = 1;
    f.aborted = aborted;
    f.shards = scenario.sharding.map(|s| vec![s.spec]).unwrap_or_default();
    for (r, n) in data.roles.iter_mut().zip(role_counts) {
        r.assigned = n;
    }
    Ok(data)
}

/// Spawns the connection tasks at `connections.rate`; returns how many.
async fn ramp(
    shared: &Arc<Shared>,
    scenario: &Scenario,
    tasks: &mut JoinSet<()>,
    cancel: &CancellationToken,
) -> u64 {
    let count = u64::from(scenario.connections.count);
    let per_second = scenario.connections.rate.per_second;
    let begin = Instant::now();
    let mut spawned = 0u64;
    while spawned < count && !cancel.is_cancelled() {
        let now = Instant::now();
        // Everything due by now is spawned at once, so a slow tick does not
        // lower the opening rate.
        let due = ((now - begin).as_secs_f64() * per_second).floor() as u64 + 1;
        while spawned < count.min(due) {
            let id = shared.shard.global_id(spawned);
            tasks.spawn(connection::run(
                shared.clone(),
                id,
                Slot {
                    index: spawned as u32,
                    generation: 0,
                },
            ));
            spawned += 1;
        }
        if spawned == count {
            break;
        }
        let next = begin + Duration::from_secs_f64(spawned as f64 / per_second);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next.into()) => {}
        }
    }
    spawned
}

/// Waits until every spawned attempt has opened or failed.
async fn wait_resolved(shared: &Shared, spawned: u64, cancel: &CancellationToken) {
    loop {
        let notified = shared.resolved_notify.notified();
        if shared.resolved.load(SeqCst) >= spawned {
            return;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = notified => {}
        }
    }
}

/// `abort_on_fail` thresholds and the token that stops the run.
struct Abort {
    thresholds: Vec<Threshold>,
    cancel: CancellationToken,
}

impl Abort {
    /// After its grace, a failing threshold stops the run; returns it and
    /// when.
    fn check(
        &self,
        data: &RunData,
        record: &[bool],
        load: Option<Duration>,
        t: Duration,
    ) -> Option<Aborted> {
        let load = load?;
        if self.thresholds.is_empty() {
            return None;
        }
        let recorded = data.recorded(record);
        let ctx = EvalContext {
            recorded: &recorded,
            phases: Vec::new(),
            ended: false,
        };
        let broken = self
            .thresholds
            .iter()
            .filter(|t| load >= t.grace)
            .find(|t| {
                let e = evaluate(t, &ctx);
                !e.pending && !e.pass
            })?;
        self.cancel.cancel();
        Some(Aborted {
            threshold: broken.expr.clone(),
            at_ms: t.as_millis() as u64,
        })
    }
}

/// The collector task: a delta every [`TICK`] and a last one at the end,
/// each added into the run's data and handed to `out`; returns the run's
/// data and the threshold that aborted it, if one did.
#[allow(clippy::too_many_arguments)]
async fn collect(
    mut collector: Collector,
    mut total: RunData,
    record: Vec<bool>,
    start: watch::Receiver<Option<LoadStart>>,
    offsets: Vec<Duration>,
    out: Option<mpsc::UnboundedSender<Arc<RunData>>>,
    stop: CancellationToken,
    abort: Abort,
) -> (RunData, Option<Aborted>) {
    let mut aborted = None;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = ticker.tick() => false,
        };
        if stopping {
            tokio::time::sleep(collector.wait_for_own_second(Instant::now())).await;
        }
        let now = Instant::now();
        let load_at = (*start.borrow()).map(|s| s.at);
        let load = load_at.and_then(|at| now.checked_duration_since(at));
        let at = TickInfo {
            phase: load.and_then(|d| offsets.windows(2).position(|w| d >= w[0] && d < w[1])),
            load_started: load_at,
        };
        let delta = collector.tick(now, at);
        total.add(&delta);
        if aborted.is_none() {
            let t = Duration::from_millis(delta.facts.elapsed_ms);
            aborted = abort.check(&total, &record, load, t);
        }
        if let Some(out) = &out {
            let _ = out.send(Arc::new(delta));
        }
        if stopping {
            return (total, aborted);
        }
    }
}
