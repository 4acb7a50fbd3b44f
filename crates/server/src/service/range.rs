//! Ranges over the ring: one position's part, a page at a time
//! (`RangePart`), and a whole range gathered from every position that may
//! own keys of it, merged in key order (what `Range`, `DelRange` and the
//! compatibility service's `GetRange`/`DelRange` stream).
//!
//! Under `hash` placement the keys of any range are spread over every
//! position, so every position is asked; under `direct` only the arc the
//! range covers (`Ring::positions_for_range`). The node the client called
//! keeps one page per position and streams the smallest key next: its
//! memory is bounded by positions × a page, whatever the range's size.
//! Each page is read at a read index of its group (linearizable per
//! page); the range as a whole is not one snapshot.

use std::collections::VecDeque;

use bytes::Bytes;
use ringkv_api::pb;
use tokio::sync::mpsc;
use tonic::{Request, Status};

use super::dispatch::{Answer, Dispatch};
use super::status::InputError;
use crate::sm::key as store_key;
use crate::sm::store::RangePage;

/// Keys per page, at most (a request may ask fewer).
pub const PAGE_KEYS: u32 = 256;
/// Data bytes per page: a page ends at the key that passes this.
const PAGE_BYTES: usize = 1 << 20;

/// Serves `RangePart` for this node's position.
pub async fn part_here(d: &Dispatch, req: Request<pb::RangePartRequest>) -> Answer<pb::RangePartReply> {
    let r = req.get_ref();
    let me = d.router.position();
    if r.position as usize != me {
        return Err(Status::failed_precondition(format!(
            "RangePart for ring position {} was sent to position {me}",
            r.position
        )));
    }
    let space = r.space();
    let bound = |b: &[u8]| store_bound(space, b);
    let (from, to) = (bound(&r.from)?, bound(&r.to)?);
    let after = r.after.as_deref().map(bound).transpose()?;
    let limit = if r.limit == 0 { PAGE_KEYS } else { r.limit.min(PAGE_KEYS) } as usize;
    let serializable = r.serializable;
    d.read(req, serializable, |r, store| {
        let page = RangePage {
            from: &from,
            to: &to,
            after: after.as_deref(),
            limit,
            max_bytes: PAGE_BYTES,
            at: r.at_timestamp,
        };
        let (pairs, more) = store.range(&page)?;
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| pb::KeyValuePair { key: Bytes::from(wire_key(&k)), value: Some(v.into()) })
            .collect();
        Ok(pb::RangePartReply { pairs, more })
    })
    .await
}

/// A bound of a range as a store key, its key space checked.
fn store_bound(space: pb::KeySpace, bound: &[u8]) -> Result<Vec<u8>, InputError> {
    match space {
        pb::KeySpace::Integer => {
            ringkv_api::key::validate_key(bound)?;
            Ok(store_key::int(bound))
        }
        pb::KeySpace::Text => match std::str::from_utf8(bound) {
            Ok(s) => Ok(store_key::text(s)),
            Err(_) => Err(InputError::NotText),
        },
    }
}

/// The key as its space's clients know it: an integer's wire bytes, a text
/// key's UTF-8 bytes.
fn wire_key(key: &[u8]) -> Vec<u8> {
    store_key::int_wire(key).or_else(|| store_key::text_str(key).map(str::as_bytes)).unwrap_or(key).to_vec()
}

/// What a gathered range is over.
#[derive(Debug, Clone)]
pub struct Span {
    pub space: pb::KeySpace,
    /// Bounds in the space's client form (wire bytes, UTF-8 bytes).
    pub from: Bytes,
    pub to: Bytes,
    /// Keys in all (0: every key of the range).
    pub limit: u64,
    pub at_timestamp: Option<i64>,
    pub serializable: bool,
}

/// One position's pages, as the merge reads them.
struct Cursor {
    position: usize,
    /// Fetched and not yet streamed: (store key, pair).
    buffer: VecDeque<(Vec<u8>, pb::KeyValuePair)>,
    /// The last key fetched (client form), to fetch after.
    after: Option<Bytes>,
    more: bool,
}

/// Streams the range's keys in key order, gathered from every position
/// that may own some. An error (a position that cannot answer) ends the
/// stream with it; the keys streamed before it stand.
pub fn gather(d: Dispatch, span: Span) -> Result<mpsc::Receiver<Result<pb::KeyValuePair, Status>>, Status> {
    store_bound(span.space, &span.from)?;
    store_bound(span.space, &span.to)?;
    let positions = match span.space {
        pb::KeySpace::Integer => d.router.positions_for_range(&span.from, &span.to),
        // Text keys are placed by their bytes' hash or value: anywhere.
        pb::KeySpace::Text => (0..d.router.positions()).collect(),
    };
    let (tx, rx) = mpsc::channel(PAGE_KEYS as usize);
    tokio::spawn(async move {
        if let Err(e) = merge(&d, &span, positions, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(rx)
}

async fn merge(
    d: &Dispatch,
    span: &Span,
    positions: Vec<usize>,
    tx: &mpsc::Sender<Result<pb::KeyValuePair, Status>>,
) -> Result<(), Status> {
    let mut cursors: Vec<Cursor> = positions
        .into_iter()
        .map(|position| Cursor { position, buffer: VecDeque::new(), after: None, more: true })
        .collect();
    let mut sent = 0u64;
    while span.limit == 0 || sent < span.limit {
        for c in cursors.iter_mut().filter(|c| c.buffer.is_empty() && c.more) {
            fetch(d, span, c).await?;
        }
        let next = cursors.iter_mut().filter(|c| !c.buffer.is_empty()).min_by(|a, b| a.buffer[0].0.cmp(&b.buffer[0].0));
        let Some(cursor) = next else { return Ok(()) };
        let Some((_, pair)) = cursor.buffer.pop_front() else { return Ok(()) };
        if tx.send(Ok(pair)).await.is_err() {
            return Ok(()); // The client went away.
        }
        sent += 1;
    }
    Ok(())
}

/// Fetches the cursor's next page from its position.
async fn fetch(d: &Dispatch, span: &Span, c: &mut Cursor) -> Result<(), Status> {
    let req = pb::RangePartRequest {
        position: c.position as u32,
        space: span.space as i32,
        from: span.from.clone(),
        to: span.to.clone(),
        after: c.after.clone(),
        limit: PAGE_KEYS,
        at_timestamp: span.at_timestamp,
        serializable: span.serializable,
    };
    let reply = if c.position == d.router.position() {
        part_here(d, Request::new(req)).await?
    } else {
        d.router.forward(&d.forwarder, c.position, Request::new(req)).await?
    }
    .into_inner();
    c.more = reply.more;
    for pair in reply.pairs {
        let key = store_bound(span.space, &pair.key)
            .map_err(|e| Status::internal(format!("position {} sent a bad key: {e}", c.position)))?;
        c.after = Some(pair.key.clone());
        c.buffer.push_back((key, pair));
    }
    if c.buffer.is_empty() && c.more {
        return Err(Status::internal(format!("position {} sent an empty page with more to come", c.position)));
    }
    Ok(())
}
