#!/bin/sh
# Helm post-renderer: the chart's manifests on stdin, the same with the seqwatch sidecar on stdout.
set -eu
dir=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
cat > "$dir/all.yaml"
kubectl kustomize "$dir"
rm -f "$dir/all.yaml"
