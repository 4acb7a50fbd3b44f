//! The file system as the log writer and the snapshot writer see it: every
//! write, cut, sync, rename and delete they do goes through `Disk`, so that
//! a test can stand between them and the disk. `OsDisk` is the real one;
//! the power-cut tests (`raft/log_store/power_cut_tests.rs`,
//! `sm/snapshot.rs`) use `recorder`, which records every operation and
//! rebuilds what a disk would hold after a power cut at any point: only
//! what was synced.

#[cfg(test)]
pub(crate) mod recorder;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Where the log writer's files live.
pub(crate) trait Disk: Send + Sync {
    /// Opens `path` for writing; `create` makes it new and empty.
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn DiskFile>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Deletes `path`; a missing file is not an error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes creations, renames and deletions in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for writing.
pub(crate) trait DiskFile: Send + Sync {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the content (and the size) reaches the disk.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: content and metadata.
    fn sync_all(&self) -> io::Result<()>;
}

/// The operating system's file system.
pub(crate) struct OsDisk;

impl Disk for OsDisk {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn DiskFile>> {
        let mut opts = OpenOptions::new();
        opts.write(true);
        if create {
            opts.create(true).truncate(true);
        }
        let file = opts.open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Box::new(file))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io::Error::new(e.kind(), format!("cannot delete {}: {e}", path.display())))
            }
            _ => Ok(()),
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl DiskFile for File {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }
}

/// A `DiskFile` written front to back, as `io::Write` (the snapshot writer
/// streams through a `BufWriter` of it).
pub(crate) struct Appender {
    file: Box<dyn DiskFile>,
    offset: u64,
}

impl Appender {
    pub(crate) fn new(file: Box<dyn DiskFile>) -> Appender {
        Appender { file, offset: 0 }
    }

    /// The file, once everything is written (to sync it).
    pub(crate) fn into_file(self) -> Box<dyn DiskFile> {
        self.file
    }
}

impl io::Write for Appender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_at(buf, self.offset)?;
        self.offset += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
