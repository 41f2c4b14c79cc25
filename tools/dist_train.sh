#!/usr/bin/env bash
# Multi-process training, as the stock script (environment: see dist_run.sh):
#   tools/dist_train.sh CONFIG NUM_PROCESSES [train.py options]
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG NUM_PROCESSES [train.py options]" >&2
  exit 2
fi
exec "$(dirname "$0")/dist_run.sh" train.py "$2" "$1" --launcher pytorch "${@:3}"
