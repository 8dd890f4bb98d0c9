#!/usr/bin/env bash
# Run one official protocol test suite against one server build, by hand:
#   tests/conformance/run-suite.sh ours|plain engine.io|socket.io [mocha args...]
# Starts tests/conformance/server.py on a free 127.0.0.1 port, points the suite at
# it (CONFORMANCE_URL), runs mocha, stops the server by pid.  The pytest test
# (test_protocol_suites.py) does the same with the JSON reporter and compares.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
server="$1"; suite="$2"; shift 2
port="$("$ROOT/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$ROOT/.venv/bin/python" "$HERE/server.py" --server "$server" --suite "$suite" --port "$port" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
cd "$HERE/$suite"
CONFORMANCE_URL="http://127.0.0.1:$port" node_modules/.bin/mocha "$@" test-suite.js
