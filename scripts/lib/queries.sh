# The databases the SQL query macros (sqlx::query!) check every statement against at
# compile time, one a crate, each built from the same files its service migrates with.
# Sourced by scripts/test and scripts/prepare-queries, after scripts/lib/services.sh and
# ensure_postgres (TEST_DATABASE_URL names a server where databases can be created).
#
# Without these variables the macros read the offline data committed in .sqlx/, so a
# build with no database at hand (Docker, a fresh clone) compiles the same statements.

BUS_SCHEMA=crates/event-bus/schema.sql

# crate directory | the variable its sqlx.toml names | the SQL files of its schema, in order
QUERY_SCHEMAS=(
    # The bus's tables, and the table a saga participant keeps its early cancellations in
    # (remember_cancelled writes it; inventory's and payment's migrations create it).
    "crates/event-bus|EVENT_BUS_QUERIES_URL|$BUS_SCHEMA migrations/inventory/20261126000002_cancelled_orders.sql"
    "crates/service-kit|SERVICE_KIT_QUERIES_URL|"
    "services/user|USER_QUERIES_URL|$BUS_SCHEMA migrations/user/*.sql"
    "services/inventory|INVENTORY_QUERIES_URL|$BUS_SCHEMA migrations/inventory/*.sql"
    "services/payment|PAYMENT_QUERIES_URL|$BUS_SCHEMA migrations/payment/*.sql"
    "services/order|ORDER_QUERIES_URL|$BUS_SCHEMA migrations/order/*.sql"
    "services/notification|NOTIFICATION_QUERIES_URL|$BUS_SCHEMA migrations/notification/*.sql"
)

# with_database URL NAME: URL naming database NAME on the same server.
with_database() {
    local url="$1" name="$2" query=""
    case "$url" in *\?*) query="?${url#*\?}"; url="${url%%\?*}" ;; esac
    local rest="${url#*://}"
    case "$rest" in
        */*) echo "${url%/*}/$name$query" ;;
        *) echo "$url/$name$query" ;;
    esac
}

# query_database DIR: the name of the database of the crate in DIR.
query_database() {
    echo "switchyard_queries_$(basename "$1" | tr - _)"
}

# prepare_query_databases: (re)creates each crate's database from its schema files and
# exports the variable its sqlx.toml names.
prepare_query_databases() {
    command -v psql >/dev/null 2>&1 || fail "psql is not installed (Debian/Ubuntu: apt-get install postgresql-client)"
    local entry dir var files db url file
    for entry in "${QUERY_SCHEMAS[@]}"; do
        IFS='|' read -r dir var files <<<"$entry"
        db=$(query_database "$dir")
        PGOPTIONS="-c client_min_messages=warning" psql "$TEST_DATABASE_URL" -qX -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null \
            || fail "could not create the query-check database $db on $TEST_DATABASE_URL"
        url=$(with_database "$TEST_DATABASE_URL" "$db")
        for file in $files; do
            psql "$url" -qX -v ON_ERROR_STOP=1 -f "$file" >/dev/null \
                || fail "$file did not apply to the query-check database $db"
        done
        export "$var=$url"
    done
}

# touch_query_crates: makes cargo compile every crate with queries again, so each macro
# runs (and writes its data) whatever an earlier build left.
touch_query_crates() {
    local entry dir
    for entry in "${QUERY_SCHEMAS[@]}"; do
        dir="${entry%%|*}"
        touch "$dir"/src/lib.rs
    done
}

# write_query_data DIR CARGO-ARGS...: runs cargo (check or clippy) with every macro
# checking its statements against the databases above and writing its offline data
# into DIR (emptied first).
write_query_data() {
    local dir="$1"
    shift
    rm -rf "$dir"
    mkdir -p "$dir"
    touch_query_crates
    SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$dir" cargo "$@"
}

# compare_query_data DIR: fails unless DIR holds exactly the offline data in .sqlx/.
compare_query_data() {
    local dir="$1"
    if ! diff -rq .sqlx "$dir" >/dev/null 2>&1; then
        diff -rq .sqlx "$dir" >&2 || true
        fail "the offline query data in .sqlx/ is not what the SQL in the code describes: run ./scripts/prepare-queries and commit .sqlx/"
    fi
}

# forget_query_databases: drops the databases; from here on the macros read .sqlx/
# only, as a build without a database does (Docker, a fresh clone).
forget_query_databases() {
    local entry dir var files
    for entry in "${QUERY_SCHEMAS[@]}"; do
        IFS='|' read -r dir var files <<<"$entry"
        psql "$TEST_DATABASE_URL" -qX -c "DROP DATABASE IF EXISTS $(query_database "$dir") WITH (FORCE)" >/dev/null || true
        unset "$var"
    done
    export SQLX_OFFLINE=true
}
