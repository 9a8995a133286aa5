#!/usr/bin/env bash
# `make test`: the package tests and every notebook under nbval, in the quick profile. Three jobs
# run at once and share the two cores (one torch thread per process, so that no process's
# threads wait for another's), and a fourth follows the third on its core:
#   1  the tests, and the notebooks from random initialisation (pytest-xdist, 2 workers);
#   2  the student copies (solutions replaced by stubs) with stand-in ImageNet weights and
#      MEDTL_PRETRAINED=imagenet (tests/standin_weights.py): apart from the stubs a student copy
#      is the notebook, so every notebook runs twice, and every branch it takes with ImageNet
#      weights runs too;
#   3  tests/test_smoke_gpu.py: notebooks 04 and 06 in the gpu profile, capped, the longest test;
#   4  then the site: the quick course executed, the site built from it and opened in headless
#      Chromium (tests/test_site_browser.py, which skips in job 1, without MEDTL_SITE_EXECUTED).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export MEDTL_PROFILE=quick MEDTL_OFFLINE=1 MPLBACKEND=Agg MEDTL_PROGRESS=text
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PYTEST=("$PY" -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env)
runs_a=$(mktemp -d) runs_b=$(mktemp -d) runs_c=$(mktemp -d) executed=$(mktemp -d) logs=$(mktemp -d)
torch_home=$PWD/runs/standin-torch-home  # absolute: the notebooks run in notebooks/
"$PY" tests/standin_weights.py "$torch_home" > /dev/null || exit 1
trap 'rm -rf "$runs_a" "$runs_b" "$runs_c" "$executed" "$logs"' EXIT

site_browser() {  # job 4: its screenshots stay in the test's tmp_path, which it prints
  MEDTL_RUNS=$runs_c "$PY" -m medtl_helpers course notebooks --out "$executed" &&
    MEDTL_SITE_EXECUTED=$executed "$PY" -m pytest -p no:cacheprovider -s tests/test_site_browser.py
}

echo "== tests and notebooks (random init), while the student copies run with stand-in ImageNet"
echo "   weights and the gpu-profile smoke test, then the site in Chromium, run (their logs follow)"
MEDTL_RUNS=$runs_b TORCH_HOME=$torch_home MEDTL_PRETRAINED=imagenet \
  "${PYTEST[@]}" --durations=8 student > "$logs/student-imagenet.log" 2>&1 &
student=$!
{
  "${PYTEST[@]}" --durations=1 tests/test_smoke_gpu.py > "$logs/smoke-gpu.log" 2>&1
  echo $? > "$logs/smoke-gpu.status"
  start=$SECONDS
  site_browser > "$logs/site-browser.log" 2>&1
  echo $? > "$logs/site-browser.status"
  echo "the site job took $((SECONDS - start)) s" >> "$logs/site-browser.log"
} &
smoke_then_site=$!
MEDTL_RUNS=$runs_a "${PYTEST[@]}" -n 2 --dist loadfile --durations=12 tests notebooks \
  --ignore tests/test_smoke_gpu.py
status_a=$?
wait $student; status_student=$?
wait $smoke_then_site
status_smoke=$(cat "$logs/smoke-gpu.status") status_site=$(cat "$logs/site-browser.status")
for name in student-imagenet smoke-gpu site-browser; do
  echo "-- $name"; tail -n 25 "$logs/$name.log"
done
echo "tests and notebooks: $status_a  student copies with ImageNet weights: $status_student" \
  " gpu-profile smoke test: $status_smoke  site in Chromium: $status_site (0 = passed)"
exit $(( status_a || status_student || status_smoke || status_site ))
