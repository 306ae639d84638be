//! Where the installation's files live: stored slides, registered models and exported dossiers.
//!
//! `file://` (the default: the data dir) or `s3://BUCKET/PREFIX` on any S3-compatible object
//! store, through the `object_store` crate (endpoint, region and credentials from the usual
//! `AWS_*` environment variables). Every file has a key (`slides/<sha256>.svs`,
//! `models/<sha256>.onnx`, `exports/dossiers/dossier-job7.zip`); the rest of the code names
//! keys, never paths, so the same code runs on one disk and on many nodes sharing a bucket.
//!
//! Slides are read by **range requests** through a bounded block cache: opening a slide reads
//! its TIFF directories, a tile reads the blocks its bytes lie in, and nothing ever downloads a
//! whole slide. Files arrive as local temporary files (an upload, a de-identified copy being
//! written) and are moved in whole; on object storage they are streamed up in parts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use crate::slides::source::ByteSource;

/// Bytes fetched per range request and cached as one block.
const BLOCK: u64 = 256 * 1024;
/// Parts of a multipart upload (S3's minimum is 5 MiB but for the last).
const PART: usize = 8 * 1024 * 1024;

/// The folders of stored files: de-identified slides, model files, exported dossiers.
pub const FOLDERS: [&str; 3] = ["slides", "models", "exports/dossiers"];

/// What [`Storage::copy_all`] copied.
#[derive(Debug, Default)]
pub struct CopyReport {
    /// Files sent, and their bytes.
    pub files: usize,
    pub bytes: u64,
    /// Files the target already held whole (a copy cut short), checked and kept.
    pub kept: usize,
}

/// The configured file store; cheap to clone (clones share the connection and the cache).
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    /// What `--storage` said, without credentials (they never appear in it: they come from the
    /// environment).
    url: String,
    cache: Mutex<BlockCache>,
    /// Local copies of files that must be files to be used (models for ONNX Runtime).
    copies_dir: PathBuf,
}

enum Backend {
    Local(PathBuf),
    S3 { store: Arc<dyn ObjectStore>, prefix: String },
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Storage({})", self.inner.url)
    }
}

/// Blocks of stored files held in memory, least recently used out first.
#[derive(Default)]
struct BlockCache {
    budget: usize,
    bytes: usize,
    tick: u64,
    blocks: HashMap<(String, u64), (bytes::Bytes, u64)>,
    by_use: BTreeMap<u64, (String, u64)>,
    hits: u64,
    misses: u64,
}

impl BlockCache {
    fn get(&mut self, key: &(String, u64)) -> Option<bytes::Bytes> {
        self.tick += 1;
        let tick = self.tick;
        let (data, used) = self.blocks.get_mut(key)?;
        self.by_use.remove(used);
        *used = tick;
        self.by_use.insert(tick, key.clone());
        self.hits += 1;
        Some(data.clone())
    }

    fn put(&mut self, key: (String, u64), data: bytes::Bytes) {
        self.misses += 1;
        if data.len() > self.budget {
            return;
        }
        self.tick += 1;
        self.bytes += data.len();
        if let Some((old, used)) = self.blocks.insert(key.clone(), (data, self.tick)) {
            self.bytes -= old.len();
            self.by_use.remove(&used);
        }
        self.by_use.insert(self.tick, key);
        while self.bytes > self.budget {
            let Some((_, oldest)) = self.by_use.pop_first() else { break };
            if let Some((data, _)) = self.blocks.remove(&oldest) {
                self.bytes -= data.len();
            }
        }
    }
}

/// The runtime object-store requests run on (the callers are synchronous: request handlers on
/// the blocking pool, job workers).
fn runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("evidentia-storage")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| io::Error::other(format!("the object storage runtime did not start: {e}")))
}

/// Runs `f` on the storage runtime and waits for it (from any thread, async or not).
fn block<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> io::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().map_err(|_| io::Error::other("an object storage request was cut short"))
}

fn store_error(key: &str, e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            io::Error::new(io::ErrorKind::NotFound, format!("{key} is not in the object store"))
        }
        e => io::Error::other(format!("object storage, {key}: {e}")),
    }
}

impl Storage {
    /// Files in `root` (the data dir by default).
    pub fn local(root: &Path) -> Storage {
        Storage::with(Backend::Local(root.to_path_buf()), format!("file://{}", root.display()), root)
    }

    fn with(backend: Backend, url: String, data_dir: &Path) -> Storage {
        let budget = std::env::var("EVIDENTIA_STORAGE_CACHE_MB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(256)
            * 1024
            * 1024;
        Storage {
            inner: Arc::new(Inner {
                backend,
                url,
                cache: Mutex::new(BlockCache { budget, ..Default::default() }),
                copies_dir: data_dir.join("cache"),
            }),
        }
    }

    /// `--storage` / `EVIDENTIA_STORAGE`: empty for the data dir, `file:///PATH`, or
    /// `s3://BUCKET[/PREFIX]` (with `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, and `AWS_ALLOW_HTTP=true` for an endpoint without TLS).
    pub fn parse(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Storage> {
        let url = url.map(str::trim).unwrap_or("");
        if url.is_empty() {
            return Ok(Storage::local(data_dir));
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                anyhow::bail!("storage {url}: a file:// storage needs an absolute path (file:///srv/evidentia)");
            }
            return Ok(Storage::with(Backend::Local(PathBuf::from(path)), url.to_string(), data_dir));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                anyhow::bail!("storage {url}: no bucket (s3://BUCKET/PREFIX)");
            }
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| anyhow::anyhow!("storage {url}: {e}"))?;
            let prefix = prefix.trim_matches('/').to_string();
            return Ok(Storage::with(Backend::S3 { store: Arc::new(store), prefix }, url.to_string(), data_dir));
        }
        anyhow::bail!("storage {url}: not a storage this server knows (file:///PATH or s3://BUCKET/PREFIX)")
    }

    /// The storage as configured (no credentials in it).
    pub fn describe(&self) -> &str {
        &self.inner.url
    }

    /// The folder files are in, when they are on this machine's disk.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.inner.backend {
            Backend::Local(root) => Some(root),
            Backend::S3 { .. } => None,
        }
    }

    fn object(prefix: &str, key: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{prefix}/{key}"))
        }
    }

    /// Where `key` is on this machine's disk (file storage only).
    fn local_path(root: &Path, key: &str) -> PathBuf {
        root.join(key)
    }

    /// Stores the local file `src` as `key`, removing `src` (a rename on the same disk).
    pub fn put_file_moving(&self, key: &str, src: &Path) -> io::Result<()> {
        if let Backend::Local(root) = &self.inner.backend {
            let dest = Self::local_path(root, key);
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir)?;
            }
            if std::fs::rename(src, &dest).is_ok() {
                return Ok(());
            }
        }
        // Another file system, or object storage: a copy, then the original goes.
        self.put_file(key, src)?;
        std::fs::remove_file(src)
    }

    /// Stores a copy of the local file `src` as `key` (on object storage streamed up in parts;
    /// on disk written aside and renamed in, so a reader never sees half a file).
    pub fn put_file(&self, key: &str, src: &Path) -> io::Result<()> {
        match &self.inner.backend {
            Backend::Local(root) => {
                let dest = Self::local_path(root, key);
                if let Some(dir) = dest.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let part = dest.with_extension(format!("partial-{}", crate::auth::random_token()));
                std::fs::copy(src, &part)?;
                std::fs::File::open(&part)?.sync_all()?;
                std::fs::rename(&part, &dest)
            }
            Backend::S3 { store, prefix } => {
                let (store, path, key_s, src_path) =
                    (store.clone(), Self::object(prefix, key), key.to_string(), src.to_path_buf());
                block(async move {
                    let mut file = std::fs::File::open(&src_path)?;
                    let len = file.metadata()?.len();
                    if len <= PART as u64 {
                        let bytes = std::fs::read(&src_path)?;
                        store.put(&path, PutPayload::from(bytes)).await.map_err(|e| store_error(&key_s, e))?;
                    } else {
                        let upload = store.put_multipart(&path).await.map_err(|e| store_error(&key_s, e))?;
                        let mut parts = WriteMultipart::new_with_chunk_size(upload, PART);
                        let mut buf = vec![0u8; PART];
                        let sent = loop {
                            let n = match io::Read::read(&mut file, &mut buf) {
                                Ok(0) => break Ok(()),
                                Ok(n) => n,
                                Err(e) => break Err(e),
                            };
                            if let Err(e) = parts.wait_for_capacity(4).await {
                                break Err(store_error(&key_s, e));
                            }
                            parts.write(&buf[..n]);
                        };
                        // A failed upload is aborted: no part of it stays stored (and billed).
                        if let Err(e) = sent {
                            let _ = parts.abort().await;
                            return Err(e);
                        }
                        parts.finish().await.map_err(|e| store_error(&key_s, e))?;
                    }
                    Ok::<_, io::Error>(())
                })?
            }
        }
    }

    /// The SHA-256 of a stored file, read in pieces.
    pub fn sha256(&self, key: &str) -> io::Result<String> {
        use sha2::Digest;
        let len = self.size(key)?;
        let mut h = sha2::Sha256::new();
        let mut at = 0;
        while at < len {
            let n = (PART as u64).min(len - at);
            h.update(self.read_range(key, at..at + n)?);
            at += n;
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Checks the target of `migrate-data` before anything is copied: it may hold nothing but
    /// files of this storage of the same size (a copy cut short, which then resumes); any other
    /// file is refused, naming it. Returns the files of this storage that are there already,
    /// with their sizes, for [`Storage::copy_all`].
    pub fn check_copy_target(&self, to: &Storage) -> anyhow::Result<HashMap<String, u64>> {
        let mut already = HashMap::new();
        let mut foreign = Vec::new();
        for folder in FOLDERS {
            let mine: HashMap<String, u64> = self.list(folder)?.into_iter().collect();
            for (key, size) in to.list(folder)? {
                match mine.get(&key) {
                    Some(s) if *s == size => {
                        already.insert(key, size);
                    }
                    Some(s) => foreign.push(format!("{key} ({size} bytes, here {s})")),
                    None => foreign.push(key),
                }
            }
        }
        if !foreign.is_empty() {
            let more = if foreign.len() > 3 { format!(" and {} more", foreign.len() - 3) } else { String::new() };
            anyhow::bail!(
                "the target storage {} is not empty: it holds files that are not this installation's: {}{more}; \
                 nothing was copied",
                to.describe(),
                foreign[..foreign.len().min(3)].join(", ")
            );
        }
        Ok(already)
    }

    /// Copies every stored file (from a storage on this machine's disk) into `to`, each read back
    /// from `to` and checked: the same SHA-256 as the original, and for slides and models the
    /// one they are named by. A file of `already` (what [`Storage::check_copy_target`] found
    /// there: a copy cut short) that reads back with that SHA-256 is kept, not sent again.
    /// `progress` is told each file and whether it was sent.
    pub fn copy_all(
        &self,
        to: &Storage,
        already: &HashMap<String, u64>,
        mut progress: impl FnMut(&str, u64, bool),
    ) -> anyhow::Result<CopyReport> {
        let Backend::Local(root) = &self.inner.backend else {
            anyhow::bail!("migrate-data copies files from a storage on this machine's disk (the data dir)");
        };
        let mut report = CopyReport::default();
        for folder in FOLDERS {
            for (key, size) in self.list(folder)? {
                let src = Self::local_path(root, &key);
                let original = crate::slides::ingest::sha256_file(&src)?;
                if folder != "exports/dossiers" {
                    let named = key.rsplit('/').next().and_then(|n| n.split('.').next()).unwrap_or_default();
                    if named != original {
                        anyhow::bail!(
                            "{}: its SHA-256 is {original}, not the one it is named by; nothing more was copied",
                            src.display()
                        );
                    }
                }
                let there = already.contains_key(&key) && to.sha256(&key)? == original;
                if there {
                    report.kept += 1;
                } else {
                    to.put_file(&key, &src)?;
                    let copied = to.sha256(&key)?;
                    if copied != original {
                        anyhow::bail!(
                            "{key}: the copy in {} reads back with SHA-256 {copied}, not {original}",
                            to.describe()
                        );
                    }
                    report.files += 1;
                    report.bytes += size;
                }
                progress(&key, size, !there);
            }
        }
        Ok(report)
    }

    /// Stores `bytes` as `key` (small files: models, cards).
    pub fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        match &self.inner.backend {
            Backend::Local(root) => {
                let dest = Self::local_path(root, key);
                if let Some(dir) = dest.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let part = dest.with_extension("partial");
                std::fs::write(&part, &bytes)?;
                std::fs::rename(&part, &dest)
            }
            Backend::S3 { store, prefix } => {
                let (store, path, key) = (store.clone(), Self::object(prefix, key), key.to_string());
                block(async move {
                    store.put(&path, PutPayload::from(bytes)).await.map(|_| ()).map_err(|e| store_error(&key, e))
                })?
            }
        }
    }

    /// Whether `key` is stored.
    pub fn exists(&self, key: &str) -> io::Result<bool> {
        match self.size(key) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The stored file's length in bytes.
    pub fn size(&self, key: &str) -> io::Result<u64> {
        match &self.inner.backend {
            Backend::Local(root) => Ok(std::fs::metadata(Self::local_path(root, key))?.len()),
            Backend::S3 { store, prefix } => {
                let (store, path, key) = (store.clone(), Self::object(prefix, key), key.to_string());
                block(async move { store.head(&path).await.map(|m| m.size).map_err(|e| store_error(&key, e)) })?
            }
        }
    }

    /// Removes `key` (only files no record refers to: a copy whose record was not written).
    pub fn delete(&self, key: &str) -> io::Result<()> {
        match &self.inner.backend {
            Backend::Local(root) => match std::fs::remove_file(Self::local_path(root, key)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            Backend::S3 { store, prefix } => {
                let (store, path, key) = (store.clone(), Self::object(prefix, key), key.to_string());
                block(async move {
                    match store.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                        Err(e) => Err(store_error(&key, e)),
                    }
                })?
            }
        }
    }

    /// The keys under `folder` (e.g. `slides/`) with their sizes, in key order.
    pub fn list(&self, folder: &str) -> io::Result<Vec<(String, u64)>> {
        let folder = folder.trim_end_matches('/');
        let mut out = match &self.inner.backend {
            Backend::Local(root) => {
                let mut out = Vec::new();
                for e in std::fs::read_dir(Self::local_path(root, folder)).into_iter().flatten() {
                    let e = e?;
                    if e.file_type()?.is_file() {
                        out.push((format!("{folder}/{}", e.file_name().to_string_lossy()), e.metadata()?.len()));
                    }
                }
                out
            }
            Backend::S3 { store, prefix } => {
                let (store, path, skip) =
                    (store.clone(), Self::object(prefix, folder), if prefix.is_empty() { 0 } else { prefix.len() + 1 });
                block(async move {
                    let mut out = Vec::new();
                    let mut listing = store.list(Some(&path));
                    while let Some(meta) = listing.next().await {
                        let meta = meta.map_err(|e| store_error(path.as_ref(), e))?;
                        let key = meta.location.as_ref().get(skip..).unwrap_or_default().to_string();
                        // Only the folder's own files, as on disk.
                        if key.rsplit_once('/').is_some_and(|(dir, _)| dir == path.as_ref().get(skip..).unwrap_or("")) {
                            out.push((key, meta.size));
                        }
                    }
                    Ok::<_, io::Error>(out)
                })??
            }
        };
        out.sort();
        Ok(out)
    }

    /// Copies a stored file to the local file `dest` (written aside, renamed in), in pieces.
    pub fn download(&self, key: &str, dest: &Path) -> io::Result<()> {
        let part = dest.with_extension("download");
        let written = (|| {
            let mut out = std::fs::File::create(&part)?;
            let len = self.size(key)?;
            let mut at = 0;
            while at < len {
                let n = (PART as u64).min(len - at);
                io::Write::write_all(&mut out, &self.read_range(key, at..at + n)?)?;
                at += n;
            }
            out.sync_all()
        })();
        match written.and_then(|()| std::fs::rename(&part, dest)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
        }
    }

    /// The whole stored file (small files only: models, exports being copied).
    pub fn read(&self, key: &str) -> io::Result<Vec<u8>> {
        match &self.inner.backend {
            Backend::Local(root) => std::fs::read(Self::local_path(root, key)),
            Backend::S3 { store, prefix } => {
                let (store, path, key) = (store.clone(), Self::object(prefix, key), key.to_string());
                block(async move {
                    let got = store.get(&path).await.map_err(|e| store_error(&key, e))?;
                    got.bytes().await.map(|b| b.to_vec()).map_err(|e| store_error(&key, e))
                })?
            }
        }
    }

    /// The bytes `range` of a stored file, read directly (not through the cache: for streaming
    /// a file out once).
    pub fn read_range(&self, key: &str, range: std::ops::Range<u64>) -> io::Result<Vec<u8>> {
        match &self.inner.backend {
            Backend::Local(root) => {
                let file = std::fs::File::open(Self::local_path(root, key))?;
                let mut buf =
                    vec![0u8; usize::try_from(range.end.saturating_sub(range.start)).map_err(io::Error::other)?];
                std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, range.start)?;
                Ok(buf)
            }
            Backend::S3 { store, prefix } => {
                let (store, path, key) = (store.clone(), Self::object(prefix, key), key.to_string());
                block(async move {
                    store.get_range(&path, range).await.map(|b| b.to_vec()).map_err(|e| store_error(&key, e))
                })?
            }
        }
    }

    /// Random access to a stored file: the file itself, or range requests through the cache.
    pub fn open(&self, key: &str) -> io::Result<Arc<dyn ByteSource>> {
        match &self.inner.backend {
            Backend::Local(root) => {
                Ok(Arc::new(crate::slides::source::FileSource::open(&Self::local_path(root, key))?))
            }
            Backend::S3 { .. } => {
                let len = self.size(key)?;
                Ok(Arc::new(RangeSource { storage: self.clone(), key: key.to_string(), len }))
            }
        }
    }

    /// A file on this machine's disk holding `key` (for libraries that need a path, such as
    /// ONNX Runtime): the stored file itself on file storage; on object storage a copy in the
    /// data dir's `cache/`, fetched once and checked against `sha256` (the name it is stored by).
    pub fn local_copy(&self, key: &str, sha256: &str) -> io::Result<PathBuf> {
        if let Backend::Local(root) = &self.inner.backend {
            return Ok(Self::local_path(root, key));
        }
        let dest = self.inner.copies_dir.join(key);
        // A copy made before is used when it is whole (written aside, synced, renamed in; its
        // size checked against the stored file's).
        if std::fs::metadata(&dest).is_ok_and(|m| m.is_file() && Some(m.len()) == self.size(key).ok()) {
            return Ok(dest);
        }
        let bytes = self.read(key)?;
        let got = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if got != sha256 {
            return Err(io::Error::other(format!("{key} in the object store has SHA-256 {got}, expected {sha256}")));
        }
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A name of its own per writer: two threads fetching the same model never share one.
        let part = dest.with_extension(format!("partial-{}", crate::auth::random_token()));
        let written = std::fs::write(&part, &bytes)
            .and_then(|()| std::fs::File::open(&part)?.sync_all())
            .and_then(|()| std::fs::rename(&part, &dest));
        if written.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        written.map(|()| dest)
    }

    /// (cache hits, range requests) of reads from object storage, for `/metrics` and benchmarks.
    pub fn cache_stats(&self) -> (u64, u64) {
        let c = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        (c.hits, c.misses)
    }

    /// The blocks `first..=last` of `key`, from the cache or by one request for those missing.
    fn blocks(&self, key: &str, len: u64, first: u64, last: u64) -> io::Result<Vec<bytes::Bytes>> {
        let Backend::S3 { store, prefix } = &self.inner.backend else {
            return Err(io::Error::other("range reads are for object storage"));
        };
        let mut got: Vec<Option<bytes::Bytes>> = {
            let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            (first..=last).map(|b| cache.get(&(key.to_string(), b))).collect()
        };
        let missing: Vec<u64> = (first..=last).filter(|b| got[(b - first) as usize].is_none()).collect();
        if !missing.is_empty() {
            let ranges: Vec<std::ops::Range<u64>> =
                missing.iter().map(|b| b * BLOCK..((b + 1) * BLOCK).min(len)).collect();
            let (store, path, key_s) = (store.clone(), Self::object(prefix, key), key.to_string());
            let fetched =
                block(async move { store.get_ranges(&path, &ranges).await.map_err(|e| store_error(&key_s, e)) })??;
            let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            for (b, data) in missing.into_iter().zip(fetched) {
                // Its own bytes: a slice would keep the whole coalesced response alive.
                let data = bytes::Bytes::copy_from_slice(&data);
                cache.put((key.to_string(), b), data.clone());
                got[(b - first) as usize] = Some(data);
            }
        }
        Ok(got.into_iter().flatten().collect())
    }
}

/// A file in object storage, read by ranges (in whole cached blocks).
struct RangeSource {
    storage: Storage,
    key: String,
    len: u64,
}

impl ByteSource for RangeSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset.checked_add(buf.len() as u64).filter(|&e| e <= self.len).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} ends before byte {offset}+{}", self.key, buf.len()),
            )
        })?;
        let (first, last) = (offset / BLOCK, (end - 1) / BLOCK);
        let blocks = self.storage.blocks(&self.key, self.len, first, last)?;
        let mut written = 0usize;
        for (i, data) in blocks.iter().enumerate() {
            let block_start = (first + i as u64) * BLOCK;
            let from = (offset + written as u64 - block_start) as usize;
            let n = (data.len().saturating_sub(from)).min(buf.len() - written);
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} is shorter than its length", self.key),
                ));
            }
            buf[written..written + n].copy_from_slice(&data[from..from + n]);
            written += n;
        }
        if written != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than its length", self.key),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_name_file_or_s3_and_refuse_the_rest() {
        let dir = Path::new("/srv/data");
        assert_eq!(Storage::parse(None, dir).unwrap().local_root(), Some(dir));
        assert_eq!(Storage::parse(Some(" "), dir).unwrap().local_root(), Some(dir));
        assert_eq!(Storage::parse(Some("file:///mnt/x"), dir).unwrap().local_root(), Some(Path::new("/mnt/x")));
        assert!(Storage::parse(Some("file://rel/x"), dir).unwrap_err().to_string().contains("absolute path"));
        assert!(Storage::parse(Some("s3:///x"), dir).unwrap_err().to_string().contains("no bucket"));
        assert!(Storage::parse(Some("ftp://x"), dir).unwrap_err().to_string().contains("file:///PATH or s3://"));
        let s3 = Storage::parse(Some("s3://bucket/some/prefix"), dir).unwrap();
        assert!(s3.local_root().is_none());
        assert_eq!(s3.describe(), "s3://bucket/some/prefix");
    }

    #[test]
    fn the_block_cache_keeps_to_its_budget_and_drops_the_least_recently_used() {
        let mut c = BlockCache { budget: 3 * 10, ..Default::default() };
        for b in 0..3 {
            c.put(("k".into(), b), bytes::Bytes::from(vec![b as u8; 10]));
        }
        assert!(c.get(&("k".into(), 0)).is_some());
        c.put(("k".into(), 3), bytes::Bytes::from(vec![3u8; 10]));
        assert!(c.get(&("k".into(), 1)).is_none(), "block 1 was used least recently");
        assert!(c.get(&("k".into(), 0)).is_some() && c.get(&("k".into(), 3)).is_some());
        assert!(c.bytes <= c.budget);
    }

    #[test]
    fn local_files_move_in_list_read_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::local(dir.path());
        let src = dir.path().join("upload.tmp");
        std::fs::write(&src, b"slide bytes").unwrap();
        s.put_file_moving("slides/abc.svs", &src).unwrap();
        assert!(!src.exists());
        assert_eq!(s.list("slides/").unwrap(), vec![("slides/abc.svs".to_string(), 11)]);
        let mut buf = [0u8; 5];
        s.open("slides/abc.svs").unwrap().read_exact_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"bytes");
        assert_eq!(s.read("slides/abc.svs").unwrap(), b"slide bytes");
        s.delete("slides/abc.svs").unwrap();
        assert!(!s.exists("slides/abc.svs").unwrap());
        assert_eq!(s.size("slides/abc.svs").unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
