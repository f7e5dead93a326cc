//! What `iotad replay` tells people about one capture: the learning period, an alerts
//! timeline (time, device, what it did in words, the counterpart where one is known,
//! incidents still open at the end), and the summary record of `--json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::detect::{Behaviour, Event, EventKind, Phase, Role};
use crate::export::Rfc3339;

/// How a device is named to people: its name, else its MAC.
pub fn who(e: &Event) -> &str {
    if e.device.name.is_empty() {
        &e.device.mac
    } else {
        &e.device.name
    }
}

/// The part of `e`'s explanation that says what the device did: the first feature that
/// points to its behaviour, else the largest error.
fn telling(e: &Event) -> String {
    e.explanation
        .iter()
        .find(|c| c.observed > c.expected && Behaviour::of_feature(&c.feature) == e.behaviour)
        .or(e.explanation.first())
        .map(|c| format!(": {}", c.text))
        .unwrap_or_default()
}

/// What the detector did with one capture, for the learning-period line.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Learning {
    /// Windows of learning, and their length in seconds.
    pub windows: u32,
    pub window_secs: u32,
    /// When learning ends (nanoseconds since the epoch), once watching began.
    pub ends_ns: Option<u64>,
    /// The capture's last packet.
    pub capture_end_ns: u64,
    /// Device-windows scored.
    pub scored: u64,
}

impl Learning {
    /// The whole capture lies inside the learning period: nothing could alert.
    pub fn covers_capture(&self) -> bool {
        self.ends_ns.is_some_and(|e| self.capture_end_ns < e)
    }

    /// The learning period in words.
    pub fn text(&self) -> String {
        let secs = u64::from(self.windows) * u64::from(self.window_secs);
        let span = if secs >= 3600 && secs % 360 == 0 {
            format!("{} h", secs as f64 / 3600.0)
        } else if secs >= 60 && secs % 60 == 0 {
            format!("{} min", secs / 60)
        } else {
            format!("{secs} s")
        };
        let mut s = format!(
            "learning: the first {} windows of {} s ({span}) learn what is normal; nothing alerts before they end",
            self.windows, self.window_secs
        );
        match self.ends_ns {
            Some(e) if self.covers_capture() => {
                let _ = write!(
                    s,
                    "\n  the whole capture lies inside the learning period (it ends at {}, learning at {}): {} device-windows were scored and nothing could alert",
                    Rfc3339(self.capture_end_ns),
                    Rfc3339(e),
                    self.scored
                );
            }
            Some(e) => {
                let _ = write!(
                    s,
                    "\n  learning ended at {}; {} device-windows were scored",
                    Rfc3339(e),
                    self.scored
                );
            }
            None => s.push_str("\n  no packets: nothing was scored"),
        }
        s
    }
}

/// Incidents opened per device MAC.
pub fn alerts_per_device(events: &[Event]) -> BTreeMap<String, u64> {
    let mut n = BTreeMap::new();
    for e in events.iter().filter(|e| e.opens()) {
        *n.entry(e.device.mac.clone()).or_insert(0) += 1;
    }
    n
}

/// The incidents still open after the last event, in the order they opened.
pub fn open_at_end(events: &[Event]) -> Vec<&Event> {
    let mut open: BTreeMap<u64, &Event> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == EventKind::Anomaly) {
        let Some(id) = e.incident else { continue };
        match e.phase {
            Some(Phase::Open) => {
                open.insert(id, e);
            }
            Some(Phase::Close) => {
                open.remove(&id);
            }
            _ => {}
        }
    }
    open.into_values().collect()
}

/// The station on the other side of the incident `e` opened (the detector's counterpart:
/// the attacker of a target, the main peer of a source), named as a device of the capture
/// when one used that address, else by address and port.
fn counterpart(e: &Event, events: &[Event]) -> Option<String> {
    let c = e.counterpart.as_ref()?;
    let named = events
        .iter()
        .find(|o| o.device.mac != e.device.mac && o.device.ipv4.contains(&c.ip))
        .map(|o| who(o).to_string());
    Some(match (named, c.port) {
        (Some(n), Some(p)) if e.role == Some(Role::Source) => format!("{n}:{p}"),
        (Some(n), _) => n,
        (None, Some(p)) if e.role == Some(Role::Source) => format!("{}:{p}", c.ip),
        (None, _) => c.ip.clone(),
    })
}

/// The alerts timeline: one line per event, in the order they happened.
pub fn timeline(events: &[Event]) -> String {
    let mut s = String::new();
    if events.is_empty() {
        s.push_str("  alerts: none\n");
        return s;
    }
    s.push_str("  alerts:\n");
    for e in events {
        let name = who(e);
        let what = match (e.kind, e.phase) {
            (EventKind::Anomaly, Some(Phase::Close)) => {
                let did = e.behaviour.map(Behaviour::words).unwrap_or("unusual");
                let how = telling(e);
                let why = e
                    .detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                format!("ended: was {did}{how}{why}")
            }
            (EventKind::Anomaly, phase) => {
                let did = e.behaviour.map(Behaviour::words).unwrap_or("unusual");
                let again = if phase == Some(Phase::Update) {
                    "worse: "
                } else {
                    ""
                };
                let how = telling(e);
                let other = match counterpart(e, events) {
                    Some(o) if phase == Some(Phase::Open) => {
                        if e.role == Some(Role::Target) {
                            format!("; from {o}")
                        } else if e.behaviour == Some(Behaviour::Mining) {
                            format!("; pool {o}")
                        } else if e.behaviour.is_some_and(Behaviour::attacks) {
                            format!("; target {o}")
                        } else {
                            format!("; with {o}")
                        }
                    }
                    _ => String::new(),
                };
                format!("{again}{did}{how}{other}")
            }
            (EventKind::NewDevice, _) => {
                let ip = e.device.ipv4.first().map(String::as_str).unwrap_or("-");
                format!("new device ({}, {ip})", e.device.mac)
            }
            (_, _) => e.detail.clone().unwrap_or_default(),
        };
        let incident = e.incident.map(|i| format!("#{i} ")).unwrap_or_default();
        let _ = writeln!(
            s,
            "    {}  {:<16}  {:<6}  {incident}{what}",
            e.window_start,
            name,
            format!("{:?}", e.severity).to_lowercase()
        );
    }
    let open = open_at_end(events);
    if !open.is_empty() {
        let list: Vec<String> = open
            .iter()
            .map(|e| {
                format!(
                    "#{} {} ({}, since {})",
                    e.incident.unwrap_or(0),
                    who(e),
                    e.behaviour.map(Behaviour::words).unwrap_or("unusual"),
                    e.window_start
                )
            })
            .collect();
        let _ = writeln!(s, "    still open at the end: {}", list.join("; "));
    }
    s
}

/// The last record of `replay --json` for one capture.
#[derive(serde::Serialize)]
pub struct Summary<'a> {
    pub kind: &'static str,
    pub capture: &'a str,
    pub packets: u64,
    pub devices: usize,
    /// Null without a model.
    pub learning: Option<Learning>,
    pub learning_covers_capture: bool,
    pub incidents_opened: u64,
    /// Incident numbers still open after the last packet.
    pub open_at_end: Vec<u64>,
    pub events: usize,
}
