//! The lines of a rules file, indexed once: diagnostics and template positions look a line up
//! by number, and rescanning the text for each one made loading quadratic in the file's size.

/// Where each line of a text starts.
pub(super) struct Lines<'s> {
    text: &'s str,
    /// Byte offset of each line's first character; one entry per line.
    starts: Vec<usize>,
    /// Whether each line is ASCII, where a character column is a byte offset.
    ascii: Vec<bool>,
}

impl<'s> Lines<'s> {
    /// Indexes `text` in one pass.
    pub(super) fn new(text: &'s str) -> Self {
        let mut starts = Vec::with_capacity(text.len() / 32 + 1);
        if !text.is_empty() {
            starts.push(0);
        }
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        if starts.last() == Some(&text.len()) {
            starts.pop();
        }
        let mut lines = Lines {
            text,
            starts,
            ascii: Vec::new(),
        };
        lines.ascii = (1..=lines.starts.len())
            .map(|n| lines.line(n).is_some_and(str::is_ascii))
            .collect();
        lines
    }

    /// The rest of line `number` from character `column` (both from 1); direct on ASCII lines,
    /// so positions on a very long line cost nothing per lookup.
    pub(super) fn rest_of_line(&self, number: usize, column: usize) -> Option<&'s str> {
        let line = self.line(number)?;
        let skip = column.checked_sub(1)?;
        if self.ascii.get(number - 1).copied().unwrap_or(false) {
            return line.get(skip..);
        }
        let at = line.char_indices().nth(skip).map_or(line.len(), |(i, _)| i);
        Some(&line[at..])
    }

    /// Line `number` (from 1) without its line ending, as `str::lines` would give it.
    pub(super) fn line(&self, number: usize) -> Option<&'s str> {
        let start = *self.starts.get(number.checked_sub(1)?)?;
        let end = self
            .starts
            .get(number)
            .map_or(self.text.len(), |&next| next);
        let line = &self.text[start..end];
        let line = line.strip_suffix('\n').unwrap_or(line);
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn lines_match_str_lines() {
        for text in [
            "",
            "a",
            "a\n",
            "a\nb",
            "a\r\nb\r\n",
            "\n\n",
            "x\n\ny\n",
            "é\nü\n",
        ] {
            let lines = Lines::new(text);
            let expected: Vec<&str> = text.lines().collect();
            for (i, want) in expected.iter().enumerate() {
                assert_eq!(lines.line(i + 1), Some(*want), "{text:?} line {}", i + 1);
            }
            assert_eq!(lines.line(expected.len() + 1), None, "{text:?}");
            assert_eq!(lines.line(0), None);
        }
    }

    #[test]
    fn rest_of_line_counts_characters() {
        let lines = Lines::new("ab: cd\nét: {x}\n");
        assert_eq!(lines.rest_of_line(1, 5), Some("cd"));
        assert_eq!(lines.rest_of_line(2, 5), Some("{x}"));
        assert_eq!(lines.rest_of_line(2, 9), Some(""));
        assert_eq!(lines.rest_of_line(3, 1), None);
    }
}
