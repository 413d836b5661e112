//! The simulator over HTTP, as a client sees it: each operation round-trips, change keys
//! and sync states behave as Exchange's do, and refusals (authentication, schema) are what
//! Exchange answers. Requests are plain HTTP/1.1 over a TCP socket, so the tests see the
//! bytes (a cut connection included) without a client library in between.

use std::io::{Read, Write};
use std::net::TcpStream;

use base64::Engine;

use super::EwsSim;

const USER: &str = "jane@example.com";
const PASSWORD: &str = "pw-jane";

fn sim() -> EwsSim {
    let sim = EwsSim::spawn().expect("simulator starts");
    sim.add_mailbox(USER, PASSWORD);
    sim
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// One POST; the status and body, or the error reading it.
fn post_raw(sim: &EwsSim, path: &str, auth: &str, body: &str) -> Result<(u16, String), String> {
    post_full(sim, path, auth, body).map(|(status, _, body)| (status, body))
}

/// One POST; the status, the header lines and the body.
fn post_full(
    sim: &EwsSim,
    path: &str,
    auth: &str,
    body: &str,
) -> Result<(u16, String, String), String> {
    let mut s = TcpStream::connect(sim.addr()).map_err(|e| e.to_string())?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=utf-8\r\nAuthorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        sim.addr(),
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // Chunked bodies (the cut-connection answer) are returned undecoded: only their
    // completeness matters there.
    Ok((status, head.to_lowercase(), body.to_owned()))
}

fn post(sim: &EwsSim, auth: &str, body: &str) -> (u16, String) {
    post_raw(sim, "/EWS/Exchange.asmx", auth, body).expect("the request gets an answer")
}

/// A successful call as the mailbox's owner.
fn call(sim: &EwsSim, body: &str) -> String {
    let (status, text) = post(sim, &basic(USER, PASSWORD), &envelope(body));
    assert_eq!(status, 200, "{text}");
    text
}

fn envelope(body: &str) -> String {
    envelope_with("", body)
}

fn envelope_with(extra_header: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
    xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/>{extra_header}</soap:Header>
  <soap:Body>{body}</soap:Body>
</soap:Envelope>"#
    )
}

/// The value of the first `attr="…"` after `after` in `text`.
fn attr_after(text: &str, after: &str, attr: &str) -> String {
    let from = text
        .find(after)
        .unwrap_or_else(|| panic!("{after} in {text}"));
    let rest = &text[from..];
    let start = rest.find(&format!("{attr}=\"")).expect("attribute") + attr.len() + 2;
    let end = rest[start..].find('"').expect("closing quote");
    rest[start..start + end].to_owned()
}

fn element_text(text: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("{tag} in {text}"))
        + open.len();
    let end = text[start..]
        .find(&format!("</{tag}>"))
        .expect("closing tag");
    text[start..start + end].to_owned()
}

const PROP: &str = r#"<t:ExtendedFieldURI PropertySetId="c11ff724-aa03-4555-9952-8fa248a11c3e" PropertyName="mailshift-id" PropertyType="String"/>"#;

fn create_contact(sim: &EwsSim, given: &str, key: &str) -> (String, String) {
    let text = call(
        sim,
        &format!(
            r#"<m:CreateItem>
  <m:SavedItemFolderId><t:DistinguishedFolderId Id="contacts"/></m:SavedItemFolderId>
  <m:Items><t:Contact>
    <t:ExtendedProperty>{PROP}<t:Value>{key}</t:Value></t:ExtendedProperty>
    <t:GivenName>{given}</t:GivenName>
    <t:EmailAddresses><t:Entry Key="EmailAddress1">{given}@example.org</t:Entry></t:EmailAddresses>
    <t:Surname>Doe</t:Surname>
  </t:Contact></m:Items>
</m:CreateItem>"#
        ),
    );
    assert!(text.contains(r#"ResponseClass="Success""#), "{text}");
    (
        attr_after(&text, "<t:ItemId", "Id"),
        attr_after(&text, "<t:ItemId", "ChangeKey"),
    )
}

fn get_item(sim: &EwsSim, id: &str, extra: &str) -> String {
    call(
        sim,
        &format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape>{extra}</m:ItemShape>
  <m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
        ),
    )
}

#[test]
fn a_contact_round_trips_with_its_extended_property() {
    let sim = sim();
    let (id, ck) = create_contact(&sim, "Ann", "key-1");
    let text = get_item(
        &sim,
        &id,
        &format!("<t:AdditionalProperties>{PROP}</t:AdditionalProperties>"),
    );
    assert!(text.contains("<t:GivenName>Ann</t:GivenName>"), "{text}");
    assert!(text.contains("<t:Value>key-1</t:Value>"), "{text}");
    assert!(text.contains(&format!(r#"ChangeKey="{ck}""#)), "{text}");
    // Without asking for it, Exchange does not return an extended property.
    let plain = get_item(&sim, &id, "");
    assert!(!plain.contains("key-1"), "{plain}");
    assert_eq!(sim.violations(), Vec::<String>::new());
    assert_eq!(sim.items(USER, "contacts").len(), 1);
}

#[test]
fn find_item_finds_an_item_by_its_extended_property_and_pages() {
    let sim = sim();
    for n in 0..3 {
        create_contact(&sim, &format!("P{n}"), &format!("key-{n}"));
    }
    let find = |restriction: &str, view: &str| {
        call(
            &sim,
            &format!(
                r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>
  <t:AdditionalProperties><t:FieldURI FieldURI="contacts:GivenName"/></t:AdditionalProperties></m:ItemShape>
  {view}{restriction}
  <m:ParentFolderIds><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderIds></m:FindItem>"#
            ),
        )
    };
    let one = find(
        &format!(
            r#"<m:Restriction><t:IsEqualTo>{PROP}<t:FieldURIOrConstant><t:Constant Value="key-1"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>"#
        ),
        "",
    );
    assert!(one.contains(r#"TotalItemsInView="1""#), "{one}");
    assert!(one.contains("<t:GivenName>P1</t:GivenName>"), "{one}");
    let first = find(
        "",
        r#"<m:IndexedPageItemView MaxEntriesReturned="2" Offset="0" BasePoint="Beginning"/>"#,
    );
    assert!(
        first.contains(r#"IncludesLastItemInRange="false""#),
        "{first}"
    );
    assert!(first.contains("P0") && first.contains("P1") && !first.contains("P2"));
    let second = find(
        "",
        r#"<m:IndexedPageItemView MaxEntriesReturned="2" Offset="2" BasePoint="Beginning"/>"#,
    );
    assert!(
        second.contains(r#"IncludesLastItemInRange="true""#),
        "{second}"
    );
    assert!(second.contains("P2") && !second.contains("P0"));
    assert_eq!(sim.violations(), Vec::<String>::new());
}

fn update_given_name(sim: &EwsSim, id: &str, ck: &str, name: &str) -> String {
    call(
        sim,
        &format!(
            r#"<m:UpdateItem ConflictResolution="NeverOverwrite"><m:ItemChanges><t:ItemChange>
  <t:ItemId Id="{id}" ChangeKey="{ck}"/>
  <t:Updates>
    <t:SetItemField><t:FieldURI FieldURI="contacts:GivenName"/><t:Contact><t:GivenName>{name}</t:GivenName></t:Contact></t:SetItemField>
    <t:SetItemField><t:FieldURI FieldURI="contacts:JobTitle"/><t:Contact><t:JobTitle>Chef</t:JobTitle></t:Contact></t:SetItemField>
    <t:SetItemField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress2"/><t:Contact><t:EmailAddresses><t:Entry Key="EmailAddress2">two@example.org</t:Entry></t:EmailAddresses></t:Contact></t:SetItemField>
    <t:DeleteItemField><t:FieldURI FieldURI="contacts:Surname"/></t:DeleteItemField>
  </t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        ),
    )
}

#[test]
fn update_changes_the_change_key_and_a_stale_one_conflicts() {
    let sim = sim();
    let (id, ck) = create_contact(&sim, "Ann", "k");
    let text = update_given_name(&sim, &id, &ck, "Anna");
    assert!(text.contains(r#"ResponseClass="Success""#), "{text}");
    let new_ck = attr_after(&text, "<t:ItemId", "ChangeKey");
    assert_ne!(new_ck, ck);
    let got = get_item(&sim, &id, "");
    assert!(got.contains("<t:GivenName>Anna</t:GivenName>"), "{got}");
    assert!(got.contains("<t:JobTitle>Chef</t:JobTitle>"), "{got}");
    assert!(
        got.contains("two@example.org") && got.contains("Ann@example.org"),
        "{got}"
    );
    assert!(!got.contains("<t:Surname>"), "{got}");
    // The old change key no longer matches: NeverOverwrite refuses.
    let stale = update_given_name(&sim, &id, &ck, "Other");
    assert!(stale.contains("ErrorIrresolvableConflict"), "{stale}");
    let deleted = call(
        &sim,
        &format!(
            r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{id}" ChangeKey="{ck}"/></m:ItemIds></m:DeleteItem>"#
        ),
    );
    assert!(deleted.contains("ErrorIrresolvableConflict"), "{deleted}");
    let deleted = call(
        &sim,
        &format!(
            r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{id}" ChangeKey="{new_ck}"/></m:ItemIds></m:DeleteItem>"#
        ),
    );
    assert!(deleted.contains(r#"ResponseClass="Success""#), "{deleted}");
    assert!(get_item(&sim, &id, "").contains("ErrorItemNotFound"));
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn calendar_writes_record_their_invitation_mode() {
    let sim = sim();
    let text = call(
        &sim,
        r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem>
  <t:Subject>Board</t:Subject><t:Start>2026-12-01T09:00:00Z</t:Start><t:End>2026-12-01T10:00:00Z</t:End>
  <t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>a@example.com</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees>
</t:CalendarItem></m:Items></m:CreateItem>"#,
    );
    let id = attr_after(&text, "<t:ItemId", "Id");
    assert_eq!(sim.invitations_sent(), 0);
    // The organizer cannot be set.
    let organized = call(
        &sim,
        r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem>
  <t:Subject>Theirs</t:Subject><t:Start>2026-12-01T09:00:00Z</t:Start><t:End>2026-12-01T10:00:00Z</t:End>
  <t:Organizer><t:Mailbox><t:EmailAddress>boss@example.com</t:EmailAddress></t:Mailbox></t:Organizer>
</t:CalendarItem></m:Items></m:CreateItem>"#,
    );
    assert!(organized.contains("ErrorInvalidPropertySet"), "{organized}");
    // Exchange wants the mode said on every calendar write.
    let unsaid = call(
        &sim,
        &format!(
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}"/><t:Updates>
  <t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:CalendarItem><t:Subject>x</t:Subject></t:CalendarItem></t:SetItemField>
</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        ),
    );
    assert!(
        unsaid.contains("ErrorSendMeetingInvitationsOrCancellationsRequired"),
        "{unsaid}"
    );
    assert_eq!(sim.invitations_sent(), 1);
    call(
        &sim,
        &format!(
            r#"<m:DeleteItem DeleteType="HardDelete" SendMeetingCancellations="SendToAllAndSaveCopy"><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:DeleteItem>"#
        ),
    );
    assert_eq!(sim.invitations_sent(), 2);
    assert_eq!(
        sim.invitation_modes(),
        vec![
            ("CreateItem".to_owned(), Some("SendToNone".to_owned())),
            ("CreateItem".to_owned(), Some("SendToNone".to_owned())),
            ("UpdateItem".to_owned(), None),
            (
                "DeleteItem".to_owned(),
                Some("SendToAllAndSaveCopy".to_owned())
            ),
        ]
    );
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn folders_are_created_found_and_got() {
    let sim = sim();
    let text = call(
        &sim,
        r#"<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderId>
  <m:Folders><t:ContactsFolder><t:DisplayName>Clients</t:DisplayName></t:ContactsFolder></m:Folders></m:CreateFolder>"#,
    );
    let id = attr_after(&text, "<t:FolderId", "Id");
    let found = call(
        &sim,
        r#"<m:FindFolder Traversal="Deep"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>
  <t:AdditionalProperties><t:FieldURI FieldURI="folder:DisplayName"/></t:AdditionalProperties></m:FolderShape>
  <m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#,
    );
    assert!(
        found.contains("<t:DisplayName>Clients</t:DisplayName>"),
        "{found}"
    );
    assert!(found.contains(r#"TotalItemsInView="11""#), "{found}");
    assert!(
        !found.contains("<t:FolderClass>"),
        "IdOnly and DisplayName only: {found}"
    );
    let got = call(
        &sim,
        &format!(
            r#"<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape>
  <m:FolderIds><t:FolderId Id="{id}"/><t:DistinguishedFolderId Id="calendar"/></m:FolderIds></m:GetFolder>"#
        ),
    );
    assert!(
        got.contains("<t:FolderClass>IPF.Contact</t:FolderClass>"),
        "{got}"
    );
    assert!(got.contains("<t:CalendarFolder>"), "{got}");
    // A contact stored in the new folder is listed there.
    sim.insert_item(
        USER,
        &id,
        "<t:Contact><t:GivenName>Zed</t:GivenName></t:Contact>",
    )
    .unwrap();
    assert_eq!(sim.items(USER, &id).len(), 1);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn a_request_outside_the_schema_is_refused_and_recorded() {
    let sim = sim();
    let (status, text) = post(
        &sim,
        &basic(USER, PASSWORD),
        &envelope(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>Everything</t:BaseShape></m:ItemShape>
  <m:ItemIds><t:ItemId Id="x"/></m:ItemIds></m:GetItem>"#,
        ),
    );
    assert_eq!(status, 500);
    assert!(text.contains("a:ErrorSchemaValidation"), "{text}");
    let v = sim.violations();
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(
        v[0].contains("t:BaseShape") && v[0].contains("Everything"),
        "{v:#?}"
    );
}

#[test]
fn wrong_credentials_are_refused_and_tokens_accepted() {
    let sim = sim();
    let body = envelope(
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
  <m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>"#,
    );
    assert_eq!(post(&sim, &basic(USER, "wrong"), &body).0, 401);
    assert_eq!(
        post(&sim, &basic("nobody@example.com", PASSWORD), &body).0,
        401
    );
    assert_eq!(post(&sim, "Bearer unknown", &body).0, 401);
    sim.add_token("tok-1", USER);
    assert_eq!(post(&sim, "Bearer tok-1", &body).0, 200);
    assert_eq!(sim.request_count("GetFolder"), 1);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn impersonation_needs_the_right() {
    let sim = sim();
    sim.add_mailbox("bob@example.com", "pw-bob");
    sim.add_token("app", "migration-app");
    let body = envelope_with(
        r#"<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>bob@example.com</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"#,
        r#"<m:CreateItem><m:Items><t:Contact><t:GivenName>Via app</t:GivenName></t:Contact></m:Items></m:CreateItem>"#,
    );
    let (status, text) = post(&sim, "Bearer app", &body);
    assert_eq!(status, 500);
    assert!(text.contains("ErrorImpersonateUserDenied"), "{text}");
    sim.allow_impersonation("migration-app");
    let (status, text) = post(&sim, "Bearer app", &body);
    assert_eq!(status, 200, "{text}");
    assert_eq!(sim.items("bob@example.com", "contacts").len(), 1);
    assert_eq!(sim.items(USER, "contacts").len(), 0);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn autodiscover_returns_the_ews_url() {
    let sim = sim();
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{USER}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#
    );
    let (status, text) = post_raw(
        &sim,
        "/autodiscover/autodiscover.xml",
        &basic(USER, PASSWORD),
        &body,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(element_text(&text, "EwsUrl"), sim.url());
    let (status, _) = post_raw(
        &sim,
        "/autodiscover/autodiscover.xml",
        &basic(USER, "wrong"),
        &body,
    )
    .unwrap();
    assert_eq!(status, 401);
}

fn sync(sim: &EwsSim, state: &str, max: usize) -> String {
    call(
        sim,
        &format!(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>
  <t:AdditionalProperties><t:FieldURI FieldURI="contacts:GivenName"/></t:AdditionalProperties></m:ItemShape>
  <m:SyncFolderId><t:DistinguishedFolderId Id="contacts"/></m:SyncFolderId>
  <m:SyncState>{state}</m:SyncState><m:MaxChangesReturned>{max}</m:MaxChangesReturned></m:SyncFolderItems>"#
        ),
    )
}

#[test]
fn a_sync_state_returns_only_the_changes_since_it() {
    let sim = sim();
    let (a, a_ck) = create_contact(&sim, "Ann", "a");
    let (b, b_ck) = create_contact(&sim, "Bob", "b");
    create_contact(&sim, "Cid", "c");
    // Paging: two, then the last one.
    let first = sync(&sim, "", 2);
    assert!(first.contains("<m:IncludesLastItemInRange>false</m:IncludesLastItemInRange>"));
    assert_eq!(first.matches("<t:Create>").count(), 2, "{first}");
    let state = element_text(&first, "m:SyncState");
    let rest = sync(&sim, &state, 2);
    assert!(rest.contains("<m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"));
    assert!(rest.contains("Cid") && !rest.contains("Ann"), "{rest}");
    let state = element_text(&rest, "m:SyncState");
    assert!(!sync(&sim, &state, 10).contains("<t:Create>"));
    // An update, a delete, and a contact created then deleted (never seen): two changes.
    update_given_name(&sim, &a, &a_ck, "Anna");
    call(
        &sim,
        &format!(
            r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{b}" ChangeKey="{b_ck}"/></m:ItemIds></m:DeleteItem>"#
        ),
    );
    let (d, _) = create_contact(&sim, "Dan", "d");
    call(
        &sim,
        &format!(
            r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{d}"/></m:ItemIds></m:DeleteItem>"#
        ),
    );
    let changes = sync(&sim, &state, 10);
    assert_eq!(changes.matches("<t:Update>").count(), 1, "{changes}");
    assert!(changes.contains("Anna"), "{changes}");
    assert_eq!(changes.matches("<t:Delete>").count(), 1, "{changes}");
    assert!(changes.contains(&format!(r#"<t:Delete><t:ItemId Id="{b}"/>"#)));
    assert!(
        !changes.contains("<t:Create>") && !changes.contains(&d),
        "{changes}"
    );
    assert!(sync(&sim, "bogus", 10).contains("ErrorInvalidSyncStateData"));
    // MaxChangesReturned is 1 to 512: more is a schema violation.
    let (status, text) = post(
        &sim,
        &basic(USER, PASSWORD),
        &envelope(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
  <m:SyncFolderId><t:DistinguishedFolderId Id="contacts"/></m:SyncFolderId><m:MaxChangesReturned>513</m:MaxChangesReturned></m:SyncFolderItems>"#,
        ),
    );
    assert_eq!(status, 500);
    assert!(
        text.contains("ErrorSchemaValidation") && text.contains("MaxSyncChangesReturnedType"),
        "{text}"
    );
    assert_eq!(sim.violations().len(), 1);
    let _ = sim.take_violations();
    // A state of another folder is refused too.
    let tasks = call(
        &sim,
        r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
  <m:SyncFolderId><t:DistinguishedFolderId Id="tasks"/></m:SyncFolderId><m:MaxChangesReturned>10</m:MaxChangesReturned></m:SyncFolderItems>"#,
    );
    let tasks_state = element_text(&tasks, "m:SyncState");
    assert!(sync(&sim, &tasks_state, 10).contains("ErrorInvalidSyncStateData"));
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn the_folder_hierarchy_syncs() {
    let sim = sim();
    let body = |state: &str| {
        format!(
            r#"<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape><m:SyncState>{state}</m:SyncState></m:SyncFolderHierarchy>"#
        )
    };
    let all = call(&sim, &body(""));
    // Every folder but the root: five mail folders, contacts, calendar, tasks and the two
    // hidden system folders.
    assert_eq!(all.matches("<t:Create>").count(), 10, "{all}");
    assert!(all.contains("<t:FolderClass>IPF.Contact.RecipientCache</t:FolderClass>"));
    let state = element_text(&all, "m:SyncState");
    sim.create_folder(USER, "calendar", "Holidays", "IPF.Appointment")
        .unwrap();
    let new = call(&sim, &body(&state));
    assert_eq!(new.matches("<t:Create>").count(), 1, "{new}");
    assert!(
        new.contains("<t:DisplayName>Holidays</t:DisplayName>"),
        "{new}"
    );
    let state = element_text(&new, "m:SyncState");
    let holidays = sim
        .folders(USER)
        .into_iter()
        .find(|f| f.1 == "Holidays")
        .unwrap()
        .0;
    let renamed = call(
        &sim,
        &format!(
            r#"<m:UpdateFolder><m:FolderChanges><t:FolderChange><t:FolderId Id="{holidays}"/><t:Updates>
  <t:SetFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:CalendarFolder><t:DisplayName>Time off</t:DisplayName></t:CalendarFolder></t:SetFolderField>
</t:Updates></t:FolderChange></m:FolderChanges></m:UpdateFolder>"#
        ),
    );
    assert!(renamed.contains(r#"ResponseClass="Success""#), "{renamed}");
    let changed = call(&sim, &body(&state));
    assert!(
        changed.contains("<t:Update>") && changed.contains("Time off"),
        "{changed}"
    );
    let state = element_text(&changed, "m:SyncState");
    let delete = |id: &str| {
        call(
            &sim,
            &format!(
                r#"<m:DeleteFolder DeleteType="HardDelete"><m:FolderIds><t:FolderId Id="{id}"/></m:FolderIds></m:DeleteFolder>"#
            ),
        )
    };
    delete(&holidays);
    let deleted = call(&sim, &body(&state));
    assert!(
        deleted.contains(&format!(r#"<t:Delete><t:FolderId Id="{holidays}"/>"#)),
        "{deleted}"
    );
    let calendar = sim
        .folders(USER)
        .into_iter()
        .find(|f| f.1 == "Calendar")
        .unwrap()
        .0;
    assert!(delete(&calendar).contains("ErrorDeleteDistinguishedFolder"));
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn inbox_rules_are_created_changed_and_deleted() {
    let sim = sim();
    let rule = |id: &str, name: &str| {
        format!(
            r#"<t:Rule>{id}<t:DisplayName>{name}</t:DisplayName><t:Priority>1</t:Priority><t:IsEnabled>true</t:IsEnabled>
  <t:Conditions><t:ContainsSenderStrings><t:String>boss</t:String></t:ContainsSenderStrings></t:Conditions>
  <t:Actions><t:MoveToFolder><t:DistinguishedFolderId Id="inbox"/></t:MoveToFolder></t:Actions></t:Rule>"#
        )
    };
    let update = |ops: &str| {
        call(
            &sim,
            &format!(
                "<m:UpdateInboxRules><m:RemoveOutlookRuleBlob>true</m:RemoveOutlookRuleBlob><m:Operations>{ops}</m:Operations></m:UpdateInboxRules>"
            ),
        )
    };
    let get = || call(&sim, "<m:GetInboxRules/>");
    // A mailbox used with Outlook: its rule blob must be removed explicitly.
    sim.set_outlook_rule_blob(USER, true);
    assert!(get().contains("<m:OutlookRuleBlobExists>true</m:OutlookRuleBlobExists>"));
    let kept = call(
        &sim,
        &format!(
            "<m:UpdateInboxRules><m:Operations><t:CreateRuleOperation>{}</t:CreateRuleOperation></m:Operations></m:UpdateInboxRules>",
            rule("", "From boss")
        ),
    );
    assert!(kept.contains("ErrorOutlookRuleBlobExists"), "{kept}");
    // What Exchange refuses in a rule, each reported at its operation; nothing is applied.
    let refused = update(&format!(
        "<t:CreateRuleOperation>{}</t:CreateRuleOperation><t:CreateRuleOperation>{}</t:CreateRuleOperation><t:CreateRuleOperation>{}</t:CreateRuleOperation>",
        rule("<t:RuleId>mine</t:RuleId>", "With id"),
        rule("", "Elsewhere").replace(
            r#"<t:DistinguishedFolderId Id="inbox"/>"#,
            r#"<t:FolderId Id="no-such-folder"/>"#
        ),
        rule("", "Fine"),
    ));
    for part in [
        "CreateWithRuleId",
        "FolderDoesNotExist",
        "<t:OperationIndex>1</t:OperationIndex>",
    ] {
        assert!(refused.contains(part), "{part} in {refused}");
    }
    assert!(!get().contains("<t:Rule>"));
    assert!(get().contains("<m:OutlookRuleBlobExists>true</m:OutlookRuleBlobExists>"));
    let made = update(&format!(
        "<t:CreateRuleOperation>{}</t:CreateRuleOperation>",
        rule("", "From boss")
    ));
    assert!(made.contains(r#"ResponseClass="Success""#), "{made}");
    let got = get();
    let id = element_text(&got, "t:RuleId");
    assert!(
        got.contains("<t:DisplayName>From boss</t:DisplayName>"),
        "{got}"
    );
    assert!(got.contains("<m:OutlookRuleBlobExists>false</m:OutlookRuleBlobExists>"));
    assert_eq!(sim.rules(USER).len(), 1);
    update(&format!(
        "<t:SetRuleOperation>{}</t:SetRuleOperation>",
        rule(&format!("<t:RuleId>{id}</t:RuleId>"), "Renamed")
    ));
    assert!(get().contains("Renamed"));
    let missing =
        update("<t:DeleteRuleOperation><t:RuleId>nope</t:RuleId></t:DeleteRuleOperation>");
    assert!(missing.contains("ErrorInboxRulesValidationError") && missing.contains("RuleNotFound"));
    update(&format!(
        "<t:DeleteRuleOperation><t:RuleId>{id}</t:RuleId></t:DeleteRuleOperation>"
    ));
    assert!(!get().contains("<t:Rule>"));
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn a_contact_photo_is_attached_and_read_back() {
    let sim = sim();
    let (id, ck) = create_contact(&sim, "Ann", "a");
    let made = call(
        &sim,
        &format!(
            r#"<m:CreateAttachment><m:ParentItemId Id="{id}" ChangeKey="{ck}"/><m:Attachments><t:FileAttachment>
  <t:Name>ContactPicture.jpg</t:Name><t:ContentType>image/jpeg</t:ContentType><t:IsContactPhoto>true</t:IsContactPhoto><t:Content>/9j/4AAQ</t:Content>
</t:FileAttachment></m:Attachments></m:CreateAttachment>"#
        ),
    );
    let att = attr_after(&made, "<t:AttachmentId", "Id");
    assert_ne!(
        attr_after(&made, "<t:AttachmentId", "RootItemChangeKey"),
        ck
    );
    let item = get_item(&sim, &id, "");
    assert!(
        item.contains("<t:HasAttachments>true</t:HasAttachments>"),
        "{item}"
    );
    assert!(
        item.contains("<t:IsContactPhoto>true</t:IsContactPhoto>"),
        "{item}"
    );
    assert!(
        !item.contains("/9j/4AAQ"),
        "content is not part of the item: {item}"
    );
    let got = call(
        &sim,
        &format!(
            r#"<m:GetAttachment><m:AttachmentIds><t:AttachmentId Id="{att}"/></m:AttachmentIds></m:GetAttachment>"#
        ),
    );
    assert!(got.contains("<t:Content>/9j/4AAQ</t:Content>"), "{got}");
    let gone = call(
        &sim,
        &format!(
            r#"<m:DeleteAttachment><m:AttachmentIds><t:AttachmentId Id="{att}"/></m:AttachmentIds></m:DeleteAttachment>"#
        ),
    );
    assert!(gone.contains(&format!(r#"RootItemId="{id}""#)), "{gone}");
    let item = get_item(&sim, &id, "");
    assert!(
        item.contains("<t:HasPicture>false</t:HasPicture>"),
        "{item}"
    );
    assert_eq!(sim.violations(), Vec::<String>::new());
}

const GET_INBOX: &str = r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
  <m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>"#;

#[test]
fn injected_busy_answers_carry_the_back_off() {
    let sim = sim();
    sim.fail_next_busy(2, 750);
    for _ in 0..2 {
        let (status, text) = post(&sim, &basic(USER, PASSWORD), &envelope(GET_INBOX));
        assert_eq!(status, 500);
        assert!(text.contains("a:ErrorServerBusy"), "{text}");
        assert!(
            text.contains(r#"<t:Value Name="BackOffMilliseconds">750</t:Value>"#),
            "{text}"
        );
    }
    sim.fail_next_status(1, 503, Some(7));
    let (status, head, _) = post_full(
        &sim,
        "/EWS/Exchange.asmx",
        &basic(USER, PASSWORD),
        &envelope(GET_INBOX),
    )
    .unwrap();
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("\r\nretry-after: 7"), "{head}");
    call(&sim, GET_INBOX);
    assert_eq!(sim.request_count("GetFolder"), 4);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn a_cut_connection_still_carries_the_operation_out() {
    let sim = sim();
    sim.cut_next(1);
    let body = envelope(
        r#"<m:CreateItem><m:Items><t:Contact><t:GivenName>Cut</t:GivenName></t:Contact></m:Items></m:CreateItem>"#,
    );
    match post_raw(&sim, "/EWS/Exchange.asmx", &basic(USER, PASSWORD), &body) {
        Err(_) => {}
        Ok((_, text)) => assert!(!text.contains("</soap:Envelope>"), "{text}"),
    }
    // The client cannot know, but the item exists: what exactly-once must cope with.
    assert_eq!(sim.items(USER, "contacts").len(), 1);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn more_concurrent_requests_than_the_limit_are_refused_busy() {
    let sim = std::sync::Arc::new(sim());
    sim.set_concurrency_limit(Some(1));
    sim.hold_requests(true);
    let held = {
        let sim = sim.clone();
        std::thread::spawn(move || post(&sim, &basic(USER, PASSWORD), &envelope(GET_INBOX)))
    };
    // Wait for the first request to take its slot (bounded: the thread only connects).
    let mut waited = 0;
    while sim.in_flight(USER) == 0 {
        assert!(waited < 1000, "the first request never arrived");
        std::thread::sleep(std::time::Duration::from_millis(10));
        waited += 1;
    }
    let (status, text) = post(&sim, &basic(USER, PASSWORD), &envelope(GET_INBOX));
    assert_eq!(status, 500);
    assert!(text.contains("a:ErrorServerBusy"), "{text}");
    sim.hold_requests(false);
    let (status, text) = held.join().unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(sim.in_flight(USER), 0);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

const SERIES: &str = r#"<t:CalendarItem>
  <t:Subject>Stand-up</t:Subject>
  <t:Sensitivity>Private</t:Sensitivity>
  <t:Body BodyType="Text">Daily</t:Body>
  <t:ReminderMinutesBeforeStart>10</t:ReminderMinutesBeforeStart>
  <t:UID>uid-standup</t:UID>
  <t:Start>2026-12-07T10:00:00+01:00</t:Start>
  <t:End>2026-12-07T09:15:00Z</t:End>
  <t:IsAllDayEvent>false</t:IsAllDayEvent>
  <t:LegacyFreeBusyStatus>Busy</t:LegacyFreeBusyStatus>
  <t:Location>Room 2</t:Location>
  <t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>a@example.com</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees>
  <t:OptionalAttendees><t:Attendee><t:Mailbox><t:EmailAddress>b@example.com</t:EmailAddress></t:Mailbox></t:Attendee></t:OptionalAttendees>
  <t:Recurrence>
    <t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday Wednesday</t:DaysOfWeek></t:WeeklyRecurrence>
    <t:NumberedRecurrence><t:StartDate>2026-12-07</t:StartDate><t:NumberOfOccurrences>4</t:NumberOfOccurrences></t:NumberedRecurrence>
  </t:Recurrence>
  <t:StartTimeZone Id="W. Europe Standard Time"/>
  <t:EndTimeZone Id="W. Europe Standard Time"/>
</t:CalendarItem>"#;

fn occurrence(sim: &EwsSim, master: &str, index: u32) -> String {
    call(
        sim,
        &format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>
  <m:ItemIds><t:OccurrenceItemId RecurringMasterId="{master}" InstanceIndex="{index}"/></m:ItemIds></m:GetItem>"#
        ),
    )
}

#[test]
fn a_series_round_trips_and_its_occurrences_are_modified_and_deleted() {
    let sim = sim();
    let made = call(
        &sim,
        &format!(
            r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId><m:Items>{SERIES}</m:Items></m:CreateItem>"#
        ),
    );
    let master = attr_after(&made, "<t:ItemId", "Id");
    let got = get_item(&sim, &master, "");
    for part in [
        "<t:CalendarItemType>RecurringMaster</t:CalendarItemType>",
        "<t:DaysOfWeek>Monday Wednesday</t:DaysOfWeek>",
        // A zone given by its id comes back with its published definition.
        r#"<t:StartTimeZone Id="W. Europe Standard Time" Name="(UTC+01:00) Amsterdam"#,
        r#"<t:Period Bias="-PT2H" Name="Daylight""#,
        "<t:EmailAddress>b@example.com</t:EmailAddress>",
        "<t:ReminderMinutesBeforeStart>10</t:ReminderMinutesBeforeStart>",
        "<t:ItemClass>IPM.Appointment</t:ItemClass>",
        // The mailbox organizes what is created in it.
        "<t:Organizer><t:Mailbox><t:Name>jane@example.com</t:Name><t:EmailAddress>jane@example.com</t:EmailAddress>",
        "<t:MyResponseType>Organizer</t:MyResponseType>",
        // Stored in UTC, as Exchange answers times.
        "<t:Start>2026-12-07T09:00:00Z</t:Start>",
    ] {
        assert!(got.contains(part), "{part} in {got}");
    }
    // Monday 7th, Wednesday 9th, Monday 14th: the third occurrence.
    let fourth = occurrence(&sim, &master, 4);
    assert!(
        fourth.contains("<t:Subject>Stand-up</t:Subject>"),
        "{fourth}"
    );
    let third = occurrence(&sim, &master, 3);
    assert!(
        third.contains("<t:Start>2026-12-14T09:00:00Z</t:Start>"),
        "{third}"
    );
    assert!(third.contains("<t:CalendarItemType>Occurrence</t:CalendarItemType>"));
    assert!(!third.contains("<t:Recurrence>"), "{third}");
    assert!(
        occurrence(&sim, &master, 5).contains("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange")
    );
    // Any index a request gives is answered, never a panic.
    assert!(
        occurrence(&sim, &master, 2147483647)
            .contains("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange")
    );
    // Move the second occurrence an hour later: an exception the series lists.
    let moved = call(
        &sim,
        &format!(
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite" SendMeetingInvitationsOrCancellations="SendToNone"><m:ItemChanges><t:ItemChange>
  <t:OccurrenceItemId RecurringMasterId="{master}" InstanceIndex="2"/>
  <t:Updates>
    <t:SetItemField><t:FieldURI FieldURI="calendar:Start"/><t:CalendarItem><t:Start>2026-12-09T10:00:00Z</t:Start></t:CalendarItem></t:SetItemField>
    <t:SetItemField><t:FieldURI FieldURI="calendar:End"/><t:CalendarItem><t:End>2026-12-09T10:15:00Z</t:End></t:CalendarItem></t:SetItemField>
  </t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        ),
    );
    let exception = attr_after(&moved, "<t:ItemId", "Id");
    // The series renamed: its unmodified occurrences follow, its exception keeps its own.
    let series_ck = attr_after(&get_item(&sim, &master, ""), "<t:ItemId", "ChangeKey");
    let renamed = call(
        &sim,
        &format!(
            r#"<m:UpdateItem ConflictResolution="NeverOverwrite" SendMeetingInvitationsOrCancellations="SendToNone"><m:ItemChanges><t:ItemChange>
  <t:ItemId Id="{master}" ChangeKey="{series_ck}"/><t:Updates>
  <t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:CalendarItem><t:Subject>Daily sync</t:Subject></t:CalendarItem></t:SetItemField>
</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        ),
    );
    assert!(renamed.contains(r#"ResponseClass="Success""#), "{renamed}");
    assert!(occurrence(&sim, &master, 4).contains("<t:Subject>Daily sync</t:Subject>"));
    let second = occurrence(&sim, &master, 2);
    assert!(
        second.contains(&exception)
            && second.contains("<t:CalendarItemType>Exception</t:CalendarItemType>"),
        "{second}"
    );
    assert!(
        second.contains("<t:OriginalStart>2026-12-09T09:00:00Z</t:OriginalStart>"),
        "{second}"
    );
    // Cancel the third.
    let third_id = attr_after(&third, "<t:ItemId", "Id");
    call(
        &sim,
        &format!(
            r#"<m:DeleteItem DeleteType="HardDelete" SendMeetingCancellations="SendToNone"><m:ItemIds><t:ItemId Id="{third_id}"/></m:ItemIds></m:DeleteItem>"#
        ),
    );
    let series = get_item(&sim, &master, "");
    assert!(
        series.contains(&format!(
            "<t:ModifiedOccurrences><t:Occurrence><t:ItemId Id=\"{exception}\""
        )),
        "{series}"
    );
    assert!(
        series.contains(
            "<t:DeletedOccurrences><t:DeletedOccurrence><t:Start>2026-12-14T09:00:00Z</t:Start>"
        ),
        "{series}"
    );
    assert!(
        occurrence(&sim, &master, 3).contains("ErrorCalendarOccurrenceIsDeletedFromRecurrence")
    );
    // The series' master is found again from an occurrence.
    let back = call(
        &sim,
        &format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
  <m:ItemIds><t:RecurringMasterItemId OccurrenceId="{exception}"/></m:ItemIds></m:GetItem>"#
        ),
    );
    assert!(back.contains(&master), "{back}");
    // Only the series is listed in the folder.
    assert_eq!(sim.items(USER, "calendar").len(), 1);
    // ExportItems / UploadItems carry the whole series to another mailbox: its organizer,
    // its modified and deleted occurrences.
    let exported = call(
        &sim,
        &format!(
            r#"<m:ExportItems><m:ItemIds><t:ItemId Id="{master}"/></m:ItemIds></m:ExportItems>"#
        ),
    );
    let data = element_text(&exported, "m:Data");
    sim.add_mailbox("bob@example.com", "pw-bob");
    let upload = |data: &str| {
        let (status, text) = post(
            &sim,
            &basic("bob@example.com", "pw-bob"),
            &envelope(&format!(
                r#"<m:UploadItems><m:Items><t:Item CreateAction="CreateNew"><t:ParentFolderId Id="{}"/><t:Data>{data}</t:Data></t:Item></m:Items></m:UploadItems>"#,
                sim.folders("bob@example.com")
                    .into_iter()
                    .find(|f| f.1 == "Calendar")
                    .unwrap()
                    .0
            )),
        );
        assert_eq!(status, 200, "{text}");
        text
    };
    let uploaded = upload(&data);
    let copy = attr_after(&uploaded, "<m:ItemId", "Id");
    let copied = sim.item("bob@example.com", &copy).unwrap();
    assert!(
        copied.contains("<t:EmailAddress>jane@example.com</t:EmailAddress>"),
        "{copied}"
    );
    assert!(
        copied.contains("<t:ModifiedOccurrences><t:Occurrence>") && !copied.contains(&exception),
        "{copied}"
    );
    assert!(
        copied.contains("<t:OriginalStart>2026-12-09T09:00:00Z</t:OriginalStart>"),
        "{copied}"
    );
    assert!(copied.contains("<t:DeletedOccurrences>"), "{copied}");
    assert!(upload("bm90IGFuIGV4cG9ydA==").contains("ErrorCorruptData"));
    assert_eq!(sim.invitations_sent(), 0);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn a_task_and_a_distribution_list_round_trip() {
    let sim = sim();
    let made = call(
        &sim,
        r#"<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="tasks"/></m:SavedItemFolderId><m:Items><t:Task>
  <t:Subject>File taxes</t:Subject><t:Body BodyType="HTML">&lt;b&gt;now&lt;/b&gt;</t:Body><t:Importance>High</t:Importance>
  <t:CompleteDate>2026-12-02T00:00:00Z</t:CompleteDate><t:DueDate>2026-12-01T00:00:00Z</t:DueDate>
  <t:PercentComplete>100</t:PercentComplete><t:StartDate>2026-11-01T00:00:00Z</t:StartDate><t:Status>Completed</t:Status>
</t:Task></m:Items></m:CreateItem>"#,
    );
    let task = attr_after(&made, "<t:ItemId", "Id");
    let got = get_item(&sim, &task, "");
    assert!(
        got.contains("<t:Status>Completed</t:Status>") && got.contains("&lt;b&gt;now"),
        "{got}"
    );
    // Asked as text, the HTML body comes without its markup.
    let text = call(
        &sim,
        &format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape><t:BodyType>Text</t:BodyType></m:ItemShape>
  <m:ItemIds><t:ItemId Id="{task}"/></m:ItemIds></m:GetItem>"#
        ),
    );
    assert!(
        text.contains(r#"<t:Body BodyType="Text">now</t:Body>"#),
        "{text}"
    );
    let made = call(
        &sim,
        r#"<m:CreateItem><m:Items><t:DistributionList><t:DisplayName>Team</t:DisplayName>
  <t:Members><t:Member><t:Mailbox><t:Name>Ann</t:Name><t:EmailAddress>ann@example.org</t:EmailAddress></t:Mailbox></t:Member></t:Members>
</t:DistributionList></m:Items></m:CreateItem>"#,
    );
    let list = attr_after(&made, "<t:ItemId", "Id");
    let got = get_item(&sim, &list, "");
    assert!(
        got.contains("<t:EmailAddress>ann@example.org</t:EmailAddress>"),
        "{got}"
    );
    assert!(
        got.contains("<t:ItemClass>IPM.DistList</t:ItemClass>"),
        "{got}"
    );
    assert_eq!(sim.items(USER, "contacts").len(), 1);
    // A task is deleted only with AffectedTaskOccurrences; MoveToDeletedItems moves it.
    let refused = call(
        &sim,
        &format!(
            r#"<m:DeleteItem DeleteType="MoveToDeletedItems"><m:ItemIds><t:ItemId Id="{task}"/></m:ItemIds></m:DeleteItem>"#
        ),
    );
    assert!(
        refused.contains("ErrorAffectedTaskOccurrencesRequired"),
        "{refused}"
    );
    call(
        &sim,
        &format!(
            r#"<m:DeleteItem DeleteType="MoveToDeletedItems" AffectedTaskOccurrences="AllOccurrences"><m:ItemIds><t:ItemId Id="{task}"/></m:ItemIds></m:DeleteItem>"#
        ),
    );
    assert_eq!(sim.items(USER, "tasks").len(), 0);
    assert_eq!(sim.items(USER, "deleteditems").len(), 1);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn a_request_without_a_server_version_is_refused_and_recorded() {
    let sim = sim();
    let body = envelope(GET_INBOX).replace(
        r#"<t:RequestServerVersion Version="Exchange2013_SP1"/>"#,
        "",
    );
    let (status, text) = post(&sim, &basic(USER, PASSWORD), &body);
    assert_eq!(status, 500);
    assert!(text.contains("ErrorInvalidServerVersion"), "{text}");
    assert_eq!(sim.violations().len(), 1);
}

#[test]
fn an_operation_the_simulator_lacks_is_a_violation() {
    let sim = sim();
    let (status, _) = post(
        &sim,
        &basic(USER, PASSWORD),
        &envelope(
            r#"<m:EmptyFolder DeleteType="HardDelete" DeleteSubFolders="false"><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:EmptyFolder>"#,
        ),
    );
    assert_eq!(status, 500);
    let v = sim.violations();
    assert!(v.len() == 1 && v[0].contains("not implemented"), "{v:#?}");
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, made with the openssl
/// command (as the Dovecot harness makes its own): (ca.pem, server.pem, server.key).
fn test_certificates(dir: &std::path::Path) -> (std::path::PathBuf, super::Tls) {
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running openssl (is it installed?)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints = critical, CA:FALSE\nextendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509", "-days", "2", "-subj", "/CN=ews-sim test CA"][..],
            &ec,
            &["-keyout", &p("ca.key"), "-out", &p("ca.pem")],
            &["-addext", "basicConstraints = critical, CA:TRUE"],
            &["-addext", "keyUsage = critical, keyCertSign"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-subj", "/CN=127.0.0.1"][..],
            &ec,
            &["-keyout", &p("server.key"), "-out", &p("server.csr")],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-CAserial",
        &p("ca.srl"),
        "-extfile",
        &p("server.ext"),
        "-out",
        &p("server.pem"),
    ]);
    (
        dir.join("ca.pem"),
        super::Tls {
            cert_pem: dir.join("server.pem"),
            key_pem: dir.join("server.key"),
        },
    )
}

#[test]
fn the_simulator_speaks_https_with_a_given_certificate() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = test_certificates(dir.path());
    let sim = EwsSim::spawn_with(Some(tls)).unwrap();
    sim.add_mailbox(USER, PASSWORD);
    assert!(sim.url().starts_with("https://127.0.0.1:"), "{}", sim.url());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, TcpStream::connect(sim.addr()).unwrap());
    let body = envelope(GET_INBOX);
    write!(
        stream,
        "POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        sim.addr(),
        basic(USER, PASSWORD),
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    // The server may close without close_notify once the answer is sent.
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("<m:GetFolderResponseMessage ResponseClass=\"Success\">"),
        "{text}"
    );
    // Plain HTTP on the TLS port gets no EWS answer.
    assert!(
        post_raw(&sim, "/EWS/Exchange.asmx", &basic(USER, PASSWORD), &body)
            .map_or(true, |(status, _)| status != 200)
    );
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn find_item_returns_at_most_a_thousand_per_page() {
    let sim = sim();
    for n in 0..1001 {
        sim.insert_item(
            USER,
            "contacts",
            &format!("<t:Contact><t:GivenName>N{n}</t:GivenName></t:Contact>"),
        )
        .unwrap();
    }
    let text = call(
        &sim,
        r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
  <m:ParentFolderIds><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderIds></m:FindItem>"#,
    );
    assert_eq!(text.matches("<t:Contact>").count(), 1000);
    assert!(text.contains(r#"IncludesLastItemInRange="false""#));
    assert!(text.contains(r#"TotalItemsInView="1001""#));
    assert_eq!(sim.violations(), Vec::<String>::new());
}

fn sync_calendar(sim: &EwsSim, state: &str) -> String {
    call(
        sim,
        &format!(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
  <m:SyncFolderId><t:DistinguishedFolderId Id="calendar"/></m:SyncFolderId>
  <m:SyncState>{state}</m:SyncState><m:MaxChangesReturned>512</m:MaxChangesReturned></m:SyncFolderItems>"#
        ),
    )
}

/// Exchange keeps a series' exceptions in its master: a change to an occurrence is an
/// Update of the master, never an item of its own. An invalidated state is refused, and a
/// sync from the start lists again.
#[test]
fn an_occurrence_change_syncs_as_an_update_of_its_master_and_states_expire() {
    let sim = sim();
    let made = call(
        &sim,
        &format!(
            r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId><m:Items>{SERIES}</m:Items></m:CreateItem>"#
        ),
    );
    let master = attr_after(&made, "<t:ItemId", "Id");
    let first = sync_calendar(&sim, "");
    assert_eq!(first.matches("<t:Create>").count(), 1, "{first}");
    let state = element_text(&first, "m:SyncState");
    call(
        &sim,
        &format!(
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite" SendMeetingInvitationsOrCancellations="SendToNone"><m:ItemChanges><t:ItemChange>
  <t:OccurrenceItemId RecurringMasterId="{master}" InstanceIndex="2"/>
  <t:Updates>
    <t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:CalendarItem><t:Subject>Moved</t:Subject></t:CalendarItem></t:SetItemField>
  </t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        ),
    );
    let changes = sync_calendar(&sim, &state);
    assert_eq!(changes.matches("<t:Update>").count(), 1, "{changes}");
    assert!(changes.contains(&master), "{changes}");
    assert!(!changes.contains("<t:Create>"), "{changes}");
    let state = element_text(&changes, "m:SyncState");
    sim.invalidate_sync_states(USER);
    assert!(sync_calendar(&sim, &state).contains("ErrorInvalidSyncStateData"));
    let again = sync_calendar(&sim, "");
    assert_eq!(again.matches("<t:Create>").count(), 1, "{again}");
    let fresh = element_text(&again, "m:SyncState");
    assert!(!sync_calendar(&sim, &fresh).contains("<t:Update>"));
    assert_eq!(
        sim.item_sync_states().first(),
        Some(&Some(String::new())),
        "the states given are logged"
    );
    assert_eq!(sim.violations(), Vec::<String>::new());
}

/// A weekly series written in local time under a TimeZoneContext, and a zone the server has
/// no definition of.
fn zoned_series(sim: &EwsSim, zone: &str, start: &str, end: &str) -> Result<String, String> {
    let item = format!(
        r#"<t:CalendarItem><t:Subject>Weekly</t:Subject><t:Start>{start}</t:Start><t:End>{end}</t:End>
  <t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday</t:DaysOfWeek></t:WeeklyRecurrence>
  <t:NumberedRecurrence><t:StartDate>{}</t:StartDate><t:NumberOfOccurrences>6</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence>
  <t:StartTimeZone Id="{zone}"/><t:EndTimeZone Id="{zone}"/></t:CalendarItem>"#,
        &start[..10]
    );
    let body = format!(
        r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId><m:Items>{item}</m:Items></m:CreateItem>"#
    );
    let header =
        format!(r#"<t:TimeZoneContext><t:TimeZoneDefinition Id="{zone}"/></t:TimeZoneContext>"#);
    let (status, text) = post(sim, &basic(USER, PASSWORD), &envelope_with(&header, &body));
    assert_eq!(status, 200, "{text}");
    if text.contains(r#"ResponseClass="Error""#) {
        return Err(element_text(&text, "m:ResponseCode"));
    }
    Ok(attr_after(&text, "<t:ItemId", "Id"))
}

#[test]
fn occurrences_keep_their_wall_clock_time_across_a_daylight_saving_change() {
    let sim = sim();
    // Mondays 09:30 in Berlin from 16 March 2026; daylight time from 29 March.
    let berlin = zoned_series(
        &sim,
        "W. Europe Standard Time",
        "2026-03-16T09:30:00",
        "2026-03-16T10:00:00",
    )
    .unwrap();
    assert!(get_item(&sim, &berlin, "").contains("<t:Start>2026-03-16T08:30:00Z</t:Start>"));
    for (index, start, end) in [
        (2, "2026-03-23T08:30:00Z", "2026-03-23T09:00:00Z"),
        (3, "2026-03-30T07:30:00Z", "2026-03-30T08:00:00Z"),
        (6, "2026-04-20T07:30:00Z", "2026-04-20T08:00:00Z"),
    ] {
        let got = occurrence(&sim, &berlin, index);
        assert!(
            got.contains(&format!("<t:Start>{start}</t:Start>")),
            "{got}"
        );
        assert!(got.contains(&format!("<t:End>{end}</t:End>")), "{got}");
    }
    // Mondays 10:00 in New York from 19 October 2026; standard time from 1 November.
    let new_york = zoned_series(
        &sim,
        "Eastern Standard Time",
        "2026-10-19T10:00:00",
        "2026-10-19T11:00:00",
    )
    .unwrap();
    for (index, start) in [(2, "2026-10-26T14:00:00Z"), (3, "2026-11-02T15:00:00Z")] {
        let got = occurrence(&sim, &new_york, index);
        assert!(
            got.contains(&format!("<t:Start>{start}</t:Start>")),
            "{got}"
        );
    }
    assert_eq!(
        zoned_series(
            &sim,
            "Mars Standard Time",
            "2026-10-19T10:00:00",
            "2026-10-19T11:00:00"
        ),
        Err("ErrorTimeZone".to_owned())
    );
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[test]
fn get_server_time_zones_answers_the_published_definitions() {
    let sim = sim();
    let full = call(
        &sim,
        r#"<m:GetServerTimeZones ReturnFullTimeZoneData="true"><m:Ids><t:Id>Eastern Standard Time</t:Id><t:Id>Nowhere Standard Time</t:Id></m:Ids></m:GetServerTimeZones>"#,
    );
    assert!(full.contains(r#"Id="Eastern Standard Time""#), "{full}");
    assert!(full.contains("<t:Occurrence>2</t:Occurrence>"), "{full}");
    assert!(!full.contains("Nowhere"), "{full}");
    assert!(!full.contains("W. Europe"), "{full}");
    let names = call(
        &sim,
        r#"<m:GetServerTimeZones ReturnFullTimeZoneData="false"/>"#,
    );
    assert!(names.contains(r#"Id="W. Europe Standard Time""#), "{names}");
    assert!(!names.contains("<t:Periods>"), "{names}");
    assert_eq!(sim.violations(), Vec::<String>::new());
}
