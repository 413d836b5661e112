//! Which source folders to copy, and to which destination folder each one goes.
//!
//! Pure: it takes both sides' LIST answers and the caller's [`FolderRules`], and returns a
//! [`Mapping`] (what to copy, what to skip and why, what to CREATE first, and notes for the
//! user). Everything the user sees or writes (globs, `map`, state keys) uses a *path*: the
//! decoded name with `/` between levels and, on Courier/Cyrus-style servers where every folder
//! lives under `INBOX.`, without that prefix; so the same plan reads the same on any server.
//!
//! Decisions worth knowing:
//! - Special-use names ("Sent Items", "Papierkorb") are only trusted at the top level or
//!   directly under INBOX: a "Clients/Acme/Archive" is a user folder, not the archive.
//!   RFC 6154 attributes are trusted anywhere.
//! - A folder moved by `map` or by its special use takes its subfolders along
//!   ("Deleted Items/Old" → "Trash/Old").
//! - Globs are case-sensitive, as IMAP names are (INBOX aside, which is always `INBOX`).
//! - From Gmail ([`Gmail::source`]) labels are folders and All Mail holds every message: each
//!   label folder is copied, All Mail, Important and Starred are not, and All Mail is read
//!   once more for the label-less (archived) messages only, into the archive folder
//!   ([`FolderPlan::archive`]). To Gmail ([`Gmail::dest`]) the source's archive goes to All
//!   Mail (archived in Gmail's terms: no label).

use std::collections::BTreeMap;
use std::fmt;

use super::mutf7;
use super::session::FolderInfo;

/// A source `/` inside one level of a name, where `/` separates levels in paths.
/// DIVISION SLASH: it reads like the original, and no real folder name is likely to hold it.
const SLASH_STAND_IN: char = '\u{2215}';

/// Which folders to copy, and where: the plan's `folders:` of an account, in the engine's
/// terms. Globs and names are paths (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderRules {
    /// Copy only folders matching one of these globs (empty: all).
    pub include: Vec<String>,
    /// Skip folders matching one of these globs (applied after `include`).
    pub exclude: Vec<String>,
    /// Explicit source folder → destination folder paths, overriding special-use mapping.
    pub map: BTreeMap<String, String>,
    /// Which sides are Gmail (see the module documentation).
    pub gmail: Gmail,
}

/// What the mapping must know of Gmail on either side: the plan's platform type says so,
/// or the server does (X-GM-EXT-1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gmail {
    pub source: bool,
    pub dest: bool,
    /// From Gmail: the destination folder (a path) for label-less mail; `None`: the
    /// destination's `\Archive` folder, else `Archive`.
    pub archive_folder: Option<String>,
}

/// From Gmail: the plan that reads All Mail keeps only the messages none of whose
/// X-GM-LABELS names a folder (those are copied from that folder).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveFilter {
    /// Labels that are folders: `\Inbox`, `\Sent`, `\Draft`, `\Trash`, `\Spam` for the
    /// folders the source lists with those uses, and every other folder by its raw name.
    pub folder_labels: std::collections::BTreeSet<String>,
}

impl ArchiveFilter {
    /// Whether a message with these labels is archived (in no folder that is copied).
    pub fn keeps(&self, labels: &[String]) -> bool {
        !labels.iter().any(|l| {
            self.folder_labels.contains(l)
                || (l.starts_with('\\')
                    && self.folder_labels.iter().any(|f| f.eq_ignore_ascii_case(l)))
        })
    }
}

/// One line of a LIST answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFolder {
    /// Raw on-wire name (modified UTF-7).
    pub name: String,
    /// Hierarchy delimiter; `None` for a flat name (`NIL`).
    pub delimiter: Option<char>,
    /// As the server sent them, e.g. `\Noselect`, `\HasChildren`, `\Sent`.
    pub attributes: Vec<String>,
}

/// What a folder is for (RFC 6154, plus INBOX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecialUse {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
    All,
    Flagged,
}

/// The names a folder of each use goes by when the server does not say (RFC 6154 attributes
/// missing), compared case-insensitively with the whole path, or with the last level of a
/// folder at the top or directly under INBOX. Earlier names win when several folders claim
/// the same use. Extend here.
const COMMON_NAMES: &[(SpecialUse, &[&str])] = &[
    (
        SpecialUse::Sent,
        &[
            "Sent",
            "Sent Items",
            "Sent Messages",
            "Sent Mail",
            "[Gmail]/Sent Mail",
            "[Google Mail]/Sent Mail",
            "Envoyés",
            "Éléments envoyés",
            "Messages envoyés",
            "Gesendet",
            "Gesendete Elemente",
            "Gesendete Objekte",
            "Enviados",
            "Elementos enviados",
            "Inviata",
            "Posta inviata",
            // Outlook / Microsoft 365 in Dutch and Portuguese (Microsoft 365 says no SPECIAL-USE).
            "Verzonden items",
            "Itens Enviados",
            "Itens enviados",
        ],
    ),
    (
        SpecialUse::Drafts,
        &[
            "Drafts",
            "[Gmail]/Drafts",
            "[Google Mail]/Drafts",
            "Brouillons",
            "Entwürfe",
            "Borradores",
            "Bozze",
            "Concepten",
            "Rascunhos",
        ],
    ),
    (
        SpecialUse::Trash,
        &[
            "Trash",
            "Deleted Items",
            "Deleted Messages",
            "[Gmail]/Trash",
            "[Gmail]/Bin",
            "[Google Mail]/Trash",
            "[Google Mail]/Bin",
            "Corbeille",
            "Éléments supprimés",
            "Papierkorb",
            "Gelöschte Elemente",
            "Gelöschte Objekte",
            "Papelera",
            "Elementos eliminados",
            "Cestino",
            "Posta eliminata",
            "Verwijderde items",
            "Itens Excluídos",
            "Itens excluídos",
        ],
    ),
    (
        SpecialUse::Junk,
        &[
            "Junk",
            "Junk E-mail",
            "Junk Email",
            "Spam",
            "[Gmail]/Spam",
            "[Google Mail]/Spam",
            "Courrier indésirable",
            "Courriers indésirables",
            "Junk-E-Mail",
            "Correo no deseado",
            "Posta indesiderata",
            "Ongewenste e-mail",
            "Lixo Eletrônico",
            "Lixo eletrônico",
        ],
    ),
    (
        SpecialUse::Archive,
        &[
            "Archive", "Archives", "Archiv", "Archivio", "Archief", "Arquivo",
        ],
    ),
    (
        SpecialUse::All,
        &["[Gmail]/All Mail", "[Google Mail]/All Mail"],
    ),
    (
        SpecialUse::Flagged,
        &["[Gmail]/Starred", "[Google Mail]/Starred"],
    ),
];

impl SpecialUse {
    /// The RFC 6154 attribute, `None` for INBOX (which is a name, not an attribute).
    pub fn attribute(self) -> Option<&'static str> {
        match self {
            SpecialUse::Inbox => None,
            SpecialUse::Sent => Some("\\Sent"),
            SpecialUse::Drafts => Some("\\Drafts"),
            SpecialUse::Trash => Some("\\Trash"),
            SpecialUse::Junk => Some("\\Junk"),
            SpecialUse::Archive => Some("\\Archive"),
            SpecialUse::All => Some("\\All"),
            SpecialUse::Flagged => Some("\\Flagged"),
        }
    }

    /// The name to create when the destination has no folder for this use. `None` for uses
    /// that only make sense as a server's virtual folder (Gmail's All Mail, Starred): such a
    /// folder keeps its own name instead.
    pub fn canonical_name(self) -> Option<&'static str> {
        match self {
            SpecialUse::Inbox => Some("INBOX"),
            SpecialUse::Sent => Some("Sent"),
            SpecialUse::Drafts => Some("Drafts"),
            SpecialUse::Trash => Some("Trash"),
            SpecialUse::Junk => Some("Junk"),
            SpecialUse::Archive => Some("Archive"),
            SpecialUse::All | SpecialUse::Flagged => None,
        }
    }

    /// The names a folder for this use commonly goes by, most usual first.
    pub fn common_names(self) -> &'static [&'static str] {
        COMMON_NAMES
            .iter()
            .find(|(u, _)| *u == self)
            .map_or(&[], |(_, names)| names)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpecialUse::Inbox => "INBOX",
            SpecialUse::Sent => "Sent",
            SpecialUse::Drafts => "Drafts",
            SpecialUse::Trash => "Trash",
            SpecialUse::Junk => "Junk",
            SpecialUse::Archive => "Archive",
            SpecialUse::All => "All Mail",
            SpecialUse::Flagged => "Flagged",
        }
    }
}

impl fmt::Display for SpecialUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const ATTRIBUTE_ORDER: [SpecialUse; 7] = [
    SpecialUse::Sent,
    SpecialUse::Drafts,
    SpecialUse::Trash,
    SpecialUse::Junk,
    SpecialUse::Archive,
    SpecialUse::All,
    SpecialUse::Flagged,
];

/// How sure a detection is; lower wins when several folders claim one use.
type Rank = (u8, usize);

/// The special use of a folder, from its `/`-separated path and LIST attributes.
pub fn detect_special_use(path: &str, attributes: &[String]) -> Option<SpecialUse> {
    detect(path, attributes).map(|(u, _)| u)
}

fn detect(path: &str, attributes: &[String]) -> Option<(SpecialUse, Rank)> {
    if path == "INBOX" {
        return Some((SpecialUse::Inbox, (0, 0)));
    }
    for u in ATTRIBUTE_ORDER {
        let attr = u.attribute().unwrap_or_default();
        if attributes.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
            return Some((u, (0, 0)));
        }
    }
    let segments: Vec<&str> = path.split('/').collect();
    let last = match segments.as_slice() {
        [one] => Some(*one),
        ["INBOX", child] => Some(*child),
        _ => None,
    };
    let whole = path.to_lowercase();
    let last = last.map(str::to_lowercase);
    for (u, names) in COMMON_NAMES {
        for (i, name) in names.iter().enumerate() {
            let name = name.to_lowercase();
            if whole == name || last.as_deref() == Some(name.as_str()) {
                return Some((*u, (1, i)));
            }
        }
    }
    None
}

/// One source folder to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderPlan {
    /// Raw source name, as listed.
    pub source: String,
    /// Raw destination name (modified UTF-7, the destination's delimiter).
    pub dest: String,
    /// Unicode, `/`-separated source path: for display, globs and state keys.
    pub path: String,
    /// Unicode, `/`-separated destination path.
    pub dest_path: String,
    /// What the source folder is for, whether or not that decided where it goes.
    pub special: Option<SpecialUse>,
    /// The folder's status on each side as read at the start of the run (LIST-STATUS or
    /// pipelined STATUS), so a no-op run costs a few round trips, not two per folder.
    /// `None` where that exchange said nothing: ask again. Not the mapping's business:
    /// [`map_folders`] leaves both empty.
    pub known: Known,
    /// From Gmail, on the plan reading All Mail: copy only the archived messages.
    pub archive: Option<ArchiveFilter>,
}

/// See [`FolderPlan::known`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub source: Option<FolderInfo>,
    pub dest: Option<FolderInfo>,
}

/// The outcome of [`map_folders`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Selectable source folders to copy: INBOX first, then by path.
    pub copy: Vec<FolderPlan>,
    /// Source folders not copied: (path, reason).
    pub skipped: Vec<(String, String)>,
    /// Raw destination names to CREATE, parents before children; none already listed.
    pub create: Vec<String>,
    /// Things the user should know: renamed levels, moved and merged folders.
    pub notes: Vec<String>,
}

/// A `folders` rule that cannot be applied to this mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderError {
    /// A `map` key names no source folder.
    UnknownMapSource {
        source: String,
        suggestion: Option<String>,
    },
    /// A `map` value names no folder.
    EmptyMapTarget { source: String },
}

impl fmt::Display for FolderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FolderError::UnknownMapSource { source, suggestion } => {
                write!(
                    f,
                    "`folders.map` names source folder `{source}`, which the source server does not list"
                )?;
                match suggestion {
                    Some(s) => write!(f, ": did you mean `{s}`?"),
                    None => write!(
                        f,
                        ": write its name with `/` between levels (whatever the server uses), or remove the entry"
                    ),
                }
            }
            FolderError::EmptyMapTarget { source } => write!(
                f,
                "`folders.map` sends source folder `{source}` to an empty name: write the destination folder (e.g. `Archive/{source}`), or remove the entry to keep its name"
            ),
        }
    }
}

impl std::error::Error for FolderError {}

/// A listed folder, read into path form.
struct Listed<'a> {
    raw: &'a str,
    attributes: &'a [String],
    segments: Vec<String>,
    path: String,
    selectable: bool,
    nonexistent: bool,
    special: Option<(SpecialUse, Rank)>,
}

/// One side's LIST, read.
struct Side<'a> {
    folders: Vec<Listed<'a>>,
    delimiter: char,
    /// Courier/Cyrus style: every folder but INBOX is `INBOX<delimiter>...`.
    inbox_prefix: bool,
}

fn has_attr(f: &RemoteFolder, attr: &str) -> bool {
    f.attributes.iter().any(|a| a.eq_ignore_ascii_case(attr))
}

fn is_inbox(s: &str) -> bool {
    s.eq_ignore_ascii_case("INBOX")
}

/// Reads one side. Notes go to `notes` only for the source: the user acts on source names.
fn read_side<'a>(folders: &'a [RemoteFolder], mut notes: Option<&mut Vec<String>>) -> Side<'a> {
    let decoded: Vec<String> = folders
        .iter()
        .map(|f| match mutf7::decode(&f.name) {
            Ok(s) => s,
            Err(e) => {
                if let Some(n) = notes.as_deref_mut() {
                    n.push(format!(
                        "folder name `{}` is not valid modified UTF-7 ({e}): used as it is",
                        f.name
                    ));
                }
                f.name.clone()
            }
        })
        .collect();

    let mut non_inbox = folders
        .iter()
        .zip(&decoded)
        .filter(|(_, d)| !is_inbox(d))
        .peekable();
    let inbox_prefix = non_inbox.peek().is_some()
        && non_inbox.all(|(f, d)| {
            f.delimiter.is_some_and(|delim| {
                d.get(..5).is_some_and(is_inbox)
                    && d[5..].starts_with(delim)
                    && d.len() > 5 + delim.len_utf8()
            })
        });

    let mut counts: BTreeMap<char, usize> = BTreeMap::new();
    for d in folders.iter().filter_map(|f| f.delimiter) {
        *counts.entry(d).or_default() += 1;
    }
    let delimiter = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or('/', |(d, _)| *d);

    let listed = folders
        .iter()
        .zip(decoded)
        .map(|(f, name)| {
            let mut segments: Vec<String> = if is_inbox(&name) {
                vec!["INBOX".to_string()]
            } else {
                match f.delimiter {
                    Some(d) => name.split(d).map(str::to_string).collect(),
                    None => vec![name.clone()],
                }
            };
            if is_inbox(&segments[0]) {
                segments[0] = "INBOX".to_string();
                if inbox_prefix && segments.len() > 1 {
                    segments.remove(0);
                }
            }
            for seg in &mut segments {
                if seg.contains('/') {
                    let replaced = seg.replace('/', &SLASH_STAND_IN.to_string());
                    if let Some(n) = notes.as_deref_mut() {
                        n.push(format!(
                            "level `{seg}` of folder `{name}` contains `/`, which separates levels in paths: written `{replaced}`"
                        ));
                    }
                    *seg = replaced;
                }
            }
            let path = segments.join("/");
            Listed {
                raw: &f.name,
                attributes: &f.attributes,
                special: detect(&path, &f.attributes),
                path,
                segments,
                selectable: !has_attr(f, "\\Noselect") && !has_attr(f, "\\NonExistent"),
                nonexistent: has_attr(f, "\\NonExistent"),
            }
        })
        .collect();
    Side {
        folders: listed,
        delimiter,
        inbox_prefix,
    }
}

/// Decides what to copy where. See the module documentation for the rules.
pub fn map_folders(
    source: &[RemoteFolder],
    dest: &[RemoteFolder],
    rules: &FolderRules,
) -> Result<Mapping, FolderError> {
    let mut notes = Vec::new();
    let mut src = read_side(source, Some(&mut notes));
    let dst = read_side(dest, None);
    src.folders.sort_by(|a, b| {
        (a.path != "INBOX", &a.path, a.raw).cmp(&(b.path != "INBOX", &b.path, b.raw))
    });

    // Source path → target path, for `map` entries and special-use folders alike.
    let mut remaps: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for (key, target) in &rules.map {
        let key_segs = explicit_key(key, &src)?;
        let target: Vec<String> = target
            .split('/')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if target.is_empty() {
            return Err(FolderError::EmptyMapTarget {
                source: key.clone(),
            });
        }
        remaps.insert(key_segs, normalize_inbox(target));
    }

    for (list, globs) in [("include", &rules.include), ("exclude", &rules.exclude)] {
        for g in globs {
            if !src.folders.iter().any(|f| glob_match(g, &f.path)) {
                notes.push(format!(
                    "`folders.{list}` pattern `{g}` matches no source folder"
                ));
            }
        }
    }

    let mut skipped = Vec::new();
    let mut candidates: Vec<&Listed> = Vec::new();
    // From Gmail: All Mail, read again for archived mail only.
    let mut gmail_all: Option<&Listed> = None;
    for (i, f) in src.folders.iter().enumerate() {
        if i > 0 && src.folders[i - 1].path == f.path {
            skipped.push((
                f.path.clone(),
                format!(
                    "`{}` reads as the same path as `{}`; rename one of them on the source",
                    f.raw,
                    src.folders[i - 1].raw
                ),
            ));
            continue;
        }
        // A server may list one (fuzzing found it): no destination can CREATE it.
        if f.raw.is_empty() {
            let why = "the source lists a folder with an empty name, which no destination can \
                       create: not copied; rename it on the source to copy it";
            notes.push(why.to_string());
            skipped.push((f.path.clone(), why.to_string()));
            continue;
        }
        if !f.selectable {
            let attr = if f.nonexistent {
                "\\NonExistent"
            } else {
                "\\Noselect"
            };
            skipped.push((
                f.path.clone(),
                format!("{attr}: holds no messages (its subfolders are copied)"),
            ));
            continue;
        }
        if let Some(g) = rules.exclude.iter().find(|g| glob_match(g, &f.path)) {
            skipped.push((f.path.clone(), format!("excluded by `{g}`")));
            continue;
        }
        if f.path != "INBOX"
            && !rules.include.is_empty()
            && !rules.include.iter().any(|g| glob_match(g, &f.path))
        {
            skipped.push((
                f.path.clone(),
                "matches no `folders.include` pattern".to_string(),
            ));
            continue;
        }
        if rules.gmail.source
            && let Some(why) = gmail_view(f, &rules.gmail)
        {
            if f.special.is_some_and(|(u, _)| u == SpecialUse::All) && gmail_all.is_none() {
                gmail_all = Some(f);
            } else {
                skipped.push((f.path.clone(), why));
            }
            continue;
        }
        candidates.push(f);
    }

    choose_special(
        &candidates,
        &remaps.keys().cloned().collect::<Vec<_>>(),
        &dst,
        &rules.gmail,
        &mut remaps,
        &mut notes,
    );
    let archive_target: Option<Vec<String>> =
        gmail_all.map(|_| match &rules.gmail.archive_folder {
            Some(name) => normalize_inbox(
                name.split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            None => dest_special(SpecialUse::Archive, &dst)
                .unwrap_or_else(|| vec!["Archive".to_string()]),
        });

    let existing: BTreeMap<&str, &str> = dst
        .folders
        .iter()
        .filter(|f| !f.nonexistent)
        .map(|f| (f.path.as_str(), f.raw))
        .collect();
    let mut copy = Vec::new();
    let mut to_create: BTreeMap<Vec<String>, String> = BTreeMap::new();
    let archive_plan = gmail_all.zip(archive_target);
    let archive_path = archive_plan.as_ref().map(|(f, _)| f.path.clone());
    let all: Vec<(&Listed, Option<Vec<String>>)> = candidates
        .iter()
        .map(|f| (*f, None))
        .chain(archive_plan.map(|(f, t)| (f, Some(t))))
        .collect();
    for (f, fixed) in all {
        let target = match (fixed, nearest_remap(&f.segments, &remaps)) {
            (Some(t), _) => t,
            (None, Some((depth, t))) => {
                let mut t = t.clone();
                t.extend_from_slice(&f.segments[depth..]);
                t
            }
            (None, None) => f.segments.clone(),
        };
        let segs = dest_segments(target, &dst, &f.path, &mut notes);
        let dest_path = segs.join("/");
        for n in 1..=segs.len() {
            let prefix = &segs[..n];
            let p = prefix.join("/");
            if p != "INBOX" && !existing.contains_key(p.as_str()) {
                to_create
                    .entry(prefix.to_vec())
                    .or_insert_with(|| raw_name(prefix, &dst));
            }
        }
        let dest = match existing.get(dest_path.as_str()) {
            _ if dest_path == "INBOX" => "INBOX".to_string(),
            Some(raw) => raw.to_string(),
            None => raw_name(&segs, &dst),
        };
        let is_archive = archive_path.as_deref() == Some(f.path.as_str());
        if is_archive {
            notes.push(format!(
                "`{}`: only its archived messages (no label that is a folder) are copied, to `{dest_path}`; the others are copied from their label folders",
                f.path
            ));
        } else if dest_path != f.path {
            notes.push(format!("`{}` goes to `{dest_path}`", f.path));
        }
        if f.special.is_some_and(|(u, _)| u == SpecialUse::All) && !is_archive {
            notes.push(format!(
                "`{}` holds every message of the account, so messages in other folders are copied twice: exclude it (`folders.exclude: [\"{}\"]`) unless that is wanted",
                f.path, f.path
            ));
        }
        copy.push(FolderPlan {
            source: f.raw.to_string(),
            dest,
            path: f.path.clone(),
            dest_path,
            special: f.special.map(|(u, _)| u),
            known: Known::default(),
            archive: is_archive.then(|| archive_filter(&src, &rules.gmail)),
        });
    }

    let mut by_dest: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &copy {
        by_dest.entry(&p.dest_path).or_default().push(&p.path);
    }
    for (d, sources) in by_dest.iter().filter(|(_, s)| s.len() > 1) {
        let list: Vec<String> = sources.iter().map(|s| format!("`{s}`")).collect();
        let (last, rest) = list.split_last().expect("two or more");
        notes.push(format!(
            "{} and {last} go to `{d}`: merged into one folder",
            rest.join(", ")
        ));
    }

    Ok(Mapping {
        copy,
        skipped,
        create: to_create.into_values().collect(),
        notes,
    })
}

/// From Gmail: why a folder is not copied as a folder (All Mail, Important, Starred: views of
/// messages that are in label folders), or `None` for a label folder.
fn gmail_view(f: &Listed, gmail: &Gmail) -> Option<String> {
    let archive = gmail
        .archive_folder
        .as_deref()
        .unwrap_or("the archive folder");
    match f.special.map(|(u, _)| u) {
        Some(SpecialUse::All) => Some(format!(
            "Gmail's All Mail: messages are copied from their label folders, and the archived ones (no label) to `{archive}`"
        )),
        Some(SpecialUse::Flagged) => Some(
            "Gmail's Starred: the starred messages are copied from their label folders, flagged (\\Flagged)".to_string(),
        ),
        _ if is_important(f) => Some(
            "Gmail's Important: a view of messages that are copied from their label folders".to_string(),
        ),
        _ => None,
    }
}

/// Gmail's Important folder (`\Important`, RFC 8457), by attribute or by name.
fn is_important(f: &Listed) -> bool {
    f.attributes
        .iter()
        .any(|a| a.eq_ignore_ascii_case("\\Important"))
        || ["[Gmail]/Important", "[Google Mail]/Important"]
            .iter()
            .any(|n| f.path.eq_ignore_ascii_case(n))
}

/// The labels that are folders of the source (see [`ArchiveFilter`]).
fn archive_filter(src: &Side, gmail: &Gmail) -> ArchiveFilter {
    let mut folder_labels = std::collections::BTreeSet::new();
    for f in src.folders.iter().filter(|f| f.selectable) {
        if gmail_view(f, gmail).is_some() {
            continue;
        }
        let system = match f.special.map(|(u, _)| u) {
            Some(SpecialUse::Inbox) => Some("\\Inbox"),
            Some(SpecialUse::Sent) => Some("\\Sent"),
            Some(SpecialUse::Drafts) => Some("\\Draft"),
            Some(SpecialUse::Trash) => Some("\\Trash"),
            Some(SpecialUse::Junk) => Some("\\Spam"),
            _ => None,
        };
        folder_labels.extend(system.map(str::to_string));
        folder_labels.insert(f.raw.to_string());
    }
    ArchiveFilter { folder_labels }
}

fn normalize_inbox(mut segments: Vec<String>) -> Vec<String> {
    if segments.first().is_some_and(|s| is_inbox(s)) {
        segments[0] = "INBOX".to_string();
    }
    segments
}

/// The source path a `map` key names: a folder's, or a parent's that may not be listed.
fn explicit_key(key: &str, src: &Side) -> Result<Vec<String>, FolderError> {
    let segs = normalize_inbox(
        key.trim_matches('/')
            .split('/')
            .map(str::to_string)
            .collect(),
    );
    let under = |segs: &[String]| {
        src.folders
            .iter()
            .any(|f| f.segments.len() >= segs.len() && f.segments[..segs.len()] == *segs)
    };
    if under(&segs) {
        return Ok(segs);
    }
    // Users of a Courier-style source see the INBOX prefix in their mail client.
    if src.inbox_prefix && segs.len() > 1 && segs[0] == "INBOX" && under(&segs[1..]) {
        return Ok(segs[1..].to_vec());
    }
    let wanted = key.to_lowercase();
    let suggestion = src
        .folders
        .iter()
        .map(|f| {
            (
                strsim::jaro_winkler(&wanted, &f.path.to_lowercase()),
                &f.path,
            )
        })
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, p)| p.clone());
    Err(FolderError::UnknownMapSource {
        source: key.to_string(),
        suggestion,
    })
}

/// The remap that applies to a folder: its own, else its nearest moved ancestor's.
fn nearest_remap<'r>(
    segments: &[String],
    remaps: &'r BTreeMap<Vec<String>, Vec<String>>,
) -> Option<(usize, &'r Vec<String>)> {
    (1..=segments.len())
        .rev()
        .find_map(|n| remaps.get(&segments[..n]).map(|r| (n, r)))
}

/// Picks, per special use, the one source folder that goes to the destination's folder for
/// that use, and where that is.
fn choose_special(
    candidates: &[&Listed],
    explicit: &[Vec<String>],
    dst: &Side,
    gmail: &Gmail,
    remaps: &mut BTreeMap<Vec<String>, Vec<String>>,
    notes: &mut Vec<String>,
) {
    let mut best: BTreeMap<SpecialUse, (&Listed, Rank)> = BTreeMap::new();
    for f in candidates {
        let Some((u, rank)) = f.special else { continue };
        if u == SpecialUse::Inbox || explicit.contains(&f.segments) {
            continue;
        }
        match best.get(&u) {
            Some((_, r)) if *r <= rank => {}
            _ => {
                best.insert(u, (f, rank));
            }
        }
    }
    for f in candidates {
        let Some((u, _)) = f.special else { continue };
        if let Some((winner, _)) = best.get(&u)
            && winner.path != f.path
            && !explicit.contains(&f.segments)
        {
            notes.push(format!(
                "`{}` also looks like a {u} folder, but `{}` is the one that goes to the destination's; `{}` keeps its name",
                f.path, winner.path, f.path
            ));
        }
    }
    for (u, (f, _)) in best {
        // To Gmail, archived means in All Mail with no label.
        let gmail_archive = (gmail.dest && u == SpecialUse::Archive)
            .then(|| dest_special(SpecialUse::All, dst))
            .flatten();
        let target = gmail_archive
            .or_else(|| dest_special(u, dst))
            .or_else(|| u.canonical_name().map(|n| vec![n.to_string()]))
            .unwrap_or_else(|| f.segments.clone());
        remaps.insert(f.segments.clone(), target);
    }
}

/// The destination's folder for a special use: by attribute, else by a common name.
fn dest_special(u: SpecialUse, dst: &Side) -> Option<Vec<String>> {
    dst.folders
        .iter()
        .filter(|f| f.selectable)
        .filter_map(|f| match f.special {
            Some((fu, rank)) if fu == u => Some((rank, &f.path, &f.segments)),
            _ => None,
        })
        .min()
        .map(|(_, _, segs)| segs.clone())
}

/// A target path in the destination's terms: without an INBOX prefix on a Courier-style
/// destination (it is added back in [`raw_name`]), and no level holding its delimiter.
fn dest_segments(
    target: Vec<String>,
    dst: &Side,
    path: &str,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let mut segs = normalize_inbox(target);
    if dst.inbox_prefix && segs.len() > 1 && segs[0] == "INBOX" {
        segs.remove(0);
    }
    let stand_in = if dst.delimiter == '_' { "-" } else { "_" };
    for seg in &mut segs {
        if seg.contains(dst.delimiter) {
            let replaced = seg.replace(dst.delimiter, stand_in);
            notes.push(format!(
                "level `{seg}` of `{path}` contains `{}`, the destination's separator: written `{replaced}`",
                dst.delimiter
            ));
            *seg = replaced;
        }
    }
    segs
}

fn raw_name(segments: &[String], dst: &Side) -> String {
    if segments == ["INBOX"] {
        return "INBOX".to_string();
    }
    let mut name = String::new();
    if dst.inbox_prefix && segments[0] != "INBOX" {
        name.push_str("INBOX");
        name.push(dst.delimiter);
    }
    name.push_str(&segments.join(&dst.delimiter.to_string()));
    mutf7::encode(&name)
}

/// `*` matches any run of characters (separators included), `?` any one character.
///
/// Backtracks only to the last `*` seen, so the cost is at most pattern × text length.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` swallow one more character and retry from there.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests;
