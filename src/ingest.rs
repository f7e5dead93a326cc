//! Capture files read and parsed ahead of the pipeline, on a thread of their own.
//!
//! Reading a file through libpcap (two `fread`s per packet) and parsing the packet are half
//! of what a busy LAN's packet costs, and neither needs the device table. [`Ingest`] does
//! both on a reader thread while the pipeline works on the packets before: the thread puts
//! each packet's header and summary into batches that travel to the pipeline through a
//! channel of [`IN_FLIGHT`] and come back empty to be filled again, so memory is bounded and
//! batches are reused, not reallocated. A summary that borrows the packet's bytes (a DHCP or
//! mDNS message, a few in a thousand) cannot travel: those packets' bytes do (about
//! [`BATCH_BYTES`] a batch at most), and the pipeline parses them. The packets, their
//! order and their summaries are the ones [`wire::parse`] gives when called in line: the
//! same file gives the same output. A damaged file ends after the packets before the
//! damage, with libpcap's reason, as when read directly.
//!
//! Standard input is read in line, on the caller's thread: a reader thread blocked on a
//! pipe that stays open would hold the stream's lock, and with it the process's exit. Live
//! capture does not come through here: the kernel's ring buffer is its read-ahead, and the
//! daemon's loop waits on the interface itself.

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::capture::{self, CaptureError, Header, LinkType, Packet, Source};
use crate::wire::{self, Malformed, Summary};

/// Bytes of packets (those parsed by the pipeline) a batch holds before it is handed over.
pub const BATCH_BYTES: usize = 256 * 1024;
/// Packets a batch holds at most.
const BATCH_PACKETS: usize = 2048;
/// Full batches waiting for the pipeline.
pub const IN_FLIGHT: usize = 2;

/// One packet of a batch: its summary when it borrows nothing, else where its bytes are.
#[derive(Clone, Copy)]
struct Entry {
    header: Header,
    parsed: Option<Result<Summary<'static>, Malformed>>,
    start: u32,
}

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    packets: Vec<Entry>,
    /// Set on the last batch: why reading stopped (`None`: the end of the file).
    end: Option<Option<CaptureError>>,
}

impl Batch {
    fn full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.packets.len() >= BATCH_PACKETS
    }

    /// Fills the batch from `source` until it is full or the file ends.
    fn fill(&mut self, source: &mut Source) {
        self.data.clear();
        self.packets.clear();
        self.end = None;
        let link = source.link();
        // once per batch: the pages a batch does not touch cost no memory
        self.packets.reserve(BATCH_PACKETS);
        self.data.reserve(BATCH_BYTES);
        while !self.full() {
            match source.next() {
                Ok(Some(p)) => {
                    let parsed = match wire::parse(link, &p) {
                        Ok(s) => s.detach().map(Ok),
                        Err(m) => Some(Err(m)),
                    };
                    let start = self.data.len() as u32;
                    if parsed.is_none() {
                        self.data.extend_from_slice(p.data);
                    }
                    self.packets.push(Entry {
                        header: p.header(),
                        parsed,
                        start,
                    });
                }
                Ok(None) => {
                    self.end = Some(None);
                    return;
                }
                Err(e) => {
                    self.end = Some(Some(e));
                    return;
                }
            }
        }
    }
}

/// A packet's header and what [`wire::parse`] says of it.
pub struct Item<'a> {
    pub header: Header,
    parsed: Parsed<'a>,
}

enum Parsed<'a> {
    /// Parsed by the reader thread, in the batch.
    Ahead(&'a Summary<'static>),
    /// Parsed here: it borrows the packet's bytes.
    Here(Summary<'a>),
    Damaged(Malformed),
}

impl<'a> Item<'a> {
    /// The packet's summary, or why it could not be read.
    #[inline]
    pub fn summary(&self) -> Result<&Summary<'a>, Malformed> {
        match &self.parsed {
            Parsed::Ahead(s) => Ok(s),
            Parsed::Here(s) => Ok(s),
            Parsed::Damaged(m) => Err(*m),
        }
    }
}

/// The pipeline's end of a reader thread.
pub struct Ingest {
    /// Standard input, read in line.
    direct: Option<Source>,
    full: Receiver<Batch>,
    empty: SyncSender<Batch>,
    reader: Option<JoinHandle<()>>,
    current: Batch,
    cursor: usize,
    done: bool,
    link: LinkType,
    name: String,
    delivered: u64,
}

impl Ingest {
    /// Opens a capture file (or `-`, standard input) as [`Source::open_file`] does, and
    /// starts reading it.
    pub fn open_file(path: &Path, filter: Option<&str>) -> Result<Ingest, CaptureError> {
        let mut source = Source::open_file(path, filter)?;
        let (link, name) = (source.link(), source.name().to_string());
        let (full_tx, full) = sync_channel::<Batch>(IN_FLIGHT);
        let (empty, empty_rx) = sync_channel::<Batch>(IN_FLIGHT + 2);
        let mut ingest = Ingest {
            direct: None,
            full,
            empty,
            reader: None,
            current: Batch::default(),
            cursor: 0,
            done: false,
            link,
            name,
            delivered: 0,
        };
        if path == Path::new("-") || path == Path::new(capture::STDIN) {
            ingest.direct = Some(source);
            return Ok(ingest);
        }
        for _ in 0..=IN_FLIGHT {
            let _ = ingest.empty.try_send(Batch::default());
        }
        // the reader ends at its next send or receive once the pipeline is gone, or at the
        // end of the file
        let reader = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || {
                while let Ok(mut batch) = empty_rx.recv() {
                    batch.fill(&mut source);
                    let last = batch.end.is_some();
                    if full_tx.send(batch).is_err() || last {
                        return;
                    }
                }
            })
            .map_err(|e| CaptureError::Open {
                what: ingest.name.clone(),
                reason: format!("cannot start the reader thread: {e}"),
            })?;
        ingest.reader = Some(reader);
        Ok(ingest)
    }

    /// The link type of every packet.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The file name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next packet and its summary; `Ok(None)` at the end of the file; the error that
    /// ended a damaged file after the packets before the damage.
    #[allow(clippy::should_implement_trait)] // a lending iterator: the packet borrows self
    pub fn next(&mut self) -> Result<Option<Item<'_>>, CaptureError> {
        if let Some(source) = &mut self.direct {
            let link = self.link;
            return Ok(source.next()?.map(|p| Item {
                header: p.header(),
                parsed: match wire::parse(link, &p) {
                    Ok(s) => Parsed::Here(s),
                    Err(m) => Parsed::Damaged(m),
                },
            }));
        }
        while self.cursor == self.current.packets.len() {
            if self.done {
                return Ok(None);
            }
            if let Some(end) = self.current.end.take() {
                self.done = true;
                return end.map_or(Ok(None), Err);
            }
            let Ok(next) = self.full.recv() else {
                // the reader ends only after sending the last batch, unless it panicked
                if let Some(Err(panic)) = self.reader.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(panic);
                }
                return Err(CaptureError::Corrupt {
                    what: self.name.clone(),
                    index: self.delivered,
                    reason: "the reader thread stopped".into(),
                });
            };
            let used = std::mem::replace(&mut self.current, next);
            // the reader is gone after the last batch; the used one is then dropped
            let _ = self.empty.try_send(used);
            self.cursor = 0;
        }
        let e = &self.current.packets[self.cursor];
        self.cursor += 1;
        self.delivered += 1;
        let parsed = match &e.parsed {
            Some(Ok(s)) => Parsed::Ahead(s),
            Some(Err(m)) => Parsed::Damaged(*m),
            None => {
                let start = e.start as usize;
                let packet = Packet {
                    ts_ns: e.header.ts_ns,
                    data: &self.current.data[start..start + e.header.captured as usize],
                    wire_len: e.header.wire_len,
                };
                match wire::parse(self.link, &packet) {
                    Ok(s) => Parsed::Here(s),
                    Err(m) => Parsed::Damaged(m),
                }
            }
        };
        Ok(Some(Item {
            header: e.header,
            parsed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every packet and summary of a capture, as the pipeline would see them.
    fn read_all(path: &Path) -> (Vec<(Header, String)>, Option<String>) {
        let mut ingest = Ingest::open_file(path, None).unwrap();
        let mut out = Vec::new();
        loop {
            match ingest.next() {
                Ok(Some(item)) => out.push((item.header, format!("{:?}", item.summary()))),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    fn direct(path: &Path) -> (Vec<(Header, String)>, Option<String>) {
        let mut source = Source::open_file(path, None).unwrap();
        let link = source.link();
        let mut out = Vec::new();
        loop {
            match source.next() {
                Ok(Some(p)) => out.push((
                    p.header(),
                    format!("{:?}", wire::parse(link, &p).as_ref().map_err(|m| *m)),
                )),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    #[test]
    fn the_same_packets_and_summaries_as_read_in_line_even_when_damaged() {
        let dir = std::env::temp_dir().join(format!("iotad-ingest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("net.pcap");
        let net = crate::synth::Scenario {
            seed: 5,
            devices: 24,
            duration_s: 900,
            max_packets: None,
            attacks: Vec::new(),
        };
        net.write(&path, None).unwrap();
        let (packets, end) = read_all(&path);
        assert!(
            packets.len() > 3 * BATCH_PACKETS,
            "{} packets",
            packets.len()
        );
        assert!(
            packets.iter().any(|p| p.1.contains("Dhcp")),
            "no DHCP packet"
        );
        assert!(
            packets.iter().any(|p| p.1.contains("Mdns")),
            "no mDNS packet"
        );
        assert_eq!((packets.clone(), end.clone()), direct(&path));
        assert_eq!(end, None);
        // cut in the middle of a packet: the packets before it, then the damage
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.join("cut.pcap");
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3 + 5]).unwrap();
        let (before, end) = read_all(&cut);
        assert_eq!((before.clone(), end.clone()), direct(&cut));
        assert!(end.is_some() && before.len() > BATCH_PACKETS, "{end:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
