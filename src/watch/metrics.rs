//! What the daemon counts (`Counters`, fed by the status model's hooks) and `/metrics`, the
//! Prometheus text exposition format (version 0.0.4) of those counters and of the status
//! model's gauges, written by hand.
//!
//! Why not metrics + metrics-exporter-prometheus: the exporter brings about fifteen crates
//! (evmap, left-right, crossbeam-epoch, quanta, raw-cpuid, a second rand, sketches-ddsketch...)
//! to a project that CI builds from scratch on two cores, and a process-wide recorder that tests
//! cannot isolate. Why not prometheus-client: it writes OpenMetrics (`# EOF`, counter families
//! named without `_total`, a `.` added to help texts), so `/metrics` would change for scrapers,
//! and the per-account gauges, computed from the status at each scrape, would need a custom
//! collector. The daemon already keeps every number it exposes in its status model
//! (`watch::status`), because `/api/status` needs them too; rendering them is this file.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::time::{Duration, Instant};

use mailshift_core::shard::Shard;

use super::status::{AccountView, Snapshot};
use crate::error::ErrorKind;

/// Upper bounds (seconds) of API call latency buckets: a fast GET to a slow task poll.
pub const API_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Upper bounds (seconds) of step duration buckets: a no-op sync to a first copy of hours.
pub const STEP_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// The counters and histograms of this process (gauges are read from the status snapshot).
#[derive(Debug, Default)]
pub struct Counters {
    messages: BTreeMap<String, u64>,
    bytes: BTreeMap<String, u64>,
    /// (account, kind) → contacts, events or tasks written
    items: BTreeMap<(String, String), u64>,
    /// (resource kind, error kind) → count
    errors: BTreeMap<(String, &'static str), u64>,
    /// outcome → count
    steps: BTreeMap<&'static str, u64>,
    reloads: BTreeMap<&'static str, u64>,
    /// (api, operation) → latency
    api: BTreeMap<(String, String), Histogram>,
    /// resource kind → step duration
    step_seconds: BTreeMap<String, Histogram>,
    /// step id → (resource kind, start) of the steps running
    started: HashMap<String, (String, Instant)>,
}

impl Counters {
    pub fn copied(&mut self, account: &str, messages: u64, bytes: u64) {
        *self.messages.entry(account.to_string()).or_default() += messages;
        *self.bytes.entry(account.to_string()).or_default() += bytes;
    }

    pub fn items_copied(&mut self, account: &str, kind: &str, items: u64) {
        *self
            .items
            .entry((account.to_string(), kind.to_string()))
            .or_default() += items;
    }

    /// A plan load: `applied` or `rejected`.
    pub fn reload(&mut self, result: &'static str) {
        *self.reloads.entry(result).or_default() += 1;
    }

    pub fn error(&mut self, resource: String, kind: &'static str) {
        *self.errors.entry((resource, kind)).or_default() += 1;
    }

    pub fn step_started(&mut self, id: &str, kind: &str, at: Instant) {
        self.started.insert(id.to_string(), (kind.to_string(), at));
    }

    /// A step ended with the status `label`; `kind_of` names its resource kind when its start
    /// was not seen. A failure counts as an error of its kind (`bug` if it has none); a
    /// conflict or a blocked step as an error labelled so.
    pub fn step_finished(
        &mut self,
        id: &str,
        label: &'static str,
        error_kind: Option<ErrorKind>,
        kind_of: impl FnOnce() -> String,
    ) {
        let started = self.started.remove(id);
        let kind = started.as_ref().map_or_else(kind_of, |(k, _)| k.clone());
        *self.steps.entry(label).or_default() += 1;
        match label {
            "failed" => self.error(kind.clone(), error_kind.map_or("bug", ErrorKind::as_str)),
            "conflict" | "blocked" => self.error(kind.clone(), label),
            _ => {}
        }
        if let Some((_, at)) = started {
            self.step_seconds
                .entry(kind)
                .or_insert_with(|| Histogram::new(STEP_BUCKETS))
                .observe(at.elapsed().as_secs_f64());
        }
    }

    pub fn api_call(&mut self, api: &str, operation: &str, elapsed: Duration, ok: bool) {
        self.api
            .entry((api.to_string(), operation.to_string()))
            .or_insert_with(|| Histogram::new(API_BUCKETS))
            .observe(elapsed.as_secs_f64());
        if !ok {
            self.error(format!("api:{api}"), "api-call");
        }
    }

    /// `/metrics`: these counters, and gauges read from `snapshot`. `plan_valid`: the plan
    /// file on disk is the plan in force. Every sample carries `shard="I"`, an unsharded
    /// watch's `shard="0"` (it is shard 0 of 1): one dashboard, one set of queries, fits a
    /// single watch and the N watches of a sharded migration, summed or by shard.
    pub fn exposition(&self, snapshot: &Snapshot, plan_valid: bool, shard: Shard) -> String {
        let c = self;
        let mut e = Exposition::with_constant(vec![("shard".into(), shard.index.to_string())]);
        e.family(
            "mailshift_shards",
            "gauge",
            "How many shards the plan is split into (1: unsharded); the `shard` label says which one this process runs.",
        );
        e.sample("mailshift_shards", &[], f64::from(shard.count));
        let by_account = |f: &dyn Fn(&AccountView) -> Option<f64>| -> Vec<(String, f64)> {
            snapshot
                .accounts
                .iter()
                .filter_map(|a| f(a).map(|v| (a.address.clone(), v)))
                .collect()
        };
        e.by_label(
            "mailshift_messages_copied_total",
            "counter",
            "Messages copied to the destination by this process, per account.",
            "account",
            c.messages.iter().map(|(k, n)| (k.as_str(), *n as f64)),
        );
        e.by_label(
            "mailshift_bytes_copied_total",
            "counter",
            "Bytes of messages copied to the destination by this process, per account.",
            "account",
            c.bytes.iter().map(|(k, n)| (k.as_str(), *n as f64)),
        );
        e.family(
            "mailshift_items_copied_total",
            "counter",
            "Contacts, events and tasks written to the destination by this process, per account and kind.",
        );
        for ((account, kind), n) in &c.items {
            e.sample(
                "mailshift_items_copied_total",
                &[("account", account), ("kind", kind)],
                *n as f64,
            );
        }
        e.family(
            "mailshift_errors_total",
            "counter",
            "Failed steps and rejected plan changes, by resource kind and error kind.",
        );
        for ((resource, kind), n) in &c.errors {
            e.sample(
                "mailshift_errors_total",
                &[("resource", resource), ("kind", kind)],
                *n as f64,
            );
        }
        e.by_label(
            "mailshift_step_runs_total",
            "counter",
            "Steps run by this process, by outcome.",
            "outcome",
            c.steps.iter().map(|(k, n)| (*k, *n as f64)),
        );
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &snapshot.resources {
            *by_status.entry(r.status.as_str()).or_default() += 1;
        }
        e.by_label(
            "mailshift_steps",
            "gauge",
            "Resources of the plan and the state, by current status.",
            "status",
            by_status.iter().map(|(k, n)| (*k, *n as f64)),
        );
        let lag = by_account(&|a| a.lag_seconds.filter(|_| !a.cut_over).map(|l| l as f64));
        e.by_label(
            "mailshift_account_sync_lag_seconds",
            "gauge",
            "Seconds since the account's mail was last synced completely (accounts still synced).",
            "account",
            lag.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        let failures = by_account(&|a| Some(f64::from(a.failures)));
        e.by_label(
            "mailshift_account_consecutive_failures",
            "gauge",
            "Failed runs of the account in a row (0 after a success).",
            "account",
            failures.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        let paused = by_account(&|a| a.paused_until_unix.map(|t| t as f64));
        e.by_label(
            "mailshift_account_paused_until_seconds",
            "gauge",
            "When an account's mail copy, paused at a platform's daily limit, goes on (Unix time); only paused accounts.",
            "account",
            paused.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        let held = by_account(&|a| a.paused_by.as_ref().map(|_| 1.0));
        e.by_label(
            "mailshift_account_paused_by_user",
            "gauge",
            "1 for an account whose copies a person paused (`paused: true` in the plan, or POST /api/pause); only paused accounts.",
            "account",
            held.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        e.by_label(
            "mailshift_plan_reloads_total",
            "counter",
            "Plan loads put in force (applied) or refused as invalid (rejected).",
            "result",
            c.reloads.iter().map(|(k, n)| (*k, *n as f64)),
        );
        e.family(
            "mailshift_plan_valid",
            "gauge",
            "1 when the plan file on disk is the plan in force, 0 when its last change was refused.",
        );
        e.sample(
            "mailshift_plan_valid",
            &[],
            if plan_valid { 1.0 } else { 0.0 },
        );
        e.family(
            "mailshift_api_call_duration_seconds",
            "histogram",
            "Latency of platform API calls (the OVHcloud API), by API and operation.",
        );
        for ((api, op), h) in &c.api {
            e.histogram(
                "mailshift_api_call_duration_seconds",
                &[("api", api), ("operation", op)],
                h,
            );
        }
        e.family(
            "mailshift_step_duration_seconds",
            "histogram",
            "Time taken by steps, by resource kind (a mail step is one sync of an account).",
        );
        for (kind, h) in &c.step_seconds {
            e.histogram("mailshift_step_duration_seconds", &[("kind", kind)], h);
        }
        e.finish()
    }
}

/// A cumulative histogram, as Prometheus wants it.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative; summed when rendered).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

/// A label set: (name, value) pairs.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// Accumulates an exposition: families in the order they are declared.
#[derive(Default)]
pub struct Exposition {
    out: String,
    /// Labels every sample carries first (a watch's `shard`).
    constant: Vec<(String, String)>,
}

impl Exposition {
    /// An exposition whose every sample carries `labels` before its own.
    pub fn with_constant(labels: Vec<(String, String)>) -> Exposition {
        Exposition {
            out: String::new(),
            constant: labels,
        }
    }

    /// Declares a family; its samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// A family whose samples differ by one label: (label value, sample value) pairs.
    pub fn by_label<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, f64)>,
    ) {
        self.family(name, kind, help);
        for (value, sample) in samples {
            self.sample(name, &[(label, value)], sample);
        }
    }

    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.out.push_str(name);
        write_labels(&mut self.out, &self.constant, labels, None);
        let _ = writeln!(self.out, " {}", format_value(value));
    }

    pub fn histogram(&mut self, name: &str, labels: Labels<'_>, h: &Histogram) {
        let mut cumulative = 0;
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            cumulative += count;
            let _ = write!(self.out, "{name}_bucket");
            write_labels(
                &mut self.out,
                &self.constant,
                labels,
                Some(&format_value(*bound)),
            );
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_bucket");
        write_labels(&mut self.out, &self.constant, labels, Some("+Inf"));
        let _ = writeln!(self.out, " {}", h.count);
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, &self.constant, labels, None);
        let _ = writeln!(self.out, " {}", format_value(h.sum));
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, &self.constant, labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(
    out: &mut String,
    constant: &[(String, String)],
    labels: Labels<'_>,
    le: Option<&str>,
) {
    if constant.is_empty() && labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in constant
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(labels.iter().map(|(k, v)| (*k, *v)))
        .chain(le.map(|le| ("le", le)))
    {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
    }
    out.push('}');
}

/// Label values may hold anything a plan holds (an address, a folder name): backslash, double
/// quote and line feed are the three characters the format escapes.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_samples_and_escaped_labels() {
        let mut e = Exposition::default();
        e.family("x_total", "counter", "Things\ncounted.");
        e.sample("x_total", &[("account", "a\"b\\c\nd")], 3.0);
        e.sample("x_total", &[], 0.5);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things\\ncounted.\n# TYPE x_total counter\n\
             x_total{account=\"a\\\"b\\\\c\\nd\"} 3\nx_total 0.5\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_inf_sum_and_count() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.5, 0.7, 12.0] {
            h.observe(v);
        }
        let mut e = Exposition::default();
        e.histogram("lat_seconds", &[("api", "ovh")], &h);
        assert_eq!(
            e.finish(),
            "lat_seconds_bucket{api=\"ovh\",le=\"0.1\"} 1\n\
             lat_seconds_bucket{api=\"ovh\",le=\"1\"} 3\n\
             lat_seconds_bucket{api=\"ovh\",le=\"+Inf\"} 4\n\
             lat_seconds_sum{api=\"ovh\"} 13.25\n\
             lat_seconds_count{api=\"ovh\"} 4\n"
        );
    }
}
