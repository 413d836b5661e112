//! Asking the shards: one GET of `/api/status` per shard, all at once, over reqwest with TLS
//! verified (the client of `auth::http`), with the watch's bearer token when one is given.
//! Each answer is read on a blocking thread: a shard of 10,000 accounts is megabytes of JSON,
//! and ten of them parse faster side by side than one after the other.

use std::time::{Duration, Instant};

use crate::plan::secret::Secret;
use crate::watch::status::{Snapshot, unix_now};

use super::merge::Answer;

/// How long one shard gets to answer before it counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The `/api/status` URL of a shard given as its base URL (`http://shard-0:8470`) or as the
/// document's own URL; an error names the argument and what is expected.
pub fn status_url(given: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(given.trim()).map_err(|e| {
        format!("{given}: not a URL ({e}); give each shard's watch as http://HOST:PORT")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{given}: a shard's watch is reached over http or https, not {}",
            url.scheme()
        ));
    }
    let text = url.as_str().trim_end_matches('/');
    Ok(if text.ends_with("/api/status") {
        text.to_string()
    } else {
        format!("{text}/api/status")
    })
}

/// The HTTP client: certificates verified against the platform's trust store.
pub fn client() -> Result<reqwest::Client, String> {
    crate::auth::http::Http::new(None).map(|h| h.client().clone())
}

/// Asks every URL at once; answers in the order of `urls`.
pub async fn fetch_all(
    client: &reqwest::Client,
    urls: &[String],
    token: Option<&Secret>,
) -> Vec<Answer> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, url) in urls.iter().enumerate() {
        let client = client.clone();
        let url = url.clone();
        let token = token.map(|t| t.expose().to_string());
        tasks.spawn(async move { (i, fetch_one(&client, &url, token.as_deref()).await) });
    }
    let mut answers: Vec<Option<Answer>> = vec![None; urls.len()];
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, a)) = done {
            answers[i] = Some(a);
        }
    }
    answers
        .into_iter()
        .zip(urls)
        .map(|(a, url)| {
            a.unwrap_or_else(|| Answer {
                url: url.clone(),
                result: Err("the request was lost (a bug: please report it)".into()),
                answered_at: None,
                latency_ms: None,
                last_shard: None,
            })
        })
        .collect()
}

async fn fetch_one(client: &reqwest::Client, url: &str, token: Option<&str>) -> Answer {
    let started = Instant::now();
    let result = ask(client, url, token).await;
    let ok = result.is_ok();
    Answer {
        url: url.to_string(),
        result,
        answered_at: ok.then(unix_now),
        latency_ms: ok.then(|| started.elapsed().as_millis() as u64),
        last_shard: None,
    }
}

async fn ask(client: &reqwest::Client, url: &str, token: Option<&str>) -> Result<Snapshot, String> {
    let mut request = client.get(url).timeout(TIMEOUT);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    // reqwest's messages name the URL, never the headers: the token stays out of them.
    let answer = request
        .send()
        .await
        .map_err(|e| format!("cannot reach it: {}", chain(&e)))?;
    let status = answer.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(if token.is_some() {
            "it refused the token (401): give --token the token of the shards' watch".into()
        } else {
            "it needs a token (401): give --token, written as the watch's".into()
        });
    }
    if !status.is_success() {
        return Err(format!("it answered HTTP {status}"));
    }
    let body = answer
        .bytes()
        .await
        .map_err(|e| format!("its answer broke off: {}", chain(&e)))?;
    tokio::task::spawn_blocking(move || serde_json::from_slice::<Snapshot>(&body))
        .await
        .map_err(|e| format!("reading its answer failed: {e}"))?
        .map_err(|e| format!("its answer is not a mailshift status document: {e}"))
}

/// The error's causes: reqwest's own message repeats the URL, which the sentence names already.
fn chain(e: &dyn std::error::Error) -> String {
    let Some(first) = e.source() else {
        return e.to_string();
    };
    let mut out = first.to_string();
    let mut source = first.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_the_status_path_and_other_schemes_are_refused() {
        assert_eq!(
            status_url("http://shard-0.mailshift:8470").unwrap(),
            "http://shard-0.mailshift:8470/api/status"
        );
        assert_eq!(
            status_url("https://h/prefix/").unwrap(),
            "https://h/prefix/api/status"
        );
        assert_eq!(
            status_url("http://127.0.0.1:1/api/status").unwrap(),
            "http://127.0.0.1:1/api/status"
        );
        assert!(status_url("ftp://h").unwrap_err().contains("http or https"));
        assert!(status_url("shard-0:8470/x").is_err());
    }
}
