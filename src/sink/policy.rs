//! Alert policy: which events an alerting sink (MQTT, webhook, email) is given at all.
//!
//! Applied by [`crate::sink::Sinks::send`] on the capture thread before an event is queued, so
//! a muted or rate-limited event never takes a real alert's place in a full queue. The event
//! log (`events.file`) has no policy: it is the record. What a policy looks at:
//!
//! - the sink's minimum severity (`<sink>.min_severity`);
//! - new-device events (`<sink>.new_devices`): `all`, `fixed` (not for locally administered,
//!   randomized MACs: phones and laptops with private addresses), or `none`;
//! - mutes (`alerts.mute`): `MAC until RFC 3339 time`, nothing about that device until then;
//! - a per-device rate limit (`alerts.device_per_hour`): at most that many events per device
//!   per sliding hour (0: no limit).
//!
//! The close of an incident whose opening went through always goes through too (a receiver
//! never sees an incident open that never closes); mutes aside.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::detect::{Event, EventKind, Phase, Severity};
use crate::wire::Mac;

/// Which new-device events a sink is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewDevices {
    /// Every one.
    All,
    /// Those of globally unique (manufacturer-assigned) MACs only.
    Fixed,
    /// None.
    None,
}

/// One mute: nothing about `mac` until `until` (seconds since 1970).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mute {
    pub mac: Mac,
    pub until: u64,
}

impl Mute {
    /// Parses `02:10:00:00:00:01 until 2026-12-01T00:00:00Z`.
    pub fn parse(s: &str) -> Result<Mute, String> {
        let bad = || {
            format!(
                "alerts.mute {s:?}: give \"MAC until TIME\", like \
                 \"02:10:00:00:00:01 until 2026-12-01T18:00:00Z\""
            )
        };
        let mut words = s.split_whitespace();
        let (Some(mac), Some("until"), Some(time), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(bad());
        };
        Ok(Mute {
            mac: Mac::parse(mac).ok_or_else(bad)?,
            until: parse_rfc3339(time).ok_or_else(bad)?,
        })
    }
}

/// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SSZ` (UTC; fractions and offsets are not taken).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // days_from_civil (H. Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Incidents whose opening a policy let through, remembered for their close (bounded).
const OPEN_MAX: usize = 4096;
/// Devices whose recent events a policy counts, at most (the least recent are forgotten).
const RATE_DEVICES_MAX: usize = 4096;

/// One sink's policy, with what it remembers.
#[derive(Debug)]
pub struct Policy {
    min_severity: Severity,
    new_devices: NewDevices,
    mutes: Vec<Mute>,
    per_hour: u32,
    /// When (seconds since 1970) each device's recent events went through.
    recent: HashMap<String, VecDeque<u64>>,
    open: HashSet<u64>,
    open_order: VecDeque<u64>,
}

/// Why an event was held back (counted per reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    Severity,
    NewDevice,
    Muted,
    RateLimited,
}

impl Policy {
    pub fn new(
        min_severity: Severity,
        new_devices: NewDevices,
        mutes: Vec<Mute>,
        per_hour: u32,
    ) -> Policy {
        Policy {
            min_severity,
            new_devices,
            mutes,
            per_hour,
            recent: HashMap::new(),
            open: HashSet::new(),
            open_order: VecDeque::new(),
        }
    }

    /// New settings; what the policy remembers (recent events, open incidents) stays.
    pub fn configure(
        &mut self,
        min_severity: Severity,
        new_devices: NewDevices,
        mutes: Vec<Mute>,
        per_hour: u32,
    ) {
        self.min_severity = min_severity;
        self.new_devices = new_devices;
        self.mutes = mutes;
        self.per_hour = per_hour;
    }

    /// Whether the sink gets `e`, at `now` (seconds since 1970); why not, when not.
    pub fn judge(&mut self, e: &Event, now: u64) -> Result<(), Held> {
        let mac = Mac::parse(&e.device.mac);
        if self
            .mutes
            .iter()
            .any(|m| Some(m.mac) == mac && now < m.until)
        {
            return Err(Held::Muted);
        }
        if e.kind == EventKind::NewDevice {
            let pass = match self.new_devices {
                NewDevices::All => true,
                NewDevices::Fixed => !e.device.randomized,
                NewDevices::None => false,
            };
            if !pass {
                return Err(Held::NewDevice);
            }
        }
        let closes_an_opening_we_passed =
            e.phase == Some(Phase::Close) && e.incident.is_some_and(|n| self.open.contains(&n));
        if closes_an_opening_we_passed {
            let n = e.incident.unwrap_or_default();
            self.open.remove(&n);
            self.open_order.retain(|x| *x != n);
            return Ok(());
        }
        if e.severity < self.min_severity {
            return Err(Held::Severity);
        }
        if self.per_hour > 0 {
            if !self.recent.contains_key(&e.device.mac) && self.recent.len() >= RATE_DEVICES_MAX {
                // forget the device heard from least recently
                let oldest = self
                    .recent
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied().unwrap_or(0))
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.recent.remove(&k);
                }
            }
            let times = self.recent.entry(e.device.mac.clone()).or_default();
            while times.front().is_some_and(|t| *t + 3600 <= now) {
                times.pop_front();
            }
            if times.len() >= self.per_hour as usize {
                return Err(Held::RateLimited);
            }
            times.push_back(now);
        }
        if e.phase == Some(Phase::Open) {
            if let Some(n) = e.incident {
                if self.open.insert(n) {
                    self.open_order.push_back(n);
                }
                if self.open_order.len() > OPEN_MAX {
                    if let Some(old) = self.open_order.pop_front() {
                        self.open.remove(&old);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{DeviceRef, ThresholdSource};

    fn event(kind: EventKind, phase: Option<Phase>, incident: u64, sev: Severity) -> Event {
        Event {
            kind,
            phase,
            incident: Some(incident),
            device: DeviceRef {
                mac: "02:10:00:00:00:01".into(),
                ipv4: vec![],
                ipv6: vec![],
                name: String::new(),
                vendor_class: String::new(),
                randomized: true,
            },
            window_start: String::new(),
            window_end: String::new(),
            window_start_epoch: 0,
            score: 0.0,
            threshold: 1.0,
            threshold_source: ThresholdSource::Device,
            severity: sev,
            behaviour: None,
            role: None,
            counterpart: None,
            explanation: vec![],
            detail: None,
        }
    }

    #[test]
    fn times_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-01-01T01:05:00Z"), Some(1_704_071_100));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        for bad in [
            "2024-01-01 01:05:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-01T24:00:00Z",
            "+024-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let m = Mute::parse("02:10:00:00:00:01 until 2024-01-01T01:05:00Z").unwrap();
        assert_eq!(m.until, 1_704_071_100);
        assert!(Mute::parse("02:10:00:00:00:01 2024-01-01T01:05:00Z")
            .unwrap_err()
            .contains("alerts.mute"));
    }

    #[test]
    fn severity_new_devices_mutes_and_rates() {
        use EventKind::*;
        let mut p = Policy::new(Severity::Medium, NewDevices::Fixed, vec![], 3);
        // a low opening is held, and so is its close
        let low_open = event(Anomaly, Some(Phase::Open), 1, Severity::Low);
        assert_eq!(p.judge(&low_open, 0), Err(Held::Severity));
        let close1 = event(Anomaly, Some(Phase::Close), 1, Severity::Low);
        assert_eq!(p.judge(&close1, 1), Err(Held::Severity));
        // a high opening passes, and its (low) close with it
        assert_eq!(
            p.judge(&event(Anomaly, Some(Phase::Open), 2, Severity::High), 2),
            Ok(())
        );
        assert_eq!(
            p.judge(&event(Anomaly, Some(Phase::Close), 2, Severity::Low), 3),
            Ok(())
        );
        // a randomized MAC's new-device event is held under `fixed`
        let mut new = event(NewDevice, None, 0, Severity::High);
        assert_eq!(p.judge(&new, 4), Err(Held::NewDevice));
        new.device.randomized = false;
        // one passed so far this hour (the close is not counted): two more pass, then no more
        assert_eq!(p.judge(&new, 5), Ok(()));
        assert_eq!(p.judge(&new, 6), Ok(()));
        assert_eq!(p.judge(&new, 7), Err(Held::RateLimited));
        // an hour after the first, one more
        assert_eq!(p.judge(&new, 3602), Ok(()));
        assert_eq!(p.judge(&new, 3603), Err(Held::RateLimited));
        // muted until 5000
        let mut p = Policy::new(
            Severity::Low,
            NewDevices::All,
            vec![Mute::parse("02:10:00:00:00:01 until 1970-01-01T01:23:20Z").unwrap()],
            0,
        );
        let open = event(Anomaly, Some(Phase::Open), 3, Severity::High);
        assert_eq!(p.judge(&open, 4999), Err(Held::Muted));
        assert_eq!(p.judge(&open, 5000), Ok(()));
    }
}
