//! The log writer's file system: every write, cut, sync, rename and delete
//! the writer does goes through `Disk`, so that a test can stand between
//! the log and the disk. `OsDisk` is the real one; the power-cut tests
//! (`power_cut_tests.rs`) record every operation and rebuild what a disk
//! would hold after a power cut at any point: only what was synced.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Where the log writer's files live.
pub(super) trait Disk: Send + Sync {
    /// Opens `path` for writing; `create` makes it new and empty.
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn DiskFile>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Deletes `path`; a missing file is not an error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes creations, renames and deletions in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for writing.
pub(super) trait DiskFile: Send + Sync {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the content (and the size) reaches the disk.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: content and metadata.
    fn sync_all(&self) -> io::Result<()>;
}

/// The operating system's file system.
pub(super) struct OsDisk;

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
