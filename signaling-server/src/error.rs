//! Library errors of the signaling server.

use std::path::PathBuf;

use classroom_wire::{ErrorBody, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("class {0:?} does not exist")]
    NoSuchClass(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("chat history could not be written: {0}")]
    WriteFailed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error("the SFU could not start: {0}")]
    Sfu(String),
    #[error("the TURN relay could not start: {0}")]
    Turn(String),
}

/// A refusal sent to one client: becomes the `error` event and the failed ack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    pub fn body(&self, event: &str) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.clone(),
            event: Some(event.to_owned()),
        }
    }
}
