//! From scores to alerts: per-device thresholds, incidents, explanations.
//!
//! [`Detector::on_window`] takes each closed window of each device, scores it against the
//! model's prediction from the device's earlier windows, and queues the step that advances
//! the device's recurrent state; the steps of one window's devices are taken as batches when
//! the next window starts ([`Detector::step_queued`]). The score combines the largest
//! prediction errors, each divided by that feature's typical error for this device: a camera's bytes may swing where a login
//! attempt never happens. Each device learns from its own first `learning_windows` windows:
//! in the first half its typical error per feature, in the second half the scores those give,
//! whose maximum, with a margin and a floor, becomes its threshold; a device that appeared
//! during the network's learning period ends each half with the network's, given at least
//! [`MIN_PHASE`] windows in it. Nothing alerts during the first `learning_windows` windows
//! after start.
//! A device first seen later is judged against the population threshold stored in the model
//! until its own is fitted, so a rogue device that scans the moment it appears is caught.
//! An incident opens when a window crosses the threshold, is updated when it gets worse, and
//! closes after `close_after` normal windows: one incident, not an alert storm. Once every
//! device's window of a period is scored, [`Detector::settle`] finds the targets of the
//! devices that alert as attackers (a victim that only answers never crosses its own
//! threshold).

pub mod event;
pub mod state;

pub use event::{
    Behaviour, Contribution, Counterpart, DeviceRef, Event, EventKind, Phase, Role, Severity,
    ThresholdSource,
};

use std::path::Path;

use crate::device::Device;
use crate::export::Rfc3339;
use crate::model::{Model, Scratch, State, MAX_BATCH};
use crate::window::features::{Feat, Tolerance, F, FEATURES};
use crate::window::{Answer, Features, Peer, Peers, Probers};
use crate::wire::Mac;

/// Detection settings: the `detect` section of the configuration file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Windows after start during which nothing alerts and thresholds are learned
    /// (default one hour of 10-s windows).
    pub learning_windows: u32,
    /// A device's threshold is this times the highest score of its learning period.
    pub margin: f32,
    /// No threshold is below this (a quiet device must not alert on one packet): about three
    /// watched features each moving by one event where none was expected.
    pub floor: f32,
    /// Normal windows that close an incident.
    pub close_after: u32,
    /// Features named in an explanation.
    pub explain: usize,
    /// Windows of an incident after which the model accepts the device's new behaviour.
    pub adapt_after: u32,
    /// An open incident is not over while a feature that opened or worsened it is still off
    /// by more than this many typical errors (a watched feature: by one event).
    pub persist: f32,
    /// Devices whose learning is kept while they are out of the device table (evicted by
    /// churn or a MAC flood), so that one coming back does not learn afresh.
    pub parked_devices: usize,
    /// The network learned before the first window (there is no warm-up): every device is
    /// new, judged against the population threshold until it has learned its own.
    #[serde(skip)]
    pub network_learned: bool,
    /// What a window is compared with: the model's prediction, or (the ablation `iotad
    /// eval` reports beside it) the device's learning-period mean.
    #[serde(skip)]
    pub predictor: Predictor,
}

/// What a device's window is scored against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Predictor {
    /// The LSTM+RNN's prediction from the device's earlier windows.
    #[default]
    Model,
    /// No sequence model: the mean of the device's windows while it learned (standardized),
    /// frozen once its threshold is fitted; everything else is the same detector. This is
    /// the ablation that shows what the LSTM+RNN adds.
    LearningMean,
}

impl DetectConfig {
    /// Windows after the first during which nothing alerts.
    pub fn warmup(&self) -> u32 {
        if self.network_learned {
            0
        } else {
            self.learning_windows
        }
    }
}

impl Default for DetectConfig {
    fn default() -> DetectConfig {
        DetectConfig {
            learning_windows: 360,
            margin: 1.2,
            floor: 8.0,
            close_after: 3,
            explain: 3,
            adapt_after: 60,
            persist: 3.0,
            parked_devices: 1024,
            network_learned: false,
            predictor: Predictor::Model,
        }
    }
}

// an incident's features are the bits of a u64
const _: () = assert!(F <= 64);

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Incident {
    id: u64,
    max_score: f32,
    /// The features that opened or worsened it (bit j: feature j).
    features: u64,
    /// What the device is in it, and who the other side is, as its first window said.
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    counterpart: Option<Counterpart>,
    /// What opened it: its explanation, what the device did and how loud it was (a close
    /// event repeats them).
    #[serde(default)]
    opened: Vec<Contribution>,
    #[serde(default)]
    behaviour: Option<Behaviour>,
    #[serde(default)]
    severity: Option<Severity>,
    /// For a target found by [`Detector::settle`]: the attacking device. Its incident lasts
    /// while the attacker's does (not saved: after a restart it lasts while the attacker
    /// still sends it what it does not normally receive).
    #[serde(skip)]
    by: Option<Mac>,
}

#[derive(Clone, Debug)]
struct DeviceState {
    mac: Mac,
    state: State,
    pred: [f32; F],
    /// Windows that taught its typical errors (the first half of its learning).
    scored: u32,
    /// Windows that taught its threshold (the second half).
    threshold_scored: u32,
    /// Sum of squared errors per feature, in the first half of learning.
    sq_err: [f32; F],
    /// Per feature, the largest error of those windows (its first and silent ones left out).
    max_err: [f32; F],
    /// This device's typical error per feature, once learned.
    scale: Option<[f32; F]>,
    /// Highest score in the second half of learning.
    max_learning: f32,
    threshold: Option<f32>,
    incident: Option<Incident>,
    quiet: u32,
    /// Windows fed with the prediction instead of the observation, in this incident.
    held: u32,
    /// The last window scored, and its score.
    last_window: u64,
    last_score: f32,
    /// The step of the last window is queued, not yet taken: `pred` is not current.
    queued: bool,
    /// Its new-device event was sent (or it needs none: it was there from the start).
    announced: bool,
    /// The last step was a silent window that moved neither state nor prediction by more
    /// than [`REST_TOLERANCE`]: further silent windows are not stepped.
    at_rest: bool,
    /// With [`Predictor::LearningMean`]: the sum of the standardized windows it learned on,
    /// and how many (not saved: the ablation lives in `iotad eval` only).
    mean_sum: [f32; F],
    mean_n: u32,
    /// The [`Tolerance::Alarm`] features it used while learning (bit j: feature j): they
    /// are its normal, not an alert.
    alarms_learned: u64,
    /// Its heaviest sender in the last window in which what it received was off its normal
    /// (see `received_off`), and that window: whom [`Detector::settle`] may find it the
    /// target of.
    hit: Option<Hit>,
    /// The stations whose probes it answered in the last window in which it answered any
    /// (see [`Peers::probers`]), and that window: a scanner among them makes it a target
    /// (see [`Detector::settle`]).
    probed: Option<(u64, Probers)>,
    /// Its addresses as of its last window (what [`Detector::settle`] matches heaviest
    /// senders against).
    ips: heapless::Vec<std::net::IpAddr, { 2 * crate::device::MAX_ADDRS }>,
}

impl DeviceState {
    /// A device seen for the first time, in the state and with the prediction the model
    /// has for a device that was silent until now.
    fn new(mac: Mac, (state, pred): (State, [f32; F])) -> DeviceState {
        DeviceState {
            mac,
            state,
            pred,
            scored: 0,
            threshold_scored: 0,
            sq_err: [0.0; F],
            max_err: [0.0; F],
            scale: None,
            max_learning: 0.0,
            threshold: None,
            incident: None,
            quiet: 0,
            held: 0,
            last_window: 0,
            last_score: 0.0,
            queued: false,
            announced: false,
            at_rest: false,
            mean_sum: [0.0; F],
            mean_n: 0,
            alarms_learned: 0,
            hit: None,
            probed: None,
            ips: heapless::Vec::new(),
        }
    }

    /// What keeps a parked device's state worth more than another's: having learned, then
    /// how much, then having been seen recently.
    fn worth(&self) -> (bool, u32, u64) {
        (
            self.scale.is_some(),
            self.scored + self.threshold_scored,
            self.last_window,
        )
    }

    /// Learns from one window (standardized: `z`; `silent`: the device sent and received
    /// nothing in it) while the device has no threshold: its
    /// typical errors over the first `half` windows, then the scores those give over the
    /// next `half`, whose maximum with a margin and a floor becomes its threshold. `ends`
    /// says whether the network's first half, and its whole learning period, end with this
    /// window: a device that appeared during it finishes each half with the network's (given
    /// at least [`MIN_PHASE`] windows in it), so that one that appeared late is not left on
    /// the population threshold after it.
    #[allow(clippy::too_many_arguments)]
    fn learn(
        &mut self,
        z: &[f32; F],
        silent: bool,
        half: u32,
        ends: [bool; 2],
        cfg: &DetectConfig,
        population: &[f32],
        floors: &[f32; F],
    ) {
        match &self.scale {
            None => {
                // its first window is predicted from silence: every value is an error
                let first = self.scored == 0;
                self.scored += 1;
                for j in 0..F {
                    let e = z[j] - self.pred[j];
                    self.sq_err[j] += e * e;
                    if !first && !silent {
                        self.max_err[j] = self.max_err[j].max(e.abs());
                    }
                }
                if self.scored >= half || (ends[0] && self.scored >= MIN_PHASE) {
                    let mut sc = [0f32; F];
                    for j in 0..F {
                        sc[j] = (self.sq_err[j] / self.scored as f32)
                            .sqrt()
                            .max(self.max_err[j] / LEARNED_MAX_ERRORS)
                            .min(SCALE_CAP * population[j].max(floors[j]))
                            .max(floors[j]);
                    }
                    self.scale = Some(sc);
                }
            }
            Some(own) => {
                // a silent window scores zero when judged, so it does here
                let own = if silent {
                    0.0
                } else {
                    crate::model::score(&crate::model::errors(z, &self.pred, own, floors))
                };
                self.threshold_scored += 1;
                self.max_learning = self.max_learning.max(own);
                if self.threshold_scored >= half || (ends[1] && self.threshold_scored >= MIN_PHASE)
                {
                    self.threshold = Some((self.max_learning * cfg.margin).max(cfg.floor));
                }
            }
        }
    }

    /// Follows the device's incident through one window of score `s` and errors `errs`:
    /// `above` the threshold opens one (numbered from `incidents`) or worsens it; a window is
    /// normal when it scores as normal (`low`) and no feature that opened or worsened the
    /// incident is still off by more than `cfg.persist`; `cfg.close_after` normal windows in
    /// a row close it. Returns the event's phase, if any, and the incident's number.
    fn track(
        &mut self,
        s: f32,
        errs: &[f32; F],
        above: bool,
        low: bool,
        cfg: &DetectConfig,
        incidents: &mut u64,
    ) -> (Option<Phase>, Option<u64>, Option<Incident>) {
        // the feature with the largest error, as a bit
        let worst = || 1u64 << (0..F).fold(0, |m, j| if errs[j] > errs[m] { j } else { m });
        let normal = low
            && self.incident.as_ref().is_none_or(|i| {
                (0..F).all(|j| i.features & (1 << j) == 0 || errs[j] <= cfg.persist)
            });
        let mut phase = None;
        if above {
            self.quiet = 0;
            match &mut self.incident {
                None => {
                    *incidents += 1;
                    self.incident = Some(Incident {
                        id: *incidents,
                        max_score: s,
                        features: worst(),
                        role: None,
                        counterpart: None,
                        opened: Vec::new(),
                        behaviour: None,
                        severity: None,
                        by: None,
                    });
                    phase = Some(Phase::Open);
                }
                Some(i) if s > i.max_score * 1.5 => {
                    i.max_score = s;
                    i.features |= worst();
                    phase = Some(Phase::Update);
                }
                Some(_) => {}
            }
        } else if self.incident.is_some() && !normal {
            self.quiet = 0;
        } else if self.incident.is_some() {
            self.quiet += 1;
            if self.quiet >= cfg.close_after {
                phase = Some(Phase::Close);
            }
        }
        let id = self.incident.as_ref().map(|i| i.id);
        let mut closed = None;
        if phase == Some(Phase::Close) {
            closed = self.incident.take();
            self.quiet = 0;
        }
        (phase, id, closed)
    }
}

/// Features that count what a device received unasked, or its refusals of it (resets): a
/// device whose anomaly is mostly these is its target (a scan's, a flood's, a brute
/// force's), not its source. Replies to what it sent (SYN-ACKs, resets, unreachables
/// received) are not among them: a scanner gets those.
const RECEIVED: [Feat; 12] = [
    Feat::PktsIn,
    Feat::BytesIn,
    Feat::RemoteIpsIn,
    Feat::PortsSynIn,
    Feat::TcpIn,
    Feat::SynIn,
    Feat::TcpPayloadIn,
    Feat::UdpIn,
    Feat::UdpPayloadIn,
    Feat::IcmpIn,
    Feat::IcmpPayloadIn,
    Feat::RstOut,
];

/// Whether a window with these errors makes the device the anomaly's target: its `n`
/// largest errors weigh more on what it received unasked than on anything else, or its
/// heaviest sender kept opening connections to it, which it does not normally receive
/// (`syn_up`: more than it was expected to, by more than `persist` typical errors) or which
/// were the whole conversation (the
/// heaviest peer each way): a brute-force victim answering its attacker moves mostly its
/// own outgoing features, and a chatty camera's heaviest peer stays its cloud; or it
/// received far more than it sent (a flood's victim).
fn role_of(
    errs: &[f32; F],
    n: usize,
    f: &Features,
    peers: &Peers,
    persist: f32,
    syn_up: bool,
) -> Role {
    let mut order: Vec<usize> = (0..F).collect();
    order.sort_by(|&a, &b| errs[b].total_cmp(&errs[a]).then(a.cmp(&b)));
    let (mut received, mut other) = (0f32, 0f32);
    for &j in order.iter().take(n.max(1)) {
        if RECEIVED.iter().any(|r| *r as usize == j) {
            received += errs[j];
        } else {
            other += errs[j];
        }
    }
    let opened_to_it = peers.inbound.ip.is_some()
        && (peers.inbound.ip == peers.outbound.ip
            || (syn_up && errs[Feat::SynIn as usize] > persist))
        && f[Feat::SynIn] >= 3.0
        && f[Feat::SynIn] > 2.0 * f[Feat::SynOut];
    // a flood's victim receives far more than it sends (TCP acknowledges at least every
    // other segment: a download stays under 4 to 1)
    let flooded = f[Feat::PktsIn] >= 50.0 && f[Feat::PktsIn] > 4.0 * f[Feat::PktsOut];
    if received > other || opened_to_it || flooded {
        Role::Target
    } else {
        Role::Source
    }
}

/// Attack features that a device's answers move too: a resolver answering a DNS tunnel
/// sends datagrams, a scanned device answers to as many ports as it was probed from. The
/// other attack features (SYNs, probes, logins, spoofed sources, queries...) are nobody's
/// answer.
const ANSWERS: [&str; 3] = ["udp_out", "udp_payload_out", "remote_ports"];

/// Whether an explanation's answer feature (see [`ANSWERS`]) is no more than what the
/// window's connection attempts received ask for, whoever its heaviest peer: remote ports
/// beyond the ones it was expected to use (rounded up) at most the connection attempts
/// received (a server answers each client port). A chatty camera whose heaviest peer is its
/// cloud answers an FTP brute force's twenty connections from twenty ports. Datagrams are
/// an answer only to the heaviest sender they go back to (a UDP flood's sender may get as
/// many from an accomplice).
fn answered(c: &Contribution, f: &Features) -> bool {
    c.feature == "remote_ports" && c.observed <= c.expected.ceil() + f[Feat::SynIn]
}

/// Whether the device is in an open incident as the source of an attack on others (by its
/// own explanation: a scan, flood, brute force or tunnel; a miner's pool is no target, and
/// the LAN devices it talks to as usual are none either).
fn attacking(d: &DeviceState) -> bool {
    d.incident.as_ref().is_some_and(|i| {
        i.role == Some(Role::Source)
            && i.behaviour
                .is_some_and(|b| b.attacks() && b != Behaviour::Mining)
    })
}

/// What a source did, from what its explanation `why` says and the window's features: a
/// window with crypto-mining messages and no attack named by more than one event is mining (a miner's first
/// window: a new service, one SYN); and a scan or brute force that is neither is a flood
/// ([`hammered`]).
fn what_it_did(why: &[Contribution], f: &Features, window_ns: u64) -> Behaviour {
    let b = Behaviour::attack_in(why).unwrap_or_else(|| Behaviour::of(why));
    // (an attack the explanation names by more than one event stays that attack: one
    // Stratum line must not turn a scan into mining, which makes no targets)
    if f[Feat::MiningMsgs] > 0.0 && !Behaviour::attack_repeated(why) {
        Behaviour::Mining
    } else {
        hammered(b, f, window_ns)
    }
}

/// A scan or brute force that is neither: connection attempts at a second or more, at
/// least half of them to one remote service, with no repeated login among them (sessions:
/// a request and its answer) are a flood of that service (a SYN flood's unanswered SYNs read as probes,
/// and its thousands of attempts on one port as repeated logins).
fn hammered(b: Behaviour, f: &Features, window_ns: u64) -> Behaviour {
    let attempts = f[Feat::SynOut].max(f[Feat::Probes]);
    let one = f[Feat::MaxAttemptsOneService];
    let per_second = one >= window_ns as f32 / 1e9;
    if matches!(b, Behaviour::Scan | Behaviour::BruteForce)
        && f[Feat::LoginAttempts] == 0.0
        && 2.0 * one > attempts
        && per_second
    {
        Behaviour::Flood
    } else {
        b
    }
}

/// Whether an attacker's attack may be aimed at device `d`: a scan's at anyone it probed
/// (`scanned`: what `d` received off its normal was connection attempts or segments it
/// refused); a brute force's, a flood's or a tunnel's at the one service its incident
/// names. A bystander that got an ordinary packet from an attacker (the DHCP server of a
/// brute forcer, the resolver of a scanner) is neither.
fn aims_at(a: &DeviceState, d: &DeviceState, scanned: bool) -> bool {
    let Some(i) = a.incident.as_ref() else {
        return false;
    };
    (i.behaviour == Some(Behaviour::Scan) && scanned)
        || i.counterpart
            .as_ref()
            .is_some_and(|c| c.ip.parse().is_ok_and(|ip| d.ips.contains(&ip)))
}

/// Whether the attacker's incident is a scan that probes as the device was probed: by TCP
/// (its explanation names probes, unanswered attempts, attempts to many addresses or
/// ports) or by ARP (it names the addresses it asked for). A hub that scans the internet
/// makes none of the LAN devices it talks to as usual its targets, nor those that answer
/// its routine ARP requests.
fn scans_by(a: &DeviceState, how: Answer) -> bool {
    let Some(i) = a.incident.as_ref() else {
        return false;
    };
    let names = |f: &[&str]| i.opened.iter().any(|c| f.contains(&&*c.feature));
    i.behaviour == Some(Behaviour::Scan)
        && match how {
            Answer::Tcp => names(&[
                "probes",
                "probes_slow",
                "unanswered",
                "remote_ips_syn",
                "remote_ports",
                "syn_out",
            ]),
            Answer::Arp => names(&["arp_req_targets"]),
        }
}

/// Whether the attacker's incident is a brute force or flood of device `d` (its
/// counterpart is one of `d`'s addresses) and it opened more than one connection to `d`
/// (`asks`) in the window: a station that knocked once is no brute force's target.
fn opened_by(a: &DeviceState, d: &DeviceState, asks: u32) -> bool {
    let attack = a.incident.as_ref().and_then(|i| i.behaviour);
    asks >= 2
        && matches!(attack, Some(Behaviour::BruteForce | Behaviour::Flood))
        && aims_at(a, d, false)
}

/// How [`Detector::settle`] found a device's attacker among the stations of its window.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Its heaviest sender, when what it received was off its normal.
    Heaviest,
    /// A station whose probes it answered.
    Answered(Answer),
    /// A station that opened connections to it.
    Asked,
}

/// What a device's heaviest sender sent it, in the last window in which what it received
/// was off its normal (see `received_off`).
#[derive(Clone, Copy, Debug)]
struct Hit {
    peer: Peer,
    window: u64,
    /// What was off was connection attempts, or segments it refused: it was probed.
    scanned: bool,
}

/// Received features that say a device was probed: connection attempts, to many ports or
/// not, and resets sent (refused segments of an ACK, FIN, NULL or XMAS scan).
const SCANNED: [Feat; 3] = [Feat::PortsSynIn, Feat::SynIn, Feat::RstOut];

/// Whether a window with these errors received something off the device's normal: a
/// feature of what it received unasked more than `persist` typical errors off.
fn received_off(errs: &[f32; F], persist: f32) -> bool {
    RECEIVED.iter().any(|r| errs[*r as usize] > persist)
}

/// The counterpart an event names: the peer, when the window had one.
fn counterpart(p: &Peer) -> Option<Counterpart> {
    p.ip.map(|ip| Counterpart {
        ip: ip.to_string(),
        port: p.port,
        packets: p.packets,
    })
}

/// A device silent long enough that one more silent step moves its hidden states and
/// prediction by at most this (standard units) is at rest: its silent windows are scored on
/// the prediction it has, without stepping the model. Without it, 81 quiet days of six
/// devices cost 17x as long to replay as to extract their features (the model settles into a
/// two-step cycle of amplitude ~0.007 in the prediction, never a fixed point, so exact
/// equality never holds).
pub const REST_TOLERANCE: f32 = 0.01;

/// The largest error a device showed on a feature while learning its typical errors counts
/// as at most this many typical errors: something it did then, as much as then, is no news.
/// The root mean square alone made a rare habit an anomaly: a camera that looked up its
/// cloud's name twice in its learning half-hour, then every few minutes, alerted on each
/// lookup as a DNS tunnel (twelve false alerts in three hours on synthesized networks).
pub const LEARNED_MAX_ERRORS: f32 = 3.0;

/// The fewest windows in each half of a device's learning (five minutes of 10-s windows).
pub const MIN_PHASE: u32 = 30;

/// A device's typical error per feature is at most this many times the population's: a
/// camera whose learning held a few clip uploads must not stop seeing a thousand UDP
/// datagrams to a hundred ports (1.5 made the week-long cameras false-alert 5 to 9 times as
/// often: `iotad eval ../shared/data/MANIFEST.json`).
pub const SCALE_CAP: f32 = 2.0;

/// What one window came to.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// 0 for a device's first window, which has no prediction.
    pub score: f32,
    pub threshold: f32,
    /// The device is in an open incident after this window.
    pub alerting: bool,
    pub events: Vec<Event>,
}

/// The detector for one network.
pub struct Detector {
    model: Model,
    cfg: DetectConfig,
    devices: Vec<Option<DeviceState>>,
    scratch: Scratch,
    /// Steps queued by this window's devices, taken as batches when the next window starts:
    /// (slot, the input to step with).
    queue: Vec<(usize, [f32; F])>,
    queued_window: u64,
    /// A silent window, standardized: the model's input for a device that sent nothing.
    silent: [f32; F],
    /// What the model predicts for a device that appears, and its state after that step:
    /// the same for every new device (it is predicted from silence).
    newcomer: (State, [f32; F]),
    /// What devices that are not in a table slot have learned, keyed by MAC: devices
    /// restored from a state file and not seen yet, and devices evicted from the table. At
    /// most `cfg.parked_devices`; when full, the one that learned least goes.
    parked: Vec<DeviceState>,
    /// Per feature, the smallest typical error (from the features' tolerances).
    floors: [f32; F],
    first_window: Option<u64>,
    window_ns: u64,
    incidents: u64,
    /// The last window of a restored state: a capture that starts before it runs time
    /// backwards, which is warned about once.
    restored_until: Option<u64>,
    stats: DetectStats,
    /// The LAN's routers, saved with the state (the device table finds them; the engine
    /// hands them over before a save and takes them back after a restore).
    gateways: Vec<Mac>,
    /// What people said about devices on the status page (a name, a mute), keyed by MAC;
    /// saved with the state.
    notes: std::collections::BTreeMap<Mac, Note>,
    /// New-device events of the current minute: (minute, announced, held back, the first
    /// held back's event, which becomes the summary).
    newcomers: (u64, u32, u32, Option<Event>),
    /// The earliest window scored since [`Detector::settle`] last ran.
    unsettled: Option<u64>,
}

/// What a person said about a device on the status page.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Note {
    /// The name they gave it ("" for none: the one it gave itself is shown).
    #[serde(default)]
    pub name: String,
    /// Its anomaly alerts are not sent before this (Unix seconds; 0: not muted).
    #[serde(default)]
    pub muted_until: u64,
}

/// New-device events per minute; more new devices in the same minute are held back and
/// told in one summary event when the minute is over (a burst of stations is one message).
pub const NEW_DEVICE_EVENTS_PER_MINUTE: u32 = 10;

/// A device as the detector sees it.
#[derive(Clone, Debug)]
pub struct DeviceView {
    /// The last window's score and the threshold it was judged against.
    pub score: f32,
    pub threshold: f32,
    pub source: ThresholdSource,
    /// The open incident's number.
    pub incident: Option<u64>,
}

/// Detector counters.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DetectStats {
    /// Device-windows scored.
    pub windows: u64,
    /// Incidents opened, by severity (low, medium, high).
    pub opened: [u64; 3],
    /// Parked devices forgotten to make room (they learn afresh if they come back).
    pub parked_dropped: u64,
    /// Model steps taken, and silent windows of devices at rest that needed none.
    pub steps: u64,
    pub steps_skipped: u64,
    /// Anomaly events not sent because their device was muted.
    pub muted: u64,
}

/// Logs one window's score and largest errors (`RUST_LOG=iotad::detect=trace`).
fn trace(
    mac: Mac,
    start_ns: u64,
    s: f32,
    threshold: f32,
    source: ThresholdSource,
    why: &[Contribution],
) {
    let errors: Vec<String> = why
        .iter()
        .map(|c| {
            let (o, e) = (human(c.observed), human(c.expected));
            format!("{} {:.1} ({o} vs {e})", c.feature, c.weight)
        })
        .collect();
    log::trace!(
        "{mac} window {} score {s:.2} threshold {threshold:.2} ({}): {}",
        Rfc3339(start_ns),
        source.as_str(),
        errors.join(", ")
    );
}

/// A number as a person reads it: whole numbers plainly, others with two decimals; never
/// "-0" (a value that rounds to zero is 0, whatever its sign).
fn human(v: f32) -> String {
    let s = if (v - v.round()).abs() < 0.05 || v.abs() >= 100.0 {
        format!("{:.0}", v)
    } else {
        format!("{v:.2}")
    };
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => s,
    }
}

impl Detector {
    /// A detector for `capacity` device slots with windows of `window_ns`.
    pub fn new(model: Model, cfg: DetectConfig, capacity: usize, window_ns: u64) -> Detector {
        let mut scratch = model.scratch();
        let floors = model.meta.standardizer.floors();
        let mut state = model.state();
        let mut silent = [0f32; F];
        model.meta.standardizer.apply(&Features::ZERO, &mut silent);
        let mut pred = [0f32; F];
        model.step(&mut state, &silent, &mut pred, &mut scratch);
        model.memoize_input(&mut scratch, &silent);
        let parked = cfg.parked_devices;
        Detector {
            floors,
            silent,
            model,
            cfg,
            devices: vec![None; capacity],
            scratch,
            queue: Vec::with_capacity(capacity),
            queued_window: 0,
            newcomer: (state, pred),
            // at most `parked_devices`, reserved once: a MAC flood that fills it grows no
            // buffer (each doubling copied the whole list, a megabyte at a time)
            parked: Vec::with_capacity(parked),
            first_window: None,
            window_ns,
            incidents: 0,
            restored_until: None,
            stats: DetectStats::default(),
            gateways: Vec::new(),
            notes: Default::default(),
            newcomers: (0, 0, 0, None),
            unsettled: None,
        }
    }

    /// Announces a new device, unless [`NEW_DEVICE_EVENTS_PER_MINUTE`] were announced in this
    /// minute already: then it is held back for the minute's summary.
    fn announce(&mut self, device: &Device, start_ns: u64, events: &mut Vec<Event>) {
        self.summarize_newcomers(start_ns, events);
        let e = self.event(EventKind::NewDevice, device, start_ns);
        let (_, announced, held, first) = &mut self.newcomers;
        if *announced < NEW_DEVICE_EVENTS_PER_MINUTE {
            *announced += 1;
            events.push(e);
        } else {
            *held += 1;
            first.get_or_insert(e);
        }
    }

    /// When the minute of `start_ns` is a later one: the summary of the new devices held back
    /// in the last (one event, naming the first of them), and a fresh count.
    fn summarize_newcomers(&mut self, start_ns: u64, events: &mut Vec<Event>) {
        let minute = start_ns / 60_000_000_000;
        if minute == self.newcomers.0 {
            return;
        }
        let (_, announced, held, first) =
            std::mem::replace(&mut self.newcomers, (minute, 0, 0, None));
        if let Some(mut e) = first {
            e.detail = Some(format!(
                "{held} new devices in a minute after the first {announced} (this one, the \
                 first of them, and {} more): announced together",
                held - 1
            ));
            events.push(e);
        }
    }

    /// Scores one closed window of the device in `slot`; returns the score, the threshold it
    /// was judged against, and what to tell people.
    pub fn on_window(
        &mut self,
        slot: usize,
        device: &Device,
        start_ns: u64,
        features: &Features,
    ) -> Outcome {
        self.on_window_with(slot, device, start_ns, features, &Peers::default())
    }

    /// [`Detector::on_window`] with the window's heaviest peers, which an incident's events
    /// name as its counterpart.
    pub fn on_window_with(
        &mut self,
        slot: usize,
        device: &Device,
        start_ns: u64,
        features: &Features,
        peers: &Peers,
    ) -> Outcome {
        let mut events = Vec::new();
        let window = start_ns / self.window_ns;
        self.begin(start_ns);
        let first = self.first_window.expect("set by begin");
        let in_warmup = window < first + u64::from(self.cfg.learning_windows);
        let fresh = !matches!(&self.devices[slot], Some(d) if d.mac == device.mac);
        let slot_queued = matches!(&self.devices[slot], Some(d) if d.queued);
        if window != self.queued_window || slot_queued {
            self.step_queued();
        }
        self.queued_window = window;
        let known = if fresh {
            if let Some(old) = self.devices[slot].take() {
                // the table gave its slot to another device: keep what it learned
                self.park(old);
            }
            let i = self.parked.iter().position(|d| d.mac == device.mac);
            i.map(|i| self.parked.swap_remove(i))
        } else {
            None
        };
        if let Some(d) = known {
            // learned before a restart: carry on where it was
            self.devices[slot] = Some(d);
        } else if fresh {
            // a new device is predicted from silence: what it was before it appeared
            let mut d = DeviceState::new(device.mac, self.newcomer.clone());
            // devices there when watching began are no news
            d.announced = in_warmup;
            self.devices[slot] = Some(d);
        }
        // a station is announced once it confirmed itself (a second frame): one damaged or
        // forged frame announces nothing
        let announce = matches!(&self.devices[slot], Some(d) if !d.announced) && device.confirmed();
        self.summarize_newcomers(start_ns, &mut events);
        if announce {
            self.announce(device, start_ns, &mut events);
            if let Some(d) = self.devices[slot].as_mut() {
                d.announced = true;
            }
        }
        let mut z = self.silent;
        if features.0 != Features::ZERO.0 {
            self.model.meta.standardizer.apply(features, &mut z);
        }
        let half = (self.cfg.learning_windows / 2).max(1);
        let population = &self.model.meta.residual_scale;
        let population_threshold = self.threshold_for_new();
        let floors = &self.floors;
        let d = self.devices[slot].as_mut().expect("set above");
        let by_mean = self.cfg.predictor == Predictor::LearningMean;
        if by_mean {
            // the ablation: the mean of what it did while learning (silence before anything)
            d.pred = if d.mean_n == 0 {
                self.silent
            } else {
                std::array::from_fn(|j| d.mean_sum[j] / d.mean_n as f32)
            };
        }
        let pred = d.pred;
        // judged on the device's own scale once its threshold is known, on the population's
        // before; a window scores as normal when no more than the device's learning period did
        // (its threshold without the margin), or the population's 99.9th percentile
        let (scale, threshold, normal_level, source) = match (d.threshold, &d.scale) {
            (Some(t), Some(sc)) => (&sc[..], t, t / self.cfg.margin, ThresholdSource::Device),
            _ => (
                &population[..],
                population_threshold,
                population_threshold / crate::model::POPULATION_MARGIN,
                ThresholdSource::Population,
            ),
        };
        // a window in which the device sent and received nothing is no evidence of anything
        // it did: it scores zero, whatever the model expected (after a busy window the
        // sequence model expects dozens of packets of every later silent window, and such
        // silence outscored low-activity attack windows: a miner's keep-alives)
        let silent = features.0 == Features::ZERO.0;
        let errs = if silent {
            [0f32; F]
        } else {
            crate::model::errors(&z, &pred, scale, floors)
        };
        let s = crate::model::score(&errs);
        // an alarm feature it did not use while learning alerts by itself
        let alarms = alarm_bits(features);
        let alarm = alarms & !d.alarms_learned != 0;
        // after the start, a device still learning does not learn from windows that alert (a
        // rogue device's attack must not become its normal)
        if d.threshold.is_none() && (in_warmup || (s <= threshold && !alarm)) {
            d.alarms_learned |= alarms;
            let at = |w: u64| in_warmup && window + 1 >= w;
            let ends = [
                at(first + u64::from(half)),
                at(first + u64::from(self.cfg.learning_windows)),
            ];
            d.learn(&z, silent, half, ends, &self.cfg, population, floors);
            if by_mean {
                d.mean_n += 1;
                for j in 0..F {
                    d.mean_sum[j] += z[j];
                }
            }
        }
        if log::log_enabled!(log::Level::Trace) {
            let why = self.explain(features, &errs, &pred);
            trace(device.mac, start_ns, s, threshold, source, &why);
        }
        self.unsettled = Some(self.unsettled.map_or(window, |w| w.min(window)));
        let d = self.devices[slot].as_mut().expect("set above");
        d.last_window = window;
        d.last_score = s;
        // what it received is off its normal, from its heaviest sender
        let hit = peers.inbound.ip.is_some() && received_off(&errs, self.cfg.persist);
        if hit {
            let scanned = SCANNED.iter().any(|f| errs[*f as usize] > self.cfg.persist);
            d.hit = Some(Hit {
                peer: peers.inbound,
                window,
                scanned,
            });
        }
        if peers.probers != Probers::default() {
            d.probed = Some((window, peers.probers));
        }
        let above = !in_warmup && (s > threshold || alarm);
        // a target's incident lasts while its attacker's does (bursts minutes apart are one
        // brute force), or, with no attacker known to be alerting, while the attacker still
        // sends it what it does not normally receive
        let still_hit = match d.incident.as_ref() {
            Some(i) if i.role == Some(Role::Target) => match i.by {
                Some(by) => self
                    .devices
                    .iter()
                    .flatten()
                    .any(|a| a.mac == by && attacking(a)),
                None => {
                    hit && matches!((&i.counterpart, peers.inbound.ip), (Some(c), Some(ip)) if c.ip == ip.to_string())
                }
            },
            _ => false,
        };
        let d = self.devices[slot].as_mut().expect("set above");
        let (phase, incident, closed) = d.track(
            s,
            &errs,
            above,
            s <= normal_level && !alarm && !still_hit,
            &self.cfg,
            &mut self.incidents,
        );
        let alerting = d.incident.is_some();
        if !silent || d.ips.is_empty() {
            // its addresses: what targets' heaviest senders are matched against (all of
            // the network's, so that an address two devices claim matches neither); only
            // a window with packets can have changed them
            d.ips.clear();
            let v4 = device
                .identity
                .ipv4
                .iter()
                .map(|a| std::net::IpAddr::V4(*a));
            let v6 = device
                .identity
                .ipv6
                .iter()
                .map(|a| std::net::IpAddr::V6(*a));
            for ip in v4.chain(v6) {
                if d.ips.push(ip).is_err() {
                    break;
                }
            }
        }
        // the explanation: for an event, or to see whether a target attacks
        let in_target = d
            .incident
            .as_ref()
            .is_some_and(|i| i.role == Some(Role::Target));
        // a source whose incident has not named an attack yet (it opened on a new service)
        let unnamed = d.incident.as_ref().is_some_and(|i| {
            i.role == Some(Role::Source) && !i.behaviour.is_some_and(Behaviour::attacks)
        });
        let explained = (phase.is_some() && closed.is_none()) || (above && (in_target || unnamed));
        let why = explained.then(|| self.explain(features, &errs, &pred));
        // an incident that opened unnamed and now reads as an attack says so at once (an
        // SSH brute force's first window shows a new service, its next ones the logins)
        let mut phase = phase;
        if phase.is_none() && unnamed && above {
            let b = why
                .as_deref()
                .map(|w| what_it_did(w, features, self.window_ns));
            if b.is_some_and(Behaviour::attacks) {
                phase = Some(Phase::Update);
            }
        }
        let d = self.devices[slot].as_mut().expect("set above");
        // it sends an attack, by its own explanation: one that no answer produces (SYNs,
        // probes, logins, spoofed sources...) whoever it goes to, or datagrams to many
        // ports to someone other than `from` (what a target sends its attacker, the
        // resolver of a DNS tunnel or a scanned device, is its answer)
        let sends_attack = |from: Option<std::net::IpAddr>| {
            let why = why.as_deref().unwrap_or_default();
            let (answers, asks): (Vec<&Contribution>, Vec<&Contribution>) = why
                .iter()
                .filter(|c| Behaviour::attack_in(std::slice::from_ref(*c)).is_some())
                .partition(|c| ANSWERS.contains(&&*c.feature));
            let to_from = peers.outbound.ip.is_some_and(|to| Some(to) == from);
            !asks.is_empty() || answers.iter().any(|c| !to_from && !answered(c, features))
        };
        // what its own window makes it
        let syn_up = z[Feat::SynIn as usize] > pred[Feat::SynIn as usize];
        let own_role = || {
            role_of(
                &errs,
                self.cfg.explain,
                features,
                peers,
                self.cfg.persist,
                syn_up,
            )
        };
        // what the device is in the incident, decided by the window that opened it; a target
        // that attacks others, or whose own window crosses its threshold for what it did
        // itself, is a source from then on (being someone's target hides nothing)
        let mut recast = false;
        let (role, counterpart) = match (phase, &mut d.incident) {
            (Some(Phase::Open), Some(i)) => {
                let mut r = own_role();
                if r == Role::Target && sends_attack(peers.inbound.ip) {
                    r = Role::Source;
                }
                i.role = Some(r);
                i.counterpart = counterpart(match r {
                    Role::Target => &peers.inbound,
                    Role::Source => &peers.outbound,
                });
                (i.role, i.counterpart.clone())
            }
            (_, Some(i))
                if above
                    && i.role == Some(Role::Target)
                    && (sends_attack(i.counterpart.as_ref().and_then(|c| c.ip.parse().ok()))
                        || own_role() == Role::Source) =>
            {
                i.role = Some(Role::Source);
                i.by = None;
                i.counterpart = counterpart(&peers.outbound);
                i.max_score = i.max_score.max(s);
                phase = Some(Phase::Update);
                recast = true;
                (i.role, i.counterpart.clone())
            }
            (_, Some(i)) => (i.role, i.counterpart.clone()),
            (_, None) => closed
                .as_ref()
                .map_or((None, None), |i| (i.role, i.counterpart.clone())),
        };
        // advance the device's state by exactly one step; during an incident the model is fed
        // what it expected, so that an attack does not become the new normal (for at most
        // `adapt_after` windows: a lasting change does)
        d.held = if alerting { d.held + 1 } else { 0 };
        let input = if alerting && d.held <= self.cfg.adapt_after {
            pred
        } else {
            z
        };
        if by_mean || (d.at_rest && input == self.silent) {
            // the ablation steps no model
            self.stats.steps_skipped += 1;
        } else {
            d.queued = true;
            self.queue.push((slot, input));
        }
        self.stats.windows += 1;
        if let Some(p) = phase {
            let (explanation, behaviour, severity) = match closed {
                // a close event repeats what opened the incident
                Some(i) => (i.opened, i.behaviour, i.severity.unwrap_or(Severity::Low)),
                None => {
                    let why = why.unwrap_or_default();
                    // a device found to be the target is targeted, whatever its errors read;
                    // a source did what the attack its explanation names is
                    let b = if role == Some(Role::Target) {
                        Behaviour::Targeted
                    } else {
                        what_it_did(&why, features, self.window_ns)
                    };
                    let severity = Severity::judge(b, s, threshold);
                    if p == Phase::Open {
                        self.stats.opened[severity as usize] += 1;
                    }
                    let d = self.devices[slot].as_mut().expect("set above");
                    if let Some(i) = d.incident.as_mut() {
                        // what the incident was is what opened it, or the attack it turned
                        // out to be (an incident that opened as unusual and worsened into a
                        // brute force ends as one, and its targets are found)
                        let turned = b.attacks() && !i.behaviour.is_some_and(Behaviour::attacks);
                        if p == Phase::Open || recast || turned {
                            i.opened = why.clone();
                            i.behaviour = Some(b);
                            i.severity = i.severity.max(Some(severity));
                        }
                    }
                    (why, Some(b), severity)
                }
            };
            events.push(Event {
                phase: Some(p),
                incident,
                score: s,
                threshold,
                threshold_source: source,
                severity,
                behaviour,
                explanation,
                role,
                counterpart,
                ..self.event(EventKind::Anomaly, device, start_ns)
            });
        }
        Outcome {
            score: s,
            threshold,
            alerting,
            events,
        }
    }

    /// Whether windows were scored since [`Detector::settle`] last ran.
    #[inline]
    pub fn unsettled(&self) -> bool {
        self.unsettled.is_some()
    }

    /// Finds the targets of the network's attackers, once every device's window is scored
    /// (a device's own window cannot say whether the station that sent it the most is
    /// attacking: that station's window may be scored after it). A device not in an
    /// incident that received something off its normal (a feature of what it received
    /// unasked more than `persist` typical errors off) in a window since the last call, from
    /// a heaviest sender that is in an open incident as the source of an attack (by its own
    /// explanation: a scan, flood, brute force or tunnel), is that attack's target:
    /// an incident of its own, `targeted` and low (the attacker's alert is the one to act
    /// on), naming the attacker, whatever its own score (a brute force's victim answers as a
    /// server does). It lasts while the attacker's incident does. Only a device that alerts
    /// as an attacker makes targets, and a target that
    /// then attacks by its own explanation becomes a source ([`Detector::on_window_with`]):
    /// being called a target hides nothing.
    ///
    /// The events name the device by MAC alone ([`DeviceRef::station`]): the caller fills in
    /// what its device table knows.
    pub fn settle(&mut self, events: &mut Vec<Event>) {
        let Some(from) = self.unsettled.take() else {
            return;
        };
        let Some(first) = self.first_window else {
            return;
        };
        let learned = first + u64::from(self.cfg.learning_windows);
        if !self.devices.iter().flatten().any(attacking) {
            return;
        }
        let mut found = Vec::new();
        for (slot, d) in self.devices.iter().enumerate() {
            let Some(d) = d else { continue };
            if d.incident.is_some() {
                continue;
            }
            // its heaviest sender, when what it received was off its normal; each station
            // whose probes it answered; each that opened connections to it (a chatty
            // camera's heaviest sender stays its cloud while a brute force tries it)
            let hit = d.hit.map(|h| (h.peer, h.window, h.scanned, Via::Heaviest));
            let probed = d.probed.into_iter().flat_map(|(w, r)| {
                r.peers()
                    .map(move |(p, how)| (p, w, false, Via::Answered(how)))
                    .chain(r.askers().map(move |p| (p, w, false, Via::Asked)))
                    .collect::<Vec<_>>()
            });
            for (peer, w, scanned, via) in hit.into_iter().chain(probed) {
                let Some(ip) = peer.ip else { continue };
                if w < from || w < learned {
                    continue;
                }
                // the sender is the device that alone claims its address (one that also
                // claimed a busy server's, by one spoofed frame, makes none of its targets)
                let mut claims = self
                    .devices
                    .iter()
                    .flatten()
                    .filter(|a| a.ips.contains(&ip));
                let by = match (claims.next(), claims.next()) {
                    (Some(a), None)
                        if a.mac != d.mac
                            && attacking(a)
                            && match via {
                                Via::Heaviest => aims_at(a, d, scanned),
                                Via::Asked => opened_by(a, d, peer.packets),
                                Via::Answered(how) => scans_by(a, how),
                            } =>
                    {
                        Some(a)
                    }
                    _ => None,
                };
                if let Some(a) = by {
                    let b = a.incident.as_ref().and_then(|i| i.behaviour);
                    let b = b.unwrap_or(Behaviour::Unusual);
                    found.push((slot, peer, w, a.mac, b, via));
                    break;
                }
            }
        }
        let population = self.threshold_for_new();
        for (slot, peer, w, attacker, did, via) in found {
            self.incidents += 1;
            self.stats.opened[Severity::Low as usize] += 1;
            let id = self.incidents;
            let d = self.devices[slot].as_mut().expect("found above");
            let c = counterpart(&peer);
            d.quiet = 0;
            d.incident = Some(Incident {
                id,
                max_score: d.last_score,
                features: 0,
                role: Some(Role::Target),
                counterpart: c.clone(),
                opened: Vec::new(),
                behaviour: Some(Behaviour::Targeted),
                severity: Some(Severity::Low),
                by: Some(attacker),
            });
            let (score, threshold, source) = match d.threshold {
                Some(t) => (d.last_score, t, ThresholdSource::Device),
                None => (d.last_score, population, ThresholdSource::Population),
            };
            let start_ns = w * self.window_ns;
            let ip = peer.ip.map(|ip| ip.to_string()).unwrap_or_default();
            events.push(Event {
                kind: EventKind::Anomaly,
                phase: Some(Phase::Open),
                incident: Some(id),
                device: DeviceRef::station(d.mac),
                window_start: Rfc3339(start_ns).to_string(),
                window_end: Rfc3339(start_ns + self.window_ns).to_string(),
                window_start_epoch: start_ns / 1_000_000_000,
                score,
                threshold,
                threshold_source: source,
                severity: Severity::Low,
                behaviour: Some(Behaviour::Targeted),
                explanation: Vec::new(),
                detail: Some(format!(
                    "{} {attacker} ({ip}), which is {}",
                    match via {
                        Via::Heaviest => "its heaviest sender is",
                        Via::Answered(_) => "it answered probes from",
                        Via::Asked => "connections it did not know came from",
                    },
                    did.words()
                )),
                role: Some(Role::Target),
                counterpart: c,
            });
        }
    }

    /// An event about `device` in the window starting at `start_ns`, judged against the
    /// population threshold, without an explanation: what a new device's event is, and what
    /// an anomaly's starts from.
    fn event(&self, kind: EventKind, device: &Device, start_ns: u64) -> Event {
        Event {
            kind,
            phase: None,
            incident: None,
            device: DeviceRef::of(device),
            window_start: Rfc3339(start_ns).to_string(),
            window_end: Rfc3339(start_ns + self.window_ns).to_string(),
            window_start_epoch: start_ns / 1_000_000_000,
            score: 0.0,
            threshold: self.threshold_for_new(),
            threshold_source: ThresholdSource::Population,
            severity: Severity::Low,
            behaviour: None,
            explanation: Vec::new(),
            detail: None,
            role: None,
            counterpart: None,
        }
    }

    /// The features with the largest errors, observed against expected, in their own units.
    fn explain(&self, features: &Features, errs: &[f32; F], pred: &[f32; F]) -> Vec<Contribution> {
        let mut parts: Vec<(usize, f32)> = (0..F).map(|j| (j, errs[j])).collect();
        parts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        parts
            .iter()
            .take(self.cfg.explain)
            .map(|&(j, weight)| {
                let spec = &FEATURES[j];
                let observed = features.0[j];
                let expected = self.model.meta.standardizer.invert(j, pred[j]);
                Contribution {
                    feature: spec.name.into(),
                    unit: spec.unit.into(),
                    observed,
                    expected,
                    weight,
                    text: format!(
                        "{}: {}, expected about {} ({})",
                        spec.doc,
                        human(observed),
                        human(expected),
                        spec.unit
                    ),
                }
            })
            .collect()
    }

    /// Saves what every device has learned to `path`, atomically (see [`state`]).
    pub fn save(&mut self, path: &Path) -> Result<(), String> {
        self.step_queued();
        let devices = self.devices.iter().flatten().chain(&self.parked);
        let saved = state::SavedDetector {
            format_version: state::STATE_VERSION,
            model: state::fingerprint(&self.model),
            window_secs: self.window_ns / 1_000_000_000,
            first_window: self.first_window,
            incidents: self.incidents,
            gateways: self.gateways.iter().map(Mac::to_string).collect(),
            devices: devices.map(state::SavedDevice::of).collect(),
            notes: self
                .notes
                .iter()
                .map(|(m, n)| (m.to_string(), n.clone()))
                .collect(),
        };
        let json = serde_json::to_vec(&saved).map_err(|e| e.to_string())?;
        crate::files::write_atomically(path, &json)
    }

    /// Restores what [`Detector::save`] saved in `path`, before the first window; returns the
    /// number of devices restored (0 when there is no such file yet).
    pub fn restore(&mut self, path: &Path) -> Result<usize, RestoreError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => {
                return Err(RestoreError::broken(format!(
                    "cannot read state {}: {e}",
                    path.display()
                )))
            }
        };
        let bad = |why: String| RestoreError::broken(format!("state {}: {why}", path.display()));
        let other = |why: String| RestoreError {
            incompatible: true,
            why: format!("state {}: {why}", path.display()),
        };
        let saved: state::SavedDetector =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a state file ({e})")))?;
        if saved.format_version != state::STATE_VERSION {
            return Err(other(format!(
                "format version {} (this iotad reads version {})",
                saved.format_version,
                state::STATE_VERSION
            )));
        }
        if saved.model != state::fingerprint(&self.model) {
            return Err(other("learned with another model".into()));
        }
        if saved.window_secs * 1_000_000_000 != self.window_ns {
            return Err(other(format!(
                "learned on {}-s windows, this run uses {}-s windows",
                saved.window_secs,
                self.window_ns / 1_000_000_000
            )));
        }
        let devices: Vec<DeviceState> = saved
            .devices
            .into_iter()
            .map(|d| d.restore(&self.model))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        self.first_window = saved.first_window;
        self.incidents = saved.incidents;
        self.gateways = saved
            .gateways
            .iter()
            .map(|g| state::parse_mac(g))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        self.notes = saved
            .notes
            .into_iter()
            .map(|(m, n)| Ok((state::parse_mac(&m)?, n)))
            .collect::<Result<_, String>>()
            .map_err(bad)?;
        let n = devices.len();
        self.restored_until = devices.iter().map(|d| d.last_window).max();
        self.parked = devices;
        while self.parked.len() > self.cfg.parked_devices {
            self.drop_least_parked();
        }
        Ok(n)
    }

    /// Takes the queued steps, in batches of up to [`MAX_BATCH`] devices.
    pub fn step_queued(&mut self) {
        for batch in self.queue.chunks(MAX_BATCH) {
            for (i, (slot, input)) in batch.iter().enumerate() {
                let d = self.devices[*slot].as_ref().expect("a queued device");
                self.scratch.load(i, &d.state, input);
            }
            self.model.forward(batch.len(), &mut self.scratch);
            for (i, (slot, input)) in batch.iter().enumerate() {
                let d = self.devices[*slot].as_mut().expect("a queued device");
                d.at_rest = *input == self.silent
                    && self.scratch.settled(i, &d.state, &d.pred, REST_TOLERANCE);
                self.scratch.store(i, &mut d.state, &mut d.pred);
                d.queued = false;
            }
        }
        self.stats.steps += self.queue.len() as u64;
        self.queue.clear();
    }

    /// Takes new settings and, when it differs, a new model (a reload). A model of another
    /// feature table or window length is refused with the reason. What devices learned is
    /// kept with the same model; another model's predictions are not comparable, so then
    /// every device learns afresh (the device table is the caller's and stays).
    pub fn replace(&mut self, model: Model, cfg: DetectConfig) -> Result<(), String> {
        if model.meta.features != self.model.meta.features {
            return Err("the new model has another feature table".into());
        }
        if u64::from(model.meta.window_secs) * 1_000_000_000 != self.window_ns {
            return Err(format!(
                "the new model uses {}-s windows",
                model.meta.window_secs
            ));
        }
        let same = state::fingerprint(&model) == state::fingerprint(&self.model);
        self.cfg = cfg;
        if !same {
            log::warn!("a new model: every device learns afresh");
            let capacity = self.devices.len();
            *self = Detector::new(model, self.cfg.clone(), capacity, self.window_ns);
        }
        Ok(())
    }

    /// The device in `slot` stops being a device (it was found to be a router) after the
    /// window starting at `start_ns`: what it learned is dropped, and an incident still open
    /// ends with a close event instead of vanishing.
    pub fn retire(&mut self, slot: usize, device: &Device, start_ns: u64) -> Option<Event> {
        self.step_queued();
        let mut d = self
            .devices
            .get_mut(slot)?
            .take_if(|d| d.mac == device.mac)?;
        let detail = "it routes the LAN's internet traffic: watched as a router from now on";
        self.end_incident(&mut d, device, start_ns, detail)
    }

    /// The device in `slot` was evicted from the device table to make room for a newcomer,
    /// after the window starting at `start_ns`: what it learned is parked (it carries on
    /// where it was if it comes back), and an incident still open ends with a close event.
    pub fn evict(&mut self, slot: usize, device: &Device, start_ns: u64) -> Option<Event> {
        self.step_queued();
        let mut d = self
            .devices
            .get_mut(slot)?
            .take_if(|d| d.mac == device.mac)?;
        let detail = "it left the full device table to make room for a newer station: no \
                      longer watched until it is back (what it learned is kept)";
        let e = self.end_incident(&mut d, device, start_ns, detail);
        self.park(d);
        e
    }

    /// Ends the device's open incident, if any, with a close event saying why.
    fn end_incident(
        &self,
        d: &mut DeviceState,
        device: &Device,
        start_ns: u64,
        detail: &str,
    ) -> Option<Event> {
        let i = d.incident.take()?;
        let (behaviour, severity) = (i.behaviour, i.severity.unwrap_or(Severity::Low));
        let source = if d.threshold.is_some() {
            ThresholdSource::Device
        } else {
            ThresholdSource::Population
        };
        Some(Event {
            phase: Some(Phase::Close),
            incident: Some(i.id),
            score: d.last_score,
            threshold: d.threshold.unwrap_or(self.threshold_for_new()),
            threshold_source: source,
            severity,
            behaviour,
            explanation: i.opened,
            detail: Some(detail.into()),
            ..self.event(EventKind::Anomaly, device, start_ns)
        })
    }

    /// An event about who is who (not scored), in the window holding `ts_ns`.
    pub fn notice(&self, kind: EventKind, who: DeviceRef, ts_ns: u64, detail: String) -> Event {
        let start_ns = ts_ns - ts_ns % self.window_ns;
        Event {
            kind,
            phase: None,
            incident: None,
            device: who,
            window_start: Rfc3339(start_ns).to_string(),
            window_end: Rfc3339(start_ns + self.window_ns).to_string(),
            window_start_epoch: start_ns / 1_000_000_000,
            score: 0.0,
            threshold: self.threshold_for_new(),
            threshold_source: ThresholdSource::Population,
            severity: Severity::High,
            behaviour: None,
            explanation: Vec::new(),
            detail: Some(detail),
            role: None,
            counterpart: None,
        }
    }

    /// The network is watched from `ts_ns` on (the first packet): the learning period counts
    /// from its window, not from the first device's first window. Later calls do nothing.
    #[inline]
    pub fn begin(&mut self, ts_ns: u64) {
        if let Some(last) = self.restored_until.take() {
            if ts_ns / self.window_ns < last {
                log::warn!(
                    "time runs backwards: this capture starts at {}, before the last window of the saved state ({}); devices are judged on what they did later",
                    Rfc3339(ts_ns),
                    Rfc3339(last * self.window_ns)
                );
            }
        }
        if self.first_window.is_none() {
            // the network's learning started this many windows before the first one
            let learned = u64::from(self.cfg.learning_windows - self.cfg.warmup());
            self.first_window = Some((ts_ns / self.window_ns).saturating_sub(learned));
        }
    }

    /// What the detector holds about the device with `mac` in table slot `slot`.
    pub fn view(&self, slot: usize, mac: Mac) -> Option<DeviceView> {
        let d = self.devices.get(slot)?.as_ref().filter(|d| d.mac == mac)?;
        let (threshold, source) = match d.threshold {
            Some(t) => (t, ThresholdSource::Device),
            None => (self.threshold_for_new(), ThresholdSource::Population),
        };
        Some(DeviceView {
            score: d.last_score,
            threshold,
            source,
            incident: d.incident.as_ref().map(|i| i.id),
        })
    }

    /// When the network's learning period ends (nothing alerts before), once watching began.
    pub fn learning_ends_ns(&self) -> Option<u64> {
        self.first_window
            .map(|f| (f + u64::from(self.cfg.learning_windows)) * self.window_ns)
    }

    /// Whether the network is still in its learning period (nothing alerts).
    pub fn learning(&self) -> bool {
        self.first_window
            .is_none_or(|first| self.queued_window < first + u64::from(self.cfg.learning_windows))
    }

    /// The routers to save with the state (or restored from it).
    pub fn gateways(&self) -> &[Mac] {
        &self.gateways
    }

    pub fn set_gateways(&mut self, gateways: &[Mac]) {
        self.gateways = gateways.to_vec();
    }

    /// What people said about the device with `mac`.
    pub fn note(&self, mac: Mac) -> Option<&Note> {
        self.notes.get(&mac)
    }

    fn note_mut(&mut self, mac: Mac) -> &mut Note {
        self.notes.entry(mac).or_default()
    }

    /// Names the device with `mac` (`""`: the name it gives itself again).
    pub fn set_name(&mut self, mac: Mac, name: &str) {
        self.note_mut(mac).name = name.to_string();
        self.notes.retain(|_, n| *n != Note::default());
    }

    /// Mutes the anomaly alerts of the device with `mac` until `until_secs` (Unix seconds;
    /// 0 unmutes).
    pub fn mute(&mut self, mac: Mac, until_secs: u64) {
        self.note_mut(mac).muted_until = until_secs;
        self.notes.retain(|_, n| *n != Note::default());
    }

    /// Whether the anomaly alerts of the device with `mac` are muted at `ts_ns`.
    pub fn muted(&self, mac: Mac, ts_ns: u64) -> bool {
        self.notes
            .get(&mac)
            .is_some_and(|n| n.muted_until > ts_ns / 1_000_000_000)
    }

    /// Counts an anomaly event not sent because its device is muted.
    pub fn count_muted(&mut self) {
        self.stats.muted += 1;
    }

    /// The device with `mac` learns afresh: its typical errors, then its threshold, over a
    /// learning period of its own (the network's first half, then its second), judged on
    /// the population's threshold meanwhile; an open incident is dropped. Its recurrent
    /// state stays (it is what the model knows of its recent past). False when the detector
    /// holds nothing about it.
    pub fn relearn(&mut self, mac: Mac) -> bool {
        self.step_queued();
        let d = self
            .devices
            .iter_mut()
            .flatten()
            .chain(self.parked.iter_mut())
            .find(|d| d.mac == mac);
        let Some(d) = d else { return false };
        d.scored = 0;
        d.threshold_scored = 0;
        d.sq_err = [0.0; F];
        d.max_err = [0.0; F];
        d.scale = None;
        d.max_learning = 0.0;
        d.threshold = None;
        d.incident = None;
        d.quiet = 0;
        d.held = 0;
        true
    }

    /// Forgets everything about the device with `mac`: what it learned and what people
    /// said about it. If it comes back it is a new device.
    pub fn forget(&mut self, mac: Mac) -> bool {
        self.step_queued();
        let mut found = self.notes.remove(&mac).is_some();
        for slot in &mut self.devices {
            found |= slot.take_if(|d| d.mac == mac).is_some();
        }
        let before = self.parked.len();
        self.parked.retain(|d| d.mac != mac);
        found | (self.parked.len() != before)
    }

    /// Keeps the state of a device that left its table slot.
    fn park(&mut self, d: DeviceState) {
        if self.cfg.parked_devices == 0 {
            return;
        }
        if self.parked.len() >= self.cfg.parked_devices {
            self.drop_least_parked();
        }
        self.parked.push(d);
    }

    /// Forgets the parked device that learned least (ties: the one seen longest ago).
    fn drop_least_parked(&mut self) {
        if let Some(i) = (0..self.parked.len()).min_by_key(|&i| self.parked[i].worth()) {
            self.parked.swap_remove(i);
            self.stats.parked_dropped += 1;
        }
    }

    /// Devices whose learning is kept while they are out of the table.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    pub fn stats(&self) -> &DetectStats {
        &self.stats
    }

    fn threshold_for_new(&self) -> f32 {
        self.model.meta.population_threshold.max(self.cfg.floor)
    }
}

/// Why a saved state was not restored.
#[derive(Debug)]
pub struct RestoreError {
    /// The file is sound but was learned by another model, window length or format: the
    /// daemon sets it aside and learns afresh instead of refusing to start.
    pub incompatible: bool,
    why: String,
}

impl RestoreError {
    fn broken(why: String) -> RestoreError {
        RestoreError {
            incompatible: false,
            why,
        }
    }
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

impl From<RestoreError> for String {
    fn from(e: RestoreError) -> String {
        if e.incompatible {
            format!(
                "{}: remove it, or name another state file, to learn afresh",
                e.why
            )
        } else {
            e.why
        }
    }
}

/// The [`Tolerance::Alarm`] features a window moved (bit j: feature j).
fn alarm_bits(features: &Features) -> u64 {
    FEATURES
        .iter()
        .enumerate()
        .filter(|(j, f)| f.tolerance == Tolerance::Alarm && features.0[*j] > 0.0)
        .fold(0, |bits, (j, _)| bits | 1 << j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Feat;

    const W: u64 = 10_000_000_000;

    /// A device with MAC 02:00:00:00:00:`n` that has sent two frames (confirmed).
    fn device(n: u8) -> Device {
        Device {
            next_hop: None,
            mac: Mac([0x02, 0, 0, 0, 0, n]),
            first_seen_ns: 0,
            last_seen_ns: 0,
            packets_out: 2,
            packets_in: 0,
            identity: Default::default(),
        }
    }

    /// A device that appears on a network that has learned and sends `arp` unsolicited ARP
    /// replies in each window (nothing else): whether it is alerting after each window.
    fn alerting(arp: &[f32]) -> Vec<bool> {
        let model = crate::model::file::built_in().unwrap();
        let cfg = DetectConfig {
            network_learned: true,
            ..DetectConfig::default()
        };
        let mut det = Detector::new(model, cfg, 4, W);
        let device = device(1);
        let t0 = 1_700_000_000 * 1_000_000_000;
        arp.iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut f = Features::ZERO;
                for feat in [Feat::ArpRepliesUnasked, Feat::ArpOut, Feat::PktsOut] {
                    f.0[feat as usize] = n;
                }
                f.0[Feat::BytesOut as usize] = 42.0 * n;
                det.on_window(0, &device, t0 + i as u64 * W, &f).alerting
            })
            .collect()
    }

    #[test]
    fn numbers_read_plainly_and_never_as_minus_zero() {
        assert_eq!(human(-0.0), "0");
        assert_eq!(human(-0.01), "0");
        assert_eq!(human(-0.004), "0");
        assert_eq!(human(0.004), "0");
        assert_eq!(human(-0.3), "-0.30");
        assert_eq!(human(12.0), "12");
        assert_eq!(human(0.25), "0.25");
        assert_eq!(human(-2.0), "-2");
        assert_eq!(human(1234.5), "1234");
    }

    #[test]
    fn an_incident_lasts_while_windows_stay_abnormal_and_closes_after_normal_ones() {
        // a burst opens it; two replies a window are under the threshold but more than any
        // normal window: the incident stays open until three windows are normal again
        let got = alerting(&[10.0, 2.0, 2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            got,
            [true, true, true, true, true, true, true, true, false, false]
        );
        // two replies alone never open one
        assert!(!alerting(&[2.0, 2.0, 2.0]).contains(&true));
    }

    #[test]
    fn new_devices_beyond_ten_a_minute_are_announced_in_one_summary() {
        let model = crate::model::file::built_in().unwrap();
        let cfg = DetectConfig {
            network_learned: true,
            ..DetectConfig::default()
        };
        let mut det = Detector::new(model, cfg, 64, W);
        // 60 s aligned; 40 devices appear in the first window of a minute
        let t0 = 1_700_000_040 * 1_000_000_000;
        let mut new_device = Vec::new();
        for w in 0..7u64 {
            for n in 0..40u8 {
                let mut d = device(n);
                d.mac.0[0] = 0x06; // a locally administered (randomized) MAC
                let o = det.on_window(usize::from(n), &d, t0 + w * W, &Features::ZERO);
                new_device.extend(
                    o.events
                        .into_iter()
                        .filter(|e| e.kind == EventKind::NewDevice)
                        .map(|e| (w, e)),
                );
            }
        }
        let (first, rest): (Vec<_>, Vec<_>) = new_device.iter().partition(|(w, _)| *w == 0);
        assert_eq!(first.len(), NEW_DEVICE_EVENTS_PER_MINUTE as usize);
        assert!(first
            .iter()
            .all(|(_, e)| e.detail.is_none() && e.device.randomized));
        // the next minute's first window tells the other 30 in one event
        assert_eq!(rest.len(), 1, "{rest:?}");
        let (w, e) = rest[0];
        assert_eq!(*w, 6);
        assert_eq!(e.device.mac, "06:00:00:00:00:0a");
        let detail = e.detail.as_deref().unwrap();
        assert!(
            detail.starts_with("30 new devices in a minute after the first 10"),
            "{detail}"
        );
    }

    #[test]
    fn a_long_silence_costs_no_model_steps_once_the_device_is_at_rest() {
        let model = crate::model::file::built_in().unwrap();
        let mut det = Detector::new(model, DetectConfig::default(), 4, W);
        let device = device(2);
        let t0 = 1_700_000_000 * 1_000_000_000;
        let mut busy = Features::ZERO;
        busy.0[Feat::PktsOut as usize] = 40.0;
        busy.0[Feat::BytesOut as usize] = 4000.0;
        let mut scores = Vec::new();
        for i in 0..1000u64 {
            let f = if i < 20 { &busy } else { &Features::ZERO };
            scores.push(det.on_window(0, &device, t0 + i * W, f).score);
        }
        let st = det.stats().clone();
        assert!(st.steps_skipped > 800, "{st:?}");
        assert!(st.steps + st.steps_skipped >= 999, "{st:?}");
        // at rest the score is the last stepped one's: silence stays as ordinary as it was
        let last = *scores.last().unwrap();
        assert!(scores[900..].iter().all(|&s| s == last));
    }

    /// A normally quiet device: a burst of 30 packets a minute (one busy window in six),
    /// silence between. After learning, its silent windows must not outscore its ordinary
    /// busy ones, and a window of two packets to somewhere must outscore its silence (the
    /// model expects a burst's worth of packets after one: silence scored ~4.7 before).
    #[test]
    fn silence_of_a_quiet_device_never_outscores_its_ordinary_windows() {
        let model = crate::model::file::built_in().unwrap();
        let cfg = DetectConfig {
            learning_windows: 120,
            ..DetectConfig::default()
        };
        let mut det = Detector::new(model, cfg, 4, W);
        let device = device(3);
        let t0 = 1_700_000_000 * 1_000_000_000;
        let mut busy = Features::ZERO;
        busy.0[Feat::PktsOut as usize] = 30.0;
        busy.0[Feat::BytesOut as usize] = 3000.0;
        busy.0[Feat::TcpOut as usize] = 30.0;
        let mut little = Features::ZERO;
        little.0[Feat::PktsOut as usize] = 2.0;
        little.0[Feat::BytesOut as usize] = 140.0;
        let (mut silent, mut ordinary) = (Vec::new(), Vec::new());
        for i in 0..300u64 {
            let f = if i % 6 == 0 { &busy } else { &Features::ZERO };
            let o = det.on_window(0, &device, t0 + i * W, f);
            if i >= 120 {
                if i % 6 == 0 {
                    ordinary.push(o.score);
                } else {
                    silent.push(o.score);
                }
                assert!(!o.alerting, "window {i} alerts: {:?}", o.events);
            }
        }
        let loudest_silence = silent.iter().copied().fold(0f32, f32::max);
        let quietest = ordinary.iter().copied().fold(f32::MAX, f32::min);
        assert!(
            loudest_silence <= quietest,
            "silence scores up to {loudest_silence}, ordinary windows from {quietest}"
        );
        let o = det.on_window(0, &device, t0 + 301 * W, &little);
        assert!(
            o.score > loudest_silence,
            "{} <= {loudest_silence}",
            o.score
        );
    }

    /// What a window of connection attempts was: a SYN flood's unanswered SYNs are probes
    /// and its attempts on one port "repeated logins", but it is a flood; a scan spreads its
    /// attempts, a brute force has sessions, and a few refused logins are no flood.
    #[test]
    fn attempts_hammering_one_service_without_a_session_are_a_flood() {
        let f = |pairs: &[(Feat, f32)]| {
            let mut x = Features::ZERO;
            for (k, v) in pairs {
                x[*k] = *v;
            }
            x
        };
        let w = 10_000_000_000;
        let flood = f(&[
            (Feat::SynOut, 5000.0),
            (Feat::Probes, 4973.0),
            (Feat::MaxAttemptsOneService, 5000.0),
        ]);
        assert_eq!(hammered(Behaviour::Scan, &flood, w), Behaviour::Flood);
        assert_eq!(hammered(Behaviour::BruteForce, &flood, w), Behaviour::Flood);
        let scan = f(&[
            (Feat::SynOut, 1000.0),
            (Feat::Probes, 997.0),
            (Feat::MaxAttemptsOneService, 1.0),
        ]);
        assert_eq!(hammered(Behaviour::Scan, &scan, w), Behaviour::Scan);
        let logins = f(&[
            (Feat::SynOut, 40.0),
            (Feat::MaxAttemptsOneService, 40.0),
            (Feat::LoginAttempts, 38.0),
        ]);
        assert_eq!(
            hammered(Behaviour::BruteForce, &logins, w),
            Behaviour::BruteForce
        );
        let refused = f(&[(Feat::SynOut, 3.0), (Feat::MaxAttemptsOneService, 3.0)]);
        assert_eq!(
            hammered(Behaviour::BruteForce, &refused, w),
            Behaviour::BruteForce
        );
        assert_eq!(hammered(Behaviour::Tunnel, &flood, w), Behaviour::Tunnel);
    }
}
