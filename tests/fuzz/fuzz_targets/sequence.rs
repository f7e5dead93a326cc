//! Fuzzes packet *sequences* through the pipeline and the device table (parse, attribution,
//! routers, ARP watch, DHCP, flood counting, eviction, windows): a small LAN is set up, then
//! the input decodes into frames (eight bytes each, see `tests/common/sequence.rs`) from any
//! of a few stations, damaged anywhere, hours apart or at once. The first byte picks the
//! configuration: a table of 1 to 8 devices (eviction on every few frames), router detection
//! and DHCP corroboration on or off. Any panic is a bug; so is a table over its capacity, more
//! routers than remembered, or a window closed for a slot that holds no device.
#![no_main]

#[path = "../../common/sequence.rs"]
mod sequence;

use std::sync::OnceLock;

use iotad::capture::{LinkType, Packet};
use iotad::config::PipelineConfig;
use iotad::pipeline::Pipeline;
use iotad::wire::Mac;
use libfuzzer_sys::fuzz_target;

static SETUP: OnceLock<Vec<sequence::Step>> = OnceLock::new();

fn sender(b: u8) -> Mac {
    match b & 0x0f {
        0..=3 => sequence::A.mac,
        4 => sequence::V.mac,
        5 => sequence::W.mac,
        6 => sequence::ROUTER.mac,
        n => Mac([2, 0, 0, 0, 1, n]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let cfg = PipelineConfig {
        max_devices: 1 + usize::from(pick % 8),
        auto_gateway: pick & 0x80 == 0,
        dhcp_router: pick & 0x40 == 0,
        ..PipelineConfig::default()
    };
    let mut p = Pipeline::new(&cfg).expect("a valid configuration");
    let setup = SETUP.get_or_init(sequence::setup);
    let steps = sequence::decode(rest, sequence::after_setup(), sender, false);
    let check = &mut |w: iotad::pipeline::WindowOut<'_>| {
        assert!(
            w.device().is_some(),
            "a window of an empty slot"
        );
    };
    for s in setup.iter().chain(&steps) {
        let pkt = Packet {
            ts_ns: s.ts_ns,
            data: &s.frame,
            wire_len: s.frame.len() as u32,
        };
        p.packet(LinkType::Ethernet, &pkt, check);
        assert!(p.table().len() <= cfg.max_devices);
        assert!(p.table().gateways().len() <= iotad::device::gateway::MAX_GATEWAYS);
        while p.take_notice().is_some() {}
    }
    p.finish(check);
});
