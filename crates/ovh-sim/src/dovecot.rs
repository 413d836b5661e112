//! A real Dovecot behind a simulated service: the simulator edits Dovecot's passwd-file so
//! that what the API changes is what IMAP clients see. A rename rewrites the login of a line
//! but keeps its home, so the mailbox follows the account and the old login stops working;
//! a new account gets a new home; a password change rewrites the password; a deletion drops
//! the line.
//!
//! The file may be shared with other services or with lines the simulator does not know
//! (a source and a destination in one Dovecot): every edit touches only the lines it names.
//! Lines are `user:{PLAIN}password:uid:gid::home::`, as `tests/support/dovecot.rs` writes.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::world::DovecotBackend;

#[derive(Debug)]
pub(super) struct Passwd {
    backend: DovecotBackend,
    uid: u32,
    gid: u32,
}

struct Line {
    user: String,
    text: String,
}

impl Passwd {
    /// Checks the file can be read and settles which owner new lines and homes get.
    pub fn open(backend: &DovecotBackend) -> Result<Passwd, String> {
        let lines = read(&backend.users_file)?;
        let from_line = lines.iter().find_map(|l| {
            let f: Vec<&str> = l.text.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
        });
        let from_root = fs::metadata(&backend.mail_root)
            .ok()
            .map(|m| (m.uid(), m.gid()));
        let (uid, gid) = match (backend.uid, backend.gid, from_line.or(from_root)) {
            (Some(u), Some(g), _) => (u, g),
            (u, g, Some((lu, lg))) => (u.unwrap_or(lu), g.unwrap_or(lg)),
            (_, _, None) => {
                return Err(format!(
                    "cannot tell the mail owner: {} has no line and {} does not exist; \
                     set dovecot.uid and dovecot.gid",
                    backend.users_file.display(),
                    backend.mail_root.display()
                ));
            }
        };
        Ok(Passwd {
            backend: backend.clone(),
            uid,
            gid,
        })
    }

    pub fn backend(&self) -> &DovecotBackend {
        &self.backend
    }

    /// Gives `user` this password, keeping the home of an existing line or making one.
    pub fn ensure(&self, user: &str, password: &str) -> Result<(), String> {
        self.edit(|lines| {
            let home = match lines.iter().find(|l| l.user == user) {
                Some(l) => home_of(&l.text),
                None => None,
            };
            let home = match home {
                Some(h) => h,
                None => self.make_home(user)?,
            };
            replace(lines, user, self.line(user, password, &home));
            Ok(())
        })
    }

    /// A new account: a new home, replacing whatever line had that name.
    pub fn add(&self, user: &str, password: &str) -> Result<(), String> {
        let home = self.make_home(user)?;
        self.edit(|lines| {
            replace(lines, user, self.line(user, password, &home));
            Ok(())
        })
    }

    /// The account `old` is now called `new`: same home, same password.
    pub fn rename(&self, old: &str, new: &str, password: &str) -> Result<(), String> {
        self.edit(|lines| {
            let home = match lines.iter().find(|l| l.user == old) {
                Some(l) => home_of(&l.text),
                None => None,
            };
            let home = match home {
                Some(h) => h,
                None => self.make_home(new)?,
            };
            lines.retain(|l| l.user != old);
            replace(lines, new, self.line(new, password, &home));
            Ok(())
        })
    }

    pub fn remove(&self, user: &str) -> Result<(), String> {
        self.edit(|lines| {
            lines.retain(|l| l.user != user);
            Ok(())
        })
    }

    fn line(&self, user: &str, password: &str, home: &str) -> String {
        format!(
            "{user}:{{PLAIN}}{password}:{}:{}::{home}::",
            self.uid, self.gid
        )
    }

    fn make_home(&self, user: &str) -> Result<String, String> {
        if user.is_empty() || user.starts_with('.') || user.contains(['/', ':', '\n']) {
            return Err(format!("{user:?} cannot name a home directory"));
        }
        let home = self.backend.mail_root.join(user);
        fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
        // Dovecot's mail processes run as the line's uid and must own the home to create the
        // Maildir in it, as the test harness arranges for its own users.
        std::os::unix::fs::chown(&home, Some(self.uid), Some(self.gid))
            .map_err(|e| format!("cannot chown {}: {e}", home.display()))?;
        Ok(home.display().to_string())
    }

    fn edit(
        &self,
        change: impl FnOnce(&mut Vec<Line>) -> Result<(), String>,
    ) -> Result<(), String> {
        let path = &self.backend.users_file;
        let mut lines = read(path)?;
        let old_mtime = fs::metadata(path).and_then(|m| m.modified()).ok();
        change(&mut lines)?;
        let mut text = String::new();
        for l in &lines {
            text.push_str(&l.text);
            text.push('\n');
        }
        // Rename over the old file so Dovecot never reads half a line.
        let tmp = tmp_path(path);
        fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
        // Dovecot stats the file at most once a second and compares whole-second mtimes and
        // sizes: a same-size change within the second would go unseen without this.
        if let Some(old) = old_mtime {
            let secs = |t: SystemTime| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            };
            let new = fs::metadata(path).and_then(|m| m.modified()).ok();
            if new.is_none_or(|n| secs(n) <= secs(old)) {
                fs::File::options()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_modified(old + Duration::from_secs(1)))
                    .map_err(|e| format!("cannot touch {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
}

fn read(path: &Path) -> Result<Vec<Line>, String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Line {
            user: l.split(':').next().unwrap_or("").to_string(),
            text: l.to_string(),
        })
        .collect())
}

fn home_of(line: &str) -> Option<String> {
    line.split(':')
        .nth(5)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

fn replace(lines: &mut Vec<Line>, user: &str, text: String) {
    let line = Line {
        user: user.to_string(),
        text,
    };
    match lines.iter().position(|l| l.user == user) {
        Some(i) => lines[i] = line,
        None => lines.push(line),
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".ovh-sim.tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(initial: &str) -> (tempfile::TempDir, Passwd) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("mail")).unwrap();
        fs::write(dir.path().join("users"), initial).unwrap();
        let passwd = Passwd::open(&DovecotBackend {
            users_file: dir.path().join("users"),
            mail_root: dir.path().join("mail"),
            uid: None,
            gid: None,
        })
        .unwrap();
        (dir, passwd)
    }

    fn users(dir: &tempfile::TempDir) -> String {
        fs::read_to_string(dir.path().join("users")).unwrap()
    }

    #[test]
    fn rename_keeps_home_and_foreign_lines() {
        let (dir, p) = setup("other:{PLAIN}x:7:8::/h/other::\nold@d:{PLAIN}pw:7:8::/h/old::\n");
        p.rename("old@d", "new@d", "pw").unwrap();
        assert_eq!(
            users(&dir),
            "other:{PLAIN}x:7:8::/h/other::\nnew@d:{PLAIN}pw:7:8::/h/old::\n"
        );
    }

    #[test]
    fn add_makes_a_home_with_the_owner_of_existing_lines() {
        // Our own ids: chown to them works without root.
        let probe = tempfile::tempdir().unwrap();
        let me = fs::metadata(probe.path()).unwrap();
        let (uid, gid) = (me.uid(), me.gid());
        let (dir, p) = setup(&format!("other:{{PLAIN}}x:{uid}:{gid}::/h/other::\n"));
        p.add("a@d", "pw").unwrap();
        let home = dir.path().join("mail/a@d");
        assert!(home.is_dir());
        let meta = fs::metadata(&home).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        let line = format!("a@d:{{PLAIN}}pw:{uid}:{gid}::{}::\n", home.display());
        assert!(users(&dir).ends_with(&line), "{}", users(&dir));
    }

    #[test]
    fn ensure_keeps_an_existing_home_and_remove_drops_the_line() {
        let (dir, p) = setup("a@d:{PLAIN}old:7:8::/h/a::\n");
        p.ensure("a@d", "new").unwrap();
        assert_eq!(users(&dir), "a@d:{PLAIN}new:7:8::/h/a::\n");
        p.remove("a@d").unwrap();
        assert_eq!(users(&dir), "");
    }

    #[test]
    fn every_write_moves_the_whole_second_mtime() {
        let (dir, p) = setup("a@d:{PLAIN}aaa:7:8::/h/a::\n");
        let mtime = || {
            fs::metadata(dir.path().join("users"))
                .unwrap()
                .modified()
                .unwrap()
        };
        let before = mtime();
        // Same size, same second: only the mtime can tell Dovecot.
        p.ensure("a@d", "bbb").unwrap();
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert!(secs(mtime()) > secs(before));
    }
}
