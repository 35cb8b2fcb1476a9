#!/usr/bin/env bash
# Start/stop a throw-away PostgreSQL cluster on 127.0.0.1 for tests and local development.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
SERVER_LABEL=postgres.sh
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

readonly PG_SUPERUSER=postgres APP_ROLE=meterflow APP_DB=meterflow
# PostgreSQL refuses to run as root: when root, the cluster belongs to this system user.
readonly PG_OS_USER=postgres

usage() {
    cat <<EOF
Usage: $(basename -- "$0") start DATADIR PORT
       $(basename -- "$0") stop DATADIR
       $(basename -- "$0") status DATADIR

start  creates the cluster DATADIR/pgdata with initdb on first use (superuser '$PG_SUPERUSER',
       trust authentication: for tests only), listens on 127.0.0.1:PORT only (unix socket in
       DATADIR), fsync off, starts it in the background (pid in DATADIR/pgdata/postmaster.pid,
       log in DATADIR/postgres.log), waits for pg_isready and creates the role '$APP_ROLE'
       and its database '$APP_DB' if missing.
       Connect with: psql -h 127.0.0.1 -p PORT -U $APP_ROLE $APP_DB
stop   stops the cluster (pg_ctl stop -m fast, by the pid in postmaster.pid; SIGKILL if needed).
status prints whether it runs; exit 0 if it does, 1 if not.

Run as root, the server runs as the '$PG_OS_USER' user: DATADIR is chowned to it and every
parent directory must be traversable by it.

Binaries: PG_BINDIR, else pg_ctl on PATH, else the highest /usr/lib/postgresql/*/bin.
Environment: MF_SERVER_START_TIMEOUT (30), MF_SERVER_STOP_TIMEOUT (15),
MF_SERVER_WATCH_PID (stop the server when that PID exits).
Exit codes: 0 ok, 1 failure, 2 usage, 3 port already in use.
EOF
}

find_pg_bindir() {
    local dir candidate
    if [[ -n ${PG_BINDIR:-} ]]; then
        [[ -x $PG_BINDIR/pg_ctl ]] || die "PG_BINDIR=$PG_BINDIR has no pg_ctl"
        printf '%s\n' "$PG_BINDIR"
        return 0
    fi
    candidate=$(command -v pg_ctl || true)
    if [[ -n $candidate ]]; then
        # resolve e.g. /usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin/pg_ctl, whose
        # directory also holds initdb, pg_isready and psql
        dir=$(dirname -- "$(readlink -f -- "$candidate")")
        if [[ -x $dir/initdb && -x $dir/postgres && -x $dir/pg_isready ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null |
        sort -V | tail -n 1)
    if [[ -n $dir && -x $dir/pg_ctl && -x $dir/initdb ]]; then
        printf '%s\n' "$dir"
        return 0
    fi
    die "PostgreSQL server binaries not found (no pg_ctl on PATH, nothing in" \
        "/usr/lib/postgresql/*/bin); install with: sudo $HERE/install-servers.sh" \
        "(or apt-get install postgresql)"
}

# psql as the superuser over TCP (trust auth), ignoring ~/.psqlrc and PG* variables.
run_psql() {
    local bindir=$1 port=$2
    shift 2
    env -u PGSERVICE -u PGOPTIONS -u PGPASSWORD -u PGSSLMODE \
        "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$LOCAL_HOST" -p "$port" \
        -U "$PG_SUPERUSER" -d postgres "$@"
}

postmaster_pid() {
    read_pidfile "$1/pgdata/postmaster.pid"
}

do_stop() {
    local dir=$1 pid bindir
    pid=$(postmaster_pid "$dir")
    stop_watchdog "$dir"
    if [[ -z $pid ]] || ! pid_is "$pid" postgres; then
        say "not running"
        return 0
    fi
    bindir=$(find_pg_bindir)
    if ! as_user "$PG_OS_USER" "$bindir/pg_ctl" stop -D "$dir/pgdata" -m fast -w \
        -t "${MF_SERVER_STOP_TIMEOUT:-15}" >/dev/null 2>&1; then
        say "pg_ctl stop failed, signalling pid $pid" >&2
    fi
    if pid_alive "$pid"; then
        stop_pid "$pid" postgres
    fi
    say "stopped (pid $pid)"
}

do_status() {
    local dir=$1 pid
    pid=$(postmaster_pid "$dir")
    if [[ -n $pid ]] && pid_is "$pid" postgres; then
        say "running (pid $pid, port $(cat -- "$dir/port" 2>/dev/null || echo '?'))"
        return 0
    fi
    say "not running"
    return 1
}

pg_ready() {
    local bindir=$1 port=$2
    "$bindir/pg_isready" -q -h "$LOCAL_HOST" -p "$port" -U "$PG_SUPERUSER" -d postgres -t 2
}

do_start() {
    local dir=$1 port=$2 bindir pid log pgdata socket_dir locale_opt
    validate_port "$port"
    bindir=$(find_pg_bindir)
    dir=$(absolute_dir "$dir")
    cd /
    log=$dir/postgres.log
    pgdata=$dir/pgdata

    pid=$(postmaster_pid "$dir")
    if [[ -n $pid ]] && pid_is "$pid" postgres; then
        if [[ $(cat -- "$dir/port" 2>/dev/null) == "$port" ]]; then
            say "already running (pid $pid) on $LOCAL_HOST:$port"
            return 0
        fi
        die "already running (pid $pid) from $dir on another port; stop it first"
    fi
    require_port_free "$port"

    if is_root; then
        give_dir_to "$PG_OS_USER" "$dir"
    fi
    if [[ ! -s $pgdata/PG_VERSION ]]; then
        locale_opt=--no-locale
        if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then
            locale_opt=--locale=C.UTF-8
        fi
        if ! as_user "$PG_OS_USER" "$bindir/initdb" -D "$pgdata" -U "$PG_SUPERUSER" \
            --auth=trust --encoding=UTF8 "$locale_opt" --no-sync \
            >"$dir/initdb.log" 2>&1; then
            die_with_log "$EXIT_FAIL" "$dir/initdb.log" "initdb failed"
        fi
        printf "\ninclude_if_exists = 'meterflow-local.conf'\n" >>"$pgdata/postgresql.conf"
    fi

    # The unix socket path is limited to ~107 bytes; without it PostgreSQL works over TCP only.
    socket_dir=$dir
    if ((${#socket_dir} + 20 > 107)); then
        say "DATADIR path too long for a unix socket; TCP only" >&2
        socket_dir=""
    fi
    cat >"$pgdata/meterflow-local.conf" <<EOF
# written by deploy/local/postgres.sh; rewritten on every start. FOR TESTS ONLY.
listen_addresses = '$LOCAL_HOST'
port = $port
unix_socket_directories = '$socket_dir'
max_connections = 200
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_connections = off
log_disconnections = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    printf '%s\n' "$port" >"$dir/port"
    if is_root; then
        chown "$PG_OS_USER:" -- "$pgdata/meterflow-local.conf"
        touch -- "$log"
        chown "$PG_OS_USER:" -- "$log"
    fi

    printf '==== %s starting postgres on %s:%s\n' "$(date -Is)" "$LOCAL_HOST" "$port" >>"$log"
    # pg_ctl puts the postmaster in its own session, redirects its output to the log and (-w)
    # waits until postmaster.pid says it accepts connections or the postmaster has exited.
    if ! as_user "$PG_OS_USER" "$bindir/pg_ctl" start -D "$pgdata" -l "$log" -w \
        -t "${MF_SERVER_START_TIMEOUT:-30}" >"$dir/pg_ctl.log" 2>&1; then
        log_tail "$dir/pg_ctl.log" 5
        pid=$(postmaster_pid "$dir")
        if [[ -n $pid ]] && pid_alive "$pid"; then
            stop_pid "$pid" postgres
        fi
        if grep -qi 'address already in use' -- "$log" 2>/dev/null; then
            die_with_log "$EXIT_PORT_BUSY" "$log" "postgres could not bind its port"
        fi
        die_with_log "$EXIT_FAIL" "$log" "pg_ctl start failed"
    fi
    pid=$(postmaster_pid "$dir")
    [[ -n $pid ]] || die_with_log "$EXIT_FAIL" "$log" "no pid in $pgdata/postmaster.pid"
    wait_ready "$pid" "$log" "${MF_SERVER_START_TIMEOUT:-30}" pg_ready "$bindir" "$port"

    if ! run_psql "$bindir" "$port" >>"$log" 2>&1 <<EOF; then
SELECT 'CREATE ROLE $APP_ROLE LOGIN CREATEDB'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_ROLE')\\gexec
SELECT 'CREATE DATABASE $APP_DB OWNER $APP_ROLE'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$APP_DB')\\gexec
EOF
        do_stop "$dir" >/dev/null 2>&1 || true
        die_with_log "$EXIT_FAIL" "$log" "could not create role/database $APP_ROLE"
    fi
    start_watchdog postgres "$pid" "$dir" "$log" do_stop "$dir"
    say "running (pid $pid) on postgresql://$APP_ROLE@$LOCAL_HOST:$port/$APP_DB, data in $dir"
}

server_main "$@"
