//! The bodies of the EWS operations the copy makes, one function each, returning the
//! operation's name and its element. Each is unit-tested against Microsoft's published WSDL and
//! schemas (`ews_sim::check::check_request`), so a request Exchange would refuse with
//! `ErrorSchemaValidation` cannot ship.
//!
//! Calendar writes carry `SendMeetingInvitations="SendToNone"` (create),
//! `SendMeetingInvitationsOrCancellations="SendToNone"` (update) and
//! `SendMeetingCancellations="SendToNone"` (delete): a migration never mails attendees.

use crate::xml::Writer;

/// Our named property set: every item mailshift creates carries, in it, the string property
/// [`KEY_NAME`] holding the engine's name for the item, so that an item created just before a
/// crash is found again (and adopted) instead of created twice.
pub const KEY_SET: &str = "c1f0a3d2-6d61-696c-7368-696674000001";
/// The name of the key property in [`KEY_SET`].
pub const KEY_NAME: &str = "mailshift-key";

/// The most entries one page of FindFolder / FindItem asks for.
pub const PAGE: usize = 250;

/// The most changes one SyncFolderItems asks for (Exchange's own maximum is 512).
pub const SYNC_PAGE: usize = 512;

/// What a folder holds, as EWS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Contacts,
    Calendar,
    Tasks,
}

impl Kind {
    /// The distinguished folder of this kind (where new folders are created).
    pub fn distinguished(self) -> &'static str {
        match self {
            Kind::Contacts => "contacts",
            Kind::Calendar => "calendar",
            Kind::Tasks => "tasks",
        }
    }

    /// The FolderClass of its folders (subclasses, `IPF.Contact.X`, count too).
    pub fn folder_class(self) -> &'static str {
        match self {
            Kind::Contacts => "IPF.Contact",
            Kind::Calendar => "IPF.Appointment",
            Kind::Tasks => "IPF.Task",
        }
    }

    fn folder_element(self) -> &'static str {
        match self {
            Kind::Contacts => "t:ContactsFolder",
            Kind::Calendar => "t:CalendarFolder",
            Kind::Tasks => "t:TasksFolder",
        }
    }
}

/// An item or folder as EWS identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id {
    pub id: String,
    pub change_key: Option<String>,
}

fn id_attrs(id: &Id) -> Vec<(&str, &str)> {
    let mut attrs = vec![("Id", id.id.as_str())];
    if let Some(ck) = &id.change_key {
        attrs.push(("ChangeKey", ck.as_str()));
    }
    attrs
}

/// `<t:ExtendedFieldURI …/>` of the key property.
pub fn key_uri(w: &mut Writer) {
    w.empty(
        "t:ExtendedFieldURI",
        &[
            ("PropertySetId", KEY_SET),
            ("PropertyName", KEY_NAME),
            ("PropertyType", "String"),
        ],
    );
}

/// `<t:ExtendedProperty>` setting the key property (placed by the item writers at its
/// position in ItemType).
pub fn key_property(w: &mut Writer, key: &str) {
    w.open("t:ExtendedProperty", &[]);
    key_uri(w);
    w.text("t:Value", key);
    w.close("t:ExtendedProperty");
}

fn folder_id(w: &mut Writer, folder: &str) {
    // Distinguished ids are short lowercase words; real FolderIds are long base64.
    if matches!(folder, "contacts" | "calendar" | "tasks" | "msgfolderroot") {
        w.empty("t:DistinguishedFolderId", &[("Id", folder)]);
    } else {
        w.empty("t:FolderId", &[("Id", folder)]);
    }
}

/// GetFolder of the three default folders (their FolderIds and names).
pub fn get_default_folders() -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:GetFolder", &[]);
    folder_shape(&mut w);
    w.open("m:FolderIds", &[]);
    for kind in [Kind::Contacts, Kind::Calendar, Kind::Tasks] {
        w.empty("t:DistinguishedFolderId", &[("Id", kind.distinguished())]);
    }
    w.close("m:FolderIds").close("m:GetFolder");
    ("GetFolder", w.finish())
}

fn folder_shape(w: &mut Writer) {
    w.open("m:FolderShape", &[])
        .text("t:BaseShape", "IdOnly")
        .open("t:AdditionalProperties", &[])
        .empty("t:FieldURI", &[("FieldURI", "folder:DisplayName")])
        .empty("t:FieldURI", &[("FieldURI", "folder:FolderClass")])
        .empty("t:FieldURI", &[("FieldURI", "folder:ParentFolderId")])
        .close("t:AdditionalProperties")
        .close("m:FolderShape");
}

/// FindFolder Deep under msgfolderroot, one page from `offset` (the caller filters by
/// FolderClass: a restriction on it would miss folders whose class is a subclass).
pub fn find_folders(offset: usize) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:FindFolder", &[("Traversal", "Deep")]);
    folder_shape(&mut w);
    let max = PAGE.to_string();
    let offset = offset.to_string();
    w.empty(
        "m:IndexedPageFolderView",
        &[
            ("MaxEntriesReturned", &max),
            ("Offset", &offset),
            ("BasePoint", "Beginning"),
        ],
    );
    w.open("m:ParentFolderIds", &[]);
    folder_id(&mut w, "msgfolderroot");
    w.close("m:ParentFolderIds").close("m:FindFolder");
    ("FindFolder", w.finish())
}

/// CreateFolder of a folder of `kind` named `name` under that kind's default folder.
pub fn create_folder(kind: Kind, name: &str) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:CreateFolder", &[]).open("m:ParentFolderId", &[]);
    folder_id(&mut w, kind.distinguished());
    w.close("m:ParentFolderId").open("m:Folders", &[]);
    w.open(kind.folder_element(), &[])
        .text("t:FolderClass", kind.folder_class())
        .text("t:DisplayName", name)
        .close(kind.folder_element());
    w.close("m:Folders").close("m:CreateFolder");
    ("CreateFolder", w.finish())
}

/// FindItem in one folder: ids, change keys and our key property, one page from `offset`;
/// with `key`, only the items whose key property equals it.
pub fn find_items(folder: &str, offset: usize, key: Option<&str>) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:FindItem", &[("Traversal", "Shallow")])
        .open("m:ItemShape", &[])
        .text("t:BaseShape", "IdOnly")
        .open("t:AdditionalProperties", &[]);
    key_uri(&mut w);
    w.close("t:AdditionalProperties").close("m:ItemShape");
    let max = PAGE.to_string();
    let offset = offset.to_string();
    w.empty(
        "m:IndexedPageItemView",
        &[
            ("MaxEntriesReturned", &max),
            ("Offset", &offset),
            ("BasePoint", "Beginning"),
        ],
    );
    if let Some(key) = key {
        w.open("m:Restriction", &[]).open("t:IsEqualTo", &[]);
        key_uri(&mut w);
        w.open("t:FieldURIOrConstant", &[])
            .empty("t:Constant", &[("Value", key)])
            .close("t:FieldURIOrConstant")
            .close("t:IsEqualTo")
            .close("m:Restriction");
    }
    w.open("m:ParentFolderIds", &[]);
    folder_id(&mut w, folder);
    w.close("m:ParentFolderIds").close("m:FindItem");
    ("FindItem", w.finish())
}

/// GetItem of these items with every property, our key and UID properties, and the body as
/// text.
pub fn get_items(ids: &[Id]) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:GetItem", &[])
        .open("m:ItemShape", &[])
        .text("t:BaseShape", "AllProperties")
        .text("t:BodyType", "Text")
        .open("t:AdditionalProperties", &[]);
    key_uri(&mut w);
    w.empty(
        "t:ExtendedFieldURI",
        &[
            ("PropertySetId", KEY_SET),
            ("PropertyName", crate::convert::UID_NAME),
            ("PropertyType", "String"),
        ],
    );
    w.close("t:AdditionalProperties").close("m:ItemShape");
    w.open("m:ItemIds", &[]);
    for id in ids {
        w.empty("t:ItemId", &[("Id", id.id.as_str())]);
    }
    w.close("m:ItemIds").close("m:GetItem");
    ("GetItem", w.finish())
}

/// CreateItem of one item (`item`: its `t:Contact` / `t:CalendarItem` / `t:Task` /
/// `t:DistributionList` element) in `folder`.
pub fn create_item(folder: &str, item: &str, calendar: bool) -> (&'static str, String) {
    let mut w = Writer::new();
    let mut attrs = vec![];
    if calendar {
        attrs.push(("SendMeetingInvitations", "SendToNone"));
    }
    w.open("m:CreateItem", &attrs)
        .open("m:SavedItemFolderId", &[]);
    folder_id(&mut w, folder);
    w.close("m:SavedItemFolderId")
        .open("m:Items", &[])
        .raw(item)
        .close("m:Items")
        .close("m:CreateItem");
    ("CreateItem", w.finish())
}

/// UpdateItem of one item at one ChangeKey (a stale one fails with
/// ErrorIrresolvableConflict: NeverOverwrite); `updates` are its `t:SetItemField` /
/// `t:DeleteItemField` elements.
pub fn update_item(id: &Id, updates: &str, calendar: bool) -> (&'static str, String) {
    let mut w = Writer::new();
    let mut attrs = vec![("ConflictResolution", "NeverOverwrite")];
    if calendar {
        attrs.push(("SendMeetingInvitationsOrCancellations", "SendToNone"));
    }
    w.open("m:UpdateItem", &attrs)
        .open("m:ItemChanges", &[])
        .open("t:ItemChange", &[])
        .empty("t:ItemId", &id_attrs(id))
        .open("t:Updates", &[])
        .raw(updates)
        .close("t:Updates")
        .close("t:ItemChange")
        .close("m:ItemChanges")
        .close("m:UpdateItem");
    ("UpdateItem", w.finish())
}

/// UpdateItem of one occurrence of a series (by its position, 1-based), to make it a modified
/// occurrence; occurrences have no ChangeKey to hold, so it overwrites.
pub fn update_occurrence(master: &str, index: u32, updates: &str) -> (&'static str, String) {
    let mut w = Writer::new();
    let index = index.to_string();
    w.open(
        "m:UpdateItem",
        &[
            ("ConflictResolution", "AlwaysOverwrite"),
            ("SendMeetingInvitationsOrCancellations", "SendToNone"),
        ],
    )
    .open("m:ItemChanges", &[])
    .open("t:ItemChange", &[])
    .empty(
        "t:OccurrenceItemId",
        &[("RecurringMasterId", master), ("InstanceIndex", &index)],
    )
    .open("t:Updates", &[])
    .raw(updates)
    .close("t:Updates")
    .close("t:ItemChange")
    .close("m:ItemChanges")
    .close("m:UpdateItem");
    ("UpdateItem", w.finish())
}

/// DeleteItem of occurrences of a series (by position, 1-based): its deleted occurrences.
pub fn delete_occurrences(master: &str, indexes: &[u32]) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open(
        "m:DeleteItem",
        &[
            ("DeleteType", "HardDelete"),
            ("SendMeetingCancellations", "SendToNone"),
        ],
    )
    .open("m:ItemIds", &[]);
    for index in indexes {
        let index = index.to_string();
        w.empty(
            "t:OccurrenceItemId",
            &[("RecurringMasterId", master), ("InstanceIndex", &index)],
        );
    }
    w.close("m:ItemIds").close("m:DeleteItem");
    ("DeleteItem", w.finish())
}

/// DeleteItem of one item (hard: a migration's rollback leaves nothing in Deleted Items).
pub fn delete_item(id: &Id, calendar: bool) -> (&'static str, String) {
    let mut w = Writer::new();
    let mut attrs = vec![("DeleteType", "HardDelete")];
    if calendar {
        attrs.push(("SendMeetingCancellations", "SendToNone"));
    }
    attrs.push(("AffectedTaskOccurrences", "AllOccurrences"));
    w.open("m:DeleteItem", &attrs)
        .open("m:ItemIds", &[])
        .empty("t:ItemId", &id_attrs(id))
        .close("m:ItemIds")
        .close("m:DeleteItem");
    ("DeleteItem", w.finish())
}

/// SyncFolderItems from `state` (None: from the beginning), ids only.
pub fn sync_folder_items(folder: &str, state: Option<&str>) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:SyncFolderItems", &[])
        .open("m:ItemShape", &[])
        .text("t:BaseShape", "IdOnly")
        .open("t:AdditionalProperties", &[]);
    key_uri(&mut w);
    w.close("t:AdditionalProperties")
        .close("m:ItemShape")
        .open("m:SyncFolderId", &[]);
    folder_id(&mut w, folder);
    w.close("m:SyncFolderId");
    if let Some(state) = state {
        w.text("m:SyncState", state);
    }
    w.text("m:MaxChangesReturned", &SYNC_PAGE.to_string())
        .text("m:SyncScope", "NormalItems")
        .close("m:SyncFolderItems");
    ("SyncFolderItems", w.finish())
}

/// GetAttachment of attachments (a contact's photo) with their content.
pub fn get_attachments(ids: &[&str]) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:GetAttachment", &[]).open("m:AttachmentIds", &[]);
    for id in ids {
        w.empty("t:AttachmentId", &[("Id", id)]);
    }
    w.close("m:AttachmentIds").close("m:GetAttachment");
    ("GetAttachment", w.finish())
}

/// CreateAttachment of a contact's photo (`content`: base64 of the image).
pub fn create_contact_photo(item: &Id, content_base64: &str) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:CreateAttachment", &[])
        .empty("m:ParentItemId", &id_attrs(item))
        .open("m:Attachments", &[])
        .open("t:FileAttachment", &[])
        .text("t:Name", "ContactPicture.jpg")
        .text("t:ContentType", "image/jpeg")
        .text("t:IsContactPhoto", "true")
        .text("t:Content", content_base64)
        .close("t:FileAttachment")
        .close("m:Attachments")
        .close("m:CreateAttachment");
    ("CreateAttachment", w.finish())
}

/// GetInboxRules of the mailbox the credentials open (or impersonate).
pub fn get_inbox_rules(mailbox: &str) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:GetInboxRules", &[])
        .text("m:MailboxSmtpAddress", mailbox)
        .close("m:GetInboxRules");
    ("GetInboxRules", w.finish())
}

/// GetFolder of distinguished folders by their ids (`inbox`, `deleteditems`...), one
/// response message each, in order.
pub fn get_distinguished_folders(ids: &[&str]) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:GetFolder", &[]);
    folder_shape(&mut w);
    w.open("m:FolderIds", &[]);
    for id in ids {
        w.empty("t:DistinguishedFolderId", &[("Id", id)]);
    }
    w.close("m:FolderIds").close("m:GetFolder");
    ("GetFolder", w.finish())
}

/// CreateFolder of a mail folder named `name` under `parent` (a FolderId, or
/// `msgfolderroot`): where a rule's MoveToFolder points when the destination lacks it.
pub fn create_mail_folder(parent: &str, name: &str) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open("m:CreateFolder", &[]).open("m:ParentFolderId", &[]);
    folder_id(&mut w, parent);
    w.close("m:ParentFolderId").open("m:Folders", &[]);
    w.open("t:Folder", &[])
        .text("t:FolderClass", "IPF.Note")
        .text("t:DisplayName", name)
        .close("t:Folder");
    w.close("m:Folders").close("m:CreateFolder");
    ("CreateFolder", w.finish())
}

/// GetServerTimeZones of one Windows zone, with its periods and transitions: the definition
/// of a zone an item names by its Id alone.
pub fn server_time_zone(id: &str) -> (&'static str, String) {
    let mut w = Writer::new();
    w.open(
        "m:GetServerTimeZones",
        &[("ReturnFullTimeZoneData", "true")],
    )
    .open("m:Ids", &[])
    .text("t:Id", id)
    .close("m:Ids")
    .close("m:GetServerTimeZones");
    ("GetServerTimeZones", w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::envelope;

    /// Checks a request as the client sends it; returns its violations.
    fn check(request: (&str, String)) -> Vec<String> {
        let (operation, body) = request;
        let report = ews_sim::check::check_request(&envelope("Exchange2013_SP1", &body));
        assert_eq!(report.operation.as_deref(), Some(operation), "{body}");
        report.violations.iter().map(ToString::to_string).collect()
    }

    fn ids() -> Vec<Id> {
        vec![
            Id {
                id: "AAMkAD1".into(),
                change_key: Some("DwAAAB".into()),
            },
            Id {
                id: "AAMkAD2".into(),
                change_key: None,
            },
        ]
    }

    #[test]
    fn folder_requests_pass_the_published_schema() {
        assert_eq!(check(get_default_folders()), Vec::<String>::new());
        assert_eq!(check(find_folders(250)), Vec::<String>::new());
        for kind in [Kind::Contacts, Kind::Calendar, Kind::Tasks] {
            assert_eq!(
                check(create_folder(kind, "Work & <Home>")),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn rule_requests_pass_the_published_schema() {
        assert_eq!(
            check(get_inbox_rules("a@example.com")),
            Vec::<String>::new()
        );
        assert_eq!(
            check(create_mail_folder("msgfolderroot", "Bills & <Co>")),
            Vec::<String>::new()
        );
        assert_eq!(
            check(get_distinguished_folders(&["inbox", "deleteditems"])),
            Vec::<String>::new()
        );
        assert_eq!(
            check(create_mail_folder("AAMkF1", "2026")),
            Vec::<String>::new()
        );
        let rule = "<t:Rule><t:DisplayName>R</t:DisplayName><t:Priority>3</t:Priority>\
                    <t:IsEnabled>true</t:IsEnabled><t:Actions><t:MarkAsRead>true</t:MarkAsRead>\
                    </t:Actions></t:Rule>";
        // The shape mailshift-core's `rules::ews::update_inbox_rules` gives.
        let update = format!(
            "<m:UpdateInboxRules><m:RemoveOutlookRuleBlob>true</m:RemoveOutlookRuleBlob>\
             <m:Operations><t:DeleteRuleOperation><t:RuleId>AAR1</t:RuleId>\
             </t:DeleteRuleOperation><t:CreateRuleOperation>{rule}</t:CreateRuleOperation>\
             </m:Operations></m:UpdateInboxRules>"
        );
        assert_eq!(check(("UpdateInboxRules", update)), Vec::<String>::new());
    }

    #[test]
    fn item_requests_pass_the_published_schema() {
        assert_eq!(check(find_items("AAMkF", 0, None)), Vec::<String>::new());
        assert_eq!(
            check(find_items("contacts", 250, Some("a\"b"))),
            Vec::<String>::new()
        );
        assert_eq!(check(get_items(&ids())), Vec::<String>::new());
        assert_eq!(
            check(server_time_zone("W. Europe Standard Time")),
            Vec::<String>::new()
        );
        assert_eq!(
            check(sync_folder_items("AAMkF", None)),
            Vec::<String>::new()
        );
        assert_eq!(
            check(sync_folder_items("AAMkF", Some("H4sIAAA="))),
            Vec::<String>::new()
        );
        assert_eq!(
            check(get_attachments(&["AAMkA1", "AAMkA2"])),
            Vec::<String>::new()
        );
        assert_eq!(
            check(create_contact_photo(&ids()[0], "/9j/4AAQ")),
            Vec::<String>::new()
        );
        for calendar in [false, true] {
            assert_eq!(
                check(delete_item(&ids()[0], calendar)),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn writes_carry_the_key_and_calendar_writes_send_nothing() {
        let mut item = Writer::new();
        item.open("t:CalendarItem", &[]).text("t:Subject", "Board");
        key_property(&mut item, "board-2026");
        item.text("t:UID", "040000008200E00074C5B7101A82E008")
            .close("t:CalendarItem");
        let create = create_item("calendar", &item.finish(), true);
        assert!(create.1.contains("SendMeetingInvitations=\"SendToNone\""));
        assert_eq!(check(create), Vec::<String>::new());
        let mut set = Writer::new();
        set.open("t:SetItemField", &[])
            .empty("t:FieldURI", &[("FieldURI", "item:Subject")])
            .open("t:CalendarItem", &[])
            .text("t:Subject", "Moved")
            .close("t:CalendarItem")
            .close("t:SetItemField");
        let update = update_item(&ids()[0], &set.finish(), true);
        assert!(
            update
                .1
                .contains("SendMeetingInvitationsOrCancellations=\"SendToNone\"")
        );
        assert_eq!(check(update), Vec::<String>::new());
        let delete = delete_item(&ids()[0], true);
        assert!(delete.1.contains("SendMeetingCancellations=\"SendToNone\""));
    }
}
