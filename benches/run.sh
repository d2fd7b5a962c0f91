#!/usr/bin/env bash
# kefu's benchmark: conversation creates and the inbox list, on SQLite and on
# PostgreSQL, over HTTP on loopback. See benches/README.md.
#
#   benches/run.sh
#
# For each backend it starts a fresh `kefu serve` on 127.0.0.1 (PostgreSQL: a
# throwaway cluster on loopback, as scripts/test does), makes an admin, tokens
# and an API inbox, then:
#   1. create: POST /api/v1/conversations (new contact + first message)
#   2. seed:   bulk-insert conversations straight into the database up to
#              BENCH_SEED in all (test data; not part of any figure but its own)
#   3. list:   GET /api/v1/conversations?inbox_id=…&limit=50, one client, then
#              several
# and prints a table with the machine. Everything it starts is stopped on exit.
#
# Environment (defaults in brackets):
#   BENCH_BACKENDS            backends to run ["sqlite postgres"]
#   BENCH_CREATES             measured creates per concurrency [20000]
#   BENCH_CREATE_CONCURRENCY  one create run per value ["1 32"]
#   BENCH_SEED                conversations in the database for the list [1000000]
#   BENCH_LISTS               measured list requests per run [5000]
#   BENCH_LIST_CONCURRENCY    one list run per value ["1 4 16"]
#   BENCH_OUT                 directory for logs and results.jsonl [a new /tmp/kefu-bench.*]
#   BENCH_NO_BUILD=1          use the binaries already in target/release
#   KEFU_PG_BINDIR            directory holding initdb/pg_ctl/postgres to use
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_BACKENDS=${BENCH_BACKENDS:-"sqlite postgres"}
BENCH_CREATES=${BENCH_CREATES:-20000}
BENCH_CREATE_CONCURRENCY=${BENCH_CREATE_CONCURRENCY:-"1 32"}
BENCH_SEED=${BENCH_SEED:-1000000}
BENCH_LISTS=${BENCH_LISTS:-5000}
BENCH_LIST_CONCURRENCY=${BENCH_LIST_CONCURRENCY:-"1 4 16"}
WARMUP=500

log() { printf '%s\n' "$*" >&2; }
section() { printf '\n=== %s\n' "$*" >&2; }
die() { printf 'benches/run.sh: error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------- cleanup ---
# As in scripts/test: cleanups run in reverse order when the script exits,
# whatever the reason.
CLEANUPS=()
register_cleanup() { CLEANUPS+=("$*"); }
run_cleanups() {
    local status=$? i
    trap - EXIT INT TERM
    set +e
    for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUPS[i]}"
    done
    exit "$status"
}
trap run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ----------------------------------------------- from scripts/test, trimmed ---
APT_UPDATED=0
ensure_packages() {
    is_root || die "missing packages: $* — install them (apt-get install $*) or run as root"
    command -v apt-get >/dev/null || die "missing packages: $* and no apt-get to install them"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        register_cleanup "rm -f /usr/sbin/policy-rc.d"
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        apt-get update </dev/null
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" </dev/null
}

as_user() {
    local user=$1
    shift
    (
        cd /
        if [ -z "$user" ]; then
            exec "$@"
        elif command -v runuser >/dev/null; then
            exec runuser -u "$user" -- "$@"
        else
            exec su -s /bin/bash -c "$(printf '%q ' "$@")" "$user"
        fi
    )
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port FROM : the first port from FROM on that nothing listens on.
free_port() {
    local port=$1 tries=0
    while port_in_use "$port"; do
        tries=$((tries + 1))
        [ "$tries" -le 100 ] || die "no free port found from $1"
        port=$((port + 1))
    done
    echo "$port"
}

find_pg_bindir() {
    local dir candidates=() exe
    [ -n "${KEFU_PG_BINDIR:-}" ] && candidates+=("$KEFU_PG_BINDIR")
    while IFS= read -r dir; do
        candidates+=("$dir")
    done < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -V -r)
    if exe=$(command -v initdb 2>/dev/null); then
        candidates+=("$(dirname "$(readlink -f "$exe")")")
    fi
    for dir in "${candidates[@]}"; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] &&
            "$dir/postgres" --version >/dev/null 2>&1; then
            echo "$dir"
            return 0
        fi
    done
    return 0
}

PG_BIN=""
PG_USER=""
PG_DIR=""
PG_URL=""

# Unlike scripts/test's cluster this one keeps fsync and full-page writes on:
# only synchronous_commit is off, which loses the last commits on a crash
# but never corrupts, as SQLite in WAL mode with synchronous=NORMAL (kefu's
# setting) does. shared_buffers is raised from the 128 MB default because a
# million conversations with their indexes is a few hundred MB.
start_postgres() {
    PG_BIN=$(find_pg_bindir)
    if [ -z "$PG_BIN" ]; then
        section "installing postgres"
        ensure_packages postgresql
        PG_BIN=$(find_pg_bindir)
        [ -n "$PG_BIN" ] || die "installed postgresql but found no initdb/pg_ctl/postgres"
    fi
    if is_root; then
        PG_USER=${KEFU_TEST_PG_USER:-postgres}
        if ! id -u "$PG_USER" >/dev/null 2>&1; then
            useradd --system --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$PG_USER"
        fi
        PG_DIR=$(mktemp -d /tmp/kefu-bench-pg.XXXXXX)
        chown "$PG_USER:" "$PG_DIR"
    else
        PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kefu-bench-pg.XXXXXX")
    fi
    register_cleanup stop_postgres

    local data=$PG_DIR/data pglog=$PG_DIR/postgres.log
    as_user "$PG_USER" "$PG_BIN/initdb" --pgdata="$data" --username=kefu \
        --auth=trust --encoding=UTF8 --no-locale --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    cat >>"$data/postgresql.conf" <<EOF

# benches/run.sh: throwaway cluster, loopback only
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
max_connections = 100
shared_buffers = 1GB
synchronous_commit = off
max_wal_size = 4GB
EOF
    cat >"$data/pg_hba.conf" <<EOF
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
    local port
    port=$(free_port 54339)
    section "starting $("$PG_BIN/postgres" --version) on 127.0.0.1:$port"
    as_user "$PG_USER" "$PG_BIN/pg_ctl" --pgdata="$data" --log="$pglog" \
        --options="-p $port" --wait --timeout=60 start >/dev/null ||
        { tail -n 30 "$pglog" >&2 || true; die "postgres failed to start"; }
    as_user "$PG_USER" "$PG_BIN/createdb" --host=127.0.0.1 --port="$port" --username=kefu kefu_bench
    PG_URL="postgres://kefu@127.0.0.1:$port/kefu_bench"
}

stop_postgres() {
    [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ] || return 0
    local data=$PG_DIR/data pid
    if [ -f "$data/postmaster.pid" ]; then
        as_user "$PG_USER" "$PG_BIN/pg_ctl" --pgdata="$data" --mode=fast \
            --wait --timeout=30 stop >/dev/null 2>&1
        if [ -f "$data/postmaster.pid" ]; then
            pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
            [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
            sleep 1
        fi
    fi
    rm -rf "$PG_DIR"
    log "postgres stopped, $PG_DIR removed"
}

# ------------------------------------------------------------- measuring ---
# CPU use over a phase: the server process alone, and the whole machine
# (server, database, benchmark client), in cores.
TICKS=$(getconf CLK_TCK)
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
now_ns() { date +%s%N; }

PHASE_T0=0 PHASE_SERVER0=0 PHASE_BUSY0=0 PHASE_IDLE_BUSY=0
# phase_start : also measures, over one second, how busy the machine is
# before the phase (other work on it would lower the figures).
phase_start() {
    local b0 b1 _i
    read -r b0 _i < <(machine_ticks)
    sleep 1
    read -r b1 _i < <(machine_ticks)
    PHASE_IDLE_BUSY=$(awk -v d=$((b1 - b0)) -v hz="$TICKS" 'BEGIN{printf "%.2f", d / hz}')
    if awk -v b="$PHASE_IDLE_BUSY" 'BEGIN{exit !(b > 0.25)}'; then
        log "warning: the machine is already busy (${PHASE_IDLE_BUSY} cores) before this phase: figures will be low"
    fi
    PHASE_T0=$(now_ns)
    PHASE_SERVER0=$(proc_ticks "$SERVER_PID")
    read -r PHASE_BUSY0 _i < <(machine_ticks)
}
# phase_end NAME REQUESTS : appends a JSON line with the CPU used since
# phase_start: cores used by the server and by the whole machine (server,
# database, benchmark client and anything else), and the server's CPU time
# per request (warm-up included in REQUESTS).
phase_end() {
    local t1 server1 busy1 _idle secs
    t1=$(now_ns)
    server1=$(proc_ticks "$SERVER_PID")
    read -r busy1 _idle < <(machine_ticks)
    secs=$(awk -v a="$PHASE_T0" -v b="$t1" 'BEGIN{printf "%.3f", (b - a) / 1e9}')
    awk -v n="$1" -v r="$2" -v l="$BACKEND" -v s="$secs" -v sv=$((server1 - PHASE_SERVER0)) \
        -v m=$((busy1 - PHASE_BUSY0)) -v hz="$TICKS" -v idle="$PHASE_IDLE_BUSY" 'BEGIN{
        printf "{\"bench\":\"cpu\",\"phase\":\"%s\",\"label\":\"%s\",\"seconds\":%s,\"server_cores\":%.2f,\"machine_cores\":%.2f,\"server_cpu_ms_per_request\":%.3f,\"busy_before_cores\":%s}\n",
            n, l, s, sv / hz / s, m / hz / s, sv / hz * 1000 / r, idle }' >>"$RESULTS"
    log "$(tail -n 1 "$RESULTS")"
}

# ---------------------------------------------------------------- server ---
KEFU="" BENCH=""
SERVER_PID="" BASE_URL="" BACKEND=""

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "warning: kefu serve ($BACKEND) did not stop within 10 s of SIGTERM; killing it"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    # Its exit status (143, 137) is no failure of the benchmark.
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# start_server DATA_DIR [DATABASE_URL]
start_server() {
    local dir=$1 url=${2:-} port i
    local db=(--data-dir "$dir")
    [ -n "$url" ] && db+=(--database-url "$url")
    port=$(free_port 18080)
    BASE_URL="http://127.0.0.1:$port"
    # The per-IP limiter (200/s by default) would throttle a single-client
    # benchmark: it is switched off, everything else is kefu's defaults.
    KEFU_SERVER__LIMITS__REQUESTS_PER_SECOND_PER_IP=0 \
        "$KEFU" "${db[@]}" serve --listen "127.0.0.1:$port" >"$OUT/$BACKEND-serve.log" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 1 300); do
        curl -fsS --max-time 2 "$BASE_URL/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$SERVER_PID" 2>/dev/null ||
            { tail -n 30 "$OUT/$BACKEND-serve.log" >&2; die "kefu serve exited"; }
        sleep 0.2
    done
    die "kefu serve did not become ready on $BASE_URL"
}

run_backend() {
    BACKEND=$1
    section "$BACKEND"
    local dir=$WORK/$BACKEND url="" db_url
    mkdir -p "$dir"
    if [ "$BACKEND" = postgres ]; then
        start_postgres
        url=$PG_URL
        db_url=$PG_URL
    else
        db_url="sqlite://$dir/kefu.db"
    fi
    local db=(--data-dir "$dir")
    [ -n "$url" ] && db+=(--database-url "$url")

    # An admin, an admin token to make the inbox, and a write token for the
    # load itself: what an integration would hold.
    local email=bench@example.com agent_id admin_token write_token inbox
    agent_id=$(head -c 24 /dev/urandom | base64 |
        "$KEFU" "${db[@]}" admin create --email "$email" --name "Bench Admin" --role admin |
        sed -n 's/.*id=\([0-9a-f-]*\).*/\1/p')
    [ -n "$agent_id" ] || die "kefu admin create printed no id"
    admin_token=$("$KEFU" "${db[@]}" admin token create --email "$email" --scope admin --name bench-admin 2>/dev/null)
    write_token=$("$KEFU" "${db[@]}" admin token create --email "$email" --scope write --name bench 2>/dev/null)

    start_server "$dir" "$url"
    register_cleanup stop_server
    log "kefu serve ($BACKEND) on $BASE_URL, pid $SERVER_PID"
    inbox=$(curl -fsS --max-time 10 -X POST "$BASE_URL/api/v1/inboxes" \
        -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
        -d "{\"kind\":\"api\",\"name\":\"Benchmark\",\"member_ids\":[\"$agent_id\"]}" |
        grep -o '"id":"[0-9a-f-]*"' | head -n 1 | cut -d'"' -f4)
    [ -n "$inbox" ] || die "could not create an inbox"
    log "inbox $inbox"
    export KEFU_BENCH_TOKEN=$write_token

    local c
    for c in $BENCH_CREATE_CONCURRENCY; do
        phase_start
        "$BENCH" create --url "$BASE_URL" --inbox "$inbox" --concurrency "$c" \
            --requests "$BENCH_CREATES" --warmup "$WARMUP" --label "$BACKEND" | tee -a "$OUT/$BACKEND.log" |
            { grep '^{' >>"$RESULTS" || true; }
        phase_end "create c=$c" $((BENCH_CREATES + WARMUP))
    done

    "$BENCH" seed --database-url "$db_url" --inbox "$inbox" --conversations "$BENCH_SEED" \
        --label "$BACKEND" | tee -a "$OUT/$BACKEND.log" | { grep '^{' >>"$RESULTS" || true; }
    log "database size: $(du -sh "$dir" | cut -f1)${PG_DIR:+, cluster $(du -sh "$PG_DIR" | cut -f1)}"

    for c in $BENCH_LIST_CONCURRENCY; do
        phase_start
        "$BENCH" list --url "$BASE_URL" --inbox "$inbox" --concurrency "$c" \
            --requests "$BENCH_LISTS" --warmup "$WARMUP" --label "$BACKEND" | tee -a "$OUT/$BACKEND.log" |
            { grep '^{' >>"$RESULTS" || true; }
        phase_end "list c=$c" $((BENCH_LISTS + WARMUP))
    done

    stop_server
    if [ "$BACKEND" = postgres ]; then
        stop_postgres
        PG_DIR=""
    fi
    rm -rf "$dir"
}

# --------------------------------------------------------------- summary ---
jget() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"; }

summary() {
    local line bench label
    local cpu mem kernel os pg
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    mem=$(free -g | awk '/^Mem:/{print $2}')
    kernel=$(uname -r)
    os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}")
    printf '\nkefu benchmark, %s, kefu %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$REVISION"
    printf 'machine: %s cores (%s), %s GiB RAM, Linux %s%s\n' \
        "$(nproc)" "${cpu:-?}" "$mem" "$kernel" "${os:+, $os}"
    [ -n "$PG_VERSION" ] && printf 'postgres: %s\n' "$PG_VERSION"
    printf '\n%-9s %-34s %5s %9s %7s %9s %8s %8s %8s %8s\n' \
        backend measurement conc requests errors "req/s" "p50 ms" "p90 ms" "p99 ms" "max ms"
    while IFS= read -r line; do
        bench=$(jget "$line" bench)
        label=$(jget "$line" label)
        case $bench in
            create | list)
                local what="create conversation + message"
                [ "$bench" = list ] && what="list newest 50 of an inbox"
                printf '%-9s %-34s %5s %9s %7s %9.0f %8.2f %8.2f %8.2f %8.2f\n' "$label" "$what" \
                    "$(jget "$line" concurrency)" "$(jget "$line" requests)" "$(jget "$line" errors)" \
                    "$(jget "$line" per_second)" "$(jget "$line" p50_ms)" "$(jget "$line" p90_ms)" \
                    "$(jget "$line" p99_ms)" "$(jget "$line" max_ms)"
                ;;
            seed)
                printf '%-9s %-34s %s conversations (%s in the listed inbox); seeded %s in %.0f s\n' \
                    "$label" "database for the list:" "$(jget "$line" conversations)" \
                    "$(jget "$line" in_inbox)" "$(jget "$line" inserted)" "$(jget "$line" seconds)"
                ;;
            cpu)
                printf '%-9s %-34s server %.2f cores (%.3f ms CPU a request), machine %.2f cores (%.2f busy before)\n' \
                    "$label" "  cpu during $(jget "$line" phase):" "$(jget "$line" server_cores)" \
                    "$(jget "$line" server_cpu_ms_per_request)" "$(jget "$line" machine_cores)" \
                    "$(jget "$line" busy_before_cores)"
                ;;
        esac
    done <"$RESULTS"
    cat <<'EOF'

Targets: >= 3,000 creates/s on SQLite; list p99 < 20 ms at 1,000,000 conversations.
For scale, on the same kind of machine: django-helpdesk's ticket API on SQLite
creates about 90-115 tickets/s and its list takes about 0.55 s at 1,400 tickets;
FreeScout users report 5-15 s page loads at 450,000 conversations.
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
    if [ -z "${BENCH_NO_BUILD:-}" ]; then
        section "cargo build --release -p kefu -p kefu-bench"
        cargo build --release -p kefu -p kefu-bench
    fi
    local target
    target=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
    KEFU=${target:-$REPO_ROOT/target}/release/kefu
    BENCH=${target:-$REPO_ROOT/target}/release/kefu-bench
    [ -x "$KEFU" ] && [ -x "$BENCH" ] || die "no release binaries in ${target:-target}/release"

    REVISION=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ "$REVISION" != unknown ] && [ -n "$(git -C "$REPO_ROOT" status --porcelain -- crates migrations 2>/dev/null)" ]; then
        REVISION="$REVISION (with local changes)"
    fi
    OUT=${BENCH_OUT:-$(mktemp -d /tmp/kefu-bench.XXXXXX)}
    mkdir -p "$OUT"
    RESULTS=$OUT/results.jsonl
    : >"$RESULTS"
    WORK=$(mktemp -d /tmp/kefu-bench-data.XXXXXX)
    register_cleanup "rm -rf '$WORK'"
    PG_VERSION=""

    local b
    for b in $BENCH_BACKENDS; do
        case $b in
            sqlite) run_backend sqlite ;;
            postgres)
                run_backend postgres
                PG_VERSION=$("$PG_BIN/postgres" --version)
                ;;
            *) die "unknown backend $b (sqlite, postgres)" ;;
        esac
    done
    summary | tee "$OUT/summary.txt"
}

main "$@"
