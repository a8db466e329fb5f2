#!/usr/bin/env bash
# Run HERE, where pip reaches PyPI: the wheels that a lent GPU machine (the `device`
# tool's nvidia-h200: Python 3.12, CUDA 13 libraries from PyTorch's packages, nothing
# fetched there) lacks to run inferq, packed into .gpu/part-* pieces that each fit one
# device call (64 MiB a call, the working tree included).
#
# Then, on the device, one call per piece, each carrying that piece (what a call leaves
# in an ignored folder stays for the next call to the same warm machine):
#   run  carry=[".gpu/part-aa"]  command="ls .gpu"
#   run  carry=[".gpu/part-ab"]  command="ls .gpu"
#   ...  (the last piece's call can run bench/gpu/run.sh at once)
#   run  carry=[".gpu/part-ae"]  command="bash bench/gpu/run.sh"
# bench/gpu/run.sh checks that every piece arrived before it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
# onnxruntime-gpu 1.31 is built against CUDA 13 (libcublas.so.13, libcudart.so.13,
# libcudnn.so.9), the libraries the device's PyTorch packages hold. TensorRT's libraries
# (libnvinfer.so.10) are not there and are too large to carry, so TensorRT cannot load.
WANT=(
  onnxruntime-gpu==1.31.1
  aiokafka==0.14.0 msgspec==0.22.0 starlette==1.10.0 uvicorn==0.54.0 httptools==0.9.0
  python-multipart==0.0.34 sse-starlette==3.7.0 tenacity==9.2.1
  opentelemetry-api==1.45.2 importlib-metadata==8.7.0 async-timeout==5.0.1
)
rm -rf .gpu
mkdir -p .gpu/wheels
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels "${WANT[@]}"
tar -cf - -C .gpu wheels | split -b 56m - .gpu/part-
rm -rf .gpu/wheels
(cd .gpu && sha256sum part-* > SHA256SUMS)
ls -l .gpu
echo "carry each .gpu/part-* in its own device call, then: bash bench/gpu/run.sh"
echo "(.gpu/SHA256SUMS is small: carry it with the first piece)"
