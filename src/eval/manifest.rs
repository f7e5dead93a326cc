//! The manifest's format (`../shared/data/README.md` explains it), key for key. Every object
//! refuses keys it does not know, so a misspelt key is an error that names it rather than a
//! label silently lost; keys other than a capture's `file`, `type` and `ground_truth` and a
//! label's `kind`, `attacker` and `time_range` may be left out (manifests written by hand or
//! by `tests/variants.py` give little more). Only the ground truth is read by `iotad eval`;
//! the rest is kept as documentation of what the manifest holds.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// A manifest: the labelled captures of one folder.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub captures: Vec<Capture>,
    /// What set this is (development, held out, variants...).
    pub set: Option<String>,
    /// When the manifest was written (RFC 3339).
    pub built: Option<String>,
    /// How the labels were measured.
    pub label_method: Option<String>,
    /// The commands that built the scenario captures.
    pub scenario_commands: Option<Vec<String>>,
}

/// One capture file and its ground truth.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// The file, relative to the manifest's folder.
    pub file: String,
    /// `benign`, `attack` or `scenario`.
    #[serde(rename = "type")]
    pub kind: String,
    pub ground_truth: GroundTruth,
    /// `pcap` or `pcapng`.
    pub format: Option<String>,
    pub link_type: Option<String>,
    pub link_type_number: Option<u32>,
    pub packets: Option<u64>,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    pub snaplen: Option<String>,
    pub start_epoch: Option<f64>,
    pub end_epoch: Option<f64>,
    /// Background traffic and other things to know about the file.
    pub notes: Option<Vec<String>>,
    pub observed: Option<Observed>,
    pub source: Option<Source>,
    /// A benign capture's device and the stations it talks to.
    pub devices: Option<Vec<Device>>,
    /// A scenario's benign devices.
    pub benign_devices: Option<Vec<Device>>,
    pub address_collisions: Option<AddressCollisions>,
    /// A scenario whose attacker is one of its benign devices (compromised).
    pub attacker_is_existing_device: Option<bool>,
    /// How the attack capture's attacker was rewritten into the benign device.
    pub rewrite: Option<Rewrite>,
    /// How much slower than captured the attack was replayed.
    pub time_stretch: Option<f64>,
    /// The tool that added the capture.
    pub added_by: Option<String>,
    pub derived_by: Option<String>,
}

/// `"benign"`, or the attacks a capture holds.
#[derive(Clone, Debug)]
pub enum GroundTruth {
    Benign,
    Attacks(Vec<Label>),
}

impl<'de> Deserialize<'de> for GroundTruth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GroundTruth;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"benign\" or a list of attack labels")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<GroundTruth, E> {
                match s {
                    "benign" => Ok(GroundTruth::Benign),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GroundTruth, A::Error> {
                let mut labels = Vec::new();
                while let Some(l) = seq.next_element()? {
                    labels.push(l);
                }
                Ok(GroundTruth::Attacks(labels))
            }
        }
        d.deserialize_any(V)
    }
}

/// One attack of a capture.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    pub kind: String,
    pub attacker: Station,
    #[serde(default)]
    pub victim: Station,
    /// The Wireshark display filter that selects the attack's packets.
    pub filter: Option<String>,
    /// First and last packet the filter selects.
    pub time_range: TimeRange,
    /// How many packets the filter selects.
    pub packets: Option<u64>,
    pub evidence: Option<Evidence>,
    /// The attack tool, as far as known.
    pub tool: Option<String>,
    /// How a scenario's label was checked against its attack capture.
    pub check: Option<String>,
}

/// An attacker or victim: addresses as text (`10.0.0.1, 10.0.0.2`; remarks in parentheses;
/// words where there is no one address, such as `spoofed (thousands of sources)`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Station {
    pub mac: Option<String>,
    pub ip: Option<String>,
    /// How the MAC was chosen.
    pub mac_source: Option<String>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub start_epoch: f64,
    pub end_epoch: f64,
    /// RFC 3339.
    pub start: Option<String>,
    pub end: Option<String>,
}

/// Counts for the narrower `probe_filter` (the attacker's own probes or requests).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub probe_filter: Option<String>,
    pub probe_packets: Option<u64>,
    pub distinct_src_ip: Option<u64>,
    pub distinct_dst_ip: Option<u64>,
    pub distinct_dst_port: Option<u64>,
    pub distinct_arp_targets: Option<u64>,
    pub dns_queries: Option<u64>,
    pub distinct_qnames: Option<u64>,
    pub mean_qname_len: Option<f64>,
}

/// What was counted in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    /// Packets per VLAN id.
    pub vlan_tagged_packets: Option<BTreeMap<String, u64>>,
    pub packets_shorter_than_wire_length: Option<u64>,
    pub arp_packets: Option<u64>,
    pub dns_packets: Option<u64>,
    pub ipv6_packets: Option<u64>,
    pub tcp_syn_without_ack: Option<u64>,
}

/// Where the file comes from, or what a scenario was built from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub repo: Option<String>,
    pub path: Option<String>,
    pub snapshot_commit: Option<String>,
    pub last_commit_touching_path: Option<String>,
    pub blob_sha1: Option<String>,
    pub original_name: Option<String>,
    pub licence: Option<String>,
    pub built_from: Option<Vec<String>>,
    pub benign_window: Option<Span>,
    pub attack_time_shift_seconds: Option<f64>,
    pub attack_capture_starts: Option<String>,
    pub first_attack_packet: Option<String>,
    pub learning_period_minutes: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    pub start: String,
    pub end: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub mac: Option<String>,
    pub ip: Option<String>,
    pub role: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressCollisions {
    pub mac: Vec<String>,
    pub ip: Vec<String>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    pub from_mac: String,
    pub to_mac: String,
    pub from_ip: Option<String>,
    pub to_ip: Option<String>,
}
