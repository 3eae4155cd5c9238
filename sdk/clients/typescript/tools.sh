#!/usr/bin/env bash
# Installs the pinned devDependencies (typescript, openapi-typescript) into
# node_modules with `npm ci` when package-lock.json changed since the last
# install (or there was none), and prints the node_modules/.bin directory.
set -euo pipefail
cd "$(dirname "$0")"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null \
  || { echo "sdk/clients/typescript: Node.js >= 20 is missing" >&2; exit 1; }
stamp=node_modules/.herald-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "sdk/clients/typescript: npm ci" >&2
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2
  echo "$want" >"$stamp"
fi
echo "$PWD/node_modules/.bin"
