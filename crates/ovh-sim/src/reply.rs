//! Error answers in the real API's two shapes: authentication errors carry an `errorCode`
//! and `httpCode`, business errors a `class` (`Client::BadRequest`, `Client::NotFound`…).

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ApiErr {
    pub status: u16,
    pub body: Value,
}

/// A handler's answer: the JSON to send with 200, or an error.
pub(super) type Reply = Result<Value, ApiErr>;

impl ApiErr {
    pub fn auth(status: u16, code: &str, message: &str) -> ApiErr {
        let reason = match status {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            _ => "Error",
        };
        ApiErr {
            status,
            body: json!({
                "errorCode": code,
                "httpCode": format!("{status} {reason}"),
                "message": message,
            }),
        }
    }

    pub fn business(status: u16, class: &str, message: impl Into<String>) -> ApiErr {
        ApiErr {
            status,
            body: json!({"class": class, "message": message.into()}),
        }
    }

    pub fn bad(message: impl Into<String>) -> ApiErr {
        ApiErr::business(400, "Client::BadRequest", message)
    }

    /// `The requested object (email = x) does not exist`.
    pub fn missing(param: &str, value: &str) -> ApiErr {
        ApiErr::business(
            404,
            "Client::NotFound",
            format!("The requested object ({param} = {value}) does not exist"),
        )
    }

    /// 409: the object has a task under way; the same call works once it ends.
    pub fn busy(what: &str) -> ApiErr {
        ApiErr::business(
            409,
            "Client::Conflict",
            format!("This {what} is already being processed, please try later"),
        )
    }

    pub fn address_used() -> ApiErr {
        ApiErr::bad("Email address is already used.")
    }

    /// A published operation the simulator does not model.
    pub fn unmodelled(method: &str, template: &str) -> ApiErr {
        ApiErr::business(
            501,
            "Server::NotImplemented",
            format!(
                "{method} {template} is in the published schema but the simulator does not model it"
            ),
        )
    }
}

/// A matched API call as the operation handlers see it.
pub(super) struct Req<'a> {
    pub method: &'a str,
    /// The published path template.
    pub template: &'a str,
    /// Decoded path parameters by their published names.
    pub params: &'a std::collections::HashMap<String, String>,
    pub query: &'a [(String, String)],
    /// `null` when the call had no body.
    pub body: &'a Value,
}

impl Req<'_> {
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }

    /// A `long` path parameter (the schema check has made sure it parses).
    pub fn param_id(&self, name: &str) -> u64 {
        self.param(name).parse().unwrap_or(0)
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.body.get(name).and_then(Value::as_str)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.body.get(name).and_then(Value::as_bool)
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        self.body.get(name).and_then(Value::as_i64)
    }

    /// A nullable text field: absent (`None`), set to null (`Some(None)`) or to a value.
    pub fn nullable(&self, name: &str) -> Option<Option<String>> {
        match self.body.get(name) {
            None => None,
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => Some(None),
        }
    }
}
