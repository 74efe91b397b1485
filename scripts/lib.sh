# shellcheck shell=bash
# Shared helpers for scripts/run and scripts/test. Source it; do not execute it.
#
# Everything here works on a fresh Debian 12 machine as root: what is missing is installed
# from Debian's packages with apt-get, what is not running is started, and whatever is
# already there (a toolchain, a PostgreSQL or NATS server, a local cluster started by an
# earlier run) is reused. Only Debian's apt and the language registries are ever contacted.
#
# Knobs (all optional):
#   DATABASE_URL                  server for scripts/run, used unchanged
#   KRALIKI_TEST_DATABASE_URL     admin URL for scripts/test (else derived from DATABASE_URL)
#   NATS_URL, KRALIKI_TEST_NATS_URL
#   KRALIKI_PG_PORT_PROBE=5432    where an existing PostgreSQL is looked for on 127.0.0.1
#   KRALIKI_PG_LOCAL_PORT=55432   port of the project-local cluster
#   KRALIKI_NATS_PORT_PROBE=4222  where an existing NATS is looked for on 127.0.0.1
#   KRALIKI_NATS_LOCAL_PORT=54222 port of the project-local NATS
# State of the local services lives in $KRALIKI_REPO/.data/ (gitignored).

set -euo pipefail

KRALIKI_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
KRALIKI_STATE="$KRALIKI_REPO/.data"
export DEBIAN_FRONTEND=noninteractive

: "${KRALIKI_PG_PORT_PROBE:=5432}"
: "${KRALIKI_PG_LOCAL_PORT:=55432}"
: "${KRALIKI_NATS_PORT_PROBE:=4222}"
: "${KRALIKI_NATS_LOCAL_PORT:=54222}"
: "${KRALIKI_PG_MIN_CONNECTIONS:=300}"

_kraliki_apt_updated=0

log() { printf '[kraliki] %s\n' "$*" >&2; }
warn() { printf '[kraliki] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[kraliki] ERROR: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root (directly, or through sudo when not root).
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_update_once() {
    [[ $_kraliki_apt_updated == 1 ]] && return 0
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script expects Debian; install the missing tools by hand"
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    _kraliki_apt_updated=1
}

apt_install() {
    apt_update_once
    log "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

# True when Debian's package lists know a candidate version of package $1.
apt_has_candidate() {
    local candidate
    candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')"
    [[ -n $candidate && $candidate != "(none)" ]]
}

tcp_open() { timeout 2 bash -c "</dev/tcp/$1/$2" >/dev/null 2>&1; }

# Waits until 127.0.0.1:$1 accepts TCP, for at most $2 seconds; polls, never sleeps blindly
# past success. $3, if given, is a pid that must stay alive meanwhile.
wait_for_port() {
    local port=$1 deadline=$((SECONDS + $2)) pid=${3:-}
    until tcp_open 127.0.0.1 "$port"; do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            # It exited: a failure unless it merely forked away (status 0).
            local rc=0
            wait "$pid" 2>/dev/null || rc=$?
            ((rc == 0)) || return 1
            pid=""
        fi
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Closes every inherited descriptor above 2, so that a daemon started from here does not
# hold a pipe of whoever runs this script (a CI harness waiting for end of output, say).
close_inherited_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        if ((fd > 2)); then
            eval "exec $fd>&-" 2>/dev/null || true
        fi
    done
}

# ---------------------------------------------------------------------------------------
# URLs. Never print one whole: it may carry a password. Print host:port/db only.

_kraliki_url_re='^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(/[^?#]*)?(\?[^#]*)?$'

# url_with_db URL DB: URL with its database (path) replaced by DB, query string kept.
url_with_db() {
    [[ $1 =~ $_kraliki_url_re ]] || die "cannot parse a database URL (not shown: it may hold a password)"
    printf '%s%s/%s%s' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "$2" "${BASH_REMATCH[4]}"
}

# url_redacted URL: host:port/db.
url_redacted() {
    if [[ $1 =~ $_kraliki_url_re ]]; then
        local authority=${BASH_REMATCH[2]} path=${BASH_REMATCH[3]}
        authority=${authority##*@}
        printf '%s%s' "${authority:-(default host)}" "$path"
    else
        printf 'unparsable URL'
    fi
}

# ---------------------------------------------------------------------------------------
# PostgreSQL

ensure_pg_client() {
    if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
        apt_install postgresql-client
    fi
}

pg_can_connect() { PGCONNECT_TIMEOUT=5 psql -w -X -q -tA -d "$1" -c 'select 1' >/dev/null 2>&1; }

# True when 127.0.0.1:$1 is a PostgreSQL that lets user postgres in without a password.
pg_trust_on_port() {
    local port=$1
    tcp_open 127.0.0.1 "$port" || return 1
    ensure_pg_client
    pg_isready -q -h 127.0.0.1 -p "$port" -t 5 || return 1
    PGCONNECT_TIMEOUT=5 psql -w -X -q -tA -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1
}

_kraliki_pg_use() {
    export KRALIKI_PG_ADMIN_URL="postgres://postgres@127.0.0.1:$1/postgres"
    export KRALIKI_PG_MANAGED=1
}

# pg_url_for_db NAME: the admin URL of ensure_postgres pointed at database NAME.
pg_url_for_db() { url_with_db "$KRALIKI_PG_ADMIN_URL" "$1"; }

pg_server_installed() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

# Highest installed major version's bin dir, or that of $1 (a PG_VERSION) when installed.
pg_bin_dir() {
    if [[ -n ${1:-} && -x /usr/lib/postgresql/$1/bin/postgres ]]; then
        printf '/usr/lib/postgresql/%s/bin' "$1"
        return
    fi
    local newest
    newest="$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)"
    [[ -x $newest ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
    printf '%s' "${newest%/postgres}"
}

# Starts (or reuses) the project-local cluster on 127.0.0.1:$KRALIKI_PG_LOCAL_PORT.
pg_local_cluster() {
    local datadir logfile port=$KRALIKI_PG_LOCAL_PORT
    local -a as_pg=()
    mkdir -p "$KRALIKI_STATE"
    if [[ $EUID -eq 0 ]]; then
        # initdb and pg_ctl refuse to run as root: run them as the postgres user.
        id postgres >/dev/null 2>&1 ||
            useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
        as_pg=(env -C / runuser -u postgres --)
        chmod go+x "$KRALIKI_STATE"
        if "${as_pg[@]}" test -x "$KRALIKI_STATE"; then
            datadir="$KRALIKI_STATE/pg"
            logfile="$KRALIKI_STATE/pg.log"
        else
            # The postgres user cannot reach the repository (it lives under /root, say, which
            # is 0700): keep the cluster outside it, under a name unique to this checkout.
            local hash
            hash="$(printf '%s' "$KRALIKI_REPO" | sha256sum | cut -c1-12)"
            datadir="/var/tmp/kraliki-pg-$hash"
            logfile="/var/tmp/kraliki-pg-$hash.log"
            log "postgres cannot traverse $KRALIKI_REPO: local cluster goes to $datadir"
        fi
        mkdir -p "$datadir"
        touch "$logfile"
        chown postgres:postgres "$datadir" "$logfile"
        chmod 700 "$datadir"
    else
        datadir="$KRALIKI_STATE/pg"
        logfile="$KRALIKI_STATE/pg.log"
        mkdir -p "$datadir"
        chmod 700 "$datadir"
    fi

    local bindir existing=""
    [[ -s $datadir/PG_VERSION ]] && existing="$(<"$datadir/PG_VERSION")"
    bindir="$(pg_bin_dir "$existing")"

    if [[ -z $existing ]]; then
        log "initdb $datadir ($bindir)"
        "${as_pg[@]}" "$bindir/initdb" -D "$datadir" --auth=trust -U postgres \
            --encoding=UTF8 --locale=C.UTF-8 >>"$logfile" 2>&1 ||
            die "initdb failed; see $logfile"
    fi

    if "${as_pg[@]}" "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
        # Already running (an earlier run started it): use the port it actually listens on.
        local running_port
        running_port="$(sed -n 4p "$datadir/postmaster.pid" 2>/dev/null || true)"
        [[ $running_port =~ ^[0-9]+$ ]] && port=$running_port
        log "reusing the local PostgreSQL cluster $datadir on 127.0.0.1:$port"
    else
        log "starting the local PostgreSQL cluster $datadir on 127.0.0.1:$port (log: $logfile)"
        (
            close_inherited_fds
            "${as_pg[@]}" "$bindir/pg_ctl" -D "$datadir" \
                -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=$KRALIKI_PG_MIN_CONNECTIONS" \
                -l "$logfile" -w -t 60 start >&2
        ) || {
            tail -n 20 "$logfile" >&2 || true
            die "could not start PostgreSQL on port $port (is the port taken? set KRALIKI_PG_LOCAL_PORT)"
        }
    fi
    ensure_pg_client
    pg_trust_on_port "$port" || die "local PostgreSQL on 127.0.0.1:$port does not accept user postgres; see $logfile"
    _kraliki_pg_use "$port"
}

# ensure_postgres [run|test]
# Exports KRALIKI_PG_ADMIN_URL (a URL to the 'postgres' database, for creating databases;
# see pg_url_for_db) and KRALIKI_PG_MANAGED (1 when this script picked or started the
# server, 0 when the URL came from the environment).
ensure_postgres() {
    local mode=${1:-run} given=""
    if [[ $mode == test && -n ${KRALIKI_TEST_DATABASE_URL:-} ]]; then
        given=$KRALIKI_TEST_DATABASE_URL
        log "PostgreSQL: KRALIKI_TEST_DATABASE_URL from the environment ($(url_redacted "$given"))"
        export KRALIKI_PG_ADMIN_URL="$given"
    elif [[ -n ${DATABASE_URL:-} ]]; then
        given=$DATABASE_URL
        export KRALIKI_PG_ADMIN_URL
        if [[ $mode == test ]]; then
            KRALIKI_PG_ADMIN_URL="$(url_with_db "$given" postgres)"
            log "PostgreSQL: derived from DATABASE_URL ($(url_redacted "$KRALIKI_PG_ADMIN_URL"))"
        else
            # The server gets DATABASE_URL unchanged; the admin URL is only informative here.
            KRALIKI_PG_ADMIN_URL="$( (url_with_db "$given" postgres) 2>/dev/null || true)"
            log "PostgreSQL: DATABASE_URL from the environment, used as is ($(url_redacted "$given"))"
        fi
    fi
    if [[ -n $given ]]; then
        export KRALIKI_PG_MANAGED=0
        local check=$KRALIKI_PG_ADMIN_URL
        [[ $mode == test ]] || check=$given
        if command -v psql >/dev/null 2>&1 && ! pg_can_connect "$check"; then
            warn "cannot connect to $(url_redacted "$check") (continuing anyway)"
        fi
        return 0
    fi

    local probe=$KRALIKI_PG_PORT_PROBE
    if pg_trust_on_port "$probe"; then
        log "PostgreSQL: using the server on 127.0.0.1:$probe"
        _kraliki_pg_use "$probe"
        return 0
    fi
    tcp_open 127.0.0.1 "$probe" &&
        log "PostgreSQL: 127.0.0.1:$probe answers but not as user postgres without a password; not using it"

    if ! pg_server_installed; then
        apt_install postgresql postgresql-contrib
        # Debian's package may have created and started a cluster on 5432 (not without an
        # init system, as in most containers); it only counts if it lets postgres in.
        if pg_trust_on_port "$probe"; then
            log "PostgreSQL: using the freshly installed server on 127.0.0.1:$probe"
            _kraliki_pg_use "$probe"
            return 0
        fi
    fi
    pg_local_cluster
}

# ensure_pg_connections: the tests run several servers at once, each with its pool and one
# connection per projection runner (about 30), so they need more than PostgreSQL's default of
# 100 connections. A server this script may manage (Debian's cluster on the probe port, run as
# root) is raised to KRALIKI_PG_MIN_CONNECTIONS and restarted; any other server is left alone
# and the tests run one at a time instead.
ensure_pg_connections() {
    local want=$KRALIKI_PG_MIN_CONNECTIONS have
    have="$(psql -w -X -tA -d "$KRALIKI_PG_ADMIN_URL" -c 'show max_connections' 2>/dev/null || echo 0)"
    ((have >= want)) && return 0
    local port cluster=""
    port="$(psql -w -X -tA -d "$KRALIKI_PG_ADMIN_URL" -c 'show port' 2>/dev/null || true)"
    if [[ $EUID -eq 0 && ${KRALIKI_PG_MANAGED:-0} == 1 ]] && command -v pg_lsclusters >/dev/null 2>&1; then
        cluster="$(pg_lsclusters --no-header 2>/dev/null | awk -v p="$port" '$3 == p {print $1 " " $2; exit}')"
    fi
    if [[ -n $cluster ]]; then
        log "PostgreSQL allows $have connections; raising it to $want and restarting cluster $cluster"
        psql -w -X -q -d "$KRALIKI_PG_ADMIN_URL" -c "ALTER SYSTEM SET max_connections = $want" >&2
        # shellcheck disable=SC2086 # "version name"
        pg_ctlcluster --skip-systemctl-redirect $cluster restart >&2 ||
            die "could not restart PostgreSQL cluster $cluster"
        local deadline=$((SECONDS + 60))
        until pg_can_connect "$KRALIKI_PG_ADMIN_URL"; do
            ((SECONDS < deadline)) || die "PostgreSQL did not come back after the restart"
            sleep 0.2
        done
    else
        warn "PostgreSQL allows only $have connections (want $want): running the tests one at a time"
        export RUST_TEST_THREADS=1
    fi
}

# ensure_database NAME: creates database NAME on the server of ensure_postgres if missing.
ensure_database() {
    local name=$1
    [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "unsupported database name: $name"
    [[ -n ${KRALIKI_PG_ADMIN_URL:-} ]] || die "ensure_database called before ensure_postgres"
    ensure_pg_client
    local q="select 1 from pg_database where datname = '$name'"
    if [[ "$(psql -w -X -d "$KRALIKI_PG_ADMIN_URL" -tAc "$q")" == 1 ]]; then
        log "database $name exists"
        return 0
    fi
    log "creating database $name"
    if ! psql -w -X -q -d "$KRALIKI_PG_ADMIN_URL" -c "CREATE DATABASE \"$name\"" >&2; then
        # Lost a race with a concurrent run? Fine if it exists now.
        [[ "$(psql -w -X -d "$KRALIKI_PG_ADMIN_URL" -tAc "$q")" == 1 ]] || die "could not create database $name"
    fi
}

# ---------------------------------------------------------------------------------------
# NATS (tests only)

# Exports KRALIKI_NATS_URL.
ensure_nats() {
    if [[ -n ${KRALIKI_TEST_NATS_URL:-} ]]; then
        export KRALIKI_NATS_URL="$KRALIKI_TEST_NATS_URL"
        log "NATS: KRALIKI_TEST_NATS_URL from the environment"
        return 0
    fi
    if [[ -n ${NATS_URL:-} ]]; then
        export KRALIKI_NATS_URL="$NATS_URL"
        log "NATS: NATS_URL from the environment"
        return 0
    fi
    if tcp_open 127.0.0.1 "$KRALIKI_NATS_PORT_PROBE"; then
        export KRALIKI_NATS_URL="nats://127.0.0.1:$KRALIKI_NATS_PORT_PROBE"
        log "NATS: using the server on 127.0.0.1:$KRALIKI_NATS_PORT_PROBE"
        return 0
    fi

    local port=$KRALIKI_NATS_LOCAL_PORT
    export KRALIKI_NATS_URL="nats://127.0.0.1:$port"
    if tcp_open 127.0.0.1 "$port"; then
        log "NATS: reusing the local server on 127.0.0.1:$port"
        return 0
    fi

    local bin
    bin="$(command -v nats-server 2>/dev/null || true)"
    [[ -z $bin && -x /usr/sbin/nats-server ]] && bin=/usr/sbin/nats-server
    if [[ -z $bin ]]; then
        apt_install nats-server
        bin="$(command -v nats-server 2>/dev/null || echo /usr/sbin/nats-server)"
        [[ -x $bin ]] || die "nats-server not found after installing it"
    fi
    # The package may start its own service on 4222 (not without an init system).
    if tcp_open 127.0.0.1 "$KRALIKI_NATS_PORT_PROBE"; then
        export KRALIKI_NATS_URL="nats://127.0.0.1:$KRALIKI_NATS_PORT_PROBE"
        log "NATS: using the freshly installed server on 127.0.0.1:$KRALIKI_NATS_PORT_PROBE"
        return 0
    fi

    local dir="$KRALIKI_STATE/nats" logfile="$KRALIKI_STATE/nats.log" pid
    mkdir -p "$dir"
    log "NATS: starting a local server with JetStream on 127.0.0.1:$port (log: $logfile)"
    (
        close_inherited_fds
        exec setsid "$bin" -a 127.0.0.1 -p "$port" -js -sd "$dir" -P "$KRALIKI_STATE/nats.pid" \
            </dev/null >>"$logfile" 2>&1
    ) &
    pid=$!
    if ! wait_for_port "$port" 20 "$pid"; then
        tail -n 20 "$logfile" >&2 || true
        die "NATS did not come up on 127.0.0.1:$port (it exited, or 20 s passed)"
    fi
}

# ---------------------------------------------------------------------------------------
# Rust toolchain

_kraliki_version_lt() { [[ $1 != "$2" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" == "$1" ]]; }

ensure_toolchain() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
        export PATH="${HOME:-/root}/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        apt_update_once
        # Debian 12's 'cargo'/'rustc' are 1.63; 'cargo-web'/'rustc-web' (bookworm updates)
        # are recent and install as /usr/bin/cargo and /usr/bin/rustc. Prefer those.
        if apt_has_candidate cargo-web && apt_has_candidate rustc-web; then
            apt_install cargo-web rustc-web gcc pkg-config
        else
            apt_install cargo rustc gcc pkg-config
        fi
        warn "installed Debian's Rust toolchain; it may be older than the workspace's rust-version"
    fi
    command -v gcc >/dev/null 2>&1 || apt_install build-essential

    local want have
    want="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$KRALIKI_REPO/Cargo.toml" | head -n 1)"
    have="$(rustc --version 2>/dev/null | awk '{print $2}')"
    have=${have%%-*}
    log "toolchain: $(cargo --version 2>/dev/null || echo 'cargo ?'), rustc ${have:-?}"
    if [[ -n $want && -n $have ]] && _kraliki_version_lt "$have" "$want"; then
        warn "rustc $have is older than the workspace's rust-version $want: the build will likely fail"
    fi
}

# The test tools' Python packages, at exact versions (the SDK oracles validate against what
# these releases accept): a new release on PyPI changes a test run only through a commit here.
# Every package of the environment is pinned, dependencies included (pydantic decides what the
# strict oracles accept). Changing this list rebuilds .data/venv from scratch.
KRALIKI_TEST_REQUIREMENTS=(
    aiohappyeyeballs==2.7.1
    aiohttp==3.14.5
    aiohttp-retry==2.9.1
    aiosignal==1.4.0
    annotated-types==0.8.0
    anyio==4.16.0
    attrs==26.1.0
    certifi==2026.10.19.post1
    cffi==2.1.1
    charset-normalizer==3.5.3
    click==8.5.1
    cryptography==50.0.2
    deepgram-sdk==7.17.0
    distro==1.9.0
    frozenlist==1.8.0
    google-auth==2.63.0
    google-genai==3.6.1
    graphql-core==3.3.2
    h11==0.16.0
    harfile==0.6.0
    httpcore==1.0.9
    httpcore2==2.16.2
    httpx==0.29.0
    httpx2==2.16.2
    hypothesis==6.170.17
    hypothesis-graphql==0.13.5
    idna==3.20
    iniconfig==2.3.1
    jiter==0.19.0
    jsonschema==4.26.0
    jsonschema-path==0.5.0
    jsonschema_rs==0.60.3
    jsonschema-specifications==2025.9.1
    lazy-object-proxy==1.13.0
    markdown-it-py==4.3.0
    MarkupSafe==3.0.4
    mdurl==0.1.2
    multidict==7.2.1
    openai==3.57.0
    openapi-schema-validator==0.9.0
    openapi-spec-validator==0.9.0
    packaging==26.4
    pathable==0.6.0
    pluggy==1.7.0
    propcache==0.5.4
    pyasn1==0.6.5
    pyasn1_modules==0.4.2
    pycparser==3.12
    pydantic==2.14.4
    pydantic_core==2.50.5
    pydantic-settings==2.16.3
    Pygments==2.21.0
    PyJWT==2.15.1
    pyrate-limiter==4.6.0
    pytest==9.2.0
    python-dotenv==1.2.4
    PyYAML==6.0.4
    referencing==0.37.0
    requests==2.34.2
    rfc3339-validator==0.1.4
    rich==15.0.0
    rpds-py==2026.9.1
    schemathesis==4.32.5
    six==1.17.0
    sniffio==1.3.1
    sortedcontainers==2.4.0
    telnyx==4.189.0
    tenacity==9.1.4
    truststore==0.10.5
    twilio==9.13.0
    typing_extensions==4.16.0
    typing-inspection==0.4.5
    urllib3==2.8.0
    websockets==17.4
    Werkzeug==3.1.9
    yarl==1.25.1
)

# Test tools outside Rust: a Python virtual environment (under .data/) with the OpenAPI
# validator, schemathesis and the provider SDKs (openapi-spec-validator; twilio's RequestValidator, openai's
# realtime types, google-genai's LiveClientMessage, telnyx and deepgram-sdk as oracles),
# Debian's Chromium for the /docs browser test and promtool (Debian's prometheus package) for
# the metrics and alert-rule tests. Exports KRALIKI_TEST_PYTHON, KRALIKI_TEST_CHROMIUM and
# KRALIKI_TEST_PROMTOOL.
ensure_test_tools() {
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-venv
    fi
    local venv="$KRALIKI_REPO/.data/venv"
    # The stamp holds the requirement list the environment was built from.
    local stamp="$venv/.kraliki-requirements" wanted
    wanted="$(printf '%s\n' "${KRALIKI_TEST_REQUIREMENTS[@]}")"
    if [[ ! -x $venv/bin/python || ! -f $stamp || "$(<"$stamp")" != "$wanted" ]]; then
        log "building .data/venv with the pinned test tools (PyPI)"
        rm -rf "$venv"
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            apt_install python3-venv
            rm -rf "$venv"
            python3 -m venv "$venv"
        fi
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${KRALIKI_TEST_REQUIREMENTS[@]}" ||
            die "could not install the pinned test tools into .data/venv"
        printf '%s\n' "$wanted" >"$stamp"
    fi
    export KRALIKI_TEST_PYTHON="$venv/bin/python"
    local chromium
    chromium=$(command -v chromium || command -v chromium-browser || true)
    if [[ -z $chromium ]]; then
        apt_install chromium
        chromium=$(command -v chromium)
    fi
    export KRALIKI_TEST_CHROMIUM="$chromium"
    local promtool
    promtool=$(command -v promtool || true)
    if [[ -z $promtool ]]; then
        # Debian ships promtool only inside the server package (on a machine with systemd it
        # also enables a prometheus service the tests never use); no recommended exporters.
        apt_install --no-install-recommends prometheus
        promtool=$(command -v promtool)
    fi
    export KRALIKI_TEST_PROMTOOL="$promtool"
}
