#!/usr/bin/env bash
# Sets everything up, then runs the whole gate: ruff, import-linter layer contracts, mypy strict
# on the core packages, and the pytest suite. Fails when any of them fails or when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
export FORECOURT_DEV=1
echo "== ruff"; .venv/bin/ruff check .
echo "== import-linter"; .venv/bin/lint-imports
echo "== mypy --strict (agent, drivers)"; .venv/bin/mypy agent drivers
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest collected no tests: failing the run"; exit 1; fi
exit $rc
