//! [`DavStore`]: one account on a CardDAV/CalDAV server as a [`Store`].
//!
//! What each answer means is decided here, per operation: a 412 is an outcome of `put`, a 404
//! one of `delete`, a 403 on a home is the credentials, on an object the object.

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, IF_MATCH, IF_NONE_MATCH};

use super::client::{
    Client, Request, Response, dav_method, encode_path, error, excerpt, is_refusal, shown,
    unexpected,
};
use super::config::DavConfig;
use super::discovery::{Homes, discover};
use super::xml::{self, APPLE, CALDAV, CALSERVER, CARDDAV, DAV, Multistatus};
use crate::error::ErrorKind;
use crate::store::{
    Collection, Component, Delta, Fetched, Listed, Precondition, PutOutcome, Store, StoreError,
    StoreResult,
};

/// Hrefs per multiget REPORT: small enough for any server's request limits, large enough
/// that round trips do not dominate.
const MULTIGET_CHUNK: usize = 100;

/// How many truncated sync-collection answers (RFC 6578 §3.6) are followed in one call.
const MAX_SYNC_PAGES: usize = 1000;

const COLLECTION_PROPS: &[&str] = &[
    "D:resourcetype",
    "D:displayname",
    "I:calendar-color",
    "C:calendar-description",
    "CR:addressbook-description",
    "C:supported-calendar-component-set",
    "CR:supported-address-data",
    "C:max-resource-size",
    "CR:max-resource-size",
    "D:sync-token",
    "CS:getctag",
];

/// One account on a CardDAV/CalDAV server, discovered at [`DavStore::connect`].
#[derive(Debug)]
pub struct DavStore {
    client: Client,
    homes: Homes,
}

impl DavStore {
    /// Finds the account's principal and its address book and calendar homes (RFC 6764), and
    /// whether the server schedules; fails with a Config error naming the URL to set when no
    /// DAV service answers there.
    pub async fn connect(config: DavConfig) -> Result<DavStore, StoreError> {
        let client = Client::new(&config)?;
        let homes = discover(&client).await?;
        Ok(DavStore { client, homes })
    }

    /// The principal found by discovery, if the server named one.
    pub fn principal(&self) -> Option<&str> {
        self.homes.principal.as_deref()
    }

    /// Where address books (`Card`) or calendars are; a Config error when the server has none.
    fn homes(&self, component: Component) -> StoreResult<&[String]> {
        let (homes, what, set) = match component {
            Component::Card => (
                &self.homes.addressbooks,
                "address books",
                "addressbook-home-set",
            ),
            _ => (&self.homes.calendars, "calendars", "calendar-home-set"),
        };
        if homes.is_empty() {
            let principal = self
                .homes
                .principal
                .as_deref()
                .map(|p| format!(" (its principal {p} has no {set})"))
                .unwrap_or_default();
            return Err(error(
                ErrorKind::Config,
                format!(
                    "{} offers no {what} for this account{principal}: leave them out of \
                     the plan's content for this platform",
                    shown(self.client.url())
                ),
            ));
        }
        Ok(homes)
    }

    async fn list_home(&self, home: &str) -> StoreResult<Vec<Collection>> {
        let request = Request::new(dav_method("PROPFIND"), home)
            .depth("1")
            .xml(xml::propfind(COLLECTION_PROPS));
        let response = self.client.send(&request).await?;
        if response.status != 207 {
            return Err(self.home_error("PROPFIND", &response));
        }
        let ms = self.read(&response)?;
        Ok(ms
            .responses
            .iter()
            .filter(|r| !xml::same_href(&r.href, home))
            .filter_map(collection_of)
            .collect())
    }

    fn home_error(&self, what: &str, response: &Response) -> StoreError {
        if matches!(response.status, 401 | 403) {
            let who = match self.client.login() {
                Some(login) => format!("the credentials of {login}"),
                None => "access without credentials".to_string(),
            };
            return error(
                ErrorKind::Auth,
                format!(
                    "{what} {}: the server refused {who} ({})",
                    shown(&response.url),
                    response.status
                ),
            );
        }
        unexpected(what, response)
    }

    fn read(&self, response: &Response) -> StoreResult<Multistatus> {
        xml::multistatus(&response.body, &response.url).map_err(|e| {
            error(
                ErrorKind::Network,
                format!("{}: unreadable multistatus: {e}", shown(&response.url)),
            )
        })
    }

    async fn all_collections(&self, component: Component) -> StoreResult<Vec<Collection>> {
        let mut out: Vec<Collection> = Vec::new();
        for home in self.homes(component)? {
            for collection in self.list_home(home).await? {
                if !out.iter().any(|c| c.href == collection.href) {
                    out.push(collection);
                }
            }
        }
        Ok(out)
    }

    /// Falls back to GET one by one (a server without multiget).
    async fn fetch_each(&self, hrefs: &[String]) -> StoreResult<Vec<Fetched>> {
        let mut out = Vec::new();
        for href in hrefs {
            let response = self.client.send(&Request::new(Method::GET, href)).await?;
            match response.status {
                200 => out.push(Fetched {
                    href: href.clone(),
                    etag: response.header("etag").map(str::to_string),
                    data: response.body,
                }),
                404 | 410 => {}
                _ => return Err(unexpected("GET", &response)),
            }
        }
        Ok(out)
    }

    async fn multiget(
        &self,
        collection: &Collection,
        card: bool,
        hrefs: &[String],
    ) -> StoreResult<Option<Vec<Fetched>>> {
        let encoded: Vec<String> = hrefs.iter().map(|h| encode_path(h)).collect();
        let request = Request::new(dav_method("REPORT"), &collection.href)
            .depth("1")
            .xml(xml::multiget(card, &encoded));
        let response = self.client.send(&request).await?;
        if response.status != 207 {
            if response.status == 401 {
                return Err(self.home_error("REPORT", &response));
            }
            if is_refusal(response.status) || response.status == 501 {
                return Ok(None);
            }
            return Err(unexpected("REPORT", &response));
        }
        let ms = self.read(&response)?;
        let (ns, name) = if card {
            (CARDDAV, "address-data")
        } else {
            (CALDAV, "calendar-data")
        };
        let mut out = Vec::new();
        for r in &ms.responses {
            if r.status.is_some_and(|s| !(200..300).contains(&s)) {
                continue;
            }
            let Some(data) = r.prop(ns, name) else {
                continue;
            };
            out.push(Fetched {
                href: r.href.clone(),
                etag: r.text(DAV, "getetag"),
                data: object_data(&data.text).into_bytes(),
            });
        }
        Ok(Some(out))
    }

    async fn sync_page(
        &self,
        collection: &Collection,
        token: &str,
    ) -> StoreResult<Option<Multistatus>> {
        let mut request = Request::new(dav_method("REPORT"), &collection.href)
            .depth("0")
            .xml(xml::sync_collection(token));
        // Xandikos 0.2 fails a token it does not know with a 500: listing is the answer.
        request.no_retry = &[500];
        let response = self.client.send(&request).await?;
        match response.status {
            207 => Ok(Some(self.read(&response)?)),
            401 => Err(self.home_error("REPORT", &response)),
            // An expired token (403/409 valid-sync-token), or no sync-collection here.
            s if is_refusal(s) || s == 500 || s == 501 => Ok(None),
            _ => Err(unexpected("REPORT", &response)),
        }
    }

    /// Sets with PROPPATCH what a new collection did not take at creation (Xandikos 0.2 sets
    /// only the display name in MKCALENDAR), and returns it as then listed. The properties are
    /// cosmetic: a server that refuses them keeps the collection as it is.
    async fn complete(
        &self,
        created: Collection,
        like: &Collection,
        component: Component,
    ) -> StoreResult<Collection> {
        let mut missing = Vec::new();
        if created.display_name.is_none()
            && let Some(name) = &like.display_name
        {
            missing.push(format!(
                "<D:displayname>{}</D:displayname>",
                xml::escape(name)
            ));
        }
        if created.description.is_none()
            && let Some(description) = &like.description
        {
            let element = if component == Component::Card {
                "CR:addressbook-description"
            } else {
                "C:calendar-description"
            };
            missing.push(format!(
                "<{element}>{}</{element}>",
                xml::escape(description)
            ));
        }
        if component != Component::Card
            && created.color.is_none()
            && let Some(color) = &like.color
        {
            missing.push(format!(
                "<I:calendar-color>{}</I:calendar-color>",
                xml::escape(color)
            ));
        }
        if missing.is_empty() {
            return Ok(created);
        }
        // One property per PROPPATCH: a server refusing one (Xandikos 0.2 and
        // calendar-description) would fail them all in a single, atomic one.
        for prop in missing {
            let request =
                Request::new(dav_method("PROPPATCH"), &created.href).xml(xml::proppatch(&[prop]));
            self.client.send(&request).await?;
        }
        let listed = self.all_collections(component).await?;
        Ok(listed
            .into_iter()
            .find(|c| c.href == created.href)
            .unwrap_or(created))
    }

    async fn create(&self, href: &str, like: &Collection) -> StoreResult<Response> {
        let card = like.components.contains(&Component::Card);
        let mut props = Vec::new();
        if let Some(name) = &like.display_name {
            props.push(format!(
                "<D:displayname>{}</D:displayname>",
                xml::escape(name)
            ));
        }
        if card {
            if let Some(description) = &like.description {
                props.push(format!(
                    "<CR:addressbook-description>{}</CR:addressbook-description>",
                    xml::escape(description)
                ));
            }
            let request =
                Request::new(dav_method("MKCOL"), href).xml(xml::mkcol_addressbook(&props));
            return self.client.send(&request).await;
        }
        if let Some(color) = &like.color {
            props.push(format!(
                "<I:calendar-color>{}</I:calendar-color>",
                xml::escape(color)
            ));
        }
        if let Some(description) = &like.description {
            props.push(format!(
                "<C:calendar-description>{}</C:calendar-description>",
                xml::escape(description)
            ));
        }
        let comps: String = like
            .components
            .iter()
            .filter_map(|c| match c {
                Component::Event => Some("VEVENT"),
                Component::Task => Some("VTODO"),
                Component::Journal => Some("VJOURNAL"),
                Component::Card => None,
            })
            .map(|c| format!("<C:comp name=\"{c}\"/>"))
            .collect();
        if !comps.is_empty() {
            props.push(format!(
                "<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set>"
            ));
        }
        let request = Request::new(dav_method("MKCALENDAR"), href).xml(xml::mkcalendar(&props));
        self.client.send(&request).await
    }
}

/// A collection from its PROPFIND response; `None` for anything that is not an address book
/// or a calendar.
fn collection_of(r: &xml::Response) -> Option<Collection> {
    let components = if r.has_type(CARDDAV, "addressbook") {
        vec![Component::Card]
    } else if r.has_type(CALDAV, "calendar") {
        match r.prop(CALDAV, "supported-calendar-component-set") {
            None => vec![Component::Event, Component::Task, Component::Journal],
            Some(set) => {
                let mut comps: Vec<Component> = set
                    .children_named(CALDAV, "comp")
                    .filter_map(
                        |c| match c.attribute("name")?.to_ascii_uppercase().as_str() {
                            "VEVENT" => Some(Component::Event),
                            "VTODO" => Some(Component::Task),
                            "VJOURNAL" => Some(Component::Journal),
                            _ => None,
                        },
                    )
                    .collect();
                comps.sort();
                comps.dedup();
                comps
            }
        }
    } else {
        return None;
    };
    let mut href = r.href.clone();
    if !href.ends_with('/') {
        href.push('/');
    }
    let name = href
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let card = components == [Component::Card];
    let description = if card {
        r.text(CARDDAV, "addressbook-description")
    } else {
        r.text(CALDAV, "calendar-description")
    };
    let vcard_versions = r
        .prop(CARDDAV, "supported-address-data")
        .map(|set| {
            // RFC 6352 names the element address-data-type; Xandikos 0.2 content-type.
            let mut versions: Vec<String> = set
                .children
                .iter()
                .filter(|t| {
                    t.attribute("content-type")
                        .is_none_or(|c| c.eq_ignore_ascii_case("text/vcard"))
                })
                // The DTD's default version is 3.0.
                .map(|t| t.attribute("version").unwrap_or("3.0").to_string())
                .collect();
            versions.sort();
            versions.dedup();
            versions
        })
        // RFC 6352 §6.2.2: without the property, a server accepts vCard 3.0 only (Radicale
        // 3.1 says nothing, and loses a 4.0 photo's data URI at its comma).
        .unwrap_or_else(|| {
            if card {
                vec!["3.0".to_string()]
            } else {
                Vec::new()
            }
        });
    let max_size = r
        .text(CARDDAV, "max-resource-size")
        .or_else(|| r.text(CALDAV, "max-resource-size"))
        .and_then(|s| s.parse().ok());
    Some(Collection {
        name,
        href,
        display_name: r.text(DAV, "displayname"),
        color: r.text(APPLE, "calendar-color"),
        description,
        components,
        sync_token: r.text(DAV, "sync-token"),
        ctag: r.text(CALSERVER, "getctag"),
        vcard_versions,
        max_size,
    })
}

/// An object's data as carried in a multiget: without the indentation a pretty-printing
/// server puts around it, with the object's own final line break kept.
fn object_data(text: &str) -> String {
    let start = text.trim_start();
    let content = start.trim_end();
    let rest = &start[content.len()..];
    let ending = if rest.starts_with("\r\n") {
        "\r\n"
    } else if rest.starts_with('\n') {
        "\n"
    } else {
        ""
    };
    format!("{content}{ending}")
}

/// `If-Match` wants a quoted entity tag; hrefs' ETags are kept as the server wrote them, but
/// a caller may hold one without its quotes.
fn entity_tag(etag: &str) -> String {
    let etag = etag.trim();
    if etag.starts_with('"') || etag.starts_with("W/") {
        etag.to_string()
    } else {
        format!("\"{etag}\"")
    }
}

impl Store for DavStore {
    async fn collections(&self, component: Component) -> StoreResult<Vec<Collection>> {
        Ok(self
            .all_collections(component)
            .await?
            .into_iter()
            .filter(|c| c.components.contains(&component))
            .collect())
    }

    async fn create_collection(&self, name: &str, like: &Collection) -> StoreResult<Collection> {
        let (component, method, what) = if like.components.contains(&Component::Card) {
            (Component::Card, "MKCOL", "an address book")
        } else {
            (Component::Event, "MKCALENDAR", "a calendar")
        };
        let home = self.homes(component)?.first().cloned().unwrap_or_default();
        // A name taken by a collection of the other kind (a files source's `all.vcf` and
        // `all.ics` are both named `all`) is tried once more with the kind appended.
        let kind = if component == Component::Card {
            "contacts"
        } else {
            "calendar"
        };
        let mut last = None;
        for candidate in [name.to_string(), format!("{name}-{kind}")] {
            let href = format!("{home}{candidate}/");
            let response = self.create(&href, like).await?;
            let exists = match response.status {
                200..=299 => false,
                // RFC 4918 §9.3.1: MKCOL on an existing resource. Also what a server that
                // cannot create collections answers: the listing below tells them apart.
                405 => true,
                403 | 409
                    if xml::error_names(&response.body, DAV, "resource-must-be-null").is_some() =>
                {
                    true
                }
                _ => return Err(unexpected(method, &response)),
            };
            // A home may hold both kinds (Radicale): what is at the href must be of ours.
            let listed = self.all_collections(component).await?;
            let at_href = listed.into_iter().find(|c| xml::same_href(&c.href, &href));
            match at_href {
                Some(found)
                    if found.components.contains(&Component::Card)
                        == (component == Component::Card) =>
                {
                    if exists {
                        return Ok(found);
                    }
                    return self.complete(found, like, component).await;
                }
                Some(_) if exists => {
                    last = Some(error(
                        ErrorKind::Refused,
                        format!("{candidate:?} is taken by a collection of the other kind"),
                    ));
                    continue;
                }
                _ => {}
            }
            let url = shown(&self.client.url_of(&href));
            if !exists {
                return Err(error(
                    ErrorKind::Refused,
                    format!("{method} {url} succeeded but {what} is not listed there afterwards"),
                ));
            }
            last = Some(error(
                ErrorKind::Refused,
                format!(
                    "{method} {url} answered {} and no {what} is there: either something else \
                     holds that name or the server does not let clients create collections \
                     (create {what} by hand and map the collection to it in the plan)",
                    response.status
                ),
            ));
        }
        Err(last.expect("two names were tried"))
    }

    async fn list(&self, collection: &Collection) -> StoreResult<Vec<Listed>> {
        let request = Request::new(dav_method("PROPFIND"), &collection.href)
            .depth("1")
            .xml(xml::propfind(&[
                "D:resourcetype",
                "D:getetag",
                "D:getcontenttype",
            ]));
        let response = self.client.send(&request).await?;
        if response.status != 207 {
            return Err(unexpected("PROPFIND", &response));
        }
        let ms = self.read(&response)?;
        Ok(ms
            .responses
            .into_iter()
            .filter(|r| !xml::same_href(&r.href, &collection.href) && !r.is_collection())
            .filter(|r| r.status.is_none_or(|s| (200..300).contains(&s)))
            .map(|r| Listed {
                etag: r.text(DAV, "getetag"),
                href: r.href,
            })
            .collect())
    }

    async fn changes(&self, collection: &Collection, token: &str) -> StoreResult<Option<Delta>> {
        let mut delta = Delta {
            changed: Vec::new(),
            removed: Vec::new(),
            token: token.to_string(),
        };
        for _ in 0..MAX_SYNC_PAGES {
            let Some(ms) = self.sync_page(collection, &delta.token).await? else {
                return Ok(None);
            };
            let mut truncated = false;
            for r in ms.responses {
                if xml::same_href(&r.href, &collection.href) {
                    // RFC 6578 §3.6: more changes follow from the new token.
                    truncated |= r.status == Some(507);
                    continue;
                }
                if r.is_collection() || r.href.ends_with('/') {
                    continue;
                }
                delta.changed.retain(|l| l.href != r.href);
                delta.removed.retain(|h| *h != r.href);
                if r.status == Some(404) {
                    delta.removed.push(r.href);
                } else {
                    delta.changed.push(Listed {
                        etag: r.text(DAV, "getetag"),
                        href: r.href,
                    });
                }
            }
            let Some(next) = ms.sync_token else {
                // A multistatus without a token cannot be resumed from: not sync-collection.
                return Ok(None);
            };
            let advanced = next != delta.token;
            delta.token = next;
            if !truncated || !advanced {
                return Ok(Some(delta));
            }
        }
        Ok(Some(delta))
    }

    async fn fetch(&self, collection: &Collection, hrefs: &[String]) -> StoreResult<Vec<Fetched>> {
        let card = collection.components.contains(&Component::Card);
        let mut out = Vec::with_capacity(hrefs.len());
        for chunk in hrefs.chunks(MULTIGET_CHUNK) {
            match self.multiget(collection, card, chunk).await? {
                Some(fetched) => out.extend(fetched),
                None => out.extend(self.fetch_each(chunk).await?),
            }
        }
        Ok(out)
    }

    async fn put(
        &self,
        collection: &Collection,
        href: &str,
        data: &[u8],
        condition: Precondition,
    ) -> StoreResult<PutOutcome> {
        let content_type = if collection.components.contains(&Component::Card) {
            "text/vcard; charset=utf-8"
        } else {
            "text/calendar; charset=utf-8"
        };
        let mut request = Request::new(Method::PUT, href).header(CONTENT_TYPE, content_type);
        request = match &condition {
            Precondition::Absent => request.header(IF_NONE_MATCH, "*"),
            Precondition::Matches(etag) => request.header(IF_MATCH, entity_tag(etag)),
        };
        request.body = data.to_vec();
        let response = self.client.send(&request).await?;
        let status = response.status;
        Ok(match status {
            // Xandikos 0.2 refuses an object with a multistatus holding the real status.
            207 => match refused_in_multistatus(&response) {
                Some(outcome) => outcome,
                None => PutOutcome::Written {
                    etag: response.header("etag").map(str::to_string),
                },
            },
            200..=299 => PutOutcome::Written {
                etag: response.header("etag").map(str::to_string),
            },
            // A 412 that names a CalDAV/CardDAV precondition is about the data (Xandikos
            // answers valid-calendar-data so), not about the If-Match/If-None-Match.
            412 => match uid_conflict(&response) {
                Some(other) => PutOutcome::UidConflict { href: other },
                None if names_dav_precondition(&response.body) => refused(&response),
                None => PutOutcome::PreconditionFailed,
            },
            401 => return Err(self.home_error("PUT", &response)),
            507 => return Err(unexpected("PUT", &response)),
            403 | 409 => match uid_conflict(&response) {
                Some(other) => PutOutcome::UidConflict { href: other },
                None => refused(&response),
            },
            s if is_refusal(s) => refused(&response),
            _ => return Err(unexpected("PUT", &response)),
        })
    }

    async fn delete(&self, href: &str, etag: Option<&str>) -> StoreResult<bool> {
        let mut request = Request::new(Method::DELETE, href);
        if let Some(etag) = etag {
            request = request.header(IF_MATCH, entity_tag(etag));
        }
        let response = self.client.send(&request).await?;
        match response.status {
            200..=299 => Ok(true),
            404 | 410 | 412 => Ok(false),
            401 => Err(self.home_error("DELETE", &response)),
            _ => Err(unexpected("DELETE", &response)),
        }
    }

    fn schedules(&self) -> bool {
        self.homes.schedules
    }

    fn href_for(&self, collection: &Collection, name: &str, component: Component) -> String {
        let ext = match component {
            Component::Card => "vcf",
            _ => "ics",
        };
        let mut href = collection.href.clone();
        if !href.ends_with('/') {
            href.push('/');
        }
        format!("{href}{name}.{ext}")
    }

    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// `Some(href)` when a refused PUT names `no-uid-conflict` (CardDAV or CalDAV), with the
/// href of the object holding the UID when the server says it.
fn uid_conflict(response: &Response) -> Option<Option<String>> {
    let found = xml::error_names(&response.body, CARDDAV, "no-uid-conflict")
        .or_else(|| xml::error_names(&response.body, CALDAV, "no-uid-conflict"))?;
    Some(
        found
            .child(DAV, "href")
            .and_then(xml::Element::trimmed)
            .map(|h| xml::normalize_href(&h, &response.url)),
    )
}

/// Whether a body is a `DAV:error` naming a CalDAV or CardDAV precondition.
fn names_dav_precondition(body: &[u8]) -> bool {
    xml::parse(body).is_ok_and(|root| {
        root.is(DAV, "error")
            && root
                .children
                .iter()
                .any(|c| c.ns == CALDAV || c.ns == CARDDAV)
    })
}

/// The refusal a PUT's 207 carries, if any of its responses failed.
fn refused_in_multistatus(response: &Response) -> Option<PutOutcome> {
    let ms = xml::multistatus(&response.body, &response.url).ok()?;
    let failed = ms
        .responses
        .iter()
        .find(|r| r.status.is_some_and(|s| !(200..300).contains(&s)))?;
    let status = failed.status.unwrap_or(500);
    if let Some(error) = &failed.error
        && (error.child(CARDDAV, "no-uid-conflict").is_some()
            || error.child(CALDAV, "no-uid-conflict").is_some())
    {
        let href = error
            .find(DAV, "href")
            .and_then(xml::Element::trimmed)
            .map(|h| xml::normalize_href(&h, &response.url));
        return Some(PutOutcome::UidConflict { href });
    }
    let mut reason = String::new();
    if let Some(error) = failed.error.as_ref().and_then(|e| e.children.first()) {
        reason.push_str(&error.name);
    }
    let description = xml::parse(&response.body).ok().and_then(|root| {
        root.find(DAV, "responsedescription")
            .and_then(xml::Element::trimmed)
    });
    if let Some(description) = description {
        if !reason.is_empty() {
            reason.push_str(": ");
        }
        reason.push_str(&excerpt(description.as_bytes()));
    }
    if reason.is_empty() {
        reason = response.excerpt();
    }
    Some(PutOutcome::Refused { status, reason })
}

fn refused(response: &Response) -> PutOutcome {
    let mut reason = reqwest::StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("refused")
        .to_string();
    let body = excerpt(&response.body);
    if !body.is_empty() {
        reason.push_str(": ");
        reason.push_str(&body);
    }
    PutOutcome::Refused {
        status: response.status,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::config::Auth;
    use super::super::scripted::{answer, scripted};
    use super::*;

    fn store(url: &str) -> DavStore {
        let config = DavConfig {
            url: url.into(),
            auth: Auth::None,
            attempts: 2,
            backoff: Duration::from_millis(1),
            ..DavConfig::default()
        };
        DavStore {
            client: Client::new(&config).unwrap(),
            homes: Homes::default(),
        }
    }

    fn calendar() -> Collection {
        Collection {
            name: "cal".into(),
            href: "/alice/cal/".into(),
            display_name: None,
            color: None,
            description: None,
            components: vec![Component::Event],
            sync_token: None,
            ctag: None,
            vcard_versions: Vec::new(),
            max_size: None,
        }
    }

    async fn put_answered(status: &str, body: &str) -> StoreResult<PutOutcome> {
        let server = scripted(vec![answer(status, &[], body)]);
        store(&server.url)
            .put(
                &calendar(),
                "/alice/cal/x.ics",
                b"BEGIN:VCALENDAR\r\n",
                Precondition::Matches("abc".into()),
            )
            .await
    }

    #[tokio::test]
    async fn a_put_is_sent_with_its_type_and_condition() {
        let server = scripted(vec![answer("201 Created", &["ETag: \"e2\""], "")]);
        let outcome = store(&server.url)
            .put(
                &calendar(),
                "/alice/cal/x y.ics",
                b"BEGIN:VCALENDAR\r\n",
                Precondition::Absent,
            )
            .await
            .unwrap();
        assert_eq!(
            outcome,
            PutOutcome::Written {
                etag: Some("\"e2\"".into())
            }
        );
        let seen = server.seen.lock().unwrap();
        assert!(
            seen[0].starts_with("PUT /alice/cal/x%20y.ics "),
            "{}",
            seen[0]
        );
        assert!(seen[0].contains("if-none-match: *"), "{}", seen[0]);
        assert!(
            seen[0].contains("content-type: text/calendar; charset=utf-8"),
            "{}",
            seen[0]
        );
    }

    #[tokio::test]
    async fn a_uid_conflict_names_the_other_href() {
        let body = r#"<?xml version="1.0"?><D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><C:no-uid-conflict><D:href>/alice/cal/other%20one.ics</D:href></C:no-uid-conflict></D:error>"#;
        let outcome = put_answered("403 Forbidden", body).await.unwrap();
        assert_eq!(
            outcome,
            PutOutcome::UidConflict {
                href: Some("/alice/cal/other one.ics".into())
            }
        );
    }

    #[tokio::test]
    async fn a_refused_object_carries_the_status_and_the_servers_words() {
        let outcome = put_answered("413 Payload Too Large", "Card over\n 1 MB")
            .await
            .unwrap();
        assert_eq!(
            outcome,
            PutOutcome::Refused {
                status: 413,
                reason: "Payload Too Large: Card over 1 MB".into()
            }
        );
        let outcome = put_answered("409 Conflict", "").await.unwrap();
        assert!(matches!(outcome, PutOutcome::Refused { status: 409, .. }));
    }

    #[tokio::test]
    async fn a_plain_412_is_the_precondition() {
        let outcome = put_answered("412 Precondition Failed", "").await.unwrap();
        assert_eq!(outcome, PutOutcome::PreconditionFailed);
    }

    #[tokio::test]
    async fn a_full_destination_is_a_quota_error() {
        let err = put_answered("507 Insufficient Storage", "")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Quota, "{err:?}");
    }

    #[tokio::test]
    async fn expired_tokens_and_missing_reports_mean_list_instead() {
        let expired = r#"<D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>"#;
        for (status, body) in [
            ("403 Forbidden", expired),
            ("409 Conflict", expired),
            ("501 Not Implemented", ""),
            ("400 Bad Request", ""),
        ] {
            let server = scripted(vec![answer(status, &[], body)]);
            let delta = store(&server.url).changes(&calendar(), "t1").await.unwrap();
            assert_eq!(delta, None, "{status}");
        }
    }

    #[tokio::test]
    async fn truncated_sync_results_are_followed() {
        let page = |entries: &str, token: &str| {
            format!(
                "<D:multistatus xmlns:D=\"DAV:\">{entries}<D:sync-token>{token}</D:sync-token>\
                 </D:multistatus>"
            )
        };
        let first = page(
            "<D:response><D:href>/alice/cal/a.ics</D:href><D:propstat><D:prop>\
             <D:getetag>\"1\"</D:getetag></D:prop><D:status>HTTP/1.1 200 OK</D:status>\
             </D:propstat></D:response>\
             <D:response><D:href>/alice/cal/</D:href>\
             <D:status>HTTP/1.1 507 Insufficient Storage</D:status></D:response>",
            "t2",
        );
        let second = page(
            "<D:response><D:href>/alice/cal/a.ics</D:href>\
             <D:status>HTTP/1.1 404 Not Found</D:status></D:response>",
            "t3",
        );
        let server = scripted(vec![
            answer("207 Multi-Status", &[], &first),
            answer("207 Multi-Status", &[], &second),
        ]);
        let delta = store(&server.url)
            .changes(&calendar(), "t1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delta.token, "t3");
        assert!(delta.changed.is_empty(), "{delta:?}");
        assert_eq!(delta.removed, vec!["/alice/cal/a.ics".to_string()]);
        let seen = server.seen.lock().unwrap();
        assert!(
            seen[1].contains("<D:sync-token>t2</D:sync-token>"),
            "{}",
            seen[1]
        );
    }

    #[tokio::test]
    async fn a_refused_multiget_falls_back_to_get() {
        let server = scripted(vec![
            answer("405 Method Not Allowed", &[], ""),
            answer("200 OK", &["ETag: \"g1\""], "BEGIN:VCALENDAR\r\n"),
            answer("404 Not Found", &[], ""),
        ]);
        let hrefs = vec![
            "/alice/cal/a.ics".to_string(),
            "/alice/cal/b.ics".to_string(),
        ];
        let fetched = store(&server.url).fetch(&calendar(), &hrefs).await.unwrap();
        assert_eq!(
            fetched,
            vec![Fetched {
                href: "/alice/cal/a.ics".into(),
                etag: Some("\"g1\"".into()),
                data: b"BEGIN:VCALENDAR\r\n".to_vec(),
            }]
        );
    }

    #[test]
    fn collections_are_read_from_their_properties() {
        let body = r#"<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:a="urn:ietf:params:xml:ns:carddav" xmlns:i="http://apple.com/ns/ical/" xmlns:s="http://calendarserver.org/ns/">
<d:response><d:href>/h/Caf%C3%A9%20book/</d:href><d:propstat><d:prop>
 <d:resourcetype><d:collection/><a:addressbook/></d:resourcetype>
 <d:displayname> Café </d:displayname><a:addressbook-description>Friends</a:addressbook-description>
 <a:supported-address-data><a:address-data-type content-type="text/vcard" version="4.0"/>
  <a:address-data-type content-type="application/vcard+json" version="4.0"/>
  <a:content-type content-type="text/vcard" version="3.0"/></a:supported-address-data>
 <a:max-resource-size>102400</a:max-resource-size><d:sync-token>tok</d:sync-token><s:getctag>"c1"</s:getctag>
</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
<d:response><d:href>/h/tasks</d:href><d:propstat><d:prop>
 <d:resourcetype><d:collection/><c:calendar/></d:resourcetype><i:calendar-color>#112233</i:calendar-color>
 <c:supported-calendar-component-set><c:comp name="VTODO"/><c:comp name="VFREEBUSY"/></c:supported-calendar-component-set>
</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
<d:propstat><d:prop><c:calendar-description/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>
<d:response><d:href>/h/inbox/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/><c:schedule-inbox/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
</d:multistatus>"#;
        let base = reqwest::Url::parse("https://x/h/").unwrap();
        let ms = xml::multistatus(body.as_bytes(), &base).unwrap();
        let found: Vec<Collection> = ms.responses.iter().filter_map(collection_of).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[0],
            Collection {
                name: "Café book".into(),
                href: "/h/Café book/".into(),
                display_name: Some("Café".into()),
                color: None,
                description: Some("Friends".into()),
                components: vec![Component::Card],
                sync_token: Some("tok".into()),
                ctag: Some("\"c1\"".into()),
                vcard_versions: vec!["3.0".into(), "4.0".into()],
                max_size: Some(102_400),
            }
        );
        assert_eq!(found[1].href, "/h/tasks/");
        assert_eq!(found[1].components, vec![Component::Task]);
        assert_eq!(found[1].color.as_deref(), Some("#112233"));
        assert_eq!(found[1].description, None);
    }

    #[test]
    fn object_data_drops_indentation_but_keeps_the_final_line_break() {
        assert_eq!(
            object_data("\n  BEGIN:X\r\nEND:X\r\n  "),
            "BEGIN:X\r\nEND:X\r\n"
        );
        assert_eq!(object_data("BEGIN:X\nEND:X"), "BEGIN:X\nEND:X");
        assert_eq!(object_data("BEGIN:X\nEND:X\n\n\n"), "BEGIN:X\nEND:X\n");
    }

    #[test]
    fn entity_tags_are_quoted_once() {
        assert_eq!(entity_tag("\"abc\""), "\"abc\"");
        assert_eq!(entity_tag("abc"), "\"abc\"");
        assert_eq!(entity_tag("W/\"abc\""), "W/\"abc\"");
    }
}
