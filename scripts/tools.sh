#!/usr/bin/env bash
# tools.sh NAME...: puts the pinned tools gofer runs against into ./bin. Each is built once per
# machine into a per-user cache (GOFER_TOOLS_CACHE, default ~/.cache/gofer/tools) keyed by name
# and version, so a fresh clone (CI's, say) links it instead of spending minutes building it.
set -euo pipefail
cache=${GOFER_TOOLS_CACHE:-$HOME/.cache/gofer/tools}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$cache" "$root/bin"
for name in "$@"; do
  case $name in
    temporal) pkg=github.com/temporalio/cli/cmd/temporal; version=v1.5.1; note="about 6 minutes the first time" ;;
    versitygw) pkg=github.com/versity/versitygw/cmd/versitygw; version=v1.8.0; note="about a minute the first time" ;;
    staticcheck) pkg=honnef.co/go/tools/cmd/staticcheck; version=v0.8.2; note="under a minute the first time" ;;
    workflowcheck) pkg=go.temporal.io/sdk/contrib/tools/workflowcheck; version=v0.6.0; note="under a minute the first time" ;;
    composecheck) pkg=local; version=v2.16.2; note="compose-go's validator; under a minute the first time" ;;
    ferretdb) pkg=local; version=v1.24.2; note="FerretDB embedded in tools/ferretdb; about 2 minutes the first time" ;;
    *) echo "tools.sh: unknown tool $name" >&2; exit 2 ;;
  esac
  if [ "$pkg" = local ]; then
    # A tool module in this repository: the cache key includes a hash of its sources.
    version=$version-$(cat "$root/tools/$name"/go.* "$root/tools/$name"/*.go | sha256sum | cut -c1-12)
  fi
  target=$cache/$name-$version
  if [ ! -x "$target" ]; then
    echo "building $name $version into $cache ($note)..." >&2
    tmp=$(mktemp -d "$cache/.build-$name-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    if [ "$pkg" = local ]; then
      (cd "$root/tools/$name" && go build -o "$tmp/$name" .)
    else
      GOBIN=$tmp go install "$pkg@$version"
    fi
    mv "$tmp/$name" "$target"
    rm -rf "$tmp"; trap - EXIT
  fi
  ln -sfn "$target" "$root/bin/$name"
done
