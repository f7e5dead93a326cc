//! The LAN's IPv4-to-MAC bindings as ARP announces them, and the requests still waiting for a
//! reply: enough to tell a reply nobody asked for, and a claim on an address that another
//! station held (ARP spoofing). Both tables are fixed in size.

use heapless::index_map::IndexMap;

use super::Keyed;
use crate::wire::{arp, Mac};

/// What the device table concluded about an ARP packet a device sent (the window stage
/// counts it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArpVerdict {
    /// The sender claimed an IP that another MAC held.
    pub conflict: bool,
    /// A reply nobody asked for (or a gratuitous announcement).
    pub unasked: bool,
}

/// What one ARP packet amounted to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArpSeen {
    pub verdict: ArpVerdict,
    /// The MAC that held the address the sender now claims.
    pub held_by: Option<Mac>,
}

const BINDINGS: usize = 1024;
const REQUESTS: usize = 64;

/// Bindings and recent requests.
#[derive(Clone, Debug, Default)]
pub struct ArpWatch {
    bindings: IndexMap<[u8; 4], Mac, Keyed, BINDINGS>,
    /// (asker IP, asked-for IP) of recent requests, oldest first.
    requests: heapless::Deque<([u8; 4], [u8; 4]), REQUESTS>,
}

impl ArpWatch {
    /// Looks at one ARP packet; says whether its sender did something suspicious.
    pub fn observe(&mut self, a: &arp::Arp) -> ArpSeen {
        let mut seen = ArpSeen::default();
        let v = &mut seen.verdict;
        match a.op {
            arp::REQUEST if !a.is_gratuitous() => {
                if self.requests.is_full() {
                    self.requests.pop_front();
                }
                let _ = self.requests.push_back((a.sender_ip, a.target_ip));
            }
            arp::REPLY => {
                let asked = self
                    .requests
                    .iter()
                    .position(|&(asker, wanted)| asker == a.target_ip && wanted == a.sender_ip);
                match asked {
                    Some(_) if !a.is_gratuitous() => {}
                    _ => v.unasked = true,
                }
            }
            _ => {}
        }
        if a.sender_ip != [0, 0, 0, 0] {
            match self.bindings.get_mut(&a.sender_ip) {
                Some(held) if *held != a.sender_mac => {
                    v.conflict = true;
                    seen.held_by = Some(*held);
                    *held = a.sender_mac;
                }
                Some(_) => {}
                None => {
                    // a full table stops learning new bindings; old ones keep being checked
                    let _ = self.bindings.insert(a.sender_ip, a.sender_mac);
                }
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arp(op: u16, mac: u8, sip: u8, tip: u8) -> arp::Arp {
        arp::Arp {
            op,
            sender_mac: Mac([2, 0, 0, 0, 0, mac]),
            sender_ip: [192, 168, 1, sip],
            target_mac: Mac::UNKNOWN,
            target_ip: [192, 168, 1, tip],
        }
    }

    #[test]
    fn asked_reply_is_fine_unasked_and_spoofed_are_not() {
        let mut w = ArpWatch::default();
        assert_eq!(w.observe(&arp(arp::REQUEST, 10, 10, 1)), ArpSeen::default());
        assert_eq!(w.observe(&arp(arp::REPLY, 1, 1, 10)), ArpSeen::default());
        // the attacker (MAC 66) tells .10 that it is .1
        let s = w.observe(&arp(arp::REPLY, 66, 1, 10));
        let v = s.verdict;
        assert!(v.conflict && !v.unasked, "{v:?}"); // the request is still in the recent list
        assert_eq!(s.held_by, Some(Mac([2, 0, 0, 0, 0, 1])));
        let v = w.observe(&arp(arp::REPLY, 66, 1, 20)).verdict;
        assert!(v.unasked && !v.conflict, "{v:?}"); // nobody at .20 asked; binding already 66
        assert!(
            w.observe(&arp(arp::REPLY, 5, 5, 5)).verdict.unasked,
            "gratuitous"
        );
    }
}
