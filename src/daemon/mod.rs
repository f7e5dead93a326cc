//! `iotad run`: the daemon. One capture thread (pinned when configured) reads a live
//! interface through the [`Engine`], closes windows on the wall clock when the network is
//! quiet, hands events to the sinks' queues without waiting, checkpoints what it learned,
//! and keeps going while the interface goes away and comes back.
//!
//! Signals: SIGTERM/SIGINT close the open window, checkpoint, give the sinks a bounded time
//! and exit 0; SIGHUP reloads the configuration and the model, keeping the device table
//! (a model with another feature table is refused and the old one kept). With
//! `$NOTIFY_SOCKET` it speaks systemd's notify protocol ([`notify`]).

pub mod notify;
pub mod signals;
pub mod visibility;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::capture::{self, CaptureError, CaptureStats, LiveOptions, Source};
use crate::cli::RunArgs;
use crate::config::{Config, DEFAULT_PATH};
use crate::detect::Detector;
use crate::engine::{Action, Engine, Health};
use crate::model::{self, Model};
use crate::sink::{
    email::Email, jsonl::JsonLines, mqtt::MqttSink, webhook::Webhook, Sinks, StatusBoard,
};
use crate::status::{self, Recent, SinkStatus, Snapshot};
use crate::tune;
use notify::Notifier;
use visibility::Visibility;

/// How often the loop looks at the clock, its counters and the signals when packets flow.
const HOUSEKEEPING: Duration = Duration::from_millis(200);
/// Kernel drops are logged at most this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(60);
/// Time the sinks get to deliver what waits at exit.
const SINK_GRACE: Duration = Duration::from_millis(1200);
/// How often the node's snapshot is posted for the sinks that publish state (MQTT) and the
/// status page.
const BOARD_EVERY: Duration = Duration::from_secs(1);

/// The configuration `iotad run` uses: the file (the default path only when it exists),
/// then the flags.
pub fn config(a: &RunArgs) -> Result<(Config, Option<PathBuf>), String> {
    let path = match &a.config {
        Some(p) => Some(p.clone()),
        None if Path::new(DEFAULT_PATH).exists() => Some(PathBuf::from(DEFAULT_PATH)),
        None => None,
    };
    let mut cfg = Config::load(path.as_deref())?;
    if let Some(i) = &a.interface {
        cfg.capture.interface = Some(i.clone());
    }
    if let Some(e) = &a.events {
        cfg.events.file = Some(e.clone());
    }
    if let Some(s) = &a.state {
        cfg.state.file = Some(s.clone());
    }
    if let Some(m) = &a.model {
        cfg.model.file = Some(m.clone());
    }
    if let Some(l) = a.learning_windows {
        cfg.detect.learning_windows = l;
    }
    if let Some(c) = a.core {
        cfg.capture.core = Some(c);
    }
    cfg.pipeline.gateways.extend(a.gateway.iter().cloned());
    cfg.validate()?;
    Ok((cfg, path))
}

/// The model the configuration names, checked against its window length.
fn load_model(cfg: &Config) -> Result<Model, String> {
    let m = model::file::load_for(cfg.model.file.as_deref(), cfg.model.f32)?;
    if m.meta.window_secs != cfg.pipeline.window_secs {
        return Err(format!(
            "the model was trained on {}-s windows, the configuration uses {}-s windows",
            m.meta.window_secs, cfg.pipeline.window_secs
        ));
    }
    Ok(m)
}

/// A detector for `cfg`, with the saved state restored when there is one.
fn detector(cfg: &Config, model: Model) -> Result<Detector, String> {
    let mut d = Detector::new(
        model,
        cfg.detect.clone(),
        cfg.pipeline.max_devices,
        cfg.pipeline.window_ns(),
    );
    if let Some(path) = &cfg.state.file {
        if path.exists() {
            match d.restore(path) {
                Ok(n) => log::info!("restored what {n} devices learned from {}", path.display()),
                // a new model (an upgrade) or window length: what was learned cannot be used;
                // it is kept beside, and the daemon learns afresh rather than refusing to run
                Err(e) if e.incompatible => {
                    let mut aside = path.as_os_str().to_owned();
                    aside.push(".incompatible");
                    let aside = std::path::PathBuf::from(aside);
                    std::fs::rename(path, &aside)
                        .map_err(|r| format!("{e}; cannot move it to {}: {r}", aside.display()))?;
                    log::warn!(
                        "{e}: moved to {}; learning afresh (the learning period starts now)",
                        aside.display()
                    );
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            log::info!("no saved state at {}: starting fresh", path.display());
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    log::warn!(
                        "cannot create {}: {e}; checkpoints will fail",
                        dir.display()
                    );
                }
            }
        }
    }
    Ok(d)
}

pub(crate) fn live_options(cfg: &Config) -> LiveOptions {
    let c = &cfg.capture;
    LiveOptions {
        snaplen: c.snaplen,
        promiscuous: c.promiscuous,
        buffer_mib: c.buffer_mib,
        timeout_ms: c.timeout_ms,
        immediate: c.immediate,
        filter: c.filter.clone(),
    }
}

/// Pins the calling thread to `core`.
fn pin(core: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays within it for core < CPU_SETSIZE.
    unsafe {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(format!("core {core} is out of range"));
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
    }
    Ok(())
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `iotad run`.
pub fn command(a: RunArgs) -> Result<(), String> {
    let (cfg, path) = config(&a)?;
    signals::install();
    Daemon::start(cfg, path)?.run()
}

/// Applies the tuning plan where it can, logging each item; returns what it changed (the
/// systemd unit applies it as root before, so here everything is usually already so).
fn tune_at_start(cfg: &Config, interface: &str) -> tune::Record {
    let plan = tune::plan(&cfg.tune, Some(interface), cfg.capture.core);
    let applied = tune::apply(&plan);
    for (name, outcome) in &applied.items {
        log::info!("tuning: {name}: {outcome}");
    }
    for (name, value) in &applied.readings {
        log::info!("tuning: {name}: {value}");
    }
    applied.record()
}

/// The running daemon.
struct Daemon {
    cfg: Config,
    config_path: Option<PathBuf>,
    interface: String,
    engine: Engine,
    sinks: Sinks,
    /// Where the node's snapshot is posted for MQTT, when it is on; and when it last was.
    board: Option<Arc<StatusBoard>>,
    /// Where the status page's snapshot is posted, when the page is on.
    page: Option<(Arc<StatusBoard<Snapshot>>, status::Server)>,
    /// When the snapshots were last posted.
    posted: Instant,
    /// The last events, for the status page.
    recent: Recent,
    started: Instant,
    notifier: Notifier,
    /// The kernel's counters of the sources closed so far (a reopened source starts at 0).
    capture_before: CaptureStats,
    capture_now: CaptureStats,
    /// What the tuning at start changed, put back at exit.
    tuned: tune::Record,
    /// Actions from the status page, applied between packets.
    actions: Option<Receiver<Action>>,
    /// What the capture can see from where it sits.
    visibility: Visibility,
    /// The machine's health for the snapshot: temperature and throttling (read every
    /// [`HEALTH_EVERY`]), packets per second since the last reading.
    health: Health,
    health_read: Option<(Instant, u64)>,
}

/// How often the temperature and throttling are read (throttling asks `vcgencmd`).
const HEALTH_EVERY: Duration = Duration::from_secs(15);

impl Daemon {
    fn start(cfg: Config, config_path: Option<PathBuf>) -> Result<Daemon, String> {
        let model = load_model(&cfg)?;
        let det = detector(&cfg, model)?;
        let mut engine = Engine::new(&cfg.pipeline, capture::LinkType::Ethernet, Some(det))?;
        engine.set_quiet_after(cfg.events.quiet_after_secs);
        let mut sinks = Sinks::default();
        if let Some(path) = &cfg.events.file {
            sinks.start("events", Box::new(JsonLines::open(path)?), cfg.events.queue);
        }
        let alerts = &cfg.alerts;
        if let Some(w) = Webhook::open(&cfg.webhook)? {
            let policy = alerts.policy(cfg.webhook.min_severity, cfg.webhook.new_devices)?;
            sinks.start_with("webhook", Box::new(w), cfg.webhook.queue, Some(policy));
        }
        if let Some(m) = Email::open(&cfg.email)? {
            let policy = alerts.policy(cfg.email.min_severity, cfg.email.new_devices)?;
            sinks.start_with("email", Box::new(m), cfg.email.queue, Some(policy));
        }
        let board = Arc::new(StatusBoard::default());
        let mqtt = MqttSink::start(&cfg.mqtt, &cfg.pipeline.oui_file, Arc::clone(&board))?;
        let board = match mqtt {
            Some(sink) => {
                let policy = alerts.policy(cfg.mqtt.min_severity, cfg.mqtt.new_devices)?;
                sinks.start_with("mqtt", Box::new(sink), cfg.mqtt.queue, Some(policy));
                Some(board)
            }
            None => None,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(status::ACTIONS);
        let mut actions = None;
        let page = if cfg.http.enabled {
            let board = Arc::new(StatusBoard::default());
            match status::start(&cfg.http, Arc::clone(&board), Some(tx)) {
                Ok(server) => {
                    log::info!("status page on http://{}/", server.addr);
                    actions = Some(rx);
                    Some((board, server))
                }
                // the detector matters more than its page: say so and keep going
                Err(e) => {
                    log::error!("no status page: {e}");
                    None
                }
            }
        } else {
            None
        };
        if let Some(core) = cfg.capture.core {
            match pin(core) {
                Ok(()) => log::info!("capture thread pinned to core {core}"),
                Err(e) => log::warn!("cannot pin the capture thread to core {core}: {e}"),
            }
        }
        let interface = match &cfg.capture.interface {
            Some(i) => i.clone(),
            None => capture::default_interface().ok_or(
                "no default route to find the interface by: name one with --interface or \
                 capture.interface",
            )?,
        };
        let tuned = if cfg.tune.at_start {
            tune_at_start(&cfg, &interface)
        } else {
            tune::Record::default()
        };
        let visibility = Visibility::new(
            visibility::own_macs(Path::new("/sys/class/net")),
            Duration::from_secs(u64::from(cfg.capture.visibility_secs)),
        );
        Ok(Daemon {
            actions,
            visibility,
            tuned,
            cfg,
            config_path,
            interface,
            engine,
            sinks,
            board,
            page,
            posted: Instant::now() - BOARD_EVERY,
            health: Health::default(),
            health_read: None,
            recent: Recent::default(),
            started: Instant::now(),
            notifier: Notifier::from_env(),
            capture_before: CaptureStats::default(),
            capture_now: CaptureStats::default(),
        })
    }

    /// Opens the interface, waiting with capped backoff while it is missing or down; `None`
    /// when a signal asked to stop first. No permission is an error at once.
    fn open(&mut self) -> Result<Option<Source>, String> {
        let mut wait = Duration::from_millis(250);
        let max = Duration::from_secs(u64::from(self.cfg.capture.retry_max_secs));
        let mut logged = false;
        loop {
            match Source::open_live(&self.interface, &live_options(&self.cfg)) {
                Ok(s) => {
                    log::info!(
                        "capturing on {} ({:?}, snaplen {})",
                        self.interface,
                        s.link(),
                        self.cfg.capture.snaplen
                    );
                    return Ok(Some(s));
                }
                Err(e @ CaptureError::Permission { .. }) => return Err(e.to_string()),
                Err(e @ (CaptureError::Filter { .. } | CaptureError::UnsupportedLink { .. })) => {
                    return Err(e.to_string())
                }
                Err(e) => {
                    if !logged {
                        log::warn!("{e}; retrying until it is back");
                        logged = true;
                    }
                }
            }
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if signals::terminating() {
                    return Ok(None);
                }
                self.housekeeping();
                std::thread::sleep(Duration::from_millis(50));
            }
            wait = (wait * 2).min(max);
        }
    }

    /// Closes windows on the wall clock, hands events to the sinks, and posts the node's
    /// snapshot for MQTT and the status page (every second, and at once after events).
    fn housekeeping(&mut self) {
        self.engine.tick(now_ns(), &mut |_| {});
        let mut acted = false;
        while let Some(a) = self.actions.as_ref().map(Receiver::try_recv) {
            let a = match a {
                Ok(a) => a,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.actions = None;
                    break;
                }
            };
            match self.engine.act(&a, now_ns() / 1_000_000_000) {
                Ok(done) => log::info!("status page: {done}"),
                Err(why) => log::warn!("status page: {why}"),
            }
            acted = true;
        }
        if acted {
            // what a person asked persists at once
            self.checkpoint();
        }
        if let Some(r) = self.visibility.take_warning() {
            log::warn!(
                "{} ({} of {} unicast frames between other stations in {} s)",
                visibility::WARNING,
                r.others_frames,
                r.unicast_frames,
                r.measured_secs
            );
        }
        let mut sent = false;
        for e in self.engine.drain_events() {
            self.sinks.send(&e);
            self.recent.push(&e);
            sent = true;
        }
        if sent || acted || self.posted.elapsed() >= BOARD_EVERY {
            self.post();
        }
    }

    /// Reads the temperature and throttling every [`HEALTH_EVERY`] and the packet rate;
    /// says so when the firmware starts or stops throttling.
    fn read_health(&mut self) {
        let packets = self.engine.pipeline().stats().packets;
        let due = match self.health_read {
            Some((at, _)) => at.elapsed() >= HEALTH_EVERY,
            None => true,
        };
        if !due {
            return;
        }
        if let Some((at, before)) = self.health_read {
            let secs = at.elapsed().as_secs_f64().max(1e-3);
            self.health.packets_per_s = packets.saturating_sub(before) as f64 / secs;
        }
        self.health_read = Some((Instant::now(), packets));
        self.health.temperature_c = tune::soc_celsius(&self.cfg.tune.root);
        let now = tune::throttled_now(&self.cfg.tune.vcgencmd);
        let (was, is) = (self.health.throttled, now.as_ref().map(|t| t.0));
        match (was, is) {
            (Some(false) | None, Some(true)) => log::warn!(
                "the firmware throttles the CPU: {}",
                now.as_ref().map_or("", |t| t.1.as_str())
            ),
            (Some(true), Some(false)) => log::info!("the firmware no longer throttles the CPU"),
            _ => {}
        }
        self.health.throttled = is;
        self.health.throttling = now.map(|t| t.1);
    }

    /// Posts the node's snapshot to whoever reads it (MQTT, the status page).
    fn post(&mut self) {
        self.read_health();
        let report = self.visibility.report();
        if report.judged && self.posted.elapsed() >= BOARD_EVERY {
            if let Some(path) = visibility::report_path(self.cfg.state.file.as_deref()) {
                if let Ok(json) = serde_json::to_vec_pretty(&report) {
                    if let Err(e) = crate::files::write_atomically(&path, &json) {
                        log::debug!("cannot write {}: {e}", path.display());
                    }
                }
            }
        }
        if self.board.is_none() && self.page.is_none() {
            self.posted = Instant::now();
            return;
        }
        let mut node = self.engine.snapshot();
        node.health = Health {
            kernel_drops: {
                let t = self.capture_total();
                t.dropped + t.if_dropped
            },
            ..self.health.clone()
        };
        for d in &mut node.devices {
            d.visible = crate::wire::Mac::parse(&d.mac).map(|m| self.visibility.visible(m));
        }
        let node = Arc::new(node);
        if let Some(board) = &self.board {
            board.post_arc(Arc::clone(&node));
        }
        if let Some((board, _)) = &self.page {
            board.post(Snapshot {
                version: env!("CARGO_PKG_VERSION"),
                uptime_secs: self.started.elapsed().as_secs(),
                interface: self.interface.clone(),
                kernel: self.capture_total(),
                sinks: SinkStatus::all(self.sinks.stats()),
                node,
                recent: self.recent.shared(),
                visibility: Some(report),
            });
        }
        self.posted = Instant::now();
    }

    fn run(mut self) -> Result<(), String> {
        let Some(mut source) = self.open()? else {
            return self.stop();
        };
        self.engine.set_link(source.link());
        self.notifier.send("READY=1");
        let checkpoint_every = Duration::from_secs(u64::from(self.cfg.state.checkpoint_secs));
        let (mut last_house, mut last_checkpoint) = (Instant::now(), Instant::now());
        let mut last_watchdog = Instant::now();
        let mut last_drop_log: Option<Instant> = None;
        let mut logged_drops = 0;
        let mut status_packets = (Instant::now(), 0u64);
        let mut ether = source.link() == capture::LinkType::Ethernet;
        loop {
            match source.next() {
                Ok(Some(pkt)) => {
                    if ether {
                        self.visibility.frame(pkt.data);
                    }
                    self.engine.packet(&pkt, &mut |_| {});
                    if self.engine.pipeline().stats().packets % 64 != 0 {
                        continue;
                    }
                }
                Ok(None) => source.wait(HOUSEKEEPING),
                Err(e) => {
                    log::warn!("{e}");
                    self.capture_before = self.capture_total();
                    self.capture_now = CaptureStats::default();
                    drop(source);
                    match self.open()? {
                        Some(s) => source = s,
                        None => return self.stop(),
                    }
                    self.engine.set_link(source.link());
                    ether = source.link() == capture::LinkType::Ethernet;
                    continue;
                }
            }
            if last_house.elapsed() < HOUSEKEEPING {
                continue;
            }
            last_house = Instant::now();
            if let Some(st) = source.stats() {
                self.capture_now = st;
            }
            self.housekeeping();
            let total = self.capture_total();
            let drops = total.dropped + total.if_dropped;
            if drops > logged_drops && last_drop_log.is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY) {
                log::warn!(
                    "the kernel dropped {} packets so far ({} of {} received: the loop fell behind)",
                    drops,
                    total.dropped,
                    total.received
                );
                logged_drops = drops;
                last_drop_log = Some(Instant::now());
            }
            if let Some(every) = self.notifier.watchdog_interval() {
                if last_watchdog.elapsed() >= every {
                    let packets = self.engine.pipeline().stats().packets;
                    let secs = status_packets.0.elapsed().as_secs_f64().max(1e-3);
                    let rate = (packets - status_packets.1) as f64 / secs;
                    self.notifier.send(&format!(
                        "WATCHDOG=1\nSTATUS={rate:.0} packets/s, {} devices",
                        self.engine.pipeline().table().len()
                    ));
                    status_packets = (Instant::now(), packets);
                    last_watchdog = Instant::now();
                }
            }
            if last_checkpoint.elapsed() >= checkpoint_every {
                self.checkpoint();
                last_checkpoint = Instant::now();
            }
            if signals::take_reload() {
                self.reload();
            }
            if signals::terminating() {
                return self.stop();
            }
        }
    }

    /// The kernel's counters since the daemon started.
    fn capture_total(&self) -> CaptureStats {
        CaptureStats {
            received: self.capture_before.received + self.capture_now.received,
            dropped: self.capture_before.dropped + self.capture_now.dropped,
            if_dropped: self.capture_before.if_dropped + self.capture_now.if_dropped,
        }
    }

    fn checkpoint(&mut self) {
        if let Some(path) = self.cfg.state.file.clone() {
            match self.engine.checkpoint(&path) {
                Ok(()) => log::debug!("state saved to {}", path.display()),
                Err(e) => log::warn!("cannot save state: {e}"),
            }
        }
    }

    /// SIGHUP: the configuration and the model again; the device table and what the
    /// detector learned stay unless the model changed.
    fn reload(&mut self) {
        let Some(path) = self.config_path.clone() else {
            log::info!("SIGHUP: no configuration file to reload");
            return;
        };
        let fresh = match Config::load(Some(&path)) {
            Ok(c) => c,
            Err(e) => {
                log::error!("SIGHUP: {e}; keeping the running configuration");
                return;
            }
        };
        let model = match load_model(&fresh) {
            Ok(m) => m,
            Err(e) => {
                log::error!("SIGHUP: {e}; keeping the running model");
                return;
            }
        };
        let Some(det) = self.engine.detector_mut() else {
            return;
        };
        if let Err(why) = det.replace(model, fresh.detect.clone()) {
            log::error!("SIGHUP: {why}; keeping the running model");
            return;
        }
        // the alert policy takes effect now (a mute is the reason to send SIGHUP)
        let policies = [
            ("mqtt", fresh.mqtt.min_severity, fresh.mqtt.new_devices),
            (
                "webhook",
                fresh.webhook.min_severity,
                fresh.webhook.new_devices,
            ),
            ("email", fresh.email.min_severity, fresh.email.new_devices),
        ];
        for (sink, min_severity, new_devices) in policies {
            let mutes = fresh.alerts.mutes().unwrap_or_default();
            self.sinks.configure(sink, |p| {
                p.configure(
                    min_severity,
                    new_devices,
                    mutes,
                    fresh.alerts.device_per_hour,
                );
            });
        }
        let unpoliced = |c: &Config| {
            let mut c = c.clone();
            let d = Config::default();
            (c.mqtt.min_severity, c.mqtt.new_devices) = (d.mqtt.min_severity, d.mqtt.new_devices);
            (c.webhook.min_severity, c.webhook.new_devices) =
                (d.webhook.min_severity, d.webhook.new_devices);
            (c.email.min_severity, c.email.new_devices) =
                (d.email.min_severity, d.email.new_devices);
            (
                c.capture, c.pipeline, c.events, c.mqtt, c.webhook, c.email, c.http,
            )
        };
        if unpoliced(&fresh) != unpoliced(&self.cfg) {
            log::warn!(
                "SIGHUP: capture, pipeline, sink and http settings take effect at the next restart \
                 (the alert policy took effect now)"
            );
        }
        self.cfg.alerts = fresh.alerts;
        self.cfg.detect = fresh.detect;
        self.cfg.model = fresh.model;
        log::info!("SIGHUP: reloaded {}", path.display());
    }

    /// Closes the open window, checkpoints, gives the sinks a bounded time, and says so.
    fn stop(mut self) -> Result<(), String> {
        // what `iotad run` tuned at start is undone at exit (the unit's ExecStopPost does
        // it again from the record, for a daemon that was killed)
        for (path, r) in tune::restore(&self.tuned) {
            match r {
                Ok(()) => log::info!("tuning: restored {}", path.display()),
                Err(e) => log::warn!("tuning: cannot restore: {e}"),
            }
        }
        self.notifier.send("STOPPING=1");
        let deadline = Instant::now() + SINK_GRACE;
        self.engine.finish(&mut |_| {});
        for e in self.engine.drain_events() {
            self.sinks.send(&e);
            self.recent.push(&e);
        }
        self.checkpoint();
        self.post();
        let st = self.engine.snapshot();
        let total = self.capture_total();
        let left = std::mem::take(&mut self.sinks).shutdown(deadline);
        log::info!(
            "stopped: {} packets ({} received and {} dropped by the kernel), {} devices, {} windows \
             ({} closed by the timer), {} events ({} not delivered)",
            st.packets,
            total.received,
            total.dropped + total.if_dropped,
            st.devices.len(),
            st.windows,
            st.timer_windows,
            st.events,
            left
        );
        Ok(())
    }
}
