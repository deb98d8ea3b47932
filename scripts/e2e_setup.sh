#!/usr/bin/env bash
# Install what the e2e suite (tests/e2e) needs on a fresh Debian machine; safe to run again.
#   - PostgreSQL server binaries (the suite runs a private cluster; the distro's own cluster is not created)
#   - Debian's chromium (headless, for the UI screenshot)
#   - node + npm, and tests/e2e's npm dependencies (playwright-core, from package-lock.json)
#   - redis-server (the Celery configuration's broker; the suite starts its own on a free port, the
#     distro's service is neither enabled nor started)
# Called by .ci/run before `make compat-ci` (its Airflow 2.11 case needs PostgreSQL) and `make e2e`.
# Needs root (or sudo) only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

E2E_DIR=tests/e2e
APT_UPDATED=0

log() { printf 'e2e-setup: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run: $*" >&2
        exit 1
    fi
}

apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root apt-get update -q
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confold "$@"
}

have_pg_server() {
    compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

# PostgreSQL: only the binaries are needed. Tell postgresql-common not to create (and start) the
# distro's "main" cluster on port 5432: the suite starts its own on a free port.
if have_pg_server; then
    log "postgresql: present ($(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' '))"
else
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        as_root mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    log "postgresql: installing"
    apt_install postgresql
fi
command -v runuser >/dev/null 2>&1 || apt_install util-linux

# Chromium (Debian's package; playwright-core drives it, it never downloads a browser).
if [ -x /usr/bin/chromium ]; then
    log "chromium: present ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
else
    log "chromium: installing"
    apt_install chromium fonts-liberation
fi

# node + npm (playwright-core 1.61 needs node >= 18: Debian 12's nodejs is 18).
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    log "node: present ($(node --version), npm $(npm --version))"
else
    log "node/npm: installing"
    apt_install nodejs npm
fi

# Redis (Debian's package) for the Celery configuration (tests/e2e/test_e2e_celery.py). policy-rc.d
# answering 101 keeps the package's postinst from starting the distro service; the suite runs its
# own redis-server on a free loopback port with its own dir and stops it.
if command -v redis-server >/dev/null 2>&1; then
    log "redis-server: present ($(redis-server --version | head -1))"
else
    log "redis-server: installing (the distro service is not started)"
    POLICY=/usr/sbin/policy-rc.d
    ADDED_POLICY=0
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$POLICY" >/dev/null
        as_root chmod 755 "$POLICY"
        ADDED_POLICY=1
    fi
    status=0
    apt_install redis-server || status=$?
    if [ "$ADDED_POLICY" -eq 1 ]; then as_root rm -f "$POLICY"; fi
    if [ "$status" -ne 0 ]; then exit "$status"; fi
    # If an init system did start it anyway (e.g. systemd without policy-rc.d support), leave it
    # disabled: the suite never uses port 6379.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
fi

# npm dependencies, exactly as locked; skipped when every locked package is installed at its version.
if (cd "$E2E_DIR" && node -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
    for (const [path, meta] of Object.entries(lock)) {
        if (!path) continue;
        const file = path + "/package.json";
        if (!fs.existsSync(file) || JSON.parse(fs.readFileSync(file, "utf8")).version !== meta.version) process.exit(1);
    }' 2>/dev/null); then
    log "npm dependencies: up to date"
else
    log "npm dependencies: npm ci"
    (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

log "ready"
