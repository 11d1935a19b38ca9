//! A bucket as a replica's source: `s3://BUCKET/PREFIX`, where
//! `distpoint publish DIR --to` put a package. The manifest and signature
//! are the objects `PREFIX/.distpoint/manifest.json` and `manifest.json.sig` (exact
//! bytes, checked like any other source's), each file is
//! `PREFIX/RELATIVE/PATH` read with ranged GETs through
//! [`S3Source`](crate::transfer::S3Source) and verified chunk by chunk by
//! the engine. The store is trusted no more than an HTTPS mirror.

use super::error::OriginError;
use super::source::{Counted, Origin, Traffic};
use crate::integrity::upload::{manifest_key, signature_key};
use crate::objstore::{Patience, Store, StoreSettings, StoreUrl};
use crate::transfer::source::BoxFuture;
use crate::transfer::{S3Source, Source};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A package in a bucket.
pub struct StoreOrigin {
    name: String,
    store: Store,
    traffic: Traffic,
}

impl StoreOrigin {
    /// The source `url`, with the bucket's `[origins]` settings from
    /// `stores`, else the `AWS_*` environment and profile files. Makes no
    /// request.
    pub fn new(
        url: &str,
        stores: &BTreeMap<String, StoreSettings>,
        traffic: Traffic,
    ) -> Result<StoreOrigin, OriginError> {
        let address = |reason: String| OriginError::Address {
            url: url.to_string(),
            reason,
            source: None,
        };
        let parsed = StoreUrl::parse(url).map_err(|e| address(e.to_string()))?;
        let settings = match stores.get(&parsed.bucket) {
            Some(s) => s.clone(),
            None => StoreSettings::from_env().map_err(|e| address(e.to_string()))?,
        };
        let store = Store::new(&parsed, &settings, Patience::Patient)
            .map_err(|e| address(e.to_string()))?;
        Ok(StoreOrigin {
            name: url.trim_end_matches('/').to_string(),
            store,
            traffic,
        })
    }

    async fn document(&self, key: String) -> Result<Option<Vec<u8>>, OriginError> {
        let got = self
            .store
            .get_optional(&key)
            .await
            .map_err(|e| OriginError::Store {
                url: self.name.clone(),
                source: Box::new(e),
            })?;
        if let Some(b) = &got {
            self.traffic.document(b.len()).await;
        }
        Ok(got.map(|b| b.to_vec()))
    }
}

impl Origin for StoreOrigin {
    fn name(&self) -> &str {
        &self.name
    }

    fn manifest(&self) -> BoxFuture<'_, Result<Option<Vec<u8>>, OriginError>> {
        Box::pin(self.document(manifest_key()))
    }

    fn signature(&self) -> BoxFuture<'_, Result<Option<Vec<u8>>, OriginError>> {
        Box::pin(self.document(signature_key()))
    }

    fn file(&self, rel: &str) -> Arc<dyn Source> {
        // Object keys are the relative paths themselves (not percent-encoded).
        Counted::source(
            Arc::new(S3Source::new(self.store.clone(), rel)),
            &self.traffic,
        )
    }
}
