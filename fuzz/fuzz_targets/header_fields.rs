//! The header fields `verify` prints (Message-ID, Date, Subject): any bytes parse, decode
//! (RFC 2047) and come out without a control character, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailshift::verify::header::parse;

fuzz_target!(|data: &[u8]| {
    let named = parse(data);
    for text in [&named.message_id, &named.date, &named.subject]
        .into_iter()
        .flatten()
    {
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
});
