//! Argv templates: `"{san}/{shot}/{stem}.mov"` parsed once at load, expanded per job.
//!
//! A template becomes exactly one argv element: values are spliced in as bytes, never split on
//! whitespace, globbed or quoted, so a file name with spaces, `$(...)`, a newline or non-UTF-8
//! bytes reaches the command intact. `{{` and `}}` are literal braces.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A variable and the character offset of its `{` in the source.
    Var(String, usize),
}

/// What is wrong with a template's text, and where (a character offset into it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Offset in characters from the template's start.
    pub offset: usize,
    /// What went wrong.
    pub kind: TemplateErrorKind,
}

/// The kinds of [`TemplateError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// `{` without its `}`.
    Unclosed,
    /// `}` with no `{` before it.
    StrayClose,
    /// `{}` or `{bad name}`.
    BadName(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TemplateErrorKind::Unclosed => write!(
                f,
                "unclosed `{{` in template; write `{{{{` for a literal brace"
            ),
            TemplateErrorKind::StrayClose => write!(
                f,
                "unmatched `}}` in template; write `}}}}` for a literal brace"
            ),
            TemplateErrorKind::BadName(name) => write!(f, "invalid variable name `{{{name}}}`"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// A variable that had no value when a template was expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVariable(pub String);

impl fmt::Display for MissingVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.strip_prefix("env.") {
            Some(env) => write!(f, "environment variable `{env}` is not set"),
            None => write!(f, "variable `{{{}}}` has no value for this file", self.0),
        }
    }
}

impl std::error::Error for MissingVariable {}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !name.ends_with('.')
}

impl Template {
    /// Parses a template's text.
    ///
    /// # Errors
    /// An unclosed or stray brace, or a variable name that is not `[A-Za-z_][A-Za-z0-9_.]*`.
    ///
    /// ```
    /// use shotrouter::rules::template::{Bindings, Template};
    /// let t = Template::parse("{stem}.mov").unwrap();
    /// let mut vars = Bindings::default();
    /// vars.insert("stem", "a b");
    /// assert_eq!(t.expand(&vars).unwrap(), "a b.mov");
    /// ```
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let chars: Vec<char> = source.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match (chars[i], chars.get(i + 1)) {
                ('{', Some('{')) | ('}', Some('}')) => {
                    literal.push(chars[i]);
                    i += 2;
                }
                ('{', _) => {
                    let close = chars[i + 1..].iter().position(|&c| c == '}' || c == '{');
                    let end = match close {
                        Some(n) if chars[i + 1 + n] == '}' => i + 1 + n,
                        _ => {
                            return Err(TemplateError {
                                offset: i,
                                kind: TemplateErrorKind::Unclosed,
                            });
                        }
                    };
                    let name: String = chars[i + 1..end].iter().collect();
                    if !is_valid_name(&name) {
                        return Err(TemplateError {
                            offset: i,
                            kind: TemplateErrorKind::BadName(name),
                        });
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(name, i));
                    i = end + 1;
                }
                ('}', _) => {
                    return Err(TemplateError {
                        offset: i,
                        kind: TemplateErrorKind::StrayClose,
                    });
                }
                (c, _) => {
                    literal.push(c);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The text as written in the rules file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Each variable the template uses, with the character offset of its `{`.
    pub fn variables(&self) -> impl Iterator<Item = (&str, usize)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(name, offset) => Some((name.as_str(), *offset)),
            Part::Literal(_) => None,
        })
    }

    /// Expands into one argv element. `{env.NAME}` reads the process environment.
    ///
    /// # Errors
    /// The first variable that has no value.
    pub fn expand(&self, vars: &Bindings) -> Result<OsString, MissingVariable> {
        let mut out = Vec::with_capacity(self.source.len() + 64);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Part::Var(name, _) => match vars.get(name) {
                    Some(value) => out.extend_from_slice(value),
                    None => match name.strip_prefix("env.").and_then(std::env::var_os) {
                        Some(value) => out.extend_from_slice(&value.into_vec()),
                        None => return Err(MissingVariable(name.clone())),
                    },
                },
            }
        }
        Ok(OsString::from_vec(out))
    }
}

/// Variable values for one job: names to bytes, so non-UTF-8 paths survive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings {
    values: BTreeMap<String, Vec<u8>>,
}

impl Bindings {
    /// Sets a variable, replacing any earlier value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.values.insert(name.into(), value.into());
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.values.get(name).map(Vec::as_slice)
    }

    /// All variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &[u8])]) -> Bindings {
        let mut b = Bindings::default();
        for (k, v) in pairs {
            b.insert(*k, v.to_vec());
        }
        b
    }

    #[test]
    fn literal_braces() {
        let t = Template::parse("{{x}} {name}}}").expect("valid");
        assert_eq!(
            t.expand(&vars(&[("name", b"n")])).expect("expands"),
            "{x} n}"
        );
    }

    #[test]
    fn values_are_spliced_as_bytes_without_splitting() {
        let t = Template::parse("{dir}/{name}").expect("valid");
        let odd: &[u8] = b"a b\n$(touch pwned)'\"\xff.tif";
        let out = t
            .expand(&vars(&[("dir", b"/x y"), ("name", odd)]))
            .expect("expands");
        let mut want = b"/x y/".to_vec();
        want.extend_from_slice(odd);
        assert_eq!(out.into_vec(), want);
    }

    #[test]
    fn parse_errors_carry_offsets() {
        let cases = [
            ("a{stem", 1, TemplateErrorKind::Unclosed),
            ("ab}", 2, TemplateErrorKind::StrayClose),
            ("x{}", 1, TemplateErrorKind::BadName(String::new())),
            ("{a b}", 0, TemplateErrorKind::BadName("a b".into())),
            ("{a{b}", 0, TemplateErrorKind::Unclosed),
        ];
        for (text, offset, kind) in cases {
            assert_eq!(
                Template::parse(text),
                Err(TemplateError { offset, kind }),
                "{text}"
            );
        }
    }

    #[test]
    fn variables_report_offsets_in_characters() {
        let t = Template::parse("é/{stem}.{ext}").expect("valid");
        let found: Vec<_> = t.variables().collect();
        assert_eq!(found, vec![("stem", 2), ("ext", 9)]);
    }

    #[test]
    fn missing_variable_is_an_error() {
        let t = Template::parse("{frame}").expect("valid");
        assert_eq!(
            t.expand(&Bindings::default()),
            Err(MissingVariable("frame".into()))
        );
    }

    #[test]
    fn env_variables_come_from_the_environment() {
        let t = Template::parse("{env.HOME}").expect("valid");
        let home = std::env::var_os("HOME").expect("tests run with HOME set");
        assert_eq!(t.expand(&Bindings::default()).expect("set"), home);
    }
}
