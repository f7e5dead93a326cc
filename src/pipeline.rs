//! The offline data path, wired: capture -> wire -> device -> window. [`Pipeline::packet`]
//! takes one packet through every stage and hands each closed window to the caller;
//! [`run_capture`] does that for a whole file. The per-packet path allocates nothing.

use std::path::Path;

use crate::capture::{CaptureError, LinkType, Packet, Source};
use crate::config::Config;
use crate::device::{DeviceId, Table};
use crate::progress::Progress;
use crate::window::{Closed, Direction, Windows};
use crate::wire::{self, MalformedCounts};

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
    pub first_ts_ns: Option<u64>,
    pub last_ts_ns: Option<u64>,
}

/// A window that closed, with the device it belongs to.
pub struct WindowOut<'a> {
    pub table: &'a Table,
    pub closed: Closed<'a>,
}

/// The stages from parsing to windows, for one capture.
pub struct Pipeline {
    table: Table,
    windows: Windows,
    stats: PipelineStats,
}

impl Pipeline {
    pub fn new(cfg: &Config) -> Result<Pipeline, String> {
        cfg.validate()?;
        let table = Table::new(cfg.max_devices, &cfg.gateway_macs()?, cfg.auto_gateway);
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
        let st = &mut self.stats;
        st.packets += 1;
        st.bytes_captured += pkt.data.len() as u64;
        st.bytes_wire += u64::from(pkt.wire_len);
        st.first_ts_ns.get_or_insert(pkt.ts_ns);
        st.last_ts_ns = Some(pkt.ts_ns);
        let s = match wire::parse(link, pkt) {
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
        self.windows
            .advance(pkt.ts_ns, &mut |closed| emit(WindowOut { table, closed }));
        let obs = self.table.observe(&s);
        if let Some(id) = obs.retired {
            self.windows.stop(id);
        }
        let mut attributed = false;
        for (seen, dir) in [(obs.sender, Direction::Out), (obs.receiver, Direction::In)] {
            if let Some(seen) = seen {
                if seen.new {
                    self.windows.start(seen.id);
                }
                self.windows.add(seen.id, &s, dir);
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

    /// Closes the open window (end of capture).
    pub fn finish(&mut self, emit: &mut impl FnMut(WindowOut<'_>)) {
        let table = &self.table;
        self.windows
            .finish(&mut |closed| emit(WindowOut { table, closed }));
    }

    /// The MAC of a device, for output.
    pub fn mac(&self, id: DeviceId) -> Option<wire::Mac> {
        self.table.get(id).map(|d| d.mac)
    }
}

/// Runs a whole capture through a fresh pipeline. Windows go to `emit`; the pipeline is
/// returned for its summaries. On a damaged capture, every packet before the damage is
/// processed and the open window is closed before the error is returned with the pipeline.
pub fn run_capture(
    path: &Path,
    filter: Option<&str>,
    cfg: &Config,
    emit: &mut impl FnMut(WindowOut<'_>),
) -> Result<(Pipeline, Option<CaptureError>), CaptureError> {
    let mut source = Source::open_file(path, filter)?;
    let mut pipeline = Pipeline::new(cfg).map_err(|reason| CaptureError::Open {
        what: path.display().to_string(),
        reason,
    })?;
    let size = std::fs::metadata(path).ok().map(|m| m.len());
    let mut progress = Progress::new(source.name(), size);
    let link = source.link();
    let damage = loop {
        match source.next() {
            Ok(Some(pkt)) => {
                pipeline.packet(link, &pkt, emit);
                let st = &pipeline.stats;
                progress.tick(st.packets, st.bytes_captured + 16 * st.packets);
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    progress.done();
    pipeline.finish(emit);
    Ok((pipeline, damage))
}
