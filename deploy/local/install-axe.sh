#!/usr/bin/env bash
# Install axe-core (Deque's accessibility rules engine, an npm package) into var/axe for the
# browser tests, which inject axe.min.js into every page they open (tests/support/axe.py).
# Idempotent; needs node/npm and the npm registry the first time. No root.
set -euo pipefail

VERSION=4.14.1
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)
DEST="$ROOT/var/axe"
SCRIPT="$DEST/node_modules/axe-core/axe.min.js"
PACKAGE="$DEST/node_modules/axe-core/package.json"

if [[ -f $SCRIPT && -f $PACKAGE ]] && grep -q "\"version\": \"$VERSION\"" "$PACKAGE"; then
    echo "install-axe.sh: axe-core $VERSION ($SCRIPT)"
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "install-axe.sh: npm not found; the accessibility checks of the browser tests are skipped (they fail when CI=true)" >&2
    exit 0
fi
mkdir -p "$DEST"
npm install --prefix "$DEST" --no-audit --no-fund --no-save --loglevel=error "axe-core@$VERSION"
echo "install-axe.sh: axe-core $VERSION ($SCRIPT)"
