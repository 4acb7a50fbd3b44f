//! The on-disk framing of one log entry, and segment file names.
//!
//! A record is `[u32 LE payload length][u32 LE crc32 of payload][payload]`,
//! the payload being `postcard` of the `Entry`. The length comes first so a
//! reader can tell a record cut short by a crash (length past the end of the
//! file) from one whose bytes changed (checksum mismatch). Each segment file
//! starts with [`SEGMENT_MAGIC`] so a stray file is never read as a log.

use std::io;
use std::path::{Path, PathBuf};

use crate::raft::types::Entry;

/// The first bytes of every segment file; the last two digits are the
/// format of the entries. Format 03: an entry carries a batch of client
/// writes (`raft::types::Proposal`), each with its `max_versions`.
pub(super) const SEGMENT_MAGIC: &[u8; 8] = b"RKVLOG03";
/// Earlier formats, recognised to refuse them by name: 01 held one write per
/// entry and 02 writes without `max_versions`, which format 03's decoder
/// would misread rather than reject.
pub(super) const OLD_SEGMENT_MAGICS: [&[u8; 8]; 2] = [b"RKVLOG01", b"RKVLOG02"];
/// Length of the segment header ([`SEGMENT_MAGIC`]).
pub(super) const SEGMENT_HEADER_LEN: u64 = SEGMENT_MAGIC.len() as u64;
/// Length of a record header: payload length and checksum.
pub(super) const RECORD_HEADER_LEN: u64 = 8;
/// No entry is this large; a bigger length field is damage, not data.
pub(super) const MAX_PAYLOAD: u32 = 1 << 30;

const SEGMENT_PREFIX: &str = "log.";
const INDEX_DIGITS: usize = 20;

/// Encodes `entry` as a complete record (header and payload).
pub(super) fn encode(entry: &Entry) -> Result<Vec<u8>, postcard::Error> {
    let payload = postcard::to_allocvec(entry)?;
    let mut rec = Vec::with_capacity(RECORD_HEADER_LEN as usize + payload.len());
    rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    rec.extend_from_slice(&payload);
    Ok(rec)
}

/// A record header as read from disk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub len: u32,
    pub crc: u32,
}

impl Header {
    /// Parses the 8 header bytes at the start of `buf` (which must hold them).
    pub fn parse(buf: &[u8]) -> Option<Header> {
        let len = u32::from_le_bytes(buf.get(0..4)?.try_into().ok()?);
        let crc = u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?);
        Some(Header { len, crc })
    }

    /// Whether the length field can describe a record at all.
    pub fn plausible(&self) -> bool {
        self.len > 0 && self.len <= MAX_PAYLOAD
    }
}

/// Why a record's bytes are not a valid entry.
#[derive(Debug)]
pub(super) enum RecordFault {
    Checksum,
    Decode(postcard::Error),
    Trailing(usize),
}

impl std::fmt::Display for RecordFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordFault::Checksum => f.write_str("checksum mismatch"),
            RecordFault::Decode(e) => write!(f, "entry does not decode: {e}"),
            RecordFault::Trailing(n) => write!(f, "entry has {n} bytes after its end"),
        }
    }
}

/// Checks `payload` against the header's checksum and decodes it.
pub(super) fn decode(header: Header, payload: &[u8]) -> Result<Entry, RecordFault> {
    if crc32fast::hash(payload) != header.crc {
        return Err(RecordFault::Checksum);
    }
    // Every byte must belong to the entry: a payload that decodes with bytes
    // left over was written in another format.
    match postcard::take_from_bytes(payload).map_err(RecordFault::Decode)? {
        (entry, []) => Ok(entry),
        (_, rest) => Err(RecordFault::Trailing(rest.len())),
    }
}

/// Decodes one complete record read back from a known location: the header
/// must announce exactly `payload_len` bytes.
pub(super) fn decode_record(buf: &[u8], payload_len: u32) -> io::Result<Entry> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let header = Header::parse(buf).ok_or_else(|| bad("short record".into()))?;
    if header.len != payload_len || buf.len() != RECORD_HEADER_LEN as usize + payload_len as usize {
        return Err(bad(format!("record length {} where {payload_len} was expected", header.len)));
    }
    decode(header, &buf[RECORD_HEADER_LEN as usize..]).map_err(|f| bad(f.to_string()))
}

/// The file name of the segment whose first entry is `first`.
pub(super) fn segment_name(first: u64) -> String {
    format!("{SEGMENT_PREFIX}{first:0width$}", width = INDEX_DIGITS)
}

/// The path of the segment whose first entry is `first`.
pub(super) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(segment_name(first))
}

/// The first index named by a segment file name, or `None` for any other file.
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?;
    if digits.len() != INDEX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(1), "log.00000000000000000001");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("log.1"), None);
        assert_eq!(parse_segment_name("log.0000000000000000000x"), None);
        assert_eq!(parse_segment_name("snap.00000000000000000001"), None);
    }
}
