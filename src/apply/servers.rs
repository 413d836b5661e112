//! Servers the plan leaves to the platforms' APIs: the IMAP host of an OVHcloud platform
//! whose plan names none (OVH Mail Migrator's "Hosted by OVHcloud (Autodetect)"), which is
//! also the host of its EWS URL when `ews:` names none.
//!
//! Read once at the start of each command that connects (apply, each watch cycle, verify,
//! rollback, `plan --refresh`) and kept in the loaded plan's platforms
//! (`Platform::detected_imap_host`), never in the state: a service moved to another cluster
//! is followed at the next run. The resource identity of such a copy names the service, not
//! the host, so it does not change when the host does.

use std::sync::Arc;

use crate::plan::Loaded;

/// What was read for one platform: its name, and the host or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub platform: String,
    pub host: Result<String, String>,
}

impl Detected {
    /// One line for people, e.g. "platform `new`: IMAP server pro1.mail.ovh.net:993 (read
    /// from the OVHcloud API)".
    pub fn line(&self, loaded: &Loaded) -> String {
        match &self.host {
            Ok(_) => {
                let server = loaded
                    .plan
                    .platforms
                    .get(&self.platform)
                    .and_then(|p| p.imap_server().ok())
                    .map(|ep| format!("{}:{}", ep.host, ep.effective_port()))
                    .unwrap_or_default();
                format!(
                    "platform `{}`: IMAP server {server} (read from the OVHcloud API)",
                    self.platform
                )
            }
            Err(e) => format!(
                "platform `{}`: its IMAP server could not be read from the OVHcloud API: {e}",
                self.platform
            ),
        }
    }
}

/// The platforms whose IMAP host is to be read: the plan names no host, and an account copies
/// mail through them, or contacts, calendars or tasks over EWS without `ews.url` (the URL is
/// then `https://HOST/EWS/Exchange.asmx` with that host). Already read ones are skipped.
fn wanted(loaded: &Loaded) -> Vec<String> {
    use crate::plan::model::Content;
    let uses = |name: &str, wants: &dyn Fn(&[Content]) -> bool| {
        loaded
            .plan
            .accounts
            .iter()
            .any(|a| (a.from == name || a.to == name) && a.content.as_deref().is_none_or(wants))
    };
    let mail = |c: &[Content]| c.contains(&Content::Mail);
    let groupware = |c: &[Content]| c.iter().any(|k| *k != Content::Mail);
    loaded
        .plan
        .platforms
        .iter()
        .filter(|(name, p)| {
            let by_ews = super::content::dav::uses_ews(p)
                && p.ews.as_ref().is_none_or(|e| e.url.is_none())
                && uses(name, &groupware);
            p.detects_imap_host()
                && !matches!(p.detected_imap_host, Some(Ok(_)))
                && ((p.pop3.is_none() && uses(name, &mail)) || by_ews)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// What a command that does not connect says of the servers it would read (`plan` without
/// `--refresh`).
pub fn unread(loaded: &Loaded) -> Vec<String> {
    wanted(loaded)
        .into_iter()
        .map(|name| {
            format!(
                "platform `{name}`: IMAP server read from the OVHcloud API when mailshift connects (`plan --refresh` shows it)"
            )
        })
        .collect()
}

/// Reads the IMAP host of every platform that needs it and returns the plan with the answers
/// in it (the same `Arc` when there was nothing to read). A platform whose API does not answer
/// fails its own accounts' copies, with the reason, and nothing else.
pub async fn detect(loaded: Arc<Loaded>) -> (Arc<Loaded>, Vec<Detected>) {
    let names = wanted(&loaded);
    if names.is_empty() {
        return (loaded, Vec::new());
    }
    let mut found = Vec::new();
    for name in names {
        let platform = &loaded.plan.platforms[&name];
        let host = match super::plane::imap_host(&name, platform, &loaded).await {
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err("the API does not give it".to_string()),
            Err(e) => Err(e.message),
        };
        found.push(Detected {
            platform: name,
            host,
        });
    }
    let mut updated = (*loaded).clone();
    for d in &found {
        if let Some(p) = updated.plan.platforms.get_mut(&d.platform) {
            p.detected_imap_host = Some(d.host.clone());
        }
    }
    (Arc::new(updated), found)
}
