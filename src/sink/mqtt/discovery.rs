//! Home Assistant MQTT discovery, device-based (Home Assistant 2024.11 and later): one
//! retained config per device on `<prefix>/device/<id>/config`, holding the device (`dev`),
//! the origin (`o`) and its entities (`cmps`, each with its platform `p`), with the
//! abbreviations Home Assistant documents (`uniq_id`, `stat_t`, `avty_t`, `val_tpl`...).
//!
//! Every entity has a `uniq_id` and a `default_entity_id` made of the node id and the MAC
//! (never of a name a device announced), and the node's availability topic (`<base>/status`:
//! `online`, or `offline` when iotad stops or its last will fires). The node itself is a
//! device too; each watched device names it as `via_device`.

use serde_json::{json, Map, Value};

use super::topic::{self, Discovery, Topics};
use crate::wire::Mac;

/// What a device's discovery config says about it (from its state).
pub struct DeviceInfo<'a> {
    pub mac: Mac,
    /// A name to show: the device's DHCP or mDNS name, else its MAC.
    pub name: &'a str,
    /// The OUI registry's vendor, when known.
    pub vendor: Option<&'a str>,
    /// The DHCP vendor class, when the device sent one.
    pub vendor_class: &'a str,
}

/// `o`: who published the config.
fn origin() -> Value {
    let mut o = json!({ "name": "iotad", "sw": env!("CARGO_PKG_VERSION") });
    let url = env!("CARGO_PKG_REPOSITORY");
    if !url.is_empty() {
        o["url"] = json!(url);
    }
    o
}

/// One entity of a config: its platform, name, ids, and the node's availability.
fn entity(
    topics: &Topics,
    platform: &str,
    object: &str,
    name: &str,
    state_topic: &str,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("p".into(), json!(platform));
    m.insert("name".into(), json!(name));
    m.insert("uniq_id".into(), json!(object));
    m.insert(
        "default_entity_id".into(),
        json!(format!("{platform}.{object}")),
    );
    m.insert("stat_t".into(), json!(state_topic));
    m.insert("avty_t".into(), json!(topics.status()));
    m.insert("pl_avail".into(), json!("online"));
    m.insert("pl_not_avail".into(), json!("offline"));
    m
}

fn with(mut m: Map<String, Value>, extra: Value) -> Value {
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    Value::Object(m)
}

/// The retained config of one watched device: an anomaly binary sensor (problem), its anomaly
/// score (a measurement) and the time of its last anomaly (with the explanation as attributes).
pub fn device_config(topics: &Topics, d: &DeviceInfo<'_>) -> Value {
    let id = topic::device_object_id(topics, d.mac);
    let state = topics.device(d.mac);
    let mut dev = json!({
        "ids": [id],
        "cns": [["mac", d.mac.to_string()]],
        "name": d.name,
        "via_device": topics.node_id(),
    });
    if let Some(v) = d.vendor {
        dev["mf"] = json!(v);
    }
    if !d.vendor_class.is_empty() {
        dev["mdl"] = json!(d.vendor_class);
    }
    let attributes = json!({
        "json_attr_t": state,
        "json_attr_tpl": "{{ value_json.last_anomaly | tojson }}",
    });
    let anomaly = with(
        entity(
            topics,
            "binary_sensor",
            &format!("{id}_anomaly"),
            "Anomaly",
            &state,
        ),
        json!({
            "dev_cla": "problem",
            "val_tpl": "{{ 'ON' if value_json.anomaly else 'OFF' }}",
        }),
    );
    let anomaly = merge(anomaly, &attributes);
    let score = with(
        entity(
            topics,
            "sensor",
            &format!("{id}_anomaly_score"),
            "Anomaly score",
            &state,
        ),
        json!({
            "stat_cla": "measurement",
            "val_tpl": "{{ value_json.score }}",
        }),
    );
    let last = with(
        entity(
            topics,
            "sensor",
            &format!("{id}_last_anomaly"),
            "Last anomaly",
            &state,
        ),
        json!({
            "dev_cla": "timestamp",
            "val_tpl": "{{ value_json.last_anomaly.at if value_json.last_anomaly else None }}",
        }),
    );
    let last = merge(last, &attributes);
    json!({
        "dev": dev,
        "o": origin(),
        "cmps": { "anomaly": anomaly, "anomaly_score": score, "last_anomaly": last },
        "qos": 1,
    })
}

fn merge(mut v: Value, extra: &Value) -> Value {
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    v
}

/// The retained config of the node: how many devices it watches, how many have an anomaly
/// open, incidents opened, packets seen and per second, kernel drops, CPU temperature,
/// throttling, and whether it is still learning.
pub fn node_config(topics: &Topics) -> Value {
    let id = topics.node_id();
    let state = topics.node();
    let sensor = |key: &str, name: &str, class: &str| {
        with(
            entity(topics, "sensor", &format!("{id}_{key}"), name, &state),
            json!({ "stat_cla": class, "val_tpl": format!("{{{{ value_json.{key} }}}}") }),
        )
    };
    json!({
        "dev": {
            "ids": [id],
            "name": format!("iotad {}", topics.base()),
            "mf": "iotad",
            "mdl": "network anomaly detector",
            "sw": env!("CARGO_PKG_VERSION"),
        },
        "o": origin(),
        "cmps": {
            "devices": sensor("devices", "Devices", "measurement"),
            "devices_with_anomaly": sensor("devices_with_anomaly", "Devices with an anomaly", "measurement"),
            "incidents_opened": sensor("incidents_opened", "Incidents opened", "total_increasing"),
            "packets": sensor("packets", "Packets", "total_increasing"),
            "packets_per_s": with(
                entity(topics, "sensor", &format!("{id}_packets_per_s"), "Packets per second", &state),
                json!({ "stat_cla": "measurement", "unit_of_meas": "packets/s",
                        "val_tpl": "{{ value_json.packets_per_s }}" }),
            ),
            "kernel_drops": with(
                entity(topics, "sensor", &format!("{id}_kernel_drops"), "Packets dropped by the kernel", &state),
                json!({ "stat_cla": "total_increasing", "ent_cat": "diagnostic",
                        "val_tpl": "{{ value_json.kernel_drops }}" }),
            ),
            "temperature_c": with(
                entity(topics, "sensor", &format!("{id}_temperature_c"), "CPU temperature", &state),
                json!({ "stat_cla": "measurement", "dev_cla": "temperature", "unit_of_meas": "°C",
                        "ent_cat": "diagnostic", "val_tpl": "{{ value_json.temperature_c }}" }),
            ),
            "throttled": with(
                entity(topics, "binary_sensor", &format!("{id}_throttled"), "Throttled", &state),
                json!({
                    "dev_cla": "problem",
                    "ent_cat": "diagnostic",
                    "val_tpl": "{{ 'ON' if value_json.throttled else 'OFF' }}",
                }),
            ),
            "learning": with(
                entity(topics, "binary_sensor", &format!("{id}_learning"), "Learning", &state),
                json!({ "val_tpl": "{{ 'ON' if value_json.learning else 'OFF' }}" }),
            ),
        },
        "qos": 1,
    })
}

/// The config topic and payload for a device.
pub fn device(d: &Discovery, topics: &Topics, info: &DeviceInfo<'_>) -> (String, Value) {
    (
        d.device_config(topics, info.mac),
        device_config(topics, info),
    )
}

/// The config topic and payload for the node.
pub fn node(d: &Discovery, topics: &Topics) -> (String, Value) {
    (d.node_config(topics), node_config(topics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_have_what_home_assistant_requires() {
        let t = Topics::new("iotad/pi").unwrap();
        let d = Discovery::new("homeassistant").unwrap();
        let mac = Mac([2, 0x10, 0, 0, 0, 0]);
        let info = DeviceInfo {
            mac,
            name: "camera-0",
            vendor: Some("Acme"),
            vendor_class: "iot-camera",
        };
        let (topic, c) = device(&d, &t, &info);
        assert_eq!(topic, "homeassistant/device/iotad_pi_021000000000/config");
        assert_eq!(c["dev"]["ids"][0], "iotad_pi_021000000000");
        assert_eq!(c["dev"]["cns"][0], json!(["mac", "02:10:00:00:00:00"]));
        assert_eq!(c["dev"]["mf"], "Acme");
        assert_eq!(c["o"]["name"], "iotad");
        let cmps = c["cmps"].as_object().unwrap();
        assert_eq!(cmps.len(), 3);
        assert_eq!(cmps["anomaly"]["p"], "binary_sensor");
        assert_eq!(cmps["anomaly"]["dev_cla"], "problem");
        assert_eq!(cmps["anomaly_score"]["stat_cla"], "measurement");
        assert_eq!(cmps["last_anomaly"]["dev_cla"], "timestamp");
        for (_, e) in cmps {
            let uid = e["uniq_id"].as_str().unwrap();
            assert!(uid.starts_with("iotad_pi_021000000000_"));
            assert_eq!(
                e["default_entity_id"].as_str().unwrap(),
                format!("{}.{uid}", e["p"].as_str().unwrap())
            );
            assert_eq!(e["avty_t"], "iotad/pi/status");
            assert_eq!(e["stat_t"], "iotad/pi/devices/021000000000");
        }
        let (topic, n) = node(&d, &t);
        assert_eq!(topic, "homeassistant/device/iotad_pi/config");
        assert_eq!(n["dev"]["ids"][0], "iotad_pi");
        for (_, e) in n["cmps"].as_object().unwrap() {
            assert!(e["uniq_id"].as_str().unwrap().starts_with("iotad_pi_"));
            assert_eq!(e["avty_t"], "iotad/pi/status");
        }
    }
}
