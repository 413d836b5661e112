//! `mailshift ack PLAN ID`: record that a manual step was done by hand (see `apply::ack`).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, load_plan};
use crate::apply::ack::acknowledge;
use crate::state::StateError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// The manual step's resource id, as `plan` prints it.
    pub id: String,
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let store = crate::state::shards::open_store(&loaded, args.shard.resolve()?).map_err(|e| match e {
        StateError::Locked { .. } => CliError(format!(
            "{e}\n(if that process is `mailshift watch`, acknowledge through it instead: POST /api/ack/{} on its HTTP address)",
            args.id
        )),
        other => CliError(other.to_string()),
    })?;
    if let Some(line) = crate::cutover::ack::acknowledge(&loaded, &store, &args.id)? {
        println!("{line}");
        return Ok(ExitCode::SUCCESS);
    }
    let done = acknowledge(&loaded, &store, &args.id)?;
    println!("{}", done.message);
    Ok(ExitCode::SUCCESS)
}
