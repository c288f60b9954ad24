//! The checks. Each has an id (the CIS Docker Benchmark's where one exists,
//! else `jaga-…`), a threat, a practice, a severity and a remediation; it
//! yields a finding per object that fails it.

use std::collections::BTreeMap;

use bollard::models::{ContainerInspectResponse, RestartPolicyNameEnum};
use jaga_model::{Finding, FindingObject, Practice, Severity, Threat, DANGEROUS_CAPABILITIES};

use crate::facts::{AuditInput, DaemonFacts, ImageFacts};
use crate::secrets::{history_assignments, looks_secret, redacted};
use crate::versions::{decide, threat_of, CveTable, Outcome};

/// Which checks and containers to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Container names or id prefixes; empty: all. When set, only those
    /// containers' checks run.
    pub containers: Vec<String>,
    /// Check ids or prefixes (`5.`, `jaga-secret`); empty: all.
    pub checks: Vec<String>,
    pub skip: Vec<String>,
}

impl Selection {
    fn wants_check(&self, id: &str) -> bool {
        let matches = |pattern: &String| id == pattern || id.starts_with(pattern.as_str());
        (self.checks.is_empty() || self.checks.iter().any(matches))
            && !self.skip.iter().any(matches)
    }

    fn wants_container(&self, c: &ContainerInspectResponse) -> bool {
        if self.containers.is_empty() {
            return true;
        }
        let id = c.id.as_deref().unwrap_or_default();
        let name = c
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/');
        self.containers
            .iter()
            .any(|want| want == name || (!want.is_empty() && id.starts_with(want.as_str())))
    }
}

/// A check's fixed description.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub threat: Threat,
    pub practice: Practice,
    pub remediation: &'static str,
}

use Practice::{
    AccessControl, DataAndConfigurationManagement as DataConfig, KeepingDockerUpToDate,
    NetworkConfiguration,
};
use Severity::{Critical, High, Info, Low, Medium};
use Threat::{
    ContainerBreakout, ContainerEscape, ContainerHijacking, ContainerSprawl, ImagePoisoning,
};

macro_rules! check {
    ($name:ident, $id:literal, $sev:ident, $threat:ident, $practice:ident, $title:literal, $fix:literal) => {
        pub const $name: Check = Check {
            id: $id,
            title: $title,
            severity: $sev,
            threat: $threat,
            practice: $practice,
            remediation: $fix,
        };
    };
}

// Containers (CIS section 5, and 4.1 for the user).
check!(PRIVILEGED, "5.4", Critical, ContainerEscape, AccessControl, "Container runs privileged", "Remove --privileged; grant only the capabilities (--cap-add) and devices (--device) the workload needs.");
check!(DOCKER_SOCKET, "5.31", Critical, ContainerEscape, AccessControl, "Docker socket mounted into the container", "Do not mount docker.sock: whoever controls it controls the host. Use a narrowly scoped API proxy if the container must talk to Docker.");
check!(SENSITIVE_MOUNT, "5.5", High, ContainerEscape, DataConfig, "Sensitive host directory mounted", "Mount only the application's own data directories; never /, /etc, /proc, /sys, /dev, /boot, /usr, /lib or /var/lib/docker.");
check!(
    HOST_PID,
    "5.15",
    High,
    ContainerEscape,
    AccessControl,
    "Host PID namespace shared",
    "Remove --pid=host; the container can see and signal every process on the host."
);
check!(HOST_NETWORK, "5.9", High, ContainerBreakout, NetworkConfiguration, "Host network namespace shared", "Remove --network=host and publish only the ports needed with -p 127.0.0.1:PORT:PORT or a user-defined network.");
check!(
    HOST_IPC,
    "5.16",
    Medium,
    ContainerBreakout,
    AccessControl,
    "Host IPC namespace shared",
    "Remove --ipc=host."
);
check!(
    HOST_UTS,
    "5.20",
    Low,
    ContainerBreakout,
    AccessControl,
    "Host UTS namespace shared",
    "Remove --uts=host."
);
check!(
    HOST_USERNS,
    "5.30",
    Medium,
    ContainerEscape,
    AccessControl,
    "Host user namespace shared while the daemon remaps users",
    "Remove --userns=host so the container runs in the daemon's remapped user namespace."
);
check!(CAPS_ADDED, "5.3", High, ContainerEscape, AccessControl, "Dangerous capabilities added", "Drop the added capabilities; SYS_ADMIN, SYS_PTRACE, SYS_MODULE, NET_ADMIN and the like open ways to the host.");
check!(
    CAPS_NOT_DROPPED,
    "jaga-5.3-drop",
    Low,
    ContainerEscape,
    AccessControl,
    "Default capabilities not dropped",
    "Start with --cap-drop ALL and add back only what the workload needs."
);
check!(
    SECCOMP_OFF,
    "5.21",
    High,
    ContainerEscape,
    AccessControl,
    "Seccomp profile disabled",
    "Remove --security-opt seccomp=unconfined; use the default profile or a custom one."
);
check!(
    APPARMOR_OFF,
    "5.1",
    Medium,
    ContainerEscape,
    AccessControl,
    "AppArmor profile disabled",
    "Remove --security-opt apparmor=unconfined; use docker-default or a custom profile."
);
check!(
    NO_NEW_PRIVS,
    "5.25",
    Medium,
    ContainerEscape,
    AccessControl,
    "Container can acquire new privileges",
    "Run with --security-opt no-new-privileges (or set no-new-privileges in daemon.json)."
);
check!(
    RUNS_AS_ROOT,
    "4.1",
    Medium,
    ContainerEscape,
    AccessControl,
    "Container runs as root",
    "Run as an unprivileged user: USER in the Dockerfile or --user UID:GID."
);
check!(
    WRITABLE_ROOT,
    "5.12",
    Low,
    ContainerBreakout,
    DataConfig,
    "Root filesystem is writable",
    "Run with --read-only and mount writable tmpfs or volumes only where the application writes."
);
check!(
    NO_MEMORY_LIMIT,
    "5.10",
    Medium,
    ContainerBreakout,
    DataConfig,
    "No memory limit",
    "Set --memory so one container cannot exhaust the host's memory."
);
check!(
    NO_CPU_LIMIT,
    "5.11",
    Low,
    ContainerBreakout,
    DataConfig,
    "No CPU limit or priority",
    "Set --cpus (or --cpu-shares) so one container cannot starve the others."
);
check!(
    NO_PIDS_LIMIT,
    "5.28",
    Medium,
    ContainerBreakout,
    DataConfig,
    "No PIDs limit",
    "Set --pids-limit to stop fork bombs."
);
check!(PUBLIC_PORT, "5.13", Medium, ContainerHijacking, NetworkConfiguration, "Port published on all interfaces", "Bind published ports to a specific address: -p 127.0.0.1:PORT:PORT, or the address of the interface that should serve it.");
check!(
    PRIVILEGED_PORT,
    "5.7",
    Low,
    ContainerHijacking,
    NetworkConfiguration,
    "Privileged host port mapped",
    "Publish on a host port above 1023 unless the service must own a well-known port."
);
check!(RESTART_POLICY, "5.14", Low, ContainerBreakout, DataConfig, "No restart policy, or an unbounded one", "Use --restart on-failure:5 so a failing container neither stays down unnoticed nor restarts forever.");
check!(
    NO_HEALTHCHECK,
    "5.26",
    Low,
    ContainerHijacking,
    DataConfig,
    "No health check",
    "Add a HEALTHCHECK to the image or --health-cmd at run time."
);
check!(
    HOST_DEVICES,
    "5.17",
    High,
    ContainerEscape,
    AccessControl,
    "Host devices exposed",
    "Remove --device options unless the device is needed, and then grant read-only access (:r)."
);
check!(
    SHARED_PROPAGATION,
    "5.19",
    Medium,
    ContainerEscape,
    DataConfig,
    "Mount propagation set to shared",
    "Use private (the default) mount propagation."
);
check!(
    SSHD_IN_CONTAINER,
    "5.6",
    Medium,
    ContainerHijacking,
    AccessControl,
    "sshd runs inside the container",
    "Remove the SSH daemon from the image; use docker exec (with the daemon's access control) to get into a container."
);
check!(SECRET_IN_CONFIG, "jaga-secret", High, ContainerHijacking, DataConfig, "Secret in environment variables or labels", "Pass secrets as files (Docker secrets, a read-only mount, or *_FILE variables) rather than environment variables or labels, which docker inspect shows to anyone with API access.");
// Images (CIS section 4).
check!(
    IMAGE_ROOT,
    "4.1",
    Medium,
    ImagePoisoning,
    AccessControl,
    "Image runs as root",
    "Add a USER instruction with an unprivileged user to the Dockerfile."
);
check!(
    IMAGE_NO_HEALTHCHECK,
    "4.6",
    Low,
    ImagePoisoning,
    DataConfig,
    "Image has no HEALTHCHECK",
    "Add a HEALTHCHECK instruction to the Dockerfile."
);
check!(
    IMAGE_LATEST,
    "jaga-image-latest",
    Low,
    ImagePoisoning,
    KeepingDockerUpToDate,
    "Image used as 'latest' or without a tag",
    "Use an explicit version tag (and pin its digest) so what runs is what was tested."
);
check!(
    IMAGE_NOT_PINNED,
    "jaga-image-digest",
    Low,
    ImagePoisoning,
    DataConfig,
    "Image not pinned by digest",
    "Refer to images as name@sha256:… so a re-pushed tag cannot change what runs."
);
check!(
    IMAGE_OLD,
    "jaga-image-age",
    Low,
    ImagePoisoning,
    KeepingDockerUpToDate,
    "Image older than 90 days",
    "Rebuild the image on a fresh base to pick up security fixes."
);
check!(IMAGE_SECRET, "4.10", High, ImagePoisoning, DataConfig, "Secret in the image's ENV, ARG or build history", "Never put secrets in ENV or ARG: they stay in the image history. Use build secrets (RUN --mount=type=secret) and rebuild; rotate the exposed secret.");
// Sprawl (CIS section 6).
check!(
    EXITED_CONTAINER,
    "6.2",
    Info,
    ContainerSprawl,
    DataConfig,
    "Exited container kept",
    "Remove containers you no longer need (docker container prune), or run them with --rm."
);
check!(
    DANGLING_IMAGE,
    "6.1",
    Low,
    ContainerSprawl,
    DataConfig,
    "Dangling image",
    "Remove unused images: docker image prune."
);
check!(
    UNUSED_VOLUME,
    "jaga-sprawl-volume",
    Low,
    ContainerSprawl,
    DataConfig,
    "Volume used by no container",
    "Back up what you need, then docker volume rm it (or docker volume prune)."
);
check!(
    UNUSED_NETWORK,
    "jaga-sprawl-network",
    Info,
    ContainerSprawl,
    NetworkConfiguration,
    "Network used by no container",
    "Remove it with docker network rm (or docker network prune)."
);
// Daemon (CIS sections 1, 2, 3).
check!(TCP_NO_TLS, "2.6", Critical, ContainerHijacking, AccessControl, "Daemon listens on TCP without TLS authentication", "Stop exposing the API on tcp:// without --tlsverify: anyone who reaches the port owns the host. Use the unix socket, SSH (DOCKER_HOST=ssh://), or TLS with client certificates.");
check!(
    SOCKET_OWNER,
    "3.15",
    High,
    ContainerHijacking,
    AccessControl,
    "Docker socket not owned by root:docker",
    "chown root:docker on the socket."
);
check!(
    SOCKET_MODE,
    "3.16",
    High,
    ContainerHijacking,
    AccessControl,
    "Docker socket permissions wider than 660",
    "chmod 660 on the socket."
);
check!(
    DOCKER_GROUP,
    "1.2.2",
    Low,
    ContainerHijacking,
    AccessControl,
    "Users in the docker group control the daemon",
    "Keep the docker group to trusted administrators: membership equals root on this host."
);
check!(
    ICC,
    "2.1",
    Medium,
    ContainerBreakout,
    NetworkConfiguration,
    "Inter-container communication allowed on the default bridge",
    "Set \"icc\": false in daemon.json and link containers on user-defined networks."
);
check!(NO_USERNS, "2.8", Medium, ContainerEscape, AccessControl, "User namespace remapping not enabled", "Set \"userns-remap\": \"default\" in daemon.json so root in a container is not root on the host.");
check!(
    NO_LIVE_RESTORE,
    "2.13",
    Low,
    ContainerBreakout,
    DataConfig,
    "Live restore disabled",
    "Set \"live-restore\": true in daemon.json so containers keep running while dockerd restarts."
);
check!(LOG_ROTATION, "jaga-daemon-log-rotation", Medium, ContainerSprawl, DataConfig, "Container logs are not rotated", "Set \"log-opts\": {\"max-size\": \"10m\", \"max-file\": \"3\"} for the json-file driver (or use the local driver) in daemon.json.");
check!(
    NO_ULIMITS,
    "2.7",
    Low,
    ContainerBreakout,
    DataConfig,
    "No default ulimits",
    "Set \"default-ulimits\" (nofile, nproc) in daemon.json."
);
check!(NO_AUTHZ, "2.11", Low, ContainerHijacking, AccessControl, "No authorization plugin", "If several people or systems use the API, add an authorization plugin to limit what each may do.");
check!(
    EXPERIMENTAL,
    "2.16",
    Medium,
    ContainerHijacking,
    DataConfig,
    "Experimental features enabled",
    "Set \"experimental\": false in production."
);
check!(
    INSECURE_REGISTRY,
    "2.4",
    Medium,
    ImagePoisoning,
    NetworkConfiguration,
    "Insecure registry configured",
    "Remove insecure-registries; give the registry a TLS certificate."
);
check!(
    DAEMON_NO_NEW_PRIVS,
    "2.17",
    Low,
    ContainerEscape,
    AccessControl,
    "Containers may acquire new privileges by default",
    "Set \"no-new-privileges\": true in daemon.json."
);
check!(
    USERLAND_PROXY,
    "2.14",
    Low,
    ContainerHijacking,
    NetworkConfiguration,
    "Userland proxy enabled",
    "Set \"userland-proxy\": false in daemon.json (hairpin NAT does the job)."
);
check!(
    NO_IPTABLES,
    "2.3",
    Medium,
    ContainerBreakout,
    NetworkConfiguration,
    "Docker may not manage iptables",
    "Remove \"iptables\": false so Docker keeps its network isolation rules."
);
check!(
    LOG_LEVEL,
    "2.2",
    Low,
    ContainerHijacking,
    DataConfig,
    "Daemon log level is not info",
    "Set \"log-level\": \"info\"."
);
check!(
    VULNERABLE_VERSION,
    "1.1.2",
    High,
    ContainerEscape,
    KeepingDockerUpToDate,
    "Known container-escape vulnerability in the installed version",
    "Upgrade the component to a fixed release, or the distribution's package to one whose changelog names the fix."
);
check!(
    FIXED_BY_DISTRIBUTION,
    "jaga-1.1.2-backported",
    Info,
    ContainerEscape,
    KeepingDockerUpToDate,
    "Known vulnerability fixed by the distribution's package",
    "Nothing to do: the distribution backported the fix into the installed package. Keep taking its security updates."
);

/// Host directories CIS 5.5 names, and Docker's own data.
const SENSITIVE_PATHS: &[&str] = &[
    "/",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/proc",
    "/sys",
    "/usr",
    "/var/lib/docker",
];

/// Every check, for listing and SARIF rules.
pub const ALL_CHECKS: &[Check] = &[
    PRIVILEGED,
    DOCKER_SOCKET,
    SENSITIVE_MOUNT,
    HOST_PID,
    HOST_NETWORK,
    HOST_IPC,
    HOST_UTS,
    HOST_USERNS,
    CAPS_ADDED,
    CAPS_NOT_DROPPED,
    SECCOMP_OFF,
    APPARMOR_OFF,
    NO_NEW_PRIVS,
    RUNS_AS_ROOT,
    WRITABLE_ROOT,
    NO_MEMORY_LIMIT,
    NO_CPU_LIMIT,
    NO_PIDS_LIMIT,
    PUBLIC_PORT,
    PRIVILEGED_PORT,
    RESTART_POLICY,
    NO_HEALTHCHECK,
    HOST_DEVICES,
    SHARED_PROPAGATION,
    SSHD_IN_CONTAINER,
    SECRET_IN_CONFIG,
    IMAGE_ROOT,
    IMAGE_NO_HEALTHCHECK,
    IMAGE_LATEST,
    IMAGE_NOT_PINNED,
    IMAGE_OLD,
    IMAGE_SECRET,
    EXITED_CONTAINER,
    DANGLING_IMAGE,
    UNUSED_VOLUME,
    UNUSED_NETWORK,
    TCP_NO_TLS,
    SOCKET_OWNER,
    SOCKET_MODE,
    DOCKER_GROUP,
    ICC,
    NO_USERNS,
    NO_LIVE_RESTORE,
    LOG_ROTATION,
    NO_ULIMITS,
    NO_AUTHZ,
    EXPERIMENTAL,
    INSECURE_REGISTRY,
    DAEMON_NO_NEW_PRIVS,
    USERLAND_PROXY,
    NO_IPTABLES,
    LOG_LEVEL,
    VULNERABLE_VERSION,
    FIXED_BY_DISTRIBUTION,
];

struct Out<'a> {
    selection: &'a Selection,
    findings: Vec<Finding>,
}

impl Out<'_> {
    fn add(&mut self, check: &Check, object: &FindingObject, evidence: impl Into<String>) {
        self.add_with(check, check.severity, object, evidence);
    }

    fn add_with(
        &mut self,
        check: &Check,
        severity: Severity,
        object: &FindingObject,
        evidence: impl Into<String>,
    ) {
        if !self.selection.wants_check(check.id) {
            return;
        }
        self.findings.push(Finding {
            check_id: check.id.to_owned(),
            title: check.title.to_owned(),
            severity,
            threat: check.threat,
            practice: check.practice,
            object: object.clone(),
            evidence: evidence.into(),
            remediation: check.remediation.to_owned(),
        });
    }
}

/// Runs the selected checks; findings sorted by severity (worst first),
/// then check id and object.
pub fn run(input: &AuditInput, selection: &Selection) -> Vec<Finding> {
    let mut out = Out {
        selection,
        findings: Vec::new(),
    };
    let userns_remap = input
        .daemon
        .info
        .as_ref()
        .and_then(|i| i.security_options.as_ref())
        .is_some_and(|opts| opts.iter().any(|o| o.contains("name=userns")));
    for container in input
        .containers
        .iter()
        .filter(|c| selection.wants_container(c))
    {
        container_checks(container, userns_remap, &mut out);
        if let Some(processes) = &input.processes {
            let id = container.id.as_deref().unwrap_or_default();
            sshd_check(container, processes.get(id).map(Vec::as_slice), &mut out);
        }
    }
    if selection.containers.is_empty() {
        for image in &input.images {
            image_checks(image, input.now_unix, &mut out);
        }
        for volume in &input.unused_volumes {
            let object = FindingObject {
                kind: "volume".to_owned(),
                id: volume.name.clone(),
                name: volume.name.clone(),
            };
            let held = volume
                .bytes
                .map_or("size unknown".to_owned(), |b| format!("holds {b} bytes"));
            out.add(
                &UNUSED_VOLUME,
                &object,
                format!("volume {} is mounted by no container; {held}", volume.name),
            );
        }
        for network in &input.unused_networks {
            let object = FindingObject {
                kind: "network".to_owned(),
                id: network.id.clone(),
                name: network.name.clone(),
            };
            out.add(
                &UNUSED_NETWORK,
                &object,
                format!("network {} has no containers", network.name),
            );
        }
        daemon_checks(&input.daemon, &mut out);
        match &input.cves {
            Some(table) => version_checks(table, &input.daemon, &mut out),
            None => match CveTable::shipped() {
                Ok(table) => version_checks(&table, &input.daemon, &mut out),
                // The shipped table is tested to parse: unreachable in a build.
                Err(error) => debug_assert!(false, "shipped CVE data: {error}"),
            },
        }
    }
    let mut findings = out.findings;
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.check_id.cmp(&b.check_id))
            .then_with(|| a.object.cmp(&b.object))
    });
    findings
}

/// CIS 5.6: an SSH daemon among the container's processes.
fn sshd_check(
    c: &ContainerInspectResponse,
    processes: Option<&[crate::facts::ProcessFacts]>,
    out: &mut Out<'_>,
) {
    let is_sshd = |p: &&crate::facts::ProcessFacts| {
        let exe_name = p.exe.as_deref().and_then(|e| e.rsplit('/').next());
        ["sshd", "dropbear"].contains(&p.name.as_str())
            || exe_name.is_some_and(|n| n == "sshd" || n == "dropbear")
    };
    if let Some(found) = processes.unwrap_or_default().iter().find(is_sshd) {
        out.add(
            &SSHD_IN_CONTAINER,
            &container_object(c),
            format!(
                "process {} ({}) is an SSH daemon",
                found.pid,
                found.exe.as_deref().unwrap_or(&found.name)
            ),
        );
    }
}

fn container_object(c: &ContainerInspectResponse) -> FindingObject {
    FindingObject {
        kind: "container".to_owned(),
        id: c.id.clone().unwrap_or_default(),
        name: c
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
    }
}

fn container_checks(c: &ContainerInspectResponse, userns_remap: bool, out: &mut Out<'_>) {
    let object = container_object(c);
    let status = c
        .state
        .as_ref()
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_default();
    if matches!(status.as_str(), "exited" | "dead") {
        let size = c.size_rw.map_or("size unknown".to_owned(), |b| {
            format!("its writable layer holds {b} bytes")
        });
        let finished = c
            .state
            .as_ref()
            .and_then(|s| s.finished_at.clone())
            .unwrap_or_default();
        out.add(
            &EXITED_CONTAINER,
            &object,
            format!("exited at {finished}; {size}"),
        );
        return;
    }
    let host = c.host_config.clone().unwrap_or_default();
    let config = c.config.clone().unwrap_or_default();

    if host.privileged == Some(true) {
        out.add(&PRIVILEGED, &object, "HostConfig.Privileged is true");
    }
    // Host paths mounted: binds and mounts.
    let mut host_mounts: Vec<(String, String, bool)> = Vec::new(); // (source, destination, writable)
    for m in c.mounts.clone().unwrap_or_default() {
        if m.typ.as_ref().is_some_and(|t| t == "bind") {
            host_mounts.push((
                m.source.unwrap_or_default(),
                m.destination.unwrap_or_default(),
                m.rw.unwrap_or(true),
            ));
            if m.propagation
                .as_deref()
                .is_some_and(|p| p == "shared" || p == "rshared")
            {
                out.add(
                    &SHARED_PROPAGATION,
                    &object,
                    format!(
                        "bind mount {} has propagation shared",
                        host_mounts.last().map_or("", |m| m.0.as_str())
                    ),
                );
            }
        }
    }
    for (source, destination, writable) in &host_mounts {
        let normal = if source == "/" {
            "/".to_owned()
        } else {
            source.trim_end_matches('/').to_owned()
        };
        let mode = if *writable { "read-write" } else { "read-only" };
        if normal.ends_with("/docker.sock")
            || normal == "/run/docker"
            || normal == "/var/run/docker"
        {
            out.add(
                &DOCKER_SOCKET,
                &object,
                format!("{source} is mounted at {destination} ({mode})"),
            );
        } else if SENSITIVE_PATHS.contains(&normal.as_str()) {
            out.add(
                &SENSITIVE_MOUNT,
                &object,
                format!("host {source} is mounted at {destination} ({mode})"),
            );
        }
    }
    if host.pid_mode.as_deref() == Some("host") {
        out.add(&HOST_PID, &object, "HostConfig.PidMode is host");
    }
    if host.network_mode.as_deref() == Some("host") {
        out.add(&HOST_NETWORK, &object, "HostConfig.NetworkMode is host");
    }
    if host.ipc_mode.as_deref() == Some("host") {
        out.add(&HOST_IPC, &object, "HostConfig.IpcMode is host");
    }
    if host.uts_mode.as_deref() == Some("host") {
        out.add(&HOST_UTS, &object, "HostConfig.UTSMode is host");
    }
    if userns_remap && host.userns_mode.as_deref() == Some("host") {
        out.add(&HOST_USERNS, &object, "HostConfig.UsernsMode is host");
    }
    let added: Vec<String> = host
        .cap_add
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
        .filter(|c| DANGEROUS_CAPABILITIES.contains(&c.as_str()))
        .collect();
    if !added.is_empty() {
        out.add(&CAPS_ADDED, &object, format!("added: {}", added.join(", ")));
    }
    let dropped_all = host
        .cap_drop
        .clone()
        .unwrap_or_default()
        .iter()
        .any(|c| c.eq_ignore_ascii_case("ALL") || c.eq_ignore_ascii_case("CAP_ALL"));
    if !dropped_all && host.privileged != Some(true) {
        out.add(
            &CAPS_NOT_DROPPED,
            &object,
            "HostConfig.CapDrop does not include ALL",
        );
    }
    let security_opt = host.security_opt.clone().unwrap_or_default();
    if security_opt
        .iter()
        .any(|o| o.replace(':', "=") == "seccomp=unconfined")
    {
        out.add(&SECCOMP_OFF, &object, "security-opt seccomp=unconfined");
    }
    if security_opt
        .iter()
        .any(|o| o.replace(':', "=") == "apparmor=unconfined")
        || c.app_armor_profile.as_deref() == Some("unconfined")
    {
        out.add(&APPARMOR_OFF, &object, "AppArmor profile is unconfined");
    }
    if !security_opt
        .iter()
        .any(|o| o.starts_with("no-new-privileges") && !o.ends_with("false"))
    {
        out.add(
            &NO_NEW_PRIVS,
            &object,
            "security-opt no-new-privileges is not set",
        );
    }
    let user = config.user.clone().unwrap_or_default();
    if is_root_user(&user) {
        out.add(
            &RUNS_AS_ROOT,
            &object,
            if user.is_empty() {
                "no user set: runs as root".to_owned()
            } else {
                format!("user is {user}")
            },
        );
    }
    if host.readonly_rootfs != Some(true) {
        out.add(
            &WRITABLE_ROOT,
            &object,
            "HostConfig.ReadonlyRootfs is false",
        );
    }
    if host.memory.unwrap_or(0) <= 0 {
        out.add(
            &NO_MEMORY_LIMIT,
            &object,
            "HostConfig.Memory is 0 (unlimited)",
        );
    }
    let cpu_limited = host.nano_cpus.unwrap_or(0) > 0
        || host.cpu_quota.unwrap_or(0) > 0
        || host.cpu_shares.unwrap_or(0) > 0
        || host.cpuset_cpus.as_deref().is_some_and(|s| !s.is_empty());
    if !cpu_limited {
        out.add(
            &NO_CPU_LIMIT,
            &object,
            "no --cpus, --cpu-quota, --cpu-shares or --cpuset-cpus",
        );
    }
    if host.pids_limit.unwrap_or(0) <= 0 {
        out.add(
            &NO_PIDS_LIMIT,
            &object,
            "HostConfig.PidsLimit is unset (unlimited)",
        );
    }
    let mut ports: Vec<(String, String, String)> = Vec::new(); // (container port, host ip, host port)
    for (port, bindings) in host.port_bindings.clone().unwrap_or_default() {
        for b in bindings.unwrap_or_default() {
            ports.push((
                port.clone(),
                b.host_ip.unwrap_or_default(),
                b.host_port.unwrap_or_default(),
            ));
        }
    }
    ports.sort();
    for (port, ip, host_port) in &ports {
        if ip.is_empty() || ip == "0.0.0.0" || ip == "::" {
            let shown = if ip.is_empty() {
                "0.0.0.0"
            } else {
                ip.as_str()
            };
            out.add(
                &PUBLIC_PORT,
                &object,
                format!(
                    "{port} published on {shown}:{}",
                    if host_port.is_empty() {
                        "random"
                    } else {
                        host_port.as_str()
                    }
                ),
            );
        }
        if host_port.parse::<u32>().is_ok_and(|p| p > 0 && p < 1024) {
            out.add(
                &PRIVILEGED_PORT,
                &object,
                format!("{port} mapped to host port {host_port}"),
            );
        }
    }
    let restart = host.restart_policy.clone().unwrap_or_default();
    match restart.name {
        None | Some(RestartPolicyNameEnum::EMPTY) | Some(RestartPolicyNameEnum::NO) => {
            out.add(&RESTART_POLICY, &object, "restart policy is no");
        }
        Some(RestartPolicyNameEnum::ALWAYS) | Some(RestartPolicyNameEnum::UNLESS_STOPPED) => {
            out.add(
                &RESTART_POLICY,
                &object,
                format!(
                    "restart policy is {} (restarts without bound)",
                    restart.name.map(|n| n.to_string()).unwrap_or_default()
                ),
            );
        }
        Some(RestartPolicyNameEnum::ON_FAILURE) => {
            let max = restart.maximum_retry_count.unwrap_or(0);
            if max <= 0 || max > 5 {
                out.add(
                    &RESTART_POLICY,
                    &object,
                    format!("restart policy on-failure with {max} retries (want 1 to 5)"),
                );
            }
        }
    }
    if lacks_healthcheck(config.healthcheck.as_ref()) {
        out.add(
            &NO_HEALTHCHECK,
            &object,
            "no health check in the container or its image",
        );
    }
    let devices = host.devices.clone().unwrap_or_default();
    if !devices.is_empty() {
        let list: Vec<String> = devices
            .iter()
            .map(|d| {
                format!(
                    "{} ({})",
                    d.path_on_host.clone().unwrap_or_default(),
                    d.cgroup_permissions.clone().unwrap_or_default()
                )
            })
            .collect();
        out.add(
            &HOST_DEVICES,
            &object,
            format!("devices: {}", list.join(", ")),
        );
    }
    let mut secrets: Vec<String> = Vec::new();
    secrets.extend(env_secrets(&config.env.clone().unwrap_or_default(), "env"));
    let labels: BTreeMap<String, String> = config
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (key, value) in &labels {
        if let Some(why) = looks_secret(key, value) {
            secrets.push(format!("label {} ({why})", redacted(key, value)));
        }
    }
    if !secrets.is_empty() {
        out.add(&SECRET_IN_CONFIG, &object, secrets.join("; "));
    }
}

/// `PREFIX KEY=<redacted, N chars> (why)` for each secret-looking variable.
fn env_secrets(env: &[String], prefix: &str) -> Vec<String> {
    env.iter()
        .filter_map(|entry| {
            let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            looks_secret(key, value).map(|why| format!("{prefix} {} ({why})", redacted(key, value)))
        })
        .collect()
}

/// No `HEALTHCHECK`, or one switched off with `NONE`.
fn lacks_healthcheck(health: Option<&bollard::models::HealthConfig>) -> bool {
    let test = health.and_then(|h| h.test.as_deref()).unwrap_or_default();
    test.first().is_none_or(|t| t == "NONE")
}

/// An empty user, `root` or uid 0.
fn is_root_user(user: &str) -> bool {
    let uid = user.split(':').next().unwrap_or_default();
    uid.is_empty() || uid == "root" || uid == "0"
}

fn image_checks(image: &ImageFacts, now_unix: i64, out: &mut Out<'_>) {
    let inspect = &image.inspect;
    let id = inspect.id.clone().unwrap_or_default();
    let tags = inspect.repo_tags.clone().unwrap_or_default();
    let object = FindingObject {
        kind: "image".to_owned(),
        id: id.clone(),
        name: tags
            .first()
            .cloned()
            .unwrap_or_else(|| id.chars().take(19).collect()),
    };
    if image.dangling {
        let size = inspect
            .size
            .map_or("size unknown".to_owned(), |s| format!("{s} bytes"));
        out.add(
            &DANGLING_IMAGE,
            &object,
            format!("untagged and used by no container; {size}"),
        );
        return;
    }
    if image.referenced_as.is_empty() {
        // Only images that something runs get the image checks; unused
        // tagged images are for `docker image prune -a` to judge.
        return;
    }
    let config = inspect.config.clone().unwrap_or_default();
    let user = config.user.clone().unwrap_or_default();
    if is_root_user(&user) {
        out.add(
            &IMAGE_ROOT,
            &object,
            if user.is_empty() {
                "no USER: runs as root".to_owned()
            } else {
                format!("USER {user}")
            },
        );
    }
    if lacks_healthcheck(config.healthcheck.as_ref()) {
        out.add(&IMAGE_NO_HEALTHCHECK, &object, "no HEALTHCHECK instruction");
    }
    let mut latest: Vec<&str> = Vec::new();
    let mut unpinned: Vec<&str> = Vec::new();
    for reference in &image.referenced_as {
        let without_digest = reference.split('@').next().unwrap_or_default();
        let last_segment = without_digest.rsplit('/').next().unwrap_or_default();
        if !reference.contains('@')
            && (!last_segment.contains(':') || last_segment.ends_with(":latest"))
        {
            latest.push(reference);
        }
        if !reference.contains("@sha256:") {
            unpinned.push(reference);
        }
    }
    latest.sort_unstable();
    latest.dedup();
    unpinned.sort_unstable();
    unpinned.dedup();
    if !latest.is_empty() {
        out.add(
            &IMAGE_LATEST,
            &object,
            format!("containers run it as {}", latest.join(", ")),
        );
    }
    if !unpinned.is_empty() {
        out.add(
            &IMAGE_NOT_PINNED,
            &object,
            format!("containers refer to it as {}", unpinned.join(", ")),
        );
    }
    if let Some(created) = inspect.created {
        let age_days = (now_unix - created.timestamp()) / 86_400;
        if age_days > 90 {
            out.add(
                &IMAGE_OLD,
                &object,
                format!("built {age_days} days ago ({})", created.format("%Y-%m-%d")),
            );
        }
    }
    let mut secrets: Vec<String> = Vec::new();
    secrets.extend(env_secrets(&config.env.clone().unwrap_or_default(), "ENV"));
    for layer in &image.history {
        for (key, value) in history_assignments(&layer.created_by) {
            if let Some(why) = looks_secret(&key, &value) {
                let entry = format!("history {} ({why})", redacted(&key, &value));
                if !secrets.contains(&entry) {
                    secrets.push(entry);
                }
            }
        }
    }
    if !secrets.is_empty() {
        out.add(&IMAGE_SECRET, &object, secrets.join("; "));
    }
}

fn daemon_checks(daemon: &DaemonFacts, out: &mut Out<'_>) {
    let object = FindingObject {
        kind: "daemon".to_owned(),
        id: "dockerd".to_owned(),
        name: daemon
            .info
            .as_ref()
            .and_then(|i| i.name.clone())
            .unwrap_or_else(|| "dockerd".to_owned()),
    };
    let json = daemon
        .daemon_json
        .clone()
        .unwrap_or(serde_json::Value::Null);
    let json_where = if daemon.daemon_json.is_some() {
        format!("in {}", daemon.daemon_json_path)
    } else {
        format!("{} does not exist", daemon.daemon_json_path)
    };
    let flag = |name: &str| -> Option<String> {
        // `--icc=false`, `--icc false`
        let long = format!("--{name}");
        let args = &daemon.dockerd_args;
        args.iter().enumerate().find_map(|(i, a)| {
            if let Some(value) = a.strip_prefix(&format!("{long}=")) {
                Some(value.to_owned())
            } else if *a == long {
                Some(
                    args.get(i + 1)
                        .filter(|v| !v.starts_with("--"))
                        .cloned()
                        .unwrap_or_else(|| "true".to_owned()),
                )
            } else {
                None
            }
        })
    };
    let bool_setting = |key: &str| -> Option<bool> {
        flag(key)
            .map(|v| v != "false")
            .or_else(|| json.get(key).and_then(serde_json::Value::as_bool))
    };

    // 2.6: TCP without TLS.
    let mut hosts: Vec<String> = json
        .get("hosts")
        .and_then(|h| h.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for (i, arg) in daemon.dockerd_args.iter().enumerate() {
        if let Some(v) = arg
            .strip_prefix("--host=")
            .or_else(|| arg.strip_prefix("-H="))
        {
            hosts.push(v.to_owned());
        } else if arg == "-H" || arg == "--host" {
            if let Some(v) = daemon.dockerd_args.get(i + 1) {
                hosts.push(v.clone());
            }
        }
    }
    let tls_verify = bool_setting("tlsverify").unwrap_or(false);
    for host in hosts.iter().filter(|h| h.starts_with("tcp://")) {
        if !tls_verify {
            out.add(
                &TCP_NO_TLS,
                &object,
                format!("listens on {host} without tlsverify"),
            );
        }
    }
    // 3.15 / 3.16: the socket.
    if let Some(socket) = &daemon.socket {
        if socket.owner != "root" || socket.group != "docker" {
            out.add(
                &SOCKET_OWNER,
                &object,
                format!(
                    "{} is owned by {}:{}",
                    socket.path, socket.owner, socket.group
                ),
            );
        }
        if socket.mode & 0o117 != 0 {
            out.add(
                &SOCKET_MODE,
                &object,
                format!("{} has mode {:o}", socket.path, socket.mode & 0o777),
            );
        }
    }
    if !daemon.docker_group_members.is_empty() {
        let host_object = FindingObject {
            kind: "host".to_owned(),
            id: "docker-group".to_owned(),
            name: "docker group".to_owned(),
        };
        out.add(
            &DOCKER_GROUP,
            &host_object,
            format!("members: {}", daemon.docker_group_members.join(", ")),
        );
    }
    let Some(info) = &daemon.info else {
        return;
    };
    // 2.1: icc on the default bridge.
    if bool_setting("icc").unwrap_or(true) {
        out.add(&ICC, &object, format!("icc is not false ({json_where})"));
    }
    let security = info.security_options.clone().unwrap_or_default();
    if !security.iter().any(|o| o.contains("name=userns")) {
        out.add(&NO_USERNS, &object, "SecurityOptions has no name=userns");
    }
    if info.live_restore_enabled != Some(true) {
        out.add(&NO_LIVE_RESTORE, &object, "LiveRestoreEnabled is false");
    }
    let log_driver = info.logging_driver.clone().unwrap_or_default();
    let log_opts = json.get("log-opts");
    let has_max_size = log_opts.and_then(|o| o.get("max-size")).is_some()
        || daemon.dockerd_args.iter().any(|a| a.contains("max-size="));
    if log_driver == "json-file" && !has_max_size {
        out.add(
            &LOG_ROTATION,
            &object,
            format!("log driver json-file with no max-size ({json_where})"),
        );
    }
    if json.get("default-ulimits").is_none()
        && !daemon
            .dockerd_args
            .iter()
            .any(|a| a.starts_with("--default-ulimit"))
    {
        out.add(
            &NO_ULIMITS,
            &object,
            format!("no default-ulimits ({json_where})"),
        );
    }
    let authz = info
        .plugins
        .as_ref()
        .and_then(|p| p.authorization.clone())
        .unwrap_or_default();
    if authz.is_empty() {
        out.add(&NO_AUTHZ, &object, "Plugins.Authorization is empty");
    }
    if info.experimental_build == Some(true) {
        out.add(&EXPERIMENTAL, &object, "ExperimentalBuild is true");
    }
    let insecure: Vec<String> = info
        .registry_config
        .as_ref()
        .and_then(|r| r.insecure_registry_cidrs.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|cidr| cidr != "127.0.0.0/8" && cidr != "::1/128")
        .chain(
            json.get("insecure-registries")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .collect();
    if !insecure.is_empty() {
        out.add(
            &INSECURE_REGISTRY,
            &object,
            format!("insecure registries: {}", insecure.join(", ")),
        );
    }
    if bool_setting("no-new-privileges") != Some(true) {
        out.add(
            &DAEMON_NO_NEW_PRIVS,
            &object,
            format!("no-new-privileges is not true ({json_where})"),
        );
    }
    if bool_setting("userland-proxy").unwrap_or(true) {
        out.add(
            &USERLAND_PROXY,
            &object,
            format!("userland-proxy is not false ({json_where})"),
        );
    }
    if bool_setting("iptables") == Some(false) {
        out.add(&NO_IPTABLES, &object, "iptables is false");
    }
    let level = flag("log-level").or_else(|| {
        json.get("log-level")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    });
    if let Some(level) = level.filter(|l| l != "info") {
        out.add(&LOG_LEVEL, &object, format!("log-level is {level}"));
    }
}

/// The Engine, containerd and runc versions the daemon reports:
/// (component, version).
pub fn component_versions(daemon: &DaemonFacts) -> Vec<(String, String)> {
    let Some(version) = &daemon.version else {
        return Vec::new();
    };
    let mut components: Vec<(String, String)> = Vec::new();
    for component in version.components.clone().unwrap_or_default() {
        let name = match component.name.to_ascii_lowercase().as_str() {
            "engine" => "engine",
            "containerd" => "containerd",
            "runc" => "runc",
            _ => continue,
        };
        components.push((name.to_owned(), component.version.clone()));
    }
    if components.iter().all(|(n, _)| n != "engine") {
        if let Some(v) = &version.version {
            components.push(("engine".to_owned(), v.clone()));
        }
    }
    components
}

fn version_checks(table: &CveTable, daemon: &DaemonFacts, out: &mut Out<'_>) {
    for (component, installed) in component_versions(daemon) {
        let provenance = daemon.provenance_of(&component);
        for entry in table.cve.iter().filter(|e| e.component == component) {
            let decision = decide(entry, &installed, provenance);
            let base = match decision.outcome {
                Outcome::NotAffected => continue,
                Outcome::Affected => VULNERABLE_VERSION,
                Outcome::FixedByDistribution => FIXED_BY_DISTRIBUTION,
            };
            let check = Check {
                threat: threat_of(entry),
                ..base
            };
            let object = FindingObject {
                kind: component.clone(),
                id: format!("{component}/{}", entry.id),
                name: format!("{component} {installed}"),
            };
            out.add_with(&check, decision.severity, &object, decision.evidence);
        }
    }
}

#[cfg(test)]
mod tests;
