#!/usr/bin/env bash
# `make test`: the package tests and every notebook under nbval, in the quick profile, in two
# phases that keep both cores busy (about 10 minutes on 2 cores):
#   A  the tests and the notebooks from random initialisation (pytest-xdist, 2 workers);
#   B  at the same time: the student copies (they reuse A's finished runs); the notebooks
#      again with stand-in ImageNet weights and MEDTL_PRETRAINED=imagenet, so that every branch
#      a notebook takes with ImageNet weights runs too (tests/standin_weights.py); and
#      tests/test_smoke_gpu.py (04 and 06 in the gpu profile, capped), the longest single test.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export MEDTL_PROFILE=quick MEDTL_OFFLINE=1 MPLBACKEND=Agg
# Two processes run at once in each phase, one per core: one torch thread each. With torch's
# default (a thread per core) four threads would share two cores and wait for each other.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PYTEST=("$PY" -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env)
runs_a=$(mktemp -d) runs_b=$(mktemp -d) logs=$(mktemp -d)
torch_home=$PWD/runs/standin-torch-home  # absolute: the notebooks run in notebooks/
"$PY" tests/standin_weights.py "$torch_home" > /dev/null || exit 1
trap 'rm -rf "$runs_a" "$runs_b" "$logs"' EXIT

echo "== A: tests and notebooks (random init)"
MEDTL_RUNS=$runs_a "${PYTEST[@]}" -n 2 --dist loadfile --durations=12 tests notebooks \
  --ignore tests/test_smoke_gpu.py
status_a=$?

echo "== B: student copies, the notebooks with stand-in ImageNet weights, and the gpu profile's"
echo "   smoke test (three processes at once; one torch thread each, so they share the cores)"
MEDTL_RUNS=$runs_a "${PYTEST[@]}" student > "$logs/student.log" 2>&1 &
student=$!
"${PYTEST[@]}" --durations=1 tests/test_smoke_gpu.py > "$logs/smoke-gpu.log" 2>&1 &
smoke=$!
MEDTL_RUNS=$runs_b TORCH_HOME=$torch_home MEDTL_PRETRAINED=imagenet \
  "${PYTEST[@]}" --durations=8 notebooks > "$logs/imagenet.log" 2>&1 &
imagenet=$!
wait $student; status_student=$?
wait $imagenet; status_imagenet=$?
wait $smoke; status_smoke=$?
for name in student imagenet smoke-gpu; do
  echo "-- $name"; tail -n 25 "$logs/$name.log"
done
echo "A: $status_a  student copies: $status_student  ImageNet pass: $status_imagenet" \
  " gpu-profile smoke test: $status_smoke (0 = passed)"
exit $(( status_a || status_student || status_imagenet || status_smoke ))
