# Finds PostgreSQL and Redis for the test suite, or starts throwaway ones.
#
# Sourced by scripts/test. After `ensure_postgres` and `ensure_redis`,
# TEST_DATABASE_URL and TEST_REDIS_URL name servers that answer; after
# `ensure_redis_cluster`, TEST_REDIS_CLUSTER_URL names a Redis Cluster. Servers this file
# starts live in one temporary directory and are stopped, and the directory removed,
# by `stop_services` (scripts/test runs it on every exit, Ctrl-C included).

SERVICES_TMP=""
# Where an already running server is looked for, and where Debian keeps PostgreSQL's
# server binaries; overridable so the script's own tests can aim at nothing.
PG_DEFAULT_PORT="${SWITCHYARD_PG_DEFAULT_PORT:-5432}"
REDIS_DEFAULT_PORT="${SWITCHYARD_REDIS_DEFAULT_PORT:-6379}"
PG_LIB_DIR="${SWITCHYARD_PG_LIB_DIR:-/usr/lib/postgresql}"
STARTED_PG_DATA=""
STARTED_PG_USER=""
STARTED_REDIS_PID=""
STARTED_CLUSTER_PIDS=()
STARTED_PG_CTL=""
STARTED_PG_URL=""

say() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# tcp_open HOST PORT: does something accept connections there?
tcp_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# free_port: a port nothing listens on, below the kernel's range for outgoing
# connections (32768 and up on Linux): a port from that range can be taken by any
# connection made between the check and the server's bind, as a busy test run makes
# thousands.
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$(( 20000 + RANDOM % 12000 ))
        if ! tcp_open 127.0.0.1 "$port"; then
            echo "$port"
            return 0
        fi
    done
    fail "no free port found"
}

# url_host_port URL: "host port" of a postgres:// or redis:// URL (defaults filled in);
# of a redis+cluster:// URL, its first node's.
url_host_port() {
    local rest="${1#*://}"
    rest="${rest%%,*}"
    rest="${rest%%/*}"
    rest="${rest%%\?*}"
    rest="${rest##*@}"
    local host="${rest%%:*}" port=""
    [ "$host" != "$rest" ] && port="${rest##*:}"
    case "$1" in
        postgres*) port="${port:-5432}" ;;
        redis*) port="${port:-6379}" ;;
    esac
    echo "${host:-127.0.0.1} $port"
}

services_tmp() {
    if [ -z "$SERVICES_TMP" ]; then
        SERVICES_TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-test.XXXXXX")
        chmod 755 "$SERVICES_TMP"
    fi
}

# find_pg_bin NAME: the path of a PostgreSQL server binary, from PATH or Debian's layout.
find_pg_bin() {
    if command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
        return 0
    fi
    local candidate
    for candidate in $(ls -d "$PG_LIB_DIR"/*/bin 2>/dev/null | sort -Vr); do
        if [ -x "$candidate/$1" ]; then
            echo "$candidate/$1"
            return 0
        fi
    done
    return 1
}

ensure_postgres() {
    if [ -n "${TEST_DATABASE_URL:-}" ]; then
        read -r host port <<<"$(url_host_port "$TEST_DATABASE_URL")"
        tcp_open "$host" "$port" || fail "TEST_DATABASE_URL names $host:$port, where no PostgreSQL answers"
        say "PostgreSQL: using TEST_DATABASE_URL ($host:$port)"
        return 0
    fi
    if tcp_open 127.0.0.1 "$PG_DEFAULT_PORT"; then
        export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_DEFAULT_PORT/postgres"
        say "PostgreSQL: using the server on 127.0.0.1:$PG_DEFAULT_PORT"
        return 0
    fi

    local initdb pg_ctl
    initdb=$(find_pg_bin initdb) && pg_ctl=$(find_pg_bin pg_ctl) || fail "no PostgreSQL answers on 127.0.0.1:$PG_DEFAULT_PORT and its server binaries (initdb, pg_ctl) are not installed.
  Install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql),
  or start the project's own: docker compose up -d postgres redis,
  or point TEST_DATABASE_URL at a server (e.g. postgres://postgres@127.0.0.1:5432/postgres)."

    services_tmp
    start_postgres "$SERVICES_TMP/postgres" "$initdb" "$pg_ctl" \
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    export TEST_DATABASE_URL="$STARTED_PG_URL"
}

# start_postgres DATA INITDB PG_CTL OPTIONS: a throwaway server in DATA on a free port,
# with OPTIONS added to its command line; STARTED_PG_URL names it. `stop_services` stops
# it (one a run).
start_postgres() {
    local data="$1" initdb="$2" pg_ctl="$3" options="$4" port
    port=$(free_port)
    mkdir -p "$data"
    # PostgreSQL refuses to run as root: run it as an unprivileged user then.
    local run=()
    if [ "$(id -u)" = 0 ]; then
        STARTED_PG_USER=postgres
        id postgres >/dev/null 2>&1 || STARTED_PG_USER=nobody
        chown -R "$STARTED_PG_USER" "$data"
        run=(runuser -u "$STARTED_PG_USER" --)
    fi
    say "PostgreSQL: starting a throwaway server on 127.0.0.1:$port ($initdb)"
    "${run[@]}" "$initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync >"$data.initdb.log" 2>&1 \
        || { cat "$data.initdb.log" >&2; fail "initdb failed"; }
    "${run[@]}" "$pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
        -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=300 $options" \
        start >/dev/null || { cat "$data/server.log" >&2; fail "PostgreSQL did not start"; }
    STARTED_PG_DATA="$data"
    STARTED_PG_CTL="$pg_ctl"
    STARTED_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# start_bench_postgres: a throwaway server for measuring, with PostgreSQL's defaults
# (every commit waits for the disk) and pg_stat_statements loaded, so the database
# itself counts what the services ask of it; BENCH_DATABASE_URL names it.
start_bench_postgres() {
    local initdb pg_ctl
    initdb=$(find_pg_bin initdb) && pg_ctl=$(find_pg_bin pg_ctl) \
        || fail "the benchmarks start a PostgreSQL of their own and need its server binaries (initdb, pg_ctl).
  Install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql)."
    [ -z "$STARTED_PG_DATA" ] || fail "a throwaway PostgreSQL is already running for this run"
    services_tmp
    start_postgres "$SERVICES_TMP/bench-postgres" "$initdb" "$pg_ctl" \
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=10000"
    export BENCH_DATABASE_URL="$STARTED_PG_URL"
    psql "$BENCH_DATABASE_URL" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null \
        || fail "pg_stat_statements could not be created (Debian ships it with the server: postgresql-contrib on older releases)"
}

ensure_redis() {
    if [ -n "${TEST_REDIS_URL:-}" ]; then
        read -r host port <<<"$(url_host_port "$TEST_REDIS_URL")"
        tcp_open "$host" "$port" || fail "TEST_REDIS_URL names $host:$port, where no Redis answers"
        say "Redis: using TEST_REDIS_URL ($host:$port)"
        return 0
    fi
    if tcp_open 127.0.0.1 "$REDIS_DEFAULT_PORT"; then
        export TEST_REDIS_URL="redis://127.0.0.1:$REDIS_DEFAULT_PORT"
        say "Redis: using the server on 127.0.0.1:$REDIS_DEFAULT_PORT"
        return 0
    fi
    command -v redis-server >/dev/null 2>&1 || fail "no Redis answers on 127.0.0.1:$REDIS_DEFAULT_PORT and redis-server is not installed.
  Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis),
  or start the project's own: docker compose up -d postgres redis,
  or point TEST_REDIS_URL at a server (e.g. redis://127.0.0.1:6379)."

    services_tmp
    local port
    port=$(free_port)
    say "Redis: starting a throwaway server on 127.0.0.1:$port"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$SERVICES_TMP" --logfile "$SERVICES_TMP/redis.log" &
    STARTED_REDIS_PID=$!
    for _ in $(seq 1 100); do
        tcp_open 127.0.0.1 "$port" && break
        kill -0 "$STARTED_REDIS_PID" 2>/dev/null || fail "redis-server exited at start: $(cat "$SERVICES_TMP/redis.log" 2>/dev/null)"
        sleep 0.1
    done
    tcp_open 127.0.0.1 "$port" || fail "Redis did not start"
    export TEST_REDIS_URL="redis://127.0.0.1:$port"
}

# cluster_port: a free port whose cluster bus port (the port + 10000) is free too,
# both below the kernel's range for outgoing connections.
cluster_port() {
    local port
    for _ in $(seq 1 50); do
        port=$(( 20000 + RANDOM % 2500 ))
        if ! tcp_open 127.0.0.1 "$port" && ! tcp_open 127.0.0.1 $(( port + 10000 )); then
            echo "$port"
            return 0
        fi
    done
    fail "no free port pair found for a Redis Cluster node"
}

# ensure_redis_cluster: TEST_REDIS_CLUSTER_URL names a Redis Cluster that answers: the
# one it already named, or a throwaway one started here (3 masters, a replica each,
# from the installed redis-server and redis-cli), stopped by `stop_services`.
ensure_redis_cluster() {
    if [ -n "${TEST_REDIS_CLUSTER_URL:-}" ]; then
        say "Redis Cluster: using TEST_REDIS_CLUSTER_URL"
        return 0
    fi
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 \
        || fail "the tests on a Redis Cluster need redis-server and redis-cli, which are not installed.
  Install them (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis),
  or point TEST_REDIS_CLUSTER_URL at a cluster (e.g. redis+cluster://127.0.0.1:7000,127.0.0.1:7001)."
    services_tmp
    local ports=() port node
    for _ in 1 2 3 4 5 6; do
        port=$(cluster_port)
        node="$SERVICES_TMP/cluster-$port"
        mkdir -p "$node"
        redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
            --cluster-config-file "$node/nodes.conf" --cluster-node-timeout 2000 \
            --save "" --appendonly no --dir "$node" --logfile "$node/redis.log" &
        STARTED_CLUSTER_PIDS+=($!)
        ports+=("$port")
    done
    for port in "${ports[@]}"; do
        for _ in $(seq 1 100); do
            tcp_open 127.0.0.1 "$port" && break
            sleep 0.1
        done
        tcp_open 127.0.0.1 "$port" || fail "a Redis Cluster node did not start on $port: $(cat "$SERVICES_TMP/cluster-$port/redis.log" 2>/dev/null)"
    done
    say "Redis Cluster: starting 3 masters and 3 replicas on 127.0.0.1:${ports[*]}"
    local nodes=()
    for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
        >"$SERVICES_TMP/cluster-create.log" 2>&1 \
        || { cat "$SERVICES_TMP/cluster-create.log" >&2; fail "redis-cli --cluster create failed"; }
    # Formed: every node says the cluster is ok, and every replica has synced.
    local ready="" synced
    for _ in $(seq 1 300); do
        ready=yes
        synced=0
        for port in "${ports[@]}"; do
            redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ready=""
            if redis-cli -p "$port" info replication 2>/dev/null | grep -q 'master_link_status:up'; then
                synced=$(( synced + 1 ))
            fi
        done
        [ "$synced" = 3 ] || ready=""
        [ -n "$ready" ] && break
        sleep 0.1
    done
    [ -n "$ready" ] || fail "the Redis Cluster did not come up; see $SERVICES_TMP/cluster-*/redis.log"
    export TEST_REDIS_CLUSTER_URL="redis+cluster://${nodes[0]},${nodes[1]},${nodes[2]}"
}

stop_services() {
    local pid
    for pid in "${STARTED_CLUSTER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    STARTED_CLUSTER_PIDS=()
    if [ -n "$STARTED_PG_DATA" ]; then
        local run=()
        [ -n "$STARTED_PG_USER" ] && run=(runuser -u "$STARTED_PG_USER" --)
        "${run[@]}" "$STARTED_PG_CTL" -D "$STARTED_PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
        STARTED_PG_DATA=""
    fi
    if [ -n "$STARTED_REDIS_PID" ]; then
        kill "$STARTED_REDIS_PID" 2>/dev/null || true
        wait "$STARTED_REDIS_PID" 2>/dev/null || true
        STARTED_REDIS_PID=""
    fi
    if [ -n "$SERVICES_TMP" ]; then
        rm -rf "$SERVICES_TMP"
        SERVICES_TMP=""
# Where an already running server is looked for, and where Debian keeps PostgreSQL's
# server binaries; overridable so the script's own tests can aim at nothing.
PG_DEFAULT_PORT="${SWITCHYARD_PG_DEFAULT_PORT:-5432}"
REDIS_DEFAULT_PORT="${SWITCHYARD_REDIS_DEFAULT_PORT:-6379}"
PG_LIB_DIR="${SWITCHYARD_PG_LIB_DIR:-/usr/lib/postgresql}"
    fi
}
