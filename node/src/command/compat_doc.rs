//! Keeps `docs/compatibility.md` in step with the command table: every command and
//! subcommand the table serves is a `supported` row, and every `supported` row is served.
//! A command added to the table without its row, or a row promised without the command,
//! fails the build's tests rather than misleading a reader.

use std::collections::HashMap;

use super::COMMANDS;

const DOC: &str = include_str!("../../../docs/compatibility.md");

const STATUSES: &[&str] = &["supported", "planned", "not supported"];

/// One command row of the document.
struct Row {
    line: usize,
    name: String,
    status: String,
}

/// Every row of every `| command | status | notes |` table, headers and rules skipped.
/// Panics on a table line that does not have exactly three cells, so a stray `|` inside
/// the notes cannot silently hide a row.
fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, line) in DOC.lines().enumerate() {
        let line_no = index + 1;
        let Some(inner) = line.trim().strip_prefix('|') else {
            continue;
        };
        let cells: Vec<&str> = inner
            .trim_end_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let [name, status, _notes] = cells.as_slice() else {
            panic!("line {line_no}: a table row needs exactly 3 cells: {line}");
        };
        if *name == "command" || name.starts_with("---") {
            continue;
        }
        rows.push(Row {
            line: line_no,
            name: name.trim_matches('`').to_string(),
            status: status.to_string(),
        });
    }
    rows
}

/// Status of each documented command, by its upper-case name.
fn statuses() -> HashMap<String, String> {
    rows()
        .into_iter()
        .map(|row| (row.name, row.status))
        .collect()
}

/// Every row names a command in upper case once, with one of the three statuses.
#[test]
fn rows_are_well_formed() {
    let rows = rows();
    assert!(
        rows.len() > 240,
        "only {} rows: is the document truncated?",
        rows.len()
    );
    let mut seen = HashMap::new();
    for row in &rows {
        assert!(
            STATUSES.contains(&row.status.as_str()),
            "line {}: status '{}' is not one of {STATUSES:?}",
            row.line,
            row.status
        );
        assert!(
            !row.name.is_empty() && row.name == row.name.to_ascii_uppercase(),
            "line {}: command '{}' must be written in upper case",
            row.line,
            row.name
        );
        if let Some(first) = seen.insert(row.name.clone(), row.line) {
            panic!(
                "{} is listed twice, lines {first} and {}",
                row.name, row.line
            );
        }
    }
}

/// Every command and subcommand of the table has a `supported` row.
#[test]
fn table_commands_are_documented_as_supported() {
    let statuses = statuses();
    let mut missing = Vec::new();
    for spec in COMMANDS.iter() {
        let name = spec.name.to_ascii_uppercase();
        let mut names = vec![name.clone()];
        names.extend(
            spec.subcommands
                .iter()
                .map(|s| format!("{name} {}", s.name.to_ascii_uppercase())),
        );
        for name in names {
            match statuses.get(&name).map(String::as_str) {
                Some("supported") => {}
                Some(other) => missing.push(format!("{name} (marked '{other}')")),
                None => missing.push(format!("{name} (no row)")),
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/compatibility.md must mark these as supported: {}",
        missing.join(", ")
    );
}

/// Every `supported` row names a command or `CONTAINER SUB` that the table serves.
#[test]
fn supported_rows_are_in_the_table() {
    let mut unknown = Vec::new();
    for row in rows().into_iter().filter(|r| r.status == "supported") {
        let words: Vec<&str> = row.name.split(' ').collect();
        let served = match words.as_slice() {
            [name] => super::lookup(name.as_bytes()).is_some(),
            [container, sub] => super::lookup(container.as_bytes())
                .is_some_and(|spec| spec.subcommand(sub.as_bytes()).is_some()),
            _ => false,
        };
        if !served {
            unknown.push(format!("{} (line {})", row.name, row.line));
        }
    }
    assert!(
        unknown.is_empty(),
        "docs/compatibility.md marks these supported but the table does not serve them: {}",
        unknown.join(", ")
    );
}
