#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, if they are missing:
# PostgreSQL server binaries (the tests start their own server on loopback),
# Dovecot's IMAP server (the IMAP connector's tests start their own on loopback)
# and Chromium (the Operator drives it through Playwright).
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
[ -x /usr/sbin/dovecot ] && [ -e /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
[ -x /usr/bin/chromium ] || need+=(chromium fonts-liberation)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
