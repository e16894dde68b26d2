#!/usr/bin/env bash
# Two hosts on one machine: network namespaces mpA (10.200.0.1) and mpB
# (10.200.0.2) joined by a veth pair.  remote_server runs in mpA; two
# remote_client runs in mpB put and get over TCP.  Exit 77 = skipped.
set -u
SERVER="$1"; CLIENT="$2"
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns add mp-probe-$$ 2>/dev/null; then
  echo "SKIP: needs root and ip netns"; exit 77
fi
ip netns del mp-probe-$$
A=mpA-$$; B=mpB-$$; KEY="two-host-$$"
cleanup() { [ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null; }
trap cleanup EXIT
ip netns add "$A" && ip netns add "$B" || exit 1
ip link add vA-$$ netns "$A" type veth peer name vB-$$ netns "$B" || exit 1
ip -n "$A" addr add 10.200.0.1/24 dev vA-$$ && ip -n "$A" link set vA-$$ up && ip -n "$A" link set lo up
ip -n "$B" addr add 10.200.0.2/24 dev vB-$$ && ip -n "$B" link set vB-$$ up && ip -n "$B" link set lo up
timeout 60 ip netns exec "$A" "$SERVER" 10.200.0.1 50000 "$KEY" > /tmp/mp-netns-server-$$.log 2>&1 &
SPID=$!
for _ in $(seq 100); do grep -q serving /tmp/mp-netns-server-$$.log && break; sleep 0.1; done
put=$(timeout 20 ip netns exec "$B" "$CLIENT" 10.200.0.1 50000 "$KEY" put alpha beta) || { echo "put failed: $put"; exit 1; }
got=$(timeout 20 ip netns exec "$B" "$CLIENT" 10.200.0.1 50000 "$KEY" get 2) || { echo "get failed: $got"; exit 1; }
bad=$(timeout 20 ip netns exec "$B" "$CLIENT" 10.200.0.1 50000 wrong-key get 1 2>&1) && { echo "wrong key accepted"; exit 1; }
timeout 20 ip netns exec "$B" "$CLIENT" 10.200.0.1 50000 "$KEY" shutdown || { echo "shutdown failed"; exit 1; }
wait "$SPID"; SPID=
echo "$put"; echo "$got"; cat /tmp/mp-netns-server-$$.log; rm -f /tmp/mp-netns-server-$$.log
[ "$got" = "$(printf 'got alpha\ngot beta')" ] || { echo "unexpected: $got"; exit 1; }
echo "$bad" | grep -q AuthenticationError || { echo "wrong key gave: $bad"; exit 1; }
echo "two-host test passed"
