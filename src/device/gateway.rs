//! Which MAC is a router: the station through which the LAN's stations reach remote
//! addresses.
//!
//! Evidence is two-sided, so that no station can be made a router by others' frames alone,
//! and it is about forwarding, not about having a public address:
//! - *to*: a LAN station (a frame from a LAN address) sent a frame to M addressed to a remote
//!   (internet) IP;
//! - *from*: M sent a frame from a remote IP (a reply it forwards);
//! - and M also speaks from a LAN address of its own (its DNS, DHCP or web interface), or the
//!   two sides name at least two remote IPs each;
//! - and, once the LAN has a router, the two sides are not one remote address P only, unless
//!   M passed on a frame for P that a LAN station had sent it (a relay): a station holding P
//!   that probes the LAN from it and speaks ARP from a LAN address too is answered through
//!   itself, and forwards nothing. (The LAN's first router may well serve one remote address
//!   only: a lock that talks to its cloud and nothing else.)
//!
//! A LAN station with a public address P receives frames for P and sends from P only: it
//! stays a device, and so do two such stations talking (frames between them come from remote
//! addresses). A dual-stack device receives for its global IPv6 address from the router, not
//! from a LAN address. A flooder spoofing internet sources receives nothing for them. A
//! station that forwards the LAN's internet traffic (a router, or a man-in-the-middle) is a
//! router by this evidence; when the LAN already had one, that is news, and
//! [`Gateways::observe`] says so. (In Linux cooked captures, which record no destination MAC,
//! the *from* side alone counts: with a LAN address of M's own, or two remote sources.)
//!
//! Forwarding evidence alone makes only the LAN's *first* router. Once a router is known, a
//! station with the same evidence is taken for a router only when it is corroborated: the
//! DHCP server's reply names its address as the router (option 3) and it is the station first
//! seen holding that address (answering ARP for it, or sending from it), or it has forwarded
//! for [`SUSTAIN_NS`] with at least [`SUSTAIN_PEERS`] internet peers. Until then it stays a
//! device, still watched, and [`GatewayNews::forwarder`] names it once (a man-in-the-middle,
//! or a new router). Frames a station addresses to itself are no evidence.
//!
//! Gateways can be named in the configuration (kept for good); detected ones are at most
//! [`MAX_GATEWAYS`], the one with the oldest evidence making room for a new one, so that
//! detection never stops. Damaged frames never reach this module (the parser drops them).

use std::net::IpAddr;

use crate::window::sketch::hash_ip;
use crate::wire::{arp, dhcp, ip::is_local, App, Mac, Net, Summary};

/// Distinct internet IPs needed on each side before a MAC is called a gateway.
const EVIDENCE: usize = 2;
/// MACs under observation at once.
const CANDIDATES: usize = 16;
/// Gateways remembered (configured and detected).
pub const MAX_GATEWAYS: usize = 8;
/// How long a station that nothing else corroborates must forward the LAN's traffic before
/// it is taken for a router while another is known (a router replaced without DHCP).
pub const SUSTAIN_NS: u64 = 30 * 60 * 1_000_000_000;
/// Distinct internet peers it must have forwarded for by then.
pub const SUSTAIN_PEERS: usize = 16;

#[derive(Clone, Debug)]
struct Candidate {
    mac: Mac,
    /// Remote IPs that LAN stations sent frames to M for.
    to: heapless::Vec<u64, EVIDENCE>,
    /// Remote IPs M sent frames from.
    from: heapless::Vec<u64, EVIDENCE>,
    /// M sent a frame from a LAN address.
    from_lan: bool,
    /// M passed on a frame for a remote IP that a LAN station had sent it for (it relays).
    relayed: bool,
    /// When its forwarding was first proven while another router was known.
    since: Option<u64>,
    /// Internet peers on either side (distinct, up to [`SUSTAIN_PEERS`]).
    peers: heapless::Vec<u64, SUSTAIN_PEERS>,
}

impl Candidate {
    /// Whether everything it "forwarded" is one remote address, received for and sent from,
    /// and it never passed a frame on: a LAN station holding a public address (a scanner
    /// answered by the devices it probes) rather than a relay for the LAN's traffic.
    fn evidence(&self) -> usize {
        self.to.len() + self.from.len() + usize::from(self.from_lan) + usize::from(self.relayed)
    }

    fn only_its_own_address(&self) -> bool {
        self.to.len() == 1 && self.from.len() == 1 && self.to[0] == self.from[0] && !self.relayed
    }
}

#[derive(Clone, Copy, Debug)]
struct Known {
    mac: Mac,
    configured: bool,
    /// Last time (ns) traffic through it was seen.
    last_ns: u64,
}

/// What one packet taught about routers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayNews {
    /// A MAC that this packet showed to be a gateway.
    pub found: Option<Mac>,
    /// It was found while the LAN already had a router: a second router, a router that
    /// changed its MAC, or a station that forwards the LAN's traffic.
    pub another: bool,
    /// A detected gateway forgotten to make room.
    pub forgotten: Option<Mac>,
    /// A station that was shown to forward the LAN's traffic while a router was known, but
    /// that nothing corroborates: it stays a device (said once per candidacy).
    pub forwarder: Option<Mac>,
}

/// Gateway detection state.
#[derive(Clone, Debug, Default)]
pub struct Gateways {
    known: heapless::Vec<Known, MAX_GATEWAYS>,
    macs: heapless::Vec<Mac, MAX_GATEWAYS>,
    candidates: heapless::Deque<Candidate, CANDIDATES>,
    auto: bool,
    /// Whether the DHCP server's router option corroborates a router.
    dhcp: bool,
    /// The router address of the first DHCP server reply that named one.
    dhcp_router: Option<[u8; 4]>,
    /// The station first seen holding that address.
    dhcp_router_mac: Option<Mac>,
}

impl Gateways {
    /// Starts with the configured gateways; `auto` turns detection on.
    pub fn new(configured: &[Mac], auto: bool) -> Gateways {
        let mut g = Gateways {
            auto,
            dhcp: true,
            ..Default::default()
        };
        for m in configured.iter().take(MAX_GATEWAYS) {
            let _ = g.known.push(Known {
                mac: *m,
                configured: true,
                last_ns: 0,
            });
        }
        g.sync();
        g
    }

    fn sync(&mut self) {
        self.macs.clear();
        for k in &self.known {
            let _ = self.macs.push(k.mac);
        }
    }

    /// Whether a DHCP server's router option corroborates a router (on by default).
    pub fn trust_dhcp(&mut self, on: bool) {
        self.dhcp = on;
    }

    /// The router a DHCP server named, and the station first seen holding its address.
    pub fn dhcp_router(&self) -> (Option<[u8; 4]>, Option<Mac>) {
        (self.dhcp_router, self.dhcp_router_mac)
    }

    /// Learns the router address a DHCP server hands out, and who holds it: the first station
    /// seen answering ARP for it or sending from it. A later claim on the address does not
    /// move it (that is ARP spoofing, which the ARP watch reports). Only a known router's
    /// DHCP replies count once one is known: a rogue DHCP server on a device names nobody.
    fn learn_dhcp(&mut self, s: &Summary<'_>) {
        if let (App::Dhcp(d), Net::Ip { src, .. }) = (&s.app, &s.net) {
            let trusted = self.known.is_empty() || self.is_gateway(&s.src_mac);
            if d.op == dhcp::BOOTREPLY && is_local(src) && trusted && self.dhcp_router.is_none() {
                self.dhcp_router = d.router.filter(|r| is_local(&IpAddr::from(*r)));
            }
        }
        let (Some(r), None) = (self.dhcp_router, self.dhcp_router_mac) else {
            return;
        };
        let holder = match &s.net {
            Net::Ip { src, .. } => *src == IpAddr::from(r),
            Net::Arp(a) => {
                a.sender_mac == s.src_mac
                    && a.sender_ip == r
                    && (a.op == arp::REPLY || a.op == arp::REQUEST)
            }
            _ => false,
        };
        if holder && s.src_mac.is_unicast() {
            self.dhcp_router_mac = Some(s.src_mac);
        }
    }

    pub fn is_gateway(&self, mac: &Mac) -> bool {
        self.macs.contains(mac)
    }

    pub fn known(&self) -> &[Mac] {
        &self.macs
    }

    /// The candidate entry for `mac` (made if new, the oldest dropped if full); `None` for
    /// group addresses and known gateways.
    fn candidate(&mut self, mac: Mac) -> Option<&mut Candidate> {
        if !mac.is_unicast() || self.is_gateway(&mac) {
            return None;
        }
        let pos = match self.candidates.iter().position(|c| c.mac == mac) {
            Some(p) => p,
            None => {
                if self.candidates.is_full() {
                    // the one with the least evidence (the oldest of those) makes room: a
                    // burst of damaged or forged source MACs cannot push out a station
                    // whose own traffic was seen on both sides
                    let weakest = (self.candidates.iter().enumerate())
                        .min_by_key(|(_, c)| c.evidence())
                        .map(|(i, _)| i);
                    if let Some(i) = weakest {
                        self.remove_candidate(i);
                    }
                }
                let fresh = Candidate {
                    mac,
                    to: heapless::Vec::new(),
                    from: heapless::Vec::new(),
                    from_lan: false,
                    relayed: false,
                    since: None,
                    peers: heapless::Vec::new(),
                };
                let _ = self.candidates.push_back(fresh);
                self.candidates.len() - 1
            }
        };
        self.candidates.get_mut(pos)
    }

    /// Removes the `i`th candidate, keeping the others in order (oldest first).
    fn remove_candidate(&mut self, i: usize) {
        // a deque has no remove: rotate the ones after it round, then the ones before
        let n = self.candidates.len();
        for k in 0..n {
            if let Some(c) = self.candidates.pop_front() {
                if k != i {
                    let _ = self.candidates.push_back(c);
                }
            }
        }
    }

    fn add(c: &mut Candidate, to: bool, ip: &IpAddr) {
        let h = hash_ip(ip);
        let list = if to { &mut c.to } else { &mut c.from };
        if !list.contains(&h) {
            let _ = list.push(h);
        }
        if !c.peers.contains(&h) {
            let _ = c.peers.push(h);
        }
    }

    /// Takes `mac` as a detected router (known from before a restart), if there is room.
    pub fn know(&mut self, mac: Mac) {
        if !self.is_gateway(&mac) && !self.known.is_full() {
            let _ = self.known.push(Known {
                mac,
                configured: false,
                last_ns: 0,
            });
            self.sync();
        }
    }

    /// Whether `mac` has been seen sending from `ip` (a remote address it holds or forwards).
    pub fn sends_from(&self, mac: Mac, ip: &IpAddr) -> bool {
        let h = hash_ip(ip);
        self.candidates
            .iter()
            .any(|c| c.mac == mac && c.from.contains(&h))
    }

    /// Looks at one packet; says whether it made a MAC a gateway. `lan_speaker` says whether
    /// a MAC is known to speak from a LAN address of its own.
    pub fn observe(&mut self, s: &Summary<'_>, lan_speaker: impl Fn(Mac) -> bool) -> GatewayNews {
        let mut news = GatewayNews::default();
        if self.dhcp {
            self.learn_dhcp(s);
        }
        let (src, dst) = match &s.net {
            Net::Ip { src, dst, .. } => (*src, *dst),
            Net::Arp(a) => {
                // a station answering ARP for a LAN address of its own speaks from the LAN
                let ip = IpAddr::from(a.sender_ip);
                if a.sender_mac == s.src_mac && is_local(&ip) && !ip.is_unspecified() {
                    if let Some(c) = self.candidates.iter_mut().find(|c| c.mac == s.src_mac) {
                        c.from_lan = true;
                    }
                }
                return news;
            }
            _ => return news,
        };
        let cooked = s.dst_mac == Mac::UNKNOWN;
        // traffic through a known gateway keeps it fresh
        for k in self.known.iter_mut() {
            if k.mac == s.src_mac || k.mac == s.dst_mac {
                k.last_ns = k.last_ns.max(s.ts_ns);
            }
        }
        if !self.auto {
            return news;
        }
        let mut touched: heapless::Vec<Mac, 2> = heapless::Vec::new();
        let src_lan = is_local(&src);
        if src_lan {
            // a LAN station's own traffic opens no entry; it marks one that exists
            if let Some(c) = self.candidates.iter_mut().find(|c| c.mac == s.src_mac) {
                c.from_lan |= !src.is_unspecified();
                c.relayed |= !is_local(&dst) && c.to.contains(&hash_ip(&dst));
                let _ = touched.push(s.src_mac);
            }
        } else if let Some(c) = self.candidate(s.src_mac) {
            Gateways::add(c, false, &src);
            let _ = touched.push(s.src_mac);
        }
        // a frame a station addresses to itself is no one else's traffic through it
        if !cooked && src_lan && !is_local(&dst) && s.dst_mac != s.src_mac {
            if let Some(c) = self.candidate(s.dst_mac) {
                Gateways::add(c, true, &dst);
                let _ = touched.push(s.dst_mac);
            }
        }
        let proven = touched.iter().copied().find(|m| {
            self.candidates.iter().any(|c| {
                c.mac == *m
                    && if cooked {
                        // no destination MACs: the forwarding side alone
                        !c.from.is_empty() && (c.from_lan || lan_speaker(c.mac) || c.from.is_full())
                    } else {
                        !c.to.is_empty()
                            && !c.from.is_empty()
                            && (c.from_lan
                                || lan_speaker(c.mac)
                                || (c.to.is_full() && c.from.is_full()))
                            && (self.known.is_empty() || !c.only_its_own_address())
                    }
            })
        });
        let Some(mac) = proven else {
            return news;
        };
        if !self.known.is_empty() && self.dhcp_router_mac != Some(mac) {
            // another router, that nothing corroborates yet: it stays a device unless it
            // keeps forwarding for long, for many peers
            let Some(c) = self.candidates.iter_mut().find(|c| c.mac == mac) else {
                return news;
            };
            if c.since.is_none() {
                news.forwarder = Some(mac);
            }
            let since = *c.since.get_or_insert(s.ts_ns);
            if s.ts_ns.saturating_sub(since) < SUSTAIN_NS || !c.peers.is_full() {
                return news;
            }
        }
        if let Some(i) = self.candidates.iter().position(|c| c.mac == mac) {
            self.remove_candidate(i);
        }
        news.another = !self.known.is_empty();
        if self.known.is_full() {
            // the detected gateway with the oldest evidence makes room
            let oldest = (0..self.known.len())
                .filter(|&i| !self.known[i].configured)
                .min_by_key(|&i| self.known[i].last_ns);
            match oldest {
                Some(i) => news.forgotten = Some(self.known.swap_remove(i).mac),
                None => return news,
            }
        }
        let _ = self.known.push(Known {
            mac,
            configured: false,
            last_ns: s.ts_ns,
        });
        self.sync();
        news.found = Some(mac);
        news
    }
}
