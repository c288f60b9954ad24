//! `/metrics`: a [`Snapshot`] rendered in cAdvisor's metric names, help texts
//! and labels, so dashboards and alert rules written for cAdvisor work
//! unchanged.
//!
//! Two text formats are spoken: the Prometheus text exposition format 0.0.4
//! and OpenMetrics 1.0.0, picked from the scraper's `Accept` header with
//! [`ExpositionFormat::from_accept`].
//!
//! # What is emitted
//!
//! Every container series carries `id` (the cgroup path, e.g.
//! `/docker/<64 hex>`), `image` (left out when empty, as cAdvisor does), `name`
//! and one `container_label_<key>` per Docker label that [`LabelOptions`]
//! allows. Label keys are sanitised the way cAdvisor does it: every character
//! outside `[a-zA-Z0-9_]` becomes `_`; when two keys sanitise to the same name
//! the first in byte order wins.
//!
//! Only containers with a sample (that is, with processes) are rendered: a
//! stopped or removed container leaves `/metrics` on the next scrape.
//!
//! Output is deterministic: families come in the order of their names (as
//! Prometheus' Go client writes them), series are sorted by the `name` label,
//! then `id`, then the series' own labels (`interface`, `device`, ...), and
//! the labels of a series are sorted by label name. Families without series
//! are left out.
//!
//! Where cAdvisor is conditional, so is jaga: `container_cpu_cfs_*_total` and
//! `container_spec_cpu_quota` only for containers with a CFS quota,
//! `container_spec_cpu_period` when a period is known,
//! `container_threads` when threads were counted,
//! `container_start_time_seconds` when the start time is known.
//! `container_spec_memory_limit_bytes` and `container_threads_max` are `0`
//! when unlimited, `container_memory_swap` is `0` without swap accounting.
//!
//! # OpenMetrics
//!
//! Counter families are named without `_total` in `# TYPE` and `# HELP`
//! while their samples keep it; `jaga_build_info` becomes an `info` family
//! named `jaga_build`; the output ends with `# EOF`. `# UNIT` and `_created`
//! are not written (both are optional).
//!
//! cAdvisor's `container_memory_failcnt` is a counter whose name lacks
//! `_total`. OpenMetrics does not allow such a counter, and renaming it would
//! break existing queries, so in OpenMetrics output it is typed `unknown` with
//! the same sample name; the Prometheus format keeps cAdvisor's `counter`.
//!
//! # Numbers
//!
//! Integers are written as integers, nanosecond counters as exact decimal
//! seconds (`1500000000` ns is `1.5`), other floats in Rust's shortest
//! round-trip form, with an exponent only for very large or very small
//! magnitudes; infinities and NaN are spelled `+Inf`, `-Inf` and `NaN`.

mod families;
mod text;

use jaga_model::Snapshot;

use crate::listen::HttpStats;

/// The text format of a `/metrics` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// Prometheus text exposition format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0.0 text format.
    OpenMetrics,
}

impl ExpositionFormat {
    /// Chooses the format from an HTTP `Accept` header.
    ///
    /// OpenMetrics is chosen only when the header lists
    /// `application/openmetrics-text` with a quality at least as high as any
    /// range the Prometheus format satisfies (`text/plain`, `text/*`, `*/*`),
    /// as Prometheus' own scraper asks for it. Anything else, including no
    /// header, gets the Prometheus format.
    pub fn from_accept(header: Option<&str>) -> Self {
        let Some(header) = header else {
            return Self::Prometheus;
        };
        let mut openmetrics_q: f32 = 0.0;
        let mut text_q: f32 = 0.0;
        for range in header.split(',') {
            let mut parts = range.split(';');
            let media_type = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let mut quality: f32 = 1.0;
            for param in parts {
                if let Some((key, value)) = param.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("q") {
                        // An unreadable quality makes the range count for nothing.
                        quality = value.trim().parse().unwrap_or(0.0);
                    }
                }
            }
            match media_type.as_str() {
                "application/openmetrics-text" => openmetrics_q = openmetrics_q.max(quality),
                "text/plain" | "text/*" | "*/*" => text_q = text_q.max(quality),
                _ => {}
            }
        }
        if openmetrics_q > 0.0 && openmetrics_q >= text_q {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Which Docker labels become `container_label_*` labels, as cAdvisor's
/// `-store_container_labels` and `-whitelisted_container_labels` flags decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelOptions {
    /// Export every Docker label (cAdvisor's default).
    pub store_container_labels: bool,
    /// When `store_container_labels` is false, the label keys (as Docker
    /// names them, before sanitising) that are still exported.
    pub whitelisted_container_labels: Vec<String>,
}

impl Default for LabelOptions {
    fn default() -> Self {
        Self {
            store_container_labels: true,
            whitelisted_container_labels: Vec::new(),
        }
    }
}

impl LabelOptions {
    fn allows(&self, key: &str) -> bool {
        self.store_container_labels || self.whitelisted_container_labels.iter().any(|k| k == key)
    }
}

/// Renders the snapshot as a complete `/metrics` body in the given format.
pub fn render(snapshot: &Snapshot, format: ExpositionFormat, options: &LabelOptions) -> String {
    render_served(snapshot, None, Served::default(), format, options)
}

/// What only the serving agent knows, read at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Served<'a> {
    /// Its supervised tasks: `jaga_task_*`.
    pub tasks: &'a [jaga_model::TaskHealth],
    /// Its outputs' delivery: `jaga_output_*`.
    pub outputs: &'a [jaga_model::OutputStats],
}

/// [`render`], with what only the serving agent knows: its HTTP server's
/// `jaga_http_*` counters as they are at this instant, its supervised
/// tasks' `jaga_task_*` families and its outputs' `jaga_output_*`.
pub fn render_served(
    snapshot: &Snapshot,
    http: Option<&HttpStats>,
    served: Served<'_>,
    format: ExpositionFormat,
    options: &LabelOptions,
) -> String {
    let mut writer = text::Writer::new(format);
    let mut all = families::collect(snapshot, http, options);
    families::tasks(served.tasks, &mut all);
    families::outputs(served.outputs, &mut all);
    for family in all {
        writer.family(&family);
    }
    writer.finish()
}
