//! A file system that loses power (issue 17 item 3): a FUSE file system, served by a
//! process of its own (`outpost-powercut`, see [`serve`]) and driven by the test, that keeps what the OS accepted apart from
//! what a sync made durable, and at a simulated power cut drops everything that was
//! not synced.
//!
//! The model (strict POSIX, the weakest promise a real file system makes):
//!
//! - A file's bytes are durable once the file was `fsync`ed or `fdatasync`ed; every
//!   `write` and size change since then is *pending*.
//! - A directory's names are durable once the directory itself was `fsync`ed: a file
//!   created, renamed or removed since then has its old name (or none) after a cut, even
//!   if its own bytes were synced. A new file needs its directory synced to survive; a
//!   new directory needs its parent synced.
//! - At a cut ([`PowerCutFs::cut`], or armed to strike at the n-th write-like request
//!   with [`PowerCutFs::arm`]), each file goes back to its durable bytes and each
//!   directory to its durable names; files no durable name reaches are gone. In the
//!   [`CutMode::SomePending`] mode a seeded random subset of each file's pending writes
//!   (whole `write` requests, in their order) and of the directories' pending name
//!   changes (per directory, all or nothing) is kept as well: a disk may have written
//!   any of them before the power went, in any order.
//! - After a cut every request fails with EIO until [`PowerCutFs::remount`]: the
//!   processes that used it are dead (the test drops or kills them), and unmounting
//!   drops the kernel's page cache, which still holds the lost bytes.
//!
//! Limits, said plainly: the durable state lives in the test's memory (no backing
//! directory: the shim *is* the disk, so what survives is exactly what the model says);
//! a write request is never torn inside itself (SQLite's "powersafe overwrite"
//! assumption; its WAL frames carry checksums for the rest); metadata other than names
//! and sizes (modes, times) is not modelled; hard and symbolic links are refused; file
//! locks are the kernel's own (FUSE without lock requests), so one machine's processes
//! exclude each other as on a local disk; `mmap`ed writes (SQLite's `-shm` index) reach
//! the shim when the kernel writes the pages back, and that file is never synced, so a
//! cut always drops it, which SQLite is built to survive.
//!
//! Mounting needs `/dev/fuse` and root (mount(2)), or the `fusermount3` helper
//! (package `fuse3`); [`PowerCutFs::mount`] says which is missing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem,
    FopenFlags, Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, SessionACL, TimeOrNow, WriteFlags,
};

use crate::kill::Rng;

/// How long the kernel may cache names and attributes (the shim is their only writer
/// while mounted, and a remount starts the kernel's caches afresh).
const TTL: Duration = Duration::from_secs(1);

/// What a cut keeps of the writes that were not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Nothing: every file and directory as it was at its last sync.
    NothingPending,
    /// A random subset (from this seed) of the pending writes and name changes.
    SomePending(u64),
}

/// What the shim saw, for the report.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Write-like requests (write, truncate, create, mkdir, unlink, rmdir, rename, fsync).
    pub ops: u64,
    /// fsync/fdatasync of files, fsync of directories.
    pub file_syncs: u64,
    pub dir_syncs: u64,
    /// Cuts, and what they dropped.
    pub cuts: u64,
    pub pending_writes_dropped: u64,
    pub pending_bytes_dropped: u64,
    pub pending_writes_kept: u64,
    pub names_reverted: u64,
}

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

fn apply(bytes: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[start..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => bytes.resize(*len as usize, 0),
    }
}

#[derive(Debug)]
enum Body {
    File {
        now: Vec<u8>,
        durable: Vec<u8>,
        pending: Vec<Pending>,
    },
    Dir {
        now: BTreeMap<OsString, u64>,
        durable: BTreeMap<OsString, u64>,
    },
}

#[derive(Debug)]
struct Node {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
}

#[derive(Debug)]
struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// Cut and not yet remounted: every request fails.
    dead: bool,
    /// Cut when `ops` reaches this.
    armed: Option<(u64, CutMode)>,
    stats: Stats,
}

impl State {
    fn new() -> State {
        let mut nodes = HashMap::new();
        nodes.insert(
            INodeNo::ROOT.0,
            Node {
                body: Body::Dir {
                    now: BTreeMap::new(),
                    durable: BTreeMap::new(),
                },
                perm: 0o755,
                uid: 0,
                gid: 0,
            },
        );
        State {
            nodes,
            next_ino: INodeNo::ROOT.0 + 1,
            dead: false,
            armed: None,
            stats: Stats::default(),
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        let (kind, size, nlink) = match &node.body {
            Body::File { now, .. } => (FileType::RegularFile, now.len() as u64, 1),
            Body::Dir { now, .. } => (FileType::Directory, 4096, 2 + now.len() as u32),
        };
        let t = SystemTime::UNIX_EPOCH;
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm: node.perm,
            nlink,
            uid: node.uid,
            gid: node.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn dir_now(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.body) {
            Some(Body::Dir { now, .. }) => Ok(now),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn file(&mut self, ino: u64) -> Result<(&mut Vec<u8>, &mut Vec<Pending>), Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.body) {
            Some(Body::File { now, pending, .. }) => Ok((now, pending)),
            Some(_) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    /// Count a write-like request; fire an armed cut (then the request is lost).
    fn op(&mut self) -> Result<(), Errno> {
        if self.dead {
            return Err(Errno::EIO);
        }
        self.stats.ops += 1;
        if let Some((at, mode)) = self.armed {
            if self.stats.ops >= at {
                self.cut(mode);
                return Err(Errno::EIO);
            }
        }
        Ok(())
    }

    fn alive(&self) -> Result<(), Errno> {
        if self.dead {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
    }

    fn new_node(&mut self, body: Body, perm: u16, req: &Request) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                body,
                perm,
                uid: req.uid(),
                gid: req.gid(),
            },
        );
        ino
    }

    /// The power goes: every file and directory back to what was durable (plus, in
    /// [`CutMode::SomePending`], a random part of what was not); unreachable files go.
    fn cut(&mut self, mode: CutMode) {
        self.armed = None;
        self.dead = true;
        self.stats.cuts += 1;
        let mut rng = match mode {
            CutMode::NothingPending => None,
            CutMode::SomePending(seed) => Some(Rng::new(seed)),
        };
        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let Some(node) = self.nodes.get_mut(&ino) else {
                continue;
            };
            match &mut node.body {
                Body::File {
                    now,
                    durable,
                    pending,
                } => {
                    for op in pending.drain(..) {
                        if rng.as_mut().is_some_and(|r| r.one_in(2)) {
                            apply(durable, &op);
                            self.stats.pending_writes_kept += 1;
                        } else {
                            self.stats.pending_writes_dropped += 1;
                            if let Pending::Write { data, .. } = &op {
                                self.stats.pending_bytes_dropped += data.len() as u64;
                            }
                        }
                    }
                    *now = durable.clone();
                }
                Body::Dir { now, durable } => {
                    if now != durable {
                        if rng.as_mut().is_some_and(|r| r.one_in(2)) {
                            *durable = now.clone();
                        } else {
                            self.stats.names_reverted += 1;
                            *now = durable.clone();
                        }
                    }
                }
            }
        }
        // Only what a durable name reaches is still there.
        let mut reached = HashSet::new();
        let mut stack = vec![INodeNo::ROOT.0];
        while let Some(ino) = stack.pop() {
            if !reached.insert(ino) {
                continue;
            }
            if let Some(Node {
                body: Body::Dir { durable, .. },
                ..
            }) = self.nodes.get(&ino)
            {
                stack.extend(durable.values().copied());
            }
        }
        self.nodes.retain(|ino, _| reached.contains(ino));
        for node in self.nodes.values_mut() {
            if let Body::Dir { now, durable } = &mut node.body {
                now.retain(|_, ino| reached.contains(ino));
                durable.retain(|_, ino| reached.contains(ino));
            }
        }
    }
}

/// The FUSE side: requests from the kernel against the shared state.
struct Shim {
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shim {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn entry(&self, result: Result<u64, Errno>, reply: ReplyEntry) {
        match result.and_then(|ino| self.state().attr(ino).ok_or(Errno::ENOENT)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn empty(result: Result<(), Errno>, reply: ReplyEmpty) {
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn make(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        body: Body,
        perm: u16,
        exclusive: bool,
    ) -> Result<u64, Errno> {
        let mut s = self.state();
        s.op()?;
        if let Some(&ino) = s.dir_now(parent.0)?.get(name) {
            return if exclusive {
                Err(Errno::EEXIST)
            } else {
                Ok(ino)
            };
        }
        let ino = s.new_node(body, perm, req);
        s.dir_now(parent.0)?.insert(name.to_owned(), ino);
        Ok(ino)
    }

    fn remove(&self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let mut s = self.state();
        s.op()?;
        let ino = *s.dir_now(parent.0)?.get(name).ok_or(Errno::ENOENT)?;
        match (&s.nodes.get(&ino).ok_or(Errno::ENOENT)?.body, dir) {
            (Body::Dir { now, .. }, true) if !now.is_empty() => return Err(Errno::ENOTEMPTY),
            (Body::Dir { .. }, false) => return Err(Errno::EISDIR),
            (Body::File { .. }, true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        s.dir_now(parent.0)?.remove(name);
        Ok(())
    }
}

impl Filesystem for Shim {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = {
            let mut s = self.state();
            s.alive()
                .and_then(|()| s.dir_now(parent.0)?.get(name).copied().ok_or(Errno::ENOENT))
        };
        self.entry(found, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let s = self.state();
        match s.alive().and_then(|()| s.attr(ino.0).ok_or(Errno::ENOENT)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let result = (|| {
            s.alive()?;
            if let Some(len) = size {
                s.op()?;
                let (now, pending) = s.file(ino.0)?;
                let op = Pending::SetLen(len);
                apply(now, &op);
                pending.push(op);
            }
            if let Some(mode) = mode {
                if let Some(node) = s.nodes.get_mut(&ino.0) {
                    node.perm = (mode & 0o7777) as u16;
                }
            }
            s.attr(ino.0).ok_or(Errno::ENOENT)
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc_s_ifmt() != libc_s_ifreg() {
            return reply.error(Errno::EPERM);
        }
        let body = Body::File {
            now: Vec::new(),
            durable: Vec::new(),
            pending: Vec::new(),
        };
        let made = self.make(req, parent, name, body, perm(mode, umask), true);
        self.entry(made, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let body = Body::Dir {
            now: BTreeMap::new(),
            durable: BTreeMap::new(),
        };
        let made = self.make(req, parent, name, body, perm(mode, umask), true);
        self.entry(made, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(self.remove(parent, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(self.remove(parent, name, true), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let result = (|| {
            s.op()?;
            if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
                return Err(Errno::EINVAL);
            }
            let ino = *s.dir_now(parent.0)?.get(name).ok_or(Errno::ENOENT)?;
            if let Some(&old) = s.dir_now(newparent.0)?.get(newname) {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                    return Err(Errno::EEXIST);
                }
                if let Some(Body::Dir { now, .. }) = s.nodes.get(&old).map(|n| &n.body) {
                    if !now.is_empty() {
                        return Err(Errno::ENOTEMPTY);
                    }
                }
            }
            s.dir_now(parent.0)?.remove(name);
            s.dir_now(newparent.0)?.insert(newname.to_owned(), ino);
            Ok(())
        })();
        drop(s);
        Self::empty(result, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let s = self.state();
        match s
            .alive()
            .and_then(|()| s.attr(ino.0).map(|_| ()).ok_or(Errno::ENOENT))
        {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut s = self.state();
        let result = s.alive().and_then(|()| {
            let (now, _) = s.file(ino.0)?;
            let start = (offset as usize).min(now.len());
            let end = (start + size as usize).min(now.len());
            Ok(now[start..end].to_vec())
        });
        drop(s);
        match result {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.state();
        let result = s.op().and_then(|()| {
            let (now, pending) = s.file(ino.0)?;
            let op = Pending::Write {
                offset,
                data: data.to_vec(),
            };
            apply(now, &op);
            pending.push(op);
            Ok(data.len() as u32)
        });
        drop(s);
        match result {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) is no sync.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let result = s.op().and_then(|()| {
            s.stats.file_syncs += 1;
            match s.nodes.get_mut(&ino.0).map(|n| &mut n.body) {
                Some(Body::File {
                    now,
                    durable,
                    pending,
                }) => {
                    durable.clone_from(now);
                    pending.clear();
                    Ok(())
                }
                Some(Body::Dir { now, durable }) => {
                    durable.clone_from(now);
                    Ok(())
                }
                None => Err(Errno::ENOENT),
            }
        });
        drop(s);
        Self::empty(result, reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut s = self.state();
        let listed = s.alive().and_then(|()| {
            let names: Vec<(OsString, u64)> = s
                .dir_now(ino.0)?
                .iter()
                .map(|(n, i)| (n.clone(), *i))
                .collect();
            let mut out = vec![
                (OsString::from("."), ino.0, FileType::Directory),
                (OsString::from(".."), ino.0, FileType::Directory),
            ];
            for (name, child) in names {
                let kind = match s.nodes.get(&child).map(|n| &n.body) {
                    Some(Body::Dir { .. }) => FileType::Directory,
                    _ => FileType::RegularFile,
                };
                out.push((name, child, kind));
            }
            Ok(out)
        });
        drop(s);
        match listed {
            Ok(entries) => {
                for (i, (name, child, kind)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let result = s.op().and_then(|()| {
            s.stats.dir_syncs += 1;
            match s.nodes.get_mut(&ino.0).map(|n| &mut n.body) {
                Some(Body::Dir { now, durable }) => {
                    durable.clone_from(now);
                    Ok(())
                }
                Some(_) => Err(Errno::ENOTDIR),
                None => Err(Errno::ENOENT),
            }
        });
        drop(s);
        Self::empty(result, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room (the store checks free space before a re-key).
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let body = Body::File {
            now: Vec::new(),
            durable: Vec::new(),
            pending: Vec::new(),
        };
        let exclusive = flags & O_EXCL != 0;
        let made = self
            .make(req, parent, name, body, perm(mode, umask), exclusive)
            .and_then(|ino| self.state().attr(ino).ok_or(Errno::ENOENT));
        match made {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let mut s = self.state();
        let result = s.op().and_then(|()| {
            let (now, pending) = s.file(ino.0)?;
            let end = offset + length;
            if (now.len() as u64) < end {
                let op = Pending::SetLen(end);
                apply(now, &op);
                pending.push(op);
            }
            Ok(())
        });
        drop(s);
        Self::empty(result, reply);
    }
}

/// `O_EXCL` on Linux (the flag `create` gets).
const O_EXCL: i32 = 0o200;

fn libc_s_ifmt() -> u32 {
    0o170000
}

fn libc_s_ifreg() -> u32 {
    0o100000
}

fn perm(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

/// Why the shim cannot run here (no `/dev/fuse`, no permission to mount, no helper).
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The shim's own process: `outpost-powercut <mountpoint> <name>` (tests/src/bin), driven
/// by [`PowerCutFs`] over its standard input and output, one command and one answer a
/// line. The FUSE session must not live in the process whose files it serves: a page
/// fault on a file the shim serves (SQLite maps its `-shm` index) holds that process's
/// memory-map lock until the shim answers, a `munmap` on another thread then queues for
/// the lock, and the shim's thread, copying the request into its own memory, queues
/// behind it: the kernel deadlocks the whole process (seen once in CI, hung for 40
/// minutes). In its own process the shim's memory-map lock is its own.
///
/// Commands: `cut none|some <seed>`, `arm <n> none|some <seed>`, `disarm`, `is_cut`,
/// `stats`, `sync_all`, `remount`, `quit`; answers `ok`, `true`/`false`, `stats <8
/// numbers>`, or `err <message>`. End of input is `quit`: the shim unmounts and exits,
/// so it never outlives the test that started it.
pub fn serve(mountpoint: &Path, name: &str) -> std::process::ExitCode {
    use std::io::{BufRead, Write};
    let mut served = Served {
        state: Arc::new(Mutex::new(State::new())),
        mountpoint: mountpoint.to_owned(),
        session: None,
        name: name.to_owned(),
    };
    let mut out = std::io::stdout().lock();
    let first = match served.start() {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("err {}", e.0.replace('\n', " ")),
    };
    if writeln!(out, "{first}").and_then(|()| out.flush()).is_err() || first != "ok" {
        return std::process::ExitCode::FAILURE;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match served.command(line.trim()) {
            Some(answer) => answer,
            None => break,
        };
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    served.stop();
    std::process::ExitCode::SUCCESS
}

fn parse_mode(words: &[&str]) -> Option<CutMode> {
    match words {
        ["none"] => Some(CutMode::NothingPending),
        ["some", seed] => seed.parse().ok().map(CutMode::SomePending),
        _ => None,
    }
}

fn mode_words(mode: CutMode) -> String {
    match mode {
        CutMode::NothingPending => "none".into(),
        CutMode::SomePending(seed) => format!("some {seed}"),
    }
}

/// The shim process's side: the state, and the FUSE session serving it.
struct Served {
    state: Arc<Mutex<State>>,
    mountpoint: PathBuf,
    session: Option<BackgroundSession>,
    name: String,
}

impl Served {
    fn start(&mut self) -> Result<(), Unavailable> {
        let shim = Shim {
            state: self.state.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(format!("outpost-powercut-{}", self.name)),
            MountOption::Subtype("powercut".into()),
            MountOption::RW,
        ];
        config.acl = SessionACL::Owner;
        let session = fuser::spawn_mount(shim, &self.mountpoint, &config).map_err(|e| {
            Unavailable(format!(
                "cannot mount the FUSE shim at {} ({e}): needs /dev/fuse and root (mount(2)) \
                 or the fusermount3 helper (apt-get install fuse3)",
                self.mountpoint.display()
            ))
        })?;
        self.session = Some(session);
        Ok(())
    }

    /// One command's answer; `None` to stop.
    fn command(&mut self, line: &str) -> Option<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ok = || Some("ok".to_owned());
        match words.as_slice() {
            ["cut", mode @ ..] => match parse_mode(mode) {
                Some(mode) => {
                    lock(&self.state).cut(mode);
                    ok()
                }
                None => Some(format!("err bad mode: {line}")),
            },
            ["arm", n, mode @ ..] => match (n.parse::<u64>(), parse_mode(mode)) {
                (Ok(n), Some(mode)) => {
                    let mut s = lock(&self.state);
                    let at = s.stats.ops + n.max(1);
                    s.armed = Some((at, mode));
                    ok()
                }
                _ => Some(format!("err bad arm: {line}")),
            },
            ["disarm"] => {
                lock(&self.state).armed = None;
                ok()
            }
            ["is_cut"] => Some(lock(&self.state).dead.to_string()),
            ["stats"] => {
                let s = lock(&self.state).stats.clone();
                Some(format!(
                    "stats {} {} {} {} {} {} {} {}",
                    s.ops,
                    s.file_syncs,
                    s.dir_syncs,
                    s.cuts,
                    s.pending_writes_dropped,
                    s.pending_bytes_dropped,
                    s.pending_writes_kept,
                    s.names_reverted
                ))
            }
            ["sync_all"] => {
                lock(&self.state).sync_all();
                ok()
            }
            ["remount"] => {
                self.unmount();
                lock(&self.state).dead = false;
                Some(match self.start() {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("err {}", e.0.replace('\n', " ")),
                })
            }
            ["quit"] => None,
            _ => Some(format!("err unknown command: {line}")),
        }
    }

    fn unmount(&mut self) {
        if let Some(session) = self.session.take() {
            if session.umount_and_join().is_err() {
                // Still busy (a process had not let go yet): detach it.
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.mountpoint)
                    .output();
            }
        }
    }

    fn stop(&mut self) {
        // Nothing of the old mount may answer after this: fail whatever still comes.
        lock(&self.state).dead = true;
        self.unmount();
    }
}

impl State {
    /// Everything there now is durable (as a clean shutdown would leave it).
    fn sync_all(&mut self) {
        for node in self.nodes.values_mut() {
            match &mut node.body {
                Body::File {
                    now,
                    durable,
                    pending,
                } => {
                    durable.clone_from(now);
                    pending.clear();
                }
                Body::Dir { now, durable } => durable.clone_from(now),
            }
        }
    }
}

/// The shim mounted at a directory, served by its own process (see [`serve`]);
/// unmounted on drop.
pub struct PowerCutFs {
    mountpoint: PathBuf,
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl PowerCutFs {
    /// Mount a new, empty shim at a fresh directory under the target's `tmp`.
    pub fn mount(name: &str) -> Result<PowerCutFs, Unavailable> {
        use std::process::{Command, Stdio};
        if !Path::new("/dev/fuse").exists() {
            return Err(Unavailable(
                "/dev/fuse does not exist (no FUSE in this kernel or container)".into(),
            ));
        }
        let mountpoint =
            crate::target_tmp().join(format!("powercut-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&mountpoint)
            .map_err(|e| Unavailable(format!("cannot make {}: {e}", mountpoint.display())))?;
        let mut child = Command::new(crate::bin("outpost-powercut"))
            .arg(&mountpoint)
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Unavailable(format!("cannot start outpost-powercut: {e}")))?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(Unavailable("outpost-powercut has no pipes".into()));
        };
        let mut fs = PowerCutFs {
            mountpoint,
            child,
            input,
            output: std::io::BufReader::new(output),
        };
        let first = fs.read_answer();
        if first != "ok" {
            return Err(Unavailable(
                first.strip_prefix("err ").unwrap_or(&first).to_owned(),
            ));
        }
        Ok(fs)
    }

    fn read_answer(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        match self.output.read_line(&mut line) {
            Ok(0) | Err(_) => "err the shim process is gone".to_owned(),
            Ok(_) => line.trim_end().to_owned(),
        }
    }

    /// Send one command and read its answer; the shim is the test's disk, so a shim
    /// that stops answering ends the test.
    fn ask(&mut self, command: &str) -> String {
        use std::io::Write;
        if let Err(e) = writeln!(self.input, "{command}").and_then(|()| self.input.flush()) {
            panic!("the power-cut shim is gone ({e}) at `{command}`");
        }
        let answer = self.read_answer();
        if let Some(e) = answer.strip_prefix("err ") {
            panic!("the power-cut shim refused `{command}`: {e}");
        }
        answer
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Cut the power now.
    pub fn cut(&mut self, mode: CutMode) {
        self.ask(&format!("cut {}", mode_words(mode)));
    }

    /// Cut the power at the `n`-th write-like request from now (n ≥ 1): that request
    /// and every later one fails with EIO.
    pub fn arm(&mut self, n: u64, mode: CutMode) {
        self.ask(&format!("arm {n} {}", mode_words(mode)));
    }

    /// Take back an armed cut that did not fire.
    pub fn disarm(&mut self) {
        self.ask("disarm");
    }

    /// Whether the power is off (cut, not yet remounted).
    pub fn is_cut(&mut self) -> bool {
        self.ask("is_cut") == "true"
    }

    pub fn stats(&mut self) -> Stats {
        let answer = self.ask("stats");
        let n: Vec<u64> = answer
            .split_whitespace()
            .skip(1)
            .filter_map(|w| w.parse().ok())
            .collect();
        let [ops, file_syncs, dir_syncs, cuts, dropped, bytes, kept, names] = n[..] else {
            panic!("the power-cut shim's stats are not 8 numbers: {answer}");
        };
        Stats {
            ops,
            file_syncs,
            dir_syncs,
            cuts,
            pending_writes_dropped: dropped,
            pending_bytes_dropped: bytes,
            pending_writes_kept: kept,
            names_reverted: names,
        }
    }

    /// Sync everything (as a clean shutdown would): what is there now is durable.
    pub fn sync_all(&mut self) {
        self.ask("sync_all");
    }

    /// Power back on: unmount (every process that used the old mount must be gone;
    /// the kernel's cached pages of it go with it), and mount the surviving state
    /// again at the same place.
    pub fn remount(&mut self) -> Result<(), Unavailable> {
        use std::io::Write;
        writeln!(self.input, "remount")
            .and_then(|()| self.input.flush())
            .map_err(|e| Unavailable(format!("the power-cut shim is gone: {e}")))?;
        let answer = self.read_answer();
        match answer.strip_prefix("err ") {
            Some(e) => Err(Unavailable(e.to_owned())),
            None => Ok(()),
        }
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = writeln!(self.input, "quit").and_then(|()| self.input.flush());
        // It unmounts and exits; give it a few seconds, then make sure.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let _ = std::process::Command::new("umount")
                        .arg("-l")
                        .arg(&self.mountpoint)
                        .output();
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir(&self.mountpoint);
    }
}

#[cfg(test)]
mod tests {
    //! The model, on the state alone (no mount).
    use super::*;

    fn file(now: &[u8], durable: &[u8], pending: Vec<Pending>) -> Body {
        Body::File {
            now: now.to_vec(),
            durable: durable.to_vec(),
            pending,
        }
    }

    fn state_with(names_durable: bool, body: Body) -> State {
        let mut s = State::new();
        s.nodes.insert(
            2,
            Node {
                body,
                perm: 0o644,
                uid: 0,
                gid: 0,
            },
        );
        s.next_ino = 3;
        if let Some(Node {
            body: Body::Dir { now, durable },
            ..
        }) = s.nodes.get_mut(&1)
        {
            now.insert("f".into(), 2);
            if names_durable {
                durable.insert("f".into(), 2);
            }
        }
        s
    }

    fn content(s: &State, ino: u64) -> Option<Vec<u8>> {
        match &s.nodes.get(&ino)?.body {
            Body::File { now, .. } => Some(now.clone()),
            Body::Dir { .. } => None,
        }
    }

    #[test]
    fn a_cut_drops_unsynced_writes_and_keeps_synced_ones() {
        let op = Pending::Write {
            offset: 3,
            data: b"new".to_vec(),
        };
        let mut s = state_with(true, file(b"oldnew", b"old", vec![op]));
        s.cut(CutMode::NothingPending);
        assert_eq!(content(&s, 2).unwrap(), b"old");
        assert!(s.dead, "requests fail until the remount");
        assert_eq!(s.stats.pending_bytes_dropped, 3);
    }

    #[test]
    fn a_file_whose_name_was_never_synced_is_gone_after_a_cut() {
        let mut s = state_with(false, file(b"x", b"x", Vec::new()));
        s.cut(CutMode::NothingPending);
        assert!(!s.nodes.contains_key(&2), "no durable name reaches it");
    }

    #[test]
    fn an_armed_cut_fires_at_its_request_and_fails_it() {
        let mut s = State::new();
        s.armed = Some((2, CutMode::NothingPending));
        assert!(s.op().is_ok());
        assert_eq!(s.op(), Err(Errno::EIO));
        assert!(s.dead);
        assert_eq!(s.op(), Err(Errno::EIO));
    }

    #[test]
    fn a_cut_that_keeps_some_pending_writes_applies_them_in_order() {
        let ops: Vec<Pending> = (0..64)
            .map(|i| Pending::Write {
                offset: i,
                data: vec![b'a'],
            })
            .collect();
        let mut s = state_with(true, file(&[b'a'; 64], b"", ops));
        s.cut(CutMode::SomePending(7));
        let kept = s.stats.pending_writes_kept;
        assert!(kept > 0 && kept < 64, "a subset: {kept}");
    }
}
