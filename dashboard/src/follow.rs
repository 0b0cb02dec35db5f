//! The decision feed from a file (`lagic dashboard --decisions FILE`): the
//! JSON lines that `lagic watch --tee FILE` appends (docs/watch.md, "JSON
//! lines"), followed as they grow. With a tee, one `lagic watch` is the
//! only reader of the diode's ring buffer and the dashboard still sees
//! every drop it recorded.
//!
//! Invariants:
//! - Only complete lines (ended by `\n`) are parsed; a partial last line is
//!   kept until the rest of it arrives.
//! - When the file shrinks below what was read (truncated by the tee's size
//!   bound) or is replaced by another file (a new inode), reading starts
//!   over at byte 0 and a kept partial line is discarded.
//! - A missing file is no error: the tee creates it with its first line.
//! - A line that is not a decision of the watched interface and direction
//!   is skipped, never guessed at.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use emit_bpf::decision::Reason;

use crate::views::{DecisionView, FlowView};

/// The longest line kept; a longer one is discarded (no tee writes one).
const MAX_LINE: usize = 64 * 1024;

/// Follows one file of lines.
#[derive(Debug)]
pub(crate) struct LineFollower {
    path: PathBuf,
    /// `(device, inode)` of the file read so far.
    identity: Option<(u64, u64)>,
    /// Bytes of the file consumed (complete lines and `partial`).
    offset: u64,
    /// The start of a line whose `\n` has not arrived yet.
    partial: Vec<u8>,
    /// Whether the partial line overflowed [`MAX_LINE`] and is skipped to its end.
    skipping: bool,
}

impl LineFollower {
    /// A follower of `path` that reads only what is appended from now on.
    pub(crate) fn from_end(path: &Path) -> LineFollower {
        let mut follower = LineFollower::from_start(path);
        if let Ok(meta) = std::fs::metadata(path) {
            follower.identity = Some((meta.dev(), meta.ino()));
            follower.offset = meta.len();
        }
        follower
    }

    /// A follower of `path` that reads it from its first byte.
    pub(crate) fn from_start(path: &Path) -> LineFollower {
        LineFollower {
            path: path.to_owned(),
            identity: None,
            offset: 0,
            partial: Vec::new(),
            skipping: false,
        }
    }

    /// The file followed.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines appended since the last call (without their `\n`).
    pub(crate) fn poll(&mut self) -> std::io::Result<Vec<String>> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let identity = (meta.dev(), meta.ino());
        if self.identity != Some(identity) || meta.len() < self.offset {
            self.identity = Some(identity);
            self.offset = 0;
            self.partial.clear();
            self.skipping = false;
        }
        if meta.len() == self.offset {
            return Ok(Vec::new());
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut fresh = Vec::new();
        file.take(meta.len() - self.offset)
            .read_to_end(&mut fresh)?;
        self.offset += fresh.len() as u64;
        let mut lines = Vec::new();
        for &b in &fresh {
            if b == b'\n' {
                if !self.skipping {
                    lines.push(String::from_utf8_lossy(&self.partial).into_owned());
                }
                self.partial.clear();
                self.skipping = false;
            } else if !self.skipping {
                self.partial.push(b);
                if self.partial.len() > MAX_LINE {
                    self.partial.clear();
                    self.skipping = true;
                }
            }
        }
        Ok(lines)
    }
}

/// The drop of `line` (a `lagic watch --json` line) when it is one on
/// `iface` in `direction`.
pub(crate) fn decision_of(line: &str, iface: &str, direction: &str) -> Option<DecisionView> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["iface"].as_str()? != iface
        || v["direction"].as_str()? != direction
        || v["verdict"].as_str()? != "drop"
    {
        return None;
    }
    let reason = v["reason"].as_str()?;
    let reason = Reason::ALL.iter().find(|r| r.as_str() == reason)?.as_str();
    let u32_of = |v: &serde_json::Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    let u16_of = |v: &serde_json::Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
    let flow = match &v["flow"] {
        serde_json::Value::Null => None,
        f => Some(FlowView {
            src_ip: f["src_ip"].as_str()?.to_owned(),
            src_port: u16_of(&f["src_port"]),
            dest_ip: f["dest_ip"].as_str()?.to_owned(),
            dest_port: u16_of(&f["dest_port"]),
            proto: u8::try_from(f["proto"].as_u64()?).ok()?,
        }),
    };
    let decided_by = match &v["decided_by"] {
        serde_json::Value::Null => None,
        d => {
            let construct = d["construct"].as_str()?;
            Some(match d["path"].as_str() {
                Some(path) => format!("{path} ({construct})"),
                None => construct.to_owned(),
            })
        }
    };
    Some(DecisionView {
        time_ms: unix_millis(v["timestamp"].as_str()?)?,
        diode: v["diode"].as_str()?.to_owned(),
        iface: iface.to_owned(),
        reason,
        flow,
        decided_by,
        offset: u32_of(&v["offset"]),
        offset_span: u32_of(&v["offset_span"]),
        excerpt_start: u32_of(&v["excerpt_start"])?,
        // Already escaped by `lagic watch`, with the same escape as the views'.
        excerpt: v["excerpt"].as_str()?.to_owned(),
        payload_len: u32_of(&v["payload_len"])?,
        frame_len: u32_of(&v["frame_len"])?,
    })
}

/// Unix milliseconds of `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC).
fn unix_millis(t: &str) -> Option<u64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: u64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    // Days since 1970-01-01 of a civil date (proleptic Gregorian): count
    // from an era that starts on March 1st, 0000, so leap days come last.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(((days * 86_400 + h * 3600 + m * 60 + s) * 1000) + millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lagic-follow-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    fn append(path: &Path, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    #[test]
    fn a_missing_file_gives_nothing_until_it_appears() {
        let path = temp("missing");
        let mut f = LineFollower::from_end(&path);
        assert!(f.poll().unwrap().is_empty());
        append(&path, b"one\n");
        assert_eq!(f.poll().unwrap(), ["one"]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn from_end_skips_what_was_there() {
        let path = temp("end");
        append(&path, b"old\n");
        let mut f = LineFollower::from_end(&path);
        assert!(f.poll().unwrap().is_empty());
        append(&path, b"new\n");
        assert_eq!(f.poll().unwrap(), ["new"]);
        let mut g = LineFollower::from_start(&path);
        assert_eq!(g.poll().unwrap(), ["old", "new"]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_partial_line_waits_for_its_end() {
        let path = temp("partial");
        let mut f = LineFollower::from_start(&path);
        append(&path, b"first\n{\"half");
        assert_eq!(f.poll().unwrap(), ["first"]);
        assert!(f.poll().unwrap().is_empty());
        append(&path, b"\": 1}\nthird");
        assert_eq!(f.poll().unwrap(), ["{\"half\": 1}"]);
        append(&path, b"\n");
        assert_eq!(f.poll().unwrap(), ["third"]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn truncation_starts_over_at_zero() {
        let path = temp("truncate");
        let mut f = LineFollower::from_start(&path);
        append(&path, b"aaaaaaaaaa\nbbbbbbbbbb\npartial");
        assert_eq!(f.poll().unwrap(), ["aaaaaaaaaa", "bbbbbbbbbb"]);
        // Truncated (as the tee does at its size bound), then a new line.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, b"c\n");
        // The kept "partial" belongs to the old content: never joined to "c".
        assert_eq!(f.poll().unwrap(), ["c"]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_replaced_file_is_read_from_its_start() {
        let path = temp("replace");
        let mut f = LineFollower::from_start(&path);
        append(&path, b"one\n");
        assert_eq!(f.poll().unwrap(), ["one"]);
        let next = temp("replace-next");
        append(&next, b"two, longer than one\n");
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(f.poll().unwrap(), ["two, longer than one"]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn an_overlong_line_is_skipped_whole() {
        let path = temp("long");
        let mut f = LineFollower::from_start(&path);
        append(&path, &vec![b'x'; MAX_LINE + 10]);
        assert!(f.poll().unwrap().is_empty());
        append(&path, b"xx\nok\n");
        assert_eq!(f.poll().unwrap(), ["ok"]);
        std::fs::remove_file(&path).unwrap();
    }

    /// The golden line of `lagic watch --json` (compiler/src/commands/watch.rs).
    const LINE: &str = r#"{"decided_by":{"atom":0,"construct":"scan 0 (dfa over payload[0..n])","path":"$.predicate.arg","scan":0},"diode":"hateless","direction":"ingress","excerpt":"I \"hate\"\\\\ you\\x0d\\x0a\\x00","excerpt_start":0,"flow":{"dest_ip":"10.77.0.1","dest_port":41000,"proto":6,"src_ip":"10.77.0.2","src_port":8080},"frame_len":84,"iface":"lagic-h0","offset":8,"offset_span":8,"payload_len":30,"reason":"predicate","timestamp":"2026-11-30T00:53:20.000250Z","verdict":"drop"}"#;

    #[test]
    fn a_watch_line_becomes_the_view_of_its_drop() {
        let d = decision_of(LINE, "lagic-h0", "ingress").unwrap();
        assert_eq!(
            d,
            DecisionView {
                time_ms: 1_796_000_000_000,
                diode: "hateless".into(),
                iface: "lagic-h0".into(),
                reason: "predicate",
                flow: Some(FlowView {
                    src_ip: "10.77.0.2".into(),
                    src_port: Some(8080),
                    dest_ip: "10.77.0.1".into(),
                    dest_port: Some(41000),
                    proto: 6,
                }),
                decided_by: Some("$.predicate.arg (scan 0 (dfa over payload[0..n]))".into()),
                offset: Some(8),
                offset_span: Some(8),
                excerpt_start: 0,
                excerpt: "I \"hate\"\\\\ you\\x0d\\x0a\\x00".into(),
                payload_len: 30,
                frame_len: 84,
            }
        );
    }

    #[test]
    fn lines_of_other_places_and_non_decisions_are_skipped() {
        assert!(decision_of(LINE, "lagic-h1", "ingress").is_none());
        assert!(decision_of(LINE, "lagic-h0", "egress").is_none());
        assert!(decision_of("not json", "lagic-h0", "ingress").is_none());
        let unknown = LINE.replace("\"predicate\"", "\"no-such-reason\"");
        assert!(decision_of(&unknown, "lagic-h0", "ingress").is_none());
    }

    #[test]
    fn timestamps_parse_to_unix_millis() {
        assert_eq!(unix_millis("1970-01-01T00:00:00.000000Z"), Some(0));
        assert_eq!(unix_millis("2000-02-29T00:00:00.5Z"), Some(951_782_400_500));
        assert_eq!(unix_millis("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(
            unix_millis("2100-02-28T23:59:59.999999Z"),
            Some(4_107_542_399_999)
        );
        assert_eq!(unix_millis("2023-13-14T22:13:20Z"), None);
        assert_eq!(unix_millis("yesterday"), None);
    }
}
