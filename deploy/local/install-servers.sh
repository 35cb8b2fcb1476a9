#!/usr/bin/env bash
# Make sure the real servers used by the tests (mosquitto, influxd 1.x, PostgreSQL) are
# installed from Debian packages. Idempotent. Never starts any service.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
SERVER_LABEL=install-servers.sh
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
Usage: $(basename -- "$0") [--with-chromium] [--check]

Checks for mosquitto, influxd (package influxdb) and the PostgreSQL server (package
postgresql), plus chromium, pdftoppm (poppler-utils) and zbarimg (zbar-tools) with
--with-chromium (the browser and print tests). Run as root, it installs what is missing
with 'apt-get update' (once) and 'apt-get install -y --no-install-recommends', with a
policy-rc.d in place so that no package starts its service (the tests start their own
servers on 127.0.0.1; see deploy/local/{mosquitto,influxdb,postgres}.sh). Not run as root,
it only reports what is missing and how to install it (exit 0; the tests then skip, or fail
when CI=true).

--check  only report; exit 1 if something is missing.
Prints a one-line summary of the versions found.
EOF
}

with_chromium=false
check_only=false
while (($#)); do
    case $1 in
    --with-chromium) with_chromium=true ;;
    --check) check_only=true ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit "$EXIT_USAGE"
        ;;
    esac
    shift
done

first_executable() {
    local candidate
    for candidate in "$@"; do
        if [[ -n $candidate && -x $candidate ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

find_mosquitto() {
    first_executable "${MOSQUITTO_BIN:-}" "$(command -v mosquitto || true)" \
        /usr/sbin/mosquitto /usr/local/sbin/mosquitto
}

find_influxd() {
    first_executable "${INFLUXD_BIN:-}" "$(command -v influxd || true)" \
        /usr/bin/influxd /usr/local/bin/influxd
}

# directory holding pg_ctl, initdb and postgres (same rule as postgres.sh)
find_pg_bindir() {
    local dir candidate
    if [[ -n ${PG_BINDIR:-} && -x ${PG_BINDIR:-}/pg_ctl ]]; then
        printf '%s\n' "$PG_BINDIR"
        return 0
    fi
    candidate=$(command -v pg_ctl || true)
    if [[ -n $candidate ]]; then
        dir=$(dirname -- "$(readlink -f -- "$candidate")")
        if [[ -x $dir/initdb && -x $dir/postgres ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null |
        sort -V | tail -n 1)
    if [[ -n $dir && -x $dir/pg_ctl && -x $dir/initdb && -x $dir/postgres ]]; then
        printf '%s\n' "$dir"
        return 0
    fi
    return 1
}

find_chromium() {
    first_executable "$(command -v chromium || true)" /usr/bin/chromium
}

# version_of NAME: print "NAME VERSION (PATH)" or return 1 when it is missing.
version_of() {
    local name=$1 path version
    case $name in
    mosquitto)
        path=$(find_mosquitto) || return 1
        version=$("$path" -h 2>&1 | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -n 1)
        ;;
    influxd)
        path=$(find_influxd) || return 1
        version=$("$path" version 2>/dev/null | sed -n 's/^InfluxDB v\([^ ]*\).*/\1/p')
        ;;
    postgres)
        path=$(find_pg_bindir) || return 1
        version=$("$path/postgres" --version 2>/dev/null | sed -n 's/^postgres (PostgreSQL) \([^ ]*\).*/\1/p')
        ;;
    chromium)
        path=$(find_chromium) || return 1
        version=$(timeout 20 "$path" --version 2>/dev/null | sed -n 's/^Chromium \([^ ]*\).*/\1/p' || true)
        ;;
    pdftoppm)
        path=$(first_executable "$(command -v pdftoppm || true)" /usr/bin/pdftoppm) || return 1
        version=$("$path" -v 2>&1 | sed -n 's/^pdftoppm version \([^ ]*\).*/\1/p' | head -n 1)
        ;;
    zbarimg)
        path=$(first_executable "$(command -v zbarimg || true)" /usr/bin/zbarimg) || return 1
        version=$("$path" --version 2>/dev/null | head -n 1 || true)
        ;;
    *) return 1 ;;
    esac
    printf '%s %s (%s)\n' "$name" "${version:-?}" "$path"
}

package_of() {
    case $1 in
    mosquitto) echo mosquitto ;;
    influxd) echo influxdb ;;
    postgres) echo postgresql ;;
    chromium) echo chromium ;;
    pdftoppm) echo poppler-utils ;;
    zbarimg) echo zbar-tools ;;
    esac
}

wanted=(mosquitto influxd postgres)
if $with_chromium; then
    wanted+=(chromium pdftoppm zbarimg)
fi

missing_programs() {
    local name
    for name in "${wanted[@]}"; do
        if ! version_of "$name" >/dev/null; then
            printf '%s\n' "$name"
        fi
    done
}

summary() {
    local name line
    local -a parts=()
    for name in "${wanted[@]}"; do
        if line=$(version_of "$name"); then
            parts+=("$line")
        else
            parts+=("$name MISSING (package $(package_of "$name"))")
        fi
    done
    if ! $with_chromium; then
        parts+=("chromium not requested")
    fi
    local out="" sep="" part
    for part in "${parts[@]}"; do
        out+="$sep$part"
        sep="; "
    done
    printf '%s: %s\n' "$SERVER_LABEL" "$out"
}

# While installing, deny every service start (Debian's invoke-rc.d honours policy-rc.d;
# exit 101 = "action forbidden"). Removed afterwards if we created it.
POLICY=/usr/sbin/policy-rc.d
created_policy=false
remove_policy() {
    if $created_policy; then
        rm -f -- "$POLICY"
    fi
}

install_packages() {
    local -a packages=("$@")
    if [[ ! -e $POLICY ]]; then
        trap remove_policy EXIT
        printf '#!/bin/sh\n# temporary, from deploy/local/install-servers.sh\nexit 101\n' >"$POLICY"
        chmod 0755 "$POLICY"
        created_policy=true
    fi
    say "installing: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${packages[@]}" ||
        die "apt-get install ${packages[*]} failed"
    remove_policy
    created_policy=false
}

mapfile -t missing < <(missing_programs)
if ((${#missing[@]} == 0)); then
    summary
    exit 0
fi

packages=()
for name in "${missing[@]}"; do
    packages+=("$(package_of "$name")")
    if [[ $name == chromium ]]; then
        packages+=(fonts-wqy-microhei) # CJK glyphs for the Chinese tenant pages' screenshots
    fi
done

if $check_only || ! is_root; then
    flags=""
    if $with_chromium; then
        flags=" --with-chromium"
    fi
    summary
    say "missing: ${missing[*]}"
    say "install with: sudo $HERE/install-servers.sh$flags" \
        "  (or: sudo apt-get install -y --no-install-recommends ${packages[*]})"
    say "without them the tests that need these servers are skipped (they fail when CI=true)"
    if $check_only; then
        exit 1
    fi
    exit 0
fi

install_packages "${packages[@]}"

mapfile -t still_missing < <(missing_programs)
summary
if ((${#still_missing[@]})); then
    die "still missing after apt-get install: ${still_missing[*]} (package installed but" \
        "its program deleted? try: apt-get install --reinstall ...)"
fi
