//! A unary gRPC call as plain HTTP/2, for a runtime with no gRPC client: the
//! dynamic module reaches the rate limit service through Envoy's streaming
//! HTTP callout, so the request is framed here (gRPC's 5-byte prefix) and the
//! answer's headers, data and trailers are read back into one message or the
//! reason there is none. Proxy-wasm has a gRPC call of its own and needs none
//! of this.
//!
//! The wire format is gRPC's "PROTOCOL-HTTP2" document: a request is POST
//! `/<service>/<method>` with `content-type: application/grpc` and
//! `te: trailers`; a message is a compressed-flag byte, a big-endian u32
//! length and the bytes; the status comes in `grpc-status` in the trailers, or
//! in the headers of a trailers-only answer.

use std::time::Duration;

/// The largest answer read; a rate limit answer is a few hundred bytes.
pub const MAX_ANSWER: usize = 64 * 1024;

/// The request headers of a call to `path` (`/<service>/<method>`) on
/// `authority`, with its deadline for the server.
pub fn request_headers(path: &str, authority: &str, timeout: Duration) -> Vec<(String, String)> {
    [
        (":method", "POST".to_owned()),
        (":path", path.to_owned()),
        ("host", authority.to_owned()),
        ("content-type", "application/grpc".to_owned()),
        ("te", "trailers".to_owned()),
        ("grpc-timeout", format!("{}m", timeout.as_millis().max(1))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `message` as one uncompressed gRPC frame.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// An answer as it arrives.
#[derive(Debug, Default)]
pub struct Answer {
    http_status: Option<String>,
    grpc_status: Option<String>,
    grpc_message: Option<String>,
    data: Vec<u8>,
    too_big: bool,
}

impl Answer {
    /// The response headers, or the trailers (both may carry the status).
    pub fn headers(&mut self, headers: &[(String, String)]) {
        for (name, value) in headers {
            match name.as_str() {
                ":status" => self.http_status = Some(value.clone()),
                "grpc-status" => self.grpc_status = Some(value.clone()),
                "grpc-message" => self.grpc_message = Some(value.clone()),
                _ => {}
            }
        }
    }

    pub fn data(&mut self, chunk: &[u8]) {
        if self.data.len() + chunk.len() > MAX_ANSWER {
            self.too_big = true;
            return;
        }
        self.data.extend_from_slice(chunk);
    }

    /// The one message of a successful answer, or why there is none.
    pub fn finish(self) -> Result<Vec<u8>, String> {
        match self.http_status.as_deref() {
            Some("200") => {}
            Some(other) => return Err(format!("HTTP status {other}")),
            None => return Err("no response headers".into()),
        }
        match self.grpc_status.as_deref() {
            Some("0") => {}
            Some(code) => {
                return Err(format!(
                    "gRPC status {code}{}",
                    self.grpc_message
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ))
            }
            None => return Err("no grpc-status".into()),
        }
        if self.too_big {
            return Err(format!("the answer is over {MAX_ANSWER} bytes"));
        }
        let Some((&[flag, a, b, c, d], message)) = self.data.split_first_chunk::<5>() else {
            return Err("no message".into());
        };
        if flag != 0 {
            return Err("a compressed message (none was asked for)".into());
        }
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if message.len() != len {
            return Err(format!(
                "one message of {len} bytes announced, {} bytes sent",
                message.len()
            ));
        }
        Ok(message.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok_answer(data: &[u8]) -> Answer {
        let mut a = Answer::default();
        a.headers(&pairs(&[
            (":status", "200"),
            ("content-type", "application/grpc"),
        ]));
        a.data(data);
        a.headers(&pairs(&[("grpc-status", "0")]));
        a
    }

    #[test]
    fn a_framed_message_reads_back_whole_even_in_pieces() {
        let framed = frame(b"hello");
        assert_eq!(framed, [0, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
        let mut a = ok_answer(&framed[..3]);
        a.data(&framed[3..]);
        assert_eq!(a.finish().unwrap(), b"hello");
        assert_eq!(ok_answer(&frame(b"")).finish().unwrap(), b"");
    }

    #[test]
    fn a_trailers_only_error_names_its_status_and_message() {
        let mut a = Answer::default();
        a.headers(&pairs(&[
            (":status", "200"),
            ("grpc-status", "14"),
            ("grpc-message", "redis down"),
        ]));
        assert_eq!(a.finish().unwrap_err(), "gRPC status 14 (redis down)");
    }

    #[test]
    fn answers_that_are_not_one_whole_message_are_refused() {
        let mut no_status = Answer::default();
        no_status.headers(&pairs(&[(":status", "200")]));
        no_status.data(&frame(b"x"));
        assert_eq!(no_status.finish().unwrap_err(), "no grpc-status");

        let mut http_error = Answer::default();
        http_error.headers(&pairs(&[(":status", "503")]));
        assert_eq!(http_error.finish().unwrap_err(), "HTTP status 503");

        assert_eq!(ok_answer(&[]).finish().unwrap_err(), "no message");
        assert!(ok_answer(&frame(b"abc")[..6]).finish().is_err());
        let mut two = frame(b"a");
        two.extend(frame(b"b"));
        assert!(ok_answer(&two).finish().is_err());
        let mut compressed = frame(b"a");
        compressed[0] = 1;
        assert!(ok_answer(&compressed).finish().is_err());
    }

    #[test]
    fn an_answer_over_the_bound_is_dropped_not_buffered() {
        let mut a = ok_answer(&[0; 10]);
        a.data(&vec![0; MAX_ANSWER]);
        assert_eq!(a.data.len(), 10);
        assert!(a.finish().unwrap_err().contains("over"));
    }

    #[test]
    fn the_request_names_the_method_and_the_deadline() {
        let h = request_headers("/s/M", "rls", Duration::from_millis(250));
        assert!(h.contains(&(":path".into(), "/s/M".into())));
        assert!(h.contains(&("grpc-timeout".into(), "250m".into())));
        assert!(h.contains(&("te".into(), "trailers".into())));
    }
}
