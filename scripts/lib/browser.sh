# shellcheck shell=bash
# Sourced by scripts/test (after scripts/lib/services.sh, for say and fail).
# `ensure_browser` exports CHROMIUM and CHROMEDRIVER for the ops console's browser tests:
# the binaries those variables name when set, else Debian's chromium and chromedriver,
# installed with apt-get (as root, or with sudo that asks no password) when missing.

find_chromium() {
    if [ -n "${CHROMIUM:-}" ]; then
        [ -x "$CHROMIUM" ] && printf '%s\n' "$CHROMIUM"
        return 0
    fi
    local candidate
    for candidate in /usr/bin/chromium "$(command -v chromium 2>/dev/null)" "$(command -v chromium-browser 2>/dev/null)"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
}

find_chromedriver() {
    if [ -n "${CHROMEDRIVER:-}" ]; then
        [ -x "$CHROMEDRIVER" ] && printf '%s\n' "$CHROMEDRIVER"
        return 0
    fi
    command -v chromedriver 2>/dev/null || true
}

install_browser() {
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            return 1
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || return 1
    say "Browser: installing Debian's chromium and chromium-driver (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get install -y --no-install-recommends chromium chromium-driver >&2 ||
        { "${as_root[@]}" apt-get update >&2 &&
            "${as_root[@]}" apt-get install -y --no-install-recommends chromium chromium-driver >&2; }
}

ensure_browser() {
    local chromium chromedriver
    chromium=$(find_chromium)
    chromedriver=$(find_chromedriver)
    if [ -z "$chromium" ] || [ -z "$chromedriver" ]; then
        if [ -n "${CHROMIUM:-}${CHROMEDRIVER:-}" ]; then
            fail "CHROMIUM (${CHROMIUM:-unset}) or CHROMEDRIVER (${CHROMEDRIVER:-unset}) names no executable"
        fi
        install_browser || fail "the console's browser tests need Chromium and ChromeDriver, and they could not be installed.
  Install them (Debian/Ubuntu: apt-get install chromium chromium-driver),
  or set CHROMIUM and CHROMEDRIVER to a Chromium and the ChromeDriver of its version."
        chromium=$(find_chromium)
        chromedriver=$(find_chromedriver)
        [ -n "$chromium" ] && [ -n "$chromedriver" ] || fail "chromium or chromedriver still missing after the install"
    fi
    export CHROMIUM="$chromium" CHROMEDRIVER="$chromedriver"
    say "Browser: $("$chromium" --version 2>/dev/null | head -1) with $("$chromedriver" --version 2>/dev/null | cut -d' ' -f1-2)"
}
