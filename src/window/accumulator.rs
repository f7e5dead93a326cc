//! One device's open window: packets go in with [`Accumulator::add`], a [`Features`] vector
//! comes out of [`Accumulator::close`], which also resets it. Fixed size, no allocation.

use std::net::IpAddr;

use super::features::{Feat, Features, F};
use super::sketch::{hash_ip, mix, Distinct, HeaviestKey, Pending};
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
    pending: Pending,
    ip_pkts: u32,
    local_pkts: u32,
    dns_named: u32,
    dns_len_sum: f64,
    dns_entropy_sum: f64,
    last_out_ns: Option<u64>,
    iat_n: u32,
    iat_sum: f64,
    iat_sq: f64,
    last_active_sec: Option<u64>,
    this_second: u32,
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

impl Accumulator {
    /// True when nothing was added since the last close.
    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// Adds one packet, sent by the device (`Out`) or addressed to it (`In`).
    pub fn add(&mut self, s: &Summary<'_>, dir: Direction) {
        use Feat::*;
        let out = dir == Direction::Out;
        let size = f64::from(s.wire_len);
        self.packets += 1;
        let sums = &mut self.sums;
        if out {
            sums[PktsOut] += 1.0;
            sums[BytesOut] += size;
            sums[MaxSizeOut] = sums[MaxSizeOut].max(size);
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
                if out {
                    self.src_ips_out.insert(hash_ip(&src));
                }
                self.ip(&remote, out, fragment);
                self.transport(s, &remote, out);
            }
            Net::Other(_) => {}
        }
    }

    /// Records what the device table concluded about an ARP packet this device sent.
    pub fn arp_verdict(&mut self, v: ArpVerdict) {
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
            self.iat_sq += gap * gap;
        }
        self.last_out_ns = Some(ts_ns);
        let sec = ts_ns / 1_000_000_000;
        if self.last_active_sec != Some(sec) {
            self.last_active_sec = Some(sec);
            self.sums[Feat::ActiveSeconds] += 1.0;
            self.this_second = 0;
        }
        self.this_second += 1;
        let burst = &mut self.sums[Feat::BurstOut];
        *burst = burst.max(f64::from(self.this_second));
    }

    fn arp(&mut self, a: &arp::Arp, out: bool) {
        if out {
            self.sums[Feat::ArpOut] += 1.0;
            if a.op == arp::REQUEST && !a.is_gratuitous() {
                self.arp_targets
                    .insert(mix(u64::from(u32::from_be_bytes(a.target_ip))));
            }
        } else {
            self.sums[Feat::ArpIn] += 1.0;
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

    fn transport(&mut self, s: &Summary<'_>, remote: &IpAddr, out: bool) {
        use Feat::*;
        let sums = &mut self.sums;
        match s.transport {
            Transport::Tcp(t) => {
                let (local_port, remote_port) = if out {
                    (t.src_port, t.dst_port)
                } else {
                    (t.dst_port, t.src_port)
                };
                self.local_ports.insert(mix(u64::from(local_port)));
                if out {
                    self.remote_ports
                        .insert(mix(u64::from(remote_port) | 1 << 17));
                    sums[TcpOut] += 1.0;
                    sums[TcpPayloadOut] += f64::from(t.payload_len);
                    if t.is_syn() {
                        sums[SynOut] += 1.0;
                        self.pending.open(flow_key(remote, remote_port, local_port));
                        self.services
                            .add(mix(hash_ip(remote) ^ u64::from(remote_port)));
                        self.remote_ips_syn.insert(hash_ip(remote));
                        if matches!(remote_port, port::SSH | port::TELNET | port::TELNET_ALT) {
                            sums[LoginAttempts] += 1.0;
                        }
                    }
                    if t.is_syn_ack() {
                        sums[SynAckOut] += 1.0;
                    }
                    if t.is_rst() {
                        sums[RstOut] += 1.0;
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
                        self.pending
                            .answer(flow_key(remote, remote_port, local_port));
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
            _ => {}
        }
    }

    /// Ends the window: returns its features and resets for the next one.
    pub fn close(&mut self) -> Features {
        use Feat::*;
        let mut f = Features::ZERO;
        if self.is_empty() {
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
        s[MaxAttemptsOneService] = f64::from(self.services.max());
        s[ArpReqTargets] = self.arp_targets.estimate();
        s[DnsNames] = self.dns_names.estimate();
        s[DnsNameLenMean] = div(self.dns_len_sum, f64::from(self.dns_named));
        s[DnsEntropyMean] = div(self.dns_entropy_sum, f64::from(self.dns_named));
        s[RemoteIpsSyn] = self.remote_ips_syn.estimate();
        let n = f64::from(self.iat_n);
        let mean = div(self.iat_sum, n);
        s[IatMean] = mean;
        s[IatCv] = if n > 1.0 && mean > 0.0 {
            ((self.iat_sq / n - mean * mean).max(0.0)).sqrt() / mean
        } else {
            0.0
        };
        for (out, v) in f.0.iter_mut().zip(s.0.iter()) {
            *out = *v as f32;
        }
        self.reset();
        f
    }

    fn reset(&mut self) {
        *self = Accumulator::default();
    }
}
