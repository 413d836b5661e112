//! Footers (disclaimers) added to the mail a domain sends.

use serde_json::{Value, json};

use super::{Applied, Service, seg, str_field};
use crate::error::OvhError;

/// OVHcloud disclaimers are HTML; a plain-text footer is escaped and its line breaks kept.
pub fn footer_html(text: Option<&str>, html: Option<&str>) -> String {
    if let Some(h) = html {
        return h.to_string();
    }
    let text = text.unwrap_or("");
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push_str("<br>\n");
        }
        for c in line.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                c => out.push(c),
            }
        }
    }
    out
}

impl Service {
    fn footer_path(&self, domain: &str) -> String {
        format!("{}/domain/{}/disclaimer", self.root(), seg(domain))
    }

    pub async fn footer(&self, domain: &str) -> Result<Option<Value>, OvhError> {
        self.not_on_legacy("footers")?;
        self.get_opt(&self.footer_path(domain)).await
    }

    pub async fn ensure_footer(
        &self,
        domain: &str,
        content: &str,
        outside_only: bool,
    ) -> Result<Applied, OvhError> {
        let path = self.footer_path(domain);
        let body = json!({ "content": content, "outsideOnly": outside_only });
        match self.footer(domain).await? {
            Some(f)
                if str_field(&f, "content") == Some(content)
                    && f.get("outsideOnly")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        == outside_only =>
            {
                Ok(Applied::unchanged(format!(
                    "footer of {domain} is up to date"
                )))
            }
            Some(_) => {
                let now = self.put_settled(&path, body).await?;
                if str_field(&now, "content") != Some(content) {
                    return Err(OvhError::NotApplied(format!(
                        "the platform did not update the footer of {domain}; run apply again"
                    )));
                }
                Ok(Applied::changed(format!("updated the footer of {domain}")))
            }
            None => {
                self.post_settled(&path, body, &path).await?;
                Ok(Applied::changed(format!("set the footer of {domain}")))
            }
        }
    }

    pub async fn delete_footer(&self, domain: &str) -> Result<Applied, OvhError> {
        if self.footer(domain).await?.is_none() {
            return Ok(Applied::unchanged(format!("{domain} has no footer")));
        }
        let path = self.footer_path(domain);
        self.delete_settled(&path).await?;
        Ok(Applied::changed(format!("removed the footer of {domain}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_footers_become_escaped_html() {
        assert_eq!(
            footer_html(Some("Acme & Co\n<b>not bold</b>"), None),
            "Acme &amp; Co<br>\n&lt;b&gt;not bold&lt;/b&gt;"
        );
        assert_eq!(footer_html(Some("x"), Some("<p>h</p>")), "<p>h</p>");
    }
}
