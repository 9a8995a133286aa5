#!/usr/bin/env bash
# `make test`: the package tests and every notebook under nbval, in the quick profile. Three jobs
# share the two cores, one torch thread per process:
#   1  the tests and the notebooks (pytest-xdist, two workers), the longest first: the grading of
#      the reference solutions (tests/test_grading_data.py), which runs every notebook a second
#      time, as its student copy with the solutions pasted in and with stand-in ImageNet weights
#      (tests/standin_weights.py), so that every branch a notebook takes with ImageNet weights
#      runs too; the made-up class of tests/test_grading.py; then every notebook under nbval from
#      random initialisation, which nbval keeps with its outputs for job 3
#      (tests/nbval_keep.py, MEDTL_NBVAL_KEEP); then the rest. Many items, so it
#      runs at a lower priority and fills the time the other jobs leave;
#   2  tests/test_smoke_gpu.py: notebooks 04 and 06 in the gpu profile, capped;
#   3  once job 1 has kept every notebook: the site built from them and opened in headless
#      Chromium (tests/test_site_browser.py), then notebook 04 run in JupyterLab in Chromium and
#      its explorer moved (tests/test_lab_browser.py); both skip in job 1.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export MEDTL_PROFILE=quick MEDTL_OFFLINE=1 MPLBACKEND=Agg MEDTL_PROGRESS=text
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PYTEST=("$PY" -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env)
runs=$(mktemp -d) kept=$(mktemp -d) logs=$(mktemp -d)
trap 'rm -rf "$runs" "$kept" "$logs"' EXIT
notebooks=$(ls notebooks/[0-9][0-9]_*.ipynb | wc -l)
longest=(tests/test_grading_data.py tests/test_grading.py)  # pytest keeps the order of its files
rest=$(ls tests/test_*.py | grep -v -e test_grading_data.py -e test_grading.py -e test_smoke_gpu.py)

browsers() {  # job 3: screenshots stay in the tests' tmp_path, which they print
  local start=$SECONDS status
  until [ "$(ls "$kept" | wc -l)" -ge "$notebooks" ] || ! kill -0 "$1" 2> /dev/null; do
    sleep 5
  done
  echo "job 3 waited $((SECONDS - start)) s for job 1 to keep $(ls "$kept" | wc -l) of" \
    "$notebooks notebooks"
  start=$SECONDS
  MEDTL_SITE_EXECUTED=$kept MEDTL_LAB_BROWSER=1 MEDTL_RUNS=$(mktemp -d -p "$runs") \
    "$PY" -m pytest -p no:cacheprovider -s tests/test_site_browser.py tests/test_lab_browser.py
  status=$?
  echo "the browser job took $((SECONDS - start)) s"
  return $status
}

echo "== tests and notebooks, while the gpu-profile smoke test runs, and then the site and"
echo "   JupyterLab are opened in Chromium (their logs follow)"
start=$SECONDS
MEDTL_RUNS=$runs MEDTL_NBVAL_KEEP=$kept PYTHONPATH=$PWD/tests nice -n 5 "${PYTEST[@]}" -n 2 \
  --dist loadfile -p nbval_keep --durations=12 "${longest[@]}" notebooks $rest &
tests=$!
"${PYTEST[@]}" --durations=1 tests/test_smoke_gpu.py > "$logs/smoke-gpu.log" 2>&1 &
smoke=$!
browsers $tests > "$logs/browsers.log" 2>&1 &
browsers=$!
wait $tests; status_tests=$?
wait $smoke; status_smoke=$?
wait $browsers; status_browsers=$?
for name in smoke-gpu browsers; do
  echo "-- $name"; tail -n 25 "$logs/$name.log"
done
echo "tests and notebooks: $status_tests  gpu-profile smoke test: $status_smoke" \
  " site and JupyterLab in Chromium: $status_browsers (0 = passed)"
echo "make test took $((SECONDS - start)) s"
exit $(( status_tests || status_smoke || status_browsers ))
