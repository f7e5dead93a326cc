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
    /// A count of events or bytes in the window (heavy-tailed: log1p before standardizing).
    Count,
    /// A mean or maximum of sizes, lengths or times.
    Mean,
    /// A fraction in [0, 1] or a ratio.
    Ratio,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Count => "count",
            Kind::Mean => "mean",
            Kind::Ratio => "ratio",
        }
    }
}

/// One feature's definition.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct FeatureSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

macro_rules! features {
    ($($id:ident $name:literal $unit:literal $kind:ident $doc:literal;)*) => {
        /// Names for the positions of the feature vector.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Feat { $($id),* }

        /// Every feature, in vector order.
        pub const FEATURES: [FeatureSpec; F] = [
            $(FeatureSpec { name: $name, unit: $unit, kind: Kind::$kind, doc: $doc }),*
        ];
    };
}

features! {
    PktsOut "pkts_out" "packets" Count "packets sent";
    PktsIn "pkts_in" "packets" Count "packets received (addressed to this device)";
    BytesOut "bytes_out" "bytes" Count "bytes sent, as on the wire";
    BytesIn "bytes_in" "bytes" Count "bytes received, as on the wire";
    MeanSizeOut "mean_size_out" "bytes" Mean "mean size of packets sent";
    MeanSizeIn "mean_size_in" "bytes" Mean "mean size of packets received";
    MaxSizeOut "max_size_out" "bytes" Mean "largest packet sent";
    SmallPktsOut "small_pkts_out" "packets" Count "packets sent of at most 80 bytes (probes, floods)";
    RemoteIps "remote_ips" "addresses" Count "distinct remote IP addresses, either direction";
    RemoteIpsLocal "remote_ips_local" "addresses" Count "distinct remote IPs on the LAN (private, link-local, multicast)";
    RemoteIpsInternet "remote_ips_internet" "addresses" Count "distinct remote IPs on the internet";
    RemotePorts "remote_ports" "ports" Count "distinct remote TCP/UDP ports contacted";
    LocalPorts "local_ports" "ports" Count "distinct local TCP/UDP ports used, either direction";
    LocalShare "local_share" "fraction" Ratio "share of IP packets exchanged with LAN addresses";
    RemoteIpsIn "remote_ips_in" "addresses" Count "distinct source IPs of packets received";
    PortsSynIn "ports_syn_in" "ports" Count "distinct local ports that received a connection attempt";
    TcpOut "tcp_out" "packets" Count "TCP segments sent";
    TcpIn "tcp_in" "packets" Count "TCP segments received";
    SynOut "syn_out" "packets" Count "TCP connection attempts sent (SYN without ACK)";
    SynAckIn "synack_in" "packets" Count "TCP SYN-ACKs received (attempts accepted)";
    SynIn "syn_in" "packets" Count "TCP connection attempts received";
    SynAckOut "synack_out" "packets" Count "TCP SYN-ACKs sent";
    RstOut "rst_out" "packets" Count "TCP resets sent";
    RstIn "rst_in" "packets" Count "TCP resets received";
    FinOut "fin_out" "packets" Count "TCP FINs sent";
    Unanswered "unanswered" "attempts" Count "connection attempts sent that got neither SYN-ACK nor RST within the window";
    MaxAttemptsOneService "max_attempts_one_service" "attempts" Count "most connection attempts to one remote IP and port (repeated logins)";
    LoginAttempts "login_attempts" "attempts" Count "connection attempts to SSH or telnet (ports 22, 23, 2323)";
    TcpPayloadOut "tcp_payload_out" "bytes" Count "TCP payload bytes sent";
    TcpPayloadIn "tcp_payload_in" "bytes" Count "TCP payload bytes received";
    UdpOut "udp_out" "packets" Count "UDP datagrams sent";
    UdpIn "udp_in" "packets" Count "UDP datagrams received";
    IcmpOut "icmp_out" "packets" Count "ICMP and ICMPv6 messages sent";
    IcmpIn "icmp_in" "packets" Count "ICMP and ICMPv6 messages received";
    IcmpPayloadOut "icmp_payload_out" "bytes" Count "ICMP payload bytes sent (after the 8-byte header)";
    IcmpPayloadIn "icmp_payload_in" "bytes" Count "ICMP payload bytes received";
    IcmpEchoOut "icmp_echo_out" "packets" Count "ICMP echo requests sent (pings)";
    IcmpUnreachIn "icmp_unreach_in" "packets" Count "ICMP destination-unreachable messages received";
    ArpOut "arp_out" "packets" Count "ARP packets sent";
    ArpIn "arp_in" "packets" Count "ARP packets addressed to this device";
    ArpReqTargets "arp_req_targets" "addresses" Count "distinct IPs this device asked ARP for";
    ArpRepliesUnasked "arp_replies_unasked" "packets" Count "ARP replies sent that nobody asked for (incl. gratuitous)";
    ArpConflicts "arp_conflicts" "bindings" Count "IP-to-MAC bindings claimed that contradict an earlier one (spoofing)";
    DnsQueries "dns_queries" "queries" Count "DNS queries sent (port 53)";
    DnsNames "dns_names" "names" Count "distinct names queried";
    DnsNameLenMean "dns_name_len_mean" "characters" Mean "mean length of queried names";
    DnsNameLenMax "dns_name_len_max" "characters" Mean "longest queried name";
    DnsEntropyMean "dns_entropy_mean" "bits/character" Mean "mean Shannon entropy of queried names' characters";
    DnsNxdomain "dns_nxdomain" "answers" Count "NXDOMAIN answers received";
    DnsAnswers "dns_answers" "answers" Count "DNS responses received";
    DnsUnusualQueries "dns_unusual_queries" "queries" Count "queries for types other than A, AAAA, PTR, SRV, SVCB, HTTPS (TXT, NULL, MX...)";
    BroadcastOut "broadcast_out" "packets" Count "broadcast frames sent";
    MulticastOut "multicast_out" "packets" Count "multicast frames sent";
    DhcpOut "dhcp_out" "packets" Count "DHCP client messages sent";
    MdnsOut "mdns_out" "packets" Count "mDNS messages sent";
    NtpOut "ntp_out" "packets" Count "NTP requests sent";
    FragsOut "frags_out" "packets" Count "IP fragments sent";
    RemoteIpsSyn "remote_ips_syn" "addresses" Count "distinct remote IPs sent a connection attempt (horizontal scans)";
    IatMean "iat_mean" "seconds" Mean "mean time between packets sent";
    IatCv "iat_cv" "ratio" Ratio "coefficient of variation of the time between packets sent";
    ActiveSeconds "active_seconds" "seconds" Count "seconds of the window in which the device sent anything";
    BurstOut "burst_out" "packets" Mean "most packets sent in any one second of the window";
    UdpPayloadOut "udp_payload_out" "bytes" Count "UDP payload bytes sent";
    UdpPayloadIn "udp_payload_in" "bytes" Count "UDP payload bytes received";
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
    let mut s = String::from("| # | feature | unit | kind | meaning |\n|---|---|---|---|---|\n");
    for (i, f) in FEATURES.iter().enumerate() {
        s.push_str(&format!(
            "| {i} | `{}` | {} | {} | {} |\n",
            f.name,
            f.unit,
            f.kind.name(),
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
