//! Which container a process belongs to, from its `/proc/<pid>/cgroup`:
//! cgroup v1 and v2, the cgroupfs and systemd drivers alike.

use jaga_cgroup::{docker_container_id, parse_proc_cgroup};

/// The container id the cgroup file names, `None` for a host process or a
/// file that does not parse. The v2 line (`0::`) is asked first; on a v1 or
/// hybrid host, where it says `/`, the first controller line that names a
/// container answers.
pub fn container_of_cgroup(text: &str) -> Option<String> {
    let lines = parse_proc_cgroup(text).ok()?;
    let unified = lines
        .iter()
        .filter(|line| line.is_unified())
        .find_map(|line| docker_container_id(&line.path));
    unified
        .or_else(|| {
            lines
                .iter()
                .filter(|line| !line.is_unified())
                .find_map(|line| docker_container_id(&line.path))
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn v2_systemd_driver() {
        let text = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_of_cgroup(&text).as_deref(), Some(ID));
    }

    #[test]
    fn v1_hybrid_cgroupfs_driver_with_the_unified_line_at_root() {
        let text = format!(
            "9:name=systemd:/docker/{ID}\n4:memory:/docker/{ID}\n1:cpu:/docker/{ID}\n0::/\n"
        );
        assert_eq!(container_of_cgroup(&text).as_deref(), Some(ID));
    }

    #[test]
    fn host_processes_and_garbage_name_no_container() {
        assert_eq!(container_of_cgroup("0::/init.scope\n"), None);
        assert_eq!(container_of_cgroup("4:memory:/\n0::/\n"), None);
        assert_eq!(container_of_cgroup("not a cgroup file"), None);
        assert_eq!(container_of_cgroup(""), None);
    }
}
