//! Label selection, sanitising and escaping; stopped containers; format
//! negotiation.

mod metrics_support;

use std::sync::Arc;

use jaga_server::metrics::{render, ExpositionFormat, LabelOptions};
use metrics_support::{host, snapshot, stopped, web, STOPPED_ID};

fn prometheus(snapshot: &jaga_model::Snapshot, options: &LabelOptions) -> String {
    render(snapshot, ExpositionFormat::Prometheus, options)
}

fn series_of<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .collect()
}

#[test]
fn every_label_is_exported_by_default() {
    let text = prometheus(&snapshot(vec![web()]), &LabelOptions::default());
    let line = series_of(&text, "container_memory_usage_bytes")[0];
    assert!(
        line.contains(r#"container_label_com_docker_compose_service="web""#),
        "{line}"
    );
    assert!(
        line.contains(r#"container_label_maintainer_email="ops@example.com""#),
        "{line}"
    );
}

#[test]
fn only_whitelisted_labels_are_exported_when_storing_is_off() {
    let options = LabelOptions {
        store_container_labels: false,
        whitelisted_container_labels: vec!["com.docker.compose.service".to_owned()],
    };
    let text = prometheus(&snapshot(vec![web(), host()]), &options);
    assert!(text.contains(r#"container_label_com_docker_compose_service="web""#));
    assert!(!text.contains("container_label_maintainer_email"), "{text}");
    assert!(!text.contains("container_label_com_example_tier"), "{text}");
    // The whitelist names labels as Docker spells them, not sanitised.
    let sanitised = LabelOptions {
        store_container_labels: false,
        whitelisted_container_labels: vec!["com_docker_compose_service".to_owned()],
    };
    assert!(!prometheus(&snapshot(vec![web()]), &sanitised).contains("container_label_"));
}

#[test]
fn no_container_labels_with_storing_off_and_empty_whitelist() {
    let options = LabelOptions {
        store_container_labels: false,
        whitelisted_container_labels: Vec::new(),
    };
    let text = prometheus(&snapshot(vec![web()]), &options);
    assert!(!text.contains("container_label_"), "{text}");
    let line = series_of(&text, "container_processes")[0];
    assert!(
        line.starts_with(r#"container_processes{id="/docker/"#),
        "{line}"
    );
}

#[test]
fn label_names_are_sanitised_and_values_escaped() {
    let mut c = web();
    Arc::make_mut(&mut c.container).labels.clear();
    Arc::make_mut(&mut c.container).labels.insert(
        "org.opencontainers.image/title-x".to_owned(),
        "back\\slash \"quoted\"\nnext".to_owned(),
    );
    Arc::make_mut(&mut c.container).name = "we\"ird\\name".to_owned();
    let text = prometheus(&snapshot(vec![c]), &LabelOptions::default());
    let line = series_of(&text, "container_processes")[0];
    assert!(
        line.contains(
            r#"container_label_org_opencontainers_image_title_x="back\\slash \"quoted\"\nnext""#
        ),
        "{line}"
    );
    assert!(line.contains(r#"name="we\"ird\\name""#), "{line}");
    assert!(
        !text.contains("\nnext"),
        "a raw newline escaped into the output"
    );
}

#[test]
fn labels_that_sanitise_alike_keep_the_first_in_byte_order() {
    let mut c = web();
    Arc::make_mut(&mut c.container).labels.clear();
    Arc::make_mut(&mut c.container)
        .labels
        .insert("a_b".to_owned(), "underscore".to_owned());
    Arc::make_mut(&mut c.container)
        .labels
        .insert("a.b".to_owned(), "dot".to_owned());
    let text = prometheus(&snapshot(vec![c]), &LabelOptions::default());
    let line = series_of(&text, "container_processes")[0];
    assert!(line.contains(r#"container_label_a_b="dot""#), "{line}");
    assert_eq!(line.matches("container_label_a_b=").count(), 1, "{line}");
}

#[test]
fn a_stopped_container_emits_no_series() {
    let text = prometheus(&snapshot(vec![web(), stopped()]), &LabelOptions::default());
    assert!(!text.contains(STOPPED_ID), "{text}");
    assert!(!text.contains(r#"name="old""#), "{text}");
    let alone = prometheus(&snapshot(vec![stopped()]), &LabelOptions::default());
    assert!(
        !alone
            .lines()
            .any(|l| l.starts_with("container_") || l.contains("container_label_")),
        "{alone}"
    );
    assert!(alone.contains("machine_cpu_cores 4\n"), "{alone}");
}

#[test]
fn no_network_series_for_host_network_or_unreadable_namespaces() {
    let mut unavailable = web();
    if let Some(sample) = unavailable.sample.as_mut() {
        sample.network = jaga_model::NetworkStats::Unavailable;
    }
    let text = prometheus(
        &snapshot(vec![host(), unavailable]),
        &LabelOptions::default(),
    );
    assert!(!text.contains("container_network_"), "{text}");
}

#[test]
fn empty_image_is_left_out_as_cadvisor_does() {
    let mut c = web();
    Arc::make_mut(&mut c.container).image.clear();
    let text = prometheus(&snapshot(vec![c]), &LabelOptions::default());
    assert!(!text.contains("image="), "{text}");
}

#[test]
fn fs_usage_without_data_root_has_an_empty_device() {
    let mut s = snapshot(vec![web()]);
    s.data_root = None;
    let text = prometheus(&s, &LabelOptions::default());
    let line = series_of(&text, "container_fs_usage_bytes")[0];
    assert!(line.contains(r#"device="""#), "{line}");
    assert!(!text.contains("jaga_docker_data_root_"), "{text}");
}

#[test]
fn float_specials_are_spelled_as_prometheus_wants() {
    let mut s = snapshot(Vec::new());
    s.agent.last_collection_seconds = f64::NAN;
    s.agent.collection_seconds_sum = f64::INFINITY;
    let text = prometheus(&s, &LabelOptions::default());
    assert!(
        text.contains("jaga_collection_duration_seconds_last NaN\n"),
        "{text}"
    );
    assert!(
        text.contains("jaga_collection_duration_seconds_total +Inf\n"),
        "{text}"
    );
}

#[test]
fn openmetrics_is_chosen_only_when_asked_for() {
    use ExpositionFormat::{OpenMetrics, Prometheus};
    // What Prometheus 2.x sends by default.
    let scraper = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(ExpositionFormat::from_accept(Some(scraper)), OpenMetrics);
    assert_eq!(
        ExpositionFormat::from_accept(Some("application/openmetrics-text")),
        OpenMetrics
    );
    assert_eq!(
        ExpositionFormat::from_accept(Some("Application/OpenMetrics-Text; version=1.0.0")),
        OpenMetrics
    );
    assert_eq!(ExpositionFormat::from_accept(None), Prometheus);
    assert_eq!(ExpositionFormat::from_accept(Some("")), Prometheus);
    assert_eq!(ExpositionFormat::from_accept(Some("*/*")), Prometheus);
    assert_eq!(
        ExpositionFormat::from_accept(Some("text/plain;version=0.0.4")),
        Prometheus
    );
    assert_eq!(
        ExpositionFormat::from_accept(Some("text/plain,application/openmetrics-text;q=0.5")),
        Prometheus
    );
    assert_eq!(
        ExpositionFormat::from_accept(Some("application/openmetrics-text;q=0")),
        Prometheus
    );
    assert_eq!(
        ExpositionFormat::from_accept(Some("application/json")),
        Prometheus
    );
}

#[test]
fn content_types_name_the_format_versions() {
    assert_eq!(
        ExpositionFormat::Prometheus.content_type(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        ExpositionFormat::OpenMetrics.content_type(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}

#[test]
fn openmetrics_ends_with_eof_and_prometheus_does_not() {
    let s = snapshot(vec![web()]);
    let om = render(&s, ExpositionFormat::OpenMetrics, &LabelOptions::default());
    assert!(om.ends_with("\n# EOF\n"), "{om}");
    assert_eq!(om.matches("# EOF").count(), 1);
    let prom = prometheus(&s, &LabelOptions::default());
    assert!(!prom.contains("# EOF"));
}
