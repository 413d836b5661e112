//! External contacts: addresses outside the organization shown in its address book.

use serde_json::{Value, json};

use super::{Applied, Service, eq_opt, seg, str_field};
use crate::error::OvhError;

/// An external contact as the plan wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    pub address: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub hidden: bool,
}

impl Service {
    fn contact_path(&self, address: &str) -> String {
        format!("{}/externalContact/{}", self.root(), seg(address))
    }

    pub async fn external_contact(&self, address: &str) -> Result<Option<Value>, OvhError> {
        self.not_on_legacy("external contacts")?;
        self.get_opt(&self.contact_path(address)).await
    }

    fn contact_differs(c: &Value, spec: &ContactSpec) -> bool {
        !eq_opt(str_field(c, "displayName"), spec.display_name.as_deref())
            || !eq_opt(str_field(c, "firstName"), spec.first_name.as_deref())
            || !eq_opt(str_field(c, "lastName"), spec.last_name.as_deref())
            || c.get("hiddenFromGAL")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                != spec.hidden
    }

    fn contact_body(spec: &ContactSpec) -> Value {
        let mut body = json!({ "hiddenFromGAL": spec.hidden });
        for (key, value) in [
            ("displayName", &spec.display_name),
            ("firstName", &spec.first_name),
            ("lastName", &spec.last_name),
        ] {
            if let Some(v) = value {
                body[key] = json!(v);
            }
        }
        body
    }

    pub async fn ensure_external_contact(&self, spec: &ContactSpec) -> Result<Applied, OvhError> {
        let path = self.contact_path(&spec.address);
        match self.external_contact(&spec.address).await? {
            Some(c) if !Self::contact_differs(&c, spec) => Ok(Applied::unchanged(format!(
                "contact {} is up to date",
                spec.address
            ))),
            Some(_) => {
                let now = self.put_settled(&path, Self::contact_body(spec)).await?;
                if Self::contact_differs(&now, spec) {
                    return Err(OvhError::NotApplied(format!(
                        "the platform did not update the contact {}; run apply again",
                        spec.address
                    )));
                }
                Ok(Applied::changed(format!(
                    "updated contact {}",
                    spec.address
                )))
            }
            None => {
                let mut body = Self::contact_body(spec);
                body["externalEmailAddress"] = json!(spec.address);
                self.post_settled(&format!("{}/externalContact", self.root()), body, &path)
                    .await?;
                Ok(Applied::changed(format!("added contact {}", spec.address)))
            }
        }
    }

    pub async fn delete_external_contact(&self, address: &str) -> Result<Applied, OvhError> {
        if self.external_contact(address).await?.is_none() {
            return Ok(Applied::unchanged(format!(
                "contact {address} is not there"
            )));
        }
        let path = self.contact_path(address);
        self.delete_settled(&path).await?;
        Ok(Applied::changed(format!("removed contact {address}")))
    }
}
