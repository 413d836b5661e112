//! `--shard I/N`, shared by `plan`, `apply`, `verify`, `status` and `watch`: which share of the
//! plan this process owns (`mailshift_core::shard`), from the command line or the environment,
//! so a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` works as it is.

use mailshift_core::shard::Shard;

use super::CliError;

/// Loads the plan (as `load_plan` does) for the shard these options name: `None` when the plan
/// is invalid (said on stderr; the caller exits 1).
pub fn load(
    path: &std::path::Path,
    args: &ShardArgs,
) -> Result<Option<crate::plan::Loaded>, CliError> {
    let shard = args.resolve()?;
    let Some(mut loaded) = super::load_plan(path) else {
        return Ok(None);
    };
    crate::cutover::refuse_split(&loaded.plan, shard).map_err(CliError)?;
    loaded.shard = shard;
    Ok(Some(loaded))
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ShardArgs {
    /// Run only shard I of N: the accounts whose address hashes to I, and (shard 0) the
    /// platform-level steps. Also read from MAILSHIFT_SHARD=I/N, or from JOB_COMPLETION_INDEX
    /// (set by a Kubernetes Indexed Job) with MAILSHIFT_SHARDS=N.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

impl ShardArgs {
    /// The shard this process runs: the option, else the environment, else the whole plan.
    pub fn resolve(&self) -> Result<Shard, CliError> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// As [`resolve`](Self::resolve), reading the environment through `env`: the deployment
    /// tests work out each pod's shard from the environment its manifest gives it.
    pub fn resolve_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<Shard, CliError> {
        resolve(self.shard.as_deref(), env)
    }
}

fn resolve(option: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Result<Shard, CliError> {
    if let Some(text) = option {
        return Shard::parse(text).map_err(|e| CliError(format!("--shard: {e}")));
    }
    if let Some(text) = env("MAILSHIFT_SHARD").filter(|t| !t.trim().is_empty()) {
        return Shard::parse(&text).map_err(|e| CliError(format!("MAILSHIFT_SHARD: {e}")));
    }
    let index = env("JOB_COMPLETION_INDEX").filter(|t| !t.trim().is_empty());
    let count = env("MAILSHIFT_SHARDS").filter(|t| !t.trim().is_empty());
    match (index, count) {
        (None, None) => Ok(Shard::WHOLE),
        (Some(i), Some(n)) => Shard::parse(&format!("{}/{}", i.trim(), n.trim()))
            .map_err(|e| CliError(format!("JOB_COMPLETION_INDEX and MAILSHIFT_SHARDS: {e}"))),
        (Some(i), None) => Err(CliError(format!(
            "JOB_COMPLETION_INDEX is {i} but MAILSHIFT_SHARDS is not set: set MAILSHIFT_SHARDS to \
             the Job's completions (the number of shards), or pass --shard I/N"
        ))),
        (None, Some(n)) => Err(CliError(format!(
            "MAILSHIFT_SHARDS is {n} but this process has no index: run it as an Indexed Job \
             (JOB_COMPLETION_INDEX), or pass --shard I/{n}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn option_then_environment_then_whole() {
        let env = [
            ("MAILSHIFT_SHARD", "1/4"),
            ("JOB_COMPLETION_INDEX", "2"),
            ("MAILSHIFT_SHARDS", "3"),
        ];
        assert_eq!(
            resolve(Some("0/2"), with(&env)).unwrap(),
            Shard::new(0, 2).unwrap()
        );
        assert_eq!(
            resolve(None, with(&env)).unwrap(),
            Shard::new(1, 4).unwrap()
        );
        assert_eq!(
            resolve(None, with(&env[1..])).unwrap(),
            Shard::new(2, 3).unwrap()
        );
        assert_eq!(resolve(None, with(&[])).unwrap(), Shard::WHOLE);
        let e = resolve(None, with(&env[1..2])).unwrap_err().0;
        assert!(e.contains("MAILSHIFT_SHARDS is not set"), "{e}");
        let e = resolve(
            None,
            with(&[("JOB_COMPLETION_INDEX", "3"), ("MAILSHIFT_SHARDS", "3")]),
        )
        .unwrap_err()
        .0;
        assert!(e.contains("numbered 0 to 2"), "{e}");
    }
}
