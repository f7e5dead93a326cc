//! The configuration: one JSON file (every key optional, unknown keys rejected), overridden
//! by command-line flags. Defaults live here and nowhere else.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::MAX_DEVICES;
use crate::wire::Mac;

/// Default window length, seconds.
pub const DEFAULT_WINDOW_SECS: u32 = 10;

/// Settings of the packet pipeline.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Length of a feature window, seconds (1 to 3600).
    pub window_secs: u32,
    /// Devices tracked at once (1 to 256); the least recently seen is evicted when full.
    pub max_devices: usize,
    /// MAC addresses of the LAN's routers, if known; others are detected from traffic.
    pub gateways: Vec<String>,
    /// Detect gateways from traffic (frames to internet addresses go to the router's MAC).
    pub auto_gateway: bool,
    /// Longest silence emitted as empty windows, in windows; longer silences skip the rest.
    pub max_gap_windows: u64,
    /// The IEEE OUI registry for vendor names (Debian package ieee-data).
    pub oui_file: PathBuf,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            window_secs: DEFAULT_WINDOW_SECS,
            max_devices: MAX_DEVICES,
            gateways: Vec::new(),
            auto_gateway: true,
            max_gap_windows: 8640,
            oui_file: PathBuf::from(crate::device::oui::DEFAULT_PATH),
        }
    }
}

impl Config {
    /// Reads a JSON configuration file, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        let cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read config {}: {e}", p.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("config {}: {e}", p.display()))?
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and parses the gateway MACs.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3600).contains(&self.window_secs) {
            return Err(format!(
                "window_secs must be 1 to 3600, not {}",
                self.window_secs
            ));
        }
        if !(1..=MAX_DEVICES).contains(&self.max_devices) {
            return Err(format!(
                "max_devices must be 1 to {MAX_DEVICES}, not {}",
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
        let c: Config =
            serde_json::from_str(r#"{"window_secs": 30, "gateways": ["00:1c:7f:53:d0:28"]}"#)
                .unwrap();
        assert_eq!(c.window_secs, 30);
        assert_eq!(
            c.gateway_macs().unwrap()[0].to_string(),
            "00:1c:7f:53:d0:28"
        );
        let e = serde_json::from_str::<Config>(r#"{"window_sec": 30}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `window_sec`"), "{e}");
        let bad = Config {
            window_secs: 0,
            ..Config::default()
        };
        assert!(bad.validate().unwrap_err().contains("window_secs"));
        let bad = Config {
            gateways: vec!["router".into()],
            ..Config::default()
        };
        assert!(bad.validate().unwrap_err().contains("not a MAC"));
    }
}
