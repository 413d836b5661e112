//! Asking OVHcloud for a consumer key limited to what a plan needs.
//!
//! A consumer key carries access rules (method + path, `*` as wildcard). mailshift asks only
//! for the services its plan names, never for `/*`, so a leaked key cannot touch anything else
//! of the OVHcloud account.

use std::collections::BTreeSet;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{Auth, OvhClient};
use super::error::OvhError;
use super::ops::Family;
use mailshift_core::plan::model::Plan;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccessRule {
    pub method: String,
    pub path: String,
}

/// The answer to `POST /auth/credential`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRequest {
    pub consumer_key: String,
    pub state: String,
    pub validation_url: String,
}

/// The access rules the platforms using `provider` need: read and write on each service's
/// own subtree, nothing else.
pub fn access_rules(plan: &Plan, provider: &str) -> Vec<AccessRule> {
    let mut rules = BTreeSet::new();
    for (name, p) in &plan.platforms {
        if p.provider.as_deref() != Some(provider) {
            continue;
        }
        // The validator makes sure OVHcloud platforms name their service.
        let Ok(family) = Family::of(name, p) else {
            continue;
        };
        let root = family.root();
        rules.insert(AccessRule {
            method: "GET".into(),
            path: root.clone(),
        });
        for method in ["GET", "POST", "PUT", "DELETE"] {
            rules.insert(AccessRule {
                method: method.into(),
                path: format!("{root}/*"),
            });
        }
    }
    rules.into_iter().collect()
}

/// Asks for a consumer key with these rules; a person then opens the validation URL, logs in
/// and grants it.
pub async fn request(
    client: &OvhClient,
    rules: &[AccessRule],
    redirection: Option<&str>,
) -> Result<CredentialRequest, OvhError> {
    let mut body = json!({ "accessRules": rules });
    if let Some(r) = redirection {
        body["redirection"] = json!(r);
    }
    client
        .call(
            Method::POST,
            "/auth/credential",
            Some(&body),
            Auth::Unsigned,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_cover_only_the_plans_services() {
        let plan: Plan = serde_saphyr::from_str(
            r#"
version: 1
providers:
  ovh: {type: ovh, endpoint: ovh-eu, application_key: {env: A}, application_secret: {env: B}, consumer_key: {env: C}}
  other: {type: ovh, endpoint: ovh-ca, application_key: {env: A}, application_secret: {env: B}, consumer_key: {env: C}}
platforms:
  old: {type: ovh-exchange, provider: ovh, organization: hosted-ab1, service: hosted-ab1}
  new: {type: ovh-email-pro, provider: ovh, service: pro-x}
  elsewhere: {type: ovh-mx-plan, provider: other, service: example.org, mx_plan_api: legacy}
  imap: {type: imap, imap: {host: imap.example.org}}
accounts: []
"#,
        )
        .unwrap();
        let rules: Vec<String> = access_rules(&plan, "ovh")
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(
            rules,
            [
                "DELETE /email/exchange/hosted-ab1/service/hosted-ab1/*",
                "DELETE /email/pro/pro-x/*",
                "GET /email/exchange/hosted-ab1/service/hosted-ab1",
                "GET /email/exchange/hosted-ab1/service/hosted-ab1/*",
                "GET /email/pro/pro-x",
                "GET /email/pro/pro-x/*",
                "POST /email/exchange/hosted-ab1/service/hosted-ab1/*",
                "POST /email/pro/pro-x/*",
                "PUT /email/exchange/hosted-ab1/service/hosted-ab1/*",
                "PUT /email/pro/pro-x/*",
            ]
        );
        let legacy: Vec<String> = access_rules(&plan, "other")
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert!(
            legacy
                .iter()
                .all(|p| p.starts_with("/email/domain/example.org"))
        );
    }
}
