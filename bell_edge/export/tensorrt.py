"""TensorRT engines from the Q/DQ ONNX (explicit quantization). Optional: needs a GPU and the
`tensorrt` module, neither of which the CPU machines here have."""

from __future__ import annotations

from pathlib import Path

from bell_edge.errors import InputError


def require_tensorrt():
    """The tensorrt module, or a one-line InputError saying what is missing."""
    try:
        import tensorrt
    except ImportError:
        raise InputError(
            "--engine tensorrt: the tensorrt Python package is not installed "
            "(pip install 'bell-edge[tensorrt]' on a machine with NVIDIA's index and a GPU)"
        ) from None
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        raise InputError("--engine tensorrt: no CUDA GPU on this machine")
    return tensorrt


def build_engine(onnx_path: str | Path, plan_path: str | Path, max_batch: int = 32) -> dict:
    """Strongly typed network from `model.int8.trt.onnx`, one optimization profile for batch
    1..max_batch; writes the serialized engine to `plan_path`."""
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise InputError(f"{onnx_path}: TensorRT cannot parse it ({errors})")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *shape), (max_batch, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise InputError(f"{onnx_path}: TensorRT could not build an engine")
    Path(plan_path).write_bytes(bytes(plan))
    return {"tensorrt": trt.__version__, "max_batch": max_batch}
