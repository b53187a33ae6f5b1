"""Dataset manifests (docs/architecture.md, "Where one image goes", step 1).

``build_manifest(layout, root, limit)`` turns a dataset root into a
:class:`Manifest`: ``table`` (the ``manifest.parquet`` contract) and
``bad_rows`` (every excluded image with the file at fault and how to fix it).
Layouts live in the ``LAYOUTS`` registry: sample, ilsvrc, kaggle, imagefolder.
"""

from pipeline.data.layouts import LAYOUTS, ManifestError
from pipeline.data.manifest import Manifest, build_manifest
from pipeline.data.sample_set import SAMPLE_PHOTOS, SamplePhoto
from pipeline.data.schema import BAD_ROWS_SCHEMA, MANIFEST_SCHEMA, SCHEMA_VERSION, Box

__all__ = [
    "BAD_ROWS_SCHEMA",
    "LAYOUTS",
    "MANIFEST_SCHEMA",
    "SAMPLE_PHOTOS",
    "SCHEMA_VERSION",
    "Box",
    "Manifest",
    "ManifestError",
    "SamplePhoto",
    "build_manifest",
]
