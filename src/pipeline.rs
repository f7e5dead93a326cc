//! The offline data path, wired: capture -> wire -> device -> window. [`Pipeline::packet`]
//! takes one packet through every stage and hands each closed window to the caller (the
//! [`crate::engine`] scores them). The per-packet path allocates nothing.

use crate::capture::{Header, LinkType, Packet};
use crate::config::PipelineConfig;
use crate::device::{Device, DeviceId, Table};
use crate::window::{Closed, Direction, Windows};
use crate::wire::{self, Malformed, MalformedCounts, Summary};

/// Counters of one run.
#[derive(Clone, Debug, Default)]
pub struct PipelineStats {
    pub packets: u64,
    pub bytes_captured: u64,
    pub bytes_wire: u64,
    /// Packets dropped because their link or network header was damaged, per reason.
    pub malformed: MalformedCounts,
    /// Packets kept whose transport or application layer was damaged, per reason.
    pub damaged_upper: MalformedCounts,
    /// Packets that belonged to no device (gateway to gateway, broadcasts from the router...).
    pub unattributed: u64,
    /// Stations forgotten after a single frame (damaged or forged frames).
    pub unconfirmed: u64,
    pub first_ts_ns: Option<u64>,
    pub last_ts_ns: Option<u64>,
}

/// A window that closed, with the device it belongs to.
pub struct WindowOut<'a> {
    pub table: &'a Table,
    pub closed: Closed<'a>,
    /// The device stops being watched (it was found to be a router, or evicted): this is
    /// its open window, closed early so that its incident can end with an event.
    pub last: bool,
    /// The device was evicted from the table to make room for another, which holds its
    /// slot now: this is the device the window belongs to.
    pub evicted: Option<&'a Device>,
}

impl<'a> WindowOut<'a> {
    /// The device the window belongs to (`None` only for a slot that holds none).
    pub fn device(&self) -> Option<&'a Device> {
        self.evicted.or_else(|| self.table.get(self.closed.device))
    }
}

/// The stages from parsing to windows, for one capture.
pub struct Pipeline {
    table: Table,
    windows: Windows,
    stats: PipelineStats,
}

impl Pipeline {
    pub fn new(cfg: &PipelineConfig) -> Result<Pipeline, String> {
        cfg.validate()?;
        let mut table = Table::new(cfg.max_devices, &cfg.gateway_macs()?, cfg.auto_gateway);
        table.trust_dhcp(cfg.dhcp_router);
        let windows = Windows::new(table.capacity(), cfg.window_ns(), cfg.max_gap_windows);
        Ok(Pipeline {
            table,
            windows,
            stats: PipelineStats::default(),
        })
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn windows(&self) -> &Windows {
        &self.windows
    }

    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// Takes one packet through parse, attribution and window update; closed windows (when
    /// this packet's time ends the open window) go to `emit` first.
    #[inline]
    pub fn packet(
        &mut self,
        link: LinkType,
        pkt: &Packet<'_>,
        emit: &mut impl FnMut(WindowOut<'_>),
    ) {
        let parsed = wire::parse(link, pkt);
        self.parsed(pkt.header(), parsed.as_ref().map_err(|m| *m), emit);
    }

    /// [`Pipeline::packet`] for a packet parsed already (by [`crate::ingest`]).
    #[inline]
    pub fn parsed(
        &mut self,
        pkt: Header,
        parsed: Result<&Summary<'_>, Malformed>,
        emit: &mut impl FnMut(WindowOut<'_>),
    ) {
        let st = &mut self.stats;
        st.packets += 1;
        st.bytes_captured += u64::from(pkt.captured);
        st.bytes_wire += u64::from(pkt.wire_len);
        st.first_ts_ns.get_or_insert(pkt.ts_ns);
        st.last_ts_ns = Some(pkt.ts_ns);
        let s = match parsed {
            Ok(s) => s,
            Err(m) => {
                st.malformed.add(m);
                return;
            }
        };
        if let Some(m) = s.issue {
            st.damaged_upper.add(m);
        }
        let table = &self.table;
        let mut closed_any = false;
        self.windows.advance(pkt.ts_ns, &mut |closed| {
            closed_any = true;
            emit(WindowOut {
                table,
                closed,
                last: false,
                evicted: None,
            })
        });
        if closed_any {
            self.forget_unconfirmed(pkt.ts_ns);
        }
        let obs = self.table.observe(s);
        if let Some(id) = obs.retired {
            let table = &self.table;
            self.windows.close_one(id, &mut |closed| {
                emit(WindowOut {
                    table,
                    closed,
                    last: true,
                    evicted: None,
                })
            });
            self.windows.stop(id);
            self.table.retire(id);
        }
        if let Some(id) = obs.evicted {
            // the newcomer's window starts below; the evicted device's ends first
            let table = &self.table;
            let gone = table.evicted();
            self.windows.close_one(id, &mut |closed| {
                emit(WindowOut {
                    table,
                    closed,
                    last: true,
                    evicted: gone,
                })
            });
            self.windows.stop(id);
        }
        let mut attributed = false;
        for (seen, dir) in [(obs.sender, Direction::Out), (obs.receiver, Direction::In)] {
            if let Some(seen) = seen {
                if seen.new {
                    self.windows.start(seen.id);
                }
                self.windows.add(seen.id, s, dir);
                attributed = true;
            }
        }
        if let Some(sender) = obs.sender {
            self.windows.arp_verdict(sender.id, obs.arp);
        }
        if !attributed {
            self.stats.unattributed += 1;
        }
    }

    /// Drops the device with `mac` from the table, its open window with it (a person asked
    /// to forget it); false when it is not there.
    pub fn forget(&mut self, mac: crate::wire::Mac) -> bool {
        let Some(id) = self.table.find_id(mac) else {
            return false;
        };
        self.windows.stop(id);
        self.table.retire(id);
        true
    }

    /// Routers known from before (a restored state): taken as detected routers at once.
    pub fn know_gateways(&mut self, gateways: &[crate::wire::Mac]) {
        self.table.know_gateways(gateways);
    }

    /// Forgets devices that sent one frame and nothing since (a damaged or forged frame),
    /// their open windows with them; run when a window closes.
    fn forget_unconfirmed(&mut self, ts_ns: u64) {
        let mut gone: heapless::Vec<DeviceId, { crate::device::MAX_DEVICES }> =
            heapless::Vec::new();
        for id in self.table.unconfirmed_before(ts_ns) {
            let _ = gone.push(id);
        }
        for id in gone {
            self.windows.stop(id);
            self.table.retire(id);
            self.stats.unconfirmed += 1;
        }
    }

    /// Moves the window clock to `now_ns` without a packet (a quiet network): windows that
    /// ended before it close. Nothing happens before the first packet.
    pub fn tick(&mut self, now_ns: u64, emit: &mut impl FnMut(WindowOut<'_>)) {
        let table = &self.table;
        self.windows.tick(now_ns, &mut |closed| {
            emit(WindowOut {
                table,
                closed,
                last: false,
                evicted: None,
            })
        });
    }

    /// Closes the open window (end of capture).
    pub fn finish(&mut self, emit: &mut impl FnMut(WindowOut<'_>)) {
        let table = &self.table;
        self.windows.finish(&mut |closed| {
            emit(WindowOut {
                table,
                closed,
                last: false,
                evicted: None,
            })
        });
    }

    /// The oldest attribution notice (a new router, a changed next hop, an ARP claim, a MAC
    /// flood) not taken yet.
    pub fn take_notice(&mut self) -> Option<crate::device::Notice> {
        self.table.take_notice()
    }

    /// The MAC of a device, for output.
    pub fn mac(&self, id: DeviceId) -> Option<wire::Mac> {
        self.table.get(id).map(|d| d.mac)
    }
}
