//! cgroup v2: one directory holds every controller's files
//! (Documentation/admin-guide/cgroup-v2.rst).

use std::collections::BTreeMap;
use std::path::Path;

use jaga_model::{BlockDeviceIo, CpuStats, MemoryStats, PidsStats};

use crate::error::{CgroupError, ParseError};
use crate::fsread::{parse_optional, parse_required};
use crate::parse::{count_lines, parse_flat_keyed, parse_max_or_u64, parse_u64, parse_u64_field};
use crate::us_to_ns;
use crate::v1::parse_device;

/// `cpu.max`: `$MAX $PERIOD`, `max 100000` when there is no quota.
/// Returns (quota µs, period µs).
pub fn parse_cpu_max(text: &str) -> Result<(Option<u64>, u64), ParseError> {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut fields = line.split_whitespace();
    let (Some(quota), Some(period), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(ParseError::at(
            1,
            format!("expected '$MAX $PERIOD', found '{line}'"),
        ));
    };
    let quota = if quota == "max" {
        None
    } else {
        Some(parse_u64_field(quota, 1)?)
    };
    Ok((quota, parse_u64_field(period, 1)?))
}

/// `io.stat`: `8:0 rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..` per
/// device. Keys jaga does not use (discards, iocost/iolatency extras such as
/// `cost.vrate=100.00`) are skipped. An empty file means no I/O.
pub fn parse_io_stat(text: &str) -> Result<Vec<BlockDeviceIo>, ParseError> {
    let mut devices: BTreeMap<(u32, u32), BlockDeviceIo> = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let mut fields = line.split_whitespace();
        let Some(device) = fields.next() else {
            continue;
        };
        let (major, minor) = parse_device(device, line_no)?;
        let record = devices.entry((major, minor)).or_insert(BlockDeviceIo {
            major,
            minor,
            ..BlockDeviceIo::default()
        });
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(ParseError::at(
                    line_no,
                    format!("expected 'key=value', found '{field}'"),
                ));
            };
            let slot = match key {
                "rbytes" => &mut record.read_bytes,
                "wbytes" => &mut record.write_bytes,
                "rios" => &mut record.read_ops,
                "wios" => &mut record.write_ops,
                _ => continue,
            };
            *slot = slot.saturating_add(parse_u64_field(value, line_no)?);
        }
    }
    Ok(devices.into_values().collect())
}

/// `usage_usec` of a `cpu.stat` text, read without building its table (the
/// collector asks for it every pass for every container).
pub(crate) fn usage_usec(text: &str) -> Result<u64, ParseError> {
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        if fields.next() == Some("usage_usec") {
            return parse_u64_field(fields.next().unwrap_or_default(), index + 1);
        }
    }
    Err(ParseError::whole("no 'usage_usec' line"))
}

pub(crate) fn read_cpu(dir: &Path) -> Result<CpuStats, CgroupError> {
    let stat = parse_required(dir, "cpu.stat", |text| {
        let stat = parse_flat_keyed(text)?;
        let usage = stat
            .get("usage_usec")
            .ok_or_else(|| ParseError::whole("no 'usage_usec' line"))?;
        Ok([
            usage,
            stat.get_or_zero("user_usec"),
            stat.get_or_zero("system_usec"),
            stat.get_or_zero("nr_periods"),
            stat.get_or_zero("nr_throttled"),
            stat.get_or_zero("throttled_usec"),
        ])
    })?;
    let [usage, user, system, periods, throttled_periods, throttled] = stat;
    // cpu.max is absent when the cpu controller is not enabled for the group.
    let (quota_us, period_us) = match parse_optional(dir, "cpu.max", parse_cpu_max)? {
        Some((quota, period)) => (quota, Some(period)),
        None => (None, None),
    };
    Ok(CpuStats {
        usage_total_ns: us_to_ns(usage),
        usage_user_ns: us_to_ns(user),
        usage_system_ns: us_to_ns(system),
        periods,
        throttled_periods,
        throttled_time_ns: us_to_ns(throttled),
        quota_us,
        period_us,
    })
}

pub(crate) fn read_memory(dir: &Path) -> Result<MemoryStats, CgroupError> {
    let usage_bytes = parse_required(dir, "memory.current", parse_u64)?;
    let (rss_bytes, cache_bytes, inactive_file_bytes) =
        parse_required(dir, "memory.stat", |text| {
            let stat = parse_flat_keyed(text)?;
            Ok((
                stat.get_or_zero("anon"),
                stat.get_or_zero("file"),
                stat.get_or_zero("inactive_file"),
            ))
        })?;
    let limit_bytes = parse_optional(dir, "memory.max", parse_max_or_u64)?.flatten();
    // Present only with swap accounting.
    let swap_bytes = parse_optional(dir, "memory.swap.current", parse_u64)?;
    let (failcnt, oom_kills) = parse_optional(dir, "memory.events", |text| {
        let events = parse_flat_keyed(text)?;
        Ok((events.get_or_zero("max"), events.get_or_zero("oom_kill")))
    })?
    .unwrap_or_default();
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

pub(crate) fn read_io(dir: &Path) -> Result<Vec<BlockDeviceIo>, CgroupError> {
    Ok(parse_optional(dir, "io.stat", parse_io_stat)?.unwrap_or_default())
}

pub(crate) fn read_pids(dir: &Path) -> Result<PidsStats, CgroupError> {
    Ok(PidsStats {
        current: parse_optional(dir, "pids.current", parse_u64)?.unwrap_or(0),
        limit: parse_optional(dir, "pids.max", parse_max_or_u64)?.flatten(),
        threads: parse_optional(dir, "cgroup.threads", |text| Ok(count_lines(text)))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_forms() {
        assert_eq!(parse_cpu_max("max 100000\n").unwrap(), (None, 100_000));
        assert_eq!(
            parse_cpu_max("50000 100000\n").unwrap(),
            (Some(50_000), 100_000)
        );
        assert_eq!(parse_cpu_max("max\n").unwrap_err().line, Some(1));
        assert!(parse_cpu_max("half 100000\n").is_err());
        assert!(parse_cpu_max("").is_err());
    }

    #[test]
    fn io_stat_per_device() {
        let text = "8:0 rbytes=10485760 wbytes=2097152 rios=300 wios=40 dbytes=0 dios=0\n259:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n";
        assert_eq!(
            parse_io_stat(text).unwrap(),
            vec![
                BlockDeviceIo {
                    major: 8,
                    minor: 0,
                    read_bytes: 10_485_760,
                    write_bytes: 2_097_152,
                    read_ops: 300,
                    write_ops: 40,
                },
                BlockDeviceIo {
                    major: 259,
                    minor: 0,
                    read_bytes: 4096,
                    write_bytes: 8192,
                    read_ops: 1,
                    write_ops: 2,
                },
            ]
        );
    }

    #[test]
    fn io_stat_empty_and_extra_keys() {
        assert!(parse_io_stat("").unwrap().is_empty());
        let text = "8:16 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0 cost.vrate=100.00 cost.usage=0 use_delay=0 delay_nsec=0\n";
        let devices = parse_io_stat(text).unwrap();
        assert_eq!(devices[0].minor, 16);
        assert_eq!(devices[0].write_ops, 4);
    }

    #[test]
    fn io_stat_rejects_malformed() {
        let err = parse_io_stat("8:0 rbytes=1\n8:0 rbytes\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.reason, "expected 'key=value', found 'rbytes'");
        assert!(parse_io_stat("8:0 rbytes=x\n").is_err());
        assert!(parse_io_stat("sda rbytes=1\n").is_err());
    }

    #[test]
    fn cpu_stat_without_usage_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpu.stat"), "user_usec 1\n").unwrap();
        let err = read_cpu(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no 'usage_usec' line"), "{err}");
        assert!(err.to_string().contains("cpu.stat"), "{err}");
    }

    #[test]
    fn cgroup_without_controllers_reads_defaults() {
        // A v2 group with only cpu.stat, memory.current and memory.stat
        // (pids and io not enabled in cgroup.subtree_control).
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("cpu.stat"),
            "usage_usec 5\nuser_usec 3\nsystem_usec 2\n",
        )
        .unwrap();
        std::fs::write(d.join("memory.current"), "0\n").unwrap();
        std::fs::write(d.join("memory.stat"), "anon 0\n").unwrap();
        assert_eq!(
            read_cpu(d).unwrap(),
            CpuStats {
                usage_total_ns: 5000,
                usage_user_ns: 3000,
                usage_system_ns: 2000,
                ..CpuStats::default()
            }
        );
        assert_eq!(read_memory(d).unwrap(), MemoryStats::default());
        assert!(read_io(d).unwrap().is_empty());
        assert_eq!(read_pids(d).unwrap(), PidsStats::default());
    }
}
