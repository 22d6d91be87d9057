"""``omnifuse data import``: COCO captions, VQA v2, Hugging Face datasets on disk, WebDataset
shards and parquet files into a manifest (JSONL + schema), one record at a time.

Media inside the source (parquet and Arrow bytes, tar members) are written to files under the
output folder; media that are already files (COCO and VQA images) are referenced where they
lie. A record that cannot be imported is skipped and reported by its position in the source, as
manifest checks report lines; the manifest then passes ``omnifuse data check --decode``.
"""

from omnifuse.data.importers.registry import formats, import_source, importers
from omnifuse.data.importers.sink import ImportIssue, ImportOptions, ImportReport

__all__ = ["ImportIssue", "ImportOptions", "ImportReport", "formats", "import_source", "importers"]
