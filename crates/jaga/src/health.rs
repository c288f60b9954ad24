//! `jaga health`: asks a running `jaga serve` for `/healthz` and exits 0
//! when it answers 200. The container image's HEALTHCHECK: a `FROM
//! scratch` image has no curl.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use jaga_config::Config;

use crate::agent_client::loopback_if_unspecified;

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The URL to ask [default: /healthz on serve.listen, on loopback when it listens on every address]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Give up after this long
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = jaga_config::parse_period)]
    pub timeout: Duration,
}

pub fn run(args: HealthArgs, config: &Config) -> anyhow::Result<()> {
    let tls = !config.serve.tls.cert_file.as_os_str().is_empty();
    let url = args
        .url
        .unwrap_or_else(|| healthz_url(config.serve.listen, tls));
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        // The probe reads one status from jaga's own address and sends no
        // credential: a self-signed serve.tls certificate must not fail it.
        .danger_accept_invalid_certs(true)
        .build()
        .context("cannot set up the HTTP client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (status, body) = runtime.block_on(async {
        let response = client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("no answer from '{url}'"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        anyhow::Ok((status, body))
    })?;
    let body = jaga_model::escape_control(body.trim());
    anyhow::ensure!(status.is_success(), "'{url}' answered {status}: {body}");
    println!("{status}: {body}");
    Ok(())
}

/// `/healthz` on the address `jaga serve` listens on; an unspecified
/// address (0.0.0.0, ::) is reached on loopback.
fn healthz_url(listen: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}/healthz", loopback_if_unspecified(listen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        let url = |text: &str, tls| healthz_url(text.parse().unwrap(), tls);
        assert_eq!(url("0.0.0.0:9808", false), "http://127.0.0.1:9808/healthz");
        assert_eq!(url("[::]:9808", true), "https://[::1]:9808/healthz");
        assert_eq!(url("10.1.2.3:80", false), "http://10.1.2.3:80/healthz");
    }
}
