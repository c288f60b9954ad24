//! `/proc/self/mountinfo` and `/proc/<pid>/cgroup`, and how the two combine
//! into a cgroup directory.

use crate::error::ParseError;
use crate::parse::parse_u64_field;

/// One line of `/proc/<pid>/mountinfo` (see proc(5)), the fields jaga uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Path inside the mounted filesystem that is the mount's root (field 4).
    pub root: String,
    /// Where it is mounted (field 5), octal escapes decoded.
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options; for cgroup v1 these name the controllers
    /// (`rw,cpu,cpuacct`, `rw,xattr,name=systemd`).
    pub super_options: String,
}

impl MountInfo {
    /// For a `cgroup` (v1) mount: whether `controller` is among its super options.
    pub fn has_controller(&self, controller: &str) -> bool {
        self.fs_type == "cgroup" && self.super_options.split(',').any(|opt| opt == controller)
    }
}

/// Parses mountinfo text:
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountInfo>, ParseError> {
    let mut mounts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(separator) = fields.iter().skip(6).position(|f| *f == "-").map(|p| p + 6) else {
            return Err(ParseError::at(
                line_no,
                "expected at least 6 fields and a '-' separator",
            ));
        };
        let (Some(fs_type), Some(source)) = (fields.get(separator + 1), fields.get(separator + 2))
        else {
            return Err(ParseError::at(
                line_no,
                "expected filesystem type and source after '-'",
            ));
        };
        mounts.push(MountInfo {
            root: unescape_octal(fields[3]),
            mount_point: unescape_octal(fields[4]),
            fs_type: (*fs_type).to_string(),
            source: unescape_octal(source),
            super_options: fields.get(separator + 3).copied().unwrap_or("").to_string(),
        });
    }
    Ok(mounts)
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-ID:controller-list:cgroup-path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    pub hierarchy_id: u32,
    /// Comma-separated controllers (`cpu,cpuacct`, `name=systemd`); empty for
    /// the v2 hierarchy.
    pub controllers: String,
    pub path: String,
}

impl ProcCgroup {
    pub fn has_controller(&self, controller: &str) -> bool {
        self.controllers.split(',').any(|c| c == controller)
    }

    /// The cgroup v2 line: `0::/path`.
    pub fn is_unified(&self) -> bool {
        self.hierarchy_id == 0 && self.controllers.is_empty()
    }
}

pub fn parse_proc_cgroup(text: &str) -> Result<Vec<ProcCgroup>, ParseError> {
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index + 1;
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::at(
                line_no,
                format!("expected 'id:controllers:path', found '{line}'"),
            ));
        };
        let hierarchy_id = u32::try_from(parse_u64_field(id, line_no)?)
            .map_err(|_| ParseError::at(line_no, format!("hierarchy id '{id}' is out of range")))?;
        if !path.starts_with('/') {
            return Err(ParseError::at(
                line_no,
                format!("expected an absolute cgroup path, found '{path}'"),
            ));
        }
        lines.push(ProcCgroup {
            hierarchy_id,
            controllers: controllers.to_string(),
            path: path.to_string(),
        });
    }
    Ok(lines)
}

/// The Docker container id a cgroup path names: `/docker/<id>` (cgroupfs
/// driver), `/system.slice/docker-<id>.scope` (systemd driver), or either
/// nested below another path (`/kubepods/…/docker-<id>.scope`, Docker in
/// Docker's `/docker/<a>/docker/<b>`: the innermost). `None` for a path
/// that names no container (the host's, a cgroup namespace's `/`).
pub fn docker_container_id(cgroup_path: &str) -> Option<&str> {
    let parts: Vec<&str> = cgroup_path.split('/').collect();
    parts.iter().enumerate().rev().find_map(|(index, part)| {
        let candidate = match part.strip_prefix("docker-") {
            Some(rest) => rest.strip_suffix(".scope").unwrap_or(rest),
            None if index > 0 && parts[index - 1] == "docker" => part,
            None => return None,
        };
        (candidate.len() == 64 && candidate.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(candidate)
    })
}

/// The part of `cgroup_path` below `mount_root`, without a leading slash,
/// or `None` when the cgroup lies outside what the mount shows or the path
/// tries to climb with `..`.
///
/// A mount whose root is not `/` shows only a subtree: inside a container
/// without a cgroup namespace, `/docker/<id>` of the cpu hierarchy is mounted
/// at `/sys/fs/cgroup/cpu`, and the process's path `/docker/<id>` must map to
/// the mount point itself.
pub fn relative_to_mount_root<'a>(mount_root: &str, cgroup_path: &'a str) -> Option<&'a str> {
    let root = mount_root.trim_end_matches('/');
    let rest = if root.is_empty() {
        cgroup_path
    } else if cgroup_path == root {
        ""
    } else {
        let rest = cgroup_path.strip_prefix(root)?;
        if !rest.starts_with('/') {
            return None;
        }
        rest
    };
    let rest = rest.trim_start_matches('/');
    if rest.split('/').any(|part| part == ".." || part == ".") {
        return None;
    }
    Some(rest)
}

/// Decodes the `\NNN` octal escapes the kernel writes for space, tab,
/// newline and backslash in mountinfo paths.
fn unescape_octal(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines from this host's /proc/self/mountinfo (kernel 6.18, Docker 20.10).
    const HOST: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 27 254:0 /var/lib/docker /var/lib/docker rw,relatime shared:1 - ext4 /dev/vda rw,discard
";

    #[test]
    fn parses_mountinfo_with_and_without_optional_fields() {
        let mounts = parse_mountinfo(HOST).unwrap();
        assert_eq!(mounts.len(), 6);
        assert_eq!(mounts[1].mount_point, "/sys/fs/cgroup/cpu");
        assert_eq!(mounts[1].fs_type, "cgroup");
        assert_eq!(mounts[1].super_options, "rw,cpu");
        assert!(mounts[1].has_controller("cpu"));
        assert!(!mounts[3].has_controller("cpu"), "cpuset is not cpu");
        assert_eq!(mounts[4].fs_type, "cgroup2");
        assert_eq!(mounts[5].root, "/var/lib/docker");
        assert_eq!(mounts[5].fs_type, "ext4");
        assert_eq!(mounts[5].source, "/dev/vda");
    }

    #[test]
    fn co_mounted_controllers() {
        let line = "49 34 0:44 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:25 - cgroup cgroup rw,cpu,cpuacct\n";
        let mount = &parse_mountinfo(line).unwrap()[0];
        assert_eq!(mount.mount_point, "/sys/fs/cgroup/cpu,cpuacct");
        assert!(mount.has_controller("cpu"));
        assert!(mount.has_controller("cpuacct"));
        assert!(!mount.has_controller("memory"));
    }

    #[test]
    fn decodes_octal_escapes() {
        let line = "50 27 0:50 /a\\040b /mnt/with\\040space\\134x rw - cgroup2 cgroup2 rw\n";
        let mount = &parse_mountinfo(line).unwrap()[0];
        assert_eq!(mount.root, "/a b");
        assert_eq!(mount.mount_point, "/mnt/with space\\x");
        assert_eq!(unescape_octal("trailing\\04"), "trailing\\04");
        assert_eq!(unescape_octal("\\"), "\\");
    }

    #[test]
    fn rejects_line_without_separator() {
        let err = parse_mountinfo("1 2 0:1 / /x rw\n41 31 0:38 / /y rw - cgroup2\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        let err = parse_mountinfo(
            HOST.lines()
                .next()
                .unwrap()
                .replace(" - tmpfs tmpfs rw,mode=755", " -")
                .as_str(),
        )
        .unwrap_err();
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn parses_proc_cgroup_v1_and_v2() {
        let text = "2:cpu,cpuacct:/system.slice/docker-ab.scope\n1:name=systemd:/system.slice/docker-ab.scope\n0::/system.slice/docker-ab.scope\n";
        let lines = parse_proc_cgroup(text).unwrap();
        assert!(lines[0].has_controller("cpuacct"));
        assert!(!lines[1].has_controller("systemd"));
        assert!(lines[2].is_unified());
        assert_eq!(lines[2].path, "/system.slice/docker-ab.scope");
    }

    #[test]
    fn proc_cgroup_path_may_contain_colons() {
        let lines = parse_proc_cgroup("0::/a:b\n").unwrap();
        assert_eq!(lines[0].path, "/a:b");
    }

    #[test]
    fn rejects_malformed_proc_cgroup() {
        assert_eq!(parse_proc_cgroup("0::/\nfoo\n").unwrap_err().line, Some(2));
        assert_eq!(parse_proc_cgroup("x:cpu:/\n").unwrap_err().line, Some(1));
        assert_eq!(
            parse_proc_cgroup("1:cpu:relative\n").unwrap_err().line,
            Some(1)
        );
    }

    #[test]
    fn strips_mount_root() {
        assert_eq!(
            relative_to_mount_root("/", "/docker/abc"),
            Some("docker/abc")
        );
        assert_eq!(relative_to_mount_root("/", "/"), Some(""));
        assert_eq!(
            relative_to_mount_root("/docker/abc", "/docker/abc"),
            Some("")
        );
        assert_eq!(
            relative_to_mount_root("/docker/abc", "/docker/abc/sub"),
            Some("sub")
        );
        assert_eq!(
            relative_to_mount_root("/docker/abc", "/docker/abcdef"),
            None
        );
        assert_eq!(relative_to_mount_root("/docker/abc", "/docker/other"), None);
        assert_eq!(relative_to_mount_root("/", "/../../docker/x"), None);
    }

    #[test]
    fn container_ids_of_both_drivers_and_nested_paths() {
        let id = "4f9d3c1e2b7a68d5c0e1f2a34f9d3c1e2b7a68d5c0e1f2a34f9d3c1e2b7a68d5";
        assert_eq!(docker_container_id(&format!("/docker/{id}")), Some(id));
        assert_eq!(
            docker_container_id(&format!("/system.slice/docker-{id}.scope")),
            Some(id)
        );
        assert_eq!(
            docker_container_id(&format!(
                "/kubepods/burstable/pod1/docker-{id}.scope/init.scope"
            )),
            Some(id)
        );
        let outer = "a".repeat(64);
        assert_eq!(
            docker_container_id(&format!("/docker/{outer}/docker/{id}")),
            Some(id)
        );
        assert_eq!(docker_container_id("/"), None);
        assert_eq!(
            docker_container_id("/user.slice/user-0.slice/session-1.scope"),
            None
        );
        assert_eq!(docker_container_id("/docker/not-an-id"), None);
        assert_eq!(docker_container_id("/system.slice/docker.service"), None);
    }
}
