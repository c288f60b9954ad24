//! jaga's own container, when it runs in one: it mounts the Docker socket
//! and the host's root by design, so auditing it would report the price of
//! watching as findings on every run. It is left out of the audit only when
//! it is both the container this process runs in and labelled
//! `org.jaga.self=true`: a label alone, which anyone can set, hides nothing.

use std::sync::OnceLock;

use bollard::models::ContainerInspectResponse;

/// The label the image and the documented `docker run` put on jaga's container.
pub const SELF_LABEL: &str = "org.jaga.self";

/// The id of the container this process runs in, or `None` on the host.
pub fn own_container_id() -> Option<&'static str> {
    static OWN: OnceLock<Option<String>> = OnceLock::new();
    OWN.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        container_id_in_mountinfo(&text)
    })
    .as_deref()
}

/// Docker bind-mounts `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`
/// from `<data-root>/containers/<id>/` into every container; the mount's
/// root (field 4 of mountinfo) names the id.
pub fn container_id_in_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        if !matches!(
            mount_point,
            "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf"
        ) {
            return None;
        }
        let (_, rest) = root.rsplit_once("/containers/")?;
        let (id, _file) = rest.split_once('/')?;
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
    })
}

/// Whether `container` is jaga's own: the one it runs in (`own_id`), and
/// labelled [`SELF_LABEL`]`=true`.
pub fn is_own(container: &ContainerInspectResponse, own_id: Option<&str>) -> bool {
    let Some(own_id) = own_id else {
        return false;
    };
    let labelled = container
        .config
        .as_ref()
        .and_then(|config| config.labels.as_ref())
        .and_then(|labels| labels.get(SELF_LABEL))
        .is_some_and(|value| value == "true");
    labelled && container.id.as_deref() == Some(own_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerConfig;
    use std::collections::HashMap;

    const ID: &str = "c75dfa236a2e0ff66295657f05ec67b1a2e820f8260322c2a4fd2c95798949f2";

    fn mountinfo(root_dir: &str) -> String {
        format!(
            "111 90 0:52 / / rw,relatime - overlay overlay rw\n\
             170 111 254:0 {root_dir}/{ID}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw\n\
             171 111 254:0 {root_dir}/{ID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n"
        )
    }

    #[test]
    fn the_id_comes_from_the_hostname_and_resolv_conf_mounts() {
        let text = mountinfo("/var/lib/docker/containers");
        assert_eq!(container_id_in_mountinfo(&text).as_deref(), Some(ID));
        // Another data root (`"data-root": "/srv/docker"`).
        let text = mountinfo("/srv/docker/containers");
        assert_eq!(container_id_in_mountinfo(&text).as_deref(), Some(ID));
    }

    #[test]
    fn on_the_host_or_with_the_logs_mounted_there_is_no_id() {
        let host = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    23 22 0:21 / /proc rw shared:2 - proc proc rw\n";
        assert_eq!(container_id_in_mountinfo(host), None);
        // The logs directory mounted read-only is not an /etc file.
        let logs = format!(
            "180 111 254:0 /var/lib/docker/containers /var/lib/docker/containers ro - ext4 /dev/vda rw\n\
             181 111 254:0 /var/lib/docker/containers/{ID}/x.log /x rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_id_in_mountinfo(&logs), None);
    }

    fn container(id: &str, label: Option<&str>) -> ContainerInspectResponse {
        let labels = label.map(|v| HashMap::from([(SELF_LABEL.to_owned(), v.to_owned())]));
        ContainerInspectResponse {
            id: Some(id.to_owned()),
            config: Some(ContainerConfig {
                labels,
                ..ContainerConfig::default()
            }),
            ..ContainerInspectResponse::default()
        }
    }

    #[test]
    fn only_the_labelled_container_jaga_runs_in_is_its_own() {
        assert!(is_own(&container(ID, Some("true")), Some(ID)));
        // Unlabelled: the user did not ask for it to be left out.
        assert!(!is_own(&container(ID, None), Some(ID)));
        assert!(!is_own(&container(ID, Some("false")), Some(ID)));
        // Another container wearing the label is audited like any other.
        let other = "a".repeat(64);
        assert!(!is_own(&container(&other, Some("true")), Some(ID)));
        // On the host nothing is jaga's own.
        assert!(!is_own(&container(ID, Some("true")), None));
    }
}
