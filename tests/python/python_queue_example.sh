#!/usr/bin/env bash
# examples/python_queue_client against examples/python/queue_server.py (a
# real CPython 3.13 server): C++ puts, Python gets, and the other way.
#   python_queue_example.sh PATH/TO/python_queue_client
# Exit 77 (skipped) without PYENV_VERSION=3.13.0 python3.
set -euo pipefail
client="$1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PYENV_VERSION=3.13.0
python3 -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null || { echo "no CPython 3.13: skipped"; exit 77; }
out="$(mktemp)"
python3 "$ROOT/examples/python/queue_server.py" 0 abracadabra >"$out" 2>&1 &
server=$!
trap 'kill -9 $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 200); do grep -q serving "$out" && break; sleep 0.05; done
port="$(sed -n "s/^serving ('127.0.0.1', \([0-9]*\))$/\1/p" "$out")"
[ -n "$port" ] || { echo "the Python server did not start:"; cat "$out"; exit 1; }
"$client" 127.0.0.1 "$port" abracadabra put 1 two 3.5
got="$(timeout 30 python3 - "$port" <<'PY'
import sys
from multiprocessing.managers import BaseManager
class QueueManager(BaseManager): pass
QueueManager.register('get_queue')
m = QueueManager(address=('127.0.0.1', int(sys.argv[1])), authkey=b'abracadabra')
m.connect()
q = m.get_queue()
print(repr([q.get(timeout=10) for _ in range(3)]))
q.put({'from': 'python', 'n': (1, 2.5)})
PY
)"
echo "python got: $got"
[ "$got" = "[1, 'two', 3.5]" ] || { echo "expected [1, 'two', 3.5]"; exit 1; }
back="$(timeout 30 "$client" 127.0.0.1 "$port" abracadabra get 1)"
echo "C++ got: $back"
[ "$back" = "{'from': 'python', 'n': (1, 2.5)}" ] || { echo "expected {'from': 'python', 'n': (1, 2.5)}"; exit 1; }
echo "python_queue_client: ok"
