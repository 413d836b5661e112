//! The calls every resource family is made of: reads (404 as `None`), counted writes, writes
//! answered by a task (waited for), and polling until an object settles, moves or goes.

use std::sync::atomic::Ordering;

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use super::{Service, seg, str_field};
use crate::client::Auth;
use crate::error::OvhError;
use crate::task::{Task, TaskOutcome, wait_task};

pub(super) fn is_settled(v: &Value) -> bool {
    let state_ok = v
        .get("state")
        .and_then(Value::as_str)
        .is_none_or(|s| s == "ok");
    let pending = v
        .get("taskPendingId")
        .is_some_and(|p| !p.is_null() && p.as_u64() != Some(0));
    state_ok && !pending
}

impl Service {
    pub(super) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, OvhError> {
        self.client.get(path, None).await
    }

    /// GET that maps 404 to `None`.
    pub(super) async fn get_opt(&self, path: &str) -> Result<Option<Value>, OvhError> {
        match self.client.get::<Value>(path, None).await {
            Ok(v) => Ok(Some(v)),
            Err(OvhError::Api(e)) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn write<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, OvhError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.client
            .call(method, path, body.as_ref(), Auth::Signed)
            .await
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timing.deadline
    }

    /// A write answered with a task; waits for it to finish.
    pub(super) async fn task_write(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(), OvhError> {
        let task: Task = self.write(method, path, body).await?;
        let task_path = format!("{}/task/{}", self.root(), task.id);
        match wait_task(
            &self.client,
            &task_path,
            self.deadline(),
            self.timing.poll,
            |_| {},
        )
        .await?
        {
            // A purged task says nothing: callers re-read the object they changed.
            TaskOutcome::Done(_) | TaskOutcome::Gone => Ok(()),
        }
    }

    /// Polls an object until it exists and has settled (`state` ok, no pending task).
    pub(super) async fn settled(&self, path: &str) -> Result<Value, OvhError> {
        let started = Instant::now();
        let deadline = self.deadline();
        loop {
            let last = match self.get_opt(path).await? {
                Some(v) if is_settled(&v) => return Ok(v),
                Some(v) => format!(
                    "state {}, taskPendingId {}",
                    str_field(&v, "state").unwrap_or("missing"),
                    v.get("taskPendingId").unwrap_or(&Value::Null)
                ),
                None => "not found yet".to_string(),
            };
            if Instant::now() >= deadline {
                return Err(OvhError::Timeout {
                    path: path.to_string(),
                    waited: started.elapsed(),
                    last,
                });
            }
            tokio::time::sleep(self.timing.poll).await;
        }
    }

    /// Like [`Service::settled`], but an object that disappears meanwhile (a pending rename
    /// finishing) ends the wait with `None`.
    pub(super) async fn settled_or_gone(&self, path: &str) -> Result<Option<Value>, OvhError> {
        let started = Instant::now();
        let deadline = self.deadline();
        loop {
            let v = match self.get_opt(path).await? {
                None => return Ok(None),
                Some(v) if is_settled(&v) => return Ok(Some(v)),
                Some(v) => v,
            };
            if Instant::now() >= deadline {
                return Err(OvhError::Timeout {
                    path: path.to_string(),
                    waited: started.elapsed(),
                    last: format!("state {}", str_field(&v, "state").unwrap_or("missing")),
                });
            }
            tokio::time::sleep(self.timing.poll).await;
        }
    }

    /// Polls until an object is gone (404).
    pub(super) async fn gone(&self, path: &str) -> Result<(), OvhError> {
        let started = Instant::now();
        let deadline = self.deadline();
        while self.get_opt(path).await?.is_some() {
            if Instant::now() >= deadline {
                return Err(OvhError::Timeout {
                    path: path.to_string(),
                    waited: started.elapsed(),
                    last: "still present".to_string(),
                });
            }
            tokio::time::sleep(self.timing.poll).await;
        }
        Ok(())
    }

    /// After a PUT that changes an account's address: waits until the new address has settled.
    /// If the old one settles again while the new one is still missing, the platform's task
    /// failed and nothing changed.
    pub(super) async fn moved(&self, old: &str, new: &str, what: &str) -> Result<Value, OvhError> {
        let started = Instant::now();
        let deadline = self.deadline();
        loop {
            if let Some(v) = self.get_opt(new).await?
                && is_settled(&v)
            {
                return Ok(v);
            }
            if started.elapsed() >= self.timing.poll
                && let Some(v) = self.get_opt(old).await?
                && is_settled(&v)
                && self.get_opt(new).await?.is_none()
            {
                return Err(OvhError::NotApplied(format!(
                    "the platform did not apply {what} (its task ended without the change); run apply again"
                )));
            }
            if Instant::now() >= deadline {
                return Err(OvhError::Timeout {
                    path: new.to_string(),
                    waited: started.elapsed(),
                    last: "not found yet".to_string(),
                });
            }
            tokio::time::sleep(self.timing.poll).await;
        }
    }

    /// Changes a settled object with a PUT and waits until it has settled again; returns the
    /// object as it then reads (the caller checks that the change took).
    pub(super) async fn put_settled(&self, path: &str, body: Value) -> Result<Value, OvhError> {
        self.settled(path).await?;
        self.write::<Value>(Method::PUT, path, Some(body)).await?;
        self.settled(path).await
    }

    /// Creates an object with a POST answered by a task, then waits until the object at `path`
    /// has settled. A failed POST that landed anyway (a retry after a lost answer) counts as
    /// done, hence the read before giving up.
    pub(super) async fn post_settled(
        &self,
        post: &str,
        body: Value,
        path: &str,
    ) -> Result<Value, OvhError> {
        let posted = self.task_write(Method::POST, post, Some(body)).await;
        if let Err(e) = posted
            && self.get_opt(path).await?.is_none()
        {
            return Err(e);
        }
        self.settled(path).await
    }

    /// Deletes a settled object with a DELETE answered by a task and waits until it is gone.
    pub(super) async fn delete_settled(&self, path: &str) -> Result<(), OvhError> {
        self.settled(path).await?;
        self.task_write(Method::DELETE, path, None).await?;
        self.gone(path).await
    }

    /// A legacy MX Plan write: its answer is a task with no status, which vanishes once
    /// finished (done or failed alike, so callers check the effect themselves).
    pub(super) async fn legacy_write(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        kind: &str,
    ) -> Result<(), OvhError> {
        let task: Value = self.write(method, path, body).await?;
        let id = match task.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Ok(()),
        };
        self.gone(&format!("{}/task/{kind}/{}", self.root(), seg(&id)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settled_means_state_ok_and_no_pending_task() {
        assert!(is_settled(&json!({"state": "ok", "taskPendingId": 0})));
        assert!(is_settled(&json!({"state": "ok", "taskPendingId": null})));
        assert!(is_settled(&json!({"content": "x"})));
        assert!(!is_settled(
            &json!({"state": "modifying", "taskPendingId": 0})
        ));
        assert!(!is_settled(&json!({"state": "ok", "taskPendingId": 12})));
    }
}
