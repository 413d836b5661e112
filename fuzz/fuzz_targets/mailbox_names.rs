//! Mailbox names on the wire (`transfer::imap::names`): any name's bytes, encoded (quoted or
//! literal, with or without LITERAL+) into a LIST and a STATUS response, parse back to the
//! same bytes; any bytes parse to a response or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailshift::transfer::imap::names::{encode, parse_astring, parse_list, parse_status};

fuzz_target!(|data: &[u8]| {
    // What a server sends may be anything.
    let _ = parse_list(data);
    let _ = parse_status(data);
    let _ = parse_astring(data);

    let name = data;
    for plus in [false, true] {
        let wire = encode(name).to_wire(plus);
        let mut list = b"* LIST (\\HasNoChildren) \"/\" ".to_vec();
        list.extend_from_slice(&wire);
        list.extend_from_slice(b"\r\n");
        let entry = parse_list(&list).unwrap_or_else(|e| panic!("{e} in {list:?}"));
        assert_eq!(entry.name, name, "LIST round trip via {wire:?}");
        let mut status = b"* STATUS ".to_vec();
        status.extend_from_slice(&wire);
        status.extend_from_slice(b" (MESSAGES 3 UIDNEXT 7)\r\n");
        let entry = parse_status(&status).unwrap_or_else(|e| panic!("{e} in {status:?}"));
        assert_eq!(entry.name, name, "STATUS round trip via {wire:?}");
        assert_eq!(entry.items.len(), 2);
    }
});
