//! The per-packet path (parse, device table, window update) allocates nothing: counted with
//! a global allocator over a whole synthesized capture with attacks, new devices, evictions
//! and window closes. (libpcap's own buffers are C allocations, outside this count.) A file
//! read and parsed ahead on its reader thread ([`iotad::ingest`]) allocates its thread,
//! channels and batches once, then nothing per packet.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use common::{scratch, synth};
use iotad::capture::Source;
use iotad::config::PipelineConfig;
use iotad::ingest::Ingest;
use iotad::pipeline::Pipeline;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The count is the process's: one test counts at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A capture with attacks, new devices and more devices than a 16-slot table holds.
fn capture(dir: &std::path::Path) -> std::path::PathBuf {
    let pcap = dir.join("net.pcap");
    synth(
        &pcap,
        9,
        240,
        40,
        &[
            "portscan@20+10:02:10:00:00:00:00",
            "dns-tunnel@40+10:02:10:03:00:00:03",
            "arp-scan@60+10:02:10:00:00:00:04",
            "synflood@80+5:02:10:01:00:00:01",
        ],
    );
    pcap
}

/// A table smaller than the network, so that devices are evicted and slots reused.
fn small_table() -> PipelineConfig {
    PipelineConfig {
        max_devices: 16,
        ..PipelineConfig::default()
    }
}

#[test]
fn packets_allocate_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("noalloc");
    let pcap = capture(&dir);
    let cfg = small_table();
    let mut pipeline = Pipeline::new(&cfg).unwrap();
    let mut source = Source::open_file(&pcap, None).unwrap();
    let link = source.link();
    let mut windows = 0u64;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    while let Some(pkt) = source.next().unwrap() {
        pipeline.packet(link, &pkt, &mut |_| windows += 1);
    }
    pipeline.finish(&mut |_| windows += 1);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let packets = pipeline.stats().packets;
    assert!(
        packets > 50_000 && windows > 300,
        "{packets} packets, {windows} windows"
    );
    assert!(pipeline.table().stats().evicted > 0, "the table filled up");
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for {packets} packets"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_read_ahead_allocates_its_batches_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("noalloc-ingest");
    let pcap = capture(&dir);
    let mut pipeline = Pipeline::new(&small_table()).unwrap();
    let mut ingest = Ingest::open_file(&pcap, None).unwrap();
    let mut windows = 0u64;
    // every batch filled and handed over a few times (three batches of 2,048 packets)
    let mut warm = None;
    while let Some(item) = ingest.next().unwrap() {
        pipeline.parsed(item.header, item.summary(), &mut |_| windows += 1);
        if pipeline.stats().packets == 20_000 {
            warm = Some(ALLOCATIONS.load(Ordering::Relaxed));
        }
    }
    pipeline.finish(&mut |_| windows += 1);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - warm.unwrap();
    let packets = pipeline.stats().packets - 20_000;
    assert!(packets > 50_000, "{packets} packets after the first 20,000");
    // a thread's first wait on a channel allocates its waker once, whenever that comes
    assert!(
        allocations <= 4,
        "{allocations} allocations for {packets} packets after the first 20,000"
    );
    drop(ingest);
    std::fs::remove_dir_all(&dir).unwrap();
}
