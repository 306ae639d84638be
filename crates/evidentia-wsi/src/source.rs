//! Where a slide's bytes come from: a local file, or anything else that can read a range of
//! bytes at an offset (an object store by range requests). Readers only ever ask for ranges, so
//! a tile never needs the whole slide.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Random access to the bytes of one stored file.
pub trait ByteSource: Send + Sync {
    /// The file's length in bytes.
    fn len(&self) -> u64;
    /// Fills `buf` with the bytes at `offset` (an error if the file ends first).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Whether the file has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A local file.
pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    pub fn open(path: &Path) -> io::Result<FileSource> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// The bytes at `offset`, as many as there are up to `buf.len()` (fewer only at the end).
pub fn read_at_most(src: &dyn ByteSource, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let n = (src.len().saturating_sub(offset)).min(buf.len() as u64) as usize;
    src.read_exact_at(&mut buf[..n], offset)?;
    Ok(n)
}

/// A `Read + Seek` view of a source (for decoders that want one), with its own position.
pub struct Cursor {
    src: Arc<dyn ByteSource>,
    pos: u64,
}

impl Cursor {
    pub fn new(src: Arc<dyn ByteSource>) -> Cursor {
        Cursor { src, pos: 0 }
    }
}

impl Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_at_most(self.src.as_ref(), buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.src.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(Vec<u8>);
    impl ByteSource for Bytes {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let start = usize::try_from(offset).map_err(io::Error::other)?;
            let src = self.0.get(start..start + buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    #[test]
    fn a_cursor_reads_seeks_and_stops_at_the_end() {
        let mut c = Cursor::new(Arc::new(Bytes((0u8..10).collect())));
        let mut buf = [0u8; 4];
        assert_eq!(c.read(&mut buf).unwrap(), 4);
        assert_eq!(buf, [0, 1, 2, 3]);
        assert_eq!(c.seek(SeekFrom::End(-2)).unwrap(), 8);
        assert_eq!(c.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], &[8, 9]);
        assert_eq!(c.read(&mut buf).unwrap(), 0);
        assert!(c.seek(SeekFrom::Current(-20)).is_err());
    }
}
