//! The configuration: one JSON file in sections (`capture`, `pipeline`, `detect`, `model`,
//! `state`, `events`, `mqtt`, `webhook`, `email`, `alerts`, `tune`, `http`), every key optional, unknown keys and invalid values rejected with the
//! key and the file named, overridden by command-line flags. Defaults live in the `Default`
//! impls here (and `DetectConfig`'s); what each key means lives in [`KEYS`], which
//! `iotad config --example` and the README's table are made from. Lines whose first
//! non-blank characters are `//` are comments.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::{DetectConfig, Severity};
use crate::device::MAX_DEVICES;
use crate::sink::policy::{Mute, NewDevices, Policy};
use crate::wire::Mac;

pub use crate::window::DEFAULT_WINDOW_SECS;

/// Where `iotad run` looks for its configuration when none is named.
pub const DEFAULT_PATH: &str = "/etc/iotad/config.json";

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub capture: CaptureConfig,
    pub pipeline: PipelineConfig,
    pub detect: DetectConfig,
    pub model: ModelConfig,
    pub state: StateConfig,
    pub events: EventsConfig,
    pub mqtt: MqttConfig,
    pub webhook: WebhookConfig,
    pub email: EmailConfig,
    pub alerts: AlertsConfig,
    pub tune: crate::tune::TuneConfig,
    pub http: HttpConfig,
}

/// Live capture (`iotad run`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub interface: Option<String>,
    pub snaplen: u32,
    pub promiscuous: bool,
    pub buffer_mib: u32,
    pub timeout_ms: u32,
    pub immediate: bool,
    pub filter: Option<String>,
    pub core: Option<usize>,
    pub retry_max_secs: u32,
    pub visibility_secs: u32,
}

impl Default for CaptureConfig {
    fn default() -> CaptureConfig {
        CaptureConfig {
            interface: None,
            snaplen: 1024,
            promiscuous: true,
            buffer_mib: 32,
            timeout_ms: 100,
            immediate: false,
            filter: None,
            core: None,
            retry_max_secs: 30,
            visibility_secs: 180,
        }
    }
}

/// Settings of the packet pipeline (devices and windows).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    pub window_secs: u32,
    pub max_devices: usize,
    pub gateways: Vec<String>,
    pub auto_gateway: bool,
    pub dhcp_router: bool,
    pub max_gap_windows: u64,
    pub oui_file: PathBuf,
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig {
            window_secs: DEFAULT_WINDOW_SECS,
            max_devices: MAX_DEVICES,
            gateways: Vec::new(),
            auto_gateway: true,
            dhcp_router: true,
            max_gap_windows: 8640,
            oui_file: PathBuf::from(crate::device::oui::DEFAULT_PATH),
        }
    }
}

/// Which model scores the windows.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub file: Option<PathBuf>,
    pub f32: bool,
}

/// What the daemon keeps across restarts.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub file: Option<PathBuf>,
    pub checkpoint_secs: u32,
}

impl Default for StateConfig {
    fn default() -> StateConfig {
        StateConfig {
            file: Some(PathBuf::from("/var/lib/iotad/state.json")),
            checkpoint_secs: 300,
        }
    }
}

/// The JSON-lines event log.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub file: Option<PathBuf>,
    pub queue: usize,
    pub quiet_after_secs: Option<u32>,
}

impl Default for EventsConfig {
    fn default() -> EventsConfig {
        EventsConfig {
            file: None,
            queue: 1000,
            quiet_after_secs: None,
        }
    }
}

/// Alerts over MQTT (off without a broker), with Home Assistant discovery.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub broker: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub client_id: Option<String>,
    pub keepalive_secs: u32,
    pub topic_base: Option<String>,
    pub queue: usize,
    pub retry_max_secs: u32,
    pub device_state_secs: u32,
    pub discovery: bool,
    pub discovery_prefix: String,
    pub min_severity: Severity,
    pub new_devices: NewDevices,
}

impl Default for MqttConfig {
    fn default() -> MqttConfig {
        MqttConfig {
            broker: None,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            client_id: None,
            keepalive_secs: 30,
            topic_base: None,
            queue: 1000,
            retry_max_secs: 30,
            device_state_secs: 60,
            discovery: true,
            discovery_prefix: "homeassistant".into(),
            min_severity: Severity::Low,
            new_devices: NewDevices::All,
        }
    }
}

/// A broker address: `mqtt://host[:port]` (1883) or `mqtts://host[:port]` (8883, TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let bad = |why: &str| {
            format!(
                "mqtt.broker {url:?}: {why} (like mqtt://192.168.1.2:1883 or mqtts://broker.lan)"
            )
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(bad("the scheme must be mqtt:// or mqtts://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '@', '?', '#']) {
            return Err(bad("only a host and a port may follow the scheme"));
        }
        let (host, port) = match rest.strip_prefix('[') {
            // [v6]:port
            Some(v6) => {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
                (h, after.strip_prefix(':'))
            }
            None => match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => {
                if tls {
                    8883
                } else {
                    1883
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port must be 1 to 65535"))?,
        };
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl MqttConfig {
    /// The broker, when MQTT is on.
    pub fn broker_url(&self) -> Result<Option<BrokerUrl>, String> {
        self.broker.as_deref().map(BrokerUrl::parse).transpose()
    }

    /// Checks the section's values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let url = self.broker_url()?;
        if self.password.is_some() && self.password_file.is_some() {
            return Err("mqtt.password and mqtt.password_file: give one, not both".into());
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.username.is_none() {
            return Err("mqtt.password needs mqtt.username".into());
        }
        if self.ca_file.is_some() && url.as_ref().is_some_and(|u| !u.tls) {
            return Err("mqtt.ca_file is for mqtts:// brokers; mqtt.broker is mqtt://".into());
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
                return Err(format!(
                    "mqtt.client_id must be 1 to 256 printable characters, not {id:?}"
                ));
            }
        }
        if !(5..=3600).contains(&self.keepalive_secs) {
            return Err(format!(
                "mqtt.keepalive_secs must be 5 to 3600, not {}",
                self.keepalive_secs
            ));
        }
        if let Some(base) = &self.topic_base {
            crate::sink::mqtt::topic::check_base(base)
                .map_err(|e| format!("mqtt.topic_base: {e}"))?;
        }
        crate::sink::mqtt::topic::check_base(&self.discovery_prefix)
            .map_err(|e| format!("mqtt.discovery_prefix: {e}"))?;
        if !(1..=1_000_000).contains(&self.queue) {
            return Err(format!(
                "mqtt.queue must be 1 to 1000000, not {}",
                self.queue
            ));
        }
        if self.retry_max_secs == 0 {
            return Err("mqtt.retry_max_secs must be at least 1".into());
        }
        if self.device_state_secs == 0 {
            return Err("mqtt.device_state_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// The status page, its JSON API and the Prometheus metrics (`iotad run`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    pub bind: String,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub max_connections: usize,
    pub timeout_secs: u32,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            enabled: true,
            bind: "127.0.0.1:8080".into(),
            token: None,
            token_file: None,
            max_connections: 32,
            timeout_secs: 5,
        }
    }
}

impl HttpConfig {
    /// The address to listen on.
    pub fn addr(&self) -> Result<std::net::SocketAddr, String> {
        self.bind.parse().map_err(|_| {
            format!(
                "http.bind {:?} is not an address and port like 127.0.0.1:8080 or [::1]:8080",
                self.bind
            )
        })
    }

    /// The token, read from `token_file` when that is set (its first line).
    pub fn token(&self) -> Result<Option<String>, String> {
        let t = match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => {
                return Err("http.token and http.token_file: give one, not both".into())
            }
            (Some(t), None) => t.trim().to_string(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| format!("http.token_file {}: {e}", f.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            (None, None) => return Ok(None),
        };
        if t.len() < 8 || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("http.token must be at least 8 printable characters without spaces".into());
        }
        Ok(Some(t))
    }

    /// Checks the section's values; a non-loopback address without a token is refused.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let addr = self.addr()?;
        let token = self.token()?;
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(format!(
                "http.bind {} is not a loopback address: set http.token or http.token_file \
                 (or bind 127.0.0.1)",
                self.bind
            ));
        }
        if !(1..=1024).contains(&self.max_connections) {
            return Err(format!(
                "http.max_connections must be 1 to 1024, not {}",
                self.max_connections
            ));
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return Err(format!(
                "http.timeout_secs must be 1 to 300, not {}",
                self.timeout_secs
            ));
        }
        Ok(())
    }
}

/// The `webhook` configuration section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub timeout_secs: u32,
    pub queue: usize,
    pub min_severity: Severity,
    pub new_devices: NewDevices,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            url: None,
            token_file: None,
            ca_file: None,
            timeout_secs: 10,
            queue: 1000,
            min_severity: Severity::Low,
            new_devices: NewDevices::All,
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain SMTP upgraded with STARTTLS (port 587), which the server must offer.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS (port 25): for a relay on a trusted network, and never with a login.
    None,
}

/// Alerts by email (off without a server).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    pub server: Option<String>,
    pub port: Option<u16>,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub status_url: Option<String>,
    pub max_per_hour: u32,
    pub timeout_secs: u32,
    pub queue: usize,
    pub min_severity: Severity,
    pub new_devices: NewDevices,
}

impl Default for EmailConfig {
    fn default() -> EmailConfig {
        EmailConfig {
            server: None,
            port: None,
            security: Security::Starttls,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            from: None,
            to: Vec::new(),
            status_url: None,
            max_per_hour: 10,
            timeout_secs: 30,
            queue: 1000,
            min_severity: Severity::Low,
            new_devices: NewDevices::None,
        }
    }
}

/// Whether `a` is a plain mail address (`local@domain`, printable ASCII, no spaces or
/// brackets): all iotad puts between SMTP's `<` and `>`.
fn mail_address(a: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"@".contains(&b))
    };
    a.len() <= 254 && a.split_once('@').is_some_and(|(l, d)| ok(l) && ok(d))
}

impl EmailConfig {
    /// The port: `email.port`, else the security's usual one.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        })
    }

    /// Checks the section's values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let Some(server) = &self.server else {
            return Ok(());
        };
        if server.is_empty() || server.len() > 253 || !server.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "email.server {server:?} is not a host name or address"
            ));
        }
        if self.port == Some(0) {
            return Err("email.port must be 1 to 65535 (or null)".into());
        }
        if self.to.is_empty() {
            return Err("email.to: name at least one recipient".into());
        }
        for a in self.to.iter().chain(&self.from) {
            if !mail_address(a) {
                return Err(format!(
                    "email.to / email.from: {a:?} is not a plain address like me@example.org"
                ));
            }
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err("email.password and email.password_file: give one, not both".into());
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.username.is_none() {
            return Err("email.password needs email.username".into());
        }
        if self
            .username
            .as_deref()
            .is_some_and(|u| u.is_empty() || u.contains(['\0', '\r', '\n']))
        {
            return Err("email.username must be printable".into());
        }
        if self.security == Security::None && self.username.is_some() {
            return Err(
                "email.username with email.security none would send the password in clear: \
                 use starttls or tls"
                    .into(),
            );
        }
        if self.ca_file.is_some() && self.security == Security::None {
            return Err("email.ca_file is for email.security starttls or tls".into());
        }
        if let Some(url) = &self.status_url {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.bytes().any(|b| !b.is_ascii_graphic())
            {
                return Err(format!("email.status_url {url:?} is not an http(s):// URL"));
            }
        }
        if self.max_per_hour == 0 {
            return Err("email.max_per_hour must be at least 1".into());
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return Err(format!(
                "email.timeout_secs must be 1 to 300, not {}",
                self.timeout_secs
            ));
        }
        if !(1..=1_000_000).contains(&self.queue) {
            return Err(format!(
                "email.queue must be 1 to 1000000, not {}",
                self.queue
            ));
        }
        Ok(())
    }
}

/// The alert policy shared by MQTT, webhook and email (see [`crate::sink::policy`]).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub mute: Vec<String>,
    pub device_per_hour: u32,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            mute: Vec::new(),
            device_per_hour: 30,
        }
    }
}

impl AlertsConfig {
    /// The mutes, parsed.
    pub fn mutes(&self) -> Result<Vec<Mute>, String> {
        self.mute.iter().map(|m| Mute::parse(m)).collect()
    }

    /// A sink's policy: its own minimum severity and new devices, and the shared rest.
    pub fn policy(
        &self,
        min_severity: Severity,
        new_devices: NewDevices,
    ) -> Result<Policy, String> {
        Ok(Policy::new(
            min_severity,
            new_devices,
            self.mutes()?,
            self.device_per_hour,
        ))
    }
}

impl WebhookConfig {
    /// Checks the section's values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let url = self.url.as_deref().map(HttpUrl::parse).transpose()?;
        if self.ca_file.is_some() && url.as_ref().is_some_and(|u| !u.tls) {
            return Err("webhook.ca_file is for https:// URLs; webhook.url is http://".into());
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return Err(format!(
                "webhook.timeout_secs must be 1 to 300, not {}",
                self.timeout_secs
            ));
        }
        if !(1..=1_000_000).contains(&self.queue) {
            return Err(format!(
                "webhook.queue must be 1 to 1000000, not {}",
                self.queue
            ));
        }
        Ok(())
    }
}

/// An http:// or https:// URL: host, port, and the path with its query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let bad = |why: &str| {
            format!("webhook.url {url:?}: {why} (like https://ha.lan:8123/api/webhook/iotad)")
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad("the scheme must be http:// or https://"));
        };
        if url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("spaces and control characters are not allowed"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if authority.contains('@') {
            return Err(bad(
                "credentials in the URL are not supported: use webhook.token_file",
            ));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
                (h, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("the port must be 1 to 65535"))?,
        };
        Ok(HttpUrl {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The Host header: the host, bracketed when IPv6, with the port unless the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.path)
    }
}

/// What every key means, in file order: the one place the documentation of a key lives.
pub const KEYS: &[(&str, &str)] = &[
    ("capture.interface", "interface to capture on (null: the interface of the default route)"),
    ("capture.snaplen", "bytes kept of each frame: headers and the DNS/DHCP fields fit in 1024"),
    ("capture.promiscuous", "see frames addressed to other stations (needed to watch devices)"),
    ("capture.buffer_mib", "kernel capture buffer, MiB: bursts wait here instead of being dropped"),
    ("capture.timeout_ms", "libpcap read timeout, ms: how long a batch of packets may wait"),
    ("capture.immediate", "deliver each packet at once (lower latency, more CPU than a timeout)"),
    ("capture.filter", "BPF filter (tcpdump syntax) applied in the kernel, or null"),
    ("capture.core", "CPU core the capture thread is pinned to, or null for none"),
    ("capture.retry_max_secs", "longest wait between attempts to reopen an interface that went away"),
    ("capture.visibility_secs", "seconds of capture before judging what it sees (a warning when only broadcast and own traffic)"),
    ("pipeline.window_secs", "length of a feature window, seconds (1 to 3600; the model's)"),
    ("pipeline.max_devices", "devices tracked at once (1 to 256); the least recently seen is evicted"),
    ("pipeline.gateways", "MAC addresses of the LAN's routers; others are detected from traffic"),
    ("pipeline.auto_gateway", "detect routers from traffic (frames to internet addresses)"),
    ("pipeline.dhcp_router", "a router the DHCP server names (option 3) is a router at once; others that forward once one is known stay devices for 30 minutes"),
    ("pipeline.max_gap_windows", "longest silence emitted as empty windows; longer ones skip the rest"),
    ("pipeline.oui_file", "the IEEE OUI registry for vendor names (Debian package ieee-data)"),
    ("detect.learning_windows", "windows after the first during which thresholds are learned and nothing alerts"),
    ("detect.margin", "a device's threshold is this times the highest score of its learning period"),
    ("detect.floor", "no threshold is below this"),
    ("detect.close_after", "normal windows in a row that close an incident"),
    ("detect.explain", "features named in an explanation"),
    ("detect.adapt_after", "windows of an incident after which the model accepts the new behaviour"),
    ("detect.persist", "an incident stays open while a feature that opened it is off by more than this many typical errors"),
    ("detect.parked_devices", "devices whose learning is kept while they are out of the device table"),
    ("model.file", "model file (GGUF or safetensors), or null for the built-in model"),
    ("model.f32", "step the model in f32 (Q8_0 weights dequantized)"),
    ("state.file", "where learned state is saved and restored, or null to keep none"),
    ("state.checkpoint_secs", "seconds between checkpoints of the learned state (and one at exit)"),
    ("events.file", "JSON-lines event log (\"-\": standard output), or null for none"),
    ("events.queue", "events waiting for a slow sink before the oldest is dropped (and counted)"),
    ("events.quiet_after_secs", "a device that sent nothing for this long is a device-quiet event (null: never)"),
    ("mqtt.broker", "MQTT broker, mqtt://host:port or mqtts://host:port (TLS), or null for no MQTT"),
    ("mqtt.username", "user name to log in with, or null"),
    ("mqtt.password", "password to log in with, or null (see password_file)"),
    ("mqtt.password_file", "file holding the password (its first line), or null"),
    ("mqtt.ca_file", "PEM file of the CA that signed an mqtts:// broker's certificate (null: the system's roots)"),
    ("mqtt.client_id", "MQTT client id (null: iotad-HOSTNAME)"),
    ("mqtt.keepalive_secs", "seconds between keepalive pings: a silent link is declared dead (and the last will sent) after 1.5 times this"),
    ("mqtt.topic_base", "prefix of every topic iotad publishes (null: iotad/HOSTNAME)"),
    ("mqtt.queue", "events waiting for the broker before the oldest is dropped (and counted)"),
    ("mqtt.retry_max_secs", "longest wait between attempts to reach the broker"),
    ("mqtt.device_state_secs", "a device's state is published when it changes, at most this often (an anomaly at once)"),
    ("mqtt.discovery", "publish Home Assistant discovery configs (one per device)"),
    ("mqtt.discovery_prefix", "Home Assistant's discovery prefix"),
    ("mqtt.min_severity", "least severity of an event published: low, medium or high (an incident's close follows its opening)"),
    ("mqtt.new_devices", "new-device events published: all, fixed (not for randomized, locally administered MACs) or none"),
    ("webhook.url", "URL each event is POSTed to as JSON (http:// or https://), or null for none"),
    ("webhook.token_file", "file whose first line is sent as Authorization: Bearer, or null"),
    ("webhook.ca_file", "PEM file of the CA that signed an https:// server's certificate (null: the system's roots)"),
    ("webhook.timeout_secs", "seconds to connect, send and get an answer before trying again later"),
    ("webhook.queue", "events waiting for the receiver before the oldest is dropped (and counted)"),
    ("webhook.min_severity", "least severity of an event POSTed: low, medium or high (an incident's close follows its opening)"),
    ("webhook.new_devices", "new-device events POSTed: all, fixed (not for randomized, locally administered MACs) or none"),
    ("email.server", "SMTP server mail is sent through, or null for no email"),
    ("email.port", "its port (null: 587 for starttls, 465 for tls, 25 for none)"),
    ("email.security", "starttls (required, not optional), tls (from the first byte) or none (a trusted relay, no login)"),
    ("email.username", "user name to log in with (AUTH PLAIN, over TLS only), or null"),
    ("email.password", "password to log in with, or null (see password_file)"),
    ("email.password_file", "file holding the password (its first line), or null"),
    ("email.ca_file", "PEM file of the CA that signed the server's certificate (null: the system's roots)"),
    ("email.from", "sender address (null: iotad@HOSTNAME)"),
    ("email.to", "recipient addresses"),
    ("email.status_url", "the status page's URL for the link in each mail, or null for none"),
    ("email.max_per_hour", "mails in any hour at most; beyond, events wait for one digest mail"),
    ("email.timeout_secs", "seconds to connect and for each answer before trying again later"),
    ("email.queue", "events waiting for the server before the oldest is dropped (and counted)"),
    ("email.min_severity", "least severity of an incident mailed: low, medium or high (its close follows its opening)"),
    ("email.new_devices", "new-device events mailed: all, fixed (not for randomized, locally administered MACs) or none"),
    ("alerts.mute", "devices muted for MQTT, webhook and email until a time: [\"MAC until 2026-12-01T18:00:00Z\"]"),
    ("alerts.device_per_hour", "events about one device a sink is given per hour at most (0: no limit)"),
    ("tune.at_start", "iotad run applies the tuning plan at start when it can, and undoes it at exit"),
    ("tune.root", "where sysfs and procfs are looked for (/sys, /proc under it; for tests)"),
    ("tune.governor", "CPU frequency governor set on every cpufreq policy, or null to leave it"),
    ("tune.irq_cpu", "CPU the capture NIC's interrupts go to (null: capture.core, else CPU 1)"),
    ("tune.state_file", "where iotad tune --apply records what it changed, for --restore"),
    ("tune.vcgencmd", "the firmware tool asked for throttling (vcgencmd get_throttled)"),
    ("http.enabled", "serve the status page, its JSON API and /metrics"),
    ("http.bind", "address and port to listen on; any address but loopback needs a token"),
    ("http.token", "token every request must bring (Authorization: Bearer, or ?token= once), or null"),
    ("http.token_file", "file whose first line is the token (instead of http.token), or null"),
    ("http.max_connections", "connections served at once; a new one closes the oldest still sending its request, or gets 503"),
    ("http.timeout_secs", "seconds a client has to send its request (and to read the answer)"),
];

impl Config {
    /// Reads a configuration file (see the module doc for its syntax), or the defaults when
    /// `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        let cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read config {}: {e}", p.display()))?;
                Config::parse(&text).map_err(|e| format!("config {}: {e}", p.display()))?
            }
        };
        Ok(cfg)
    }

    /// Parses a configuration's text and checks its values.
    pub fn parse(text: &str) -> Result<Config, String> {
        let json: String = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("//") {
                    ""
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let cfg: Config = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every section's values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.pipeline.validate()?;
        let c = &self.capture;
        if !(64..=262_144).contains(&c.snaplen) {
            return Err(format!(
                "capture.snaplen must be 64 to 262144, not {}",
                c.snaplen
            ));
        }
        if !(1..=4096).contains(&c.buffer_mib) {
            return Err(format!(
                "capture.buffer_mib must be 1 to 4096, not {}",
                c.buffer_mib
            ));
        }
        if !(1..=10_000).contains(&c.timeout_ms) {
            return Err(format!(
                "capture.timeout_ms must be 1 to 10000, not {}",
                c.timeout_ms
            ));
        }
        if c.retry_max_secs == 0 {
            return Err("capture.retry_max_secs must be at least 1".into());
        }
        if c.visibility_secs == 0 {
            return Err("capture.visibility_secs must be at least 1".into());
        }
        let d = &self.detect;
        if d.learning_windows == 0 {
            return Err("detect.learning_windows must be at least 1".into());
        }
        if !(d.margin >= 1.0 && d.margin.is_finite()) {
            return Err(format!("detect.margin must be 1 or more, not {}", d.margin));
        }
        if !(d.floor > 0.0 && d.floor.is_finite()) {
            return Err(format!("detect.floor must be above 0, not {}", d.floor));
        }
        if d.close_after == 0 {
            return Err("detect.close_after must be at least 1".into());
        }
        if !(1..=crate::window::F).contains(&d.explain) {
            return Err(format!(
                "detect.explain must be 1 to {}, not {}",
                crate::window::F,
                d.explain
            ));
        }
        if !(d.persist > 0.0 && d.persist.is_finite()) {
            return Err(format!("detect.persist must be above 0, not {}", d.persist));
        }
        if d.parked_devices > 65_536 {
            return Err(format!(
                "detect.parked_devices must be at most 65536, not {}",
                d.parked_devices
            ));
        }
        if self.state.checkpoint_secs == 0 {
            return Err("state.checkpoint_secs must be at least 1".into());
        }
        if self.events.quiet_after_secs == Some(0) {
            return Err("events.quiet_after_secs must be at least 1 (null: never)".into());
        }
        if !(1..=1_000_000).contains(&self.events.queue) {
            return Err(format!(
                "events.queue must be 1 to 1000000, not {}",
                self.events.queue
            ));
        }
        self.mqtt.validate()?;
        self.webhook.validate()?;
        self.email.validate()?;
        self.alerts.mutes()?;
        self.tune.validate()?;
        self.http.validate()
    }

    /// The defaults as a JSON file with each key's meaning as a comment above it.
    pub fn example() -> String {
        let value = serde_json::to_value(Config::default()).expect("plain data");
        let mut out = String::from(
            "// iotad configuration (JSON; lines starting with // are comments).\n\
             // Every key is optional: a missing key has the value shown here.\n{\n",
        );
        let mut open: Option<&str> = None;
        for (i, (key, doc)) in KEYS.iter().enumerate() {
            let (section, name) = key.split_once('.').expect("section.key");
            if open != Some(section) {
                if open.is_some() {
                    out += "  },\n";
                }
                out += &format!("  \"{section}\": {{\n");
                open = Some(section);
            }
            let last_in_section = KEYS
                .get(i + 1)
                .is_none_or(|(k, _)| !k.starts_with(&format!("{section}.")));
            out += &format!(
                "    // {doc}\n    \"{name}\": {}{}\n",
                value[section][name],
                if last_in_section { "" } else { "," }
            );
        }
        out + "  }\n}\n"
    }

    /// Every key with its default and meaning, as a Markdown table (the README's).
    pub fn markdown() -> String {
        let value = serde_json::to_value(Config::default()).expect("plain data");
        let mut out = String::from("| key | default | meaning |\n|---|---|---|\n");
        for (key, doc) in KEYS {
            let (section, name) = key.split_once('.').expect("section.key");
            out += &format!("| `{key}` | `{}` | {doc} |\n", value[section][name]);
        }
        out
    }
}

/// The documentation of a key (`section.key`).
pub fn doc(key: &str) -> Option<&'static str> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
}

impl PipelineConfig {
    /// Reads the `pipeline` section of a configuration file, or the defaults.
    pub fn load(path: Option<&Path>) -> Result<PipelineConfig, String> {
        Ok(Config::load(path)?.pipeline)
    }

    /// Checks ranges and parses the gateway MACs.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3600).contains(&self.window_secs) {
            return Err(format!(
                "pipeline.window_secs must be 1 to 3600, not {}",
                self.window_secs
            ));
        }
        if !(1..=MAX_DEVICES).contains(&self.max_devices) {
            return Err(format!(
                "pipeline.max_devices must be 1 to {MAX_DEVICES}, not {}",
                self.max_devices
            ));
        }
        self.gateway_macs().map(|_| ())
    }

    /// The configured gateways as MACs.
    pub fn gateway_macs(&self) -> Result<Vec<Mac>, String> {
        self.gateways
            .iter()
            .map(|g| {
                Mac::parse(g).ok_or_else(|| {
                    format!("gateway {g:?} is not a MAC address like 00:1c:7f:53:d0:28")
                })
            })
            .collect()
    }

    pub fn window_ns(&self) -> u64 {
        u64::from(self.window_secs) * 1_000_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        assert_eq!(Config::load(None).unwrap(), Config::default());
        let c = Config::parse(
            r#"{"pipeline": {"window_secs": 30, "gateways": ["00:1c:7f:53:d0:28"]}}"#,
        )
        .unwrap();
        assert_eq!(c.pipeline.window_secs, 30);
        assert_eq!(
            c.pipeline.gateway_macs().unwrap()[0].to_string(),
            "00:1c:7f:53:d0:28"
        );
        let e = Config::parse(r#"{"pipeline": {"window_sec": 30}}"#).unwrap_err();
        assert!(e.contains("unknown field `window_sec`"), "{e}");
        let e = Config::parse(r#"{"detect": {"margin": 0.5}}"#).unwrap_err();
        assert!(e.contains("detect.margin"), "{e}");
        let e = Config::parse(r#"{"pipeline": {"window_secs": 0}}"#).unwrap_err();
        assert!(e.contains("pipeline.window_secs"), "{e}");
        let e = Config::parse(r#"{"pipeline": {"gateways": ["router"]}}"#).unwrap_err();
        assert!(e.contains("not a MAC"), "{e}");
        let e = Config::parse(r#"{"capturе": {}}"#).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn mqtt_brokers_and_their_errors() {
        let url = |s: &str| BrokerUrl::parse(s);
        assert_eq!(
            url("mqtt://10.0.0.2").unwrap(),
            BrokerUrl {
                tls: false,
                host: "10.0.0.2".into(),
                port: 1883
            }
        );
        let tls = url("mqtts://broker.lan/").unwrap();
        assert_eq!((tls.tls, tls.port), (true, 8883));
        let v6 = url("mqtt://[fd00::2]:1884").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("fd00::2", 1884));
        assert_eq!(v6.to_string(), "mqtt://[fd00::2]:1884");
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:65536",
            "mqtt://user:pw@x",
            "mqtt://x/topic",
            "x:1883",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
        let on = |extra: &str| {
            Config::parse(&format!(
                r#"{{"mqtt": {{"broker": "mqtt://pi.lan", {extra}}}}}"#
            ))
        };
        assert!(on(r#""username": "iotad", "password": "x""#).is_ok());
        for (extra, key) in [
            (
                r#""username": "u", "password": "x", "password_file": "/p""#,
                "mqtt.password",
            ),
            (r#""password": "x""#, "mqtt.username"),
            (r#""ca_file": "/ca.pem""#, "mqtt.ca_file"),
            (r#""topic_base": "home/#""#, "mqtt.topic_base"),
            (r#""discovery_prefix": "/ha""#, "mqtt.discovery_prefix"),
            (r#""keepalive_secs": 1"#, "mqtt.keepalive_secs"),
            (r#""queue": 0"#, "mqtt.queue"),
        ] {
            let e = on(extra).unwrap_err();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let e = Config::parse(r#"{"mqtt": {"broker": "tcp://pi"}}"#).unwrap_err();
        assert!(e.contains("mqtt.broker"), "{e}");
    }

    #[test]
    fn every_key_is_documented_and_the_example_reads_back() {
        let value = serde_json::to_value(Config::default()).unwrap();
        let mut keys = Vec::new();
        for (section, v) in value.as_object().unwrap() {
            for key in v.as_object().unwrap().keys() {
                keys.push(format!("{section}.{key}"));
            }
        }
        let mut documented: Vec<String> = KEYS.iter().map(|(k, _)| k.to_string()).collect();
        keys.sort();
        documented.sort();
        assert_eq!(keys, documented, "KEYS lists every key once");
        let example = Config::example();
        assert_eq!(Config::parse(&example).unwrap(), Config::default());
        assert!(example.contains("    // devices tracked at once"));
    }
}
