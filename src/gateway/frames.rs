//! The widget protocol's frames (CONTRACT §3). Parsing is strict: only the four client types
//! exist, each with exactly its fields; everything else is an error that names its code.

use serde::{Deserialize, Serialize};

use crate::domain::Role;

/// A frame from the widget.
#[derive(Debug, PartialEq)]
pub enum ClientFrame {
    Submit { id: String, text: String },
    Resume { conversation: String, token: String },
    Transcript,
    Erase,
}

/// Why a frame was refused; carries the contract's error code.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum FrameError {
    /// Not JSON, not an object, no string `type`, or wrong fields for its type.
    Invalid,
    /// A well-formed frame of a type the server does not accept.
    Unsupported,
}

impl FrameError {
    pub fn code(self) -> &'static str {
        match self {
            FrameError::Invalid => "invalid_frame",
            FrameError::Unsupported => "unsupported_frame",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitFields {
    #[serde(rename = "type")]
    _type: String,
    id: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeFields {
    #[serde(rename = "type")]
    _type: String,
    conversation: String,
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BareFields {
    #[serde(rename = "type")]
    _type: String,
}

/// Parses one text frame.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| FrameError::Invalid)?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or(FrameError::Invalid)?;
    match kind {
        "submit" => serde_json::from_value::<SubmitFields>(value)
            .map(|f| ClientFrame::Submit {
                id: f.id,
                text: f.text,
            })
            .map_err(|_| FrameError::Invalid),
        "resume" => serde_json::from_value::<ResumeFields>(value)
            .map(|f| ClientFrame::Resume {
                conversation: f.conversation,
                token: f.token,
            })
            .map_err(|_| FrameError::Invalid),
        "transcript" => serde_json::from_value::<BareFields>(value)
            .map(|_| ClientFrame::Transcript)
            .map_err(|_| FrameError::Invalid),
        "erase" => serde_json::from_value::<BareFields>(value)
            .map(|_| ClientFrame::Erase)
            .map_err(|_| FrameError::Invalid),
        _ => Err(FrameError::Unsupported),
    }
}

/// The limits the widget is told about in `hello`.
#[derive(Debug, Serialize, Clone, Copy)]
pub struct Limits {
    pub max_message_chars: u32,
    pub messages_per_minute: u32,
}

/// A message in `resumed` and `transcript` frames.
#[derive(Debug, Serialize, Clone)]
pub struct FrameMessage {
    pub role: Role,
    pub text: String,
    pub at: String,
}

/// A knowledge-base source cited by a reply.
#[derive(Debug, Serialize, Clone)]
pub struct Source {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A frame to the widget.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame {
    Hello {
        protocol: u32,
        limits: Limits,
    },
    Accepted {
        id: String,
        conversation: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    Delta {
        id: String,
        text: String,
    },
    Done {
        id: String,
        message: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        sources: Vec<Source>,
    },
    Resumed {
        conversation: String,
        messages: Vec<FrameMessage>,
    },
    Transcript {
        conversation: String,
        messages: Vec<FrameMessage>,
    },
    Erased {
        conversation: String,
    },
    Error {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            id: None,
            retry_after_ms: None,
        }
    }

    pub fn error_for(id: &str, code: &'static str, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            id: Some(id.to_owned()),
            retry_after_ms: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"encoding failed"}"#.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_four_client_frames_parse() {
        assert_eq!(
            parse_client_frame(r#"{"type":"submit","id":"a1","text":"hi"}"#),
            Ok(ClientFrame::Submit {
                id: "a1".into(),
                text: "hi".into()
            })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"resume","conversation":"c","token":"t"}"#),
            Ok(ClientFrame::Resume {
                conversation: "c".into(),
                token: "t".into()
            })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"transcript"}"#),
            Ok(ClientFrame::Transcript)
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"erase"}"#),
            Ok(ClientFrame::Erase)
        );
    }

    #[test]
    fn malformed_frames_are_invalid_and_unknown_types_unsupported() {
        for bad in [
            "",
            "nope",
            "[]",
            "42",
            "{}",
            r#"{"type":7}"#,
            r#"{"type":"submit"}"#,
            r#"{"type":"submit","id":"a","text":5}"#,
            r#"{"type":"submit","id":"a","text":"x","extra":1}"#,
            r#"{"type":"erase","conversation":"c"}"#,
        ] {
            assert_eq!(parse_client_frame(bad), Err(FrameError::Invalid), "{bad}");
        }
        for unknown in [
            r#"{"type":"typing"}"#,
            r#"{"type":"keystroke","text":"a"}"#,
            r#"{"type":"SUBMIT","id":"a","text":"x"}"#,
        ] {
            assert_eq!(
                parse_client_frame(unknown),
                Err(FrameError::Unsupported),
                "{unknown}"
            );
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_client_frame(&deep), Err(FrameError::Invalid));
    }

    #[test]
    fn server_frames_serialize_as_the_contract_says() {
        let accepted = ServerFrame::Accepted {
            id: "a".into(),
            conversation: "c".into(),
            token: None,
        }
        .to_json();
        assert_eq!(
            accepted,
            r#"{"type":"accepted","id":"a","conversation":"c"}"#
        );
        let error = ServerFrame::Error {
            code: "rate_limited",
            message: "slow down".into(),
            id: Some("a".into()),
            retry_after_ms: Some(1500),
        };
        assert_eq!(
            error.to_json(),
            r#"{"type":"error","code":"rate_limited","message":"slow down","id":"a","retry_after_ms":1500}"#
        );
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errors_without_panicking(text in any::<String>()) {
            let _ = parse_client_frame(&text);
        }

        #[test]
        fn any_submit_text_round_trips(id in "[A-Za-z0-9_-]{1,64}", text in any::<String>()) {
            let frame = serde_json::json!({"type": "submit", "id": id, "text": text}).to_string();
            prop_assert_eq!(parse_client_frame(&frame), Ok(ClientFrame::Submit { id, text }));
        }
    }
}
