//! RFC 6764 §6 discovery: from the platform's URL and the login to the account's principal
//! and its address book and calendar homes, and whether the server schedules (RFC 6638).
//!
//! SRV/TXT records are not looked up: every server mailshift targets answers on its
//! well-known URIs, and a DNS resolver would be a dependency for nothing.

use reqwest::Method;

use super::client::{Client, Request, dav_method, error, shown, unexpected};
use super::xml::{self, CALDAV, CARDDAV, DAV};
use crate::error::ErrorKind;
use crate::store::StoreError;

/// Where an account's collections live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Homes {
    pub principal: Option<String>,
    /// Where address books are; empty when the server offers none.
    pub addressbooks: Vec<String>,
    /// Where calendars are; empty when the server offers none.
    pub calendars: Vec<String>,
    /// `calendar-auto-schedule` in the calendar home's DAV header.
    pub schedules: bool,
}

const CONTEXT_PROPS: &[&str] = &[
    "D:current-user-principal",
    "D:resourcetype",
    "C:calendar-home-set",
    "CR:addressbook-home-set",
];

const HOME_PROPS: &[&str] = &["C:calendar-home-set", "CR:addressbook-home-set"];

pub async fn discover(client: &Client) -> Result<Homes, StoreError> {
    let given = client.url().path().to_string();
    let candidates: Vec<String> = if given.is_empty() || given == "/" {
        vec![
            "/.well-known/carddav".into(),
            "/.well-known/caldav".into(),
            "/".into(),
        ]
    } else {
        vec![xml::normalize_href(&given, client.url())]
    };
    let mut homes = Homes::default();
    let mut answered_dav = false;
    let mut forbidden = None;
    for candidate in &candidates {
        let found = match context(client, candidate).await? {
            None => continue,
            Some(Found::Forbidden(url)) => {
                forbidden.get_or_insert(url);
                continue;
            }
            Some(Found::Homes(found)) => found,
        };
        answered_dav = true;
        merge(&mut homes, found);
        if let Some(principal) = homes.principal.clone()
            && (homes.addressbooks.is_empty() || homes.calendars.is_empty())
        {
            merge(&mut homes, home_sets(client, &principal).await?);
        }
        if !homes.addressbooks.is_empty() && !homes.calendars.is_empty() {
            break;
        }
    }
    if !answered_dav {
        return Err(match forbidden {
            Some(url) => refused_credentials(client, &url),
            None => no_service(client),
        });
    }
    // Collections are made by appending to a home: it must end with its slash.
    for home in homes
        .addressbooks
        .iter_mut()
        .chain(homes.calendars.iter_mut())
    {
        if !home.ends_with('/') {
            home.push('/');
        }
    }
    if homes.addressbooks.is_empty() && homes.calendars.is_empty() {
        // A URL that is itself a collection (an address book or calendar URL given as the
        // platform's URL) has no homes: its parent is where its siblings are.
        return Err(error(
            ErrorKind::Config,
            format!(
                "{} answers as a DAV server but names no address book or calendar home for \
                 {}: set the platform's `dav.url` to the server's root (https://host/) or to \
                 the account's principal URL",
                shown(client.url()),
                client.login().unwrap_or("this account")
            ),
        ));
    }
    if let Some(home) = homes.calendars.first() {
        homes.schedules = schedules(client, home).await?;
    }
    Ok(homes)
}

fn merge(homes: &mut Homes, found: Homes) {
    if homes.principal.is_none() {
        homes.principal = found.principal;
    }
    if homes.addressbooks.is_empty() {
        homes.addressbooks = found.addressbooks;
    }
    if homes.calendars.is_empty() {
        homes.calendars = found.calendars;
    }
}

/// What a context path answered, when it was DAV.
enum Found {
    Homes(Homes),
    Forbidden(reqwest::Url),
}

/// PROPFIND on a context path: `None` when nothing DAV answers there.
async fn context(client: &Client, href: &str) -> Result<Option<Found>, StoreError> {
    let request = Request::new(dav_method("PROPFIND"), href)
        .depth("0")
        .xml(xml::propfind(CONTEXT_PROPS));
    let response = client.send_following(&request).await?;
    match response.status {
        207 => {}
        401 => return Err(refused_credentials(client, &response.url)),
        // Forbidden here may be this path only: the next candidate may answer.
        403 => return Ok(Some(Found::Forbidden(response.url))),
        // Not there, or not DAV (a web page, a server without PROPFIND): the next candidate.
        s if (200..500).contains(&s) || s == 501 => return Ok(None),
        _ => return Err(unexpected("PROPFIND", &response)),
    }
    let Ok(ms) = xml::multistatus(&response.body, &response.url) else {
        return Ok(None);
    };
    let Some(first) = ms.responses.first() else {
        return Ok(None);
    };
    // A multistatus that only says "not found" (Xandikos outside its tree).
    if first.status.is_some_and(|s| !(200..300).contains(&s)) {
        return Ok(None);
    }
    let mut homes = Homes {
        principal: first
            .hrefs(DAV, "current-user-principal", &response.url)
            .into_iter()
            .next(),
        addressbooks: first.hrefs(CARDDAV, "addressbook-home-set", &response.url),
        calendars: first.hrefs(CALDAV, "calendar-home-set", &response.url),
        schedules: false,
    };
    if homes.principal.is_none() && first.has_type(DAV, "principal") {
        homes.principal = Some(first.href.clone());
    }
    Ok(Some(Found::Homes(homes)))
}

/// The principal's home sets.
async fn home_sets(client: &Client, principal: &str) -> Result<Homes, StoreError> {
    let request = Request::new(dav_method("PROPFIND"), principal)
        .depth("0")
        .xml(xml::propfind(HOME_PROPS));
    let response = client.send_following(&request).await?;
    match response.status {
        207 => {}
        401 | 403 => return Err(refused_credentials(client, &response.url)),
        _ => return Err(unexpected("PROPFIND", &response)),
    }
    let ms = xml::multistatus(&response.body, &response.url).map_err(|e| {
        error(
            ErrorKind::Network,
            format!("PROPFIND {}: unreadable answer: {e}", shown(&response.url)),
        )
    })?;
    let Some(first) = ms.responses.first() else {
        return Ok(Homes::default());
    };
    Ok(Homes {
        principal: Some(principal.to_string()),
        addressbooks: first.hrefs(CARDDAV, "addressbook-home-set", &response.url),
        calendars: first.hrefs(CALDAV, "calendar-home-set", &response.url),
        schedules: false,
    })
}

/// Whether the server schedules on its own: `calendar-auto-schedule` in the DAV header of
/// OPTIONS on the calendar home. A server that does not answer OPTIONS is taken to schedule:
/// marking attendees SCHEDULE-AGENT=CLIENT where it is not needed is harmless, sending
/// invitations is not.
async fn schedules(client: &Client, home: &str) -> Result<bool, StoreError> {
    let response = client.send(&Request::new(Method::OPTIONS, home)).await?;
    if !response.is_success() {
        return Ok(true);
    }
    Ok(dav_header_has(
        &response.header_all("dav"),
        "calendar-auto-schedule",
    ))
}

/// Whether a DAV header lists this compliance class.
pub fn dav_header_has(header: &str, class: &str) -> bool {
    header
        .split(',')
        .any(|c| c.trim().eq_ignore_ascii_case(class))
}

fn refused_credentials(client: &Client, url: &reqwest::Url) -> StoreError {
    let who = match client.login() {
        Some(login) => format!("the credentials of {login}"),
        None => "access without credentials".to_string(),
    };
    error(ErrorKind::Auth, format!("{} refused {who}", shown(url)))
}

fn no_service(client: &Client) -> StoreError {
    let url = client.url();
    let hint = if url.path().is_empty() || url.path() == "/" {
        "the URL of the account's CardDAV/CalDAV service (its principal or context path, e.g. \
         https://host/remote.php/dav/ on Nextcloud, https://host/SOGo/dav/ on SOGo)"
            .to_string()
    } else {
        let mut root = url.clone();
        root.set_path("/");
        format!(
            "the server's root ({}) for discovery, or the account's principal URL",
            shown(&root)
        )
    };
    error(
        ErrorKind::Config,
        format!(
            "no CardDAV/CalDAV service at URL: {}; set the platform's `dav.url` to {hint}",
            shown(url)
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::config::{Auth, DavConfig};
    use super::super::scripted::{answer, scripted};
    use super::*;

    fn client(url: &str) -> Client {
        Client::new(&DavConfig {
            url: url.into(),
            auth: Auth::None,
            attempts: 1,
            backoff: Duration::from_millis(1),
            ..DavConfig::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn homes_on_the_context_path_and_a_scheduling_server() {
        let context = r#"<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:a="urn:ietf:params:xml:ns:carddav"><d:response><d:href>/dav/</d:href><d:propstat><d:prop>
            <d:current-user-principal><d:href>/dav/principals/alice/</d:href></d:current-user-principal>
            <c:calendar-home-set><d:href>https://dav.example.com/dav/calendars/alice</d:href></c:calendar-home-set>
            <a:addressbook-home-set><d:href>/dav/addressbooks/alice/</d:href></a:addressbook-home-set>
            </d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>"#;
        let server = scripted(vec![
            answer("301 Moved Permanently", &["Location: /dav/"], ""),
            answer("207 Multi-Status", &[], context),
            answer(
                "200 OK",
                &[
                    "DAV: 1, 2, access-control",
                    "DAV: calendar-access, calendar-auto-schedule",
                ],
                "",
            ),
        ]);
        let homes = discover(&client(&server.url)).await.unwrap();
        assert_eq!(
            homes,
            Homes {
                principal: Some("/dav/principals/alice/".into()),
                addressbooks: vec!["/dav/addressbooks/alice/".into()],
                calendars: vec!["/dav/calendars/alice/".into()],
                schedules: true,
            }
        );
        let seen = server.seen.lock().unwrap();
        assert!(
            seen[0].starts_with("PROPFIND /.well-known/carddav "),
            "{}",
            seen[0]
        );
        assert!(
            seen[2].starts_with("OPTIONS /dav/calendars/alice/ "),
            "{}",
            seen[2]
        );
    }

    #[tokio::test]
    async fn a_web_site_is_no_dav_service() {
        let server = scripted(vec![
            answer("404 Not Found", &[], ""),
            answer("405 Method Not Allowed", &[], ""),
            answer(
                "200 OK",
                &["Content-Type: text/html"],
                "<html>Welcome</html>",
            ),
        ]);
        let err = discover(&client(&server.url)).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config, "{err:?}");
        assert!(
            err.message.starts_with(&format!(
                "no CardDAV/CalDAV service at URL: {}/",
                server.url
            )),
            "{}",
            err.message
        );
        assert!(err.message.contains("`dav.url`"), "{}", err.message);
    }

    #[test]
    fn dav_header_classes() {
        let header = "1, 2, 3, calendar-access, calendar-auto-schedule,addressbook";
        assert!(dav_header_has(header, "calendar-auto-schedule"));
        assert!(!dav_header_has(header, "calendar-schedule"));
        assert!(!dav_header_has("", "calendar-auto-schedule"));
    }
}
