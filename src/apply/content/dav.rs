//! Contacts, calendars and tasks as content kinds: the CardDAV/CalDAV and files engine
//! (`mailshift-dav`) behind [`ContentSync`], its records kept in the state through
//! [`DavStoreJournal`], its report put in words.
//!
//! Each side of an account is a DAV server (the platform's `dav` URL, discovered per RFC 6764
//! with the account's login) or, for a `files` platform, the account's directory
//! `PATH/ADDRESS/`. The three kinds share the engine and differ only by the components they
//! copy: cards; events (and journal entries); tasks.
//!
//! An `exchange` or `ovh-exchange` platform with `ews:` (or an `exchange` one with no `dav:`)
//! is reached through Exchange Web Services instead (`mailshift-ews`): its URL from `ews.url`,
//! else `https://HOST/EWS/Exchange.asmx` with an OVHcloud platform's detected host, else
//! Autodiscover; what Exchange cannot carry is reported with the copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mailshift_dav::dav::{Auth, DavConfig, DavStore, Secret};
use mailshift_dav::error::ErrorKind as DavKind;
use mailshift_dav::files::FileStore;
use mailshift_dav::journal::{
    CollectionRecord, Journal, JournalError, ObjectRecord, RefusedRecord,
};
use mailshift_dav::store::{
    Collection, Component, Delta, Fetched, Listed, Listing, Precondition, PutOutcome, Store,
    StoreError, StoreResult,
};
use mailshift_dav::sync::{self, CollectionRules, Job, SyncError, SyncReport};
use mailshift_dav::verify::Check;
use mailshift_graph::GraphStore;

use mailshift_ews::{AuthScheme, EwsConfig, EwsStore};

use super::{
    Checked, ContentReport, ContentResult, ContentSync, FailedParts, Prepared, Preview, SyncRun,
    Synced,
};
use crate::apply::dav_journal::{DavStoreJournal, from_collection, from_object};
use crate::apply::{Hooks, human_bytes};
use crate::error::{ErrorKind, StepError};
use crate::model::{AccountSpec, ResourceKind, dest_login, source_login};
use crate::plan::Loaded;
use crate::plan::diagnostic::plural;
use crate::plan::model::{
    CalendarAttendees, Content, Credentials, EwsAuth, MigrationOptions, Platform, PlatformKind,
};
use crate::state::StateReader;

/// The engine for one kind of content: contacts, calendars or tasks.
pub(super) struct DavSync(pub ResourceKind);

/// The components one kind of content copies.
pub(crate) fn components(kind: ResourceKind) -> Vec<Component> {
    match kind {
        ResourceKind::Contacts => vec![Component::Card],
        ResourceKind::Tasks => vec![Component::Task],
        // Journal entries live in calendars and belong to no other kind.
        _ => vec![Component::Event, Component::Journal],
    }
}

/// An account's destination for contacts, calendars and tasks, opened (for `rollback`, which
/// deletes there and never reads the source). Secrets are read here and never kept.
pub(crate) async fn open_destination(
    loaded: &Loaded,
    account: &AccountSpec,
) -> Result<Side, String> {
    let dest = end(
        loaded,
        &account.dest,
        &account.account.destination,
        dest_login(&account.account),
        &account.address,
        true,
        &account.options,
    )?;
    dest.open().await.map_err(|e| e.message)
}

impl DavSync {
    fn components(&self) -> Vec<Component> {
        components(self.0)
    }

    /// The plan's name for this kind of content.
    fn content(&self) -> Content {
        match self.0 {
            ResourceKind::Contacts => Content::Contacts,
            ResourceKind::Tasks => Content::Tasks,
            _ => Content::Calendars,
        }
    }

    /// What one item is called, in counts ("3 contacts").
    fn noun(&self) -> &'static str {
        noun(self.content())
    }
}

/// What one item of `content` is called, in counts ("3 contacts").
fn noun(content: Content) -> &'static str {
    match content {
        Content::Contacts => "contact",
        Content::Tasks => "task",
        _ => "event",
    }
}

impl ContentSync for DavSync {
    fn prepare(
        &self,
        account: &AccountSpec,
        loaded: &Loaded,
    ) -> Result<Box<dyn Prepared>, StepError> {
        let a = &account.account;
        let source = end(
            loaded,
            &account.source,
            &a.source,
            source_login(a),
            &account.address,
            false,
            &account.options,
        )
        .map_err(|e| StepError::config(format!("source: {e}")))?;
        let dest = end(
            loaded,
            &account.dest,
            &a.destination,
            dest_login(a),
            &account.address,
            true,
            &account.options,
        )
        .map_err(|e| StepError::config(format!("destination: {e}")))?;
        let rules = a
            .collections
            .as_ref()
            .map(|c| CollectionRules {
                include: c.include.clone(),
                exclude: c.exclude.clone(),
                map: c.map.clone(),
            })
            .unwrap_or_default();
        Ok(Box::new(Collections {
            address: account.address.clone(),
            components: self.components(),
            content: self.content(),
            rules,
            source,
            dest,
        }))
    }
}

/// One side of an account, as the plan says to reach it; connected when used.
#[derive(Clone)]
enum End {
    Dav(DavConfig),
    Graph(Box<mailshift_graph::GraphConfig>),

    Ews(Box<EwsConfig>),
    Files { dir: PathBuf, writable: bool },
}

/// Where and how to reach one side; secrets are read now.
fn end(
    loaded: &Loaded,
    platform: &Platform,
    creds: &Credentials,
    login: String,
    address: &str,
    writable: bool,
    options: &MigrationOptions,
) -> Result<End, String> {
    let base = &loaded.base_dir;
    if platform.kind == PlatformKind::Microsoft365 {
        return graph_end(loaded, platform, creds, &login, address, options);
    }
    if platform.kind == PlatformKind::Files {
        let dir = base
            .join(platform.path.as_deref().unwrap_or_default())
            .join(address);
        if !writable && !dir.is_dir() {
            return Err(format!(
                "no directory {} to read the account's files from: create it with the account's .vcf/.ics files, or fix the platform's `path`",
                dir.display()
            ));
        }
        return Ok(End::Files { dir, writable });
    }
    let resolve = |s: &crate::plan::secret::SecretRef| {
        s.resolve(base)
            .map(|v| Secret::new(v.expose()))
            .map_err(|e| e.to_string())
    };
    let auth = match (&creds.password, &creds.oauth2_token) {
        (_, Some(token)) => Auth::Bearer(resolve(token)?),
        (Some(pw), None) => Auth::Basic {
            login,
            password: resolve(pw)?,
        },
        (None, None) => Auth::None,
    };
    if uses_ews(platform) {
        return ews_end(base, platform, auth, address);
    }
    let dav = platform
        .dav
        .as_ref()
        .ok_or("the platform has no `dav` endpoint")?;
    let mut config = DavConfig::new(dav.url.clone(), auth);
    config.ca_file = dav.ca_file.as_ref().map(|ca| base.join(ca));
    config.insecure_skip_verify = dav.insecure_skip_verify;
    Ok(End::Dav(config))
}

/// A side's Exchange groupware, reached exactly as its contacts are (EWS: `ews.url`, the
/// OVHcloud service's host, Autodiscover; Graph: the account's `oauth2` with Graph's scopes):
/// the rules engine's EWS and Graph ends. `None` when the platform's groupware is not
/// Exchange's.
pub(crate) enum Groupware {
    Ews(Box<EwsConfig>),
    Graph(Box<mailshift_graph::GraphConfig>),
}

pub(crate) fn groupware_end(
    loaded: &Loaded,
    platform: &Platform,
    creds: &Credentials,
    login: String,
    address: &str,
    options: &MigrationOptions,
) -> Result<Option<Groupware>, String> {
    if platform.kind != PlatformKind::Microsoft365 && !uses_ews(platform) {
        return Ok(None);
    }
    Ok(
        match end(loaded, platform, creds, login, address, true, options)? {
            End::Ews(config) => Some(Groupware::Ews(config)),
            End::Graph(config) => Some(Groupware::Graph(config)),
            End::Dav(_) | End::Files { .. } => None,
        },
    )
}

/// A Microsoft 365 side: its mailbox through Microsoft Graph (the platform's `graph.url`, else
/// Microsoft's), with a token for Graph's audience (`crate::auth::graph_tokens_for`), and the
/// plan's choice for attendees (`options.calendar_attendees`).
fn graph_end(
    loaded: &Loaded,
    platform: &Platform,
    creds: &Credentials,
    login: &str,
    address: &str,
    options: &MigrationOptions,
) -> Result<End, String> {
    let base = &loaded.base_dir;
    let tokens: Arc<dyn mailshift_graph::TokenSource> = match &creds.oauth2_token {
        Some(token) => {
            let token = token
                .resolve(base)
                .map(|v| Secret::new(v.expose()))
                .map_err(|e| e.to_string())?;
            Arc::new(mailshift_graph::FixedToken(token))
        }
        None => match crate::auth::graph_tokens_for(loaded, platform, creds, login)? {
            Some(tokens) => Arc::new(GraphTokens(tokens)),
            None => {
                return Err(
                    "Microsoft Graph takes OAuth2 tokens only: give the account (or the platform) an `oauth2` block, or an `oauth2_token` valid for https://graph.microsoft.com".into(),
                );
            }
        },
    };
    let graph = platform.graph.as_ref();
    let mut config = mailshift_graph::GraphConfig::new(
        graph.and_then(|g| g.url.as_deref()),
        tokens,
        // The mailbox is the account's address; the login may be an admin's UPN.
        address,
    );
    config.ca_file = graph
        .and_then(|g| g.ca_file.as_ref())
        .map(|ca| base.join(ca));
    config.insecure_skip_verify = graph.is_some_and(|g| g.insecure_skip_verify);
    config.attendees = match options.calendar_attendees {
        None | Some(CalendarAttendees::KeepWithoutInvitations) => {
            mailshift_graph::Attendees::KeepWithoutInvitations
        }
        Some(CalendarAttendees::Drop) => mailshift_graph::Attendees::Drop,
        Some(CalendarAttendees::Send) => mailshift_graph::Attendees::Send,
    };
    Ok(End::Graph(Box::new(config)))
}

/// mailshift's token cache (the one IMAP logins use, asked for Graph's scopes) as the Graph
/// client's token source.
struct GraphTokens(crate::transfer::imap::session::Tokens);

impl mailshift_graph::TokenSource for GraphTokens {
    fn token(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Secret, StoreError>> + Send + '_>>
    {
        Box::pin(async move {
            self.0
                .0
                .token()
                .await
                .map(|t| Secret::new(t.expose()))
                .map_err(|e| {
                    use mailshift_imap::error::ErrorKind as Imap;
                    StoreError {
                        kind: match e.kind {
                            Imap::Auth => DavKind::Auth,
                            Imap::Network => DavKind::Network,
                            Imap::Throttled => DavKind::Throttled,
                            Imap::Tls => DavKind::Tls,
                            _ => DavKind::Config,
                        },
                        message: e.message,
                        retry_after: None,
                    }
                })
        })
    }

    fn refused(&self, token: &Secret) {
        self.0
            .0
            .expired(&crate::transfer::imap::session::Secret::new(token.expose()));
    }
}

/// Whether a platform's contacts, calendars and tasks are reached over EWS: `ews:` on an
/// Exchange platform, or an `exchange` platform without `dav:` (Autodiscover finds it).
/// Otherwise DAV (DavMail in front of Exchange keeps working as before).
pub(crate) fn uses_ews(platform: &Platform) -> bool {
    match platform.kind {
        PlatformKind::Exchange => platform.ews.is_some() || platform.dav.is_none(),
        PlatformKind::OvhExchange => platform.ews.is_some(),
        _ => false,
    }
}

/// The EWS side of an account: `ews.url`, else the OVHcloud service's host, else
/// Autodiscover from the account's address.
fn ews_end(base: &Path, platform: &Platform, auth: Auth, address: &str) -> Result<End, String> {
    let ews = platform.ews.clone().unwrap_or_default();
    let url = match (&ews.url, platform.kind) {
        (Some(url), _) => url.clone(),
        (None, PlatformKind::OvhExchange) => {
            let server = platform.imap_server().map_err(|e| {
                format!("{e}; or set the platform's `ews.url` (https://exN.mail.ovh.net/EWS/Exchange.asmx)")
            })?;
            format!("https://{}/EWS/Exchange.asmx", server.host)
        }
        // Autodiscover, when the store connects.
        (None, _) => String::new(),
    };
    let mut config = EwsConfig::new(url, address, auth);
    if let Some(version) = &ews.version {
        config.version = version.clone();
    }
    config.ca_file = ews.ca_file.as_ref().map(|ca| base.join(ca));
    config.insecure_skip_verify = ews.insecure_skip_verify;
    config.auth_scheme = match ews.auth.unwrap_or_default() {
        EwsAuth::Basic => AuthScheme::Basic,
        EwsAuth::Ntlm => AuthScheme::Ntlm,
        EwsAuth::Auto => AuthScheme::Auto,
    };
    Ok(End::Ews(Box::new(config)))
}

impl End {
    async fn open(&self) -> Result<Side, StoreError> {
        Ok(match self {
            End::Ews(config) => Side::Ews(Box::new(EwsStore::connect((**config).clone()).await?)),
            End::Graph(config) => Side::Graph(Box::new(GraphStore::connect((**config).clone())?)),
            End::Dav(config) => Side::Dav(Box::new(DavStore::connect(config.clone()).await?)),
            End::Files { dir, writable } => {
                if *writable {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError {
                        kind: DavKind::Config,
                        message: format!("cannot create {}: {e}", dir.display()),
                        retry_after: None,
                    })?;
                }
                Side::Files(FileStore::new(dir.clone(), *writable))
            }
        })
    }
}

/// An opened side: the engine is generic over its two stores, this picks one at run time.
pub(crate) enum Side {
    Dav(Box<DavStore>),
    Graph(Box<GraphStore>),
    Files(FileStore),
    Ews(Box<EwsStore>),
}

impl Side {
    /// What was wrong in a files source's files of one `extension`, as report lines
    /// (`file line N: ...`).
    fn problems(&self, extension: &str) -> Vec<String> {
        match self {
            Side::Files(f) => f
                .problems()
                .into_iter()
                .filter(|(file, _)| file.ends_with(extension))
                .map(|(file, p)| {
                    if p.line == 0 {
                        format!("{file}: {}", p.message)
                    } else {
                        format!("{file} line {}: {}", p.line, p.message)
                    }
                })
                .collect(),

            Side::Dav(_) | Side::Ews(_) | Side::Graph(_) => Vec::new(),
        }
    }

    /// What an Exchange or Microsoft 365 destination could not carry, as report lines.
    fn losses(&self) -> Vec<String> {
        match self {
            Side::Ews(e) => e.losses(),
            Side::Graph(g) => g.losses(),
            _ => Vec::new(),
        }
    }
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Side::Dav($s) => $e,
            Side::Graph($s) => $e,
            Side::Files($s) => $e,
            Side::Ews($s) => $e,
        }
    };
}

impl Store for Side {
    async fn collections(&self, component: Component) -> StoreResult<Vec<Collection>> {
        both!(self, s => s.collections(component).await)
    }

    async fn create_collection(&self, name: &str, like: &Collection) -> StoreResult<Collection> {
        both!(self, s => s.create_collection(name, like).await)
    }

    async fn list(&self, collection: &Collection) -> StoreResult<Vec<Listed>> {
        both!(self, s => s.list(collection).await)
    }

    async fn changes(&self, collection: &Collection, token: &str) -> StoreResult<Option<Delta>> {
        both!(self, s => s.changes(collection, token).await)
    }

    async fn list_with_token(&self, collection: &Collection) -> StoreResult<Listing> {
        both!(self, s => s.list_with_token(collection).await)
    }

    fn listing_token(&self) -> bool {
        both!(self, s => s.listing_token())
    }

    async fn fetch(&self, collection: &Collection, hrefs: &[String]) -> StoreResult<Vec<Fetched>> {
        both!(self, s => s.fetch(collection, hrefs).await)
    }

    async fn put(
        &self,
        collection: &Collection,
        href: &str,
        data: &[u8],
        condition: Precondition,
    ) -> StoreResult<PutOutcome> {
        both!(self, s => s.put(collection, href, data, condition).await)
    }

    async fn delete(&self, href: &str, etag: Option<&str>) -> StoreResult<bool> {
        both!(self, s => s.delete(href, etag).await)
    }

    fn schedules(&self) -> bool {
        both!(self, s => s.schedules())
    }

    fn requires_uid(&self) -> bool {
        both!(self, s => s.requires_uid())
    }

    fn href_for(&self, collection: &Collection, name: &str, component: Component) -> String {
        both!(self, s => s.href_for(collection, name, component))
    }

    fn canonical<'a>(&self, component: Component, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        both!(self, s => s.canonical(component, data))
    }

    async fn flush(&self) -> StoreResult<()> {
        both!(self, s => s.flush().await)
    }
}

/// Both sides of an account, for one kind of content.
struct Collections {
    address: String,
    components: Vec<Component>,
    /// Which kind this is (`calendars` copies events and journal entries).
    content: Content,
    rules: CollectionRules,
    source: End,
    dest: End,
}

impl Collections {
    async fn open(&self) -> Result<(Side, Side), StepError> {
        let source = self
            .source
            .open()
            .await
            .map_err(|e| store_error(e).context("source"))?;
        let dest = self
            .dest
            .open()
            .await
            .map_err(|e| store_error(e).context("destination"))?;
        Ok((source, dest))
    }

    fn job(&self, sync_point: u64, full_scan: bool) -> Job {
        Job {
            account: self.address.clone(),
            components: self.components.clone(),
            rules: self.rules.clone(),
            sync_point,
            full_scan,
        }
    }
}

impl Prepared for Collections {
    fn sync<'a>(&'a self, run: SyncRun<'a>) -> ContentResult<'a, Result<Synced, StepError>> {
        Box::pin(async move {
            let (source, dest) = self.open().await?;
            let journal = DavStoreJournal::new(run.store.clone(), run.id.to_string());
            let progress = HooksProgress {
                hooks: run.hooks.clone(),
                kind: self.content.as_str(),
            };
            let job = self.job(run.sync_point, run.full_scan);
            let report = sync::sync(&job, &source, &dest, &journal, &progress, &run.stop)
                .await
                .map_err(sync_error)?;
            // A files source lists the problems of every file it read; each kind names those
            // of its own files.
            let extension = if self.components.contains(&Component::Card) {
                ".vcf"
            } else {
                ".ics"
            };
            let mut problems = source.problems(extension);
            problems.extend(dest.losses());
            Ok(self.synced(report, problems))
        })
    }

    fn verify<'a>(
        &'a self,
        state: Option<&'a StateReader>,
        list_limit: usize,
    ) -> ContentResult<'a, Result<Checked, StepError>> {
        Box::pin(async move {
            let id = self.resource_id();
            let (records, refused) = match state {
                Some(reader) => {
                    let records: BTreeMap<String, CollectionRecord> = reader
                        .dav_collections(&id)
                        .map_err(StepError::from)?
                        .into_iter()
                        .map(|(name, r)| (name, from_collection(r)))
                        .collect();
                    let refused: BTreeMap<(String, String), String> = reader
                        .dav_refused(&id)
                        .map_err(StepError::from)?
                        .into_iter()
                        .map(|(c, k, r)| ((c, k), r.reason))
                        .collect();
                    (Some(records), refused)
                }
                None => (None, BTreeMap::new()),
            };
            let check = match self.open().await {
                Ok((source, dest)) => {
                    mailshift_dav::verify::verify(
                        &self.components,
                        &self.rules,
                        &source,
                        &dest,
                        records.as_ref(),
                        &refused,
                        list_limit,
                    )
                    .await
                }
                Err(e) => Check {
                    collections: Vec::new(),
                    error: Some(e.message),
                },
            };
            Ok(Checked::Dav(DavCheck {
                account: self.address.clone(),
                kind: self.noun(),
                check,
            }))
        })
    }

    fn size(&self) -> ContentResult<'_, Result<u64, StepError>> {
        Box::pin(async move {
            let (source, _) = self.open().await?;
            mailshift_dav::preview::source_size(&source, &self.components, &self.rules)
                .await
                .map_err(|e| sync_error(e).context("cannot measure the source"))
        })
    }

    fn preview<'a>(
        &'a self,
        state: &'a StateReader,
        id: &'a str,
    ) -> ContentResult<'a, Result<Preview, StepError>> {
        Box::pin(async move {
            let (source, dest) = self.open().await?;
            let journal = ReaderJournal::read(state, id)?;
            let job = self.job(0, false);
            // Not sized: the engine's preview counts objects in its sentences, and a few KB
            // each weigh nothing next to mail.
            mailshift_dav::preview::preview(&job, &source, &dest, &journal)
                .await
                .map(Preview::from)
                .map_err(sync_error)
        })
    }
}

impl Collections {
    /// The state key of this kind's resource for the account.
    fn resource_id(&self) -> String {
        crate::model::ResourceAddr::Content {
            account: self.address.clone(),
            content: self.content,
        }
        .to_string()
    }

    /// What one item is called, in counts ("3 contacts").
    fn noun(&self) -> &'static str {
        noun(self.content)
    }

    /// A copy's report in the executor's terms.
    fn synced(&self, report: SyncReport, problems: Vec<String>) -> Synced {
        let sum = |f: fn(&sync::CollectionReport) -> u64| -> u64 {
            report.collections.iter().map(f).sum()
        };
        let (copied, updated, adopted, bytes) = (
            sum(|c| c.copied),
            sum(|c| c.updated),
            sum(|c| c.adopted),
            sum(|c| c.bytes),
        );
        let mut parts = Vec::new();
        if copied > 0 {
            parts.push(format!("{} copied", plural(copied as usize, self.noun())));
        }
        if updated > 0 {
            parts.push(format!("{} updated", plural(updated as usize, self.noun())));
        }
        if adopted > 0 {
            parts.push(format!(
                "{} already on the destination, adopted",
                plural(adopted as usize, self.noun())
            ));
        }
        let created: Vec<&str> = report
            .collections
            .iter()
            .filter(|c| c.created)
            .map(|c| c.name.as_str())
            .collect();
        if !created.is_empty() {
            parts.push(format!(
                "{} created ({})",
                plural(created.len(), "collection"),
                created.join(", ")
            ));
        }
        let mut summary = if parts.is_empty() {
            format!("no {}s to write", self.noun())
        } else {
            parts.join(", ")
        };
        if bytes > 0 {
            summary.push_str(&format!(" ({} written)", human_bytes(bytes)));
        }
        let mut notes = Vec::new();
        for c in &report.collections {
            for r in &c.refused {
                notes.push(format!(
                    "{}: {}{} refused by the destination, skipped: {}",
                    c.name,
                    r.identity,
                    r.summary
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default(),
                    r.reason
                ));
            }
            for b in &c.bad {
                notes.push(format!(
                    "{}: {} line {} cannot be read, skipped: {}",
                    c.name, b.location, b.line, b.message
                ));
            }
            for r in &c.rewrites {
                notes.push(format!(
                    "{}: {}{} rewritten for the destination: {}",
                    c.name,
                    r.identity,
                    r.summary
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default(),
                    r.rewrite
                ));
            }
            for d in &c.duplicates {
                notes.push(format!(
                    "{}: {d} shares its UID with another object of the collection: copied on its own",
                    c.name
                ));
            }
        }
        notes.extend(report.notes());
        notes.extend(problems.into_iter().map(|p| format!("{p} (skipped)")));
        let failed = (!report.failed.is_empty()).then(|| FailedParts {
            detail: format!(
                "{} failed: {}",
                plural(report.failed.len(), "collection"),
                report
                    .failed
                    .iter()
                    .map(|f| format!("{:?}: {}", f.name, f.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            names: report
                .failed
                .iter()
                .map(|f| format!("{:?}", f.name))
                .collect(),
            unit: "collection",
            kind: report
                .failed
                .iter()
                .map(|f| error_kind(f.kind))
                .min_by_key(|k| k.retry())
                .unwrap_or(ErrorKind::Refused),
            retry_after: report.failed.iter().filter_map(|f| f.retry_after).max(),
        });
        Synced {
            summary,
            copied: copied + updated,
            failed,
            paused: None,
            outputs: BTreeMap::new(),
            report: ContentReport::Dav(DavCopy {
                account: self.address.clone(),
                noun: self.noun(),
                objects: copied + updated,
                bytes,
                notes,
                stopped: report.stopped,
            }),
        }
    }
}

/// What a contacts/calendars/tasks copy did, for the apply report.
#[derive(Debug, Clone)]
pub struct DavCopy {
    pub account: String,
    /// What one item is called ("contact").
    pub noun: &'static str,
    /// Objects written (created or updated).
    pub objects: u64,
    pub bytes: u64,
    /// Lines for people: refusals, unreadable objects, rewrites.
    pub notes: Vec<String>,
    pub stopped: bool,
}

/// A comparison of one account's collections of one kind.
#[derive(Debug, Clone)]
pub struct DavCheck {
    pub account: String,
    /// What one item is called ("contact").
    pub kind: &'static str,
    pub check: Check,
}

impl DavCheck {
    /// An account whose sides could not even be prepared (a secret that cannot be read).
    pub fn unreachable(account: &str, kind: ResourceKind, error: String) -> DavCheck {
        DavCheck {
            account: account.to_string(),
            kind: DavSync(kind).noun(),
            check: Check {
                collections: Vec::new(),
                error: Some(error),
            },
        }
    }
}

/// The engine's progress events, told to the executor's hooks: items written are counted
/// apart from messages (the status page and `/metrics` show them by kind).
struct HooksProgress {
    hooks: Arc<dyn Hooks>,
    /// `contacts`, `calendars` or `tasks`.
    kind: &'static str,
}

impl sync::Progress for HooksProgress {
    fn collection_started(&self, account: &str, collection: &str, to_copy: u64) {
        tracing::debug!(
            account,
            collection,
            to_copy,
            kind = self.kind,
            "copying collection"
        );
    }

    fn copied(&self, account: &str, objects: u64, bytes: u64) {
        self.hooks.items_copied(account, self.kind, objects, bytes);
    }

    fn note(&self, account: &str, text: &str) {
        self.hooks.note(account, text);
    }
}

/// The state's records, read for a preview: the engine's journal that never writes.
struct ReaderJournal {
    collections: BTreeMap<String, CollectionRecord>,
    objects: BTreeMap<String, BTreeMap<String, ObjectRecord>>,
    refused: BTreeMap<String, BTreeMap<String, RefusedRecord>>,
}

impl ReaderJournal {
    fn read(reader: &StateReader, id: &str) -> Result<ReaderJournal, StepError> {
        let collections = reader
            .dav_collections(id)
            .map_err(StepError::from)?
            .into_iter()
            .map(|(name, r)| (name, from_collection(r)))
            .collect();
        let mut objects: BTreeMap<String, BTreeMap<String, ObjectRecord>> = BTreeMap::new();
        for (c, key, r) in reader.dav_objects(id).map_err(StepError::from)? {
            let record = from_object(r).map_err(|e| StepError::new(ErrorKind::State, e.0))?;
            objects.entry(c).or_default().insert(key, record);
        }
        let mut refused: BTreeMap<String, BTreeMap<String, RefusedRecord>> = BTreeMap::new();
        for (c, key, r) in reader.dav_refused(id).map_err(StepError::from)? {
            refused.entry(c).or_default().insert(
                key,
                RefusedRecord {
                    reason: r.reason,
                    size: r.size,
                    attempts: r.attempts,
                    sync_point: r.sync_point,
                },
            );
        }
        Ok(ReaderJournal {
            collections,
            objects,
            refused,
        })
    }
}

impl Journal for ReaderJournal {
    fn collections(&self) -> Result<BTreeMap<String, CollectionRecord>, JournalError> {
        Ok(self.collections.clone())
    }

    fn put_collection(&self, _: &str, _: &CollectionRecord) -> Result<(), JournalError> {
        Err(read_only())
    }

    fn objects(&self, collection: &str) -> Result<BTreeMap<String, ObjectRecord>, JournalError> {
        Ok(self.objects.get(collection).cloned().unwrap_or_default())
    }

    fn record(
        &self,
        _: &str,
        _: &[(String, ObjectRecord)],
        _: Option<&CollectionRecord>,
    ) -> Result<(), JournalError> {
        Err(read_only())
    }

    fn forget_objects(&self, _: &str, _: &[String]) -> Result<(), JournalError> {
        Err(read_only())
    }

    fn put_refused(&self, _: &str, _: &str, _: &RefusedRecord) -> Result<(), JournalError> {
        Err(read_only())
    }

    fn clear_refused(&self, _: &str, _: &str) -> Result<(), JournalError> {
        Err(read_only())
    }

    fn refused(&self, collection: &str) -> Result<BTreeMap<String, RefusedRecord>, JournalError> {
        Ok(self.refused.get(collection).cloned().unwrap_or_default())
    }
}

fn read_only() -> JournalError {
    JournalError("a preview reads the state and writes nothing".into())
}

/// The engine's error kinds in mailshift's terms.
fn error_kind(kind: DavKind) -> ErrorKind {
    match kind {
        DavKind::Auth => ErrorKind::Auth,
        DavKind::Tls => ErrorKind::Tls,
        DavKind::Network => ErrorKind::Network,
        DavKind::Throttled => ErrorKind::Throttled,
        DavKind::Refused => ErrorKind::Refused,
        DavKind::Quota => ErrorKind::Quota,
        DavKind::Config => ErrorKind::Config,
        DavKind::State => ErrorKind::State,
        DavKind::Bug => ErrorKind::Bug,
    }
}

fn with_retry(kind: DavKind, message: String, retry_after: Option<Duration>) -> StepError {
    StepError::new(error_kind(kind), message).with_retry_after(retry_after)
}

pub(crate) fn store_error(e: StoreError) -> StepError {
    with_retry(e.kind, e.message, e.retry_after)
}

fn sync_error(e: SyncError) -> StepError {
    with_retry(e.kind, e.message, e.retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ovh_exchange_platform_without_ews_url_uses_the_host_read_from_the_api() {
        let mut platform: Platform = serde_json::from_value(serde_json::json!({
            "type": "ovh-exchange", "provider": "ovh", "organization": "o", "service": "s",
            "ews": {}
        }))
        .unwrap();
        let auth = || Auth::None;
        let url = |p: &Platform| match ews_end(Path::new("/"), p, auth(), "a@example.com") {
            Ok(End::Ews(config)) => Ok(config.url.clone()),
            Ok(_) => panic!("not an EWS end"),
            Err(e) => Err(e),
        };
        let err = url(&platform).unwrap_err();
        assert!(err.contains("ews.url"), "{err}");
        platform.detected_imap_host = Some(Ok("ex5.mail.ovh.net".into()));
        assert_eq!(
            url(&platform).unwrap(),
            "https://ex5.mail.ovh.net/EWS/Exchange.asmx"
        );
        platform.ews = Some(
            serde_json::from_value(serde_json::json!({"url": "https://x/EWS/Exchange.asmx"}))
                .unwrap(),
        );
        assert_eq!(url(&platform).unwrap(), "https://x/EWS/Exchange.asmx");
    }
}
