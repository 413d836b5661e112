//! The Prometheus text exposition format (version 0.0.4), written by hand.
//!
//! Why not metrics + metrics-exporter-prometheus: the exporter brings about fifteen crates
//! (evmap, left-right, crossbeam-epoch, quanta, raw-cpuid, a second rand, sketches-ddsketch...)
//! to a project that CI builds from scratch on two cores, and a process-wide recorder that tests
//! cannot isolate. The daemon already keeps every number it exposes in its status model
//! (`watch::status`), because `/api/status` needs them too; rendering them is this file.

use std::fmt::Write;

/// Upper bounds (seconds) of API call latency buckets: a fast GET to a slow task poll.
pub const API_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Upper bounds (seconds) of step duration buckets: a no-op sync to a first copy of hours.
pub const STEP_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

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
}

impl Exposition {
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
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", format_value(value));
    }

    pub fn histogram(&mut self, name: &str, labels: Labels<'_>, h: &Histogram) {
        let mut cumulative = 0;
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            cumulative += count;
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(&format_value(*bound)));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_bucket");
        write_labels(&mut self.out, labels, Some("+Inf"));
        let _ = writeln!(self.out, " {}", h.count);
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", format_value(h.sum));
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: Labels<'_>, le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels
        .iter()
        .map(|(k, v)| (*k, *v))
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
