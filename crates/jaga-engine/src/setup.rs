//! How a container was set up (`docker inspect`), for its dashboard page:
//! command, ports, mounts, networks, restart policy and count, health,
//! limits. Secrets in the command and the health probe's output are
//! redacted as an exec's command is.

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::InspectContainerOptions;
use jaga_model::{ContainerSetup, HealthView, Limits, MountView, NetworkView, PortBinding};
use jaga_redact::Redaction;

use crate::{Engine, EngineError};

/// The health probe's last output is shown cut to this many characters.
const MAX_PROBE_OUTPUT: usize = 400;

impl Engine {
    /// The set-up of the container with this name or id.
    pub async fn setup(&self, name_or_id: &str) -> Result<ContainerSetup, EngineError> {
        let response = self
            .docker
            .inspect_container(name_or_id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| self.inspect_error(name_or_id, e))?;
        Ok(setup_from_inspect(response, self.redaction))
    }
}

pub(crate) fn setup_from_inspect(
    response: ContainerInspectResponse,
    redaction: Redaction,
) -> ContainerSetup {
    let config = response.config.unwrap_or_default();
    let host = response.host_config.unwrap_or_default();
    let network = response.network_settings.unwrap_or_default();

    let command_words: Vec<String> = response
        .path
        .into_iter()
        .filter(|p| !p.is_empty())
        .chain(response.args.unwrap_or_default())
        .collect();
    let command = redaction
        .command_line(&shell_words(&command_words))
        .into_owned();

    let mut ports: Vec<PortBinding> = Vec::new();
    for (container_port, bindings) in network.ports.unwrap_or_default() {
        match bindings.filter(|b| !b.is_empty()) {
            Some(bindings) => ports.extend(bindings.into_iter().map(|b| PortBinding {
                container_port: container_port.clone(),
                host_ip: b.host_ip.filter(|ip| !ip.is_empty()),
                host_port: b.host_port.filter(|port| !port.is_empty()),
            })),
            None => ports.push(PortBinding {
                container_port,
                host_ip: None,
                host_port: None,
            }),
        }
    }
    ports.sort_by(|a, b| {
        (&a.container_port, &a.host_ip, &a.host_port).cmp(&(
            &b.container_port,
            &b.host_ip,
            &b.host_port,
        ))
    });

    let mounts = response
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let kind = m.typ.map(|t| t.to_string()).unwrap_or_default();
            let source = match (&m.name, &m.source) {
                (Some(name), _) if kind == "volume" && !name.is_empty() => name.clone(),
                (_, Some(source)) => source.clone(),
                (Some(name), None) => name.clone(),
                (None, None) => String::new(),
            };
            MountView {
                kind,
                source,
                destination: m.destination.unwrap_or_default(),
                read_write: m.rw.unwrap_or(false),
            }
        })
        .collect();

    let mut networks: Vec<NetworkView> = network
        .networks
        .unwrap_or_default()
        .into_iter()
        .map(|(name, endpoint)| NetworkView {
            name,
            ip_address: endpoint.ip_address.unwrap_or_default(),
            gateway: endpoint.gateway.unwrap_or_default(),
        })
        .collect();
    networks.sort_by(|a, b| a.name.cmp(&b.name));

    let restart_policy = host
        .restart_policy
        .as_ref()
        .map(|policy| {
            let name = policy
                .name
                .map(|n| n.to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "no".to_owned());
            match policy.maximum_retry_count {
                Some(retries) if retries > 0 && name == "on-failure" => {
                    format!("{name}:{retries}")
                }
                _ => name,
            }
        })
        .unwrap_or_else(|| "no".to_owned());

    let health = response
        .state
        .and_then(|state| state.health)
        .and_then(|health| {
            let status = health
                .status
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none")?;
            let last_output = health
                .log
                .unwrap_or_default()
                .pop()
                .and_then(|probe| probe.output)
                .map(|output| {
                    let output = redaction.text(output.trim()).into_owned();
                    output.chars().take(MAX_PROBE_OUTPUT).collect()
                });
            Some(HealthView {
                status,
                failing_streak: health.failing_streak.unwrap_or(0),
                last_output,
            })
        });

    // Zero means unlimited in the Engine's answer.
    let positive = |v: Option<i64>| v.filter(|v| *v > 0);
    ContainerSetup {
        command,
        working_dir: config.working_dir.unwrap_or_default(),
        user: config.user.unwrap_or_default(),
        ports,
        mounts,
        networks,
        restart_policy,
        restart_count: response.restart_count.unwrap_or(0),
        health,
        limits: Limits {
            memory_bytes: positive(host.memory),
            nano_cpus: positive(host.nano_cpus),
            cpu_shares: positive(host.cpu_shares),
            cpuset_cpus: host.cpuset_cpus.filter(|c| !c.is_empty()),
            pids: positive(host.pids_limit),
        },
        privileged: host.privileged.unwrap_or(false),
        read_only_root: host.readonly_rootfs.unwrap_or(false),
        cap_add: host.cap_add.unwrap_or_default(),
        cap_drop: host.cap_drop.unwrap_or_default(),
    }
}

/// Words joined as a shell would read them back: a word with blanks or
/// quotes is single-quoted.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerConfig, ContainerState, EndpointSettings, Health, HealthStatusEnum,
        HealthcheckResult, HostConfig, MountPoint, NetworkSettings, RestartPolicy,
        RestartPolicyNameEnum,
    };
    use std::collections::HashMap;

    fn inspected() -> ContainerInspectResponse {
        ContainerInspectResponse {
            path: Some("sh".to_owned()),
            args: Some(vec![
                "-c".to_owned(),
                "PGPASSWORD=hunter2hunter2 psql -h db".to_owned(),
            ]),
            restart_count: Some(2),
            config: Some(ContainerConfig {
                working_dir: Some("/srv".to_owned()),
                user: Some("app".to_owned()),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::ON_FAILURE),
                    maximum_retry_count: Some(3),
                }),
                memory: Some(64 << 20),
                nano_cpus: Some(500_000_000),
                cpu_shares: Some(0),
                pids_limit: Some(0),
                readonly_rootfs: Some(true),
                cap_drop: Some(vec!["ALL".to_owned()]),
                ..Default::default()
            }),
            network_settings: Some(NetworkSettings {
                ports: Some(HashMap::from([
                    (
                        "80/tcp".to_owned(),
                        Some(vec![bollard::models::PortBinding {
                            host_ip: Some("127.0.0.1".to_owned()),
                            host_port: Some("8080".to_owned()),
                        }]),
                    ),
                    ("443/tcp".to_owned(), None),
                ])),
                networks: Some(HashMap::from([(
                    "bridge".to_owned(),
                    EndpointSettings {
                        ip_address: Some("172.17.0.2".to_owned()),
                        gateway: Some("172.17.0.1".to_owned()),
                        ..Default::default()
                    },
                )])),
                ..Default::default()
            }),
            mounts: Some(vec![
                MountPoint {
                    typ: Some("volume".to_owned()),
                    name: Some("data".to_owned()),
                    source: Some("/var/lib/docker/volumes/data/_data".to_owned()),
                    destination: Some("/data".to_owned()),
                    rw: Some(true),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("bind".to_owned()),
                    source: Some("/etc/app".to_owned()),
                    destination: Some("/config".to_owned()),
                    rw: Some(false),
                    ..Default::default()
                },
            ]),
            state: Some(ContainerState {
                health: Some(Health {
                    status: Some(HealthStatusEnum::UNHEALTHY),
                    failing_streak: Some(4),
                    log: Some(vec![HealthcheckResult {
                        output: Some("curl: (7) refused\n".to_owned()),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn inspect_becomes_the_setup_the_page_shows() {
        let setup = setup_from_inspect(inspected(), Redaction::Redact);
        assert_eq!(setup.restart_policy, "on-failure:3");
        assert_eq!(setup.restart_count, 2);
        assert_eq!(
            (setup.working_dir.as_str(), setup.user.as_str()),
            ("/srv", "app")
        );
        assert_eq!(setup.ports.len(), 2);
        assert_eq!(setup.ports[1].container_port, "80/tcp");
        assert_eq!(setup.ports[1].host_port.as_deref(), Some("8080"));
        assert_eq!(
            setup.ports[0].host_port, None,
            "443 is exposed, not published"
        );
        assert_eq!(setup.mounts[0].source, "data", "a volume shows by name");
        assert_eq!(setup.mounts[1].source, "/etc/app");
        assert!(!setup.mounts[1].read_write);
        assert_eq!(setup.networks[0].ip_address, "172.17.0.2");
        let health = setup.health.unwrap();
        assert_eq!(
            (health.status.as_str(), health.failing_streak),
            ("unhealthy", 4)
        );
        assert_eq!(health.last_output.as_deref(), Some("curl: (7) refused"));
        assert_eq!(setup.limits.memory_bytes, Some(64 << 20));
        assert_eq!(setup.limits.nano_cpus, Some(500_000_000));
        assert_eq!(setup.limits.cpu_shares, None, "zero is unlimited");
        assert_eq!(setup.limits.pids, None);
        assert!(setup.read_only_root);
        assert_eq!(setup.cap_drop, vec!["ALL"]);
    }

    #[test]
    fn secrets_in_the_command_are_redacted_unless_kept_raw() {
        let setup = setup_from_inspect(inspected(), Redaction::Redact);
        assert!(
            setup.command.starts_with("sh -c 'PGPASSWORD="),
            "{}",
            setup.command
        );
        assert!(
            !setup.command.contains("hunter2hunter2"),
            "{}",
            setup.command
        );
        let raw = setup_from_inspect(inspected(), Redaction::KeepRaw);
        assert_eq!(raw.command, "sh -c 'PGPASSWORD=hunter2hunter2 psql -h db'");
    }
}
