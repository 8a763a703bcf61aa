"""Roofline figures: MACs counted from an ONNX graph, and the peaks a backend is measured against.

MACs: the Conv, Gemm and MatMul nodes, with tensor shapes from
`onnx.shape_inference` after fixing the batch axis. A Conv's MACs are its output elements times
`C_in / groups` times the kernel size; Gemm's `M * N * K`; MatMul's output elements times `K`.
Q/DQ graphs count the same as their FP32 source (the weight shapes come through DequantizeLinear).
Every other op (adds, pooling, Q/DQ) is left out: they are memory-bound and cheap in MACs.

CPU peaks are estimates from the ISA flags, the core count and the clock in /proc/cpuinfo
(`PEAK_ASSUMPTION` states them). GPU peaks are datasheet figures (dense, no sparsity).
"""

from __future__ import annotations

import math
from pathlib import Path

import onnx
from onnx import shape_inference

from bell_edge.errors import InputError

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")

# Per core and cycle. FP32: 2 FMA pipes x SIMD lanes, 1 MAC each. INT8 (u8 x s8, the kernels of
# ONNX Runtime's MLAS): with VNNI one vpdpbusd does 4 MACs per 32-bit lane on each of 2 pipes;
# without it vpmaddubsw (u8 x s8 pairs into int16) then vpmaddwd (pairs into int32) both use
# the multiply pipes, so 2 instructions per 4 MACs per 32-bit lane; AMX-INT8 one tile
# multiply-accumulate (16x64 by 64x16) per 16 cycles, 1024 MACs/cycle.
PEAK_ASSUMPTION = (
    "peak ops/s = 2 ops/MAC x MACs/cycle/core x clock x threads. FP32 MACs/cycle/core = "
    "2 FMA pipes x SIMD lanes (8 AVX2, 16 AVX-512). INT8 (u8 x s8): AVX2 without VNNI, "
    "vpmaddubsw + vpmaddwd on the same 2 pipes = 2 x 32 / 2 = 32; AVX-VNNI 2 x 32 = 64; "
    "AVX512-VNNI 2 x 64 = 128; AMX-INT8 1024. Clock: 'cpu MHz' of /proc/cpuinfo (base clock "
    "under a hypervisor; boost may run higher, so the percent may be overstated)."
)

# Dense datasheet peaks, tera-ops/s (SXM unless the name says PCIe; H200 shares H100 SXM's).
GPU_PEAKS = {
    "H100 PCIe": {"bf16": 756.0, "int8": 1513.0, "fp32": 378.0},
    "H100": {"bf16": 989.0, "int8": 1979.0, "fp32": 494.7},
    "H200": {"bf16": 989.0, "int8": 1979.0, "fp32": 494.7},
}
GPU_PEAK_NOTE = (
    "GPU peaks: NVIDIA datasheets, dense tensor-core figures (H100 SXM: 989 TFLOPS bf16, "
    "1979 TOPS int8, 494.7 TFLOPS TF32 for FP32 rows, which cuDNN runs as TF32)."
)


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    g = model.graph
    shapes = {init.name: list(init.dims) for init in g.initializer}
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
    return shapes


def node_macs(path: str | Path, batch: int = 1) -> dict[str, tuple[str, int]]:
    """`{node name: (op type, MACs)}` of the Conv, Gemm and MatMul nodes for one run at `batch`.

    Raises InputError when a shape cannot be inferred.
    """
    path = Path(path)
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...: all mean unreadable
        raise InputError(f"{path}: not a readable ONNX model ({exc})") from None
    for tensor in model.graph.input:
        for dim in tensor.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = batch
    shapes = _shapes(shape_inference.infer_shapes(model))
    out: dict[str, tuple[str, int]] = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type not in WEIGHTED_OPS:
            continue
        name = node.name or f"{node.op_type}_{i}"
        needed = [*node.input[:2], node.output[0]]
        if any(not shapes.get(t) or 0 in shapes[t] for t in needed):
            raise InputError(f"{path}: no inferred shape for node {name} ({node.op_type})")
        a, b, y = (shapes[t] for t in needed)
        if node.op_type == "Conv":
            macs = math.prod(y) * math.prod(b[1:])  # weight (C_out, C_in/groups, *kernel)
        elif node.op_type == "Gemm":
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            macs = math.prod(y) * (a[0] if trans_a else a[1])
        else:
            macs = math.prod(y) * a[-1]
        out[name] = (node.op_type, int(macs))
    return out


def total_macs(path: str | Path, batch: int = 1) -> int:
    return sum(macs for _, macs in node_macs(path, batch).values())


def cpu_macs_per_cycle(isa: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Per core and cycle, the FP32 and INT8 MACs the ISA allows (see PEAK_ASSUMPTION)."""
    isa = set(isa)
    lanes = 16 if "avx512f" in isa else 8 if "avx2" in isa else 4
    fp32 = 2 * lanes
    if "amx_int8" in isa:
        int8 = 1024
    elif "avx512_vnni" in isa:
        int8 = 128
    elif "avx_vnni" in isa:
        int8 = 64
    else:
        int8 = 2 * lanes * 4 // 2  # vpmaddubsw + vpmaddwd: 4 MACs per 32-bit lane, 2 instructions
    return {"fp32": fp32, "int8": int8}


def cpu_peaks(machine: dict) -> dict:
    """Per-core peak giga-ops/s for fp32 and int8 (2 ops per MAC), with the figures behind it."""
    per_cycle = cpu_macs_per_cycle(machine.get("isa", []))
    ghz = (machine.get("cpu_mhz") or 0) / 1000
    return {
        "ghz": ghz,
        "macs_per_cycle_per_core": per_cycle,
        "gops_per_core": {k: 2 * v * ghz for k, v in per_cycle.items()},
        "assumption": PEAK_ASSUMPTION,
    }


def gpu_peaks(gpu: str | None) -> dict[str, float] | None:
    """Datasheet tera-ops/s by precision for a known GPU name, else None."""
    if not gpu:
        return None
    for key, peaks in GPU_PEAKS.items():  # "H100 PCIe" before the plain "H100"
        if all(word in gpu for word in key.split()):
            return peaks
    return None


def peak_gops(machine: dict, precision: str, device: str, threads: int) -> float | None:
    """The peak giga-ops/s a backend is measured against, or None when unknown."""
    if device == "cuda":
        peaks = gpu_peaks(machine.get("gpu"))
        return None if peaks is None else 1000 * peaks.get(precision, math.nan)
    per_core = cpu_peaks(machine)["gops_per_core"].get("int8" if precision == "int8" else "fp32")
    cores = min(threads, machine.get("cores") or threads)
    return per_core * cores if per_core else None
