//! `/metrics` for a hand-built snapshot, compared byte for byte with golden
//! files written and checked by hand.

mod metrics_support;

use jaga_server::metrics::{render, ExpositionFormat, LabelOptions};
use metrics_support::{first_difference, fixture, two_containers};

fn assert_matches_golden(format: ExpositionFormat, file: &str) {
    let actual = render(&two_containers(), format, &LabelOptions::default());
    let path = fixture(file);
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read golden file '{}': {e}", path.display()));
    if let Some(diff) = first_difference(&actual, &expected) {
        panic!(
            "rendered text differs from '{}' at {diff}\n--- rendered ---\n{actual}",
            path.display()
        );
    }
}

#[test]
fn prometheus_text_matches_golden_file() {
    assert_matches_golden(ExpositionFormat::Prometheus, "two_containers.prom");
}

#[test]
fn openmetrics_text_matches_golden_file() {
    assert_matches_golden(ExpositionFormat::OpenMetrics, "two_containers.om");
}

#[test]
fn rendering_does_not_depend_on_container_order() {
    let mut snapshot = two_containers();
    let forward = render(
        &snapshot,
        ExpositionFormat::Prometheus,
        &LabelOptions::default(),
    );
    snapshot.containers.reverse();
    let backward = render(
        &snapshot,
        ExpositionFormat::Prometheus,
        &LabelOptions::default(),
    );
    assert_eq!(forward, backward);
}
