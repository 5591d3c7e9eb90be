//! `INFO` text (`# Section` headers, `field:value` lines) parsed into fields, and the short
//! node summary `cellkv-cli status` prints from it.

/// The `field:value` pairs of an `INFO` reply, in order; headers and blank lines skipped.
pub fn parse_info(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .collect()
}

/// The value of one `INFO` field, if present.
pub fn field<'a>(fields: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| *value)
}

/// Fields `status` shows, in this order.
const STATUS_FIELDS: &[&str] = &[
    "role",
    "raft_node_id",
    "raft_state",
    "raft_term",
    "raft_leader_id",
    "raft_commit_index",
    "raft_applied_index",
    "raft_members",
    "raft_last_snapshot_index",
];

/// A few lines about a node from the text of `INFO everything`: its role, the Raft
/// fields, and the number of keys per database. A field the node did not report reads
/// `?` rather than being left out, so scripts can rely on every line being there.
pub fn status_summary(info_text: &str) -> String {
    let fields = parse_info(info_text);
    let mut lines: Vec<(String, String)> = STATUS_FIELDS
        .iter()
        .map(|name| {
            (
                name.to_string(),
                field(&fields, name).unwrap_or("?").to_string(),
            )
        })
        .collect();
    let dbs: Vec<String> = fields
        .iter()
        .filter(|(key, _)| {
            key.strip_prefix("db")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .map(|(db, value)| format!("{db}={}", keyspace_value(value, "keys").unwrap_or("?")))
        .collect();
    let keys = if dbs.is_empty() {
        "0".to_string()
    } else {
        dbs.join(" ")
    };
    lines.push(("keys".to_string(), keys));
    let width = lines.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    lines
        .iter()
        .map(|(name, value)| format!("{name:<width$}  {value}\n"))
        .collect()
}

/// One `name=value` item of a keyspace line (`keys=3,expires=0,avg_ttl=0`).
fn keyspace_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(',')
        .find_map(|item| item.strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.2.0\r\n\r\n# Persistence\r\n\
        raft_last_snapshot_index:-1\r\n\r\n# Replication\r\nrole:master\r\nraft_node_id:1\r\n\
        raft_state:Leader\r\nraft_term:2\r\nraft_leader_id:1\r\nraft_commit_index:9\r\n\
        raft_applied_index:9\r\nraft_members:1,2,3\r\n\r\n# Keyspace\r\n\
        db0:keys=3,expires=1,avg_ttl=0\r\ndb5:keys=10,expires=0,avg_ttl=0\r\n";

    /// Fields parse with their values; headers and blank lines are not fields.
    #[test]
    fn parses_fields() {
        let fields = parse_info(INFO);
        assert_eq!(field(&fields, "redis_version"), Some("7.2.0"));
        assert_eq!(field(&fields, "raft_members"), Some("1,2,3"));
        assert_eq!(field(&fields, "db0"), Some("keys=3,expires=1,avg_ttl=0"));
        assert_eq!(field(&fields, "Server"), None);
        assert_eq!(keyspace_value("keys=3,expires=1", "expires"), Some("1"));
    }

    /// The summary has one aligned line per field and the key count of each database.
    #[test]
    fn summary_lists_raft_fields_and_keys() {
        let summary = status_summary(INFO);
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(lines[0], "role                      master");
        assert!(lines.contains(&"raft_term                 2"), "{summary}");
        assert!(
            lines.contains(&"raft_members              1,2,3"),
            "{summary}"
        );
        assert!(lines.contains(&"raft_last_snapshot_index  -1"), "{summary}");
        assert_eq!(
            lines.last(),
            Some(&"keys                      db0=3 db5=10")
        );
    }

    /// Missing fields read `?` and an empty keyspace reads 0 keys.
    #[test]
    fn summary_of_sparse_info() {
        let summary = status_summary("# Replication\r\nrole:slave\r\n");
        assert!(
            summary.contains("role                      slave\n"),
            "{summary}"
        );
        assert!(
            summary.contains("raft_term                 ?\n"),
            "{summary}"
        );
        assert!(
            summary.ends_with("keys                      0\n"),
            "{summary}"
        );
    }
}
