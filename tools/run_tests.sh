#!/usr/bin/env bash
# `make test`: the package tests and every notebook under nbval, in the quick profile. Four jobs
# share the two cores, one torch thread per process:
#   1  the notebooks from random initialisation under nbval, then the tests (pytest-xdist, two
#      workers, the notebooks first). Many short items, so it runs at a lower priority and fills
#      the time the other jobs leave; nbval keeps each notebook with its outputs (conftest.py,
#      MEDTL_NBVAL_KEEP), which job 4 builds the site from;
#   2  the student copies (solutions replaced by stubs) with stand-in ImageNet weights and
#      MEDTL_PRETRAINED=imagenet (tests/standin_weights.py): apart from the stubs a student copy
#      is the notebook, so every notebook runs twice, and every branch it takes with ImageNet
#      weights runs too;
#   3  tests/test_smoke_gpu.py: notebooks 04 and 06 in the gpu profile, capped;
#   4  once job 1 has kept every notebook: the site built from them and opened in headless
#      Chromium (tests/test_site_browser.py, which skips in job 1, without MEDTL_SITE_EXECUTED).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export MEDTL_PROFILE=quick MEDTL_OFFLINE=1 MPLBACKEND=Agg MEDTL_PROGRESS=text
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PYTEST=("$PY" -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env)
runs_a=$(mktemp -d) runs_b=$(mktemp -d) kept=$(mktemp -d) logs=$(mktemp -d)
torch_home=$PWD/runs/standin-torch-home  # absolute: the notebooks run in notebooks/
"$PY" tests/standin_weights.py "$torch_home" > /dev/null || exit 1
trap 'rm -rf "$runs_a" "$runs_b" "$kept" "$logs"' EXIT
notebooks=$(ls notebooks/[0-9][0-9]_*.ipynb | wc -l)

site_browser() {  # job 4: its screenshots stay in the test's tmp_path, which it prints
  local start=$SECONDS
  until [ "$(ls "$kept" | wc -l)" -ge "$notebooks" ] || ! kill -0 "$1" 2> /dev/null; do
    sleep 5
  done
  echo "job 4 waited $((SECONDS - start)) s for job 1 to keep $(ls "$kept" | wc -l) of" \
    "$notebooks notebooks"
  start=$SECONDS
  MEDTL_SITE_EXECUTED=$kept "$PY" -m pytest -p no:cacheprovider -s tests/test_site_browser.py
  local status=$?
  echo "the site job took $((SECONDS - start)) s"
  return $status
}

echo "== notebooks and tests (random init), while the student copies run with stand-in ImageNet"
echo "   weights, the gpu-profile smoke test runs, and then the site is opened in Chromium"
echo "   (their logs follow)"
start=$SECONDS
MEDTL_RUNS=$runs_a MEDTL_NBVAL_KEEP=$kept nice -n 5 "${PYTEST[@]}" -n 2 --dist loadfile \
  --durations=12 notebooks tests --ignore tests/test_smoke_gpu.py &
tests=$!
MEDTL_RUNS=$runs_b TORCH_HOME=$torch_home MEDTL_PRETRAINED=imagenet \
  "${PYTEST[@]}" --durations=8 student > "$logs/student-imagenet.log" 2>&1 &
student=$!
"${PYTEST[@]}" --durations=1 tests/test_smoke_gpu.py > "$logs/smoke-gpu.log" 2>&1 &
smoke=$!
site_browser $tests > "$logs/site-browser.log" 2>&1 &
site=$!
wait $tests; status_a=$?
wait $student; status_student=$?
wait $smoke; status_smoke=$?
wait $site; status_site=$?
for name in student-imagenet smoke-gpu site-browser; do
  echo "-- $name"; tail -n 25 "$logs/$name.log"
done
echo "tests and notebooks: $status_a  student copies with ImageNet weights: $status_student" \
  " gpu-profile smoke test: $status_smoke  site in Chromium: $status_site (0 = passed)"
echo "make test took $((SECONDS - start)) s"
exit $(( status_a || status_student || status_smoke || status_site ))
