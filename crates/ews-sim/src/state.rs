//! The simulated Exchange organisation: mailboxes with folders, items and inbox rules,
//! the credentials that reach them, and what tests inspect afterwards (violations,
//! request counts, the invitation modes of calendar writes). Items are kept as the XML
//! element trees they were created with, so whatever the schema allows round-trips.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::schema::{self, Particle, Term, Type};
use crate::soap::{t, t_text, with_attrs};
use crate::xml::{Name, Node, TYPES};

/// The folders every new mailbox has: distinguished id (None for a system folder that has
/// none), display name, folder class, parent. Besides the distinguished folders, Exchange
/// Online keeps hidden system folders of contact and calendar classes (the recipient cache,
/// the birthdays calendar): a client listing contact or calendar folders must tell them
/// from the user's, so the simulator has them too.
const INITIAL: &[(Option<&str>, &str, &str, &str)] = &[
    (Some("msgfolderroot"), "Top of Information Store", "", ""),
    (Some("inbox"), "Inbox", "IPF.Note", "msgfolderroot"),
    (Some("drafts"), "Drafts", "IPF.Note", "msgfolderroot"),
    (Some("sentitems"), "Sent Items", "IPF.Note", "msgfolderroot"),
    (
        Some("deleteditems"),
        "Deleted Items",
        "IPF.Note",
        "msgfolderroot",
    ),
    (Some("junkemail"), "Junk Email", "IPF.Note", "msgfolderroot"),
    (Some("contacts"), "Contacts", "IPF.Contact", "msgfolderroot"),
    (
        None,
        "Recipient Cache",
        "IPF.Contact.RecipientCache",
        "contacts",
    ),
    (
        Some("calendar"),
        "Calendar",
        "IPF.Appointment",
        "msgfolderroot",
    ),
    (None, "Birthdays", "IPF.Appointment.Birthday", "calendar"),
    (Some("tasks"), "Tasks", "IPF.Task", "msgfolderroot"),
];

#[derive(Clone, Debug)]
pub struct Folder {
    pub id: String,
    pub change_key: String,
    pub parent: Option<String>,
    pub distinguished: Option<String>,
    pub name: String,
    pub class: String,
    /// Change number at creation, for SyncFolderHierarchy.
    pub seq: u64,
    /// Change number of the last rename or move (0: never changed).
    pub changed: u64,
}

#[derive(Clone, Debug)]
pub struct Attachment {
    pub id: String,
    /// The whole `t:FileAttachment` as created, content included (without AttachmentId).
    pub node: Node,
}

#[derive(Clone, Debug)]
pub struct Item {
    pub id: String,
    pub change_key: String,
    pub folder: String,
    /// The item element (`t:Contact`, `t:CalendarItem`, …) without ItemId, ParentFolderId
    /// and Attachments, which the simulator owns.
    pub node: Node,
    pub attachments: Vec<Attachment>,
    /// Change number at creation and at the last change, for SyncFolderItems.
    pub created: u64,
    pub seq: u64,
    /// For an occurrence stored apart from its series: the master's id and instance index.
    pub master: Option<(String, u32)>,
}

/// A deleted item, remembered for SyncFolderItems.
#[derive(Clone, Debug)]
pub struct Tombstone {
    pub id: String,
    pub folder: String,
    pub created: u64,
    pub seq: u64,
}

#[derive(Debug)]
pub struct Mailbox {
    pub address: String,
    pub password: String,
    pub folders: Vec<Folder>,
    pub items: Vec<Item>,
    pub tombstones: Vec<Tombstone>,
    /// Deleted folders, for SyncFolderHierarchy (the Tombstone's folder is the parent).
    pub folder_tombstones: Vec<Tombstone>,
    /// Rules as given (`t:Rule`), RuleId included.
    pub rules: Vec<Node>,
    /// Whether Outlook's client-side rules blob is there (a mailbox used with Outlook):
    /// UpdateInboxRules then needs RemoveOutlookRuleBlob.
    pub outlook_rule_blob: bool,
    /// The last change number given out.
    pub seq: u64,
    /// Bumped by [`crate::EwsSim::invalidate_sync_states`]: item sync states given out
    /// before are refused (ErrorInvalidSyncStateData), as Exchange refuses expired ones.
    pub sync_epoch: u32,
}

impl Mailbox {
    pub fn folder(&self, id: &str) -> Option<&Folder> {
        self.folders
            .iter()
            .find(|f| f.id == id || f.distinguished.as_deref() == Some(id))
    }

    pub fn item(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }

    pub fn item_mut(&mut self, id: &str) -> Option<&mut Item> {
        self.items.iter_mut().find(|i| i.id == id)
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// Everything a test can read back, and the hooks it can set.
#[derive(Debug, Default)]
pub struct State {
    /// By lower-cased SMTP address.
    pub mailboxes: BTreeMap<String, Mailbox>,
    /// Bearer token → the principal it authenticates (a mailbox address or an app name).
    pub tokens: HashMap<String, String>,
    /// Principals allowed to use ExchangeImpersonation.
    pub impersonators: BTreeSet<String>,
    pub violations: Vec<String>,
    pub requests: BTreeMap<String, usize>,
    /// The SyncState of every SyncFolderItems, in order (None: from the start).
    pub item_syncs: Vec<Option<String>>,
    /// (operation, the SendMeetingInvitations / …OrCancellations / SendMeetingCancellations
    /// value, absent as None) of every calendar write.
    pub invitation_modes: Vec<(String, Option<String>)>,
    pub busy_next: usize,
    pub busy_backoff_ms: u64,
    pub cut_next: usize,
    /// The next requests answered with a bare HTTP status (a front end's 503 or 429), and
    /// the Retry-After seconds to send with it.
    pub status_next: usize,
    pub status_code: u16,
    pub status_retry_after: Option<u64>,
    pub concurrency_limit: Option<usize>,
    pub in_flight: HashMap<String, usize>,
    /// The EWS URL autodiscover answers (set when the server starts).
    pub ews_url: String,
    next_id: u64,
}

impl State {
    /// An opaque, unique id: Exchange's are base64; tests only compare them.
    pub fn new_id(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("AAMkA{kind}{:010}", self.next_id)
    }

    pub fn new_change_key(&mut self) -> String {
        self.next_id += 1;
        format!("CQAAAB{:010}", self.next_id)
    }

    pub fn add_mailbox(&mut self, address: &str, password: &str) {
        let mut mb = Mailbox {
            address: address.to_owned(),
            password: password.to_owned(),
            folders: Vec::new(),
            items: Vec::new(),
            tombstones: Vec::new(),
            folder_tombstones: Vec::new(),
            rules: Vec::new(),
            outlook_rule_blob: false,
            seq: 0,
            sync_epoch: 0,
        };
        let mut ids: HashMap<&str, String> = HashMap::new();
        for (dist, name, class, parent) in INITIAL {
            let id = self.new_id("Fld");
            if let Some(d) = dist {
                ids.insert(d, id.clone());
            }
            mb.folders.push(Folder {
                id,
                change_key: self.new_change_key(),
                parent: ids.get(parent).cloned(),
                distinguished: dist.map(str::to_owned),
                name: (*name).to_owned(),
                class: (*class).to_owned(),
                seq: 0,
                changed: 0,
            });
        }
        self.mailboxes.insert(address.to_lowercase(), mb);
    }

    pub fn mailbox(&self, address: &str) -> Option<&Mailbox> {
        self.mailboxes.get(&address.to_lowercase())
    }

    pub fn mailbox_mut(&mut self, address: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&address.to_lowercase())
    }

    /// Creates a folder under `parent` (an id or distinguished id); returns its id.
    pub fn create_folder(
        &mut self,
        address: &str,
        parent: &str,
        name: &str,
        class: &str,
    ) -> Result<String, (&'static str, String)> {
        let id = self.new_id("Fld");
        let ck = self.new_change_key();
        let mb = self
            .mailbox_mut(address)
            .ok_or(("ErrorNonExistentMailbox", format!("no mailbox {address}")))?;
        let parent_id = mb
            .folder(parent)
            .ok_or((
                "ErrorFolderNotFound",
                format!("The specified folder could not be found in the store ({parent})."),
            ))?
            .id
            .clone();
        if mb
            .folders
            .iter()
            .any(|f| f.parent.as_deref() == Some(&parent_id) && f.name.eq_ignore_ascii_case(name))
        {
            return Err((
                "ErrorFolderExists",
                format!("A folder with the specified name already exists ({name})."),
            ));
        }
        let seq = mb.next_seq();
        mb.folders.push(Folder {
            id: id.clone(),
            change_key: ck,
            parent: Some(parent_id),
            distinguished: None,
            name: name.to_owned(),
            class: class.to_owned(),
            seq,
            changed: 0,
        });
        Ok(id)
    }

    /// Stores a new item (the element as the client sent it) in `folder`; returns its id.
    pub fn insert_item(
        &mut self,
        address: &str,
        folder: &str,
        mut node: Node,
    ) -> Result<String, (&'static str, String)> {
        let id = self.new_id("Itm");
        let ck = self.new_change_key();
        let mut attachments = Vec::new();
        // Attachments given inline become the simulator's, with ids of their own.
        if let Some(pos) = node
            .children
            .iter()
            .position(|c| c.name.local == "Attachments")
        {
            let given = node.children.remove(pos);
            for a in given.children {
                let aid = self.new_id("Att");
                attachments.push(Attachment { id: aid, node: a });
            }
        }
        node.children
            .retain(|c| !matches!(c.name.local.as_str(), "ItemId" | "ParentFolderId"));
        if node.name.local == "CalendarItem" && !node.children.iter().any(|c| c.name.local == "UID")
        {
            // Exchange gives every calendar item a UID (a GOID in hex) when the client did not.
            let uid = format!("040000008200E00074C5B7101A82E008{:032X}", self.next_id);
            node.children.push(t_text("UID", &uid));
        }
        normalize(&mut node);
        let mb = self
            .mailbox_mut(address)
            .ok_or(("ErrorNonExistentMailbox", format!("no mailbox {address}")))?;
        let folder_id = mb
            .folder(folder)
            .ok_or((
                "ErrorFolderNotFound",
                format!("The specified folder could not be found in the store ({folder})."),
            ))?
            .id
            .clone();
        let seq = mb.next_seq();
        mb.items.push(Item {
            id: id.clone(),
            change_key: ck,
            folder: folder_id,
            node,
            attachments,
            created: seq,
            seq,
            master: None,
        });
        Ok(id)
    }
}

/// The fields Exchange sets itself: the item class when none was given, and a calendar
/// item's CalendarItemType (Single or RecurringMaster, from whether it recurs); then the
/// schema's order.
pub fn normalize(node: &mut Node) {
    let has = |n: &Node, f: &str| n.children.iter().any(|c| c.name.local == f);
    if !has(node, "ItemClass") {
        let class = match node.name.local.as_str() {
            "Contact" => "IPM.Contact",
            "DistributionList" => "IPM.DistList",
            "CalendarItem" => "IPM.Appointment",
            "Task" => "IPM.Task",
            _ => "IPM.Note",
        };
        node.children.push(t_text("ItemClass", class));
    }
    if node.name.local == "CalendarItem" {
        let kind = if has(node, "Recurrence") {
            "RecurringMaster"
        } else {
            "Single"
        };
        node.children.retain(|c| c.name.local != "CalendarItemType");
        node.children.push(t_text("CalendarItemType", kind));
    }
    utc_times(node);
    let ty = type_of(&node.name.local);
    sort_children(node, ty);
}

/// Element names and types of a complex type's content.
type FieldTypes = std::sync::Arc<Vec<(String, Name)>>;

/// Exchange keeps times in UTC and answers them so (`2026-12-01T08:00:00Z` for a Start sent
/// as `2026-12-01T09:00:00+01:00`): the item's `xs:dateTime` fields are stored that way, so
/// a client comparing what it wrote with what it reads meets what it would meet on Exchange.
/// Times without an offset are kept as given.
pub fn utc_times(node: &mut Node) {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<HashMap<&'static str, FieldTypes>>> =
        std::sync::OnceLock::new();
    let ty = type_of(&node.name.local);
    let fields = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(ty)
        .or_insert_with(|| {
            let mut fields = Vec::new();
            collect_types(&Name::new(TYPES, ty), &mut fields, 0);
            std::sync::Arc::new(fields)
        })
        .clone();
    for c in &mut node.children {
        let is_time = fields
            .iter()
            .any(|(n, t)| *n == c.name.local && t.ns == crate::xml::XSD && t.local == "dateTime");
        if is_time && let Ok(t) = chrono::DateTime::parse_from_rfc3339(c.text.trim()) {
            c.text = t
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        }
    }
}

/// Reads the item's `xs:dateTime` fields written without an offset in `zone` (the request's
/// TimeZoneContext, UTC without one) and keeps them in UTC, as Exchange stores them.
pub fn local_times(node: &mut Node, zone: &crate::zones::Zone) {
    let fields = time_fields(&node.name.local);
    for c in &mut node.children {
        if !fields.contains(&c.name.local) {
            continue;
        }
        let text = c.text.trim();
        let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f");
        if let Ok(local) = local {
            c.text = zone
                .to_utc(local)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        }
    }
}

/// The names of a type's `xs:dateTime` fields.
fn time_fields(element: &str) -> Vec<String> {
    let ty = type_of(element);
    let mut fields = Vec::new();
    collect_types(&Name::new(TYPES, ty), &mut fields, 0);
    fields
        .into_iter()
        .filter(|(_, t)| t.ns == crate::xml::XSD && t.local == "dateTime")
        .map(|(n, _)| n)
        .collect()
}

/// Element names and types of a complex type's content (its bases' included).
fn collect_types(ty: &Name, out: &mut Vec<(String, Name)>, depth: usize) {
    if depth > 12 {
        return;
    }
    let s = schema::published();
    let Some(Type::Complex(c)) = s.resolve_type(ty) else {
        return;
    };
    if let Some((base, true)) = &c.base {
        collect_types(base, out, depth + 1);
    }
    fn walk(p: &Particle, out: &mut Vec<(String, Name)>, depth: usize) {
        if depth > 24 {
            return;
        }
        match &p.term {
            Term::Element { name, ty } => out.push((name.local.clone(), ty.clone())),
            Term::Sequence(ps) | Term::Choice(ps) | Term::All(ps) => {
                ps.iter().for_each(|q| walk(q, out, depth + 1))
            }
            Term::Group(g) => {
                if let Some(q) = schema::published().groups.get(g) {
                    walk(q, out, depth + 1)
                }
            }
            Term::Ref(_) | Term::Any => {}
        }
    }
    if let Some(p) = &c.particle {
        walk(p, out, depth);
    }
}

/// The element names of a complex type's content, in the order its sequence (and its
/// bases') puts them: stored trees are sorted by it before they are written, so a field set
/// by UpdateItem lands where the schema wants it.
pub fn schema_order(ty_local: &str) -> std::sync::Arc<Vec<String>> {
    // Computed once per type: every stored item is sorted on each write and read.
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<HashMap<String, std::sync::Arc<Vec<String>>>>,
    > = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(ty_local.to_owned())
        .or_insert_with(|| {
            let mut out = Vec::new();
            collect_order(&Name::new(TYPES, ty_local), &mut out, 0);
            std::sync::Arc::new(out)
        })
        .clone()
}

fn collect_order(ty: &Name, out: &mut Vec<String>, depth: usize) {
    if depth > 12 {
        return;
    }
    let s = schema::published();
    let Some(Type::Complex(c)) = s.resolve_type(ty) else {
        return;
    };
    if let Some((base, true)) = &c.base {
        collect_order(base, out, depth + 1);
    }
    if let Some(p) = &c.particle {
        collect_particle(p, out, depth);
    }
}

fn collect_particle(p: &Particle, out: &mut Vec<String>, depth: usize) {
    if depth > 24 {
        return;
    }
    match &p.term {
        Term::Element { name, .. } | Term::Ref(name) => {
            if !out.contains(&name.local) {
                out.push(name.local.clone());
            }
        }
        Term::Sequence(ps) | Term::Choice(ps) | Term::All(ps) => {
            for q in ps {
                collect_particle(q, out, depth + 1);
            }
        }
        Term::Group(g) => {
            if let Some(q) = schema::published().groups.get(g) {
                collect_particle(q, out, depth + 1);
            }
        }
        Term::Any => {}
    }
}

/// The schema type of an item or folder element.
pub fn type_of(element: &str) -> &'static str {
    match element {
        "Message" => "MessageType",
        "CalendarItem" => "CalendarItemType",
        "Contact" => "ContactItemType",
        "DistributionList" => "DistributionListType",
        "Task" => "TaskType",
        "PostItem" => "PostItemType",
        "Folder" => "FolderType",
        "CalendarFolder" => "CalendarFolderType",
        "ContactsFolder" => "ContactsFolderType",
        "TasksFolder" => "TasksFolderType",
        "Rule" => "RuleType",
        "FileAttachment" => "FileAttachmentType",
        "Entry" => "PhysicalAddressDictionaryEntryType",
        _ => "ItemType",
    }
}

/// Sorts children into the schema's order (stable: repeated elements keep theirs).
pub fn sort_children(node: &mut Node, ty_local: &str) {
    let order = schema_order(ty_local);
    node.children.sort_by_key(|c| {
        order
            .iter()
            .position(|o| *o == c.name.local)
            .unwrap_or(usize::MAX)
    });
}

/// The `t:FolderId` element of a folder.
pub fn folder_id_node(local: &str, f: &Folder) -> Node {
    with_attrs(t(local), &[("Id", &f.id), ("ChangeKey", &f.change_key)])
}

/// The folder element Exchange returns for a folder of this class.
pub fn folder_element(f: &Folder) -> &'static str {
    match f.class.as_str() {
        "IPF.Contact" => "ContactsFolder",
        "IPF.Appointment" => "CalendarFolder",
        "IPF.Task" => "TasksFolder",
        _ => "Folder",
    }
}

/// A folder as GetFolder/FindFolder/SyncFolderHierarchy write it.
pub fn folder_node(mb: &Mailbox, f: &Folder) -> Node {
    let el = folder_element(f);
    let mut n = t(el);
    n.children.push(folder_id_node("FolderId", f));
    if let Some(p) = f.parent.as_deref().and_then(|p| mb.folder(p)) {
        n.children.push(folder_id_node("ParentFolderId", p));
    }
    if !f.class.is_empty() {
        n.children.push(t_text("FolderClass", &f.class));
    }
    n.children.push(t_text("DisplayName", &f.name));
    let total = mb.items.iter().filter(|i| i.folder == f.id).count();
    n.children.push(t_text("TotalCount", &total.to_string()));
    let kids = mb
        .folders
        .iter()
        .filter(|c| c.parent.as_deref() == Some(&f.id))
        .count();
    n.children
        .push(t_text("ChildFolderCount", &kids.to_string()));
    if el == "Folder" {
        n.children.push(t_text("UnreadCount", "0"));
    }
    n
}

/// An item element from XML text whose `t:` prefix is not declared (seeding snippets,
/// exported data).
pub fn parse_item(item_xml: &str) -> Result<Node, String> {
    let wrapped = format!("<w xmlns:t=\"{TYPES}\">{item_xml}</w>");
    let mut root = crate::xml::parse("the item", &wrapped)?;
    if root.children.len() != 1 {
        return Err(format!(
            "one item element expected, got {}",
            root.children.len()
        ));
    }
    Ok(root.children.remove(0))
}
