//! The OVH Mail Migrator CSV import: any bytes give a plan (which renders as YAML and TOML)
//! or an error naming the place, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailshift::import::{OmmOptions, endpoint, omm_csv, secrets_file_text, to_toml, to_yaml};

fuzz_target!(|data: &[u8]| {
    // The first byte says whether rows may leave the destination server out.
    let Some((&first, csv)) = data.split_first() else {
        return;
    };
    let opts = OmmOptions {
        dest_fallback: (first & 1 == 1)
            .then(|| endpoint("imap.new.example", None, None).expect("a valid endpoint")),
    };
    match omm_csv(csv, "fuzz.csv", &opts) {
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
