#!/usr/bin/env bash
# Installs the system packages users-session-manager needs, if any is missing (Debian/Ubuntu, as root
# or with sudo). Idempotent: does nothing when everything is there.
set -euo pipefail

packages=(libmicrohttpd-dev libgnutls28-dev zlib1g-dev libsqlite3-dev libhiredis-dev redis-server redis-tools pkg-config prometheus wrk curl jq
    openssl
    python3-venv python3-yaml)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# The Node client's tests need Node >= 20.19 (the machine image has it; Debian's nodejs package is older,
# and clients/node/test/run.sh then says so).
command -v node >/dev/null || missing+=(nodejs)
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null || { echo "setup: Swift 6.3 is required (expected at /opt/swift)" >&2; exit 1; }
