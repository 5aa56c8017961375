//! Where the ledger lives: a SQLite file (`sqlite://PATH`, the default
//! `spareband.db` in the data dir) or a PostgreSQL database
//! (`postgres://USER:PASSWORD@HOST:PORT/NAME`). A PostgreSQL URL carries a
//! password, so [`DatabaseUrl`] never prints it: `Debug`, `Display` and every
//! error show `****` in its place, and a URL that does not parse is refused
//! without being echoed.

use std::fmt;
use std::path::{Path, PathBuf};

/// File name of the SQLite database inside the data dir (the default).
pub const DB_FILE: &str = "spareband.db";
/// What stands for a password wherever a URL is shown.
const MASK: &str = "****";

/// Which engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A database location, as the relay's `database_url` gives it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(Target);

#[derive(Clone, PartialEq, Eq)]
enum Target {
    /// A file path, as given or made from the data dir.
    SqliteFile(PathBuf),
    /// `sqlite:` with query parameters (`?mode=ro`…), kept whole for sqlx.
    SqliteUrl(String),
    /// The whole `postgres://` URL, password included: shown only masked.
    Postgres(String),
}

/// A `database_url` that cannot be used. It never contains the URL itself,
/// which may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDatabaseUrl {
    /// Neither `sqlite://` nor `postgres://`.
    #[error("database_url must start with sqlite:// or postgres:// (or postgresql://)")]
    Scheme,
    /// A `postgres://` URL that does not parse.
    #[error("database_url is not a valid postgres:// URL ({0})")]
    Postgres(String),
    /// `sqlite://` with no path.
    #[error("database_url names no SQLite file after sqlite://")]
    NoPath,
}

impl DatabaseUrl {
    /// Reads a URL given by the operator.
    pub fn parse(text: &str) -> Result<Self, BadDatabaseUrl> {
        let text = text.trim();
        if let Some(rest) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            if rest.is_empty() || rest.starts_with('?') {
                return Err(BadDatabaseUrl::NoPath);
            }
            return Ok(if rest.contains('?') {
                DatabaseUrl(Target::SqliteUrl(text.to_string()))
            } else {
                DatabaseUrl(Target::SqliteFile(PathBuf::from(rest)))
            });
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            // url's errors name what is wrong, never the text.
            let parsed =
                url::Url::parse(text).map_err(|e| BadDatabaseUrl::Postgres(e.to_string()))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(BadDatabaseUrl::Postgres("no host".into()));
            }
            return Ok(DatabaseUrl(Target::Postgres(text.to_string())));
        }
        Err(BadDatabaseUrl::Scheme)
    }

    /// The default: `spareband.db` in the data dir.
    pub fn sqlite_in(data_dir: &Path) -> Self {
        DatabaseUrl(Target::SqliteFile(data_dir.join(DB_FILE)))
    }

    /// The engine it names.
    pub fn backend(&self) -> Backend {
        match self.0 {
            Target::SqliteFile(_) | Target::SqliteUrl(_) => Backend::Sqlite,
            Target::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite file, when it is one given as a plain path.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match &self.0 {
            Target::SqliteFile(p) => Some(p),
            _ => None,
        }
    }

    /// The URL in clear, password included: only to connect, or to hand to
    /// a process the operator started (never to print).
    pub fn reveal(&self) -> String {
        match &self.0 {
            Target::SqliteFile(p) => format!("sqlite://{}", p.display()),
            Target::SqliteUrl(u) | Target::Postgres(u) => u.clone(),
        }
    }

    /// The URL with its password (in the user part or a `password`
    /// parameter) replaced by `****`.
    fn masked(&self) -> String {
        let Target::Postgres(text) = &self.0 else {
            return self.reveal();
        };
        let Ok(mut url) = url::Url::parse(text) else {
            return format!("postgres://{MASK}");
        };
        if url.password().is_some() && url.set_password(Some(MASK)).is_err() {
            return format!("postgres://{MASK}");
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let secret = k.to_ascii_lowercase().contains("password");
                    (
                        k.into_owned(),
                        if secret { MASK.into() } else { v.into_owned() },
                    )
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
    }
}

/// `text` with every URL password in it masked: the `PASSWORD` of
/// `scheme://USER:PASSWORD@`, and any `password=VALUE` parameter. For text
/// that may quote a URL the operator wrote (a config file's parse error).
pub fn mask_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // `://user:password@`: from the `:` after the user to the last `@`
    // before the URL's path (or its end: a space or a quote).
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '/'))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    mask_parameter(&out)
}

/// `password=VALUE` (any case, `sslpassword` too) with VALUE masked, up to
/// the next `&`, quote or space.
fn mask_parameter(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(i) = lower[from..].find("password=") {
        let start = from + i + "password=".len();
        out.push_str(&text[from..start]);
        out.push_str(MASK);
        from = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | '\''))
            .map_or(text.len(), |e| start + e);
    }
    out.push_str(&text[from..]);
    out
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.masked())
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = BadDatabaseUrl;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatabaseUrl::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DatabaseUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_prints() {
        let u = DatabaseUrl::parse("postgres://sb:hunter2secret@db.example:5432/ledger?sslmode=disable&password=other2secret").unwrap();
        assert_eq!(u.backend(), Backend::Postgres);
        for shown in [format!("{u}"), format!("{u:?}")] {
            assert!(!shown.contains("hunter2secret"), "{shown}");
            assert!(!shown.contains("other2secret"), "{shown}");
            assert!(shown.contains("sb:****@db.example:5432/ledger"), "{shown}");
        }
        assert!(u.reveal().contains("hunter2secret"));
        // A URL that does not parse is refused without being repeated.
        let e = DatabaseUrl::parse("postgres://sb:hunter2secret@[bad/x").unwrap_err();
        assert!(!e.to_string().contains("hunter2secret"), "{e}");
        let e = DatabaseUrl::parse("mysql://sb:hunter2secret@h/x").unwrap_err();
        assert!(!e.to_string().contains("hunter2secret"), "{e}");
        let e = serde_json::from_str::<DatabaseUrl>("\"pg://u:hunter2secret@h\"").unwrap_err();
        assert!(!e.to_string().contains("hunter2secret"), "{e}");
    }

    #[test]
    fn passwords_in_any_text_are_masked() {
        assert_eq!(
            mask_passwords(
                "at \"postgres://sb:hunter2@db:5432/x?sslmode=require&password=p2&x=1\" here"
            ),
            "at \"postgres://sb:****@db:5432/x?sslmode=require&password=****&x=1\" here"
        );
        assert_eq!(mask_passwords("sqlite:///a/b.db"), "sqlite:///a/b.db");
        assert_eq!(mask_passwords("no url: x@y"), "no url: x@y");
    }

    #[test]
    fn sqlite_urls_name_a_file() {
        let u = DatabaseUrl::parse("sqlite:///var/lib/spareband/ledger.db").unwrap();
        assert_eq!(u.backend(), Backend::Sqlite);
        assert_eq!(
            u.sqlite_file(),
            Some(Path::new("/var/lib/spareband/ledger.db"))
        );
        assert_eq!(u.to_string(), "sqlite:///var/lib/spareband/ledger.db");
        assert_eq!(
            DatabaseUrl::sqlite_in(Path::new("/d")).sqlite_file(),
            Some(Path::new("/d/spareband.db"))
        );
        assert_eq!(DatabaseUrl::parse("sqlite://"), Err(BadDatabaseUrl::NoPath));
        assert_eq!(
            DatabaseUrl::parse("sqlite:ledger.db?mode=ro")
                .unwrap()
                .backend(),
            Backend::Sqlite
        );
    }
}
