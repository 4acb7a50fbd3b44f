//! Free loopback ports for servers that bind their own.

use std::net::TcpListener;

use crate::TestkitError;

/// Where `free_port` looks first: below Linux's default ephemeral range
/// (32768–60999), from which the kernel picks the local port of every
/// outgoing connection. A port chosen inside it can be taken by one of the
/// many connections a ring's replicas open to each other before its server
/// binds it (seen in CI: a 12-replica ring start).
const QUIET_PORTS: std::ops::Range<u16> = 10_000..32_768;

/// A loopback port that was free a moment ago (bound, read, released).
/// Another process can take it before the server binds it: starters retry
/// with new ports when a server says it cannot listen.
pub fn free_port() -> Result<u16, TestkitError> {
    free_port_below(QUIET_PORTS.end)
}

/// A free port in `QUIET_PORTS` below `end`, or the kernel's choice.
fn free_port_below(end: u16) -> Result<u16, TestkitError> {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..100 {
        let port = rng.random_range(QUIET_PORTS.start..end.clamp(QUIET_PORTS.start + 1, QUIET_PORTS.end));
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").map_err(TestkitError::io("cannot bind a free port"))?;
    Ok(listener.local_addr().map_err(TestkitError::io("cannot read a bound port"))?.port())
}

/// A first port for a launcher that counts up from one (`ringkv up`,
/// `shop up`): ports `base + offset + i` for every `i < count` and every
/// offset (0 included) were all free a moment ago, and all below the
/// ephemeral range when the span fits there (a block reaching into it lost
/// a port to an outgoing connection in CI). The same race as
/// [`free_port`]'s.
pub fn free_port_block(count: u16, offsets: &[u16]) -> Result<u16, TestkitError> {
    let offsets: Vec<u16> = std::iter::once(0).chain(offsets.iter().copied()).collect();
    let span = u32::from(offsets.iter().copied().max().unwrap_or(0)) + u32::from(count);
    for _ in 0..100 {
        let base = free_port_below(QUIET_PORTS.end.saturating_sub(u16::try_from(span).unwrap_or(u16::MAX)))?;
        if u32::from(base) + span > u32::from(u16::MAX) {
            continue;
        }
        // Held until every one is checked, so none is counted twice.
        let held: Result<Vec<TcpListener>, _> = offsets
            .iter()
            .flat_map(|o| (0..count).map(move |i| base + o + i))
            .map(|port| TcpListener::bind(("127.0.0.1", port)))
            .collect();
        if held.is_ok() {
            return Ok(base);
        }
    }
    Err(TestkitError::Spec(format!("found no {count} free consecutive ports (offsets {offsets:?}) in 100 tries")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block avoids ports that are taken and stays below the ephemeral
    /// range. (Binding its ports again afterwards would race every other
    /// process on the machine: what the function promises is "free a
    /// moment ago", so that is what is checked.)
    #[test]
    fn a_block_avoids_taken_ports_and_the_ephemeral_range() {
        // Every tenth port of a stretch taken, so that most blocks chosen
        // at random there would meet one.
        let taken: Vec<TcpListener> =
            (20_000..24_000).step_by(10).filter_map(|p| TcpListener::bind(("127.0.0.1", p)).ok()).collect();
        let held: Vec<u16> = taken.iter().map(|l| l.local_addr().unwrap().port()).collect();
        for _ in 0..200 {
            let base = free_port_block(3, &[1000]).unwrap();
            let block: Vec<u16> = [0, 1000].iter().flat_map(|o| (0..3).map(move |i| base + o + i)).collect();
            assert!(block.iter().all(|p| !held.contains(p)), "block at {base} meets a taken port");
            assert!(
                u32::from(base) + 1003 <= u32::from(QUIET_PORTS.end),
                "block at {base} reaches the ephemeral range"
            );
        }
    }
}
