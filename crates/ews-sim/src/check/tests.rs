//! The checker against requests shaped as mailshift's EWS client will send them: valid ones
//! pass with no violation, and each kind of departure is reported at its path.

use super::*;

const ITEMS: &str = "/soap:Envelope/soap:Body/m:CreateItem/m:Items";

/// A SOAP 1.1 envelope with the RequestServerVersion header mailshift sends.
fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
    xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header>
  <soap:Body>{body}</soap:Body>
</soap:Envelope>"#
    )
}

fn create_calendar_item(attrs: &str, item: &str) -> String {
    envelope(&format!(
        r#"<m:CreateItem {attrs}>
  <m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId>
  <m:Items><t:CalendarItem>{item}</t:CalendarItem></m:Items>
</m:CreateItem>"#
    ))
}

const MEETING: &str = r#"
  <t:Subject>Board meeting &amp; lunch</t:Subject>
  <t:Body BodyType="Text">Agenda</t:Body>
  <t:ReminderIsSet>false</t:ReminderIsSet>
  <t:UID>040000008200E00074C5B7101A82E008</t:UID>
  <t:Start>2026-12-01T09:00:00Z</t:Start>
  <t:End>2026-12-01T10:00:00Z</t:End>
  <t:IsAllDayEvent>false</t:IsAllDayEvent>
  <t:LegacyFreeBusyStatus>Busy</t:LegacyFreeBusyStatus>
  <t:Location>Room 1</t:Location>
  <t:RequiredAttendees>
    <t:Attendee><t:Mailbox><t:EmailAddress>a@example.com</t:EmailAddress></t:Mailbox></t:Attendee>
    <t:Attendee><t:Mailbox><t:EmailAddress>b@example.com</t:EmailAddress></t:Mailbox></t:Attendee>
  </t:RequiredAttendees>
"#;

fn violations(request: &str) -> Vec<String> {
    check_request(request)
        .violations
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_calendar_item_created_without_invitations_passes() {
    let report = check_request(&create_calendar_item(
        r#"SendMeetingInvitations="SendToNone""#,
        MEETING,
    ));
    assert_eq!(report.violations, vec![]);
    assert_eq!(report.operation.as_deref(), Some("CreateItem"));
}

#[test]
fn elements_out_of_sequence_order_are_reported_where_they_are() {
    // Start and End swapped: the XSD's sequence puts Start first.
    let swapped = MEETING
        .replace("<t:Start>2026-12-01T09:00:00Z</t:Start>", "")
        .replace(
            "<t:End>2026-12-01T10:00:00Z</t:End>",
            "<t:End>2026-12-01T10:00:00Z</t:End><t:Start>2026-12-01T09:00:00Z</t:Start>",
        );
    let v = violations(&create_calendar_item(
        r#"SendMeetingInvitations="SendToNone""#,
        &swapped,
    ));
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(
        v[0].starts_with(&format!(
            "{ITEMS}/t:CalendarItem/t:Start: t:Start is out of order"
        )),
        "{v:#?}"
    );
}

#[test]
fn an_unknown_element_is_reported_with_what_was_expected() {
    let item = MEETING.replace(
        "<t:Location>Room 1</t:Location>",
        "<t:Colour>blue</t:Colour>",
    );
    let v = violations(&create_calendar_item("", &item));
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(v[0].starts_with(&format!("{ITEMS}/t:CalendarItem/t:Colour: unknown element t:Colour in t:CalendarItem; expected one of")), "{v:#?}");
    assert!(v[0].contains("t:Location"), "{v:#?}");
}

#[test]
fn a_value_outside_an_enumeration_is_reported_on_its_attribute() {
    let v = violations(&create_calendar_item(
        r#"SendMeetingInvitations="SendToSome""#,
        MEETING,
    ));
    assert_eq!(
        v,
        vec![
            "/soap:Envelope/soap:Body/m:CreateItem/@SendMeetingInvitations: value \"SendToSome\" is not one of \
             t:CalendarItemCreateOrDeleteOperationType: SendToNone, SendOnlyToAll, SendToAllAndSaveCopy"
        ]
    );
}

#[test]
fn a_value_outside_an_enumeration_is_reported_on_its_element() {
    let item = MEETING.replace(">Busy<", ">Sleeping<");
    let v = violations(&create_calendar_item("", &item));
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(v[0].starts_with(&format!("{ITEMS}/t:CalendarItem/t:LegacyFreeBusyStatus: content \"Sleeping\" is not one of t:LegacyFreeBusyType")), "{v:#?}");
}

#[test]
fn typed_values_and_required_attributes_are_checked() {
    let item = MEETING
        .replace("<t:IsAllDayEvent>false<", "<t:IsAllDayEvent>maybe<")
        .replace(r#"<t:Body BodyType="Text">"#, "<t:Body>");
    let v = violations(&create_calendar_item("", &item));
    assert_eq!(
        v,
        vec![
            format!(
                "{ITEMS}/t:CalendarItem/t:Body: missing required attribute BodyType on t:Body (t:BodyType)"
            ),
            format!(
                "{ITEMS}/t:CalendarItem/t:IsAllDayEvent: content \"maybe\" is not a valid xs:boolean"
            ),
        ]
    );
}

#[test]
fn a_missing_required_element_is_reported_on_its_parent() {
    let request = envelope(
        r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId></m:CreateItem>"#,
    );
    let v = violations(&request);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(
        v[0].starts_with("/soap:Envelope/soap:Body/m:CreateItem: m:CreateItem is incomplete"),
        "{v:#?}"
    );
    assert!(v[0].contains("m:Items"), "{v:#?}");
}

#[test]
fn an_unknown_attribute_is_reported() {
    let v = violations(&create_calendar_item(
        r#"SendMeetingInvites="SendToNone""#,
        MEETING,
    ));
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(
        v[0].starts_with(
            "/soap:Envelope/soap:Body/m:CreateItem/@SendMeetingInvites: unknown attribute"
        ),
        "{v:#?}"
    );
}

#[test]
fn a_body_that_is_no_operation_is_refused() {
    let v = violations(&envelope("<m:CreateAppointment/>"));
    assert_eq!(
        v,
        vec![
            "/soap:Envelope/soap:Body/m:CreateAppointment: m:CreateAppointment is not the request of any operation in services.wsdl"
        ]
    );
}

#[test]
fn a_header_the_operation_does_not_declare_is_refused() {
    let request = envelope(r#"<m:ResolveNames ReturnFullContactData="true"><m:UnresolvedEntry>ann</m:UnresolvedEntry></m:ResolveNames>"#)
        .replace("<soap:Header>", r#"<soap:Header><t:DateTimePrecision>Seconds</t:DateTimePrecision>"#);
    let v = violations(&request);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(v[0].starts_with("/soap:Envelope/soap:Header/t:DateTimePrecision: t:DateTimePrecision is not a header of ResolveNames"), "{v:#?}");
}

#[test]
fn malformed_xml_is_a_violation_not_a_panic() {
    let v = violations(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>",
    );
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(v[0].starts_with("/: the request"), "{v:#?}");
}

/// The other requests the migration makes, as EWS's documentation shows them: all valid.
#[test]
fn the_migration_s_other_operations_pass() {
    let bodies = [
        (
            "GetFolder",
            r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>
               <m:FolderIds><t:DistinguishedFolderId Id="contacts"><t:Mailbox><t:EmailAddress>u@example.com</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder>"#,
        ),
        (
            "FindFolder",
            r#"<m:FindFolder Traversal="Deep"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>
               <t:AdditionalProperties><t:FieldURI FieldURI="folder:DisplayName"/><t:FieldURI FieldURI="folder:FolderClass"/></t:AdditionalProperties></m:FolderShape>
               <m:IndexedPageFolderView MaxEntriesReturned="100" Offset="0" BasePoint="Beginning"/>
               <m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#,
        ),
        (
            "SyncFolderItems",
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
               <m:SyncFolderId><t:FolderId Id="AAMkAD" ChangeKey="AQAAAB"/></m:SyncFolderId>
               <m:SyncState>H4sIAAA=</m:SyncState><m:MaxChangesReturned>512</m:MaxChangesReturned>
               <m:SyncScope>NormalItems</m:SyncScope></m:SyncFolderItems>"#,
        ),
        (
            "GetItem",
            r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent>
               <t:AdditionalProperties><t:ExtendedFieldURI PropertySetId="00020329-0000-0000-C000-000000000046" PropertyName="mailshift-source" PropertyType="String"/></t:AdditionalProperties></m:ItemShape>
               <m:ItemIds><t:ItemId Id="AAMkAD1" ChangeKey="DwAAAB"/><t:ItemId Id="AAMkAD2"/></m:ItemIds></m:GetItem>"#,
        ),
        (
            "UpdateItem",
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite" SendMeetingInvitationsOrCancellations="SendToNone">
               <m:ItemChanges><t:ItemChange><t:ItemId Id="AAMkAD1" ChangeKey="DwAAAB"/><t:Updates>
                 <t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:CalendarItem><t:Subject>Moved</t:Subject></t:CalendarItem></t:SetItemField>
                 <t:DeleteItemField><t:FieldURI FieldURI="calendar:Location"/></t:DeleteItemField>
               </t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#,
        ),
        (
            "DeleteItem",
            r#"<m:DeleteItem DeleteType="HardDelete" SendMeetingCancellations="SendToNone" AffectedTaskOccurrences="AllOccurrences">
               <m:ItemIds><t:ItemId Id="AAMkAD1"/></m:ItemIds></m:DeleteItem>"#,
        ),
        (
            "GetInboxRules",
            r#"<m:GetInboxRules><m:MailboxSmtpAddress>u@example.com</m:MailboxSmtpAddress></m:GetInboxRules>"#,
        ),
        (
            "UpdateInboxRules",
            r#"<m:UpdateInboxRules><m:RemoveOutlookRuleBlob>true</m:RemoveOutlookRuleBlob><m:Operations>
               <t:CreateRuleOperation><t:Rule><t:DisplayName>Invoices</t:DisplayName><t:Priority>1</t:Priority><t:IsEnabled>true</t:IsEnabled>
                 <t:Conditions><t:ContainsSubjectStrings><t:String>invoice</t:String></t:ContainsSubjectStrings></t:Conditions>
                 <t:Actions><t:MoveToFolder><t:FolderId Id="AAMkF"/></t:MoveToFolder><t:StopProcessingRules>true</t:StopProcessingRules></t:Actions>
               </t:Rule></t:CreateRuleOperation></m:Operations></m:UpdateInboxRules>"#,
        ),
        (
            "ResolveNames",
            r#"<m:ResolveNames ReturnFullContactData="true" SearchScope="ActiveDirectory"><m:UnresolvedEntry>ann</m:UnresolvedEntry></m:ResolveNames>"#,
        ),
    ];
    for (op, body) in bodies {
        let report = check_request(&envelope(body));
        assert_eq!(report.operation.as_deref(), Some(op));
        assert_eq!(report.violations, vec![], "{op}");
    }
}

fn create_item_response(class: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2016_01_06"
      xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/></s:Header>
  <s:Body>
    <m:CreateItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
        xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
      <m:ResponseMessages>
        <m:CreateItemResponseMessage ResponseClass="{class}">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:Items><t:CalendarItem><t:ItemId Id="AAMkAD1" ChangeKey="DwAAAB"/></t:CalendarItem></m:Items>
        </m:CreateItemResponseMessage>
      </m:ResponseMessages>
    </m:CreateItemResponse>
  </s:Body>
</s:Envelope>"#
    )
}

#[test]
fn a_response_is_checked_against_the_operation_s_output() {
    let report = check_response(&create_item_response("Success"));
    assert_eq!(report.violations, vec![]);
    assert_eq!(report.operation.as_deref(), Some("CreateItem"));

    let v: Vec<String> = check_response(&create_item_response("Fine"))
        .violations
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(
        v[0].starts_with(
            "/soap:Envelope/soap:Body/m:CreateItemResponse/m:ResponseMessages/m:CreateItemResponseMessage/@ResponseClass: \
             value \"Fine\" is not one of t:ResponseClassType"
        ),
        "{v:#?}"
    );
}

#[test]
fn a_request_is_not_a_response() {
    let v: Vec<String> = check_response(&create_calendar_item("", MEETING))
        .violations
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        v,
        vec![
            "/soap:Envelope/soap:Body/m:CreateItem: m:CreateItem is not the response of any operation in services.wsdl"
        ]
    );
}

#[test]
fn repeated_siblings_are_told_apart_in_the_path() {
    let item = MEETING.replace(
        "<t:EmailAddress>b@example.com</t:EmailAddress>",
        "<t:Email>b@example.com</t:Email>",
    );
    let v = violations(&create_calendar_item("", &item));
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(
        v[0].starts_with(&format!(
            "{ITEMS}/t:CalendarItem/t:RequiredAttendees/t:Attendee[2]/t:Mailbox/t:Email: unknown element t:Email in t:Mailbox"
        )),
        "{v:#?}"
    );
}

#[test]
fn a_substitution_group_offers_its_members() {
    let request = envelope(
        r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="A"/><t:Updates>
           <t:DeleteItemField><t:FieldName>item:Subject</t:FieldName></t:DeleteItemField>
           </t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#,
    );
    let v = violations(&request);
    assert_eq!(
        v,
        vec![
            "/soap:Envelope/soap:Body/m:UpdateItem/m:ItemChanges/t:ItemChange/t:Updates/t:DeleteItemField/t:FieldName: \
             unknown element t:FieldName in t:DeleteItemField; expected one of t:FieldURI, t:IndexedFieldURI, t:ExtendedFieldURI"
        ]
    );
}

/// A weekly series with its time zone, a contact and a task: the groups (recurrence patterns
/// and ranges), lists (days of week) and dictionaries (keyed entries) the migration writes.
const SERIES_CONTACT_TASK: &str = r#"
<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items>
  <t:CalendarItem>
    <t:Subject>Stand-up</t:Subject>
    <t:Start>2026-12-01T09:00:00+01:00</t:Start>
    <t:End>2026-12-01T09:15:00+01:00</t:End>
    <t:Recurrence>
      <t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday Wednesday Friday</t:DaysOfWeek></t:WeeklyRecurrence>
      <t:NumberedRecurrence><t:StartDate>2026-12-01</t:StartDate><t:NumberOfOccurrences>30</t:NumberOfOccurrences></t:NumberedRecurrence>
    </t:Recurrence>
    <t:StartTimeZone Id="W. Europe Standard Time"/>
    <t:EndTimeZone Id="W. Europe Standard Time"/>
  </t:CalendarItem>
  <t:Contact>
    <t:FileAs>Doe, Ann</t:FileAs>
    <t:GivenName>Ann</t:GivenName>
    <t:EmailAddresses><t:Entry Key="EmailAddress1">ann@example.com</t:Entry></t:EmailAddresses>
    <t:PhoneNumbers><t:Entry Key="MobilePhone">+33 6 00 00 00 00</t:Entry></t:PhoneNumbers>
    <t:Surname>Doe</t:Surname>
  </t:Contact>
  <t:Task><t:Subject>File taxes</t:Subject><t:DueDate>2027-04-15T00:00:00Z</t:DueDate><t:Status>NotStarted</t:Status></t:Task>
</m:Items></m:CreateItem>"#;

#[test]
fn a_series_a_contact_and_a_task_pass() {
    assert_eq!(
        violations(&envelope(SERIES_CONTACT_TASK)),
        Vec::<String>::new()
    );
}

#[test]
fn list_items_and_dictionary_keys_are_checked() {
    let body = SERIES_CONTACT_TASK
        .replace("Monday Wednesday Friday", "Monday Funday")
        .replace(r#"Key="MobilePhone""#, r#"Key="PagerPhone""#);
    let v = violations(&envelope(&body));
    let items = "/soap:Envelope/soap:Body/m:CreateItem/m:Items";
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(
        v[0].starts_with(&format!(
            "{items}/t:CalendarItem/t:Recurrence/t:WeeklyRecurrence/t:DaysOfWeek: content \"Monday Funday\" (its item \"Funday\") is not one of t:DayOfWeekType"
        )),
        "{v:#?}"
    );
    assert!(
        v[1].starts_with(&format!(
            "{items}/t:Contact/t:PhoneNumbers/t:Entry/@Key: value \"PagerPhone\" is not one of t:PhoneNumberKeyType"
        )),
        "{v:#?}"
    );
}
