//! The Exchange Online IMAP migration CSV import: any bytes give a plan (which renders as
//! YAML and TOML) or an error naming the place, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailshift::import::{ExoOptions, endpoint, exo_csv, secrets_file_text, to_toml, to_yaml};

fuzz_target!(|data: &[u8]| {
    let opts = ExoOptions {
        source: endpoint("imap.old.example", None, None).expect("a valid endpoint"),
        destination: endpoint("imap.new.example", None, None).expect("a valid endpoint"),
    };
    match exo_csv(data, "fuzz.csv", &opts) {
        Ok(imported) => {
            let _ = to_yaml(&imported);
            let _ = to_toml(&imported);
            let _ = secrets_file_text(&imported);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
