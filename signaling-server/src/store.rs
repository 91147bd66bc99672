//! Durable state in SQLite: classes, enrollments and chat history.
//!
//! Reads run on the caller's thread (callers use `spawn_blocking`); chat messages are appended
//! by a writer thread that commits whatever is queued in one transaction (group commit), so a
//! burst of chat costs one transaction. A user's message is acknowledged only once its
//! transaction committed ([`Store::commit_chat`]); a failed write is reported to whoever waits
//! for it, and to the next [`Store::flush`].
//!
//! Durability: WAL with `synchronous = NORMAL`. A committed message survives the server
//! process dying (`kill -9`); a power cut or an OS crash may lose the last transactions before
//! the WAL's next sync (the database stays consistent). For a class's chat that is the right
//! price: no fsync per message.

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
CREATE INDEX IF NOT EXISTS chat_by_time ON chat_messages(timestamp);
CREATE TABLE IF NOT EXISTS polls (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    question TEXT NOT NULL,
    kind TEXT NOT NULL,
    options TEXT NOT NULL,
    anonymous INTEGER NOT NULL,
    correct TEXT,
    opened_at INTEGER NOT NULL,
    closed_at INTEGER
);
CREATE INDEX IF NOT EXISTS polls_by_session ON polls(session_id, opened_at);
CREATE TABLE IF NOT EXISTS votes (
    poll_id TEXT NOT NULL REFERENCES polls(id) ON DELETE CASCADE,
    voter TEXT NOT NULL,
    user_name TEXT,
    choices TEXT NOT NULL,
    text TEXT,
    voted_at INTEGER NOT NULL,
    PRIMARY KEY (poll_id, voter)
);
CREATE TABLE IF NOT EXISTS bars (
    session_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (session_id, user_id)
);
"#;

/// Columns added after the first release, for databases made before them.
const ADDED_COLUMNS: [(&str, &str, &str); 2] = [
    ("chat_messages", "to_user_id", "TEXT"),
    ("chat_messages", "to_user_name", "TEXT"),
];

/// What a clean-up of sessions that are no class deleted ([`Store::prune_ad_hoc`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pruned {
    pub sessions: usize,
    pub messages: usize,
    pub polls: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassInfo {
    pub id: String,
    pub title: String,
    pub enrolled: usize,
}

/// What a waiter hears once its message's transaction ended: `Err` with why it failed.
pub(crate) type Committed = tokio::sync::oneshot::Receiver<Result<(), String>>;

enum WriteOp {
    Chat {
        session_id: String,
        message: ChatMessage,
        committed: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    },
    /// Deletes the chat message with this id.
    Delete(String),
    /// A poll that opened (its session, and the poll).
    Poll(String, Box<crate::room_rules::PollRecord>),
    Vote(Box<crate::room_rules::StoredVote>),
    /// A poll closed, at this time.
    PollClosed(String, u64),
    /// Answered once everything queued before it was written, with whether every write since
    /// the last flush succeeded.
    Flush(mpsc::Sender<Result<(), String>>),
}

/// How many system notices (joins, leaves) the replayed history keeps beside the user
/// messages: a class coming and going must not push the conversation out of it.
pub(crate) const SYSTEM_NOTICES_KEPT: usize = 10;

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
        for (table, column, kind) in ADDED_COLUMNS {
            let present: bool = conn
                .prepare(&format!(
                    "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
                ))?
                .exists([column])?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
            }
        }
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

    pub(crate) fn class_exists(&self, id: &str) -> Result<bool, StoreError> {
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

    /// The last `limit` user messages of a session and its last [`SYSTEM_NOTICES_KEPT`]
    /// system notices, oldest first.
    pub(crate) fn recent_chat(
        &self,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, user_id, user_name, message, timestamp, kind, to_user_id, to_user_name FROM (
                 SELECT * FROM (SELECT * FROM chat_messages WHERE session_id = ?1 AND kind = 'user'
                                ORDER BY seq DESC LIMIT ?2)
                 UNION ALL
                 SELECT * FROM (SELECT * FROM chat_messages WHERE session_id = ?1 AND kind = 'system'
                                ORDER BY seq DESC LIMIT ?3))
             ORDER BY seq DESC",
        )?;
        let rows = stmt.query_map(
            params![session_id, limit as i64, SYSTEM_NOTICES_KEPT as i64],
            |r| {
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
                    to_user_id: r.get(6)?,
                    to_user_name: r.get(7)?,
                })
            },
        )?;
        let mut messages: Vec<ChatMessage> = rows.collect::<Result<_, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// Queues a message for the writer thread; never blocks. A failure is logged and reported
    /// by the next [`Store::flush`] (for system notices, which nobody waits for).
    pub(crate) fn append_chat(
        &self,
        session_id: &str,
        message: ChatMessage,
    ) -> Result<(), StoreError> {
        self.queue_chat(session_id, message, None)
    }

    /// Queues a message; the receiver hears once its transaction committed, or why not.
    pub(crate) fn commit_chat(
        &self,
        session_id: &str,
        message: ChatMessage,
    ) -> Result<Committed, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue_chat(session_id, message, Some(tx))?;
        Ok(rx)
    }

    fn queue_chat(
        &self,
        session_id: &str,
        message: ChatMessage,
        committed: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ) -> Result<(), StoreError> {
        self.writer
            .send(WriteOp::Chat {
                session_id: session_id.to_owned(),
                message,
                committed,
            })
            .map_err(|_| StoreError::WriterGone)
    }

    /// Deletes chat older than `before_ms` (milliseconds since the epoch); returns how many.
    pub(crate) fn prune_chat(&self, before_ms: u64) -> Result<usize, StoreError> {
        Ok(self.conn.lock().execute(
            "DELETE FROM chat_messages WHERE timestamp < ?1",
            [before_ms as i64],
        )?)
    }

    /// Deletes what sessions that are no class left behind (development mode makes them on
    /// first join, under any name a client picks): their chat, polls with their votes, and
    /// bars, once the newest of these is older than `idle_before_ms` and `live` says nobody is
    /// in the session. Expired bars of every session go too. One transaction.
    pub(crate) fn prune_ad_hoc(
        &self,
        idle_before_ms: u64,
        now_ms: u64,
        live: impl Fn(&str) -> bool,
    ) -> Result<Pruned, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let idle: Vec<String> = tx
            .prepare(
                "SELECT session_id FROM (
                     SELECT session_id, MAX(timestamp) AS last FROM chat_messages GROUP BY session_id
                     UNION ALL
                     SELECT session_id, MAX(COALESCE(closed_at, opened_at)) FROM polls GROUP BY session_id
                     UNION ALL
                     SELECT session_id, MAX(until_ms) FROM bars GROUP BY session_id)
                 WHERE session_id NOT IN (SELECT id FROM classes)
                 GROUP BY session_id HAVING MAX(last) < ?1",
            )?
            .query_map([idle_before_ms as i64], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut pruned = Pruned::default();
        for session in idle.iter().filter(|s| !live(s)) {
            pruned.messages +=
                tx.execute("DELETE FROM chat_messages WHERE session_id = ?1", [session])?;
            pruned.polls += tx.execute("DELETE FROM polls WHERE session_id = ?1", [session])?;
            tx.execute("DELETE FROM bars WHERE session_id = ?1", [session])?;
            pruned.sessions += 1;
        }
        tx.execute("DELETE FROM bars WHERE until_ms <= ?1", [now_ms as i64])?;
        tx.commit()?;
        Ok(pruned)
    }

    /// Keeps `user_id` out of `session_id` until `until_ms` (milliseconds since the epoch).
    pub(crate) fn bar(
        &self,
        session_id: &str,
        user_id: &str,
        until_ms: u64,
    ) -> Result<(), StoreError> {
        self.conn.lock().execute(
            "INSERT INTO bars (session_id, user_id, until_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (session_id, user_id) DO UPDATE SET until_ms = excluded.until_ms",
            params![session_id, user_id, until_ms as i64],
        )?;
        Ok(())
    }

    /// Until when `user_id` is kept out of `session_id`, if they are at `now_ms`.
    pub(crate) fn barred_until(
        &self,
        session_id: &str,
        user_id: &str,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let conn = self.conn.lock();
        let until: Option<i64> = conn
            .prepare_cached(
                "SELECT until_ms FROM bars WHERE session_id = ?1 AND user_id = ?2 AND until_ms > ?3",
            )?
            .query_row(params![session_id, user_id, now_ms as i64], |r| r.get(0))
            .optional()?;
        Ok(until.map(|u| u as u64))
    }

    /// Deletes a chat message (queued behind the messages being written, so a message
    /// deleted right after it was sent is deleted once written).
    pub(crate) fn delete_chat(&self, message_id: &str) -> Result<(), StoreError> {
        self.writer
            .send(WriteOp::Delete(message_id.to_owned()))
            .map_err(|_| StoreError::WriterGone)
    }

    /// Queues a poll that opened in `session_id`.
    pub(crate) fn store_poll(
        &self,
        session_id: &str,
        record: &crate::room_rules::PollRecord,
    ) -> Result<(), StoreError> {
        self.writer
            .send(WriteOp::Poll(
                session_id.to_owned(),
                Box::new(record.clone()),
            ))
            .map_err(|_| StoreError::WriterGone)
    }

    /// Queues a vote (a user's later vote replaces their earlier one).
    pub(crate) fn store_vote(&self, vote: crate::room_rules::StoredVote) -> Result<(), StoreError> {
        self.writer
            .send(WriteOp::Vote(Box::new(vote)))
            .map_err(|_| StoreError::WriterGone)
    }

    pub(crate) fn close_poll(&self, poll_id: &str, at_ms: u64) -> Result<(), StoreError> {
        self.writer
            .send(WriteOp::PollClosed(poll_id.to_owned(), at_ms))
            .map_err(|_| StoreError::WriterGone)
    }

    /// Every poll of a session with its answers, oldest first: what `polls export` and
    /// `GET /sessions/{id}/polls` give.
    pub fn poll_results(&self, session_id: &str) -> Result<Vec<PollExport>, StoreError> {
        let conn = self.conn.lock();
        let mut polls = conn.prepare_cached(
            "SELECT id, question, kind, options, anonymous, correct, opened_at, closed_at
             FROM polls WHERE session_id = ?1 ORDER BY opened_at, id",
        )?;
        let mut votes = conn.prepare_cached(
            "SELECT voter, user_name, choices, text, voted_at FROM votes WHERE poll_id = ?1
             ORDER BY voted_at, voter",
        )?;
        let rows: Vec<PollExport> = polls
            .query_map([session_id], |r| {
                let options: String = r.get(3)?;
                let correct: Option<String> = r.get(5)?;
                Ok(PollExport {
                    poll_id: r.get(0)?,
                    question: r.get(1)?,
                    kind: r.get(2)?,
                    options: serde_json::from_str(&options).unwrap_or_default(),
                    anonymous: r.get(4)?,
                    correct: correct.and_then(|c| serde_json::from_str(&c).ok()),
                    opened_at: r.get::<_, i64>(6)? as u64,
                    closed_at: r.get::<_, Option<i64>>(7)?.map(|t| t as u64),
                    answers: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for mut poll in rows {
            poll.answers = votes
                .query_map([&poll.poll_id], |r| {
                    let choices: String = r.get(2)?;
                    Ok(VoteExport {
                        voter: r.get(0)?,
                        user_name: r.get(1)?,
                        choices: serde_json::from_str(&choices).unwrap_or_default(),
                        text: r.get(3)?,
                        voted_at: r.get::<_, i64>(4)? as u64,
                    })
                })?
                .collect::<Result<_, _>>()?;
            out.push(poll);
        }
        Ok(out)
    }

    /// Waits until every queued message was written; an error when any write since the last
    /// flush failed.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.writer
            .send(WriteOp::Flush(done))
            .map_err(|_| StoreError::WriterGone)?;
        wait.recv()
            .map_err(|_| StoreError::WriterGone)?
            .map_err(StoreError::WriteFailed)
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
    // The first failure since the last flush, for that flush to report.
    let mut failure: Option<String> = None;
    while let Ok(first) = queue.recv() {
        let mut batch = std::collections::VecDeque::from([first]);
        while let Ok(more) = queue.try_recv() {
            batch.push_back(more);
        }
        let mut committed = Vec::new();
        let mut flushes = Vec::new();
        let mut conn = conn.lock();
        let result = (|| -> Result<usize, rusqlite::Error> {
            let tx = conn.transaction()?;
            let mut written = 0;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO chat_messages (id, session_id, user_id, user_name, message, timestamp, kind, to_user_id, to_user_name)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                let mut delete = tx.prepare_cached("DELETE FROM chat_messages WHERE id = ?1")?;
                let mut insert_poll = tx.prepare_cached(
                    "INSERT OR IGNORE INTO polls (id, session_id, question, kind, options, anonymous, correct, opened_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                let mut upsert_vote = tx.prepare_cached(
                    "INSERT INTO votes (poll_id, voter, user_name, choices, text, voted_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (poll_id, voter) DO UPDATE SET choices = excluded.choices,
                       text = excluded.text, voted_at = excluded.voted_at, user_name = excluded.user_name",
                )?;
                let mut close_poll =
                    tx.prepare_cached("UPDATE polls SET closed_at = ?2 WHERE id = ?1")?;
                // Taken one at a time: on a failed insert the rest stay in `batch`.
                while let Some(op) = batch.pop_front() {
                    match op {
                        WriteOp::Chat {
                            session_id,
                            message,
                            committed: waiter,
                        } => {
                            committed.extend(waiter);
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
                                message.to_user_id,
                                message.to_user_name,
                            ])?;
                            written += 1;
                        }
                        WriteOp::Delete(id) => {
                            delete.execute([id])?;
                        }
                        WriteOp::Poll(session_id, record) => {
                            let p = &record.poll;
                            insert_poll.execute(params![
                                p.poll_id,
                                session_id,
                                p.question,
                                poll_kind_name(p.kind),
                                serde_json::to_string(&p.options).unwrap_or_default(),
                                p.anonymous,
                                record
                                    .correct
                                    .as_ref()
                                    .map(|c| serde_json::to_string(c).unwrap_or_default()),
                                p.opened_at as i64,
                            ])?;
                        }
                        WriteOp::Vote(v) => {
                            upsert_vote.execute(params![
                                v.poll_id,
                                v.voter,
                                v.user_name,
                                serde_json::to_string(&v.choices).unwrap_or_default(),
                                v.text,
                                v.at as i64,
                            ])?;
                        }
                        WriteOp::PollClosed(id, at) => {
                            close_poll.execute(params![id, at as i64])?;
                        }
                        WriteOp::Flush(done) => flushes.push(done),
                    }
                }
            }
            tx.commit()?;
            Ok(written)
        })();
        drop(conn);
        // Ops after a failing insert were not reached: their waiters hear of the failure too
        // (dropped ops would read as "the writer stopped").
        for op in batch.drain(..) {
            match op {
                WriteOp::Chat {
                    committed: waiter, ..
                } => committed.extend(waiter),
                WriteOp::Delete(_)
                | WriteOp::Poll(..)
                | WriteOp::Vote(_)
                | WriteOp::PollClosed(..) => {}
                WriteOp::Flush(done) => flushes.push(done),
            }
        }
        let outcome = result.map(|_| ()).map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "chat history write failed; this batch is not stored");
            failure.get_or_insert_with(|| e.clone());
        }
        for waiter in committed {
            let _ = waiter.send(outcome.clone());
        }
        if !flushes.is_empty() {
            let report = match failure.take() {
                Some(e) => Err(e),
                None => Ok(()),
            };
            for done in flushes {
                let _ = done.send(report.clone());
            }
        }
    }
}

/// One stored poll with its answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollExport {
    pub poll_id: String,
    pub question: String,
    pub kind: String,
    pub options: Vec<String>,
    pub anonymous: bool,
    pub correct: Option<Vec<usize>>,
    pub opened_at: u64,
    pub closed_at: Option<u64>,
    pub answers: Vec<VoteExport>,
}

/// One answer: `voter` is the user id (a digest of it in an anonymous poll, with no name).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteExport {
    pub voter: String,
    pub user_name: Option<String>,
    pub choices: Vec<usize>,
    pub text: Option<String>,
    pub voted_at: u64,
}

impl PollExport {
    /// Whether an answer is right, in a quiz.
    pub fn correct_answer(&self, answer: &VoteExport) -> Option<bool> {
        self.correct.as_ref().map(|c| *c == answer.choices)
    }
}

/// Polls as CSV: one row per answer (`poll_id,question,kind,voter,user_name,answer,correct,voted_at`).
pub fn polls_csv(polls: &[PollExport]) -> String {
    fn field(s: &str) -> String {
        // Quoted, and a leading = + - @ neutralised: a spreadsheet must not run an answer.
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    }
    let mut out = String::from("poll_id,question,kind,voter,user_name,answer,correct,voted_at\n");
    for poll in polls {
        for a in &poll.answers {
            let answer = match &a.text {
                Some(text) => text.clone(),
                None => a
                    .choices
                    .iter()
                    .filter_map(|&c| poll.options.get(c).cloned())
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            let correct = poll
                .correct_answer(a)
                .map_or(String::new(), |c| c.to_string());
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                field(&poll.poll_id),
                field(&poll.question),
                field(&poll.kind),
                field(&a.voter),
                field(a.user_name.as_deref().unwrap_or("")),
                field(&answer),
                correct,
                a.voted_at
            ));
        }
    }
    out
}

fn poll_kind_name(kind: classroom_wire::PollKind) -> &'static str {
    match kind {
        classroom_wire::PollKind::YesNo => "yes-no",
        classroom_wire::PollKind::Single => "single",
        classroom_wire::PollKind::Multiple => "multiple",
        classroom_wire::PollKind::Text => "text",
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

    /// A directory of its own for one test's database (removed by the test).
    fn scratch_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("classroom-store-{}", uuid::Uuid::new_v4()))
    }

    fn msg(id: &str, text: &str) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            user_id: "u".into(),
            user_name: "U".into(),
            message: text.into(),
            timestamp: 1,
            kind: ChatKind::User,
            to_user_id: None,
            to_user_name: None,
        }
    }

    #[test]
    fn private_messages_keep_their_recipient_and_a_deleted_message_is_gone() {
        let store = Store::open(None).unwrap();
        store.append_chat("s", msg("pub", "hello")).unwrap();
        let private = ChatMessage {
            to_user_id: Some("t".into()),
            to_user_name: Some("Teacher".into()),
            ..msg("priv", "a question")
        };
        store.append_chat("s", private.clone()).unwrap();
        store.flush().unwrap();
        assert_eq!(store.recent_chat("s", 10).unwrap()[1], private);
        store.delete_chat("pub").unwrap();
        store.flush().unwrap();
        let left: Vec<_> = store
            .recent_chat("s", 10)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(left, ["priv"]);
    }

    #[test]
    fn a_bar_holds_until_its_time_and_survives_reopening() {
        let dir = scratch_dir();
        let path = dir.join("c.db");
        {
            let store = Store::open(Some(&path)).unwrap();
            store.bar("s", "mallory", 10_000).unwrap();
        }
        let store = Store::open(Some(&path)).unwrap();
        assert_eq!(
            store.barred_until("s", "mallory", 9_999).unwrap(),
            Some(10_000)
        );
        assert_eq!(store.barred_until("s", "mallory", 10_000).unwrap(), None);
        assert_eq!(store.barred_until("other", "mallory", 1).unwrap(), None);
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_database_from_before_private_chat_gains_its_columns() {
        let dir = scratch_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE chat_messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                 session_id TEXT NOT NULL, user_id TEXT NOT NULL, user_name TEXT NOT NULL,
                 message TEXT NOT NULL, timestamp INTEGER NOT NULL, kind TEXT NOT NULL);
                 INSERT INTO chat_messages (id, session_id, user_id, user_name, message, timestamp, kind)
                 VALUES ('m1', 's', 'u', 'U', 'kept', 1, 'user');",
            )
            .unwrap();
        }
        let store = Store::open(Some(&path)).unwrap();
        let history = store.recent_chat("s", 10).unwrap();
        assert_eq!(
            (history[0].message.as_str(), history[0].to_user_id.as_ref()),
            ("kept", None)
        );
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn chat_history_survives_reopening_the_file() {
        let dir = scratch_dir();
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

    /// A full disk, as SQLite sees it: no page may be added.
    fn fill_up(store: &Store) {
        let conn = store.conn.lock();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages).unwrap();
    }

    #[tokio::test]
    async fn a_message_is_acknowledged_once_committed_and_a_failed_write_is_reported() {
        let store = Store::open(None).unwrap();
        let ok = store.commit_chat("s", msg("m1", "stored")).unwrap();
        assert_eq!(ok.await.unwrap(), Ok(()));
        assert_eq!(store.recent_chat("s", 10).unwrap().len(), 1);
        store.flush().unwrap();

        fill_up(&store);
        let big = "x".repeat(64 * 1024);
        let refused = store.commit_chat("s", msg("m2", &big)).unwrap();
        let error = refused.await.unwrap().unwrap_err();
        assert!(error.contains("full"), "{error}");
        // A notice nobody waits for fails too: the next flush says so, the one after is clean.
        store.append_chat("s", msg("m3", &big)).unwrap();
        let flushed = store.flush();
        assert!(
            matches!(flushed, Err(StoreError::WriteFailed(_))),
            "{flushed:?}"
        );
        assert!(store.flush().is_ok());
        assert_eq!(
            store.recent_chat("s", 10).unwrap().len(),
            1,
            "nothing half-written"
        );
    }

    #[test]
    fn join_and_leave_notices_do_not_push_the_conversation_out_of_the_history() {
        let store = Store::open(None).unwrap();
        for i in 0..5 {
            store
                .append_chat("s", msg(&format!("u{i}"), &format!("question {i}")))
                .unwrap();
        }
        for i in 0..50 {
            let mut notice = msg(&format!("n{i}"), &format!("someone joined {i}"));
            notice.kind = ChatKind::System;
            store.append_chat("s", notice).unwrap();
        }
        store.flush().unwrap();
        let recent = store.recent_chat("s", 3).unwrap();
        let user: Vec<_> = recent
            .iter()
            .filter(|m| m.kind == ChatKind::User)
            .map(|m| m.message.as_str())
            .collect();
        assert_eq!(user, ["question 2", "question 3", "question 4"]);
        let notices: Vec<_> = recent
            .iter()
            .filter(|m| m.kind == ChatKind::System)
            .collect();
        assert_eq!(notices.len(), SYSTEM_NOTICES_KEPT);
        assert_eq!(
            notices.last().unwrap().message,
            "someone joined 49",
            "oldest first, newest last"
        );
    }

    #[test]
    fn chat_older_than_the_retention_is_deleted() {
        let store = Store::open(None).unwrap();
        for (id, timestamp) in [("old", 1_000), ("new", 9_000)] {
            store
                .append_chat(
                    "s",
                    ChatMessage {
                        timestamp,
                        ..msg(id, id)
                    },
                )
                .unwrap();
        }
        store.flush().unwrap();
        assert_eq!(store.prune_chat(5_000).unwrap(), 1);
        let left: Vec<_> = store
            .recent_chat("s", 10)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(left, ["new"]);
    }

    #[test]
    fn sessions_that_are_no_class_are_cleaned_up_once_idle_and_empty() {
        let store = Store::open(None).unwrap();
        store.create_class("physics", "Physics").unwrap();
        // Three sessions made on first join and a class, all quiet since 1 000 ms, and one
        // session with a message at 9 000 ms.
        for (session, id, timestamp) in [
            ("physics", "p", 1_000),
            ("idle", "i", 1_000),
            ("occupied", "o", 1_000),
            ("barred", "b", 1_000),
            ("recent", "r", 9_000),
        ] {
            store
                .append_chat(
                    session,
                    ChatMessage {
                        timestamp,
                        ..msg(id, id)
                    },
                )
                .unwrap();
        }
        store.flush().unwrap();
        // Someone is kept out of "barred" until 20 000 ms; an old bar in "idle" has expired.
        store.bar("barred", "mallory", 20_000).unwrap();
        store.bar("idle", "eve", 2_000).unwrap();

        let pruned = store
            .prune_ad_hoc(5_000, 10_000, |session| session == "occupied")
            .unwrap();
        assert_eq!(
            pruned,
            Pruned {
                sessions: 1,
                messages: 1,
                polls: 0
            }
        );
        let left = |session: &str| store.recent_chat(session, 10).unwrap().len();
        assert_eq!(left("idle"), 0, "idle and empty: deleted");
        assert_eq!(
            left("physics"),
            1,
            "a class keeps its chat (retention applies)"
        );
        assert_eq!(left("occupied"), 1, "somebody is in it");
        assert_eq!(left("recent"), 1, "not idle long enough");
        assert_eq!(left("barred"), 1, "a bar still holds there");
        assert_eq!(
            store.barred_until("barred", "mallory", 10_000).unwrap(),
            Some(20_000)
        );
        assert_eq!(
            store.barred_until("idle", "eve", 0).unwrap(),
            None,
            "the expired bar is gone"
        );

        // Once the bar has expired too, the barred session goes.
        let pruned = store.prune_ad_hoc(25_000, 25_000, |_| false).unwrap();
        assert_eq!(pruned.sessions, 3, "barred, occupied, recent");
        assert_eq!(left("physics"), 1);
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
