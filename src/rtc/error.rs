//! The transport layer's one error type. webrtc-rs's errors are carried as sources, never
//! as its types in our API.

type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    #[error("webrtc: {0}")]
    WebRtc(Cause),
    #[error("invalid session description from the remote: {0}")]
    InvalidSdp(String),
    #[error("the peer connection has no local description")]
    NoLocalDescription,
    #[error("{step}: {source}")]
    Step { step: &'static str, source: Cause },
}

impl RtcError {
    pub(super) fn step(
        step: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        RtcError::Step {
            step,
            source: Box::new(source),
        }
    }
}

impl From<webrtc::error::Error> for RtcError {
    fn from(error: webrtc::error::Error) -> Self {
        RtcError::WebRtc(Box::new(error))
    }
}
