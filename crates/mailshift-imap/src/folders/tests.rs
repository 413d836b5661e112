//! Table tests for the folder mapping, one server family or rule at a time.

use std::time::{Duration, Instant};

use super::*;

fn list(delim: char, entries: &[(&str, &[&str])]) -> Vec<RemoteFolder> {
    entries
        .iter()
        .map(|(name, attrs)| RemoteFolder {
            name: name.to_string(),
            delimiter: Some(delim),
            attributes: attrs.iter().map(|a| a.to_string()).collect(),
        })
        .collect()
}

fn names(delim: char, names: &[&str]) -> Vec<RemoteFolder> {
    list(
        delim,
        &names.iter().map(|n| (*n, &[][..])).collect::<Vec<_>>(),
    )
}

fn rules(include: &[&str], exclude: &[&str], map: &[(&str, &str)]) -> FolderRules {
    FolderRules {
        include: include.iter().map(|s| s.to_string()).collect(),
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
        map: map
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        gmail: Gmail::default(),
    }
}

fn run(src: &[RemoteFolder], dst: &[RemoteFolder], rules: &FolderRules) -> Mapping {
    map_folders(src, dst, rules).expect("mapping")
}

/// (raw source, raw destination) per copied folder.
fn copies(m: &Mapping) -> Vec<(&str, &str)> {
    m.copy
        .iter()
        .map(|p| (p.source.as_str(), p.dest.as_str()))
        .collect()
}

fn skipped(m: &Mapping) -> Vec<(&str, &str)> {
    m.skipped
        .iter()
        .map(|(p, r)| (p.as_str(), r.as_str()))
        .collect()
}

const NOSELECT: &str = "\\Noselect: holds no messages (its subfolders are copied)";

#[test]
fn dovecot_to_courier_gains_the_inbox_prefix() {
    let src = list(
        '/',
        &[
            ("INBOX", &[]),
            ("Sent", &["\\Sent"]),
            ("Drafts", &["\\Drafts"]),
            ("Trash", &["\\Trash"]),
            ("Work", &["\\HasChildren"]),
            ("Work/Clients", &[]),
        ],
    );
    let dst = names('.', &["INBOX", "INBOX.Sent", "INBOX.Trash"]);
    let m = run(&src, &dst, &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("Drafts", "INBOX.Drafts"),
            ("Sent", "INBOX.Sent"),
            ("Trash", "INBOX.Trash"),
            ("Work", "INBOX.Work"),
            ("Work/Clients", "INBOX.Work.Clients"),
        ]
    );
    let paths: Vec<_> = m
        .copy
        .iter()
        .map(|p| (p.path.as_str(), p.dest_path.as_str()))
        .collect();
    assert_eq!(paths[5], ("Work/Clients", "Work/Clients"));
    let special: Vec<_> = m.copy.iter().map(|p| p.special).collect();
    assert_eq!(
        special,
        [
            Some(SpecialUse::Inbox),
            Some(SpecialUse::Drafts),
            Some(SpecialUse::Sent),
            Some(SpecialUse::Trash),
            None,
            None
        ]
    );
    assert_eq!(
        m.create,
        ["INBOX.Drafts", "INBOX.Work", "INBOX.Work.Clients"]
    );
    assert!(m.skipped.is_empty());
    assert!(m.notes.is_empty(), "{:?}", m.notes);
}

#[test]
fn courier_to_dovecot_loses_the_prefix_and_subfolders_follow_their_parent() {
    let src = names(
        '.',
        &[
            "INBOX",
            "INBOX.Sent",
            "INBOX.Archives",
            "INBOX.Archives.2020",
            "INBOX.Drafts",
        ],
    );
    let dst = list('/', &[("INBOX", &[]), ("Sent", &["\\Sent"])]);
    let m = run(&src, &dst, &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("INBOX.Archives", "Archive"),
            ("INBOX.Archives.2020", "Archive/2020"),
            ("INBOX.Drafts", "Drafts"),
            ("INBOX.Sent", "Sent"),
        ]
    );
    let paths: Vec<_> = m.copy.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["INBOX", "Archives", "Archives/2020", "Drafts", "Sent"]
    );
    assert_eq!(m.create, ["Archive", "Archive/2020", "Drafts"]);
    assert_eq!(
        m.notes,
        [
            "`Archives` goes to `Archive`",
            "`Archives/2020` goes to `Archive/2020`"
        ]
    );
}

#[test]
fn exchange_names_go_to_dovecot_special_use_folders() {
    let src = names(
        '/',
        &[
            "INBOX",
            "Sent Items",
            "Deleted Items",
            "Deleted Items/Old",
            "Junk E-mail",
            "Drafts",
            "Notes",
        ],
    );
    let dst = list(
        '/',
        &[
            ("INBOX", &[]),
            ("Sent", &["\\Sent"]),
            ("Trash", &["\\Trash"]),
            ("Junk", &["\\Junk"]),
            ("Drafts", &["\\Drafts"]),
        ],
    );
    let m = run(&src, &dst, &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("Deleted Items", "Trash"),
            ("Deleted Items/Old", "Trash/Old"),
            ("Drafts", "Drafts"),
            ("Junk E-mail", "Junk"),
            ("Notes", "Notes"),
            ("Sent Items", "Sent"),
        ]
    );
    assert_eq!(m.copy[1].special, Some(SpecialUse::Trash));
    assert_eq!(m.copy[2].special, None);
    assert_eq!(m.create, ["Notes", "Trash/Old"]);
    assert_eq!(
        m.notes,
        [
            "`Deleted Items` goes to `Trash`",
            "`Deleted Items/Old` goes to `Trash/Old`",
            "`Junk E-mail` goes to `Junk`",
            "`Sent Items` goes to `Sent`",
        ]
    );
}

#[test]
fn destination_special_folders_found_by_name_when_no_attribute() {
    let src = list('/', &[("INBOX", &[]), ("Sent", &["\\Sent"]), ("Spam", &[])]);
    let dst = names('/', &["INBOX", "Sent Items", "Junk E-mail"]);
    let m = run(&src, &dst, &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("Sent", "Sent Items"),
            ("Spam", "Junk E-mail")
        ]
    );
    assert!(m.create.is_empty());
}

fn gmail() -> Vec<RemoteFolder> {
    list(
        '/',
        &[
            ("INBOX", &["\\HasNoChildren"]),
            ("[Gmail]", &["\\HasChildren", "\\Noselect"]),
            ("[Gmail]/All Mail", &["\\All", "\\HasNoChildren"]),
            ("[Gmail]/Drafts", &["\\Drafts", "\\HasNoChildren"]),
            ("[Gmail]/Sent Mail", &["\\HasNoChildren", "\\Sent"]),
            ("[Gmail]/Spam", &["\\HasNoChildren", "\\Junk"]),
            ("[Gmail]/Starred", &["\\Flagged", "\\HasNoChildren"]),
            ("[Gmail]/Trash", &["\\HasNoChildren", "\\Trash"]),
            ("Work", &["\\HasNoChildren"]),
        ],
    )
}

#[test]
fn gmail_to_dovecot() {
    let dst = list('/', &[("INBOX", &[]), ("Sent", &["\\Sent"])]);
    let m = run(&gmail(), &dst, &FolderRules::default());
    assert_eq!(skipped(&m), [("[Gmail]", NOSELECT)]);
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("Work", "Work"),
            ("[Gmail]/All Mail", "[Gmail]/All Mail"),
            ("[Gmail]/Drafts", "Drafts"),
            ("[Gmail]/Sent Mail", "Sent"),
            ("[Gmail]/Spam", "Junk"),
            ("[Gmail]/Starred", "[Gmail]/Starred"),
            ("[Gmail]/Trash", "Trash"),
        ]
    );
    assert_eq!(m.copy[6].special, Some(SpecialUse::Flagged));
    assert_eq!(
        m.create,
        [
            "Drafts",
            "Junk",
            "Trash",
            "Work",
            "[Gmail]",
            "[Gmail]/All Mail",
            "[Gmail]/Starred"
        ]
    );
    assert_eq!(
        m.notes,
        [
            "`[Gmail]/All Mail` holds every message of the account, so messages in other folders are copied twice: exclude it (`folders.exclude: [\"[Gmail]/All Mail\"]`) unless that is wanted",
            "`[Gmail]/Drafts` goes to `Drafts`",
            "`[Gmail]/Sent Mail` goes to `Sent`",
            "`[Gmail]/Spam` goes to `Junk`",
            "`[Gmail]/Trash` goes to `Trash`",
        ]
    );

    let m = run(&gmail(), &dst, &rules(&[], &["[Gmail]/All Mail"], &[]));
    assert_eq!(
        skipped(&m),
        [
            ("[Gmail]", NOSELECT),
            ("[Gmail]/All Mail", "excluded by `[Gmail]/All Mail`")
        ]
    );
    assert!(!m.notes.iter().any(|n| n.contains("every message")));
}

#[test]
fn non_ascii_names_decode_and_encode_again() {
    let src = names(
        '/',
        &[
            "INBOX",
            "&AMk-t&AOk-",
            "&AMk-t&AOk-/&ZeVnLIqe-",
            "&AMk-l&AOk-ments envoy&AOk-s",
        ],
    );
    let dst = names('.', &["INBOX", "INBOX.Archive"]);
    let m = run(&src, &dst, &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("&AMk-l&AOk-ments envoy&AOk-s", "INBOX.Sent"),
            ("&AMk-t&AOk-", "INBOX.&AMk-t&AOk-"),
            ("&AMk-t&AOk-/&ZeVnLIqe-", "INBOX.&AMk-t&AOk-.&ZeVnLIqe-"),
        ]
    );
    let paths: Vec<_> = m
        .copy
        .iter()
        .map(|p| (p.path.as_str(), p.dest_path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("INBOX", "INBOX"),
            ("Éléments envoyés", "Sent"),
            ("Été", "Été"),
            ("Été/日本語", "Été/日本語"),
        ]
    );
    assert_eq!(
        m.create,
        [
            "INBOX.Sent",
            "INBOX.&AMk-t&AOk-",
            "INBOX.&AMk-t&AOk-.&ZeVnLIqe-"
        ]
    );

    // And back: a Courier source gives the original Dovecot names.
    let back_src = names(
        '.',
        &["INBOX", "INBOX.&AMk-t&AOk-", "INBOX.&AMk-t&AOk-.&ZeVnLIqe-"],
    );
    let m = run(&back_src, &[], &FolderRules::default());
    let dests: Vec<_> = m.copy.iter().map(|p| p.dest.as_str()).collect();
    assert_eq!(dests, ["INBOX", "&AMk-t&AOk-", "&AMk-t&AOk-/&ZeVnLIqe-"]);
}

#[test]
fn names_that_are_not_modified_utf7_are_kept_and_noted() {
    let src = names('/', &["INBOX", "Caf\u{e9}", "R&D"]);
    let m = run(&src, &[], &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("Caf\u{e9}", "Caf&AOk-"),
            ("R&D", "R&-D")
        ]
    );
    assert_eq!(m.copy[1].path, "Café");
    assert_eq!(
        m.notes,
        [
            "folder name `Café` is not valid modified UTF-7 (byte 0xc3 at offset 3 is not printable ASCII (raw UTF-8 is not modified UTF-7)): used as it is",
            "folder name `R&D` is not valid modified UTF-7 (the `&` at offset 1 opens a section that is never closed by `-`): used as it is",
        ]
    );
}

#[test]
fn two_names_reading_the_same_keep_the_first() {
    let src = names('/', &["INBOX", "\u{e9}t\u{e9}", "&AOk-t&AOk-"]);
    let m = run(&src, &[], &FolderRules::default());
    assert_eq!(
        copies(&m),
        [("INBOX", "INBOX"), ("&AOk-t&AOk-", "&AOk-t&AOk-")]
    );
    assert_eq!(
        skipped(&m),
        [(
            "été",
            "`été` reads as the same path as `&AOk-t&AOk-`; rename one of them on the source"
        )]
    );
}

#[test]
fn inbox_in_any_case_is_inbox() {
    let src = names('/', &["Inbox", "inbox/Sub", "Other"]);
    let dst = names('/', &["inbox"]);
    let m = run(&src, &dst, &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("Inbox", "INBOX"),
            ("inbox/Sub", "INBOX/Sub"),
            ("Other", "Other")
        ]
    );
    assert_eq!(m.copy[1].path, "INBOX/Sub");
    assert_eq!(m.create, ["INBOX/Sub", "Other"]);

    // With nothing outside it, everything under `INBOX/` reads as a Courier-style prefix.
    let m = run(
        &names('/', &["Inbox", "inbox/Sub"]),
        &[],
        &FolderRules::default(),
    );
    assert_eq!(copies(&m), [("Inbox", "INBOX"), ("inbox/Sub", "Sub")]);
}

#[test]
fn include_and_exclude_globs() {
    let src = names(
        '/',
        &[
            "INBOX",
            "Work",
            "Work/A",
            "Work/Old",
            "Work/Old/X",
            "Projects",
            "Misc",
        ],
    );
    let m = run(
        &src,
        &[],
        &rules(&["Work/*", "Projects"], &["Work/Old*"], &[]),
    );
    let paths: Vec<_> = m.copy.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["INBOX", "Projects", "Work/A"]);
    assert_eq!(
        skipped(&m),
        [
            ("Misc", "matches no `folders.include` pattern"),
            ("Work", "matches no `folders.include` pattern"),
            ("Work/Old", "excluded by `Work/Old*`"),
            ("Work/Old/X", "excluded by `Work/Old*`"),
        ]
    );
    // With nothing listed on the destination, its separator defaults to `/`.
    assert_eq!(m.create, ["Projects", "Work", "Work/A"]);
    assert!(m.notes.is_empty());

    let m = run(&src, &[], &rules(&[], &["INBOX", "Nope*"], &[]));
    assert_eq!(m.copy.len(), 6);
    assert_eq!(skipped(&m), [("INBOX", "excluded by `INBOX`")]);
    assert_eq!(
        m.notes,
        ["`folders.exclude` pattern `Nope*` matches no source folder"]
    );
}

#[test]
fn one_folder_per_special_use_and_explicit_map_wins() {
    let src = names(
        '/',
        &["INBOX", "Sent", "Sent Items", "Sent Items/2020", "Old"],
    );
    let dst = list('/', &[("INBOX", &[]), ("Sent", &["\\Sent"])]);
    let m = run(&src, &dst, &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("Old", "Old"),
            ("Sent", "Sent"),
            ("Sent Items", "Sent Items"),
            ("Sent Items/2020", "Sent Items/2020"),
        ]
    );
    assert_eq!(
        m.notes,
        [
            "`Sent Items` also looks like a Sent folder, but `Sent` is the one that goes to the destination's; `Sent Items` keeps its name"
        ]
    );
    assert_eq!(m.create, ["Old", "Sent Items", "Sent Items/2020"]);

    let m = run(
        &src,
        &dst,
        &rules(&[], &[], &[("Sent", "Old Sent"), ("Old", "Archive/Old")]),
    );
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("Old", "Archive/Old"),
            ("Sent", "Old Sent"),
            ("Sent Items", "Sent"),
            ("Sent Items/2020", "Sent/2020"),
        ]
    );
    assert_eq!(
        m.notes,
        [
            "`Old` goes to `Archive/Old`",
            "`Sent` goes to `Old Sent`",
            "`Sent Items` goes to `Sent`",
            "`Sent Items/2020` goes to `Sent/2020`",
        ]
    );
    assert_eq!(
        m.create,
        ["Archive", "Archive/Old", "Old Sent", "Sent/2020"]
    );
}

#[test]
fn attribute_beats_name_for_the_special_use() {
    let src = list(
        '/',
        &[
            ("INBOX", &[]),
            ("Sent", &[]),
            ("Outbox copies", &["\\Sent"]),
        ],
    );
    let m = run(&src, &[], &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("Outbox copies", "Sent"),
            ("Sent", "Sent")
        ]
    );
    assert_eq!(
        m.notes,
        [
            "`Sent` also looks like a Sent folder, but `Outbox copies` is the one that goes to the destination's; `Sent` keeps its name",
            "`Outbox copies` goes to `Sent`",
            "`Outbox copies` and `Sent` go to `Sent`: merged into one folder",
        ]
    );
    assert_eq!(m.create, ["Sent"]);
}

#[test]
fn noselect_parents_are_skipped_but_their_children_copied() {
    let src = list(
        '/',
        &[
            ("INBOX", &[]),
            ("Lists", &["\\Noselect", "\\HasChildren"]),
            ("Lists/rust", &[]),
            ("Lists/go", &["\\NonExistent"]),
            ("Lists/go/sub", &[]),
        ],
    );
    let dst = names('/', &["INBOX"]);
    let m = run(&src, &dst, &FolderRules::default());
    assert_eq!(
        skipped(&m),
        [
            ("Lists", NOSELECT),
            (
                "Lists/go",
                "\\NonExistent: holds no messages (its subfolders are copied)"
            ),
        ]
    );
    let paths: Vec<_> = m.copy.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["INBOX", "Lists/go/sub", "Lists/rust"]);
    assert_eq!(
        m.create,
        ["Lists", "Lists/go", "Lists/go/sub", "Lists/rust"]
    );
}

#[test]
fn dotted_levels_on_a_dot_server_and_slashes_from_one() {
    let src = names('/', &["INBOX", "v1.2", "Work/v1.2"]);
    let dst = names('.', &["INBOX", "INBOX.Work"]);
    let m = run(&src, &dst, &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("Work/v1.2", "INBOX.Work.v1_2"),
            ("v1.2", "INBOX.v1_2"),
        ]
    );
    assert_eq!(m.copy[1].dest_path, "Work/v1_2");
    assert_eq!(m.create, ["INBOX.Work.v1_2", "INBOX.v1_2"]);
    assert_eq!(
        m.notes,
        [
            "level `v1.2` of `Work/v1.2` contains `.`, the destination's separator: written `v1_2`",
            "`Work/v1.2` goes to `Work/v1_2`",
            "level `v1.2` of `v1.2` contains `.`, the destination's separator: written `v1_2`",
            "`v1.2` goes to `v1_2`",
        ]
    );

    let src = names('.', &["INBOX", "INBOX.a/b"]);
    let m = run(&src, &[], &FolderRules::default());
    assert_eq!(copies(&m), [("INBOX", "INBOX"), ("INBOX.a/b", "a&IhU-b")]);
    assert_eq!(m.copy[1].path, "a\u{2215}b");
    assert_eq!(
        m.notes,
        [
            "level `a/b` of folder `INBOX.a/b` contains `/`, which separates levels in paths: written `a\u{2215}b`"
        ]
    );
}

#[test]
fn merged_folders_are_noted() {
    let src = names('/', &["INBOX", "Archive", "Old Mail"]);
    let m = run(&src, &[], &rules(&[], &[], &[("Old Mail", "Archive")]));
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("Archive", "Archive"),
            ("Old Mail", "Archive")
        ]
    );
    assert_eq!(m.create, ["Archive"]);
    assert_eq!(
        m.notes,
        [
            "`Old Mail` goes to `Archive`",
            "`Archive` and `Old Mail` go to `Archive`: merged into one folder",
        ]
    );
}

#[test]
fn create_lists_missing_parents_first_and_reuses_listed_names() {
    // `a/b` is not listed on the source (an implied parent); `A` is listed on the destination
    // in a non-canonical encoding, which must be reused rather than created again.
    let src = names('/', &["INBOX", "z", "a/b/c", "a/b2", "A"]);
    let dst = names('/', &["INBOX", "a", "&AEE-"]);
    let m = run(&src, &dst, &FolderRules::default());
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("A", "&AEE-"),
            ("a/b/c", "a/b/c"),
            ("a/b2", "a/b2"),
            ("z", "z"),
        ]
    );
    assert_eq!(m.create, ["a/b", "a/b/c", "a/b2", "z"]);
}

#[test]
fn map_keys_may_name_parents_and_courier_prefixes() {
    let src = names('.', &["INBOX", "INBOX.Archive", "INBOX.Projects.2020"]);
    let m = run(
        &src,
        &[],
        &rules(
            &[],
            &[],
            &[("Projects", "Old/Projects"), ("INBOX/Archive", "Kept")],
        ),
    );
    assert_eq!(
        copies(&m),
        [
            ("INBOX", "INBOX"),
            ("INBOX.Archive", "Kept"),
            ("INBOX.Projects.2020", "Old/Projects/2020"),
        ]
    );

    let m = run(&src, &[], &rules(&[], &[], &[("inbox", "Old Inbox")]));
    assert_eq!(copies(&m)[0], ("INBOX", "Old Inbox"));
}

#[test]
fn map_errors_name_the_folder_and_the_fix() {
    let src = names('/', &["INBOX", "Sent Items", "Archive/2020"]);
    let err = map_folders(&src, &[], &rules(&[], &[], &[("Sent Itms", "Sent")])).unwrap_err();
    assert_eq!(
        err,
        FolderError::UnknownMapSource {
            source: "Sent Itms".into(),
            suggestion: Some("Sent Items".into())
        }
    );
    assert_eq!(
        err.to_string(),
        "`folders.map` names source folder `Sent Itms`, which the source server does not list: did you mean `Sent Items`?"
    );

    let err = map_folders(&src, &[], &rules(&[], &[], &[("Projects", "X")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`folders.map` names source folder `Projects`, which the source server does not list: write its name with `/` between levels (whatever the server uses), or remove the entry"
    );

    let err = map_folders(&src, &[], &rules(&[], &[], &[("Sent Items", " / ")])).unwrap_err();
    assert_eq!(
        err,
        FolderError::EmptyMapTarget {
            source: "Sent Items".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "`folders.map` sends source folder `Sent Items` to an empty name: write the destination folder (e.g. `Archive/Sent Items`), or remove the entry to keep its name"
    );
}

#[test]
fn special_use_detection() {
    let table: &[(&str, &[&str], Option<SpecialUse>)] = &[
        ("INBOX", &[], Some(SpecialUse::Inbox)),
        ("Foo", &["\\sent"], Some(SpecialUse::Sent)),
        (
            "Deep/Down/Box",
            &["\\HasNoChildren", "\\TRASH"],
            Some(SpecialUse::Trash),
        ),
        ("Trash", &["\\Junk"], Some(SpecialUse::Junk)),
        ("SENT ITEMS", &[], Some(SpecialUse::Sent)),
        ("INBOX/Papierkorb", &[], Some(SpecialUse::Trash)),
        ("ÉLÉMENTS SUPPRIMÉS", &[], Some(SpecialUse::Trash)),
        ("Courrier indésirable", &[], Some(SpecialUse::Junk)),
        ("[Gmail]/Sent Mail", &[], Some(SpecialUse::Sent)),
        ("[Gmail]/Starred", &[], Some(SpecialUse::Flagged)),
        ("Archives", &[], Some(SpecialUse::Archive)),
        // Deeper folders with a special-looking name are the user's own.
        ("Projects/Sent", &[], None),
        ("Clients/Acme/Archive", &[], None),
        ("Work", &["\\HasNoChildren"], None),
    ];
    for (path, attrs, want) in table {
        let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(detect_special_use(path, &attrs), *want, "{path} {attrs:?}");
    }
    // Every name in the table is recognised as its own use (no name shadowed by another).
    for (u, names) in COMMON_NAMES {
        assert_eq!(u.common_names(), *names);
        for n in *names {
            assert_eq!(detect_special_use(n, &[]), Some(*u), "{n}");
            if !n.contains('/') {
                let under_inbox = format!("INBOX/{n}");
                assert_eq!(
                    detect_special_use(&under_inbox, &[]),
                    Some(*u),
                    "{under_inbox}"
                );
            }
        }
    }
}

#[test]
fn glob_matching() {
    let table = [
        ("*", "", true),
        ("*", "a/b", true),
        ("", "", true),
        ("", "a", false),
        ("INBOX", "INBOX", true),
        ("INBOX", "INBOX/x", false),
        ("Work/*", "Work/a/b", true),
        ("Work/*", "Work", false),
        ("?", "é", true),
        ("a?c", "a/c", true),
        ("a?c", "ac", false),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXbY", false),
        ("*Old*", "Work/Old/X", true),
        ("**", "x", true),
        ("*a", "banana", true),
        ("*an", "banana", false),
        ("[Gmail]/*", "[Gmail]/Spam", true),
        ("work", "Work", false),
    ];
    for (pattern, text, want) in table {
        assert_eq!(glob_match(pattern, text), want, "{pattern:?} ~ {text:?}");
    }
}

#[test]
fn glob_matching_has_no_exponential_blowup() {
    let pattern = "*a".repeat(30) + "*b";
    let text = "a".repeat(20_000);
    let start = Instant::now();
    assert!(!glob_match(&pattern, &text));
    assert!(glob_match(&pattern, &(text.clone() + "b")));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_lists(
        src in proptest::collection::vec(("[A-Za-z&./ é\u{2215}-]{0,8}", proptest::option::of("[./_]"), proptest::bool::ANY), 0..8),
        dst in proptest::collection::vec(("[A-Za-z&./ é-]{0,8}", proptest::option::of("[./_]"), proptest::bool::ANY), 0..6),
        glob in "[a-z*?/]{0,5}",
    ) {
        let to_folders = |v: &[(String, Option<String>, bool)]| -> Vec<RemoteFolder> {
            v.iter()
                .map(|(n, d, noselect)| RemoteFolder {
                    name: n.clone(),
                    delimiter: d.as_ref().and_then(|d| d.chars().next()),
                    attributes: if *noselect { vec!["\\Noselect".into()] } else { vec![] },
                })
                .collect()
        };
        let (src, dst) = (to_folders(&src), to_folders(&dst));
        let m = map_folders(&src, &dst, &rules(&[], &[&glob], &[])).expect("no map, no error");
        // Every planned destination is either listed already or created.
        for p in &m.copy {
            proptest::prop_assert!(
                p.dest == "INBOX" || m.create.contains(&p.dest) || dst.iter().any(|f| f.name == p.dest),
                "{p:?} {m:?}"
            );
        }
    }
}

#[test]
fn hostile_names_keep_every_byte_between_separators() {
    let long = format!("Long \"q\\ {}", "x".repeat(190));
    let src = names(
        '/',
        &[
            "INBOX",
            "Quote \"this\"",
            "Back\\slash",
            "100% *done*",
            " lead and trail ",
            "&AMk-l&AOk-ments",
            "&AMk-l&AOk-ments/A&APE-o",
            "v1.2 &- co",
            &long,
        ],
    );
    let m = run(&src, &names('.', &["INBOX"]), &rules(&[], &[], &[]));
    let got: Vec<(&str, &str, &str)> = m
        .copy
        .iter()
        .map(|p| (p.path.as_str(), p.source.as_str(), p.dest.as_str()))
        .collect();
    let mut want = vec![
        ("INBOX", "INBOX", "INBOX"),
        (" lead and trail ", " lead and trail ", " lead and trail "),
        ("100% *done*", "100% *done*", "100% *done*"),
        ("Back\\slash", "Back\\slash", "Back\\slash"),
        ("Quote \"this\"", "Quote \"this\"", "Quote \"this\""),
        ("v1.2 & co", "v1.2 &- co", "v1_2 &- co"),
        ("Éléments", "&AMk-l&AOk-ments", "&AMk-l&AOk-ments"),
        (
            "Éléments/Año",
            "&AMk-l&AOk-ments/A&APE-o",
            "&AMk-l&AOk-ments.A&APE-o",
        ),
        (&long, &long, &long),
    ];
    want.sort_by(|a, b| (a.0 != "INBOX", a.0).cmp(&(b.0 != "INBOX", b.0)));
    assert_eq!(got, want);
    // The one change, said: `.` is the destination's separator.
    assert!(
        m.notes.iter().any(|n| n.contains("v1.2 & co")),
        "{:?}",
        m.notes
    );
}

#[test]
fn a_folder_listed_with_an_empty_name_is_skipped_with_a_note() {
    let src = vec![
        RemoteFolder {
            name: "INBOX".into(),
            delimiter: Some('/'),
            attributes: vec![],
        },
        RemoteFolder {
            name: String::new(),
            delimiter: Some('/'),
            attributes: vec![],
        },
    ];
    let m = map_folders(&src, &[], &FolderRules::default()).unwrap();
    assert_eq!(
        m.copy.iter().map(|f| f.source.as_str()).collect::<Vec<_>>(),
        ["INBOX"]
    );
    assert!(
        m.notes.iter().any(|n| n.contains("empty name")),
        "{:?}",
        m.notes
    );
}

/// Gmail's folders, as imap.gmail.com lists them (Google's IMAP extensions page).
fn gmail_list() -> Vec<RemoteFolder> {
    list(
        '/',
        &[
            ("INBOX", &["\\HasNoChildren"]),
            ("Work", &["\\HasNoChildren"]),
            ("[Gmail]", &["\\Noselect", "\\HasChildren"]),
            ("[Gmail]/All Mail", &["\\HasNoChildren", "\\All"]),
            ("[Gmail]/Drafts", &["\\HasNoChildren", "\\Drafts"]),
            ("[Gmail]/Important", &["\\HasNoChildren", "\\Important"]),
            ("[Gmail]/Sent Mail", &["\\HasNoChildren", "\\Sent"]),
            ("[Gmail]/Spam", &["\\HasNoChildren", "\\Junk"]),
            ("[Gmail]/Starred", &["\\HasNoChildren", "\\Flagged"]),
            ("[Gmail]/Trash", &["\\HasNoChildren", "\\Trash"]),
        ],
    )
}

fn gmail_rules(source: bool, dest: bool, archive: Option<&str>) -> FolderRules {
    FolderRules {
        gmail: Gmail {
            source,
            dest,
            archive_folder: archive.map(str::to_string),
        },
        ..FolderRules::default()
    }
}

#[test]
fn from_gmail_labels_are_copied_and_all_mail_only_for_archived_mail() {
    let dst = names('/', &["INBOX", "Sent", "Trash"]);
    let m = run(&gmail_list(), &dst, &gmail_rules(true, false, None));
    assert_eq!(
        copies(&m),
        vec![
            ("INBOX", "INBOX"),
            ("Work", "Work"),
            ("[Gmail]/Drafts", "Drafts"),
            ("[Gmail]/Sent Mail", "Sent"),
            ("[Gmail]/Spam", "Junk"),
            ("[Gmail]/Trash", "Trash"),
            ("[Gmail]/All Mail", "Archive"),
        ]
    );
    let skipped: Vec<&str> = skipped(&m).iter().map(|(p, _)| *p).collect();
    assert_eq!(
        skipped,
        vec!["[Gmail]", "[Gmail]/Important", "[Gmail]/Starred"]
    );
    let archive = m.copy.last().unwrap().archive.clone().expect("a filter");
    assert!(
        m.copy[..m.copy.len() - 1]
            .iter()
            .all(|p| p.archive.is_none())
    );
    // Labels that are folders keep a message out of the archive; Important and Starred do not.
    assert!(!archive.keeps(&["\\Inbox".into()]));
    assert!(!archive.keeps(&["Work".into(), "\\Important".into()]));
    assert!(!archive.keeps(&["\\Sent".into()]));
    assert!(archive.keeps(&["\\Important".into(), "\\Starred".into()]));
    assert!(archive.keeps(&[]));
    // A label hidden from IMAP (no folder) is no folder: the message is archived.
    assert!(archive.keeps(&["Hidden".into()]));
    assert!(
        !m.notes.iter().any(|n| n.contains("copied twice")),
        "{:?}",
        m.notes
    );
}

#[test]
fn from_gmail_the_archive_folder_is_the_plans_or_the_destinations() {
    let named = run(
        &gmail_list(),
        &names('/', &["INBOX"]),
        &gmail_rules(true, false, Some("Old/Gmail archive")),
    );
    assert_eq!(named.copy.last().unwrap().dest_path, "Old/Gmail archive");
    let dst = list('/', &[("INBOX", &[]), ("Archives", &["\\Archive"])]);
    let found = run(&gmail_list(), &dst, &gmail_rules(true, false, None));
    assert_eq!(found.copy.last().unwrap().dest_path, "Archives");
    // Excluding All Mail leaves archived mail where it is.
    let rules = FolderRules {
        exclude: vec!["[Gmail]/All Mail".into()],
        ..gmail_rules(true, false, None)
    };
    let none = run(&gmail_list(), &names('/', &["INBOX"]), &rules);
    assert!(none.copy.iter().all(|p| p.archive.is_none()));
}

#[test]
fn to_gmail_the_archive_goes_to_all_mail() {
    let src = list(
        '/',
        &[("INBOX", &[]), ("Archive", &["\\Archive"]), ("Sent", &[])],
    );
    let m = run(&src, &gmail_list(), &gmail_rules(false, true, None));
    assert_eq!(
        copies(&m),
        vec![
            ("INBOX", "INBOX"),
            ("Archive", "[Gmail]/All Mail"),
            ("Sent", "[Gmail]/Sent Mail"),
        ]
    );
    // Without Gmail on that side, All Mail is no archive.
    let plain = run(&src, &gmail_list(), &FolderRules::default());
    assert_eq!(plain.copy[1].dest, "Archive");
}
