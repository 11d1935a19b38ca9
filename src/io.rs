//! Bytes in and out: the one positioned file read ([`read_at`]), and the
//! connection's byte stream as hyper sees it — write coalescing and an
//! activity clock for the idle timeout.
//!
//! Why coalesce: rustls turns every plaintext write into at least one TLS
//! record, and tokio-rustls flushes to the socket after each write. HTTP/2
//! writes a 9-byte frame head and a 16 KiB payload as separate writes, so
//! without coalescing a download becomes thousands of tiny records and
//! syscalls (static-web-server's HTTP/2 path shows exactly this). Buffering up
//! to [`COALESCE_BYTES`] until hyper flushes gives full 16 KiB records and
//! large socket writes on HTTP/1.1 and HTTP/2 alike.
//!
//! h2 flushes after every DATA frame (its encoder holds one chained payload
//! at a time), so honouring each flush would undo the coalescing. A flush is
//! therefore deferred once when new bytes arrived since the previous flush
//! and less than [`FLUSH_AT_LEAST`] is buffered: the task is woken at once,
//! and the next flush call — which hyper and h2 make on every poll — drains
//! if the writer had nothing more to add. Data is never held while the
//! writer is idle, and shutdown always drains.

use std::fs::File;
use std::io::{self, IoSlice};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `pread` up to `len` bytes at `offset` into a fresh buffer; fewer only at
/// the end of the file. The file position is never touched, so one
/// descriptor can be shared by every reader.
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    // Read straight into uninitialised capacity (rustix's safe `spare_capacity`):
    // zeroing a fresh 1 MiB buffer per chunk first cost ~8% of the server's CPU
    // under load (perf: memset and its page faults).
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The allocator may have given more capacity than asked; never return more.
    buf.truncate(len);
    Ok(buf)
}

/// Replace `path` with `bytes` so that a crash leaves the old content or
/// the new, never a mix or nothing: a sibling `NAME.tmp`, fsync, rename,
/// then the folder synced (see [`sync_dir`]).
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    {
        let mut f = File::create(&tmp)?;
        io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Make the renames in `dir` durable. Best effort: the data files are
/// already synced, and failing a finished write over the folder's fsync
/// is not worth it.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes are gathered up to this many bytes before they reach TLS.
pub const COALESCE_BYTES: usize = 256 * 1024;
/// A flush with at least this much buffered always goes through.
pub const FLUSH_AT_LEAST: usize = 64 * 1024;
/// A write smaller than this is protocol housekeeping, not response bytes:
/// an HTTP/2 PING or its answer is 17 bytes, SETTINGS, WINDOW_UPDATE and
/// RST_STREAM fewer; a response's HEADERS or DATA frame (or an HTTP/1.1
/// response) is more.
pub const ACTIVE_WRITE: usize = 32;

/// When a connection last did something for a client — received a request
/// (reported by the HTTP layer through [`Activity::touch`]) or took response
/// bytes to send — shared with its idle watchdog.
///
/// Housekeeping does not count: the server's own keep-alive PING and the
/// client's answer would otherwise keep a connection that does nothing open
/// forever, and a download stalled at a zero window is idle too (no DATA can
/// be written). Reads never count, so a client cannot keep a connection by
/// trickling control frames.
#[derive(Debug)]
pub struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    /// A clock that starts now.
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Something happened for a client now.
    pub fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last byte moved.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }

    /// Resolves once the connection has been idle for `limit`.
    pub async fn idle_timeout(&self, limit: Duration) {
        loop {
            let idle = self.idle_for();
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }
}

/// A byte stream with coalesced writes and activity tracking.
pub struct ConnIo<T> {
    inner: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed to `inner`.
    written: usize,
    /// Bytes were added since the last flush call.
    fresh: bool,
    activity: Arc<Activity>,
}

impl<T> ConnIo<T> {
    /// Wrap `inner`, reporting activity to `activity`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        ConnIo {
            inner,
            buf: Vec::with_capacity(COALESCE_BYTES),
            written: 0,
            fresh: false,
            activity,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite + Unpin> ConnIo<T> {
    /// Hand everything buffered to the inner stream.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if this.buf.len() + total > COALESCE_BYTES {
            ready!(this.poll_drain(cx))?;
        }
        // Taken to send (a full buffer waits above, so a stalled client stops this).
        if total >= ACTIVE_WRITE {
            this.activity.touch();
        }
        // A write at least as large as the buffer gains nothing from a copy.
        if total >= COALESCE_BYTES {
            return Poll::Ready(ready!(
                Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
            ));
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        this.fresh = true;
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let buffered = this.buf.len() - this.written;
        if this.fresh && buffered > 0 && buffered < FLUSH_AT_LEAST {
            // More may follow right away (the next h2 frame): let it join.
            this.fresh = false;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        this.fresh = false;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn replace_file_leaves_the_new_content_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("current");
        replace_file(&path, b"old").unwrap();
        replace_file(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("current")]);
    }

    /// Records the size of every write it receives.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<usize>,
        data: Vec<u8>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.push(b.len());
            self.data.extend_from_slice(b);
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn small_writes_reach_the_stream_together() {
        let mut io = ConnIo::new(Recorder::default(), Activity::new());
        let mut expect = Vec::new();
        for i in 0..100u8 {
            let head = [i; 9];
            let payload = vec![i; 16 * 1024];
            io.write_all(&head).await.unwrap();
            io.write_all(&payload).await.unwrap();
            // h2 flushes after every frame.
            io.flush().await.unwrap();
            expect.extend_from_slice(&head);
            expect.extend_from_slice(&payload);
        }
        io.flush().await.unwrap();
        io.flush().await.unwrap();
        let rec = io.get_ref();
        assert_eq!(rec.data, expect, "bytes and order preserved");
        // 100 frames of ~16 KiB, flushed after each, in >= 64 KiB writes: about 25, not 200.
        assert!(rec.writes.len() <= 26, "writes: {:?}", rec.writes);
        assert!(rec.writes[..rec.writes.len() - 1]
            .iter()
            .all(|&n| n >= FLUSH_AT_LEAST));
    }

    #[tokio::test]
    async fn an_idle_writer_is_drained_by_its_second_flush() {
        let mut io = ConnIo::new(Recorder::default(), Activity::new());
        io.write_all(b"small response").await.unwrap();
        io.flush().await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(io.get_ref().data, b"small response");
    }
}
