#!/usr/bin/env bash
# examples/python/queue_client.py (Python's documented remote client, run by
# a real CPython 3.13) against examples/remote_server (C++), with
# examples/remote_client (C++) on the same server: Python puts, C++ gets,
# and the other way.
#   cpp_server_example.sh PATH/TO/remote_server PATH/TO/remote_client
# Exit 77 (skipped) without PYENV_VERSION=3.13.0 python3.
set -euo pipefail
server_bin="$1"
client_bin="$2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PYENV_VERSION=3.13.0
python3 -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null || { echo "no CPython 3.13: skipped"; exit 77; }
out="$(mktemp)"
"$server_bin" 127.0.0.1 0 abracadabra >"$out" 2>&1 &
server=$!
trap 'kill -9 $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 200); do grep -q serving "$out" && break; sleep 0.05; done
port="$(sed -n "s/^serving on ('127.0.0.1', \([0-9]*\))$/\1/p" "$out")"
[ -n "$port" ] || { echo "the C++ server did not start:"; cat "$out"; exit 1; }
client_py="$ROOT/examples/python/queue_client.py"
expect() {  # what got
  echo "$2"
  [ "$2" = "$1" ] || { echo "expected: $1"; exit 1; }
}
expect "$(printf "put 'hello'\nput 'from python'\nqsize 2")" \
  "$(timeout 30 python3 "$client_py" 127.0.0.1 "$port" abracadabra put hello 'from python')"
expect "$(printf "got hello\ngot from python")" "$(timeout 30 "$client_bin" 127.0.0.1 "$port" abracadabra get 2)"
expect "put from c++" "$(timeout 30 "$client_bin" 127.0.0.1 "$port" abracadabra put 'from c++')"
expect "$(printf "got 'from c++'\nqsize 0")" "$(timeout 30 python3 "$client_py" 127.0.0.1 "$port" abracadabra get 1)"
# Python blocks in get() (no timeout, as in the docs) until C++ puts.
timeout 30 python3 "$client_py" 127.0.0.1 "$port" abracadabra get 1 >"$out.py" 2>&1 &
py=$!
sleep 0.5
timeout 30 "$client_bin" 127.0.0.1 "$port" abracadabra put late >/dev/null
wait $py
expect "$(printf "got 'late'\nqsize 0")" "$(cat "$out.py")"
rm -f "$out.py"
# The server still serves, and no reference is left behind.
info="$(timeout 30 "$client_bin" 127.0.0.1 "$port" abracadabra info)"
echo "$info"
echo "$info" | grep -q "refcount=" && { echo "an object is still referenced"; exit 1; }
echo "cpp_server_example: ok"
