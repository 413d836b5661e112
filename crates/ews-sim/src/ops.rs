//! The EWS operations the simulator answers, each reading the (already schema-checked)
//! request tree and writing its response element the way Exchange shapes it: one response
//! message per requested item or folder, errors as `ResponseClass="Error"` messages with
//! Exchange's response codes.

use crate::occurrence;
use crate::soap::{W, escape, t, t_text, with_attrs};
use crate::state::{
    Attachment, Folder, Item, Mailbox, State, Tombstone, folder_id_node, folder_node, local_times,
    normalize, sort_children, type_of, utc_times,
};
use crate::xml::Node;
use crate::zones;

/// An operation-level error: Exchange's response code and its message text.
pub type Fail = (&'static str, String);

/// The request's context: whose mailbox it acts on, and the time zone its local times are
/// in (the TimeZoneContext header's definition; UTC without one).
pub struct Cx<'a> {
    pub state: &'a mut State,
    pub mailbox: String,
    pub zone: Option<&'a Node>,
}

/// First child element with this local name (the request is schema-valid, so names are
/// unambiguous where they are looked up).
pub fn kid<'a>(n: &'a Node, local: &str) -> Option<&'a Node> {
    n.children.iter().find(|c| c.name.local == local)
}

fn kid_text<'a>(n: &'a Node, local: &str) -> Option<&'a str> {
    kid(n, local).map(|k| k.text.trim())
}

fn not_found(what: &str) -> Fail {
    (
        "ErrorItemNotFound",
        format!("The specified object was not found in the store. ({what})"),
    )
}

fn folder_not_found(what: &str) -> Fail {
    (
        "ErrorFolderNotFound",
        format!("The specified folder could not be found in the store. ({what})"),
    )
}

/// Runs one operation; returns the response element's XML.
pub fn run(cx: &mut Cx<'_>, op: &str, req: &Node) -> Result<String, Fail> {
    let mut w = W::default();
    match op {
        "GetFolder" => {
            let shape = Shape::read(kid(req, "FolderShape"));
            each(&mut w, op, "", folder_ids(req), |id| {
                get_folder(cx, &shape, &id)
            })
        }
        "FindFolder" => each(&mut w, op, "", folder_ids(req), |id| {
            find_folder(cx, req, &id)
        }),
        "CreateFolder" => {
            let parent = kid(req, "ParentFolderId")
                .and_then(|p| p.children.first())
                .map(folder_ref)
                .unwrap_or_default();
            let folders: Vec<Node> = kid(req, "Folders")
                .map(|f| f.children.clone())
                .unwrap_or_default();
            each(&mut w, op, "", folders, |f| create_folder(cx, &parent, &f))
        }
        "DeleteFolder" => {
            let to_bin = req.attr("DeleteType") == Some("MoveToDeletedItems");
            each(&mut w, op, "", folder_ids(req), |id| {
                delete_folder(cx, &id, to_bin)
            })
        }
        "UpdateFolder" => {
            let changes = kid(req, "FolderChanges")
                .map(|c| c.children.clone())
                .unwrap_or_default();
            each(&mut w, op, "", changes, |c| update_folder(cx, &c))
        }
        "SyncFolderHierarchy" => each(&mut w, op, "", vec![()], |()| sync_hierarchy(cx, req)),
        "CreateItem" => {
            let items: Vec<Node> = kid(req, "Items")
                .map(|i| i.children.clone())
                .unwrap_or_default();
            let folder = kid(req, "SavedItemFolderId")
                .and_then(|p| p.children.first())
                .map(folder_ref);
            if items.iter().any(|i| i.name.local == "CalendarItem") {
                cx.state.invitation_modes.push((
                    op.to_owned(),
                    req.attr("SendMeetingInvitations").map(str::to_owned),
                ));
            }
            let given = req.attr("SendMeetingInvitations").is_some();
            each(&mut w, op, "<m:Items/>", items, |i| {
                create_item(cx, folder.as_deref(), given, i)
            })
        }
        "GetItem" => {
            let shape = Shape::read(kid(req, "ItemShape"));
            let ids = kid(req, "ItemIds")
                .map(|i| i.children.clone())
                .unwrap_or_default();
            each(&mut w, op, "<m:Items/>", ids, |id| {
                get_item(cx, &shape, &id)
            })
        }
        "UpdateItem" => {
            let changes = kid(req, "ItemChanges")
                .map(|i| i.children.clone())
                .unwrap_or_default();
            let never = req.attr("ConflictResolution") == Some("NeverOverwrite");
            let mode = req
                .attr("SendMeetingInvitationsOrCancellations")
                .map(str::to_owned);
            each(&mut w, op, "<m:Items/>", changes, |c| {
                update_item(cx, &c, never, mode.clone())
            })
        }
        "DeleteItem" => {
            let ids = kid(req, "ItemIds")
                .map(|i| i.children.clone())
                .unwrap_or_default();
            let mode = req.attr("SendMeetingCancellations").map(str::to_owned);
            let opts = DeleteOptions {
                to_deleted_items: req.attr("DeleteType") == Some("MoveToDeletedItems"),
                task_occurrences: req.attr("AffectedTaskOccurrences").is_some(),
            };
            each(&mut w, op, "", ids, |id| {
                delete_item(cx, &id, mode.clone(), &opts)
            })
        }
        "FindItem" => each(&mut w, op, "", folder_ids(req), |id| {
            find_item(cx, req, &id)
        }),
        "SyncFolderItems" => each(&mut w, op, "", vec![()], |()| sync_items(cx, req)),
        "GetServerTimeZones" => {
            // Ids not known are left out, as on Exchange; without Ids, every zone.
            let ids: Option<Vec<String>> = kid(req, "Ids").map(|i| {
                i.children
                    .iter()
                    .map(|c| c.text.trim().to_owned())
                    .collect()
            });
            let full = req.attr("ReturnFullTimeZoneData") != Some("false");
            each(&mut w, op, "", vec![()], |()| {
                let mut out = String::from("<m:TimeZoneDefinitions>");
                for def in zones::all() {
                    if ids
                        .as_ref()
                        .is_some_and(|ids| !ids.iter().any(|i| Some(i.as_str()) == def.attr("Id")))
                    {
                        continue;
                    }
                    let mut def = def.clone();
                    def.prefixes.clear();
                    if !full {
                        def.children.clear();
                    }
                    out += &node_xml(&def);
                }
                Ok(out + "</m:TimeZoneDefinitions>")
            })
        }
        "GetInboxRules" => rules::get(cx, &mut w),
        "UpdateInboxRules" => rules::update(cx, req, &mut w),
        "CreateAttachment" => {
            let parent = kid(req, "ParentItemId")
                .and_then(|p| p.attr("Id"))
                .unwrap_or_default()
                .to_owned();
            let given: Vec<Node> = kid(req, "Attachments")
                .map(|a| a.children.clone())
                .unwrap_or_default();
            each(&mut w, op, "<m:Attachments/>", given, |a| {
                create_attachment(cx, &parent, a)
            })
        }
        "ExportItems" => {
            let ids = kid(req, "ItemIds")
                .map(|i| i.children.clone())
                .unwrap_or_default();
            each(&mut w, op, "", ids, |id| export_item(cx, &id))
        }
        "UploadItems" => {
            let items = kid(req, "Items")
                .map(|i| i.children.clone())
                .unwrap_or_default();
            each(&mut w, op, "", items, |i| upload_item(cx, &i))
        }
        "GetAttachment" => each(&mut w, op, "<m:Attachments/>", attachment_ids(req), |id| {
            get_attachment(cx, &id)
        }),
        "DeleteAttachment" => each(&mut w, op, "", attachment_ids(req), |id| {
            delete_attachment(cx, &id)
        }),
        other => {
            return Err((
                "ErrorInvalidOperation",
                format!("the simulator does not implement {other}"),
            ));
        }
    }
    Ok(w.0)
}

/// The folder ids of `m:FolderIds` / `m:ParentFolderIds`.
fn folder_ids(req: &Node) -> Vec<String> {
    req.children
        .iter()
        .filter(|c| matches!(c.name.local.as_str(), "FolderIds" | "ParentFolderIds"))
        .flat_map(|c| c.children.iter().map(folder_ref))
        .collect()
}

/// `t:FolderId Id=…` or `t:DistinguishedFolderId Id=…`: the id either way (the mailbox
/// resolves distinguished names).
fn folder_ref(n: &Node) -> String {
    n.attr("Id").unwrap_or_default().to_owned()
}

/// Writes `m:{op}Response` with one response message per input.
fn each<T>(
    w: &mut W,
    op: &str,
    empty_on_error: &str,
    inputs: Vec<T>,
    mut f: impl FnMut(T) -> Result<String, Fail>,
) {
    w.open(&format!("m:{op}Response"), &[]);
    w.open("m:ResponseMessages", &[]);
    let msg = format!("m:{op}ResponseMessage");
    for input in inputs {
        match f(input) {
            Ok(inner) => {
                w.open(&msg, &[("ResponseClass", "Success")]);
                w.leaf("m:ResponseCode", "NoError");
                w.0.push_str(&inner);
            }
            Err((code, text)) => {
                w.open(&msg, &[("ResponseClass", "Error")]);
                w.leaf("m:MessageText", &text);
                w.leaf("m:ResponseCode", code);
                w.leaf("m:DescriptiveLinkKey", "0");
                w.0.push_str(empty_on_error);
            }
        }
        w.close(&msg);
    }
    w.close("m:ResponseMessages");
    w.close(&format!("m:{op}Response"));
}

fn mailbox<'a>(cx: &'a Cx<'_>) -> Result<&'a Mailbox, Fail> {
    cx.state.mailbox(&cx.mailbox).ok_or((
        "ErrorNonExistentMailbox",
        format!(
            "No mailbox with such guid or SMTP address ({}).",
            cx.mailbox
        ),
    ))
}

fn mailbox_mut<'a>(cx: &'a mut Cx<'_>) -> Result<&'a mut Mailbox, Fail> {
    let name = cx.mailbox.clone();
    cx.state.mailbox_mut(&name).ok_or((
        "ErrorNonExistentMailbox",
        format!("No mailbox with such guid or SMTP address ({name})."),
    ))
}

pub fn node_xml(n: &Node) -> String {
    let mut w = W::default();
    w.node(n);
    w.0
}

// ---- folders ----

fn get_folder(cx: &mut Cx<'_>, shape: &Shape, id: &str) -> Result<String, Fail> {
    let mb = mailbox(cx)?;
    let f = mb.folder(id).ok_or_else(|| folder_not_found(id))?;
    Ok(format!(
        "<m:Folders>{}</m:Folders>",
        node_xml(&shaped_folder(mb, f, shape))
    ))
}

/// A folder in a FolderShape: IdOnly is the FolderId and the properties asked for.
fn shaped_folder(mb: &Mailbox, f: &Folder, shape: &Shape) -> Node {
    let mut n = folder_node(mb, f);
    if shape.id_only {
        n.children
            .retain(|c| c.name.local == "FolderId" || shape.extra.iter().any(|p| p.covers(c)));
    }
    n
}

fn find_folder(cx: &mut Cx<'_>, req: &Node, parent: &str) -> Result<String, Fail> {
    let mb = mailbox(cx)?;
    let root = mb.folder(parent).ok_or_else(|| folder_not_found(parent))?;
    let deep = req.attr("Traversal") == Some("Deep");
    let shape = Shape::read(kid(req, "FolderShape"));
    let mut found: Vec<&Folder> = Vec::new();
    let mut todo = vec![root.id.clone()];
    while let Some(p) = todo.pop() {
        for f in mb
            .folders
            .iter()
            .filter(|f| f.parent.as_deref() == Some(&p))
        {
            found.push(f);
            if deep {
                todo.push(f.id.clone());
            }
        }
    }
    let total = found.len();
    let (offset, max) = page(kid(req, "IndexedPageFolderView"));
    let page: Vec<&Folder> = found.into_iter().skip(offset).take(max).collect();
    let last = offset + page.len() >= total;
    let mut w = W::default();
    w.open(
        "m:RootFolder",
        &[
            ("IndexedPagingOffset", &(offset + page.len()).to_string()),
            ("TotalItemsInView", &total.to_string()),
            ("IncludesLastItemInRange", bool_str(last)),
        ],
    );
    w.open("t:Folders", &[]);
    for f in page {
        w.node(&shaped_folder(mb, f, &shape));
    }
    w.close("t:Folders");
    w.close("m:RootFolder");
    Ok(w.0)
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Offset and maximum of an `IndexedPage…View` (everything without one).
/// Exchange Online returns at most 1,000 entries per FindItem/FindFolder page whatever is
/// asked (EWSFindCountLimit), with IncludesLastItemInRange false: a client must page.
const FIND_COUNT_LIMIT: usize = 1000;

fn page(view: Option<&Node>) -> (usize, usize) {
    let Some(v) = view else {
        return (0, FIND_COUNT_LIMIT);
    };
    let max = v
        .attr("MaxEntriesReturned")
        .and_then(|m| m.parse().ok())
        .unwrap_or(FIND_COUNT_LIMIT)
        .min(FIND_COUNT_LIMIT);
    let offset = v.attr("Offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    (offset, max)
}

fn create_folder(cx: &mut Cx<'_>, parent: &str, f: &Node) -> Result<String, Fail> {
    let name = kid_text(f, "DisplayName").unwrap_or_default().to_owned();
    let class = match kid_text(f, "FolderClass") {
        Some(c) => c.to_owned(),
        None => match f.name.local.as_str() {
            "ContactsFolder" => "IPF.Contact",
            "CalendarFolder" => "IPF.Appointment",
            "TasksFolder" => "IPF.Task",
            _ => "IPF.Note",
        }
        .to_owned(),
    };
    let mb = cx.mailbox.clone();
    let id = cx.state.create_folder(&mb, parent, &name, &class)?;
    let mb = mailbox(cx)?;
    let folder = mb.folder(&id).ok_or_else(|| folder_not_found(&id))?;
    let mut n = t(f.name.local.as_str());
    n.children.push(folder_id_node("FolderId", folder));
    Ok(format!("<m:Folders>{}</m:Folders>", node_xml(&n)))
}

fn sync_hierarchy(cx: &mut Cx<'_>, req: &Node) -> Result<String, Fail> {
    let since = sync_state(kid_text(req, "SyncState"), 'H')?;
    let shape = Shape::read(kid(req, "FolderShape"));
    let mb = mailbox(cx)?;
    let mut w = W::default();
    w.leaf("m:SyncState", &format!("H{}", mb.seq));
    w.leaf("m:IncludesLastFolderInRange", "true");
    w.open("m:Changes", &[]);
    for f in &mb.folders {
        let is_root = f.distinguished.as_deref() == Some("msgfolderroot");
        let change = match since {
            None if !is_root => Some("t:Create"),
            None => None,
            Some(s) if f.seq > s => Some("t:Create"),
            Some(s) if f.changed > s => Some("t:Update"),
            Some(_) => None,
        };
        if let Some(tag) = change {
            w.open(tag, &[]);
            w.node(&shaped_folder(mb, f, &shape));
            w.close(tag);
        }
    }
    for d in &mb.folder_tombstones {
        if since.is_some_and(|s| d.seq > s && d.created <= s) {
            w.open("t:Delete", &[]);
            w.node(&with_attrs(t("FolderId"), &[("Id", &d.id)]));
            w.close("t:Delete");
        }
    }
    w.close("m:Changes");
    Ok(w.0)
}

/// DeleteFolder: the folder, its subfolders and their items are gone (each reported by
/// the syncs), or, with MoveToDeletedItems, the folder moves under Deleted Items. The
/// distinguished folders cannot be deleted.
fn delete_folder(cx: &mut Cx<'_>, id: &str, to_bin: bool) -> Result<String, Fail> {
    let ck = cx.state.new_change_key();
    let mb = mailbox_mut(cx)?;
    let f = mb.folder(id).ok_or_else(|| folder_not_found(id))?;
    if f.distinguished.is_some() {
        return Err((
            "ErrorDeleteDistinguishedFolder",
            format!("Distinguished folders cannot be deleted ({id})."),
        ));
    }
    let fid = f.id.clone();
    let seq = mb.next_seq();
    if to_bin {
        let bin = mb.folder("deleteditems").map(|b| b.id.clone());
        if let Some(f) = mb.folders.iter_mut().find(|f| f.id == fid) {
            f.parent = bin;
            f.changed = seq;
            f.change_key = ck;
        }
        return Ok(String::new());
    }
    // The folder and everything under it.
    let mut gone = vec![fid];
    let mut i = 0;
    while i < gone.len() {
        let parent = gone[i].clone();
        gone.extend(
            mb.folders
                .iter()
                .filter(|f| f.parent.as_deref() == Some(&parent))
                .map(|f| f.id.clone()),
        );
        i += 1;
    }
    for f in mb.folders.iter().filter(|f| gone.contains(&f.id)) {
        mb.folder_tombstones.push(Tombstone {
            id: f.id.clone(),
            folder: f.parent.clone().unwrap_or_default(),
            created: f.seq,
            seq,
        });
    }
    for i in mb.items.iter().filter(|i| gone.contains(&i.folder)) {
        mb.tombstones.push(Tombstone {
            id: i.id.clone(),
            folder: i.folder.clone(),
            created: i.created,
            seq,
        });
    }
    mb.folders.retain(|f| !gone.contains(&f.id));
    mb.items.retain(|i| !gone.contains(&i.folder));
    Ok(String::new())
}

/// UpdateFolder: SetFolderField on the display name renames the folder (the other fields
/// the simulator keeps are not settable).
fn update_folder(cx: &mut Cx<'_>, change: &Node) -> Result<String, Fail> {
    let id = change.children.first().map(folder_ref).unwrap_or_default();
    let ck = cx.state.new_change_key();
    let mb = mailbox_mut(cx)?;
    let fid = mb
        .folder(&id)
        .ok_or_else(|| folder_not_found(&id))?
        .id
        .clone();
    let mut rename = None;
    for u in kid(change, "Updates")
        .map(|u| u.children.as_slice())
        .unwrap_or(&[])
    {
        let field = u.children.first().and_then(|f| f.attr("FieldURI"));
        match (u.name.local.as_str(), field) {
            ("SetFolderField", Some("folder:DisplayName")) => {
                rename = u
                    .children
                    .get(1)
                    .and_then(|f| kid_text(f, "DisplayName"))
                    .map(str::to_owned);
            }
            (_, f) => {
                return Err((
                    "ErrorInvalidPropertySet",
                    format!(
                        "the simulator changes only folder:DisplayName, not {}",
                        f.unwrap_or("this field")
                    ),
                ));
            }
        }
    }
    let seq = mb.next_seq();
    let f = mb
        .folders
        .iter_mut()
        .find(|f| f.id == fid)
        .ok_or_else(|| folder_not_found(&id))?;
    if let Some(name) = rename {
        f.name = name;
    }
    f.changed = seq;
    f.change_key = ck;
    let el = crate::state::folder_element(f);
    let mut n = t(el);
    n.children.push(folder_id_node("FolderId", f));
    Ok(format!("<m:Folders>{}</m:Folders>", node_xml(&n)))
}

/// A sync state of ours: a letter and the change number it was given at; empty or absent
/// is the start.
fn sync_state(given: Option<&str>, kind: char) -> Result<Option<u64>, Fail> {
    match given {
        None | Some("") => Ok(None),
        Some(s) => s
            .strip_prefix(kind)
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or((
                "ErrorInvalidSyncStateData",
                format!("Synchronization state data is corrupt or otherwise invalid ({s:?})."),
            )),
    }
}

// ---- items ----

/// What to return of an item: the base shape and the properties added to it.
pub struct Shape {
    id_only: bool,
    extra: Vec<Path>,
    mime: bool,
    /// `t:BodyType`: the body converted to Text or HTML, as Exchange does.
    body_type: Option<String>,
    /// For inspection: every extended property, asked for or not.
    all_extended: bool,
}

impl Shape {
    pub fn everything() -> Shape {
        Shape {
            id_only: false,
            extra: Vec::new(),
            mime: false,
            body_type: None,
            all_extended: true,
        }
    }

    pub fn read(n: Option<&Node>) -> Shape {
        let Some(n) = n else {
            return Shape {
                id_only: false,
                extra: Vec::new(),
                mime: false,
                body_type: None,
                all_extended: false,
            };
        };
        Shape {
            id_only: kid_text(n, "BaseShape") == Some("IdOnly"),
            extra: kid(n, "AdditionalProperties")
                .map(|a| a.children.iter().filter_map(Path::read).collect())
                .unwrap_or_default(),
            mime: kid_text(n, "IncludeMimeContent") == Some("true"),
            body_type: kid_text(n, "BodyType")
                .filter(|b| *b != "Best")
                .map(str::to_owned),
            all_extended: false,
        }
    }
}

/// A property path: `t:FieldURI`, `t:IndexedFieldURI` or `t:ExtendedFieldURI`.
#[derive(Clone, Debug)]
pub enum Path {
    /// The element's local name.
    Field(String),
    /// A dictionary entry: container element, entry key, and for physical addresses the
    /// sub-element.
    Indexed {
        container: String,
        key: String,
        sub: Option<String>,
    },
    /// The identifying attributes of an extended property (PropertyType aside).
    Extended(Vec<(String, String)>),
}

impl Path {
    pub fn read(n: &Node) -> Option<Path> {
        match n.name.local.as_str() {
            "FieldURI" => {
                let uri = n.attr("FieldURI")?;
                Some(Path::Field(uri.rsplit(':').next()?.to_owned()))
            }
            "IndexedFieldURI" => {
                let uri = n.attr("FieldURI")?;
                let key = n.attr("FieldIndex")?.to_owned();
                let (container, sub) = match uri {
                    "contacts:EmailAddress" => ("EmailAddresses", None),
                    "contacts:PhoneNumber" => ("PhoneNumbers", None),
                    "contacts:ImAddress" => ("ImAddresses", None),
                    other => match other.strip_prefix("contacts:PhysicalAddress:") {
                        Some(sub) => ("PhysicalAddresses", Some(sub.to_owned())),
                        None => return None,
                    },
                };
                Some(Path::Indexed {
                    container: container.to_owned(),
                    key,
                    sub,
                })
            }
            "ExtendedFieldURI" => Some(Path::Extended(extended_key(n))),
            _ => None,
        }
    }

    /// Whether this path names a child (or part of a child) of a stored item.
    fn covers(&self, child: &Node) -> bool {
        match self {
            Path::Field(f) => child.name.local == *f,
            Path::Indexed { container, .. } => child.name.local == *container,
            Path::Extended(k) => {
                child.name.local == "ExtendedProperty"
                    && kid(child, "ExtendedFieldURI").is_some_and(|u| extended_key(u) == *k)
            }
        }
    }
}

/// The identity of an extended property: its URI's attributes but the type, normalised
/// (GUIDs and tags compare case-insensitively, as Exchange does).
fn extended_key(uri: &Node) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = uri
        .attrs
        .iter()
        .filter(|(n, _)| n.ns.is_empty() && n.local != "PropertyType")
        .map(|(n, v)| {
            let v = match n.local.as_str() {
                "PropertySetId" | "PropertyTag" => v.to_lowercase(),
                _ => v.clone(),
            };
            (n.local.clone(), v)
        })
        .collect();
    k.sort();
    k
}

/// An item written in a shape: ItemId and ParentFolderId added, extended properties only
/// when asked for (as Exchange does), attachments listed without their content.
fn item_out(mb: &Mailbox, item: &Item, shape: &Shape, find: bool) -> Node {
    let mut n = item.node.clone();
    n.children.retain(|c| {
        let asked = shape.extra.iter().any(|p| p.covers(c));
        if c.name.local == "ExtendedProperty" {
            return asked || shape.all_extended;
        }
        // FindItem never returns bodies (Exchange refuses them there).
        if find && c.name.local == "Body" {
            return false;
        }
        asked || !shape.id_only
    });
    if let Some(want) = &shape.body_type
        && let Some(body) = n.children.iter_mut().find(|c| c.name.local == "Body")
    {
        convert_body(body, want);
    }
    n.children.push(with_attrs(
        t("ItemId"),
        &[("Id", &item.id), ("ChangeKey", &item.change_key)],
    ));
    let asked = |f: &str| {
        shape
            .extra
            .iter()
            .any(|p| matches!(p, Path::Field(x) if x == f))
    };
    if (!shape.id_only || asked("ParentFolderId"))
        && let Some(f) = mb.folder(&item.folder)
    {
        n.children.push(folder_id_node("ParentFolderId", f));
    }
    if !shape.id_only || asked("HasAttachments") {
        n.children.push(t_text(
            "HasAttachments",
            bool_str(!item.attachments.is_empty()),
        ));
    }
    // A contact photo makes HasPicture true, as Exchange computes it.
    let photo = item
        .attachments
        .iter()
        .any(|a| kid_text(&a.node, "IsContactPhoto") == Some("true"));
    if n.name.local == "Contact" && (!shape.id_only || asked("HasPicture")) {
        n.children.retain(|c| c.name.local != "HasPicture");
        n.children.push(t_text("HasPicture", bool_str(photo)));
    }
    if (!shape.id_only || asked("Attachments")) && !item.attachments.is_empty() {
        let mut list = t("Attachments");
        for a in &item.attachments {
            list.children.push(attachment_out(a, false, None));
        }
        n.children.push(list);
    }
    let ty = type_of(&n.name.local);
    sort_children(&mut n, ty);
    n
}

/// An item as the inspection API shows it.
pub fn inspect(mb: &Mailbox, item: &Item, shape: &Shape) -> String {
    node_xml(&item_out(mb, item, shape, false))
}

fn attachment_out(a: &Attachment, content: bool, root: Option<(&str, &str)>) -> Node {
    let mut n = a.node.clone();
    n.children
        .retain(|c| c.name.local != "AttachmentId" && (content || c.name.local != "Content"));
    let mut id = with_attrs(t("AttachmentId"), &[("Id", &a.id)]);
    if let Some((rid, rck)) = root {
        id = with_attrs(id, &[("RootItemId", rid), ("RootItemChangeKey", rck)]);
    }
    n.children.push(id);
    let size = kid_text(&a.node, "Content").map(|c| c.len() * 3 / 4);
    if let Some(size) = size
        && kid(&n, "Size").is_none()
    {
        n.children.push(t_text("Size", &size.to_string()));
    }
    let ty = type_of(&n.name.local);
    sort_children(&mut n, ty);
    n
}

fn default_folder(item: &str) -> &'static str {
    match item {
        "Contact" | "DistributionList" => "contacts",
        "CalendarItem" => "calendar",
        "Task" => "tasks",
        _ => "inbox",
    }
}

/// Properties Exchange computes and refuses to be set (`ErrorInvalidPropertySet`): the
/// organizer above all, which a copied meeting cannot keep (it becomes the mailbox's).
fn read_only(field: &str) -> bool {
    matches!(
        field,
        "Organizer"
            | "MyResponseType"
            | "IsMeeting"
            | "IsRecurring"
            | "CalendarItemType"
            | "AppointmentState"
            | "Duration"
            | "OriginalStart"
            | "FirstOccurrence"
            | "LastOccurrence"
            | "ModifiedOccurrences"
            | "DeletedOccurrences"
            | "DateTimeCreated"
            | "LastModifiedTime"
            | "Size"
            | "HasAttachments"
            | "HasPicture"
    )
}

fn invalid_set(field: &str) -> Fail {
    (
        "ErrorInvalidPropertySet",
        format!("Set action is invalid for property. ({field} is read-only)"),
    )
}

fn create_item(
    cx: &mut Cx<'_>,
    folder: Option<&str>,
    invitations_given: bool,
    item: Node,
) -> Result<String, Fail> {
    let folder = folder
        .unwrap_or(default_folder(&item.name.local))
        .to_owned();
    let local = item.name.local.clone();
    if local == "CalendarItem" && !invitations_given {
        return Err((
            "ErrorSendMeetingInvitationsRequired",
            "SendMeetingInvitations attribute is required for Calendar items.".into(),
        ));
    }
    if let Some(c) = item.children.iter().find(|c| read_only(&c.name.local)) {
        return Err(invalid_set(&c.name.local));
    }
    let mut item = item;
    // Local times are read in the request's zone; named zones get their definitions.
    local_times(&mut item, &zones::context(cx.zone)?);
    if local == "CalendarItem" {
        zones::fill(&mut item)?;
    }
    if local == "CalendarItem" {
        // Exchange makes the mailbox the organizer of what it creates there.
        let owner = cx.mailbox.clone();
        let mut mailbox = t("Mailbox");
        mailbox.children.push(t_text("Name", &owner));
        mailbox.children.push(t_text("EmailAddress", &owner));
        mailbox.children.push(t_text("RoutingType", "SMTP"));
        let mut organizer = t("Organizer");
        organizer.children.push(mailbox);
        let meeting = item.children.iter().any(|c| {
            matches!(
                c.name.local.as_str(),
                "RequiredAttendees" | "OptionalAttendees" | "Resources"
            )
        });
        item.children.push(organizer);
        item.children.push(t_text("IsMeeting", bool_str(meeting)));
        item.children.push(t_text(
            "MyResponseType",
            if meeting { "Organizer" } else { "Unknown" },
        ));
    }
    let mb = cx.mailbox.clone();
    let id = cx.state.insert_item(&mb, &folder, item)?;
    let mb = mailbox(cx)?;
    let item = mb.item(&id).ok_or_else(|| not_found(&id))?;
    let mut n = t(&local);
    n.children.push(with_attrs(
        t("ItemId"),
        &[("Id", &item.id), ("ChangeKey", &item.change_key)],
    ));
    Ok(format!("<m:Items>{}</m:Items>", node_xml(&n)))
}

/// The stored item an item id element names: an item, an occurrence of a series (made on
/// first use, as Exchange gives every occurrence an id), or the series of an occurrence.
fn resolve(cx: &mut Cx<'_>, id: &Node) -> Result<String, Fail> {
    let attr = |a: &str| id.attr(a).unwrap_or_default().to_owned();
    match id.name.local.as_str() {
        "ItemId" => {
            let i = attr("Id");
            mailbox(cx)?
                .item(&i)
                .map(|i| i.id.clone())
                .ok_or_else(|| not_found(&i))
        }
        "OccurrenceItemId" => {
            let master = attr("RecurringMasterId");
            let index: u32 = attr("InstanceIndex").parse().map_err(|_| {
                (
                    "ErrorInvalidIdMalformed",
                    "InstanceIndex is not a positive number.".to_owned(),
                )
            })?;
            let mb = cx.mailbox.clone();
            occurrence::occurrence_item(cx.state, &mb, &master, index)
        }
        "RecurringMasterItemId" => {
            let o = attr("OccurrenceId");
            let item = mailbox(cx)?.item(&o).ok_or_else(|| not_found(&o))?;
            match &item.master {
                Some((m, _)) => Ok(m.clone()),
                None if kid(&item.node, "Recurrence").is_some() => Ok(item.id.clone()),
                None => Err(not_found(&format!("{o} is not an occurrence of a series"))),
            }
        }
        other => Err((
            "ErrorInvalidIdMalformed",
            format!("the simulator does not resolve {other}"),
        )),
    }
}

fn get_item(cx: &mut Cx<'_>, shape: &Shape, id: &Node) -> Result<String, Fail> {
    let tid = resolve(cx, id)?;
    let mb = mailbox(cx)?;
    let item = mb.item(&tid).ok_or_else(|| not_found(&tid))?;
    if shape.mime
        && matches!(
            item.node.name.local.as_str(),
            "Contact" | "CalendarItem" | "Task" | "DistributionList"
        )
    {
        return Err((
            "ErrorUnsupportedMimeConversion",
            "The simulator does not convert contacts, calendar items or tasks to MIME; ask for properties instead.".into(),
        ));
    }
    Ok(format!(
        "<m:Items>{}</m:Items>",
        node_xml(&item_out(mb, item, shape, false))
    ))
}

fn update_item(
    cx: &mut Cx<'_>,
    change: &Node,
    never_overwrite: bool,
    mode: Option<String>,
) -> Result<String, Fail> {
    let id = change
        .children
        .iter()
        .find(|c| c.name.local.ends_with("ItemId"))
        .ok_or_else(|| not_found("ItemChange without an id"))?;
    let tid = resolve(cx, id)?;
    let zone = zones::context(cx.zone)?;
    let ck = cx.state.new_change_key();
    let mb = mailbox_mut(cx)?;
    let seq = mb.next_seq();
    let item = mb.item_mut(&tid).ok_or_else(|| not_found(&tid))?;
    if item.node.name.local == "CalendarItem" {
        let absent = mode.is_none();
        cx_record(&mut cx.state.invitation_modes, "UpdateItem", mode);
        if absent {
            return Err((
                "ErrorSendMeetingInvitationsOrCancellationsRequired",
                "SendMeetingInvitationsOrCancellations attribute is required for Calendar items."
                    .into(),
            ));
        }
    }
    let mb = mailbox_mut(cx)?;
    let item = mb.item_mut(&tid).ok_or_else(|| not_found(&tid))?;
    if never_overwrite
        && let Some(given) = id.attr("ChangeKey")
        && given != item.change_key
    {
        return Err((
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.".into(),
        ));
    }
    let updates = kid(change, "Updates")
        .map(|u| u.children.as_slice())
        .unwrap_or(&[]);
    // All or nothing: a read-only field anywhere, or a zone the server has no definition
    // of, refuses the whole change, as Exchange validates the change before applying it.
    for u in updates {
        if let Some(Path::Field(f)) = u.children.first().and_then(Path::read)
            && read_only(&f)
        {
            return Err(invalid_set(&f));
        }
        for given in u.children.get(1).iter().flat_map(|i| i.children.first()) {
            zones::fill(&mut given.clone())?;
        }
    }
    for u in updates {
        let Some(path) = u.children.first().and_then(Path::read) else {
            continue;
        };
        match u.name.local.as_str() {
            "SetItemField" | "AppendToItemField" => {
                let Some(given) = u.children.get(1).and_then(|i| i.children.first()) else {
                    continue;
                };
                set_field(
                    &mut item.node,
                    &path,
                    given,
                    u.name.local == "AppendToItemField",
                );
            }
            "DeleteItemField" => delete_field(&mut item.node, &path),
            _ => {}
        }
    }
    local_times(&mut item.node, &zone);
    if item.node.name.local == "CalendarItem" {
        zones::fill(&mut item.node)?;
    }
    if item.master.is_none() {
        normalize(&mut item.node);
    } else {
        utc_times(&mut item.node);
        let ty = type_of(&item.node.name.local);
        sort_children(&mut item.node, ty);
    }
    item.change_key = ck;
    item.seq = seq;
    let local = item.node.name.local.clone();
    let mut n = t(&local);
    n.children.push(with_attrs(
        t("ItemId"),
        &[("Id", &item.id), ("ChangeKey", &item.change_key)],
    ));
    if item.master.is_some() {
        let mb = cx.mailbox.clone();
        occurrence::occurrence_changed(cx.state, &mb, &tid);
    }
    Ok(format!("<m:Items>{}</m:Items>", node_xml(&n)))
}

fn cx_record(log: &mut Vec<(String, Option<String>)>, op: &str, mode: Option<String>) {
    log.push((op.to_owned(), mode));
}

/// SetItemField: the given element replaces the stored one (a dictionary entry, or one part
/// of a physical address, for indexed paths).
fn set_field(node: &mut Node, path: &Path, given: &Node, append: bool) {
    match path {
        Path::Field(_) | Path::Extended(_) => {
            if append && let Some(old) = node.children.iter_mut().find(|c| path.covers(c)) {
                if old.children.is_empty() {
                    old.text.push_str(&given.text);
                } else {
                    old.children.extend(given.children.iter().cloned());
                }
                return;
            }
            node.children.retain(|c| !path.covers(c));
            node.children.push(given.clone());
        }
        Path::Indexed { container, key, .. } => {
            let Some(entry) = given.children.iter().find(|e| e.attr("Key") == Some(key)) else {
                return;
            };
            if !node.children.iter().any(|c| c.name.local == *container) {
                node.children.push(t(container));
            }
            let Some(dict) = node
                .children
                .iter_mut()
                .find(|c| c.name.local == *container)
            else {
                return;
            };
            match dict
                .children
                .iter_mut()
                .find(|e| e.attr("Key") == Some(key))
            {
                Some(old) if !entry.children.is_empty() => {
                    for part in &entry.children {
                        old.children.retain(|c| c.name.local != part.name.local);
                        old.children.push(part.clone());
                    }
                    sort_children(old, "PhysicalAddressDictionaryEntryType");
                }
                Some(old) => *old = entry.clone(),
                None => dict.children.push(entry.clone()),
            }
        }
    }
}

fn delete_field(node: &mut Node, path: &Path) {
    match path {
        Path::Field(_) | Path::Extended(_) => node.children.retain(|c| !path.covers(c)),
        Path::Indexed {
            container,
            key,
            sub,
        } => {
            if let Some(dict) = node
                .children
                .iter_mut()
                .find(|c| c.name.local == *container)
            {
                match sub {
                    Some(sub) => {
                        if let Some(e) = dict
                            .children
                            .iter_mut()
                            .find(|e| e.attr("Key") == Some(key))
                        {
                            e.children.retain(|c| c.name.local != *sub);
                        }
                        dict.children
                            .retain(|e| !(e.attr("Key") == Some(key) && e.children.is_empty()));
                    }
                    None => dict.children.retain(|e| e.attr("Key") != Some(key)),
                }
            }
            // Exchange drops a dictionary with no entries left.
            node.children
                .retain(|c| !(c.name.local == *container && c.children.is_empty()));
        }
    }
}

struct DeleteOptions {
    /// `DeleteType="MoveToDeletedItems"`: the item moves to Deleted Items (HardDelete and
    /// SoftDelete remove it from the client's view alike).
    to_deleted_items: bool,
    /// Whether `AffectedTaskOccurrences` was given (Exchange requires it for tasks).
    task_occurrences: bool,
}

fn delete_item(
    cx: &mut Cx<'_>,
    id: &Node,
    mode: Option<String>,
    opts: &DeleteOptions,
) -> Result<String, Fail> {
    let tid = resolve(cx, id)?;
    let kind = mailbox(cx)?
        .item(&tid)
        .map(|i| i.node.name.local.clone())
        .unwrap_or_default();
    if kind == "CalendarItem" {
        let absent = mode.is_none();
        cx_record(&mut cx.state.invitation_modes, "DeleteItem", mode);
        if absent {
            return Err((
                "ErrorSendMeetingCancellationsRequired",
                "SendMeetingCancellations attribute is required for Calendar items.".into(),
            ));
        }
    }
    if kind == "Task" && !opts.task_occurrences {
        return Err((
            "ErrorAffectedTaskOccurrencesRequired",
            "AffectedTaskOccurrences attribute is required for Task items.".into(),
        ));
    }
    let mb = mailbox_mut(cx)?;
    let seq = mb.next_seq();
    let pos = mb
        .items
        .iter()
        .position(|i| i.id == tid)
        .ok_or_else(|| not_found(&tid))?;
    if let Some(given) = id.attr("ChangeKey")
        && given != mb.items[pos].change_key
    {
        return Err((
            "ErrorIrresolvableConflict",
            "The delete operation could not be performed because the change key passed in the request does not match the current change key for the item.".into(),
        ));
    }
    if mb.items[pos].master.is_some() {
        let mb = cx.mailbox.clone();
        occurrence::delete_occurrence(cx.state, &mb, &tid)?;
        return Ok(String::new());
    }
    // A series takes its occurrences with it.
    mb.items
        .retain(|i| i.master.as_ref().is_none_or(|(m, _)| *m != tid));
    let Some(pos) = mb.items.iter().position(|i| i.id == tid) else {
        return Err(not_found(&tid));
    };
    let bin = mb
        .folder("deleteditems")
        .map(|f| f.id.clone())
        .filter(|bin| opts.to_deleted_items && *bin != mb.items[pos].folder);
    let tomb = Tombstone {
        id: mb.items[pos].id.clone(),
        folder: mb.items[pos].folder.clone(),
        created: mb.items[pos].created,
        seq,
    };
    mb.tombstones.push(tomb);
    match bin {
        // Moved: gone from its folder (a sync there reports a Delete), new in Deleted Items.
        Some(bin) => {
            let moved = &mut mb.items[pos];
            moved.folder = bin;
            moved.created = seq;
            moved.seq = seq;
        }
        None => {
            mb.items.remove(pos);
        }
    }
    Ok(String::new())
}

fn find_item(cx: &mut Cx<'_>, req: &Node, folder: &str) -> Result<String, Fail> {
    let mb = mailbox(cx)?;
    let f = mb.folder(folder).ok_or_else(|| folder_not_found(folder))?;
    let shape = Shape::read(kid(req, "ItemShape"));
    let restriction = kid(req, "Restriction").and_then(|r| r.children.first());
    let found: Vec<&Item> = mb
        .items
        .iter()
        .filter(|i| i.folder == f.id && i.master.is_none())
        .filter(|i| restriction.is_none_or(|r| matches(&i.node, r)))
        .collect();
    let total = found.len();
    let (offset, max) = page(kid(req, "IndexedPageItemView"));
    let page: Vec<&Item> = found.into_iter().skip(offset).take(max).collect();
    let last = offset + page.len() >= total;
    let mut w = W::default();
    w.open(
        "m:RootFolder",
        &[
            ("IndexedPagingOffset", &(offset + page.len()).to_string()),
            ("TotalItemsInView", &total.to_string()),
            ("IncludesLastItemInRange", bool_str(last)),
        ],
    );
    w.open("t:Items", &[]);
    for i in page {
        w.node(&item_out(mb, i, &shape, true));
    }
    w.close("t:Items");
    w.close("m:RootFolder");
    Ok(w.0)
}

/// The value a path has in a stored item, as text.
fn value_of(item: &Node, path: &Path) -> Option<String> {
    let child = item.children.iter().find(|c| path.covers(c))?;
    match path {
        Path::Field(_) => Some(child.text.trim().to_owned()),
        Path::Extended(_) => kid(child, "Value").map(|v| v.text.clone()),
        Path::Indexed { key, sub, .. } => {
            let e = child.children.iter().find(|e| e.attr("Key") == Some(key))?;
            match sub {
                Some(s) => kid(e, s).map(|v| v.text.trim().to_owned()),
                None => Some(e.text.trim().to_owned()),
            }
        }
    }
}

/// Evaluates a search expression (`t:IsEqualTo`, `t:And`, …) on a stored item.
fn matches(item: &Node, expr: &Node) -> bool {
    let path = || expr.children.first().and_then(Path::read);
    let constant = || {
        kid(expr, "FieldURIOrConstant")
            .and_then(|c| kid(c, "Constant"))
            .or_else(|| kid(expr, "Constant"))
            .and_then(|c| c.attr("Value"))
            .map(str::to_owned)
    };
    match expr.name.local.as_str() {
        "And" => expr.children.iter().all(|e| matches(item, e)),
        "Or" => expr.children.iter().any(|e| matches(item, e)),
        "Not" => !expr.children.first().is_some_and(|e| matches(item, e)),
        "Exists" => path().is_some_and(|p| value_of(item, &p).is_some()),
        "IsEqualTo" | "IsNotEqualTo" => {
            let eq = match (path(), constant()) {
                (Some(p), Some(c)) => value_of(item, &p).is_some_and(|v| v == c),
                _ => false,
            };
            eq == (expr.name.local == "IsEqualTo")
        }
        "Contains" => match (path(), constant()) {
            (Some(p), Some(c)) => {
                value_of(item, &p).is_some_and(|v| v.to_lowercase().contains(&c.to_lowercase()))
            }
            _ => false,
        },
        _ => false,
    }
}

/// Changes of one folder since a sync state: items created, changed and deleted after the
/// change number the state holds, oldest first, at most MaxChangesReturned of them.
fn sync_items(cx: &mut Cx<'_>, req: &Node) -> Result<String, Fail> {
    let folder = kid(req, "SyncFolderId")
        .and_then(|f| f.children.first())
        .map(folder_ref)
        .unwrap_or_default();
    let max: usize = kid_text(req, "MaxChangesReturned")
        .and_then(|m| m.parse().ok())
        .unwrap_or(512);
    let shape = Shape::read(kid(req, "ItemShape"));
    cx.state
        .item_syncs
        .push(kid_text(req, "SyncState").map(|s| s.to_string()));
    let mb = mailbox(cx)?;
    let f = mb
        .folder(&folder)
        .ok_or_else(|| folder_not_found(&folder))?;
    // A state names its folder: Exchange refuses one from another folder. After an
    // invalidation (the test's control) it names the epoch too: `I{seq}~{epoch}.{folder}`.
    let given = kid_text(req, "SyncState").unwrap_or_default();
    let epoch = mb.sync_epoch;
    fn current(seq: &str, epoch: u32) -> Option<&str> {
        match seq.split_once('~') {
            Some((seq, e)) => (e.parse() == Ok(epoch)).then_some(seq),
            None => (epoch == 0).then_some(seq),
        }
    }
    let since = match given.split_once('.') {
        None if given.is_empty() => 0,
        Some((seq, fid)) if fid == f.id && current(seq, epoch).is_some() => {
            sync_state(current(seq, epoch), 'I')?.unwrap_or(0)
        }
        _ => {
            return Err((
                "ErrorInvalidSyncStateData",
                format!("Synchronization state data is corrupt or otherwise invalid ({given:?})."),
            ));
        }
    };
    enum Change<'a> {
        Create(&'a Item),
        Update(&'a Item),
        Delete(&'a Tombstone),
    }
    let mut changes: Vec<(u64, Change<'_>)> = Vec::new();
    for i in &mb.items {
        if i.folder == f.id && i.master.is_none() && i.seq > since {
            let c = if i.created > since {
                Change::Create(i)
            } else {
                Change::Update(i)
            };
            changes.push((i.seq, c));
        }
    }
    for d in &mb.tombstones {
        // An item both created and deleted since the state never existed for the client.
        if d.folder == f.id && d.seq > since && d.created <= since {
            changes.push((d.seq, Change::Delete(d)));
        }
    }
    changes.sort_by_key(|(seq, _)| *seq);
    let all = changes.len() <= max;
    changes.truncate(max);
    let state = if all {
        mb.seq
    } else {
        changes.last().map(|(s, _)| *s).unwrap_or(since)
    };
    let mut w = W::default();
    let epoch = match mb.sync_epoch {
        0 => String::new(),
        e => format!("~{e}"),
    };
    w.leaf("m:SyncState", &format!("I{state}{epoch}.{}", f.id));
    w.leaf("m:IncludesLastItemInRange", bool_str(all));
    w.open("m:Changes", &[]);
    for (_, c) in changes {
        match c {
            Change::Create(i) => {
                w.open("t:Create", &[]);
                w.node(&item_out(mb, i, &shape, true));
                w.close("t:Create");
            }
            Change::Update(i) => {
                w.open("t:Update", &[]);
                w.node(&item_out(mb, i, &shape, true));
                w.close("t:Update");
            }
            Change::Delete(d) => {
                w.open("t:Delete", &[]);
                w.node(&with_attrs(t("ItemId"), &[("Id", &d.id)]));
                w.close("t:Delete");
            }
        }
    }
    w.close("m:Changes");
    Ok(w.0)
}

fn attachment_ids(req: &Node) -> Vec<String> {
    kid(req, "AttachmentIds")
        .map(|a| {
            a.children
                .iter()
                .filter_map(|i| i.attr("Id").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Where an attachment is: its item's id and its index there.
fn find_attachment(mb: &Mailbox, id: &str) -> Option<(String, usize)> {
    mb.items.iter().find_map(|i| {
        i.attachments
            .iter()
            .position(|a| a.id == id)
            .map(|p| (i.id.clone(), p))
    })
}

fn attachment_not_found(id: &str) -> Fail {
    (
        "ErrorItemNotFound",
        format!("The specified attachment was not found ({id})."),
    )
}

fn create_attachment(cx: &mut Cx<'_>, parent: &str, given: Node) -> Result<String, Fail> {
    let aid = cx.state.new_id("Att");
    let ck = cx.state.new_change_key();
    let mb = mailbox_mut(cx)?;
    let seq = mb.next_seq();
    let item = mb.item_mut(parent).ok_or_else(|| not_found(parent))?;
    let local = given.name.local.clone();
    item.attachments.push(Attachment {
        id: aid.clone(),
        node: given,
    });
    // Adding an attachment changes the item: a new change key, and a sync Update.
    item.change_key = ck;
    item.seq = seq;
    let mut n = t(&local);
    n.children.push(with_attrs(
        t("AttachmentId"),
        &[
            ("Id", &aid),
            ("RootItemId", &item.id),
            ("RootItemChangeKey", &item.change_key),
        ],
    ));
    Ok(format!("<m:Attachments>{}</m:Attachments>", node_xml(&n)))
}

fn get_attachment(cx: &mut Cx<'_>, id: &str) -> Result<String, Fail> {
    let mb = mailbox(cx)?;
    let (item, pos) = find_attachment(mb, id).ok_or_else(|| attachment_not_found(id))?;
    let item = mb.item(&item).ok_or_else(|| attachment_not_found(id))?;
    let a = &item.attachments[pos];
    Ok(format!(
        "<m:Attachments>{}</m:Attachments>",
        node_xml(&attachment_out(a, true, None))
    ))
}

fn delete_attachment(cx: &mut Cx<'_>, id: &str) -> Result<String, Fail> {
    let ck = cx.state.new_change_key();
    let mb = mailbox_mut(cx)?;
    let seq = mb.next_seq();
    let (item, pos) = find_attachment(mb, id).ok_or_else(|| attachment_not_found(id))?;
    let item = mb.item_mut(&item).ok_or_else(|| attachment_not_found(id))?;
    item.attachments.remove(pos);
    item.change_key = ck;
    item.seq = seq;
    Ok(format!(
        r#"<m:RootItemId RootItemId="{}" RootItemChangeKey="{}"/>"#,
        escape(&item.id),
        escape(&item.change_key)
    ))
}

/// Inbox rules: stored as given (`t:Rule`), with the RuleId the simulator assigns, and
/// validated where Exchange refuses a rule (a RuleId on create, no action, a folder that does
/// not exist, an unknown rule), and refused altogether while an Outlook rule blob exists
/// unless the request removes it.
mod rules {
    use super::{Cx, Fail, kid, mailbox, mailbox_mut};
    use crate::soap::{W, t_text};
    use crate::state::sort_children;
    use crate::xml::Node;

    fn priority(r: &Node) -> i64 {
        super::kid_text(r, "Priority")
            .and_then(|p| p.parse().ok())
            .unwrap_or(i64::MAX)
    }

    pub fn get(cx: &mut Cx<'_>, w: &mut W) {
        let (rules, blob) = match mailbox(cx) {
            Ok(mb) => {
                let mut r = mb.rules.clone();
                r.sort_by_key(priority);
                (r, mb.outlook_rule_blob)
            }
            Err(_) => (Vec::new(), false),
        };
        w.open("m:GetInboxRulesResponse", &[("ResponseClass", "Success")]);
        w.leaf("m:ResponseCode", "NoError");
        w.leaf("m:OutlookRuleBlobExists", super::bool_str(blob));
        w.open("m:InboxRules", &[]);
        for r in &rules {
            w.node(r);
        }
        w.close("m:InboxRules");
        w.close("m:GetInboxRulesResponse");
    }

    /// A rule operation's failure, as `t:RuleOperationError` reports it.
    struct Invalid {
        field: &'static str,
        code: &'static str,
        message: String,
        value: String,
    }

    /// Applies the operations in order, after validating them all (Exchange applies none
    /// of a request with an invalid operation).
    pub fn update(cx: &mut Cx<'_>, req: &Node, w: &mut W) {
        let ops: Vec<Node> = kid(req, "Operations")
            .map(|o| o.children.clone())
            .unwrap_or_default();
        let remove_blob = super::kid_text(req, "RemoveOutlookRuleBlob") == Some("true");
        let blob = mailbox(cx).is_ok_and(|mb| mb.outlook_rule_blob);
        if blob && !remove_blob {
            w.open("m:UpdateInboxRulesResponse", &[("ResponseClass", "Error")]);
            w.leaf(
                "m:MessageText",
                "Outlook rule blob exists in the mailbox; set RemoveOutlookRuleBlob to true to proceed.",
            );
            w.leaf("m:ResponseCode", "ErrorOutlookRuleBlobExists");
            w.leaf("m:DescriptiveLinkKey", "0");
            w.close("m:UpdateInboxRulesResponse");
            return;
        }
        let mut errors: Vec<(usize, Invalid)> = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            if let Err(e) = validate(cx, op) {
                errors.push((index, e));
            }
        }
        if errors.is_empty() {
            if remove_blob && let Ok(mb) = mailbox_mut(cx) {
                // Removing the blob takes the client-side rules with it, as on Exchange.
                mb.outlook_rule_blob = false;
            }
            for op in &ops {
                let _ = apply(cx, op);
            }
        }
        let failed = !errors.is_empty();
        w.open(
            "m:UpdateInboxRulesResponse",
            &[("ResponseClass", if failed { "Error" } else { "Success" })],
        );
        if !failed {
            w.leaf("m:ResponseCode", "NoError");
            w.close("m:UpdateInboxRulesResponse");
            return;
        }
        w.leaf(
            "m:MessageText",
            "Validation error occurred while processing the inbox rules.",
        );
        w.leaf("m:ResponseCode", "ErrorInboxRulesValidationError");
        w.leaf("m:DescriptiveLinkKey", "0");
        w.open("m:RuleOperationErrors", &[]);
        for (index, e) in errors {
            w.open("t:RuleOperationError", &[]);
            w.leaf("t:OperationIndex", &index.to_string());
            w.open("t:ValidationErrors", &[]);
            w.open("t:Error", &[]);
            w.leaf("t:FieldURI", e.field);
            w.leaf("t:ErrorCode", e.code);
            w.leaf("t:ErrorMessage", &e.message);
            w.leaf("t:FieldValue", &e.value);
            w.close("t:Error");
            w.close("t:ValidationErrors");
            w.close("t:RuleOperationError");
        }
        w.close("m:RuleOperationErrors");
        w.close("m:UpdateInboxRulesResponse");
    }

    fn rule_id(n: &Node) -> String {
        super::kid_text(n, "RuleId").unwrap_or_default().to_owned()
    }

    fn validate(cx: &Cx<'_>, op: &Node) -> Result<(), Invalid> {
        let mb = mailbox(cx).map_err(|(_, m)| Invalid {
            field: "RuleId",
            code: "UnexpectedError",
            message: m,
            value: String::new(),
        })?;
        let exists = |id: &str| mb.rules.iter().any(|r| rule_id(r) == id);
        let not_found = |id: String| Invalid {
            field: "RuleId",
            code: "RuleNotFound",
            message: "The rule was not found.".into(),
            value: id,
        };
        let rule = kid(op, "Rule");
        match op.name.local.as_str() {
            "CreateRuleOperation" => {
                if let Some(id) = rule.and_then(|r| kid(r, "RuleId")) {
                    return Err(Invalid {
                        field: "RuleId",
                        code: "CreateWithRuleId",
                        message: "A new rule cannot have a RuleId.".into(),
                        value: id.text.trim().to_owned(),
                    });
                }
            }
            "SetRuleOperation" => {
                let id = rule.map(rule_id).unwrap_or_default();
                if !exists(&id) {
                    return Err(not_found(id));
                }
            }
            "DeleteRuleOperation" => {
                let id = rule_id(op);
                if !exists(&id) {
                    return Err(not_found(id));
                }
            }
            _ => {}
        }
        let Some(rule) = rule else {
            return Ok(());
        };
        let Some(actions) = kid(rule, "Actions").filter(|a| !a.children.is_empty()) else {
            return Err(Invalid {
                field: "Actions",
                code: "MissingAction",
                message: "The rule has no action.".into(),
                value: String::new(),
            });
        };
        for (action, field) in [
            ("MoveToFolder", "Action:MoveToFolder"),
            ("CopyToFolder", "Action:CopyToFolder"),
        ] {
            if let Some(target) = kid(actions, action).and_then(|a| a.children.first()) {
                let id = target.attr("Id").unwrap_or_default();
                if mb.folder(id).is_none() {
                    return Err(Invalid {
                        field,
                        code: "FolderDoesNotExist",
                        message: "The folder does not exist in the mailbox.".into(),
                        value: id.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    fn apply(cx: &mut Cx<'_>, op: &Node) -> Result<(), Fail> {
        match op.name.local.as_str() {
            "CreateRuleOperation" => {
                let Some(mut rule) = kid(op, "Rule").cloned() else {
                    return Ok(());
                };
                let id = cx.state.new_id("Rule");
                rule.children.push(t_text("RuleId", &id));
                sort_children(&mut rule, "RuleType");
                mailbox_mut(cx)?.rules.push(rule);
            }
            "SetRuleOperation" => {
                if let Some(rule) = kid(op, "Rule").cloned() {
                    let id = rule_id(&rule);
                    let mb = mailbox_mut(cx)?;
                    if let Some(old) = mb.rules.iter_mut().find(|r| rule_id(r) == id) {
                        *old = rule;
                    }
                }
            }
            "DeleteRuleOperation" => {
                let id = rule_id(op);
                mailbox_mut(cx)?.rules.retain(|r| rule_id(r) != id);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Converts a body to the BodyType asked for: HTML to text by dropping the markup (line
/// breaks for block ends, entities decoded), text to HTML in a minimal document, as
/// Exchange answers a `t:BodyType` different from the stored one.
fn convert_body(body: &mut Node, want: &str) {
    let have = body.attr("BodyType").unwrap_or("Text").to_owned();
    if have.eq_ignore_ascii_case(want) {
        return;
    }
    body.text = if want == "Text" {
        html_to_text(&body.text)
    } else {
        let escaped = crate::soap::escape(&body.text).replace('\n', "<br>\n");
        format!("<html><body>{escaped}</body></html>")
    };
    for (k, v) in &mut body.attrs {
        if k.ns.is_empty() && k.local == "BodyType" {
            *v = want.to_owned();
        }
    }
}

fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let Some(gt) = rest[lt..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[lt + 1..lt + gt].trim().to_ascii_lowercase();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let closing = tag.starts_with('/');
        if name == "br"
            || (closing
                && matches!(
                    name.as_str(),
                    "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3"
                ))
        {
            out.push('\n');
        }
        // Style and script contents are not text.
        if !closing && matches!(name.as_str(), "style" | "script" | "head") {
            let end = format!("</{name}");
            match rest[lt..].to_ascii_lowercase().find(&end) {
                Some(e) => {
                    let after = lt + e;
                    rest = &rest[after..];
                    continue;
                }
                None => {
                    rest = "";
                    break;
                }
            }
        }
        rest = &rest[lt + gt + 1..];
    }
    out.push_str(rest);
    decode_entities(&out).trim().to_owned()
}

fn decode_entities(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';').filter(|&i| i <= 8) else {
            out.push('&');
            rest = after;
            continue;
        };
        let entity = &after[..semi];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What ExportItems hands out: opaque to the client (Exchange's is a fast-transfer stream),
/// here a marked copy of the whole stored item, attachments with their content, so
/// UploadItems gives back exactly what was exported, organizer and all.
const EXPORT_MARK: &str = "ews-sim export v1\n";
const OCCURRENCE_MARK: &str = "ews-sim occurrence ";

fn export_item(cx: &mut Cx<'_>, id: &Node) -> Result<String, Fail> {
    use base64::Engine;
    let tid = resolve(cx, id)?;
    let mb = mailbox(cx)?;
    let item = mb.item(&tid).ok_or_else(|| not_found(&tid))?;
    let mut whole = item.node.clone();
    if !item.attachments.is_empty() {
        let mut list = t("Attachments");
        list.children
            .extend(item.attachments.iter().map(|a| a.node.clone()));
        whole.children.push(list);
    }
    let mut data = format!("{EXPORT_MARK}{}", node_xml(&whole));
    // A series travels with its modified occurrences, as Exchange's stream carries them.
    for occ in mb
        .items
        .iter()
        .filter(|i| i.master.as_ref().is_some_and(|(m, _)| *m == tid))
    {
        if let Some((_, index)) = &occ.master
            && kid_text(&occ.node, "CalendarItemType") == Some("Exception")
        {
            data.push_str(&format!(
                "\n{OCCURRENCE_MARK}{index}\n{}",
                node_xml(&occ.node)
            ));
        }
    }
    Ok(format!(
        r#"<m:ItemId Id="{}" ChangeKey="{}"/><m:Data>{}</m:Data>"#,
        escape(&item.id),
        escape(&item.change_key),
        base64::engine::general_purpose::STANDARD.encode(data)
    ))
}

fn upload_item(cx: &mut Cx<'_>, upload: &Node) -> Result<String, Fail> {
    use base64::Engine;
    let corrupt = || {
        (
            "ErrorCorruptData",
            "The data is corrupt (it was not made by ExportItems of this server).".to_owned(),
        )
    };
    let data = kid_text(upload, "Data").unwrap_or_default();
    let data = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| corrupt())?;
    let data = String::from_utf8(data).map_err(|_| corrupt())?;
    let body = data.strip_prefix(EXPORT_MARK).ok_or_else(corrupt)?;
    let separator = format!("\n{OCCURRENCE_MARK}");
    let mut parts = body.split(&separator);
    let node = crate::state::parse_item(parts.next().unwrap_or_default()).map_err(|_| corrupt())?;
    let mut occurrences = Vec::new();
    for part in parts {
        let (index, xml) = part.split_once('\n').ok_or_else(corrupt)?;
        let index: u32 = index.parse().map_err(|_| corrupt())?;
        occurrences.push((index, crate::state::parse_item(xml).map_err(|_| corrupt())?));
    }
    let folder = kid(upload, "ParentFolderId")
        .map(folder_ref)
        .unwrap_or_default();
    let action = upload.attr("CreateAction").unwrap_or("CreateNew");
    let existing = kid(upload, "ItemId")
        .and_then(|i| i.attr("Id"))
        .and_then(|i| mailbox(cx).ok()?.item(i).map(|i| i.id.clone()));
    let id = match (action, existing) {
        ("Update" | "UpdateOrCreate", Some(id)) => {
            let ck = cx.state.new_change_key();
            let fresh = {
                // The upload replaces the item's content; attachments come with it.
                let mb = cx.mailbox.clone();
                let scratch = cx.state.insert_item(&mb, &folder, node)?;
                let mb = mailbox_mut(cx)?;
                let pos = mb
                    .items
                    .iter()
                    .position(|i| i.id == scratch)
                    .ok_or_else(|| not_found(&scratch))?;
                mb.items.remove(pos)
            };
            let mb = mailbox_mut(cx)?;
            let seq = mb.next_seq();
            let item = mb.item_mut(&id).ok_or_else(|| not_found(&id))?;
            item.node = fresh.node;
            item.attachments = fresh.attachments;
            item.change_key = ck;
            item.seq = seq;
            id
        }
        ("Update", None) => {
            return Err(not_found(
                "UploadItems Update of an item that does not exist",
            ));
        }
        _ => {
            let mb = cx.mailbox.clone();
            cx.state.insert_item(&mb, &folder, node)?
        }
    };
    if !occurrences.is_empty() {
        let mb_name = cx.mailbox.clone();
        let mb = mailbox_mut(cx)?;
        // The series' old exceptions give way to the uploaded ones.
        mb.items
            .retain(|i| i.master.as_ref().is_none_or(|(m, _)| *m != id));
        for (index, occ) in occurrences {
            let occ_id = cx.state.new_id("Occ");
            let ck = cx.state.new_change_key();
            let mb = mailbox_mut(cx)?;
            let Some(master) = mb.item(&id) else { break };
            let (folder, created) = (master.folder.clone(), master.created);
            mb.items.push(Item {
                id: occ_id.clone(),
                change_key: ck,
                folder,
                node: occ,
                attachments: Vec::new(),
                created,
                seq: created,
                master: Some((id.clone(), index)),
            });
            occurrence::occurrence_changed(cx.state, &mb_name, &occ_id);
        }
    }
    let mb = mailbox(cx)?;
    let item = mb.item(&id).ok_or_else(|| not_found(&id))?;
    Ok(format!(
        r#"<m:ItemId Id="{}" ChangeKey="{}"/>"#,
        escape(&item.id),
        escape(&item.change_key)
    ))
}
