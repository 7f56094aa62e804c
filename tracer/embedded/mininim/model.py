"""Build the mini-NIM model files: `model.npz` (weights) and `config.json`.

The model is a character-level next-token predictor: the last CONTEXT characters are
embedded, concatenated and passed through a 2-layer tanh MLP whose logits are added to a
bigram table counted from a small built-in corpus, so sampled text looks vaguely English.
Everything is derived from a fixed seed, so two builds hold identical arrays.

Run as `python -m tracer.embedded.mininim.model DIR`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

MODEL_NAME = "mininim/tiny-char-mlp"
VOCAB = " abcdefghijklmnopqrstuvwxyz.,'?!"
CONTEXT, EMBED_DIM, HIDDEN_DIM = 4, 16, 64
SEED = 20240601
CORPUS = (
    "the quick brown fox jumps over the lazy dog. a model answers questions about the "
    "world, and the server sends the answer back to the client. inference is the act of "
    "running a trained network on new input. what is a container? it is a process with "
    "its own view of the system, limited by namespaces, cgroups and a seccomp filter. "
    "least privilege means each program gets only the calls it really needs!"
)


def build_arrays(seed: int = SEED) -> dict[str, np.ndarray]:
    """Weights of the model, as float32 arrays keyed by name."""
    rng = np.random.default_rng(seed)
    vocab_size, mlp_in = len(VOCAB), CONTEXT * EMBED_DIM
    return {
        "embed": rng.normal(0, 0.5, (vocab_size, EMBED_DIM)).astype(np.float32),
        "w1": rng.normal(0, 1 / np.sqrt(mlp_in), (mlp_in, HIDDEN_DIM)).astype(np.float32),
        "b1": np.zeros(HIDDEN_DIM, np.float32),
        "w2": rng.normal(0, 0.3 / np.sqrt(HIDDEN_DIM), (HIDDEN_DIM, vocab_size)).astype(np.float32),
        "b2": np.zeros(vocab_size, np.float32),
        "bigram": bigram_log_probs(CORPUS),
    }


def bigram_log_probs(text: str) -> np.ndarray:
    """Log P(next | current) over VOCAB, add-one smoothed."""
    index = {ch: i for i, ch in enumerate(VOCAB)}
    counts = np.ones((len(VOCAB), len(VOCAB)), np.float64)
    for current, following in zip(text, text[1:]):
        counts[index[current], index[following]] += 1
    return np.log(counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)


def model_config() -> dict:
    return {
        "model_name": MODEL_NAME,
        "vocab": VOCAB,
        "context": CONTEXT,
        "embed_dim": EMBED_DIM,
        "hidden_dim": HIDDEN_DIM,
        "seed": SEED,
        "max_tokens_limit": 512,
    }


def write_model(directory: str | Path) -> Path:
    """Write model.npz and config.json into `directory` (created if needed); return it."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    np.savez(target / "model.npz", **build_arrays())
    (target / "config.json").write_text(json.dumps(model_config(), indent=2, sort_keys=True) + "\n")
    # The container user (uid 1000) reads these through a read-only bind mount.
    for path in (target, target / "model.npz", target / "config.json"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tracer.embedded.mininim.model DIR")
    print(write_model(sys.argv[1]))
