# shellcheck shell=bash
# Helpers shared by scripts/test and scripts/run: make sure the local services and the
# virtualenv the project needs are there, starting or installing them when we can.
#
# Source this file; every function returns non-zero (after printing what is missing and
# how to fix it) instead of exiting, and is safe under `set -euo pipefail`.
#
#   ensure_venv      .venv with the project installed editable, with the dev extra
#   ensure_redis     Redis answering on 127.0.0.1:6379 (or the port given as $1)
#   ensure_postgres  PostgreSQL on 127.0.0.1:5432, user postgres logging in without a password
#   ensure_postgres_server   only the "accepting connections" part of ensure_postgres
#   ensure_chromium  Debian's Chromium at /usr/bin/chromium (the browser tests drive it)

SERVICES_ROOT="${SERVICES_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# Shared by every function: `apt-get update` runs at most once per script run.
apt_updated="${apt_updated:-0}"

SERVICES_PG_HOST=127.0.0.1
SERVICES_PG_PORT=5432
SERVICES_CHROMIUM=/usr/bin/chromium

_svc_log() {
    printf '[services] %s\n' "$*" >&2
}

_svc_is_root() {
    [ "$(id -u)" -eq 0 ]
}

_svc_can_apt() {
    _svc_is_root && command -v apt-get >/dev/null 2>&1
}

# _svc_apt_install PACKAGE...: install Debian packages (root only); update the lists once.
_svc_apt_install() {
    if ! _svc_can_apt; then
        _svc_log "cannot install $* here: need root and apt-get"
        return 1
    fi
    if [ "$apt_updated" != 1 ]; then
        _svc_log "apt-get update"
        if ! DEBIAN_FRONTEND=noninteractive apt-get update -q >&2; then
            _svc_log "apt-get update failed"
            return 1
        fi
        apt_updated=1
    fi
    _svc_log "apt-get install -y $*"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; then
        _svc_log "apt-get install $* failed"
        return 1
    fi
}

# _svc_wait SECONDS DESCRIPTION COMMAND...: poll COMMAND every half second until it succeeds.
_svc_wait() {
    local seconds="$1" what="$2" tries
    shift 2
    tries=$((seconds * 2))
    while [ "$tries" -gt 0 ]; do
        if "$@"; then
            return 0
        fi
        sleep 0.5
        tries=$((tries - 1))
    done
    _svc_log "$what did not come up within ${seconds}s"
    return 1
}

# _svc_port_open HOST PORT: something accepts TCP connections there.
_svc_port_open() {
    # shellcheck disable=SC2016  # $1/$2 expand in the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# --------------------------------------------------------------------------------------
# Python virtualenv
# --------------------------------------------------------------------------------------

ensure_venv() {
    local venv="$SERVICES_ROOT/.venv" stamp py fresh=0
    stamp="$venv/.installed-stamp"
    py="${PYTHON:-python3}"

    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        if ! command -v "$py" >/dev/null 2>&1; then
            _svc_log "$py not found: install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)"
            return 1
        fi
        if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
            _svc_log "$("$py" --version 2>&1) is too old: this project needs Python 3.11 or newer" \
                "(set PYTHON=/path/to/python3.11 to pick another interpreter)"
            return 1
        fi
        _svc_log "creating $venv with $("$py" --version 2>&1)"
        if ! "$py" -m venv --clear "$venv" >&2; then
            _svc_log "could not create the virtualenv: the venv module is missing" \
                "(Debian: apt-get install python3-venv)"
            return 1
        fi
        fresh=1
    fi

    if [ "$fresh" = 1 ] || [ ! -e "$stamp" ] || [ "$SERVICES_ROOT/pyproject.toml" -nt "$stamp" ]; then
        _svc_log "installing the project into .venv (pip install -e '.[dev]')"
        if ! (cd "$SERVICES_ROOT" && "$venv/bin/python" -m pip install -q -e '.[dev]' >&2); then
            _svc_log "pip install -e '.[dev]' failed (see the pip output above)"
            return 1
        fi
        touch "$stamp"
    fi
}

# --------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------

# _svc_redis_ping PORT: Redis on 127.0.0.1:PORT answers PING with PONG.
_svc_redis_ping() {
    local port="$1" reply
    if command -v redis-cli >/dev/null 2>&1; then
        reply="$(timeout 3 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)"
    else
        # shellcheck disable=SC2016  # expanded by the inner bash
        reply="$(timeout 3 bash -c '
            exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
            printf "PING\r\n" >&3
            IFS= read -r line <&3 && printf "%s" "$line"
        ' _ "$port" 2>/dev/null || true)"
    fi
    case "$reply" in
        *PONG*) return 0 ;;
        *) return 1 ;;
    esac
}

ensure_redis() {
    local port="${1:-6379}" dir logfile
    if _svc_redis_ping "$port"; then
        return 0
    fi
    if _svc_port_open 127.0.0.1 "$port"; then
        _svc_log "something listens on 127.0.0.1:$port but does not answer Redis PING" \
            "(a password-protected Redis, or another program): free the port or fix that server"
        return 1
    fi

    if ! command -v redis-server >/dev/null 2>&1; then
        if _svc_can_apt; then
            _svc_apt_install redis-server || return 1
            # Debian's package may have started its own instance already.
            if _svc_redis_ping "$port"; then
                return 0
            fi
        else
            _svc_log "Redis is not running on 127.0.0.1:$port and redis-server is not installed." \
                "Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)" \
                "or start a Redis on 127.0.0.1:$port, then run this again."
            return 1
        fi
    fi

    if _svc_is_root; then
        dir=/var/lib/redis
        logfile=/var/log/redis/ci.log
        mkdir -p "$dir" /var/log/redis
    else
        dir="$SERVICES_ROOT/instance/redis"
        if ! mkdir -p "$dir" 2>/dev/null || [ ! -w "$dir" ]; then
            dir="${TMPDIR:-/tmp}/commitment-control-plane-redis-$(id -u)"
            mkdir -p "$dir" || return 1
        fi
        logfile="$dir/redis.log"
    fi
    _svc_log "starting redis-server on 127.0.0.1:$port (log: $logfile)"
    if ! redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" \
        --appendonly no --dir "$dir" --logfile "$logfile" >&2; then
        _svc_log "redis-server failed to start; see $logfile"
        return 1
    fi
    if ! _svc_wait 20 "Redis on 127.0.0.1:$port" _svc_redis_ping "$port"; then
        _svc_log "see $logfile"
        return 1
    fi
    _svc_log "Redis is up on 127.0.0.1:$port"
}

# --------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------

_svc_pg_ready() {
    pg_isready -q -h "$SERVICES_PG_HOST" -p "$SERVICES_PG_PORT" -t 3 >/dev/null 2>&1
}

_svc_pg_trust_login() {
    PGCONNECT_TIMEOUT=5 psql -w -X -q -h "$SERVICES_PG_HOST" -p "$SERVICES_PG_PORT" \
        -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1
}

_svc_pg_installed() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Lines "VERSION NAME PORT STATUS" of the Debian clusters (pg_lsclusters), nothing elsewhere.
_svc_pg_clusters() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    pg_lsclusters -h 2>/dev/null | awk '{ print $1, $2, $3, $4 }'
}

# Start every stopped Debian cluster (root, or the clusters' owner).
_svc_pg_start_clusters() {
    local ver name port status started=0
    while read -r ver name port status; do
        [ -n "$ver" ] || continue
        case "$status" in
            online*) continue ;;
        esac
        _svc_log "starting PostgreSQL cluster $ver/$name (port $port)"
        if pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2; then
            started=1
        else
            _svc_log "pg_ctlcluster $ver $name start failed; see /var/log/postgresql/postgresql-$ver-$name.log"
        fi
    done < <(_svc_pg_clusters)
    [ "$started" = 1 ]
}

# ensure_postgres_server: a PostgreSQL server accepts connections on 127.0.0.1:5432.
ensure_postgres_server() {
    local newest
    if _svc_pg_ready; then
        return 0
    fi

    if ! _svc_pg_installed; then
        if _svc_can_apt; then
            _svc_apt_install postgresql || return 1
            if [ -z "$(_svc_pg_clusters)" ]; then
                newest="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)"
                _svc_log "no PostgreSQL cluster exists; creating $newest/main"
                pg_createcluster "$newest" main >&2 || return 1
            fi
        else
            _svc_log "PostgreSQL is not running on $SERVICES_PG_HOST:$SERVICES_PG_PORT and is not installed." \
                "Install it (Debian/Ubuntu: sudo apt-get install postgresql), make sure it listens on" \
                "127.0.0.1:5432, and let user postgres log in from 127.0.0.1 without a password" \
                "(pg_hba.conf: 'host all postgres 127.0.0.1/32 trust'), then run this again."
            return 1
        fi
    fi

    if ! _svc_pg_ready; then
        if [ -z "$(_svc_pg_clusters)" ]; then
            _svc_log "PostgreSQL is installed but no cluster was found (pg_lsclusters shows none)." \
                "Create and start one (as root: pg_createcluster 15 main --start), then run this again."
            return 1
        fi
        if ! _svc_pg_start_clusters && ! _svc_pg_ready; then
            if ! _svc_is_root; then
                _svc_log "PostgreSQL is installed but not running on $SERVICES_PG_HOST:$SERVICES_PG_PORT;" \
                    "start it as root: sudo pg_ctlcluster <version> main start (pg_lsclusters lists them)"
            fi
            return 1
        fi
        if ! _svc_wait 30 "PostgreSQL on $SERVICES_PG_HOST:$SERVICES_PG_PORT" _svc_pg_ready; then
            _svc_log "no server accepts connections on $SERVICES_PG_HOST:$SERVICES_PG_PORT:" \
                "check 'port' and 'listen_addresses' in postgresql.conf (pg_lsclusters shows each port)"
            return 1
        fi
    fi
    _svc_log "PostgreSQL accepts connections on $SERVICES_PG_HOST:$SERVICES_PG_PORT"
}

# _svc_pg_hba_file: the pg_hba.conf of the cluster serving port 5432.
_svc_pg_hba_file() {
    local ver name port status file
    while read -r ver name port status; do
        if [ "$port" = "$SERVICES_PG_PORT" ] && [ -f "/etc/postgresql/$ver/$name/pg_hba.conf" ]; then
            printf '%s %s %s\n' "$ver" "$name" "/etc/postgresql/$ver/$name/pg_hba.conf"
            return 0
        fi
    done < <(_svc_pg_clusters)
    # Not a Debian cluster: ask the server itself over its local socket.
    if command -v runuser >/dev/null 2>&1; then
        file="$(runuser -u postgres -- psql -X -p "$SERVICES_PG_PORT" -Atc 'show hba_file' 2>/dev/null || true)"
        if [ -n "$file" ] && [ -f "$file" ]; then
            printf '%s %s %s\n' - - "$file"
            return 0
        fi
    fi
    return 1
}

_svc_pg_reload() {
    local ver="$1" name="$2"
    if [ "$ver" != - ]; then
        pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload >&2
    else
        runuser -u postgres -- psql -X -p "$SERVICES_PG_PORT" -Atc 'select pg_reload_conf()' >/dev/null
    fi
}

# ensure_postgres: the server runs, and postgres logs in over 127.0.0.1 without a password
# (what the tests' TEST_DATABASE_ADMIN_URL default expects).
ensure_postgres() {
    local info ver name hba line
    if _svc_pg_ready && _svc_pg_trust_login; then
        return 0
    fi
    ensure_postgres_server || return 1
    if _svc_pg_trust_login; then
        return 0
    fi

    if ! _svc_is_root; then
        _svc_log "PostgreSQL runs on $SERVICES_PG_HOST:$SERVICES_PG_PORT but user postgres cannot log in" \
            "without a password. As root, add these two lines at the TOP of the cluster's pg_hba.conf" \
            "(psql -c 'show hba_file' tells where it is):" \
            "'host all postgres 127.0.0.1/32 trust' and 'host all postgres ::1/128 trust'," \
            "then reload (sudo pg_ctlcluster <version> main reload). Or point the tests elsewhere with" \
            "TEST_DATABASE_ADMIN_URL=postgresql+psycopg://USER:PASSWORD@HOST:PORT/postgres"
        return 1
    fi
    if ! info="$(_svc_pg_hba_file)"; then
        _svc_log "PostgreSQL runs but user postgres cannot log in from 127.0.0.1 without a password," \
            "and its pg_hba.conf could not be found; add 'host all postgres 127.0.0.1/32 trust' at its top and reload"
        return 1
    fi
    read -r ver name hba <<<"$info"
    _svc_log "allowing passwordless login for postgres from 127.0.0.1 and ::1 in $hba"
    # pg_hba.conf is first-match: the lines must come before any md5/scram rule.
    for line in 'host all postgres ::1/128 trust' 'host all postgres 127.0.0.1/32 trust'; do
        if ! grep -qxF "$line" "$hba"; then
            sed -i "1i $line" "$hba" || return 1
        elif [ "$(grep -nxF "$line" "$hba" | head -n 1 | cut -d: -f1)" -gt 2 ]; then
            # Present but below other rules: move it to the top.
            sed -i "\\|^${line}\$|d" "$hba" && sed -i "1i $line" "$hba" || return 1
        fi
    done
    _svc_pg_reload "$ver" "$name" || {
        _svc_log "reloading PostgreSQL failed"
        return 1
    }
    if ! _svc_wait 10 "passwordless login as postgres on 127.0.0.1" _svc_pg_trust_login; then
        _svc_log "user postgres still cannot log in from 127.0.0.1 after editing $hba;" \
            "check that the role postgres exists and that the server on port $SERVICES_PG_PORT uses that file"
        return 1
    fi
    _svc_log "postgres logs in from 127.0.0.1 without a password"
}

# --------------------------------------------------------------------------------------
# Chromium (for Playwright's browser tests; Playwright's own download does not work here)
# --------------------------------------------------------------------------------------

ensure_chromium() {
    if [ -x "$SERVICES_CHROMIUM" ]; then
        return 0
    fi
    if _svc_can_apt; then
        # Without recommends (they pull in printing, audio and desktop daemons); the
        # fonts are only recommended, but pages need them to render text predictably.
        _svc_apt_install --no-install-recommends chromium fonts-liberation || return 1
        if [ -x "$SERVICES_CHROMIUM" ]; then
            _svc_log "installed $("$SERVICES_CHROMIUM" --version 2>/dev/null || echo chromium)"
            return 0
        fi
        _svc_log "the chromium package installed, but $SERVICES_CHROMIUM is still missing"
        return 1
    fi
    _svc_log "$SERVICES_CHROMIUM is missing: the browser tests drive Debian's Chromium." \
        "Install it as root (Debian: sudo apt-get install chromium), then run this again."
    return 1
}
