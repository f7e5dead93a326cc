//! Which MAC is the router: the station behind which the internet's addresses appear.
//!
//! A frame addressed to MAC M but to an internet IP is being sent to a router; once frames to
//! two distinct internet IPs went to M, or one while M forwards frames from an internet IP to
//! a LAN one, M is a gateway (a host with a public address of its own receives frames to one
//! internet IP, its own, and sends from it to the internet: it is no router). (In Linux cooked captures, where the
//! destination MAC is not recorded, frames *from* M with internet source IPs count instead.)
//! A flooder that spoofs internet sources is not mistaken for the router: its victims' answers
//! go to the real router. Gateways can also be named in the configuration.

use std::net::IpAddr;

use crate::window::sketch::hash_ip;
use crate::wire::{ip::is_local, Mac, Net, Summary};

/// Distinct internet IPs needed before a MAC is called a gateway.
const EVIDENCE: usize = 2;
/// MACs under observation at once.
const CANDIDATES: usize = 16;
/// Gateways remembered (configured and detected).
const MAX_GATEWAYS: usize = 8;

#[derive(Clone, Debug)]
struct Candidate {
    mac: Mac,
    /// Internet IPs seen behind M, as destinations (or as sources, in cooked captures).
    seen: heapless::Vec<u64, EVIDENCE>,
    /// M sent a frame from an internet IP to a LAN one (it forwards).
    sent_from_internet: bool,
}

/// Gateway detection state.
#[derive(Clone, Debug, Default)]
pub struct Gateways {
    known: heapless::Vec<Mac, MAX_GATEWAYS>,
    candidates: heapless::Deque<Candidate, CANDIDATES>,
    auto: bool,
}

impl Gateways {
    /// Starts with the configured gateways; `auto` turns detection on.
    pub fn new(configured: &[Mac], auto: bool) -> Gateways {
        let mut g = Gateways {
            auto,
            ..Default::default()
        };
        for m in configured.iter().take(MAX_GATEWAYS) {
            let _ = g.known.push(*m);
        }
        g
    }

    pub fn is_gateway(&self, mac: &Mac) -> bool {
        self.known.contains(mac)
    }

    pub fn known(&self) -> &[Mac] {
        &self.known
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
                    self.candidates.pop_front();
                }
                let fresh = Candidate {
                    mac,
                    seen: heapless::Vec::new(),
                    sent_from_internet: false,
                };
                let _ = self.candidates.push_back(fresh);
                self.candidates.len() - 1
            }
        };
        self.candidates.get_mut(pos)
    }

    /// Looks at one packet; returns a MAC that this packet made a gateway.
    pub fn observe(&mut self, s: &Summary<'_>) -> Option<Mac> {
        if !self.auto || self.known.is_full() {
            return None;
        }
        let Net::Ip { src, dst, .. } = s.net else {
            return None;
        };
        let cooked = s.dst_mac == Mac::UNKNOWN;
        // a router forwards the internet's packets to the LAN; a host with a public address
        // of its own (a university's, an IPv6 global one) sends from it to the internet
        if !cooked && !is_local(&src) && is_local(&dst) {
            if let Some(c) = self.candidate(s.src_mac) {
                c.sent_from_internet = true;
            }
        }
        let (mac, ip): (Mac, IpAddr) = if cooked {
            (s.src_mac, src)
        } else {
            (s.dst_mac, dst)
        };
        if is_local(&ip) {
            return None;
        }
        let h = hash_ip(&ip);
        let c = self.candidate(mac)?;
        if !c.seen.contains(&h) {
            let _ = c.seen.push(h);
        }
        let proven =
            c.seen.len() >= EVIDENCE || (!cooked && c.sent_from_internet && !c.seen.is_empty());
        if proven {
            let _ = self.known.push(mac);
            return Some(mac);
        }
        None
    }
}
