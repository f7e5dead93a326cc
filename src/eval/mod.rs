//! `iotad eval`: how well detection works on labelled captures (the format of
//! `../shared/data/MANIFEST.json`), for the model and for a z-score baseline side by side.
//!
//! The manifest is read strictly ([`manifest`]): an unknown key, or a ground-truth display
//! filter that [`filter`] cannot read, is an error (`--lenient` lets such a filter go with a
//! warning, and the attacker's every packet of the attack's time range counts).
//! Windows are labelled from the manifest: positive, a window of an attacking device (by MAC,
//! or by IP where it has one of its own: a DHCP client sending from 0.0.0.0 is known by its
//! MAC alone) holding attack packets it sent (packets of the attack's time range that match
//! the ground truth's display filter; without a filter, any packet it sent in the time
//! range); negative, every window of a device that is neither attacker nor victim. Victims
//! are left out of the AUC: the stations the ground truth names, and those the attack
//! packets were addressed to, known by their destination MAC, so that a victim the ground
//! truth names only by IP is one even when it only receives and no IP is learned for it.
//! Reported per capture: window ROC AUC, whether the attack was alerted and how soon, the
//! share of attack windows alerted on, false alerts per benign device-hour, and the
//! feature the first alert named. The detector learns on the benign prefix before the attack
//! ([`detect_config`]); a capture that opens with an attack arrives on a network that has
//! learned, so its devices are judged on the population threshold.

pub mod baseline;
pub mod filter;
pub mod manifest;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::PipelineConfig;
use crate::detect::{DetectConfig, Detector, Predictor, MIN_PHASE};
use crate::engine::{self, Engine, Scored};
use crate::model::Model;
use crate::window::Feat;
use crate::wire::Mac;
use baseline::Baseline;
use filter::Filter;

/// One attack of a capture.
#[derive(Clone, Debug)]
pub struct Attack {
    pub kind: String,
    pub attacker_mac: Option<Mac>,
    /// The attacker's addresses; none where its packets carry none of its own (a DHCP client
    /// sending from 0.0.0.0, spoofed sources): the MAC alone names it then.
    pub attacker_ips: Vec<IpAddr>,
    pub victim_macs: Vec<Mac>,
    pub victim_ips: Vec<IpAddr>,
    /// Networks the manifest names as the victim (`192.168.1.0/24`: what a sweep covers):
    /// its victims are the stations of them that answered the attacker.
    pub victim_nets: Vec<(IpAddr, u8)>,
    /// First and last attack packet, to the microsecond the manifest gives.
    pub start_ns: u64,
    pub end_ns: u64,
    /// The ground truth's display filter of the attack's packets, when it has one.
    pub filter: Option<Filter>,
}

/// How far outside an attack's time range a packet may be and still belong to it: the
/// manifest gives times to the microsecond, and nanosecond captures were rounded to it.
const TIME_SLACK_NS: u64 = 1_000;

impl Attack {
    /// Whether the station with this MAC and these addresses is this attack's attacker.
    fn by(&self, mac: &Mac, ips: &[IpAddr]) -> bool {
        self.attacker_mac == Some(*mac) || self.attacker_ips.iter().any(|ip| ips.contains(ip))
    }

    /// Whether `ip` is in one of the victim networks.
    fn in_victim_net(&self, ip: &IpAddr) -> bool {
        self.victim_nets.iter().any(|&(net, bits)| {
            let (a, n, len) = match (ip, net) {
                (IpAddr::V4(a), IpAddr::V4(n)) => (a.to_bits() as u128, n.to_bits() as u128, 32),
                (IpAddr::V6(a), IpAddr::V6(n)) => (a.to_bits(), n.to_bits(), 128),
                _ => return false,
            };
            let bits = u32::from(bits).min(len);
            let shift = len - bits;
            shift >= 128 || (a >> shift) == (n >> shift)
        })
    }

    /// Whether a packet at `ts_ns` falls in the attack's time range.
    fn during(&self, ts_ns: u64) -> bool {
        ts_ns + TIME_SLACK_NS >= self.start_ns && ts_ns <= self.end_ns + TIME_SLACK_NS
    }
}

/// One capture of the manifest.
#[derive(Clone, Debug)]
pub struct Labelled {
    pub file: PathBuf,
    pub kind: String,
    pub attacks: Vec<Attack>,
}

/// Drops the remarks in parentheses of a manifest's address text.
fn without_remarks(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether an address can be a station's own: not 0.0.0.0, broadcast or multicast.
fn names_a_station(ip: &IpAddr) -> bool {
    let broadcast = matches!(ip, IpAddr::V4(a) if a.is_broadcast());
    !(ip.is_unspecified() || ip.is_multicast() || broadcast)
}

/// The station addresses of a manifest's `ip` text: a comma-separated list, remarks in
/// parentheses dropped. Words (`spoofed`, `SNMP reflectors`) name no address, a network
/// (`192.168.1.0/24`, what a sweep covers) no one station, and 0.0.0.0, broadcast and
/// multicast addresses no station; what starts like an address and is none is an error.
fn station_ips(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for item in without_remarks(text).split(',').map(str::trim) {
        if let Ok(ip) = item.parse::<IpAddr>() {
            if names_a_station(&ip) {
                out.push(ip);
            }
            continue;
        }
        if network(item).is_none()
            && (item.starts_with(|c: char| c.is_ascii_digit()) || item.contains(':'))
        {
            return Err(format!("{item:?} is not an IP address"));
        }
    }
    Ok(out)
}

/// One item of a manifest's `ip` text read as a network (`192.168.1.0/24`).
fn network(item: &str) -> Option<(IpAddr, u8)> {
    let (a, bits) = item.trim().split_once('/')?;
    Some((a.parse().ok()?, bits.parse().ok()?))
}

/// The networks of a manifest's `ip` text, remarks dropped.
fn networks(text: &str) -> Vec<(IpAddr, u8)> {
    without_remarks(text)
        .split(',')
        .filter_map(network)
        .collect()
}

/// The unicast MACs of a manifest's `mac` text (a comma-separated list); broadcast names
/// no station.
fn station_macs(text: &str) -> Result<Vec<Mac>, String> {
    let mut out = Vec::new();
    for item in without_remarks(text).split(',').map(str::trim) {
        let m = Mac::parse(item).ok_or_else(|| format!("{item:?} is not a MAC address"))?;
        if m.is_unicast() {
            out.push(m);
        }
    }
    Ok(out)
}

/// Epoch seconds as nanoseconds, to the microsecond: the manifest's times have six
/// decimals, and an f64 cannot hold nanoseconds since 1970 (1574110025.296436 is
/// 1574110025.296435968 as an f64: a packet stamped .296436 would fall outside its range).
fn epoch_ns(seconds: f64) -> u64 {
    (seconds * 1e6).round() as u64 * 1_000
}

/// One label's attack; `file` names its capture in a warning.
fn attack(l: &manifest::Label, file: &str, lenient: bool) -> Result<Attack, String> {
    let macs = |m: &Option<String>| m.as_deref().map_or(Ok(Vec::new()), station_macs);
    let ips = |m: &Option<String>| m.as_deref().map_or(Ok(Vec::new()), station_ips);
    let attacker_macs = macs(&l.attacker.mac).map_err(|e| format!("attacker: {e}"))?;
    if attacker_macs.len() > 1 {
        return Err("attacker: more than one MAC".into());
    }
    let (start_ns, end_ns) = (
        epoch_ns(l.time_range.start_epoch),
        epoch_ns(l.time_range.end_epoch),
    );
    if end_ns < start_ns {
        return Err("time_range: it ends before it starts".into());
    }
    let filter = match l.filter.as_deref().map(Filter::parse) {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) if lenient => {
            log::warn!("{file}: {e}; every packet the attacker sends during the attack counts");
            None
        }
        Some(Err(e)) => {
            return Err(format!(
                "{e} (--lenient: warn and count every packet the attacker sends during the attack)"
            ))
        }
        None => None,
    };
    Ok(Attack {
        kind: l.kind.clone(),
        attacker_mac: attacker_macs.first().copied(),
        attacker_ips: ips(&l.attacker.ip).map_err(|e| format!("attacker: {e}"))?,
        victim_macs: macs(&l.victim.mac).map_err(|e| format!("victim: {e}"))?,
        victim_ips: ips(&l.victim.ip).map_err(|e| format!("victim: {e}"))?,
        victim_nets: l.victim.ip.as_deref().map(networks).unwrap_or_default(),
        start_ns,
        end_ns,
        filter,
    })
}

/// Reads a manifest ([`manifest::Manifest`]); capture paths are relative to its folder. An
/// unknown key, or a label's display filter that does not parse, is an error; `lenient`
/// lets such a filter go with a warning (the attacker's every packet in the attack's time
/// range counts then).
pub fn read_manifest(path: &Path, lenient: bool) -> Result<Vec<Labelled>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read manifest {}: {e}", path.display()))?;
    let m: manifest::Manifest =
        serde_json::from_str(&text).map_err(|e| format!("manifest {}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for c in &m.captures {
        let labels = match &c.ground_truth {
            manifest::GroundTruth::Benign => &[][..],
            manifest::GroundTruth::Attacks(l) => l,
        };
        let attacks = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                attack(l, &c.file, lenient).map_err(|e| {
                    format!(
                        "manifest {}: {}: ground truth {} ({}): {e}",
                        path.display(),
                        c.file,
                        i + 1,
                        l.kind
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        out.push(Labelled {
            file: dir.join(&c.file),
            kind: c.kind.clone(),
            attacks,
        });
    }
    Ok(out)
}

/// ROC AUC of positive vs negative scores (Mann-Whitney, ties count half).
pub fn auc(pos: &[f32], neg: &[f32]) -> Option<f64> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += avg_rank * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (p, n) = (pos.len() as f64, neg.len() as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// One detector's results on one capture.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scores {
    pub auc: Option<f64>,
    pub attacks_alerted: usize,
    pub attacks: usize,
    /// Seconds from an attack's start to the first alert on its attacker (the mean over
    /// alerted attacks).
    pub delay_s: Option<f64>,
    /// Share of attack windows alerted on: above the threshold, or in an incident that one
    /// above it opened and that has not ended.
    pub attack_windows_above: f64,
    pub false_alerts: usize,
    pub false_alerts_per_device_hour: f64,
    /// Every feature the first alert's explanation named, most to least.
    pub first_alert_explanation: Vec<String>,
    /// Victims (of [`CaptureReport::victims`]) alerted on after learning as targets (an
    /// incident whose role is `target`), and of those, the ones whose event named an
    /// attacker's address as the counterpart. Not false alerts: counted apart.
    pub victims_alerted_as_targets: usize,
    pub targets_naming_the_attacker: usize,
    /// Incidents opened on victims that do not call them targets.
    pub victim_alerts_not_as_target: usize,
    /// The victims not alerted on as targets, by MAC.
    pub victims_missed: Vec<String>,
}

/// Results on one capture.
#[derive(Clone, Debug, Serialize)]
pub struct CaptureReport {
    pub file: String,
    pub kind: String,
    pub attack: String,
    pub learning_windows: u32,
    pub positive_windows: usize,
    pub negative_windows: usize,
    /// Attack windows lost to attribution: windows in which the attacker sent attack packets
    /// (by the ground truth's filter) but no window of the attacker was scored, because it
    /// was taken for a router, evicted, or forgotten as unconfirmed. Must be 0.
    pub attack_windows_lost: usize,
    pub benign_device_hours: f64,
    /// Victims with a window after learning (named by the ground truth, or stations the
    /// attack packets were addressed to).
    pub victims: usize,
    /// With `--finetune`: what the model was fine-tuned on (none when the capture has too
    /// little benign prefix to train on; the shipped model is used then).
    pub finetuned: Option<Finetuned>,
    pub model: Scores,
    /// The same detector with the LSTM+RNN's prediction replaced by each device's
    /// learning-period mean ([`crate::detect::Predictor::LearningMean`]): what the model adds.
    pub ablation: Scores,
    pub baseline: Scores,
}

/// A fine-tuning on a capture's learning period.
#[derive(Clone, Debug, Serialize)]
pub struct Finetuned {
    pub windows: usize,
    pub devices: usize,
    pub epochs: u32,
    pub validation_loss: f32,
    pub seconds: f64,
}

/// Fine-tunes `model` on the windows of `capture` that start before `until_ns` (the learning
/// period), as `iotad train --base` on a Pi's own windows does; the result steps with the
/// same kernel as `model`. `Ok(None)` when there is too little to train on.
fn finetune(
    model: &Model,
    capture: &Path,
    until_ns: u64,
    cfg: &PipelineConfig,
) -> Result<Option<(Model, Finetuned)>, String> {
    let started = std::time::Instant::now();
    let mut seqs = crate::model::train::Sequences::default();
    seqs.push_capture(
        crate::capture::display_name(capture),
        crate::engine::device_windows(capture, cfg, until_ns)?,
    );
    let tc = crate::model::train::TrainConfig {
        max_epochs: 30,
        patience: 3,
        lr: 1e-3,
        ..Default::default()
    };
    let tuned = match crate::model::train::train(&seqs, &tc, Some(model)) {
        Ok(m) => m,
        Err(e) if e.starts_with("not enough data") => return Ok(None),
        Err(e) => return Err(e),
    };
    let info = Finetuned {
        windows: seqs.windows(),
        devices: seqs.devices.len(),
        epochs: tuned.meta.training.epochs,
        validation_loss: tuned.meta.training.validation_loss,
        seconds: started.elapsed().as_secs_f64(),
    };
    let tuned = tuned.with_kernel(match model.kernel {
        crate::model::Kernel::F32(_) => "f32",
        _ => "q8_0",
    })?;
    Ok(Some((tuned, info)))
}

#[derive(Default)]
struct Tally {
    pos: Vec<f32>,
    neg: Vec<f32>,
    above: usize,
    first_alert: BTreeMap<usize, (u64, Vec<String>)>,
    false_alerts: usize,
    targets: BTreeSet<Mac>,
    naming: BTreeSet<Mac>,
    not_as_target: usize,
}

impl Tally {
    fn finish(self, attacks: &[Attack], benign_hours: f64, victims: &BTreeSet<Mac>) -> Scores {
        let delays: Vec<f64> = self
            .first_alert
            .iter()
            .map(|(&i, (t, _))| t.saturating_sub(attacks[i].start_ns) as f64 / 1e9)
            .collect();
        Scores {
            auc: auc(&self.pos, &self.neg),
            attacks_alerted: self.first_alert.len(),
            attacks: attacks.len(),
            delay_s: (!delays.is_empty()).then(|| delays.iter().sum::<f64>() / delays.len() as f64),
            attack_windows_above: if self.pos.is_empty() {
                0.0
            } else {
                self.above as f64 / self.pos.len() as f64
            },
            false_alerts: self.false_alerts,
            false_alerts_per_device_hour: if benign_hours > 0.0 {
                self.false_alerts as f64 / benign_hours
            } else {
                0.0
            },
            first_alert_explanation: self
                .first_alert
                .values()
                .next()
                .map(|(_, f)| f.clone())
                .unwrap_or_default(),
            victims_missed: victims
                .difference(&self.targets)
                .map(|m| m.to_string())
                .collect(),
            victims_alerted_as_targets: self.targets.len(),
            targets_naming_the_attacker: self.naming.len(),
            victim_alerts_not_as_target: self.not_as_target,
        }
    }
}

/// How the detector learns on `c`, whose first packet is at `first_ts` (ns): a capture
/// without attacks learns on its first day, others on the benign prefix before the first
/// attack (at most a day), or on `learning_windows` when given. A capture
/// that opens with an attack, too soon to learn anything from, arrives on a network that has
/// learned: its devices are all new, judged on the population threshold.
pub fn detect_config(c: &Labelled, first_ts: u64, learning_windows: Option<u32>) -> DetectConfig {
    let window_ns = PipelineConfig::default().window_ns();
    let defaults = DetectConfig::default();
    let day = (86_400_000_000_000 / window_ns) as u32;
    let prefix = c.attacks.iter().map(|a| a.start_ns).min().map(|a| {
        (a / window_ns)
            .saturating_sub(first_ts / window_ns)
            .min(u64::from(u32::MAX)) as u32
    });
    match (prefix, learning_windows) {
        (None, l) => DetectConfig {
            learning_windows: l.unwrap_or(day),
            ..defaults
        },
        (Some(p), None) if p < 2 * MIN_PHASE => DetectConfig {
            network_learned: true,
            ..defaults
        },
        (Some(p), l) => DetectConfig {
            learning_windows: l.unwrap_or(day).min(p),
            ..defaults
        },
    }
}

/// Evaluates `model` (and the baseline) on one labelled capture.
pub fn evaluate(
    c: &Labelled,
    model: &Model,
    learning_windows: Option<u32>,
    fine_tune: bool,
) -> Result<CaptureReport, String> {
    let cfg = PipelineConfig::default();
    let window_ns = cfg.window_ns();
    let first_ts = first_timestamp(&c.file)?;
    let dcfg = detect_config(c, first_ts, learning_windows);
    let learning = dcfg.warmup();
    let mut finetuned = None;
    let mut model = model;
    let tuned;
    if fine_tune {
        let until = (first_ts / window_ns + u64::from(learning)) * window_ns;
        if let Some((m, info)) = finetune(model, &c.file, until, &cfg)? {
            tuned = m;
            model = &tuned;
            finetuned = Some(info);
        }
    }
    let mut ablation = Detector::new(
        model.clone(),
        DetectConfig {
            predictor: Predictor::LearningMean,
            ..dcfg.clone()
        },
        crate::device::MAX_DEVICES,
        window_ns,
    );
    let det = Detector::new(model.clone(), dcfg, crate::device::MAX_DEVICES, window_ns);
    let mut engine = Engine::new(&cfg, crate::capture::LinkType::Ethernet, Some(det))?;
    let mut base = Baseline::new(learning, crate::device::MAX_DEVICES, window_ns);
    base.begin(first_ts);
    let (mut tm, mut ta, mut tb) = (Tally::default(), Tally::default(), Tally::default());
    let mut benign_windows = 0u64;
    let mut victims = BTreeSet::new();
    let mut not_attackers = BTreeSet::new();
    let mut any_victims = BTreeSet::new();
    // the ablation's events (the model's wait in the engine); its detector is not the
    // engine's, so it settles (finds attackers' targets) when each window of the network
    // begins, as the engine does for the model
    let mut ablation_events = Vec::new();
    let mut ablation_window = None;
    let first_window = first_ts / window_ns;
    let truth = attack_packets(c, window_ns)?;
    let role = |mac: &Mac, ips: &[IpAddr]| -> (Option<usize>, bool) {
        let attacker = c.attacks.iter().position(|a| a.by(mac, ips));
        let victim =
            c.attacks.iter().any(|a| {
                a.victim_macs.contains(mac) || a.victim_ips.iter().any(|ip| ips.contains(ip))
            }) || (attacker.is_none() && truth.victim_macs.contains(mac));
        (attacker, victim)
    };
    let positives = &truth.windows;
    // per attack, the attack windows scored as the attacker's
    let mut scored: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); c.attacks.len()];
    let on = &mut |w: Scored<'_>| {
        let (dev, start, f, slot) = (w.device, w.start_ns, w.features, w.slot as usize);
        let om = w.outcome.expect("the engine has a detector");
        let ob = base.on_window(slot, dev.mac, start, f);
        if ablation_window.is_some_and(|w| w != start) {
            ablation.settle(&mut ablation_events);
        }
        ablation_window = Some(start);
        let oa = ablation.on_window_with(slot, dev, start, f, w.peers);
        let ips: Vec<IpAddr> = dev
            .identity
            .ipv4
            .iter()
            .map(|a| IpAddr::V4(*a))
            .chain(dev.identity.ipv6.iter().map(|a| IpAddr::V6(*a)))
            .collect();
        let (attacker, victim) = role(&dev.mac, &ips);
        for (i, a) in c.attacks.iter().enumerate() {
            if attacker.is_some() && a.by(&dev.mac, &ips) {
                scored[i].insert(start / window_ns);
            }
        }
        let after_learning = start / window_ns >= first_window + u64::from(learning);
        let opened = |o: &crate::detect::Outcome| {
            o.events.iter().find(|e| e.opens()).map(|e| {
                e.explanation
                    .iter()
                    .map(|x| x.feature.to_string())
                    .collect()
            })
        };
        if victim && attacker.is_none() && after_learning {
            victims.insert(dev.mac);
        }
        if attacker.is_none() {
            not_attackers.insert(dev.mac);
        }
        if victim {
            any_victims.insert(dev.mac);
        }
        ablation_events.extend(oa.events.iter().cloned());
        // (the detectors' false alerts are counted from their events, below: a target found
        // once every window of a period was scored is in no window's outcome)
        for (t, score, alerting, open, own_false_alerts) in [
            (&mut tm, om.score, om.alerting, opened(om), false),
            (&mut ta, oa.score, oa.alerting, opened(&oa), false),
            (
                &mut tb,
                ob.score,
                ob.alerting,
                ob.opened
                    .then(|| ob.feature.iter().map(|f| f.to_string()).collect()),
                true,
            ),
        ] {
            match attacker {
                Some(_) => {
                    for (i, a) in c.attacks.iter().enumerate() {
                        let in_attack = start + window_ns > a.start_ns && start <= a.end_ns;
                        let is_attacker = a.by(&dev.mac, &ips);
                        let holds_attack = match &positives[i] {
                            Some(set) => set.contains(&(start / window_ns)),
                            None => f[Feat::PktsOut] > 0.0,
                        };
                        if in_attack && is_attacker && holds_attack {
                            t.pos.push(score);
                            if alerting {
                                t.above += 1;
                            }
                        }
                        if is_attacker
                            && alerting
                            && start + window_ns > a.start_ns
                            && start <= a.end_ns + window_ns
                        {
                            t.first_alert.entry(i).or_insert((
                                start.max(a.start_ns),
                                open.clone().unwrap_or_default(),
                            ));
                        }
                    }
                }
                None if victim => {}
                None => {
                    if after_learning {
                        t.neg.push(score);
                        if open.is_some() && own_false_alerts {
                            t.false_alerts += 1;
                        }
                    }
                }
            }
        }
        if attacker.is_none() && !victim && after_learning {
            benign_windows += 1;
        }
    };
    let damage = engine::run_file(&mut engine, &c.file, None, on).map_err(|e| e.to_string())?;
    if let Some(d) = damage {
        return Err(d.to_string());
    }
    ablation.settle(&mut ablation_events);
    // every incident opened after learning: on a device that is neither attacker nor
    // victim a false alert; on a victim, as a target (naming an attacker or not) or
    // otherwise
    let learned_s = (first_window + u64::from(learning)) * window_ns / 1_000_000_000;
    for (t, events) in [
        (&mut tm, engine.drain_events().collect::<Vec<_>>()),
        (&mut ta, ablation_events),
    ] {
        for e in events.iter().filter(|e| e.opens()) {
            let Some(mac) = Mac::parse(&e.device.mac) else {
                continue;
            };
            if e.window_start_epoch >= learned_s
                && not_attackers.contains(&mac)
                && !any_victims.contains(&mac)
            {
                t.false_alerts += 1;
                continue;
            }
            if !victims.contains(&mac)
                || !not_attackers.contains(&mac)
                || e.window_start_epoch < learned_s
            {
                continue;
            }
            if e.role == Some(crate::detect::Role::Target) {
                t.targets.insert(mac);
                let named = e
                    .counterpart
                    .as_ref()
                    .and_then(|c| c.ip.parse::<IpAddr>().ok());
                if named.is_some_and(|ip| c.attacks.iter().any(|a| a.attacker_ips.contains(&ip))) {
                    t.naming.insert(mac);
                }
            } else if e.kind == crate::detect::EventKind::Anomaly {
                t.not_as_target += 1;
            }
        }
    }
    let hours = benign_windows as f64 * window_ns as f64 / 1e9 / 3600.0;
    let attack_windows_lost = positives
        .iter()
        .zip(&scored)
        .filter_map(|(p, s)| p.as_ref().map(|p| p.difference(s).count()))
        .sum();
    Ok(CaptureReport {
        file: c
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        kind: c.kind.clone(),
        attack: c
            .attacks
            .iter()
            .map(|a| a.kind.as_str())
            .collect::<Vec<_>>()
            .join("+"),
        learning_windows: learning,
        positive_windows: tm.pos.len(),
        negative_windows: tm.neg.len(),
        attack_windows_lost,
        benign_device_hours: hours,
        victims: victims.len(),
        finetuned,
        model: tm.finish(&c.attacks, hours, &victims),
        ablation: ta.finish(&c.attacks, hours, &victims),
        baseline: tb.finish(&c.attacks, hours, &victims),
    })
}

/// What the ground truth's filters say about a capture's attacks.
#[derive(Default)]
struct AttackPackets {
    /// Per attack, the windows (start / window length) holding packets that match its filter
    /// and that the attacker sent (by its MAC, or from one of its IPs), within its time range;
    /// `None` without a filter.
    windows: Vec<Option<BTreeSet<u64>>>,
    /// Stations the attack's packets were addressed to (unicast MACs): those of the packets
    /// the attacker sent that match the filter (victims, or the victim's way out), and those
    /// of packets that match it and are addressed to a victim's IP (also without a filter,
    /// from the attacker's packets of the time range). A victim the manifest names only by
    /// IP is known by its MAC so, even when it never sends and no IP is learned for it.
    victim_macs: BTreeSet<Mac>,
}

fn attack_packets(c: &Labelled, window_ns: u64) -> Result<AttackPackets, String> {
    let mut sets: Vec<Option<BTreeSet<u64>>> = c
        .attacks
        .iter()
        .map(|a| a.filter.as_ref().map(|_| BTreeSet::new()))
        .collect();
    let mut victim_macs = BTreeSet::new();
    let nothing_to_learn = c
        .attacks
        .iter()
        .all(|a| a.filter.is_none() && a.victim_ips.is_empty() && a.victim_nets.is_empty());
    if nothing_to_learn {
        return Ok(AttackPackets {
            windows: sets,
            victim_macs,
        });
    }
    let mut src = crate::capture::Source::open_file(&c.file, None).map_err(|e| e.to_string())?;
    let link = src.link();
    while let Some(p) = src.next().map_err(|e| e.to_string())? {
        let Ok(s) = crate::wire::parse(link, &p) else {
            continue;
        };
        let (src_ip, dst_ip) = match s.net {
            crate::wire::Net::Ip { src, dst, .. } => (Some(src), Some(dst)),
            crate::wire::Net::Arp(a) => (None, Some(crate::wire::v4(a.target_ip))),
            crate::wire::Net::Other(_) => (None, None),
        };
        // the address a packet is from, an ARP packet's sender's included
        let from_ip = match s.net {
            crate::wire::Net::Arp(a) => Some(crate::wire::v4(a.sender_ip)),
            _ => src_ip,
        };
        for (a, set) in c.attacks.iter().zip(sets.iter_mut()) {
            if !a.during(s.ts_ns) {
                continue;
            }
            let sent = a.by(&s.src_mac, src_ip.as_slice());
            let to_victim = dst_ip.is_some_and(|ip| a.victim_ips.contains(&ip));
            let learn = match (&a.filter, set) {
                (Some(f), Some(set)) => {
                    let matched = f.matches(&s);
                    if matched && sent {
                        set.insert(s.ts_ns / window_ns);
                    }
                    matched && (sent || to_victim)
                }
                _ => sent && to_victim,
            };
            if learn && s.dst_mac.is_unicast() {
                victim_macs.insert(s.dst_mac);
            }
            // a station of a victim network that answered the attacker (a sweep found it):
            // an ARP reply, a reset or SYN-ACK, an ICMP message, sent to the attacker's MAC
            // (its IP when the manifest gives no MAC)
            let to_attacker = match a.attacker_mac {
                Some(m) => s.dst_mac == m,
                None => s.dst_mac.is_unicast() && a.by(&s.dst_mac, dst_ip.as_slice()),
            };
            let answer = match (s.net, s.transport) {
                (crate::wire::Net::Arp(r), _) => r.op == crate::wire::arp::REPLY,
                (_, crate::wire::Transport::Tcp(t)) => t.is_rst() || t.is_syn_ack(),
                (_, crate::wire::Transport::Icmp(_)) => true,
                _ => false,
            };
            let answered = to_attacker
                && answer
                && from_ip.is_some_and(|ip| a.in_victim_net(&ip))
                && !a.by(&s.src_mac, from_ip.as_slice());
            if answered && s.src_mac.is_unicast() {
                victim_macs.insert(s.src_mac);
            }
        }
    }
    Ok(AttackPackets {
        windows: sets,
        victim_macs,
    })
}

/// The timestamp (ns) of the first packet of a capture.
pub fn first_timestamp(path: &Path) -> Result<u64, String> {
    let mut s = crate::capture::Source::open_file(path, None).map_err(|e| e.to_string())?;
    Ok(s.next()
        .map_err(|e| e.to_string())?
        .map(|p| p.ts_ns)
        .unwrap_or(0))
}

/// A table for people: the model, the ablation and the baseline side by side.
pub fn table(reports: &[CaptureReport]) -> String {
    let mut s = format!(
        "{:<46} {:<22} {:>6} {:>6} | {:>6} {:>5} {:>7} {:>6} {:>8} {:<22} | {:>6} {:>5} {:>7} {:>6} {:>8} | {:>6} {:>5} {:>7} {:>6} {:>8}\n",
        "capture", "attack", "pos", "neg", "AUC", "alert", "delay s", "above", "FA/dev-h", "first alert names",
        "AUC", "alert", "delay s", "above", "FA/dev-h", "AUC", "alert", "delay s", "above", "FA/dev-h"
    );
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    for r in reports {
        let row = |x: &Scores| {
            format!(
                "{:>6} {:>5} {:>7} {:>6} {:>8}",
                f(x.auc, 3),
                format!("{}/{}", x.attacks_alerted, x.attacks),
                f(x.delay_s, 0),
                above(x),
                format!("{:.3}", x.false_alerts_per_device_hour)
            )
        };
        s += &format!(
            "{:<46} {:<22} {:>6} {:>6} | {} {:<22} | {} | {}\n",
            r.file.chars().take(46).collect::<String>(),
            r.attack.chars().take(22).collect::<String>(),
            r.positive_windows,
            r.negative_windows,
            row(&r.model),
            r.model
                .first_alert_explanation
                .first()
                .map_or("-", String::as_str),
            row(&r.ablation),
            row(&r.baseline)
        );
    }
    s += "columns: model (LSTM+RNN) | ablation (the same detector, each device's learning-period mean for the LSTM+RNN's prediction) | baseline (per-device z-score);\n";
    s += "pos/neg = attack / benign windows; alert = attacks alerted; above = attack windows alerted on (in an open incident); FA/dev-h = false alerts per benign device-hour\n";
    s += &summary(reports);
    for r in reports.iter().filter(|r| r.finetuned.is_some()) {
        let t = r.finetuned.as_ref().expect("filtered");
        s += &format!(
            "fine-tuned for {}: {} windows of {} devices, {} epochs, validation loss {:.4}, {:.0} s\n",
            r.file, t.windows, t.devices, t.epochs, t.validation_loss, t.seconds
        );
    }
    s
}

/// The share of attack windows alerted on, as a percentage ("-" without attacks).
fn above(x: &Scores) -> String {
    if x.attacks > 0 {
        format!("{:.0}%", x.attack_windows_above * 100.0)
    } else {
        "-".into()
    }
}

/// The figures the targets are about, over all reports, for each column: attacks alerted,
/// the lowest scenario window AUC and the most false alerts per benign device-day.
pub fn summary(reports: &[CaptureReport]) -> String {
    let mut s = String::new();
    for (name, pick) in [
        (
            "model",
            (|r: &CaptureReport| &r.model) as fn(&CaptureReport) -> &Scores,
        ),
        ("ablation", |r: &CaptureReport| &r.ablation),
        ("baseline", |r: &CaptureReport| &r.baseline),
    ] {
        let alerted: usize = reports.iter().map(|r| pick(r).attacks_alerted).sum();
        let attacks: usize = reports.iter().map(|r| pick(r).attacks).sum();
        let min_auc = reports
            .iter()
            .filter(|r| r.kind == "scenario")
            .filter_map(|r| pick(r).auc)
            .reduce(f64::min);
        let max_fa = reports
            .iter()
            .filter(|r| r.benign_device_hours > 0.0)
            .map(|r| pick(r).false_alerts_per_device_hour * 24.0)
            .reduce(f64::max);
        s += &format!(
            "{name}: {alerted}/{attacks} attacks alerted; lowest scenario AUC {}; most false alerts per benign device-day {}",
            min_auc.map_or("-".into(), |v| format!("{v:.3}")),
            max_fa.map_or("-".into(), |v| format!("{v:.2}")),
        );
        if name != "baseline" {
            let victims: usize = reports.iter().map(|r| r.victims).sum();
            let sum = |f: fn(&Scores) -> usize| reports.iter().map(|r| f(pick(r))).sum::<usize>();
            s += &format!(
                "; victims alerted as targets {}/{victims} ({} naming the attacker), alerted otherwise {}",
                sum(|x| x.victims_alerted_as_targets),
                sum(|x| x.targets_naming_the_attacker),
                sum(|x| x.victim_alerts_not_as_target),
            );
        }
        s += "\n";
    }
    s
}

/// The table as Markdown for the README, headed by what it was made with: `model` (the
/// model's name), `date` (UTC) and the number of captures.
pub fn markdown(reports: &[CaptureReport], model: &str, date: &str) -> String {
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    let mut s = format!(
        "{} captures, model {model}, {date} (`iotad eval --markdown`; `make readme-eval` puts it here).\n\n",
        reports.len()
    );
    s += "| capture | attack | pos | neg | model AUC | alerted | delay s | above | FA/dev-day | first alert names | ablation AUC | alerted | FA/dev-day | baseline AUC | alerted | FA/dev-day |\n";
    s += "|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|\n";
    for r in reports {
        let short = |x: &Scores| {
            format!(
                "{} | {}/{} | {:.2}",
                f(x.auc, 3),
                x.attacks_alerted,
                x.attacks,
                x.false_alerts_per_device_hour * 24.0
            )
        };
        let m = &r.model;
        s += &format!(
            "| {} | {} | {} | {} | {} | {}/{} | {} | {} | {:.2} | {} | {} | {} |\n",
            r.file,
            if r.attack.is_empty() { "-" } else { &r.attack },
            r.positive_windows,
            r.negative_windows,
            f(m.auc, 3),
            m.attacks_alerted,
            m.attacks,
            f(m.delay_s, 0),
            above(m),
            m.false_alerts_per_device_hour * 24.0,
            m.first_alert_explanation
                .first()
                .map_or("-", String::as_str),
            short(&r.ablation),
            short(&r.baseline)
        );
    }
    s += "\nmodel: the LSTM+RNN; ablation: the same detector with each device's learning-period mean for the LSTM+RNN's prediction; baseline: a per-device z-score. pos/neg: attack / benign windows; above: attack windows alerted on; FA/dev-day: false alerts per benign device-day.\n\n";
    for line in summary(reports).lines() {
        s += &format!("- {line}\n");
    }
    s
}

/// How closely two models agree on one capture: the Pearson correlation of their window
/// scores, the largest difference, and whether they open the same incidents.
#[derive(Clone, Debug, Serialize)]
pub struct Agreement {
    pub windows: usize,
    pub pearson_r: f64,
    pub max_abs_diff: f32,
    pub alerts_a: usize,
    pub alerts_b: usize,
    pub same_alerts: bool,
}

/// Runs `a` and `b` side by side over `capture`, both detectors set up as `dcfg`.
pub fn agreement(
    a: &Model,
    b: &Model,
    capture: &Path,
    dcfg: DetectConfig,
) -> Result<Agreement, String> {
    let cfg = PipelineConfig::default();
    let da = Detector::new(
        a.clone(),
        dcfg.clone(),
        crate::device::MAX_DEVICES,
        cfg.window_ns(),
    );
    let mut engine = Engine::new(&cfg, crate::capture::LinkType::Ethernet, Some(da))?;
    let mut db = Detector::new(b.clone(), dcfg, crate::device::MAX_DEVICES, cfg.window_ns());
    let (mut xa, mut xb) = (Vec::new(), Vec::new());
    let (mut opens_a, mut opens_b) = (Vec::new(), Vec::new());
    let opens = |o: &crate::detect::Outcome, v: &mut Vec<(String, u64)>| {
        for e in o.events.iter().filter(|e| e.opens()) {
            v.push((e.device.mac.clone(), e.window_start_epoch));
        }
    };
    let on = &mut |w: Scored<'_>| {
        let oa = w.outcome.expect("the engine has a detector");
        let ob = db.on_window(w.slot as usize, w.device, w.start_ns, w.features);
        xa.push(f64::from(oa.score));
        xb.push(f64::from(ob.score));
        opens(oa, &mut opens_a);
        opens(&ob, &mut opens_b);
    };
    let damage = engine::run_file(&mut engine, capture, None, on).map_err(|e| e.to_string())?;
    if let Some(d) = damage {
        return Err(d.to_string());
    }
    let n = xa.len() as f64;
    let (ma, mb) = (xa.iter().sum::<f64>() / n, xb.iter().sum::<f64>() / n);
    let cov: f64 = xa.iter().zip(&xb).map(|(a, b)| (a - ma) * (b - mb)).sum();
    let va: f64 = xa.iter().map(|a| (a - ma).powi(2)).sum();
    let vb: f64 = xb.iter().map(|b| (b - mb).powi(2)).sum();
    let max_abs_diff = xa
        .iter()
        .zip(&xb)
        .map(|(a, b)| (a - b).abs() as f32)
        .fold(0.0, f32::max);
    Ok(Agreement {
        windows: xa.len(),
        pearson_r: cov / (va.sqrt() * vb.sqrt()).max(1e-300),
        max_abs_diff,
        alerts_a: opens_a.len(),
        alerts_b: opens_b.len(),
        same_alerts: opens_a == opens_b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::frames;
    use std::net::Ipv4Addr;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("iotad-eval-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_the_manifests_address_texts() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(
            station_ips("10.0.0.1, 10.0.0.2, 10.0.0.254").unwrap(),
            [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.254")]
        );
        assert_eq!(
            station_ips("94.23.199.191, 116.211.167.195 (mining pools, port 3333)").unwrap(),
            [ip("94.23.199.191"), ip("116.211.167.195")]
        );
        for none in [
            "spoofed (thousands of sources)",
            "SNMP reflectors (thousands)",
            "0.0.0.0",
            "255.255.255.255 (any DHCP server on the LAN)",
            "192.168.1.0/24",
            "224.0.0.251",
        ] {
            assert!(station_ips(none).unwrap().is_empty(), "{none}");
        }
        assert!(station_ips("10.0.0.1 10.0.0.2").is_err());
        assert!(station_ips("10.0.0.1o").is_err());
        assert_eq!(
            station_macs("b0:7f:b9:4e:f0:9c, dc:f5:05:75:0b:cd").unwrap(),
            [
                Mac::parse("b0:7f:b9:4e:f0:9c").unwrap(),
                Mac::parse("dc:f5:05:75:0b:cd").unwrap()
            ]
        );
        assert!(station_macs("ff:ff:ff:ff:ff:ff").unwrap().is_empty());
        assert!(station_macs("b0:7f:b9:4e:f0").is_err());
        // the f64 of these seconds is 1574110025.296435968
        assert_eq!(epoch_ns(1574110025.296436), 1_574_110_025_296_436_000);
        assert_eq!(epoch_ns(1615221600.0), 1_615_221_600_000_000_000);
    }

    const LABEL: &str = r#"{"kind": "port-scan-tcp-ack",
        "attacker": {"mac": "02:00:00:00:00:01", "ip": "10.0.0.9", "note": "n"},
        "victim": {"ip": "10.0.0.1"},
        "filter": "FILTER",
        "time_range": {"start": "s", "end": "e", "start_epoch": 100.0, "end_epoch": 200.5},
        "packets": 3, "tool": "t", "check": "c",
        "evidence": {"probe_filter": "tcp", "probe_packets": 3, "distinct_dst_ip": 1}}"#;

    fn manifest_with(dir: &Path, label: &str) -> PathBuf {
        let path = dir.join("MANIFEST.json");
        write(
            &path,
            &format!(
                r#"{{"set": "test", "captures": [
                    {{"file": "benign.pcap", "type": "benign", "ground_truth": "benign",
                      "notes": ["n"], "packets": 1}},
                    {{"file": "attack.pcap", "type": "attack", "ground_truth": [{label}]}}]}}"#
            ),
        );
        path
    }

    #[test]
    fn a_misspelt_key_or_a_filter_that_does_not_parse_is_an_error() {
        let dir = scratch("strict");
        let good = LABEL.replace(
            "FILTER",
            "ip.src==10.0.0.9 && ip.dst in {10.0.0.1, 10.0.0.2}",
        );
        let m = read_manifest(&manifest_with(&dir, &good), false).unwrap();
        assert_eq!(m.len(), 2);
        assert!(m[0].attacks.is_empty());
        assert_eq!(m[1].file, dir.join("attack.pcap"));
        let a = &m[1].attacks[0];
        assert_eq!(a.attacker_mac, Mac::parse("02:00:00:00:00:01"));
        assert_eq!(a.victim_ips, [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]);
        assert_eq!((a.start_ns, a.end_ns), (100_000_000_000, 200_500_000_000));
        assert!(a.filter.is_some());
        for (key, typo) in [
            ("\"victim\"", "\"victm\""),
            ("\"probe_filter\"", "\"probe_filtre\""),
            ("\"start_epoch\"", "\"start_epok\""),
            ("\"note\"", "\"notes\""),
        ] {
            let bad = good.replacen(key, typo, 1);
            let e = read_manifest(&manifest_with(&dir, &bad), false).unwrap_err();
            assert!(
                e.contains(&format!("unknown field `{}`", typo.trim_matches('"'))),
                "{e}"
            );
        }
        let e = read_manifest(
            &manifest_with(&dir, &good.replace("\"kind\"", "\"knd\"")),
            false,
        )
        .unwrap_err();
        assert!(e.contains("knd"), "{e}");
        let unparsed = LABEL.replace("FILTER", "ip.src==10.0.0.9 && http.request");
        let path = manifest_with(&dir, &unparsed);
        let e = read_manifest(&path, false).unwrap_err();
        assert!(
            e.contains("attack.pcap") && e.contains("\"http.request\""),
            "{e}"
        );
        let m = read_manifest(&path, true).unwrap();
        assert!(m[1].attacks[0].filter.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_shared_manifest_loads_with_every_filter() {
        let data = std::env::var_os("IOTAD_SHARED_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
        let path = data.join("MANIFEST.json");
        if !path.exists() {
            eprintln!(
                "\n*** SKIPPED the_shared_manifest_loads_with_every_filter: no {} ***\n",
                path.display()
            );
            return;
        }
        let m = read_manifest(&path, false).unwrap();
        assert!(m.iter().any(|c| !c.attacks.is_empty()));
        for c in &m {
            for a in &c.attacks {
                assert!(a.filter.is_some(), "{}: {}", c.file.display(), a.kind);
                assert!(a.attacker_mac.is_some() || !a.attacker_ips.is_empty());
            }
        }
    }

    /// Writes `frames` (nanosecond times, bytes) as a pcap file.
    fn pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
        let dead =
            pcap::Capture::dead_with_precision(pcap::Linktype::ETHERNET, pcap::Precision::Nano)
                .unwrap();
        let mut file = dead.savefile(path).unwrap();
        for (ts, data) in frames {
            let header = pcap::PacketHeader {
                ts: libc::timeval {
                    tv_sec: (ts / 1_000_000_000) as _,
                    tv_usec: (ts % 1_000_000_000) as _,
                },
                caplen: data.len() as u32,
                len: data.len() as u32,
            };
            file.write(&pcap::Packet::new(&header, data));
        }
        file.flush().unwrap();
    }

    #[test]
    fn attackers_without_an_ip_and_victims_that_only_receive_are_recognised() {
        let dir = scratch("roles");
        let mac = |s: &str| Mac::parse(s).unwrap();
        let (scanner, target, gateway, dhcp) = (
            mac("02:00:00:00:00:01"),
            mac("02:00:00:00:00:02"),
            mac("02:00:00:00:00:03"),
            mac("de:ad:be:ef:aa:bb"),
        );
        let ip = Ipv4Addr::new;
        let (scanner_ip, target_ip) = (ip(10, 0, 0, 9), ip(10, 0, 0, 1));
        let ack = crate::wire::tcp::flags::ACK;
        let s = 1_000_000_000;
        let t0 = 1_615_221_600 * s;
        let frames = [
            // the scanner's ACK probes to a target that never answers
            (
                t0,
                frames::tcp(
                    scanner,
                    target,
                    scanner_ip,
                    target_ip,
                    40000,
                    80,
                    ack,
                    1,
                    &[],
                ),
            ),
            (
                t0 + 15 * s,
                frames::tcp(
                    scanner,
                    target,
                    scanner_ip,
                    target_ip,
                    40000,
                    81,
                    ack,
                    1,
                    &[],
                ),
            ),
            // the scanner's own traffic through the gateway: not the attack
            (
                t0 + 16 * s,
                frames::udp(
                    scanner,
                    gateway,
                    scanner_ip,
                    ip(8, 8, 8, 8),
                    5000,
                    53,
                    &[0; 12],
                ),
            ),
            // a DHCP flood from 0.0.0.0, its last request a nanosecond-stamped 200 ns after
            // the microsecond the manifest gives
            (
                t0 + 30 * s,
                frames::udp(
                    dhcp,
                    Mac::BROADCAST,
                    ip(0, 0, 0, 0),
                    ip(255, 255, 255, 255),
                    68,
                    67,
                    &[],
                ),
            ),
            (
                t0 + 41 * s + 200,
                frames::udp(
                    dhcp,
                    Mac::BROADCAST,
                    ip(0, 0, 0, 0),
                    ip(255, 255, 255, 255),
                    68,
                    67,
                    &[],
                ),
            ),
            // a benign client of the same DHCP server
            (
                t0 + 41 * s,
                frames::udp(
                    gateway,
                    Mac::BROADCAST,
                    ip(0, 0, 0, 0),
                    ip(255, 255, 255, 255),
                    68,
                    67,
                    &[],
                ),
            ),
        ]
        .map(|(t, f)| (t, f.bytes));
        pcap(&dir.join("attack.pcap"), &frames);
        let scan = r#"{"kind": "port-scan-tcp-ack",
            "attacker": {"mac": "02:00:00:00:00:01", "ip": "10.0.0.9"},
            "victim": {"ip": "10.0.0.1, 10.0.0.2 (never seen)"},
            "filter": "ip.src==10.0.0.9 && ip.dst in {10.0.0.1,10.0.0.2} && tcp.flags.ack==1",
            "time_range": {"start_epoch": 1615221600.0, "end_epoch": 1615221615.0}}"#;
        let flood = r#"{"kind": "dhcp-flood",
            "attacker": {"mac": "de:ad:be:ef:aa:bb", "ip": "0.0.0.0"},
            "victim": {"mac": "ff:ff:ff:ff:ff:ff", "ip": "255.255.255.255 (any DHCP server)"},
            "filter": "eth.src==de:ad:be:ef:aa:bb && udp.dstport==67",
            "time_range": {"start_epoch": 1615221630.0, "end_epoch": 1615221641.0}}"#;
        let path = manifest_with(&dir, &format!("{scan}, {flood}"));
        let c = &read_manifest(&path, false).unwrap()[1];
        assert!(
            c.attacks[1].attacker_ips.is_empty(),
            "0.0.0.0 is nobody's address"
        );
        let window = 10 * s;
        let truth = attack_packets(c, window).unwrap();
        let w = |t: u64| t / window;
        assert_eq!(
            truth.windows,
            [
                Some(BTreeSet::from([w(t0), w(t0 + 15 * s)])),
                Some(BTreeSet::from([w(t0 + 30 * s), w(t0 + 41 * s)])),
            ]
        );
        // the target only receives: known by the MAC its probes were sent to
        assert_eq!(truth.victim_macs, BTreeSet::from([target]));
        // without a filter (--lenient), a victim named by IP is still found by its MAC
        let mut lenient = c.clone();
        lenient.attacks.iter_mut().for_each(|a| a.filter = None);
        let truth = attack_packets(&lenient, window).unwrap();
        assert_eq!(truth.windows, [None, None]);
        assert_eq!(truth.victim_macs, BTreeSet::from([target]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A sweep's victim is a network: its victims are the stations of it that answered the
    /// sweeper (a reply to its ARP request), not one outside it that answered, nor one of it
    /// that asked for the sweeper's address (a broadcast, not an answer).
    #[test]
    fn a_sweeps_victims_are_the_stations_of_its_network_that_answered() {
        let dir = scratch("sweep");
        let host = |m: &str, ip: [u8; 4]| frames::Host {
            mac: Mac::parse(m).unwrap(),
            ip: Ipv4Addr::from(ip),
        };
        let sweeper = host("02:00:00:00:00:01", [192, 168, 1, 9]);
        let lamp = host("02:00:00:00:00:02", [192, 168, 1, 20]);
        let guest = host("02:00:00:00:00:03", [10, 9, 9, 9]);
        let plug = host("02:00:00:00:00:04", [192, 168, 1, 30]);
        let s = 1_000_000_000;
        let t0 = 1_615_221_600 * s;
        let (request, reply) = (crate::wire::arp::REQUEST, crate::wire::arp::REPLY);
        let frames = [
            (t0, frames::arp(request, sweeper, Mac::BROADCAST, lamp.ip)),
            (t0 + 1, frames::arp(reply, lamp, sweeper.mac, sweeper.ip)),
            (t0 + 2, frames::arp(reply, guest, sweeper.mac, sweeper.ip)),
            // asking for the sweeper's address is no answer to it
            (
                t0 + 3,
                frames::arp(request, plug, Mac::BROADCAST, sweeper.ip),
            ),
        ]
        .map(|(t, f)| (t, f.bytes));
        pcap(&dir.join("attack.pcap"), &frames);
        let sweep = r#"{"kind": "host-discovery-arp-sweep",
            "attacker": {"mac": "02:00:00:00:00:01", "ip": "192.168.1.9"},
            "victim": {"ip": "192.168.1.0/24"},
            "filter": "arp && eth.src==02:00:00:00:00:01",
            "time_range": {"start_epoch": 1615221600.0, "end_epoch": 1615221601.0}}"#;
        let path = manifest_with(&dir, sweep);
        let c = &read_manifest(&path, false).unwrap()[1];
        assert_eq!(
            c.attacks[0].victim_nets,
            [(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 0)), 24)]
        );
        let truth = attack_packets(c, 10 * s).unwrap();
        assert_eq!(truth.victim_macs, BTreeSet::from([lamp.mac]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
