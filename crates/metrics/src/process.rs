//! The process's own figures, read from `/proc/self` at each scrape (Linux
//! only; elsewhere they are left out): resident memory, open file
//! descriptors and threads, under the names Prometheus's other clients use.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// Registered once per registry (`Registry::register_collector`).
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What `/proc/self` says now; `None` where it could not be read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProcessFigures {
    pub resident_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
}

impl ProcessFigures {
    pub fn now() -> ProcessFigures {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64);
        ProcessFigures {
            resident_bytes: status_field(&status, "VmRSS:").map(|kib| kib * 1024),
            threads: status_field(&status, "Threads:"),
            open_fds,
        }
    }
}

/// The number after `name` in `/proc/self/status` (kB for memory lines).
fn status_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = ProcessFigures::now();
        let gauges = [
            ("process_resident_memory_bytes", "Resident memory size in bytes.", f.resident_bytes),
            ("process_open_fds", "Number of open file descriptors.", f.open_fds),
            ("process_threads", "Number of OS threads in the process.", f.threads),
        ];
        for (name, help, value) in gauges {
            let Some(v) = value.and_then(|v| i64::try_from(v).ok()) else { continue };
            let gauge = ConstGauge::new(v);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_by_name() {
        let status = "Name:\tringkv\nVmRSS:\t   12345 kB\nThreads:\t7\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(12345));
        assert_eq!(status_field(status, "Threads:"), Some(7));
        assert_eq!(status_field(status, "VmSwap:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory_threads_and_descriptors() {
        let f = ProcessFigures::now();
        assert!(f.resident_bytes.is_some_and(|b| b > 0), "{f:?}");
        assert!(f.threads.is_some_and(|t| t >= 1), "{f:?}");
        // stdin, stdout, stderr at least.
        assert!(f.open_fds.is_some_and(|n| n >= 3), "{f:?}");
    }
}
