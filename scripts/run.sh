#!/usr/bin/env bash
# `make run`: the pipeline on this machine with embedded defaults.
#
# Uses the NATS at $NATS_URL when one answers there, and otherwise starts tools/bin/nats-server
# with JetStream and its data under .run/nats. Starts the gateway with a demo tenant unless
# GATEWAY_TOKENS is set and prints the webhook URL to paste into Chat2Desk, then the services
# that follow the event log: alerting (rules from ALERTING_RULES_FILE), crm-sync (its SQLite store in .run/crm-sync, unless CRM_STORE_URL
# says otherwise), analytics (its snapshots under .run/analytics), hints (which the gateway
# asks for the answer to Chat2Desk's hints requests) and c2d-keeper, which keeps the demo
# tenant's Chat2Desk webhook enabled and backfills what it lost (against the simulator's API on
# 127.0.0.1:8090 unless KEEPER_API_TOKENS and C2D_API_URL name a real account), and
# c2d-console, the pipeline in a browser on 127.0.0.1:8088 (its admin token generated into
# .run/console-token unless CONSOLE_ADMIN_TOKEN or CONSOLE_TENANT_TOKENS is set), reading
# through the services started here and replaying to this gateway.
#
# With DEMO=1 (`make demo`) it also starts `c2dctl simulate` as a Chat2Desk account "demo" on
# 127.0.0.1:8090, registers its webhook at the gateway through the simulated API, and alerting
# uses scripts/demo-rules.toml, whose notifications the simulator logs.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export GATEWAY_ADDR="${GATEWAY_ADDR:-127.0.0.1:8080}"
export GATEWAY_SPOOL_DIR="${GATEWAY_SPOOL_DIR:-$PWD/.run/gateway/spool}"
export ANALYTICS_GRPC_ADDR="${ANALYTICS_GRPC_ADDR:-127.0.0.1:50052}"
export ANALYTICS_DATA_DIR="${ANALYTICS_DATA_DIR:-$PWD/.run/analytics}"
export CRM_GRPC_ADDR="${CRM_GRPC_ADDR:-127.0.0.1:50051}"
export CRM_STORE_URL="${CRM_STORE_URL:-sqlite://$PWD/.run/crm-sync/crm.db}"
export ALERTING_GRPC_ADDR="${ALERTING_GRPC_ADDR:-127.0.0.1:50053}"
export HINTS_GRPC_ADDR="${HINTS_GRPC_ADDR:-127.0.0.1:50054}"
export GATEWAY_HINTS_URL="${GATEWAY_HINTS_URL:-http://$HINTS_GRPC_ADDR}"
export KEEPER_ADDR="${KEEPER_ADDR:-127.0.0.1:9160}"
export KEEPER_GATEWAY_URL="${KEEPER_GATEWAY_URL:-http://$GATEWAY_ADDR}"
if [ -z "${KEEPER_API_TOKENS:-}" ]; then
    # The demo tenant's account is `c2dctl simulate` (make demo), whose delays are 60x faster.
    export KEEPER_API_TOKENS="demo=demo-api-token"
    export C2D_API_URL="${C2D_API_URL:-http://127.0.0.1:8090/v1}"
    export KEEPER_CHECK_INTERVAL="${KEEPER_CHECK_INTERVAL:-5s}"
    export KEEPER_SILENCE="${KEEPER_SILENCE:-15s}"
    export KEEPER_REDELIVERY_HORIZON="${KEEPER_REDELIVERY_HORIZON:-135s}"
fi
export ALERTING_CRM_URL="${ALERTING_CRM_URL:-http://$CRM_GRPC_ADDR}"
export ALERTING_ANALYTICS_URL="${ALERTING_ANALYTICS_URL:-http://$ANALYTICS_GRPC_ADDR}"
demo="${DEMO:-0}"
if [ "$demo" = 1 ]; then
    export ALERTING_RULES_FILE="${ALERTING_RULES_FILE:-$root/scripts/demo-rules.toml}"
fi
profile="${PROFILE:-release}"
run_dir="$root/.run"
mkdir -p "$run_dir"

hostport="${NATS_URL#*://}"
hostport="${hostport%%,*}"
host="${hostport%:*}"
port="${hostport##*:}"

answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if answers; then
    echo "using the NATS server already answering at $NATS_URL"
else
    bash scripts/install-nats-server.sh >/dev/null
    mkdir -p "$run_dir/nats"
    cat > "$run_dir/nats.conf" <<CONF
listen: $host:$port
max_payload: 8MB
jetstream {
  store_dir: "$run_dir/nats"
}
CONF
    echo "starting nats-server on $host:$port (data in .run/nats, log in .run/nats.log)"
    "$root/tools/bin/nats-server" -c "$run_dir/nats.conf" >"$run_dir/nats.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do answers && break; sleep 0.1; done
    answers || { echo "nats-server did not start; see .run/nats.log" >&2; exit 1; }
fi

if [ -z "${GATEWAY_TOKENS:-}" ]; then
    secret_file="$run_dir/demo-secret"
    [ -s "$secret_file" ] || od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$secret_file"
    export GATEWAY_TOKENS="demo=$(cat "$secret_file")"
fi
export CONSOLE_ADDR="${CONSOLE_ADDR:-127.0.0.1:8088}"
export CONSOLE_ANALYTICS_URL="${CONSOLE_ANALYTICS_URL:-http://$ANALYTICS_GRPC_ADDR}"
export CONSOLE_CRM_URL="${CONSOLE_CRM_URL:-http://$CRM_GRPC_ADDR}"
export CONSOLE_ALERTING_URL="${CONSOLE_ALERTING_URL:-http://$ALERTING_GRPC_ADDR}"
export CONSOLE_HINTS_URL="${CONSOLE_HINTS_URL:-http://$HINTS_GRPC_ADDR}"
export CONSOLE_GATEWAY_URL="${CONSOLE_GATEWAY_URL:-http://$GATEWAY_ADDR}"
export CONSOLE_GATEWAY_TOKENS="${CONSOLE_GATEWAY_TOKENS:-$GATEWAY_TOKENS}"
# The console's session cookie is Secure; browsers send it to http://localhost and 127.0.0.1.
if [ -z "${CONSOLE_ADMIN_TOKEN:-}" ] && [ -z "${CONSOLE_TENANT_TOKENS:-}" ]; then
    console_file="$run_dir/console-token"
    [ -s "$console_file" ] || od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > "$console_file"
    export CONSOLE_ADMIN_TOKEN="$(cat "$console_file")"
fi

cargo build --quiet --profile "$profile" -p c2d-gateway -p c2d-crm-sync -p c2d-analytics -p c2d-alerting -p c2d-hints -p c2d-keeper -p c2d-console -p c2dctl
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin_dir="$target_dir/$([ "$profile" = dev ] && echo debug || echo "$profile")"

"$bin_dir/c2d-gateway" &
pids+=($!)

# Ready means writing to JetStream, with the stream created: /readyz also answers 200 while the
# gateway spools (NATS not connected yet), and the consumers need the stream.
ready=""
for _ in $(seq 1 300); do
    answer="$(curl -fsS "http://$GATEWAY_ADDR/readyz" 2>/dev/null || true)"
    if [ -n "$answer" ] && [[ "$answer" != *spooling* ]]; then ready=yes; break; fi
    sleep 0.1
done
[ -n "$ready" ] || { echo "c2d-gateway did not reach NATS at $NATS_URL in 30 s (readyz: ${answer:-no answer})" >&2; exit 1; }

# The consumers need the stream the gateway creates.
"$bin_dir/c2d-crm-sync" &
pids+=($!)
"$bin_dir/c2d-analytics" &
pids+=($!)
# Rules come from ALERTING_RULES_FILE (see crates/alerting/alerting.example.toml); none: nothing fires.
"$bin_dir/c2d-alerting" &
pids+=($!)
"$bin_dir/c2d-hints" &
pids+=($!)
"$bin_dir/c2d-console" &
pids+=($!)

echo
echo "c2d-gateway is ready. Paste into Chat2Desk (webhooks API, every hook type):"
IFS=',' read -ra entries <<< "$GATEWAY_TOKENS"
for entry in "${entries[@]}"; do
    tenant="${entry%%=*}"; secret="${entry#*=}"
    echo "  http://$GATEWAY_ADDR/hooks/chat2desk/$tenant?token=$secret"
done
echo
echo "Try it:   curl -sS -H 'content-type: application/json' --data @fixtures/chat2desk/inbox.json \\"
echo "            'http://$GATEWAY_ADDR/hooks/chat2desk/${tenant}?token=${secret}'"
echo "Health:   http://$GATEWAY_ADDR/healthz  http://$GATEWAY_ADDR/readyz  http://$GATEWAY_ADDR/metrics"
echo "Analytics (gRPC with reflection) on $ANALYTICS_GRPC_ADDR, e.g.:"
echo "          grpcurl -plaintext -d '{\"tenant\":\"$tenant\",\"range\":{\"start\":\"2019-07-28T00:00:00Z\",\"end\":\"2019-07-29T00:00:00Z\"}}' \\"
echo "            $ANALYTICS_GRPC_ADDR chat2desk.analytics.v1.AnalyticsService/ChannelSummary"
echo "CRM directory (gRPC with reflection) on $CRM_GRPC_ADDR, e.g.:"
echo "          grpcurl -plaintext -d '{\"tenant\":\"$tenant\",\"client_id\":17340089}' \\"
echo "            $CRM_GRPC_ADDR chat2desk.crm.v1.CrmService/GetClient"
echo "Alerts (gRPC with reflection) on $ALERTING_GRPC_ADDR, rules from ${ALERTING_RULES_FILE:-none}:"
echo "          grpcurl -plaintext $ALERTING_GRPC_ADDR chat2desk.alerting.v1.AlertingService/ListAlerts"
echo "Hints (gRPC with reflection) on $HINTS_GRPC_ADDR, asked by the gateway for ai_hints_requested, e.g.:"
echo "          grpcurl -plaintext -d '{\"tenant\":\"$tenant\",\"text\":\"where is my order?\"}' \\"
echo "            $HINTS_GRPC_ADDR chat2desk.hints.v1.HintsService/Suggest"
echo "Or with c2dctl ($bin_dir/c2dctl): events tail, analytics summary --tenant $tenant, crm search --tenant $tenant, alerts list"
echo "Webhook keeper (c2d-keeper, metrics at http://$KEEPER_ADDR/metrics) for ${KEEPER_API_TOKENS%%=*}...: c2dctl keeper status"

if [ "$demo" = 1 ]; then
    echo
    echo "Demo: a simulated Chat2Desk account \"demo\" on 127.0.0.1:8090 sends ${DEMO_RATE:-10} events/s (delays 60x faster)."
    "$bin_dir/c2dctl" simulate --listen 127.0.0.1:8090 --accounts demo=demo-api-token \
        --rate "${DEMO_RATE:-10}" --time-scale 60 --wait-for-webhooks &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:8090/simulator/stats" >/dev/null 2>&1 && break
        sleep 0.1
    done
    demo_secret="$(echo "$GATEWAY_TOKENS" | tr ',' '\n' | sed -n 's/^demo=//p')"
    "$bin_dir/c2dctl" webhooks register --api-url http://127.0.0.1:8090/v1 --api-token demo-api-token \
        --gateway-url "http://$GATEWAY_ADDR" --tenant demo --token "$demo_secret"
    echo "Watch:    $bin_dir/c2dctl events tail --tenant demo"
    echo "          $bin_dir/c2dctl analytics summary --tenant demo --by channel --since 1h"
fi
# Keeps the webhooks of KEEPER_API_TOKENS' tenants (the demo tenant by default); started last,
# so that the demo's own registration above comes first.
"$bin_dir/c2d-keeper" &
pids+=($!)
echo "Console:  http://$CONSOLE_ADDR/ (log in with the token in .run/console-token, or your CONSOLE_ADMIN_TOKEN)"
echo "Stop:     Ctrl-C"
wait -n "${pids[@]}"
