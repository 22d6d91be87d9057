"""Feature cache: encode a manifest once, train on the stored features many times.

``omnifuse encode MANIFEST --encoders text=minilm,image=effnet-lite0 --out DIR`` (or
:func:`encode_manifest`) writes::

    DIR/cache.json                       columns → kind, encoder, config, fingerprint, dim, storage
    DIR/<column>/shard-00000.safetensors pooled (N, D) f32; tokens (ΣT, D) + offsets (N+1) int64;
                                         metadata: the rows' content keys and the group's failures
    DIR/<column>/sources.jsonl           media path → size, mtime, content key
    DIR/errors.jsonl                     the items the last run skipped, with reasons

Design choices:

- Keys are the SHA-256 of the content (UTF-8 text, file bytes): duplicates are encoded once and a
  moved file keeps its features. The encoder's fingerprint (name, config, compute dtype and a hash
  of all its weights, for pretrained and trainable encoders alike) belongs to the column in
  ``cache.json`` rather than to each key; reopening a column with another fingerprint is a
  :class:`~omnifuse.errors.ConfigError`, so features of two encoders never mix.
- Each shard carries its own keys in its safetensors metadata and is written to a temporary file,
  fsynced and renamed. The shard is therefore the only commit record: an interruption loses at
  most the shard in progress, no half-written shard is ever trusted, and there is no separate
  index to fall out of step with the shards.
- Work is cut into shard-sized groups of distinct pending contents in manifest order, and each
  group into batches, so a resumed run encodes the same batches as an uninterrupted one and
  produces bit-identical features. Items that fail preprocessing are recorded in their group's
  shard and not retried on resume (their content is the same, so the failure would be too).
- Reading (:class:`FeatureCache`, :class:`CachedFeatureDataset`) opens shards with
  ``safetensors.safe_open`` (memory-mapped) on first use and never touches an encoder.
"""

from omnifuse.data.cache.dataset import (
    CachedBatch,
    CachedFeatureDataset,
    CachedSample,
    collate_cached,
)
from omnifuse.data.cache.encode import encode_manifest
from omnifuse.data.cache.keys import content_key, file_key, text_key
from omnifuse.data.cache.reader import FeatureCache
from omnifuse.data.cache.report import ColumnReport, EncodeReport, SkippedItem
from omnifuse.data.cache.store import ColumnInfo

__all__ = [
    "CachedBatch",
    "CachedFeatureDataset",
    "CachedSample",
    "ColumnInfo",
    "ColumnReport",
    "EncodeReport",
    "FeatureCache",
    "SkippedItem",
    "collate_cached",
    "content_key",
    "encode_manifest",
    "file_key",
    "text_key",
]
