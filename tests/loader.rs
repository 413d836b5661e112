//! The loader never panics, whatever it is fed, and YAML and TOML mean the same thing.

use std::path::Path;

use mailshift::plan::{Format, load_str};
use proptest::prelude::*;

const MINIMAL: &str = include_str!("../examples/imap-to-imap.yaml");

fn load(text: &str, format: Format) {
    let _ = load_str(text, format, Path::new("p"), Path::new("."));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        load(&text, Format::Yaml);
        load(&text, Format::Toml);
    }

    #[test]
    fn mutated_plans_never_panic(pos in 0usize..MINIMAL.len(), cut in 0usize..40, insert in "[ \\-:{}\\[\\],&*!|>'\"#\\n\\ta-z0-9]{0,12}") {
        let mut s = MINIMAL.to_string();
        let start = (0..=pos).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        let end = (start + cut).min(s.len());
        let end = (end..=s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(s.len());
        s.replace_range(start..end, &insert);
        load(&s, Format::Yaml);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing(depth in 1usize..3000) {
        let yaml = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        load(&yaml, Format::Yaml);
        let toml = format!("a = {}{}", "[".repeat(depth), "]".repeat(depth));
        load(&toml, Format::Toml);
    }
}

#[test]
fn billion_laughs_is_bounded() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    let err = load_str(&yaml, Format::Yaml, Path::new("p.yaml"), Path::new(".")).unwrap_err();
    assert!(err.render().starts_with("error: "), "{}", err.render());
}
