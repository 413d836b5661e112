//! Waiting for the work OVHcloud does asynchronously.
//!
//! Three shapes exist: Exchange / Email Pro / new MX Plan write calls return a task with a
//! status; `PUT` on accounts, domains and the like returns nothing and the object itself shows
//! `state` and `taskPendingId` until it settles; legacy MX Plan tasks have no status and simply
//! vanish from a list once finished.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::client::OvhClient;
use super::error::OvhError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Todo,
    Doing,
    Done,
    Error,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "todo",
            TaskStatus::Doing => "doing",
            TaskStatus::Done => "done",
            TaskStatus::Error => "error",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

/// `email.pro.Task` / `email.exchange.Task`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: u64,
    #[serde(default)]
    pub function: Option<String>,
    pub status: TaskStatus,
    #[serde(default)]
    pub todo_date: Option<String>,
    #[serde(default)]
    pub finish_date: Option<String>,
    /// Not in the published schema, but kept when present: it explains failures.
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The task reached `done`.
    Done(Task),
    /// The task answered 404: finished tasks may be purged, so the caller must re-read the
    /// object it changed (e.g. with [`wait_object_ok`]) to learn whether the change happened.
    Gone,
}

/// Polls `task_path` (e.g. `/email/pro/{svc}/task/{id}`) until the task ends.
pub async fn wait_task(
    client: &OvhClient,
    task_path: &str,
    deadline: Instant,
    poll_interval: Duration,
    progress: impl Fn(&TaskStatus),
) -> Result<TaskOutcome, OvhError> {
    let started = Instant::now();
    loop {
        let last = match client.get::<Task>(task_path, None).await {
            Ok(task) => {
                progress(&task.status);
                match task.status {
                    TaskStatus::Done => return Ok(TaskOutcome::Done(task)),
                    TaskStatus::Error | TaskStatus::Cancelled => {
                        return Err(OvhError::TaskFailed {
                            path: task_path.to_string(),
                            status: task.status.as_str().to_string(),
                            function: task.function,
                            comment: task.comment,
                        });
                    }
                    TaskStatus::Todo | TaskStatus::Doing => {
                        format!("task status {}", task.status.as_str())
                    }
                }
            }
            Err(OvhError::Api(e)) if e.is_not_found() => return Ok(TaskOutcome::Gone),
            Err(e) => return Err(e),
        };
        pause(task_path, started, deadline, poll_interval, &last).await?;
    }
}

/// Polls an object (account, domain, disclaimer, external contact) until `state` is `ok` and
/// `taskPendingId` is 0 or null; returns the settled object.
pub async fn wait_object_ok(
    client: &OvhClient,
    object_path: &str,
    deadline: Instant,
    poll_interval: Duration,
) -> Result<serde_json::Value, OvhError> {
    let started = Instant::now();
    loop {
        let object: serde_json::Value = client.get(object_path, None).await?;
        let state = object.get("state").and_then(|s| s.as_str());
        let pending = object
            .get("taskPendingId")
            .filter(|v| !v.is_null() && v.as_u64() != Some(0));
        if state == Some("ok") && pending.is_none() {
            return Ok(object);
        }
        let last = format!(
            "state {}, taskPendingId {}",
            state.unwrap_or("missing"),
            pending.map_or_else(|| "none".to_string(), |v| v.to_string())
        );
        pause(object_path, started, deadline, poll_interval, &last).await?;
    }
}

/// Polls a legacy MX Plan task list (`/email/domain/{d}/task/account?name=…`) until it is
/// empty: those tasks carry no status and disappear once done.
pub async fn wait_legacy_tasks_empty(
    client: &OvhClient,
    list_path: &str,
    deadline: Instant,
    poll_interval: Duration,
) -> Result<(), OvhError> {
    let started = Instant::now();
    loop {
        let tasks: Vec<serde_json::Value> = client.get(list_path, None).await?;
        if tasks.is_empty() {
            return Ok(());
        }
        let last = format!("{} task(s) pending", tasks.len());
        pause(list_path, started, deadline, poll_interval, &last).await?;
    }
}

/// Sleeps until the next poll, or fails if the deadline has passed. The last poll lands on
/// the deadline itself rather than giving up one interval early.
async fn pause(
    path: &str,
    started: Instant,
    deadline: Instant,
    poll_interval: Duration,
    last: &str,
) -> Result<(), OvhError> {
    let now = Instant::now();
    if now >= deadline {
        return Err(OvhError::Timeout {
            path: path.to_string(),
            waited: now - started,
            last: last.to_string(),
        });
    }
    tokio::time::sleep(poll_interval.min(deadline - now)).await;
    Ok(())
}
