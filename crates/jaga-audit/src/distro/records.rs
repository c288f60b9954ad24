//! Parsers of the distributions' records of fixed CVEs. Each keeps every
//! entry with its version; which entries count is decided against the
//! installed version with the distribution's ordering.

use super::FixEntry;

/// A Debian/Ubuntu `changelog.Debian`: entries headed `pkg (version) dist;
/// urgency=…`, items starting with `*`, `-` or `+`, closed by ` -- name  date`.
pub fn parse_debian_changelog(text: &str) -> Vec<FixEntry> {
    let mut entries: Vec<FixEntry> = Vec::new();
    for line in text.lines() {
        if let Some((heading, version)) = debian_heading(line) {
            entries.push(FixEntry {
                version: Some(version.to_owned()),
                heading,
                items: Vec::new(),
            });
            continue;
        }
        let Some(entry) = entries.last_mut() else {
            continue;
        };
        if line.starts_with(" -- ") || line.trim().is_empty() {
            continue;
        }
        add_item_line(&mut entry.items, line.trim(), &['*', '-', '+']);
    }
    entries
}

/// `runc (1.1.5+ds1-1+deb12u1) bookworm-security; urgency=high`:
/// (`runc (1.1.5+ds1-1+deb12u1) bookworm-security`, the version).
fn debian_heading(line: &str) -> Option<(String, &str)> {
    if line.starts_with(char::is_whitespace) {
        return None;
    }
    let (package, rest) = line.split_once(" (")?;
    let (version, rest) = rest.split_once(')')?;
    if package.is_empty() || package.contains(char::is_whitespace) || version.is_empty() {
        return None;
    }
    let distribution = rest.split(';').next().unwrap_or_default().trim();
    Some((format!("{package} ({version}) {distribution}"), version))
}

/// A new item when the line starts with a bullet; else a continuation of
/// the last one.
fn add_item_line(items: &mut Vec<String>, line: &str, bullets: &[char]) {
    if let Some(rest) = line.strip_prefix(bullets) {
        items.push(rest.trim().to_owned());
    } else if let Some(last) = items.last_mut() {
        last.push(' ');
        last.push_str(line);
    } else {
        items.push(line.to_owned());
    }
}

/// `rpm -q --changelog` output: entries headed `* Thu Feb 01 2024 Name
/// <mail> - 4:1.1.12-1`, items starting with `-`.
pub fn parse_rpm_changelog(text: &str) -> Vec<FixEntry> {
    let mut entries: Vec<FixEntry> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("* ") {
            entries.push(FixEntry {
                version: rpm_heading_version(heading).map(str::to_owned),
                heading: heading.trim().to_owned(),
                items: Vec::new(),
            });
            continue;
        }
        let Some(entry) = entries.last_mut() else {
            continue;
        };
        if !line.trim().is_empty() {
            add_item_line(&mut entry.items, line.trim(), &['-']);
        }
    }
    entries
}

/// The EVR at the end of an RPM changelog heading: after ` - ` or `> `,
/// when it starts with a digit.
fn rpm_heading_version(heading: &str) -> Option<&str> {
    let tail = heading
        .rsplit_once(" - ")
        .map(|(_, v)| v)
        .or_else(|| heading.rsplit_once("> ").map(|(_, v)| v))?
        .trim();
    let starts_with_digit = tail.starts_with(|c: char| c.is_ascii_digit());
    (starts_with_digit && !tail.contains(char::is_whitespace)).then_some(tail)
}

/// The `# secfixes:` block of an APKBUILD, and its `pkgname`:
///
/// ```text
/// # secfixes:
/// #   1.1.12-r0:
/// #     - CVE-2024-21626
/// ```
///
/// Version `0` lists CVEs that never applied to Alpine's package.
pub fn parse_alpine_secfixes(text: &str) -> (Option<String>, Vec<FixEntry>) {
    let package = text.lines().find_map(|line| {
        let value = line.trim().strip_prefix("pkgname=")?;
        Some(value.trim_matches(['"', '\'']).to_owned())
    });
    let mut entries: Vec<FixEntry> = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let Some(comment) = line.trim_start().strip_prefix('#') else {
            if in_block {
                break;
            }
            continue;
        };
        let content = comment.trim();
        if !in_block {
            in_block = content == "secfixes:";
            continue;
        }
        if content.is_empty() {
            break;
        }
        if let Some(item) = content.strip_prefix("- ") {
            if let Some(entry) = entries.last_mut() {
                entry.items.push(item.trim().to_owned());
            }
        } else if let Some(version) = content.strip_suffix(':') {
            let version = version.trim().trim_matches(['"', '\'']);
            entries.push(FixEntry {
                version: Some(version.to_owned()),
                heading: format!("secfixes {version}"),
                items: Vec::new(),
            });
        } else {
            break;
        }
    }
    (package, entries)
}

/// Alpine's security database (secdb, `main.json`/`community.json`): the
/// secfixes of `package`, if it lists that package.
pub fn parse_alpine_secdb(json: &serde_json::Value, package: &str) -> Option<Vec<FixEntry>> {
    let packages = json.get("packages")?.as_array()?;
    let pkg = packages
        .iter()
        .filter_map(|p| p.get("pkg"))
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(package))?;
    let secfixes = pkg.get("secfixes")?.as_object()?;
    Some(
        secfixes
            .iter()
            .map(|(version, cves)| FixEntry {
                version: Some(version.clone()),
                heading: format!("secfixes {version}"),
                items: cves
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(|c| c.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_items_join_their_continuation_lines() {
        let text = "runc (1.1.5+ds1-1) unstable; urgency=medium\n\n  * New upstream version\n    + CVE-2023-27561: Incorrect Authorization\n      (re-introduced CVE-2019-19921) (Closes: #1033520)\n\n -- A <a@b>  Wed, 29 Mar 2023 17:24:36 +0800\n";
        let entries = parse_debian_changelog(text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].heading, "runc (1.1.5+ds1-1) unstable");
        assert_eq!(
            entries[0].items,
            vec![
                "New upstream version",
                "CVE-2023-27561: Incorrect Authorization (re-introduced CVE-2019-19921) (Closes: #1033520)"
            ]
        );
    }

    #[test]
    fn rpm_heading_versions() {
        assert_eq!(
            rpm_heading_version("Thu Feb 01 2024 J N <j@r.com> - 4:1.1.12-1"),
            Some("4:1.1.12-1")
        );
        assert_eq!(
            rpm_heading_version("Thu Feb 01 2024 J N <j@r.com> 1.1.12-1"),
            Some("1.1.12-1")
        );
        assert_eq!(rpm_heading_version("Thu Feb 01 2024 J N <j@r.com>"), None);
    }

    #[test]
    fn secdb_lists_one_package() {
        let json = serde_json::json!({"packages": [
            {"pkg": {"name": "runc", "secfixes": {"1.1.12-r0": ["CVE-2024-21626"]}}},
            {"pkg": {"name": "containerd", "secfixes": {"1.6.26-r0": ["CVE-2023-47108"]}}},
        ]});
        let runc = parse_alpine_secdb(&json, "runc").unwrap();
        assert_eq!(runc.len(), 1);
        assert_eq!(runc[0].version.as_deref(), Some("1.1.12-r0"));
        assert!(runc[0].names("CVE-2024-21626"));
        assert!(parse_alpine_secdb(&json, "docker").is_none());
    }
}
