//! RFC 6764 §6 discovery: from the platform's URL and the login to the account's principal
//! and its address book and calendar homes, and whether the server schedules (RFC 6638).
//!
//! SRV/TXT records are not looked up: every server mailshift targets answers on its
//! well-known URIs, and a DNS resolver would be a dependency for nothing.

use reqwest::Method;

use super::client::{Client, Request, error, shown, unexpected};
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
    for candidate in &candidates {
        let Some(found) = context(client, candidate).await? else {
            continue;
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
        return Err(no_service(client));
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

/// PROPFIND on a context path: `None` when nothing DAV answers there.
async fn context(client: &Client, href: &str) -> Result<Option<Homes>, StoreError> {
    let request = Request::new(Method::from_bytes(b"PROPFIND").expect("a method"), href)
        .depth("0")
        .xml(xml::propfind(CONTEXT_PROPS));
    let response = client.send_following(&request).await?;
    match response.status {
        207 => {}
        401 | 403 => return Err(refused_credentials(client, &response.url)),
        // Not there, or not DAV: try the next candidate.
        s if (300..500).contains(&s) || s == 501 => return Ok(None),
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
    Ok(Some(homes))
}

/// The principal's home sets.
async fn home_sets(client: &Client, principal: &str) -> Result<Homes, StoreError> {
    let request = Request::new(
        Method::from_bytes(b"PROPFIND").expect("a method"),
        principal,
    )
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
    use super::*;

    #[test]
    fn dav_header_classes() {
        let header = "1, 2, 3, calendar-access, calendar-auto-schedule,addressbook";
        assert!(dav_header_has(header, "calendar-auto-schedule"));
        assert!(!dav_header_has(header, "calendar-schedule"));
        assert!(!dav_header_has("", "calendar-auto-schedule"));
    }
}
