//! Memory-mapped asset files: the only `unsafe` in the crate.
//!
//! # The truncation hazard and how we survive it
//! If another process truncates a mapped file, any *user-space* read of the vanished pages raises
//! SIGBUS and kills the server. Kernel reads of the same pages (a `write`/`writev` to a socket whose
//! source buffer is the mapping) fail with `EFAULT` instead. So the rule is:
//!
//! * the mapping is **never read by our code**. Indexing reads the file with `pread`
//!   ([`MappedFile::file`]); the mapping is only sliced into [`Bytes`] views handed to hyper, which
//!   passes them to `writev` unread. A truncated file then costs the responses that were in
//!   flight (their connection fails with EFAULT) and nothing else; the watcher sees the new size,
//!   re-indexes the file and serves what is valid;
//! * code that must look at sample bytes (encryption, later) reads them with `pread` too.
//!
//! Operators should still publish files by writing elsewhere and renaming into place; a rename
//! leaves the old inode (and our mapping of it) intact until the last response using it ends.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::path::Path;

use bytes::Bytes;
use memmap2::Mmap;

/// An open asset file: a descriptor for positioned reads and a zero-copy view for responses.
pub struct MappedFile {
    file: File,
    bytes: Bytes,
    len: u64,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never format the contents: that would read the mapping.
        f.debug_struct("MappedFile").field("len", &self.len).finish()
    }
}

impl MappedFile {
    /// Opens and maps `path`. Empty files and files that cannot be mapped are read into memory.
    pub fn open(path: &Path) -> io::Result<MappedFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let bytes = if len == 0 {
            Bytes::new()
        } else {
            // SAFETY: the mapping is only ever read by the kernel (socket writes), never by this
            // process (see the module docs), so a concurrent truncation cannot raise SIGBUS in
            // our code. Modifications in place may show through in responses; the watcher
            // notices the new mtime/size and re-indexes.
            match unsafe { Mmap::map(&file) } {
                Ok(map) => Bytes::from_owner(map),
                Err(_) => {
                    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| io::ErrorKind::OutOfMemory)?];
                    std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, 0)?;
                    Bytes::from(buf)
                }
            }
        };
        Ok(MappedFile { file, bytes, len })
    }

    /// Length of the file when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The descriptor, for positioned reads (`index::ReadAt`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Appends `len` bytes of the file at `offset` to `buf` with `pread(2)` straight into its
    /// spare capacity: no zero-fill of memory that is overwritten at once, and no user-space read
    /// of the mapping (a truncated file gives an error here, not a SIGBUS). On error `buf` keeps
    /// its old length.
    pub fn read_append_at(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let start = buf.len();
        buf.try_reserve(len).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let fd = self.file.as_raw_fd();
        let mut done = 0usize;
        while done < len {
            let at = offset
                .checked_add(done as u64)
                .and_then(|o| libc::off_t::try_from(o).ok())
                .ok_or(io::ErrorKind::InvalidInput)?;
            let dst = match buf.spare_capacity_mut().get_mut(..len - done) {
                Some(d) => d,
                None => return Err(io::ErrorKind::OutOfMemory.into()),
            };
            // SAFETY: `dst` is writable memory owned by `buf` (its spare capacity, reserved
            // above) of exactly `dst.len()` bytes; pread writes at most that many, and only the
            // `n` bytes it reports written are then counted as initialised by `set_len`.
            let n = unsafe { libc::pread(fd, dst.as_mut_ptr().cast(), dst.len(), at) };
            match n {
                n if n > 0 => {
                    done += n as usize;
                    // SAFETY: the first `start + done` bytes are initialised (old contents plus
                    // what pread wrote) and within the reserved capacity.
                    unsafe { buf.set_len(start + done) };
                }
                0 => {
                    buf.truncate(start);
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        buf.truncate(start);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// A zero-copy view of `len` bytes at `offset`, for a response body only (do not read it).
    pub fn slice(&self, offset: u64, len: u64) -> Option<Bytes> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if end > self.bytes.len() {
            return None;
        }
        Some(self.bytes.slice(start..end))
    }
}
