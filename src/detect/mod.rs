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
//! closes after `close_after` normal windows: one incident, not an alert storm.

pub mod event;
pub mod state;

pub use event::{Contribution, DeviceRef, Event, EventKind, Phase, Severity, ThresholdSource};

use std::path::Path;

use crate::device::Device;
use crate::export::Rfc3339;
use crate::model::{Model, Scratch, State, MAX_BATCH};
use crate::window::features::{F, FEATURES};
use crate::window::Features;
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

    /// Learns from one window (standardized: `z`) while the device has no threshold: its
    /// typical errors over the first `half` windows, then the scores those give over the
    /// next `half`, whose maximum with a margin and a floor becomes its threshold. `ends`
    /// says whether the network's first half, and its whole learning period, end with this
    /// window: a device that appeared during it finishes each half with the network's (given
    /// at least [`MIN_PHASE`] windows in it), so that one that appeared late is not left on
    /// the population threshold after it.
    fn learn(
        &mut self,
        z: &[f32; F],
        half: u32,
        ends: [bool; 2],
        cfg: &DetectConfig,
        population: &[f32],
        floors: &[f32; F],
    ) {
        match &self.scale {
            None => {
                self.scored += 1;
                for j in 0..F {
                    self.sq_err[j] += (z[j] - self.pred[j]).powi(2);
                }
                if self.scored >= half || (ends[0] && self.scored >= MIN_PHASE) {
                    let mut sc = [0f32; F];
                    for j in 0..F {
                        sc[j] = (self.sq_err[j] / self.scored as f32)
                            .sqrt()
                            .min(SCALE_CAP * population[j].max(floors[j]))
                            .max(floors[j]);
                    }
                    self.scale = Some(sc);
                }
            }
            Some(own) => {
                let own = crate::model::score(&crate::model::errors(z, &self.pred, own, floors));
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
    ) -> (Option<Phase>, Option<u64>) {
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
        if phase == Some(Phase::Close) {
            self.incident = None;
            self.quiet = 0;
        }
        (phase, id)
    }
}

/// A device silent long enough that one more silent step moves its hidden states and
/// prediction by at most this (standard units) is at rest: its silent windows are scored on
/// the prediction it has, without stepping the model. Without it, 81 quiet days of six
/// devices cost 17x as long to replay as to extract their features (the model settles into a
/// two-step cycle of amplitude ~0.007 in the prediction, never a fixed point, so exact
/// equality never holds).
pub const REST_TOLERANCE: f32 = 0.01;

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
    stats: DetectStats,
    /// The LAN's routers, saved with the state (the device table finds them; the engine
    /// hands them over before a save and takes them back after a restore).
    gateways: Vec<Mac>,
    /// New-device events of the current minute: (minute, announced, held back, the first
    /// held back's event, which becomes the summary).
    newcomers: (u64, u32, u32, Option<Event>),
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
            parked: Vec::new(),
            first_window: None,
            window_ns,
            incidents: 0,
            stats: DetectStats::default(),
            gateways: Vec::new(),
            newcomers: (0, 0, 0, None),
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
        let errs = crate::model::errors(&z, &pred, scale, floors);
        let s = crate::model::score(&errs);
        // after the start, a device still learning does not learn from windows that alert (a
        // rogue device's attack must not become its normal)
        if d.threshold.is_none() && (in_warmup || s <= threshold) {
            let at = |w: u64| in_warmup && window + 1 >= w;
            let ends = [
                at(first + u64::from(half)),
                at(first + u64::from(self.cfg.learning_windows)),
            ];
            d.learn(&z, half, ends, &self.cfg, population, floors);
        }
        if log::log_enabled!(log::Level::Trace) {
            let why = self.explain(features, &errs, &pred);
            trace(device.mac, start_ns, s, threshold, source, &why);
        }
        let d = self.devices[slot].as_mut().expect("set above");
        d.last_window = window;
        d.last_score = s;
        let above = !in_warmup && s > threshold;
        let (phase, incident) = d.track(
            s,
            &errs,
            above,
            s <= normal_level,
            &self.cfg,
            &mut self.incidents,
        );
        let alerting = d.incident.is_some();
        // advance the device's state by exactly one step; during an incident the model is fed
        // what it expected, so that an attack does not become the new normal (for at most
        // `adapt_after` windows: a lasting change does)
        d.held = if alerting { d.held + 1 } else { 0 };
        let input = if alerting && d.held <= self.cfg.adapt_after {
            pred
        } else {
            z
        };
        if d.at_rest && input == self.silent {
            self.stats.steps_skipped += 1;
        } else {
            d.queued = true;
            self.queue.push((slot, input));
        }
        self.stats.windows += 1;
        if let Some(p) = phase {
            let severity = if p == Phase::Close {
                Severity::Low
            } else {
                Severity::of(s, threshold)
            };
            if p == Phase::Open {
                self.stats.opened[severity as usize] += 1;
            }
            events.push(Event {
                phase: Some(p),
                incident,
                score: s,
                threshold,
                threshold_source: source,
                severity,
                explanation: self.explain(features, &errs, &pred),
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
            explanation: Vec::new(),
            detail: None,
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
        };
        let json = serde_json::to_vec(&saved).map_err(|e| e.to_string())?;
        crate::files::write_atomically(path, &json)
    }

    /// Restores what [`Detector::save`] saved in `path`, before the first window; returns the
    /// number of devices restored (0 when there is no such file yet).
    pub fn restore(&mut self, path: &Path) -> Result<usize, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(format!("cannot read state {}: {e}", path.display())),
        };
        let bad = |why: String| format!("state {}: {why}", path.display());
        let saved: state::SavedDetector =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a state file ({e})")))?;
        if saved.format_version != state::STATE_VERSION {
            return Err(bad(format!(
                "format version {} (this iotad reads version {})",
                saved.format_version,
                state::STATE_VERSION
            )));
        }
        if saved.model != state::fingerprint(&self.model) {
            return Err(bad(
                "learned with another model: remove it to learn afresh with this one".into(),
            ));
        }
        if saved.window_secs * 1_000_000_000 != self.window_ns {
            return Err(bad(format!(
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
        let n = devices.len();
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
        let d = self
            .devices
            .get_mut(slot)?
            .take_if(|d| d.mac == device.mac)?;
        let i = d.incident?;
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
            detail: Some(
                "it routes the LAN's internet traffic: watched as a router from now on".into(),
            ),
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
            explanation: Vec::new(),
            detail: Some(detail),
        }
    }

    /// The network is watched from `ts_ns` on (the first packet): the learning period counts
    /// from its window, not from the first device's first window. Later calls do nothing.
    #[inline]
    pub fn begin(&mut self, ts_ns: u64) {
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
}
