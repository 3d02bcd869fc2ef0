#!/usr/bin/env bash
# Build the minimal `otelcol-openreplay` collector from collector/builder-config.yaml with the OpenTelemetry
# Collector Builder (ocb) v0.156.0, and print the binary's absolute path as the LAST line of stdout.
#
# - Cache: $OTEL_OPENREPLAY_CACHE (default ~/.cache/otel-openreplay)/collector/<sha256 of manifest>/otelcol-openreplay.
#   If that binary exists, nothing is built. Editing the manifest changes the hash and so forces a rebuild.
# - Needs only Go >= 1.25 (an older Go with the default GOTOOLCHAIN=auto fetches 1.25 itself) and access to
#   the Go module proxy. The builder itself is installed into the cache, next to nothing else on the system.
# - Progress goes to stderr; stdout carries only the path.
# - Usage: collector/build.sh [manifest]   (default: builder-config.yaml next to this script)
set -euo pipefail

BUILDER_VERSION="v0.156.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
manifest="${1:-$here/builder-config.yaml}"
manifest="$(cd "$(dirname "$manifest")" && pwd)/$(basename "$manifest")"

log() { printf '[collector/build.sh] %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { log "error: Go is not installed (https://go.dev/dl/)"; exit 1; }
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then  # macOS
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  log "error: neither sha256sum nor shasum found"; exit 1
fi

cache_root="${OTEL_OPENREPLAY_CACHE:-$HOME/.cache/otel-openreplay}"
sha="$(sha256 "$manifest")"
out_dir="$cache_root/collector/$sha"
binary="$out_dir/otelcol-openreplay"

if [[ -x "$binary" ]]; then
  log "cached: $binary"
  echo "$binary"
  exit 0
fi

mkdir -p "$out_dir"
# Serialise concurrent builds of the same manifest (e.g. two test sessions); the second one finds the binary.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$out_dir/.lock"
  if ! flock -n 9; then
    log "another build of this manifest is running; waiting for it ($out_dir/.lock)"
    flock 9
  fi
  if [[ -x "$binary" ]]; then
    log "built meanwhile by another process: $binary"
    echo "$binary"
    exit 0
  fi
fi

# The builder binary lives in the cache, versioned, so it never clashes with another ocb on PATH.
tools_dir="$cache_root/tools/builder-$BUILDER_VERSION"
builder="$tools_dir/builder"
if [[ ! -x "$builder" ]]; then
  log "installing go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION into $tools_dir"
  mkdir -p "$tools_dir"
  GOBIN="$tools_dir" go install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION" >&2
fi

# The checksum database refuses lookups for go.opentelemetry.io/ebpf-profiler (a transitive dependency).
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}go.opentelemetry.io/ebpf-profiler"

work="$out_dir/build.$$"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
# Same manifest, with dist.output_path pointing into the work directory.
sed -E "s|^([[:space:]]*output_path:).*|\\1 $work/src|" "$manifest" >"$work/manifest.yaml"

log "building otelcol-openreplay (manifest sha256 $sha); a cold build (empty Go caches) takes 2-4 minutes"
start=$(date +%s)
"$builder" --config="$work/manifest.yaml" >&2
built="$work/src/otelcol-openreplay"
[[ -x "$built" ]] || { log "error: the builder finished but $built is missing"; exit 1; }
mv -f "$built" "$binary.tmp.$$"
mv -f "$binary.tmp.$$" "$binary"
log "built in $(( $(date +%s) - start )) s: $binary"
echo "$binary"
