//! Latency statistics for named operations (`whep_post`, `whip_post`, `ice_dtls_connect`,
//! `first_packet`, `hub_fanout`, `rtsp_source_connect`, ...).
//!
//! Each operation keeps all-time totals (count, failures, sum, min, max, histogram buckets) and
//! the last [`MAX_SAMPLES`] individual samples for percentiles and sliding windows.
//! `record` takes a shared lock on the operation map and one per-operation mutex: after the
//! first record of an operation (and once its ring buffer is full) it does not allocate, so hot
//! paths such as `hub_fanout` can record a sampled subset of packets.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Samples retained per operation for percentiles and windows.
pub const MAX_SAMPLES: usize = 10_000;

/// Histogram bucket upper bounds in seconds, with their Prometheus `le` spelling (written out
/// rather than formatted so the label values stay stable, e.g. `1` rather than `1.0`).
const BUCKETS: [(f64, &str); 14] = [
    (0.0005, "0.0005"),
    (0.001, "0.001"),
    (0.0025, "0.0025"),
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (1.0, "1"),
    (2.5, "2.5"),
    (5.0, "5"),
    (10.0, "10"),
];

const DURATION_METRIC: &str = "hubcast_operation_duration_seconds";
const FAILURES_METRIC: &str = "hubcast_operation_failures_total";

/// Latency statistics for many named operations; share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct Latencies {
    ops: RwLock<HashMap<String, Arc<Mutex<OpStats>>>>,
}

/// A summary of one operation, over all time or over a sliding window.
///
/// `count == 0` means no sample fell in the window: every other number is then 0.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub operation: String,
    pub window_seconds: Option<f64>,
    pub count: u64,
    pub success_rate: f64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    duration: Duration,
    ok: bool,
}

#[derive(Debug)]
struct OpStats {
    count: u64,
    failures: u64,
    sum: Duration,
    min: Duration,
    max: Duration,
    /// Non-cumulative counts per bucket; samples above the last bound only show in `count`.
    buckets: [u64; BUCKETS.len()],
    samples: VecDeque<Sample>,
}

impl OpStats {
    fn new() -> Self {
        OpStats {
            count: 0,
            failures: 0,
            sum: Duration::ZERO,
            min: Duration::MAX,
            max: Duration::ZERO,
            buckets: [0; BUCKETS.len()],
            // Allocated once up front so that recording never reallocates.
            samples: VecDeque::with_capacity(MAX_SAMPLES),
        }
    }

    fn record(&mut self, sample: Sample) {
        self.count += 1;
        if !sample.ok {
            self.failures += 1;
        }
        self.sum = self.sum.saturating_add(sample.duration);
        self.min = self.min.min(sample.duration);
        self.max = self.max.max(sample.duration);
        if let Some(i) = bucket_index(sample.duration) {
            self.buckets[i] += 1;
        }
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    fn summary(&self, operation: &str, window: Option<Duration>, now: Instant) -> Summary {
        match window {
            None => self.all_time_summary(operation),
            Some(w) => self.window_summary(operation, w, now),
        }
    }

    /// Totals come from the running counters; percentiles from the retained samples, which is
    /// the best available once more than `MAX_SAMPLES` were recorded.
    fn all_time_summary(&self, operation: &str) -> Summary {
        let mut durations: Vec<Duration> = self.samples.iter().map(|s| s.duration).collect();
        durations.sort_unstable();
        let mut summary = Summary::empty(operation, None);
        if self.count == 0 {
            return summary;
        }
        summary.count = self.count;
        summary.success_rate = (self.count - self.failures) as f64 / self.count as f64;
        summary.avg_ms = ms(self.sum) / self.count as f64;
        summary.min_ms = ms(self.min);
        summary.max_ms = ms(self.max);
        set_percentiles(&mut summary, &durations);
        summary
    }

    fn window_summary(&self, operation: &str, window: Duration, now: Instant) -> Summary {
        // A window reaching back before the clock's origin covers everything retained.
        let since = now.checked_sub(window);
        let in_window = self
            .samples
            .iter()
            .filter(|s| since.is_none_or(|t| s.at >= t) && s.at <= now);
        let mut durations = Vec::new();
        let mut ok = 0u64;
        for s in in_window {
            durations.push(s.duration);
            ok += u64::from(s.ok);
        }
        durations.sort_unstable();
        let mut summary = Summary::empty(operation, Some(window));
        let (Some(&min), Some(&max)) = (durations.first(), durations.last()) else {
            return summary;
        };
        let n = durations.len() as u64;
        let sum: Duration = durations.iter().sum();
        summary.count = n;
        summary.success_rate = ok as f64 / n as f64;
        summary.avg_ms = ms(sum) / n as f64;
        summary.min_ms = ms(min);
        summary.max_ms = ms(max);
        set_percentiles(&mut summary, &durations);
        summary
    }
}

impl Latencies {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one operation's duration and whether it succeeded.
    pub fn record(&self, op: &str, d: Duration, ok: bool) {
        self.record_at(op, Instant::now(), d, ok);
    }

    /// [`record`](Self::record) with an explicit completion time, for tests and replays.
    pub fn record_at(&self, op: &str, at: Instant, d: Duration, ok: bool) {
        let stats = self.op(op);
        lock(&stats).record(Sample {
            at,
            duration: d,
            ok,
        });
    }

    /// Summary over all time (`window` None) or over the samples recorded in the last `window`.
    /// None if `op` was never recorded.
    pub fn summary(&self, op: &str, window: Option<Duration>) -> Option<Summary> {
        self.summary_at(op, window, Instant::now())
    }

    /// [`summary`](Self::summary) with the window ending at `now` instead of the current time.
    pub fn summary_at(&self, op: &str, window: Option<Duration>, now: Instant) -> Option<Summary> {
        let stats = self.existing(op)?;
        let summary = lock(&stats).summary(op, window, now);
        Some(summary)
    }

    /// Recorded operation names, sorted.
    pub fn operations(&self) -> Vec<String> {
        let ops = self.ops.read().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = ops.keys().cloned().collect();
        names.sort();
        names
    }

    /// Appends the Prometheus text exposition of every operation to `out`.
    pub fn write_prometheus(&self, out: &mut String) {
        // Snapshot under the locks, then format without holding them.
        let snapshot: Vec<(String, Totals)> = self
            .operations()
            .into_iter()
            .filter_map(|op| {
                let stats = self.existing(&op)?;
                let totals = Totals::of(&lock(&stats));
                Some((op, totals))
            })
            .collect();
        if snapshot.is_empty() {
            return;
        }
        write_histograms(out, &snapshot);
        write_failures(out, &snapshot);
    }

    fn existing(&self, op: &str) -> Option<Arc<Mutex<OpStats>>> {
        let ops = self.ops.read().unwrap_or_else(PoisonError::into_inner);
        ops.get(op).cloned()
    }

    fn op(&self, op: &str) -> Arc<Mutex<OpStats>> {
        if let Some(stats) = self.existing(op) {
            return stats;
        }
        let mut ops = self.ops.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            ops.entry(op.to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(OpStats::new()))),
        )
    }
}

/// The all-time numbers the Prometheus exposition needs.
struct Totals {
    count: u64,
    failures: u64,
    sum: Duration,
    buckets: [u64; BUCKETS.len()],
}

impl Totals {
    fn of(stats: &OpStats) -> Self {
        Totals {
            count: stats.count,
            failures: stats.failures,
            sum: stats.sum,
            buckets: stats.buckets,
        }
    }
}

fn write_histograms(out: &mut String, snapshot: &[(String, Totals)]) {
    let _ = writeln!(
        out,
        "# HELP {DURATION_METRIC} Duration of hubcast operations (success and failure)."
    );
    let _ = writeln!(out, "# TYPE {DURATION_METRIC} histogram");
    for (op, t) in snapshot {
        let label = escape_label(op);
        let mut cumulative = 0u64;
        for ((_, le), n) in BUCKETS.iter().zip(t.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{DURATION_METRIC}_bucket{{operation=\"{label}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{DURATION_METRIC}_bucket{{operation=\"{label}\",le=\"+Inf\"}} {}",
            t.count
        );
        let _ = writeln!(
            out,
            "{DURATION_METRIC}_sum{{operation=\"{label}\"}} {}",
            t.sum.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "{DURATION_METRIC}_count{{operation=\"{label}\"}} {}",
            t.count
        );
    }
}

fn write_failures(out: &mut String, snapshot: &[(String, Totals)]) {
    let _ = writeln!(
        out,
        "# HELP {FAILURES_METRIC} Operations that finished with an error."
    );
    let _ = writeln!(out, "# TYPE {FAILURES_METRIC} counter");
    for (op, t) in snapshot {
        let _ = writeln!(
            out,
            "{FAILURES_METRIC}{{operation=\"{}\"}} {}",
            escape_label(op),
            t.failures
        );
    }
}

/// Escapes a label value as the exposition format requires.
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

/// The first bucket whose (inclusive) upper bound holds `d`; None above the last bound.
fn bucket_index(d: Duration) -> Option<usize> {
    let secs = d.as_secs_f64();
    BUCKETS.iter().position(|(le, _)| secs <= *le)
}

fn set_percentiles(summary: &mut Summary, sorted: &[Duration]) {
    summary.p50_ms = percentile_ms(sorted, 50.0);
    summary.p95_ms = percentile_ms(sorted, 95.0);
    summary.p99_ms = percentile_ms(sorted, 99.0);
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at least `p`% of the
/// samples at or below it. 0 for no samples.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    ms(sorted[index])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Statistics are plain counters: a panic elsewhere while holding the lock leaves them usable.
fn lock(stats: &Mutex<OpStats>) -> MutexGuard<'_, OpStats> {
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_d(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn assert_ordered(s: &Summary) {
        assert!(s.min_ms <= s.p50_ms, "{s:?}");
        assert!(s.p50_ms <= s.p95_ms, "{s:?}");
        assert!(s.p95_ms <= s.p99_ms, "{s:?}");
        assert!(s.p99_ms <= s.max_ms, "{s:?}");
    }

    #[test]
    fn unknown_operation_has_no_summary() {
        let l = Latencies::new();
        assert!(l.summary("whep_post", None).is_none());
        assert!(l.operations().is_empty());
        let mut out = String::new();
        l.write_prometheus(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn summary_math_over_one_to_hundred() {
        let l = Latencies::new();
        for i in 1..=100 {
            // Every 10th fails.
            l.record("whep_post", ms_d(i), i % 10 != 0);
        }
        let s = l.summary("whep_post", None).expect("recorded");
        assert_eq!(s.operation, "whep_post");
        assert_eq!(s.window_seconds, None);
        assert_eq!(s.count, 100);
        assert!((s.success_rate - 0.9).abs() < 1e-9);
        assert!((s.avg_ms - 50.5).abs() < 1e-9);
        assert!((s.min_ms - 1.0).abs() < 1e-9);
        assert!((s.max_ms - 100.0).abs() < 1e-9);
        assert!((s.p50_ms - 50.0).abs() < 1e-9);
        assert!((s.p95_ms - 95.0).abs() < 1e-9);
        assert!((s.p99_ms - 99.0).abs() < 1e-9);
        assert_ordered(&s);
    }

    #[test]
    fn nearest_rank_percentiles_on_small_sets() {
        let one = [ms_d(7)];
        assert_eq!(percentile_ms(&one, 50.0), 7.0);
        assert_eq!(percentile_ms(&one, 99.0), 7.0);
        let four = [ms_d(1), ms_d(2), ms_d(3), ms_d(4)];
        assert_eq!(percentile_ms(&four, 50.0), 2.0);
        assert_eq!(percentile_ms(&four, 95.0), 4.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }

    #[test]
    fn window_excludes_older_records() {
        let l = Latencies::new();
        let t0 = Instant::now();
        // Old, slow and failing.
        for _ in 0..10 {
            l.record_at("ice_dtls_connect", t0, ms_d(900), false);
        }
        let t1 = t0 + Duration::from_secs(100);
        for i in 1..=4 {
            l.record_at("ice_dtls_connect", t1, ms_d(i * 10), true);
        }
        let now = t1 + Duration::from_secs(5);

        let w = l
            .summary_at("ice_dtls_connect", Some(Duration::from_secs(60)), now)
            .expect("recorded");
        assert_eq!(w.window_seconds, Some(60.0));
        assert_eq!(w.count, 4);
        assert_eq!(w.success_rate, 1.0);
        assert!((w.avg_ms - 25.0).abs() < 1e-9);
        assert!((w.min_ms - 10.0).abs() < 1e-9);
        assert!((w.max_ms - 40.0).abs() < 1e-9);
        assert_ordered(&w);

        let all = l
            .summary_at("ice_dtls_connect", None, now)
            .expect("recorded");
        assert_eq!(all.count, 14);
        assert!((all.max_ms - 900.0).abs() < 1e-9);
        assert!((all.success_rate - 4.0 / 14.0).abs() < 1e-9);
        assert_ordered(&all);
    }

    #[test]
    fn empty_window_reports_zero_count() {
        let l = Latencies::new();
        let t0 = Instant::now();
        l.record_at("first_packet", t0, ms_d(5), true);
        let s = l
            .summary_at(
                "first_packet",
                Some(Duration::from_secs(1)),
                t0 + Duration::from_secs(10),
            )
            .expect("recorded");
        assert_eq!(s.count, 0);
        assert_eq!(s.max_ms, 0.0);
        assert_ordered(&s);
    }

    #[test]
    fn retains_last_samples_but_counts_all_time() {
        let l = Latencies::new();
        // The first 5000 are the slowest ones and fall out of the ring buffer.
        for _ in 0..5_000 {
            l.record("hub_fanout", ms_d(500), true);
        }
        for i in 0..MAX_SAMPLES as u64 {
            l.record("hub_fanout", Duration::from_micros(10 + i % 100), true);
        }
        let s = l.summary("hub_fanout", None).expect("recorded");
        assert_eq!(s.count, 5_000 + MAX_SAMPLES as u64);
        assert!((s.max_ms - 500.0).abs() < 1e-9, "all-time max survives");
        assert!(
            s.p99_ms < 1.0,
            "percentiles come from retained samples: {s:?}"
        );
        assert_ordered(&s);
        let stats = l.op("hub_fanout");
        assert_eq!(lock(&stats).samples.len(), MAX_SAMPLES);
    }

    #[test]
    fn percentiles_ordered_for_skewed_data() {
        let l = Latencies::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3_000 {
            // xorshift: deterministic, heavy-tailed after cubing.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x % 1000) as f64 / 1000.0;
            let micros = (u * u * u * 2_000_000.0) as u64;
            l.record(
                "rtsp_source_connect",
                Duration::from_micros(micros),
                !x.is_multiple_of(3),
            );
        }
        let all = l.summary("rtsp_source_connect", None).expect("recorded");
        assert_ordered(&all);
        let w = l
            .summary("rtsp_source_connect", Some(Duration::from_secs(3600)))
            .expect("recorded");
        assert_eq!(w.count, 3_000);
        assert_ordered(&w);
    }

    #[test]
    fn operations_are_sorted_and_shared_across_threads() {
        let l = Arc::new(Latencies::new());
        let handles: Vec<_> = ["whip_post", "whep_post", "first_packet"]
            .into_iter()
            .map(|op| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    for i in 0..1_000 {
                        l.record(op, Duration::from_micros(i), true);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("recording thread");
        }
        assert_eq!(
            l.operations(),
            vec!["first_packet", "whep_post", "whip_post"]
        );
        for op in l.operations() {
            assert_eq!(l.summary(&op, None).map(|s| s.count), Some(1_000));
        }
    }

    #[test]
    fn summary_serializes_to_json() {
        let l = Latencies::new();
        l.record("whep_post", ms_d(3), true);
        let s = l.summary("whep_post", Some(Duration::from_secs(60)));
        let json = serde_json::to_value(s).expect("serializable");
        assert_eq!(json["operation"], "whep_post");
        assert_eq!(json["count"], 1);
        assert_eq!(json["window_seconds"], 60.0);
    }

    /// One parsed sample line: metric name, labels, value.
    type Line = (String, Vec<(String, String)>, f64);

    fn parse_line(line: &str) -> Line {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect("numeric value"),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, ""),
            Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        let labels = labels
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("label k=v");
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .expect("quoted label value");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        (name.to_owned(), labels, value)
    }

    fn label<'a>(labels: &'a [(String, String)], k: &str) -> Option<&'a str> {
        labels
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn prometheus_text_parses_back() {
        let l = Latencies::new();
        for d in [0.0001, 0.0005, 0.003, 0.04, 0.3, 2.0, 7.0, 30.0] {
            l.record("whep_post", Duration::from_secs_f64(d), d < 5.0);
        }
        l.record("hub_fanout", Duration::from_micros(50), true);
        let mut out = String::new();
        l.write_prometheus(&mut out);

        let comments: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(
            comments
                .iter()
                .filter(|c| c.starts_with(&format!("# TYPE {DURATION_METRIC} histogram")))
                .count(),
            1
        );
        assert_eq!(
            comments
                .iter()
                .filter(|c| c.starts_with(&format!("# TYPE {FAILURES_METRIC} counter")))
                .count(),
            1
        );
        assert_eq!(
            comments.iter().filter(|c| c.starts_with("# HELP")).count(),
            2
        );

        let lines: Vec<Line> = out
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(parse_line)
            .collect();

        for op in ["whep_post", "hub_fanout"] {
            let buckets: Vec<&Line> = lines
                .iter()
                .filter(|(n, ls, _)| {
                    n == &format!("{DURATION_METRIC}_bucket") && label(ls, "operation") == Some(op)
                })
                .collect();
            assert_eq!(buckets.len(), BUCKETS.len() + 1);
            assert!(
                buckets.windows(2).all(|w| w[0].2 <= w[1].2),
                "cumulative buckets"
            );
            let last = buckets.last().expect("buckets");
            assert_eq!(label(&last.1, "le"), Some("+Inf"));
            let count = lines
                .iter()
                .find(|(n, ls, _)| {
                    n == &format!("{DURATION_METRIC}_count") && label(ls, "operation") == Some(op)
                })
                .expect("_count line");
            assert_eq!(last.2, count.2);
            assert!(lines
                .iter()
                .any(|(n, ls, _)| n == &format!("{DURATION_METRIC}_sum")
                    && label(ls, "operation") == Some(op)));
        }

        let get = |name: &str, op: &str, le: Option<&str>| -> f64 {
            lines
                .iter()
                .find(|(n, ls, _)| {
                    n == name && label(ls, "operation") == Some(op) && label(ls, "le") == le
                })
                .map(|l| l.2)
                .unwrap_or_else(|| panic!("{name} {op} {le:?} missing"))
        };
        let bucket = format!("{DURATION_METRIC}_bucket");
        // le is inclusive: 0.0005 lands in the first bucket.
        assert_eq!(get(&bucket, "whep_post", Some("0.0005")), 2.0);
        assert_eq!(get(&bucket, "whep_post", Some("0.005")), 3.0);
        assert_eq!(get(&bucket, "whep_post", Some("1")), 5.0);
        // 30 s is above every bound: only +Inf holds it.
        assert_eq!(get(&bucket, "whep_post", Some("10")), 7.0);
        assert_eq!(get(&bucket, "whep_post", Some("+Inf")), 8.0);
        let sum = get(&format!("{DURATION_METRIC}_sum"), "whep_post", None);
        assert!((sum - 39.3436).abs() < 1e-6, "sum {sum}");
        assert_eq!(get(FAILURES_METRIC, "whep_post", None), 2.0);
        assert_eq!(get(FAILURES_METRIC, "hub_fanout", None), 0.0);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
    }
}

impl Summary {
    /// An operation with nothing recorded (in the window).
    pub fn empty(op: &str, window: Option<Duration>) -> Summary {
        Summary {
            operation: op.to_string(),
            window_seconds: window.map(|w| w.as_secs_f64()),
            count: 0,
            success_rate: 0.0,
            avg_ms: 0.0,
            p50_ms: 0.0,
            p95_ms: 0.0,
            p99_ms: 0.0,
            min_ms: 0.0,
            max_ms: 0.0,
        }
    }
}

/// Server-wide counters and latency statistics, shared by every component.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub latencies: Latencies,
    /// WebRTC sessions whose ICE+DTLS did not complete.
    pub handshake_failures: std::sync::atomic::AtomicU64,
    /// Sessions ended by a panic in their own code (the server went on).
    pub session_panics: std::sync::atomic::AtomicU64,
    /// UDP receive errors on the RTSP RTP/RTCP sockets.
    pub udp_errors: std::sync::atomic::AtomicU64,
    /// How late the runtime woke a 100 ms timer, last measured (ms).
    pub runtime_lag_ms: std::sync::atomic::AtomicU64,
}

/// Names of the measured operations.
pub mod op {
    pub const WHEP_POST: &str = "whep_post";
    pub const WHIP_POST: &str = "whip_post";
    pub const ICE_DTLS_CONNECT: &str = "ice_dtls_connect";
    pub const FIRST_PACKET: &str = "first_packet";
    pub const HUB_FANOUT: &str = "hub_fanout";
    pub const RTSP_SOURCE_CONNECT: &str = "rtsp_source_connect";
    pub const ALL: [&str; 6] = [
        WHEP_POST,
        WHIP_POST,
        ICE_DTLS_CONNECT,
        FIRST_PACKET,
        HUB_FANOUT,
        RTSP_SOURCE_CONNECT,
    ];
}
