//! The status page a person reads: one HTML document rendered on the server from the same
//! [`Snapshot`] as `/api/status`, so the two cannot disagree, and readable without JavaScript.
//! A few lines of script refetch it every few seconds and swap the content in place (no
//! flicker, open sections stay open); without script a `<meta refresh>` does the same.
//!
//! Every text from the plan, the state or a server (addresses, errors, folder names) goes
//! through [`escape`]: a folder name is hostile input.

use std::fmt::Write;

use super::status::{AccountView, Health, RunState, Snapshot, UnitView};
use crate::apply::human_bytes;
use crate::plan::diagnostic::plural;

/// The page's script; the HTTP layer allows exactly this text by hash in its CSP.
pub const SCRIPT: &str = r#"(function () {
  var root = document.documentElement;
  // Marks for people and tests alike: the script ran (the CSP let it), and how often it refreshed.
  root.dataset.live = '1';
  root.dataset.refreshes = '0';
  function swap(next) {
    var cur = document.getElementById('status');
    cur.querySelectorAll('details[open]').forEach(function (d) {
      var twin = next.querySelector('details#' + d.id);
      if (twin) twin.open = true;
    });
    cur.replaceWith(next);
    root.dataset.refreshes = String(Number(root.dataset.refreshes) + 1);
  }
  function refresh() {
    fetch(location.pathname, {cache: 'no-store', credentials: 'same-origin'})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var next = doc.getElementById('status');
        if (next) { swap(next); document.title = doc.title; }
      })
      .catch(function () {});
  }
  setInterval(refresh, 3000);
})();"#;

const STYLE: &str = r#"
:root { --fail: #b3261e; --run: #1a5fb4; --ok: #26a269; --wait: #9a6700; --muted: #5e5c64; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d1d1f; background: #f6f6f7; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 32px; }
h1 { font-size: 20px; margin: 8px 0 2px; }
.meta, footer { color: var(--muted); font-size: 12px; }
.banner { border-radius: 6px; padding: 10px 14px; margin: 12px 0; background: #fff4e5; border: 1px solid #f0c36d; }
.banner.error { background: #fdecea; border-color: #f1998e; }
.banner pre { white-space: pre-wrap; margin: 6px 0 0; font-size: 12px; }
.summary { font-size: 15px; margin: 12px 0; }
table { width: 100%; border-collapse: collapse; background: #fff; border-radius: 6px; overflow: hidden; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid #eceef1; vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: #fafafb; }
tr.failing td:first-child { box-shadow: inset 3px 0 0 var(--fail); }
.badge { display: inline-block; border-radius: 10px; padding: 1px 8px; font-size: 12px; font-weight: 600; color: #fff; background: var(--muted); }
.badge.failing { background: var(--fail); } .badge.running, .badge.queued { background: var(--run); }
.badge.synced, .badge.cut-over { background: var(--ok); } .badge.manual, .badge.pending { background: var(--wait); }
.bar { width: 160px; height: 10px; border-radius: 5px; background: #e6e7ea; overflow: hidden; display: inline-block; vertical-align: middle; }
.bar > div { height: 100%; background: var(--ok); }
tr.failing .bar > div { background: var(--fail); } tr.running .bar > div { background: var(--run); }
.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.error { color: var(--fail); max-width: 420px; overflow-wrap: anywhere; }
code { font-size: 12px; }
details { margin-top: 18px; } summary { cursor: pointer; font-weight: 600; margin-bottom: 8px; }
"#;

pub fn escape(s: &str) -> String {
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

/// "3m ago" / "in 14m": `when` and `now` are RFC 3339 strings from the snapshot.
fn relative(when: Option<&str>, now: &str) -> String {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    let (Some(t), Some(n)) = (when.and_then(parse), parse(now)) else {
        return "—".into();
    };
    let secs = (t - n).num_seconds();
    let span = |s: i64| {
        let s = s.unsigned_abs();
        if s < 60 {
            format!("{s}s")
        } else if s < 3600 {
            format!("{}m {}s", s / 60, s % 60)
        } else if s < 86_400 {
            format!("{}h {}m", s / 3600, (s % 3600) / 60)
        } else {
            format!("{}d {}h", s / 86_400, (s % 86_400) / 3600)
        }
    };
    match secs {
        0 => "now".into(),
        s if s > 0 => format!("in {}", span(s)),
        s => format!("{} ago", span(s)),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural_thousands(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{} {word}s", thousands(n))
    }
}

pub fn render(s: &Snapshot) -> String {
    let mut h = String::with_capacity(8192);
    let failing = s.summary.failing;
    // A cutover refused, in drift or failed waits for a person as a failing account does: the
    // tab's title says so too.
    let cutover_problems: Vec<&str> = s
        .cutovers
        .iter()
        .filter(|c| c.problem())
        .map(|c| c.domain.as_str())
        .collect();
    let _ = writeln!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}mailshift: {}{}</title><style>{STYLE}</style>\
         <noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript></head><body>",
        match (failing, cutover_problems.is_empty()) {
            (0, true) => String::new(),
            (f, true) => format!("({f} failing) "),
            (0, false) => "(cutover needs you) ".to_string(),
            (f, false) => format!("({f} failing, cutover needs you) "),
        },
        plural(s.summary.accounts, "account"),
        if s.shards.is_empty() {
            String::new()
        } else {
            format!(" on {}", plural(s.shards.len(), "shard"))
        }
    );
    let heading = if !s.shards.is_empty() {
        format!("mailshift: {} merged", plural(s.shards.len(), "shard"))
    } else if s.shard.count > 1 {
        format!(
            "mailshift watch: shard {} of {}",
            s.shard.index, s.shard.count
        )
    } else {
        "mailshift watch".to_string()
    };
    let _ = writeln!(
        h,
        "<main id=\"status\" data-generation=\"{}\">\n<h1>{heading}</h1>\n\
         <div class=\"meta\">plan <code>{}</code> · generation {} · loaded {} · updated {}</div>",
        s.plan.generation,
        escape(&s.plan.path),
        s.plan.generation,
        relative(s.plan.loaded_at.as_deref(), &s.now),
        escape(&s.now),
    );
    if let Some(err) = &s.plan.error {
        let _ = writeln!(
            h,
            "<section class=\"banner error\" id=\"plan-error\"><strong>The last change to the \
             plan file was refused ({}); the previous plan keeps running.</strong><pre>{}</pre></section>",
            relative(s.plan.error_at.as_deref(), &s.now),
            escape(err)
        );
    }
    if !s.problems.is_empty() {
        h.push_str("<section class=\"banner error\" id=\"problems\"><strong>This view is wrong or incomplete:</strong><ul>");
        for p in &s.problems {
            let _ = write!(h, "<li>{}</li>", escape(p));
        }
        h.push_str("</ul></section>\n");
    }
    for n in &s.notes {
        let _ = writeln!(h, "<section class=\"banner\">{}</section>", escape(n));
    }
    if !s.shards.is_empty() {
        shard_table(&mut h, s);
    }
    if s.stopping {
        h.push_str(
            "<section class=\"banner\" id=\"stopping\">Stopping: in-flight copies finish their \
             batch, then the daemon exits.</section>\n",
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"summary\"><strong>{}</strong>: <strong>{}</strong> failing, {} running, {} \
         synced{} · {} ({}) migrated</p>",
        plural(s.summary.accounts, "account"),
        failing,
        s.summary.running,
        s.summary.synced,
        if s.summary.paused > 0 {
            format!(", {} paused", s.summary.paused)
        } else {
            String::new()
        },
        plural_thousands(s.summary.messages_migrated, "message"),
        human_bytes(s.summary.bytes_migrated)
    );
    for domain in &cutover_problems {
        let _ = writeln!(
            h,
            "<p class=\"summary error\">The <a href=\"#cutover-{}\">cutover of {}</a> needs \
             you: see its steps below.</p>",
            escape(domain),
            escape(domain)
        );
    }
    h.push_str(
        "<table id=\"accounts\"><thead><tr><th>Account</th><th>Status</th><th>Progress</th>\
         <th>Migrated</th><th>Last sync</th><th>Next run</th><th>Last error</th></tr></thead><tbody>\n",
    );
    for a in &s.accounts {
        account_row(&mut h, a, &s.now);
    }
    if s.accounts.is_empty() {
        h.push_str("<tr><td colspan=\"7\">The plan has no accounts.</td></tr>\n");
    }
    h.push_str("</tbody></table>\n");
    if let Some(p) = &s.platform {
        platform_line(&mut h, p, &s.now);
    }
    for c in &s.cutovers {
        cutover_section(&mut h, c);
    }
    let _ = writeln!(
        h,
        "<details id=\"resources\"><summary>All resources ({})</summary><table><thead><tr>\
         <th>Resource</th><th>Status</th><th>Summary</th><th>Updated</th><th>Last error</th>\
         </tr></thead><tbody>",
        s.resources.len()
    );
    for r in &s.resources {
        let _ = writeln!(
            h,
            "<tr data-resource=\"{}\" data-status=\"{}\"><td><code>{}</code></td>\
             <td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"error\">{}</td></tr>",
            escape(&r.id),
            r.status,
            escape(&r.id),
            r.status,
            escape(&r.summary),
            relative(r.updated_at.as_deref(), &s.now),
            escape(
                r.last_error
                    .as_deref()
                    .or(r.detail.as_deref())
                    .unwrap_or("")
            )
        );
    }
    let _ = writeln!(
        h,
        "</tbody></table></details>\n<footer><p>mailshift {} · started {} · \
         <a href=\"/api/status\">/api/status</a> · <a href=\"/metrics\">/metrics</a></p></footer>\n\
         </main>\n<script>{SCRIPT}</script>\n</body></html>",
        escape(&s.version),
        escape(&s.started_at)
    );
    h
}

fn account_row(h: &mut String, a: &AccountView, now: &str) {
    let health = a.health.as_str();
    // A person's pause reads "paused" like a daily limit's; the note beside it says whose.
    let badge = match a.health {
        Health::PausedByUser => "paused",
        _ => health,
    };
    let progress_text = if a.state == RunState::Running && a.copy.to_copy > 0 {
        let eta = a.copy.eta_seconds.map_or_else(String::new, |s| {
            format!(", about {} left", crate::apply::sizing::duration(s))
        });
        format!(
            "{}/{} messages{eta}",
            thousands(a.copy.copied),
            thousands(a.copy.to_copy)
        )
    } else {
        format!("{}/{} steps", a.steps_done, a.steps_total)
    };
    let pct = (a.progress * 100.0).clamp(0.0, 100.0);
    let status = match (a.health, a.failures) {
        // Not retried on a timer (a refused password, a plan that cannot work): say what helps.
        (Health::Failing, _) if a.next_run.is_none() && a.state == RunState::Idle => {
            "waiting for a plan change or SIGHUP".into()
        }
        (Health::Failing, n) if n > 1 => format!("{n} failures in a row"),
        (Health::PausedByUser, _) => match a.paused_by.as_deref() {
            Some("plan") => "by the plan (edit it to resume)".into(),
            _ => "from the status page (POST /api/resume to resume)".into(),
        },
        (Health::Paused, _) => format!(
            "paused until {}",
            a.paused_until
                .as_deref()
                .unwrap_or("the limit's window reopens")
        ),
        (_, _) if !a.in_plan => "not in the plan".into(),
        _ => String::new(),
    };
    // Contacts, events and tasks, when the account copies them.
    let items = if a.items_migrated.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = a
            .items_migrated
            .iter()
            .map(|(kind, n)| {
                let noun = match kind.as_str() {
                    "calendars" => "events",
                    other => other,
                };
                format!("{} {noun}", thousands(*n))
            })
            .collect();
        format!("<br><span class=\"meta\">{}</span>", parts.join(" · "))
    };
    let _ = writeln!(
        h,
        "<tr class=\"account {health}\" data-account=\"{}\" data-health=\"{health}\" \
         data-progress=\"{:.3}\"><td class=\"address\">{}{}</td>\
         <td><span class=\"badge {health}\">{badge}</span> <span class=\"meta\">{}</span></td>\
         <td class=\"num\"><div class=\"bar\" role=\"progressbar\" aria-valuemin=\"0\" \
         aria-valuemax=\"100\" aria-valuenow=\"{pct:.0}\"><div style=\"width:{pct:.1}%\"></div></div> \
         {}</td><td class=\"num\">{} msgs · {}{items}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"error\">{}</td></tr>",
        escape(&a.address),
        a.progress,
        escape(&a.address),
        a.shard
            .map(|i| format!(" <span class=\"meta\">shard {i}</span>"))
            .unwrap_or_default(),
        escape(&status),
        progress_text,
        thousands(a.messages_migrated),
        human_bytes(a.bytes_migrated),
        relative(a.last_sync.as_deref(), now),
        match (&a.next_run, a.state) {
            (_, RunState::Running) => "running".to_string(),
            (_, RunState::Queued) => "queued".to_string(),
            (None, _) if a.cut_over => "cut over".to_string(),
            (None, _) => "on plan change".to_string(),
            (Some(t), _) => relative(Some(t), now),
        },
        escape(a.last_error.as_deref().unwrap_or(""))
    );
}

/// A merged view's shards: which answered, when, with which plan.
fn shard_table(h: &mut String, s: &Snapshot) {
    h.push_str(
        "<table id=\"shards\"><thead><tr><th>Shard</th><th>Watch</th><th>Status</th>\
         <th>Answered</th><th>Plan</th><th>Accounts</th><th>Error</th></tr></thead><tbody>\n",
    );
    for x in &s.shards {
        let which = x.shard.map_or_else(
            || "?".to_string(),
            |v| format!("{} of {}", v.index, v.count),
        );
        let (class, label) = if x.reachable {
            ("synced", "up")
        } else {
            ("failing", "unreachable")
        };
        let _ = writeln!(
            h,
            "<tr class=\"shard {class}\" data-url=\"{}\" data-up=\"{}\"><td>{which}</td>\
             <td><code>{}</code></td><td><span class=\"badge {class}\">{label}</span></td>\
             <td class=\"num\">{}{}</td><td><code>{}</code> · generation {}</td>\
             <td class=\"num\">{} · {} failing</td><td class=\"error\">{}</td></tr>",
            escape(&x.url),
            x.reachable,
            escape(&x.url),
            relative(x.answered_at.as_deref(), &s.now),
            x.latency_ms
                .map(|ms| format!(" ({ms} ms)"))
                .unwrap_or_default(),
            escape(x.plan_sha256.as_deref().unwrap_or("?")),
            x.plan_generation.unwrap_or(0),
            thousands(x.accounts as u64),
            x.failing,
            escape(x.error.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</tbody></table>\n");
}

/// A domain's cutover: each step and its state, and what it waits for now.
fn cutover_section(h: &mut String, c: &crate::cutover::view::CutoverView) {
    let _ = write!(
        h,
        "<section class=\"cutover\" id=\"cutover-{}\" data-domain=\"{}\"><h2>Cutover of {}</h2>\
         <p class=\"meta\">zone <code>{}</code> ({})",
        escape(&c.domain),
        escape(&c.domain),
        escape(&c.domain),
        escape(&c.zone),
        escape(&c.provider)
    );
    match c.waiting_for() {
        Some(s) => {
            let _ = write!(
                h,
                " · <span class=\"{}\" data-waiting=\"{}\">now: <code>{}</code> {}</span>",
                if c.problem() { "error" } else { "waiting" },
                escape(&s.id),
                escape(&s.id),
                escape(&s.text)
            );
        }
        None => h.push_str(" · every step done"),
    }
    h.push_str("</p>\n");
    for n in &c.notes {
        let _ = writeln!(h, "<p class=\"error\">{}</p>", escape(n));
    }
    h.push_str(
        "<table><thead><tr><th>Step</th><th>State</th><th>When, why</th></tr></thead><tbody>\n",
    );
    for st in &c.steps {
        let ack = if st.state == "drift" {
            format!(
                " (keep the zone as it is: <code>POST /api/ack/{}</code>)",
                escape(&st.id)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<tr data-step=\"{}\" data-state=\"{}\"><td><code>{}</code></td><td>{}</td>\
             <td{}>{}{ack}</td></tr>",
            escape(&st.id),
            escape(&st.state),
            escape(&st.id),
            escape(&st.state),
            if matches!(st.state.as_str(), "refused" | "drift" | "failed") {
                " class=\"error\""
            } else {
                ""
            },
            escape(&st.text)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn platform_line(h: &mut String, p: &UnitView, now: &str) {
    let _ = writeln!(
        h,
        "<p class=\"meta\" id=\"platform\">Steps of no account (domains, groups, contacts, \
         footers): {}/{} done{}{}</p>",
        p.steps_done,
        p.steps_total,
        p.next_run
            .as_deref()
            .map(|t| format!(" · next run {}", relative(Some(t), now)))
            .unwrap_or_default(),
        p.last_error
            .as_deref()
            .map(|e| format!(" · <span class=\"error\">{}</span>", escape(e)))
            .unwrap_or_default()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<img src=x onerror=\"a&b\">'"),
            "&lt;img src=x onerror=&quot;a&amp;b&quot;&gt;&#39;"
        );
    }

    #[test]
    fn hostile_text_from_servers_is_escaped_in_the_page() {
        use crate::watch::schedule::RunEnd;
        use crate::watch::status::StatusModel;
        let m = StatusModel::new("<plan>.yaml".into());
        m.unit_finished(
            Some("x@example.com"),
            &RunEnd::Failed {
                retry: crate::error::Retry::Backoff,
                after: None,
            },
            Some("server said <script>alert(1)</script> & \"quit\"".into()),
            None,
            1,
            None,
        );
        let html = render(&m.snapshot());
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quit&quot;"));
        assert!(html.contains("<code>&lt;plan&gt;.yaml</code>"));
        assert!(html.contains("<title>(1 failing) mailshift: 1 account</title>"));
        assert_eq!(
            html.matches("<script>").count(),
            1,
            "only the page's own script"
        );
    }

    #[test]
    fn a_cutover_that_needs_someone_is_in_the_title_and_the_summary() {
        use crate::cutover::view::{CutoverView, StepView};
        use crate::watch::status::StatusModel;
        let step = |id: &str, state: &str| StepView {
            id: format!("cutover/<ex>.com/{id}"),
            state: state.into(),
            at: None,
            detail: None,
            text: state.into(),
        };
        let mut snap = StatusModel::new("plan.yaml".into()).snapshot();
        snap.cutovers = vec![CutoverView {
            domain: "<ex>.com".into(),
            zone: "<ex>.com".into(),
            provider: "rfc2136".into(),
            steps: vec![step("lower-ttl", "done"), step("switch", "waiting")],
            notes: Vec::new(),
        }];
        let html = render(&snap);
        assert!(
            html.contains("<title>mailshift: "),
            "waiting needs no one: {html}"
        );
        assert!(!html.contains("needs you"), "{html}");
        snap.cutovers[0].steps[1].state = "drift".into();
        let html = render(&snap);
        assert!(
            html.contains("<title>(cutover needs you) mailshift: "),
            "{html}"
        );
        assert!(
            html.contains(
                "<a href=\"#cutover-&lt;ex&gt;.com\">cutover of &lt;ex&gt;.com</a> needs you"
            ),
            "{html}"
        );
    }

    #[test]
    fn a_merged_view_shows_its_shards_and_problems_escaped() {
        use crate::watch::aggregate::merge::{Answer, merge};
        let m = merge(
            vec![Answer {
                url: "http://<x>/api/status".into(),
                result: Err("refused <b>".into()),
                answered_at: None,
                latency_ms: None,
                last_shard: None,
            }],
            1_800_000_000,
        );
        let html = render(&m);
        assert!(html.contains("<table id=\"shards\">"), "{html}");
        assert!(html.contains("data-up=\"false\""), "{html}");
        assert!(html.contains("id=\"problems\""), "{html}");
        assert!(html.contains("http://&lt;x&gt;/api/status"), "{html}");
        assert!(!html.contains("<b>") && !html.contains("<x>"), "{html}");
        assert!(
            html.contains("<h1>mailshift: 1 shard merged</h1>"),
            "{html}"
        );
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = "2026-11-22T12:00:00Z";
        assert_eq!(relative(Some("2026-11-22T12:14:30Z"), now), "in 14m 30s");
        assert_eq!(relative(Some("2026-11-22T11:59:57Z"), now), "3s ago");
        assert_eq!(relative(Some("2026-11-20T10:00:00Z"), now), "2d 2h ago");
        assert_eq!(relative(None, now), "—");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
