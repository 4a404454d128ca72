# shellcheck shell=bash
# Sourced by scripts/compose-test (after scripts/lib/services.sh, for say and fail).
#
# `ensure_docker` finds a Docker engine that answers and a compose command, or gets
# them: Debian's docker.io, docker-compose and debootstrap installed with apt-get (as
# root, or with sudo that asks no password), and dockerd started in the background
# where no service manager runs one. It sets DOCKER (the client) and COMPOSE (the
# compose command, `docker compose` or `docker-compose`).
#
# `ensure_base_images` makes sure the public images the Dockerfile and the compose file
# name are there: pulled when a registry answers, else built as local stand-ins by
# LOCAL_IMAGES_BUILD (a build.sh that tags them with the official names; looked for at
# ../shared/tools/local-images/build.sh beside the checkout, or beside the repository
# it was cloned from, when unset).
#
# Each says exactly what is missing when it cannot go on, and fails.

# The images the Dockerfile and docker-compose.yml (with its cluster profile) use.
BASE_IMAGES=(debian:bookworm-slim rust:1.95-slim-bookworm postgres:16-alpine redis:7.2-alpine
    redis:7.2-bookworm axllent/mailpit:v1.21)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

install_docker_packages() {
    command -v apt-get >/dev/null 2>&1 || return 1
    say "Docker: installing Debian's docker.io, docker-compose and debootstrap (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y --no-install-recommends docker.io docker-compose debootstrap >&2 ||
        { as_root apt-get update >&2 &&
            as_root apt-get install -y --no-install-recommends docker.io docker-compose debootstrap >&2; }
}

# The client that talks to the engine: Debian's when installed (its build command has
# BuildKit built in), else the first on PATH.
find_docker_client() {
    if [ -x /usr/bin/docker ]; then
        printf '%s\n' /usr/bin/docker
    else
        command -v docker 2>/dev/null || true
    fi
}

start_dockerd() {
    command -v dockerd >/dev/null 2>&1 || return 1
    say "Docker: starting dockerd (log: ${TMPDIR:-/tmp}/switchyard-dockerd.log)"
    as_root sh -c "nohup dockerd > '${TMPDIR:-/tmp}/switchyard-dockerd.log' 2>&1 &" || return 1
    local _
    for _ in $(seq 1 60); do
        "$DOCKER" info >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

ensure_docker() {
    DOCKER="$(find_docker_client)"
    # Install when there is no client, or no engine answers and none can be started.
    if [ -z "$DOCKER" ] ||
        { ! "$DOCKER" info >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; }; then
        install_docker_packages ||
            fail "no Docker engine: install Docker (Debian: apt-get install docker.io docker-compose debootstrap) and start it, or run as root so this script can"
        DOCKER="$(find_docker_client)"
    fi
    if ! "$DOCKER" info >/dev/null 2>&1; then
        start_dockerd ||
            fail "the Docker engine does not answer ($DOCKER info fails) and dockerd could not be started here: start it (systemctl start docker, or dockerd &) and run again"
    fi
    if "$DOCKER" compose version >/dev/null 2>&1; then
        COMPOSE=("$DOCKER" compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose)
        # docker-compose 1.x builds through the docker client, with BuildKit.
        export COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1
        PATH="$(dirname "$DOCKER"):$PATH"
        export PATH
    else
        install_docker_packages && command -v docker-compose >/dev/null 2>&1 ||
            fail "no compose command: install Docker Compose (the compose plugin, or Debian's docker-compose)"
        COMPOSE=(docker-compose)
        export COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1
    fi
    say "Docker: $("$DOCKER" version --format 'engine {{.Server.Version}}' 2>/dev/null), $("${COMPOSE[@]}" version --short 2>/dev/null || echo compose)"
}

missing_base_images() {
    local image
    for image in "${BASE_IMAGES[@]}"; do
        "$DOCKER" image inspect "$image" >/dev/null 2>&1 || printf '%s\n' "$image"
    done
}

# LOCAL_IMAGES_BUILD, else ../shared/tools/local-images/build.sh beside this checkout or
# beside the repository it was cloned from (a clone in /tmp of a local checkout).
find_local_images_build() {
    local origin candidate
    origin="$(git config --get remote.origin.url 2>/dev/null || true)"
    for candidate in "${LOCAL_IMAGES_BUILD:-}" "$PWD/../shared/tools/local-images/build.sh" \
        "${origin:+$origin/../shared/tools/local-images/build.sh}"; do
        if [ -n "$candidate" ] && [ -f "$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
}

ensure_base_images() {
    local missing image build
    missing="$(missing_base_images)"
    [ -z "$missing" ] && return 0
    for image in $missing; do
        timeout 60 "$DOCKER" pull -q "$image" >/dev/null 2>&1 || break
    done
    missing="$(missing_base_images)"
    [ -z "$missing" ] && return 0
    build="$(find_local_images_build)"
    [ -n "$build" ] ||
        fail "these images cannot be pulled (no registry answers) and no stand-ins are at hand: $(echo "$missing" | tr '\n' ' ')(set LOCAL_IMAGES_BUILD to a build.sh that makes them)"
    command -v debootstrap >/dev/null 2>&1 || install_docker_packages ||
        fail "the local stand-in images need debootstrap (apt-get install debootstrap)"
    say "Docker: no registry answers; building local stand-ins for $(echo "$missing" | tr '\n' ' ')($build)"
    DOCKER="$DOCKER" bash "$build" >&2
    missing="$(missing_base_images)"
    [ -z "$missing" ] || fail "still missing after $build: $missing"
}
