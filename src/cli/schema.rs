//! `mailshift schema`: print the plan file's JSON Schema (for editors and CI checks).

use std::process::ExitCode;

use super::CliError;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn exec(_args: Args) -> Result<ExitCode, CliError> {
    print!("{}", crate::plan::schema::plan_schema_text());
    Ok(ExitCode::SUCCESS)
}
