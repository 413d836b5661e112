//! Waiting for the work OVHcloud does asynchronously.
//!
//! Exchange / Email Pro / new MX Plan write calls return a task with a status, polled here.
//! The other two shapes (a `PUT` whose object shows `state` and `taskPendingId` until it
//! settles, legacy MX Plan tasks that vanish once finished) are followed by the operations in
//! `ops`, which also know what the object should look like afterwards.

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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::super::testserver::{Reply, ok, start, status, time};
    use super::*;

    const POLL: Duration = Duration::from_millis(10);

    fn task(status: &str) -> Reply {
        ok(&json!({"id": 42, "function": "addAlias", "status": status, "todoDate": "2026-11-22T10:00:00+01:00"}).to_string())
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn task_todo_doing_done() {
        let server = start(vec![time(0), task("todo"), task("doing"), task("done")]).await;
        let client = server.client(1, Duration::from_secs(5));
        let seen = Mutex::new(Vec::new());
        let outcome = wait_task(&client, "/email/pro/svc/task/42", soon(), POLL, |s| {
            seen.lock().unwrap().push(*s)
        })
        .await
        .unwrap();
        let TaskOutcome::Done(done) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!((done.id, done.function.as_deref()), (42, Some("addAlias")));
        assert_eq!(
            seen.into_inner().unwrap(),
            [TaskStatus::Todo, TaskStatus::Doing, TaskStatus::Done]
        );
        assert_eq!(server.received().len(), 4);
    }

    #[tokio::test]
    async fn task_error_and_cancelled_fail_with_the_function() {
        for end in ["error", "cancelled"] {
            let server = start(vec![time(0), task("doing"), task(end)]).await;
            let client = server.client(1, Duration::from_secs(5));
            let err = wait_task(&client, "/email/pro/svc/task/42", soon(), POLL, |_| {})
                .await
                .unwrap_err();
            assert!(matches!(err, OvhError::TaskFailed { .. }), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!("OVHcloud task /email/pro/svc/task/42 (addAlias) ended with status {end}")
            );
        }
    }

    #[tokio::test]
    async fn vanished_task_is_gone_not_an_error() {
        let not_found = r#"{"class":"Client::NotFound","message":"The requested object (id = 42) does not exist"}"#;
        let server = start(vec![time(0), task("doing"), status(404, not_found)]).await;
        let client = server.client(1, Duration::from_secs(5));
        let outcome = wait_task(&client, "/email/pro/svc/task/42", soon(), POLL, |_| {})
            .await
            .unwrap();
        assert_eq!(outcome, TaskOutcome::Gone);
    }

    #[tokio::test]
    async fn task_deadline_names_the_path_and_last_status() {
        let script = std::iter::once(time(0))
            .chain(std::iter::repeat_n(task("todo"), 200))
            .collect();
        let server = start(script).await;
        let client = server.client(1, Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_millis(150);
        let err = wait_task(&client, "/email/pro/svc/task/42", deadline, POLL, |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, OvhError::Timeout { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("timed out after 0."), "{text}");
        assert!(
            text.ends_with(
                "waiting for OVHcloud /email/pro/svc/task/42 (last seen: task status todo)"
            ),
            "{text}"
        );
    }
}
