//! What the detector tells people: typed events, serialized as JSON (one object per event)
//! for the event log and every sink, and readable back by a consumer in Rust.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::window::features::{Kind, FEATURES};

/// What an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A station seen for the first time after the network's learning period.
    NewDevice,
    /// A device's incident opened, got worse, or ended.
    Anomaly,
    /// A station was found routing the LAN's internet traffic while a router was already
    /// known: a second router, a router that changed its MAC, or a forwarding
    /// man-in-the-middle.
    GatewayChange,
    /// A device's frames to the internet now go through another station.
    NextHopChange,
    /// A station claimed (ARP) an IPv4 address another station held: ARP spoofing, the way
    /// a man-in-the-middle starts, or a device that changed its network card.
    ArpSpoof,
    /// Many never-seen stations at once: a MAC flood (the switch's table overflows and the
    /// LAN's traffic floods to every port).
    MacFlood,
    /// A device sent nothing for `events.quiet_after_secs` (off by default): unplugged, out
    /// of battery, or taken off the network.
    DeviceQuiet,
}

/// Where an incident is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Open,
    Update,
    Close,
}

/// How loud an event is. What the device did counts first: a device that attacks (scans,
/// floods, brute-forces logins, tunnels data through DNS, mines) is `high` when its window scored at
/// least twice its threshold and `medium` below, never `low`; a device that is the target of
/// such traffic is `low` (its attacker's alert is the one to act on), so an attacker always
/// outranks its target; anything else is by score over threshold (`low` under 2, `medium`
/// under 5, `high`). Events about who is who (routers, ARP, MAC floods) are `high`; a new
/// device is `low`. A close event repeats its incident's opening severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    /// The severity of a window that scored `score` against `threshold`, by score alone.
    pub fn of(score: f32, threshold: f32) -> Severity {
        match score / threshold {
            r if r < 2.0 => Severity::Low,
            r if r < 5.0 => Severity::Medium,
            _ => Severity::High,
        }
    }

    /// The severity of a window of `behaviour` that scored `score` against `threshold`.
    pub fn judge(behaviour: Behaviour, score: f32, threshold: f32) -> Severity {
        if behaviour.attacks() {
            if score >= 2.0 * threshold {
                Severity::High
            } else {
                Severity::Medium
            }
        } else if behaviour == Behaviour::Targeted {
            Severity::Low
        } else {
            Severity::of(score, threshold)
        }
    }
}

/// What a device did in an anomalous window, read from the features that explain it (the
/// first of them, by weight, that went up and says something about intent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Probing many ports or addresses.
    Scan,
    /// Sending a flood of connection attempts or datagrams.
    Flood,
    /// Repeated logins to one service.
    BruteForce,
    /// Data carried in DNS queries.
    Tunnel,
    /// Speaking a crypto-mining protocol to a pool.
    Mining,
    /// On the receiving end of connection attempts: the target of a scan, flood or logins.
    Targeted,
    /// Anything else the model found unusual.
    Unusual,
}

impl Behaviour {
    /// The behaviour a feature going up points to, if any.
    pub fn of_feature(name: &str) -> Option<Behaviour> {
        Some(match name {
            "login_attempts" | "login_attempts_slow" | "max_attempts_one_service" => {
                Behaviour::BruteForce
            }
            "probes" | "probes_slow" | "remote_ports" | "remote_ips_syn" | "unanswered"
            | "arp_req_targets" | "icmp_echo_out" => Behaviour::Scan,
            "syn_out" | "udp_out" | "udp_payload_out" | "src_ips_out" | "frags_out" => {
                Behaviour::Flood
            }
            "dns_unusual_queries"
            | "dns_name_len_mean"
            | "dns_name_len_max"
            | "dns_entropy_mean"
            | "dns_names" => Behaviour::Tunnel,
            "mining_msgs" => Behaviour::Mining,
            "ports_syn_in" | "syn_in" | "remote_ips_in" | "rst_out" => Behaviour::Targeted,
            _ => return None,
        })
    }

    /// What the explanation `why` (largest error first) says the device did.
    pub fn of(why: &[Contribution]) -> Behaviour {
        why.iter()
            .filter(|c| tells(c))
            .find_map(|c| Behaviour::of_feature(&c.feature))
            .unwrap_or(Behaviour::Unusual)
    }

    /// The first attack the explanation `why` (largest error first) names, if any: a device
    /// that is scanned while it floods is flooding.
    pub fn attack_in(why: &[Contribution]) -> Option<Behaviour> {
        why.iter()
            .filter(|c| tells(c))
            .filter_map(|c| Behaviour::of_feature(&c.feature))
            .find(|b| b.attacks())
    }

    /// Whether the explanation `why` names an attack by more than one event (a count above
    /// one, or a feature that is no count): more than one connection attempt to one
    /// service, for instance, which a miner's first window also shows.
    pub fn attack_repeated(why: &[Contribution]) -> bool {
        why.iter().any(|c| {
            tells(c)
                && (c.observed > 1.0 || !counts(c))
                && Behaviour::of_feature(&c.feature).is_some_and(Behaviour::attacks)
        })
    }

    /// The device does it to others.
    pub fn attacks(self) -> bool {
        matches!(
            self,
            Behaviour::Scan
                | Behaviour::Flood
                | Behaviour::BruteForce
                | Behaviour::Tunnel
                | Behaviour::Mining
        )
    }

    /// In words, for a sentence "camera-0 is ...".
    pub fn words(self) -> &'static str {
        match self {
            Behaviour::Scan => "scanning",
            Behaviour::Flood => "flooding",
            Behaviour::BruteForce => "trying logins (brute force)",
            Behaviour::Tunnel => "tunnelling data through DNS",
            Behaviour::Mining => "mining cryptocurrency for a pool",
            Behaviour::Targeted => "receiving connection attempts (a target)",
            Behaviour::Unusual => "behaving unusually",
        }
    }
}

/// Whether a part of an explanation says what the device did: its feature went up, and a
/// count that points to a scan or a flood went up to more than one (one connection attempt
/// to one address is no scan: a miner's first SYN to its pool read as one).
fn tells(c: &Contribution) -> bool {
    let spreads = matches!(
        Behaviour::of_feature(&c.feature),
        Some(Behaviour::Scan | Behaviour::Flood)
    );
    c.observed > c.expected && (c.observed > 1.0 || !(counts(c) && spreads))
}

/// Whether the contribution's feature is a count of events.
fn counts(c: &Contribution) -> bool {
    FEATURES
        .iter()
        .any(|f| f.name == c.feature && f.kind == Kind::Count)
}

/// Whose threshold a window was judged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdSource {
    /// The device's own, learned from its learning period.
    Device,
    /// The model's, for a device that has not learned its own yet.
    Population,
}

impl ThresholdSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdSource::Device => "device",
            ThresholdSource::Population => "population",
        }
    }
}

/// What a device is in an anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// It sent the anomalous traffic (a scan, a flood, a tunnel, a brute force from it).
    Source,
    /// It received it: the target of a scan, flood or brute force from the counterpart.
    Target,
}

/// The remote station that dominates an anomaly: for a target the one that sent it the
/// most packets (the attacker), for a source the one it sent the most to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Counterpart {
    pub ip: String,
    /// The device's port it hit (target) or the remote port (source), when the window's
    /// packets used one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Packets exchanged with it in the window (an estimate, never below the true count).
    pub packets: u32,
}

/// One feature's part in an explanation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Contribution {
    pub feature: Cow<'static, str>,
    pub unit: Cow<'static, str>,
    pub observed: f32,
    pub expected: f32,
    /// The error in typical errors of this feature for this device.
    pub weight: f32,
    pub text: String,
}

/// The device an event is about.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeviceRef {
    pub mac: String,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    pub name: String,
    pub vendor_class: String,
    /// A locally administered MAC (a phone's or laptop's randomized, private address).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub randomized: bool,
}

impl DeviceRef {
    pub fn of(d: &Device) -> DeviceRef {
        DeviceRef {
            mac: d.mac.to_string(),
            ipv4: d.identity.ipv4.iter().map(|a| a.to_string()).collect(),
            ipv6: d.identity.ipv6.iter().map(|a| a.to_string()).collect(),
            name: d.identity.name().to_string(),
            vendor_class: d.identity.vendor_class.to_string(),
            randomized: d.mac.is_local_admin(),
        }
    }

    /// A station known only by its MAC (a router, a station that is not a device).
    pub fn station(mac: crate::wire::Mac) -> DeviceRef {
        DeviceRef {
            mac: mac.to_string(),
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            name: String::new(),
            vendor_class: String::new(),
            randomized: mac.is_local_admin(),
        }
    }
}

/// Something a person should hear about.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// For anomalies: where the incident is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Incident number, counting from 1 per network (kept across restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<u64>,
    pub device: DeviceRef,
    pub window_start: String,
    pub window_end: String,
    pub window_start_epoch: u64,
    pub score: f32,
    pub threshold: f32,
    pub threshold_source: ThresholdSource,
    pub severity: Severity,
    /// For anomalies: what the device did (for a close event: what opened the incident).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<Behaviour>,
    pub explanation: Vec<Contribution>,
    /// What happened, in words, for events about who is who (routers, ARP, floods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For anomalies: whether the device is the incident's source or its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// For anomalies: the remote station that dominates it (the attacker of a target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterpart: Option<Counterpart>,
}

impl Event {
    /// Whether this event opens an incident.
    pub fn opens(&self) -> bool {
        self.phase == Some(Phase::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_as_written() {
        let line = r#"{"kind":"anomaly","phase":"open","incident":3,"device":{"mac":"02:10:00:00:00:00","ipv4":["192.168.1.10"],"ipv6":[],"name":"camera-0","vendor_class":""},"window_start":"2024-01-01T01:05:00Z","window_end":"2024-01-01T01:05:10Z","window_start_epoch":1704071100,"score":812.5,"threshold":12.66,"threshold_source":"device","severity":"high","explanation":[{"feature":"syn_out","unit":"packets","observed":1000.0,"expected":0.0,"weight":800.0,"text":"x"}]}"#;
        let e: Event = serde_json::from_str(line).unwrap();
        assert_eq!(e.kind, EventKind::Anomaly);
        assert_eq!(e.phase, Some(Phase::Open));
        assert_eq!(e.severity, Severity::High);
        assert_eq!(e.threshold_source, ThresholdSource::Device);
        assert_eq!(serde_json::to_string(&e).unwrap(), line);
        let bad = line.replace("\"high\"", "\"loud\"");
        assert!(serde_json::from_str::<Event>(&bad).is_err());
        assert!(Severity::High > Severity::Low);
    }

    fn part(feature: &'static str, observed: f32) -> Contribution {
        Contribution {
            feature: feature.into(),
            unit: "".into(),
            observed,
            expected: 0.0,
            weight: 1.0,
            text: String::new(),
        }
    }

    #[test]
    fn an_attacker_outranks_its_target_and_attacks_are_never_low() {
        let scanner = Behaviour::of(&[part("probes_slow", 997.0), part("rst_in", 20.0)]);
        let target = Behaviour::of(&[part("ports_syn_in", 1010.0), part("rst_out", 1000.0)]);
        assert_eq!((scanner, target), (Behaviour::Scan, Behaviour::Targeted));
        // a scan barely over its threshold against a target far over its own
        assert_eq!(Severity::judge(scanner, 10.0, 9.0), Severity::Medium);
        assert_eq!(Severity::judge(target, 900.0, 9.0), Severity::Low);
        for b in [Behaviour::Scan, Behaviour::Flood, Behaviour::BruteForce] {
            for ratio in [1.01f32, 1.9, 2.0, 4.9, 100.0] {
                let s = Severity::judge(b, 8.0 * ratio, 8.0);
                assert!(s > Severity::judge(Behaviour::Targeted, 8.0 * ratio, 8.0));
                assert_ne!(s, Severity::Low, "{b:?} at {ratio}");
            }
        }
        // a feature that went down says nothing about intent; nothing known is "unusual"
        assert_eq!(Behaviour::of(&[part("probes", -1.0)]), Behaviour::Unusual);
        assert_eq!(
            Behaviour::of(&[part("bytes_out", 9.0), part("login_attempts", 30.0)]),
            Behaviour::BruteForce
        );
    }

    #[test]
    fn the_attack_an_explanation_names_is_found_behind_what_was_received() {
        // scanned while it floods: the first feature says targeted, the second an attack
        let both = [part("ports_syn_in", 995.0), part("udp_out", 5000.0)];
        assert_eq!(Behaviour::of(&both), Behaviour::Targeted);
        assert_eq!(Behaviour::attack_in(&both), Some(Behaviour::Flood));
        // a feature that fell names nothing; a target's answers name no attack
        assert_eq!(Behaviour::attack_in(&[part("udp_out", -1.0)]), None);
        let answers = [
            part("ports_syn_in", 3.0),
            part("rst_out", 40.0),
            part("tcp_out", 9.0),
        ];
        assert_eq!(Behaviour::attack_in(&answers), None);
    }
}
