//! Where the window starts: the start screen, or straight into a class from the command line
//! (`classroom join --server … --session …`) or a link the LMS's Join button opens
//! (`classroom://join?server=…&session=…&token=…`).

use super::model::{JoinTarget, ServerChoice};

/// The port a local class listens on when it is free (the browser version's default).
pub const DEFAULT_LOCAL_PORT: u16 = 3001;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// The start screen.
    Start,
    /// The pre-join check of this class (`now`: join right away).
    Join {
        target: JoinTarget,
        now: bool,
        mic_on: bool,
        camera_on: bool,
        /// Use a microphone and speakers (`--no-audio`: neither).
        audio_devices: bool,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("not a classroom link (expected classroom://join?…): {0}")]
    NotAClassroomLink(String),
    #[error("the link has no {0}")]
    Missing(&'static str),
    #[error("the link's server must start with http:// or https://, not {0:?}")]
    BadServer(String),
    #[error("the link is not valid text after decoding")]
    BadEncoding,
}

/// Parses `classroom://join?server=…&session=…&token=…[&name=…][&role=instructor][&key=…]`
/// (`key`: another app's local class).
pub fn parse_link(link: &str) -> Result<JoinTarget, LinkError> {
    let rest = link
        .strip_prefix("classroom://join")
        .ok_or_else(|| LinkError::NotAClassroomLink(link.chars().take(80).collect()))?;
    let query = rest.trim_start_matches('/').strip_prefix('?').unwrap_or("");
    let mut server = None;
    let mut session = None;
    let mut token = None;
    let mut join_key = None;
    let mut name = None;
    let mut instructor = false;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)?;
        match key {
            "server" => server = Some(value),
            "session" => session = Some(value),
            "token" => token = Some(value),
            "name" => name = Some(value),
            "key" => join_key = Some(value),
            "role" => instructor = value == "instructor",
            _ => {} // newer links may carry more; they are ignored, not refused
        }
    }
    let server = server
        .filter(|s| !s.is_empty())
        .ok_or(LinkError::Missing("server"))?;
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(LinkError::BadServer(server));
    }
    let session = session
        .filter(|s| !s.is_empty())
        .ok_or(LinkError::Missing("session"))?;
    Ok(JoinTarget {
        server: ServerChoice::Remote(server),
        session,
        name: name.unwrap_or_default(),
        token: token.filter(|t| !t.is_empty()),
        key: join_key.filter(|k| !k.is_empty()),
        instructor,
    })
}

/// `%XX` escapes and `+` for space, as browsers write query strings.
fn percent_decode(text: &str) -> Result<String, LinkError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .map_err(|_| LinkError::BadEncoding)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| LinkError::BadEncoding)?);
                i += 3;
            }
            b'%' => return Err(LinkError::BadEncoding),
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| LinkError::BadEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_link_names_server_class_and_token() {
        let target = parse_link(
            "classroom://join?server=https%3A%2F%2Fclass.school.org&session=physics-101&token=eyJ.abc.def&name=Ada+Lovelace",
        )
        .unwrap();
        assert_eq!(
            target.server,
            ServerChoice::Remote("https://class.school.org".into())
        );
        assert_eq!(target.session, "physics-101");
        assert_eq!(target.token.as_deref(), Some("eyJ.abc.def"));
        assert_eq!(target.name, "Ada Lovelace");
        assert!(!target.instructor);
        let teacher =
            parse_link("classroom://join/?session=s&server=http://h:3001&role=instructor").unwrap();
        assert!(teacher.instructor);
    }

    #[test]
    fn bad_links_say_what_is_wrong() {
        assert!(matches!(
            parse_link("https://example.org"),
            Err(LinkError::NotAClassroomLink(_))
        ));
        assert_eq!(
            parse_link("classroom://join?session=s"),
            Err(LinkError::Missing("server"))
        );
        assert_eq!(
            parse_link("classroom://join?server=http://h"),
            Err(LinkError::Missing("session"))
        );
        assert_eq!(
            parse_link("classroom://join?server=ftp://h&session=s"),
            Err(LinkError::BadServer("ftp://h".into()))
        );
        assert_eq!(
            parse_link("classroom://join?server=http://h&session=%zz"),
            Err(LinkError::BadEncoding)
        );
        assert_eq!(
            parse_link("classroom://join?server=http://h&session=%4"),
            Err(LinkError::BadEncoding)
        );
        assert_eq!(
            parse_link("classroom://join?server=http://h&session=%ff%fe"),
            Err(LinkError::BadEncoding)
        );
    }
}
