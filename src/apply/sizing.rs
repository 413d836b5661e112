//! Pre-flight sizing and the estimated duration of copies: what `plan --refresh` says of each
//! pending copy (what it moves, measured by its content engine as a [`Size`]; whether that
//! fits the destination's quota; how long it takes at the last throughput measured on its
//! source server, or at a stated default; how many days the platforms' daily limits make it
//! last), and the throughput `apply` records at the end of each copy for the next estimate
//! (`state::store::throughput`).
//!
//! Pure but for [`record_throughput`]: the caller measures and reads the state, so the
//! arithmetic here is tested without a server or a clock.

use serde::Serialize;

use super::content::{ReportedQuota, Size};
use super::human_bytes;
use super::quota::Limits;
use crate::apply::plane::SizeLimit;
use crate::model::AccountSpec;
use crate::plan::model::PlatformKind;
use crate::state::{CopyRun, StateStore, Throughput};
use crate::transfer::imap::copy::Progress;

/// What an estimate assumes before any copy from the server was measured: 2 MB/s, the low
/// end of what an IMAP-to-IMAP copy over the Internet reaches (bench/RESULTS.md measures
/// more on loopback; a remote server's latency and throttling take most of that away).
pub const DEFAULT_RATE: u64 = 2_000_000;

/// A copy that moved less than this is not a measurement: logging in and listing folders
/// take most of its time, and its rate would make the next estimate far too long.
pub const MIN_MEASURED: u64 = 256 * 1024;

/// The server an account's mail is read from, as the throughput table keys it
/// (`imap://host:port`, `pop3://host:port`, or the platform kind when the plan names no host:
/// Gmail, Microsoft 365, files).
pub fn source_server(spec: &AccountSpec) -> String {
    let p = &spec.source;
    let (scheme, endpoint) = match (&p.pop3, &p.imap) {
        (Some(e), _) => ("pop3", e),
        (None, Some(e)) => ("imap", e),
        (None, None) => return p.kind.as_str().to_string(),
    };
    match endpoint.port {
        Some(port) => format!("{scheme}://{}:{port}", endpoint.host.to_ascii_lowercase()),
        None => format!("{scheme}://{}", endpoint.host.to_ascii_lowercase()),
    }
}

/// Keeps a finished (or stopped) copy's rate for its source server, when it moved enough to
/// say something. A failure to write is logged, not raised: the copy itself is recorded.
pub fn record_throughput(
    store: &StateStore,
    spec: &AccountSpec,
    bytes: u64,
    took: std::time::Duration,
) {
    if bytes < MIN_MEASURED {
        return;
    }
    let t = Throughput {
        bytes,
        seconds: took.as_secs().max(1),
        at: crate::watch::status::unix_now(),
    };
    if let Err(e) = store.put_throughput(&source_server(spec), &t) {
        tracing::warn!(account = %spec.address, "cannot record the copy's throughput: {e}");
    }
}

/// A copy's progress hooks that also keep the start of each run in the state
/// (`state::CopyRun`), from which `status` gives an ETA while the copy runs in another process.
pub struct RecordRun {
    pub inner: std::sync::Arc<dyn Progress>,
    pub store: std::sync::Arc<StateStore>,
    pub id: String,
    pub sync_point: u64,
}

impl Progress for RecordRun {
    fn account_started(&self, account: &str, to_copy: u64) {
        // The real clock, as the batches' times are (not the daily limits' test clock).
        let run = CopyRun {
            sync_point: self.sync_point,
            started_at: crate::watch::status::unix_now(),
            to_copy,
        };
        // One small commit per run that has messages to copy, before any folder: not worth a
        // blocking task of its own. A run with nothing to copy (a no-op re-sync, most watch
        // cycles) has no ETA to give and makes no commit: its fsync was a measurable part of it.
        if to_copy > 0
            && let Err(e) = self.store.put_copy_run(&self.id, &run)
        {
            tracing::warn!(account, "cannot record the copy's start (for its ETA): {e}");
        }
        self.inner.account_started(account, to_copy);
    }

    fn folder_started(&self, account: &str, folder: &str, to_copy: u64) {
        self.inner.folder_started(account, folder, to_copy);
    }

    fn copied(&self, account: &str, messages: u64, bytes: u64) {
        self.inner.copied(account, messages, bytes);
    }

    fn note(&self, account: &str, text: &str) {
        self.inner.note(account, text);
    }
}

/// The ETA of a copy in progress, from the state alone (`status`): its run's start and
/// estimate, the messages recorded under the run's sync point, and when its last batch was
/// recorded. The rate is taken up to that last batch, not up to now, so a copy that stopped
/// (killed, paused, a stalled server) keeps its honest rate and says since when it is quiet.
/// `None` when the copy has no run recorded or has not copied anything yet.
pub fn eta_from_state(
    reader: &crate::state::StateReader,
    id: &str,
    now: u64,
) -> Result<Option<RunEta>, crate::state::StateError> {
    let Some(run) = reader.copy_run(id)? else {
        return Ok(None);
    };
    let copied = reader
        .copied_by_sync_point(id)?
        .get(&run.sync_point)
        .map_or(0, |(count, _)| *count);
    let last_batch = reader
        .folders(id)?
        .values()
        .map(|f| f.updated_at)
        .filter(|t| *t >= run.started_at)
        .max();
    // Batches within the run's first second give no interval yet: measure up to now.
    let until = last_batch.filter(|t| *t > run.started_at).unwrap_or(now);
    let remaining = run.to_copy.saturating_sub(copied);
    Ok(
        eta(copied, remaining, until.saturating_sub(run.started_at)).map(|seconds| RunEta {
            seconds,
            copied,
            to_copy: run.to_copy,
            last_batch,
        }),
    )
}

/// What [`eta_from_state`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEta {
    pub seconds: u64,
    /// Messages this run recorded so far, of about `to_copy`.
    pub copied: u64,
    pub to_copy: u64,
    /// Unix seconds of the run's last recorded batch.
    pub last_batch: Option<u64>,
}

/// One account's copy, sized: what `plan --refresh` prints and `--json` carries.
#[derive(Debug, Clone, Serialize)]
pub struct AccountSizing {
    pub account: String,
    /// The copy's resource (`account/alice@example.com/mail`).
    pub resource: String,
    /// What the copy moves; absent when the source could not be read (see `error`) or the
    /// engine does not measure (contacts and calendars: counted in the step's reason only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    /// Why the copy could not be sized (a login refused, a server down): this account only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
}

/// The destination's room for the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaCheck {
    /// Bytes the destination account may hold.
    pub limit: u64,
    /// Bytes it holds already, when its server said (GETQUOTAROOT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    /// Where the limit comes from, for people.
    pub source: String,
    pub fits: bool,
    /// The warning `plan` prints when it does not fit: the account, the numbers, the fixes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// How long the copy takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub seconds: u64,
    /// Bytes per second assumed.
    pub rate: u64,
    /// False when no copy from this server was measured yet and [`DEFAULT_RATE`] is assumed.
    pub measured: bool,
    /// Where the rate comes from, for people.
    pub basis: String,
    /// At least this many days, when a platform's daily limit binds (Gmail, Microsoft 365).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<u64>,
}

/// Sizes one account's copy from what its engine measured.
///
/// `offer` is the destination platform's known per-account limit (MX Plan 5 GB, Email Pro
/// 10 GB); a quota the destination's server reports is preferred, being the account's own.
pub fn assess(
    account: &AccountSpec,
    resource: &str,
    size: Size,
    limit: Known,
    measured: Option<(&str, Throughput)>,
    limits: &Limits,
) -> AccountSizing {
    let quota = quota_check(&account.address, &size, &limit, account.dest.kind);
    let estimate = estimate(size.to_move_bytes, measured, limits);
    AccountSizing {
        account: account.address.clone(),
        resource: resource.to_string(),
        size: Some(size),
        error: None,
        quota,
        estimate: Some(estimate),
    }
}

/// What is known of the destination account's limit without its IMAP server: the
/// platform's API (an existing account's `quota`) and the offer's published size.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub api: Option<ReportedQuota>,
    pub offer: Option<SizeLimit>,
}

fn quota_check(
    address: &str,
    size: &Size,
    known: &Known,
    dest_kind: PlatformKind,
) -> Option<QuotaCheck> {
    let offer = known.offer.as_ref();
    // The server's own figure first, it is the account's; then the API's; then the offer's.
    let (limit, used, source) = match (size.dest_quota, known.api, offer) {
        (Some(q), _, _) if q.limit > 0 => (
            q.limit,
            Some(q.used),
            "the destination's quota (GETQUOTAROOT INBOX)".to_string(),
        ),
        (_, Some(q), _) if q.limit > 0 => (
            q.limit,
            Some(q.used),
            "the account's quota in the platform's API".to_string(),
        ),
        (_, _, Some(o)) => (o.bytes, None, format!("{}'s limit per account", o.offer)),
        _ => return None,
    };
    let after = used.unwrap_or(0).saturating_add(size.to_move_bytes);
    let fits = after <= limit;
    let warning = (!fits).then(|| {
        let held = used.map_or_else(String::new, |u| {
            format!(" + {} already there", human_bytes(u))
        });
        let bigger = match (offer, dest_kind) {
            (Some(o), _) => format!("move it to {} instead", o.instead),
            (None, PlatformKind::OvhExchange) => "give the account a bigger Exchange offer".into(),
            _ => "raise the account's quota on the destination".into(),
        };
        format!(
            "{address} will not fit: {} to move{held} is more than {} ({source}); {bigger}, \
             or leave folders out (`folders: {{exclude: [...]}}`), or skip large messages \
             (`options: {{max_message_size: ...}}`)",
            human_bytes(size.to_move_bytes),
            human_bytes(limit),
        )
    });
    Some(QuotaCheck {
        limit,
        used,
        source,
        fits,
        warning,
    })
}

/// The copy's duration at the measured (or default) rate, and the days its daily limits
/// stretch it to when they bind.
pub fn estimate(bytes: u64, measured: Option<(&str, Throughput)>, limits: &Limits) -> Estimate {
    let (rate, measured, basis) = match measured {
        Some((server, t)) if t.rate() > 0 => (
            t.rate(),
            true,
            format!(
                "{}/s measured on {server} ({} in {}, {})",
                human_bytes(t.rate()),
                human_bytes(t.bytes),
                duration(t.seconds),
                crate::render::time::human(t.at)
            ),
        ),
        _ => (
            DEFAULT_RATE,
            false,
            format!(
                "no measurement yet; assuming {}/s",
                human_bytes(DEFAULT_RATE)
            ),
        ),
    };
    let days = [&limits.download, &limits.upload]
        .into_iter()
        .flatten()
        .map(|l| bytes.div_ceil(l.bytes.max(1)))
        .max()
        .filter(|d| *d > 1);
    Estimate {
        seconds: bytes.div_ceil(rate.max(1)),
        rate,
        measured,
        basis,
        days,
    }
}

/// The time left of a copy in progress: what remains to move at the rate it went so far.
/// `None` until it has moved something (no rate yet).
pub fn eta(moved: u64, remaining: u64, elapsed_seconds: u64) -> Option<u64> {
    if moved == 0 || elapsed_seconds == 0 {
        return None;
    }
    // remaining / (moved / elapsed), in integers without overflow for any realistic size.
    Some(
        (u128::from(remaining) * u128::from(elapsed_seconds))
            .div_ceil(u128::from(moved))
            .min(u128::from(u64::MAX)) as u64,
    )
}

/// A duration for people: "45 s", "12 min", "3 h 20 min", "2 days 4 h".
pub fn duration(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds.div_ceil(60)),
        3600..86_400 => {
            let m = seconds.div_ceil(60);
            format!("{} h {} min", m / 60, m % 60)
        }
        _ => {
            let h = seconds.div_ceil(3600);
            format!("{} days {} h", h / 24, h % 24)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dest: &str) -> AccountSpec {
        let text = format!(
            "version: 1\nplatforms:\n  old: {{type: imap, imap: {{host: Old.Example.com, port: 993}}}}\n  \
             new: {dest}\naccounts:\n  - address: a@example.com\n    from: old\n    to: new\n    \
             source: {{password: {{env: X}}}}\n    destination: {{password: {{env: X}}}}\n"
        );
        let plan: crate::plan::model::Plan = serde_saphyr::from_str(&text).unwrap();
        AccountSpec::of(&plan, &plan.accounts[0]).unwrap()
    }

    fn size(to_move: u64, dest_quota: Option<ReportedQuota>) -> Size {
        Size {
            unit: "message",
            items: 10,
            bytes: to_move * 2,
            to_move_items: 5,
            to_move_bytes: to_move,
            method: "UID FETCH RFC822.SIZE",
            dest_quota,
        }
    }

    const MX_PLAN: SizeLimit = SizeLimit {
        bytes: 5_000_000_000,
        offer: "MX Plan",
        instead: "Exchange or Email Pro",
    };

    #[test]
    fn the_source_server_keys_the_throughput() {
        assert_eq!(
            source_server(&spec("{type: imap, imap: {host: n}}")),
            "imap://old.example.com:993"
        );
    }

    #[test]
    fn a_reported_quota_counts_what_the_destination_holds() {
        let a = spec("{type: imap, imap: {host: n}}");
        let q = ReportedQuota {
            used: 400_000,
            limit: 1_000_000,
        };
        let check = |bytes, known| {
            assess(
                &a,
                "r",
                size(bytes, Some(q)),
                known,
                None,
                &Limits::default(),
            )
            .quota
            .unwrap()
        };
        assert!(check(600_000, Known::default()).fits);
        let over = check(600_001, Known::default());
        assert!(!over.fits);
        assert_eq!(over.used, Some(400_000));
        let w = over.warning.unwrap();
        assert!(w.starts_with("a@example.com will not fit: 600.0 KB to move + 400.0 KB already there is more than 1.0 MB (the destination's quota (GETQUOTAROOT INBOX))"), "{w}");
        assert!(
            w.contains("raise the account's quota") && w.contains("max_message_size"),
            "{w}"
        );
        let api_and_offer = Known {
            api: Some(ReportedQuota {
                used: 0,
                limit: 50_000_000_000,
            }),
            offer: Some(MX_PLAN),
        };
        assert_eq!(
            check(600_001, api_and_offer).limit,
            1_000_000,
            "the server's own quota comes first"
        );
    }

    #[test]
    fn without_a_reported_quota_the_api_then_the_offer_limits() {
        let a = spec("{type: imap, imap: {host: n}}");
        let check = |known| {
            assess(
                &a,
                "r",
                size(6_000_000_000, None),
                known,
                None,
                &Limits::default(),
            )
            .quota
        };
        let offer = check(Known {
            api: None,
            offer: Some(MX_PLAN),
        })
        .unwrap();
        let w = offer.warning.unwrap();
        assert!(w.contains("6.0 GB to move is more than 5.0 GB (MX Plan's limit per account); move it to Exchange or Email Pro instead"), "{w}");
        let api = check(Known {
            api: Some(ReportedQuota {
                used: 45_000_000_000,
                limit: 50_000_000_000,
            }),
            offer: None,
        })
        .unwrap();
        assert_eq!((api.used, api.fits), (Some(45_000_000_000), false));
        assert_eq!(api.source, "the account's quota in the platform's API");
        assert_eq!(check(Known::default()), None, "no limit known: no check");
    }

    #[test]
    fn the_estimate_uses_the_measured_rate_or_says_it_assumes_one() {
        let t = Throughput {
            bytes: 40_000_000,
            seconds: 10,
            at: 0,
        };
        let e = estimate(
            8_000_000_000,
            Some(("imap://old:993", t)),
            &Limits::default(),
        );
        assert_eq!(
            (e.rate, e.seconds, e.measured, e.days),
            (4_000_000, 2000, true, None)
        );
        assert!(
            e.basis.starts_with("4.0 MB/s measured on imap://old:993"),
            "{}",
            e.basis
        );
        let d = estimate(8_000_000, None, &Limits::default());
        assert_eq!((d.seconds, d.measured), (4, false));
        assert_eq!(d.basis, "no measurement yet; assuming 2.0 MB/s");
    }

    #[test]
    fn daily_limits_that_bind_give_a_number_of_days() {
        let e = estimate(3_200_000_000, None, &Limits::of(&spec("{type: gmail}")));
        assert_eq!(e.days, Some(7), "500 MB a day of upload");
        assert_eq!(
            estimate(400_000_000, None, &Limits::of(&spec("{type: gmail}"))).days,
            None
        );
    }

    #[test]
    fn the_eta_is_what_remains_at_the_rate_so_far() {
        assert_eq!(eta(0, 100, 10), None, "nothing moved: no rate");
        assert_eq!(eta(100, 0, 10), Some(0));
        assert_eq!(eta(1_000, 3_000, 60), Some(180));
        assert_eq!(eta(3, 1, 1), Some(1), "rounded up");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(61), "2 min");
        assert_eq!(duration(3 * 3600 + 20 * 60), "3 h 20 min");
        assert_eq!(duration(2 * 86_400 + 4 * 3600), "2 days 4 h");
    }
}
