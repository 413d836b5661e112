//! Secrets: references in the plan, resolved only when a step needs them.
//!
//! A plan names where a secret lives (`{env: NAME}`, `{file: path}`, `{command: [argv]}`);
//! the value is read at the last moment and held in [`Secret`], whose `Debug` and `Display`
//! are redacted so it cannot reach a log line, an error or the state by accident. Secrets are
//! never part of a fingerprint: `SecretRef` is hashed by where it points, never by value.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a secret comes from.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SecretRef {
    /// The value of an environment variable: `{env: ALICE_PASSWORD}`.
    Env(EnvRef),
    /// The contents of a file, trailing newline removed: `{file: secrets/alice}`
    /// (relative to the plan's directory).
    File(FileRef),
    /// The standard output of a command, trailing newline removed:
    /// `{command: [pass, show, mail/alice]}`. Run without a shell.
    Command(CommandRef),
    /// A literal value. Refused unless the plan sets `allow_inline_secrets: true`.
    Inline(String),
}

#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvRef {
    /// Name of the environment variable.
    pub env: String,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Path of the file holding the secret.
    pub file: String,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRef {
    /// Program and arguments; the program's stdout is the secret.
    pub command: Vec<String>,
}

impl SecretRef {
    /// A description that is safe to print: where the secret comes from, never its value.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(e) => format!("env {}", e.env),
            SecretRef::File(f) => format!("file {}", f.file),
            SecretRef::Command(c) => format!("command {}", c.command.first().map_or("", |s| s)),
            SecretRef::Inline(_) => "inline value".to_string(),
        }
    }

    pub fn is_inline(&self) -> bool {
        matches!(self, SecretRef::Inline(_))
    }

    /// Reads the secret now. `base` is the plan's directory, for relative file paths.
    pub fn resolve(&self, base: &Path) -> Result<Secret, SecretError> {
        let value = match self {
            SecretRef::Inline(v) => v.clone(),
            SecretRef::Env(e) => std::env::var(&e.env).map_err(|err| SecretError {
                source: self.describe(),
                reason: match err {
                    std::env::VarError::NotPresent => "the variable is not set".to_string(),
                    std::env::VarError::NotUnicode(_) => "the value is not valid UTF-8".to_string(),
                },
            })?,
            SecretRef::File(f) => {
                let path = base.join(&f.file);
                let text = std::fs::read_to_string(&path).map_err(|err| SecretError {
                    source: self.describe(),
                    reason: format!("cannot read {}: {err}", path.display()),
                })?;
                trim_newline(text)
            }
            SecretRef::Command(c) => {
                let (program, args) = c.command.split_first().ok_or_else(|| SecretError {
                    source: self.describe(),
                    reason: "the command is empty".to_string(),
                })?;
                let out = Command::new(program)
                    .args(args)
                    .current_dir(base)
                    .stdin(Stdio::null())
                    .stderr(Stdio::inherit())
                    .output()
                    .map_err(|err| SecretError {
                        source: self.describe(),
                        reason: format!("cannot run it: {err}"),
                    })?;
                if !out.status.success() {
                    return Err(SecretError {
                        source: self.describe(),
                        reason: format!("it exited with {}", out.status),
                    });
                }
                let text = String::from_utf8(out.stdout).map_err(|_| SecretError {
                    source: self.describe(),
                    reason: "its output is not valid UTF-8".to_string(),
                })?;
                trim_newline(text)
            }
        };
        if value.is_empty() {
            return Err(SecretError {
                source: self.describe(),
                reason: "the secret is empty".to_string(),
            });
        }
        Ok(Secret(value))
    }
}

fn trim_newline(mut s: String) -> String {
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    s
}

/// Debug never shows an inline value.
impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({})", self.describe())
    }
}

/// A resolved secret. Its value is reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must send it (an IMAP LOGIN, an API signature).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret could not be read. Names the reference, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError {
    pub source: String,
    pub reason: String,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read secret from {}: {}",
            self.source, self.reason
        )
    }
}

impl std::error::Error for SecretError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        let r = SecretRef::Inline("hunter2".into());
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn resolves_file_and_command_and_trims_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let f = SecretRef::File(FileRef { file: "pw".into() });
        assert_eq!(f.resolve(dir.path()).unwrap().expose(), "s3cret");
        let c = SecretRef::Command(CommandRef {
            command: vec!["printf".into(), "abc\\n".into()],
        });
        assert_eq!(c.resolve(dir.path()).unwrap().expose(), "abc");
        let failing = SecretRef::Command(CommandRef {
            command: vec!["false".into()],
        });
        let err = failing.resolve(dir.path()).unwrap_err().to_string();
        assert!(err.contains("command false"), "{err}");
    }

    #[test]
    fn missing_env_names_the_variable() {
        let r = SecretRef::Env(EnvRef {
            env: "MAILSHIFT_TEST_SURELY_UNSET".into(),
        });
        let err = r.resolve(Path::new(".")).unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot read secret from env MAILSHIFT_TEST_SURELY_UNSET: the variable is not set"
        );
    }
}
