//! What `/proc/<pid>` tells of a process: executable, arguments, working
//! directory, user, parent, terminal, start time and container. The
//! parsers are pure functions over the files' text; [`read_process`] reads
//! them under a root given to it (the host's `/` mounted at `/host`).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::attribution::container_of_cgroup;

/// Most bytes of a command line kept: the kernel has no limit, an alert
/// needs the start of it.
pub const MAX_CMDLINE_BYTES: usize = 4096;

/// The fields of `/proc/<pid>/stat` jaga reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The kernel's name for the task (`comm`, at most 15 bytes).
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    /// The controlling terminal's device number; 0: none.
    pub tty_nr: i64,
    /// User and system time, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in clock ticks: with the pid, a process's identity.
    pub start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The name sits in parentheses and may itself
/// hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field n is rest[n - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    let number = |n: usize| field(n).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        ppid: u32::try_from(number(4)?).ok()?,
        tty_nr: field(7)?.parse().ok()?,
        cpu_ticks: number(14)?.saturating_add(number(15)?),
        start_ticks: number(22)?,
    })
}

/// The real user id from `/proc/<pid>/status` (`Uid:` real effective saved fs).
pub fn parse_status_uid(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// The arguments in `/proc/<pid>/cmdline` (NUL-separated, lossy UTF-8).
/// Empty for a kernel thread or a zombie.
pub fn split_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|b| *b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// A process as `/proc` showed it at one instant; what could not be read
/// (the process exited, access refused) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcRead {
    pub pid: u32,
    pub stat: Option<Stat>,
    pub exe: Option<String>,
    /// Arguments with `argv[0]`; `None` when unreadable or empty (a zombie).
    pub args: Option<Vec<String>>,
    pub cwd: Option<String>,
    pub uid: Option<u32>,
    /// The container id its cgroup names; `None`: on the host, or unreadable.
    pub container_id: Option<String>,
    /// Whether `/proc/<pid>/cgroup` could be read (so `None` above means the host).
    pub cgroup_read: bool,
}

/// The `/proc` directory under `root`.
pub fn proc_dir(root: &Path) -> PathBuf {
    root.join("proc")
}

/// Reads what `/proc/<pid>` shows; never fails, missing parts are `None`.
pub fn read_process(proc: &Path, pid: u32) -> ProcRead {
    let cgroup = read_cgroup(proc, pid);
    read_details(proc, pid, cgroup)
}

/// `/proc/<pid>/cgroup`, read first: a host process (most executions on a
/// busy host) costs this one read and no more. `None`: unreadable.
pub fn read_cgroup(proc: &Path, pid: u32) -> Option<Option<String>> {
    read_text(&proc.join(pid.to_string()).join("cgroup")).map(|text| container_of_cgroup(&text))
}

/// The rest of a process, its cgroup's answer given. The command line is
/// read first: it is what a short process loses first.
pub fn read_details(proc: &Path, pid: u32, cgroup: Option<Option<String>>) -> ProcRead {
    let dir = proc.join(pid.to_string());
    let args = read_limited(&dir.join("cmdline"), MAX_CMDLINE_BYTES)
        .map(|bytes| split_cmdline(&bytes))
        .filter(|args| !args.is_empty());
    let exe = read_link(&dir.join("exe"));
    let stat = read_text(&dir.join("stat")).and_then(|text| parse_stat(&text));
    let uid = read_text(&dir.join("status")).and_then(|text| parse_status_uid(&text));
    let cwd = read_link(&dir.join("cwd"));
    ProcRead {
        pid,
        stat,
        exe,
        args,
        cwd,
        uid,
        cgroup_read: cgroup.is_some(),
        container_id: cgroup.flatten(),
    }
}

/// Only `/proc/<pid>/stat`: the cheap look the poller takes at every process.
pub fn read_stat(proc: &Path, pid: u32) -> Option<Stat> {
    read_text(&proc.join(pid.to_string()).join("stat")).and_then(|text| parse_stat(&text))
}

/// The pids under `/proc`, in no order.
pub fn list_pids(proc: &Path) -> std::io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(proc)? {
        let Ok(entry) = entry else { continue };
        if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// The last pid the kernel handed out (`/proc/loadavg`'s last field), to
/// count processes the poller never saw.
pub fn last_pid(proc: &Path) -> Option<u32> {
    std::fs::read_to_string(proc.join("loadavg"))
        .ok()?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// `/proc/sys/kernel/pid_max`: where pids wrap.
pub fn pid_max(proc: &Path) -> u32 {
    std::fs::read_to_string(proc.join("sys/kernel/pid_max"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4_194_304)
}

fn read_link(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|target| target.to_string_lossy().into_owned())
}

/// A small `/proc` file (`cgroup`, `stat`, `status`) in one read:
/// `std::fs::read_to_string` asks its size first (always 0 here) and then
/// reads in growing steps from 32 bytes, six calls for a `cgroup` file of
/// 500 bytes, on every process a busy host starts. These files give all
/// they have at once, so a short read is the end; the stack buffer keeps a
/// 4 KiB request away from glibc's allocator.
fn read_text(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut chunk = [0u8; 4096];
    let mut bytes = Vec::new();
    loop {
        let read = match file.read(&mut chunk) {
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        bytes.extend_from_slice(&chunk[..read]);
        if read < chunk.len() {
            break;
        }
    }
    String::from_utf8(bytes).ok()
}

fn read_limited(path: &Path, limit: usize) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit as u64).read_to_end(&mut bytes))
        .ok()?;
    Some(bytes)
}

/// Clock ticks per second for `/proc` times (`_SC_CLK_TCK`): 100 on every
/// Linux architecture jaga builds for.
pub const CLOCK_TICKS: u64 = 100;

/// The boot time in Unix milliseconds (`btime` of `/proc/stat`), to turn
/// start ticks into a wall-clock time.
pub fn boot_time_ms(proc: &Path) -> Option<i64> {
    std::fs::read_to_string(proc.join("stat"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|secs| secs.trim().parse::<i64>().ok())
        .map(|secs| secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parentheses_and_spaces_in_the_name() {
        let text = "4242 (my (odd) name) S 4200 4242 4242 34816 4242 4194560 100 0 0 0 7 3 0 0 20 0 1 0 123456 1000 10 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.comm, "my (odd) name");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 4200);
        assert_eq!(stat.tty_nr, 34816);
        assert_eq!(stat.cpu_ticks, 10);
        assert_eq!(stat.start_ticks, 123456);
    }

    #[test]
    fn truncated_or_garbled_stat_is_refused_not_a_panic() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("1 (sh"), None);
        assert_eq!(parse_stat("1 (sh) S x"), None);
        assert_eq!(parse_stat("1 (sh) S 1 1 1 0"), None);
    }

    #[test]
    fn uid_is_the_real_one() {
        let text = "Name:\tsh\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_status_uid(text), Some(1000));
        assert_eq!(parse_status_uid("Name:\tsh\n"), None);
    }

    #[test]
    fn cmdline_splits_on_nul_and_keeps_empty_arguments() {
        assert_eq!(split_cmdline(b"nc\0-l\0\0-p\0"), vec!["nc", "-l", "", "-p"]);
        assert!(split_cmdline(b"").is_empty());
        assert_eq!(split_cmdline(b"a\xffb\0"), vec!["a\u{fffd}b"]);
    }

    #[test]
    fn reads_a_live_process_of_this_test() {
        let read = read_process(Path::new("/proc"), std::process::id());
        assert!(read.exe.is_some());
        assert!(read.args.is_some_and(|a| !a.is_empty()));
        assert!(read.stat.is_some());
        assert!(read.cgroup_read);
        let gone = read_process(Path::new("/proc"), u32::MAX);
        assert_eq!(gone.exe, None);
        assert!(!gone.cgroup_read);
    }
}
