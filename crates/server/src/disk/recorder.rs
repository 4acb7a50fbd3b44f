//! A recording `Disk` for power-cut tests (../shared/TESTING.md): it does
//! each operation on the real file system and records it, and `image`
//! rebuilds what a disk would hold after a power cut following any prefix
//! of the recording: each file as of its last sync (plus, if asked, a torn
//! prefix of what was written after), each name as of the last sync of its
//! directory (everything recorded lives in one directory).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rand::Rng;

use super::{Disk, DiskFile, OsDisk};

/// One operation the writer did, by file name (the log lives in one dir).
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Open { name: String, create: bool },
    Write { name: String, offset: u64, bytes: Vec<u8> },
    SetLen { name: String, len: u64 },
    Sync { name: String },
    Rename { from: String, to: String },
    Remove { name: String },
    SyncDir,
}

/// Does the real operation on the real file system and records it.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) ops: Mutex<Vec<Op>>,
    /// The mutation: `sync_data` does nothing, as if the writer's fsync
    /// were removed.
    pub(crate) skip_sync_data: bool,
    /// The mutation for snapshot files: `sync_all` does nothing.
    pub(crate) skip_sync_all: bool,
}

impl Recorder {
    pub(crate) fn record(&self, op: Op) {
        self.ops.lock().unwrap().push(op);
    }

    pub(crate) fn len(&self) -> usize {
        self.ops.lock().unwrap().len()
    }
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

struct RecordedFile {
    name: String,
    file: Box<dyn DiskFile>,
    recorder: Arc<Recorder>,
}

impl DiskFile for RecordedFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_at(buf, offset)?;
        self.recorder.record(Op::Write { name: self.name.clone(), offset, bytes: buf.to_vec() });
        Ok(())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        self.recorder.record(Op::SetLen { name: self.name.clone(), len });
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if !self.recorder.skip_sync_data {
            self.recorder.record(Op::Sync { name: self.name.clone() });
        }
        Ok(())
    }
    fn sync_all(&self) -> std::io::Result<()> {
        if !self.recorder.skip_sync_all {
            self.recorder.record(Op::Sync { name: self.name.clone() });
        }
        Ok(())
    }
}

/// The recorder as the writer's disk (it needs an `Arc` of itself).
pub(crate) struct Recording(pub(crate) Arc<Recorder>);

impl Disk for Recording {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Box<dyn DiskFile>> {
        let file = OsDisk.open(path, create)?;
        self.0.record(Op::Open { name: name(path), create });
        Ok(Box::new(RecordedFile { name: name(path), file, recorder: self.0.clone() }))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        OsDisk.rename(from, to)?;
        self.0.record(Op::Rename { from: name(from), to: name(to) });
        Ok(())
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        OsDisk.remove(path)?;
        self.0.record(Op::Remove { name: name(path) });
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> std::io::Result<()> {
        self.0.record(Op::SyncDir);
        Ok(())
    }
}

/// A file's bytes as written, and as last synced.
#[derive(Clone, Default)]
struct Inode {
    written: Vec<u8>,
    synced: Vec<u8>,
}

/// What the disk holds after a cut following the first `upto` ops,
/// starting from `baseline` (the files as they were, all durable). With
/// `tear`, a file written past its synced content keeps a random prefix of
/// the unsynced rest, as a disk may.
pub(crate) fn image(baseline: &HashMap<String, Vec<u8>>, ops: &[Op], tear: Option<&mut impl Rng>, out: &Path) {
    let mut inodes: Vec<Inode> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (n, bytes) in baseline {
        names.insert(n.clone(), inodes.len());
        inodes.push(Inode { written: bytes.clone(), synced: bytes.clone() });
    }
    let mut durable_names = names.clone();
    for op in ops {
        match op {
            Op::Open { name, create } => match names.get(name) {
                Some(&i) if *create => inodes[i].written.clear(),
                Some(_) => {}
                None => {
                    names.insert(name.clone(), inodes.len());
                    inodes.push(Inode::default());
                }
            },
            Op::Write { name, offset, bytes } => {
                let data = &mut inodes[names[name]].written;
                let end = *offset as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*offset as usize..end].copy_from_slice(bytes);
            }
            Op::SetLen { name, len } => inodes[names[name]].written.resize(*len as usize, 0),
            Op::Sync { name } => {
                let inode = &mut inodes[names[name]];
                inode.synced = inode.written.clone();
            }
            Op::Rename { from, to } => {
                let i = names.remove(from).unwrap();
                names.insert(to.clone(), i);
            }
            Op::Remove { name } => {
                names.remove(name);
            }
            Op::SyncDir => durable_names = names.clone(),
        }
    }
    let mut tear = tear;
    for (n, &i) in &durable_names {
        let Inode { written, synced } = &inodes[i];
        let mut bytes = synced.clone();
        if let Some(rng) = tear.as_deref_mut() {
            if written.len() > synced.len() && written.starts_with(synced) && rng.random_bool(0.5) {
                let keep = rng.random_range(0..=written.len() - synced.len());
                bytes.extend_from_slice(&written[synced.len()..synced.len() + keep]);
            }
        }
        std::fs::write(out.join(n), bytes).unwrap();
    }
}
