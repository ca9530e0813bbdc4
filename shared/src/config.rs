//! Config loading that reports every problem at once.
//!
//! serde stops at the first bad field; an operator fixing a config file wants the whole list, each
//! with its key path and bad value. So a file is parsed as TOML into a table, and a [`Section`]
//! reads typed values out of it, collecting every problem (missing keys, wrong types, values that
//! fail validation, unknown keys) into one [`ConfigError::Invalid`].

use std::cell::{OnceCell, RefCell};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One bad key: where it is, what it holds, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path such as `service[0].vip`.
    pub key: String,
    /// The value as written, or empty when the key is missing.
    pub value: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.key, self.message)
        } else {
            write!(f, "{} = {}: {}", self.key, self.value, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path} has {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a TOML file and hands its top-level table to `read`, which pulls typed values out of it.
/// Returns every problem found, or the value `read` built.
pub fn load<T>(
    path: &Path,
    read: impl FnOnce(&Section<'_>) -> Option<T>,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text, read)
}

/// Like [`load`], for text already in memory; `path` only names it in messages.
pub fn parse<T>(
    path: &Path,
    text: &str,
    read: impl FnOnce(&Section<'_>) -> Option<T>,
) -> Result<T, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
    let problems = RefCell::new(Vec::new());
    let root = Section::new(None, &table, &problems);
    let value = read(&root);
    root.finish();
    drop(root);
    let problems = problems.into_inner();
    match value {
        Some(value) if problems.is_empty() => Ok(value),
        _ => Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        }),
    }
}

/// A TOML table being read, with the path that leads to it. Keys that are never read are
/// reported as unknown when the section is finished (a typo must not be silently ignored).
///
/// A section borrows its table from the parsed file, and a sub-section from its parent's:
/// nothing is copied while a config is read (a restart reads thousands of `[[service]]`s), and
/// a section's path is written out only when a problem or a sub-section of its own needs it.
pub struct Section<'a> {
    /// None for the root.
    place: Option<Place<'a>>,
    /// The path that leads here, e.g. `service[1]`, once written.
    path: OnceCell<Rc<str>>,
    table: &'a toml::Table,
    /// The keys read so far, borrowed from the table (a key that is absent needs no mark). A
    /// list: a reader asks for a few keys of each section, a set cost more than the search.
    read: RefCell<Vec<&'a str>>,
    problems: &'a RefCell<Vec<Problem>>,
}

/// Where a sub-section is in its parent: `key`, or item `index` of the array `key`.
struct Place<'a> {
    parent: Rc<str>,
    key: &'a str,
    index: Option<usize>,
}

impl Place<'_> {
    fn path(&self) -> String {
        let mut path = if self.parent.is_empty() {
            self.key.to_owned()
        } else {
            format!("{}.{}", self.parent, self.key)
        };
        if let Some(i) = self.index {
            let _ = write!(path, "[{i}]");
        }
        path
    }
}

impl<'a> Section<'a> {
    fn new(
        place: Option<Place<'a>>,
        table: &'a toml::Table,
        problems: &'a RefCell<Vec<Problem>>,
    ) -> Self {
        Section {
            place,
            path: OnceCell::new(),
            table,
            read: RefCell::new(Vec::new()),
            problems,
        }
    }

    /// The full path of `key` in this section, e.g. `service[1].port`.
    pub fn key_path(&self, key: &str) -> String {
        let path = self.path();
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    }

    /// The path that leads to this section, empty for the root.
    fn path(&self) -> &Rc<str> {
        self.path.get_or_init(|| {
            self.place
                .as_ref()
                .map_or_else(|| "".into(), |p| p.path().into())
        })
    }

    /// Records a problem with `key` of this section.
    pub fn problem(&self, key: &str, value: &str, message: impl Into<String>) {
        self.problems.borrow_mut().push(Problem {
            key: self.key_path(key),
            value: value.to_owned(),
            message: message.into(),
        });
    }

    /// Whether `key` is present, without reading it: for keys that exclude each other.
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// The value of `key` as written (empty when absent), marking it read: for a key that is
    /// reported as out of place rather than as unknown.
    pub fn raw(&self, key: &str) -> String {
        self.get(key).map(ToString::to_string).unwrap_or_default()
    }

    /// How many items the array `key` holds; None when absent or not an array.
    pub fn array_len(&self, key: &str) -> Option<usize> {
        self.table
            .get(key)
            .and_then(toml::Value::as_array)
            .map(Vec::len)
    }

    fn get(&self, key: &str) -> Option<&'a toml::Value> {
        self.entry(key).map(|(_, value)| value)
    }

    /// `key` as the table holds it, and its value, marking it read.
    fn entry(&self, key: &str) -> Option<(&'a str, &'a toml::Value)> {
        let (key, value) = self.table.get_key_value(key)?;
        let mut read = self.read.borrow_mut();
        if !read.contains(&key.as_str()) {
            read.push(key.as_str());
        }
        Some((key.as_str(), value))
    }

    /// A string key parsed by `parse`; `None` (with a problem recorded) when missing or bad.
    pub fn required<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.get(key) {
            None => {
                self.problem(key, "", "is required");
                None
            }
            Some(value) => self.string_value(key, value, parse),
        }
    }

    /// Like [`Section::required`], but a missing key gives `Some(None)`.
    pub fn optional<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.get(key) {
            None => Some(None),
            Some(value) => self.string_value(key, value, parse).map(Some),
        }
    }

    fn string_value<T>(
        &self,
        key: &str,
        value: &toml::Value,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let Some(text) = value.as_str() else {
            self.problem(
                key,
                &value.to_string(),
                "must be a string (in double quotes)",
            );
            return None;
        };
        match parse(text) {
            Ok(v) => Some(v),
            Err(message) => {
                self.problem(key, &value.to_string(), message);
                None
            }
        }
    }

    /// An integer key within `range`; `default` when missing (`None` default means required).
    pub fn integer<T: TryFrom<i64>>(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: Option<T>,
    ) -> Option<T> {
        let Some(value) = self.get(key) else {
            if default.is_none() {
                self.problem(key, "", "is required");
            }
            return default;
        };
        let Some(n) = value.as_integer() else {
            self.problem(key, &value.to_string(), "must be a whole number");
            return None;
        };
        if !range.contains(&n) {
            self.problem(
                key,
                &value.to_string(),
                format!("must be between {} and {}", range.start(), range.end()),
            );
            return None;
        }
        T::try_from(n).ok()
    }

    /// Like [`Section::integer`], but a missing key gives `Some(None)`: for keys whose absence
    /// means something of its own.
    pub fn optional_integer<T: TryFrom<i64>>(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<Option<T>> {
        if self.table.contains_key(key) {
            self.integer(key, range, None).map(Some)
        } else {
            Some(None)
        }
    }

    /// A boolean key; `default` when missing.
    pub fn boolean(&self, key: &str, default: bool) -> Option<bool> {
        match self.get(key) {
            None => Some(default),
            Some(toml::Value::Boolean(b)) => Some(*b),
            Some(other) => {
                self.problem(key, &other.to_string(), "must be true or false");
                None
            }
        }
    }

    /// A sub-table such as `[timeouts]`; `None` when absent (or not a table: a problem).
    pub fn table(&self, key: &str) -> Option<Section<'a>> {
        let (key, value) = self.entry(key)?;
        match value {
            toml::Value::Table(t) => Some(self.child(key, None, t)),
            other => {
                self.problem(key, &other.to_string(), "must be a table");
                None
            }
        }
    }

    /// An array of tables such as `[[service]]`; empty when absent.
    pub fn tables(&self, key: &str) -> Vec<Section<'a>> {
        match self.entry(key) {
            None => Vec::new(),
            Some((key, toml::Value::Array(items))) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    toml::Value::Table(t) => Some(self.child(key, Some(i), t)),
                    other => {
                        self.problems.borrow_mut().push(Problem {
                            key: format!("{}[{i}]", self.key_path(key)),
                            value: other.to_string(),
                            message: format!("must be a table: write [[{key}]]"),
                        });
                        None
                    }
                })
                .collect(),
            Some((key, other)) => {
                self.problem(
                    key,
                    &other.to_string(),
                    format!("must be written as [[{key}]] tables"),
                );
                Vec::new()
            }
        }
    }

    /// The value of `key` as written, without counting it as read: for keys that exclude each
    /// other, and for checks across the items of a list.
    pub fn peek(&self, key: &str) -> Option<&'a toml::Value> {
        self.table.get(key)
    }

    /// A list of strings each parsed by `parse`; empty when absent.
    pub fn strings<T>(&self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> Vec<T> {
        match self.get(key) {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.string_value(&format!("{key}[{i}]"), item, &parse))
                .collect(),
            Some(other) => {
                self.problem(key, &other.to_string(), "must be a list of strings");
                Vec::new()
            }
        }
    }

    fn child(&self, key: &'a str, index: Option<usize>, table: &'a toml::Table) -> Section<'a> {
        let place = Place {
            parent: self.path().clone(),
            key,
            index,
        };
        Section::new(Some(place), table, self.problems)
    }

    /// Reports keys that were never read. Called on every section when its reader is done
    /// (sub-sections report theirs when dropped).
    fn finish(&self) {
        let read = self.read.borrow();
        for (key, value) in self.table {
            if !read.contains(&key.as_str()) {
                self.problem(
                    &toml_key(key),
                    &value.to_string(),
                    "unknown key: remove it or check its spelling",
                );
            }
        }
    }
}

/// `key` as TOML writes it in a path: bare when it can be, quoted otherwise, so that a key
/// such as `"129.129.190.55"` (a table header someone wrote by mistake) is not read as four.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

impl Drop for Section<'_> {
    fn drop(&mut self) {
        // The root is finished explicitly by `parse` before its problems are collected.
        if self.place.is_some() {
            self.finish();
        }
    }
}

/// Where the hostname comes from when a daemon's `name` is not set.
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// This host's name, for a daemon's default `name`.
pub fn system_hostname() -> Result<String, String> {
    std::fs::read_to_string(HOSTNAME_FILE)
        .map(|text| text.trim().to_owned())
        .map_err(|e| format!("cannot read the hostname from {HOSTNAME_FILE}: {e}"))
}

/// A daemon's `name` key: as written, else the hostname (which must be a usable name).
pub fn read_name(
    root: &Section<'_>,
    hostname: impl FnOnce() -> Result<String, String>,
) -> Option<String> {
    match root.optional("name", crate::domain::parse_name)? {
        Some(name) => Some(name),
        None => match hostname().and_then(|h| {
            crate::domain::parse_name(&h)
                .map_err(|e| format!("the hostname {h:?} {e}: set name explicitly"))
        }) {
            Ok(name) => Some(name),
            Err(message) => {
                root.problem("name", "", format!("is not set and {message}"));
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str, read: impl FnOnce(&Section<'_>) -> Option<()>) -> Vec<String> {
        match parse(Path::new("test.toml"), text, read) {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(other) => vec![other.to_string()],
        }
    }

    #[test]
    fn reports_every_problem_with_its_key_path() {
        let found = problems(
            "port = 70000\nname = 3\ntypo = 1\n[[service]]\nweight = \"x\"\n",
            |root| {
                root.integer::<u16>("port", 1..=65535, None);
                root.required("name", |s| Ok(s.to_owned()));
                for s in root.tables("service") {
                    s.integer::<u32>("weight", 0..=65535, Some(1));
                }
                Some(())
            },
        );
        assert_eq!(
            found,
            vec![
                "port = 70000: must be between 1 and 65535",
                "name = 3: must be a string (in double quotes)",
                "service[0].weight = \"x\": must be a whole number",
                "typo = 1: unknown key: remove it or check its spelling",
            ]
        );
    }

    #[test]
    fn a_key_that_is_not_bare_is_named_quoted() {
        let found = problems(
            "port = 1\n[\"129.129.190.55\"]\n[[service]]\n\"a b\" = 2\n",
            |root| {
                root.integer::<u16>("port", 1..=65535, None);
                for _ in root.tables("service") {}
                Some(())
            },
        );
        assert_eq!(
            found,
            vec![
                "service[0].\"a b\" = 2: unknown key: remove it or check its spelling",
                "\"129.129.190.55\" = {}: unknown key: remove it or check its spelling",
            ]
        );
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let err = parse(Path::new("/etc/lb/x.toml"), "a = ", |_| Some(())).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("config file /etc/lb/x.toml is not valid TOML"));
    }
}
