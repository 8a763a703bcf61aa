"""TensorRT: an engine (`.plan`) or one built at open from the S8S8 Q/DQ ONNX (explicit
quantization, strongly typed network). Optional: needs the `tensorrt` and `cuda-python`
packages (`pip install 'bell-edge[tensorrt]'`, NVIDIA's index) and a CUDA GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bell_edge.runtime.backends import BackendUnavailable, as_inputs

FORMATS = ("tensorrt-plan", "onnx")
MAX_BATCH = 32  # the optimization profile of an engine built here covers batches 1..32
INPUT, MASK, OUTPUT = "ecg", "lead_mask", "logits"


def require():
    """The tensorrt module and cuda-python's runtime bindings, or a one-line error."""
    try:
        import tensorrt as trt
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        raise BackendUnavailable(
            f"backend tensorrt: {exc.name} is not installed (pip install 'bell-edge[tensorrt]' "
            "on a machine with NVIDIA's index and a GPU)"
        ) from None
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count == 0:
        raise BackendUnavailable("backend tensorrt: no CUDA GPU on this machine")
    return trt, cudart


def build_plan(onnx_path: str | Path, max_batch: int = MAX_BATCH) -> bytes:
    """A serialized engine of the Q/DQ ONNX: strongly typed (the Q/DQ scales decide the
    precisions), one optimization profile for batch 1..max_batch."""
    trt, _ = require()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"{onnx_path}: TensorRT cannot parse it ({errors})")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *shape), (max_batch, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendUnavailable(f"{onnx_path}: TensorRT could not build an engine")
    return bytes(plan)


def _check(result):
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else values


class TrtSession:
    """An execution context with device buffers sized for `MAX_BATCH`; larger batches run in
    chunks. Copies in, runs and copies out on one stream, synchronized per chunk."""

    def __init__(self, plan: bytes, path: Path) -> None:
        trt, self.cudart = require()
        engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
        if engine is None:
            raise BackendUnavailable(f"{path}: TensorRT cannot load this engine (other GPU or "
                                     "version?)")  # fmt: skip
        self.engine, self.context = engine, engine.create_execution_context()
        self.max_batch = engine.get_tensor_profile_shape(INPUT, 0)[2][0]
        self.stream = _check(self.cudart.cudaStreamCreate())
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (pointer, bytes)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(self.cudart.cudaFree(ptr))
            ptr = _check(self.cudart.cudaMalloc(nbytes))
            self.buffers[name] = (ptr, nbytes)
            self.context.set_tensor_address(name, ptr)
        return ptr

    def run(self, ecg: np.ndarray, lead_mask: np.ndarray) -> np.ndarray:
        ecg, lead_mask = as_inputs(ecg, lead_mask)
        parts = [self._run(ecg[i : i + self.max_batch], lead_mask[i : i + self.max_batch])
                 for i in range(0, len(ecg), self.max_batch)]  # fmt: skip
        return np.concatenate(parts)

    def _run(self, ecg: np.ndarray, mask: np.ndarray) -> np.ndarray:
        h2d = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, host in ((INPUT, ecg), (MASK, mask)):
            self.context.set_input_shape(name, host.shape)
            ptr = self._buffer(name, host.nbytes)
            _check(self.cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, h2d,
                                               self.stream))  # fmt: skip
        out = np.empty(tuple(self.context.get_tensor_shape(OUTPUT)), np.float32)
        ptr = self._buffer(OUTPUT, out.nbytes)
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execution failed")
        _check(self.cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self.stream))
        _check(self.cudart.cudaStreamSynchronize(self.stream))
        return out

    def __del__(self) -> None:
        for ptr, _ in getattr(self, "buffers", {}).values():
            self.cudart.cudaFree(ptr)


def open(path: Path, threads: int = 1, **options) -> TrtSession:  # noqa: A001 (the protocol)
    """A `.plan` is deserialized; an ONNX file is built into an engine first (minutes)."""
    plan = path.read_bytes() if path.suffix == ".plan" else build_plan(path)
    return TrtSession(plan, path)
