//! Free loopback ports for servers that bind their own.

use std::net::TcpListener;

use crate::TestkitError;

/// A loopback port that was free a moment ago (bound, read, released).
/// Another process can take it before the server binds it: starters retry
/// with new ports when a server says it cannot listen.
pub fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(TestkitError::io("cannot bind a free port"))?;
    Ok(listener.local_addr().map_err(TestkitError::io("cannot read a bound port"))?.port())
}
