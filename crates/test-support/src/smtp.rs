//! A real SMTP server for tests: [`mailin`]'s protocol engine behind a TCP listener on
//! 127.0.0.1, keeping every message it accepts. It can be stopped (the port refuses
//! connections and open sessions are cut) and started again on the same port, to test
//! what a sender does while its mail server is down.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use mailin::{Action, Handler, Response, SessionBuilder};

/// A message the server accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent: headers, blank line, body.
    pub data: String,
}

impl ReceivedMail {
    /// The value of header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = value.as_mut() {
                    v.push_str(line.trim_start());
                }
                continue;
            }
            if value.is_some() {
                break;
            }
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_owned());
            }
        }
        value
    }
}

#[derive(Default)]
struct Shared {
    mail: Mutex<Vec<ReceivedMail>>,
    sessions: Mutex<Vec<TcpStream>>,
}

/// The SMTP server; stops when dropped.
pub struct TestSmtp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Arc<AtomicBool>,
}

impl TestSmtp {
    /// Starts on a free port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an SMTP port");
        let addr = listener.local_addr().expect("a local address");
        let mut server = Self {
            addr,
            shared: Arc::default(),
            running: Arc::new(AtomicBool::new(false)),
        };
        server.serve(listener);
        server
    }

    /// `smtp://127.0.0.1:<port>`, the sender's `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.shared.mail.lock().expect("not poisoned").clone()
    }

    /// Stops accepting and cuts open sessions: the port refuses connections.
    pub fn stop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        for session in self.shared.sessions.lock().expect("not poisoned").drain(..) {
            let _ = session.shutdown(std::net::Shutdown::Both);
        }
        // The listener is closed once the accept loop has returned.
        for _ in 0..100 {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(50)).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        panic!("the SMTP server did not stop");
    }

    /// Starts again on the same port, keeping what was received.
    pub fn start_again(&mut self) {
        let listener = TcpListener::bind(self.addr).expect("rebind the SMTP port");
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let running = Arc::new(AtomicBool::new(true));
        self.running = running.clone();
        let shared = self.shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if !running.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(copy) = stream.try_clone() {
                    shared.sessions.lock().expect("not poisoned").push(copy);
                }
                let shared = shared.clone();
                thread::spawn(move || session(stream, shared));
            }
        });
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        if self.running.load(Ordering::SeqCst) {
            self.running.store(false, Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        }
    }
}

/// Collects one message at a time into the server's store.
struct Collector {
    shared: Arc<Shared>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collector {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = ReceivedMail {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
        };
        self.shared.mail.lock().expect("not poisoned").push(mail);
        mailin::response::OK
    }
}

fn session(stream: TcpStream, shared: Arc<Shared>) {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let collector = Collector {
        shared,
        from: String::new(),
        to: Vec::new(),
        data: Vec::new(),
    };
    let mut session = SessionBuilder::new("switchyard-test-smtp").build(peer, collector);
    if session.greeting().write_to(&mut writer).is_err() {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = session.process(&line);
        if response.action == Action::NoReply {
            continue;
        }
        if response.write_to(&mut writer).is_err() || writer.flush().is_err() {
            return;
        }
        if response.action == Action::Close {
            return;
        }
    }
}
