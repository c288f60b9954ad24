//! HTTP surface of jaga: `/metrics` in cAdvisor's names, the REST API and the dashboard.

pub mod metrics;
