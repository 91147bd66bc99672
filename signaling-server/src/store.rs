//! Durable state in SQLite: classes, enrollments and chat history.
//!
//! Reads run on the caller's thread (callers use `spawn_blocking`); chat messages are appended
//! by a writer thread that commits whatever is queued in one transaction, so a burst of chat
//! costs one fsync, and `flush` waits until everything queued is on disk.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use classroom_wire::{ChatKind, ChatMessage, Role};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::StoreError;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS classes (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS enrollments (
    class_id TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('student', 'instructor')),
    PRIMARY KEY (class_id, user_id)
);
CREATE TABLE IF NOT EXISTS chat_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    message TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'system'))
);
CREATE INDEX IF NOT EXISTS chat_by_session ON chat_messages(session_id, seq);
"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassInfo {
    pub id: String,
    pub title: String,
    pub enrolled: usize,
}

enum WriteOp {
    Chat {
        session_id: String,
        message: ChatMessage,
    },
    Flush(mpsc::Sender<()>),
}

pub struct Store {
    conn: Arc<Mutex<Connection>>,
    writer: mpsc::Sender<WriteOp>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Opens (creating if needed) the database file; `None` keeps everything in memory.
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let conn = match path {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
                let conn = Connection::open(path)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                conn
            }
            None => Connection::open_in_memory()?,
        };
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let conn = Arc::new(Mutex::new(conn));
        let (writer, queue) = mpsc::channel();
        let writer_conn = conn.clone();
        let writer_thread = std::thread::Builder::new()
            .name("chat-writer".into())
            .spawn(move || write_loop(&writer_conn, &queue))
            .map_err(|e| StoreError::CreateDir {
                path: "chat-writer thread".into(),
                source: e,
            })?;
        Ok(Store {
            conn,
            writer,
            writer_thread: Mutex::new(Some(writer_thread)),
        })
    }

    pub fn create_class(&self, id: &str, title: &str) -> Result<(), StoreError> {
        let now = crate::auth::unix_now().as_millis() as i64;
        self.conn.lock().execute(
            "INSERT INTO classes (id, title, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET title = excluded.title",
            params![id, title, now],
        )?;
        Ok(())
    }

    pub fn list_classes(&self) -> Result<Vec<ClassInfo>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT c.id, c.title, COUNT(e.user_id) FROM classes c
             LEFT JOIN enrollments e ON e.class_id = c.id GROUP BY c.id ORDER BY c.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ClassInfo {
                id: r.get(0)?,
                title: r.get(1)?,
                enrolled: r.get::<_, i64>(2)? as usize,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn class_exists(&self, id: &str) -> Result<bool, StoreError> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row("SELECT 1 FROM classes WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    pub fn enroll(&self, class_id: &str, user_id: &str, role: Role) -> Result<(), StoreError> {
        if !self.class_exists(class_id)? {
            return Err(StoreError::NoSuchClass(class_id.to_owned()));
        }
        self.conn.lock().execute(
            "INSERT INTO enrollments (class_id, user_id, role) VALUES (?1, ?2, ?3)
             ON CONFLICT(class_id, user_id) DO UPDATE SET role = excluded.role",
            params![class_id, user_id, role_name(role)],
        )?;
        Ok(())
    }

    pub fn unenroll(&self, class_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let n = self.conn.lock().execute(
            "DELETE FROM enrollments WHERE class_id = ?1 AND user_id = ?2",
            params![class_id, user_id],
        )?;
        Ok(n > 0)
    }

    /// The user's role in the class, or `None` when not enrolled.
    pub fn enrollment(&self, class_id: &str, user_id: &str) -> Result<Option<Role>, StoreError> {
        let conn = self.conn.lock();
        let role: Option<String> = conn
            .query_row(
                "SELECT role FROM enrollments WHERE class_id = ?1 AND user_id = ?2",
                params![class_id, user_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(role.map(|r| parse_role(&r)))
    }

    pub fn roster(&self, class_id: &str) -> Result<Vec<(String, Role)>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT user_id, role FROM enrollments WHERE class_id = ?1 ORDER BY user_id",
        )?;
        let rows = stmt.query_map([class_id], |r| {
            Ok((r.get::<_, String>(0)?, parse_role(&r.get::<_, String>(1)?)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last `limit` chat messages of a session, oldest first.
    pub fn recent_chat(
        &self,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, user_id, user_name, message, timestamp, kind FROM chat_messages
             WHERE session_id = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![session_id, limit as i64], |r| {
            let kind: String = r.get(5)?;
            Ok(ChatMessage {
                id: r.get(0)?,
                user_id: r.get(1)?,
                user_name: r.get(2)?,
                message: r.get(3)?,
                timestamp: r.get::<_, i64>(4)? as u64,
                kind: if kind == "system" {
                    ChatKind::System
                } else {
                    ChatKind::User
                },
            })
        })?;
        let mut messages: Vec<ChatMessage> = rows.collect::<Result<_, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// Queues a message for the writer thread; never blocks.
    pub fn append_chat(&self, session_id: &str, message: ChatMessage) -> Result<(), StoreError> {
        self.writer
            .send(WriteOp::Chat {
                session_id: session_id.to_owned(),
                message,
            })
            .map_err(|_| StoreError::WriterGone)
    }

    /// Waits until every queued message is committed.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.writer
            .send(WriteOp::Flush(done))
            .map_err(|_| StoreError::WriterGone)?;
        wait.recv().map_err(|_| StoreError::WriterGone)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.flush();
        // The writer ends when the last sender is gone; the handle is joined to be sure the
        // last transaction committed before the connection closes.
        let (dummy, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.writer, dummy));
        if let Some(handle) = self.writer_thread.lock().take() {
            let _ = handle.join();
        }
    }
}

fn write_loop(conn: &Mutex<Connection>, queue: &mpsc::Receiver<WriteOp>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        let mut waiters = Vec::new();
        let mut conn = conn.lock();
        let result = (|| -> Result<usize, rusqlite::Error> {
            let tx = conn.transaction()?;
            let mut written = 0;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO chat_messages (id, session_id, user_id, user_name, message, timestamp, kind)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for op in batch.drain(..) {
                    match op {
                        WriteOp::Chat {
                            session_id,
                            message,
                        } => {
                            insert.execute(params![
                                message.id,
                                session_id,
                                message.user_id,
                                message.user_name,
                                message.message,
                                message.timestamp as i64,
                                if message.kind == ChatKind::System {
                                    "system"
                                } else {
                                    "user"
                                },
                            ])?;
                            written += 1;
                        }
                        WriteOp::Flush(done) => waiters.push(done),
                    }
                }
            }
            tx.commit()?;
            Ok(written)
        })();
        drop(conn);
        if let Err(e) = result {
            tracing::error!(error = %e, "chat history write failed; messages of this batch are not persisted");
        }
        for done in waiters {
            let _ = done.send(());
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Student => "student",
        Role::Instructor => "instructor",
    }
}

fn parse_role(s: &str) -> Role {
    if s == "instructor" {
        Role::Instructor
    } else {
        Role::Student
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, text: &str) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            user_id: "u".into(),
            user_name: "U".into(),
            message: text.into(),
            timestamp: 1,
            kind: ChatKind::User,
        }
    }

    #[test]
    fn chat_history_survives_reopening_the_file() {
        let dir = std::env::temp_dir().join(format!("classroom-store-{}", uuid::Uuid::new_v4()));
        let path = dir.join("db.sqlite3");
        {
            let store = Store::open(Some(&path)).unwrap();
            for i in 0..5 {
                store
                    .append_chat("s1", msg(&format!("m{i}"), &format!("hello {i}")))
                    .unwrap();
            }
            store.append_chat("s2", msg("other", "elsewhere")).unwrap();
        }
        let store = Store::open(Some(&path)).unwrap();
        let recent = store.recent_chat("s1", 3).unwrap();
        let texts: Vec<_> = recent.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(texts, ["hello 2", "hello 3", "hello 4"]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn enrollment_needs_an_existing_class() {
        let store = Store::open(None).unwrap();
        assert!(matches!(
            store.enroll("c", "u", Role::Student),
            Err(StoreError::NoSuchClass(_))
        ));
        store.create_class("c", "Physics").unwrap();
        store.enroll("c", "u", Role::Instructor).unwrap();
        assert_eq!(store.enrollment("c", "u").unwrap(), Some(Role::Instructor));
        assert_eq!(store.enrollment("c", "v").unwrap(), None);
        assert_eq!(store.list_classes().unwrap()[0].enrolled, 1);
        assert!(store.unenroll("c", "u").unwrap());
        assert_eq!(store.roster("c").unwrap(), vec![]);
    }
}
