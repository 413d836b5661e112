//! `mailshift ovh credentials PLAN`: asks OVHcloud for a consumer key limited to the services
//! the plan names, and prints the URL where a person grants it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, load_plan};
use crate::plan::secret::Secret;
use crate::providers::ovh::credentials::{access_rules, request};
use crate::providers::ovh::{Credentials, OvhClient};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// Which entry of `providers` (needed when the plan has several).
    #[arg(long)]
    pub provider: Option<String>,
    /// Where OVHcloud sends the browser after the key is granted.
    #[arg(long, value_name = "URL")]
    pub redirect: Option<String>,
    /// Write the consumer key to this file (mode 0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let plan = &loaded.plan;
    let name = match (&args.provider, plan.providers.len()) {
        (Some(n), _) if plan.providers.contains_key(n) => n.clone(),
        (Some(n), _) => {
            return Err(CliError(format!(
                "the plan has no provider `{n}` (it has: {})",
                plan.providers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        (None, 1) => plan.providers.keys().next().cloned().unwrap_or_default(),
        (None, 0) => {
            return Err(CliError(
                "the plan has no `providers` entry: nothing needs API credentials".into(),
            ));
        }
        (None, _) => {
            return Err(CliError(format!(
                "the plan has several providers: choose one with --provider ({})",
                plan.providers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let provider = &plan.providers[&name];
    let rules = access_rules(plan, &name);
    if rules.is_empty() {
        return Err(CliError(format!(
            "no platform of the plan uses provider `{name}`: no access to ask for"
        )));
    }
    let application_key = provider
        .application_key
        .resolve(&loaded.base_dir)
        .map_err(|e| CliError(format!("provider `{name}` application key: {e}")))?;
    // Asking for a consumer key is an unsigned call: the secret and the old key are not used.
    let credentials = Credentials {
        application_key,
        application_secret: Secret::new(""),
        consumer_key: Secret::new(""),
    };
    let client = OvhClient::new(&provider.endpoint, credentials)?;
    let answer = super::runtime()?.block_on(request(&client, &rules, args.redirect.as_deref()))?;

    println!(
        "Access rules asked for (provider `{name}`, {}):",
        client.base()
    );
    for r in &rules {
        println!("  {:<6} {}", r.method, r.path);
    }
    println!();
    match &args.output {
        Some(path) => {
            write_private(path, &answer.consumer_key)?;
            println!(
                "Consumer key written to {} (state: {}).",
                path.display(),
                answer.state
            );
        }
        None => println!(
            "Consumer key: {} (state: {})",
            answer.consumer_key, answer.state
        ),
    }
    println!(
        "\nOpen this URL, log in with the OVHcloud account that owns these services, and grant the access:\n  {}\n",
        answer.validation_url
    );
    println!(
        "Then make the plan's `consumer_key` ({}) give this key, and check with `mailshift plan --refresh {}`.",
        provider.consumer_key.describe(),
        args.plan.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &std::path::Path, value: &str) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))?;
    writeln!(f, "{value}").map_err(|e| CliError(format!("cannot write {}: {e}", path.display())))
}
