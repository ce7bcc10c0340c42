#!/usr/bin/env bash
# Run the whole test suite while N CPU-burning processes keep every core busy (N = number of
# cores by default), as when CI shares its machine, and report each failing test.
#
#   scripts/stress-test.sh [-n BURNERS] [-r RUNS] [-- PYTEST_ARGS...]
#
# It is a check to run by hand before trusting a change to the tests, not part of `make test`.
# Exit status 0 when every run passed, 1 otherwise. Each run's log is kept in out/stress/.
set -euo pipefail
cd "$(dirname "$0")/.."

burners=$(nproc)
runs=1
while [ $# -gt 0 ]; do
  case "$1" in
    -n) burners=$2; shift 2 ;;
    -r) runs=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "stress-test: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$burners$runs" in *[!0-9]*) echo "stress-test: -n and -r take whole numbers" >&2; exit 2 ;; esac

bash scripts/bootstrap.sh
mkdir -p out/stress

pids=()
stop_burners() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_burners EXIT INT TERM
for _ in $(seq "$burners"); do
  # A busy loop with no I/O: one core's worth of load each, for as long as the runs last.
  .venv/bin/python -c 'while True: pass' &
  pids+=("$!")
done

failed_runs=0
for run in $(seq "$runs"); do
  log=out/stress/run-$run.log
  echo "stress-test: run $run/$runs with $burners CPU burner(s); log in $log"
  start=$(date +%s)
  set +e
  .venv/bin/pytest -q -p no:cacheprovider "$@" >"$log" 2>&1
  status=$?
  set -e
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$log" | tail -n 1)
  echo "stress-test: run $run: exit $status in $(( $(date +%s) - start )) s: ${summary:-no summary}"
  if [ "$status" -ne 0 ]; then
    failed_runs=$((failed_runs + 1))
    grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/  /' || true
  fi
done

stop_burners
trap - EXIT INT TERM
echo "stress-test: $((runs - failed_runs)) of $runs run(s) passed"
[ "$failed_runs" -eq 0 ]
