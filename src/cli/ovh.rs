//! `mailshift ovh …`: OVHcloud helpers that are not steps of a plan.
//!
//! `credentials` asks for a consumer key (see `ovh_credentials`). The API simulator that the
//! demo and tests run is a binary of its own, `ovh-sim` (`crates/ovh-sim`), not part of the
//! product.

use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: OvhCommand,
}

#[derive(Debug, Subcommand)]
pub enum OvhCommand {
    /// Ask OVHcloud for a consumer key limited to the services a plan names, and print the
    /// URL where the account owner grants it.
    Credentials(super::ovh_credentials::Args),
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    match args.command {
        OvhCommand::Credentials(a) => super::ovh_credentials::exec(a),
    }
}
