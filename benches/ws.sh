#!/usr/bin/env bash
# kefu's WebSocket benchmark, against a fresh `kefu serve` on SQLite and
# against a bare tokio-tungstenite relay (kefu-wsload relay-server) as the
# ceiling. See benches/WS.md.
#
#   benches/ws.sh
#
# Scenarios (WS_SCENARIOS, in this order):
#   idle       WS_IDLE_SOCKETS idle widget sockets (hello + welcome) from
#              WS_IDLE_PROCESSES processes on source addresses 127.0.0.2…;
#              kefu's memory per socket (VmRSS after − before) / sockets
#   flow       customer → agent latency at WS_RATE msg/s over WS_ROOMS rooms
#   agents     the same flow with WS_CONSOLES agent consoles connected, and
#              GET /api/v1/conversations?limit=50 timed alongside; every
#              console is the admin's, so each receives all WS_RATE msg/s
#   teams      the same with WS_CONSOLES - 1 agents (role agent) spread over
#              WS_TEAMS widget inboxes, each console following only its own
#              inbox (the rooms are spread over the inboxes too), and the
#              list timed as one of those agents: a support floor's shape
#   relay      the flow against the relay (the ratio to kefu), then a ramp of
#              WS_RAMP rates to find the relay's ceiling (p99 ≤ WS_P99_BOUND)
#   relay-idle WS_RELAY_IDLE_SOCKETS idle sockets on the relay, for its memory
# Everything runs on 127.0.0.0/8 and is stopped when the script exits, after
# an error or Ctrl-C too.
#
# Environment (defaults in brackets):
#   WS_SCENARIOS          ["idle flow agents teams relay relay-idle"]
#   WS_IDLE_SOCKETS       [19000]   WS_IDLE_PROCESSES [4]   WS_IDLE_HOLD [60s]
#   WS_RATE               [1000]    WS_ROOMS [200]          WS_DURATION [30s]
#   WS_WARMUP             [5s]
#   WS_CONSOLES           [500]     WS_LIST_INTERVAL [100ms]  WS_TEAMS [50]
#   WS_RAMP               ["1000,2000,4000,8000,16000"]  WS_RAMP_DURATION [15s]
#   WS_P99_BOUND          [50ms]
#   WS_RELAY_IDLE_SOCKETS [= WS_IDLE_SOCKETS]  WS_RELAY_IDLE_HOLD [10s]
#   WS_CLIENT_THREADS     worker threads of each load process [1]
#   WS_OUT                logs, results.jsonl, summary.txt [a new /tmp/kefu-ws.*]
#   WS_NO_BUILD=1         use the binaries already built
#   CARGO_TARGET_DIR      where the binaries are built [target/]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WS_SCENARIOS=${WS_SCENARIOS:-"idle flow agents teams relay relay-idle"}
WS_IDLE_SOCKETS=${WS_IDLE_SOCKETS:-19000}
WS_IDLE_PROCESSES=${WS_IDLE_PROCESSES:-4}
WS_IDLE_HOLD=${WS_IDLE_HOLD:-60s}
WS_RATE=${WS_RATE:-1000}
WS_ROOMS=${WS_ROOMS:-200}
WS_DURATION=${WS_DURATION:-30s}
WS_WARMUP=${WS_WARMUP:-5s}
WS_CONSOLES=${WS_CONSOLES:-500}
WS_TEAMS=${WS_TEAMS:-50}
WS_LIST_INTERVAL=${WS_LIST_INTERVAL:-100ms}
WS_RAMP=${WS_RAMP:-"1000,2000,4000,8000,16000"}
WS_RAMP_DURATION=${WS_RAMP_DURATION:-15s}
WS_P99_BOUND=${WS_P99_BOUND:-50ms}
WS_RELAY_IDLE_SOCKETS=${WS_RELAY_IDLE_SOCKETS:-$WS_IDLE_SOCKETS}
WS_RELAY_IDLE_HOLD=${WS_RELAY_IDLE_HOLD:-10s}
WS_CLIENT_THREADS=${WS_CLIENT_THREADS:-1}

# What the benchmark server needs besides kefu's defaults: the per-IP
# request limiter (200/s) would refuse the socket upgrades and the list
# calls, and the per-IP widget session limit (60 a minute) would take
# five hours to hand out 19,000 visitor sessions.
SERVER_ENV=(
    KEFU_SERVER__LIMITS__REQUESTS_PER_SECOND_PER_IP=0
    KEFU_SERVER__LIMITS__WIDGET_SESSIONS_PER_MINUTE_PER_IP=0
)

log() { printf '%s\n' "$*" >&2; }
section() { printf '\n=== %s\n' "$*" >&2; }
die() { printf 'benches/ws.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup ---
# As in benches/run.sh: cleanups run in reverse order when the script exits,
# whatever the reason.
CLEANUPS=()
register_cleanup() { CLEANUPS+=("$*"); }
run_cleanups() {
    local status=$? i
    trap - EXIT INT TERM
    set +e
    stop_load
    for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUPS[i]}"
    done
    exit "$status"
}
trap run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    local port=$1 tries=0
    while port_in_use "$port"; do
        tries=$((tries + 1))
        [ "$tries" -le 100 ] || die "no free port found from $1"
        port=$((port + 1))
    done
    echo "$port"
}

# stop_pid PID NAME : SIGTERM, up to 10 s, then SIGKILL.
stop_pid() {
    local pid=$1 name=$2 i
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "warning: $name did not stop within 10 s of SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

# ------------------------------------------------------------- measuring ---
TICKS=$(getconf CLK_TCK)
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
now_ns() { date +%s%N; }

# measure LABEL PID CMD… : runs the load (CMD execs kefu-wsload) in the
# background and waits for it, so that a signal reaches the trap at once;
# keeps its JSON lines in results.jsonl and adds one line with the CPU the
# server (PID) used.
LOAD_PID=""
stop_load() {
    # Its own load processes exit when it does (their stdin closes).
    stop_pid "$LOAD_PID" kefu-wsload
    LOAD_PID=""
}
measure() {
    local label=$1 pid=$2
    shift 2
    local t0 c0 t1 c1 status=0
    t0=$(now_ns)
    c0=$(proc_ticks "$pid")
    "$@" >"$OUT/$label.out" &
    LOAD_PID=$!
    wait "$LOAD_PID" || status=$?
    LOAD_PID=""
    t1=$(now_ns)
    c1=$(proc_ticks "$pid")
    grep -v '^{' "$OUT/$label.out" || true
    grep '^{' "$OUT/$label.out" >>"$RESULTS" || true
    awk -v l="$label" -v a="$t0" -v b="$t1" -v c=$((c1 - c0)) -v hz="$TICKS" 'BEGIN{
        s = (b - a) / 1e9
        printf "{\"bench\":\"cpu\",\"label\":\"%s\",\"seconds\":%.1f,\"server_cores\":%.2f}\n", l, s, c / hz / s }' >>"$RESULTS"
    return "$status"
}

# ---------------------------------------------------------------- server ---
KEFU="" WSLOAD=""
SERVER_PID="" BASE_URL="" ADMIN_TOKEN="" PUBLIC_TOKEN=""
RELAY_PID="" RELAY_URL=""

stop_server() {
    stop_pid "$SERVER_PID" "kefu serve"
    SERVER_PID=""
}

stop_relay() {
    stop_pid "$RELAY_PID" "kefu-wsload relay-server"
    RELAY_PID=""
}

start_kefu() {
    local dir=$WORK/kefu port i email=bench@example.com agent_id inbox
    mkdir -p "$dir"
    local db=(--data-dir "$dir")
    agent_id=$(head -c 24 /dev/urandom | base64 |
        "$KEFU" "${db[@]}" admin create --email "$email" --name "Bench Admin" --role admin |
        sed -n 's/.*id=\([0-9a-f-]*\).*/\1/p')
    [ -n "$agent_id" ] || die "kefu admin create printed no id"
    ADMIN_TOKEN=$("$KEFU" "${db[@]}" admin token create --email "$email" --scope admin --name bench-ws 2>/dev/null)
    [ -n "$ADMIN_TOKEN" ] || die "kefu admin token create printed no token"

    port=$(free_port 18180)
    BASE_URL="http://127.0.0.1:$port"
    env "${SERVER_ENV[@]}" "$KEFU" "${db[@]}" serve --listen "127.0.0.1:$port" >"$OUT/kefu-serve.log" 2>&1 &
    SERVER_PID=$!
    register_cleanup stop_server
    for i in $(seq 1 300); do
        curl -fsS --max-time 2 "$BASE_URL/readyz" >/dev/null 2>&1 && break
        kill -0 "$SERVER_PID" 2>/dev/null ||
            { tail -n 30 "$OUT/kefu-serve.log" >&2; die "kefu serve exited"; }
        [ "$i" -lt 300 ] || die "kefu serve did not become ready on $BASE_URL"
        sleep 0.2
    done
    log "kefu serve on $BASE_URL, pid $SERVER_PID"

    inbox=$(curl -fsS --max-time 10 -X POST "$BASE_URL/api/v1/inboxes" \
        -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"kind\":\"widget\",\"name\":\"Benchmark widget\",\"member_ids\":[\"$agent_id\"]}" |
        grep -o '"id":"[0-9a-f-]*"' | head -n 1 | cut -d'"' -f4)
    [ -n "$inbox" ] || die "could not create the widget inbox"
    PUBLIC_TOKEN=$(curl -fsS --max-time 10 "$BASE_URL/api/v1/inboxes/$inbox/widget" \
        -H "Authorization: Bearer $ADMIN_TOKEN" |
        grep -o '"public_token":"[^"]*"' | cut -d'"' -f4)
    [ -n "$PUBLIC_TOKEN" ] || die "the widget inbox has no public token"
    log "widget inbox $inbox"
}

# setup_teams: WS_TEAMS widget inboxes and WS_CONSOLES - 1 agents, agent i a
# member of inbox i % WS_TEAMS only, each with an API token (kept in $WORK,
# removed at exit). Sets FLOW_INBOXES, TEAM_TOKENS and TEAM_LIST_TOKEN.
FLOW_INBOXES="" TEAM_TOKENS="" TEAM_LIST_TOKEN=""
setup_teams() {
    local agents=$((WS_CONSOLES - 1)) i t id email inbox public
    local -a members=() publics=()
    TEAM_TOKENS=$WORK/team-tokens
    : >"$TEAM_TOKENS"
    for ((i = 0; i < agents; i++)); do
        email="agent$i@bench.example"
        id=$(curl -fsS --max-time 10 -X POST "$BASE_URL/api/v1/agents" \
            -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
            -d "{\"email\":\"$email\",\"name\":\"Agent $i\",\"role\":\"agent\"}" |
            grep -o '"id":"[0-9a-f-]*"' | head -n 1 | cut -d'"' -f4)
        [ -n "$id" ] || die "could not create agent $email"
        "$KEFU" --data-dir "$WORK/kefu" admin token create --email "$email" --scope write \
            --name bench-ws 2>/dev/null >>"$TEAM_TOKENS" || die "no token for $email"
        t=$((i % WS_TEAMS))
        members[t]="${members[t]:+${members[t]},}\"$id\""
    done
    for ((t = 0; t < WS_TEAMS; t++)); do
        inbox=$(curl -fsS --max-time 10 -X POST "$BASE_URL/api/v1/inboxes" \
            -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
            -d "{\"kind\":\"widget\",\"name\":\"Team $t\",\"member_ids\":[${members[t]:-}]}" |
            grep -o '"id":"[0-9a-f-]*"' | head -n 1 | cut -d'"' -f4)
        [ -n "$inbox" ] || die "could not create the inbox of team $t"
        public=$(curl -fsS --max-time 10 "$BASE_URL/api/v1/inboxes/$inbox/widget" \
            -H "Authorization: Bearer $ADMIN_TOKEN" |
            grep -o '"public_token":"[^"]*"' | cut -d'"' -f4)
        [ -n "$public" ] || die "the inbox of team $t has no public token"
        publics+=("$public")
    done
    FLOW_INBOXES=$(IFS=,; echo "${publics[*]}")
    TEAM_LIST_TOKEN=$(head -n 1 "$TEAM_TOKENS")
    log "$agents agents in $WS_TEAMS team inboxes"
}

start_relay() {
    local i
    "$WSLOAD" relay-server --listen 127.0.0.1:0 >"$OUT/relay.log" 2>&1 &
    RELAY_PID=$!
    register_cleanup stop_relay
    for i in $(seq 1 100); do
        RELAY_URL=$(sed -n 's/^relay listening on \(http:[^ ]*\).*/\1/p' "$OUT/relay.log")
        [ -n "$RELAY_URL" ] && break
        kill -0 "$RELAY_PID" 2>/dev/null || { cat "$OUT/relay.log" >&2; die "relay exited"; }
        sleep 0.1
    done
    [ -n "$RELAY_URL" ] || die "the relay did not say where it listens"
    log "relay on $RELAY_URL, pid $RELAY_PID"
}

# ------------------------------------------------------------- scenarios ---
# The loads exec kefu-wsload: they run through `measure`, in the background.
idle() { # LABEL URL PID SOCKETS HOLD
    exec "$WSLOAD" --threads "$WS_CLIENT_THREADS" idle --url "$2" --inbox "${PUBLIC_TOKEN:-relay}" \
        --sockets "$4" --processes "$WS_IDLE_PROCESSES" --source-ip-start 127.0.0.2 \
        --hold "$5" --server-pid "$3" --label "$1"
}

flow() { # LABEL URL [more flow options]
    local label=$1 url=$2
    shift 2
    KEFU_WSLOAD_TOKEN=${ADMIN_TOKEN:-relay} exec "$WSLOAD" --threads "$WS_CLIENT_THREADS" flow \
        --url "$url" --inbox "${FLOW_INBOXES:-${PUBLIC_TOKEN:-relay}}" --rooms "$WS_ROOMS" --warmup "$WS_WARMUP" \
        --p99-bound "$WS_P99_BOUND" --label "$label" "$@"
}

has() { [[ " $WS_SCENARIOS " == *" $1 "* ]]; }

# --------------------------------------------------------------- summary ---
jget() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"; }

summary() {
    local line bench label cpu
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    printf '\nkefu WebSocket benchmark, %s, kefu %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$REVISION"
    printf 'machine: %s cores (%s), %s GiB RAM, Linux %s; open files per process %s\n\n' \
        "$(nproc)" "${cpu:-?}" "$(free -g | awk '/^Mem:/{print $2}')" "$(uname -r)" "$(ulimit -n)"
    while IFS= read -r line; do
        bench=$(jget "$line" bench)
        label=$(jget "$line" label)
        case $bench in
            idle)
                printf '%-22s %s of %s sockets open, %s still open after %ss; server RSS %s -> %s KiB: %s KiB per socket\n' \
                    "$label idle" "$(jget "$line" opened)" "$(jget "$line" sockets)" \
                    "$(jget "$line" open_at_end)" "$(jget "$line" held_seconds)" \
                    "$(jget "$line" server_rss_before_kib)" "$(jget "$line" server_rss_after_kib)" \
                    "$(jget "$line" server_kib_per_socket)"
                ;;
            flow)
                printf '%-22s offered %s/s, sent %s/s, delivered %s/s, lost %s, errors %s\n' \
                    "$label step $(jget "$line" step)" "$(jget "$line" offered_per_second)" \
                    "$(jget "$line" sent_per_second)" "$(jget "$line" delivered_per_second)" \
                    "$(jget "$line" lost)" "$(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$line")"
                printf '%-22s customer->agent ms from due time p50 %s p90 %s p99 %s max %s; from written p50 %s p99 %s; ack p99 %s\n' "" \
                    "$(jget "$line" delivery_p50_ms)" "$(jget "$line" delivery_p90_ms)" \
                    "$(jget "$line" delivery_p99_ms)" "$(jget "$line" delivery_max_ms)" \
                    "$(jget "$line" delivery_wire_p50_ms)" "$(jget "$line" delivery_wire_p99_ms)" \
                    "$(jget "$line" ack_p99_ms)"
                if [ "$(jget "$line" consoles)" -gt 1 ] 2>/dev/null; then
                    printf '%-22s %s agent sockets; all but the measuring one got %s frames (%s resyncs, %s closed)\n' "" \
                        "$(jget "$line" consoles)" "$(jget "$line" console_frames)" \
                        "$(jget "$line" console_resyncs)" "$(jget "$line" consoles_closed)"
                fi
                if [ -n "$(jget "$line" list_p99_ms)" ]; then
                    printf '%-22s conversation list: %s requests, %s errors, ms p50 %s p99 %s max %s\n' "" \
                        "$(jget "$line" list_samples)" "$(jget "$line" list_errors)" \
                        "$(jget "$line" list_p50_ms)" "$(jget "$line" list_p99_ms)" "$(jget "$line" list_max_ms)"
                fi
                ;;
            ceiling)
                printf '%-22s %s msg/s with delivery p99 <= %s ms and nothing lost\n' "$label ceiling" \
                    "$(jget "$line" ceiling_per_second)" "$(jget "$line" p99_bound_ms)"
                ;;
            cpu)
                printf '%-22s server used %s cores over %s s\n' "  $label" \
                    "$(jget "$line" server_cores)" "$(jget "$line" seconds)"
                ;;
        esac
    done <"$RESULTS"
    local kefu relay
    kefu=$(grep '"bench":"flow"' "$RESULTS" | grep '"label":"kefu"' | head -n 1 || true)
    relay=$(grep '"bench":"flow"' "$RESULTS" | grep '"label":"relay"' | head -n 1 || true)
    if [ -n "$kefu" ] && [ -n "$relay" ]; then
        awk -v k50="$(jget "$kefu" delivery_p50_ms)" -v r50="$(jget "$relay" delivery_p50_ms)" \
            -v k99="$(jget "$kefu" delivery_p99_ms)" -v r99="$(jget "$relay" delivery_p99_ms)" \
            -v kw50="$(jget "$kefu" delivery_wire_p50_ms)" -v rw50="$(jget "$relay" delivery_wire_p50_ms)" \
            -v kw99="$(jget "$kefu" delivery_wire_p99_ms)" -v rw99="$(jget "$relay" delivery_wire_p99_ms)" 'BEGIN{
            printf "\nkefu / relay at the same rate, customer->agent: from due time p50 %.1fx p99 %.1fx; from written p50 %.1fx p99 %.1fx\n",
                (r50 > 0 ? k50 / r50 : 0), (r99 > 0 ? k99 / r99 : 0),
                (rw50 > 0 ? kw50 / rw50 : 0), (rw99 > 0 ? kw99 / rw99 : 0) }'
    fi
    cat <<'EOF'

Targets: 19,000 idle widget sockets in one server process at < 8 KiB each;
customer -> agent p50/p99 at 1,000 msg/s with every message committed; the
conversation list p99 < 100 ms with 500 agent consoles connected.
EOF
    printf '\nlogs and results.jsonl: %s\n' "$OUT"
}

# ------------------------------------------------------------------ main ---
main() {
    command -v curl >/dev/null || die "curl is needed"
    if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck source=/dev/null
        . "$HOME/.cargo/env"
    fi
    cd "$REPO_ROOT"
    if [ -z "${WS_NO_BUILD:-}" ]; then
        section "cargo build --release -p kefu -p kefu-wsload"
        cargo build --release -p kefu -p kefu-wsload
    fi
    local target
    target=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
    KEFU=${target:-$REPO_ROOT/target}/release/kefu
    WSLOAD=${target:-$REPO_ROOT/target}/release/kefu-wsload
    [ -x "$KEFU" ] && [ -x "$WSLOAD" ] || die "no release binaries in ${target:-target}/release"

    # Every socket is a file descriptor, on both ends.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local need=$(((WS_IDLE_SOCKETS > WS_RELAY_IDLE_SOCKETS ? WS_IDLE_SOCKETS : WS_RELAY_IDLE_SOCKETS) + 200))
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
        log "warning: open files are limited to $(ulimit -n) per process; the server cannot hold $need"
    fi

    REVISION=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ "$REVISION" != unknown ] && [ -n "$(git -C "$REPO_ROOT" status --porcelain -- crates migrations 2>/dev/null)" ]; then
        REVISION="$REVISION (with local changes)"
    fi
    OUT=${WS_OUT:-$(mktemp -d /tmp/kefu-ws.XXXXXX)}
    mkdir -p "$OUT"
    RESULTS=$OUT/results.jsonl
    : >"$RESULTS"
    WORK=$(mktemp -d /tmp/kefu-ws-data.XXXXXX)
    register_cleanup "rm -rf '$WORK'"

    if has idle || has flow || has agents || has teams; then
        section "kefu (SQLite)"
        start_kefu
        if has idle; then
            section "kefu: $WS_IDLE_SOCKETS idle widget sockets"
            measure kefu-idle "$SERVER_PID" idle kefu "$BASE_URL" "$SERVER_PID" "$WS_IDLE_SOCKETS" "$WS_IDLE_HOLD"
        fi
        if has flow; then
            section "kefu: $WS_RATE msg/s over $WS_ROOMS rooms"
            measure kefu-flow "$SERVER_PID" flow kefu "$BASE_URL" --rate "$WS_RATE" --duration "$WS_DURATION"
        fi
        if has agents; then
            section "kefu: $WS_RATE msg/s with $WS_CONSOLES agent consoles and the conversation list"
            measure kefu-agents "$SERVER_PID" flow kefu-agents "$BASE_URL" --rate "$WS_RATE" \
                --duration "$WS_DURATION" --consoles "$WS_CONSOLES" --list-interval "$WS_LIST_INTERVAL"
        fi
        if has teams; then
            section "kefu: $WS_RATE msg/s, $WS_CONSOLES consoles of agents in $WS_TEAMS team inboxes"
            setup_teams
            KEFU_WSLOAD_LIST_TOKEN=$TEAM_LIST_TOKEN measure kefu-teams "$SERVER_PID" flow kefu-teams "$BASE_URL" \
                --rate "$WS_RATE" --duration "$WS_DURATION" --consoles "$WS_CONSOLES" \
                --console-tokens "$TEAM_TOKENS" --list-interval "$WS_LIST_INTERVAL"
            FLOW_INBOXES=""
        fi
        stop_server
    fi

    if has relay || has relay-idle; then
        section "relay"
        PUBLIC_TOKEN="" ADMIN_TOKEN=""
        start_relay
        if has relay; then
            section "relay: $WS_RATE msg/s over $WS_ROOMS rooms"
            measure relay-flow "$RELAY_PID" flow relay "$RELAY_URL" --rate "$WS_RATE" --duration "$WS_DURATION"
            section "relay: ramp $WS_RAMP"
            measure relay-ramp "$RELAY_PID" flow relay-ramp "$RELAY_URL" --rate "$WS_RAMP" \
                --duration "$WS_RAMP_DURATION" || true
        fi
        if has relay-idle; then
            section "relay: $WS_RELAY_IDLE_SOCKETS idle sockets"
            measure relay-idle "$RELAY_PID" idle relay "$RELAY_URL" "$RELAY_PID" \
                "$WS_RELAY_IDLE_SOCKETS" "$WS_RELAY_IDLE_HOLD"
        fi
        stop_relay
    fi
    summary | tee "$OUT/summary.txt"
}

main "$@"
