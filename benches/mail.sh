#!/usr/bin/env bash
# kefu's mail benchmark: inbound through the built-in SMTP listener to stored
# conversations, on SQLite (or PostgreSQL with MAIL_DATABASE_URL), over
# loopback. See benches/README.md ("Mail in").
#
#   benches/mail.sh
#
# It starts `kefu serve` (release) with `[mail] smtp_listen` on 127.0.0.1,
# creates an email inbox, then
#   1. throughput: MAIL_MESSAGES mails of MAIL_BYTES (50 KB) over
#      MAIL_CONCURRENCY connections (after MAIL_WARMUP unmeasured ones), waits
#      until the API lists them all as conversations, and reports emails/s,
#      latency, CPU and the server's peak RSS (VmHWM);
#   2. one big message: resets the server's peak RSS, sends one mail of
#      MAIL_BIG_BYTES (30,000,000) and reports how far the RSS rose above what
#      it was before.
# Everything it starts is stopped on exit.
#
# Environment (defaults in brackets):
#   MAIL_MESSAGES [4000]  MAIL_WARMUP [200]  MAIL_CONCURRENCY [48]
#   MAIL_BYTES [51200]    MAIL_BIG_BYTES [30000000]
#   MAIL_DATABASE_URL     a postgres:// URL (an empty database) instead of SQLite
#   BENCH_NO_BUILD=1      use the binaries already built
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIL_MESSAGES=${MAIL_MESSAGES:-4000}
MAIL_WARMUP=${MAIL_WARMUP:-200}
MAIL_CONCURRENCY=${MAIL_CONCURRENCY:-48}
MAIL_BYTES=${MAIL_BYTES:-51200}
MAIL_BIG_BYTES=${MAIL_BIG_BYTES:-30000000}
ADDRESS=support@bench.example

log() { printf '%s\n' "$*" >&2; }
die() { printf 'benches/mail.sh: error: %s\n' "$*" >&2; exit 1; }

SERVER_PID="" WORK=""
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    local port=$1
    while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    echo "$port"
}
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
TICKS=$(getconf CLK_TCK)
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
busy_cores() { # over one second, all processes
    local a b
    a=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
    awk -v d=$((b - a)) -v hz="$TICKS" 'BEGIN{printf "%.2f", d / hz}'
}

cd "$REPO_ROOT"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    log "=== cargo build --release -p kefu -p kefu-bench"
    cargo build --release -p kefu -p kefu-bench
fi
target=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
KEFU=${target:-$REPO_ROOT/target}/release/kefu
BENCH=${target:-$REPO_ROOT/target}/release/kefu-bench
[ -x "$KEFU" ] && [ -x "$BENCH" ] || die "no release binaries in ${target:-target}/release"

WORK=$(mktemp -d /tmp/kefu-mail-bench.XXXXXX)
db=(--data-dir "$WORK/data")
[ -n "${MAIL_DATABASE_URL:-}" ] && db+=(--database-url "$MAIL_DATABASE_URL")
email=bench@example.com
agent_id=$(head -c 24 /dev/urandom | base64 |
    "$KEFU" "${db[@]}" admin create --email "$email" --name "Bench Admin" --role admin |
    sed -n 's/.*id=\([0-9a-f-]*\).*/\1/p')
[ -n "$agent_id" ] || die "kefu admin create printed no id"
token=$("$KEFU" "${db[@]}" admin token create --email "$email" --scope admin --name bench 2>/dev/null)
export KEFU_BENCH_TOKEN=$token

http_port=$(free_port 18180)
smtp_port=$(free_port 12525)
BASE_URL=http://127.0.0.1:$http_port
KEFU_SERVER__LIMITS__REQUESTS_PER_SECOND_PER_IP=0 KEFU_MAIL__SMTP_LISTEN=127.0.0.1:$smtp_port \
    "$KEFU" "${db[@]}" serve --listen "127.0.0.1:$http_port" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    curl -fsS --max-time 2 "$BASE_URL/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 30 "$WORK/serve.log" >&2; die "kefu serve exited"; }
    sleep 0.2
done
inbox=$(curl -fsS --max-time 10 -X POST "$BASE_URL/api/v1/inboxes" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"kind\":\"email\",\"name\":\"邮件\",\"member_ids\":[\"$agent_id\"],\"settings\":{\"email\":{\"address\":\"$ADDRESS\"}}}" |
    grep -o '"id":"[0-9a-f-]*"' | head -n 1 | cut -d'"' -f4)
[ -n "$inbox" ] || die "could not create an email inbox"
log "kefu serve pid $SERVER_PID: http $BASE_URL, smtp 127.0.0.1:$smtp_port, inbox $inbox"
# Email inboxes are read when a message comes; the first one warms that up.
smtp=(--smtp "127.0.0.1:$smtp_port" --to "$ADDRESS" --url "$BASE_URL" --inbox "$inbox")

log "=== warm-up: $MAIL_WARMUP mails"
"$BENCH" smtp "${smtp[@]}" --messages "$MAIL_WARMUP" --concurrency "$MAIL_CONCURRENCY" \
    --bytes "$MAIL_BYTES" --expect-conversations "$MAIL_WARMUP" --label warmup >/dev/null

busy=$(busy_cores)
log "=== throughput: $MAIL_MESSAGES mails of $MAIL_BYTES bytes, $MAIL_CONCURRENCY connections (machine busy ${busy} cores before)"
rss0=$(kib "$SERVER_PID" VmRSS)
t0=$(date +%s%N)
cpu0=$(proc_ticks "$SERVER_PID")
"$BENCH" smtp "${smtp[@]}" --messages "$MAIL_MESSAGES" --concurrency "$MAIL_CONCURRENCY" \
    --bytes "$MAIL_BYTES" --expect-conversations $((MAIL_WARMUP + MAIL_MESSAGES)) --label throughput |
    tee "$WORK/throughput.out" | grep -v '^{' >&2
t1=$(date +%s%N)
cpu1=$(proc_ticks "$SERVER_PID")
hwm=$(kib "$SERVER_PID" VmHWM)
rss1=$(kib "$SERVER_PID" VmRSS)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b - a) / 1e9}')
awk -v n="$MAIL_MESSAGES" -v s="$secs" -v c=$((cpu1 - cpu0)) -v hz="$TICKS" 'BEGIN{
    printf "stored: %d mails in %.2f s (to the last one listed by the API) = %.0f emails/s; server CPU %.2f cores, %.2f ms a mail\n",
        n, s, n / s, c / hz / s, c / hz * 1000 / n }' >&2
log "server RSS: ${rss0} KiB before, ${rss1} KiB after, peak (VmHWM) ${hwm} KiB"

log "=== one message of $MAIL_BIG_BYTES bytes"
rss_before=$(kib "$SERVER_PID" VmRSS)
# Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
if echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null; then reset=yes; else reset=no; fi
"$BENCH" smtp "${smtp[@]}" --messages 1 --concurrency 1 --bytes "$MAIL_BIG_BYTES" \
    --expect-conversations $((MAIL_WARMUP + MAIL_MESSAGES + 1)) --label big | grep -v '^{' >&2
peak=$(kib "$SERVER_PID" VmHWM)
after=$(kib "$SERVER_PID" VmRSS)
if [ "$reset" = yes ]; then
    log "server RSS: ${rss_before} KiB before, peak ${peak} KiB while it arrived (+$(( (peak - rss_before) / 1024 )) MiB), ${after} KiB after"
else
    log "server RSS: ${rss_before} KiB before, ${after} KiB after (peak not resettable here: VmHWM ${peak} KiB)"
fi
log "data: $(du -sh "$WORK/data" | cut -f1)"
