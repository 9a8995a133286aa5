#!/usr/bin/env bash
# `make test`: the package tests and every notebook under nbval, in the quick profile. Three jobs
# run at once and share the two cores (one torch thread per process, so that no process's
# threads wait for another's):
#   1  the tests, and the notebooks from random initialisation (pytest-xdist, 2 workers);
#   2  the student copies (solutions replaced by stubs) with stand-in ImageNet weights and
#      MEDTL_PRETRAINED=imagenet (tests/standin_weights.py): apart from the stubs a student copy
#      is the notebook, so every notebook runs twice, and every branch it takes with ImageNet
#      weights runs too;
#   3  tests/test_smoke_gpu.py: notebooks 04 and 06 in the gpu profile, capped, the longest test.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export MEDTL_PROFILE=quick MEDTL_OFFLINE=1 MPLBACKEND=Agg MEDTL_PROGRESS=text
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PYTEST=("$PY" -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env)
runs_a=$(mktemp -d) runs_b=$(mktemp -d) logs=$(mktemp -d)
torch_home=$PWD/runs/standin-torch-home  # absolute: the notebooks run in notebooks/
"$PY" tests/standin_weights.py "$torch_home" > /dev/null || exit 1
trap 'rm -rf "$runs_a" "$runs_b" "$logs"' EXIT

echo "== tests and notebooks (random init), while the student copies run with stand-in ImageNet"
echo "   weights and the gpu-profile smoke test runs (their logs follow at the end)"
MEDTL_RUNS=$runs_b TORCH_HOME=$torch_home MEDTL_PRETRAINED=imagenet \
  "${PYTEST[@]}" --durations=8 student > "$logs/student-imagenet.log" 2>&1 &
student=$!
"${PYTEST[@]}" --durations=1 tests/test_smoke_gpu.py > "$logs/smoke-gpu.log" 2>&1 &
smoke=$!
MEDTL_RUNS=$runs_a "${PYTEST[@]}" -n 2 --dist loadfile --durations=12 tests notebooks \
  --ignore tests/test_smoke_gpu.py
status_a=$?
wait $student; status_student=$?
wait $smoke; status_smoke=$?
for name in student-imagenet smoke-gpu; do
  echo "-- $name"; tail -n 25 "$logs/$name.log"
done
echo "tests and notebooks: $status_a  student copies with ImageNet weights: $status_student" \
  " gpu-profile smoke test: $status_smoke (0 = passed)"
exit $(( status_a || status_student || status_smoke ))
