//! Device personalities: the periodic tasks each kind of device runs, and the conversations
//! (DNS lookup, TCP session, ARP, DHCP, NTP, mDNS) they are made of.

use std::net::Ipv4Addr;

use super::frames::{self, Host};
use super::{Device, Out, Rng, ROUTER, SECOND};
use crate::wire::arp::{REPLY, REQUEST};
use crate::wire::tcp::flags::{ACK, FIN, PSH, RST, SYN};
use crate::wire::{port, Mac};

const MS: u64 = 1_000_000;

/// The kinds of synthesized device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Streams video to a cloud host all the time.
    Camera,
    /// Polls its cloud every 30 s.
    Plug,
    /// Announces itself over mDNS, talks to the plugs, keeps a cloud connection open.
    Hub,
    /// Browses in bursts: many names, many hosts.
    Phone,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Camera, Kind::Plug, Kind::Hub, Kind::Phone];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Camera => "camera",
            Kind::Plug => "plug",
            Kind::Hub => "hub",
            Kind::Phone => "phone",
        }
    }
}

#[derive(Clone, Debug)]
enum What {
    Boot,
    Arp,
    Ntp,
    Stream {
        seq: u32,
        sport: u16,
        connected: bool,
    },
    Poll,
    Mdns,
    HubLocal,
    Browse,
}

/// One periodic task of one device.
#[derive(Clone, Debug)]
pub struct Task {
    dev: Device,
    what: What,
    first: u64,
    next_port: u16,
}

/// The tasks a device runs, with their first wake-up times spread over the first seconds.
pub fn tasks(d: &Device, rng: &mut Rng) -> Vec<Task> {
    let boot = super::START_NS + rng.range(0, 5 * SECOND);
    let mut what = vec![What::Boot, What::Arp, What::Ntp];
    match d.kind {
        Kind::Camera => what.push(What::Stream {
            seq: 1,
            sport: 0,
            connected: false,
        }),
        Kind::Plug => what.push(What::Poll),
        Kind::Hub => what.extend([What::Mdns, What::HubLocal, What::Poll]),
        Kind::Phone => what.push(What::Browse),
    }
    what.into_iter()
        .enumerate()
        .map(|(i, what)| Task {
            dev: d.clone(),
            what,
            first: boot
                + if i == 0 {
                    0
                } else {
                    SECOND + rng.range(0, 20 * SECOND)
                },
            next_port: 40000 + (rng.range(0, 20000) as u16),
        })
        .collect()
}

/// A cloud host of this device: a stable public address per device and purpose.
fn cloud(d: &Device, purpose: u8) -> Ipv4Addr {
    let prefix = match d.kind {
        Kind::Camera => [34, 120],
        Kind::Plug => [52, 28],
        Kind::Hub => [18, 194],
        Kind::Phone => [93, 184],
    };
    Ipv4Addr::new(prefix[0], prefix[1], (d.index % 250) as u8, 10 + purpose)
}

const NAMES: [&str; 12] = [
    "www.example.com",
    "news.example.org",
    "cdn.static-assets.net",
    "api.weather.example",
    "mail.example.com",
    "img.photos.example",
    "video.stream.example",
    "ads.tracker.example",
    "maps.example.net",
    "chat.messenger.example",
    "time.example.org",
    "shop.example.com",
];

impl Task {
    pub fn first_wake(&self) -> u64 {
        self.first
    }

    fn port(&mut self) -> u16 {
        self.next_port = if self.next_port >= 60999 {
            40000
        } else {
            self.next_port + 1
        };
        self.next_port
    }

    fn me(&self) -> Host {
        self.dev.host()
    }

    fn idx(&self) -> Option<u16> {
        Some(self.dev.index)
    }

    /// Runs this wake-up; returns the next.
    pub fn act(&mut self, now: u64, out: &mut Out<'_>) -> Option<u64> {
        match self.what.clone() {
            What::Boot => {
                self.boot(now, out);
                None
            }
            What::Arp => {
                self.arp_router(now, out);
                Some(now + 120 * SECOND + out.rng.range(0, 10 * SECOND))
            }
            What::Ntp => {
                let sport = self.port();
                let me = self.me();
                let server = Ipv4Addr::new(162, 159, 200, 1);
                let q = frames::udp(
                    me.mac,
                    ROUTER.mac,
                    me.ip,
                    server,
                    sport,
                    port::NTP,
                    &frames::ntp_request(),
                );
                out.send(now, q, self.idx(), None);
                let r = frames::udp(
                    ROUTER.mac,
                    me.mac,
                    server,
                    me.ip,
                    port::NTP,
                    sport,
                    &frames::ntp_request(),
                );
                out.send(now + 25 * MS, r, None, self.idx());
                Some(now + 600 * SECOND)
            }
            What::Stream {
                seq,
                sport,
                connected,
            } => Some(self.stream(now, out, seq, sport, connected)),
            What::Poll => {
                let t = if out.rng.chance(1, 10) {
                    self.dns(now, out, "api.cloud-iot.example", cloud(&self.dev, 1))
                } else {
                    now
                };
                self.session(t, out, ROUTER.mac, cloud(&self.dev, 1), 443, &[180], &[320]);
                let period = if self.dev.kind == super::Kind::Hub {
                    15
                } else {
                    30
                };
                Some(now + period * SECOND + out.rng.range(0, 200 * MS))
            }
            What::Mdns => {
                let me = self.me();
                let group = Mac([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
                let msg = frames::mdns_announce(&self.dev.hostname, me.ip);
                let f = frames::udp(
                    me.mac,
                    group,
                    me.ip,
                    Ipv4Addr::new(224, 0, 0, 251),
                    port::MDNS,
                    port::MDNS,
                    &msg,
                );
                out.send(now, f, self.idx(), None);
                Some(now + 60 * SECOND)
            }
            What::HubLocal => {
                // talk to a plug on the LAN, if there is one
                let plugs: Vec<&Device> = out
                    .net
                    .devices
                    .iter()
                    .filter(|d| d.kind == Kind::Plug)
                    .collect();
                if !plugs.is_empty() {
                    let peer = plugs[out.rng.range(0, plugs.len() as u64) as usize].clone();
                    let me = self.me();
                    let sport = self.port();
                    let q = frames::udp(me.mac, peer.mac, me.ip, peer.ip, sport, 6668, &[0x55; 64]);
                    out.send(now, q, self.idx(), Some(peer.index));
                    let r = frames::udp(peer.mac, me.mac, peer.ip, me.ip, 6668, sport, &[0xaa; 96]);
                    out.send(now + 8 * MS, r, Some(peer.index), self.idx());
                }
                Some(now + 20 * SECOND + out.rng.range(0, SECOND))
            }
            What::Browse => {
                let mut t = now;
                for _ in 0..out.rng.range(1, 5) {
                    let name = NAMES[out.rng.range(0, NAMES.len() as u64) as usize];
                    let host = Ipv4Addr::new(
                        93,
                        184,
                        out.rng.range(0, 250) as u8,
                        out.rng.range(1, 250) as u8,
                    );
                    t = self.dns(t, out, name, host);
                    let downs = vec![1400u32; out.rng.range(3, 40) as usize];
                    t = self.session(t, out, ROUTER.mac, host, 443, &[517, 80, 80], &downs);
                }
                Some(now + out.rng.range(5 * SECOND, 60 * SECOND))
            }
        }
    }

    fn boot(&mut self, now: u64, out: &mut Out<'_>) {
        let me = self.me();
        let xid = out.rng.next_u64() as u32;
        let vendor = format!("iot-{}", self.dev.kind.name());
        let msg = frames::dhcp_request(me.mac, xid, me.ip, &self.dev.hostname, &vendor);
        let f = frames::udp(
            me.mac,
            Mac::BROADCAST,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            port::DHCP_CLIENT,
            port::DHCP_SERVER,
            &msg,
        );
        out.send(now, f, self.idx(), None);
        self.arp_router(now + 50 * MS, out);
    }

    fn arp_router(&mut self, now: u64, out: &mut Out<'_>) {
        let me = self.me();
        out.send(
            now,
            frames::arp(REQUEST, me, Mac::UNKNOWN, ROUTER.ip),
            self.idx(),
            None,
        );
        out.send(
            now + MS,
            frames::arp(REPLY, ROUTER, me.mac, me.ip),
            None,
            self.idx(),
        );
    }

    /// A DNS lookup through the router; returns when the answer arrived.
    fn dns(&mut self, now: u64, out: &mut Out<'_>, name: &str, answer: Ipv4Addr) -> u64 {
        let me = self.me();
        let sport = self.port();
        let id = out.rng.next_u64() as u16;
        let q = frames::udp(
            me.mac,
            ROUTER.mac,
            me.ip,
            ROUTER.ip,
            sport,
            port::DNS,
            &frames::dns_query(id, name, 1),
        );
        let mut q = q;
        q.meta.dns_query = Some(name.to_string());
        out.send(now, q, self.idx(), None);
        let rtt = out.rng.range(2 * MS, 30 * MS);
        let r = frames::udp(
            ROUTER.mac,
            me.mac,
            ROUTER.ip,
            me.ip,
            port::DNS,
            sport,
            &frames::dns_response(id, name, 1, Some(answer)),
        );
        out.send(now + rtt, r, None, self.idx());
        now + rtt + MS
    }

    /// A whole TCP session to `remote:dport`: handshake, the request and response segments,
    /// and the close. `via` is the MAC the remote is reached through. Returns its end time.
    #[allow(clippy::too_many_arguments)]
    fn session(
        &mut self,
        now: u64,
        out: &mut Out<'_>,
        via: Mac,
        remote: Ipv4Addr,
        dport: u16,
        ups: &[u32],
        downs: &[u32],
    ) -> u64 {
        let me = self.me();
        let sport = self.port();
        let rtt = out.rng.range(10 * MS, 60 * MS);
        let mut t = now;
        let to_remote = |flags, len: u32| {
            frames::tcp(
                me.mac,
                via,
                me.ip,
                remote,
                sport,
                dport,
                flags,
                1,
                &vec![0u8; len as usize],
            )
        };
        let to_me = |flags, len: u32| {
            frames::tcp(
                via,
                me.mac,
                remote,
                me.ip,
                dport,
                sport,
                flags,
                1,
                &vec![0u8; len as usize],
            )
        };
        out.send(t, to_remote(SYN, 0), self.idx(), None);
        out.send(t + rtt, to_me(SYN | ACK, 0), None, self.idx());
        t += rtt + MS;
        out.send(t, to_remote(ACK, 0), self.idx(), None);
        for &u in ups {
            out.send(t, to_remote(PSH | ACK, u), self.idx(), None);
            t += MS;
        }
        t += rtt;
        for &d in downs {
            out.send(t, to_me(PSH | ACK, d), None, self.idx());
            t += 2 * MS;
        }
        out.send(t, to_remote(ACK, 0), self.idx(), None);
        out.send(t + MS, to_remote(FIN | ACK, 0), self.idx(), None);
        out.send(t + MS + rtt, to_me(FIN | ACK, 0), None, self.idx());
        out.send(t + 2 * MS + rtt, to_remote(ACK, 0), self.idx(), None);
        t + 2 * MS + rtt
    }

    /// One second of a camera's upstream video on a long-lived connection.
    fn stream(
        &mut self,
        now: u64,
        out: &mut Out<'_>,
        seq: u32,
        sport: u16,
        connected: bool,
    ) -> u64 {
        let me = self.me();
        let remote = cloud(&self.dev, 0);
        let (sport, mut t) = if connected {
            (sport, now)
        } else {
            let t = self.dns(now, out, "stream.camcloud.example", remote);
            let sport = self.port();
            out.send(
                t,
                frames::tcp(me.mac, ROUTER.mac, me.ip, remote, sport, 443, SYN, 0, &[]),
                self.idx(),
                None,
            );
            out.send(
                t + 30 * MS,
                frames::tcp(
                    ROUTER.mac,
                    me.mac,
                    remote,
                    me.ip,
                    443,
                    sport,
                    SYN | ACK,
                    0,
                    &[],
                ),
                None,
                self.idx(),
            );
            out.send(
                t + 31 * MS,
                frames::tcp(me.mac, ROUTER.mac, me.ip, remote, sport, 443, ACK, 1, &[]),
                self.idx(),
                None,
            );
            (sport, t + 32 * MS)
        };
        let frames_per_s = 20 + out.rng.range(0, 10);
        let gap = SECOND / (frames_per_s + 1);
        for i in 0..frames_per_s {
            let len = out.rng.range(900, 1400) as usize;
            out.send(
                t,
                frames::tcp(
                    me.mac,
                    ROUTER.mac,
                    me.ip,
                    remote,
                    sport,
                    443,
                    PSH | ACK,
                    seq,
                    &vec![0u8; len],
                ),
                self.idx(),
                None,
            );
            if i % 5 == 4 {
                out.send(
                    t + 20 * MS,
                    frames::tcp(ROUTER.mac, me.mac, remote, me.ip, 443, sport, ACK, 1, &[]),
                    None,
                    self.idx(),
                );
            }
            t += gap;
        }
        // the odd reset-and-reconnect, as real cameras do
        let reconnect = out.rng.chance(1, 600);
        if reconnect {
            out.send(
                t,
                frames::tcp(me.mac, ROUTER.mac, me.ip, remote, sport, 443, RST, seq, &[]),
                self.idx(),
                None,
            );
        }
        self.what = What::Stream {
            seq: seq.wrapping_add(1),
            sport,
            connected: !reconnect,
        };
        now + SECOND
    }
}
