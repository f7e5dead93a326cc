//! `/metrics`: the Prometheus text format (0.0.4). Names start with `iotad_`, values are in
//! base units, counters end in `_total`; every family has its HELP and TYPE. Per-device
//! series are labelled by MAC and name: as many as the device table holds
//! (`pipeline.max_devices`), no more.

use std::fmt::Write;

use super::Snapshot;

/// A label value: backslash, double quote and newline escaped.
pub fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn one(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The metrics of `s`.
pub fn render(s: &Snapshot) -> String {
    let n = &s.node;
    let mut out = String::with_capacity(4096 + n.devices.len() * 200);
    family(
        &mut out,
        "iotad_build_info",
        "gauge",
        "Build of the running daemon.",
    );
    let _ = writeln!(
        out,
        "iotad_build_info{{version=\"{}\"}} 1",
        label(s.version)
    );
    let o = &mut out;
    one(
        o,
        "iotad_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        s.uptime_secs,
    );
    if let Some(t) = n.health.temperature_c {
        one(
            o,
            "iotad_soc_temperature_celsius",
            "gauge",
            "The SoC's temperature (thermal zone 0).",
            t,
        );
    }
    if let Some(t) = n.health.throttled {
        one(
            o,
            "iotad_throttled",
            "gauge",
            "1 while the firmware throttles the CPU (vcgencmd get_throttled bits 0-3).",
            u8::from(t),
        );
    }
    one(
        o,
        "iotad_packets_total",
        "counter",
        "Packets read.",
        n.packets,
    );
    one(
        o,
        "iotad_bytes_total",
        "counter",
        "Bytes read (on the wire).",
        n.bytes,
    );
    one(
        o,
        "iotad_malformed_packets_total",
        "counter",
        "Packets dropped for a damaged link or network header.",
        n.malformed,
    );
    one(
        o,
        "iotad_kernel_received_packets_total",
        "counter",
        "Packets the kernel passed the capture filter.",
        s.kernel.received,
    );
    family(
        o,
        "iotad_kernel_dropped_packets_total",
        "counter",
        "Packets the kernel dropped: buffer full (the loop fell behind) or interface.",
    );
    let _ = writeln!(
        o,
        "iotad_kernel_dropped_packets_total{{where=\"buffer\"}} {}\n\
         iotad_kernel_dropped_packets_total{{where=\"interface\"}} {}",
        s.kernel.dropped, s.kernel.if_dropped
    );
    one(
        o,
        "iotad_windows_total",
        "counter",
        "Device-windows closed.",
        n.windows,
    );
    one(
        o,
        "iotad_devices",
        "gauge",
        "Devices in the table.",
        n.devices.len(),
    );
    one(
        o,
        "iotad_devices_seen_total",
        "counter",
        "Devices ever seen.",
        n.devices_seen,
    );
    one(
        o,
        "iotad_learning",
        "gauge",
        "1 while the network learns (nothing alerts).",
        u8::from(n.learning),
    );
    one(
        o,
        "iotad_events_total",
        "counter",
        "Events emitted.",
        n.events,
    );
    family(
        o,
        "iotad_anomalies_total",
        "counter",
        "Incidents opened, by severity.",
    );
    for (sev, count) in ["low", "medium", "high"].iter().zip(n.incidents_opened) {
        let _ = writeln!(o, "iotad_anomalies_total{{severity=\"{sev}\"}} {count}");
    }
    family(
        o,
        "iotad_sink_queue_depth",
        "gauge",
        "Events waiting in a sink's queue.",
    );
    for q in &s.sinks {
        let _ = writeln!(
            o,
            "iotad_sink_queue_depth{{sink=\"{}\"}} {}",
            label(&q.name),
            q.queue.queued
        );
    }
    family(
        o,
        "iotad_sink_delivered_events_total",
        "counter",
        "Events a sink delivered.",
    );
    for q in &s.sinks {
        let _ = writeln!(
            o,
            "iotad_sink_delivered_events_total{{sink=\"{}\"}} {}",
            label(&q.name),
            q.queue.delivered
        );
    }
    family(
        o,
        "iotad_sink_dropped_events_total",
        "counter",
        "Events a full sink queue dropped.",
    );
    for q in &s.sinks {
        let _ = writeln!(
            o,
            "iotad_sink_dropped_events_total{{sink=\"{}\"}} {}",
            label(&q.name),
            q.queue.dropped
        );
    }
    let devices = |o: &mut String,
                   name: &str,
                   help: &str,
                   get: &dyn Fn(&crate::engine::DeviceStatus) -> Option<f32>| {
        family(o, name, "gauge", help);
        for d in &n.devices {
            if let Some(v) = get(d).filter(|v| v.is_finite()) {
                let _ = writeln!(
                    o,
                    "{name}{{mac=\"{}\",name=\"{}\"}} {v}",
                    label(&d.mac),
                    label(&d.name)
                );
            }
        }
    };
    devices(
        o,
        "iotad_device_score",
        "A device's last window's anomaly score.",
        &|d| d.score,
    );
    devices(
        o,
        "iotad_device_threshold",
        "The threshold a device's score is judged against.",
        &|d| d.threshold,
    );
    devices(
        o,
        "iotad_device_visible",
        "1 when unicast traffic between a device and another station than this host was seen.",
        &|d| d.visible.map(|v| f32::from(u8::from(v))),
    );
    devices(
        o,
        "iotad_device_muted",
        "1 while a device's anomaly alerts are muted from the status page.",
        &|d| Some(f32::from(u8::from(d.muted_until.is_some()))),
    );
    if let Some(v) = &s.visibility {
        one(
            o,
            "iotad_unicast_frames_total",
            "counter",
            "Unicast Ethernet frames captured.",
            v.unicast_frames,
        );
        one(
            o,
            "iotad_unicast_others_frames_total",
            "counter",
            "Unicast frames captured between two other stations than this host.",
            v.others_frames,
        );
        one(
            o,
            "iotad_blind",
            "gauge",
            "1 when only broadcast and this host's own traffic is seen (see README, Placement).",
            u8::from(v.blind),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_metrics_have_help_type_and_escaped_labels() {
        let s = crate::status::page::tests::sample();
        let m = render(&s);
        assert!(m.contains("# TYPE iotad_packets_total counter"));
        assert!(m.contains("iotad_packets_total 100\n"));
        assert!(m.contains("iotad_anomalies_total{severity=\"medium\"} 1\n"));
        assert!(m.contains(
            "iotad_device_score{mac=\"02:10:00:00:00:00\",name=\"<script>alert(1)</script>\\\"'&\"} 30\n"
        ));
        for l in m.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(m.contains(&format!("# HELP {name} ")), "{name}");
            assert!(m.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert_eq!(label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
