//! Both imports end to end: real-world files, every refusal with its place and fix, platform
//! and variable naming, the rendered YAML (snapshot) and TOML, and never panicking.

use super::*;
use crate::plan::model::{OAuth2Flow, PlatformKind, Security};
use crate::plan::secret::SecretRef;

const HEADER: &str = "\"Source Type(IMAP/Exchange/POP)\";Source Server url;Source Login/Mail;\
    Source Password;Destination Type;\"Destination Url(can be leaved empty if hosted by OVH)\";\
    Destination Mail;Destination Password;Source admin mail (delegation);\
    Destination Admin Mail (delegation)";

fn omm(input: &str) -> Result<Imported, String> {
    omm_csv(input.as_bytes(), "in.csv", &OmmOptions::default()).map_err(|e| e.to_string())
}

fn exo_opts() -> ExoOptions {
    ExoOptions {
        source: endpoint("imap.old.example", None, None).unwrap(),
        destination: endpoint("ex3.mail.ovh.net", None, None).unwrap(),
    }
}

fn exo(input: &str) -> Result<Imported, String> {
    exo_csv(input.as_bytes(), "in.csv", &exo_opts()).map_err(|e| e.to_string())
}

/// (address, source login, source secret, destination secret) per account.
fn summary(imported: &Imported) -> Vec<(String, String, String, String)> {
    let secret = |name: &Option<SecretRef>| match name {
        Some(SecretRef::Env(e)) => imported
            .secrets
            .iter()
            .find(|(n, _)| *n == e.env)
            .map_or(String::new(), |(_, s)| s.expose().to_string()),
        other => panic!("not an env reference: {other:?}"),
    };
    imported
        .plan
        .accounts
        .iter()
        .map(|a| {
            (
                a.address.clone(),
                a.source.login.clone().unwrap_or_default(),
                secret(&a.source.password),
                secret(&a.destination.password),
            )
        })
        .collect()
}

fn row(address: &str, source_password: &str) -> String {
    format!("IMAP;imap.old.example;{address};{source_password};IMAP;imap.new.example;{address};d;;")
}

/// Address, source login, source password, destination password.
type Expected = (&'static str, &'static str, &'static str, &'static str);

#[test]
fn omm_accepts_real_world_files() {
    let alice = row("alice@example.com", "pw");
    let cases: Vec<(&str, String, Vec<Expected>)> = vec![
        (
            "header, LF",
            format!("{HEADER}\n{alice}\n"),
            vec![("alice@example.com", "alice@example.com", "pw", "d")],
        ),
        (
            "no header, no final newline",
            alice.clone(),
            vec![("alice@example.com", "alice@example.com", "pw", "d")],
        ),
        (
            "BOM, CRLF, blank and separator-only trailing rows",
            format!("\u{feff}{HEADER}\r\n{alice}\r\n\r\n;;;;;;;;;\r\n  \r\n"),
            vec![("alice@example.com", "alice@example.com", "pw", "d")],
        ),
        (
            "quoted fields with ; and doubled quotes; passwords keep their spaces",
            "IMAP;imap.old.example;\"a@x.org\";\"p;w\"\"d \";IMAP;imap.new.example;a@x.org;\" sp \";\"\";\"\"\n".into(),
            vec![("a@x.org", "a@x.org", "p;w\"d ", " sp ")],
        ),
        (
            "stray spaces around values, lower-case types, trailing empty columns",
            " imap ; imap.old.example ; bob ;pw; exchange ; https://ex3.mail.ovh.net/ews/exchange.asmx ; bob@example.com ;d; ; ;;\n".into(),
            vec![("bob@example.com", "bob", "pw", "d")],
        ),
        (
            "empty passwords are left for the user to set",
            "IMAP;imap.old.example;c@x.org;;IMAP;imap.new.example;c@x.org;;;\n".into(),
            vec![("c@x.org", "c@x.org", "", "")],
        ),
        (
            "lone CR line ends",
            format!("{HEADER}\r{alice}\r{}\r", row("b@x.org", "2")),
            vec![
                ("alice@example.com", "alice@example.com", "pw", "d"),
                ("b@x.org", "b@x.org", "2", "d"),
            ],
        ),
    ];
    for (name, input, expected) in cases {
        let imported = omm(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
            .collect();
        assert_eq!(summary(&imported), expected, "{name}");
        assert_eq!(imported.rows, imported.plan.accounts.len(), "{name}");
    }
}

#[test]
fn omm_reports_bad_rows_with_file_row_column_and_fix() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "too few columns",
            format!("{HEADER}\n{}\nIMAP;a;b;c\n", row("a@x.org", "p")),
            "in.csv, row 3: found 4 columns, expected 10 (Source Type; Source Server; \
             Source Login; Source Password; Destination Type; Destination URL; \
             Destination Mail; Destination Password; Source Admin; Destination Admin); \
             separate columns with `;` and quote a value that contains `;` (\"like;this\")",
        ),
        (
            "too many columns",
            format!("{};x\n", row("a@x.org", "p")),
            "in.csv, row 1: found 11 columns, expected 10",
        ),
        (
            "unknown source type",
            "SMTP;a;b;c;IMAP;e;f@x.org;g;;\n".into(),
            "in.csv, row 1, column A (Source Type): unknown source type \"SMTP\"; write \
             IMAP, Exchange or POP",
        ),
        (
            "POP source given as an IMAP URL",
            "POP;imaps://pop.x.org;b;c;IMAP;e;f@x.org;g;;\n".into(),
            "in.csv, row 1, column B (Source Server): \"imaps://pop.x.org\" has the scheme \
             \"imaps\" for a POP source; write a host name, or a pop3s:// or pop3:// URL",
        ),
        (
            "unknown destination type",
            "IMAP;a;b;c;Gmail;e;f@x.org;g;;\n".into(),
            "in.csv, row 1, column E (Destination Type): unknown destination type \"Gmail\"",
        ),
        (
            "empty address",
            format!("{HEADER}\r\nIMAP;a;b;c;IMAP;e; ;g;;\r\n"),
            "in.csv, row 2, column G (Destination Mail): the address is empty; write the \
             full destination address, e.g. alice@example.com",
        ),
        (
            "address without @",
            "IMAP;a;b;c;IMAP;e;alice;g;;\n".into(),
            "in.csv, row 1, column G (Destination Mail): \"alice\" has no `@`; write the \
             full destination address, e.g. alice@example.com",
        ),
        (
            "unterminated quote at the end",
            format!("{}\nIMAP;a;\"b;c;IMAP;e;f@x.org;g;;", row("a@x.org", "p")),
            "in.csv, row 2, column C: this quoted value has no closing quote `\"` on its \
             line; close it, and write a quote inside a quoted value as two quotes (\"\")",
        ),
        (
            "unterminated quote swallowing the next rows",
            format!(
                "{HEADER}\n{}\nIMAP;a;b;\"c;IMAP;e;f@x.org;g;;\n{}\n",
                row("a@x.org", "p"),
                row("z@x.org", "\"q\"")
            ),
            "in.csv, row 3, column D: this quoted value has no closing quote",
        ),
        (
            "duplicate destination address, in another case",
            format!(
                "{HEADER}\n{}\n{}\n{}\n",
                row("a@x.org", "p"),
                row("b@x.org", "p"),
                row("A@X.org", "p")
            ),
            "in.csv, row 4, column G (Destination Mail): \"A@X.org\" is already the \
             destination address on row 2; each address may appear once: remove or merge \
             one of the rows",
        ),
        (
            "empty destination URL",
            "IMAP;a;b;c;Exchange;;f@x.org;g;;\n".into(),
            "in.csv, row 1, column F (Destination URL): the destination URL is empty",
        ),
        (
            "address in the server column",
            "IMAP;bob@x.org;b;c;IMAP;e;f@x.org;g;;\n".into(),
            "in.csv, row 1, column B (Source Server): \"bob@x.org\" looks like an address",
        ),
        (
            "bad port",
            "IMAP;imap.x.org:99999;b;c;IMAP;e;f@x.org;g;;\n".into(),
            "in.csv, row 1, column B (Source Server): \"imap.x.org:99999\" has a bad port",
        ),
        (
            "admin delegation",
            "IMAP;a;b;c;IMAP;e;f@x.org;g;admin@x.org;\n".into(),
            "in.csv, row 1, column I (Source Admin): admin (delegation) logins are not \
             supported",
        ),
    ];
    for (name, input, expected) in cases {
        let err = omm(&input)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(
            err.starts_with(expected),
            "{name}:\n  got  {err}\n  want {expected}"
        );
    }
    let latin1 = b"IMAP;a;b;\xe9t\xe9;IMAP;e;f@x.org;g;;\n";
    let err = omm_csv(latin1, "in.csv", &OmmOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "in.csv, row 1, column D: this value is not UTF-8 text; save the file as \"CSV UTF-8\""
    );
}

#[test]
fn omm_pop_rows_become_pop3_sources() {
    let input = format!(
        "{HEADER}\nPOP;pop.old.example;u1;p1;IMAP;imap.new.example;a@y.org;d;;\n\
         POP;pop.old.example:110;u2;p2;IMAP;imap.new.example;b@y.org;d;;\n\
         IMAP;pop.old.example;u3;p3;IMAP;imap.new.example;c@y.org;d;;\n"
    );
    let imported = omm(&input).unwrap();
    let names: Vec<_> = imported.plan.platforms.keys().cloned().collect();
    assert_eq!(
        names,
        [
            "destination-imap-new-example",
            "source-pop-old-example",
            "source-pop-old-example-pop3",
            "source-pop-old-example-pop3-110",
        ]
    );
    let tls = &imported.plan.platforms["source-pop-old-example-pop3"];
    assert_eq!(tls.kind, PlatformKind::Imap);
    assert!(tls.imap.is_none());
    let ep = tls.pop3.as_ref().unwrap();
    assert_eq!(
        (
            ep.host.as_str(),
            ep.port,
            ep.security,
            ep.effective_pop3_port()
        ),
        ("pop.old.example", None, Security::Tls, 995)
    );
    let stls = imported.plan.platforms["source-pop-old-example-pop3-110"]
        .pop3
        .as_ref()
        .unwrap();
    assert_eq!((stls.port, stls.security), (None, Security::Starttls));
    // The IMAP row of the same host is a platform of its own.
    assert!(
        imported.plan.platforms["source-pop-old-example"]
            .pop3
            .is_none()
    );
    assert_eq!(
        summary(&imported)[0],
        ("a@y.org".into(), "u1".into(), "p1".into(), "d".into())
    );
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("is read over POP3")),
        "{:?}",
        imported.notes
    );
}

#[test]
fn omm_platforms_are_named_by_side_and_host_and_shared() {
    let input = format!(
        "{}\nIMAP;imap.old.example:143;u;p;Exchange;https://ex3.mail.ovh.net:443/ews/exchange.asmx;x@y.org;d;;\n\
         IMAP;imap.old.example;u2;p;IMAP;imap.new.example;z@y.org;d;;\n",
        row("w@y.org", "p")
    );
    let imported = omm(&input).unwrap();
    let names: Vec<_> = imported.plan.platforms.keys().cloned().collect();
    assert_eq!(
        names,
        [
            "destination-ex3-mail-ovh-net",
            "destination-imap-new-example",
            "source-imap-old-example",
            "source-imap-old-example-143",
        ]
    );
    let old143 = &imported.plan.platforms["source-imap-old-example-143"];
    let imap = old143.imap.as_ref().unwrap();
    assert_eq!((imap.port, imap.security), (None, Security::Starttls));
    let accounts: Vec<_> = imported
        .plan
        .accounts
        .iter()
        .map(|a| (a.from.as_str(), a.to.as_str()))
        .collect();
    assert_eq!(
        accounts,
        [
            ("source-imap-old-example", "destination-imap-new-example"),
            (
                "source-imap-old-example-143",
                "destination-ex3-mail-ovh-net"
            ),
            ("source-imap-old-example", "destination-imap-new-example"),
        ]
    );
    assert!(
        imported.notes[0].starts_with(
            "platform destination-ex3-mail-ovh-net: ex3.mail.ovh.net is OVHcloud Exchange"
        ),
        "{:?}",
        imported.notes
    );
}

#[test]
fn omm_dest_fallback_fills_empty_urls_only() {
    let opts = OmmOptions {
        dest_fallback: Some(endpoint("pro1.mail.ovh.net", None, None).unwrap()),
        dest_ovh: None,
    };
    let input =
        "IMAP;a.example;b;c;Exchange;;f@x.org;g;;\nIMAP;a.example;b;c;IMAP;e.example;h@x.org;g;;\n";
    let imported = omm_csv(input.as_bytes(), "in.csv", &opts).unwrap();
    let to: Vec<_> = imported
        .plan
        .accounts
        .iter()
        .map(|a| a.to.as_str())
        .collect();
    assert_eq!(
        to,
        ["destination-pro1-mail-ovh-net", "destination-e-example"]
    );
}

/// OMM's "Hosted by OVHcloud (Autodetect)": rows with no destination URL go to the service
/// named by `--dest-ovh`, a platform without `imap:` (read from the API) and a provider whose
/// credentials are environment variables; the plan validates as it is.
#[test]
fn omm_dest_ovh_makes_an_autodetected_ovhcloud_destination() {
    let opts = OmmOptions {
        dest_fallback: None,
        dest_ovh: Some(
            crate::import::OvhDest::parse("exchange:hosted-ab1/hosted-ab1", "ovh-eu").unwrap(),
        ),
    };
    let input = format!(
        "{HEADER}\nPOP;pop.old.example;u1;p1;Exchange;;a@y.org;d;;\n\
         IMAP;imap.old.example;u2;p2;Exchange;;b@y.org;d;;\n\
         IMAP;imap.old.example;u3;p3;IMAP;imap.other.example;c@y.org;d;;\n"
    );
    let imported = omm_csv(input.as_bytes(), "in.csv", &opts).unwrap();
    let ovh = &imported.plan.platforms["destination-hosted-ab1"];
    assert_eq!(
        (
            ovh.kind,
            ovh.provider.as_deref(),
            ovh.organization.as_deref(),
            ovh.service.as_deref()
        ),
        (
            PlatformKind::OvhExchange,
            Some("ovh"),
            Some("hosted-ab1"),
            Some("hosted-ab1")
        )
    );
    assert!(ovh.imap.is_none() && ovh.detects_imap_host());
    let to: Vec<_> = imported
        .plan
        .accounts
        .iter()
        .map(|a| a.to.as_str())
        .collect();
    assert_eq!(
        to,
        [
            "destination-hosted-ab1",
            "destination-hosted-ab1",
            "destination-imap-other-example"
        ]
    );
    assert_eq!(imported.plan.providers["ovh"].endpoint, "ovh-eu");
    let vars: Vec<_> = imported.env_vars.iter().map(|v| v.name.as_str()).collect();
    assert!(vars.contains(&"OVH_CONSUMER_KEY"), "{vars:?}");
    let yaml = to_yaml(&imported).unwrap();
    let loaded = crate::plan::load::load_str(
        &yaml,
        crate::plan::load::Format::Yaml,
        std::path::Path::new("plan.yaml"),
        std::path::Path::new("."),
    );
    assert!(
        loaded.is_ok(),
        "{yaml}\n{:?}",
        loaded.err().map(|e| format!("{:?}", e.diagnostics()))
    );

    for bad in [
        "exchange:only-service",
        "pro:x",
        "email-pro:a/b",
        "mx-plan:",
        "x",
    ] {
        assert!(
            crate::import::OvhDest::parse(bad, "ovh-eu").is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        crate::import::OvhDest::parse("ovh-email-pro:emailpro-1", "ovh-ca")
            .unwrap()
            .kind,
        PlatformKind::OvhEmailPro
    );
}

#[test]
fn env_names_are_readable_and_unique() {
    let input = format!("{}\n{}\n", row("a.b@x.org", "1"), row("a_b@x.org", "2"));
    let names: Vec<_> = omm(&input)
        .unwrap()
        .env_vars
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(
        names,
        [
            "MAILSHIFT_A_B_X_ORG_SOURCE",
            "MAILSHIFT_A_B_X_ORG_DESTINATION",
            "MAILSHIFT_A_B_X_ORG_SOURCE_2",
            "MAILSHIFT_A_B_X_ORG_DESTINATION_2",
        ]
    );
}

#[test]
fn exo_reads_the_documented_columns() {
    let input = "\u{feff}emailaddress, UserName ,PASSWORD,UserRoot\r\n\
                 terrya@contoso.edu,terry.adams,\"1091,Dart\"\"\",\r\n\
                 annb@contoso.edu,ann.beebe,,\r\n\r\n";
    let imported = exo(input).unwrap();
    assert_eq!(
        summary(&imported),
        [
            (
                "terrya@contoso.edu".into(),
                "terry.adams".into(),
                "1091,Dart\"".into(),
                String::new()
            ),
            (
                "annb@contoso.edu".into(),
                "ann.beebe".into(),
                String::new(),
                String::new()
            ),
        ]
    );
    let dest_vars: Vec<_> = imported
        .env_vars
        .iter()
        .filter(|v| !v.in_file)
        .map(|v| v.description.as_str())
        .collect();
    assert_eq!(
        dest_vars,
        [
            "destination password of terrya@contoso.edu (row 2); not in the file: set it yourself",
            "source password of annb@contoso.edu (row 3); not in the file: set it yourself",
            "destination password of annb@contoso.edu (row 3); not in the file: set it yourself",
        ]
    );
}

#[test]
fn exo_reports_bad_input() {
    let cases = [
        ("", "in.csv: the file is empty"),
        (
            "EmailAddress,UserName,Password,Department\n",
            "in.csv, row 1, column D (Department): unknown column \"Department\"; the header \
             may name only EmailAddress, UserName, Password, UserRoot (the first three are \
             required)",
        ),
        (
            "EmailAddress,Password\na@x.org,p\n",
            "in.csv, row 1: the header has no UserName column; the first row must be the \
             header EmailAddress,UserName,Password",
        ),
        (
            "alice@x.org,alice,pw\n",
            "in.csv, row 1, column A (alice@x.org): unknown column \"alice@x.org\"",
        ),
        (
            "EmailAddress,UserName,Password,emailaddress\n",
            "in.csv, row 1, column D (emailaddress): EmailAddress is already column A",
        ),
        (
            "EmailAddress,UserName,Password\na@x.org,a\n",
            "in.csv, row 2: found 2 columns, expected 3 as in the header",
        ),
        (
            "EmailAddress,UserName,Password\nalice,a,p\n",
            "in.csv, row 2, column A (EmailAddress): \"alice\" has no `@`",
        ),
        (
            "EmailAddress,UserName,Password,UserRoot\na@x.org,admin,p,/users/a\n",
            "in.csv, row 2, column D (UserRoot): UserRoot (an admin login reaching every \
             mailbox under a root folder) is not supported",
        ),
        (
            "Password,UserName,EmailAddress\np,a,a@x.org\nq,b,b@x.org\np,c,a@x.org\n",
            "in.csv, row 4, column C (EmailAddress): \"a@x.org\" is already the destination \
             address on row 2",
        ),
        (
            "EmailAddress,UserName,Password\na@x.org,,p\n",
            "in.csv, row 2, column B (UserName): the user name is empty",
        ),
    ];
    for (input, expected) in cases {
        let err = exo(input)
            .err()
            .unwrap_or_else(|| panic!("accepted: {input:?}"));
        assert!(
            err.starts_with(expected),
            "\n  got  {err}\n  want {expected}"
        );
    }
}

#[test]
fn endpoint_options() {
    let ep = endpoint("imap.x.org:143", None, None).unwrap();
    assert_eq!((ep.port, ep.security), (None, Security::Starttls));
    let ep = endpoint("imap.x.org", Some(1993), Some(Security::Tls)).unwrap();
    assert_eq!((ep.port, ep.security), (Some(1993), Security::Tls));
    let ep = endpoint("[::1]:10143", None, Some(Security::None)).unwrap();
    assert_eq!((ep.host.as_str(), ep.port), ("::1", Some(10143)));
    assert!(endpoint("imap x.org", None, None).is_err());
    assert!(endpoint("pop3://x.org", None, None).is_err());
}

#[test]
fn plaintext_to_a_remote_host_is_allowed_and_noted() {
    let opts = ExoOptions {
        source: endpoint("imap.x.org", None, Some(Security::None)).unwrap(),
        destination: endpoint("localhost", None, Some(Security::None)).unwrap(),
    };
    let imported = exo_csv(b"EmailAddress,UserName,Password\na@x.org,a,p\n", "f", &opts).unwrap();
    let p = &imported.plan.platforms;
    assert!(
        p["source-imap-x-org"]
            .imap
            .as_ref()
            .unwrap()
            .allow_plaintext
    );
    assert!(
        !p["destination-localhost"]
            .imap
            .as_ref()
            .unwrap()
            .allow_plaintext
    );
    assert_eq!(
        imported.notes,
        [
            "platform source-imap-x-org: security is none: passwords cross the network in clear to imap.x.org."
        ]
    );
}

fn sample() -> Imported {
    let input = format!(
        "\u{feff}{HEADER}\r\n\
         IMAP;imap.old.example;alice@old.example;s3cret;Exchange;https://ex3.mail.ovh.net/ews/exchange.asmx;alice@example.com;n3w;\"\";\"\"\r\n\
         Exchange;https://mail.old.example/EWS/Exchange.asmx;DOMAIN\\bob;\"b;\"\"b\";IMAP;imaps://pro1.mail.ovh.net:993;bob@example.com;;;\r\n\
         IMAP;imap.old.example:143;yes;Pw-carol-1;IMAP;ssl0.ovh.net;\"carol+tag@example.com\";Pw-carol-2;;\r\n\r\n"
    );
    omm_csv(input.as_bytes(), "users.csv", &OmmOptions::default()).unwrap()
}

#[test]
fn yaml_snapshot() {
    let imported = sample();
    let yaml = to_yaml(&imported).unwrap();
    for (_, secret) in &imported.secrets {
        assert!(!yaml.contains(secret.expose()), "a password leaked");
    }
    insta::assert_snapshot!(yaml);
}

#[test]
fn yaml_and_toml_give_the_same_plan() {
    let imported = sample();
    let from_yaml: Plan = serde_saphyr::from_str(&to_yaml(&imported).unwrap()).unwrap();
    let from_toml: Plan = toml::from_str(&to_toml(&imported).unwrap()).unwrap();
    assert_eq!(from_yaml, imported.plan);
    assert_eq!(from_toml, imported.plan);
}

#[test]
fn secrets_file_quotes_for_sh() {
    let text = secrets_file_text(&sample());
    assert!(
        text.contains("MAILSHIFT_BOB_EXAMPLE_COM_SOURCE='b;\"b'\n"),
        "{text}"
    );
    let imported = exo("EmailAddress,UserName,Password\na@x.org,a,it's\n").unwrap();
    assert!(secrets_file_text(&imported).ends_with("MAILSHIFT_A_X_ORG_SOURCE='it'\\''s'\n"));
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = omm_csv(&bytes, "f", &OmmOptions::default());
        let _ = exo_csv(&bytes, "f", &exo_opts());
    }

    /// Inputs close to valid ones reach the deep paths; what is accepted must render to
    /// YAML and TOML that read back as the same plan.
    #[test]
    fn near_valid_inputs_never_panic_and_round_trip(
        cells in proptest::collection::vec("[a-c@.;,\" :\r\n\u{e9}#'-]{0,6}|IMAP|Exchange|x@y\\.z|h\\.example", 0..40)
    ) {
        let omm_text = cells.join(";");
        let exo_text = format!("EmailAddress,UserName,Password\n{}", cells.join(","));
        for imported in [
            omm_csv(omm_text.as_bytes(), "f", &OmmOptions::default()),
            exo_csv(exo_text.as_bytes(), "f", &exo_opts()),
        ]
        .into_iter()
        .flatten()
        {
            let yaml: Plan = serde_saphyr::from_str(&to_yaml(&imported).unwrap()).unwrap();
            let toml: Plan = toml::from_str(&to_toml(&imported).unwrap()).unwrap();
            proptest::prop_assert_eq!(&yaml, &imported.plan);
            proptest::prop_assert_eq!(&toml, &imported.plan);
        }
    }

    /// Valid rows with any printable login and password: the plan must read back
    /// unchanged from both formats, and every password must survive quoting intact.
    #[test]
    fn odd_logins_and_passwords_round_trip(
        rows in proptest::collection::vec(("[a-z0-9.+_-]{1,6}", "\\PC{1,12}", "\\PC{1,12}"), 1..5)
    ) {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let mut omm_text = String::new();
        for (i, (local, login, password)) in rows.iter().enumerate() {
            omm_text.push_str(&format!(
                "IMAP;h.example;{};{};IMAP;d.example;{local}{i}@x.example;{};;\r\n",
                quote(login),
                quote(password),
                quote(password),
            ));
        }
        // A login of only spaces is rightly refused; everything else must pass.
        if let Ok(imported) = omm_csv(omm_text.as_bytes(), "f", &OmmOptions::default()) {
            let yaml: Plan = serde_saphyr::from_str(&to_yaml(&imported).unwrap()).unwrap();
            let toml: Plan = toml::from_str(&to_toml(&imported).unwrap()).unwrap();
            proptest::prop_assert_eq!(&yaml, &imported.plan);
            proptest::prop_assert_eq!(&toml, &imported.plan);
            let found: Vec<_> = imported.secrets.iter().map(|(_, s)| s.expose()).collect();
            let given: Vec<_> = rows.iter().flat_map(|r| [r.2.as_str(), r.2.as_str()]).collect();
            proptest::prop_assert_eq!(found, given);
        } else {
            proptest::prop_assert!(rows.iter().any(|r| r.1.trim().is_empty()));
        }
    }
}

#[test]
fn gmail_and_microsoft_365_servers_become_their_platform_types() {
    let opts = ExoOptions {
        source: endpoint("imap.gmail.com", None, None).unwrap(),
        destination: endpoint("outlook.office365.com", None, None).unwrap(),
    };
    let input = "EmailAddress,UserName,Password\n\
                 alice@example.com,alice@example.com,app-pass-1\n\
                 bob@example.com,bob@example.com,app-pass-2\n";
    let imported = exo_csv(input.as_bytes(), "in.csv", &opts).unwrap();
    let plan = &imported.plan;
    let gmail = &plan.platforms["source-imap-gmail-com"];
    let m365 = &plan.platforms["destination-outlook-office365-com"];
    assert_eq!(gmail.kind, PlatformKind::Gmail);
    assert_eq!(m365.kind, PlatformKind::Microsoft365);
    // Their endpoints are their types' defaults: not written.
    assert!(gmail.imap.is_none() && m365.imap.is_none());
    assert!(
        gmail.oauth2.is_none(),
        "Gmail keeps the file's (app) passwords"
    );
    let app = m365
        .oauth2
        .as_ref()
        .expect("Microsoft 365 logs in with an app");
    assert_eq!(app.flow, OAuth2Flow::ClientCredentials);
    for a in &plan.accounts {
        assert!(a.source.password.is_some());
        assert!(a.destination.is_empty(), "{a:?}");
    }
    // One variable for the app's secret, none for destination passwords.
    let names: Vec<&str> = imported.env_vars.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "MAILSHIFT_DESTINATION_OUTLOOK_OFFICE365_COM_CLIENT_SECRET",
            "MAILSHIFT_ALICE_EXAMPLE_COM_SOURCE",
            "MAILSHIFT_BOB_EXAMPLE_COM_SOURCE",
        ]
    );
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("app registration")),
        "{:?}",
        imported.notes
    );
    // The placeholders keep the plan from running until the user fills them in.
    let yaml = to_yaml(&imported).unwrap();
    let diags = crate::plan::load::load_str(
        &yaml,
        crate::plan::load::Format::Yaml,
        std::path::Path::new("plan.yaml"),
        std::path::Path::new("."),
    )
    .err()
    .map(|e| format!("{:?}", e.diagnostics()))
    .unwrap_or_default();
    assert!(diags.contains("placeholder"), "{diags}");
    // A non-default port is kept.
    let opts = ExoOptions {
        source: endpoint("imap.gmail.com:1993", None, None).unwrap(),
        destination: endpoint("ex3.mail.ovh.net", None, None).unwrap(),
    };
    let imported = exo_csv(input.as_bytes(), "in.csv", &opts).unwrap();
    let gmail = imported
        .plan
        .platforms
        .values()
        .find(|p| p.kind == PlatformKind::Gmail);
    assert_eq!(gmail.unwrap().imap.as_ref().unwrap().effective_port(), 1993);
}
