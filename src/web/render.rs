//! The pages' HTML, made on the server from the operations' results: no script, no CDN, the
//! charts drawn as inline SVG. The dashboard's body is one fragment ([`dashboard`]) shown by
//! the page (with its forms) and by the MCP App wallet view (read-only).

use std::fmt::Write;

use crate::ops::approve::ApprovalOutput;
use crate::ops::dashboard::{DashboardOutput, Day, Gauge};

/// Text for HTML (element content and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `12,345`.
pub fn n(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;gap:18px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header .sub{opacity:.7}
main{max-width:1100px;margin:0 auto;padding:18px 24px}
section{background:#fff;border-radius:8px;padding:14px 18px;margin:0 0 16px;box-shadow:0 1px 2px #0002}
h2{font-size:15px;margin:0 0 10px;text-transform:uppercase;letter-spacing:.04em;color:#555}
.balance{font-size:34px;font-weight:600}.badge{display:inline-block;background:#ffe08a;color:#5b4500;border-radius:4px;padding:2px 8px;font-size:13px;font-weight:600;vertical-align:middle;margin-left:8px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}
table{border-collapse:collapse;width:100%;font-size:14px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee}th{color:#666;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.gauge{margin:6px 0 12px}.gauge .label{display:flex;justify-content:space-between;font-size:13px}
.bar{height:12px;background:#e6e9ef;border-radius:6px;overflow:hidden;display:flex}.bar .spent{background:#3157d5}.bar .reserved{background:#f0a020}
.pending{border-left:4px solid #f0a020}.approval{display:flex;flex-wrap:wrap;gap:12px;align-items:center;padding:8px 0;border-bottom:1px solid #eee}
.approval .what{flex:1 1 320px}.amount{font-weight:600;font-size:17px}
button{font:inherit;padding:6px 16px;border-radius:6px;border:1px solid #999;background:#fff;cursor:pointer}
button.approve{background:#1f8a4c;border-color:#1f8a4c;color:#fff}button.deny{background:#b3261e;border-color:#b3261e;color:#fff}
input,select{font:inherit;padding:4px 6px;border:1px solid #bbb;border-radius:5px}input[type=number]{width:9em}
form.inline{display:inline-flex;gap:6px;align-items:center;margin:0}
.note{padding:10px 14px;border-radius:6px;margin-bottom:14px;background:#e2f4e8;color:#0c5a2c}.error{background:#fde2e0;color:#8a1a12}
.muted{color:#777;font-size:13px}.settings label{display:block;margin:6px 0}.settings label span{display:inline-block;width:15em}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;border-radius:2px}
";

/// A whole page: `title`, `body`, the shared style.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

/// How the dashboard fragment is shown.
pub enum Mode<'a> {
    /// The page: forms posting to `base`, each with the session's CSRF token.
    Page { base: &'a str, csrf: &'a str },
    /// The MCP App view: read-only (no tool may approve or change settings from it).
    App,
}

/// The dashboard's body.
pub fn dashboard(d: &DashboardOutput, mode: &Mode<'_>) -> String {
    let mut h = String::new();
    let demo = if d.demo_funds {
        "<span class=badge title=\"The embedded demo wallet: test sats, not real bitcoin\">TEST SATS — not real bitcoin</span>"
    } else {
        ""
    };
    let _ = write!(
        h,
        "<header><h1>l402-mcp · wallet {}</h1><span class=sub>{} on {}</span></header><main>",
        esc(&d.wallet),
        esc(&d.backend),
        esc(&d.network)
    );
    let _ = write!(
        h,
        "<section id=balance><h2>Balance</h2><div class=balance><span id=balance-sats>{}</span> sats{demo}</div><div class=muted>earned {} sats in the last 24 h</div></section>",
        n(d.balance_sats),
        n(d.earned_24h_sats)
    );
    h.push_str(&approvals(&d.approvals, d.approval.pin_set, mode));
    let _ = write!(
        h,
        "<div class=grid><section id=budget><h2>Budget</h2>{}</section><section id=chart><h2>Spending and earning, last {} days</h2>{}</section></div>",
        gauges(&d.gauges),
        d.days.len(),
        chart(&d.days)
    );
    h.push_str(&payments(d, mode));
    h.push_str(&sales(d));
    h.push_str(&settings(d, mode));
    h.push_str("</main>");
    h
}

fn gauges(gs: &[Gauge]) -> String {
    let mut h = String::new();
    for g in gs {
        let used = g.spent_sats + g.reserved_sats;
        let label = match (g.cap_sats, g.left_sats) {
            (None, _) => format!("{} sats used · no cap", n(used)),
            (Some(cap), _) if g.name == "per payment" => format!("at most {} sats each", n(cap)),
            (Some(cap), left) => format!(
                "{} spent + {} reserved of {} · {} left",
                n(g.spent_sats),
                n(g.reserved_sats),
                n(cap),
                n(left.unwrap_or(0))
            ),
        };
        let pct = |v: u64| match g.cap_sats {
            Some(cap) if cap > 0 && g.name != "per payment" => {
                (v as f64 * 100.0 / cap as f64).min(100.0)
            }
            _ => 0.0,
        };
        let _ = write!(
            h,
            "<div class=gauge data-gauge=\"{}\"><div class=label><b>{}</b><span>{}</span></div><div class=bar><div class=spent style=\"width:{:.1}%\"></div><div class=reserved style=\"width:{:.1}%\"></div></div></div>",
            esc(&g.name),
            esc(&g.name),
            label,
            pct(g.spent_sats),
            pct(g.reserved_sats)
        );
    }
    h
}

/// Two bars a day, spent and earned, on one scale.
fn chart(days: &[Day]) -> String {
    let (w, hgt, pad) = (520.0, 200.0, 28.0);
    let max = days
        .iter()
        .map(|d| d.spent_sats.max(d.earned_sats))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = (w - pad) / days.len().max(1) as f64;
    let bar = (slot / 2.0 - 2.0).max(1.0);
    let mut svg = format!(
        "<svg id=spend-chart viewBox=\"0 0 {w} {}\" width=100% role=img aria-label=\"sats spent and earned per day\" xmlns=\"http://www.w3.org/2000/svg\">",
        hgt + 22.0
    );
    let _ = write!(
        svg,
        "<line x1=\"{pad}\" y1=\"{hgt}\" x2=\"{w}\" y2=\"{hgt}\" stroke=\"#999\"/><text x=\"0\" y=\"12\" font-size=\"11\" fill=\"#666\">{}</text><text x=\"0\" y=\"{hgt}\" font-size=\"11\" fill=\"#666\">0</text>",
        n(max as u64)
    );
    for (i, d) in days.iter().enumerate() {
        let x = pad + i as f64 * slot;
        for (k, (v, color, what)) in [
            (d.spent_sats, "#3157d5", "spent"),
            (d.earned_sats, "#1f8a4c", "earned"),
        ]
        .into_iter()
        .enumerate()
        {
            let bh = v as f64 / max * (hgt - 16.0);
            let _ = write!(
                svg,
                "<rect class=\"{what}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{} sats {what}</title></rect>",
                x + k as f64 * (bar + 1.0),
                hgt - bh,
                n(v)
            );
        }
        if i % 2 == 1 || days.len() <= 7 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" fill=\"#666\">{}</text>",
                hgt + 14.0,
                day_label(d.start)
            );
        }
    }
    svg.push_str("</svg><div class=\"legend muted\"><span style=\"background:#3157d5\"></span>spent<span style=\"background:#1f8a4c\"></span>earned</div>");
    svg
}

/// `12-06` for a UTC day start.
fn day_label(start: u64) -> String {
    let (_, month, day) = civil(start);
    format!("{month:02}-{day:02}")
}

/// `2026-12-06 14:05` (UTC).
pub fn when(t: u64) -> String {
    let (y, m, d) = civil(t);
    format!(
        "{y}-{m:02}-{d:02} {:02}:{:02}",
        t % 86_400 / 3600,
        t % 3600 / 60
    )
}

/// (year, month, day) of unix time `t`, UTC.
fn civil(t: u64) -> (i64, i64, i64) {
    crate::l402::mpp::time::civil_from_days(i64::try_from(t / 86_400).unwrap_or(i64::MAX))
}

/// The decision forms of one approval (page mode), or a hint (app mode).
fn decide_forms(a: &ApprovalOutput, pin_set: bool, mode: &Mode<'_>) -> String {
    match mode {
        Mode::App => "<span class=muted>approve in the approval card, on the dashboard or with <code>l402-mcp approve</code></span>".into(),
        Mode::Page { base, csrf } => {
            let pin = if pin_set {
                "<input name=pin type=password inputmode=numeric autocomplete=off placeholder=PIN>"
            } else {
                ""
            };
            format!(
                "<form class=inline method=post action=\"{}/approvals/{}\"><input type=hidden name=csrf value=\"{}\">{pin}<button class=approve type=submit name=decision value=approve>Approve</button><button class=deny type=submit name=decision value=deny>Deny</button></form>",
                esc(base),
                esc(&a.id),
                esc(csrf),
            )
        }
    }
}

fn approvals(list: &[ApprovalOutput], pin_set: bool, mode: &Mode<'_>) -> String {
    if list.is_empty() {
        return "<section id=approvals><h2>Waiting for your approval</h2><p class=muted>Nothing is waiting.</p></section>".into();
    }
    let mut h =
        String::from("<section id=approvals class=pending><h2>Waiting for your approval</h2>");
    for a in list {
        let _ = write!(
            h,
            "<div class=approval id=\"approval-{}\"><div class=what><span class=amount>{} sats</span> to <b>{}</b><br><span class=muted>{} · {} · approval {} · until {} UTC</span></div>{}</div>",
            esc(&a.id),
            n(a.amount_sats),
            esc(a.host.as_deref().unwrap_or("an invoice's payee")),
            esc(&what(a)),
            esc(&crate::approval::why(&a.reasons)),
            esc(&a.id),
            when(a.expires_at),
            decide_forms(a, pin_set, mode)
        );
    }
    h.push_str("</section>");
    h
}

/// What an approval buys, without a query string (it may hold a key).
pub fn what(a: &ApprovalOutput) -> String {
    match &a.url {
        Some(u) => u.split('?').next().unwrap_or(u).to_owned(),
        None => a
            .description
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| {
                format!(
                    "invoice {}…",
                    &a.payment_hash[..a.payment_hash.len().min(16)]
                )
            }),
    }
}

fn payments(d: &DashboardOutput, mode: &Mode<'_>) -> String {
    let mut h = String::from("<section id=payments><h2>Payments</h2>");
    if let Mode::Page { base, .. } = mode {
        let _ = write!(
            h,
            "<form class=inline method=get action=\"{}/\">direction <select name=direction><option value=\"\">both</option><option value=out>out</option><option value=in>in</option></select> status <select name=status><option value=\"\">any</option><option>pending</option><option>succeeded</option><option>failed</option></select> host <input name=host size=18> <button type=submit>Filter</button></form>",
            esc(base)
        );
    }
    h.push_str("<table><thead><tr><th>#</th><th>when</th><th>dir</th><th>status</th><th class=num>sats</th><th class=num>fee</th><th>host</th><th>what</th></tr></thead><tbody>");
    for r in &d.payments {
        let p = &r.payment;
        let what = p
            .url
            .as_deref()
            .map(|u| u.split('?').next().unwrap_or(u).to_owned())
            .or_else(|| p.description.clone().filter(|d| !d.is_empty()))
            .unwrap_or_else(|| {
                format!(
                    "invoice {}…",
                    &p.payment_hash[..p.payment_hash.len().min(16)]
                )
            });
        let _ = write!(
            h,
            "<tr class=\"payment {} {}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.direction),
            esc(&p.status),
            p.id,
            when(p.created_at),
            esc(&p.direction),
            esc(&p.status),
            n(p.amount_sats),
            n(p.fee_sats),
            esc(r.host.as_deref().unwrap_or("")),
            esc(&what)
        );
    }
    if d.payments.is_empty() {
        h.push_str("<tr><td colspan=8 class=muted>No payments match.</td></tr>");
    }
    h.push_str("</tbody></table><p class=muted>times in UTC</p></section>");
    h
}

fn sales(d: &DashboardOutput) -> String {
    let mut h = String::from(
        "<section id=sales><h2>Sales per service, last 30 days</h2><table><thead><tr><th>service</th><th class=num>tokens</th><th class=num>sats</th></tr></thead><tbody>",
    );
    for s in &d.sales {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            esc(&s.service),
            n(s.count),
            n(s.amount_sats)
        );
    }
    if d.sales.is_empty() {
        h.push_str("<tr><td colspan=3 class=muted>No sales.</td></tr>");
    }
    h.push_str("</tbody></table></section>");
    h
}

fn settings(d: &DashboardOutput, mode: &Mode<'_>) -> String {
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let a = &d.approval;
    match mode {
        Mode::App => format!(
            "<section id=settings><h2>Settings</h2><p>Per payment {} sats · daily {} sats · hourly {} · per host daily {} · approval above {} · first payment to a new payee {} · questions wait {} s</p><p class=muted>Only a person changes these: on the dashboard (<code>l402-mcp dashboard</code>) or with the command line. No tool can.</p></section>",
            n(d.per_payment_sats),
            n(d.daily_sats),
            d.hourly_sats
                .map_or("none".into(), |v| format!("{} sats", n(v))),
            d.per_host_daily_sats
                .map_or("none".into(), |v| format!("{} sats", n(v))),
            a.above_sats
                .map_or("none".into(), |v| format!("{} sats", n(v))),
            if a.new_host { "asks" } else { "does not ask" },
            a.timeout_secs
        ),
        Mode::Page { base, csrf } => format!(
            "<section id=settings class=settings><h2>Settings</h2><form method=post action=\"{}/settings\"><input type=hidden name=csrf value=\"{}\">\
             <label><span>Per payment (sats)</span><input type=number min=0 name=per_payment_sats value=\"{}\"></label>\
             <label><span>Daily, rolling 24 h (sats)</span><input type=number min=0 name=daily_sats value=\"{}\"></label>\
             <label><span>Hourly (sats, empty: none)</span><input type=number min=0 name=hourly_sats value=\"{}\"></label>\
             <label><span>Per host daily (sats, empty: none)</span><input type=number min=0 name=per_host_daily_sats value=\"{}\"></label>\
             <label><span>Ask above (sats, empty: never)</span><input type=number min=0 name=above_sats value=\"{}\"></label>\
             <label><span>Ask on a new payee</span><input type=checkbox name=new_host value=true{}></label>\
             <label><span>Questions wait (seconds)</span><input type=number min=1 name=timeout_secs value=\"{}\"></label>{}\
             <button type=submit id=save-settings>Save</button></form></section>",
            esc(base),
            esc(csrf),
            d.per_payment_sats,
            d.daily_sats,
            opt(d.hourly_sats),
            opt(d.per_host_daily_sats),
            opt(a.above_sats),
            if a.new_host { " checked" } else { "" },
            a.timeout_secs,
            if a.pin_set {
                "<label><span>PIN</span><input name=pin type=password inputmode=numeric autocomplete=off required></label>"
            } else {
                ""
            }
        ),
    }
}

/// The approval page of one payment: what it is, and Approve / Deny.
pub fn approval_page(
    a: &ApprovalOutput,
    base: &str,
    csrf: &str,
    pin_set: bool,
    note: Option<&str>,
) -> String {
    let note = note
        .map(|t| format!("<div class=\"note error\">{}</div>", esc(t)))
        .unwrap_or_default();
    let body = if a.status == "pending" {
        let pin = if pin_set {
            "<label>PIN <input name=pin type=password inputmode=numeric autocomplete=off required></label> "
        } else {
            ""
        };
        format!(
            "<form method=post action=\"{}/approve/{}\"><input type=hidden name=csrf value=\"{}\">{pin}<button class=approve name=decision value=approve type=submit>Approve</button> <button class=deny name=decision value=deny type=submit>Deny</button></form>",
            esc(base),
            esc(&a.id),
            esc(csrf)
        )
    } else {
        format!(
            "<p id=decided>This payment was <b>{}</b>.</p>",
            esc(&a.status)
        )
    };
    page(
        "Approve a payment",
        &format!(
            "<header><h1>l402-mcp · approve a payment</h1></header><main><section class=pending>{note}<div class=amount>{} sats to {}</div><p>{}<br><span class=muted>{} · approval {} · open until {} UTC</span></p>{body}</section><p class=muted>Only approve what you asked your agent to buy. The agent cannot approve for itself.</p></main>",
            n(a.amount_sats),
            esc(a.host.as_deref().unwrap_or("an invoice's payee")),
            esc(&what(a)),
            esc(&crate::approval::why(&a.reasons)),
            esc(&a.id),
            when(a.expires_at)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_numbers() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            (n(0), n(999), n(1000), n(100000), n(1234567)),
            (
                "0".into(),
                "999".into(),
                "1,000".into(),
                "100,000".into(),
                "1,234,567".into()
            )
        );
        assert_eq!(day_label(1_765_000_000 - 1_765_000_000 % 86_400), "12-06");
        assert_eq!(when(1_765_000_000), "2025-12-06 05:46");
        assert_eq!(when(951_782_400), "2000-02-29 00:00");
    }
}
