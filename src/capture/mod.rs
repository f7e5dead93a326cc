//! Packet sources: where packets come from, and nothing else.
//!
//! One abstraction, [`Source`], yields [`Packet`]s (timestamp in nanoseconds, the captured
//! bytes, the length on the wire) from libpcap: capture files (pcap and pcapng, or `-` for
//! standard input, [`Source::open_file`]) and live interfaces ([`Source::open_live`], with
//! [`default_interface`] and the kernel's counters, [`Source::stats`]). On a live source,
//! `next()` returning `Ok(None)` means no packet arrived before the read timeout, never
//! damage; a live source whose interface went away returns [`CaptureError::Gone`].

use std::fmt;
use std::path::Path;

use pcap::{Activated, Capture, Precision};

/// The path that means standard input (the command line's `-` is turned into it).
pub const STDIN: &str = "/dev/stdin";

fn is_stdin(path: &Path) -> bool {
    path == Path::new("-") || path == Path::new(STDIN)
}

/// How a capture is named in output: its path, or `-` for standard input.
pub fn display_name(path: &Path) -> String {
    if is_stdin(path) {
        "-".to_string()
    } else {
        path.display().to_string()
    }
}

/// One captured packet, borrowed from libpcap's buffer until the next call to `next()`.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The captured bytes (at most the snapshot length).
    pub data: &'a [u8],
    /// The packet's length on the wire (>= `data.len()` when the capture cut it short).
    pub wire_len: u32,
}

impl Packet<'_> {
    /// What libpcap's header says of the packet.
    #[inline]
    pub fn header(&self) -> Header {
        Header {
            ts_ns: self.ts_ns,
            captured: self.data.len() as u32,
            wire_len: self.wire_len,
        }
    }
}

/// A packet's capture header: what is known of it without its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Bytes captured.
    pub captured: u32,
    /// The packet's length on the wire.
    pub wire_len: u32,
}

/// The link-layer framings the parser understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// DLT_EN10MB: Ethernet II, with any 802.1Q / 802.1ad tags.
    Ethernet,
    /// DLT_LINUX_SLL: Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    LinuxSll,
    /// DLT_LINUX_SLL2: Linux cooked capture v2 (`tcpdump -i any` today).
    LinuxSll2,
    /// DLT_RAW / DLT_IPV4 / DLT_IPV6: bare IP packets, no link header.
    RawIp,
}

impl LinkType {
    /// Maps a libpcap DLT number to a link type we parse, or `None`.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        match dlt {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            // DLT_RAW is 12 on some BSDs and 14 on OpenBSD; LINKTYPE_RAW is 101.
            12 | 14 | 101 | 228 | 229 => Some(LinkType::RawIp),
            _ => None,
        }
    }

    /// The DLT number libpcap writes for this link type.
    pub fn dlt(self) -> i32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::RawIp => 101,
        }
    }
}

/// Why a capture could not be opened or read further.
#[derive(Debug)]
pub enum CaptureError {
    /// libpcap could not open the file or stream.
    Open { what: String, reason: String },
    /// The BPF filter did not compile.
    Filter { filter: String, reason: String },
    /// The capture's link type is not one we parse.
    UnsupportedLink {
        what: String,
        dlt: i32,
        name: String,
    },
    /// The interface went away or stopped delivering (down, deleted): reopen it later.
    Gone { what: String, reason: String },
    /// No permission to capture on an interface.
    Permission { what: String, reason: String },
    /// Reading stopped at a damaged record: every packet before `index` was delivered.
    Corrupt {
        what: String,
        index: u64,
        reason: String,
    },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Open { what, reason } => {
                write!(f, "cannot open capture {what}: {reason}")
            }
            CaptureError::Gone { what, reason } => {
                write!(f, "interface {what} stopped delivering packets: {reason}")
            }
            CaptureError::Permission { what, reason } => write!(
                f,
                "no permission to capture on {what} ({reason}): run iotad as root, give the \
                 binary the capabilities (sudo setcap cap_net_raw,cap_net_admin+eip \
                 $(command -v iotad)), or run it as the systemd unit in systemd/"
            ),
            CaptureError::Filter { filter, reason } => {
                write!(f, "invalid BPF filter {filter:?}: {reason}")
            }
            CaptureError::UnsupportedLink { what, dlt, name } => write!(
                f,
                "{what}: unsupported link type {name} (DLT {dlt}); iotad reads Ethernet \
                 (EN10MB), Linux cooked v1/v2 (LINUX_SLL, LINUX_SLL2) and raw IP"
            ),
            CaptureError::Corrupt {
                what,
                index,
                reason,
            } => write!(
                f,
                "{what}: capture is damaged at packet {index} (the {index} packets before it \
                 were processed): {reason}"
            ),
        }
    }
}

impl std::error::Error for CaptureError {}

/// How to open a live interface.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub snaplen: u32,
    pub promiscuous: bool,
    pub buffer_mib: u32,
    pub timeout_ms: u32,
    pub immediate: bool,
    pub filter: Option<String>,
}

/// The kernel's packet counters of a live capture (libpcap's `pcap_stats`), since it opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaptureStats {
    /// Packets the kernel passed the filter.
    pub received: u64,
    /// Packets dropped because the buffer was full (the loop fell behind).
    pub dropped: u64,
    /// Packets the interface or its driver dropped.
    pub if_dropped: u64,
}

/// The interface of the default IPv4 route (`/proc/net/route`), if there is one.
pub fn default_interface() -> Option<String> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    routes.lines().skip(1).find_map(|l| {
        let mut cols = l.split_whitespace();
        let (iface, dest) = (cols.next()?, cols.next()?);
        (dest == "00000000").then(|| iface.to_string())
    })
}

/// A stream of packets from libpcap.
pub struct Source {
    cap: Capture<dyn Activated>,
    link: LinkType,
    what: String,
    index: u64,
    live: bool,
    /// The descriptor to wait on, for a live source.
    fd: Option<std::os::unix::io::RawFd>,
}

impl Source {
    /// Opens a pcap or pcapng file, or standard input when `path` is `-`, with an optional
    /// BPF `filter`. Timestamps are read at nanosecond precision.
    pub fn open_file(path: &Path, filter: Option<&str>) -> Result<Source, CaptureError> {
        let stdin = is_stdin(path);
        let what = display_name(path);
        let opened = if stdin {
            // SAFETY: fd 0 is this process's standard input; libpcap takes it over with fdopen.
            unsafe { Capture::from_raw_fd_with_precision(0, Precision::Nano) }
        } else {
            Capture::from_file_with_precision(path, Precision::Nano)
        };
        let cap = opened.map_err(|e| CaptureError::Open {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        Source::from_capture(cap.into(), what, filter, false)
    }

    /// Opens a live interface with `opt`. Timestamps are asked for at nanosecond precision.
    pub fn open_live(interface: &str, opt: &LiveOptions) -> Result<Source, CaptureError> {
        let what = interface.to_string();
        let err = |e: pcap::Error| {
            let reason = e.to_string();
            let denied = reason.contains("ermission") || reason.contains("not permitted");
            if denied {
                CaptureError::Permission {
                    what: what.clone(),
                    reason,
                }
            } else {
                CaptureError::Open {
                    what: what.clone(),
                    reason,
                }
            }
        };
        let clamp = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
        let cap = Capture::from_device(interface)
            .map_err(err)?
            .promisc(opt.promiscuous)
            .snaplen(clamp(u64::from(opt.snaplen)))
            .buffer_size(clamp(u64::from(opt.buffer_mib) * 1024 * 1024))
            .timeout(clamp(u64::from(opt.timeout_ms)))
            .immediate_mode(opt.immediate)
            .precision(Precision::Nano)
            .open()
            .map_err(err)?
            // the loop waits in `wait`: libpcap's own wait on Linux (TPACKET_V3) does not
            // end on a quiet network, and the wall clock must still close windows
            .setnonblock()
            .map_err(err)?;
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&cap);
        let mut source = Source::from_capture(cap.into(), what, opt.filter.as_deref(), true)?;
        source.fd = Some(fd);
        Ok(source)
    }

    /// Waits up to `timeout` for packets on a live source (a signal ends the wait early);
    /// returns at once for a file.
    pub fn wait(&self, timeout: std::time::Duration) {
        let Some(fd) = self.fd else { return };
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd; the descriptor is libpcap's and open while `self` lives.
        unsafe { libc::poll(&mut p, 1, ms) };
    }

    /// The kernel's counters, for a live source.
    pub fn stats(&mut self) -> Option<CaptureStats> {
        if !self.live {
            return None;
        }
        self.cap.stats().ok().map(|s| CaptureStats {
            received: u64::from(s.received),
            dropped: u64::from(s.dropped),
            if_dropped: u64::from(s.if_dropped),
        })
    }

    /// Whether this source reads a live interface.
    pub fn is_live(&self) -> bool {
        self.live
    }

    fn from_capture(
        mut cap: Capture<dyn Activated>,
        what: String,
        filter: Option<&str>,
        live: bool,
    ) -> Result<Source, CaptureError> {
        let dl = cap.get_datalink();
        let link = LinkType::from_dlt(dl.0).ok_or_else(|| CaptureError::UnsupportedLink {
            what: what.clone(),
            dlt: dl.0,
            name: dl.get_name().unwrap_or_else(|_| "unknown".into()),
        })?;
        if let Some(f) = filter {
            cap.filter(f, true).map_err(|e| CaptureError::Filter {
                filter: f.to_string(),
                reason: e.to_string(),
            })?;
        }
        Ok(Source {
            cap,
            link,
            what,
            index: 0,
            live,
            fd: None,
        })
    }

    /// The link type of every packet this source yields.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The file name (or interface) this source reads, for messages.
    pub fn name(&self) -> &str {
        &self.what
    }

    /// How many packets were delivered so far.
    pub fn delivered(&self) -> u64 {
        self.index
    }

    /// The next packet; `Ok(None)` at the end of a file, or when no packet came before a live
    /// source's read timeout; an error naming the packet index when a file is damaged (the
    /// packets before it have been delivered), [`CaptureError::Gone`] when a live interface
    /// stopped delivering.
    #[allow(clippy::should_implement_trait)] // a lending iterator: the packet borrows self
    pub fn next(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.index += 1;
                let h = p.header;
                // time_t and suseconds_t are narrower on some targets
                #[allow(clippy::unnecessary_cast)]
                let ts_ns = (h.ts.tv_sec as i64)
                    .max(0)
                    .saturating_mul(1_000_000_000)
                    .saturating_add((h.ts.tv_usec as i64).clamp(0, 999_999_999))
                    as u64;
                Ok(Some(Packet {
                    ts_ns,
                    data: p.data,
                    wire_len: h.len.max(h.caplen),
                }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(pcap::Error::TimeoutExpired) if self.live => Ok(None),
            Err(e) if self.live => Err(CaptureError::Gone {
                what: self.what.clone(),
                reason: e.to_string(),
            }),
            Err(e) => Err(CaptureError::Corrupt {
                what: self.what.clone(),
                index: self.index,
                reason: e.to_string(),
            }),
        }
    }
}
