//! `mailshift man` and `mailshift completions SHELL`: the manual pages and the shell
//! completions, generated from the CLI's own definition (clap_mangen, clap_complete) so they
//! never drift from it; the Debian package (scripts/build-deb.sh) ships what they print.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, CliError};

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write a page per command (mailshift.1, mailshift-plan.1, mailshift-state-reshard.1,
    /// ...) into this directory instead of printing mailshift.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn man(args: ManArgs) -> Result<ExitCode, CliError> {
    let cmd = Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, &dir).map_err(|e| {
                CliError(format!(
                    "cannot write the manual pages in {}: {e}",
                    dir.display()
                ))
            })?;
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| CliError(format!("cannot render the manual page: {e}")))?;
            write_stdout(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn completions(args: CompletionsArgs) -> Result<ExitCode, CliError> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "mailshift", &mut out);
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// A closed pipe (`mailshift man | head`) is an error to report, not a panic.
fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError(format!("cannot write to stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_gets_a_page() {
        let dir = tempfile::tempdir().unwrap();
        man(ManArgs {
            dir: Some(dir.path().to_path_buf()),
        })
        .unwrap();
        let mut pages: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        pages.sort();
        for page in [
            "mailshift.1",
            "mailshift-plan.1",
            "mailshift-watch.1",
            "mailshift-state.1",
        ] {
            assert!(pages.iter().any(|p| p == page), "no {page} in {pages:?}");
        }
        let watch = std::fs::read_to_string(dir.path().join("mailshift-watch.1")).unwrap();
        assert!(watch.contains("\\-\\-listen"), "{watch}");
    }
}
