//! Fuzzes `wire::parse` under every link type: the first byte picks the link type, the rest
//! is the packet. Any panic or out-of-bounds read is a bug.
#![no_main]

use iotad::capture::{LinkType, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let link = [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp][pick as usize % 4];
    let pkt = Packet { ts_ns: 0, data: bytes, wire_len: bytes.len() as u32 };
    if let Ok(s) = iotad::wire::parse(link, &pkt) {
        if let iotad::wire::App::Mdns { msg, host: Some(at), .. } = s.app {
            let mut name = heapless::String::<64>::new();
            let _ = iotad::wire::dns::write_name(msg, at, &mut name);
        }
    }
});
