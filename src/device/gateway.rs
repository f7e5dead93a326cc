//! Which MAC is the router: the station behind which the internet's addresses appear.
//!
//! A frame addressed to MAC M but to an internet IP is being sent to a router; once frames to
//! two distinct internet IPs went to M, M is a gateway. (In Linux cooked captures, where the
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
    seen: heapless::Vec<u64, EVIDENCE>,
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

    /// Looks at one packet; returns a MAC that this packet made a gateway.
    pub fn observe(&mut self, s: &Summary<'_>) -> Option<Mac> {
        if !self.auto || self.known.is_full() {
            return None;
        }
        let Net::Ip { src, dst, .. } = s.net else {
            return None;
        };
        let (mac, ip): (Mac, IpAddr) = if s.dst_mac == Mac::UNKNOWN {
            (s.src_mac, src)
        } else {
            (s.dst_mac, dst)
        };
        if !mac.is_unicast() || is_local(&ip) || self.is_gateway(&mac) {
            return None;
        }
        let h = hash_ip(&ip);
        let pos = match self.candidates.iter().position(|c| c.mac == mac) {
            Some(p) => p,
            None => {
                if self.candidates.is_full() {
                    self.candidates.pop_front();
                }
                let _ = self.candidates.push_back(Candidate {
                    mac,
                    seen: heapless::Vec::new(),
                });
                self.candidates.len() - 1
            }
        };
        let c = self.candidates.get_mut(pos).expect("position is in range");
        if !c.seen.contains(&h) {
            let _ = c.seen.push(h);
        }
        if c.seen.len() >= EVIDENCE {
            let _ = self.known.push(mac);
            return Some(mac);
        }
        None
    }
}
