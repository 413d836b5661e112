//! The plan loader (`mailshift::plan::load_str`), YAML or TOML by the first byte: any text
//! must give a plan or diagnostics that render, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mailshift::plan::{Format, load_str};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (format, name) = if first & 1 == 0 {
        (Format::Yaml, "plan.yaml")
    } else {
        (Format::Toml, "plan.toml")
    };
    match load_str(text, format, Path::new(name), Path::new(".")) {
        Ok(loaded) => {
            let _ = loaded.render_warnings();
        }
        Err(e) => {
            let _ = e.render();
        }
    }
});
