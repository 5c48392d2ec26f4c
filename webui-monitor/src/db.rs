//! Reads Open WebUI's SQLite database read-only into a [`Directory`] snapshot: `api_key(key,
//! user_id)` (hashed as read; the plaintext never outlives the row) and `user(id, name, email,
//! role)`. This is shell-side I/O: the shell calls [`load`] at start, periodically and on
//! SIGHUP, and hands the snapshot to the monitor
//! ([`Monitor::set_directory`](webui_monitor_core::Monitor::set_directory)).
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use webui_monitor_core::openwebui::{Directory, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open Open WebUI database {path} read-only: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot read table {table} of Open WebUI database {path}: {source}")]
    Query {
        path: String,
        table: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

/// `file:` URI of `path`, opened read-only (`?mode=ro`): SQLite then never writes, not even a
/// journal, and a missing file is an error instead of a new empty database.
fn ro_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(char::from(*b)),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// Load users and API keys from Open WebUI's database at `path`.
///
/// Open WebUI 0.12 keeps keys in table `api_key`; older releases in `user.api_key`, which is
/// read when the table does not exist.
pub fn load(path: &Path) -> Result<Directory, DbError> {
    let display = path.display().to_string();
    let conn = Connection::open_with_flags(
        ro_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| DbError::Open {
        path: display.clone(),
        source,
    })?;
    let query_err = |table| {
        let path = display.clone();
        move |source| DbError::Query {
            path,
            table,
            source,
        }
    };

    let mut dir = Directory::default();
    let mut stmt = conn
        .prepare(r#"SELECT id, name, email, role FROM "user""#)
        .map_err(query_err("user"))?;
    let mut rows = stmt.query([]).map_err(query_err("user"))?;
    while let Some(row) = rows.next().map_err(query_err("user"))? {
        let text = |i| {
            row.get::<_, Option<String>>(i)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        let id = text(0);
        if id.is_empty() {
            continue;
        }
        dir.insert_user(
            &id,
            UserRecord {
                name: text(1),
                email: text(2),
                role: text(3),
            },
        );
    }

    let has_api_key_table: bool = conn
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_key')",
            [],
            |r| r.get(0),
        )
        .map_err(query_err("sqlite_master"))?;
    let (table, sql) = if has_api_key_table {
        (
            "api_key",
            r#"SELECT "key", user_id FROM api_key WHERE "key" IS NOT NULL"#,
        )
    } else {
        (
            "user",
            r#"SELECT api_key, id FROM "user" WHERE api_key IS NOT NULL"#,
        )
    };
    let mut stmt = conn.prepare(sql).map_err(query_err(table))?;
    let mut rows = stmt.query([]).map_err(query_err(table))?;
    while let Some(row) = rows.next().map_err(query_err(table))? {
        // Borrow the key bytes from SQLite's row buffer and hash them right there.
        let key = row
            .get_ref(0)
            .ok()
            .and_then(|v| v.as_bytes_or_null().ok().flatten());
        let user = row.get::<_, Option<String>>(1).ok().flatten();
        if let (Some(key), Some(user)) = (key, user) {
            dir.insert_key(key, &user);
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use webui_monitor_core::openwebui::KeyLookup;

    pub(crate) fn fixture_db() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/openwebui/webui.db")
    }

    #[test]
    fn loads_fixture_users_and_keys() {
        let dir = load(&fixture_db()).unwrap();
        assert_eq!(dir.user_count(), 2);
        assert_eq!(dir.key_count(), 1);
        let alice = dir.user("700c1556-9d86-452a-880f-edbc8a74ead8").unwrap();
        assert_eq!(
            (&*alice.name, &*alice.email, &*alice.role),
            ("Alice", "alice@example.com", "user")
        );
        let admin = dir.user("93966668-8c59-43ba-b3b7-c151e6d780a4").unwrap();
        assert_eq!(&*admin.role, "admin");
        assert_eq!(
            dir.lookup_key(b"sk-b2f36db1e8f4423697d7fa73f0ac0987"),
            KeyLookup::Known("700c1556-9d86-452a-880f-edbc8a74ead8")
        );
        assert_eq!(
            dir.lookup_key(b"sk-00000000000000000000000000000000"),
            KeyLookup::Unknown
        );
        let keys: Vec<_> = dir
            .keys()
            .map(|(fp, u)| (fp.as_str().to_string(), u.to_string()))
            .collect();
        assert_eq!(
            keys,
            [(
                "46e99b8fcc3f".to_string(),
                "700c1556-9d86-452a-880f-edbc8a74ead8".to_string()
            )]
        );
    }

    #[test]
    fn reload_is_repeatable_and_leaves_file_untouched() {
        let before = std::fs::read(fixture_db()).unwrap();
        for _ in 0..2 {
            assert_eq!(load(&fixture_db()).unwrap().key_count(), 1);
        }
        assert_eq!(std::fs::read(fixture_db()).unwrap(), before);
    }

    #[test]
    fn missing_file_is_an_error_not_a_new_database() {
        let err = load(Path::new("/nonexistent/dir/webui.db")).unwrap_err();
        assert!(matches!(err, DbError::Open { .. }), "{err}");
        assert!(!Path::new("/nonexistent/dir/webui.db").exists());
    }

    #[test]
    fn uri_escapes_query_characters() {
        assert_eq!(
            ro_uri(Path::new("/a?b#c%d.db")),
            "file:/a%3Fb%23c%25d.db?mode=ro"
        );
    }
}
