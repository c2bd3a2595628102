//! A scripted HTTP/1.1 server on loopback for the registry client's unit
//! tests: one connection per request, each answered by a closure that sees
//! the request and how many came before it. TLS attempts (the client tries
//! HTTPS first on loopback) are hung up on and not logged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The request target.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

/// How to answer.
pub struct Answer {
    /// The status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body (its full length is announced).
    pub body: Vec<u8>,
    /// Send only this many body bytes, then hang up.
    pub cut: Option<usize>,
}

impl Answer {
    /// A plain answer.
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut: None,
        }
    }

    /// 200 with a body.
    pub fn body(bytes: &[u8]) -> Answer {
        Answer {
            body: bytes.to_vec(),
            ..Answer::status(200)
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Hangs up after `n` body bytes.
    pub fn cut(mut self, n: usize) -> Answer {
        self.cut = Some(n);
        self
    }
}

type Handler = dyn Fn(&Seen, usize) -> Answer + Send + Sync;

/// The running server; it lives as long as the test process.
pub struct Fake {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    /// Starts a server answering with `handler(request, requests before it)`.
    pub fn start(handler: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let shared = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (log, handler) = (shared.clone(), handler.clone());
                std::thread::spawn(move || serve(conn, &log, &*handler));
            }
        });
        Fake { addr, log }
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests had this method and a path containing `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        self.log()
            .iter()
            .filter(|s| s.method == method && s.path.contains(part))
            .count()
    }
}

fn serve(conn: TcpStream, log: &Mutex<Vec<Seen>>, handler: &Handler) {
    let mut first = [0u8; 1];
    if conn.peek(&mut first).ok() != Some(1) || first[0] == 0x16 {
        return; // a TLS handshake, or nothing
    }
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut range, mut length, mut chunked) = (None, 0usize, false);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap_or((&h, ""));
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "range" => range = Some(value.to_string()),
            "content-length" => length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.contains("chunked"),
            _ => {}
        }
    }
    if chunked {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut skip = vec![0u8; n + 2];
            if reader.read_exact(&mut skip).is_err() || n == 0 {
                break;
            }
        }
    } else {
        let _ = std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink());
    }
    let seen = Seen {
        method,
        path,
        range,
    };
    let before = {
        let mut log = log.lock().unwrap();
        log.push(seen.clone());
        log.len() - 1
    };
    let answer = handler(&seen, before);
    let mut out = conn;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (k, v) in &answer.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    if seen.method != "HEAD" {
        let n = answer
            .cut
            .unwrap_or(answer.body.len())
            .min(answer.body.len());
        let _ = out.write_all(&answer.body[..n]);
    }
    let _ = out.flush();
    let _ = out.shutdown(Shutdown::Both);
}

/// The body of `Range: bytes=N-` applied to `content`, as a 206 answer
/// (or the whole content as 200 without a range).
pub fn ranged(content: &[u8], range: Option<&str>) -> Answer {
    match range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(from) => Answer {
            status: 206,
            ..Answer::body(&content[from.min(content.len())..])
        }
        .header(
            "Content-Range",
            &format!("bytes {from}-{}/{}", content.len() - 1, content.len()),
        ),
        None => Answer::body(content),
    }
}
