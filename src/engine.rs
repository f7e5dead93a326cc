//! The one composition of the data path: packets in, through the pipeline (parse, devices,
//! windows) and the detector, events out.
//!
//! [`Engine::packet`] takes one packet; [`Engine::tick`] moves the window clock on the wall
//! clock when the network is quiet (the live daemon only: a replay is driven by packet
//! timestamps alone and stays deterministic); [`Engine::finish`] closes the open window at
//! the end of a capture. Every scored window is shown to the caller's observer (eval and
//! bench read scores there), and events wait in the engine until the caller drains them to
//! its sinks. [`Engine::snapshot`] is an owned view for a status page; [`Engine::checkpoint`]
//! saves what the detector learned. `run`, `replay`, `eval`, `features` and `bench` all
//! drive the data path through this type.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::capture::{CaptureError, Header, LinkType, Packet};
use crate::config::PipelineConfig;
use crate::detect::{Detector, DeviceRef, Event, EventKind, Outcome, ThresholdSource};
use crate::device::{Device, DeviceId, Notice};
use crate::export::Rfc3339;
use crate::ingest::{Ingest, Item};
use crate::pipeline::{Pipeline, WindowOut};
use crate::progress::Progress;
use crate::window::Features;
use crate::wire::{self, Mac, Malformed, Summary};

/// Live packets are up to this late behind the wall clock (kernel to user space, a batch
/// waiting for the read timeout): the timer closes a window only this long after it ended.
pub const TICK_GRACE_NS: u64 = 2_000_000_000;

/// One closed window of one device, with what the detector made of it (when there is one).
pub struct Scored<'a> {
    pub slot: DeviceId,
    pub device: &'a Device,
    pub start_ns: u64,
    pub features: &'a Features,
    /// The window's heaviest peers each way.
    pub peers: &'a crate::window::Peers,
    pub outcome: Option<&'a Outcome>,
}

/// A device's score history on the status page: the highest score of each
/// [`HISTORY_BUCKET_SECS`] bucket over the last [`HISTORY_BUCKETS`] of them (6 hours).
pub const HISTORY_BUCKET_SECS: u64 = 300;
pub const HISTORY_BUCKETS: usize = 72;

/// One bucket of a device's score history: its highest window score and the threshold that
/// window was judged against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// The bucket's start, Unix seconds.
    pub at: u64,
    pub score: f32,
    pub threshold: f32,
}

/// A device's history: a fixed ring indexed by bucket number, so memory is bounded by the
/// device table (one per slot, about 1 KiB).
struct History {
    mac: Mac,
    ring: [Option<HistoryPoint>; HISTORY_BUCKETS],
}

/// The score histories by device-table slot.
#[derive(Default)]
struct Histories {
    slots: Vec<Option<Box<History>>>,
    /// The start of the latest bucket any device scored in (Unix seconds).
    end: u64,
}

impl Histories {
    fn record(&mut self, slot: usize, mac: Mac, start_ns: u64, score: f32, threshold: f32) {
        let at = start_ns / 1_000_000_000 / HISTORY_BUCKET_SECS * HISTORY_BUCKET_SECS;
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, || None);
        }
        let h = self.slots[slot].get_or_insert_with(|| {
            Box::new(History {
                mac,
                ring: [None; HISTORY_BUCKETS],
            })
        });
        if h.mac != mac {
            // the slot holds another device now
            h.mac = mac;
            h.ring = [None; HISTORY_BUCKETS];
        }
        let score = if score.is_finite() { score } else { 0.0 };
        let i = (at / HISTORY_BUCKET_SECS) as usize % HISTORY_BUCKETS;
        match &mut h.ring[i] {
            Some(p) if p.at == at => {
                if score > p.score {
                    (p.score, p.threshold) = (score, threshold);
                }
            }
            other => {
                *other = Some(HistoryPoint {
                    at,
                    score,
                    threshold,
                })
            }
        }
        self.end = self.end.max(at);
    }

    /// The buckets of `mac` in `slot` within the last [`HISTORY_BUCKETS`], oldest first.
    fn points(&self, slot: usize, mac: Mac) -> Vec<HistoryPoint> {
        let Some(h) = self.slots.get(slot).and_then(Option::as_ref) else {
            return Vec::new();
        };
        if h.mac != mac {
            return Vec::new();
        }
        let from = self
            .end
            .saturating_sub((HISTORY_BUCKETS as u64 - 1) * HISTORY_BUCKET_SECS);
        let mut v: Vec<HistoryPoint> = h
            .ring
            .iter()
            .flatten()
            .filter(|p| p.at >= from)
            .copied()
            .collect();
        v.sort_by_key(|p| p.at);
        v
    }

    fn forget(&mut self, mac: Mac) {
        for s in &mut self.slots {
            if s.as_ref().is_some_and(|h| h.mac == mac) {
                *s = None;
            }
        }
    }
}

/// Engine counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EngineStats {
    /// Device-windows closed by the wall-clock timer (a quiet network), not by a packet.
    pub timer_windows: u64,
    /// Events produced.
    pub events: u64,
}

/// The data path for one network.
pub struct Engine {
    pipeline: Pipeline,
    link: LinkType,
    detector: Option<Detector>,
    events: Vec<Event>,
    stats: EngineStats,
    history: Histories,
    /// Silence after which a device is reported quiet (`events.quiet_after_secs`), and the
    /// devices reported and not heard from since (bounded by the device table).
    quiet_after_ns: Option<u64>,
    quiet: Vec<Mac>,
}

impl Engine {
    /// An engine reading frames of `link`; without a detector it only cuts windows.
    pub fn new(
        cfg: &PipelineConfig,
        link: LinkType,
        detector: Option<Detector>,
    ) -> Result<Engine, String> {
        let mut pipeline = Pipeline::new(cfg)?;
        if let Some(d) = &detector {
            // routers known before a restart are routers at once
            pipeline.know_gateways(d.gateways());
        }
        Ok(Engine {
            pipeline,
            link,
            detector,
            events: Vec::new(),
            stats: EngineStats::default(),
            history: Histories::default(),
            quiet_after_ns: None,
            quiet: Vec::new(),
        })
    }

    /// The link type of the packets that follow (a live interface reopened may change it).
    pub fn set_link(&mut self, link: LinkType) {
        self.link = link;
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn detector(&self) -> Option<&Detector> {
        self.detector.as_ref()
    }

    pub fn detector_mut(&mut self) -> Option<&mut Detector> {
        self.detector.as_mut()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Takes one packet through every stage; windows it closes go to `on` after scoring.
    #[inline]
    pub fn packet(&mut self, pkt: &Packet<'_>, on: &mut impl FnMut(Scored<'_>)) {
        let parsed = wire::parse(self.link, pkt);
        self.parsed(pkt.header(), parsed.as_ref().map_err(|m| *m), on);
    }

    /// [`Engine::packet`] for a packet read and parsed ahead ([`crate::ingest`]).
    #[inline]
    pub fn item(&mut self, item: &Item<'_>, on: &mut impl FnMut(Scored<'_>)) {
        self.parsed(item.header, item.summary(), on);
    }

    fn parsed(
        &mut self,
        pkt: Header,
        parsed: Result<&Summary<'_>, Malformed>,
        on: &mut impl FnMut(Scored<'_>),
    ) {
        if let Some(d) = &mut self.detector {
            d.begin(pkt.ts_ns);
        }
        let (detector, events, stats, history) = (
            &mut self.detector,
            &mut self.events,
            &mut self.stats,
            &mut self.history,
        );
        self.pipeline.parsed(pkt, parsed, &mut |w| {
            score(detector, events, stats, history, w, on)
        });
        self.settle();
        while let Some(n) = self.pipeline.take_notice() {
            self.notice(n);
        }
    }

    /// Once windows were scored: the targets of attacking devices ([`Detector::settle`]),
    /// named as the device table knows them; a muted device's are counted, not sent.
    #[inline]
    fn settle(&mut self) {
        let Some(det) = self.detector.as_mut().filter(|d| d.unsettled()) else {
            return;
        };
        let before = self.events.len();
        det.settle(&mut self.events);
        let table = self.pipeline.table();
        let mut i = before;
        while i < self.events.len() {
            let e = &mut self.events[i];
            let mac = Mac::parse(&e.device.mac);
            if let Some(d) = mac.and_then(|m| table.find(m)) {
                e.device = DeviceRef::of(d);
            }
            let ts_ns = e.window_start_epoch * 1_000_000_000;
            if mac.is_some_and(|m| det.muted(m, ts_ns)) {
                self.events.remove(i);
                det.count_muted();
            } else {
                self.stats.events += 1;
                i += 1;
            }
        }
    }

    /// Turns an attribution notice into an event (with a detector; without one, nobody
    /// listens).
    fn notice(&mut self, n: Notice) {
        let Some(det) = &self.detector else { return };
        let table = self.pipeline.table();
        let who = |mac: Mac| match table.find(mac) {
            Some(d) => DeviceRef::of(d),
            None => DeviceRef::station(mac),
        };
        let e = match n {
            Notice::Gateway {
                mac,
                ts_ns,
                router: true,
            } => det.notice(
                EventKind::GatewayChange,
                who(mac),
                ts_ns,
                format!(
                    "{mac} routes the LAN's internet traffic; the LAN already had a router ({}): \
                     a second router, a router with a new MAC, or a station forwarding the LAN's \
                     traffic (man-in-the-middle); taken for a router (DHCP names it, or it \
                     forwarded for {} minutes)",
                    list(table.gateways().iter().filter(|g| **g != mac)),
                    crate::device::gateway::SUSTAIN_NS / 60_000_000_000
                ),
            ),
            Notice::Gateway {
                mac,
                ts_ns,
                router: false,
            } => det.notice(
                EventKind::GatewayChange,
                who(mac),
                ts_ns,
                format!(
                    "{mac} forwards the LAN's internet traffic, but the LAN's router is {}: a \
                     man-in-the-middle, or a new router; it stays watched as a device until the \
                     DHCP server names it or it has forwarded for {} minutes",
                    list(table.gateways().iter()),
                    crate::device::gateway::SUSTAIN_NS / 60_000_000_000
                ),
            ),
            Notice::NextHop {
                device,
                from,
                to,
                ts_ns,
            } => det.notice(
                EventKind::NextHopChange,
                who(device),
                ts_ns,
                format!(
                    "its frames to the internet now go to {to}{} instead of {from}{}",
                    router(table, to),
                    router(table, from)
                ),
            ),
            Notice::ArpClaim {
                mac,
                ip,
                held_by,
                ts_ns,
            } => det.notice(
                EventKind::ArpSpoof,
                who(mac),
                ts_ns,
                format!(
                    "{mac} claims {} (ARP), which {held_by}{} held: ARP spoofing, or a device \
                     that changed its network card",
                    std::net::Ipv4Addr::from(ip),
                    router(table, held_by)
                ),
            ),
            Notice::MacFlood {
                count,
                first,
                ts_ns,
            } => det.notice(
                EventKind::MacFlood,
                DeviceRef::station(first),
                ts_ns,
                format!(
                    "{count} never-seen stations within a minute, the first {first}: a MAC \
                     flood; devices that learned keep what they learned"
                ),
            ),
        };
        self.stats.events += 1;
        self.events.push(e);
    }

    /// Reports a device that sent nothing for `secs` (None: never), once until it speaks
    /// again.
    pub fn set_quiet_after(&mut self, secs: Option<u32>) {
        self.quiet_after_ns = secs.map(|s| u64::from(s) * 1_000_000_000);
    }

    /// The `device-quiet` events due at `now_ns`.
    fn check_quiet(&mut self, now_ns: u64) {
        let (Some(after), Some(det)) = (self.quiet_after_ns, &self.detector) else {
            return;
        };
        let table = self.pipeline.table();
        let silent = |d: &crate::device::Device| now_ns.saturating_sub(d.last_seen_ns) >= after;
        // a device heard from again (or gone from the table) may be reported again
        self.quiet.retain(|m| table.find(*m).is_some_and(&silent));
        for (_, d) in table.devices() {
            if !d.confirmed() || !silent(d) || self.quiet.contains(&d.mac) {
                continue;
            }
            let mut e = det.notice(
                EventKind::DeviceQuiet,
                DeviceRef::of(d),
                now_ns,
                format!(
                    "sent nothing for {} min (last frame at {})",
                    now_ns.saturating_sub(d.last_seen_ns) / 60_000_000_000,
                    Rfc3339(d.last_seen_ns)
                ),
            );
            e.severity = crate::detect::Severity::Low;
            self.quiet.push(d.mac);
            self.stats.events += 1;
            self.events.push(e);
        }
    }

    /// The wall clock says `now_ns`: windows that ended more than [`TICK_GRACE_NS`] ago
    /// close even though no packet came to close them.
    pub fn tick(&mut self, now_ns: u64, on: &mut impl FnMut(Scored<'_>)) {
        let (detector, events, stats, history) = (
            &mut self.detector,
            &mut self.events,
            &mut self.stats,
            &mut self.history,
        );
        let mut closed = 0;
        self.pipeline
            .tick(now_ns.saturating_sub(TICK_GRACE_NS), &mut |w| {
                closed += 1;
                score(detector, events, stats, history, w, on)
            });
        self.settle();
        self.stats.timer_windows += closed;
        self.check_quiet(now_ns);
    }

    /// Closes the open window (end of a capture, or exit).
    pub fn finish(&mut self, on: &mut impl FnMut(Scored<'_>)) {
        let (detector, events, stats, history) = (
            &mut self.detector,
            &mut self.events,
            &mut self.stats,
            &mut self.history,
        );
        self.pipeline
            .finish(&mut |w| score(detector, events, stats, history, w, on));
        self.settle();
    }

    /// The events produced since the last call, oldest first.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Saves what the detector learned to `path`, atomically.
    pub fn checkpoint(&mut self, path: &Path) -> Result<(), String> {
        match &mut self.detector {
            Some(d) => {
                d.set_gateways(self.pipeline.table().gateways());
                d.save(path)
            }
            None => Ok(()),
        }
    }

    /// An owned view of the node and its devices, for a status page or metrics.
    pub fn snapshot(&self) -> Status {
        let p = &self.pipeline;
        let st = p.stats();
        let table = p.table();
        let devices = table
            .devices()
            .map(|(id, d)| {
                let view = self
                    .detector
                    .as_ref()
                    .and_then(|det| det.view(id as usize, d.mac));
                let note = self.detector.as_ref().and_then(|det| det.note(d.mac));
                let given = note.map(|n| n.name.as_str()).unwrap_or_default();
                DeviceStatus {
                    mac: d.mac.to_string(),
                    name: if given.is_empty() {
                        d.identity.name().to_string()
                    } else {
                        given.to_string()
                    },
                    own_name: d.identity.name().to_string(),
                    muted_until: note
                        .map(|n| n.muted_until)
                        .filter(|&t| t > now_secs())
                        .map(|t| Rfc3339(t * 1_000_000_000).to_string()),
                    visible: None,
                    vendor_class: d.identity.vendor_class.to_string(),
                    ipv4: d.identity.ipv4.iter().map(|a| a.to_string()).collect(),
                    ipv6: d.identity.ipv6.iter().map(|a| a.to_string()).collect(),
                    first_seen: Rfc3339(d.first_seen_ns).to_string(),
                    last_seen: Rfc3339(d.last_seen_ns).to_string(),
                    packets_out: d.packets_out,
                    packets_in: d.packets_in,
                    score: view.as_ref().map(|v| v.score),
                    threshold: view.as_ref().map(|v| v.threshold),
                    threshold_source: view.as_ref().map(|v| v.source),
                    incident: view.and_then(|v| v.incident),
                    history: self.history.points(id as usize, d.mac),
                }
            })
            .collect();
        let det = self.detector.as_ref();
        Status {
            packets: st.packets,
            bytes: st.bytes_wire,
            malformed: st.malformed.iter().map(|(_, n)| n).sum(),
            unattributed: st.unattributed,
            last_packet: st.last_ts_ns.map(|t| Rfc3339(t).to_string()),
            windows: p.windows().stats().closed,
            timer_windows: self.stats.timer_windows,
            devices_seen: table.stats().devices_seen,
            evicted: table.stats().evicted,
            gateways: table.gateways().iter().map(|m| m.to_string()).collect(),
            learning: det.is_some_and(Detector::learning),
            parked: det.map_or(0, Detector::parked),
            parked_dropped: det.map_or(0, |d| d.stats().parked_dropped),
            incidents_opened: det.map_or([0; 3], |d| d.stats().opened),
            events: self.stats.events,
            health: Health::default(),
            history_end: self.history.end,
            devices,
        }
    }
}

/// What a person asks of the daemon on the status page; the capture loop applies it
/// ([`Engine::act`]), so the page never touches live state.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Name the device (`""`: the name it gives itself again).
    Name { mac: Mac, name: String },
    /// Mute its anomaly alerts for `secs` seconds (0 unmutes).
    Mute { mac: Mac, secs: u64 },
    /// It learns afresh: threshold and learning period.
    Relearn { mac: Mac },
    /// Forget it: its learning, its name, its mute, its place in the device table.
    Forget { mac: Mac },
}

/// The longest name a person can give a device (characters).
pub const MAX_NAME: usize = 64;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Engine {
    /// Applies what a person asked on the status page at wall-clock `now_secs`; returns what
    /// was done, for the log. The caller saves the state afterwards so that it persists.
    pub fn act(&mut self, a: &Action, now_secs: u64) -> Result<String, String> {
        let Some(det) = self.detector.as_mut() else {
            return Err("no detector: nothing to act on".into());
        };
        match a {
            Action::Name { mac, name } => {
                let name: String = name
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_NAME)
                    .collect();
                let name = name.trim();
                det.set_name(*mac, name);
                Ok(if name.is_empty() {
                    format!("{mac}: name removed")
                } else {
                    format!("{mac}: named {name:?}")
                })
            }
            Action::Mute { mac, secs } => {
                if *secs == 0 {
                    det.mute(*mac, 0);
                    Ok(format!("{mac}: alerts unmuted"))
                } else {
                    det.mute(*mac, now_secs.saturating_add(*secs));
                    Ok(format!("{mac}: alerts muted for {secs} s"))
                }
            }
            Action::Relearn { mac } => {
                if det.relearn(*mac) {
                    Ok(format!("{mac}: learns afresh"))
                } else if self.pipeline.table().find(*mac).is_some() {
                    Ok(format!("{mac}: learns afresh (no window of it scored yet)"))
                } else {
                    Err(format!("{mac}: nothing learned yet to relearn"))
                }
            }
            Action::Forget { mac } => {
                let learned = det.forget(*mac);
                let in_table = self.pipeline.forget(*mac);
                self.history.forget(*mac);
                if learned || in_table {
                    Ok(format!("{mac}: forgotten"))
                } else {
                    Err(format!("{mac}: not known"))
                }
            }
        }
    }
}

/// Scores one closed window and hands it to the observer; its events join the queue.
fn score(
    detector: &mut Option<Detector>,
    events: &mut Vec<Event>,
    stats: &mut EngineStats,
    history: &mut Histories,
    w: WindowOut<'_>,
    on: &mut impl FnMut(Scored<'_>),
) {
    let Some(device) = w.device() else {
        return;
    };
    if w.last {
        // it was found to be a router, or evicted: its part of a window is not scored
        // (nor a feature row), but an incident it had ends with an event
        let (slot, start) = (w.closed.device as usize, w.closed.start_ns);
        let ended = detector.as_mut().and_then(|d| match w.evicted {
            Some(_) => d.evict(slot, device, start),
            None => d.retire(slot, device, start),
        });
        if let Some(e) = ended {
            stats.events += 1;
            events.push(e);
        }
        return;
    }
    let outcome = detector.as_mut().map(|d| {
        d.on_window_with(
            w.closed.device as usize,
            device,
            w.closed.start_ns,
            w.closed.features,
            w.closed.peers,
        )
    });
    if let Some(o) = &outcome {
        history.record(
            w.closed.device as usize,
            device.mac,
            w.closed.start_ns,
            o.score,
            o.threshold,
        );
    }
    on(Scored {
        slot: w.closed.device,
        device,
        start_ns: w.closed.start_ns,
        features: w.closed.features,
        peers: w.closed.peers,
        outcome: outcome.as_ref(),
    });
    if let Some(mut o) = outcome {
        // a muted device's anomalies are counted, not sent
        if let Some(det) = detector.as_mut() {
            if det.muted(device.mac, w.closed.start_ns) {
                let before = o.events.len();
                o.events.retain(|e| e.kind != EventKind::Anomaly);
                for _ in o.events.len()..before {
                    det.count_muted();
                }
            }
        }
        stats.events += o.events.len() as u64;
        events.extend(o.events);
    }
}

/// MACs as a list for a sentence.
fn list<'a>(macs: impl Iterator<Item = &'a Mac>) -> String {
    let v: Vec<String> = macs.map(Mac::to_string).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// " (a router)" when `mac` is one.
fn router(table: &crate::device::Table, mac: Mac) -> &'static str {
    if table.gateways().contains(&mac) {
        " (a router)"
    } else {
        ""
    }
}

/// Runs a whole capture file through `engine`, then closes its last window; scored windows
/// go to `on`, events wait in the engine ([`Engine::drain_events`]). On a damaged capture,
/// every packet before the damage is processed and the damage is returned.
pub fn run_file(
    engine: &mut Engine,
    path: &Path,
    filter: Option<&str>,
    on: &mut impl FnMut(Scored<'_>),
) -> Result<Option<CaptureError>, CaptureError> {
    let mut source = Ingest::open_file(path, filter)?;
    engine.set_link(source.link());
    let size = std::fs::metadata(path).ok().map(|m| m.len());
    let mut progress = Progress::new(source.name(), size);
    let damage = loop {
        match source.next() {
            Ok(Some(item)) => {
                engine.item(&item, on);
                let st = engine.pipeline.stats();
                progress.tick(st.packets, st.bytes_captured + 16 * st.packets);
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    progress.done();
    engine.finish(on);
    Ok(damage)
}

/// The windows of a capture that start before `until_ns`, one sequence per device in MAC
/// order (the model's training data).
pub fn device_windows(
    path: &Path,
    cfg: &PipelineConfig,
    until_ns: u64,
) -> Result<Vec<Vec<Features>>, String> {
    let mut by_mac: std::collections::BTreeMap<crate::wire::Mac, Vec<Features>> =
        Default::default();
    let mut engine = Engine::new(cfg, LinkType::Ethernet, None)?;
    let on = &mut |w: Scored<'_>| {
        if w.start_ns < until_ns {
            by_mac.entry(w.device.mac).or_default().push(*w.features);
        }
    };
    let damage = run_file(&mut engine, path, None, on).map_err(|e| e.to_string())?;
    match damage {
        Some(d) => Err(d.to_string()),
        None => Ok(by_mac.into_values().collect()),
    }
}

/// How the machine and the capture fare, filled in by `iotad run` (zero in a replay).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// Packets per second over the last few seconds.
    pub packets_per_s: f64,
    /// Packets the kernel dropped since the daemon started (ring full or interface).
    pub kernel_drops: u64,
    /// The SoC's temperature, °C, where the kernel tells it.
    pub temperature_c: Option<f32>,
    /// The firmware throttles now (Raspberry Pi: under-voltage, frequency cap, heat).
    pub throttled: Option<bool>,
    /// `vcgencmd get_throttled` in words (now and since boot).
    pub throttling: Option<String>,
}

/// What a status page shows of the node.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    pub packets: u64,
    pub bytes: u64,
    /// Packets dropped because their link or network header was damaged.
    pub malformed: u64,
    pub unattributed: u64,
    pub last_packet: Option<String>,
    /// Device-windows closed.
    pub windows: u64,
    pub timer_windows: u64,
    pub devices_seen: u64,
    pub evicted: u64,
    pub gateways: Vec<String>,
    /// The network is in its learning period: nothing alerts yet.
    pub learning: bool,
    /// Devices out of the table whose learning is kept.
    pub parked: usize,
    pub parked_dropped: u64,
    /// Incidents opened, by severity: low, medium, high.
    pub incidents_opened: [u64; 3],
    pub events: u64,
    /// The machine's and the capture's health (`iotad run` fills it in).
    #[serde(default)]
    pub health: Health,
    /// The start of the latest score-history bucket (Unix seconds): the right end of the
    /// devices' charts.
    #[serde(default)]
    pub history_end: u64,
    pub devices: Vec<DeviceStatus>,
}

/// One device on the status page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub mac: String,
    /// The name a person gave it on the status page, or else the one it gives itself.
    pub name: String,
    /// The name it gives itself (DHCP, mDNS).
    #[serde(default)]
    pub own_name: String,
    /// Its anomaly alerts are muted until then.
    #[serde(default)]
    pub muted_until: Option<String>,
    /// Whether a unicast frame between it and another station than this host was seen:
    /// its conversations are visible from where the capture sits (`iotad run` measures it;
    /// absent elsewhere).
    #[serde(default)]
    pub visible: Option<bool>,
    pub vendor_class: String,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub packets_out: u64,
    pub packets_in: u64,
    /// The last window's score, and the threshold it was judged against.
    pub score: Option<f32>,
    pub threshold: Option<f32>,
    pub threshold_source: Option<ThresholdSource>,
    /// The open incident's number.
    pub incident: Option<u64>,
    /// Its score history: the highest score of each 5-minute bucket over the 6 hours up to
    /// the status's `history_end`, oldest first (buckets without a scored window absent).
    #[serde(default)]
    pub history: Vec<HistoryPoint>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Phase;

    const S: u64 = 1_000_000_000;

    #[test]
    fn status_history_keeps_the_highest_score_per_bucket_for_six_hours() {
        let mut h = Histories::default();
        let (a, b) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
        let t0 = 1_704_067_200;
        // three windows in one bucket: the highest counts, with its threshold
        h.record(0, a, t0 * S, 1.0, 5.0);
        h.record(0, a, (t0 + 10) * S, 7.0, 6.0);
        h.record(0, a, (t0 + 20) * S, f32::NAN, 6.0);
        assert_eq!(
            h.points(0, a),
            [HistoryPoint {
                at: t0,
                score: 7.0,
                threshold: 6.0
            }]
        );
        // a day of windows, one a minute: 72 buckets of the last 6 hours, oldest first
        for m in 0..24 * 60 {
            h.record(0, a, (t0 + m * 60) * S, m as f32, 5.0);
        }
        let p = h.points(0, a);
        assert_eq!(p.len(), HISTORY_BUCKETS);
        assert_eq!(p.last().unwrap().at, t0 + 24 * 3600 - 300);
        assert_eq!(p.last().unwrap().score, (24 * 60 - 1) as f32);
        assert!(p.windows(2).all(|w| w[1].at == w[0].at + 300));
        // another device's bucket moves the end: a's old buckets fall out
        h.record(1, b, (t0 + 30 * 3600) * S, 1.0, 5.0);
        assert_eq!(h.points(0, a).len(), 0);
        // the slot taken by another device starts afresh; forget drops it
        h.record(0, b, (t0 + 30 * 3600) * S, 2.0, 5.0);
        assert!(h.points(0, a).is_empty());
        assert_eq!(h.points(0, b).len(), 1);
        h.forget(b);
        assert!(h.points(0, b).is_empty() && h.points(1, b).is_empty());
    }

    /// A UDP frame from `mac` (192.168.1.`host`) to the LAN's DNS server.
    fn frame(mac: [u8; 6], host: u8) -> Vec<u8> {
        udp(mac, host, 1, 53)
    }

    /// A UDP frame from `mac` (192.168.1.`host`) to 192.168.1.`to`, port `port`.
    fn udp(mac: [u8; 6], host: u8, to: u8, port: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, to];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[8, 0]);
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 192, 168, 1, host];
        ip.extend_from_slice(&[192, 168, 1, to]);
        let sum = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x30, 0x39]);
        f.extend_from_slice(&port.to_be_bytes());
        f.extend_from_slice(&[0, 8, 0, 0]);
        f
    }

    fn send(e: &mut Engine, frames: &[(u64, Vec<u8>)]) {
        for (t, data) in frames {
            let p = Packet {
                ts_ns: *t,
                data,
                wire_len: data.len() as u32,
            };
            e.packet(&p, &mut |_| {});
        }
    }

    /// A device in an open incident is evicted by newcomers to a full table: its incident
    /// ends with a close event saying so (before, its part window and incident vanished),
    /// and when it comes back it is no new device.
    #[test]
    fn an_evicted_device_ends_its_incident_with_an_event_and_returns_known() {
        let model = crate::model::file::built_in().unwrap();
        let cfg = PipelineConfig {
            max_devices: 2,
            ..PipelineConfig::default()
        };
        let det_cfg = crate::detect::DetectConfig {
            network_learned: true,
            ..Default::default()
        };
        let det = Detector::new(model, det_cfg, cfg.max_devices, cfg.window_ns());
        let mut e = Engine::new(&cfg, LinkType::Ethernet, Some(det)).unwrap();
        let (a, b, c) = (
            [2, 0x10, 0, 0, 0, 7],
            [2, 0x10, 0, 0, 0, 8],
            [2, 0x10, 0, 0, 0, 9],
        );
        let t0 = 1_704_067_200 * S;
        // A sweeps 100 LAN hosts' UDP ports for two windows: an incident
        let sweep: Vec<(u64, Vec<u8>)> = (0..400u64)
            .map(|i| {
                (
                    t0 + i * S / 20,
                    udp(a, 7, 10 + (i % 100) as u8, 1000 + i as u16),
                )
            })
            .collect();
        send(&mut e, &sweep);
        let events: Vec<Event> = e.drain_events().collect();
        let opened = events
            .iter()
            .find(|ev| ev.kind == EventKind::Anomaly && ev.phase == Some(Phase::Open))
            .expect("the sweep opens an incident");
        assert_eq!(opened.device.mac, Mac(a).to_string());
        // B, then C: the table is full, and A, seen longest ago, makes room
        let newcomers: Vec<(u64, Vec<u8>)> = [b, c]
            .iter()
            .zip([8u8, 9])
            .flat_map(|(m, h)| [(t0 + 21 * S, frame(*m, h)), (t0 + 22 * S, frame(*m, h))])
            .collect();
        send(&mut e, &newcomers);
        assert_eq!(e.pipeline().table().stats().evicted, 1);
        let events: Vec<Event> = e.drain_events().collect();
        let closed = events
            .iter()
            .find(|ev| ev.kind == EventKind::Anomaly && ev.phase == Some(Phase::Close))
            .unwrap_or_else(|| panic!("the incident ends: {events:?}"));
        assert_eq!(closed.device.mac, Mac(a).to_string());
        assert_eq!(closed.incident, opened.incident);
        assert!(closed.detail.as_deref().unwrap().contains("device table"));
        // A comes back (B makes room): known, not new
        send(
            &mut e,
            &[(t0 + 40 * S, frame(a, 7)), (t0 + 41 * S, frame(a, 7))],
        );
        e.tick(t0 + 60 * S, &mut |_| {});
        let events: Vec<Event> = e.drain_events().collect();
        assert!(
            !events
                .iter()
                .any(|ev| ev.kind == EventKind::NewDevice && ev.device.mac == Mac(a).to_string()),
            "{events:?}"
        );
    }

    #[test]
    fn a_device_silent_for_long_is_reported_once_until_it_speaks() {
        let model = crate::model::file::built_in().unwrap();
        let cfg = PipelineConfig::default();
        let det = Detector::new(model, Default::default(), 256, cfg.window_ns());
        let mut e = Engine::new(&cfg, LinkType::Ethernet, Some(det)).unwrap();
        e.set_quiet_after(Some(600));
        let mac = [2, 0x10, 0, 0, 0, 7];
        let t0 = 1_704_067_200 * S;
        let data = frame(mac, 7);
        let send = |e: &mut Engine, t: u64| {
            for k in 0..2 {
                let p = Packet {
                    ts_ns: t + k,
                    data: &data,
                    wire_len: data.len() as u32,
                };
                e.packet(&p, &mut |_| {});
            }
        };
        let quiet = |e: &mut Engine| {
            e.drain_events()
                .filter(|ev| ev.kind == EventKind::DeviceQuiet)
                .count()
        };
        send(&mut e, t0);
        e.tick(t0 + 300 * S, &mut |_| {});
        assert_eq!(quiet(&mut e), 0, "five minutes is not long");
        e.tick(t0 + 601 * S, &mut |_| {});
        assert_eq!(quiet(&mut e), 1);
        e.tick(t0 + 2000 * S, &mut |_| {});
        assert_eq!(quiet(&mut e), 0, "told once");
        send(&mut e, t0 + 2100 * S);
        e.tick(t0 + 2200 * S, &mut |_| {});
        e.tick(t0 + 2800 * S, &mut |_| {});
        assert_eq!(quiet(&mut e), 1, "told again after it spoke");
        e.set_quiet_after(None);
        e.tick(t0 + 9000 * S, &mut |_| {});
        assert_eq!(quiet(&mut e), 0, "off");
    }
}
