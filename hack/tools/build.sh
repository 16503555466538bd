#!/usr/bin/env bash
# Builds the programs that the tests and the demo run, into .cache/tools:
# the Nomad v1.6.3 agent, AWS's ec2-metadata-mock v1.13.0 and the
# distribution registry v3.1.2, each from its own module under hack/tools. A binary that is present and reports the
# pinned version is reused. The Nomad build takes about 3 to 4 minutes on
# 2 cores the first time; Go's build cache makes later builds quick.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/.cache/tools"
mkdir -p "$OUT"

if ! "$OUT/nomad" version 2>/dev/null | grep -q '^Nomad v1.6.3'; then
	echo "building the Nomad v1.6.3 agent into $OUT (cgo is needed for Nomad's Linux executor)"
	(cd "$ROOT/hack/tools/nomad" && CGO_ENABLED=1 go build -trimpath -o "$OUT/nomad.tmp" github.com/hashicorp/nomad)
	mv "$OUT/nomad.tmp" "$OUT/nomad"
fi

if ! "$OUT/ec2-metadata-mock" --version 2>/dev/null | grep -q 'v1.13.0'; then
	echo "building ec2-metadata-mock v1.13.0 into $OUT"
	(cd "$ROOT/hack/tools/ec2-metadata-mock" && CGO_ENABLED=0 go build -trimpath -o "$OUT/ec2-metadata-mock.tmp" github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock)
	mv "$OUT/ec2-metadata-mock.tmp" "$OUT/ec2-metadata-mock"
fi

if ! "$OUT/registry" --version 2>/dev/null | grep -q 'v3.1.2'; then
	echo "building the distribution registry v3.1.2 into $OUT"
	(cd "$ROOT/hack/tools/registry" && CGO_ENABLED=0 go build -trimpath -o "$OUT/registry.tmp" github.com/distribution/distribution/v3/cmd/registry)
	mv "$OUT/registry.tmp" "$OUT/registry"
fi

"$OUT/nomad" version | head -n1
echo "ec2-metadata-mock $("$OUT/ec2-metadata-mock" --version 2>&1 | tail -n1)"
"$OUT/registry" --version
