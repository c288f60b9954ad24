//! `/proc` files: a network namespace's interface counters and the host
//! counters `docker stats` divides by.

use jaga_model::InterfaceStats;

use crate::error::ParseError;
use crate::parse::parse_u64_field;
use crate::ticks_to_ns;

/// Parses `/proc/<pid>/net/dev`: two header lines, then one line per
/// interface, `name: ` followed by 8 receive and 8 transmit counters.
///
/// Returns every interface, loopback included; [`crate::CgroupReader::read_sample`]
/// drops `lo`. The name may run into the first number (`eth0:1234`), as on
/// old kernels.
pub fn parse_net_dev(text: &str) -> Result<Vec<InterfaceStats>, ParseError> {
    let mut interfaces = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if index < 2 {
            if !line.contains('|') {
                return Err(ParseError::at(
                    line_no,
                    format!("expected a header line with '|', found '{line}'"),
                ));
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, counters)) = line.split_once(':') else {
            return Err(ParseError::at(
                line_no,
                format!("expected 'name: counters', found '{line}'"),
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(ParseError::at(line_no, "empty interface name"));
        }
        let values = counters
            .split_whitespace()
            .map(|field| parse_u64_field(field, line_no))
            .collect::<Result<Vec<u64>, ParseError>>()?;
        if values.len() < 16 {
            return Err(ParseError::at(
                line_no,
                format!("expected 16 counters for '{name}', found {}", values.len()),
            ));
        }
        interfaces.push(InterfaceStats {
            name: name.to_string(),
            rx_bytes: values[0],
            rx_packets: values[1],
            rx_errors: values[2],
            rx_dropped: values[3],
            tx_bytes: values[8],
            tx_packets: values[9],
            tx_errors: values[10],
            tx_dropped: values[11],
        });
    }
    Ok(interfaces)
}

/// What `/proc/stat` contributes to [`jaga_model::HostCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// docker's `system_cpu_usage`: user, nice, system, idle, iowait, irq and
    /// softirq of the `cpu` line, in ns.
    pub system_cpu_ns: u64,
    /// Number of `cpuN` lines.
    pub online_cpus: u32,
}

pub fn parse_proc_stat(text: &str) -> Result<ProcStat, ParseError> {
    let mut system_cpu_ns = None;
    let mut online_cpus: u32 = 0;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let mut fields = line.split_whitespace();
        let Some(label) = fields.next() else {
            continue;
        };
        if label == "cpu" {
            let ticks = fields
                .take(7)
                .map(|field| parse_u64_field(field, line_no))
                .collect::<Result<Vec<u64>, ParseError>>()?;
            if ticks.len() < 7 {
                return Err(ParseError::at(
                    line_no,
                    format!(
                        "expected at least 7 counters on the 'cpu' line, found {}",
                        ticks.len()
                    ),
                ));
            }
            let total = ticks.iter().fold(0u64, |sum, t| sum.saturating_add(*t));
            system_cpu_ns = Some(ticks_to_ns(total));
        } else if label
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            online_cpus = online_cpus.saturating_add(1);
        }
    }
    let system_cpu_ns = system_cpu_ns.ok_or_else(|| ParseError::whole("no 'cpu' line"))?;
    Ok(ProcStat {
        system_cpu_ns,
        online_cpus,
    })
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(text: &str) -> Result<u64, ParseError> {
    for (index, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix("MemTotal:") else {
            continue;
        };
        let line_no = index + 1;
        let mut fields = rest.split_whitespace();
        let value = match fields.next() {
            Some(value) => parse_u64_field(value, line_no)?,
            None => return Err(ParseError::at(line_no, "no value after 'MemTotal:'")),
        };
        return match fields.next() {
            Some("kB") => Ok(value.saturating_mul(1024)),
            None => Ok(value),
            Some(unit) => Err(ParseError::at(
                line_no,
                format!("expected unit 'kB', found '{unit}'"),
            )),
        };
    }
    Err(ParseError::whole("no 'MemTotal' line"))
}

/// Block devices by `major:minor` from `/proc/partitions`, named as in `/dev`
/// (`254:0` → `/dev/vda`), for the `device` label of block I/O series.
/// Lines that do not read as `major minor blocks name` are skipped.
pub fn parse_partitions(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [major, minor, blocks, name] = fields.as_slice() else {
                return None;
            };
            major.parse::<u32>().ok()?;
            minor.parse::<u32>().ok()?;
            blocks.parse::<u64>().ok()?;
            Some((format!("{major}:{minor}"), format!("/dev/{name}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A container on this host with the default bridge network (kernel 6.18).
    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0:     486       5    0    0    0     0          0         0        0       0    0    0    0     0       0          0
";

    #[test]
    fn net_dev_reads_every_interface() {
        let interfaces = parse_net_dev(NET_DEV).unwrap();
        assert_eq!(interfaces.len(), 2);
        assert_eq!(interfaces[0].name, "lo");
        assert_eq!(
            interfaces[1],
            InterfaceStats {
                name: "eth0".into(),
                rx_bytes: 486,
                rx_packets: 5,
                ..InterfaceStats::default()
            }
        );
    }

    #[test]
    fn net_dev_name_running_into_number() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes |bytes\n  eth0:1234 5 6 7 0 0 0 0 8910 11 12 13 0 0 0 0\nvethabcdef1:123456789  2 0 0 0 0 0 0 3 4 0 0 0 0 0 0\n";
        let interfaces = parse_net_dev(text).unwrap();
        assert_eq!(
            interfaces[0],
            InterfaceStats {
                name: "eth0".into(),
                rx_bytes: 1234,
                rx_packets: 5,
                rx_errors: 6,
                rx_dropped: 7,
                tx_bytes: 8910,
                tx_packets: 11,
                tx_errors: 12,
                tx_dropped: 13,
            }
        );
        assert_eq!(interfaces[1].name, "vethabcdef1");
        assert_eq!(interfaces[1].rx_bytes, 123_456_789);
    }

    #[test]
    fn net_dev_rejects_malformed_lines() {
        let header = NET_DEV.lines().take(2).collect::<Vec<_>>().join("\n");
        let err = parse_net_dev(&format!("{header}\n  eth0: 1 2 3\n")).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert_eq!(err.reason, "expected 16 counters for 'eth0', found 3");
        let err = parse_net_dev(&format!("{header}\n  eth0 1 2 3\n")).unwrap_err();
        assert_eq!(err.line, Some(3));
        let err = parse_net_dev(&format!(
            "{header}\n  eth0: 1 2 x 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        ))
        .unwrap_err();
        assert_eq!(err.reason, "expected an unsigned integer, found 'x'");
        let err = parse_net_dev("  eth0: 1\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(parse_net_dev("").unwrap().is_empty());
    }

    #[test]
    fn proc_stat_sums_seven_fields_and_counts_cpus() {
        let text = "cpu  3021 0 2467 977030 447 0 53 12 0 0\ncpu0 1375 0 1185 488904 36 0 16 4 0 0\ncpu1 1646 0 1281 488126 411 0 37 8 0 0\nintr 275877 0 0\nctxt 558584\n";
        assert_eq!(
            parse_proc_stat(text).unwrap(),
            ProcStat {
                system_cpu_ns: (3021 + 2467 + 977_030 + 447 + 53) * 10_000_000,
                online_cpus: 2,
            }
        );
    }

    #[test]
    fn proc_stat_errors() {
        assert_eq!(
            parse_proc_stat("cpu0 1 2 3 4 5 6 7\n").unwrap_err(),
            ParseError::whole("no 'cpu' line")
        );
        assert_eq!(
            parse_proc_stat("ctxt 1\ncpu  1 2 3\n").unwrap_err().line,
            Some(2)
        );
        assert_eq!(
            parse_proc_stat("cpu  1 2 3 4 5 6 x\n").unwrap_err().line,
            Some(1)
        );
    }

    #[test]
    fn meminfo_total() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       24684084 kB\nMemFree:        24186596 kB\n")
                .unwrap(),
            24_684_084 * 1024
        );
        assert!(parse_meminfo_total("MemFree: 1 kB\n").is_err());
        assert_eq!(
            parse_meminfo_total("MemTotal: x kB\n").unwrap_err().line,
            Some(1)
        );
        assert!(parse_meminfo_total("MemTotal: 1 MB\n").is_err());
    }

    #[test]
    fn partitions_name_devices_by_major_minor() {
        let text = "major minor  #blocks  name\n\n 254        0  268435456 vda\n 254        1  268434415 vda1\n   7        0       4096 loop0\n";
        let devices = parse_partitions(text);
        assert_eq!(devices.len(), 3);
        assert_eq!(devices["254:0"], "/dev/vda");
        assert_eq!(devices["254:1"], "/dev/vda1");
        assert_eq!(devices["7:0"], "/dev/loop0");
    }
}
