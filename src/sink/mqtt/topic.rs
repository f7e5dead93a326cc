//! Every MQTT topic iotad publishes or subscribes to, one function each: the single definition
//! the sink, the README and the tests use.
//!
//! Topics are made only of the configured base and prefix (checked by [`check_base`]), fixed
//! words, and ids built from MAC addresses ([`mac_id`]: 12 lowercase hex digits) or from the
//! base itself ([`sanitize`]). Nothing a device sends (a DHCP host name, a vendor class) can
//! reach a topic: no function here takes a string that came from the network.

use crate::wire::Mac;

/// A device's MAC as it appears in topics and ids: lowercase hex without separators.
pub fn mac_id(mac: Mac) -> String {
    mac.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// `s` reduced to what Home Assistant accepts in ids and entity ids: lowercase ASCII letters,
/// digits and `_` (anything else becomes `_`).
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect()
}

/// Checks a configured topic base or discovery prefix: 1 to 200 printable characters, no
/// wildcard (`+`, `#`), not starting or ending with `/`, no empty level.
pub fn check_base(base: &str) -> Result<(), String> {
    if base.is_empty() || base.len() > 200 {
        return Err(format!("must be 1 to 200 bytes long, not {}", base.len()));
    }
    if base.contains(['+', '#']) || base.chars().any(|c| c.is_control()) {
        return Err(format!(
            "{base:?} holds a wildcard (+ #) or a control character"
        ));
    }
    if base.split('/').any(str::is_empty) {
        return Err(format!(
            "{base:?} has an empty level (a leading, trailing or double /)"
        ));
    }
    if base.starts_with('$') {
        return Err(format!("{base:?} starts with $ (reserved for the broker)"));
    }
    Ok(())
}

/// The default topic base: `iotad/<hostname>`, the host name sanitized.
pub fn default_base(hostname: &str) -> String {
    let host = sanitize(hostname);
    format!("iotad/{}", if host.is_empty() { "iotad" } else { &host })
}

/// iotad's own topics under one base.
#[derive(Clone, Debug)]
pub struct Topics {
    base: String,
}

impl Topics {
    /// Topics under `base` (checked with [`check_base`]).
    pub fn new(base: &str) -> Result<Topics, String> {
        check_base(base)?;
        Ok(Topics {
            base: base.to_string(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Retained `online` / `offline`; `offline` is also the last will.
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// One JSON event per anomaly opened, updated or closed (QoS 1, not retained).
    pub fn anomaly(&self) -> String {
        format!("{}/anomaly", self.base)
    }

    /// Other events: a new device on the network (QoS 1, not retained).
    pub fn events(&self) -> String {
        format!("{}/events", self.base)
    }

    /// Retained state of one device (name, addresses, score, threshold, last anomaly).
    pub fn device(&self, mac: Mac) -> String {
        format!("{}/devices/{}", self.base, mac_id(mac))
    }

    /// Retained state of the node itself (devices, packets, incidents).
    pub fn node(&self) -> String {
        format!("{}/node", self.base)
    }

    /// The id of this node in Home Assistant ids: the base, sanitized (`iotad_<hostname>` by
    /// default). Two nodes on one broker need two bases anyway (their status topics).
    pub fn node_id(&self) -> String {
        sanitize(&self.base)
    }
}

/// Home Assistant's discovery topics under its prefix (`homeassistant`).
#[derive(Clone, Debug)]
pub struct Discovery {
    prefix: String,
}

impl Discovery {
    pub fn new(prefix: &str) -> Result<Discovery, String> {
        check_base(prefix)?;
        Ok(Discovery {
            prefix: prefix.to_string(),
        })
    }

    /// Where Home Assistant says `online` when it starts (discovery is published again then).
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// The device-based discovery config of the node itself.
    pub fn node_config(&self, topics: &Topics) -> String {
        format!("{}/device/{}/config", self.prefix, topics.node_id())
    }

    /// The device-based discovery config of one device.
    pub fn device_config(&self, topics: &Topics, mac: Mac) -> String {
        format!(
            "{}/device/{}/config",
            self.prefix,
            device_object_id(topics, mac)
        )
    }
}

/// A device's id in Home Assistant (its discovery object id and the stem of its entities'
/// unique ids): `<node id>_<mac id>`.
pub fn device_object_id(topics: &Topics, mac: Mac) -> String {
    format!("{}_{}", topics.node_id(), mac_id(mac))
}

/// Whether `topic` is a valid topic to publish to: not empty, no wildcard, no NUL, at most
/// 65535 bytes (MQTT 3.1.1, 4.7).
pub fn publishable(topic: &str) -> bool {
    !topic.is_empty() && topic.len() <= 65_535 && !topic.contains(['+', '#', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_made_of_the_base_and_the_mac_only() {
        let t = Topics::new("iotad/pi").unwrap();
        let mac = Mac([0x02, 0x10, 0xAB, 0, 0, 0x0f]);
        assert_eq!(t.status(), "iotad/pi/status");
        assert_eq!(t.anomaly(), "iotad/pi/anomaly");
        assert_eq!(t.events(), "iotad/pi/events");
        assert_eq!(t.node(), "iotad/pi/node");
        assert_eq!(t.device(mac), "iotad/pi/devices/0210ab00000f");
        assert_eq!(t.node_id(), "iotad_pi");
        let d = Discovery::new("homeassistant").unwrap();
        assert_eq!(d.ha_status(), "homeassistant/status");
        assert_eq!(d.node_config(&t), "homeassistant/device/iotad_pi/config");
        assert_eq!(
            d.device_config(&t, mac),
            "homeassistant/device/iotad_pi_0210ab00000f/config"
        );
    }

    #[test]
    fn bases_are_checked_and_host_names_sanitized() {
        for bad in [
            "", "a/+", "a/#", "/a", "a/", "a//b", "$SYS/x", "a\0b", "a\nb",
        ] {
            assert!(check_base(bad).is_err(), "{bad:?}");
        }
        for good in ["iotad", "iotad/pi-5", "home/lan/iotad"] {
            assert!(check_base(good).is_ok(), "{good:?}");
        }
        assert_eq!(default_base("Pi-5.local"), "iotad/pi_5_local");
        assert_eq!(default_base("a/#+b"), "iotad/a___b");
        assert_eq!(default_base(""), "iotad/iotad");
        assert!(Topics::new("x/#").is_err());
    }
}
