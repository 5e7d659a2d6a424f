#!/usr/bin/env bash
# Installs what the tests need that Go does not bring: real database servers,
# HAProxy, docker-compose, openssl (deploy/regent/make-certs.sh), the network lab's tools (iproute2, iptables,
# ethtool: integration/netlab), and the MySQL root (scripts/mysql-root.sh). As root on Debian or
# Ubuntu it installs what is missing; otherwise it names exactly what to install
# and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A need=(
  [mariadbd]=mariadb-server
  [mariadb-install-db]=mariadb-server
  [mariadb]=mariadb-client
  [haproxy]=haproxy
  [debootstrap]=debootstrap
  [ip]=iproute2
  [iptables]=iptables
  [ethtool]=ethtool
  [promtool]=prometheus
  [chromium]=chromium
  [sysbench]=sysbench
  [docker-compose]=docker-compose
  [openssl]=openssl
)
missing=()
for cmd in "${!need[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/sbin/$cmd" ]; then
    missing+=("${need[$cmd]}")
  fi
done
if [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then missing+=(ca-certificates); fi
# Fonts for the status-page screenshot test (headless Chromium).
if [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then missing+=(fonts-dejavu-core); fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing ${missing[*]}"
    # Keep package scripts from starting system services (the tests start
    # their own servers on free ports).
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
  else
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: install them with: sudo apt-get install ${missing[*]}   (or run 'make test' as root)" >&2
    exit 1
  fi
fi

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "deps: the system tests need a running Docker Engine (docker info fails): install and start it (Debian: docker.io)" >&2
  exit 1
fi

scripts/mysql-root.sh
