//! One device's open window: packets go in with [`Accumulator::add`], a [`Features`] vector
//! comes out of [`Accumulator::close`], which also resets it. Fixed size, no allocation.

use std::net::IpAddr;

use super::features::{Feat, Features, F};
use super::memory::{Memory, NetPorts, Origin, Session};
use super::sketch::{
    hash_ip, mix, Answer, Distinct, HeaviestKey, Peers, Pending, Probers, TopPeers,
};
pub use crate::device::ArpVerdict;
use crate::wire::{self, arp, port, App, Net, Summary, Transport};

/// Which way a packet went, seen from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The device sent it.
    Out,
    /// It was addressed to the device.
    In,
}

/// Packets at most this long count as small.
const SMALL_PACKET: u32 = 80;

/// The running state of one device's current window.
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    sums: Sums,
    remote_ips: Distinct,
    remote_ips_local: Distinct,
    remote_ips_internet: Distinct,
    remote_ports: Distinct,
    local_ports: Distinct,
    remote_ips_in: Distinct,
    ports_syn_in: Distinct,
    arp_targets: Distinct,
    dns_names: Distinct,
    remote_ips_syn: Distinct,
    src_ips_out: Distinct,
    services: HeaviestKey,
    /// The heaviest remote stations each way (for naming an anomaly's counterpart).
    peers_in: TopPeers,
    peers_out: TopPeers,
    probers: Probers,
    /// This is the device's first window: what it was sent before its first frame made it
    /// known was counted nowhere, so a reset it sends answers a probe unseen.
    first: bool,
    /// The requester of an ARP reply just sent, until the device table says whether it was
    /// asked for ([`Accumulator::arp_verdict`]).
    replied_to: Option<IpAddr>,
    pending: Pending,
    /// Probes answered by a reset.
    probes_reset: u32,
    ip_pkts: u32,
    local_pkts: u32,
    dns_named: u32,
    dns_len_sum: f64,
    dns_entropy_sum: f64,
    last_out_ns: Option<u64>,
    iat_n: u32,
    iat_sum: f64,
    last_active_sec: Option<u64>,
    packets: u64,
}

/// Plain counters, indexed like the feature vector.
#[derive(Clone, Debug)]
struct Sums([f64; F]);

impl Default for Sums {
    fn default() -> Self {
        Sums([0.0; F])
    }
}

impl std::ops::Index<Feat> for Sums {
    type Output = f64;
    fn index(&self, f: Feat) -> &f64 {
        &self.0[f as usize]
    }
}

impl std::ops::IndexMut<Feat> for Sums {
    fn index_mut(&mut self, f: Feat) -> &mut f64 {
        &mut self.0[f as usize]
    }
}

fn flow_key(remote: &IpAddr, remote_port: u16, local_port: u16) -> u64 {
    mix(hash_ip(remote) ^ (u64::from(remote_port) << 16 | u64::from(local_port)))
}

/// A remote service: an address and a port (of one protocol).
fn service_key(remote: &IpAddr, remote_port: u16) -> u64 {
    mix(hash_ip(remote) ^ u64::from(remote_port))
}

impl Accumulator {
    /// True when nothing was added since the last close.
    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// Adds one packet, sent by the device (`Out`) or addressed to it (`In`); `mem` is what
    /// the device's windows remember across windows, `net` the ports the network's devices
    /// use.
    pub fn add(&mut self, s: &Summary<'_>, dir: Direction, mem: &mut Memory, net: &mut NetPorts) {
        use Feat::*;
        let out = dir == Direction::Out;
        let size = f64::from(s.wire_len);
        self.packets += 1;
        let sums = &mut self.sums;
        if out {
            sums[PktsOut] += 1.0;
            sums[BytesOut] += size;
            if s.wire_len <= SMALL_PACKET {
                sums[SmallPktsOut] += 1.0;
            }
            if s.dst_mac.is_broadcast() {
                sums[BroadcastOut] += 1.0;
            } else if s.dst_mac.is_multicast() {
                sums[MulticastOut] += 1.0;
            }
            self.timing(s.ts_ns);
        } else {
            sums[PktsIn] += 1.0;
            sums[BytesIn] += size;
        }
        match s.net {
            Net::Arp(a) => self.arp(&a, out),
            Net::Ip { src, dst, fragment } => {
                let remote = if out { dst } else { src };
                // a client without an address yet (DHCP from 0.0.0.0) spoofs nothing
                if out && !src.is_unspecified() {
                    self.src_ips_out.insert(hash_ip(&src));
                }
                self.ip(&remote, out, fragment);
                // the device's port for what it received, the remote's for what it sent
                let port = match s.transport {
                    Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
                    Transport::Udp {
                        src_port, dst_port, ..
                    } => Some((src_port, dst_port)),
                    _ => None,
                }
                .map_or(0, |(_, dst)| dst);
                if out {
                    self.peers_out.add(remote, port);
                } else {
                    self.peers_in.add(remote, port);
                }
                self.transport(s, &remote, out, mem, net);
            }
            Net::Other(_) => {}
        }
    }

    /// Records what the device table concluded about an ARP packet this device sent.
    pub fn arp_verdict(&mut self, v: ArpVerdict) {
        // a reply asked for answered its requester's probe (a sweep finds the device so);
        // one nobody asked for is an announcement or a spoof, and one claiming another's
        // address a spoof
        if let Some(ip) = self.replied_to.take() {
            if !v.unasked && !v.conflict {
                self.probers.answer(ip, Answer::Arp);
            }
        }
        if v.conflict {
            self.sums[Feat::ArpConflicts] += 1.0;
        }
        if v.unasked {
            self.sums[Feat::ArpRepliesUnasked] += 1.0;
        }
    }

    fn timing(&mut self, ts_ns: u64) {
        if let Some(last) = self.last_out_ns {
            let gap = ts_ns.saturating_sub(last) as f64 / 1e9;
            self.iat_n += 1;
            self.iat_sum += gap;
        }
        self.last_out_ns = Some(ts_ns);
        let sec = ts_ns / 1_000_000_000;
        if self.last_active_sec != Some(sec) {
            self.last_active_sec = Some(sec);
            self.sums[Feat::ActiveSeconds] += 1.0;
        }
    }

    fn arp(&mut self, a: &arp::Arp, out: bool) {
        if out {
            self.sums[Feat::ArpOut] += 1.0;
            if a.op == arp::REQUEST && !a.is_gratuitous() {
                self.arp_targets
                    .insert(mix(u64::from(u32::from_be_bytes(a.target_ip))));
            }
            if a.op == arp::REPLY && !a.is_gratuitous() {
                self.replied_to = Some(wire::v4(a.target_ip));
            }
        }
    }

    fn ip(&mut self, remote: &IpAddr, out: bool, fragment: bool) {
        let h = hash_ip(remote);
        self.ip_pkts += 1;
        self.remote_ips.insert(h);
        if wire::ip::is_local(remote) {
            self.local_pkts += 1;
            self.remote_ips_local.insert(h);
        } else {
            self.remote_ips_internet.insert(h);
        }
        if out {
            if fragment {
                self.sums[Feat::FragsOut] += 1.0;
            }
        } else {
            self.remote_ips_in.insert(h);
        }
    }

    fn transport(
        &mut self,
        s: &Summary<'_>,
        remote: &IpAddr,
        out: bool,
        mem: &mut Memory,
        net: &mut NetPorts,
    ) {
        use Feat::*;
        let sums = &mut self.sums;
        match s.transport {
            Transport::Tcp(t) => {
                let (local_port, remote_port) = if out {
                    (t.src_port, t.dst_port)
                } else {
                    (t.dst_port, t.src_port)
                };
                let flow = flow_key(remote, remote_port, local_port);
                let service = service_key(remote, remote_port);
                let now_s = (s.ts_ns / 1_000_000_000) as u32;
                self.local_ports.insert(mix(u64::from(local_port)));
                // probes: a segment the device sends that opens a connection (SYN) or belongs
                // to none it knows, with a service it knows none with, waits for an answer; no
                // answer, or a reset, makes it a probe
                if out {
                    if t.is_syn() {
                        mem.conns.enter(flow, service as u32, Origin::Device, now_s);
                        mem.waiting.open(flow, s.ts_ns);
                    } else if !t.is_rst()
                        && mem.conns.touch(flow, now_s).is_none()
                        && !mem.conns.serves(service as u32)
                    {
                        mem.waiting.open(flow, s.ts_ns);
                    }
                } else if t.is_rst() {
                    if mem.waiting.take(flow) {
                        self.probes_reset = self.probes_reset.saturating_add(1);
                    }
                } else {
                    let answers_ours = mem.waiting.take(flow);
                    let origin = if t.is_syn() {
                        Origin::Remote
                    } else {
                        Origin::Adopted
                    };
                    let (new, _) = mem.conns.entered(flow, service as u32, origin, now_s);
                    // a connection attempt, or a segment of no connection the device knows,
                    // asks something of it (a probe, if it is refused)
                    if !answers_ours && (t.is_syn() || new) {
                        self.probers.ask(*remote);
                    }
                }
                // sessions (logins, on any port) and the services they are with (novelty)
                if let Some(conn) = mem.conns.touch(flow, now_s) {
                    if t.payload_len > 0 {
                        match conn.payload(out, t.payload_len) {
                            Session::Began => {
                                conn.attempt = mem.logins.session(service as u32, now_s);
                            }
                            Session::Grew => mem.logins.grew(service as u32, conn.attempt),
                            Session::Same => {}
                        }
                    }
                    // a service the device uses: one it connected to, or, seen mid-stream, the
                    // end with the lower port
                    let uses = match conn.origin {
                        Origin::Device => true,
                        Origin::Adopted => remote_port <= local_port,
                        _ => false,
                    };
                    if uses && (conn.sent || conn.got) {
                        let port = u32::from(remote_port) | 6 << 16;
                        mem.novelty.observe(service, port, now_s, net);
                    }
                }
                if out {
                    self.remote_ports
                        .insert(mix(u64::from(remote_port) | 1 << 17));
                    sums[TcpOut] += 1.0;
                    sums[TcpPayloadOut] += f64::from(t.payload_len);
                    if t.is_syn() {
                        sums[SynOut] += 1.0;
                        self.pending.open(flow);
                        self.services.add(service);
                        self.remote_ips_syn.insert(hash_ip(remote));
                    }
                    if t.is_rst() {
                        sums[RstOut] += 1.0;
                        if self.first {
                            self.probers.refuse_unseen(*remote);
                        } else {
                            self.probers.answer(*remote, Answer::Tcp);
                        }
                    }
                } else {
                    sums[TcpIn] += 1.0;
                    sums[TcpPayloadIn] += f64::from(t.payload_len);
                    if t.is_syn() {
                        sums[SynIn] += 1.0;
                        self.ports_syn_in.insert(mix(u64::from(local_port)));
                    }
                    if t.is_syn_ack() {
                        sums[SynAckIn] += 1.0;
                    }
                    if t.is_rst() {
                        sums[RstIn] += 1.0;
                    }
                    if t.is_syn_ack() || t.is_rst() {
                        self.pending.take(flow);
                    }
                }
            }
            Transport::Udp {
                src_port,
                dst_port,
                payload_len,
            } => {
                let (local_port, remote_port) = if out {
                    (src_port, dst_port)
                } else {
                    (dst_port, src_port)
                };
                self.local_ports.insert(mix(u64::from(local_port)));
                // a UDP service the device uses: the end with the lower port (DNS, NTP, a
                // peer's service), not the clients of its own, nor a group (a broadcast to the
                // subnet's address goes to the broadcast MAC)
                let group = !s.dst_mac.is_unicast() && s.dst_mac != wire::Mac::UNKNOWN;
                if remote_port <= local_port && !group && !wire::ip::is_group(remote) {
                    let port = u32::from(remote_port) | 17 << 16;
                    let service = mix(service_key(remote, remote_port) ^ 17);
                    let now_s = (s.ts_ns / 1_000_000_000) as u32;
                    mem.novelty.observe(service, port, now_s, net);
                }
                if out {
                    self.remote_ports
                        .insert(mix(u64::from(remote_port) | 1 << 18));
                    sums[UdpOut] += 1.0;
                    sums[UdpPayloadOut] += f64::from(payload_len);
                    match dst_port {
                        port::DHCP_SERVER => sums[DhcpOut] += 1.0,
                        port::NTP => sums[NtpOut] += 1.0,
                        _ => {}
                    }
                } else {
                    sums[UdpIn] += 1.0;
                    sums[UdpPayloadIn] += f64::from(payload_len);
                }
            }
            Transport::Icmp(i) => {
                if out {
                    sums[IcmpOut] += 1.0;
                    sums[IcmpPayloadOut] += f64::from(i.payload_len);
                    if i.is_echo_request() {
                        sums[IcmpEchoOut] += 1.0;
                    }
                } else {
                    sums[IcmpIn] += 1.0;
                    sums[IcmpPayloadIn] += f64::from(i.payload_len);
                    if i.is_unreachable() {
                        sums[IcmpUnreachIn] += 1.0;
                    }
                }
            }
            Transport::None => {}
        }
        match s.app {
            App::Dns(d) if out && !d.response => {
                sums[DnsQueries] += 1.0;
                if d.is_unusual_query() {
                    sums[DnsUnusualQueries] += 1.0;
                }
                if let Some(n) = d.name {
                    self.dns_names.insert(mix(n.hash));
                    self.dns_named += 1;
                    self.dns_len_sum += f64::from(n.len);
                    self.dns_entropy_sum += f64::from(n.entropy);
                    sums[DnsNameLenMax] = sums[DnsNameLenMax].max(f64::from(n.len));
                }
            }
            App::Dns(d) if !out && d.response => {
                sums[DnsAnswers] += 1.0;
                if d.rcode == wire::dns::RCODE_NXDOMAIN {
                    sums[DnsNxdomain] += 1.0;
                }
            }
            App::Mdns { .. } if out => sums[MdnsOut] += 1.0,
            // the miner's own messages out, its pool's in: not a station that forwards them
            App::Mining(side) if out == (side == wire::mining::Side::Miner) => {
                sums[MiningMsgs] += 1.0
            }
            _ => {}
        }
    }

    /// The open window's heaviest peers so far, each way.
    pub fn peers(&self) -> Peers {
        Peers {
            inbound: self.peers_in.top(),
            outbound: self.peers_out.top(),
            probers: self.probers,
        }
    }

    /// Ends the window at `end_ns`: returns its features and resets for the next one.
    /// Probes still waiting for an answer are judged here (see [`Memory`]), even in a window
    /// in which the device sent nothing.
    pub fn close(&mut self, mem: &mut Memory, end_ns: u64) -> Features {
        use Feat::*;
        let mut f = Features::ZERO;
        let probes = mem.waiting.expire(end_ns).saturating_add(self.probes_reset);
        if self.is_empty() && probes == 0 {
            return f;
        }
        let s = &mut self.sums;
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        s[MeanSizeOut] = div(s[BytesOut], s[PktsOut]);
        s[SrcIpsOut] = self.src_ips_out.estimate();
        s[RemoteIps] = self.remote_ips.estimate();
        s[RemoteIpsLocal] = self.remote_ips_local.estimate();
        s[RemoteIpsInternet] = self.remote_ips_internet.estimate();
        s[RemotePorts] = self.remote_ports.estimate();
        s[LocalPorts] = self.local_ports.estimate();
        s[LocalShare] = div(f64::from(self.local_pkts), f64::from(self.ip_pkts));
        s[RemoteIpsIn] = self.remote_ips_in.estimate();
        s[PortsSynIn] = self.ports_syn_in.estimate();
        s[Unanswered] = f64::from(self.pending.unanswered());
        s[Probes] = f64::from(probes);
        s[MaxAttemptsOneService] = f64::from(self.services.max());
        s[ArpReqTargets] = self.arp_targets.estimate();
        s[DnsNames] = self.dns_names.estimate();
        s[DnsNameLenMean] = div(self.dns_len_sum, f64::from(self.dns_named));
        s[DnsEntropyMean] = div(self.dns_entropy_sum, f64::from(self.dns_named));
        s[RemoteIpsSyn] = self.remote_ips_syn.estimate();
        s[IatMean] = div(self.iat_sum, f64::from(self.iat_n));
        for (out, v) in f.0.iter_mut().zip(s.0.iter()) {
            *out = *v as f32;
        }
        self.reset();
        f
    }

    fn reset(&mut self) {
        *self = Accumulator::default();
    }

    /// The accumulator of a device's first window.
    pub fn first() -> Accumulator {
        Accumulator {
            first: true,
            ..Accumulator::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::{flags::*, Tcp};
    use crate::wire::{Mac, Net, Transport};

    const DEVICE: [u8; 4] = [192, 168, 1, 20];

    /// A TCP segment between the device and `remote`:`rport` (device port `lport`), sent by
    /// the device when `out`, at `ms` milliseconds.
    fn seg(
        ms: u64,
        out: bool,
        remote: [u8; 4],
        rport: u16,
        lport: u16,
        flags: u8,
    ) -> Summary<'static> {
        seg_len(ms, out, remote, rport, lport, flags, 0)
    }

    fn seg_len(
        ms: u64,
        out: bool,
        remote: [u8; 4],
        rport: u16,
        lport: u16,
        flags: u8,
        payload_len: u32,
    ) -> Summary<'static> {
        let (src, dst, src_port, dst_port) = if out {
            (DEVICE, remote, lport, rport)
        } else {
            (remote, DEVICE, rport, lport)
        };
        Summary {
            ts_ns: 1_700_000_000_000_000_000 + ms * 1_000_000,
            src_mac: Mac([2, 0, 0, 0, 0, 1]),
            dst_mac: Mac([2, 0, 0, 0, 0, 2]),
            vlan: None,
            wire_len: 54 + payload_len,
            net: Net::Ip {
                src: src.into(),
                dst: dst.into(),
                fragment: false,
            },
            transport: Transport::Tcp(Tcp {
                src_port,
                dst_port,
                flags,
                payload_len,
            }),
            app: App::None,
            issue: None,
        }
    }

    fn dir(out: bool) -> Direction {
        if out {
            Direction::Out
        } else {
            Direction::In
        }
    }

    /// A segment: (ms, sent by the device, remote, remote port, local port, flags).
    type Seg = (u64, bool, [u8; 4], u16, u16, u8);

    /// Feeds segments into one window, which ends 10 s after the first.
    fn window(mem: &mut Memory, segs: &[Seg]) -> Features {
        let mut acc = Accumulator::default();
        for &(ms, out, r, rp, lp, f) in segs {
            acc.add(
                &seg(ms, out, r, rp, lp, f),
                dir(out),
                mem,
                &mut NetPorts::default(),
            );
        }
        acc.close(mem, seg(segs[0].0 + 10_000, true, CLOUD, 0, 0, 0).ts_ns)
    }

    const SCANNED: [u8; 4] = [10, 0, 0, 1];
    const CLOUD: [u8; 4] = [52, 1, 2, 3];

    /// The stations whose probes a device answered: one whose FIN it refused (a reset), one
    /// whose ARP request it answered; not its cloud (whose packets it takes), nor one whose
    /// connection attempt it accepted (a scanner's usual connections are accepted too), nor
    /// one it sent a reset unasked (no device makes itself a target so), nor the station it
    /// sent an unasked reply (an announcement, or a spoof). In its first window, what it was
    /// sent before it was known is lost: a reset answers a probe unseen.
    #[test]
    fn the_stations_whose_probes_it_answered_are_its_probers() {
        let (mem, net) = (&mut Memory::default(), &mut NetPorts::default());
        let mut acc = Accumulator::default();
        let mut add = |acc: &mut Accumulator, s: &Summary<'_>, out: bool| {
            acc.add(s, dir(out), mem, net);
        };
        let scanner = [192, 168, 1, 66];
        add(
            &mut acc,
            &seg(0, false, CLOUD, 443, 40000, ACK | PSH),
            false,
        );
        add(&mut acc, &seg(1, false, scanner, 40001, 23, FIN), false);
        add(&mut acc, &seg(2, true, scanner, 40001, 23, RST | ACK), true);
        let knocker = [192, 168, 1, 65];
        add(&mut acc, &seg(2, false, knocker, 40002, 80, SYN), false);
        add(&mut acc, &seg(2, true, knocker, 40002, 80, SYN | ACK), true);
        let declared = [192, 168, 1, 64];
        add(
            &mut acc,
            &seg(2, true, declared, 40003, 81, RST | ACK),
            true,
        );
        let reply = |to: [u8; 4]| Summary {
            net: Net::Arp(arp::Arp {
                op: arp::REPLY,
                sender_mac: Mac([2, 0, 0, 0, 0, 1]),
                sender_ip: DEVICE,
                target_mac: Mac([2, 0, 0, 0, 0, 2]),
                target_ip: to,
            }),
            transport: Transport::None,
            ..seg(3, true, to, 0, 0, 0)
        };
        let sweeper = [192, 168, 1, 67];
        add(&mut acc, &reply(sweeper), true);
        acc.arp_verdict(ArpVerdict::default());
        let spoofed = [192, 168, 1, 68];
        add(&mut acc, &reply(spoofed), true);
        acc.arp_verdict(ArpVerdict {
            unasked: true,
            ..ArpVerdict::default()
        });
        let probers = |acc: &Accumulator| -> Vec<(IpAddr, Answer)> {
            acc.peers()
                .probers
                .peers()
                .map(|(p, how)| (p.ip.unwrap(), how))
                .collect()
        };
        assert_eq!(
            probers(&acc),
            [
                (IpAddr::from(scanner), Answer::Tcp),
                (IpAddr::from(sweeper), Answer::Arp)
            ]
        );
        acc.close(&mut Memory::default(), 10_000_000_000);
        assert_eq!(
            acc.peers().probers,
            Probers::default(),
            "a new window forgets them"
        );
        let mut first = Accumulator::first();
        add(
            &mut first,
            &seg(2, true, declared, 40003, 81, RST | ACK),
            true,
        );
        assert_eq!(probers(&first), [(IpAddr::from(declared), Answer::Tcp)]);
    }

    #[test]
    fn probes_of_every_flag_combination_count() {
        for flags in [ACK, FIN, 0, FIN | PSH | 0x20, SYN] {
            let mut mem = Memory::default();
            // five ports probed: three answered by a reset, two unanswered
            let mut segs = Vec::new();
            for p in 0..5u16 {
                segs.push((u64::from(p) * 100, true, SCANNED, 1000 + p, 40000, flags));
                if p < 3 {
                    segs.push((u64::from(p) * 100 + 1, false, SCANNED, 1000 + p, 40000, RST));
                }
            }
            let f = window(&mut mem, &segs);
            assert_eq!(f[Feat::Probes], 5.0, "flags {flags:#x}");
            assert_eq!(f[Feat::RstIn], 3.0);
        }
    }

    #[test]
    fn connections_are_not_probes() {
        let mut mem = Memory::default();
        // a connection the device opens, uses and closes; one the remote end opens
        let f = window(
            &mut mem,
            &[
                (0, true, CLOUD, 443, 40000, SYN),
                (30, false, CLOUD, 443, 40000, SYN | ACK),
                (31, true, CLOUD, 443, 40000, ACK),
                (32, true, CLOUD, 443, 40000, PSH | ACK),
                (60, false, CLOUD, 443, 40000, PSH | ACK),
                (61, true, CLOUD, 443, 40000, FIN | ACK),
                (90, false, CLOUD, 443, 40000, FIN | ACK),
                (91, true, CLOUD, 443, 40000, ACK),
                (100, false, SCANNED, 50000, 22, SYN),
                (101, true, SCANNED, 50000, 22, SYN | ACK),
                (102, false, SCANNED, 50000, 22, ACK),
                (103, true, SCANNED, 50000, 22, PSH | ACK),
            ],
        );
        assert_eq!(f[Feat::Probes], 0.0);
        // the last ACK of the close is remembered in the next window too
        let f = window(&mut mem, &[(10_000, true, CLOUD, 443, 40000, ACK)]);
        assert_eq!(f[Feat::Probes], 0.0);
        // a connection seen mid-stream, begun before the device was watched: the remote
        // end answers, so it is a connection; a reset the device sends is no probe
        let f = window(
            &mut mem,
            &[
                (20_000, true, CLOUD, 8883, 41000, PSH | ACK),
                (20_040, false, CLOUD, 8883, 41000, ACK),
                (20_050, true, CLOUD, 8883, 41000, ACK),
                (20_060, true, SCANNED, 7000, 41001, RST),
            ],
        );
        assert_eq!(f[Feat::Probes], 0.0);
        let f = window(&mut mem, &[(30_000, true, CLOUD, 8883, 41000, ACK)]);
        assert_eq!(f[Feat::Probes], 0.0, "adopted");
    }
}
