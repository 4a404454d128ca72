# Python tools the checks need, each installed from PyPI into a virtual environment of
# its own under $SWITCHYARD_TOOLS (default ~/.cache/switchyard-tools), once.
#
# Sourced by scripts/check-deploy and scripts/test; needs `say` and `fail`.

tools="${SWITCHYARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard-tools}"

# venv NAME PACKAGE...: installs the packages into the environment NAME unless it is
# ready already, and prints its bin directory.
venv() {
    local dir="$tools/$1"
    shift
    local python
    python="$(command -v python3 || true)"
    [ -n "$python" ] || fail "python3 is missing: install Python 3.9+ (with venv) for $*"
    if [ ! -f "$dir/.ready" ]; then
        say "installing $* into $dir"
        rm -rf "$dir"
        "$python" -m venv "$dir" >&2 || fail "python3 -m venv failed: install the python3-venv package"
        "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2 \
            || fail "could not install $* from PyPI"
        touch "$dir/.ready"
    fi
    printf '%s/bin' "$dir"
}

# npm_tool NAME PACKAGE@VERSION...: installs npm packages into the folder NAME (Node.js
# and npm from the system) unless it is ready already, and prints that folder.
npm_tool() {
    local dir="$tools/$1"
    shift
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
        || fail "node and npm are missing: install Node.js 18+ (Debian: nodejs npm) for $*"
    if [ ! -f "$dir/.ready" ]; then
        say "installing $* into $dir"
        rm -rf "$dir"
        mkdir -p "$dir"
        npm install --prefix "$dir" --silent --no-audit --no-fund "$@" >&2 \
            || fail "could not install $* from the npm registry"
        touch "$dir/.ready"
    fi
    printf '%s' "$dir"
}
