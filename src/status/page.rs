//! The status page: one small HTML page without JavaScript, readable on a phone, light and
//! dark. Every string a device chose (its DHCP host name, its vendor class) and every other
//! string goes through [`esc`], which makes it safe as HTML text, as a quoted attribute value
//! and as an SVG `<title>` (SVG inline in HTML is parsed as HTML text).

use std::fmt::Write;

use crate::detect::Event;
use crate::engine::DeviceStatus;

use super::Snapshot;

/// `s` as HTML text or a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#fff;--fg:#222;--mute:#666;--line:#ddd;--ok:#2a7;--bad:#d33}\
@media (prefers-color-scheme:dark){:root{--bg:#111;--fg:#ddd;--mute:#999;--line:#333;--ok:#3b8;--bad:#f55}}\
body{background:var(--bg);color:var(--fg);font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:60em;padding:.5em}\
h1{font-size:1.3em}h2{font-size:1.1em;border-bottom:1px solid var(--line)}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.2em .4em;border-bottom:1px solid var(--line);vertical-align:top}\
.m{color:var(--mute);font-size:.9em}.w{overflow-x:auto}code{font-size:.9em}a{color:inherit}\
svg .t{fill:var(--line)}svg .ok{fill:var(--ok)}svg .bad{fill:var(--bad)}svg .th{stroke:var(--fg)}\
ul{padding-left:1.2em}.acts form{margin:.4em 0}input,select,button{font:inherit}\
.warn{border:2px solid var(--bad);padding:.3em .6em}";

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=refresh content=10><title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    )
}

fn f(x: Option<f32>) -> String {
    x.map_or("–".into(), |x| format!("{x:.2}"))
}

/// A bar of `score` against `threshold`: the threshold is the mark at 2/3 of the width.
fn bar(d: &DeviceStatus) -> String {
    let (Some(s), Some(t)) = (d.score, d.threshold) else {
        return String::new();
    };
    let w = if t > 0.0 && s.is_finite() {
        (s / t * 80.0).clamp(0.0, 120.0)
    } else {
        0.0
    };
    let class = if s > t { "bad" } else { "ok" };
    format!(
        "<svg width=120 height=12 viewBox=\"0 0 120 12\" role=img>\
         <title>{} score {s:.2} against threshold {t:.2}</title>\
         <rect class=t width=\"120\" height=\"12\"/><rect class={class} width=\"{w:.1}\" height=\"12\"/>\
         <line class=th x1=\"80\" x2=\"80\" y1=\"0\" y2=\"12\" stroke-width=\"2\"/></svg>",
        esc(&display_name(d))
    )
}

fn display_name(d: &DeviceStatus) -> String {
    if d.name.is_empty() {
        d.mac.clone()
    } else {
        d.name.clone()
    }
}

fn label<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn health(out: &mut String, s: &Snapshot) {
    let n = &s.node;
    let _ = write!(
        out,
        "<h2>Node</h2><table>\
         <tr><th>uptime</th><td>{}</td></tr>\
         <tr><th>interface</th><td>{}</td></tr>\
         <tr><th>packets</th><td>{} ({:.0}/s; {} bytes; last {})</td></tr>\
         <tr><th>kernel drops</th><td>{} of {} received</td></tr>\
         <tr><th>CPU</th><td>{}; {}</td></tr>\
         <tr><th>learning</th><td>{}</td></tr>\
         <tr><th>devices</th><td>{} ({} seen)</td></tr>\
         <tr><th>windows</th><td>{}</td></tr>\
         <tr><th>incidents</th><td>{} low, {} medium, {} high</td></tr>",
        uptime(s.uptime_secs),
        esc(&s.interface),
        n.packets,
        n.health.packets_per_s,
        n.bytes,
        esc(n.last_packet.as_deref().unwrap_or("never")),
        s.kernel.dropped + s.kernel.if_dropped,
        s.kernel.received,
        n.health
            .temperature_c
            .map_or("temperature not available".to_string(), |t| format!(
                "{t:.1} °C"
            )),
        match (n.health.throttled, &n.health.throttling) {
            (Some(true), Some(w)) => format!("<strong>throttled</strong> ({})", esc(w)),
            (Some(false), _) => "not throttled".to_string(),
            _ => "throttling not available".to_string(),
        },
        if n.learning {
            "yes: nothing alerts yet"
        } else {
            "no"
        },
        n.devices.len(),
        n.devices_seen,
        n.windows,
        n.incidents_opened[0],
        n.incidents_opened[1],
        n.incidents_opened[2],
    );
    for q in &s.sinks {
        let _ = write!(
            out,
            "<tr><th>sink {}</th><td>{} queued, {} delivered, {} dropped</td></tr>",
            esc(&q.name),
            q.queue.queued,
            q.queue.delivered,
            q.queue.dropped
        );
    }
    out.push_str("</table>");
}

fn uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min {} s", secs % 60)
    }
}

fn device_row(out: &mut String, d: &DeviceStatus) {
    let ips: Vec<&str> = d.ipv4.iter().chain(&d.ipv6).map(String::as_str).collect();
    let _ = write!(
        out,
        "<tr><td><a href=\"/device/{mac}\">{name}</a><br><span class=m>{vendor}</span></td>\
         <td><code>{mac}</code><br><span class=m>{ips}</span></td>\
         <td>{bar}<br><span class=m>{score} / {threshold}</span></td>\
         <td class=m>{last}</td><td>{incident}{muted}</td></tr>",
        mac = esc(&d.mac),
        name = esc(&display_name(d)),
        vendor = esc(&d.vendor_class),
        ips = esc(&ips.join(" ")),
        bar = bar(d),
        score = f(d.score),
        threshold = f(d.threshold),
        last = esc(&d.last_seen),
        incident = d.incident.map_or(String::new(), |i| format!("#{i}")),
        muted = d.muted_until.as_deref().map_or(String::new(), |t| format!(
            "<br><span class=m>muted until {}</span>",
            esc(t)
        )),
    );
}

fn devices_table(out: &mut String, devices: &[&DeviceStatus]) {
    out.push_str(
        "<div class=w><table><tr><th>device</th><th>MAC, IPs</th><th>score / threshold</th>\
         <th>last seen</th><th>incident</th></tr>",
    );
    for d in devices {
        device_row(out, d);
    }
    out.push_str("</table></div>");
}

fn event_item(out: &mut String, e: &Event) {
    let _ = write!(
        out,
        "<li><b>{kind}{phase}</b> {sev} · <a href=\"/device/{mac}\">{name}</a> \
         <span class=m>{start} score {score:.2} / {threshold:.2}{incident}</span>",
        kind = esc(&label(e.kind)),
        phase = e
            .phase
            .map_or(String::new(), |p| format!(" ({})", esc(&label(p)))),
        sev = esc(&label(e.severity)),
        mac = esc(&e.device.mac),
        name = esc(if e.device.name.is_empty() {
            &e.device.mac
        } else {
            &e.device.name
        }),
        start = esc(&e.window_start),
        score = e.score,
        threshold = e.threshold,
        incident = e
            .incident
            .map_or(String::new(), |i| format!(", incident #{i}")),
    );
    if let Some(d) = &e.detail {
        let _ = write!(out, "<br>{}", esc(d));
    }
    if !e.explanation.is_empty() {
        out.push_str("<ul>");
        for c in &e.explanation {
            let _ = write!(out, "<li>{}</li>", esc(&c.text));
        }
        out.push_str("</ul>");
    }
    out.push_str("</li>");
}

fn events(out: &mut String, events: &[&Event]) {
    out.push_str("<h2>Recent events</h2>");
    if events.is_empty() {
        out.push_str("<p class=m>none</p>");
        return;
    }
    out.push_str("<ul>");
    // newest first
    for e in events.iter().rev() {
        event_item(out, e);
    }
    out.push_str("</ul>");
}

/// `/`.
pub fn index(s: &Snapshot) -> String {
    let mut out = head("iotad");
    let _ = write!(
        out,
        "<h1>iotad <span class=m>{}</span></h1>",
        esc(s.version)
    );
    if let Some(w) = s.visibility.as_ref().and_then(|v| v.warning.as_deref()) {
        let _ = write!(out, "<p class=warn><b>Blind:</b> {}</p>", esc(w));
    }
    health(&mut out, s);
    let _ = write!(out, "<h2>Devices ({})</h2>", s.node.devices.len());
    let devices: Vec<&DeviceStatus> = s.node.devices.iter().collect();
    devices_table(&mut out, &devices);
    let recent: Vec<&Event> = s.recent.iter().collect();
    events(&mut out, &recent);
    out.push_str("<p class=m><a href=\"/api/status\">status</a> · <a href=\"/api/devices\">devices</a> · <a href=\"/api/anomalies\">events</a> · <a href=\"/metrics\">metrics</a></p></body></html>");
    out
}

/// The action forms of the device page: each a POST carrying `csrf`.
fn actions(out: &mut String, d: &DeviceStatus, csrf: &str) {
    let mac = esc(&d.mac);
    let csrf = esc(csrf);
    let form = |verb: &str| {
        format!(
            "<form method=post action=\"/device/{mac}/{verb}\">\
             <input type=hidden name=csrf value=\"{csrf}\">"
        )
    };
    let given = if d.name == d.own_name {
        ""
    } else {
        d.name.as_str()
    };
    let _ = write!(
        out,
        "<h2>Actions</h2><div class=acts>\
         {}<input name=name maxlength=64 value=\"{}\" placeholder=\"{}\" aria-label=name> \
         <button>name</button></form>\
         {}<select name=minutes aria-label=\"mute for\"><option value=60>1 hour</option>\
         <option value=480>8 hours</option><option value=1440>1 day</option>\
         <option value=10080>1 week</option><option value=0>unmute</option></select> \
         <button>mute alerts</button></form>\
         {}<button>relearn</button> <span class=m>its threshold and learning period afresh</span></form>\
         {}<button>forget</button> <span class=m>all it learned; it is new if it comes back</span></form>\
         </div>",
        form("name"),
        esc(given),
        esc(if d.own_name.is_empty() { &d.mac } else { &d.own_name }),
        form("mute"),
        form("relearn"),
        form("forget"),
    );
}

/// `/device/<mac>`; `csrf` is the token its action forms carry (none: no actions).
pub fn device(s: &Snapshot, d: &DeviceStatus, csrf: Option<&str>) -> String {
    let mut out = head(&format!("iotad: {}", display_name(d)));
    let _ = write!(
        out,
        "<p><a href=\"/\">← iotad</a></p><h1>{}</h1>",
        esc(&display_name(d))
    );
    devices_table(&mut out, &[d]);
    let _ = write!(
        out,
        "<table><tr><th>first seen</th><td>{}</td></tr><tr><th>packets</th>\
         <td>{} out, {} in</td></tr><tr><th>threshold from</th><td>{}</td></tr></table>",
        esc(&d.first_seen),
        d.packets_out,
        d.packets_in,
        esc(&d.threshold_source.map(label).unwrap_or_default()),
    );
    let mine: Vec<&Event> = s.recent.iter().filter(|e| e.device.mac == d.mac).collect();
    events(&mut out, &mine);
    if let Some(csrf) = csrf {
        actions(&mut out, d, csrf);
    }
    out.push_str("</body></html>");
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::capture::CaptureStats;
    use crate::detect::{Contribution, DeviceRef, EventKind, Phase, Severity, ThresholdSource};
    use crate::engine::Status;

    pub const HOSTILE: &str = "<script>alert(1)</script>\"'&";

    pub fn sample() -> Snapshot {
        let dev = DeviceStatus {
            mac: "02:10:00:00:00:00".into(),
            name: HOSTILE.into(),
            vendor_class: "x\"><img src=x onerror=alert(2)>".into(),
            own_name: String::new(),
            muted_until: None,
            visible: None,
            ipv4: vec!["192.168.1.10".into()],
            ipv6: vec![],
            first_seen: "2024-01-01T00:00:00Z".into(),
            last_seen: "2024-01-01T00:01:00Z".into(),
            packets_out: 10,
            packets_in: 5,
            score: Some(30.0),
            threshold: Some(10.0),
            threshold_source: Some(ThresholdSource::Device),
            incident: Some(1),
        };
        let event = Event {
            kind: EventKind::Anomaly,
            phase: Some(Phase::Open),
            incident: Some(1),
            device: DeviceRef {
                mac: dev.mac.clone(),
                ipv4: dev.ipv4.clone(),
                ipv6: vec![],
                name: HOSTILE.into(),
                vendor_class: String::new(),
                randomized: false,
            },
            window_start: "2024-01-01T00:00:50Z".into(),
            window_end: "2024-01-01T00:01:00Z".into(),
            window_start_epoch: 1_704_067_250,
            score: 30.0,
            threshold: 10.0,
            threshold_source: ThresholdSource::Device,
            severity: Severity::Medium,
            behaviour: None,
            explanation: vec![Contribution {
                feature: "syn_out".into(),
                unit: "packets".into(),
                observed: 500.0,
                expected: 2.0,
                weight: 20.0,
                text: "sent 500 SYNs <b>".into(),
            }],
            detail: None,
            role: None,
            counterpart: None,
        };
        let node = Status {
            packets: 100,
            bytes: 10_000,
            malformed: 0,
            unattributed: 0,
            last_packet: None,
            windows: 7,
            timer_windows: 1,
            devices_seen: 1,
            evicted: 0,
            gateways: vec![],
            learning: false,
            parked: 0,
            parked_dropped: 0,
            incidents_opened: [0, 1, 0],
            events: 1,
            health: Default::default(),
            devices: vec![dev],
        };
        Snapshot {
            version: "0.1.0",
            uptime_secs: 65,
            interface: "eth0".into(),
            kernel: CaptureStats::default(),
            sinks: vec![],
            node: Arc::new(node),
            recent: Arc::new(vec![event]),
            visibility: None,
        }
    }

    #[test]
    fn status_page_escapes_what_devices_say() {
        let s = sample();
        for html in [index(&s), device(&s, &s.node.devices[0], Some("c\"srf"))] {
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("SYNs <b>"), "{html}");
            assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
            assert!(html.contains("<svg"));
            assert!(html.contains("sent 500 SYNs"));
        }
        assert!(index(&s).len() < 16 * 1024);
        // an unquoted value before "/>" would swallow the slash (height="12/")
        assert!(!index(&s).contains("=12/>"), "{}", index(&s));
    }
}
