//! Blob streams: recordings (site to hub) and voice files (hub to site), apart from the rows.
//!
//! Each blob travels on a QUIC bidirectional stream of its own, so a long upload never
//! holds up the sync stream's entries. The exchange ([`BlobMessage`]):
//!
//! 1. the sender opens the stream with `Offer { kind, sha256, size }`;
//! 2. the receiver answers `Resume { offset }`: how many bytes it already holds, so a
//!    transfer broken by a lost link goes on where it stopped (and a complete one costs a
//!    single round trip);
//! 3. the sender writes the raw bytes from `offset` to the end, paced by a [`RateCap`],
//!    and finishes its half of the stream;
//! 4. the receiver checks the SHA-256 of the whole blob and answers
//!    `Done { accepted, reason }`. Only an accepted blob is ever used.
//!
//! [`BlobDir`] is a ready file-backed implementation of the receiving and sending ends
//! (partial file, append at the held offset, hash check and atomic rename on finish) that
//! the hub's and the appliance's stores can delegate to.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sync_protocol::{BlobKind, BlobMessage};

use crate::wire::{FrameStream, WireError};
use crate::{StoreError, StoreResult};

/// Largest raw chunk written or read at a time.
const MAX_CHUNK: usize = 64 * 1024;

/// A blob by content: its SHA-256 and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobRef {
    pub sha256: [u8; 32],
    pub size: u64,
}

/// What a blob's bytes are read through.
pub trait BlobRead: Read + Seek + Send {}
impl<T: Read + Seek + Send> BlobRead for T {}

/// A blob opened for sending.
pub struct OpenBlob {
    pub size: u64,
    pub reader: Box<dyn BlobRead>,
}

impl std::fmt::Debug for OpenBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBlob").field("size", &self.size).finish_non_exhaustive()
    }
}

/// The receiver's verdict on a complete blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobCheck {
    /// The hash matched; the blob is stored.
    Accepted,
    /// The hash did not match (or the size was wrong); the partial copy was discarded and
    /// the next offer starts from 0.
    Rejected { reason: String },
}

/// Why a blob transfer stopped. Either end retries on a later connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BlobError {
    /// The stream broke (link lost, peer reset, bad frame).
    #[error("blob stream: {0}")]
    Stream(#[from] WireError),
    /// A store call failed.
    #[error("blob store: {0}")]
    Store(#[from] StoreError),
    /// The peer broke the exchange (wrong message, offset past the end, extra bytes).
    #[error("blob exchange: {0}")]
    Protocol(String),
    /// The sending store no longer has the blob it listed.
    #[error("blob {0} is listed but the store cannot open it")]
    Missing(String),
    /// Reading the blob failed.
    #[error("reading blob {sha}: {source}")]
    Read { sha: String, source: std::io::Error },
}

/// How a send ended when the exchange itself went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendOutcome {
    /// The receiver checked the hash and kept it (`sent` bytes went on this stream).
    Accepted { sent: u64 },
    /// The receiver refused it (hash mismatch, kind it does not take, store failure).
    Rejected { reason: String },
}

/// A bandwidth cap shared by every stream that calls [`RateCap::pace`]: a leaky bucket
/// with no burst credit, so over any period the bytes sent stay within the rate plus one
/// chunk. `None` (or 0) is no cap. Cloning shares the cap; [`RateCap::set`] applies to
/// transfers under way from their next chunk.
#[derive(Clone, Debug, Default)]
pub struct RateCap {
    inner: Arc<CapInner>,
}

#[derive(Debug, Default)]
struct CapInner {
    bytes_per_sec: AtomicU64,
    next_free: Mutex<Option<tokio::time::Instant>>,
}

impl RateCap {
    pub fn new(bytes_per_sec: Option<u64>) -> Self {
        let cap = RateCap::default();
        cap.set(bytes_per_sec);
        cap
    }

    pub fn set(&self, bytes_per_sec: Option<u64>) {
        self.inner.bytes_per_sec.store(bytes_per_sec.unwrap_or(0), Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<u64> {
        match self.inner.bytes_per_sec.load(Ordering::Relaxed) {
            0 => None,
            rate => Some(rate),
        }
    }

    /// A chunk size that keeps pacing smooth: about a twentieth of a second's worth.
    fn chunk_size(&self) -> usize {
        match self.get() {
            None => MAX_CHUNK,
            Some(rate) => usize::try_from(rate / 20).unwrap_or(MAX_CHUNK).clamp(1024, MAX_CHUNK),
        }
    }

    /// Wait until `n` bytes may go out, reserving their share of time.
    pub async fn pace(&self, n: usize) {
        let Some(rate) = self.get() else { return };
        let start = {
            let Ok(mut next_free) = self.inner.next_free.lock() else { return };
            let now = tokio::time::Instant::now();
            let start = next_free.map_or(now, |next| next.max(now));
            *next_free = Some(start + Duration::from_secs_f64(n as f64 / rate as f64));
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// The receiving end of blob streams, as a store offers it.
pub(crate) trait BlobSink: Send + Sync + 'static {
    /// Whether this end takes blobs of `kind` at all.
    fn accepts(&self, kind: BlobKind) -> bool;
    fn held(&self, sha256: &[u8; 32]) -> StoreResult<u64>;
    fn append(&self, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> StoreResult<()>;
    fn finish(&self, sha256: &[u8; 32]) -> StoreResult<BlobCheck>;
}

async fn blocking<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|join| BlobError::Store(StoreError::Other(format!("store call panicked: {join}"))))
}

/// Send one blob on a new stream of `connection`. `open` runs on a blocking thread, and
/// only if the receiver lacks some of the bytes.
pub(crate) async fn send_blob(
    connection: &quinn::Connection,
    kind: BlobKind,
    blob: BlobRef,
    open: impl FnOnce() -> StoreResult<Option<OpenBlob>> + Send + 'static,
    cap: Option<&RateCap>,
) -> Result<SendOutcome, BlobError> {
    let sha = hex::encode(blob.sha256);
    let (send, recv) = connection.open_bi().await.map_err(|error| BlobError::Protocol(error.to_string()))?;
    let mut stream = FrameStream::new(send, recv);
    stream.send(&BlobMessage::Offer { kind, sha256: blob.sha256, size: blob.size }).await?;
    let offset = match stream.recv::<BlobMessage>().await? {
        Some(BlobMessage::Resume { offset }) if offset <= blob.size => offset,
        Some(BlobMessage::Resume { offset }) => {
            return Err(BlobError::Protocol(format!("receiver holds {offset} bytes of a {}-byte blob", blob.size)));
        }
        Some(BlobMessage::Done { reason, .. }) => return Ok(SendOutcome::Rejected { reason }),
        other => return Err(BlobError::Protocol(format!("expected Resume, got {other:?}"))),
    };
    let mut sent = 0u64;
    if offset < blob.size {
        let opened = blocking(open).await??.ok_or_else(|| BlobError::Missing(sha.clone()))?;
        if opened.size != blob.size {
            return Err(BlobError::Protocol(format!("blob {sha} is {} bytes, listed as {}", opened.size, blob.size)));
        }
        let mut reader = opened.reader;
        let sha_for_seek = sha.clone();
        reader = blocking(move || {
            reader.seek(SeekFrom::Start(offset)).map(|_| reader).map_err(|source| BlobError::Read { sha: sha_for_seek, source })
        })
        .await??;
        let mut position = offset;
        while position < blob.size {
            let want = cap.map_or(MAX_CHUNK, RateCap::chunk_size).min(usize::try_from(blob.size - position).unwrap_or(MAX_CHUNK));
            let sha_for_read = sha.clone();
            let (returned, chunk) = blocking(move || {
                let mut chunk = vec![0u8; want];
                let result = reader.read_exact(&mut chunk).map(|()| chunk);
                (reader, result)
            })
            .await?;
            reader = returned;
            let chunk = chunk.map_err(|source| BlobError::Read { sha: sha_for_read, source })?;
            if let Some(cap) = cap {
                cap.pace(chunk.len()).await;
            }
            stream.send_raw(&chunk).await?;
            position += chunk.len() as u64;
            sent += chunk.len() as u64;
        }
    }
    stream.finish();
    match stream.recv::<BlobMessage>().await? {
        Some(BlobMessage::Done { accepted: true, .. }) => Ok(SendOutcome::Accepted { sent }),
        Some(BlobMessage::Done { accepted: false, reason }) => Ok(SendOutcome::Rejected { reason }),
        other => Err(BlobError::Protocol(format!("expected Done, got {other:?}"))),
    }
}

/// What a received blob stream came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Received {
    Accepted { kind: BlobKind, blob: BlobRef, resumed_from: u64 },
    Rejected { kind: BlobKind, blob: BlobRef, reason: String },
}

/// Serve one blob stream the peer opened, storing through `sink`.
pub(crate) async fn receive_blob<K: BlobSink>(mut stream: FrameStream, sink: Arc<K>) -> Result<Received, BlobError> {
    let (kind, sha256, size) = match stream.recv::<BlobMessage>().await? {
        Some(BlobMessage::Offer { kind, sha256, size }) => (kind, sha256, size),
        other => return Err(BlobError::Protocol(format!("expected Offer, got {other:?}"))),
    };
    let blob = BlobRef { sha256, size };
    let reject = |reason: String| Received::Rejected { kind, blob, reason };
    if !sink.accepts(kind) {
        let reason = format!("this end does not take {kind:?} blobs");
        stream.send(&BlobMessage::Done { accepted: false, reason: reason.clone() }).await?;
        stream.finish();
        return Ok(reject(reason));
    }
    let held = {
        let sink = sink.clone();
        blocking(move || sink.held(&sha256)).await??
    };
    // A copy longer than the blob is damaged: let the hash check discard it.
    let resumed_from = held.min(size);
    stream.send(&BlobMessage::Resume { offset: resumed_from }).await?;
    let mut position = held;
    while position < size {
        let Some(bytes) = stream.recv_raw().await? else {
            return Err(BlobError::Protocol(format!(
                "sender finished after {position} of {size} bytes of {}",
                hex::encode(sha256)
            )));
        };
        if position + bytes.len() as u64 > size {
            return Err(BlobError::Protocol(format!("sender wrote past the {size}-byte end of {}", hex::encode(sha256))));
        }
        let at = position;
        position += bytes.len() as u64;
        let sink = sink.clone();
        blocking(move || sink.append(&sha256, at, &bytes)).await??;
    }
    let check = {
        let sink = sink.clone();
        blocking(move || sink.finish(&sha256)).await??
    };
    let (accepted, reason) = match &check {
        BlobCheck::Accepted => (true, String::new()),
        BlobCheck::Rejected { reason } => (false, reason.clone()),
    };
    stream.send(&BlobMessage::Done { accepted, reason: reason.clone() }).await?;
    stream.finish();
    Ok(if accepted { Received::Accepted { kind, blob, resumed_from } } else { reject(reason) })
}

/// Accept the blob streams the peer opens on `connection` until it closes, serving each on
/// a task of its own so that a slow upload never blocks a wanted one. `peer` names the
/// other end in logs.
pub(crate) async fn serve_blob_streams<K: BlobSink>(connection: quinn::Connection, sink: Arc<K>, peer: String) {
    let mut streams = tokio::task::JoinSet::new();
    while let Ok((send, recv)) = connection.accept_bi().await {
        let sink = sink.clone();
        let peer = peer.clone();
        streams.spawn(async move {
            match receive_blob(FrameStream::new(send, recv), sink).await {
                Ok(Received::Accepted { kind, blob, resumed_from }) => tracing::info!(
                    %peer, ?kind, sha = %hex::encode(blob.sha256), size = blob.size, resumed_from, "blob received and verified"
                ),
                Ok(Received::Rejected { kind, blob, reason }) => tracing::warn!(
                    %peer, ?kind, sha = %hex::encode(blob.sha256), reason, "blob refused"
                ),
                Err(error) => tracing::info!(%peer, %error, "blob transfer stopped; it resumes on a later stream"),
            }
        });
        // Reap finished transfers so the set does not grow with every blob.
        while streams.try_join_next().is_some() {}
    }
}

/// SHA-256 of everything `reader` yields.
pub fn sha256_of(mut reader: impl Read) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; MAX_CHUNK];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..n]);
    }
}

/// Blobs as files in one directory, named by the hex of their SHA-256; a partial one is
/// `<hex>.part` until its hash checks out, then renamed into place. Safe to share between
/// threads: each call opens its own file handles, and the link never appends to one blob
/// from two streams at once (appends must come at the held offset, or they fail).
#[derive(Debug, Clone)]
pub struct BlobDir {
    dir: PathBuf,
}

impl BlobDir {
    /// Use (and create if missing) `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(BlobDir { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the complete blob lives (whether or not it is there yet).
    pub fn path_of(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir.join(hex::encode(sha256))
    }

    fn part_of(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.part", hex::encode(sha256)))
    }

    /// Whether the complete, verified blob is here.
    pub fn has(&self, sha256: &[u8; 32]) -> bool {
        self.path_of(sha256).is_file()
    }

    /// Bytes held: the full size if complete, else the partial file's length, else 0.
    pub fn held(&self, sha256: &[u8; 32]) -> std::io::Result<u64> {
        for path in [self.path_of(sha256), self.part_of(sha256)] {
            match std::fs::metadata(&path) {
                Ok(meta) => return Ok(meta.len()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(0)
    }

    /// Append `bytes` at `offset`, which must be the partial file's current length.
    pub fn append(&self, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        if self.has(sha256) {
            return Ok(());
        }
        let mut file = OpenOptions::new().create(true).append(true).open(self.part_of(sha256))?;
        let length = file.metadata()?.len();
        if length != offset {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("append at {offset} but the partial blob {} holds {length} bytes", hex::encode(sha256)),
            ));
        }
        file.write_all(bytes)
    }

    /// Check the partial blob's hash: rename it into place if it matches (after syncing it
    /// to disk), delete it if not.
    pub fn finish(&self, sha256: &[u8; 32]) -> std::io::Result<BlobCheck> {
        if self.has(sha256) {
            return Ok(BlobCheck::Accepted);
        }
        let part = self.part_of(sha256);
        let actual = sha256_of(File::open(&part)?)?;
        if &actual != sha256 {
            std::fs::remove_file(&part)?;
            return Ok(BlobCheck::Rejected {
                reason: format!("content hashes to {}, not {}; discarded", hex::encode(actual), hex::encode(sha256)),
            });
        }
        File::open(&part)?.sync_all()?;
        std::fs::rename(&part, self.path_of(sha256))?;
        if let Ok(dir) = File::open(&self.dir) {
            // Makes the rename durable; a failure here only risks redoing the transfer.
            let _ = dir.sync_all();
        }
        Ok(BlobCheck::Accepted)
    }

    /// Store a complete blob from memory (for instance a finished recording).
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<BlobRef> {
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        if !self.has(&sha256) {
            let part = self.part_of(&sha256);
            std::fs::write(&part, bytes)?;
            File::open(&part)?.sync_all()?;
            std::fs::rename(&part, self.path_of(&sha256))?;
        }
        Ok(BlobRef { sha256, size: bytes.len() as u64 })
    }

    /// Open a complete blob for sending.
    pub fn open(&self, sha256: &[u8; 32]) -> std::io::Result<Option<OpenBlob>> {
        match File::open(self.path_of(sha256)) {
            Ok(file) => {
                let size = file.metadata()?.len();
                Ok(Some(OpenBlob { size, reader: Box::new(file) }))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_dir_resumes_and_checks_the_hash() {
        let temp = tempfile::tempdir().unwrap();
        let source = BlobDir::new(temp.path().join("a")).unwrap();
        let target = BlobDir::new(temp.path().join("b")).unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let blob = source.put(&bytes).unwrap();
        assert_eq!(target.held(&blob.sha256).unwrap(), 0);
        target.append(&blob.sha256, 0, &bytes[..40_000]).unwrap();
        assert_eq!(target.held(&blob.sha256).unwrap(), 40_000);
        assert!(target.append(&blob.sha256, 30_000, &bytes[30_000..]).is_err(), "a gap or overlap is refused");
        target.append(&blob.sha256, 40_000, &bytes[40_000..]).unwrap();
        assert_eq!(target.finish(&blob.sha256).unwrap(), BlobCheck::Accepted);
        assert!(target.has(&blob.sha256));
        assert_eq!(std::fs::read(target.path_of(&blob.sha256)).unwrap(), bytes);

        // Corrupted content is discarded, not accepted.
        let other = [7u8; 32];
        target.append(&other, 0, b"not what the hash says").unwrap();
        assert!(matches!(target.finish(&other).unwrap(), BlobCheck::Rejected { .. }));
        assert_eq!(target.held(&other).unwrap(), 0);
        assert!(!target.has(&other));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_cap_paces_without_burst_credit() {
        let cap = RateCap::new(Some(10_000));
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            cap.pace(2_000).await;
        }
        // 20 kB at 10 kB/s: the last chunk may start at 1.8 s.
        assert_eq!(start.elapsed(), Duration::from_millis(1800));
        cap.set(None);
        let before = tokio::time::Instant::now();
        cap.pace(1_000_000).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
