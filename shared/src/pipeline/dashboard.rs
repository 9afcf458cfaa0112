//! The sync-health page (`GET /dashboard`): the health report and the last hours of
//! the time series as one self-contained HTML page, no scripts, readable on a phone.
//! Pure rendering: the intake fetches the data and serves the page.

use std::fmt::Write;

use super::health::{ErrorGroup, Health, fix_hint};
use crate::domain::Millis;
use crate::ports::{BUCKET_MS, SeriesPoint};

/// How far back the chart reaches.
pub const CHART_HOURS: i64 = 12;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// `42 s`, `7 min`, `3 h`, `2 d`.
pub fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3_600),
        s => format!("{} d", s / 86_400),
    }
}

/// The page.
pub fn render(h: &Health, series: &[SeriesPoint], errors_by_code: &[ErrorGroup]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>crmsync · sync health</title><style>{CSS}</style></head><body>\
         <h1>crmsync sync health</h1><p class=\"muted\">as of {}</p>",
        time(h.at)
    );
    state_banner(&mut out, h);
    let _ = write!(out, "<h2>Last {CHART_HOURS} hours</h2>");
    chart(&mut out, series, h.at);
    pairs_table(&mut out, h);
    errors(&mut out, h, errors_by_code);
    feeds_and_api(&mut out, h);
    out.push_str("</body></html>");
    out
}

fn state_banner(out: &mut String, h: &Health) {
    match &h.paused {
        Some(p) => {
            let _ = write!(
                out,
                "<p class=\"banner paused\" id=\"state\">PAUSED since {} by {}{}: nothing syncs, \
                 changes wait in the queue. Resume with <code>crmsync resume</code>.</p>",
                time(p.since),
                esc(&p.by),
                p.reason
                    .as_deref()
                    .map(|r| format!(" ({})", esc(r)))
                    .unwrap_or_default()
            );
        }
        None => {
            let failing: u64 = h.failing_by_code.values().sum();
            let class = if failing > 0 || !h.broken_fields.is_empty() {
                "warn"
            } else {
                "ok"
            };
            let _ = write!(
                out,
                "<p class=\"banner {class}\" id=\"state\">SYNCING · {failing} records failing · {} broken fields</p>",
                h.broken_fields.len()
            );
        }
    }
    for b in &h.broken_fields {
        let _ = write!(
            out,
            "<p class=\"banner warn broken\">Broken mapping on <b>{}</b>: {} (since {}). That field is paused; \
             the pair syncs its other fields. Restore the field or remove it from the mapping, then \
             <code>crmsync resume</code>.</p>",
            esc(&b.pair),
            esc(&b.message),
            time(b.since)
        );
    }
}

fn pairs_table(out: &mut String, h: &Health) {
    out.push_str(
        "<h2>Records</h2><table id=\"records\"><tr><th>pair · object</th><th>to</th>\
         <th>synced</th><th>skipped</th><th>failing</th></tr>",
    );
    for f in &h.flows {
        let to = match f.direction.as_str() {
            "to_salesforce" => "Salesforce",
            "to_hubspot" => "HubSpot",
            other => other,
        };
        let _ = write!(
            out,
            "<tr><td>{} · {}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n{}\">{}</td></tr>",
            esc(&f.pair),
            esc(&f.object),
            esc(to),
            f.records.synced,
            f.records.skipped,
            if f.records.failed > 0 { " bad" } else { "" },
            f.records.failed
        );
    }
    out.push_str("</table>");
    for (title, id, map) in [
        ("Skipped, by reason", "skipped", &h.skipped_by_reason),
        (
            "Synced with a value held back",
            "held-back",
            &h.held_back_by_reason,
        ),
    ] {
        if map.is_empty() {
            continue;
        }
        let _ = write!(out, "<h3>{title}</h3><ul id=\"{id}\">");
        for (code, n) in map {
            let _ = write!(
                out,
                "<li><code>{}</code> {n}{}</li>",
                esc(code),
                fix_hint(code)
                    .map(|h| format!(" <span class=\"muted\">— {}</span>", esc(h)))
                    .unwrap_or_default()
            );
        }
        out.push_str("</ul>");
    }
}

fn errors(out: &mut String, h: &Health, by_code: &[ErrorGroup]) {
    out.push_str("<h2>Errors</h2>");
    if h.failing_by_code.is_empty() {
        out.push_str("<p id=\"errors\">No record is failing.</p>");
        return;
    }
    out.push_str("<div id=\"errors\">");
    for (code, n) in &h.failing_by_code {
        let _ = write!(
            out,
            "<details open><summary><code class=\"bad\">{}</code> <b>{n}</b> records</summary>",
            esc(code)
        );
        if let Some(hint) = fix_hint(code) {
            let _ = write!(out, "<p class=\"hint\">Fix: {}</p>", esc(hint));
        }
        let records = by_code
            .iter()
            .find(|g| &g.code == code)
            .map(|g| g.failing.as_slice())
            .unwrap_or_default();
        out.push_str("<ul>");
        for r in records {
            let name = match &r.url {
                Some(url) => format!("<a href=\"{}\">{}</a>", esc(url), esc(&r.record)),
                None => esc(&r.record),
            };
            let _ = write!(
                out,
                "<li>{name}{}{} <span class=\"muted\">({} attempts)</span></li>",
                r.field
                    .as_deref()
                    .map(|f| format!(" · <code>{}</code>", esc(f)))
                    .unwrap_or_default(),
                r.message
                    .as_deref()
                    .map(|m| format!(" · {}", esc(m)))
                    .unwrap_or_default(),
                r.attempts
            );
        }
        if (records.len() as u64) < *n {
            let _ = write!(
                out,
                "<li class=\"muted\">… all of them: <code>crmsync errors --code {}</code></li>",
                esc(code)
            );
        }
        out.push_str("</ul></details>");
    }
    out.push_str("</div>");
}

fn feeds_and_api(out: &mut String, h: &Health) {
    out.push_str(
        "<h2>Feeds</h2><table id=\"feeds\"><tr><th>feed</th><th>last read</th><th>lag</th></tr>",
    );
    for f in &h.feeds {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&f.feed),
            f.last_poll.map(time).unwrap_or_else(|| "never".into()),
            f.lag_ms.map(duration).unwrap_or_else(|| "–".into())
        );
    }
    out.push_str("</table>");
    if let Some(q) = h.queue {
        let _ = write!(
            out,
            "<p id=\"queue\">Queue: <b>{}</b> waiting, {} in progress, {} dead-lettered</p>",
            q.waiting, q.in_flight, q.dead
        );
    }
    out.push_str("<h2>API use</h2><table id=\"api\"><tr><th>CRM</th><th>crmsync, 24 h</th><th>today, all apps</th><th></th></tr>");
    for a in &h.api {
        let (today, bar) = match (a.daily_used, a.daily_limit) {
            (Some(used), Some(limit)) if limit > 0 => {
                let pct = (used as f64 * 100.0 / limit as f64).min(100.0);
                (
                    format!("{used} of {limit} ({pct:.1}%)"),
                    format!("<div class=\"bar\"><div style=\"width:{pct:.1}%\"></div></div>"),
                )
            }
            _ => ("not reported".into(), String::new()),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{today}</td><td>{bar}</td></tr>",
            a.side, a.calls_24h
        );
    }
    out.push_str("</table>");
}

/// Records synced and failed per bucket (bars) and the worst feed lag (a line), as
/// inline SVG.
fn chart(out: &mut String, series: &[SeriesPoint], now: Millis) {
    let buckets = (CHART_HOURS * 3_600_000 / BUCKET_MS) as usize;
    let first = crate::ports::bucket_of(now) - (buckets as i64 - 1) * BUCKET_MS;
    let value = |p: &SeriesPoint, k: &str| p.values.get(k).copied().unwrap_or(0).max(0);
    let mut synced = vec![0i64; buckets];
    let mut failed = vec![0i64; buckets];
    let mut lag = vec![None::<i64>; buckets];
    for p in series {
        let Ok(i) = usize::try_from((p.bucket - first) / BUCKET_MS) else {
            continue;
        };
        if i >= buckets {
            continue;
        }
        synced[i] = value(p, "synced");
        failed[i] = value(p, "failed");
        lag[i] = p
            .values
            .iter()
            .filter(|(k, _)| k.starts_with("lag."))
            .map(|(_, v)| *v)
            .max();
    }
    let (w, hgt, pad) = (720.0_f64, 180.0_f64, 24.0_f64);
    let top = synced
        .iter()
        .zip(&failed)
        .map(|(s, f)| s + f)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_lag = lag.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let step = (w - 2.0 * pad) / buckets as f64;
    let y = |v: f64, max: f64| hgt - pad - (v / max) * (hgt - 2.0 * pad);
    let _ = write!(
        out,
        "<svg id=\"chart\" viewBox=\"0 0 {w} {hgt}\" role=\"img\" aria-label=\"records synced, failed and feed lag\">"
    );
    for i in 0..buckets {
        let x = pad + i as f64 * step;
        let (s, f) = (synced[i] as f64, failed[i] as f64);
        if s > 0.0 {
            let _ = write!(
                out,
                "<rect class=\"synced\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{} synced</title></rect>",
                y(s + f, top),
                step * 0.8,
                y(f, top) - y(s + f, top),
                synced[i]
            );
        }
        if f > 0.0 {
            let _ = write!(
                out,
                "<rect class=\"failed\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{} failed</title></rect>",
                y(f, top),
                step * 0.8,
                (hgt - pad) - y(f, top),
                failed[i]
            );
        }
    }
    let points: Vec<String> = lag
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            l.map(|v| {
                format!(
                    "{:.1},{:.1}",
                    pad + (i as f64 + 0.4) * step,
                    y(v as f64, max_lag)
                )
            })
        })
        .collect();
    if !points.is_empty() {
        let _ = write!(
            out,
            "<polyline class=\"lag\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\"/>\
         <text x=\"{pad}\" y=\"{hgt}\" class=\"muted\">-{CHART_HOURS} h</text>\
         <text x=\"{1}\" y=\"{hgt}\" text-anchor=\"end\" class=\"muted\">now</text>\
         <text x=\"{pad}\" y=\"14\" class=\"muted\">max {2} records / 10 min · lag up to {3}</text></svg>\
         <p class=\"legend\"><span class=\"k synced\"></span>synced <span class=\"k failed\"></span>failed \
         <span class=\"k lag\"></span>feed lag</p>",
        hgt - pad,
        w - pad,
        top as i64,
        duration(max_lag as i64)
    );
}

const CSS: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:760px;padding:12px;color:#222}\
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.2em 0 .4em}h3{font-size:1em}\
.muted{color:#777}.banner{padding:10px;border-radius:6px;font-weight:600}.ok{background:#e6f4ea}\
.warn{background:#fff4e0}.paused{background:#fde7e9}table{border-collapse:collapse;width:100%}\
td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left}td.n{text-align:right}\
.bad{color:#b00020;font-weight:600}code{font-size:.92em}svg{width:100%;height:auto;background:#fafafa}\
rect.synced,.k.synced{fill:#2e7d32;background:#2e7d32}rect.failed,.k.failed{fill:#c62828;background:#c62828}\
polyline.lag{fill:none;stroke:#1565c0;stroke-width:2}.k.lag{background:#1565c0}.axis{stroke:#999}\
.k{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}.hint{margin:.2em 0;color:#555}\
.bar{background:#eee;height:8px;border-radius:4px;min-width:80px}.bar div{background:#1565c0;height:8px;border-radius:4px}\
details{margin:.4em 0}ul{padding-left:1.2em}@media(max-width:520px){body{font-size:14px}td,th{padding:3px}}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::health::FailingRecord;
    use crate::ports::Pause;

    #[test]
    fn what_crms_and_admins_wrote_is_escaped() {
        let mut h = Health {
            at: 7_200_000,
            paused: Some(Pause {
                since: 0,
                by: "<b>eve</b>".into(),
                reason: Some("\"quoted\" & <i>".into()),
            }),
            ..Health::default()
        };
        h.failing_by_code.insert("X<y>".into(), 1);
        let group = ErrorGroup {
            code: "X<y>".into(),
            records: 1,
            hint: None,
            failing: vec![FailingRecord {
                record: "hubspot:contacts:1".into(),
                pair: None,
                direction: "to_salesforce".into(),
                code: Some("X<y>".into()),
                field: Some("Title".into()),
                message: Some("<script>alert(1)</script>".into()),
                attempts: 1,
                since: 0,
                hint: None,
                url: Some("https://x/\"><script>".into()),
            }],
        };
        let page = render(&h, &[], &[group]);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;eve&lt;/b&gt;"));
        assert!(page.contains("PAUSED"));
    }

    #[test]
    fn the_chart_places_buckets_by_time() {
        let now = 100 * BUCKET_MS + 5;
        let mut p = SeriesPoint {
            bucket: 100 * BUCKET_MS,
            ..SeriesPoint::default()
        };
        p.values.insert("synced".into(), 40);
        p.values.insert("failed".into(), 2);
        p.values.insert("lag.hubspot:contacts".into(), 90_000);
        let old = SeriesPoint {
            bucket: 10 * BUCKET_MS,
            ..SeriesPoint::default()
        };
        let mut out = String::new();
        chart(&mut out, &[old, p], now);
        assert!(out.contains("<title>40 synced</title>"));
        assert!(out.contains("<title>2 failed</title>"));
        assert!(out.contains("max 42 records"));
        assert!(out.contains("lag up to 90 s"));
        assert_eq!(
            out.matches("<rect").count(),
            2,
            "the old bucket is off the chart"
        );
    }
}
