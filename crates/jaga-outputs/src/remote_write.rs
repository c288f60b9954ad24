//! Prometheus remote write (protocol 1.0): a `WriteRequest` protobuf,
//! snappy-compressed (block format), POSTed to the receiver (Prometheus
//! with `--web.enable-remote-write-receiver`, VictoriaMetrics, Mimir,
//! Thanos). The message is four small types, so it is encoded here by
//! hand rather than through a protobuf code generator.
//!
//! The series are built from the agent's history points, the figures it
//! keeps per container and interval, so that after an outage the same
//! code sends what was missed, oldest first (the agent's exporter task
//! keeps the cursor and the rate limit).

use std::path::PathBuf;
use std::time::Duration;

use jaga_model::{HistoryPoint, RollupPoint};
use serde::{Deserialize, Serialize};

use crate::format::clean;
use crate::{http, BuildError, BuildKind, DeliveryError, Receipt, Secret};

/// `[remote_write]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteSettings {
    /// e.g. `http://prometheus:9090/api/v1/write`,
    /// `http://victoria:8428/api/v1/write`.
    pub url: String,
    /// `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    /// The receiver's CA (default the system's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A TLS client certificate and its key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// How often new points are sent when caught up.
    #[serde(default = "default_every", with = "humantime_serde")]
    pub every: Duration,
    /// Most samples sent per second, back-fill included, so a receiver
    /// coming back from an outage is not flooded.
    #[serde(default = "default_samples_per_second")]
    pub samples_per_second: u32,
    /// Most samples in one request.
    #[serde(default = "default_max_samples_per_request")]
    pub max_samples_per_request: u32,
    /// Each request, connecting included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_every() -> Duration {
    Duration::from_secs(10)
}

fn default_samples_per_second() -> u32 {
    10_000
}

fn default_max_samples_per_request() -> u32 {
    2_000
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

const KIND: BuildKind = BuildKind("remote_write");

/// The metric name of each history series (in `HISTORY_SERIES` order):
/// cAdvisor's where the figure is cAdvisor's gauge, `jaga_container_*`
/// for the per-second rates and CPU %, which cAdvisor only has as counters,
/// and for the disk usage of all volumes and of the log file (`/metrics`
/// has the volumes one by one).
pub const SERIES_NAMES: [&str; jaga_model::SERIES_COUNT] = [
    "jaga_container_cpu_percent",
    "container_memory_usage_bytes",
    "container_memory_working_set_bytes",
    "jaga_container_network_receive_bytes_per_second",
    "jaga_container_network_transmit_bytes_per_second",
    "jaga_container_fs_reads_bytes_per_second",
    "jaga_container_fs_writes_bytes_per_second",
    "container_processes",
    "container_spec_memory_limit_bytes",
    "container_fs_usage_bytes",
    "jaga_container_volumes_usage_bytes",
    "jaga_container_log_usage_bytes",
];

/// The one sample per series that a minute rollup stands for, stamped at
/// the minute's start, for a back-fill where the raw points were trimmed.
///
/// Every history series is a gauge (bytes, processes, a limit) or a rate
/// over the interval before its reading (CPU %, bytes per second); none
/// is a counter, whose last value would be the one to keep. The minute's
/// mean is the gauge's typical value, and for the rates the rate over the
/// whole minute. A series with no reading in the minute (the disk usage
/// between two filesystem walks) stays NaN and is not sent.
pub fn rollup_as_point(rollup: &RollupPoint) -> HistoryPoint {
    HistoryPoint {
        unix_ms: rollup.unix_ms,
        values: rollup.avg,
    }
}

/// One series with its samples, labels sorted by name (the protocol asks).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    /// (unix ms, value), oldest first.
    pub samples: Vec<(i64, f64)>,
}

/// A container's point as it is sent.
#[derive(Debug, Clone, Copy)]
pub struct ContainerPoint<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub image: &'a str,
    pub point: &'a HistoryPoint,
}

/// The series of `points`, labelled as cAdvisor labels a container
/// (`id` = `/docker/<id>`, `name`, `image`) plus `instance` (the agent)
/// and `job="jaga"`. Points of one container and series are merged into
/// one series.
pub fn series_of(points: &[ContainerPoint<'_>], instance: &str) -> Vec<Series> {
    let mut by_key: std::collections::BTreeMap<(&str, usize), Series> = Default::default();
    for point in points {
        for (index, name) in SERIES_NAMES.iter().enumerate() {
            let value = point.point.values[index];
            if !value.is_finite() {
                continue;
            }
            let series = by_key.entry((point.id, index)).or_insert_with(|| {
                let mut labels = vec![
                    ("__name__".to_owned(), (*name).to_owned()),
                    ("id".to_owned(), format!("/docker/{}", point.id)),
                    ("image".to_owned(), point.image.to_owned()),
                    ("instance".to_owned(), instance.to_owned()),
                    ("job".to_owned(), "jaga".to_owned()),
                    ("name".to_owned(), point.name.to_owned()),
                ];
                labels.sort();
                Series {
                    labels,
                    samples: Vec::new(),
                }
            });
            series.samples.push((point.point.unix_ms, value));
        }
    }
    let mut series: Vec<Series> = by_key.into_values().collect();
    for one in &mut series {
        one.samples.sort_by_key(|(ms, _)| *ms);
    }
    series
}

/// The `WriteRequest` protobuf of `series`:
/// `WriteRequest{1: repeated TimeSeries}`, `TimeSeries{1: repeated Label,
/// 2: repeated Sample}`, `Label{1: name, 2: value}`, `Sample{1: double
/// value, 2: int64 timestamp}`.
pub fn encode(series: &[Series]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut timeseries = Vec::new();
    let mut part = Vec::new();
    for one in series {
        timeseries.clear();
        for (name, value) in &one.labels {
            part.clear();
            put_bytes(&mut part, 1, name.as_bytes());
            put_bytes(&mut part, 2, value.as_bytes());
            put_bytes(&mut timeseries, 1, &part);
        }
        for (unix_ms, value) in &one.samples {
            part.clear();
            part.push(0x09); // field 1, 64-bit
            part.extend_from_slice(&value.to_le_bytes());
            part.push(0x10); // field 2, varint
            put_varint(&mut part, *unix_ms as u64);
            put_bytes(&mut timeseries, 2, &part);
        }
        put_bytes(&mut out, 1, &timeseries);
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field.
fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push((field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Sends write requests to one receiver.
pub struct RemoteWriter {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The URL without credentials, for errors.
    shown: String,
    bearer: Option<String>,
}

impl RemoteWriter {
    pub fn new(settings: &RemoteWriteSettings) -> Result<Self, BuildError> {
        let url = reqwest::Url::parse(&settings.url).map_err(|error| {
            KIND.invalid(
                "url",
                format!("'{}' is not a URL ({error})", clean(&settings.url)),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(KIND.invalid(
                "url",
                format!("scheme '{}' is not http or https", url.scheme()),
            ));
        }
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        let bearer = settings
            .bearer_token
            .as_ref()
            .map(|token| KIND.reveal("bearer_token", token))
            .transpose()?;
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("jaga/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let pem = read(path, "ca_file")?;
            for certificate in reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
                KIND.invalid("ca_file", format!("'{}': {error}", path.display()))
            })? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        match (&settings.client_cert, &settings.client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert, "client_cert")?;
                pem.push(b'\n');
                pem.extend(read(key, "client_key")?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|error| {
                    KIND.invalid(
                        "client_cert",
                        format!("'{}' with its key: {error}", cert.display()),
                    )
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(KIND.invalid("client_key", "a client_cert needs its key"))
            }
            (None, Some(_)) => {
                return Err(KIND.invalid("client_cert", "a client_key needs its cert"))
            }
        }
        let client = builder.build().map_err(|error| {
            KIND.invalid("url", format!("cannot build an HTTP client: {error}"))
        })?;
        Ok(Self {
            client,
            url,
            shown: shown.to_string(),
            bearer,
        })
    }

    /// The receiver's URL without credentials.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Sends one write request. A 4xx other than 429 is permanent: the
    /// receiver refuses these samples (too old, out of order, bad
    /// labels), and sending them again cannot help.
    pub async fn send(&self, series: &[Series]) -> Result<Receipt, DeliveryError> {
        let body = snap::raw::Encoder::new()
            .compress_vec(&encode(series))
            .map_err(|error| DeliveryError::Permanent {
                reason: format!("cannot snappy-compress a write request: {error}"),
                answer: String::new(),
            })?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0");
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        let result = http::post(
            request,
            "application/x-protobuf",
            body,
            &format!("remote write {}", self.shown),
        )
        .await;
        match result {
            // Prometheus before 2.44 answers 500 to samples it will never
            // take; retrying them would hold everything after them back.
            Err(DeliveryError::Transient { reason, .. }) if refused_samples(&reason) => {
                Err(DeliveryError::Permanent {
                    answer: reason.clone(),
                    reason,
                })
            }
            other => other,
        }
    }
}

/// An answer that says the samples themselves cannot be taken.
fn refused_samples(reason: &str) -> bool {
    [
        "too old sample",
        "out of bounds",
        "out of order sample",
        "duplicate sample",
    ]
    .iter()
    .any(|what| reason.contains(what))
}

fn read(path: &std::path::Path, key: &'static str) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path)
        .map_err(|error| KIND.invalid(key, format!("cannot read '{}': {error}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_write_request_as_protobuf() {
        let series = vec![Series {
            labels: vec![("__name__".to_owned(), "up".to_owned())],
            samples: vec![(1_700_000_000_000, 1.0)],
        }];
        let bytes = encode(&series);
        // WriteRequest.timeseries (field 1, length 34)
        //   Label (field 1, length 14): name "__name__", value "up"
        //   Sample (field 2, length 16): 1.0 at 1700000000000
        let mut expected = vec![0x0a, 34, 0x0a, 14, 0x0a, 8];
        expected.extend_from_slice(b"__name__");
        expected.extend_from_slice(&[0x12, 2]);
        expected.extend_from_slice(b"up");
        expected.extend_from_slice(&[0x12, 16, 0x09]);
        expected.extend_from_slice(&1.0f64.to_le_bytes());
        expected.push(0x10);
        put_varint(&mut expected, 1_700_000_000_000);
        assert_eq!(bytes, expected);
        let mut varint = Vec::new();
        put_varint(&mut varint, 300);
        assert_eq!(varint, [0xac, 0x02]);
    }

    #[test]
    fn a_rollup_is_sent_as_its_means_at_the_minute_start() {
        let mut avg = [5.0; jaga_model::SERIES_COUNT];
        avg[jaga_model::FS_SERIES_START] = f64::NAN;
        let rollup = RollupPoint {
            unix_ms: 60_000,
            count: 3,
            min: [1.0; jaga_model::SERIES_COUNT],
            avg,
            max: [9.0; jaga_model::SERIES_COUNT],
        };
        let point = rollup_as_point(&rollup);
        assert_eq!(point.unix_ms, 60_000);
        assert_eq!(point.values[0], 5.0);
        let points = [ContainerPoint {
            id: "abc",
            name: "web",
            image: "nginx",
            point: &point,
        }];
        let series = series_of(&points, "edge-1");
        // The series with no reading in the minute is left out.
        assert_eq!(series.len(), jaga_model::SERIES_COUNT - 1);
        assert!(series.iter().all(|s| s.samples == [(60_000, 5.0)]));
    }

    #[test]
    fn series_are_cadvisor_named_with_sorted_labels_and_the_instance() {
        let point = HistoryPoint {
            unix_ms: 2_000,
            values: [
                1.0,
                2.0,
                3.0,
                4.0,
                5.0,
                6.0,
                7.0,
                8.0,
                f64::NAN,
                10.0,
                f64::NAN,
                12.0,
            ],
        };
        let earlier = HistoryPoint {
            unix_ms: 1_000,
            ..point
        };
        let points = [
            ContainerPoint {
                id: "abc",
                name: "web",
                image: "nginx",
                point: &point,
            },
            ContainerPoint {
                id: "abc",
                name: "web",
                image: "nginx",
                point: &earlier,
            },
        ];
        let series = series_of(&points, "edge-1");
        // NaN (no memory limit, no volumes) is left out.
        assert_eq!(series.len(), 10);
        let memory = series
            .iter()
            .find(|s| s.labels[0].1 == "container_memory_usage_bytes")
            .unwrap();
        let names: Vec<&str> = memory.labels.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["__name__", "id", "image", "instance", "job", "name"]
        );
        assert_eq!(memory.labels[1].1, "/docker/abc");
        assert_eq!(memory.labels[3].1, "edge-1");
        assert_eq!(memory.samples, [(1_000, 2.0), (2_000, 2.0)]);
    }
}
