#!/usr/bin/env bash
# `make bench-gateway-instructions`: the instructions c2d-gateway's own code executes per
# webhook, counted by valgrind's callgrind, for comparing two versions of the gateway where
# `make bench-gateway`'s wall-clock figures cannot: this shared 2-core machine's speed moves
# by 15% between runs, more than most single cuts save, while these counts move by under 1%.
#
# A nats-server and the gateway (release build, spool on, under callgrind) are started on free
# ports; 500 deliveries warm up, the counters are zeroed, then BENCH_REQUESTS (default 2000)
# unique fixture bodies are posted one at a time and the counters dumped. Printed per request:
# the whole process (which also counts the runtime's idle turns, so it moves more), the webhook
# handler, and its parts. User-space only: the kernel's TCP is not counted. Under valgrind
# SHA-256 runs its portable code, not the CPU's SHA instructions, so the event id weighs more
# here than on real hardware.
#
# Usage: scripts/gateway-instructions.sh [path/to/c2d-gateway]
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAY=${1:-target/release/c2d-gateway}
REQUESTS=${BENCH_REQUESTS:-2000}
NATS_SERVER=${NATS_SERVER:-tools/bin/nats-server}
command -v nats-server >/dev/null && [ ! -x "$NATS_SERVER" ] && NATS_SERVER=$(command -v nats-server)

if ! command -v valgrind >/dev/null; then
    echo "installing Debian's valgrind (callgrind counts the instructions)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get install -y -qq valgrind >/dev/null
fi
[ -x "$GATEWAY" ] || { echo "no gateway at $GATEWAY: run cargo build --release -p c2d-gateway first" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nats_port=$(free_port)
gateway_port=$(free_port)

"$NATS_SERVER" -js -sd "$work/jetstream" -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 &
pids+=($!)

env NATS_URL="nats://127.0.0.1:$nats_port" GATEWAY_ADDR="127.0.0.1:$gateway_port" \
    GATEWAY_TOKENS=acme=acme-secret-1 GATEWAY_SPOOL_DIR="$work/spool" GATEWAY_HINTS_URL=off \
    GATEWAY_TENANT_RATE=1000000 GATEWAY_TENANT_BURST=1000000 RUST_LOG=info \
    valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "$GATEWAY" \
    >"$work/gateway.log" 2>&1 &
gateway=$!
pids+=("$gateway")

for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$gateway_port/readyz" >/dev/null && break
    sleep 0.3
done
curl -sf "http://127.0.0.1:$gateway_port/readyz" >/dev/null \
    || { echo "the gateway did not get ready; its log:" >&2; tail -20 "$work/gateway.log" >&2; exit 1; }

# Posts `count` unique fixture bodies from number `first` on, one at a time on one connection,
# weighted towards messages as `make bench-gateway` sends them.
post() {
    python3 - "$gateway_port" "$1" "$2" <<'PY'
import glob, http.client, os, sys
port, first, count = (int(a) for a in sys.argv[1:4])
templates = []
for path in sorted(glob.glob("fixtures/chat2desk/*.json")):
    text = open(path).read()
    name = os.path.basename(path)[:-5]
    if '"event_time": ' not in text:
        continue  # made unique by their event_time, as make bench-gateway does
    at = text.index('"event_time": ') + len('"event_time": ')
    end = min(i for i in (text.find(c, at) for c in ",\n}") if i > 0)
    templates += [(text[:at], text[end:])] * (6 if name in ("inbox", "outbox") else 1)
connection = http.client.HTTPConnection("127.0.0.1", port)
for n in range(first, first + count):
    before, after = templates[n % len(templates)]
    connection.request("POST", "/hooks/chat2desk/acme?token=acme-secret-1",
                       f"{before}{1_700_000_000 + n}{after}".encode(),
                       {"content-type": "application/json"})
    answer = connection.getresponse()
    answer.read()
    if answer.status >= 300:
        sys.exit(f"the gateway answered {answer.status}")
PY
}

post 0 500
callgrind_control --zero "$gateway" >/dev/null 2>&1
post 1000 "$REQUESTS"
callgrind_control --dump "$gateway" >/dev/null 2>&1
sleep 1
dump=$(ls "$work"/callgrind.out.* | head -1)
callgrind_annotate --inclusive=yes "$dump" 2>/dev/null >"$work/annotated.txt"

# A function's inclusive count per request. callgrind_annotate lists a function once per source
# file its inlined code came from; the largest of those lines (the first, as they are sorted) is
# the whole function, and the others are parts of it. Call lines (`=>`) are not in the listing.
per_request() {
    local count
    count=$(awk -v name="$1" '/^ *[0-9,]+ \( *[0-9.]+%\)  / && !/=>/ && index($0, name) {
        gsub(",", "", $1); print $1; exit }' "$work/annotated.txt")
    echo $(( ${count:-0} / REQUESTS ))
}
echo "instructions per webhook request, user space, $REQUESTS requests ($GATEWAY):"
printf '  %-44s %8s\n' \
    "whole process" "$(per_request 'PROGRAM TOTALS')" \
    "webhook handler (parse to answer)" "$(per_request 'webhook.rs:<F as axum::handler::Handler')" \
    "  read_delivery (parse, typed read, id)" "$(per_request ':c2d_hooks::read_delivery')" \
    "    of which the event id's SHA-256" "$(per_request ':c2d_hooks::event_id::digest')" \
    "  protobuf encode" "$(per_request ':prost::message::Message::encode_to_vec')" \
    "  span fields recorded" "$(per_request ':tracing::span::Span::record_all')" \
    "NATS connection task" "$(per_request 'ConnectionHandler::process::{{closure}}::ProcessFut as core::future::future::Future>::poll')" \
    "HTTP request head parse" "$(per_request 'Http1Transaction>::parse')"
