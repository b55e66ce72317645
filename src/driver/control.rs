//! The control protocol between the running daemon and `synack status|stats|connect|trace`.
//!
//! Over a Unix stream socket (by default `/run/synack/<iface>.sock` for root; `socket_dir.rs`
//! says where for other users), newline-delimited JSON: the client sends one [`Request`] line;
//! the daemon answers with one or more [`Response`] lines and closes the stream when the
//! request is done (`connect` streams the received data until the connection ends, `trace
//! --follow` until the client goes away). Payload bytes travel as hex strings. Everything here is pure: encoding, decoding and the human-readable tables.

use crate::endpoint::{ClientEvents, ConnStatus};
use crate::services::PeerId;
use crate::tcp::InfoValue;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::net::SocketAddr;

/// The longest request line the daemon reads (a `connect` carries its data hex-encoded).
pub const MAX_REQUEST_LINE: usize = 4 * 1024 * 1024;

/// Connections per page of `status` rows (about 300 KiB of JSON, 600 KiB with `--info`).
pub const STATUS_PAGE: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// One row per connection and listener, in pages ([`Response::Status`], then
    /// [`Response::StatusEnd`]); with `info`, each connection's `ss -ti` fields too.
    Status {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        info: bool,
    },
    /// The counters.
    Stats,
    /// Open a connection to `addr`, send `data`, half-close, stream back what arrives.
    Connect {
        addr: SocketAddr,
        #[serde(with = "hex_bytes")]
        data: Vec<u8>,
        /// TCP Fast Open (RFC 7413): ask for a cookie, or with one send data on the SYN.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fastopen: bool,
    },
    /// The ladder of every open connection; with `follow`, each connection's ladder again
    /// when it closes, until the client goes away. With `svg`, each ladder comes with its
    /// SVG picture too.
    Trace {
        follow: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        svg: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// A page of `status` rows: the listeners, then up to [`STATUS_PAGE`] connections per
    /// page, sent as the client reads them (so a table of any size is listed with bounded
    /// memory in the daemon and no stall of the data path).
    Status {
        rows: Vec<StatusRow>,
    },
    /// The last page has been sent: `rows` rows in all.
    StatusEnd {
        rows: u64,
    },
    Stats {
        counters: Vec<(String, u64)>,
    },
    /// The active open began: our address and port, and how long an unanswered SYN is
    /// retransmitted before the open fails.
    Connecting {
        local: SocketAddr,
        #[serde(default)]
        gives_up_after_ms: u64,
    },
    /// The handshake completed.
    Connected,
    /// Bytes received on the connection.
    Data {
        #[serde(with = "hex_bytes")]
        data: Vec<u8>,
    },
    /// The connection is over: `closed`, `connection refused`, `connection reset by peer`,
    /// `connection timed out` or `connection aborted`.
    Closed {
        outcome: String,
    },
    /// A connection's sequence diagram; `finished` once it has closed.
    Ladder {
        local: SocketAddr,
        peer: SocketAddr,
        finished: bool,
        text: String,
        /// The diagram as a standalone SVG document, when the request asked for it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        svg: Option<String>,
    },
    Error {
        message: String,
    },
}

/// One row of `synack status` (times in microseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRow {
    pub state: String,
    pub recv_q: usize,
    pub send_q: usize,
    pub local: SocketAddr,
    /// `None` for a listener.
    pub peer: Option<SocketAddr>,
    pub app: String,
    pub rtt_us: Option<u64>,
    pub rto_us: Option<u64>,
    pub cwnd: Option<u32>,
    pub retransmissions: u64,
    pub age_us: Option<u64>,
    /// `exec:` connections: the program's PID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `forward:` connections: the local address of the socket to the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_local: Option<SocketAddr>,
    /// `status --info`: the connection's `ss -ti` fields, by name (absent for listeners, and
    /// left out of `status --json` without `--info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Map<String, serde_json::Value>>,
    /// Bytes of window we offer now (RCV.WND).
    #[serde(default)]
    pub rcv_wnd: u32,
    /// The receive buffer autotuning chose (the most window we may offer).
    #[serde(default)]
    pub rcv_space: usize,
    /// The peer's window (SND.WND), in bytes.
    #[serde(default)]
    pub snd_wnd: u32,
    /// The send buffer limit.
    #[serde(default)]
    pub snd_buf: usize,
    /// Bytes this connection and its service hold (charged to --max-buffer-memory).
    #[serde(default)]
    pub mem: usize,
    /// `/connections.json` only: a recently closed connection (no longer in the table).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
}

impl From<&ConnStatus> for StatusRow {
    fn from(s: &ConnStatus) -> Self {
        let us = |d: crate::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        StatusRow {
            state: s.state.name().to_string(),
            recv_q: s.recv_q,
            send_q: s.send_q,
            local: s.local,
            peer: s.peer,
            app: s.app.to_string(),
            rtt_us: s.rtt.map(us),
            rto_us: s.rto.map(us),
            cwnd: s.cwnd,
            retransmissions: s.retransmissions,
            age_us: s.age.map(us),
            pid: match s.relay_peer {
                Some(PeerId::Pid(pid)) => Some(pid),
                _ => None,
            },
            upstream_local: match s.relay_peer {
                Some(PeerId::Upstream(addr)) => Some(addr),
                _ => None,
            },
            info: s.info.as_ref().map(|i| {
                i.entries()
                    .into_iter()
                    .map(|(name, v)| {
                        let v = match v {
                            Some(InfoValue::Number(n)) => serde_json::Value::from(n),
                            Some(InfoValue::Text(t)) => serde_json::Value::from(t),
                            None => serde_json::Value::Null,
                        };
                        (name.to_string(), v)
                    })
                    .collect()
            }),
            rcv_wnd: s.rcv_wnd,
            rcv_space: s.rcv_space,
            snd_wnd: s.snd_wnd,
            snd_buf: s.snd_buf,
            mem: s.mem,
            closed: false,
        }
    }
}

/// `GET /connections.json` (through `Endpoint::set_status_json`): the rows of `synack status
/// --json`, then the recently closed connections `/connections` lists, each with the state
/// it ended in and `"closed": true`, as a pretty-printed JSON array.
pub fn status_json(rows: &[ConnStatus], closed: &[ConnStatus]) -> String {
    // As `synack status --json` prints them: without `--info`'s details.
    let row = |r: &ConnStatus, closed: bool| StatusRow {
        info: None,
        closed,
        ..StatusRow::from(r)
    };
    let rows: Vec<StatusRow> = rows
        .iter()
        .map(|r| row(r, false))
        .chain(closed.iter().map(|r| row(r, true)))
        .collect();
    rows_json(&rows)
}

/// Status rows as `synack status --json` prints them.
pub fn rows_json(rows: &[StatusRow]) -> String {
    let mut s = serde_json::to_string_pretty(rows).unwrap_or_else(|e| {
        // Serializing plain rows cannot fail; should it, say so in JSON.
        format!("{{\"error\": {:?}}}", e.to_string())
    });
    s.push('\n');
    s
}

/// What to tell a `connect` client after [`crate::endpoint::Endpoint::poll_client`].
pub fn client_responses(events: &ClientEvents, announced_connected: &mut bool) -> Vec<Response> {
    let mut v = Vec::new();
    if events.established && !*announced_connected {
        *announced_connected = true;
        v.push(Response::Connected);
    }
    if !events.data.is_empty() {
        v.push(Response::Data {
            data: events.data.clone(),
        });
    }
    if let Some(outcome) = events.outcome {
        v.push(Response::Closed {
            outcome: outcome.name().to_string(),
        });
    }
    v
}

/// One line of JSON, newline-terminated.
pub fn encode<T: Serialize>(msg: &T) -> String {
    let mut s = serde_json::to_string(msg).unwrap_or_else(|e| {
        // Our own types always serialize; keep the stream well-formed regardless.
        format!("{{\"error\":{{\"message\":\"encoding failed: {e}\"}}}}")
    });
    s.push('\n');
    s
}

pub fn decode_request(line: &str) -> Result<Request, String> {
    serde_json::from_str(line.trim_end()).map_err(|e| format!("bad request: {e}"))
}

pub fn decode_response(line: &str) -> Result<Response, String> {
    serde_json::from_str(line.trim_end()).map_err(|e| format!("bad response from synack: {e}"))
}

/// `synack status --info`: the table, each connection followed by its `ss -ti` fields on an
/// indented line (`name:value`, unknown ones left out).
pub fn format_status_info(rows: &[StatusRow]) -> String {
    StatusTable::new(rows).format_info(rows)
}

/// `synack status` as a table, like `ss -tan` with a few more columns.
pub fn format_status(rows: &[StatusRow]) -> String {
    StatusTable::new(rows).format(rows)
}

/// One status row as compact JSON: an element of `synack status --json`'s array.
pub fn row_json(row: &StatusRow) -> String {
    serde_json::to_string(row).unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
}

/// The `synack status` table, printed a page at a time: the column widths come from the
/// first page (and the header), and the header is printed before the first row.
pub struct StatusTable {
    widths: [usize; COLUMNS],
    header_done: bool,
}

const COLUMNS: usize = 11;

const HEADER: [&str; COLUMNS] = [
    "State",
    "Recv-Q",
    "Send-Q",
    "Local Address:Port",
    "Peer Address:Port",
    "RTT",
    "RTO",
    "cwnd",
    "Retrans",
    "Age",
    "App",
];

impl StatusTable {
    /// Columns wide enough for the header and `first` rows.
    pub fn new(first: &[StatusRow]) -> StatusTable {
        let mut widths = HEADER.map(|h| h.chars().count());
        for row in first {
            for (w, cell) in widths.iter_mut().zip(cells(row)) {
                *w = (*w).max(cell.chars().count());
            }
        }
        StatusTable {
            widths,
            header_done: false,
        }
    }

    /// The lines of `rows` (after the header, the first time).
    pub fn format(&mut self, rows: &[StatusRow]) -> String {
        let mut out = self.header();
        for row in rows {
            self.line(&mut out, &cells(row));
        }
        out
    }

    /// As [`StatusTable::format`], each connection followed by its `ss -ti` fields.
    pub fn format_info(&mut self, rows: &[StatusRow]) -> String {
        let mut out = self.header();
        for row in rows {
            self.line(&mut out, &cells(row));
            if let Some(info) = &row.info {
                // In `ss -ti`'s order (the JSON object's is alphabetical).
                let order = crate::tcp::TcpInfo::default().entries();
                let fields: Vec<String> = order
                    .iter()
                    .filter_map(|(k, _)| Some((*k, info.get(*k).filter(|v| !v.is_null())?)))
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) if s.contains(' ') => format!("{k}:\"{s}\""),
                        serde_json::Value::String(s) => format!("{k}:{s}"),
                        v => format!("{k}:{v}"),
                    })
                    .collect();
                let _ = writeln!(out, "\t {}", fields.join(" "));
            }
        }
        out
    }

    fn header(&mut self) -> String {
        let mut out = String::new();
        if !std::mem::replace(&mut self.header_done, true) {
            self.line(&mut out, &HEADER.map(String::from));
        }
        out
    }

    fn line(&self, out: &mut String, row: &[String; COLUMNS]) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(self.widths).enumerate() {
            // Numbers right-aligned (as ss does for the queues), text left-aligned.
            let numeric = matches!(i, 1 | 2 | 5..=9);
            if numeric {
                let _ = write!(line, "{cell:>w$}  ");
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// A row's cells, in [`HEADER`]'s order.
fn cells(r: &StatusRow) -> [String; COLUMNS] {
    let ms =
        |us: Option<u64>| us.map_or(String::new(), |us| format!("{:.1}ms", us as f64 / 1000.0));
    let age = |us: Option<u64>| us.map_or(String::new(), format_age);
    [
        r.state.clone(),
        r.recv_q.to_string(),
        r.send_q.to_string(),
        r.local.to_string(),
        r.peer.map_or("*:*".into(), |p| p.to_string()),
        ms(r.rtt_us),
        ms(r.rto_us),
        r.cwnd.map_or(String::new(), |c| c.to_string()),
        if r.peer.is_some() {
            r.retransmissions.to_string()
        } else {
            String::new()
        },
        age(r.age_us),
        r.app.clone(),
    ]
}

fn format_age(us: u64) -> String {
    let s = us / 1_000_000;
    if s < 60 {
        format!("{}.{}s", s, (us % 1_000_000) / 100_000)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    }
}

/// `synack stats` as `nstat` prints counters, one per line: synack's name, the name `nstat`
/// gives Linux's counter of the same meaning (blank where Linux has none), and the value.
pub fn format_stats(counters: &[(String, u64)]) -> String {
    let linux = |name: &str| crate::endpoint::Counters::linux_name(name).unwrap_or("");
    let w = counters.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let lw = counters
        .iter()
        .map(|(n, _)| linux(n).len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (name, value) in counters {
        let linux_name = linux(name);
        let _ = writeln!(out, "{name:<w$}  {linux_name:<lw$}  {value:>12}");
    }
    out
}

/// Bytes as lowercase hex, for JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let digit = |d: u8| char::from_digit(u32::from(d), 16).unwrap_or('0');
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push(digit(b >> 4));
            out.push(digit(b & 15));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        s.as_bytes()
            .chunks(2)
            .map(|pair| match pair {
                [hi, lo] => match (digit(*hi), digit(*lo)) {
                    (Some(h), Some(l)) => Ok(h << 4 | l),
                    _ => Err(serde::de::Error::custom("not a hex digit")),
                },
                _ => Err(serde::de::Error::custom("odd number of hex digits")),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::ClientOutcome;
    use crate::tcp::State;
    use crate::time::Duration;

    #[test]
    fn requests_round_trip_as_one_json_line() {
        let requests = [
            Request::Status { info: false },
            Request::Status { info: true },
            Request::Stats,
            Request::Connect {
                addr: "198.18.0.1:8080".parse().unwrap(),
                data: b"hi\n\x00\xff".to_vec(),
                fastopen: false,
            },
            Request::Connect {
                addr: "198.18.0.1:8080".parse().unwrap(),
                data: b"GET /".to_vec(),
                fastopen: true,
            },
            Request::Trace {
                follow: true,
                svg: false,
            },
            Request::Trace {
                follow: false,
                svg: true,
            },
        ];
        for r in requests {
            let line = encode(&r);
            assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
            assert_eq!(decode_request(&line), Ok(r));
        }
        assert_eq!(
            encode(&Request::Connect {
                addr: "[2001:2::1]:80".parse().unwrap(),
                data: b"A\n".to_vec(),
                fastopen: false,
            }),
            "{\"cmd\":\"connect\",\"addr\":\"[2001:2::1]:80\",\"data\":\"410a\"}\n"
        );
        assert_eq!(
            encode(&Request::Status { info: false }),
            "{\"cmd\":\"status\"}\n"
        );
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        for line in [
            "",
            "status",
            "{\"cmd\":\"reboot\"}",
            "{\"cmd\":\"connect\",\"addr\":\"x\",\"data\":\"\"}",
            "{\"cmd\":\"connect\",\"addr\":\"198.18.0.1:1\",\"data\":\"abc\"}",
            "{\"cmd\":\"connect\",\"addr\":\"198.18.0.1:1\",\"data\":\"zz\"}",
        ] {
            assert!(decode_request(line).is_err(), "{line}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let responses = [
            Response::Connecting {
                local: "198.18.0.2:50000".parse().unwrap(),
                gives_up_after_ms: 123_000,
            },
            Response::Connected,
            Response::Data {
                data: vec![0, 1, 2, 255],
            },
            Response::Closed {
                outcome: "connection refused".into(),
            },
            Response::Stats {
                counters: vec![("segments_in".into(), 3)],
            },
            Response::Ladder {
                local: "198.18.0.2:80".parse().unwrap(),
                peer: "198.18.0.1:4000".parse().unwrap(),
                finished: false,
                text: "a ──▶ b\n".into(),
                svg: None,
            },
            Response::Ladder {
                local: "[2001:2::2]:80".parse().unwrap(),
                peer: "[2001:2::1]:4000".parse().unwrap(),
                finished: true,
                text: "a ──▶ b\n".into(),
                svg: Some("<svg/>".into()),
            },
            Response::Error {
                message: "no".into(),
            },
        ];
        for r in responses {
            assert_eq!(decode_response(&encode(&r)), Ok(r));
        }
    }

    #[test]
    fn client_events_become_connected_data_and_closed_once() {
        let mut announced = false;
        let ev = ClientEvents {
            local: "198.18.0.2:50000".parse().unwrap(),
            state: State::Established,
            established: true,
            data: b"x".to_vec(),
            outcome: None,
        };
        assert_eq!(
            client_responses(&ev, &mut announced),
            vec![
                Response::Connected,
                Response::Data {
                    data: b"x".to_vec()
                }
            ]
        );
        let ev = ClientEvents {
            data: vec![],
            outcome: Some(ClientOutcome::Refused),
            ..ev
        };
        assert_eq!(
            client_responses(&ev, &mut announced),
            vec![Response::Closed {
                outcome: "connection refused".into()
            }]
        );
    }

    #[test]
    fn status_table_looks_like_ss() {
        let listen = ConnStatus::bare(
            State::Listen,
            "198.18.0.2:80".parse().unwrap(),
            None,
            "http",
        );
        let conn = ConnStatus {
            state: State::TimeWait,
            recv_q: 0,
            send_q: 12,
            peer: Some("198.18.0.1:51234".parse().unwrap()),
            rtt: Some(Duration::from_micros(250)),
            rto: Some(Duration::from_millis(200)),
            cwnd: Some(64240),
            retransmissions: 1,
            age: Some(Duration::from_millis(61_500)),
            ..listen.clone()
        };
        let rows: Vec<StatusRow> = [&listen, &conn].into_iter().map(StatusRow::from).collect();
        let expected = "\
State      Recv-Q  Send-Q  Local Address:Port  Peer Address:Port    RTT      RTO   cwnd  Retrans    Age  App
LISTEN          0       0  198.18.0.2:80       *:*                                                       http
TIME-WAIT       0      12  198.18.0.2:80       198.18.0.1:51234   0.2ms  200.0ms  64240        1  1m01s  http
";
        let got = format_status(&rows);
        assert_eq!(got, expected, "\n{got}");
        let json = serde_json::to_string(&rows[1]).unwrap();
        assert!(json.contains("\"state\":\"TIME-WAIT\""), "{json}");
        assert!(json.contains("\"age_us\":61500000"), "{json}");
        assert!(!json.contains("info"), "{json}");

        // --info: a line of ss -ti fields under each connection, and an object in the JSON.
        let info = crate::tcp::TcpInfo {
            cc: "cubic".into(),
            wscale: Some((3, 10)),
            rtt_us: Some(250),
            mss: 1448,
            cwnd: 14480,
            limited: "receive window",
            ..Default::default()
        };
        let with_info = ConnStatus {
            info: Some(info),
            ..conn.clone()
        };
        let rows: Vec<StatusRow> = [&listen, &with_info]
            .into_iter()
            .map(StatusRow::from)
            .collect();
        let got = format_status_info(&rows);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 4, "{got}");
        assert!(
            lines[3].starts_with("\t cc:cubic wscale:3,10 rto_us:0 rtt_us:250 rttvar_us:0 mss:1448 cwnd:14480 bytes_sent:0"),
            "{got}"
        );
        assert!(lines[3].ends_with("limited:\"receive window\""), "{got}");
        assert!(
            !lines[3].contains("ssthresh"),
            "unknown values are left out: {got}"
        );
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["info"]["cwnd"], 14480);
        assert_eq!(json["info"]["ssthresh"], serde_json::Value::Null);
        // /connections.json is status --json: without the details.
        assert!(!status_json(std::slice::from_ref(&with_info), &[]).contains("\"info\""));
        // Recently closed connections (for /connections.json) are marked; open ones are not.
        let listed: serde_json::Value = serde_json::from_str(&status_json(
            std::slice::from_ref(&with_info),
            std::slice::from_ref(&with_info),
        ))
        .unwrap();
        let closed: Vec<Option<&serde_json::Value>> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.get("closed"))
            .collect();
        assert_eq!(closed, [None, Some(&serde_json::Value::Bool(true))]);
        for field in ["rcv_wnd", "rcv_space", "snd_wnd", "snd_buf", "mem"] {
            assert!(json.get(field).is_some(), "{field} in {json}");
        }
    }

    #[test]
    fn a_paged_table_prints_its_header_once_with_the_first_page_widths() {
        let row = |port: u16| StatusRow {
            state: "ESTABLISHED".into(),
            recv_q: 0,
            send_q: 0,
            local: "198.18.0.2:7".parse().unwrap(),
            peer: Some(SocketAddr::new("198.18.0.1".parse().unwrap(), port)),
            app: "echo".into(),
            rtt_us: None,
            rto_us: None,
            cwnd: None,
            retransmissions: 0,
            age_us: None,
            pid: None,
            upstream_local: None,
            info: None,
            rcv_wnd: 0,
            rcv_space: 0,
            snd_wnd: 0,
            snd_buf: 0,
            mem: 0,
            closed: false,
        };
        let mut table = StatusTable::new(&[row(1000)]);
        let first = table.format(&[row(1000)]);
        let second = table.format(&[row(1001)]);
        assert!(first.starts_with("State"), "{first}");
        assert_eq!(first.lines().count(), 2);
        assert_eq!(second.lines().count(), 1, "no second header: {second}");
        assert_eq!(first.lines().nth(1).unwrap().len(), second.trim_end().len());
        assert_eq!(format_status(&[row(1000)]), first);
        // Each row of `status --json` is one line of JSON.
        assert!(!row_json(&row(1000)).contains('\n'));
    }

    #[test]
    fn stats_align_like_nstat() {
        let got = format_stats(&[
            ("segments_in".into(), 12),
            ("rst_in".into(), 3),
            ("listen_drops".into(), 1),
        ]);
        assert_eq!(
            got,
            "segments_in   TcpInSegs                    12\n\
             rst_in                                      3\n\
             listen_drops  TcpExtListenDrops             1\n"
        );
    }
}
