//! The synthesizer's ground truth: per device and window, what it sent and received, counted
//! from the synthesizer's own records of each frame ([`super::frames::Meta`]), never by
//! parsing the bytes. Tests compare `iotad features` against it.

use std::collections::{BTreeMap, BTreeSet};

use super::attacks::Spec;
use super::frames::Frame;
use super::Network;
use crate::wire::tcp::flags::{ACK, RST, SYN};

/// Counts of one device in one window.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct WindowTruth {
    pub pkts_out: u64,
    pub pkts_in: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub tcp_out: u64,
    pub syn_out: u64,
    pub synack_in: u64,
    pub rst_in: u64,
    pub udp_out: u64,
    pub icmp_out: u64,
    pub arp_out: u64,
    pub arp_req_targets: u64,
    pub dns_queries: u64,
    pub dns_names: u64,
    pub dns_name_len_max: u64,
    pub remote_ports: u64,
    pub broadcast_out: u64,
    pub multicast_out: u64,
    /// Packets this device sent as part of an attack.
    pub attack_pkts_out: u64,
}

#[derive(Default)]
struct Acc {
    w: WindowTruth,
    arp_targets: BTreeSet<[u8; 4]>,
    names: BTreeSet<String>,
    remote_ports: BTreeSet<(bool, u16)>,
}

/// Ground truth of a whole synthesized capture.
pub struct Truth {
    window_ns: u64,
    macs: Vec<String>,
    windows: BTreeMap<(u16, u64), Acc>,
    attacks: Vec<AttackTruth>,
}

/// An injected attack, as the report lists it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct AttackTruth {
    pub kind: String,
    pub attacker: String,
    pub start_epoch: u64,
    pub end_epoch: u64,
}

/// One row of the report.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Row {
    pub mac: String,
    pub window_start_epoch: u64,
    #[serde(flatten)]
    pub counts: WindowTruth,
}

/// The ground truth as written by `iotad synth --truth`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Report {
    pub window_secs: u64,
    pub attacks: Vec<AttackTruth>,
    pub windows: Vec<Row>,
}

impl Truth {
    pub fn new(net: &Network, attacks: &[Spec], window_ns: u64) -> Truth {
        let attacks = attacks
            .iter()
            .map(|s| AttackTruth {
                kind: s.kind.name().to_string(),
                attacker: s.mac.to_string(),
                start_epoch: super::START_NS / super::SECOND + s.start_s,
                end_epoch: super::START_NS / super::SECOND + s.start_s + s.duration_s,
            })
            .collect();
        Truth {
            window_ns,
            macs: net.devices.iter().map(|d| d.mac.to_string()).collect(),
            windows: BTreeMap::new(),
            attacks,
        }
    }

    /// Counts one written frame.
    pub fn record(&mut self, ts: u64, f: &Frame) {
        let window = ts / self.window_ns;
        let m = &f.meta;
        let len = f.bytes.len() as u64;
        if let Some(from) = m.from {
            let acc = self.windows.entry((from, window)).or_default();
            let w = &mut acc.w;
            w.pkts_out += 1;
            w.bytes_out += len;
            if m.attack.is_some() {
                w.attack_pkts_out += 1;
            }
            if m.broadcast {
                w.broadcast_out += 1;
            } else if m.multicast {
                w.multicast_out += 1;
            }
            if m.arp {
                w.arp_out += 1;
                if let Some(t) = m.arp_request_for {
                    acc.arp_targets.insert(t);
                }
            }
            if m.udp {
                w.udp_out += 1;
            }
            if m.icmp {
                w.icmp_out += 1;
            }
            if m.tcp {
                w.tcp_out += 1;
                if m.tcp_flags & (SYN | ACK) == SYN {
                    w.syn_out += 1;
                }
            }
            if let Some(p) = m.dst_port {
                acc.remote_ports.insert((m.udp, p));
            }
            if let Some(name) = &m.dns_query {
                w.dns_queries += 1;
                w.dns_name_len_max = w.dns_name_len_max.max(name.len() as u64);
                acc.names.insert(name.to_lowercase());
            }
        }
        if let Some(to) = m.to {
            let w = &mut self.windows.entry((to, window)).or_default().w;
            w.pkts_in += 1;
            w.bytes_in += len;
            if m.tcp_flags & (SYN | ACK) == SYN | ACK {
                w.synack_in += 1;
            }
            if m.tcp_flags & RST != 0 {
                w.rst_in += 1;
            }
        }
    }

    /// The rows, in (device, window) order; windows with no traffic are absent.
    pub fn report(&self) -> Report {
        let windows = self
            .windows
            .iter()
            .map(|(&(dev, window), acc)| {
                let mut counts = acc.w.clone();
                counts.arp_req_targets = acc.arp_targets.len() as u64;
                counts.dns_names = acc.names.len() as u64;
                counts.remote_ports = acc.remote_ports.len() as u64;
                Row {
                    mac: self.macs[dev as usize].clone(),
                    window_start_epoch: window * self.window_ns / super::SECOND,
                    counts,
                }
            })
            .collect();
        Report {
            window_secs: self.window_ns / super::SECOND,
            attacks: self.attacks.clone(),
            windows,
        }
    }
}
