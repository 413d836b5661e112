//! Errors from the OVHcloud API, shaped so that a log line says which call failed, what the
//! API said, and the query id OVHcloud support asks for, without ever carrying a secret or a
//! request body (bodies hold passwords).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use mailshift_core::error::{ErrorKind, StepError};

/// An error answer from the API (any non-2xx status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Upper-case HTTP method of the failed call.
    pub method: String,
    /// Path of the call relative to the API root, with its query string.
    pub path: String,
    pub status: u16,
    /// `class` of business errors, e.g. `Client::NotFound`.
    pub class: Option<String>,
    /// `errorCode` of authentication errors, e.g. `NOT_GRANTED_CALL`.
    pub error_code: Option<String>,
    pub message: String,
    /// `X-Ovh-QueryID` response header.
    pub query_id: Option<String>,
}

impl ApiError {
    /// 409 "... is already being processed ... please try later": the object is busy with an
    /// earlier task, so the same call succeeds once that task ends.
    pub fn is_busy(&self) -> bool {
        self.status == 409
            && self
                .message
                .to_ascii_lowercase()
                .contains("already being processed")
    }

    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OVHcloud API {} {}: {}",
            self.method, self.path, self.status
        )?;
        if let Some(code) = self.error_code.as_ref().or(self.class.as_ref()) {
            write!(f, " {code}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.query_id {
            write!(f, " (query id {id})")?;
        }
        Ok(())
    }
}

/// Error body as documented: `{message, errorCode?, httpCode?, class?, details?}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub class: Option<String>,
}

#[derive(Debug)]
pub enum OvhError {
    /// The API answered with an error status.
    Api(Box<ApiError>),
    /// No usable answer: connection refused or reset, request timeout, TLS failure.
    Transport {
        method: String,
        path: String,
        reason: String,
    },
    /// A 2xx answer whose body is not what the caller expected.
    Decode {
        method: String,
        path: String,
        reason: String,
    },
    /// The client cannot be built (bad endpoint, TLS setup).
    Config(String),
    /// A task ended in `error` or `cancelled`.
    TaskFailed {
        path: String,
        status: String,
        function: Option<String>,
        comment: Option<String>,
    },
    /// The platform cannot do what the plan asks as things stand (a grantee that does not
    /// exist, a domain of another service...); the message says what to do.
    Refused(String),
    /// The platform accepted a change but did not carry it out; another run may.
    NotApplied(String),
    /// A platform limit is reached (no free account slot); the message says what to buy.
    Limit(String),
    /// A wait reached its deadline; `last` is the last state seen.
    Timeout {
        path: String,
        waited: Duration,
        last: String,
    },
}

impl OvhError {
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            OvhError::Api(e) => Some(e.as_ref()),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }

    /// What kind of failure this is, for the retry policy (`mailshift_core::error`).
    pub fn kind(&self) -> ErrorKind {
        match self {
            OvhError::Api(e) => e.kind(),
            OvhError::Transport { .. } | OvhError::Timeout { .. } => ErrorKind::Network,
            OvhError::Decode { .. } => ErrorKind::Bug,
            OvhError::Config(_) | OvhError::Refused(_) => ErrorKind::Config,
            OvhError::NotApplied(_) | OvhError::TaskFailed { .. } => ErrorKind::Refused,
            OvhError::Limit(_) => ErrorKind::Quota,
        }
    }
}

/// Authentication error codes; the API sends them with 400, 401 or 403.
const AUTH_CODES: [&str; 6] = [
    "NOT_CREDENTIAL",
    "INVALID_CREDENTIAL",
    "INVALID_SIGNATURE",
    "INVALID_KEY",
    "NOT_GRANTED_CALL",
    "NOT_ALLOWED_CALL",
];

impl ApiError {
    pub fn kind(&self) -> ErrorKind {
        let auth_code = self
            .error_code
            .as_deref()
            .is_some_and(|c| AUTH_CODES.contains(&c));
        match self.status {
            _ if auth_code => ErrorKind::Auth,
            401 | 403 => ErrorKind::Auth,
            429 => ErrorKind::Throttled,
            409 if self.is_busy() => ErrorKind::Throttled,
            // The plan asks for a value the platform does not take.
            400 => ErrorKind::Config,
            // Not Config nor Conflict: an object can vanish or be taken under a call (a
            // placeholder another unit of watch took a moment before), and the next run's
            // read-before-write sees how things stand.
            404 | 409 => ErrorKind::Refused,
            500.. => ErrorKind::Network,
            _ => ErrorKind::Refused,
        }
    }
}

impl From<OvhError> for StepError {
    fn from(e: OvhError) -> StepError {
        StepError::new(e.kind(), e.to_string())
    }
}

impl fmt::Display for OvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OvhError::Api(e) => e.fmt(f),
            OvhError::Transport {
                method,
                path,
                reason,
            } => write!(f, "OVHcloud API {method} {path}: {reason}"),
            OvhError::Decode {
                method,
                path,
                reason,
            } => write!(
                f,
                "OVHcloud API {method} {path}: unexpected answer: {reason}"
            ),
            OvhError::Config(reason) => write!(f, "OVHcloud API client: {reason}"),
            OvhError::Refused(reason) | OvhError::NotApplied(reason) | OvhError::Limit(reason) => {
                f.write_str(reason)
            }
            OvhError::TaskFailed {
                path,
                status,
                function,
                comment,
            } => {
                write!(f, "OVHcloud task {path}")?;
                if let Some(function) = function {
                    write!(f, " ({function})")?;
                }
                write!(f, " ended with status {status}")?;
                if let Some(comment) = comment {
                    write!(f, ": {comment}")?;
                }
                Ok(())
            }
            OvhError::Timeout { path, waited, last } => write!(
                f,
                "timed out after {}s waiting for OVHcloud {path} (last seen: {last})",
                waited.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for OvhError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ApiError {
        ApiError {
            method: "POST".into(),
            path: "/email/pro/svc/account/x".into(),
            status: 403,
            class: None,
            error_code: Some("NOT_GRANTED_CALL".into()),
            message: "This call has not been granted".into(),
            query_id: Some("EU.ext-1.123".into()),
        }
    }

    #[test]
    fn display_names_call_code_message_and_query_id() {
        assert_eq!(
            OvhError::Api(Box::new(sample())).to_string(),
            "OVHcloud API POST /email/pro/svc/account/x: 403 NOT_GRANTED_CALL: \
             This call has not been granted (query id EU.ext-1.123)"
        );
    }

    #[test]
    fn display_falls_back_to_class_and_omits_missing_query_id() {
        let e = ApiError {
            status: 404,
            class: Some("Client::NotFound".into()),
            error_code: None,
            message: "The requested object does not exist".into(),
            query_id: None,
            ..sample()
        };
        assert_eq!(
            e.to_string(),
            "OVHcloud API POST /email/pro/svc/account/x: 404 Client::NotFound: \
             The requested object does not exist"
        );
    }

    #[test]
    fn api_answers_are_classified_by_status_and_error_code() {
        let with = |status: u16, code: Option<&str>, message: &str| ApiError {
            status,
            error_code: code.map(str::to_string),
            message: message.into(),
            ..sample()
        };
        for (e, kind) in [
            (with(401, Some("NOT_CREDENTIAL"), "no key"), ErrorKind::Auth),
            (
                with(403, Some("NOT_GRANTED_CALL"), "not granted"),
                ErrorKind::Auth,
            ),
            (
                with(400, Some("INVALID_SIGNATURE"), "bad sig"),
                ErrorKind::Auth,
            ),
            (with(403, None, "forbidden"), ErrorKind::Auth),
            (with(429, None, "slow down"), ErrorKind::Throttled),
            (
                with(
                    409,
                    None,
                    "This pop is already being processed, please try later",
                ),
                ErrorKind::Throttled,
            ),
            (
                with(409, None, "Email address is already used."),
                ErrorKind::Refused,
            ),
            (
                with(400, None, "Invalid value for displayName"),
                ErrorKind::Config,
            ),
            (
                with(404, None, "The requested object does not exist"),
                ErrorKind::Refused,
            ),
            (with(503, None, "Service unavailable"), ErrorKind::Network),
            (with(500, None, "Internal error"), ErrorKind::Network),
        ] {
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(OvhError::Api(Box::new(e)).kind(), kind);
        }
        let transport = OvhError::Transport {
            method: "GET".into(),
            path: "/me".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(transport.kind(), ErrorKind::Network);
        assert_eq!(
            OvhError::Limit("no free account".into()).kind(),
            ErrorKind::Quota
        );
        assert_eq!(
            OvhError::Refused("not an address".into()).kind(),
            ErrorKind::Config
        );
        assert_eq!(
            OvhError::NotApplied("did not apply".into()).kind(),
            ErrorKind::Refused
        );
        let step = StepError::from(OvhError::Refused("not an address".into()));
        assert_eq!(
            (step.kind, step.message.as_str()),
            (ErrorKind::Config, "not an address")
        );
    }

    #[test]
    fn busy_is_only_409_already_being_processed() {
        let busy = ApiError {
            status: 409,
            message: "This pop is already being processed, please try later".into(),
            ..sample()
        };
        assert!(busy.is_busy());
        let other_conflict = ApiError {
            status: 409,
            message: "Email address is already used.".into(),
            ..sample()
        };
        assert!(!other_conflict.is_busy());
        assert!(
            !ApiError {
                status: 400,
                ..busy
            }
            .is_busy()
        );
    }
}
