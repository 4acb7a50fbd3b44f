//! A histogram of fixed buckets made of atomics: observing is a bucket
//! search over a short static slice and three relaxed atomic adds, with no
//! lock and no allocation, so it can sit on every request.
//!
//! Values are observed as integers in a unit of the caller's choice
//! (nanoseconds, hops, requests) and exposed scaled (`scale`): latency in
//! seconds as Prometheus expects, counts as they are.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Latency buckets in seconds: 50 µs to 10 s, about ×2.5 apart.
pub const LATENCY_SECONDS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Size buckets for counts of things per batch (requests per log entry,
/// reads per read-index round): 1 to 1,024, doubling.
pub const BATCH_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Buckets for small counts (ring hops): one per value up to 8.
pub const SMALL_COUNTS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];

/// A histogram; clones share the counts.
#[derive(Debug, Clone)]
pub struct Histogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Upper bounds in exposed units, ascending; +Inf is implicit.
    bounds: &'static [f64],
    /// Observed units per exposed unit (1e9 for nanoseconds as seconds).
    per_unit: f64,
    /// One count per bound, then +Inf (not cumulative).
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Observations in whole units, exposed as they are.
    pub fn counts(bounds: &'static [f64]) -> Histogram {
        Histogram::new(bounds, 1.0)
    }

    /// Durations, exposed in seconds against `bounds` (seconds).
    pub fn seconds(bounds: &'static [f64]) -> Histogram {
        Histogram::new(bounds, 1e9)
    }

    fn new(bounds: &'static [f64], per_unit: f64) -> Histogram {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        let inner = Inner { bounds, per_unit, counts, sum: AtomicU64::new(0), count: AtomicU64::new(0) };
        Histogram { inner: Arc::new(inner) }
    }

    /// Records one value, in observed units.
    pub fn observe(&self, v: u64) {
        let i = &self.inner;
        let exposed = v as f64 / i.per_unit;
        let bucket = i.bounds.partition_point(|b| *b < exposed);
        i.counts[bucket].fetch_add(1, Ordering::Relaxed);
        i.sum.fetch_add(v, Ordering::Relaxed);
        i.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a duration (a histogram made by `seconds`).
    pub fn observe_duration(&self, d: Duration) {
        self.observe(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// How many values were observed.
    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::Relaxed)
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let i = &self.inner;
        let bounds = i.bounds.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(i.counts.iter().map(|c| c.load(Ordering::Relaxed))).collect();
        // The total from the buckets, so that a scrape racing observations
        // never shows a count that disagrees with its buckets.
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = i.sum.load(Ordering::Relaxed) as f64 / i.per_unit;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    use super::*;

    fn exposed(h: &Histogram) -> String {
        let mut registry = Registry::default();
        registry.register("h", "a test histogram", h.clone());
        let mut out = String::new();
        encode(&mut out, &registry).expect("encodes");
        out
    }

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them_and_buckets_are_cumulative() {
        let h = Histogram::counts(SMALL_COUNTS);
        for v in [0, 1, 1, 2, 9] {
            h.observe(v);
        }
        let text = exposed(&h);
        assert!(text.contains("h_bucket{le=\"0.0\"} 1\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"1.0\"} 3\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"2.0\"} 4\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"8.0\"} 4\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"+Inf\"} 5\n"), "{text}");
        assert!(text.contains("h_sum 13.0\n") && text.contains("h_count 5\n"), "{text}");
    }

    #[test]
    fn durations_are_exposed_in_seconds() {
        let h = Histogram::seconds(LATENCY_SECONDS);
        h.observe_duration(Duration::from_micros(300));
        h.observe_duration(Duration::from_secs(20));
        let text = exposed(&h);
        assert!(text.contains("h_bucket{le=\"0.00025\"} 0\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"0.0005\"} 1\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"10.0\"} 1\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("h_sum 20.0003\n"), "{text}");
        assert_eq!(h.count(), 2);
    }
}
