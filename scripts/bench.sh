#!/usr/bin/env bash
# bench.sh [benchrun flags]: the hit-path comparison on this machine. gofer (disk, with and
# without its request log, and S3+MongoDB stores) against nginx, net/http.FileServer and the bare
# net/http and gin servers serving the very same files, measured with wrk;
# the Markdown table goes to BENCHMARKS-results.md (see internal/benchrun for the flags, such as
# -quick and -duration). nginx-light and wrk come from apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} with apt-get..." >&2
  sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  # The package lists are refreshed only when the install cannot work from the ones on disk.
  install || { $sudo apt-get update -qq && install; }
fi

scripts/tools.sh temporal versitygw ferretdb
go build -o bin/gofer ./cmd/gofer
exec go run ./internal/benchrun -out BENCHMARKS-results.md "$@"
