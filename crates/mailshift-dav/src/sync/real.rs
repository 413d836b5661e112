//! The engine against real ends: Radicale and Xandikos (started on loopback ports by
//! [`crate::testserver`]) through [`DavStore`], and directories of files through [`FileStore`].
//! A wrapper counts writes (a second run must send none) and cuts a run after a given write.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;
use crate::dav::{Auth, DavConfig, DavStore, Secret};
use crate::error::ErrorKind;
use crate::files::FileStore;
use crate::memstore::MemJournal;
use crate::store::{Collection, Delta, Fetched, Listed, Precondition, PutOutcome, StoreResult};
use crate::testserver::{DavServer, ServerKind};
use crate::verify::verify;

/// A store that counts the writes that landed and can be cut after the n-th.
struct Counting<S> {
    inner: S,
    puts: AtomicU64,
    cut_at: Mutex<Option<u64>>,
}

impl<S: Store> Counting<S> {
    fn new(inner: S) -> Self {
        Counting {
            inner,
            puts: AtomicU64::new(0),
            cut_at: Mutex::new(None),
        }
    }

    fn puts(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }

    fn cut_after(&self, n: Option<u64>) {
        *self.cut_at.lock().unwrap() = n.map(|n| self.puts() + n);
    }

    fn cut(&self) -> StoreResult<()> {
        if self
            .cut_at
            .lock()
            .unwrap()
            .is_some_and(|at| self.puts() >= at)
        {
            return Err(StoreError {
                kind: ErrorKind::Bug,
                message: "killed".into(),
                retry_after: None,
            });
        }
        Ok(())
    }
}

impl<S: Store> Store for Counting<S> {
    async fn collections(&self, component: Component) -> StoreResult<Vec<Collection>> {
        self.cut()?;
        self.inner.collections(component).await
    }
    async fn create_collection(&self, name: &str, like: &Collection) -> StoreResult<Collection> {
        self.cut()?;
        self.inner.create_collection(name, like).await
    }
    async fn list(&self, collection: &Collection) -> StoreResult<Vec<Listed>> {
        self.cut()?;
        self.inner.list(collection).await
    }
    async fn changes(&self, collection: &Collection, token: &str) -> StoreResult<Option<Delta>> {
        self.cut()?;
        self.inner.changes(collection, token).await
    }
    async fn fetch(&self, collection: &Collection, hrefs: &[String]) -> StoreResult<Vec<Fetched>> {
        self.cut()?;
        self.inner.fetch(collection, hrefs).await
    }
    async fn put(
        &self,
        collection: &Collection,
        href: &str,
        data: &[u8],
        condition: Precondition,
    ) -> StoreResult<PutOutcome> {
        self.cut()?;
        let out = self.inner.put(collection, href, data, condition).await?;
        if matches!(out, PutOutcome::Written { .. }) {
            self.puts.fetch_add(1, Ordering::SeqCst);
            // Landed, but the engine never hears of it.
            self.cut()?;
        }
        Ok(out)
    }
    async fn delete(&self, href: &str, etag: Option<&str>) -> StoreResult<bool> {
        self.inner.delete(href, etag).await
    }
    fn schedules(&self) -> bool {
        self.inner.schedules()
    }
    fn href_for(&self, collection: &Collection, name: &str, component: Component) -> String {
        self.inner.href_for(collection, name, component)
    }
    fn canonical<'a>(&self, component: Component, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        self.inner.canonical(component, data)
    }
    async fn flush(&self) -> StoreResult<()> {
        self.cut()?;
        self.inner.flush().await
    }
}

async fn connect(server: &DavServer) -> DavStore {
    let config = DavConfig::new(
        server.url(),
        Auth::Basic {
            login: "alice".into(),
            password: Secret::new("secret"),
        },
    );
    DavStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e:?}\n{}", server.kind(), server.log()))
}

fn card3(uid: &str, name: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n\
         TEL;TYPE=CELL:+33 6 00 00 00 00\r\nEND:VCARD\r\n"
    )
}

fn card4_photo(uid: &str, name: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n\
         PHOTO:data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\r\n \
         +M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r\nEND:VCARD\r\n"
    )
}

fn recurring(uid: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
         BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n\
         DTEND:20260105T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260112T100000Z\r\n\
         DTSTART:20260112T140000Z\r\nDTEND:20260112T150000Z\r\nSUMMARY:Weekly (moved)\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn all_day(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260110\r\nDTEND;VALUE=DATE:20260111\r\n\
         SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn todo(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\n\
         DTSTAMP:20260101T000000Z\r\nDUE:20260120T170000Z\r\nSTATUS:NEEDS-ACTION\r\n\
         SUMMARY:{summary}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
}

fn job(components: &[Component], sync_point: u64) -> Job {
    Job {
        account: "alice".into(),
        components: components.to_vec(),
        rules: CollectionRules::default(),
        sync_point,
        full_scan: false,
    }
}

const KINDS: [&[Component]; 3] = [
    &[Component::Card],
    &[Component::Event, Component::Journal],
    &[Component::Task],
];

async fn check_equal<S: Store, D: Store>(source: &S, dest: &D, journals: &[MemJournal; 3]) {
    for (components, journal) in KINDS.iter().zip(journals) {
        let check = verify(
            components,
            &CollectionRules::default(),
            source,
            dest,
            Some(&journal.collections().unwrap()),
            &BTreeMap::new(),
            10,
        )
        .await;
        assert!(check.equal(), "{components:?}: {check:#?}");
        assert!(
            check.collections.iter().any(|c| c.source_count > 0),
            "{components:?}: {check:#?}"
        );
    }
}

/// Every kind copied, cut after the `cut`-th write, then run to the end; verified equal; a
/// last run writes nothing.
async fn copy_all<S: Store, D: Store>(source: &S, dest: &Counting<D>, cut: u64) -> [MemJournal; 3] {
    let journals = [
        MemJournal::default(),
        MemJournal::default(),
        MemJournal::default(),
    ];
    let stop = AtomicBool::new(false);
    for (components, journal) in KINDS.iter().zip(&journals) {
        dest.cut_after(Some(cut));
        let _ = sync(
            &job(components, 1),
            source,
            dest,
            journal,
            &NoProgress,
            &stop,
        )
        .await;
        dest.cut_after(None);
        let r = sync(
            &job(components, 2),
            source,
            dest,
            journal,
            &NoProgress,
            &stop,
        )
        .await
        .unwrap();
        assert!(r.failed.is_empty(), "{components:?}: {r:#?}");
    }
    check_equal(source, dest, &journals).await;
    let puts = dest.puts();
    for (components, journal) in KINDS.iter().zip(&journals) {
        let r = sync(
            &job(components, 3),
            source,
            dest,
            journal,
            &NoProgress,
            &stop,
        )
        .await
        .unwrap();
        assert!(r.failed.is_empty(), "{r:#?}");
    }
    assert_eq!(dest.puts(), puts, "a second run writes nothing");
    journals
}

/// The corpus on a server: an address book with vCards 3.0 and 4.0 (photo, non-ASCII name), a
/// calendar with a recurring event and its override, an all-day event and a task.
fn fill(server: &DavServer) -> (String, String) {
    let book = server.default_addressbook("alice");
    let cal = server.default_calendar("alice");
    for (i, c) in [
        card3("c1", "Zoë Ünal"),
        card4_photo("c2", "Photo Person"),
        card3("c3", "Third"),
    ]
    .iter()
    .enumerate()
    {
        assert!(matches!(
            server.put_raw(&format!("{book}c{i}.vcf"), c),
            200..=299
        ));
    }
    for (name, body) in [
        ("r.ics", recurring("rec-1")),
        ("a.ics", all_day("day-1", "Holiday")),
        ("t.ics", todo("task-1", "Report")),
    ] {
        let status = server.put_raw(&format!("{cal}{name}"), &body);
        assert!(matches!(status, 200..=299), "{status}: {}", server.log());
    }
    (book, cal)
}

#[tokio::test]
async fn radicale_to_xandikos_and_back_with_a_cut_and_an_incremental_run() {
    let (radicale, xandikos) = (DavServer::radicale(), DavServer::xandikos());
    let (book, _) = fill(&radicale);
    let source = connect(&radicale).await;
    let dest = Counting::new(connect(&xandikos).await);
    let journals = copy_all(&source, &dest, 2).await;

    // Edits on the source are carried by the next run.
    assert!(matches!(
        radicale.put_raw(&format!("{book}c0.vcf"), &card3("c1", "Zoë Ünal-Smith")),
        200..=299
    ));
    assert!(matches!(
        radicale.put_raw(&format!("{book}new.vcf"), &card3("c9", "New")),
        200..=299
    ));
    let r = sync(
        &job(&[Component::Card], 4),
        &source,
        &dest,
        &journals[0],
        &NoProgress,
        &AtomicBool::new(false),
    )
    .await
    .unwrap();
    let c = &r.collections[0];
    assert_eq!((c.copied, c.updated), (1, 1), "{c:#?}");
    check_equal(&source, &dest, &journals).await;

    // And the other way, into an empty Radicale account.
    let back = DavServer::radicale();
    let dest = Counting::new(connect(&back).await);
    let source = connect(&xandikos).await;
    copy_all(&source, &dest, 3).await;
}

#[tokio::test]
async fn xandikos_duplicate_uids_meet_radicale() {
    let (xandikos, radicale) = (DavServer::xandikos(), DavServer::radicale());
    let book = xandikos.default_addressbook("alice");
    assert!(matches!(
        xandikos.put_raw(&format!("{book}a.vcf"), &card3("same", "First")),
        200..=299
    ));
    assert!(matches!(
        xandikos.put_raw(&format!("{book}b.vcf"), &card3("same", "Second")),
        200..=299
    ));
    let source = connect(&xandikos).await;
    let dest = connect(&radicale).await;
    let journal = MemJournal::default();
    let r = sync(
        &job(&[Component::Card], 1),
        &source,
        &dest,
        &journal,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .await
    .unwrap();
    assert!(r.failed.is_empty(), "{r:#?}");
    let c = &r.collections[0];
    assert_eq!(
        (c.copied, c.refused.len(), c.duplicates.len()),
        (1, 1, 1),
        "{c:#?}"
    );
}

#[tokio::test]
async fn files_to_a_server_and_a_server_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let cards: String = (0..4)
        .map(|i| card3(&format!("f{i}"), &format!("File {i}")))
        .collect();
    std::fs::write(dir.path().join("friends.vcf"), cards).unwrap();
    let mut cal = recurring("frec");
    cal.push_str(&todo("ftask", "From a file"));
    std::fs::write(dir.path().join("home.ics"), cal).unwrap();
    let source = FileStore::new(dir.path(), false);
    let server = DavServer::radicale();
    let dest = Counting::new(connect(&server).await);
    copy_all(&source, &dest, 2).await;
    // A file import run again (a fresh store over the same directory) adds nothing.
    let again = FileStore::new(dir.path(), false);
    let journal = MemJournal::default();
    let r = sync(
        &job(&[Component::Card], 5),
        &again,
        &dest,
        &journal,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .await
    .unwrap();
    assert_eq!(r.collections[0].adopted, 4, "{r:#?}");

    // Export: the server to a directory, twice.
    let out = tempfile::tempdir().unwrap();
    let source = connect(&server).await;
    let files = Counting::new(FileStore::new(out.path(), true));
    copy_all(&source, &files, 1).await;
    assert!(server.kind() == ServerKind::Radicale);
}
