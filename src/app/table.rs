//! Text tables for the operations commands (comfy-table, built without its crossterm
//! dependency): one line per row, columns sized to their content, and when the terminal is
//! narrower than that, the wide columns (rule, result, path) are cut with `…` so every line
//! fits. The width is `COLUMNS` when set (scripts and tests), else stdout's terminal width;
//! into a pipe with no `COLUMNS` nothing is cut, so `grep` and `awk` see whole paths.

use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Row, Table, presets};

/// One column: its heading, whether its values align right (numbers), and whether it may be
/// cut to fit the width (the free-text columns) or always keeps its content's width.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The heading.
    pub name: &'static str,
    /// Numbers align right.
    pub right: bool,
    /// May be cut with `…` when the table is too wide.
    pub shrinks: bool,
}

/// The width tables must fit, if any: `COLUMNS`, else the terminal stdout is.
pub fn width() -> Option<u16> {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|c| *c > 0)
    {
        return Some(columns);
    }
    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| w.0)
}

/// The table as text, each line ending in a newline and no wider than `width` (when the fixed
/// columns alone fit in it).
pub fn render(columns: &[Column], rows: &[Vec<String>], width: Option<u16>) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table.set_truncation_indicator("…");
    match width {
        Some(w) => {
            table.set_content_arrangement(ContentArrangement::Dynamic);
            table.set_width(w);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    table.set_header(columns.iter().map(|c| c.name));
    for values in rows {
        // Values are one line each; a newline in a path is already quoted away.
        let mut row = Row::from(values.iter().map(String::as_str));
        row.max_height(1);
        table.add_row(row);
    }
    for (column, spec) in table.column_iter_mut().zip(columns) {
        if spec.right {
            column.set_cell_alignment(CellAlignment::Right);
        }
        if !spec.shrinks {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [Column; 3] = [
        Column {
            name: "ID",
            right: true,
            shrinks: false,
        },
        Column {
            name: "STATUS",
            right: false,
            shrinks: false,
        },
        Column {
            name: "PATH",
            right: false,
            shrinks: true,
        },
    ];

    fn rows() -> Vec<Vec<String>> {
        vec![vec![
            "7".into(),
            "failed".into(),
            format!(
                "/shows/bigfish/{}/sh010_beauty.1001.exr",
                "deep/".repeat(20)
            ),
        ]]
    }

    #[test]
    fn a_narrow_width_cuts_the_path_with_an_ellipsis() {
        let text = render(&COLUMNS, &rows(), Some(40));
        for line in text.lines() {
            assert!(line.chars().count() <= 40, "{line:?} is wider than 40");
        }
        assert!(text.contains('…'), "{text}");
        assert!(text.contains("failed"), "{text}");
    }

    #[test]
    fn no_width_keeps_whole_values() {
        let text = render(&COLUMNS, &rows(), None);
        assert!(text.contains("sh010_beauty.1001.exr"), "{text}");
        assert!(!text.contains('…'), "{text}");
    }
}
