//! `mailshift state`.

use std::process::ExitCode;

use super::CliError;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn exec(_args: Args) -> Result<ExitCode, CliError> {
    Err(CliError("not implemented yet".into()))
}
