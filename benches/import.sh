#!/usr/bin/env bash
# Times `kefu import wechat` on a synthetic 微信客服 export and compares it
# with a bare `sqlite3 .import` of the same rows (unique msgid index,
# (customer, time) index, WAL, synchronous=NORMAL): the floor any importer
# on SQLite can reach, without contacts, conversations or resumability.
#
#   benches/import.sh [MESSAGES] [CUSTOMERS]      (default 1000000 50000)
#   KEFU_BENCH_POSTGRES_URL=postgres://user@host/db  also times PostgreSQL
#     (the database is dropped and created: use a throwaway name).
#   KEFU_BENCH_PROFILE=dev  a quick check of the script itself with the
#     debug build (figures then mean nothing).
#
# Reports messages/s and peak memory (max RSS from /usr/bin/time -v).
set -euo pipefail

MESSAGES=${1:-1000000}
CUSTOMERS=${2:-50000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kefu-import-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

command -v sqlite3 >/dev/null || { echo "sqlite3 missing: apt-get install -y sqlite3" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing: apt-get install -y time" >&2; exit 1; }

PROFILE=${KEFU_BENCH_PROFILE:-release}
OUT=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
echo "building ($PROFILE)…" >&2
(cd "$ROOT" && cargo build --profile "$PROFILE" -q -p kefu && cargo build --profile "$PROFILE" -q -p kefu-import --example gen_kf)
KEFU=$TARGET/$OUT/kefu
GEN=$TARGET/$OUT/examples/gen_kf

echo "generating $MESSAGES messages for $CUSTOMERS customers…" >&2
"$GEN" "$MESSAGES" "$CUSTOMERS" "$WORK/kf.ndjson" "$WORK/kf.csv"
ls -l "$WORK/kf.ndjson" | awk '{printf "input: %.1f MB NDJSON\n", $5/1e6}'

# Runs a command under /usr/bin/time; prints "label  seconds  msg/s  MB".
measure() {
  local label=$1; shift
  local start end secs rss
  start=$(date +%s.%N)
  /usr/bin/time -v -o "$WORK/time.txt" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || {
    local rc=$?; echo "$label failed ($rc):" >&2; tail -20 "$WORK/err.txt" >&2; tail -20 "$WORK/out.txt" >&2; exit 1; }
  end=$(date +%s.%N)
  secs=$(echo "$end - $start" | bc -l)
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$WORK/time.txt")
  RATE=$(echo "$MESSAGES / $secs" | bc -l)
  printf "%-28s %8.2f s %10.0f msg/s %8.1f MB max RSS  (load before: %s)\n" "$label" "$secs" \
    "$RATE" "$(echo "$rss / 1024" | bc -l)" "$LOAD"
}

echo
LOAD=$(cut -d' ' -f1 /proc/loadavg)
measure "kefu import (SQLite)" "$KEFU" --data-dir "$WORK/sqlite" import wechat "$WORK/kf.ndjson" --actor bench
grep -E "messages placed|conversations|contacts created" "$WORK/out.txt" || true
KEFU_RATE=$RATE

cat >"$WORK/flat.sql" <<SQL
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE messages (msgid TEXT NOT NULL, customer TEXT NOT NULL, account TEXT NOT NULL,
  sent_at INTEGER NOT NULL, direction TEXT NOT NULL, agent TEXT, text TEXT NOT NULL);
CREATE UNIQUE INDEX messages_msgid ON messages (msgid);
CREATE INDEX messages_customer_time ON messages (customer, sent_at);
.mode csv
.import $WORK/kf.csv messages
SELECT COUNT(*) FROM messages;
SQL
LOAD=$(cut -d' ' -f1 /proc/loadavg)
measure "sqlite3 .import (flat CSV)" sh -c "sqlite3 '$WORK/flat.db' < '$WORK/flat.sql'"
printf "kefu / sqlite3 .import: %.2f (target ≥ 0.5)\n" "$(echo "$KEFU_RATE / $RATE" | bc -l)"

if [ -n "${KEFU_BENCH_POSTGRES_URL:-}" ]; then
  ADMIN=${KEFU_BENCH_POSTGRES_URL%/*}/postgres
  DB=${KEFU_BENCH_POSTGRES_URL##*/}
  psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
  LOAD=$(cut -d' ' -f1 /proc/loadavg)
  measure "kefu import (PostgreSQL)" "$KEFU" --database-url "$KEFU_BENCH_POSTGRES_URL" \
    --data-dir "$WORK/pg" import wechat "$WORK/kf.ndjson" --actor bench
fi
