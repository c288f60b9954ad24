//! Facts for the audit: Engine API answers, daemon.json, dockerd's command
//! line, the socket's owner and mode, and the docker group.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    InspectContainerOptions, InspectNetworkOptions, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, ListNetworksOptions, ListVolumesOptions,
};
use jaga_audit::{AuditInput, DaemonFacts, ImageFacts, SocketFacts, UnusedNetwork, UnusedVolume};
use jaga_engine::Engine;

use super::packages::{component_provenance, PackageSources};
use crate::own_container;
use crate::sources::filesystem::{disk_usage, WalkBudget};

/// Where to look on the host.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub root: PathBuf,
    pub daemon_json: PathBuf,
    /// Alpine secdb files or APKBUILDs (`[audit] alpine_secfixes`), in
    /// jaga's own filesystem.
    pub alpine_secfixes: Vec<PathBuf>,
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Every container (all states), image, unused volume and network, and the daemon.
pub async fn gather(engine: &Engine, paths: &HostPaths) -> anyhow::Result<AuditInput> {
    let docker = engine.client();
    let listed = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default().all(true).build(),
        ))
        .await
        .context("cannot list containers")?;
    let mut containers = Vec::with_capacity(listed.len());
    for summary in listed {
        let Some(id) = summary.id else { continue };
        if let Some(c) = inspect_container(engine, &id).await? {
            containers.push(c);
        }
    }
    let images = gather_images(engine, &containers).await?;
    let unused_volumes = gather_volumes(engine, &paths.root).await?;
    let unused_networks = gather_networks(engine).await?;
    let daemon = gather_daemon(engine, paths).await?;
    let processes = gather_processes(&paths.root).await;
    Ok(AuditInput {
        containers,
        images,
        unused_volumes,
        unused_networks,
        daemon,
        now_unix: crate::clock::unix_secs(),
        cves: None,
        processes,
    })
}

/// The processes of every container, from one look at the host's /proc
/// (CIS 5.6); `None` when /proc cannot be listed.
async fn gather_processes(
    root: &Path,
) -> Option<std::collections::BTreeMap<String, Vec<jaga_audit::ProcessFacts>>> {
    let root = root.to_path_buf();
    let scanned = tokio::task::spawn_blocking(move || jaga_process::scan_containers(&root)).await;
    match scanned {
        Ok(Ok(found)) => Some(
            found
                .into_iter()
                .map(|(id, processes)| {
                    let facts = processes
                        .into_iter()
                        .map(|p| jaga_audit::ProcessFacts {
                            pid: p.pid,
                            name: p.comm,
                            exe: p.exe,
                        })
                        .collect();
                    (id, facts)
                })
                .collect(),
        ),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot list processes; CIS 5.6 (sshd in containers) not checked");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "listing processes stopped; CIS 5.6 not checked");
            None
        }
    }
}

/// One container, for the checks run when it starts. `None`: gone, or
/// jaga's own container (see [`crate::own_container`]), which is not audited.
pub async fn inspect_container(
    engine: &Engine,
    id: &str,
) -> anyhow::Result<Option<ContainerInspectResponse>> {
    match engine
        .client()
        .inspect_container(id, Some(InspectContainerOptions { size: true }))
        .await
    {
        Ok(c) if own_container::is_own(&c, own_container::own_container_id()) => {
            tracing::debug!(container_id = %id, "not auditing jaga's own container");
            Ok(None)
        }
        Ok(c) => Ok(Some(c)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot inspect container {id}")),
    }
}

async fn gather_images(
    engine: &Engine,
    containers: &[ContainerInspectResponse],
) -> anyhow::Result<Vec<ImageFacts>> {
    let docker = engine.client();
    // How live (not exited) containers name each image id.
    let mut referenced: HashMap<String, Vec<String>> = HashMap::new();
    let mut used: HashSet<String> = HashSet::new();
    for c in containers {
        let Some(image_id) = c.image.clone() else {
            continue;
        };
        used.insert(image_id.clone());
        let exited = c
            .state
            .as_ref()
            .and_then(|s| s.status)
            .is_some_and(|s| matches!(s.to_string().as_str(), "exited" | "dead"));
        if !exited {
            if let Some(name) = c.config.as_ref().and_then(|cfg| cfg.image.clone()) {
                referenced.entry(image_id).or_default().push(name);
            }
        }
    }
    let summaries = docker
        .list_images(Some(ListImagesOptionsBuilder::default().all(false).build()))
        .await
        .context("cannot list images")?;
    let mut images = Vec::new();
    for summary in summaries {
        let untagged = summary.repo_tags.iter().all(|t| t == "<none>:<none>");
        let dangling = untagged && !used.contains(&summary.id);
        let referenced_as = referenced.remove(&summary.id).unwrap_or_default();
        if !dangling && referenced_as.is_empty() {
            continue;
        }
        let inspect = match docker.inspect_image(&summary.id).await {
            Ok(inspect) => inspect,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot inspect image {}", summary.id))
            }
        };
        let history = if dangling {
            Vec::new()
        } else {
            docker
                .image_history(&summary.id)
                .await
                .with_context(|| format!("cannot read the history of image {}", summary.id))?
        };
        images.push(ImageFacts {
            inspect,
            history,
            dangling,
            referenced_as,
        });
    }
    Ok(images)
}

async fn gather_volumes(engine: &Engine, root: &Path) -> anyhow::Result<Vec<UnusedVolume>> {
    let options = ListVolumesOptions {
        filters: Some(HashMap::from([(
            "dangling".to_owned(),
            vec!["true".to_owned()],
        )])),
    };
    let response = engine
        .client()
        .list_volumes(Some(options))
        .await
        .context("cannot list volumes")?;
    let budget = WalkBudget {
        max_entries: 100_000,
        max_time: Duration::from_secs(2),
    };
    let mut volumes: Vec<UnusedVolume> = response
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            let mut unreadable = 0;
            let bytes = disk_usage(
                &under(root, Path::new(&v.mountpoint)),
                budget,
                &mut unreadable,
            )
            .ok()
            .filter(|walk| !walk.truncated)
            .map(|walk| walk.bytes);
            UnusedVolume {
                name: v.name,
                bytes,
            }
        })
        .collect();
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(volumes)
}

async fn gather_networks(engine: &Engine) -> anyhow::Result<Vec<UnusedNetwork>> {
    let docker = engine.client();
    let networks = docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .context("cannot list networks")?;
    let mut unused = Vec::new();
    for network in networks {
        let name = network.name.unwrap_or_default();
        let id = network.id.unwrap_or_default();
        if matches!(name.as_str(), "bridge" | "host" | "none") || id.is_empty() {
            continue;
        }
        let inspected = docker
            .inspect_network(&id, None::<InspectNetworkOptions>)
            .await
            .with_context(|| format!("cannot inspect network {name}"))?;
        if inspected.containers.unwrap_or_default().is_empty() {
            unused.push(UnusedNetwork { id, name });
        }
    }
    unused.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(unused)
}

/// The daemon's facts alone (what `jaga audit --explain` needs).
pub async fn gather_daemon(engine: &Engine, paths: &HostPaths) -> anyhow::Result<DaemonFacts> {
    let docker = engine.client();
    let info = docker
        .info()
        .await
        .context("cannot read the daemon's info")?;
    let version = docker
        .version()
        .await
        .context("cannot read the daemon's version")?;
    let json_path = under(&paths.root, &paths.daemon_json);
    let daemon_json = match std::fs::read_to_string(&json_path) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .with_context(|| format!("'{}' is not valid JSON", paths.daemon_json.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read '{}'", paths.daemon_json.display()))
        }
    };
    let socket = engine
        .endpoint()
        .strip_prefix("unix://")
        .and_then(|path| socket_facts(&paths.root, path));
    let sources = PackageSources {
        root: &paths.root,
        alpine_secfixes: &paths.alpine_secfixes,
    };
    let local = engine.endpoint().starts_with("unix://");
    let packages = component_provenance(&sources, &info, local).await;
    Ok(DaemonFacts {
        info: Some(info),
        version: Some(version),
        daemon_json,
        daemon_json_path: paths.daemon_json.display().to_string(),
        dockerd_args: dockerd_args(&paths.root),
        socket,
        docker_group_members: group_members(&paths.root, "docker"),
        packages,
    })
}

fn dockerd_args(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join("proc")) else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_dockerd =
            std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "dockerd");
        if is_dockerd {
            if let Ok(cmdline) = std::fs::read(dir.join("cmdline")) {
                return cmdline
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
            }
        }
    }
    Vec::new()
}

fn socket_facts(root: &Path, path: &str) -> Option<SocketFacts> {
    let meta = std::fs::metadata(under(root, Path::new(path))).ok()?;
    let users = id_names(&root.join("etc/passwd"));
    let groups = id_names(&root.join("etc/group"));
    Some(SocketFacts {
        path: path.to_owned(),
        mode: meta.permissions().mode() & 0o7777,
        owner: users
            .get(&meta.uid())
            .cloned()
            .unwrap_or_else(|| meta.uid().to_string()),
        group: groups
            .get(&meta.gid())
            .cloned()
            .unwrap_or_else(|| meta.gid().to_string()),
    })
}

/// `name:x:id:…` files (/etc/passwd, /etc/group): id → name.
fn id_names(path: &Path) -> BTreeMap<u32, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse().ok()?;
            Some((id, name.to_owned()))
        })
        .collect()
}

fn group_members(root: &Path, group: &str) -> Vec<String> {
    std::fs::read_to_string(root.join("etc/group"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&group)).then(|| {
                fields
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            })
        })
        .unwrap_or_default()
}
