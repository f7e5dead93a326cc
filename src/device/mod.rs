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

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use heapless::index_map::IndexMap;

use crate::wire::{self, dhcp, App, Mac, Net, Summary};
pub use arp_watch::ArpVerdict;
use arp_watch::ArpWatch;
use gateway::Gateways;

/// A device that sent a single frame and nothing more within this long is forgotten without
/// a word: one damaged or forged frame must not leave a device behind.
pub const CONFIRM_WITHIN_NS: u64 = 60_000_000_000;
/// New stations within [`FLOOD_WINDOW_NS`] that make a MAC flood.
pub const FLOOD_MACS: u32 = 100;
/// The span a MAC flood is counted over.
pub const FLOOD_WINDOW_NS: u64 = 60_000_000_000;
/// Attribution notices waiting for the engine.
const NOTICES: usize = 32;

/// Something about who is who on the LAN that a person should hear about at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// `mac` was found to route the LAN's internet traffic while another router was known:
    /// a second router, a router with a new MAC, or a station forwarding the LAN's traffic.
    /// `router`: it was corroborated (DHCP, or long forwarding) and is taken for a router;
    /// else it stays a device, watched (a man-in-the-middle, or a router not corroborated yet).
    Gateway { mac: Mac, ts_ns: u64, router: bool },
    /// The device's frames to the internet now go to `to` instead of `from`.
    NextHop {
        device: Mac,
        from: Mac,
        to: Mac,
        ts_ns: u64,
    },
    /// `mac` claimed (ARP) the IPv4 address `ip` that `held_by` held.
    ArpClaim {
        mac: Mac,
        ip: [u8; 4],
        held_by: Mac,
        ts_ns: u64,
    },
    /// `count` never-seen stations appeared within a minute (a MAC flood), the first from
    /// `first`.
    MacFlood { count: u32, first: Mac, ts_ns: u64 },
}

/// Devices tracked at once (a power of two, for the index). Change it here.
pub const MAX_DEVICES: usize = 256;

/// Hashes the keys of the tables addresses a device chooses go into (the index's MACs, the
/// ARP watch's IPv4 addresses): a short key as one word, keyed per process and mixed once.
/// FNV took fourteen dependent byte steps per MAC lookup (the length prefix and six bytes),
/// a tenth of a packet's cost on a busy LAN, and is not keyed: addresses a device makes up
/// could be chosen to collide and lengthen every lookup.
#[derive(Clone, Copy)]
pub struct Keyed(u64);

impl Default for Keyed {
    fn default() -> Self {
        static KEY: OnceLock<u64> = OnceLock::new();
        Keyed(*KEY.get_or_init(|| RandomState::new().hash_one(0x1075_ad00u64)))
    }
}

impl BuildHasher for Keyed {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher(self.0)
    }
}

/// See [`Keyed`].
pub struct KeyedHasher(u64);

impl Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = crate::math::mix(self.0 ^ u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        // the length prefix of a fixed-size key's bytes: the same for every key
        self.0 = self.0.rotate_left(7) ^ n as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Index = IndexMap<Mac, DeviceId, Keyed, MAX_DEVICES>;

/// A device's slot in the table (and in the window stage's per-device state).
pub type DeviceId = u16;

/// Addresses remembered per device and family.
pub const MAX_ADDRS: usize = 4;

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
        if d.host_name.is_some() {
            // a long name comes in several option 12 instances, joined (RFC 3396)
            copy_printable_parts(d.host_name_parts(), &mut self.hostname);
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

/// Copies untrusted bytes as printable ASCII (anything else becomes `?`), bounded by the
/// string's capacity; a name cut to fit ends with a visible `…`.
pub fn copy_printable<const N: usize>(bytes: &[u8], out: &mut heapless::String<N>) {
    copy_printable_parts(std::iter::once(bytes), out)
}

/// The marker at the end of a name that was cut.
pub const CUT: &str = "\u{2026}";

/// [`copy_printable`] of `parts` joined (an option split over several instances).
pub fn copy_printable_parts<'a, const N: usize>(
    parts: impl Iterator<Item = &'a [u8]> + Clone,
    out: &mut heapless::String<N>,
) {
    out.clear();
    let total: usize = parts.clone().map(<[u8]>::len).sum();
    let cut = total > N;
    let room = if cut { N.saturating_sub(CUT.len()) } else { N };
    for &b in parts.flatten().take(room) {
        let c = if b.is_ascii_graphic() || b == b' ' {
            b as char
        } else {
            '?'
        };
        let _ = out.push(c);
    }
    if cut {
        let _ = out.push_str(CUT);
    }
}

/// One device.
#[derive(Clone, Debug)]
pub struct Device {
    pub mac: Mac,
    /// Where its frames to the internet went last (its router), when seen.
    pub next_hop: Option<Mac>,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub packets_out: u64,
    pub packets_in: u64,
    pub identity: Identity,
}

impl Device {
    /// It sent more than one valid frame: a station, not a damaged or forged frame.
    pub fn confirmed(&self) -> bool {
        self.packets_out >= 2
    }
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
    /// A device that this packet showed to be a gateway: it stops being a device once its
    /// open window is closed ([`Table::retire`]).
    pub retired: Option<DeviceId>,
    /// A device evicted to make room for the sender (the table was full): its slot is the
    /// sender's now, and [`Table::evicted`] holds what it was until the next eviction.
    pub evicted: Option<DeviceId>,
    /// What the sender's ARP packet (if any) amounted to.
    pub arp: ArpVerdict,
}

/// Table counters.
#[derive(Clone, Debug, Default)]
pub struct TableStats {
    pub devices_seen: u64,
    pub evicted: u64,
    /// Frames from stations that had not sent a valid frame before (not devices yet).
    pub first_frames: u64,
    /// MAC floods noticed.
    pub mac_floods: u64,
    /// Notices dropped because the engine did not take them in time.
    pub notices_dropped: u64,
}

/// The device table.
pub struct Table {
    slots: Vec<Option<Device>>,
    index: Index,
    gateways: Gateways,
    arp: ArpWatch,
    stats: TableStats,
    /// New stations in the current flood-counting span: (span start, count, first MAC,
    /// a flood was reported in this span).
    newcomers: (u64, u32, Mac, bool),
    notices: heapless::Deque<Notice, NOTICES>,
    /// The device evicted last, kept while its packet is handled.
    evicted: Option<Device>,
}

impl Table {
    /// An empty table with room for `capacity` devices (at most [`MAX_DEVICES`]).
    pub fn new(capacity: usize, gateways: &[Mac], auto_gateway: bool) -> Table {
        let capacity = capacity.clamp(1, MAX_DEVICES);
        Table {
            slots: vec![None; capacity],
            index: Index::default(),
            gateways: Gateways::new(gateways, auto_gateway),
            arp: ArpWatch::default(),
            stats: TableStats::default(),
            newcomers: (0, 0, Mac::UNKNOWN, false),
            notices: heapless::Deque::new(),
            evicted: None,
        }
    }

    /// Whether the DHCP server's router option corroborates a router (configuration key
    /// `pipeline.dhcp_router`; on by default).
    pub fn trust_dhcp(&mut self, on: bool) {
        self.gateways.trust_dhcp(on);
    }

    /// The router address a DHCP server handed out, and the station holding it.
    pub fn dhcp_router(&self) -> (Option<[u8; 4]>, Option<Mac>) {
        self.gateways.dhcp_router()
    }

    /// Routers known from before (a restored state).
    pub fn know_gateways(&mut self, gateways: &[Mac]) {
        for g in gateways {
            self.gateways.know(*g);
        }
    }

    /// The oldest attribution notice not taken yet.
    pub fn take_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    fn notify(&mut self, n: Notice) {
        if self.notices.is_full() {
            self.notices.pop_front();
            self.stats.notices_dropped += 1;
        }
        let _ = self.notices.push_back(n);
    }

    /// The device that [`Observation::evicted`] named: out of the table, kept until the
    /// next eviction so that its open window and incident can be closed in its name.
    pub fn evicted(&self) -> Option<&Device> {
        self.evicted.as_ref()
    }

    /// Removes a device that [`Observation::retired`] named, once its window is closed.
    pub fn retire(&mut self, id: DeviceId) {
        if let Some(d) = self.slots.get_mut(id as usize).and_then(Option::take) {
            self.index.swap_remove(&d.mac);
        }
    }

    /// Counts a station's first frame towards a MAC flood.
    fn newcomer(&mut self, mac: Mac, ts_ns: u64) {
        self.stats.first_frames += 1;
        let (start, count, first, reported) = &mut self.newcomers;
        if ts_ns >= *start + FLOOD_WINDOW_NS {
            *start = ts_ns;
            *count = 0;
            *first = mac;
            *reported = false;
        }
        *count += 1;
        if *count >= FLOOD_MACS && !*reported {
            *reported = true;
            self.stats.mac_floods += 1;
            let n = Notice::MacFlood {
                count: *count,
                first: *first,
                ts_ns,
            };
            self.notify(n);
        }
    }

    /// Devices that sent one frame and nothing since [`CONFIRM_WITHIN_NS`] before `ts_ns`:
    /// the caller drops their windows and forgets them ([`Table::retire`]).
    pub fn unconfirmed_before(&self, ts_ns: u64) -> impl Iterator<Item = DeviceId> + '_ {
        self.devices()
            .filter(move |(_, d)| {
                !d.confirmed() && d.first_seen_ns.saturating_add(CONFIRM_WITHIN_NS) < ts_ns
            })
            .map(|(id, _)| id)
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

    /// The slot of the device with this MAC, if it is one.
    pub fn find_id(&self, mac: Mac) -> Option<DeviceId> {
        self.index.get(&mac).copied()
    }

    /// The device with this MAC, if it is one.
    pub fn find(&self, mac: Mac) -> Option<&Device> {
        self.index.get(&mac).and_then(|&id| self.get(id))
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

    /// Attributes a packet to its devices, learning identities and gateways on the way. A
    /// station becomes a device with its first valid frame, but is only *confirmed* (announced,
    /// its route watched) by its second; frames to a station are its only once it
    /// is a device (receivers are never made from others' frames).
    pub fn observe(&mut self, s: &Summary<'_>) -> Observation {
        let mut obs = Observation::default();
        let (index, slots) = (&self.index, &self.slots);
        let news = self.gateways.observe(s, |m| {
            index
                .get(&m)
                .and_then(|&id| slots[id as usize].as_ref())
                .is_some_and(|d| !d.identity.ipv4.is_empty() || !d.identity.ipv6.is_empty())
        });
        if let Some(gw) = news.found {
            if let Some(&id) = self.index.get(&gw) {
                obs.retired = Some(id);
            }
            if news.another {
                self.notify(Notice::Gateway {
                    mac: gw,
                    ts_ns: s.ts_ns,
                    router: true,
                });
            }
        }
        if let Some(mac) = news.forwarder {
            self.notify(Notice::Gateway {
                mac,
                ts_ns: s.ts_ns,
                router: false,
            });
        }
        if let Net::Arp(a) = &s.net {
            // every station's ARP is watched, routers' included
            let v = self.arp.observe(a);
            if let Some(held_by) = v.held_by {
                self.notify(Notice::ArpClaim {
                    mac: a.sender_mac,
                    ip: a.sender_ip,
                    held_by,
                    ts_ns: s.ts_ns,
                });
            }
            obs.arp = v.verdict;
        }
        if self.is_device(&s.src_mac) {
            let (seen, evicted) = self.upsert(s.src_mac, s.ts_ns);
            obs.evicted = evicted;
            if seen.new {
                self.newcomer(s.src_mac, s.ts_ns);
            }
            obs.sender = Some(seen);
            self.learn(seen.id, s);
        } else {
            obs.arp = ArpVerdict::default();
        }
        let receiver_mac = if s.dst_mac == Mac::UNKNOWN {
            self.mac_of_dst(s)
        } else {
            Some(s.dst_mac)
        };
        if let Some(mac) = receiver_mac.filter(|m| self.is_device(m) && *m != s.src_mac) {
            if let Some(&id) = self.index.get(&mac) {
                if let Some(d) = self.slots[id as usize].as_mut() {
                    d.packets_in += 1;
                    d.last_seen_ns = d.last_seen_ns.max(s.ts_ns);
                }
                obs.receiver = Some(Seen { id, new: false });
            }
        }
        if obs.retired.is_some()
            && (obs.sender.map(|x| x.id) == obs.retired
                || obs.receiver.map(|x| x.id) == obs.retired)
        {
            // the frame that proved it a router is not the device's any more
            if obs.sender.map(|x| x.id) == obs.retired {
                obs.sender = None;
            }
            if obs.receiver.map(|x| x.id) == obs.retired {
                obs.receiver = None;
            }
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

    /// The device `mac`, made if new; and the slot it took from an evicted device, if any.
    fn upsert(&mut self, mac: Mac, ts_ns: u64) -> (Seen, Option<DeviceId>) {
        if let Some(&id) = self.index.get(&mac) {
            if let Some(d) = self.slots[id as usize].as_mut() {
                d.last_seen_ns = d.last_seen_ns.max(ts_ns);
            }
            return (Seen { id, new: false }, None);
        }
        let (id, evicted) = match self.slots.iter().position(Option::is_none) {
            Some(free) => (free as DeviceId, None),
            None => {
                let id = self.evict();
                (id, Some(id))
            }
        };
        self.slots[id as usize] = Some(Device {
            mac,
            next_hop: None,
            first_seen_ns: ts_ns,
            last_seen_ns: ts_ns,
            packets_out: 0,
            packets_in: 0,
            identity: Identity::default(),
        });
        // cannot fail: the index holds one entry per occupied slot, and a slot is free
        let _ = self.index.insert(mac, id);
        self.stats.devices_seen += 1;
        (Seen { id, new: true }, evicted)
    }

    /// Frees the slot of a device that never confirmed itself, else of the device seen least
    /// recently (ties: the lowest slot): a flood of one-frame MACs churns among itself.
    fn evict(&mut self) -> DeviceId {
        let (id, mac) = self
            .devices()
            .min_by_key(|(_, d)| (d.confirmed(), d.last_seen_ns))
            .map(|(id, d)| (id, d.mac))
            .expect("evict is only called on a full table");
        self.index.swap_remove(&mac);
        self.evicted = self.slots[id as usize].take();
        self.stats.evicted += 1;
        id
    }

    fn learn(&mut self, id: DeviceId, s: &Summary<'_>) {
        let Some(d) = self.slots[id as usize].as_mut() else {
            return;
        };
        d.packets_out += 1;
        // names and addresses are learned from the first frame (a DHCP request often is
        // one); a station that sends nothing more is forgotten with them within a minute
        let mut hop_change = None;
        if let Net::Ip { dst, .. } = &s.net {
            // a remote address the next station sends from itself is that station's own
            // (a LAN host with a public address), not a route
            // (asked last: the route is seldom news)
            let routed = || {
                !wire::ip::is_local(dst)
                    && s.dst_mac != Mac::UNKNOWN
                    && !self.gateways.sends_from(s.dst_mac, dst)
            };
            // one frame is no route: it may be damaged or forged
            if d.next_hop != Some(s.dst_mac) && d.confirmed() && routed() {
                if let Some(h) = d.next_hop {
                    hop_change = Some((d.mac, h, s.dst_mac));
                }
                d.next_hop = Some(s.dst_mac);
            }
        }
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
        if let Some((device, from, to)) = hop_change {
            self.notify(Notice::NextHop {
                device,
                from,
                to,
                ts_ns: s.ts_ns,
            });
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

    fn mac(n: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, n])
    }

    /// A LAN with a router (MAC 1, 192.168.1.1) that devices 9 and 10 use: each device
    /// talks to two internet hosts and gets answers; the router speaks from its LAN address.
    fn lan() -> Table {
        let mut t = Table::new(16, &[], true);
        let mut ts = 0;
        for d in [9u8, 10] {
            for host in [3u8, 4] {
                ts += 1;
                see(
                    &mut t,
                    &pkt(ts, d, ROUTER, [192, 168, 1, d], [52, 1, 2, host]),
                );
                ts += 1;
                see(
                    &mut t,
                    &pkt(ts, 1, mac(d), [52, 1, 2, host], [192, 168, 1, d]),
                );
            }
            ts += 1;
            see(
                &mut t,
                &pkt(ts, 1, mac(d), [192, 168, 1, 1], [192, 168, 1, d]),
            );
        }
        t
    }

    /// What the pipeline does with a packet's observation: a device found to be a router
    /// leaves the table.
    fn see(t: &mut Table, s: &Summary<'_>) -> Observation {
        let o = t.observe(s);
        if let Some(id) = o.retired {
            t.retire(id);
        }
        o
    }

    fn notices(t: &mut Table) -> Vec<Notice> {
        std::iter::from_fn(|| t.take_notice()).collect()
    }

    #[test]
    fn the_router_is_found_from_both_sides_and_its_traffic_goes_to_the_devices() {
        let mut t = lan();
        assert_eq!(t.gateways(), &[ROUTER]);
        assert!(t.find(ROUTER).is_none());
        assert!(notices(&mut t).is_empty(), "the first router is no news");
        // replies from the internet are the device's incoming traffic
        let o = see(
            &mut t,
            &pkt(100, 1, mac(9), [52, 1, 2, 3], [192, 168, 1, 9]),
        );
        assert!(o.sender.is_none());
        assert!(!o.receiver.unwrap().new);
        assert_eq!(t.len(), 2);
        let d = t.find(mac(9)).unwrap();
        assert_eq!(d.identity.ipv4.as_slice(), &[Ipv4Addr::new(192, 168, 1, 9)]);
        assert_eq!(d.next_hop, Some(ROUTER));
    }

    #[test]
    fn a_lan_station_with_a_public_address_stays_a_device_while_it_scans() {
        let mut t = lan();
        // 45.1.1.1 on the LAN (MAC 66), which also speaks from a LAN address of its own,
        // scans the devices; they answer it, through no one but itself
        see(
            &mut t,
            &pkt(999, 66, mac(9), [192, 168, 1, 66], [192, 168, 1, 9]),
        );
        for (i, d) in (0..200u64).zip([9u8, 10].iter().cycle()) {
            see(
                &mut t,
                &pkt(1000 + i, 66, mac(*d), [45, 1, 1, 1], [192, 168, 1, *d]),
            );
            see(
                &mut t,
                &pkt(1000 + i, *d, mac(66), [192, 168, 1, *d], [45, 1, 1, 1]),
            );
        }
        assert_eq!(t.gateways(), &[ROUTER]);
        assert!(t.find(mac(66)).is_some(), "the scanner is watched");
        // and two public-address stations talking to each other both stay devices
        for i in 0..50u64 {
            see(
                &mut t,
                &pkt(2000 + i, 70, mac(71), [46, 1, 1, 1], [47, 1, 1, 1]),
            );
            see(
                &mut t,
                &pkt(2000 + i, 71, mac(70), [47, 1, 1, 1], [46, 1, 1, 1]),
            );
        }
        assert_eq!(t.gateways(), &[ROUTER]);
        assert!(t.find(mac(70)).is_some() && t.find(mac(71)).is_some());
        assert!(notices(&mut t).is_empty());
    }

    #[test]
    fn a_forwarding_man_in_the_middle_is_news_and_the_router_stays() {
        let mut t = lan();
        let mitm = mac(66);
        // it speaks from a LAN address of its own, then device 9's internet traffic goes
        // through it and it forwards the answers
        see(
            &mut t,
            &pkt(499, 66, mac(9), [192, 168, 1, 66], [192, 168, 1, 9]),
        );
        see(
            &mut t,
            &pkt(500, 66, mac(9), [192, 168, 1, 66], [192, 168, 1, 9]),
        );
        see(&mut t, &pkt(501, 9, mitm, [192, 168, 1, 9], [52, 1, 2, 3]));
        // it passes the frame on to the router (a man-in-the-middle relays, or the device's
        // connection dies), and the answer back to the device
        see(
            &mut t,
            &pkt(501, 66, ROUTER, [192, 168, 1, 9], [52, 1, 2, 3]),
        );
        see(
            &mut t,
            &pkt(502, 66, mac(9), [52, 1, 2, 3], [192, 168, 1, 9]),
        );
        assert_eq!(t.gateways(), &[ROUTER], "the router stays the only router");
        assert!(
            t.find(mitm).is_some(),
            "the man-in-the-middle is still watched"
        );
        let n = notices(&mut t);
        assert!(
            n.contains(&Notice::NextHop {
                device: mac(9),
                from: ROUTER,
                to: mitm,
                ts_ns: 501
            }),
            "{n:?}"
        );
        assert!(
            n.contains(&Notice::Gateway {
                mac: mitm,
                ts_ns: 502,
                router: false
            }),
            "{n:?}"
        );
        // it keeps forwarding: said once, and it stays a device
        for i in 0..20u8 {
            let ts = 600 + u64::from(i);
            see(&mut t, &pkt(ts, 9, mitm, [192, 168, 1, 9], [52, 1, 3, i]));
            see(
                &mut t,
                &pkt(ts, 66, mac(9), [52, 1, 3, i], [192, 168, 1, 9]),
            );
        }
        assert!(notices(&mut t).is_empty());
        assert_eq!(t.gateways(), &[ROUTER]);
    }

    #[test]
    fn a_station_cannot_make_itself_a_router_with_frames_to_itself() {
        let mut t = Table::new(16, &[], true);
        for i in 0..20u8 {
            let ts = u64::from(i) * 10;
            // from its LAN address, to itself, for the internet; then from the internet
            see(
                &mut t,
                &pkt(ts, 66, mac(66), [192, 168, 1, 66], [52, 1, 2, i]),
            );
            see(
                &mut t,
                &pkt(ts + 1, 66, mac(9), [52, 1, 2, i], [192, 168, 1, 9]),
            );
        }
        assert!(t.gateways().is_empty());
        assert!(t.find(mac(66)).is_some());
    }

    /// A DHCP server's ack from `server` (at `sip`) naming `router` as the LAN's router.
    fn dhcp_ack(server: u8, sip: [u8; 4], router: [u8; 4]) -> Vec<u8> {
        let ack =
            crate::synth::frames::dhcp_ack(mac(9), 7, Ipv4Addr::new(192, 168, 1, 9), router.into());
        crate::synth::frames::udp(
            mac(server),
            Mac::BROADCAST,
            sip.into(),
            Ipv4Addr::BROADCAST,
            67,
            68,
            &ack,
        )
        .bytes
    }

    fn parsed(bytes: &[u8], ts: u64) -> Summary<'_> {
        let p = crate::capture::Packet {
            ts_ns: ts,
            data: bytes,
            wire_len: bytes.len() as u32,
        };
        crate::wire::parse(crate::capture::LinkType::Ethernet, &p).unwrap()
    }

    #[test]
    fn the_router_the_dhcp_server_names_is_a_router_at_once_and_an_impostor_is_not() {
        let mut t = lan();
        // the DHCP server (the router, at .1) names .2 as the LAN's router, and MAC 78
        // answers ARP for .2 first
        // a rogue DHCP server on a device names itself: nobody listens
        let rogue = dhcp_ack(66, [192, 168, 1, 66], [192, 168, 1, 66]);
        see(&mut t, &parsed(&rogue, 799));
        assert_eq!(t.dhcp_router(), (None, None));
        let ack = dhcp_ack(1, [192, 168, 1, 1], [192, 168, 1, 2]);
        see(&mut t, &parsed(&ack, 800));
        let arp = crate::synth::frames::arp(
            crate::wire::arp::REPLY,
            crate::synth::frames::Host {
                mac: mac(78),
                ip: Ipv4Addr::new(192, 168, 1, 2),
            },
            mac(9),
            Ipv4Addr::new(192, 168, 1, 9),
        );
        see(&mut t, &parsed(&arp.bytes, 801));
        assert_eq!(t.dhcp_router(), (Some([192, 168, 1, 2]), Some(mac(78))));
        // an impostor claims .2 afterwards: ARP spoofing, and the binding stays
        let spoof = crate::synth::frames::arp(
            crate::wire::arp::REPLY,
            crate::synth::frames::Host {
                mac: mac(66),
                ip: Ipv4Addr::new(192, 168, 1, 2),
            },
            mac(9),
            Ipv4Addr::new(192, 168, 1, 9),
        );
        see(&mut t, &parsed(&spoof.bytes, 802));
        assert_eq!(t.dhcp_router().1, Some(mac(78)));
        // both forward device 9's traffic
        for (m, ts) in [(78u8, 810u64), (66, 820)] {
            for (peer, at) in [(3u8, ts), (4, ts + 2)] {
                see(
                    &mut t,
                    &pkt(at, 9, mac(m), [192, 168, 1, 9], [52, 1, 2, peer]),
                );
                see(
                    &mut t,
                    &pkt(at + 1, m, mac(9), [52, 1, 2, peer], [192, 168, 1, 9]),
                );
            }
        }
        assert_eq!(t.gateways(), &[ROUTER, mac(78)], "the named router only");
        assert!(
            t.find(mac(66)).is_some(),
            "the impostor stays a watched device"
        );
        let n = notices(&mut t);
        assert!(
            n.contains(&Notice::Gateway {
                mac: mac(78),
                ts_ns: 812,
                router: true
            }),
            "{n:?}"
        );
        assert!(
            n.contains(&Notice::Gateway {
                mac: mac(66),
                ts_ns: 822,
                router: false
            }),
            "{n:?}"
        );
        assert!(n
            .iter()
            .any(|x| matches!(x, Notice::ArpClaim { mac: m, .. } if *m == mac(66))));
        // with the DHCP option not trusted, the named router is not corroborated
        let mut t = lan();
        t.trust_dhcp(false);
        see(&mut t, &parsed(&ack, 800));
        see(&mut t, &parsed(&arp.bytes, 801));
        assert_eq!(t.dhcp_router(), (None, None));
    }

    #[test]
    fn a_router_replaced_by_a_new_mac_is_news() {
        let mut t = lan();
        let new = mac(77);
        see(
            &mut t,
            &pkt(599, 77, mac(9), [192, 168, 1, 1], [192, 168, 1, 9]),
        );
        see(
            &mut t,
            &pkt(600, 77, mac(9), [192, 168, 1, 1], [192, 168, 1, 9]),
        );
        // one internet peer through it is not yet forwarding (a station holding that
        // address looks the same); a second one is
        see(&mut t, &pkt(601, 9, new, [192, 168, 1, 9], [52, 1, 2, 3]));
        see(
            &mut t,
            &pkt(602, 77, mac(9), [52, 1, 2, 3], [192, 168, 1, 9]),
        );
        assert!(notices(&mut t)
            .iter()
            .all(|x| !matches!(x, Notice::Gateway { .. })));
        see(&mut t, &pkt(603, 9, new, [192, 168, 1, 9], [52, 1, 2, 4]));
        see(
            &mut t,
            &pkt(604, 77, mac(9), [52, 1, 2, 4], [192, 168, 1, 9]),
        );
        let n = notices(&mut t);
        assert!(
            n.contains(&Notice::Gateway {
                mac: new,
                ts_ns: 603,
                router: false
            }),
            "{n:?}"
        );
        assert!(t.find(new).is_some(), "watched until corroborated");
        // it keeps forwarding, for many peers: after half an hour it is the router
        let mut ts = 700;
        for i in 0..gateway::SUSTAIN_PEERS as u8 {
            ts += 60_000_000_000;
            see(&mut t, &pkt(ts, 9, new, [192, 168, 1, 9], [52, 1, 3, i]));
            see(
                &mut t,
                &pkt(ts + 1, 77, mac(9), [52, 1, 3, i], [192, 168, 1, 9]),
            );
        }
        assert!(!t.gateways().contains(&new), "16 minutes is not enough");
        while !t.gateways().contains(&new) && ts < 700 + 2 * gateway::SUSTAIN_NS {
            ts += 60_000_000_000;
            see(&mut t, &pkt(ts, 9, new, [192, 168, 1, 9], [52, 1, 3, 1]));
            see(
                &mut t,
                &pkt(ts + 1, 77, mac(9), [52, 1, 3, 1], [192, 168, 1, 9]),
            );
        }
        assert!(t.gateways().contains(&new) && t.find(new).is_none());
        let took = ts + 1 - 603;
        assert!(
            (gateway::SUSTAIN_NS..gateway::SUSTAIN_NS + 60_000_000_002).contains(&took),
            "{took}"
        );
        let n = notices(&mut t);
        assert!(
            n.iter()
                .any(|x| matches!(x, Notice::Gateway { mac, router: true, .. } if *mac == new)),
            "{n:?}"
        );
    }

    #[test]
    fn one_frame_confirms_nobody_and_receivers_are_not_made_from_others_frames() {
        let mut t = lan();
        // a frame with a flipped MAC bit (mac 89 instead of 9) carrying device 9's address
        let o = see(
            &mut t,
            &pkt(700, 89, ROUTER, [192, 168, 1, 9], [52, 1, 2, 3]),
        );
        let phantom = t.get(o.sender.unwrap().id).unwrap();
        assert!(!phantom.confirmed() && phantom.next_hop.is_none());
        assert_eq!(t.unconfirmed_before(700 + CONFIRM_WITHIN_NS + 1).count(), 1);
        // frames addressed to a station that never sent make no device
        let o = see(
            &mut t,
            &pkt(701, 9, mac(123), [192, 168, 1, 9], [192, 168, 1, 123]),
        );
        assert!(o.receiver.is_none() && t.find(mac(123)).is_none());
    }

    #[test]
    fn a_mac_flood_is_one_notice_and_confirmed_devices_survive_it() {
        let mut t = Table::new(8, &[ROUTER], false);
        for d in [9u8, 10] {
            see(&mut t, &pkt(1, d, ROUTER, [192, 168, 1, d], [52, 1, 2, 3]));
            see(&mut t, &pkt(2, d, ROUTER, [192, 168, 1, d], [52, 1, 2, 3]));
        }
        for i in 0..2000u32 {
            let mut p = pkt(10 + u64::from(i), 0, ROUTER, [10, 9, 0, 1], [10, 9, 0, 2]);
            p.src_mac = Mac([0x0a, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            see(&mut t, &p);
        }
        let floods = notices(&mut t)
            .into_iter()
            .filter(|n| matches!(n, Notice::MacFlood { .. }))
            .count();
        assert_eq!(floods, 1);
        assert!(t.find(mac(9)).is_some() && t.find(mac(10)).is_some());
        assert_eq!(t.stats().mac_floods, 1);
    }

    #[test]
    fn full_table_evicts_least_recently_seen() {
        let mut t = Table::new(4, &[ROUTER], false);
        for i in 0..4u8 {
            for _ in 0..2 {
                let ts = u64::from(i) + 10;
                see(
                    &mut t,
                    &pkt(ts, 10 + i, ROUTER, [10, 0, 0, 10 + i], [1, 1, 1, 1]),
                );
            }
        }
        // device 10 is seen again, so 11 is now the oldest
        see(&mut t, &pkt(20, 10, ROUTER, [10, 0, 0, 10], [1, 1, 1, 1]));
        let o = see(&mut t, &pkt(21, 99, ROUTER, [10, 0, 0, 99], [1, 1, 1, 1]));
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
    fn spoofed_sources_do_not_make_a_gateway() {
        let mut t = Table::new(8, &[], true);
        let victim = mac(7);
        see(&mut t, &pkt(0, 7, ROUTER, [192, 168, 1, 7], [52, 0, 0, 1]));
        for i in 0..50u8 {
            see(
                &mut t,
                &pkt(
                    u64::from(i) + 1,
                    66,
                    victim,
                    [45, 0, i, 1],
                    [192, 168, 1, 7],
                ),
            );
        }
        assert!(t.gateways().is_empty());
        assert!(t.find(mac(66)).is_some() && t.find(victim).is_some());
    }

    #[test]
    fn printable_copy_is_bounded() {
        let mut s = heapless::String::<8>::new();
        copy_printable(b"<script>\x00alert", &mut s);
        assert_eq!(s.as_str(), "<scri\u{2026}", "a cut name is marked");
        copy_printable(b"12345678", &mut s);
        assert_eq!(s.as_str(), "12345678", "a name that fits is whole");
        copy_printable(b"a\x01b", &mut s);
        assert_eq!(s.as_str(), "a?b");
    }
}
