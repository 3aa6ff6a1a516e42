#!/usr/bin/env bash
# The GPU checks for one short lease of a machine with an NVIDIA GPU (the team's "device"
# tool, or any CUDA machine): the GPU tests, then the RBS simulator's spectra/s for
# samples A, B and C in float32 and float64 (benchmarks/simulate_throughput.py, batch
# 10 000). Everything it prints is also written to $OUT (default: ./gpu_lease).
# About 3 minutes on an H100.
#
# Prepare here, once, on a machine that has the project installed (the lease's machine
# cannot fetch packages and its Python, 3.12, holds torch, numpy, scipy, xarray and
# pandas but not the rest of specinv's dependencies):
#
#   echo /.whl/ >> .git/info/exclude; echo /.devcache/ >> .git/info/exclude
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl periodictable jsonschema jsonschema-specifications referencing rpds-py \
#       xraydb sqlalchemy greenlet platformdirs
#   python benchmarks/simulate_throughput.py --batch 4 --rounds 1 --single-repeat 1
#   cp -r "$(python -c 'from specinv.physics.rbs.stopping import cache_dir; print(cache_dir())')" .devcache
#
# (the last two lines build the stopping tables of the three samples, which lunasrim makes
# and the lease's machine could not), then run this script there with .whl and .devcache
# carried along.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_lease}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
python=$(command -v python3 || command -v python)
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
[ -d .devcache ] && export SPECINV_CACHE_DIR=$PWD/.devcache
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$python" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$out/device.txt"
"$python" -m pytest -q -p no:cacheprovider -m gpu tests/test_rbs_batching.py \
    tests/test_xrd_physics.py 2>&1 | tee "$out/gpu_tests.txt"
for dtype in float32 float64; do
    "$python" benchmarks/simulate_throughput.py --device cuda --dtype "$dtype" --batch 10000 \
        --threads 1 --rounds 3 --single-repeat 20 2>&1 | tee "$out/rbs_throughput_$dtype.txt"
done
