#!/usr/bin/env bash
# The GPU path, proven in one run (at most 8 minutes on one GPU): environment, `pytest -m gpu`,
# bf16 pretraining on one GPU and under torchrun (DDP on every GPU present), fine-tuning, export,
# and the torch CUDA / ONNX Runtime CUDA benchmark rows. Writes benchmarks/results/gpu/
# gpu_check.json and gpu_check.md (naming the GPU) and bench_gpu.json.
#
#   benchmarks/gpu_check.sh [--dry-run] [--python PY] [--data DIR] [--out DIR] [--work DIR]
#                           [--steps N]
#
# --dry-run checks every step without a GPU: the commands resolve, the input paths exist, and
# every flag the run passes is in that command's --help. --python PY uses that interpreter as it
# is (no environment is made). Without it a venv is made in $VENV [.venv-gpu]: a torch already
# importable by $BASE_PYTHON [python3] is reused (said so; the pinned CUDA wheel of torch==2.13.0
# may not be reachable offline), else torch==2.13.0 is installed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
DRY=0 PY="" STEPS=300
DATA=${BELL_EDGE_DATA:-$ROOT/../shared/data/ptbxl100}
OUT=$ROOT/benchmarks/results/gpu
WORK=""
VENV=${VENV:-$ROOT/.venv-gpu}
BASE_PYTHON=${BASE_PYTHON:-python3}
STEP_TIMEOUT=${STEP_TIMEOUT:-240}  # seconds; no single step should come near it

while (($#)); do
    case $1 in
        --dry-run) DRY=1 ;;
        --python) PY=$2; shift ;;
        --data) DATA=$2; shift ;;
        --out) OUT=$2; shift ;;
        --work) WORK=$2; shift ;;
        --steps) STEPS=$2; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
WORK=${WORK:-$(mktemp -d -t bell-edge-gpu-check.XXXXXX)}
mkdir -p "$WORK"
LOG=$WORK/steps.tsv
: >"$LOG"
FAILED=0

say() { echo "gpu_check: $*" >&2; }
note() { say "$*"; printf 'note\t0\t0\t%s\n' "$*" >>"$LOG"; }

# ---- the environment ---------------------------------------------------------------------

make_env() {
    if [[ -n $PY ]]; then
        note "python $PY used as given (no environment made)"
        return
    fi
    if ((DRY)); then
        "$BASE_PYTHON" -m venv --help >/dev/null 2>&1 || { say "FAIL env: $BASE_PYTHON -m venv"; FAILED=1; }
        PY=$(command -v "$BASE_PYTHON")
        say "ok   env: would create $VENV with $BASE_PYTHON (dry run checks with $PY)"
        return
    fi
    local pip=(-m pip install -q)
    if "$BASE_PYTHON" -c "import torch" 2>/dev/null; then
        local have
        have=$("$BASE_PYTHON" -c "import torch; print(torch.__version__, 'cuda', torch.version.cuda)")
        "$BASE_PYTHON" -m venv --system-site-packages "$VENV" || exit 2
        PY=$VENV/bin/python
        note "reusing the torch already importable by $BASE_PYTHON: $have (not torch==2.13.0)"
        # Everything else the package pins, without torch (pip would replace the reused one).
        "$PY" - >"$WORK/requirements.txt" <<'EOF'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]
for d in deps["dependencies"] + deps["optional-dependencies"]["dev"]:
    if re.split(r"[=<>;\[ ]", d)[0] != "torch":
        print(d)
EOF
        "$PY" "${pip[@]}" -r "$WORK/requirements.txt" || note "some pinned packages did not install"
        "$PY" "${pip[@]}" --no-deps --no-build-isolation -e . || exit 2
    else
        "$BASE_PYTHON" -m venv "$VENV" || exit 2
        PY=$VENV/bin/python
        "$PY" "${pip[@]}" torch==2.13.0 || exit 2
        "$PY" "${pip[@]}" -e '.[dev]' || exit 2
        note "installed torch==2.13.0 and the package into $VENV"
    fi
    if ! "$PY" -c "import onnxruntime as o; assert 'CUDAExecutionProvider' in o.get_available_providers()" 2>/dev/null; then
        "$PY" "${pip[@]}" onnxruntime-gpu==1.32.0 \
            || note "onnxruntime-gpu==1.32.0 did not install: the ort-cuda-fp32 row is skipped"
    fi
}

# ---- steps: run them, or (dry run) check them --------------------------------------------

# The help text of `bell-edge SUBCOMMAND...` (the words before the first flag).
cli_help() {
    local words=()
    for a in "$@"; do [[ $a == -* ]] && break; words+=("$a"); done
    "$PY" -m bell_edge.cli "${words[@]}" --help 2>&1
}

# Every --flag in "$@" must appear in `help`.
flags_in() {
    local help=$1; shift
    local a flag bad=0
    for a in "$@"; do
        [[ $a == --* ]] || continue
        flag=${a%%=*}
        grep -qE -- "(^|[ ,/])$flag([ =,/]|\$)" <<<"$help" || { say "  flag $flag not accepted"; bad=1; }
    done
    return $bad
}

check_cmd() {
    command -v "$1" >/dev/null || { say "  $1: command not found"; return 1; }
    [[ $1 == "$PY" && ${2:-} == -m ]] || { [[ -f ${2:-} ]] && flags_in "$("$PY" "$2" --help 2>&1)" "${@:3}"; return; }
    local module=$3
    shift 3
    case $module in
        bell_edge.cli)
            local help
            help=$(cli_help "$@") || { say "  bell-edge $*: --help failed"; return 1; }
            flags_in "$help" "$@" ;;
        torch.distributed.run)
            local own=() i
            for ((i = 1; i <= $#; i++)); do [[ ${!i} == -m ]] && break; own+=("${!i}"); done
            flags_in "$("$PY" -m torch.distributed.run --help 2>&1)" "${own[@]}" || return 1
            check_cmd "$PY" -m "${@:i+1}" ;;
        pytest)
            # Only the files that mark tests gpu: collecting the whole suite takes minutes on a
            # loaded CPU machine.
            local n files
            mapfile -t files < <(grep -rlE 'mark\.gpu' tests)
            n=$("$PY" -m pytest "$@" "${files[@]}" --collect-only 2>&1 | tail -1 \
                | grep -oE '^[0-9]+(/[0-9]+)? tests? collected' | cut -d' ' -f1 | cut -d/ -f1)
            ((${n:-0} > 0)) || { say "  pytest $*: no test collected"; return 1; }
            say "  pytest $*: $n tests collected" ;;
        *) "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('$module') is None)" ;;
    esac
}

# step NAME CMD...: run CMD (timed, logged to steps.tsv, output in WORK/NAME.log) or check it.
step() {
    local name=$1; shift
    if ((DRY)); then
        if check_cmd "$@"; then say "ok   $name"; else say "FAIL $name: $*"; FAILED=1; fi
        return 0
    fi
    say "run  $name: $*"
    local t0=$SECONDS rc
    timeout "$STEP_TIMEOUT" "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    printf '%s\t%d\t%d\t%s\n' "$name" "$rc" $((SECONDS - t0)) "$*" >>"$LOG"
    ((rc == 0)) || { say "     $name exited $rc (tail of $WORK/$name.log:)"; tail -5 "$WORK/$name.log" >&2; }
    return $rc
}

need_path() {
    [[ -e $1 ]] && return 0
    say "FAIL $1: no such path${2:+ ($2)}"
    exit 2
}

# ---- the run -----------------------------------------------------------------------------

need_path "$DATA" "pass --data DIR or set BELL_EDGE_DATA; get PTB-XL with bell-edge data download"
need_path pyproject.toml
need_path benchmarks/gpu_report.py
make_env
export PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
    NGPU=$(nvidia-smi -L | grep -c '^GPU')
else
    NGPU=0
    ((DRY)) || { say "no nvidia-smi: this script needs an NVIDIA GPU (try --dry-run)"; exit 2; }
    say "info nvidia-smi not found (the dry run checks the DDP step with 2 ranks)"
fi
RANKS=$((NGPU > 0 ? NGPU : 2))
BATCH=$((128 / RANKS * RANKS))
CLI=("$PY" -m bell_edge.cli)
PRE=(pretrain --data "$DATA" --epochs 1000 --max-steps "$STEPS" --device cuda --force)
((DRY)) || mkdir -p "$OUT"

step pytest_gpu "$PY" -m pytest -q -m gpu -p no:cacheprovider --junitxml "$WORK/pytest_gpu.xml"
step pretrain_1gpu "${CLI[@]}" "${PRE[@]}" --out "$WORK/pretrain-1gpu"
step pretrain_ddp "$PY" -m torch.distributed.run --standalone --nproc_per_node "$RANKS" \
    -m bell_edge.cli "${PRE[@]}" --batch-size "$BATCH" --sync-bn --out "$WORK/pretrain-ddp"
step finetune "${CLI[@]}" finetune --data "$DATA" --init "$WORK/pretrain-1gpu" \
    --label-fraction 0.1 --epochs 10 --device cuda --force --out "$WORK/finetune"
# The INT8 gate may refuse a model this short-trained (exit 1): then the bundle is FP32 only,
# which is all the CUDA rows run.
EXPORT=("${CLI[@]}" export "$WORK/finetune" --out "$WORK/bundle" --force)
step export "${EXPORT[@]}" --int8 --calib "$DATA"
(($? == 0 && !DRY)) || step export_fp32 "${EXPORT[@]}"
step bench "${CLI[@]}" bench "$WORK/bundle" \
    --backends torch-fp32,ort-fp32,ort-int8,torch-cuda-bf16,ort-cuda-fp32 --batch 1,8,32 \
    --threads 1 --runs 100 --data "$DATA" --out "$OUT/bench_gpu.json" --force
step report "$PY" benchmarks/gpu_report.py --work "$WORK" --out "$OUT" --bench "$OUT/bench_gpu.json"

if ((DRY)); then
    ((FAILED)) && { say "dry run FAILED"; exit 1; }
    say "dry run passed: every step resolves and takes its flags"
    exit 0
fi
failed=$(awk -F'\t' '$1 != "note" && $2 != 0 && $1 != "export"' "$LOG" | wc -l)
say "done in ${SECONDS} s; results in $OUT (work files in $WORK); $failed step(s) failed"
((failed == 0))
