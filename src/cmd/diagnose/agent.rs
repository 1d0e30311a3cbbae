//! Reads an origin agent's `/metrics` for `diagnose --agent URL`.

use std::time::Duration;

pub async fn fetch(url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("reading the agent at {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the agent at {url} answered {}", response.status()));
    }
    response
        .text()
        .await
        .map_err(|e| format!("reading the agent at {url}: {e}"))
}
