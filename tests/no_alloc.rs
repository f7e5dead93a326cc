//! The per-packet path (parse, device table, window update) allocates nothing: counted with
//! a global allocator over a whole synthesized capture with attacks, new devices, evictions
//! and window closes. (libpcap's own buffers are C allocations, outside this count.)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use common::{scratch, synth};
use iotad::capture::Source;
use iotad::config::PipelineConfig;
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

#[test]
fn packets_allocate_nothing() {
    let dir = scratch("noalloc");
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
    // a table smaller than the network, so that devices are evicted and slots reused
    let cfg = PipelineConfig {
        max_devices: 16,
        ..PipelineConfig::default()
    };
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
