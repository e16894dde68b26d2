#!/usr/bin/env bash
# Two hosts on one machine: network namespaces A (10.200.0.1) and B
# (10.200.0.2) joined by a veth pair.  remote_server runs in A; remote_client
# runs in B: put, get from another invocation, a wrong key.  Then the link
# between a client blocked in a call and the server vanishes (the veth is
# deleted: no FIN or RST can cross): the server must release the client's
# session, and the client's call must fail, both by TCP keepalive.
# Exit 77 = skipped (needs root and iproute2's ip netns).
set -u
SERVER="$1"; CLIENT="$2"
if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root for ip netns"; exit 77; fi
if ! command -v ip >/dev/null; then echo "SKIP: no ip command (package iproute2)"; exit 77; fi
if ! command -v timeout >/dev/null; then echo "SKIP: no timeout command (coreutils)"; exit 77; fi
if ! ip netns add mp-probe-$$ 2>/dev/null; then echo "SKIP: ip netns add failed (no CAP_SYS_ADMIN?)"; exit 77; fi
ip netns del mp-probe-$$
A=mpA-$$; B=mpB-$$; KEY="two-host-$$"; LOG=$(mktemp /tmp/mp-netns-server.XXXXXX)
SPID=; HPID=
cleanup() {
  # Everything in our namespaces is ours: kill it there (killing the timeout
  # wrappers alone would orphan the programs).
  for ns in "$A" "$B"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null; done
  for p in $HPID $SPID; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null
  rm -f "$LOG" "$LOG.held"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- server log:"; cat "$LOG"; exit 1; }
ip netns add "$A" && ip netns add "$B" || fail "netns add"
ip link add vA-$$ netns "$A" type veth peer name vB-$$ netns "$B" || fail "veth add"
ip -n "$A" addr add 10.200.0.1/24 dev vA-$$ && ip -n "$A" link set vA-$$ up && ip -n "$A" link set lo up || fail "setup A"
ip -n "$B" addr add 10.200.0.2/24 dev vB-$$ && ip -n "$B" link set vB-$$ up && ip -n "$B" link set lo up || fail "setup B"
inA() { timeout 20 ip netns exec "$A" "$CLIENT" 127.0.0.1 50000 "$KEY" "$@"; }
inB() { timeout 20 ip netns exec "$B" "$CLIENT" 10.200.0.1 50000 "$KEY" "$@"; }
sessions() { inA info | grep -c session; }

# '' = all interfaces, so the server stays reachable on A's loopback after
# the veth is gone; keepalive 1 s idle, 2 probes 1 s apart.
timeout 90 ip netns exec "$A" "$SERVER" "" 50000 "$KEY" 1 > "$LOG" 2>&1 &
SPID=$!
for _ in $(seq 300); do grep -q serving "$LOG" && break; sleep 0.1; done
grep -q "serving on ('0.0.0.0', 50000)" "$LOG" || fail "server did not start"

put=$(inB put alpha beta) || fail "put: $put"
got=$(inB get 2) || fail "get: $got"
[ "$got" = "$(printf 'got alpha\ngot beta')" ] || fail "unexpected get output: $got"
bad=$(timeout 20 ip netns exec "$B" "$CLIENT" 10.200.0.1 50000 wrong-key get 1 2>&1) && fail "wrong key accepted"
echo "$bad" | grep -q AuthenticationError || fail "wrong key gave: $bad"
echo "$put"; echo "$got"; echo "wrong key: $bad"

# The vanished host: a get blocked in the server, then B's link disappears.
HLOG="$LOG.held"
timeout 60 ip netns exec "$B" "$CLIENT" 10.200.0.1 50000 "$KEY" get 1 50 > "$HLOG" 2>&1 &
HPID=$!
n=0
for _ in $(seq 100); do n=$(sessions); [ "$n" -ge 2 ] && break; sleep 0.1; done
[ "$n" -ge 2 ] || fail "blocked client's session never appeared ($n)"
sleep 0.5  # its get() is now waiting in the server
ip -n "$A" link del vA-$$ || fail "veth del"
start=$(date +%s)
for _ in $(seq 200); do n=$(sessions); [ "$n" -eq 1 ] && break; sleep 0.1; done
[ "$n" -eq 1 ] || fail "vanished client's session still held after $(( $(date +%s) - start )) s"
echo "server released the vanished client after about $(( $(date +%s) - start )) s"
# The client's keepalive (10 s idle, 3 probes 2 s apart) fails its call long
# before the server's 50 s get timeout could.
wait "$HPID"; rc=$?; HPID=
held=$(cat "$HLOG"); rm -f "$HLOG"
[ "$rc" = 1 ] || fail "blocked client ended with $rc (124 = hung until timeout): $held"
echo "$held" | grep -qi "error" || fail "blocked client said: $held"
echo "client's call failed after about $(( $(date +%s) - start )) s: $held"

inA shutdown || fail "shutdown"
wait "$SPID"; rc=$?; SPID=
[ "$rc" = 0 ] || fail "server exit code $rc"
echo "--- server log:"; cat "$LOG"
echo "two-host test passed"
