#!/usr/bin/env bash
# Run THERE, on the lent GPU machine, once every .gpu/part-* that bench/gpu/pack.sh made
# has been carried (one device call each): installs the wheels beside the machine's own
# packages, shows which execution providers really load, checks the runner's answers on
# them (bench/gpu/check.py), and runs the bench on the GPU against raw ONNX Runtime on the
# same providers. Everything it prints and the bench's JSON land in $OUT (./gpu-out when
# $OUT is unset).
#   BENCH_S     seconds the bench may take (default 360)
#   BENCH_ARGS  the bench's arguments besides its targets and JSON (default below)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-out}
mkdir -p "$out"
exec > >(tee "$out/run.txt") 2>&1
(cd .gpu && sha256sum -c --quiet SHA256SUMS) || { echo "pieces missing or damaged:"; ls -l .gpu; exit 2; }
rm -rf /tmp/inferq-gpu && mkdir -p /tmp/inferq-gpu
cat .gpu/part-* | tar -xf - -C /tmp/inferq-gpu
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/inferq-gpu/site /tmp/inferq-gpu/wheels/*.whl || exit 3
export PYTHONPATH="$PWD:/tmp/inferq-gpu/site" PYTHONUNBUFFERED=1
# CUDA 13's libraries come with the machine's PyTorch, as pip packages under nvidia/.
nv=$(python3 -c '
import glob, os, site
libs = {os.path.dirname(p) for sp in site.getsitepackages()
        for p in glob.glob(sp + "/nvidia/**/*.so*", recursive=True)}
print(":".join(sorted(libs)))')
export LD_LIBRARY_PATH="$nv${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi -L || true
python3 - <<'PY' || exit 4
import onnxruntime as ort
from runner.providers import usable_providers
from runner.settings import DEFAULT_PROVIDERS
print("onnxruntime", ort.__version__, "from", ort.__file__)
print("built with:", ort.get_available_providers())
print("load here:", usable_providers(DEFAULT_PROVIDERS))
PY
# The runner's own path (provider choice, IO binding, batching) against the CPU's answers.
python3 -m bench.gpu.check tiny mlp tokens || echo "gpu check failed: $?"
# shellcheck disable=SC2086  # BENCH_ARGS is split into arguments on purpose
timeout "${BENCH_S:-360}" python3 -m bench --targets embedded --json "$out/bench-gpu.json" \
  ${BENCH_ARGS:---models tiny,mlp --big --clients 1,64 --warmup 1 --duration 4 --no-hotpath}
echo "bench exit $?"
