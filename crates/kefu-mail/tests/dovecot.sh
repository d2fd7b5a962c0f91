#!/usr/bin/env bash
# A throwaway Dovecot IMAP server for kefu-mail's IMAP tests.
#
#   eval "$(crates/kefu-mail/tests/dovecot.sh start)"   # prints KEFU_TEST_IMAP=… lines
#   cargo test -p kefu-mail --test imap
#   crates/kefu-mail/tests/dovecot.sh stop "$KEFU_TEST_IMAP_DIR"
#
# `start` installs dovecot-imapd with apt-get when it is missing (root on Debian only),
# then runs Dovecot from a temp dir: plaintext passwd-file passdb, maildir storage, no
# TLS, loopback only, on a free port, as the current user. As root, Dovecot's own
# processes refuse uid 0, so the master runs as root and its login, internal and mail
# processes use the dovenull/dovecot users the package creates. It prints, one per line:
#   KEFU_TEST_IMAP=127.0.0.1:PORT  KEFU_TEST_IMAP_USER=…  KEFU_TEST_IMAP_PASSWORD=…
#   KEFU_TEST_IMAP_DIR=…  (pass it to `stop`, which kills that instance and removes it)
# Exit status 2 means Dovecot is not available and could not be installed.
set -euo pipefail

start() {
    if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            # policy-rc.d-style environments keep the packaged service from starting;
            # either way we never use it.
            (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd \
                || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd; }) \
                >&2 || { echo "dovecot.sh: cannot install dovecot-imapd" >&2; exit 2; }
        else
            echo "dovecot.sh: dovecot is not installed and cannot be installed here" >&2
            exit 2
        fi
    fi
    local dovecot
    dovecot=$(command -v dovecot || echo /usr/sbin/dovecot)

    local dir port user group uid gid
    dir=$(mktemp -d "${TMPDIR:-/tmp}/kefu-dovecot.XXXXXX")
    chmod 755 "$dir"
    mkdir -p "$dir/run" "$dir/state" "$dir/mail" "$dir/home"
    uid=$(id -u); gid=$(id -g); user=$(id -un); group=$(id -gn)
    # Dovecot's login and internal processes refuse to run as root; as root, use the
    # unprivileged users the package creates for them (mail itself stays ours).
    login_user=$user
    if [ "$uid" = 0 ]; then
        user=dovecot; group=dovecot; login_user=dovenull
        # Mail processes refuse uid 0 as well ("userdb returned 0 as uid").
        uid=$(id -u dovecot); gid=$(id -g dovecot)
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
        || shuf -i 20000-60000 -n 1)
    echo "kefu:{PLAIN}kefu-test-password::::::" > "$dir/passwd"
    chown -R "$uid:$gid" "$dir/mail" "$dir/home"

    cat > "$dir/dovecot.conf" <<EOF
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$dir/mail/%u
default_internal_user = $user
default_internal_group = $group
default_login_user = $login_user
first_valid_uid = 0
first_valid_gid = 0
mail_uid = $uid
mail_gid = $gid
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$dir/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
protocol imap {
  mail_max_userip_connections = 100
}
EOF
    # Detach its output from ours: the daemon would otherwise keep our caller's pipe open
    # (a test reading this script's output would wait for EOF forever).
    "$dovecot" -c "$dir/dovecot.conf" </dev/null >>"$dir/startup.log" 2>&1 \
        || { cat "$dir/startup.log" "$dir/dovecot.log" >&2 2>/dev/null; exit 1; }
    # Wait until it accepts connections.
    for _ in $(seq 1 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "KEFU_TEST_IMAP=127.0.0.1:$port"
            echo "KEFU_TEST_IMAP_USER=kefu"
            echo "KEFU_TEST_IMAP_PASSWORD=kefu-test-password"
            echo "KEFU_TEST_IMAP_DIR=$dir"
            return 0
        fi
        sleep 0.1
    done
    echo "dovecot.sh: dovecot did not start; log:" >&2
    cat "$dir/dovecot.log" >&2 2>/dev/null || true
    stop "$dir"
    exit 1
}

stop() {
    local dir=${1:?usage: dovecot.sh stop DIR}
    case "$dir" in */kefu-dovecot.*) ;; *) echo "dovecot.sh: refusing to remove $dir" >&2; exit 1 ;; esac
    if [ -f "$dir/run/master.pid" ]; then
        kill "$(cat "$dir/run/master.pid")" 2>/dev/null || true
        for _ in $(seq 1 30); do
            [ -f "$dir/run/master.pid" ] || break
            kill -0 "$(cat "$dir/run/master.pid" 2>/dev/null)" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *) echo "usage: $0 start | stop DIR" >&2; exit 64 ;;
esac
