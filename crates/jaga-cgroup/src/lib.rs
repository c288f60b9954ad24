//! Readers for cgroup v1 and v2 and `/proc`, producing [`Sample`]s and
//! [`HostCounters`].
//!
//! Everything is read under a root directory given to [`CgroupReader::discover`]
//! (`/` in production, a fixture tree in tests). The files read are the ones
//! runc (and so `docker stats`) and cAdvisor read. This crate never talks to
//! the Docker Engine.

mod error;
mod fsread;
mod handles;
mod mounts;
mod parse;
mod procfs;
mod v1;
mod v2;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use jaga_model::CgroupVersion;
use jaga_model::{HostCounters, NetworkStats, Sample};

pub use error::{CgroupError, ParseError};
pub use mounts::{
    docker_container_id, parse_mountinfo, parse_proc_cgroup, relative_to_mount_root, MountInfo,
    ProcCgroup,
};
pub use parse::{count_lines, parse_flat_keyed, parse_i64, parse_max_or_u64, parse_u64, FlatKeyed};
pub use procfs::{parse_meminfo_total, parse_net_dev, parse_partitions, parse_proc_stat, ProcStat};
pub use v1::{
    merge_blkio, parse_blkio, parse_cfs_quota, parse_cpuacct_stat, v1_limit, BlkioEntry,
    BLKIO_SETS, V1_UNLIMITED_THRESHOLD,
};
pub use v2::{parse_cpu_max, parse_io_stat};

use fsread::{read_host_file, read_pid_file, read_pid_file_lenient, under_root, PidFile};

/// USER_HZ: the unit of `/proc/stat` and `cpuacct.stat` (100 on every Linux
/// architecture Docker supports; docker assumes the same).
pub const USER_HZ: u64 = 100;
const NS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;
const NS_PER_US: u64 = 1_000;

pub(crate) fn ticks_to_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(NS_PER_TICK)
}

pub(crate) fn us_to_ns(us: u64) -> u64 {
    us.saturating_mul(NS_PER_US)
}

/// Nanoseconds since the first call in this process, from a monotonic clock.
/// [`Sample::monotonic_ns`] uses this clock; compare only values from it.
pub fn monotonic_now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The v1 controllers jaga reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Cpu,
    Cpuacct,
    Memory,
    Blkio,
    Pids,
}

impl Controller {
    const ALL: [Controller; 5] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Memory,
        Controller::Blkio,
        Controller::Pids,
    ];

    fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Memory => "memory",
            Controller::Blkio => "blkio",
            Controller::Pids => "pids",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where each hierarchy is mounted, as found in mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Mount point, as the kernel shows it (not joined under the reader's root).
    pub mount_point: String,
    /// The mount's root inside the hierarchy (`/` unless only a subtree is mounted).
    pub root: String,
}

impl From<&MountInfo> for CgroupMount {
    fn from(info: &MountInfo) -> Self {
        Self {
            mount_point: info.mount_point.clone(),
            root: info.root.clone(),
        }
    }
}

/// Reads cgroup and `/proc` files under a root directory.
#[derive(Debug, Clone)]
pub struct CgroupReader {
    root: PathBuf,
    version: CgroupVersion,
    /// v1 mounts indexed by [`Controller::index`].
    v1: [Option<CgroupMount>; 5],
    v2: Option<CgroupMount>,
}

/// The cgroup directories of one container's process, joined under the
/// reader's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContainerCgroups {
    V1 {
        cpu: PathBuf,
        cpuacct: PathBuf,
        memory: PathBuf,
        /// `None` when the blkio controller is not mounted.
        blkio: Option<PathBuf>,
        /// `None` when the pids controller is not mounted.
        pids: Option<PathBuf>,
    },
    V2 {
        dir: PathBuf,
    },
}

impl ContainerCgroups {
    pub fn version(&self) -> CgroupVersion {
        match self {
            ContainerCgroups::V1 { .. } => CgroupVersion::V1,
            ContainerCgroups::V2 { .. } => CgroupVersion::V2,
        }
    }

    /// Every directory read for this container.
    pub fn dirs(&self) -> Vec<&Path> {
        match self {
            ContainerCgroups::V1 {
                cpu,
                cpuacct,
                memory,
                blkio,
                pids,
            } => [
                Some(cpu),
                Some(cpuacct),
                Some(memory),
                blkio.as_ref(),
                pids.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect(),
            ContainerCgroups::V2 { dir } => vec![dir.as_path()],
        }
    }

    /// Closes the files kept open for reading this container's cgroups; call
    /// it once the container is gone (they would stay open otherwise, until
    /// the idle sweep). Returns how many were closed.
    pub fn release_handles(&self) -> usize {
        handles::release_under(&self.dirs())
    }
}

/// The mounts as the host sees them. On the host (`root` is `/`): jaga's
/// own, `/proc/self/mountinfo`. Under a host root mounted into a container:
/// the host's first process's, `{root}/proc/1/mountinfo`, since the
/// container's own table names its cgroups relative to its own and the host
/// root's mounts by their place in the container (`/host/sys/...`); its own
/// when that cannot be read (fixture trees).
pub fn host_mountinfo(root: &Path) -> Result<(PathBuf, String), CgroupError> {
    if root != Path::new("/") {
        let host = root.join("proc/1/mountinfo");
        if let Ok(text) = read_host_file(&host) {
            return Ok((host, text));
        }
    }
    let own = root.join("proc/self/mountinfo");
    let text = read_host_file(&own)?;
    Ok((own, text))
}

impl CgroupReader {
    /// Reads the host's mountinfo (see [`host_mountinfo`]); finds the v1
    /// controller mounts (cpu, cpuacct — separate or co-mounted as
    /// `cpu,cpuacct` —, memory, blkio, pids) and the cgroup2 mount. A host
    /// with any of cpu, cpuacct or memory on v1 is V1, even with a cgroup2
    /// mount beside them (hybrid: `/sys/fs/cgroup/unified`); a host with
    /// only cgroup2 is V2.
    pub fn discover(root: impl Into<PathBuf>) -> Result<Self, CgroupError> {
        let root = root.into();
        let (path, text) = host_mountinfo(&root)?;
        let mounts = parse_mountinfo(&text).map_err(|err| err.in_file(&path))?;

        let mut v1: [Option<CgroupMount>; 5] = Default::default();
        let mut v2: Option<CgroupMount> = None;
        for mount in &mounts {
            if mount.fs_type == "cgroup2" {
                // Prefer the canonical place if there are several.
                let better = match &v2 {
                    None => true,
                    Some(current) => {
                        current.mount_point != "/sys/fs/cgroup"
                            && mount.mount_point == "/sys/fs/cgroup"
                    }
                };
                if better {
                    v2 = Some(mount.into());
                }
                continue;
            }
            for controller in Controller::ALL {
                if !mount.has_controller(controller.name()) {
                    continue;
                }
                let slot = &mut v1[controller.index()];
                // The first mount wins, unless a later one shows the whole
                // hierarchy and the first only a subtree.
                let better = match slot {
                    None => true,
                    Some(current) => current.root != "/" && mount.root == "/",
                };
                if better {
                    *slot = Some(mount.into());
                }
            }
        }

        let has_v1 = [Controller::Cpu, Controller::Cpuacct, Controller::Memory]
            .iter()
            .any(|c| v1[c.index()].is_some());
        let version = if has_v1 {
            CgroupVersion::V1
        } else if v2.is_some() {
            CgroupVersion::V2
        } else {
            return Err(CgroupError::NoCgroupMount { path });
        };
        tracing::debug!(root = %root.display(), ?version, "cgroup layout discovered");
        Ok(Self {
            root,
            version,
            v1,
            v2,
        })
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The directory everything is read under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Mount of the cgroup2 hierarchy, if any (on hybrid hosts too).
    pub fn v2_mount(&self) -> Option<&CgroupMount> {
        self.v2.as_ref()
    }

    /// The container's cgroup as cAdvisor names it in its `id` label:
    /// `/docker/<id>` (cgroupfs) or `/system.slice/docker-<id>.scope`
    /// (systemd), from the memory line of `/proc/<pid>/cgroup` on v1 and the
    /// `0::` line on v2.
    pub fn cgroup_name(&self, pid: u32) -> Result<String, CgroupError> {
        let path = self.root.join(format!("proc/{pid}/cgroup"));
        let text = read_pid_file(&path, pid)?;
        let lines = parse_proc_cgroup(&text).map_err(|err| err.in_file(&path))?;
        let line = match self.version {
            CgroupVersion::V1 => lines
                .iter()
                .find(|line| line.hierarchy_id != 0 && line.has_controller("memory")),
            CgroupVersion::V2 => lines.iter().find(|line| line.is_unified()),
        };
        line.map(|line| line.path.clone())
            .ok_or(CgroupError::ControllerNotListed {
                controller: "memory",
                path,
            })
    }

    /// Reads `{root}/proc/<pid>/cgroup` and resolves each controller's
    /// directory under its mount point (joined under root), with the mount's
    /// root stripped from the cgroup path. Works for the cgroupfs driver
    /// (`/docker/<id>`) and the systemd driver
    /// (`/system.slice/docker-<id>.scope`) alike.
    pub fn container_cgroups(&self, pid: u32) -> Result<ContainerCgroups, CgroupError> {
        let path = self.root.join(format!("proc/{pid}/cgroup"));
        let text = read_pid_file(&path, pid)?;
        let lines = parse_proc_cgroup(&text).map_err(|err| err.in_file(&path))?;

        let cgroups = match self.version {
            CgroupVersion::V1 => {
                let resolve = |controller: Controller| -> Result<Option<PathBuf>, CgroupError> {
                    let Some(mount) = &self.v1[controller.index()] else {
                        return Ok(None);
                    };
                    let Some(line) = lines.iter().find(|line| {
                        line.hierarchy_id != 0 && line.has_controller(controller.name())
                    }) else {
                        return Err(CgroupError::ControllerNotListed {
                            controller: controller.name(),
                            path: path.clone(),
                        });
                    };
                    self.resolve(mount, &line.path, &path).map(Some)
                };
                let required = |controller: Controller| -> Result<PathBuf, CgroupError> {
                    resolve(controller)?.ok_or_else(|| CgroupError::ControllerNotMounted {
                        controller: controller.name(),
                        path: self.root.join("proc/self/mountinfo"),
                    })
                };
                ContainerCgroups::V1 {
                    cpu: required(Controller::Cpu)?,
                    cpuacct: required(Controller::Cpuacct)?,
                    memory: required(Controller::Memory)?,
                    blkio: resolve(Controller::Blkio)?,
                    pids: resolve(Controller::Pids)?,
                }
            }
            CgroupVersion::V2 => {
                let mount = self.v2.as_ref().ok_or_else(|| CgroupError::NoCgroupMount {
                    path: self.root.join("proc/self/mountinfo"),
                })?;
                let line = lines.iter().find(|line| line.is_unified()).ok_or(
                    CgroupError::ControllerNotListed {
                        controller: "cgroup2 (0::)",
                        path: path.clone(),
                    },
                )?;
                ContainerCgroups::V2 {
                    dir: self.resolve(mount, &line.path, &path)?,
                }
            }
        };

        // A process that is exiting may still name a cgroup already removed.
        if let Some(gone) = cgroups.dirs().into_iter().find(|dir| !dir.is_dir()) {
            return Err(CgroupError::CgroupGone {
                path: gone.to_path_buf(),
            });
        }
        Ok(cgroups)
    }

    fn resolve(
        &self,
        mount: &CgroupMount,
        cgroup_path: &str,
        source: &Path,
    ) -> Result<PathBuf, CgroupError> {
        let relative = relative_to_mount_root(&mount.root, cgroup_path).ok_or_else(|| {
            CgroupError::OutsideMount {
                path: source.to_path_buf(),
                cgroup_path: cgroup_path.to_string(),
                mount_point: mount.mount_point.clone(),
                mount_root: mount.root.clone(),
            }
        })?;
        let mut dir = under_root(&self.root, &mount.mount_point);
        for part in relative.split('/').filter(|part| !part.is_empty()) {
            dir.push(part);
        }
        Ok(dir)
    }

    /// One reading of every counter of a container.
    ///
    /// With `host_network` the network is [`NetworkStats::HostNetwork`] and
    /// `/proc/<pid>/net/dev` is not read; otherwise that file's interfaces,
    /// loopback excluded, or [`NetworkStats::Unavailable`] when it cannot be
    /// read (process gone, access refused). A cgroup directory that vanished
    /// is [`CgroupError::CgroupGone`].
    pub fn read_sample(
        &self,
        cgroups: &ContainerCgroups,
        pid: u32,
        host_network: bool,
    ) -> Result<Sample, CgroupError> {
        let monotonic_ns = monotonic_now_ns();
        let unix_ms = unix_now_ms();
        let (cpu, memory, block_io, pids) = match cgroups {
            ContainerCgroups::V1 {
                cpu,
                cpuacct,
                memory,
                blkio,
                pids,
            } => (
                v1::read_cpu(cpu, cpuacct)?,
                v1::read_memory(memory)?,
                match blkio {
                    Some(dir) => v1::read_blkio(dir)?,
                    None => Vec::new(),
                },
                v1::read_pids(pids.as_deref(), cpu)?,
            ),
            ContainerCgroups::V2 { dir } => (
                v2::read_cpu(dir)?,
                v2::read_memory(dir)?,
                v2::read_io(dir)?,
                v2::read_pids(dir)?,
            ),
        };
        let network = if host_network {
            NetworkStats::HostNetwork
        } else {
            self.read_network(pid)?
        };
        Ok(Sample {
            cgroup_version: cgroups.version(),
            monotonic_ns,
            unix_ms,
            cpu,
            memory,
            block_io,
            pids,
            network,
        })
    }

    /// Opens the file of the container's total CPU time, the one counter
    /// that moves whenever the container does anything, for a caller that
    /// reads it every pass ([`CpuUsageFile::read_ns`]) and keeps it while
    /// the container lives.
    pub fn open_cpu_usage(&self, cgroups: &ContainerCgroups) -> Result<CpuUsageFile, CgroupError> {
        let path = match cgroups {
            ContainerCgroups::V1 { cpuacct, .. } => cpuacct.join("cpuacct.usage"),
            ContainerCgroups::V2 { dir } => dir.join("cpu.stat"),
        };
        match std::fs::File::open(&path) {
            Ok(file) => Ok(CpuUsageFile {
                file,
                path,
                version: cgroups.version(),
            }),
            Err(source) => Err(fsread::classify(&path, source)),
        }
    }

    /// Interfaces of `pid`'s network namespace, loopback excluded.
    pub fn read_network(&self, pid: u32) -> Result<NetworkStats, CgroupError> {
        let path = self.root.join(format!("proc/{pid}/net/dev"));
        match read_pid_file_lenient(&path)? {
            PidFile::Unavailable => Ok(NetworkStats::Unavailable),
            PidFile::Text(text) => {
                let mut interfaces = parse_net_dev(&text).map_err(|err| err.in_file(&path))?;
                interfaces.retain(|interface| interface.name != "lo");
                Ok(NetworkStats::Interfaces(interfaces))
            }
        }
    }

    /// Host counters from `/proc/stat` (docker's `system_cpu_usage`: the
    /// first 7 fields of the `cpu` line in ns; `online_cpus`: the `cpuN`
    /// lines) and `/proc/meminfo` (`MemTotal`).
    pub fn read_host(&self) -> Result<HostCounters, CgroupError> {
        let stat_path = self.root.join("proc/stat");
        let stat =
            parse_proc_stat(&read_host_file(&stat_path)?).map_err(|err| err.in_file(&stat_path))?;
        let meminfo_path = self.root.join("proc/meminfo");
        let mem_total_bytes = parse_meminfo_total(&read_host_file(&meminfo_path)?)
            .map_err(|err| err.in_file(&meminfo_path))?;
        Ok(HostCounters {
            system_cpu_ns: stat.system_cpu_ns,
            online_cpus: stat.online_cpus,
            mem_total_bytes,
        })
    }
}

/// A container's CPU time counter, held open by its reader. The collector
/// reads it for every container every pass to tell the idle ones; through
/// the shared handle table each read also hashed and compared the file's
/// long path. Dropping it closes the file, so a removed cgroup is not
/// pinned once its container is forgotten.
#[derive(Debug)]
pub struct CpuUsageFile {
    file: std::fs::File,
    path: PathBuf,
    version: CgroupVersion,
}

impl CpuUsageFile {
    /// The counter now, nanoseconds. `CgroupGone` once the cgroup was
    /// removed (the holder should drop this file then).
    pub fn read_ns(&self) -> Result<u64, CgroupError> {
        // Both files are short (one number; v2's cpu.stat a dozen lines):
        // a stack buffer serves them without an allocation.
        let mut buf = [0u8; 1024];
        let read = handles::read_at(&self.file, &mut buf, 0)
            .map_err(|source| fsread::classify(&self.path, source))?;
        let longer;
        let bytes = match read < buf.len() {
            true => &buf[..read],
            false => {
                longer = handles::read_whole(&self.file)
                    .map_err(|source| fsread::classify(&self.path, source))?;
                longer.as_bytes()
            }
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ParseError::whole("not UTF-8").in_file(&self.path))?;
        let parsed = match self.version {
            CgroupVersion::V1 => parse_u64(text),
            CgroupVersion::V2 => v2::usage_usec(text).map(us_to_ns),
        };
        parsed.map_err(|err| err.in_file(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        dir
    }

    #[test]
    fn monotonic_clock_never_goes_back() {
        let a = monotonic_now_ns();
        let b = monotonic_now_ns();
        assert!(b >= a);
        assert!(unix_now_ms() > 1_600_000_000_000);
    }

    #[test]
    fn no_cgroup_mount_is_an_error_naming_mountinfo() {
        let dir = tree(&[(
            "proc/self/mountinfo",
            "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n",
        )]);
        let err = CgroupReader::discover(dir.path()).unwrap_err();
        assert!(matches!(err, CgroupError::NoCgroupMount { .. }));
        assert!(err.to_string().contains("proc/self/mountinfo"), "{err}");
    }

    #[test]
    fn in_a_container_the_host_mounts_come_from_the_hosts_first_process() {
        // jaga in a container with the host's / at <root>: its own table has
        // its cgroup's subtree and the host's hierarchy at /host/sys/...
        let dir = tree(&[
            (
                "proc/self/mountinfo",
                "4110 4109 0:29 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
                 4200 4109 0:29 / /host/sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
            ),
            (
                "proc/1/mountinfo",
                "32 31 0:29 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            ),
        ]);
        let reader = CgroupReader::discover(dir.path()).unwrap();
        let mount = reader.v2.as_ref().unwrap();
        assert_eq!(
            (mount.root.as_str(), mount.mount_point.as_str()),
            ("/", "/sys/fs/cgroup")
        );
    }

    #[test]
    fn missing_mountinfo_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = CgroupReader::discover(dir.path()).unwrap_err();
        assert!(matches!(err, CgroupError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains("proc/self/mountinfo"), "{err}");
    }

    #[test]
    fn prefers_a_whole_hierarchy_mount_over_a_subtree() {
        let dir = tree(&[
            (
                "proc/self/mountinfo",
                "10 1 0:29 /docker/x /mnt/cpu rw - cgroup cgroup rw,cpu,cpuacct\n\
                 11 1 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                 12 1 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            ),
            (
                "proc/7/cgroup",
                "2:cpu,cpuacct:/docker/x\n1:memory:/docker/x\n",
            ),
            ("sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.stat", ""),
            ("sys/fs/cgroup/memory/docker/x/memory.stat", ""),
        ]);
        let reader = CgroupReader::discover(dir.path()).unwrap();
        assert_eq!(reader.version(), CgroupVersion::V1);
        let cgroups = reader.container_cgroups(7).unwrap();
        let base = dir.path().join("sys/fs/cgroup");
        assert_eq!(
            cgroups,
            ContainerCgroups::V1 {
                cpu: base.join("cpu,cpuacct/docker/x"),
                cpuacct: base.join("cpu,cpuacct/docker/x"),
                memory: base.join("memory/docker/x"),
                blkio: None,
                pids: None,
            }
        );
    }

    #[test]
    fn v1_without_memory_mount_is_an_error() {
        let dir = tree(&[
            (
                "proc/self/mountinfo",
                "11 1 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
            ),
            ("proc/7/cgroup", "2:cpu,cpuacct:/docker/x\n"),
            ("sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.stat", ""),
        ]);
        let reader = CgroupReader::discover(dir.path()).unwrap();
        let err = reader.container_cgroups(7).unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::ControllerNotMounted {
                    controller: "memory",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn process_missing_a_controller_line() {
        let dir = tree(&[
            (
                "proc/self/mountinfo",
                "11 1 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                 12 1 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            ),
            ("proc/7/cgroup", "2:cpu,cpuacct:/docker/x\n"),
        ]);
        let reader = CgroupReader::discover(dir.path()).unwrap();
        let err = reader.container_cgroups(7).unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::ControllerNotListed {
                    controller: "memory",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("proc/7/cgroup"), "{err}");
    }

    #[test]
    fn cgroup_outside_the_mounted_subtree() {
        let dir = tree(&[
            (
                "proc/self/mountinfo",
                "20 1 0:38 /docker/mine /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            ),
            ("proc/7/cgroup", "0::/docker/other\n"),
        ]);
        let reader = CgroupReader::discover(dir.path()).unwrap();
        assert_eq!(reader.version(), CgroupVersion::V2);
        let err = reader.container_cgroups(7).unwrap_err();
        assert!(matches!(err, CgroupError::OutsideMount { .. }), "{err:?}");
        assert!(err.to_string().contains("/docker/other"), "{err}");
    }

    #[test]
    fn unreadable_network_is_unavailable() {
        let dir = tree(&[(
            "proc/self/mountinfo",
            "20 1 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        )]);
        let reader = CgroupReader::discover(dir.path()).unwrap();
        assert_eq!(reader.read_network(42).unwrap(), NetworkStats::Unavailable);
    }
}
