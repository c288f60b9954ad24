//! cgroup v1: one directory per controller, files as runc and cAdvisor read them.

use std::collections::BTreeMap;
use std::path::Path;

use jaga_model::{BlockDeviceIo, CpuStats, MemoryStats, PidsStats};

use crate::error::{CgroupError, ParseError};
use crate::fsread::{parse_optional, parse_required, read_cgroup_file};
use crate::parse::{
    count_lines, parse_flat_keyed, parse_i64, parse_max_or_u64, parse_u64, parse_u64_field,
};
use crate::ticks_to_ns;

/// `memory.limit_in_bytes` at or above this means "no limit": the kernel
/// shows `PAGE_COUNTER_MAX` pages, i.e. `i64::MAX` rounded down to the page
/// size (9223372036854771712 with 4 KiB pages, 9223372036854710272 with
/// 64 KiB pages), so the threshold is rounded down to 64 KiB.
pub const V1_UNLIMITED_THRESHOLD: u64 = 0x7FFF_FFFF_FFFF_0000;

/// `None` for the kernel's "unlimited" value, the value otherwise.
pub fn v1_limit(value: u64) -> Option<u64> {
    (value < V1_UNLIMITED_THRESHOLD).then_some(value)
}

/// `cpuacct.stat`: `user` and `system` in USER_HZ ticks, returned as ns.
pub fn parse_cpuacct_stat(text: &str) -> Result<(u64, u64), ParseError> {
    let stat = parse_flat_keyed(text)?;
    let user = stat
        .get("user")
        .ok_or_else(|| ParseError::whole("no 'user' line"))?;
    let system = stat
        .get("system")
        .ok_or_else(|| ParseError::whole("no 'system' line"))?;
    Ok((ticks_to_ns(user), ticks_to_ns(system)))
}

/// `cpu.cfs_quota_us`: `-1` (any negative value) means no quota.
pub fn parse_cfs_quota(text: &str) -> Result<Option<u64>, ParseError> {
    Ok(u64::try_from(parse_i64(text)?).ok())
}

/// One `8:0 Read 4096` line of a blkio file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkioEntry<'a> {
    pub major: u32,
    pub minor: u32,
    pub op: &'a str,
    pub value: u64,
}

/// Parses a blkio stat file (`blkio.throttle.io_service_bytes_recursive` and
/// its siblings). The closing `Total N` line is skipped, as runc does.
pub fn parse_blkio(text: &str) -> Result<Vec<BlkioEntry<'_>>, ParseError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [] => continue,
            ["Total", value] => {
                parse_u64_field(value, line_no)?;
            }
            [device, op, value] => {
                let (major, minor) = parse_device(device, line_no)?;
                entries.push(BlkioEntry {
                    major,
                    minor,
                    op,
                    value: parse_u64_field(value, line_no)?,
                });
            }
            _ => {
                return Err(ParseError::at(
                    line_no,
                    format!("expected 'major:minor op value', found '{line}'"),
                ))
            }
        }
    }
    Ok(entries)
}

/// `major:minor` of a block device.
pub(crate) fn parse_device(device: &str, line: usize) -> Result<(u32, u32), ParseError> {
    let bad = || ParseError::at(line, format!("expected 'major:minor', found '{device}'"));
    let (major, minor) = device.split_once(':').ok_or_else(bad)?;
    let major = major.parse::<u32>().map_err(|_| bad())?;
    let minor = minor.parse::<u32>().map_err(|_| bad())?;
    Ok((major, minor))
}

/// Combines the bytes file and the operations file of one blkio set into
/// one record per device, ordered by device number.
pub fn merge_blkio(bytes: &[BlkioEntry<'_>], ops: &[BlkioEntry<'_>]) -> Vec<BlockDeviceIo> {
    let mut devices: BTreeMap<(u32, u32), BlockDeviceIo> = BTreeMap::new();
    for entry in bytes {
        let record = devices
            .entry((entry.major, entry.minor))
            .or_insert_with(|| new_device(entry));
        match entry.op {
            "Read" => record.read_bytes = record.read_bytes.saturating_add(entry.value),
            "Write" => record.write_bytes = record.write_bytes.saturating_add(entry.value),
            _ => {}
        }
    }
    for entry in ops {
        let record = devices
            .entry((entry.major, entry.minor))
            .or_insert_with(|| new_device(entry));
        match entry.op {
            "Read" => record.read_ops = record.read_ops.saturating_add(entry.value),
            "Write" => record.write_ops = record.write_ops.saturating_add(entry.value),
            _ => {}
        }
    }
    devices.into_values().collect()
}

fn new_device(entry: &BlkioEntry<'_>) -> BlockDeviceIo {
    BlockDeviceIo {
        major: entry.major,
        minor: entry.minor,
        ..BlockDeviceIo::default()
    }
}

/// The blkio file pairs in the order runc tries them: BFQ, CFQ, then the
/// throttle policy (recursive, then not). The first pair whose bytes file
/// exists and lists at least one device is used.
pub const BLKIO_SETS: [(&str, &str); 4] = [
    (
        "blkio.bfq.io_service_bytes_recursive",
        "blkio.bfq.io_serviced_recursive",
    ),
    (
        "blkio.io_service_bytes_recursive",
        "blkio.io_serviced_recursive",
    ),
    (
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_serviced_recursive",
    ),
    (
        "blkio.throttle.io_service_bytes",
        "blkio.throttle.io_serviced",
    ),
];

pub(crate) fn read_cpu(cpu: &Path, cpuacct: &Path) -> Result<CpuStats, CgroupError> {
    let usage_total_ns = parse_required(cpuacct, "cpuacct.usage", parse_u64)?;
    let (usage_user_ns, usage_system_ns) =
        parse_required(cpuacct, "cpuacct.stat", parse_cpuacct_stat)?;
    // cpu.stat and the CFS files exist only with CONFIG_CFS_BANDWIDTH.
    let (periods, throttled_periods, throttled_time_ns) =
        parse_optional(cpu, "cpu.stat", |text| {
            let stat = parse_flat_keyed(text)?;
            Ok((
                stat.get_or_zero("nr_periods"),
                stat.get_or_zero("nr_throttled"),
                stat.get_or_zero("throttled_time"),
            ))
        })?
        .unwrap_or_default();
    let quota_us = parse_optional(cpu, "cpu.cfs_quota_us", parse_cfs_quota)?.flatten();
    let period_us = parse_optional(cpu, "cpu.cfs_period_us", parse_u64)?;
    Ok(CpuStats {
        usage_total_ns,
        usage_user_ns,
        usage_system_ns,
        periods,
        throttled_periods,
        throttled_time_ns,
        quota_us,
        period_us,
    })
}

pub(crate) fn read_memory(memory: &Path) -> Result<MemoryStats, CgroupError> {
    let usage_bytes = parse_required(memory, "memory.usage_in_bytes", parse_u64)?;
    let (cache_bytes, rss_bytes, inactive_file_bytes) =
        parse_required(memory, "memory.stat", |text| {
            let stat = parse_flat_keyed(text)?;
            // total_* include descendants; plain keys are the fallback for
            // kernels that print no hierarchy totals.
            let pick = |key: &str| {
                stat.get(&format!("total_{key}"))
                    .or_else(|| stat.get(key))
                    .unwrap_or(0)
            };
            Ok((pick("cache"), pick("rss"), pick("inactive_file")))
        })?;
    let limit_bytes = v1_limit(parse_required(memory, "memory.limit_in_bytes", parse_u64)?);
    let failcnt = parse_optional(memory, "memory.failcnt", parse_u64)?.unwrap_or(0);
    // `oom_kill` appeared in 4.13; older kernels print only the first two lines.
    let oom_kills = parse_optional(memory, "memory.oom_control", |text| {
        Ok(parse_flat_keyed(text)?.get_or_zero("oom_kill"))
    })?
    .unwrap_or(0);
    // memory.memsw.* exist only with swap accounting (swapaccount=1).
    let swap_bytes = parse_optional(memory, "memory.memsw.usage_in_bytes", parse_u64)?
        .map(|memsw| memsw.saturating_sub(usage_bytes));
    Ok(MemoryStats {
        usage_bytes,
        working_set_bytes: usage_bytes.saturating_sub(inactive_file_bytes),
        inactive_file_bytes,
        cache_bytes,
        rss_bytes,
        swap_bytes,
        limit_bytes,
        failcnt,
        oom_kills,
    })
}

pub(crate) fn read_blkio(blkio: &Path) -> Result<Vec<BlockDeviceIo>, CgroupError> {
    for (bytes_name, ops_name) in BLKIO_SETS {
        let bytes_path = blkio.join(bytes_name);
        let Some(bytes_text) = read_cgroup_file(&bytes_path)? else {
            continue;
        };
        let bytes = parse_blkio(&bytes_text).map_err(|err| err.in_file(&bytes_path))?;
        if bytes.is_empty() {
            continue;
        }
        let ops_path = blkio.join(ops_name);
        let ops_text = read_cgroup_file(&ops_path)?.unwrap_or_default();
        let ops = parse_blkio(&ops_text).map_err(|err| err.in_file(&ops_path))?;
        return Ok(merge_blkio(&bytes, &ops));
    }
    Ok(Vec::new())
}

/// `pids` may be absent (controller not mounted); threads are then counted
/// in the cpu cgroup's `tasks`. The root cgroup has no `pids.current` or
/// `pids.max`; they read as 0 and no limit.
pub(crate) fn read_pids(pids: Option<&Path>, cpu: &Path) -> Result<PidsStats, CgroupError> {
    match pids {
        Some(dir) => Ok(PidsStats {
            current: parse_optional(dir, "pids.current", parse_u64)?.unwrap_or(0),
            limit: parse_optional(dir, "pids.max", parse_max_or_u64)?.flatten(),
            threads: parse_optional(dir, "tasks", |text| Ok(count_lines(text)))?,
        }),
        None => Ok(PidsStats {
            current: 0,
            limit: None,
            threads: parse_optional(cpu, "tasks", |text| Ok(count_lines(text)))?,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Copied from a container on this host (kernel 6.18), values changed.
    const BYTES: &str = "254:0 Read 8388608\n254:0 Write 4194304\n254:0 Sync 10485760\n254:0 Async 2097152\n254:0 Discard 0\n254:0 Total 12582912\n7:1 Read 1048576\n7:1 Write 0\n7:1 Sync 1048576\n7:1 Async 0\n7:1 Discard 0\n7:1 Total 1048576\nTotal 13631488\n";
    const OPS: &str = "254:0 Read 512\n254:0 Write 256\n254:0 Sync 700\n254:0 Async 68\n254:0 Discard 0\n254:0 Total 768\n7:1 Read 64\n7:1 Write 0\n7:1 Sync 64\n7:1 Async 0\n7:1 Discard 0\n7:1 Total 64\nTotal 832\n";

    #[test]
    fn blkio_entries_skip_the_total_line() {
        let entries = parse_blkio(BYTES).unwrap();
        assert_eq!(entries.len(), 12);
        assert_eq!(
            entries[0],
            BlkioEntry {
                major: 254,
                minor: 0,
                op: "Read",
                value: 8_388_608
            }
        );
        assert!(parse_blkio("Total 0\n").unwrap().is_empty());
        assert!(parse_blkio("").unwrap().is_empty());
    }

    #[test]
    fn blkio_merges_per_device_in_device_order() {
        let merged = merge_blkio(&parse_blkio(BYTES).unwrap(), &parse_blkio(OPS).unwrap());
        assert_eq!(
            merged,
            vec![
                BlockDeviceIo {
                    major: 7,
                    minor: 1,
                    read_bytes: 1_048_576,
                    write_bytes: 0,
                    read_ops: 64,
                    write_ops: 0,
                },
                BlockDeviceIo {
                    major: 254,
                    minor: 0,
                    read_bytes: 8_388_608,
                    write_bytes: 4_194_304,
                    read_ops: 512,
                    write_ops: 256,
                },
            ]
        );
    }

    #[test]
    fn blkio_rejects_malformed_lines() {
        let err = parse_blkio("8:0 Read 1\n8:0 Write\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        let err = parse_blkio("8-0 Read 1\n").unwrap_err();
        assert_eq!(err.reason, "expected 'major:minor', found '8-0'");
        let err = parse_blkio("8:0 Read x\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(parse_blkio("Total x\n").is_err());
    }

    #[test]
    fn cpuacct_stat_ticks_to_ns() {
        assert_eq!(
            parse_cpuacct_stat("user 4\nsystem 1\n").unwrap(),
            (40_000_000, 10_000_000)
        );
        assert_eq!(
            parse_cpuacct_stat("user 4\n").unwrap_err().reason,
            "no 'system' line"
        );
    }

    #[test]
    fn cfs_quota() {
        assert_eq!(parse_cfs_quota("-1\n").unwrap(), None);
        assert_eq!(parse_cfs_quota("50000\n").unwrap(), Some(50_000));
        assert!(parse_cfs_quota("fifty\n").is_err());
    }

    #[test]
    fn unlimited_memory_limits() {
        assert_eq!(v1_limit(9_223_372_036_854_771_712), None);
        assert_eq!(v1_limit(9_223_372_036_854_710_272), None, "64 KiB pages");
        assert_eq!(v1_limit(268_435_456), Some(268_435_456));
    }

    #[test]
    fn old_kernel_oom_control_without_oom_kill() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("memory.usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(d.join("memory.stat"), "cache 0\nrss 4096\n").unwrap();
        std::fs::write(d.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        std::fs::write(
            d.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\n",
        )
        .unwrap();
        let memory = read_memory(d).unwrap();
        assert_eq!(
            memory,
            MemoryStats {
                usage_bytes: 4096,
                working_set_bytes: 4096,
                inactive_file_bytes: 0,
                cache_bytes: 0,
                rss_bytes: 4096,
                swap_bytes: None,
                limit_bytes: None,
                failcnt: 0,
                oom_kills: 0,
            }
        );
    }

    #[test]
    fn swap_saturates_when_memsw_is_below_usage() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("memory.usage_in_bytes"), "8192\n").unwrap();
        std::fs::write(d.join("memory.memsw.usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(d.join("memory.stat"), "total_inactive_file 16384\n").unwrap();
        std::fs::write(d.join("memory.limit_in_bytes"), "1048576\n").unwrap();
        let memory = read_memory(d).unwrap();
        assert_eq!(memory.swap_bytes, Some(0));
        assert_eq!(memory.working_set_bytes, 0);
        assert_eq!(memory.limit_bytes, Some(1_048_576));
    }

    fn blkio_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn blkio_prefers_bfq_then_cfq_then_throttle() {
        let cfq = "8:0 Read 100\n8:0 Write 0\nTotal 100\n";
        let throttle = "8:0 Read 200\n8:0 Write 0\nTotal 200\n";
        let dir = blkio_dir(&[
            ("blkio.bfq.io_service_bytes_recursive", "Total 0\n"),
            ("blkio.bfq.io_serviced_recursive", "Total 0\n"),
            ("blkio.io_service_bytes_recursive", cfq),
            (
                "blkio.io_serviced_recursive",
                "8:0 Read 1\n8:0 Write 0\nTotal 1\n",
            ),
            ("blkio.throttle.io_service_bytes_recursive", throttle),
        ]);
        let devices = read_blkio(dir.path()).unwrap();
        assert_eq!(devices[0].read_bytes, 100, "empty bfq is skipped, cfq wins");
        assert_eq!(devices[0].read_ops, 1);

        let dir = blkio_dir(&[
            ("blkio.throttle.io_service_bytes_recursive", "Total 0\n"),
            ("blkio.throttle.io_service_bytes", throttle),
        ]);
        let devices = read_blkio(dir.path()).unwrap();
        assert_eq!(devices[0].read_bytes, 200);
        assert_eq!(
            devices[0].read_ops, 0,
            "missing serviced file counts as no ops"
        );

        let dir = blkio_dir(&[]);
        assert!(read_blkio(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn pids_without_controller_counts_cpu_tasks() {
        let dir = blkio_dir(&[("tasks", "1\n2\n")]);
        assert_eq!(
            read_pids(None, dir.path()).unwrap(),
            PidsStats {
                current: 0,
                limit: None,
                threads: Some(2)
            }
        );
    }
}
