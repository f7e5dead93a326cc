//! The feature vector: one table, [`FEATURES`], names every feature with its unit, kind and
//! meaning. CSV headers, the README's table, model metadata and alert explanations all read
//! it, so a feature is defined exactly once.

use std::ops::{Index, IndexMut};

/// Number of features per window: a multiple of 32, the width of a quantized weight block.
pub const F: usize = 64;

/// How a feature's raw value behaves, which decides how the model standardizes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A count of events in the window (heavy-tailed: log1p before standardizing).
    Count,
    /// A count of bytes in the window, log1p of [`BYTE_UNIT`]-byte units: one small packet's
    /// bytes move it about as far as one packet moves a count, so a single packet cannot
    /// look like a flood, while a tenfold change of a large volume still does.
    Bytes,
    /// A mean or maximum of sizes, lengths or times.
    Mean,
    /// A fraction in [0, 1] or a ratio.
    Ratio,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Count => "count",
            Kind::Bytes => "bytes",
            Kind::Mean => "mean",
            Kind::Ratio => "ratio",
        }
    }
}

/// The unit a [`Kind::Bytes`] feature is counted in before its logarithm: a small packet.
pub const BYTE_UNIT: f32 = 64.0;

/// How small a change of a feature the detector treats as news, for a device that never
/// moved it while learning: security-relevant features are watched closely, housekeeping
/// (DHCP renewals, NTP, mDNS, timing) loosely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tolerance {
    /// One event where none was expected is news (login attempts, ARP conflicts...).
    Watch,
    /// A change by about half is news.
    Normal,
    /// Only a change by a factor of about three is news.
    Housekeeping,
    /// One event is an alert by itself, unless the device did it while learning: a protocol
    /// that names what it is for (crypto-mining).
    Alarm,
}

impl Tolerance {
    /// The smallest error that counts as one typical error, in log1p units.
    pub fn log_units(self) -> f32 {
        match self {
            Tolerance::Watch | Tolerance::Alarm => 0.15,
            Tolerance::Normal => 0.5,
            Tolerance::Housekeeping => 1.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tolerance::Watch => "watch",
            Tolerance::Normal => "normal",
            Tolerance::Housekeeping => "housekeeping",
            Tolerance::Alarm => "alarm",
        }
    }
}

/// One feature's definition.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct FeatureSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub kind: Kind,
    pub tolerance: Tolerance,
    pub doc: &'static str,
}

macro_rules! features {
    ($($id:ident $name:literal $unit:literal $kind:ident $tolerance:ident $doc:literal;)*) => {
        /// Names for the positions of the feature vector.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Feat { $($id),* }

        /// Every feature, in vector order.
        pub const FEATURES: [FeatureSpec; F] = [
            $(FeatureSpec { name: $name, unit: $unit, kind: Kind::$kind, tolerance: Tolerance::$tolerance, doc: $doc }),*
        ];
    };
}

features! {
    PktsOut "pkts_out" "packets" Count Normal "packets sent";
    PktsIn "pkts_in" "packets" Count Normal "packets received (addressed to this device)";
    BytesOut "bytes_out" "bytes" Bytes Normal "bytes sent, as on the wire";
    BytesIn "bytes_in" "bytes" Bytes Normal "bytes received, as on the wire";
    MeanSizeOut "mean_size_out" "bytes" Mean Housekeeping "mean size of packets sent";
    SrcIpsOut "src_ips_out" "addresses" Count Watch "distinct source IP addresses of packets sent (dozens: spoofed floods)";
    NewServices "new_services" "services" Count Watch "remote services (address, protocol, port) used that the device did not use while learning, each weighted by how stable its services had been (a quarter on a port it or the network uses)";
    SmallPktsOut "small_pkts_out" "packets" Count Normal "packets sent of at most 80 bytes (probes, floods)";
    RemoteIps "remote_ips" "addresses" Count Normal "distinct remote IP addresses, either direction";
    RemoteIpsLocal "remote_ips_local" "addresses" Count Normal "distinct remote IPs on the LAN (private, link-local, multicast)";
    RemoteIpsInternet "remote_ips_internet" "addresses" Count Normal "distinct remote IPs on the internet";
    RemotePorts "remote_ports" "ports" Count Normal "distinct remote TCP/UDP ports contacted";
    LocalPorts "local_ports" "ports" Count Normal "distinct local TCP/UDP ports used, either direction";
    LocalShare "local_share" "fraction" Ratio Housekeeping "share of IP packets exchanged with LAN addresses";
    RemoteIpsIn "remote_ips_in" "addresses" Count Normal "distinct source IPs of packets received";
    PortsSynIn "ports_syn_in" "ports" Count Watch "distinct local ports that received a connection attempt";
    TcpOut "tcp_out" "packets" Count Normal "TCP segments sent";
    TcpIn "tcp_in" "packets" Count Normal "TCP segments received";
    SynOut "syn_out" "packets" Count Normal "TCP connection attempts sent (SYN without ACK)";
    SynAckIn "synack_in" "packets" Count Normal "TCP SYN-ACKs received (attempts accepted)";
    SynIn "syn_in" "packets" Count Normal "TCP connection attempts received";
    RstOut "rst_out" "packets" Count Normal "TCP resets sent";
    RstIn "rst_in" "packets" Count Normal "TCP resets received";
    LoginAttemptsSlow "login_attempts_slow" "attempts" Count Watch "repeated logins to one remote service summed over past windows, halving every 10 minutes, zero after 5 quiet minutes (slow brute force)";
    Unanswered "unanswered" "attempts" Count Watch "connection attempts sent that got neither SYN-ACK nor RST within the window";
    Probes "probes" "probes" Count Watch "TCP probes sent: segments of any flags outside the device's connections that got a reset or no answer (SYN, ACK, FIN, NULL, XMAS scans)";
    ProbesSlow "probes_slow" "probes" Count Watch "TCP probes summed over past windows, halving every 10 minutes, zero after 5 quiet minutes (slow scans)";
    MaxAttemptsOneService "max_attempts_one_service" "attempts" Count Watch "most connection attempts to one remote IP and port (repeated logins, or a flood of one service)";
    LoginAttempts "login_attempts" "attempts" Count Watch "most repeated logins to one remote service, on any port: sessions (connections the device opened that carried a request and a response, and received at most 16 KB: a download is no login) begun within 10 s of another";
    TcpPayloadOut "tcp_payload_out" "bytes" Bytes Normal "TCP payload bytes sent";
    TcpPayloadIn "tcp_payload_in" "bytes" Bytes Normal "TCP payload bytes received";
    UdpOut "udp_out" "packets" Count Normal "UDP datagrams sent";
    UdpIn "udp_in" "packets" Count Normal "UDP datagrams received";
    IcmpOut "icmp_out" "packets" Count Normal "ICMP and ICMPv6 messages sent";
    IcmpIn "icmp_in" "packets" Count Normal "ICMP and ICMPv6 messages received";
    IcmpPayloadOut "icmp_payload_out" "bytes" Bytes Normal "ICMP payload bytes sent (after the 8-byte header)";
    IcmpPayloadIn "icmp_payload_in" "bytes" Bytes Normal "ICMP payload bytes received";
    IcmpEchoOut "icmp_echo_out" "packets" Count Watch "ICMP echo requests sent (pings)";
    IcmpUnreachIn "icmp_unreach_in" "packets" Count Watch "ICMP destination-unreachable messages received";
    ArpOut "arp_out" "packets" Count Housekeeping "ARP packets sent";
    ArpReqTargets "arp_req_targets" "addresses" Count Normal "distinct IPs this device asked ARP for";
    ArpRepliesUnasked "arp_replies_unasked" "packets" Count Watch "ARP replies sent that nobody asked for (incl. gratuitous)";
    ArpConflicts "arp_conflicts" "bindings" Count Watch "IP-to-MAC bindings claimed that contradict an earlier one (spoofing)";
    DnsQueries "dns_queries" "queries" Count Normal "DNS queries sent (port 53)";
    DnsNames "dns_names" "names" Count Normal "distinct names queried";
    DnsNameLenMean "dns_name_len_mean" "characters" Mean Normal "mean length of queried names";
    DnsNameLenMax "dns_name_len_max" "characters" Mean Normal "longest queried name";
    DnsEntropyMean "dns_entropy_mean" "bits/character" Mean Normal "mean Shannon entropy of queried names' characters";
    DnsNxdomain "dns_nxdomain" "answers" Count Watch "NXDOMAIN answers received";
    DnsAnswers "dns_answers" "answers" Count Normal "DNS responses received";
    DnsUnusualQueries "dns_unusual_queries" "queries" Count Watch "queries for types other than A, AAAA, PTR, SRV, SVCB, HTTPS (TXT, NULL, MX...)";
    BroadcastOut "broadcast_out" "packets" Count Housekeeping "broadcast frames sent";
    MulticastOut "multicast_out" "packets" Count Housekeeping "multicast frames sent";
    DhcpOut "dhcp_out" "packets" Count Housekeeping "DHCP client messages sent";
    MdnsOut "mdns_out" "packets" Count Housekeeping "mDNS messages sent";
    NtpOut "ntp_out" "packets" Count Housekeeping "NTP requests sent";
    FragsOut "frags_out" "packets" Count Watch "IP fragments sent";
    RemoteIpsSyn "remote_ips_syn" "addresses" Count Watch "distinct remote IPs sent a connection attempt (horizontal scans)";
    IatMean "iat_mean" "seconds" Mean Housekeeping "mean time between packets sent";
    NewServicePkts "new_service_pkts" "packets" Count Watch "packets exchanged with new remote services on a port new to the device and the network, weighted by how stable its ports had been (a mining pool, a backdoor)";
    ActiveSeconds "active_seconds" "seconds" Count Housekeeping "seconds of the window in which the device sent anything";
    MiningMsgs "mining_msgs" "messages" Count Alarm "crypto-mining protocol messages a miner sends or receives (Stratum JSON-RPC: mining.*, eth_submitLogin/getWork/submitWork, CryptoNote login/job/submit), on any port";
    UdpPayloadOut "udp_payload_out" "bytes" Bytes Normal "UDP payload bytes sent";
    UdpPayloadIn "udp_payload_in" "bytes" Bytes Normal "UDP payload bytes received";
}

impl Feat {
    /// This feature's definition.
    pub fn spec(self) -> &'static FeatureSpec {
        &FEATURES[self as usize]
    }
}

/// One window's feature values, in the order of [`FEATURES`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Features(pub [f32; F]);

impl Features {
    pub const ZERO: Features = Features([0.0; F]);

    /// True when the device did nothing in the window.
    pub fn is_silent(&self) -> bool {
        self.0.iter().all(|&v| v == 0.0)
    }
}

impl Index<Feat> for Features {
    type Output = f32;
    fn index(&self, f: Feat) -> &f32 {
        &self.0[f as usize]
    }
}

impl IndexMut<Feat> for Features {
    fn index_mut(&mut self, f: Feat) -> &mut f32 {
        &mut self.0[f as usize]
    }
}

/// The features as a Markdown table (the README's table is this output).
pub fn markdown_table() -> String {
    let mut s = String::from(
        "| # | feature | unit | kind | tolerance | meaning |\n|---|---|---|---|---|---|\n",
    );
    for (i, f) in FEATURES.iter().enumerate() {
        s.push_str(&format!(
            "| {i} | `{}` | {} | {} | {} | {} |\n",
            f.name,
            f.unit,
            f.kind.name(),
            f.tolerance.name(),
            f.doc
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        assert_eq!(F % 32, 0);
        assert_eq!(
            Feat::UdpPayloadIn as usize,
            F - 1,
            "the enum and the table have the same length"
        );
        let mut names: Vec<_> = FEATURES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), F, "feature names are unique");
        assert!(FEATURES.iter().all(|f| f
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        assert_eq!(Feat::SynOut.spec().name, "syn_out");
    }

    #[test]
    fn markdown_has_a_row_per_feature() {
        assert_eq!(markdown_table().lines().count(), F + 2);
    }
}
