//! The password a [`PgLocation`] logs in with: the URL's or PGPASSWORD, else the entry of a
//! password file in libpq's format (`HOST:PORT:DATABASE:USER:PASSWORD`, `*` and `\:` escapes),
//! which must be private to its owner; read at each connect so a rotated password is picked up.

use std::os::unix::fs::PermissionsExt;

use super::PgLocation;
use crate::store::StoreError;
use crate::store::url::passfile_fields;

impl PgLocation {
    /// The password to log in with: the URL's or PGPASSWORD, else the password file's entry.
    pub(super) fn resolve_password(&self) -> Result<Option<String>, StoreError> {
        if let Some(password) = &self.password {
            return Ok(Some(password.clone()));
        }
        let Some(file) = &self.passfile else {
            return Ok(None);
        };
        let error = |reason: String| StoreError::Location {
            value: self.to_string(),
            reason,
        };
        let meta = match std::fs::metadata(file) {
            Ok(meta) => meta,
            Err(e) if !self.passfile_given && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => {
                return Err(error(format!(
                    "password file `{}` cannot be read: {e}",
                    file.display()
                )));
            }
        };
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(error(format!(
                "password file `{}` is readable by others (mode {:o}); run `chmod 600` on it",
                file.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let text = std::fs::read_to_string(file).map_err(|e| {
            error(format!(
                "password file `{}` cannot be read: {e}",
                file.display()
            ))
        })?;
        // libpq matches a socket connection as `localhost`.
        let host = if self.host.starts_with('/') {
            "localhost"
        } else {
            self.host.as_str()
        };
        let port = self.port.to_string();
        let wanted = [
            host,
            port.as_str(),
            self.dbname.as_str(),
            self.user.as_str(),
        ];
        Ok(text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .map(passfile_fields)
            .find(|fields| {
                fields.len() == 5
                    && fields[..4]
                        .iter()
                        .zip(wanted)
                        .all(|(field, want)| field == "*" || field == want)
            })
            .map(|mut fields| fields.remove(4)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::pg;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_password_file_entry_is_found_like_libpq_finds_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("pass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:farm:nope\ndb1:5432:*:farm:pa\\:ss\\\\word\n*:*:*:*:fallback\n",
        )
        .expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let url = format!("postgres://farm@db1/shots?passfile={}", file.display());
        let loc = pg(&url, &[]);
        assert_eq!(
            loc.resolve_password().expect("reads").as_deref(),
            Some("pa:ss\\word")
        );
        assert!(loc.to_string().contains("passfile="), "{loc}");
        let other = pg(&url.replace("farm@db1", "ana@db9"), &[]);
        assert_eq!(
            other.resolve_password().expect("reads").as_deref(),
            Some("fallback")
        );
        let by_env = pg(
            "postgres://farm@db1/shots",
            &[("PGPASSFILE", &file.to_string_lossy())],
        );
        assert_eq!(
            by_env.resolve_password().expect("reads").as_deref(),
            Some("pa:ss\\word")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = loc.resolve_password().expect_err("unsafe").to_string();
        assert!(err.contains("chmod 600"), "{err}");
        let missing = pg(
            &format!(
                "postgres://farm@db1/shots?passfile={}",
                dir.path().join("none").display()
            ),
            &[],
        );
        let err = missing.resolve_password().expect_err("missing").to_string();
        assert!(err.contains("cannot be read"), "{err}");
        let home = pg("postgres://farm@db1/shots", &[("HOME", "/nonexistent")]);
        assert_eq!(home.resolve_password().expect("no ~/.pgpass is fine"), None);
    }
}
