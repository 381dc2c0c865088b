#!/usr/bin/env bash
# run.sh: the zero-setup gofer. Starts the Temporal dev server (UI on http://127.0.0.1:8233,
# state in ./data/temporal.db; gofer's worker registers its search attributes), waits for it, then runs
# `gofer serve` in the foreground with its defaults (disk blobs and embedded metadata in ./data).
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${GOFER_DATA_DIR:-./data}
temporal_port=${GOFER_TEMPORAL_PORT:-7233}
ui_port=${GOFER_TEMPORAL_UI_PORT:-8233}
mkdir -p "$data"

bin/temporal server start-dev --ip 127.0.0.1 --port "$temporal_port" --ui-port "$ui_port" \
  --db-filename "$data/temporal.db" \
  --dynamic-config-value system.enableActivityEagerExecution=true \
  --dynamic-config-value system.enableEagerWorkflowStart=true \
  --log-level error > "$data/temporal.log" 2>&1 &
temporal_pid=$!
trap 'kill $temporal_pid 2>/dev/null; wait $temporal_pid 2>/dev/null' EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 120); do
  if bin/temporal operator cluster health --address "127.0.0.1:$temporal_port" >/dev/null 2>&1; then break; fi
  if ! kill -0 $temporal_pid 2>/dev/null; then echo "the Temporal dev server exited; see $data/temporal.log" >&2; exit 1; fi
  sleep 0.5
done
echo "Temporal UI: http://127.0.0.1:$ui_port"
GOFER_TEMPORAL_ADDRESS=127.0.0.1:$temporal_port GOFER_DATA_DIR=$data bin/gofer serve "$@"
