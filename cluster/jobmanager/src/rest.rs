//! The REST API under `/v1` (axum), Flink-shaped: JSON in and out, every
//! error `{"errors": ["..."]}` with a fitting 4xx/5xx status. Routes and
//! their OpenAPI description are registered together (utoipa-axum), so
//! `/v1/openapi.json` lists exactly the routes the server has.
//!
//! With `rest.auth.token` set, every request needs
//! `Authorization: Bearer <token>` (401 otherwise); without one the server
//! only listens on loopback (see [`crate::config`]).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::artifacts::ArtifactInfo;
use crate::lifecycle::{Failure, FailureKind, JobStatus};
use crate::manager::{JmError, JobManager, SubmitOptions};
use crate::taskmanagers::TaskManagerInfo;
use crate::views::{
    ArtifactList, CheckpointView, CheckpointsView, ErrorBody, ExceptionsView, JobCounters,
    JobDetails, JobList, JobOverview, Overview, SavepointRequestBody, SavepointStatus, StopRequest,
    SubmitAnswer, TriggerAnswer, VertexInfo,
};

/// An error answer.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ErrorBody {
                errors: vec![self.1],
            }),
        )
            .into_response()
    }
}

impl From<JmError> for ApiError {
    fn from(e: JmError) -> Self {
        let status = match e {
            JmError::BadRequest(_) => StatusCode::BAD_REQUEST,
            JmError::NotFound(_) => StatusCode::NOT_FOUND,
            JmError::Conflict(_) => StatusCode::CONFLICT,
            JmError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            JmError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking JobManager work (compiling a component, joining threads)
/// off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JmError> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir JobManager REST API",
        description = "Upload UDF components, deploy and manage jobs. Errors are {\"errors\": [...]}."
    ),
    components(schemas(
        ErrorBody,
        ArtifactInfo,
        ArtifactList,
        SubmitAnswer,
        JobOverview,
        JobList,
        JobDetails,
        VertexInfo,
        JobCounters,
        CheckpointView,
        CheckpointsView,
        ExceptionsView,
        Failure,
        FailureKind,
        JobStatus,
        StopRequest,
        SavepointRequestBody,
        TriggerAnswer,
        SavepointStatus,
        Overview,
        TaskManagerInfo,
        TaskManagerList
    ))
)]
struct ApiDoc;

/// The API's router and its OpenAPI document (also served at
/// `/v1/openapi.json`).
pub fn router(jm: JobManager) -> axum::Router {
    let upload_limit = usize::try_from(jm.config().upload_max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 20);
    let (router, api) = api_router().split_for_parts();
    let api_json = api.clone();
    router
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || async move { Json(api_json) }),
        )
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such route (see /v1/openapi.json)".into(),
            )
        })
        .layer(DefaultBodyLimit::max(upload_limit))
        .layer(axum::middleware::from_fn_with_state(jm.clone(), authorize))
        .with_state(jm)
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

/// Every route with its OpenAPI description, registered together.
fn api_router() -> OpenApiRouter<JobManager> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(upload_artifact, list_artifacts))
        .routes(routes!(get_artifact, delete_artifact))
        .routes(routes!(submit_job, list_jobs))
        .routes(routes!(get_job, patch_job))
        .routes(routes!(stop_job))
        .routes(routes!(trigger_savepoint))
        .routes(routes!(savepoint_status))
        .routes(routes!(job_checkpoints))
        .routes(routes!(job_exceptions))
        .routes(routes!(overview))
        .routes(routes!(list_taskmanagers))
}

async fn authorize(State(jm): State<JobManager>, request: Request, next: Next) -> Response {
    if let Some(token) = &jm.config().auth_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compare in time independent of where they differ.
        let ok = given.is_some_and(|g| {
            g.len() == token.len()
                && g.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if !ok {
            let message = if given.is_some() {
                "wrong bearer token"
            } else {
                "missing `Authorization: Bearer <token>` (this JobManager has rest.auth.token set)"
            };
            return ApiError(StatusCode::UNAUTHORIZED, message.into()).into_response();
        }
    }
    next.run(request).await
}

/// Upload a UDF component (raw body, or multipart field `component`).
#[utoipa::path(post, path = "/v1/artifacts", tag = "artifacts",
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 200, body = ArtifactInfo, description = "stored (or already there)"),
        (status = 400, body = ErrorBody, description = "not a Weir component"),
        (status = 413, body = ErrorBody, description = "larger than rest.upload.max-bytes"),
    ))]
async fn upload_artifact(
    State(jm): State<JobManager>,
    request: Request,
) -> ApiResult<Json<ArtifactInfo>> {
    let limit = usize::try_from(jm.config().upload_max_bytes).unwrap_or(usize::MAX);
    let too_large = || {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the upload is larger than rest.upload.max-bytes ({limit} bytes)"),
        )
    };
    // Refuse by the announced length before reading anything.
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let bytes = if multipart {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
        let mut found = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| ApiError(e.status(), e.body_text()))?
        {
            if field.name() == Some("component") {
                found = Some(field.bytes().await.map_err(|e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        too_large()
                    } else {
                        ApiError(e.status(), e.body_text())
                    }
                })?);
                break;
            }
        }
        found.ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                "the multipart form has no field `component`".into(),
            )
        })?
    } else {
        axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| too_large())?
    };
    if bytes.len() > limit {
        return Err(too_large());
    }
    if bytes.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the upload is empty: send the .wasm component as the body".into(),
        ));
    }
    blocking(move || jm.upload(&bytes)).await.map(Json)
}

/// Every uploaded artifact.
#[utoipa::path(get, path = "/v1/artifacts", tag = "artifacts",
    responses((status = 200, body = ArtifactList)))]
async fn list_artifacts(State(jm): State<JobManager>) -> ApiResult<Json<ArtifactList>> {
    let artifacts = blocking(move || jm.artifacts()).await?;
    Ok(Json(ArtifactList { artifacts }))
}

/// One artifact.
#[utoipa::path(get, path = "/v1/artifacts/{id}", tag = "artifacts",
    params(("id" = String, Path, description = "SHA-256 of the component, hex")),
    responses((status = 200, body = ArtifactInfo), (status = 404, body = ErrorBody)))]
async fn get_artifact(
    State(jm): State<JobManager>,
    Path(id): Path<String>,
) -> ApiResult<Json<ArtifactInfo>> {
    blocking(move || jm.artifact(&id)).await.map(Json)
}

/// Delete an artifact (refused while a job that has not ended uses it).
#[utoipa::path(delete, path = "/v1/artifacts/{id}", tag = "artifacts",
    params(("id" = String, Path, description = "SHA-256 of the component, hex")),
    responses((status = 200, description = "deleted"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn delete_artifact(
    State(jm): State<JobManager>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || jm.delete_artifact(&id)).await?;
    Ok(Json(serde_json::json!({})))
}

/// Query of `POST /v1/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SubmitQuery {
    /// Overrides the job's default parallelism.
    parallelism: Option<u32>,
    /// Start from this savepoint directory.
    #[serde(rename = "savepointPath")]
    savepoint_path: Option<String>,
    /// Configuration keys overriding the job file's, as a JSON object of
    /// strings, e.g. `{"execution.checkpointing.interval":"10 s"}`.
    configuration: Option<String>,
}

/// Submit a job file (YAML or JSON; `udf:` must name artifacts).
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", params(SubmitQuery),
    request_body(content = String, content_type = "application/yaml"),
    responses((status = 200, body = SubmitAnswer), (status = 400, body = ErrorBody)))]
async fn submit_job(
    State(jm): State<JobManager>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    body: Body,
) -> ApiResult<Json<SubmitAnswer>> {
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let bytes = axum::body::to_bytes(body, 16 << 20).await.map_err(|_| {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a job file is at most 16 MiB".into(),
        )
    })?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "the job file is not UTF-8 text".into(),
        )
    })?;
    let configuration = match query.configuration.as_deref() {
        None => Default::default(),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "query parameter `configuration` must be a JSON object of strings, like {{\"execution.checkpointing.interval\":\"10 s\"}}: {e}"
                ),
            )
        })?,
    };
    let options = SubmitOptions {
        parallelism: query.parallelism,
        savepoint_path: query.savepoint_path,
        configuration,
    };
    let jobid = blocking(move || jm.submit(&text, options)).await?;
    Ok(Json(SubmitAnswer { jobid }))
}

/// Every job.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", responses((status = 200, body = JobList)))]
async fn list_jobs(State(jm): State<JobManager>) -> Json<JobList> {
    Json(JobList { jobs: jm.jobs() })
}

/// One job's details.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = JobDetails), (status = 404, body = ErrorBody)))]
async fn get_job(
    State(jm): State<JobManager>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobDetails>> {
    jm.job(&id).map(Json).map_err(ApiError::from)
}

/// Query of `PATCH /v1/jobs/{id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PatchQuery {
    /// `cancel` (the only mode).
    mode: Option<String>,
}

/// Cancel a job (`?mode=cancel`).
#[utoipa::path(patch, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id"), PatchQuery),
    responses((status = 202, description = "cancelling"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job already ended")))]
async fn patch_job(
    State(jm): State<JobManager>,
    Path(id): Path<String>,
    query: Result<Query<PatchQuery>, QueryRejection>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    match query.mode.as_deref() {
        None | Some("cancel") => {}
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("unknown mode `{other}`: the only mode is `cancel`"),
            ));
        }
    }
    jm.cancel(&id)?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({}))))
}

/// A small JSON body (at most 1 MiB), or the default when it is empty.
async fn json_or_default<T: Default + serde::de::DeserializeOwned>(
    body: Body,
    what: &str,
) -> ApiResult<T> {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid {what}: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid {what}: {e}")))
}

/// Stop a job with a savepoint.
#[utoipa::path(post, path = "/v1/jobs/{id}/stop", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    request_body = StopRequest,
    responses((status = 202, body = TriggerAnswer), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn stop_job(
    State(jm): State<JobManager>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<TriggerAnswer>)> {
    let request: StopRequest = json_or_default(body, "stop request").await?;
    let request_id = jm.stop(&id, request.target_directory)?;
    Ok((StatusCode::ACCEPTED, Json(TriggerAnswer { request_id })))
}

/// Take a savepoint (`{"target-directory", "cancel-job"}`; with
/// `cancel-job` the job stops with it, as `/stop`).
#[utoipa::path(post, path = "/v1/jobs/{id}/savepoints", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    request_body = SavepointRequestBody,
    responses((status = 202, body = TriggerAnswer), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn trigger_savepoint(
    State(jm): State<JobManager>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<TriggerAnswer>)> {
    let request: SavepointRequestBody = json_or_default(body, "savepoint request").await?;
    let request_id = if request.cancel_job {
        jm.stop(&id, request.target_directory)?
    } else {
        jm.trigger_savepoint(&id, request.target_directory)?
    };
    Ok((StatusCode::ACCEPTED, Json(TriggerAnswer { request_id })))
}

/// The state of a savepoint or stop-with-savepoint request.
#[utoipa::path(get, path = "/v1/jobs/{id}/savepoints/{triggerid}", tag = "jobs",
    params(("id" = String, Path, description = "job id"),
        ("triggerid" = String, Path, description = "the request id")),
    responses((status = 200, body = SavepointStatus), (status = 404, body = ErrorBody)))]
async fn savepoint_status(
    State(jm): State<JobManager>,
    Path((id, trigger)): Path<(String, String)>,
) -> ApiResult<Json<SavepointStatus>> {
    jm.savepoint_status(&id, &trigger)
        .map(Json)
        .map_err(ApiError::from)
}

/// A job's checkpoints.
#[utoipa::path(get, path = "/v1/jobs/{id}/checkpoints", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = CheckpointsView), (status = 404, body = ErrorBody)))]
async fn job_checkpoints(
    State(jm): State<JobManager>,
    Path(id): Path<String>,
) -> ApiResult<Json<CheckpointsView>> {
    jm.checkpoints(&id).map(Json).map_err(ApiError::from)
}

/// A job's failures.
#[utoipa::path(get, path = "/v1/jobs/{id}/exceptions", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = ExceptionsView), (status = 404, body = ErrorBody)))]
async fn job_exceptions(
    State(jm): State<JobManager>,
    Path(id): Path<String>,
) -> ApiResult<Json<ExceptionsView>> {
    let exceptions = jm.exceptions(&id)?;
    Ok(Json(ExceptionsView { exceptions }))
}

/// Slots, jobs by state and the version.
#[utoipa::path(get, path = "/v1/overview", tag = "cluster", responses((status = 200, body = Overview)))]
async fn overview(State(jm): State<JobManager>) -> Json<Overview> {
    Json(jm.overview())
}

/// `GET /v1/taskmanagers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskManagerList {
    /// The JobManager's own slots (`local`) first, then the TaskManagers
    /// registered over the cluster endpoint, by id.
    pub taskmanagers: Vec<TaskManagerInfo>,
}

/// Every TaskManager with its slots and last heartbeat.
#[utoipa::path(get, path = "/v1/taskmanagers", tag = "cluster", responses((status = 200, body = TaskManagerList)))]
async fn list_taskmanagers(State(jm): State<JobManager>) -> Json<TaskManagerList> {
    Json(TaskManagerList {
        taskmanagers: jm.taskmanagers(),
    })
}

/// The route list as `METHOD /path` lines, from the OpenAPI document.
pub fn route_list() -> Vec<String> {
    let api = openapi();
    let mut routes: Vec<String> = api
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            let mut methods = Vec::new();
            let ops = [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
                ("PUT", &item.put),
            ];
            for (m, op) in ops {
                if op.is_some() {
                    methods.push(format!("{m} {path}"));
                }
            }
            methods
        })
        .collect();
    routes.sort();
    routes
}
