//! The admin portal: the gRPC face of the catalog.

pub mod admin;
pub mod codec;
pub mod server;
pub mod status;

pub use crate::instance::PortalConfig;
pub use server::serve;
