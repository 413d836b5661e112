//! Autodiscover (POX, the Outlook provider schema): the EWS URL of a mailbox when the plan
//! gives none. Tried in the documented order, `https://autodiscover.DOMAIN/autodiscover/
//! autodiscover.xml` then `https://DOMAIN/autodiscover/autodiscover.xml`, with the account's
//! own credentials; the first answer naming an `EwsUrl` wins.
//!
//! The answer's `EXPR` (outside) protocol is preferred to `EXCH` (inside the organisation);
//! redirects are not followed (the credentials would go to another host): a 3xx, like any
//! failure, moves on to the next candidate, and when none answers the error lists each
//! candidate with what it said and tells the user to set `ews.url`.

use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::StoreError;

use crate::config::EwsConfig;
use crate::http::{self, error};
use crate::xml::{self, Node};

const REQUEST_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
const RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

/// The Autodiscover URLs tried for a mailbox, in order.
pub fn candidates(mailbox: &str) -> Result<Vec<String>, StoreError> {
    let domain = mailbox
        .rsplit_once('@')
        .map(|(_, d)| d.trim())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            error(
                ErrorKind::Config,
                format!(
                    "cannot find the EWS URL of {mailbox:?} by Autodiscover: it is not an \
                     e-mail address; set the platform's `ews.url`"
                ),
            )
        })?;
    Ok(vec![
        format!("https://autodiscover.{domain}/autodiscover/autodiscover.xml"),
        format!("https://{domain}/autodiscover/autodiscover.xml"),
    ])
}

/// The POX request body for a mailbox.
pub fn request(mailbox: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"{REQUEST_SCHEMA}\">\
         <Request><EMailAddress>{}</EMailAddress><AcceptableResponseSchema>{RESPONSE_SCHEMA}\
         </AcceptableResponseSchema></Request></Autodiscover>",
        xml::escape(mailbox)
    )
}

/// The EWS URL an Autodiscover answer gives (EXPR first), if any.
pub fn ews_url(answer: &Node) -> Option<String> {
    let account = answer.at(&["Response", "Account"])?;
    let protocols: Vec<&Node> = account.all("Protocol").collect();
    let url_of = |p: &&Node| p.text_of("EwsUrl").map(|u| u.trim().to_string());
    protocols
        .iter()
        .filter(|p| p.text_of("Type") == Some("EXPR"))
        .chain(protocols.iter())
        .find_map(url_of)
}

/// Finds the EWS URL of `config.mailbox` (the standard candidates).
pub async fn discover(config: &EwsConfig) -> Result<String, StoreError> {
    discover_at(config, &candidates(&config.mailbox)?).await
}

/// Finds the EWS URL of `config.mailbox` trying these Autodiscover URLs in order.
pub async fn discover_at(config: &EwsConfig, urls: &[String]) -> Result<String, StoreError> {
    let transport = http::Transport::new(config)?;
    let mut tried = Vec::new();
    for url in urls {
        let outcome = async {
            let parsed = http::check_url(url)?;
            let headers = [("content-type", "text/xml; charset=utf-8".to_string())];
            let response = transport
                .post(&parsed, &headers, request(&config.mailbox))
                .await
                .map_err(|e| error(ErrorKind::Network, e.tls.unwrap_or(e.message)))?;
            let status = response.status;
            if status != 200 {
                return Err(error(
                    if status == 401 {
                        ErrorKind::Auth
                    } else {
                        ErrorKind::Network
                    },
                    format!("answered {status}"),
                ));
            }
            let text = response.text;
            let tree = xml::parse(&text)
                .map_err(|why| error(ErrorKind::Network, format!("not XML ({why})")))?;
            ews_url(&tree).ok_or_else(|| error(ErrorKind::Network, "named no EwsUrl"))
        }
        .await;
        match outcome {
            Ok(found) => return Ok(found),
            Err(e) => tried.push((url.clone(), e)),
        }
    }
    let auth = tried.iter().all(|(_, e)| e.kind == ErrorKind::Auth) && !tried.is_empty();
    let list = tried
        .iter()
        .map(|(url, e)| format!("{url}: {}", e.message))
        .collect::<Vec<_>>()
        .join("; ");
    Err(error(
        if auth {
            ErrorKind::Auth
        } else {
            ErrorKind::Config
        },
        format!(
            "Autodiscover found no EWS URL for {}: {list}; set the platform's `ews.url` \
             (OVHcloud Exchange: https://exN.mail.ovh.net/EWS/Exchange.asmx)",
            config.mailbox
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Auth;
    use crate::scripted::{answer, scripted};

    const ANSWER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <User><DisplayName>Alice</DisplayName></User>
    <Account><AccountType>email</AccountType><Action>settings</Action>
      <Protocol><Type>EXCH</Type><EwsUrl>https://internal.example.com/EWS/Exchange.asmx</EwsUrl></Protocol>
      <Protocol><Type>EXPR</Type><EwsUrl>https://ex3.mail.ovh.net/EWS/Exchange.asmx</EwsUrl></Protocol>
    </Account>
  </Response>
</Autodiscover>"#;

    #[test]
    fn the_candidates_follow_the_documented_order() {
        assert_eq!(
            candidates("alice@example.com").unwrap(),
            vec![
                "https://autodiscover.example.com/autodiscover/autodiscover.xml",
                "https://example.com/autodiscover/autodiscover.xml"
            ]
        );
        assert_eq!(candidates("alice").unwrap_err().kind, ErrorKind::Config);
    }

    #[tokio::test]
    async fn the_first_candidate_that_answers_gives_the_outside_url() {
        let first = scripted(vec![answer("404 Not Found", &[], "")]);
        let second = scripted(vec![answer("200 OK", &[], ANSWER)]);
        let config = EwsConfig::new("", "alice@example.com", Auth::None);
        let urls = [
            format!("{}/autodiscover/autodiscover.xml", first.url),
            format!("{}/autodiscover/autodiscover.xml", second.url),
        ];
        assert_eq!(
            discover_at(&config, &urls).await.unwrap(),
            "https://ex3.mail.ovh.net/EWS/Exchange.asmx"
        );
        let seen = second.seen.lock().unwrap();
        assert!(seen[0].contains("<EMailAddress>alice@example.com</EMailAddress>"));
    }

    #[tokio::test]
    async fn no_answer_names_every_candidate_and_the_fix() {
        let only = scripted(vec![answer(
            "302 Found",
            &["Location: https://evil.example/"],
            "",
        )]);
        let config = EwsConfig::new("", "alice@example.com", Auth::None);
        let url = format!("{}/autodiscover/autodiscover.xml", only.url);
        let failure = discover_at(&config, std::slice::from_ref(&url))
            .await
            .unwrap_err();
        assert_eq!(failure.kind, ErrorKind::Config);
        assert!(failure.message.contains(&url), "{failure:?}");
        assert!(failure.message.contains("answered 302"), "{failure:?}");
        assert!(failure.message.contains("`ews.url`"), "{failure:?}");
    }
}
