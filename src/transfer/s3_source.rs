//! An object in an S3-compatible store as a [`Source`]: each read is a
//! ranged `GET` through [`crate::objstore`], verified by the engine like
//! any other source's bytes. The object's entity tag from the first answer
//! goes back as `If-Match`, so a replaced object is [`ReadErrorKind::Changed`]
//! instead of a mix of two versions' bytes.

use super::source::{
    BoxFuture, ReadError, ReadErrorKind, ReadRequest, Reader, Reply, Source, Validator,
};
use crate::objstore::{Store, StoreError, StoreErrorKind};
use futures_util::StreamExt;
use std::time::Duration;

/// One object of one store.
pub struct S3Source {
    store: Store,
    key: String,
    name: String,
}

impl S3Source {
    /// The object at `key` (a full key: the store's prefix is not added to
    /// it when the store is a bucket's root).
    pub fn new(store: Store, key: impl Into<String>) -> S3Source {
        let key = key.into();
        S3Source {
            name: store.url().join(&key),
            store,
            key,
        }
    }
}

/// What a store failure means to the engine.
pub fn read_error(e: StoreError) -> ReadError {
    let kind = match e.kind {
        StoreErrorKind::NotFound => ReadErrorKind::Status(404),
        StoreErrorKind::Denied => ReadErrorKind::Status(403),
        StoreErrorKind::Changed => ReadErrorKind::Changed,
        StoreErrorKind::Settings => ReadErrorKind::Settings,
        StoreErrorKind::Unreachable | StoreErrorKind::Other => ReadErrorKind::Transient {
            wait: Duration::ZERO,
        },
    };
    let message = e.message.clone();
    ReadError::caused(kind, message, e)
}

impl Source for S3Source {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&self) -> BoxFuture<'_, Result<Box<dyn Reader>, ReadError>> {
        // object_store keeps its own connection pool: a reader is only a handle.
        let reader = S3Reader {
            store: self.store.clone(),
            key: self.key.clone(),
            name: self.name.clone(),
        };
        Box::pin(async move { Ok(Box::new(reader) as Box<dyn Reader>) })
    }
}

struct S3Reader {
    store: Store,
    key: String,
    name: String,
}

impl Reader for S3Reader {
    fn read<'a>(&'a mut self, req: ReadRequest<'a>) -> BoxFuture<'a, Result<Reply, ReadError>> {
        Box::pin(async move {
            let if_match = match req.validator {
                Some(Validator::ETag(t)) => Some(t.as_str()),
                _ => None,
            };
            let (info, stream) = self
                .store
                .get_stream(&self.key, req.start..req.end, if_match)
                .await
                .map_err(read_error)?;
            if info.size != req.size {
                return Err(ReadError::new(
                    ReadErrorKind::Changed,
                    format!(
                        "{}: the object has {} bytes, the manifest says {}",
                        self.name, info.size, req.size
                    ),
                ));
            }
            let body = stream.map(|piece| piece.map_err(read_error)).boxed();
            Ok(Reply {
                validator: info.etag.map(Validator::ETag),
                body,
            })
        })
    }

    fn protocol(&self) -> Option<&'static str> {
        Some("S3")
    }
}
