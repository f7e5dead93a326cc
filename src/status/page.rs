//! The status page: one small HTML page without JavaScript, readable on a phone, light and
//! dark. Every string a device chose (its DHCP host name, its vendor class) and every other
//! string goes through [`esc`], which makes it safe as HTML text, as a quoted attribute value
//! and as an SVG `<title>` (SVG inline in HTML is parsed as HTML text).

use std::fmt::Write;

use crate::detect::Event;
use crate::engine::{DeviceStatus, HISTORY_BUCKETS, HISTORY_BUCKET_SECS};

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
svg polyline{fill:none}svg .sp{stroke:var(--ok)}svg .fr{fill:none;stroke:var(--line)}\
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

/// Chart size: `CHART_STEP` units per bucket, `CHART_H` high; drawn 120 pixels wide as the
/// bar above it (a phone's column).
const CHART_STEP: u64 = 2;
const CHART_H: f32 = 28.0;

/// The device's score history as a sparkline against its threshold: one vertex per
/// 5-minute bucket (its highest score) over the 6 hours up to `end` (the snapshot's
/// `history_end`), the threshold as a step line across the chart, the last bucket as a dot. The scale goes
/// up to the highest score but at most four times the highest threshold; higher scores
/// touch the top. Nothing without history.
fn chart(d: &DeviceStatus, end: u64) -> String {
    let span = (HISTORY_BUCKETS as u64 - 1) * HISTORY_BUCKET_SECS;
    let from = end.saturating_sub(span);
    let pts: Vec<_> = d
        .history
        .iter()
        .filter(|p| p.at >= from && p.at <= end)
        .collect();
    let Some(last) = pts.last() else {
        return String::new();
    };
    let fin = |v: f32| if v.is_finite() { v.max(0.0) } else { 0.0 };
    let tmax = pts.iter().map(|p| fin(p.threshold)).fold(0.0, f32::max);
    let smax = pts.iter().map(|p| fin(p.score)).fold(0.0, f32::max);
    let mut top = smax.max(tmax * 1.25);
    if tmax > 0.0 {
        top = top.min(tmax * 4.0);
    }
    let top = top.max(f32::MIN_POSITIVE);
    // a bucket's vertex; 2 pixels of margin each side and 3 above and below for the dot
    let x = |at: u64| (at - from) / HISTORY_BUCKET_SECS * CHART_STEP + 2;
    let y = |v: f32| CHART_H - 3.0 - fin(v).min(top) / top * (CHART_H - 6.0);
    let w = (HISTORY_BUCKETS as u64 - 1) * CHART_STEP + 4;
    let mut score = String::new();
    for p in &pts {
        let _ = write!(score, "{},{:.1} ", x(p.at), y(p.score));
    }
    let mut th = String::new();
    let mut prev: Option<f32> = None;
    for p in &pts {
        let ty = y(p.threshold);
        match prev {
            // across the whole chart: the reference even for a single bucket
            None => {
                let _ = write!(th, "0,{ty:.1} ");
            }
            Some(py) if (py - ty).abs() >= 0.05 => {
                let _ = write!(th, "{},{py:.1} {},{ty:.1} ", x(p.at) - 1, x(p.at) - 1);
            }
            _ => {}
        }
        prev = Some(ty);
    }
    let _ = write!(th, "{w},{:.1}", y(last.threshold));
    let class = if last.score > last.threshold {
        "bad"
    } else {
        "ok"
    };
    format!(
        "<svg class=chart width=120 height={h} viewBox=\"0 0 {w} {h}\" \
         preserveAspectRatio=none role=img>\
         <title>{name}: highest score per 5 minutes over 6 hours ({n} of {b}), \
         the last {s:.2} against threshold {t:.2}</title>\
         <rect class=fr width=\"{w}\" height=\"{h}\"/>\
         <polyline class=th stroke-width=\"1\" stroke-dasharray=\"3 2\" points=\"{th}\"/>\
         <polyline class=sp stroke-width=\"1.5\" points=\"{score}\"/>\
         <circle class={class} r=\"2\" cx=\"{cx}\" cy=\"{cy:.1}\"/></svg>",
        h = CHART_H,
        name = esc(&display_name(d)),
        n = pts.len(),
        b = HISTORY_BUCKETS,
        s = last.score,
        t = last.threshold,
        score = score.trim_end(),
        cx = x(last.at),
        cy = y(last.score),
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

fn device_row(out: &mut String, d: &DeviceStatus, end: u64) {
    let ips: Vec<&str> = d.ipv4.iter().chain(&d.ipv6).map(String::as_str).collect();
    let _ = write!(
        out,
        "<tr><td><a href=\"/device/{mac}\">{name}</a><br><span class=m>{vendor}</span></td>\
         <td><code>{mac}</code><br><span class=m>{ips}</span></td>\
         <td>{bar}<br>{chart}<span class=m>{score} / {threshold}</span></td>\
         <td class=m>{last}</td><td>{incident}{muted}</td></tr>",
        mac = esc(&d.mac),
        name = esc(&display_name(d)),
        vendor = esc(&d.vendor_class),
        ips = esc(&ips.join(" ")),
        bar = bar(d),
        chart = match chart(d, end) {
            c if c.is_empty() => c,
            c => c + "<br>",
        },
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

fn devices_table(out: &mut String, devices: &[&DeviceStatus], end: u64) {
    out.push_str(
        "<div class=w><table><tr><th>device</th><th>MAC, IPs</th><th>score / threshold</th>\
         <th>last seen</th><th>incident</th></tr>",
    );
    for d in devices {
        device_row(out, d, end);
    }
    out.push_str("</table></div>");
}

/// A number as the explanation tables show it.
fn num(x: f32) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x.abs() >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// `features`: the explanation as a table of each feature's observed and expected values
/// (the device page); otherwise its sentences.
fn event_item(out: &mut String, e: &Event, features: bool) {
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
    if features && !e.explanation.is_empty() {
        out.push_str(
            "<div class=w><table class=feat><tr><th>feature</th><th>observed</th>\
             <th>expected</th><th>unit</th><th>typical errors off</th></tr>",
        );
        for c in &e.explanation {
            let _ = write!(
                out,
                "<tr><td><code>{}</code><br><span class=m>{}</span></td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.feature),
                esc(&c.text),
                num(c.observed),
                num(c.expected),
                esc(&c.unit),
                num(c.weight),
            );
        }
        out.push_str("</table></div>");
    } else if !e.explanation.is_empty() {
        out.push_str("<ul>");
        for c in &e.explanation {
            let _ = write!(out, "<li>{}</li>", esc(&c.text));
        }
        out.push_str("</ul>");
    }
    out.push_str("</li>");
}

fn events(out: &mut String, events: &[&Event], features: bool) {
    out.push_str("<h2>Recent events</h2>");
    if events.is_empty() {
        out.push_str("<p class=m>none</p>");
        return;
    }
    out.push_str("<ul>");
    // newest first
    for e in events.iter().rev() {
        event_item(out, e, features);
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
    devices_table(&mut out, &devices, s.node.history_end);
    let recent: Vec<&Event> = s.recent.iter().collect();
    events(&mut out, &recent, false);
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
    devices_table(&mut out, &[d], s.node.history_end);
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
    events(&mut out, &mine, true);
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
    use crate::engine::{HistoryPoint, Status};

    pub const HOSTILE: &str = "<script>alert(1)</script>\"'&";
    const HISTORY_END: u64 = 1_704_067_200;

    /// The `<svg class=chart …>…</svg>` elements of `html`.
    fn charts(html: &str) -> Vec<&str> {
        html.match_indices("<svg class=chart")
            .map(|(i, _)| &html[i..i + html[i..].find("</svg>").unwrap() + 6])
            .collect()
    }

    /// The vertices of the `points` of the first polyline of `class` in `svg`.
    fn vertices<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
        let at = svg.find(&format!("<polyline class={class} ")).unwrap();
        let p = &svg[at..];
        let p = &p[p.find("points=\"").unwrap() + 8..];
        p[..p.find('"').unwrap()].split(' ').collect()
    }

    #[test]
    fn status_chart_has_a_point_per_bucket_and_the_threshold() {
        let s = sample();
        for html in [index(&s), device(&s, &s.node.devices[0], None)] {
            let c = charts(&html);
            assert_eq!(c.len(), 1, "{html}");
            let svg = c[0];
            // five buckets with scores, at 2 px a bucket up to the right end
            let v = vertices(svg, "sp");
            assert_eq!(
                v,
                ["136,24.3", "138,23.5", "140,3.0", "142,22.1", "144,3.0"],
                "{svg}"
            );
            // threshold 10 with scores up to 30: the scale tops at 30, the line at 1/3
            let t = vertices(svg, "th");
            assert_eq!(t, ["0,17.7", "146,17.7"], "{svg}");
            assert!(svg.contains("<circle class=bad"), "{svg}");
            // the title: the hostile name as text
            let title = &svg[svg.find("<title>").unwrap()..svg.find("</title>").unwrap()];
            assert!(
                title.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;: highest"),
                "{title}"
            );
            assert!(!title[7..].contains('<'), "{title}");
            assert!(title.contains("(5 of 72)"), "{title}");
        }
    }

    #[test]
    fn status_chart_keeps_six_hours_and_stays_small() {
        let mut s = sample();
        let node = Arc::make_mut(&mut s.node);
        let d = &mut node.devices[0];
        // a full day of buckets: only the last 72 are drawn, each a vertex
        d.history = (0..288)
            .map(|i| HistoryPoint {
                at: HISTORY_END - (287 - i) * 300,
                score: (i % 7) as f32,
                threshold: if i < 250 { 5.0 } else { 6.0 },
            })
            .collect();
        let html = index(&s);
        let svg = charts(&html)[0];
        assert_eq!(vertices(svg, "sp").len(), 72, "{svg}");
        assert!(vertices(svg, "sp")[0].starts_with("2,"), "{svg}");
        // the threshold rose once: start, step (two vertices), end
        assert_eq!(vertices(svg, "th").len(), 4, "{svg}");
        assert!(svg.len() < 2048, "{} bytes: {svg}", svg.len());
        // no history, no chart
        Arc::make_mut(&mut s.node).devices[0].history.clear();
        assert!(charts(&index(&s)).is_empty());
    }

    #[test]
    fn status_device_page_shows_features_observed_and_expected() {
        let s = sample();
        let html = device(&s, &s.node.devices[0], None);
        assert!(
            html.contains("<td><code>syn_out</code><br><span class=m>sent 500 SYNs &lt;b&gt;</span></td><td>500</td><td>2</td><td>packets</td><td>20</td>"),
            "{html}"
        );
        // the index keeps the sentences only
        assert!(!index(&s).contains("<code>syn_out</code>"));
    }

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
            history: (0..5)
                .map(|i| HistoryPoint {
                    at: HISTORY_END - (4 - i) * 300,
                    score: [1.0, 2.0, 30.0, 4.0, 30.0][i as usize],
                    threshold: 10.0,
                })
                .collect(),
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
            history_end: HISTORY_END,
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
