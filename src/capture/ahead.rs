//! Reading a capture file ahead on a thread of its own.
//!
//! libpcap reads a file with two `fread`s per packet into its buffer, a quarter of what the
//! whole pipeline spends on a packet of a busy LAN. A reader thread does that while the
//! pipeline works on the packets before: it copies packets into batches that travel to the
//! pipeline through a channel of [`IN_FLIGHT`] and come back empty to be filled again, so
//! memory is fixed (about [`IN_FLIGHT`] + 2 times [`BATCH_BYTES`]) and nothing is allocated
//! after the first batches. The packets and their order are libpcap's: the same file gives
//! the same packets, the output stays deterministic. A damaged packet ends the file after
//! the packets before it, with libpcap's reason, as when reading directly.
//!
//! Live sources are not read ahead: the kernel's ring buffer already is.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use pcap::{Activated, Capture};

use super::{CaptureError, Packet};

/// Bytes of packets a batch holds before it is handed over (a packet larger than that makes
/// a batch of its own).
pub const BATCH_BYTES: usize = 256 * 1024;
/// Packets a batch holds at most.
const BATCH_PACKETS: usize = 4096;
/// Full batches waiting for the pipeline.
pub const IN_FLIGHT: usize = 2;

/// Where one packet is in a batch.
#[derive(Clone, Copy)]
struct Entry {
    ts_ns: u64,
    wire_len: u32,
    start: u32,
    end: u32,
}

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    packets: Vec<Entry>,
    /// Set on the last batch: why reading stopped (`None`: the end of the file).
    end: Option<Option<CaptureError>>,
}

impl Batch {
    fn clear(&mut self) {
        self.data.clear();
        self.packets.clear();
        self.end = None;
    }

    fn full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.packets.len() >= BATCH_PACKETS
    }
}

/// The pipeline's end of a reader thread.
pub struct ReadAhead {
    full: Receiver<Batch>,
    empty: SyncSender<Batch>,
    current: Batch,
    cursor: usize,
    done: bool,
    thread: Option<JoinHandle<()>>,
    what: String,
}

impl ReadAhead {
    /// Starts reading `cap` (a file, its filter set) on a thread named after it.
    pub fn start(mut cap: Capture<dyn Activated>, what: &str) -> Result<ReadAhead, CaptureError> {
        let (full_tx, full) = sync_channel::<Batch>(IN_FLIGHT);
        let (empty, empty_rx) = sync_channel::<Batch>(IN_FLIGHT + 2);
        for _ in 0..IN_FLIGHT + 1 {
            let _ = empty.try_send(Batch::default());
        }
        let name = what.to_string();
        let thread = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || {
                let mut index = 0u64;
                // ends when the pipeline is gone (a channel closed) or the file is
                while let Ok(mut batch) = empty_rx.recv() {
                    batch.clear();
                    while !batch.full() && batch.end.is_none() {
                        match cap.next_packet() {
                            Ok(p) => {
                                index += 1;
                                let start = batch.data.len();
                                batch.data.extend_from_slice(p.data);
                                batch.packets.push(Entry {
                                    ts_ns: super::ts_ns(p.header),
                                    wire_len: p.header.len.max(p.header.caplen),
                                    start: start as u32,
                                    end: batch.data.len() as u32,
                                });
                            }
                            Err(pcap::Error::NoMorePackets) => batch.end = Some(None),
                            Err(e) => {
                                batch.end = Some(Some(CaptureError::Corrupt {
                                    what: name.clone(),
                                    index,
                                    reason: e.to_string(),
                                }))
                            }
                        }
                    }
                    let last = batch.end.is_some();
                    if full_tx.send(batch).is_err() || last {
                        return;
                    }
                }
            })
            .map_err(|e| CaptureError::Open {
                what: what.to_string(),
                reason: format!("cannot start the reader thread: {e}"),
            })?;
        Ok(ReadAhead {
            full,
            empty,
            current: Batch::default(),
            cursor: 0,
            done: false,
            thread: Some(thread),
            what: what.to_string(),
        })
    }

    /// The next packet, as [`super::Source::next`] says.
    pub fn next(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        while self.cursor == self.current.packets.len() {
            if self.done {
                return Ok(None);
            }
            if let Some(end) = self.current.end.take() {
                self.done = true;
                return match end {
                    None => Ok(None),
                    Some(e) => Err(e),
                };
            }
            let next = self.full.recv().map_err(|_| CaptureError::Corrupt {
                what: self.what.clone(),
                index: 0,
                reason: "the reader thread stopped".into(),
            })?;
            let used = std::mem::replace(&mut self.current, next);
            // the reader may be gone (it read the end); the batch is then dropped
            let _ = self.empty.try_send(used);
            self.cursor = 0;
        }
        let e = self.current.packets[self.cursor];
        self.cursor += 1;
        if let Some(ahead) = self.current.packets.get(self.cursor + 4) {
            prefetch(&self.current.data[ahead.start as usize..]);
        }
        Ok(Some(Packet {
            ts_ns: e.ts_ns,
            data: &self.current.data[e.start as usize..e.end as usize],
            wire_len: e.wire_len,
        }))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // closing our ends stops the reader at its next send or receive
        let (_, dead) = sync_channel(0);
        drop(std::mem::replace(&mut self.full, dead));
        let (alive, _) = sync_channel(0);
        drop(std::mem::replace(&mut self.empty, alive));
        // not joined: a reader blocked on a pipe that stays open (standard input) would
        // hold the process; it ends at its next send
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Asks for the first bytes of a packet a little ahead of the pipeline: the reader thread
/// wrote them on another core.
#[inline]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint; it never faults, whatever the address
        unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}
