//! The figures counted where things happen, one `Recorder` per process.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use ringkv_api::pb;
use ringkv_metrics::histogram::{self, Histogram};
use tonic::{Code, Response, Status};

use crate::service::forward::{self, Leg};

static RECORDER: LazyLock<Recorder> = LazyLock::new(Recorder::default);

/// The process's recorder.
pub fn get() -> &'static Recorder {
    &RECORDER
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcOutcome {
    rpc: &'static str,
    /// The reply's status (SUCCESS, ERROR, ERROR_NE, ERROR_WV) or the gRPC
    /// code of an error (UNAVAILABLE, ...).
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabel {
    rpc: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LegLabel {
    leg: &'static str,
}

fn latency() -> Histogram {
    Histogram::seconds(histogram::LATENCY_SECONDS)
}

/// Every figure counted on the way. Clones of its metrics share counts,
/// which is how the registry exposes them.
#[derive(Debug)]
pub struct Recorder {
    requests: Family<RpcOutcome, Counter>,
    request_seconds: Family<RpcLabel, Histogram, fn() -> Histogram>,
    hops: Histogram,
    forwards: Family<LegLabel, Counter>,
    hop_limit_refusals: Counter,
    write_entries: Counter,
    write_requests: Counter,
    requests_per_entry: Histogram,
    read_rounds: Counter,
    read_round_reads: Counter,
    reads_per_round: Histogram,
    log_appended_bytes: Counter,
    log_fsync_seconds: Histogram,
    elections: Counter,
    snapshots: Counter,
    snapshot_bytes: Gauge,
    snapshot_seconds: Histogram,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            hops: Histogram::counts(histogram::SMALL_COUNTS),
            forwards: Family::default(),
            hop_limit_refusals: Counter::default(),
            write_entries: Counter::default(),
            write_requests: Counter::default(),
            requests_per_entry: Histogram::counts(histogram::BATCH_SIZES),
            read_rounds: Counter::default(),
            read_round_reads: Counter::default(),
            reads_per_round: Histogram::counts(histogram::BATCH_SIZES),
            log_appended_bytes: Counter::default(),
            log_fsync_seconds: latency(),
            elections: Counter::default(),
            snapshots: Counter::default(),
            snapshot_bytes: Gauge::default(),
            snapshot_seconds: latency(),
        }
    }
}

impl Recorder {
    /// Registers every figure under `registry` (prefixed `ringkv_` there).
    pub fn register(&self, r: &mut Registry) {
        r.register("requests", "KeyValue requests handled by this replica, by RPC and outcome.", self.requests.clone());
        r.register(
            "request_duration_seconds",
            "Time from a KeyValue request's arrival to its answer, forwarding included.",
            self.request_seconds.clone(),
        );
        r.register("request_hops", "Forwards a request took, counted where the client called.", self.hops.clone());
        r.register(
            "forwards",
            "Requests this replica forwarded: to its leader or along the ring.",
            self.forwards.clone(),
        );
        r.register("hop_limit_refusals", "Requests refused for reaching max_hops.", self.hop_limit_refusals.clone());
        r.register("write_entries", "Log entries proposed by write batching.", self.write_entries.clone());
        r.register("write_requests", "Writes proposed in those entries.", self.write_requests.clone());
        r.register("write_requests_per_entry", "Writes per proposed log entry.", self.requests_per_entry.clone());
        r.register(
            "read_index_rounds",
            "Leadership confirmations run for linearizable reads.",
            self.read_rounds.clone(),
        );
        r.register("read_index_reads", "Reads answered by those rounds.", self.read_round_reads.clone());
        r.register("read_index_reads_per_round", "Reads answered per confirmation.", self.reads_per_round.clone());
        r.register("log_appended_bytes", "Bytes appended to the Raft log files.", self.log_appended_bytes.clone());
        r.register(
            "log_fsync_duration_seconds",
            "Time of one fdatasync of a log segment.",
            self.log_fsync_seconds.clone(),
        );
        r.register("raft_elections_started", "Elections this replica stood in.", self.elections.clone());
        r.register("snapshots", "Snapshots this replica made or installed.", self.snapshots.clone());
        r.register("snapshot_size_bytes", "Size of the newest snapshot's state.", self.snapshot_bytes.clone());
        r.register(
            "snapshot_duration_seconds",
            "Time from asking for a snapshot to openraft reporting it.",
            self.snapshot_seconds.clone(),
        );
    }

    /// One KeyValue RPC answered, `started` when it arrived. `entry`: the
    /// client called this node (its hop count is the whole path's).
    pub fn rpc<R: Outcome>(
        &self,
        rpc: &'static str,
        answer: &Result<Response<R>, Status>,
        started: Instant,
        entry: bool,
    ) {
        let outcome = match answer {
            Ok(r) => r.get_ref().outcome(),
            Err(s) => code_name(s.code()),
        };
        self.requests.get_or_create(&RpcOutcome { rpc, outcome }).inc();
        self.request_seconds.get_or_create(&RpcLabel { rpc }).observe_duration(started.elapsed());
        if entry {
            let md = match answer {
                Ok(r) => r.metadata(),
                Err(s) => s.metadata(),
            };
            self.hops.observe(u64::from(forward::hops_in(md)));
        }
    }

    pub fn forwarded(&self, leg: Leg) {
        let leg = match leg {
            Leg::ToLeader => "leader",
            Leg::ToPosition => "ring",
        };
        self.forwards.get_or_create(&LegLabel { leg }).inc();
    }

    pub fn hop_limit_refused(&self) {
        self.hop_limit_refusals.inc();
    }

    /// One log entry proposed with `requests` writes in it.
    pub fn proposed(&self, requests: usize) {
        self.write_entries.inc();
        self.write_requests.inc_by(requests as u64);
        self.requests_per_entry.observe(requests as u64);
    }

    /// One read-index round answered `reads` reads.
    pub fn read_round(&self, reads: usize) {
        self.read_rounds.inc();
        self.read_round_reads.inc_by(reads as u64);
        self.reads_per_round.observe(reads as u64);
    }

    pub fn log_appended(&self, bytes: usize) {
        self.log_appended_bytes.inc_by(bytes as u64);
    }

    pub fn log_fsynced(&self, took: Duration) {
        self.log_fsync_seconds.observe_duration(took);
    }

    pub fn election_started(&self) {
        self.elections.inc();
    }

    /// A new snapshot is in place; `took` is known for one this replica
    /// asked for.
    pub fn snapshot(&self, bytes: u64, took: Option<Duration>) {
        self.snapshots.inc();
        self.snapshot_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        if let Some(took) = took {
            self.snapshot_seconds.observe_duration(took);
        }
    }
}

/// What an answered request's reply says, as metrics label it.
pub trait Outcome {
    fn outcome(&self) -> &'static str;
}

impl Outcome for pb::Reply {
    fn outcome(&self) -> &'static str {
        reply_status(self.status)
    }
}

impl Outcome for pb::HistoryReply {
    fn outcome(&self) -> &'static str {
        reply_status(self.status)
    }
}

/// The compatibility API has no outcomes of its own: a reply is success.
macro_rules! always_ok {
    ($($reply:ty),*) => {$(
        impl Outcome for $reply {
            fn outcome(&self) -> &'static str {
                "OK"
            }
        }
    )*};
}

always_ok!(ringkv_api::project::KeyValueVersionReply, ringkv_api::project::PutReply);

/// A reply's status as the wire names it, without the enum prefix.
fn reply_status(status: i32) -> &'static str {
    match pb::Status::try_from(status) {
        Ok(s) => s.as_str_name().strip_prefix("STATUS_").unwrap_or(s.as_str_name()),
        Err(_) => "UNKNOWN_STATUS",
    }
}

/// A gRPC code as the gRPC spec spells it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_named_as_the_wire_names_them() {
        assert_eq!(reply_status(pb::Status::Success as i32), "SUCCESS");
        assert_eq!(reply_status(pb::Status::ErrorNe as i32), "ERROR_NE");
        assert_eq!(reply_status(pb::Status::ErrorWv as i32), "ERROR_WV");
        assert_eq!(reply_status(99), "UNKNOWN_STATUS");
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }

    #[test]
    fn a_request_counts_once_under_its_rpc_and_outcome() {
        let r = Recorder::default();
        let ok: Result<Response<pb::Reply>, Status> =
            Ok(Response::new(pb::Reply { status: pb::Status::ErrorNe as i32, value: None }));
        r.rpc("get", &ok, Instant::now(), true);
        r.rpc::<pb::Reply>("get", &Err(Status::unavailable("no leader")), Instant::now(), false);
        let count = |rpc, outcome| r.requests.get(&RpcOutcome { rpc, outcome }).map(|c| c.get());
        assert_eq!(count("get", "ERROR_NE"), Some(1));
        assert_eq!(count("get", "UNAVAILABLE"), Some(1));
        assert_eq!(count("set", "SUCCESS"), None);
        assert_eq!(r.request_seconds.get(&RpcLabel { rpc: "get" }).map(|h| h.count()), Some(2));
        assert_eq!(r.hops.count(), 1, "only the entry node counts hops");
    }
}
