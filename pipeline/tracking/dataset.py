"""The run's input as an MLflow dataset, so the runs table's Dataset column names it.

What ``mlflow.log_input(dataset, context="eval")`` would log, built for the
client API (the Tracker logs with explicit run ids, never through the fluent
active run): a metadata-only dataset (the images stay where they are) whose

- name is the layout and root, as the ``dataset`` tag spells it (``ilsvrc:/data/val``);
- digest is :func:`pipeline.results.provenance.dataset_hash` of the manifest (ids,
  labels, boxes), the ``dataset_hash`` tag, so two runs on the same images
  share one dataset entry and the UI can filter runs by it;
- source is the root's URI (``file:///...`` or an object-store URI as given);
  the embedded ``sample`` set has no root and points at the module defining it;
- profile holds the image and bad-row counts.

The context ("eval": the images evaluate pretrained networks; it is what
``mlflow.evaluate`` logs for an evaluation set) is only a label in MLflow 3.17's UI:
the runs table, the run page and the dataset drawer show it beside the name, and no
view is chosen by it. Which views a run opens in (GenAI's, with an "Evaluations"
breadcrumb, or model training's) is the UI's ``workflowType`` switch: the URL's
parameter, else the browser's last choice of the sidebar's switch, else GenAI. A run
clicked in the runs table loses the parameter, so a fresh browser shows it in GenAI's
views whatever the context; the links foveabench prints and writes set the parameter
(pipeline.tracking.urls), and choosing "Model training" in the sidebar once is remembered.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from pipeline.results import provenance

CONTEXT = "eval"  # a benchmark evaluates pretrained networks on its images


class ManifestDataset(MetaDataset):
    """A metadata-only dataset that also carries a profile (MetaDataset logs none)."""

    def __init__(
        self, source: DatasetSource, name: str, digest: str, profile: dict[str, Any]
    ) -> None:
        self._profile = profile
        super().__init__(source=source, name=name, digest=digest)

    @property
    def profile(self) -> dict[str, Any]:
        return self._profile

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self._profile)}


def source_uri(root: str | None) -> str:
    """The dataset root as a URI; for the embedded sample set, the module that defines it."""
    if root is None:
        from pipeline.data import sample_set

        return Path(sample_set.__file__).resolve().as_uri()
    return root if "://" in root else Path(root).resolve().as_uri()


def manifest_dataset(
    layout: str, root: str | None, manifest: pa.Table, n_bad_rows: int = 0
) -> ManifestDataset:
    with warnings.catch_warnings():  # file URIs resolve to two equivalent local sources
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(source_uri(root))
    return ManifestDataset(
        source=source,
        name=f"{layout}:{root or ''}",
        digest=provenance.dataset_hash(manifest),
        profile={"num_rows": manifest.num_rows, "bad_rows": n_bad_rows},
    )


def dataset_input(
    layout: str, root: str | None, manifest: pa.Table, n_bad_rows: int = 0
) -> DatasetInput:
    """The ``DatasetInput`` that ``mlflow.log_input(dataset, context="eval")`` builds."""
    dataset = manifest_dataset(layout, root, manifest, n_bad_rows)
    tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value=CONTEXT)]
    return DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags)
