//! The traffic synthesizer: a small home network written to a real pcap file with libpcap.
//!
//! Devices have personalities (a camera streaming to its cloud, a plug polling every 30 s, a
//! hub announcing itself over mDNS and talking to the plugs, a phone browsing), all with DHCP,
//! ARP, DNS and NTP; attacks are injected from chosen devices at chosen times. Everything is
//! drawn from one seeded generator, so a seed always writes the same bytes. Alongside the
//! capture the synthesizer keeps its own ground truth ([`truth::Truth`]): what each device
//! sent and received per window, counted from its own records, not by parsing.

pub mod attacks;
pub mod frames;
pub mod personality;
pub mod truth;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::cli::SynthArgs;
use crate::wire::Mac;
use attacks::{Attack, AttackKind};
use frames::{Frame, Host};
use personality::{Kind, Task};
use truth::Truth;

/// First packet time of every synthesized capture: 2024-01-01T00:00:00Z.
pub const START_NS: u64 = 1_704_067_200 * 1_000_000_000;

pub const SECOND: u64 = 1_000_000_000;

pub use crate::math::Rng;

/// A synthesized device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Device {
    pub index: u16,
    pub kind: Kind,
    #[serde(serialize_with = "ser_display")]
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub hostname: String,
}

fn ser_display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Device {
    pub fn host(&self) -> Host {
        Host {
            mac: self.mac,
            ip: self.ip,
        }
    }
}

/// The LAN's router: gateway, DHCP and DNS server.
pub const ROUTER: Host = Host {
    mac: Mac([0x02, 0x1a, 0x11, 0x00, 0x00, 0x01]),
    ip: Ipv4Addr::new(192, 168, 1, 1),
};

/// The network being synthesized.
#[derive(Clone, Debug)]
pub struct Network {
    pub devices: Vec<Device>,
}

impl Network {
    /// `n` devices: camera, plug, hub, phone, then again.
    pub fn new(n: usize) -> Network {
        let devices = (0..n.clamp(1, 4096))
            .map(|i| {
                let kind = Kind::ALL[i % Kind::ALL.len()];
                let host = i + 10;
                Device {
                    index: i as u16,
                    kind,
                    mac: Mac([0x02, 0x10, kind as u8, 0x00, (i >> 8) as u8, i as u8]),
                    ip: Ipv4Addr::new(192, 168, 1 + (host / 250) as u8, (host % 250) as u8 + 2),
                    hostname: format!("{}-{i}", kind.name()),
                }
            })
            .collect();
        Network { devices }
    }

    pub fn by_mac(&self, mac: &Mac) -> Option<&Device> {
        self.devices.iter().find(|d| d.mac == *mac)
    }

    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Device> {
        self.devices.iter().find(|d| d.ip == ip)
    }
}

/// A frame scheduled for a time; ordered by time, then by the order it was made.
struct Scheduled {
    ts: u64,
    seq: u64,
    frame: Frame,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.seq) == (o.ts, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(o.ts, o.seq))
    }
}

/// Where actors put the frames they make.
pub struct Out<'a> {
    queue: &'a mut BinaryHeap<Reverse<Scheduled>>,
    seq: &'a mut u64,
    pub rng: &'a mut Rng,
    pub net: &'a Network,
}

impl Out<'_> {
    /// Schedules `frame` at `ts`, recording which devices sent and receive it.
    pub fn send(&mut self, ts: u64, mut frame: Frame, from: Option<u16>, to: Option<u16>) {
        frame.meta.from = from;
        frame.meta.to = to;
        *self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            ts,
            seq: *self.seq,
            frame,
        }));
    }
}

/// Something that wakes up and makes frames: a device's task or an attack.
pub enum Actor {
    Task(Task),
    Attack(Attack),
}

impl Actor {
    /// Makes this wake-up's frames (at `now` or later); returns the next wake-up time.
    fn act(&mut self, now: u64, out: &mut Out<'_>) -> Option<u64> {
        match self {
            Actor::Task(t) => t.act(now, out),
            Actor::Attack(a) => a.act(now, out),
        }
    }
}

/// What to synthesize.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub devices: usize,
    pub duration_s: u64,
    pub max_packets: Option<u64>,
    pub attacks: Vec<attacks::Spec>,
}

/// What was written.
pub struct Written {
    pub packets: u64,
    pub network: Network,
    pub truth: Option<Truth>,
}

impl Scenario {
    /// Writes the capture to `path`; with `truth_window_ns`, also counts the ground truth
    /// per window of that length.
    pub fn write(&self, path: &Path, truth_window_ns: Option<u64>) -> Result<Written, String> {
        let net = Network::new(self.devices);
        let mut rng = Rng::new(self.seed);
        let mut actors: Vec<Actor> = Vec::new();
        let mut wakeups: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        for d in &net.devices {
            for t in personality::tasks(d, &mut rng) {
                wakeups.push(Reverse((t.first_wake(), actors.len())));
                actors.push(Actor::Task(t));
            }
        }
        for (i, spec) in self.attacks.iter().enumerate() {
            let a = Attack::new(spec, i as u16, &net)?;
            wakeups.push(Reverse((a.start, actors.len())));
            actors.push(Actor::Attack(a));
        }
        let end = START_NS + self.duration_s * SECOND;
        let mut truth = truth_window_ns.map(|w| Truth::new(&net, &self.attacks, w));
        let mut writer = PcapWriter::create(path)?;
        let mut queue = BinaryHeap::new();
        let mut seq = 0u64;
        let mut written = 0u64;
        let limit = self.max_packets.unwrap_or(u64::MAX);
        while written < limit {
            let next_wake = wakeups.peek().map(|Reverse((t, _))| *t).unwrap_or(u64::MAX);
            let ready = queue
                .peek()
                .is_some_and(|Reverse(s): &Reverse<Scheduled>| s.ts <= next_wake);
            if ready {
                let Reverse(s) = queue.pop().expect("peeked");
                if s.ts >= end {
                    break;
                }
                writer.write(s.ts, &s.frame.bytes)?;
                if let Some(t) = truth.as_mut() {
                    t.record(s.ts, &s.frame);
                }
                written += 1;
            } else if next_wake < end {
                let Reverse((now, id)) = wakeups.pop().expect("peeked");
                let mut out = Out {
                    queue: &mut queue,
                    seq: &mut seq,
                    rng: &mut rng,
                    net: &net,
                };
                if let Some(next) = actors[id].act(now, &mut out) {
                    wakeups.push(Reverse((next.max(now + 1), id)));
                }
            } else if queue.is_empty() {
                break;
            } else {
                // no more wake-ups before the end: drain what is scheduled
                wakeups.clear();
            }
        }
        writer.finish()?;
        Ok(Written {
            packets: written,
            network: net,
            truth,
        })
    }
}

/// A pcap file (nanosecond timestamps, Ethernet), written with std I/O so that every write
/// error (a full disk, /dev/full) is seen: libpcap's dump functions drop them. The bytes go to
/// a temporary file beside the target, renamed over it once all were written and synced; a
/// device such as /dev/null is written in place.
struct PcapWriter {
    file: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
    tmp: Option<std::path::PathBuf>,
}

/// The pcap file header libpcap writes for Ethernet with nanosecond timestamps and its
/// default snapshot length, in this machine's byte order.
fn pcap_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_3c4du32.to_ne_bytes());
    h[4..6].copy_from_slice(&2u16.to_ne_bytes());
    h[6..8].copy_from_slice(&4u16.to_ne_bytes());
    h[16..20].copy_from_slice(&65535u32.to_ne_bytes());
    h[20..24].copy_from_slice(&1u32.to_ne_bytes());
    h
}

impl PcapWriter {
    fn create(path: &Path) -> Result<PcapWriter, String> {
        use std::io::Write;
        let tmp = crate::files::temporary_beside(path);
        let target = tmp.as_deref().unwrap_or(path);
        let file = std::fs::File::create(target)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let mut w = PcapWriter {
            file: std::io::BufWriter::with_capacity(256 * 1024, file),
            path: path.to_path_buf(),
            tmp,
        };
        let header = pcap_header();
        w.file.write_all(&header).map_err(|e| w.fail(e))?;
        Ok(w)
    }

    /// The error for `e`, after the temporary file is removed.
    fn fail(&mut self, e: std::io::Error) -> String {
        if let Some(t) = self.tmp.take() {
            let _ = std::fs::remove_file(t);
        }
        format!("cannot write {}: {e}", self.path.display())
    }

    fn write(&mut self, ts: u64, data: &[u8]) -> Result<(), String> {
        use std::io::Write;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ts / SECOND) as u32).to_ne_bytes());
        rec[4..8].copy_from_slice(&((ts % SECOND) as u32).to_ne_bytes());
        rec[8..12].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        rec[12..16].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        let r = self
            .file
            .write_all(&rec)
            .and_then(|_| self.file.write_all(data));
        r.map_err(|e| self.fail(e))
    }

    /// Writes out what is buffered and, for a regular file, syncs it and renames it over the
    /// target.
    fn finish(mut self) -> Result<(), String> {
        use std::io::Write;
        let flushed = self.file.flush();
        if let Err(e) = flushed {
            return Err(self.fail(e));
        }
        if let Some(t) = self.tmp.clone() {
            let done = self
                .file
                .get_ref()
                .sync_all()
                .and_then(|_| std::fs::rename(&t, &self.path));
            if let Err(e) = done {
                return Err(self.fail(e));
            }
            self.tmp = None;
        }
        Ok(())
    }
}

impl Drop for PcapWriter {
    fn drop(&mut self) {
        // not finished (an error, or a panic): nothing half-written is left behind
        if let Some(t) = self.tmp.take() {
            let _ = std::fs::remove_file(t);
        }
    }
}

/// `iotad synth`.
pub fn command(a: SynthArgs) -> Result<(), String> {
    let net = Network::new(a.devices);
    if a.list_devices {
        for d in &net.devices {
            println!(
                "{}  {:<15}  {:<7}  {}",
                d.mac,
                d.ip,
                d.kind.name(),
                d.hostname
            );
        }
        return Ok(());
    }
    let out = a.out.as_deref().ok_or("synth needs --out FILE")?;
    let attacks = a
        .attack
        .iter()
        .map(|s| s.parse::<attacks::Spec>())
        .collect::<Result<Vec<_>, _>>()?;
    for spec in &attacks {
        if net.by_mac(&spec.mac).is_none() {
            return Err(format!(
                "attack {}: {} is not a synthesized device; `iotad synth --list-devices --devices {}` lists them",
                spec.kind.name(),
                spec.mac,
                a.devices
            ));
        }
    }
    let scenario = Scenario {
        seed: a.seed,
        devices: a.devices,
        duration_s: a.duration,
        max_packets: a.packets,
        attacks,
    };
    let window = crate::config::PipelineConfig::default().window_ns();
    let w = scenario.write(out, a.truth.as_ref().map(|_| window))?;
    if let (Some(path), Some(t)) = (&a.truth, &w.truth) {
        let json = serde_json::to_string_pretty(&t.report()).map_err(|e| e.to_string())?;
        crate::files::write_atomically(path, json.as_bytes())?;
    }
    eprintln!(
        "wrote {} packets from {} devices to {}",
        w.packets,
        w.network.devices.len(),
        out.display()
    );
    Ok(())
}

/// All attack kinds, for help texts and tests.
pub fn attack_kinds() -> &'static [AttackKind] {
    &AttackKind::ALL
}
