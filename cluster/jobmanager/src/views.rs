//! What the REST API answers: JSON shapes modelled on Flink's REST API
//! (hyphenated field names where Flink has them), with their OpenAPI
//! schemas.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::artifacts::ArtifactInfo;
use crate::lifecycle::{Failure, JobStatus};

/// `{"errors": [...]}`: every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, one message per problem.
    pub errors: Vec<String>,
}

/// `GET /v1/artifacts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactList {
    /// Every stored artifact, by id.
    pub artifacts: Vec<ArtifactInfo>,
}

/// `POST /v1/jobs`: the new job's id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubmitAnswer {
    /// The job id (32 hex digits).
    pub jobid: String,
}

/// One line of `GET /v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobOverview {
    /// The job id.
    pub id: String,
    /// The job's name.
    pub name: String,
    /// Its status.
    pub state: JobStatus,
}

/// `GET /v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// Every job this JobManager knows, oldest first.
    pub jobs: Vec<JobOverview>,
}

/// A vertex of a job (`GET /v1/jobs/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VertexInfo {
    /// The vertex id from the job file.
    pub id: String,
    /// `source`, `operator` or `sink`.
    pub kind: String,
    /// Its parallelism.
    pub parallelism: u32,
    /// The lowest watermark (ms) its subtasks passed on (absent until
    /// every subtask has one).
    #[serde(rename = "current-watermark", skip_serializing_if = "Option::is_none")]
    pub current_watermark: Option<i64>,
    /// Records it received, over all subtasks and attempts.
    #[serde(rename = "read-records")]
    pub records_in: u64,
    /// Records it emitted (main and side outputs), over all subtasks and attempts.
    #[serde(rename = "write-records")]
    pub records_out: u64,
    /// Share of its subtasks' time spent waiting for room in full output
    /// queues since the job started (0: never back-pressured, 1: always).
    #[serde(rename = "backpressure-ratio")]
    pub back_pressure_ratio: f64,
}

/// Counters of a job, summed over its attempts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobCounters {
    /// Records read by the sources.
    #[serde(rename = "read-records")]
    pub read_records: u64,
    /// Records written by the sinks.
    #[serde(rename = "write-records")]
    pub write_records: u64,
    /// Bad records: malformed input rows and records UDFs rejected (the
    /// ones not failing the job), dropped or dead-lettered.
    #[serde(rename = "record-errors")]
    pub record_errors: u64,
    /// Those of them written to dead-letter directories.
    #[serde(rename = "dead-lettered", default)]
    pub dead_lettered: u64,
    /// Restarts after task failures.
    pub restarts: u64,
    /// ms from the submission to the first record an operator or sink
    /// processed.
    #[serde(rename = "first-record-ms", skip_serializing_if = "Option::is_none")]
    pub first_record_ms: Option<u64>,
}

/// `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobDetails {
    /// The job id.
    pub jid: String,
    /// The job's name.
    pub name: String,
    /// Its status.
    pub state: JobStatus,
    /// Submission time, ms since the epoch.
    #[serde(rename = "start-time")]
    pub start_time: i64,
    /// When it ended, ms since the epoch (-1 while it runs, as Flink).
    #[serde(rename = "end-time")]
    pub end_time: i64,
    /// ms from submission to its end (or to now).
    pub duration: i64,
    /// The current attempt (0 for the first).
    pub attempt: u32,
    /// Why a CREATED job is not running yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// Where the savepoint went, when it stopped with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint: Option<String>,
    /// Slots it holds or needs.
    pub slots: u32,
    /// Its vertices, sources first.
    pub vertices: Vec<VertexInfo>,
    /// Its counters.
    pub metrics: JobCounters,
}

/// One checkpoint (`GET /v1/jobs/{id}/checkpoints`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckpointView {
    /// The checkpoint id.
    pub id: u64,
    /// From trigger to the last acknowledgement, ms.
    pub duration_ms: u64,
    /// Bytes written for it (only what is new in an incremental one).
    pub size_bytes: u64,
    /// Bytes of the whole state it restores.
    pub full_size_bytes: u64,
    /// The longest barrier alignment of any subtask, ms.
    pub max_alignment_ms: u64,
}

/// `GET /v1/jobs/{id}/checkpoints`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckpointsView {
    /// Completed checkpoints in this JobManager's run of the job.
    pub completed: u64,
    /// The newest of them.
    pub latest: Option<CheckpointView>,
    /// Mean duration of all of them, ms (`null` before the first).
    #[serde(default)]
    pub mean_duration_ms: Option<f64>,
    /// The longest duration of any of them, ms.
    #[serde(default)]
    pub max_duration_ms: u64,
    /// The newest `web.checkpoints.history` of them (default 10), oldest
    /// first (as Flink's checkpoint statistics keep them).
    pub history: Vec<CheckpointView>,
}

/// `GET /v1/jobs/{id}/exceptions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExceptionsView {
    /// Every failure of the job, oldest first.
    pub exceptions: Vec<Failure>,
}

/// `POST /v1/jobs/{id}/stop` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StopRequest {
    /// Where the savepoint goes (default `state.savepoints.dir`).
    #[serde(rename = "targetDirectory", default)]
    pub target_directory: Option<String>,
    /// Flink's drain (emit the maximum watermark first): bounded jobs here
    /// end with it anyway; accepted for compatibility.
    #[serde(default)]
    pub drain: bool,
}

/// `POST /v1/jobs/{id}/savepoints` body (Flink's names).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SavepointRequestBody {
    /// Where the savepoint goes (default `state.savepoints.dir`).
    #[serde(rename = "target-directory", default)]
    pub target_directory: Option<String>,
    /// Stop the job with the savepoint (as `/stop`).
    #[serde(rename = "cancel-job", default)]
    pub cancel_job: bool,
}

/// `202` answer of an asynchronous operation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TriggerAnswer {
    /// Poll `GET /v1/jobs/{id}/savepoints/{request-id}` with it.
    #[serde(rename = "request-id")]
    pub request_id: String,
}

/// `GET /v1/jobs/{id}/savepoints/{triggerid}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SavepointStatus {
    /// `{"id": "IN_PROGRESS" | "COMPLETED"}`.
    pub status: BTreeMap<String, String>,
    /// When completed: `{"location": ...}` or `{"failure-cause": ...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<BTreeMap<String, String>>,
}

/// `GET /v1/overview`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    /// TaskManagers: the JobManager's own (`local`, when it has slots) and
    /// those connected over the cluster endpoint.
    pub taskmanagers: u32,
    /// Slots of the TaskManagers connected over the cluster endpoint.
    #[serde(rename = "slots-remote")]
    pub slots_remote: u32,
    /// Slots jobs are scheduled into: the local ones, or with
    /// `taskmanager.numberOfTaskSlots=0` the remote ones.
    #[serde(rename = "slots-total")]
    pub slots_total: u32,
    /// Slots no job holds.
    #[serde(rename = "slots-available")]
    pub slots_available: u32,
    /// Jobs by status name.
    pub jobs: BTreeMap<String, u32>,
    /// Weir's version.
    #[serde(rename = "weir-version")]
    pub version: String,
}
