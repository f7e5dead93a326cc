//! The LAN's stations: a fixed-capacity table keyed by MAC address, who each one is (IPs,
//! DHCP host name, mDNS name, vendor), and which end of each packet belongs to which device.
//!
//! [`Table::observe`] is the entry point: it attributes a packet to its sender and its
//! receiver (when they are devices, not the gateway), learns identities on the way, and when
//! the table is full evicts the device seen least recently. Memory is fixed at start.

pub mod arp_watch;
pub mod gateway;
pub mod oui;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use heapless::index_map::FnvIndexMap;

use crate::window::ArpVerdict;
use crate::wire::{self, dhcp, App, Mac, Net, Summary};
use arp_watch::ArpWatch;
use gateway::Gateways;

/// Devices tracked at once (a power of two, for the index). Change it here.
pub const MAX_DEVICES: usize = 256;

/// A device's slot in the table (and in the window stage's per-device state).
pub type DeviceId = u16;

/// Addresses remembered per device and family.
const MAX_ADDRS: usize = 4;

/// Who a device is, as far as its traffic tells. Strings come from the network: they are
/// bounded, and non-printable characters are replaced, but they are still untrusted text.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub ipv4: heapless::Vec<Ipv4Addr, MAX_ADDRS>,
    pub ipv6: heapless::Vec<Ipv6Addr, MAX_ADDRS>,
    /// DHCP option 12.
    pub hostname: heapless::String<64>,
    /// DHCP option 60.
    pub vendor_class: heapless::String<64>,
    /// The host name it announces over mDNS.
    pub mdns_name: heapless::String<64>,
}

impl Identity {
    fn learn_ip(&mut self, ip: &IpAddr) {
        if ip.is_unspecified() || ip.is_multicast() || !wire::ip::is_local(ip) {
            return;
        }
        match ip {
            IpAddr::V4(a) if *a != Ipv4Addr::BROADCAST => remember(&mut self.ipv4, *a),
            IpAddr::V6(a) => remember(&mut self.ipv6, *a),
            _ => {}
        }
    }

    fn learn_dhcp(&mut self, d: &dhcp::Dhcp<'_>) {
        if let Some(h) = d.host_name {
            copy_printable(h, &mut self.hostname);
        }
        if let Some(v) = d.vendor_class {
            copy_printable(v, &mut self.vendor_class);
        }
    }

    /// The best name to show a person: DHCP host name, else the mDNS name.
    pub fn name(&self) -> &str {
        if !self.hostname.is_empty() {
            &self.hostname
        } else {
            &self.mdns_name
        }
    }
}

/// Keeps the most recent distinct addresses, newest last.
fn remember<T: PartialEq + Copy, const N: usize>(list: &mut heapless::Vec<T, N>, a: T) {
    if let Some(i) = list.iter().position(|x| *x == a) {
        if i + 1 == list.len() {
            return;
        }
        list.remove(i);
    } else if list.is_full() {
        list.remove(0);
    }
    let _ = list.push(a);
}

/// Copies untrusted bytes as printable ASCII, bounded by the string's capacity.
pub fn copy_printable<const N: usize>(bytes: &[u8], out: &mut heapless::String<N>) {
    out.clear();
    for &b in bytes.iter().take(N) {
        let c = if b.is_ascii_graphic() || b == b' ' {
            b as char
        } else {
            '?'
        };
        let _ = out.push(c);
    }
}

/// One device.
#[derive(Clone, Debug)]
pub struct Device {
    pub mac: Mac,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub packets_out: u64,
    pub packets_in: u64,
    pub identity: Identity,
}

/// One end of a packet that is a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub id: DeviceId,
    /// The device was not in the table before this packet (its slot starts afresh).
    pub new: bool,
}

/// How one packet maps onto devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// The device that sent it.
    pub sender: Option<Seen>,
    /// The device it was addressed to.
    pub receiver: Option<Seen>,
    /// A device that this packet showed to be the gateway: it is no longer a device.
    pub retired: Option<DeviceId>,
    /// What the sender's ARP packet (if any) amounted to.
    pub arp: ArpVerdict,
}

/// Table counters.
#[derive(Clone, Debug, Default)]
pub struct TableStats {
    pub devices_seen: u64,
    pub evicted: u64,
}

/// The device table.
pub struct Table {
    slots: Vec<Option<Device>>,
    index: FnvIndexMap<Mac, DeviceId, MAX_DEVICES>,
    gateways: Gateways,
    arp: ArpWatch,
    stats: TableStats,
}

impl Table {
    /// An empty table with room for `capacity` devices (at most [`MAX_DEVICES`]).
    pub fn new(capacity: usize, gateways: &[Mac], auto_gateway: bool) -> Table {
        let capacity = capacity.clamp(1, MAX_DEVICES);
        Table {
            slots: vec![None; capacity],
            index: FnvIndexMap::new(),
            gateways: Gateways::new(gateways, auto_gateway),
            arp: ArpWatch::default(),
            stats: TableStats::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    pub fn gateways(&self) -> &[Mac] {
        self.gateways.known()
    }

    pub fn get(&self, id: DeviceId) -> Option<&Device> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// The devices in slot order.
    pub fn devices(&self) -> impl Iterator<Item = (DeviceId, &Device)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().map(|d| (i as DeviceId, d)))
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Attributes a packet to its devices, learning identities and gateways on the way.
    pub fn observe(&mut self, s: &Summary<'_>) -> Observation {
        let mut obs = Observation::default();
        if let Some(gw) = self.gateways.observe(s) {
            if let Some(id) = self.index.swap_remove(&gw) {
                self.slots[id as usize] = None;
                obs.retired = Some(id);
            }
        }
        if self.is_device(&s.src_mac) {
            let seen = self.upsert(s.src_mac, s.ts_ns);
            obs.sender = Some(seen);
            if let Net::Arp(a) = &s.net {
                obs.arp = self.arp.observe(a);
            }
            self.learn(seen.id, s);
        }
        let receiver_mac = if s.dst_mac == Mac::UNKNOWN {
            self.mac_of_dst(s)
        } else {
            Some(s.dst_mac)
        };
        if let Some(mac) = receiver_mac.filter(|m| self.is_device(m) && *m != s.src_mac) {
            let seen = self.upsert(mac, s.ts_ns);
            if let Some(d) = self.slots[seen.id as usize].as_mut() {
                d.packets_in += 1;
            }
            obs.receiver = Some(seen);
        }
        // a new device may have taken the slot of one retired above
        if obs.retired.is_some()
            && (obs.sender.map(|x| x.id) == obs.retired
                || obs.receiver.map(|x| x.id) == obs.retired)
        {
            obs.retired = None;
        }
        obs
    }

    fn is_device(&self, mac: &Mac) -> bool {
        mac.is_unicast() && !self.gateways.is_gateway(mac)
    }

    /// For link types without a destination MAC: the device that holds the destination IP.
    fn mac_of_dst(&self, s: &Summary<'_>) -> Option<Mac> {
        let Net::Ip { dst, .. } = s.net else {
            return None;
        };
        self.devices()
            .find(|(_, d)| match dst {
                IpAddr::V4(a) => d.identity.ipv4.contains(&a),
                IpAddr::V6(a) => d.identity.ipv6.contains(&a),
            })
            .map(|(_, d)| d.mac)
    }

    fn upsert(&mut self, mac: Mac, ts_ns: u64) -> Seen {
        if let Some(&id) = self.index.get(&mac) {
            if let Some(d) = self.slots[id as usize].as_mut() {
                d.last_seen_ns = d.last_seen_ns.max(ts_ns);
            }
            return Seen { id, new: false };
        }
        let id = match self.slots.iter().position(Option::is_none) {
            Some(free) => free as DeviceId,
            None => self.evict(),
        };
        self.slots[id as usize] = Some(Device {
            mac,
            first_seen_ns: ts_ns,
            last_seen_ns: ts_ns,
            packets_out: 0,
            packets_in: 0,
            identity: Identity::default(),
        });
        // cannot fail: the index holds one entry per occupied slot, and a slot is free
        let _ = self.index.insert(mac, id);
        self.stats.devices_seen += 1;
        Seen { id, new: true }
    }

    /// Frees the slot of the device seen least recently (ties: the lowest slot).
    fn evict(&mut self) -> DeviceId {
        let (id, mac) = self
            .devices()
            .min_by_key(|(_, d)| d.last_seen_ns)
            .map(|(id, d)| (id, d.mac))
            .expect("evict is only called on a full table");
        self.index.swap_remove(&mac);
        self.slots[id as usize] = None;
        self.stats.evicted += 1;
        id
    }

    fn learn(&mut self, id: DeviceId, s: &Summary<'_>) {
        let Some(d) = self.slots[id as usize].as_mut() else {
            return;
        };
        d.packets_out += 1;
        match &s.net {
            Net::Ip { src, .. } => d.identity.learn_ip(src),
            Net::Arp(a) if a.sender_mac == s.src_mac => d.identity.learn_ip(&wire::v4(a.sender_ip)),
            _ => {}
        }
        match &s.app {
            App::Dhcp(dh) if dh.op == dhcp::BOOTREQUEST && dh.client_mac == s.src_mac => {
                d.identity.learn_dhcp(dh)
            }
            App::Mdns {
                msg,
                host: Some(at),
                ..
            } => {
                let _ = wire::dns::write_name(msg, *at, &mut d.identity.mdns_name);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Net, Transport};

    fn pkt(ts: u64, src: u8, dst: Mac, sip: [u8; 4], dip: [u8; 4]) -> Summary<'static> {
        Summary {
            ts_ns: ts,
            src_mac: Mac([2, 0, 0, 0, 0, src]),
            dst_mac: dst,
            vlan: None,
            wire_len: 60,
            net: Net::Ip {
                src: IpAddr::from(sip),
                dst: IpAddr::from(dip),
                fragment: false,
            },
            transport: Transport::None,
            app: App::None,
            issue: None,
        }
    }

    const ROUTER: Mac = Mac([2, 0, 0, 0, 0, 1]);

    #[test]
    fn gateway_is_found_and_traffic_goes_to_the_device() {
        let mut t = Table::new(8, &[], true);
        // the router answers DNS from its LAN address first: it looks like a device
        let o = t.observe(&pkt(
            1,
            1,
            Mac([2, 0, 0, 0, 0, 9]),
            [192, 168, 1, 1],
            [192, 168, 1, 9],
        ));
        assert!(o.sender.unwrap().new && o.receiver.unwrap().new);
        let router_id = o.sender.unwrap().id;
        // the device talks to two internet hosts through it
        let o = t.observe(&pkt(2, 9, ROUTER, [192, 168, 1, 9], [52, 1, 2, 3]));
        assert_eq!(o.retired, None);
        let o = t.observe(&pkt(3, 9, ROUTER, [192, 168, 1, 9], [52, 1, 2, 4]));
        assert_eq!(o.retired, Some(router_id));
        assert_eq!(t.gateways(), &[ROUTER]);
        assert!(o.receiver.is_none());
        // replies from the internet are the device's incoming traffic
        let o = t.observe(&pkt(
            4,
            1,
            Mac([2, 0, 0, 0, 0, 9]),
            [52, 1, 2, 3],
            [192, 168, 1, 9],
        ));
        assert!(o.sender.is_none());
        assert!(!o.receiver.unwrap().new);
        assert_eq!(t.len(), 1);
        let (_, d) = t.devices().next().unwrap();
        assert_eq!(d.identity.ipv4.as_slice(), &[Ipv4Addr::new(192, 168, 1, 9)]);
    }

    #[test]
    fn full_table_evicts_least_recently_seen() {
        let mut t = Table::new(4, &[ROUTER], false);
        for i in 0..4u8 {
            t.observe(&pkt(
                u64::from(i) + 10,
                10 + i,
                ROUTER,
                [10, 0, 0, 10 + i],
                [1, 1, 1, 1],
            ));
        }
        // device 10 is seen again, so 11 is now the oldest
        t.observe(&pkt(20, 10, ROUTER, [10, 0, 0, 10], [1, 1, 1, 1]));
        let o = t.observe(&pkt(21, 99, ROUTER, [10, 0, 0, 99], [1, 1, 1, 1]));
        assert!(o.sender.unwrap().new);
        assert_eq!(t.stats().evicted, 1);
        assert_eq!(t.len(), 4);
        let macs: Vec<u8> = t.devices().map(|(_, d)| d.mac.0[5]).collect();
        assert!(
            !macs.contains(&11) && macs.contains(&99) && macs.contains(&10),
            "{macs:?}"
        );
    }

    #[test]
    fn a_host_with_a_public_address_is_no_gateway() {
        // a LAN host at 147.229.13.222 talks to a pool on the internet through the router;
        // the router forwards the pool's answers to it
        let mut t = Table::new(8, &[], true);
        let host = Mac([2, 0, 0, 0, 0, 5]);
        for i in 0..5u64 {
            t.observe(&pkt(
                2 * i,
                5,
                ROUTER,
                [147, 229, 13, 222],
                [185, 71, 66, 39],
            ));
            t.observe(&pkt(
                2 * i + 1,
                1,
                host,
                [185, 71, 66, 39],
                [147, 229, 13, 222],
            ));
        }
        assert!(!t.gateways().contains(&host), "{:?}", t.gateways());
        assert!(t.devices().any(|(_, d)| d.mac == host));
        // a router that forwards the internet to a LAN address is one
        t.observe(&pkt(
            20,
            1,
            Mac([2, 0, 0, 0, 0, 9]),
            [52, 1, 2, 3],
            [192, 168, 1, 9],
        ));
        t.observe(&pkt(21, 9, ROUTER, [192, 168, 1, 9], [52, 1, 2, 3]));
        assert_eq!(t.gateways(), &[ROUTER]);
    }

    #[test]
    fn spoofed_sources_do_not_make_a_gateway() {
        let mut t = Table::new(8, &[], true);
        let victim = Mac([2, 0, 0, 0, 0, 7]);
        for i in 0..50u8 {
            t.observe(&pkt(
                u64::from(i),
                66,
                victim,
                [45, 0, i, 1],
                [192, 168, 1, 7],
            ));
        }
        assert!(t.gateways().is_empty());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn printable_copy_is_bounded() {
        let mut s = heapless::String::<8>::new();
        copy_printable(b"<script>\x00alert", &mut s);
        assert_eq!(s.as_str(), "<script>");
        copy_printable(b"a\x01b", &mut s);
        assert_eq!(s.as_str(), "a?b");
    }
}
