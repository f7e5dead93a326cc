//! The MQTT sink: events, device states and Home Assistant discovery, published to a broker.
//!
//! What goes where ([`topic`] is the one definition of every topic):
//!
//! | topic | retained | what |
//! |---|---|---|
//! | `<base>/status` | yes | `online`; `offline` at exit, and as the last will |
//! | `<base>/anomaly` | no | one JSON event per anomaly opened, updated or closed |
//! | `<base>/events` | no | other events: a new device, a router change, a device gone quiet |
//! | `<base>/devices/<mac>` | yes | a device's state, when it changes, at most every `device_state_secs` |
//! | `<base>/node` | yes | the node's state (devices, incidents, packets, packets/s, kernel drops, temperature, throttling, learning) |
//! | `<prefix>/device/<id>/config` | yes | Home Assistant discovery, one per device and one for the node |
//!
//! Events come from the sink's queue (see [`crate::sink`]) and leave it only once the broker
//! acknowledged them ([`link::Link::publish`] waits for the PUBACK): at least once, in
//! order, across broker restarts; while the broker is away they wait in the queue (bounded,
//! drop-oldest). States come from the latest snapshot of the node
//! ([`crate::sink::StatusBoard`]), read between events. At every new session the sink says
//! `online` and publishes discovery and states again (a broker restarted without persistence
//! lost them); so it does when Home Assistant says `online` on `<prefix>/status`.
//!
//! Strings a device sent (its DHCP or mDNS name, its vendor class) go into JSON payloads only;
//! topics are built from the configuration and MAC addresses ([`topic`]).

pub mod discovery;
pub mod link;
pub mod topic;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Sink, StatusBoard};
use crate::config::{BrokerUrl, MqttConfig};
use crate::detect::{Event, EventKind, Phase, Severity, ThresholdSource};
use crate::device::oui;
use crate::engine::{DeviceStatus, Status};
use crate::wire::Mac;
use link::{Link, LinkOptions};
use topic::{Discovery, Topics};

/// How long a delivery waits for a connection before it reports none (and is tried again).
const CONNECT_WAIT: Duration = Duration::from_secs(1);
/// How long a publish waits for the broker's PUBACK.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Devices the sink remembers (their last anomaly, what it published); beyond this, those
/// seen least recently are forgotten.
const KNOWN_MAX: usize = 1024;
/// A device is announced (discovery and state) once it has sent this many packets, or had an
/// anomaly: a flood of one-frame MACs does not fill Home Assistant with devices.
const ANNOUNCE_AFTER_PACKETS: u64 = 10;

/// The retained state of one device on `<base>/devices/<mac>`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeviceState {
    pub mac: String,
    /// DHCP host name, else mDNS name (as the device sent it; printable, at most 64 bytes).
    pub name: String,
    /// The OUI registry's vendor of the MAC.
    pub vendor: Option<String>,
    /// DHCP vendor class.
    pub vendor_class: String,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    /// The last window's score, and the threshold it was judged against.
    pub score: Option<f32>,
    pub threshold: Option<f32>,
    pub threshold_source: Option<ThresholdSource>,
    /// An incident is open.
    pub anomaly: bool,
    pub incident: Option<u64>,
    pub last_seen: Option<String>,
    pub last_anomaly: Option<LastAnomaly>,
    /// Its alerts are muted until then (RFC 3339), set on the status page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<String>,
}

/// The latest anomaly event (opened or worse) of a device.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LastAnomaly {
    /// Start of the window that raised it (RFC 3339).
    pub at: String,
    pub incident: Option<u64>,
    pub phase: Phase,
    pub severity: Severity,
    pub score: f32,
    pub threshold: f32,
    /// The explanation, one line per feature.
    pub explanation: Vec<String>,
}

/// Two decimals are plenty for a score on a dashboard, and keep noise out of "changed".
fn round2(x: f32) -> f32 {
    (x * 100.0).round() / 100.0
}

impl DeviceState {
    fn new(mac: Mac) -> DeviceState {
        DeviceState {
            mac: mac.to_string(),
            name: String::new(),
            vendor: None,
            vendor_class: String::new(),
            ipv4: vec![],
            ipv6: vec![],
            score: None,
            threshold: None,
            threshold_source: None,
            anomaly: false,
            incident: None,
            last_seen: None,
            last_anomaly: None,
            muted_until: None,
        }
    }

    fn update(&mut self, d: &DeviceStatus) {
        self.name.clone_from(&d.name);
        self.vendor_class.clone_from(&d.vendor_class);
        self.ipv4.clone_from(&d.ipv4);
        self.ipv6.clone_from(&d.ipv6);
        self.score = d.score.map(round2);
        self.threshold = d.threshold.map(round2);
        self.threshold_source = d.threshold_source;
        self.anomaly = d.incident.is_some();
        self.incident = d.incident;
        self.last_seen = Some(d.last_seen.clone());
        self.muted_until.clone_from(&d.muted_until);
    }

    /// Whether the two differ in more than their score and time: such a change is published
    /// at once, not at the next `device_state_secs`.
    fn differs_much(&self, o: &DeviceState) -> bool {
        (
            &self.name,
            &self.vendor,
            &self.vendor_class,
            &self.ipv4,
            &self.ipv6,
        ) != (&o.name, &o.vendor, &o.vendor_class, &o.ipv4, &o.ipv6)
            || (
                self.anomaly,
                self.incident,
                &self.last_anomaly,
                &self.muted_until,
            ) != (o.anomaly, o.incident, &o.last_anomaly, &o.muted_until)
    }

    fn mac(&self) -> Option<Mac> {
        Mac::parse(&self.mac)
    }

    /// What the device's discovery config says, from this state.
    fn info(&self, mac: Mac) -> discovery::DeviceInfo<'_> {
        discovery::DeviceInfo {
            mac,
            name: if self.name.is_empty() {
                &self.mac
            } else {
                &self.name
            },
            vendor: self.vendor.as_deref(),
            vendor_class: &self.vendor_class,
        }
    }
}

/// The retained state of the node on `<base>/node`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeState {
    pub version: String,
    pub devices: usize,
    pub devices_with_anomaly: usize,
    pub devices_seen: u64,
    pub incidents_opened: u64,
    pub packets: u64,
    pub windows: u64,
    pub learning: bool,
    pub events: u64,
    pub last_packet: Option<String>,
    /// Packets per second, kernel drops, SoC temperature (°C) and throttling, as `iotad run`
    /// measured them.
    pub packets_per_s: f64,
    pub kernel_drops: u64,
    pub temperature_c: Option<f32>,
    pub throttled: Option<bool>,
}

impl NodeState {
    fn of(s: &Status) -> NodeState {
        NodeState {
            version: env!("CARGO_PKG_VERSION").into(),
            devices: s.devices.len(),
            devices_with_anomaly: s.devices.iter().filter(|d| d.incident.is_some()).count(),
            devices_seen: s.devices_seen,
            incidents_opened: s.incidents_opened.iter().sum(),
            packets: s.packets,
            windows: s.windows,
            learning: s.learning,
            events: s.events,
            last_packet: s.last_packet.clone(),
            packets_per_s: (s.health.packets_per_s * 10.0).round() / 10.0,
            kernel_drops: s.health.kernel_drops,
            temperature_c: s.health.temperature_c,
            throttled: s.health.throttled,
        }
    }

    fn differs_much(&self, o: &NodeState) -> bool {
        (
            self.devices,
            self.devices_with_anomaly,
            self.learning,
            self.incidents_opened,
            self.throttled,
        ) != (
            o.devices,
            o.devices_with_anomaly,
            o.learning,
            o.incidents_opened,
            o.throttled,
        )
    }
}

/// Where an event is published, and its payload (the event log's JSON).
pub fn event_message(topics: &Topics, e: &Event) -> Result<(String, Vec<u8>), String> {
    let topic = match e.kind {
        EventKind::Anomaly
        | EventKind::ArpSpoof
        | EventKind::MacFlood
        | EventKind::NextHopChange => topics.anomaly(),
        EventKind::NewDevice | EventKind::GatewayChange | EventKind::DeviceQuiet => topics.events(),
    };
    Ok((topic, serde_json::to_vec(e).map_err(|e| e.to_string())?))
}

/// Where a device's state is published, and its payload.
pub fn state_message(topics: &Topics, mac: Mac, s: &DeviceState) -> (String, Vec<u8>) {
    (
        topics.device(mac),
        serde_json::to_vec(s).expect("plain data serializes"),
    )
}

/// Where a device's discovery config is published, and its payload.
pub fn discovery_message(
    d: &Discovery,
    topics: &Topics,
    mac: Mac,
    s: &DeviceState,
) -> (String, Vec<u8>) {
    let (topic, config) = discovery::device(d, topics, &s.info(mac));
    (topic, config.to_string().into_bytes())
}

/// What was last published of a state, when, and in which session.
struct Sent<T> {
    session: u64,
    at: Instant,
    value: T,
}

/// Whether `cur` should be published now: first time in this session, or changed a lot, or
/// changed and `every` passed.
fn due<T: PartialEq>(
    sent: &Option<Sent<T>>,
    cur: &T,
    session: u64,
    every: Duration,
    much: impl Fn(&T, &T) -> bool,
) -> bool {
    match sent {
        None => true,
        Some(s) if s.session != session => true,
        Some(s) if s.value == *cur => false,
        Some(s) => much(&s.value, cur) || s.at.elapsed() >= every,
    }
}

/// What a device's discovery config says that may change: its name, vendor, vendor class.
type Described = (String, Option<String>, String);

/// One device the sink knows.
struct Known {
    state: DeviceState,
    /// Discovery and states are published for it.
    announce: bool,
    /// The session and (name, vendor, vendor class) its discovery config was published with.
    discovered: Option<(u64, Described)>,
    sent: Option<Sent<DeviceState>>,
    /// The board version it was last in.
    seen: u64,
}

/// The MQTT sink.
pub struct MqttSink {
    link: Link,
    topics: Topics,
    discovery: Option<Discovery>,
    board: Arc<StatusBoard>,
    board_seen: u64,
    node: Option<NodeState>,
    node_sent: Option<Sent<NodeState>>,
    node_discovered: Option<u64>,
    devices: HashMap<Mac, Known>,
    vendors: HashMap<u32, Option<String>>,
    oui_file: PathBuf,
    state_every: Duration,
    /// The session in which `online` was said.
    online: Option<u64>,
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL or the end.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match ok {
        true if end > 0 => String::from_utf8_lossy(&buf[..end]).into_owned(),
        _ => "iotad".into(),
    }
}

/// The password the configuration gives, from the file when it names one.
fn password(cfg: &MqttConfig) -> Result<Option<String>, String> {
    if let Some(p) = &cfg.password {
        return Ok(Some(p.clone()));
    }
    let Some(path) = &cfg.password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("mqtt.password_file {}: {e}", path.display()))?;
    Ok(Some(text.lines().next().unwrap_or("").to_string()))
}

impl MqttSink {
    /// The sink the configuration asks for, connecting in the background; `None` when no
    /// broker is configured.
    pub fn start(
        cfg: &MqttConfig,
        oui_file: &Path,
        board: Arc<StatusBoard>,
    ) -> Result<Option<MqttSink>, String> {
        let Some(url) = cfg.broker_url()? else {
            return Ok(None);
        };
        let host = hostname();
        let base = cfg
            .topic_base
            .clone()
            .unwrap_or_else(|| topic::default_base(&host));
        let topics = Topics::new(&base).map_err(|e| format!("mqtt.topic_base: {e}"))?;
        let discovery = match cfg.discovery {
            true => Some(
                Discovery::new(&cfg.discovery_prefix)
                    .map_err(|e| format!("mqtt.discovery_prefix: {e}"))?,
            ),
            false => None,
        };
        let client_id = cfg
            .client_id
            .clone()
            .unwrap_or_else(|| format!("iotad-{}", topic::sanitize(&host)));
        let mut options = link::options(
            &client_id,
            &url.host,
            url.port,
            Duration::from_secs(u64::from(cfg.keepalive_secs)),
            (topics.status(), "offline"),
        );
        if let Some(user) = &cfg.username {
            options.set_credentials(user, password(cfg)?.unwrap_or_default());
        }
        if url.tls {
            let tls = super::tls::client_config(cfg.ca_file.as_deref(), "mqtt.ca_file")?;
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
            ));
        }
        log::info!(
            "mqtt: publishing under {base}/ to {url}{}",
            match &discovery {
                Some(d) => format!(
                    ", Home Assistant discovery under {}",
                    d.ha_status().trim_end_matches("/status")
                ),
                None => String::new(),
            }
        );
        let link = Link::start(LinkOptions {
            options,
            broker: BrokerUrl::to_string(&url),
            subscribe: discovery.as_ref().map(Discovery::ha_status),
            retry_max: Duration::from_secs(u64::from(cfg.retry_max_secs)),
        });
        Ok(Some(MqttSink {
            link,
            topics,
            discovery,
            board,
            board_seen: 0,
            node: None,
            node_sent: None,
            node_discovered: None,
            devices: HashMap::new(),
            vendors: HashMap::new(),
            oui_file: oui_file.to_path_buf(),
            state_every: Duration::from_secs(u64::from(cfg.device_state_secs)),
            online: None,
        }))
    }

    fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), String> {
        self.link.publish(topic, payload, retain, ACK_TIMEOUT)
    }

    /// Takes in the latest snapshot of the node, when there is a newer one.
    fn absorb(&mut self) {
        let Some((version, status)) = self.board.newer_than(self.board_seen) else {
            return;
        };
        self.board_seen = version;
        for d in &status.devices {
            let Some(mac) = Mac::parse(&d.mac) else {
                continue;
            };
            let k = self.devices.entry(mac).or_insert_with(|| Known::new(mac));
            k.state.update(d);
            k.announce |= d.packets_out >= ANNOUNCE_AFTER_PACKETS || d.incident.is_some();
            k.seen = version;
        }
        self.node = Some(NodeState::of(&status));
        self.forget_beyond(KNOWN_MAX);
        self.lookup_vendors();
    }

    /// Forgets the devices seen least recently while more than `max` are known.
    fn forget_beyond(&mut self, max: usize) {
        if self.devices.len() <= max {
            return;
        }
        let mut by_age: Vec<(u64, Mac)> = self.devices.iter().map(|(m, k)| (k.seen, *m)).collect();
        by_age.sort_unstable();
        for (_, mac) in by_age.iter().take(self.devices.len() - max) {
            self.devices.remove(mac);
        }
    }

    /// Finds the vendors of announced devices not looked up yet (one pass over the registry).
    fn lookup_vendors(&mut self) {
        let mut missing: Vec<u32> = self
            .devices
            .iter()
            .filter(|(m, k)| k.announce && !self.vendors.contains_key(&m.oui()))
            .map(|(m, _)| m.oui())
            .collect();
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            if self.vendors.len() > 4 * KNOWN_MAX {
                self.vendors.clear();
            }
            let found = oui::lookup(&self.oui_file, &missing);
            for o in missing {
                self.vendors.insert(o, found.get(&o).cloned());
            }
        }
        for (mac, k) in &mut self.devices {
            if let Some(v) = self.vendors.get(&mac.oui()) {
                k.state.vendor.clone_from(v);
            }
        }
    }

    /// Notes the device an event is about (announced from now on if it is an anomaly).
    fn note(&mut self, e: &Event) -> Option<Mac> {
        let mac = Mac::parse(&e.device.mac)?;
        let k = self.devices.entry(mac).or_insert_with(|| {
            let mut k = Known::new(mac);
            k.state.name.clone_from(&e.device.name);
            k.state.vendor_class.clone_from(&e.device.vendor_class);
            k.state.ipv4.clone_from(&e.device.ipv4);
            k.state.ipv6.clone_from(&e.device.ipv6);
            k
        });
        k.announce |= e.kind == EventKind::Anomaly;
        k.seen = self.board_seen;
        self.forget_beyond(KNOWN_MAX);
        Some(mac)
    }

    /// Says `online` and publishes discovery once per session (again when Home Assistant
    /// says `online`, or a device's name or vendor changed); returns the session.
    fn announce(&mut self) -> Result<u64, String> {
        let session = self.link.session(Duration::ZERO)?;
        if self.link.take_message().is_some_and(|m| m == b"online") {
            log::info!("mqtt: Home Assistant is online: publishing discovery again");
            self.node_discovered = None;
            for k in self.devices.values_mut() {
                k.discovered = None;
            }
        }
        if self.online != Some(session) {
            self.publish(&self.topics.status(), b"online".to_vec(), true)?;
            self.online = Some(session);
        }
        let Some(d) = &self.discovery else {
            return Ok(session);
        };
        if self.node_discovered != Some(session) {
            let (topic, config) = discovery::node(d, &self.topics);
            self.link
                .publish(&topic, config.to_string().into_bytes(), true, ACK_TIMEOUT)?;
            self.node_discovered = Some(session);
        }
        for (mac, k) in self.devices.iter_mut().filter(|(_, k)| k.announce) {
            let key: Described = (
                k.state.name.clone(),
                k.state.vendor.clone(),
                k.state.vendor_class.clone(),
            );
            if k.discovered.as_ref() == Some(&(session, key.clone())) {
                continue;
            }
            let (topic, payload) = discovery_message(d, &self.topics, *mac, &k.state);
            self.link.publish(&topic, payload, true, ACK_TIMEOUT)?;
            k.discovered = Some((session, key));
        }
        Ok(session)
    }

    /// Publishes the node's and the devices' states that are due.
    fn states(&mut self, session: u64) -> Result<(), String> {
        let every = self.state_every;
        if let Some(n) = &self.node {
            if due(&self.node_sent, n, session, every, NodeState::differs_much) {
                let payload = serde_json::to_vec(n).map_err(|e| e.to_string())?;
                self.link
                    .publish(&self.topics.node(), payload, true, ACK_TIMEOUT)?;
                self.node_sent = Some(Sent {
                    session,
                    at: Instant::now(),
                    value: n.clone(),
                });
            }
        }
        for (mac, k) in self.devices.iter_mut().filter(|(_, k)| k.announce) {
            if !due(&k.sent, &k.state, session, every, DeviceState::differs_much) {
                continue;
            }
            let (topic, payload) = state_message(&self.topics, *mac, &k.state);
            self.link.publish(&topic, payload, true, ACK_TIMEOUT)?;
            k.sent = Some(Sent {
                session,
                at: Instant::now(),
                value: k.state.clone(),
            });
        }
        Ok(())
    }
}

impl Known {
    fn new(mac: Mac) -> Known {
        Known {
            state: DeviceState::new(mac),
            announce: false,
            discovered: None,
            sent: None,
            seen: 0,
        }
    }
}

impl Sink for MqttSink {
    fn deliver(&mut self, e: &Event) -> Result<(), String> {
        self.absorb();
        let mac = self.note(e);
        self.link.session(CONNECT_WAIT)?;
        self.announce()?;
        let (topic, payload) = event_message(&self.topics, e)?;
        self.publish(&topic, payload, false)?;
        if let (Some(mac), EventKind::Anomaly, Some(Phase::Open | Phase::Update)) =
            (mac, e.kind, e.phase)
        {
            if let Some(k) = self.devices.get_mut(&mac) {
                debug_assert_eq!(k.state.mac(), Some(mac));
                k.state.last_anomaly = Some(LastAnomaly {
                    at: e.window_start.clone(),
                    incident: e.incident,
                    phase: e.phase.unwrap_or(Phase::Open),
                    severity: e.severity,
                    score: round2(e.score),
                    threshold: round2(e.threshold),
                    explanation: e.explanation.iter().map(|c| c.text.clone()).collect(),
                });
            }
        }
        Ok(())
    }

    /// `deliver` waits for the connection itself ([`CONNECT_WAIT`]), and the connection
    /// has its own backoff: a failed delivery is tried again soon.
    fn retry_delay(&self, _failures: u32) -> Duration {
        Duration::from_millis(50)
    }

    fn idle(&mut self) {
        self.absorb();
        if !self.link.connected() {
            return;
        }
        if let Err(e) = self.announce().and_then(|s| self.states(s)) {
            log::debug!("mqtt: {e}");
        }
    }

    fn close(&mut self, deadline: Instant) {
        if self.link.connected() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.publish_within(b"offline", left) {
                Ok(()) => log::info!("mqtt: said offline on {}", self.topics.status()),
                Err(e) => log::warn!("mqtt: could not say offline: {e}"),
            }
        }
        self.link.close(deadline);
    }
}

impl MqttSink {
    fn publish_within(&self, status: &[u8], left: Duration) -> Result<(), String> {
        self.link.publish(
            &self.topics.status(),
            status.to_vec(),
            true,
            left.min(ACK_TIMEOUT),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Contribution, DeviceRef};

    fn hostile_status(name: &str) -> DeviceStatus {
        DeviceStatus {
            mac: "02:10:00:00:00:07".into(),
            name: name.into(),
            vendor_class: "udhcp/+/#".into(),
            own_name: String::new(),
            muted_until: None,
            visible: None,
            ipv4: vec!["192.168.1.7".into()],
            ipv6: vec![],
            first_seen: "2024-01-01T00:00:00Z".into(),
            last_seen: "2024-01-01T00:10:00Z".into(),
            packets_out: 100,
            packets_in: 100,
            score: Some(23.456),
            threshold: Some(12.0),
            threshold_source: Some(ThresholdSource::Device),
            incident: Some(4),
            history: vec![],
        }
    }

    #[test]
    fn a_hostile_host_name_never_reaches_a_topic() {
        // what a device may put in DHCP option 12 (printable, 64 bytes at most) and more
        for name in [
            "evil/#",
            "../../homeassistant/device/x",
            "+/+/status",
            "a\u{0}b",
            "$SYS/broker",
            "cam era/😀",
            "devices",
        ] {
            let status = hostile_status(name);
            let mac = Mac::parse(&status.mac).unwrap();
            let mut state = DeviceState::new(mac);
            state.update(&status);
            let event = Event {
                kind: EventKind::Anomaly,
                phase: Some(Phase::Open),
                incident: Some(4),
                device: DeviceRef {
                    mac: status.mac.clone(),
                    ipv4: status.ipv4.clone(),
                    ipv6: vec![],
                    name: name.into(),
                    vendor_class: status.vendor_class.clone(),
                    randomized: false,
                },
                window_start: "2024-01-01T00:10:00Z".into(),
                window_end: "2024-01-01T00:10:10Z".into(),
                window_start_epoch: 1_704_067_800,
                score: 23.4,
                threshold: 12.0,
                threshold_source: ThresholdSource::Device,
                severity: Severity::Low,
                behaviour: None,
                explanation: vec![Contribution {
                    feature: "syn_out".into(),
                    unit: "packets".into(),
                    observed: 1000.0,
                    expected: 0.0,
                    weight: 13.0,
                    text: format!("{name} sent SYNs"),
                }],
                detail: None,
                role: None,
                counterpart: None,
            };
            let topics = Topics::new("iotad/pi").unwrap();
            let d = Discovery::new("homeassistant").unwrap();
            let messages = [
                event_message(&topics, &event).unwrap(),
                state_message(&topics, mac, &state),
                discovery_message(&d, &topics, mac, &state),
            ];
            let expected = [
                "iotad/pi/anomaly",
                "iotad/pi/devices/021000000007",
                "homeassistant/device/iotad_pi_021000000007/config",
            ];
            for ((topic, payload), want) in messages.iter().zip(expected) {
                assert_eq!(topic, want, "{name:?}");
                assert!(topic::publishable(topic));
                let json: serde_json::Value = serde_json::from_slice(payload).unwrap();
                assert!(
                    json.to_string()
                        .contains(&serde_json::to_string(name).unwrap()[1..]),
                    "the name is in the payload, JSON-escaped: {json}"
                );
            }
        }
    }

    #[test]
    fn states_are_published_on_change_and_at_most_every_interval() {
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        let mut s = DeviceState::new(mac);
        s.score = Some(1.0);
        let every = Duration::from_secs(60);
        let sent = Some(Sent {
            session: 3,
            at: Instant::now(),
            value: s.clone(),
        });
        let much = DeviceState::differs_much;
        assert!(!due(&sent, &s, 3, every, much), "unchanged");
        assert!(due(&sent, &s, 4, every, much), "a new session");
        let mut scored = s.clone();
        scored.score = Some(2.0);
        assert!(!due(&sent, &scored, 3, every, much), "a new score waits");
        let mut open = s.clone();
        open.anomaly = true;
        assert!(due(&sent, &open, 3, every, much), "an anomaly goes at once");
        // a mute set on the status page goes at once, in the payload
        let mut st = hostile_status("plug");
        st.muted_until = Some("2026-12-01T18:00:00Z".into());
        let mut muted = s.clone();
        muted.update(&st);
        assert!(due(&sent, &muted, 3, every, much), "a mute goes at once");
        let json = serde_json::to_string(&muted).unwrap();
        assert!(
            json.contains(r#""muted_until":"2026-12-01T18:00:00Z""#),
            "{json}"
        );
        let old = Some(Sent {
            session: 3,
            at: Instant::now() - every,
            value: s.clone(),
        });
        assert!(
            due(&old, &scored, 3, every, much),
            "a new score after the interval"
        );
        assert!(due(&None, &s, 3, every, much));
        assert_eq!(round2(23.456), 23.46);
    }
}
