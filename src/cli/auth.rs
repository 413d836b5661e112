//! `mailshift auth login|status`: the one step of OAuth2 that needs a person. `login` runs an
//! account side's interactive flow once (device code: shows a URL and a code, then waits;
//! loopback: shows the URL to open and waits for the browser's redirect) and keeps the
//! refresh token in the token store; for flows without a person (client credentials,
//! service account, a refresh token from the plan) it fetches one token to prove the setup.
//! `status` lists how each account side logs in and whether the store holds what it needs.
//! Neither ever prints a token.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, load_plan};
use crate::auth::flows::PlanGrant;
use crate::auth::{Settings, TokenStore, block_for, store_path};
use crate::model::{dest_login, source_login};
use crate::plan::Loaded;
use crate::plan::model::{Account, OAuth2Flow, PlatformKind};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: AuthCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuthCommand {
    /// Sign in once for an account side that uses OAuth2 and keep its refresh token in the
    /// token store (device code and loopback flows); for the other flows, fetch one token to
    /// check the setup.
    Login {
        /// The plan file (`.yaml`, `.yml` or `.toml`).
        plan: PathBuf,
        /// The account's address (or the login of one of its sides).
        account: String,
        /// Which side to sign in for, when both use OAuth2.
        #[arg(long, value_enum)]
        side: Option<Side>,
    },
    /// Show how each account side logs in and whether the token store has its refresh token.
    Status {
        /// The plan file (`.yaml`, `.yml` or `.toml`).
        plan: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    Source,
    Destination,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    match args.command {
        AuthCommand::Login {
            plan,
            account,
            side,
        } => login(&plan, &account, side),
        AuthCommand::Status { plan } => status(&plan),
    }
}

/// One side of an account as far as logging in goes.
struct SideInfo<'a> {
    side: Side,
    platform_name: &'a str,
    kind: PlatformKind,
    login: String,
    block: Option<&'a crate::plan::model::OAuth2>,
    method: &'static str,
}

fn sides<'a>(loaded: &'a Loaded, account: &'a Account) -> Vec<SideInfo<'a>> {
    let mut out = Vec::new();
    for (side, name, creds, login) in [
        (
            Side::Source,
            &account.from,
            &account.source,
            source_login(account),
        ),
        (
            Side::Destination,
            &account.to,
            &account.destination,
            dest_login(account),
        ),
    ] {
        let Some(platform) = loaded.plan.platforms.get(name.as_str()) else {
            continue;
        };
        if platform.kind == PlatformKind::Files {
            continue;
        }
        let block = block_for(platform, creds);
        let method = match (block, &creds.oauth2_token, &creds.password) {
            (Some(_), _, _) => "oauth2",
            (None, Some(_), _) => "a fixed OAuth2 token (oauth2_token)",
            (None, None, Some(_)) => "a password",
            (None, None, None) => "nothing",
        };
        out.push(SideInfo {
            side,
            platform_name: name,
            kind: platform.kind,
            login,
            block,
            method,
        });
    }
    out
}

fn login(plan: &std::path::Path, account: &str, side: Option<Side>) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(plan) else {
        return Ok(ExitCode::from(1));
    };
    let wanted = account.to_ascii_lowercase();
    let found = loaded.plan.accounts.iter().find(|a| {
        a.address.eq_ignore_ascii_case(&wanted)
            || source_login(a).eq_ignore_ascii_case(&wanted)
            || dest_login(a).eq_ignore_ascii_case(&wanted)
    });
    let Some(acc) = found else {
        return Err(CliError(format!(
            "no account {account} in {}",
            loaded.file_name()
        )));
    };
    let all = sides(&loaded, acc);
    let oauth: Vec<&SideInfo> = all.iter().filter(|s| s.block.is_some()).collect();
    let chosen = match side {
        Some(side) => oauth.iter().find(|s| s.side == side).copied().ok_or_else(|| {
            CliError(format!(
                "the {} side of {} does not log in with OAuth2 (it uses {}): nothing to sign in for",
                side.as_str(),
                acc.address,
                all.iter()
                    .find(|s| s.side == side)
                    .map(|s| s.method)
                    .unwrap_or("no login")
            ))
        })?,
        None => {
            // A login named as the account's is the side it belongs to.
            let by_login: Vec<&SideInfo> = oauth
                .iter()
                .filter(|s| s.login.eq_ignore_ascii_case(&wanted))
                .copied()
                .collect();
            let pool = if by_login.len() == 1 { by_login } else { oauth.clone() };
            match pool.as_slice() {
                [one] => *one,
                [] => {
                    return Err(CliError(format!(
                        "{} logs in without OAuth2 on both sides: nothing to sign in for",
                        acc.address
                    )));
                }
                _ => {
                    let interactive: Vec<&SideInfo> = pool
                        .iter()
                        .filter(|s| s.block.is_some_and(|b| b.flow.is_interactive()))
                        .copied()
                        .collect();
                    match interactive.as_slice() {
                        [one] => *one,
                        _ => {
                            return Err(CliError(format!(
                                "both sides of {} use OAuth2: say which with --side source or --side destination",
                                acc.address
                            )));
                        }
                    }
                }
            }
        }
    };
    let block = chosen.block.expect("chosen among OAuth2 sides");
    let settings = Settings::resolve(
        block,
        chosen.kind,
        &loaded.base_dir,
        &chosen.login,
        &loaded.file_name(),
    )
    .map_err(|e| {
        CliError(format!(
            "{} ({}, platform `{}`): {e}",
            acc.address,
            chosen.side.as_str(),
            chosen.platform_name
        ))
    })?;
    let store = TokenStore::new(store_path(&loaded));
    let grant = PlanGrant::new(settings, store).map_err(CliError)?;
    let runtime = super::runtime()?;
    runtime.block_on(run_login(&grant, chosen))?;
    Ok(ExitCode::SUCCESS)
}

async fn run_login(grant: &PlanGrant, side: &SideInfo<'_>) -> Result<(), CliError> {
    let s = grant.settings();
    let login = &s.login;
    let mut stdout = std::io::stdout();
    let fail = |e: crate::transfer::imap::session::TokenError| CliError(e.message);
    let obtained = match s.flow {
        OAuth2Flow::DeviceCode => {
            let start = grant.device_start().await.map_err(fail)?;
            let _ = writeln!(
                stdout,
                "To sign in as {login} ({} side), open {} in a browser and enter the code {}",
                side.side.as_str(),
                start.verification_uri,
                start.user_code
            );
            let _ = writeln!(stdout, "Waiting for the sign-in…");
            let _ = stdout.flush();
            grant.device_poll(&start).await.map_err(fail)?
        }
        OAuth2Flow::Loopback => {
            let mut show = |url: &str| {
                let mut out = std::io::stdout();
                let _ = writeln!(
                    out,
                    "To sign in as {login} ({} side), open this URL in a browser (opened for you when there is a desktop):\n{url}",
                    side.side.as_str()
                );
                let _ = writeln!(out, "Waiting for the browser to come back…");
                let _ = out.flush();
            };
            grant.loopback(&mut show).await.map_err(fail)?
        }
        OAuth2Flow::ClientCredentials | OAuth2Flow::ServiceAccount | OAuth2Flow::RefreshToken => {
            let fresh = grant.fetch_token().await.map_err(fail)?;
            let _ = writeln!(
                stdout,
                "{login} ({} side): the {} setup works, an access token valid for {} was obtained. Runs get their tokens by themselves: no sign-in to keep.",
                side.side.as_str(),
                s.flow.as_str(),
                human_duration(fresh.lifetime.as_secs())
            );
            return Ok(());
        }
    };
    let refresh = obtained.refresh_token.ok_or_else(|| {
        CliError(
            "the sign-in worked but the server gave no refresh token, so runs could not renew the access token: add `offline_access` to `scopes` (Microsoft) or check that the client is an installed/desktop app (Google)"
                .to_string(),
        )
    })?;
    grant.keep_refresh_token(&refresh).map_err(CliError)?;
    let _ = writeln!(
        stdout,
        "Signed in as {login} ({} side): the refresh token is kept in {} (mode 0600). `mailshift apply` renews access tokens from it by itself.",
        side.side.as_str(),
        grant.store().path().display()
    );
    Ok(())
}

fn human_duration(secs: u64) -> String {
    if secs >= 120 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

fn status(plan: &std::path::Path) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(plan) else {
        return Ok(ExitCode::from(1));
    };
    let store = TokenStore::new(store_path(&loaded));
    let entries = store.entries();
    let mut out = String::new();
    out.push_str(&format!("Token store: {}", store.path().display()));
    match &entries {
        Ok(e) if e.is_empty() => out.push_str(" (empty or not created yet)\n"),
        Ok(e) => out.push_str(&format!(" ({} refresh token(s))\n", e.len())),
        Err(e) => out.push_str(&format!("\n  cannot be used: {e}\n")),
    }
    let mut needed = 0;
    for acc in &loaded.plan.accounts {
        for side in sides(&loaded, acc) {
            let what = match side.block {
                None => side.method.to_string(),
                Some(block) => {
                    let settings = Settings::resolve(
                        block,
                        side.kind,
                        &loaded.base_dir,
                        &side.login,
                        &loaded.file_name(),
                    );
                    match settings {
                        Err(e) => {
                            needed += 1;
                            format!("oauth2 {}: cannot be used: {e}", block.flow.as_str())
                        }
                        Ok(s) if s.refresh_token.is_some() => {
                            format!("oauth2 {}: refresh token from the plan", s.flow.as_str())
                        }
                        Ok(s) if s.flow.is_interactive() => {
                            match entries.as_ref().ok().and_then(|e| e.get(&s.store_key())) {
                                Some(entry) => format!(
                                    "oauth2 {}: signed in (refresh token kept, {})",
                                    s.flow.as_str(),
                                    entry.updated
                                ),
                                None => {
                                    needed += 1;
                                    format!(
                                        "oauth2 {}: NOT signed in: run `mailshift auth login {} {} --side {}`",
                                        s.flow.as_str(),
                                        loaded.file_name(),
                                        acc.address,
                                        side.side.as_str()
                                    )
                                }
                            }
                        }
                        Ok(s) => format!("oauth2 {}: no sign-in needed", s.flow.as_str()),
                    }
                }
            };
            out.push_str(&format!(
                "{}  {} ({} on `{}`): {what}\n",
                acc.address,
                side.side.as_str(),
                side.login,
                side.platform_name
            ));
        }
    }
    print!("{out}");
    Ok(if needed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
