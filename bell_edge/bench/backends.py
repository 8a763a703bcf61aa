"""The backends a bundle is benchmarked on, and the worker process that runs one of them.

`python -m bell_edge.bench.backends` is a worker. It talks JSON, one object per line, never
pickle: it reads `{"bundle", "backend", "threads", "windows", "masks"}` from stdin (the arrays
as `encode_array` writes them), loads that backend alone, then serves `{"batch", "warmup",
"runs"}` requests until it reads `{"stop": true}`. Replies go to stdout (anything a library
prints goes to stderr): `{"ready": logits of the first CHECK_WINDOWS inputs}` or `{"skip":
reason}`; per request `{"times": seconds}` or `{"error": message}`; at the end `{"memory":
...}`. Peak RSS is the process's own `VmHWM` from /proc/self/status: `ru_maxrss` of a child
carries its parent's peak across fork and exec, so it would charge the parent's memory.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bell_edge.data.cache import file_sha256
from bell_edge.errors import InputError
from bell_edge.runtime.backends import open_model
from bell_edge.runtime.bundle import Bundle, BundleError, Model, read_bundle
from bell_edge.runtime.engine import select_model

CHECK_WINDOWS = 32  # inputs of the logits check against ORT FP32
FEEDS = 4  # distinct input batches each batch size cycles through


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    label: str
    precision: str  # fp32 | int8 | bf16: the peak it is measured against
    device: str  # cpu | cuda
    runtime: str | None  # the runtime backend (registry name); None: torch on the checkpoint
    model: str | None = None  # the bundle model to run; None: the one the runtime would pick


BACKENDS = {
    b.name: b
    for b in (
        Backend("torch-fp32", "torch eager FP32", "fp32", "cpu", None),
        Backend("ort-fp32", "ORT FP32", "fp32", "cpu", "ort-cpu"),
        Backend("ort-int8", "ORT INT8, CPU variant (U8S8)", "int8", "cpu", "ort-cpu"),
        Backend("ort-int8-trt", "ORT INT8, TensorRT variant (S8S8)", "int8", "cpu", "ort-cpu",
                "int8-tensorrt"),
        Backend("litert-int8", "LiteRT INT8 (full integer)", "int8", "cpu", "litert"),
        Backend("torch-cuda-bf16", "torch CUDA bf16", "bf16", "cuda", None),
        Backend("ort-cuda-fp32", "ORT CUDA FP32", "fp32", "cuda", "ort-cuda"),
        Backend("tensorrt-int8", "TensorRT INT8", "int8", "cuda", "tensorrt"),
    )
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Runner:
    """One backend, loaded: `feed` stages a batch as the backend takes it, `run` computes
    logits as numpy (a GPU run includes the copies to and from the device)."""

    feed: Callable[[np.ndarray, np.ndarray], Any]
    run: Callable[[Any], np.ndarray]


def bundle_model(bundle: Bundle, name: str) -> Model | None:
    """The bundle model a bench backend runs (None for torch); BundleError when it has none."""
    backend = BACKENDS[name]
    if backend.runtime is None:
        return None
    if backend.model is not None:
        if backend.model not in bundle.models:
            raise BundleError(f"{bundle.root}: has no model {backend.model!r}")
        return bundle.models[backend.model]
    return select_model(bundle, backend.runtime, backend.precision)


def _session_runner(path: Path, runtime: str, threads: int) -> Runner:
    session = open_model(runtime, path, threads)
    return Runner(feed=lambda x, m: (x, m), run=lambda feed: session.run(*feed))


def _torch_runner(bundle: Bundle, threads: int, device: str) -> Runner:
    import torch

    from bell_edge.config import to_dict
    from bell_edge.models.artifact import load_classifier

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    clf = load_classifier(source_checkpoint(bundle))
    if to_dict(clf.model_config) != bundle.manifest.get("model_config"):
        raise RuntimeError("the source checkpoint's model config differs from the bundle's")
    model = clf.model.eval()
    if device == "cpu":

        def run(feed):
            with torch.inference_mode():
                return model(*feed).numpy()

        return Runner(feed=lambda x, m: (torch.from_numpy(x), torch.from_numpy(m)), run=run)

    model = model.to("cuda", dtype=torch.bfloat16)

    def run_cuda(feed):
        with torch.inference_mode():
            x, m = (t.to("cuda", torch.bfloat16, non_blocking=True) for t in feed)
            return model(x, m).float().cpu().numpy()

    def pinned(x, m):
        return torch.from_numpy(x).pin_memory(), torch.from_numpy(m).pin_memory()

    return Runner(feed=pinned, run=run_cuda)


def make_runner(bundle: Bundle, name: str, threads: int) -> Runner:
    backend = BACKENDS[name]
    if backend.runtime is None:
        return _torch_runner(bundle, threads, backend.device)
    return _session_runner(bundle_model(bundle, name).path, backend.runtime, threads)


def recorded_checkpoint(bundle: Bundle) -> Path:
    """The fine-tuned checkpoint the bundle was exported from, where its manifest says
    (InputError when not recorded or gone); `source_checkpoint` before loading it."""
    recorded = bundle.manifest.get("source_checkpoint")
    if not recorded or not bundle.manifest.get("source_checkpoint_sha256"):
        raise InputError(f"{bundle.root}: the manifest records no source checkpoint and sha256")
    file = Path(recorded) / "model.pt" if Path(recorded).is_dir() else Path(recorded)
    if not file.is_file():
        raise InputError(f"{file}: the bundle's source checkpoint is gone")
    return file


def source_checkpoint(bundle: Bundle) -> Path:
    """`recorded_checkpoint`, checked against the manifest's sha256 so the torch rows run the
    model that was exported (InputError when changed)."""
    file = recorded_checkpoint(bundle)
    if file_sha256(file) != bundle.manifest["source_checkpoint_sha256"]:
        raise InputError(
            f"{file}: sha256 does not match {bundle.root}'s manifest; refusing to load"
        )
    return file


def skip_reason(bundle: Bundle, name: str, gpu: str | None) -> str | None:
    """Why a backend cannot run here, known before starting it; None when it may."""
    backend = BACKENDS[name]
    if backend.device == "cuda" and gpu is None:
        return "no CUDA GPU on this machine"
    try:
        if backend.runtime is None:
            source_checkpoint(bundle)
        else:
            bundle_model(bundle, name)
    except InputError as exc:
        return str(exc)
    return None


def model_bytes(bundle: Bundle, name: str) -> int:
    """Size of the file a backend loads (the checkpoint for torch)."""
    model = bundle_model(bundle, name)
    return (recorded_checkpoint(bundle) if model is None else model.path).stat().st_size


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """A float32 array as JSON: its shape and its bytes in base64."""
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "float32_base64": base64.b64encode(a.data).decode()}


def decode_array(obj: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(obj["float32_base64"], validate=True)
    return np.frombuffer(raw, dtype="<f4").reshape([int(n) for n in obj["shape"]])


def send_json(stream, obj) -> None:
    stream.write(json.dumps(obj).encode() + b"\n")
    stream.flush()


def read_json(stream):
    """The next JSON line; EOFError when the other side has closed the stream."""
    line = stream.readline()
    if not line:
        raise EOFError
    return json.loads(line)


def serve(requests, replies) -> None:
    """The worker loop (see the module doc)."""
    request = read_json(requests)
    root, name, threads = request["bundle"], request["backend"], int(request["threads"])
    x, m = decode_array(request["windows"]), decode_array(request["masks"])
    base = peak_rss_mb()
    try:
        runner = make_runner(read_bundle(root), name, threads)
        logits = runner.run(runner.feed(x[:CHECK_WINDOWS], m[:CHECK_WINDOWS]))
    except Exception as exc:  # any failure to load is this backend's skip reason, reported
        send_json(replies, {"skip": f"{type(exc).__name__}: {exc}"})
        return
    send_json(replies, {"ready": np.asarray(logits, dtype=np.float32).tolist()})
    feeds: dict[int, list] = {}
    while not (request := read_json(requests)).get("stop"):
        batch, warmup, runs = (int(request[k]) for k in ("batch", "warmup", "runs"))
        try:
            if batch not in feeds:
                starts = range(0, len(x) - batch + 1, batch)
                feeds[batch] = [runner.feed(x[s : s + batch], m[s : s + batch]) for s in starts]
            staged = feeds[batch][:FEEDS]
            for i in range(warmup):
                runner.run(staged[i % len(staged)])
            times = []
            for i in range(runs):
                t0 = time.perf_counter()
                runner.run(staged[i % len(staged)])
                times.append(time.perf_counter() - t0)
        except Exception as exc:  # e.g. a batch beyond a TensorRT profile: reported, not fatal
            send_json(replies, {"error": f"{type(exc).__name__}: {exc}"})
            continue
        send_json(replies, {"times": times})
    peak = peak_rss_mb()
    send_json(replies, {"memory": {"peak_rss_mb": peak, "rss_over_base_mb": peak - base}})


if __name__ == "__main__":
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # prints of the libraries go to stderr, never into the replies
    serve(sys.stdin.buffer, replies)
