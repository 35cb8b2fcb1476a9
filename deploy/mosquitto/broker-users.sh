#!/usr/bin/env bash
# Manage the broker identities of meterflow: password file entries (mosquitto_passwd) and the
# per-gateway blocks of the ACL file. See docs/broker.md.
set -euo pipefail

PROG=$(basename -- "$0")
PASSWD_FILE=${MF_BROKER_PASSWD_FILE:-/etc/mosquitto/meterflow.passwd}
ACL_FILE=${MF_BROKER_ACL_FILE:-/etc/mosquitto/meterflow.acl}
PREFIX=${MF_TOPIC_PREFIX:-mf/v1}
# the cloud's identities; their ACL lines are part of the shipped meterflow.acl
CLOUD_USERS=(mf-ingest mf-api)

usage() {
    cat <<USAGE
Usage: $PROG [--passwd FILE] [--acl FILE] [--prefix PREFIX] COMMAND ...

  gateway SITE GATEWAY   add (or renew) gateway GATEWAY of site SITE: a new random password in
                         the password file (printed once on stdout) and its ACL block: write
                         PREFIX/SITE/GATEWAY/up/{readings,health,ack} and .../state, read
                         PREFIX/SITE/GATEWAY/down/cmd. Any earlier block of GATEWAY is replaced.
  cloud USER             add (or renew) a cloud identity (mf-ingest or mf-api) with a new random
                         password, printed once on stdout; its ACL lines are in meterflow.acl.
  remove USER            remove a gateway's or cloud identity's password and ACL block.
  list                   the users in the password file, with each gateway's site.

A password may be given on stdin instead of generated: MF_BROKER_PASSWORD_STDIN=1.
Defaults: --passwd \$MF_BROKER_PASSWD_FILE or /etc/mosquitto/meterflow.passwd, --acl
\$MF_BROKER_ACL_FILE or /etc/mosquitto/meterflow.acl, --prefix \$MF_TOPIC_PREFIX or mf/v1.
mosquitto reads both files at start and on SIGHUP: reload it after a change
(systemctl reload mosquitto, or deploy/local/mosquitto.sh reload DATADIR).
Exit codes: 0 done, 1 failed, 2 usage.
USAGE
}

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

usage_error() {
    printf '%s: error: %s (see --help)\n' "$PROG" "$*" >&2
    exit 2
}

# Broker users become a password-file key (no ':') and an ACL word (no spaces); topic levels
# must not hold MQTT wildcards or '/'. The registry's ids may hold ':', which cannot be a user.
check_id() {
    local what=$1 value=$2
    [[ $value =~ ^[A-Za-z0-9_.-]{1,64}$ ]] ||
        usage_error "$what id '$value': expected 1-64 of A-Z a-z 0-9 _ . - (':' cannot be a broker user)"
}

new_password() {
    if [[ ${MF_BROKER_PASSWORD_STDIN:-} == 1 ]]; then
        local secret
        IFS= read -r secret || true
        [[ ${#secret} -ge 16 ]] || die "the password on stdin must have at least 16 characters"
        printf '%s' "$secret"
    else
        # 32 random bytes, base64url without padding: 43 characters
        head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='
    fi
}

find_passwd_tool() {
    local candidate
    for candidate in "${MOSQUITTO_PASSWD_BIN:-}" "$(command -v mosquitto_passwd || true)" \
        /usr/bin/mosquitto_passwd /usr/local/bin/mosquitto_passwd; do
        if [[ -n $candidate && -x $candidate ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    die "mosquitto_passwd not found; install the mosquitto package"
}

# Set USER's password in the password file; the password travels on stdin, never in argv.
set_password() {
    local user=$1 secret=$2 tool
    tool=$(find_passwd_tool)
    if [[ ! -e $PASSWD_FILE ]]; then
        # mosquitto re-reads it as user mosquitto on SIGHUP: group mosquitto may read it
        (umask 077 && : >"$PASSWD_FILE") || die "cannot create $PASSWD_FILE"
        if [[ $(id -u) -eq 0 ]] && getent group mosquitto >/dev/null; then
            chgrp mosquitto -- "$PASSWD_FILE" && chmod 0640 -- "$PASSWD_FILE"
        fi
    fi
    printf '%s\n%s\n' "$secret" "$secret" | "$tool" "$PASSWD_FILE" "$user" >/dev/null 2>&1 ||
        die "mosquitto_passwd could not write $user into $PASSWD_FILE"
}

delete_password() {
    local user=$1 tool
    tool=$(find_passwd_tool)
    [[ -e $PASSWD_FILE ]] || return 0
    if grep -q -- "^$user:" "$PASSWD_FILE"; then
        "$tool" -D "$PASSWD_FILE" "$user" >/dev/null || die "mosquitto_passwd could not remove $user"
    fi
}

# Remove USER's gateway block (between its begin and end markers) from the ACL file.
drop_acl_block() {
    local user=$1 tmp
    [[ -f $ACL_FILE ]] || die "$ACL_FILE: no such ACL file (start from deploy/mosquitto/meterflow.acl)"
    tmp=$(mktemp "$ACL_FILE.XXXXXX")
    awk -v begin="# begin gateway $user " -v end="# end gateway $user" '
        index($0, begin) == 1 { skip = 1; next }
        skip && $0 == end { skip = 0; next }
        !skip { print }
    ' "$ACL_FILE" >"$tmp"
    chmod --reference="$ACL_FILE" "$tmp" 2>/dev/null || true
    chown --reference="$ACL_FILE" "$tmp" 2>/dev/null || true
    mv -f -- "$tmp" "$ACL_FILE"
}

add_acl_block() {
    local site=$1 gateway=$2 base="$PREFIX/$1/$2"
    {
        printf '# begin gateway %s (site %s)\n' "$gateway" "$site"
        printf 'user %s\n' "$gateway"
        printf 'topic write %s/up/readings\n' "$base"
        printf 'topic write %s/up/health\n' "$base"
        printf 'topic write %s/up/ack\n' "$base"
        printf 'topic write %s/state\n' "$base"
        printf 'topic read %s/down/cmd\n' "$base"
        printf '# end gateway %s\n' "$gateway"
    } >>"$ACL_FILE"
}

is_cloud_user() {
    local user=$1 known
    for known in "${CLOUD_USERS[@]}"; do
        [[ $user == "$known" ]] && return 0
    done
    return 1
}

cmd_gateway() {
    [[ $# -eq 2 ]] || usage_error "gateway needs SITE and GATEWAY"
    local site=$1 gateway=$2 secret
    check_id site "$site"
    check_id gateway "$gateway"
    is_cloud_user "$gateway" && usage_error "gateway id '$gateway' is a cloud identity's user name"
    [[ $PREFIX =~ ^[A-Za-z0-9_./-]+$ && $PREFIX != */ ]] || usage_error "prefix '$PREFIX' is not a topic prefix"
    secret=$(new_password)
    drop_acl_block "$gateway"
    add_acl_block "$site" "$gateway"
    set_password "$gateway" "$secret"
    printf 'broker user %s for gateway %s of site %s saved in %s and %s; reload mosquitto\n' \
        "$gateway" "$gateway" "$site" "$PASSWD_FILE" "$ACL_FILE" >&2
    printf '%s\n' "$secret"
}

cmd_cloud() {
    [[ $# -eq 1 ]] || usage_error "cloud needs USER (${CLOUD_USERS[*]})"
    local user=$1 secret
    is_cloud_user "$user" || usage_error "cloud user '$user': expected one of ${CLOUD_USERS[*]}"
    grep -q -- "^user $user\$" "$ACL_FILE" 2>/dev/null ||
        die "$ACL_FILE has no 'user $user' section (start from deploy/mosquitto/meterflow.acl)"
    secret=$(new_password)
    set_password "$user" "$secret"
    printf 'broker user %s saved in %s; reload mosquitto\n' "$user" "$PASSWD_FILE" >&2
    printf '%s\n' "$secret"
}

cmd_remove() {
    [[ $# -eq 1 ]] || usage_error "remove needs USER"
    local user=$1
    check_id user "$user"
    is_cloud_user "$user" || drop_acl_block "$user"
    delete_password "$user"
    printf 'broker user %s removed; reload mosquitto\n' "$user" >&2
}

cmd_list() {
    [[ -f $PASSWD_FILE ]] || die "$PASSWD_FILE: no such password file"
    local user site
    while IFS=: read -r user _; do
        [[ -n $user ]] || continue
        site=$(sed -n "s/^# begin gateway $user (site \(.*\))\$/\1/p" "$ACL_FILE" 2>/dev/null | head -n 1)
        if is_cloud_user "$user"; then
            printf '%s\tcloud\n' "$user"
        else
            printf '%s\tgateway of site %s\n' "$user" "${site:-? (no ACL block: it can do nothing)}"
        fi
    done <"$PASSWD_FILE"
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --passwd) PASSWD_FILE=${2:?--passwd needs a FILE}; shift 2 ;;
    --acl) ACL_FILE=${2:?--acl needs a FILE}; shift 2 ;;
    --prefix) PREFIX=${2:?--prefix needs a PREFIX}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) usage_error "unknown option $1" ;;
    *) break ;;
    esac
done
[[ $# -ge 1 ]] || usage_error "a COMMAND is needed"
command=$1
shift
case $command in
gateway) cmd_gateway "$@" ;;
cloud) cmd_cloud "$@" ;;
remove) cmd_remove "$@" ;;
list) cmd_list "$@" ;;
*) usage_error "unknown command '$command'" ;;
esac
