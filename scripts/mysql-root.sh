#!/usr/bin/env bash
# Builds (once) the root directory that real Oracle MySQL runs from in tests.
# Debian sid's mysql-server-core needs a newer libc than the host has, so it
# lives in a debootstrapped root of its own (README "The two commands"). The
# root is cached and reused; set REGENT_MYSQL_ROOT to put it elsewhere. sid is
# never added to the host's apt sources.
set -euo pipefail

root="${REGENT_MYSQL_ROOT:-/var/cache/regent/mysql-root}"
if [ -x "$root/usr/sbin/mysqld" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "mysql-root: $root is missing and building it needs root (debootstrap, chroot)." >&2
  echo "mysql-root: run 'sudo scripts/mysql-root.sh' once, or set REGENT_MYSQL_ROOT to an existing root." >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "mysql-root: debootstrap is missing: apt-get install debootstrap" >&2
  exit 1
fi

# The Debian mirror this host already uses (deb822 or one-line sources), unless
# REGENT_DEBIAN_MIRROR names one.
mirror="${REGENT_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror=$(awk '
    /^URIs:/ { uri=$2 }
    /^Suites:/ && uri != "" { for (i=2;i<=NF;i++) if ($i !~ /-/ && $i !~ /security/) { print uri; exit } }
    /^deb / && $3 !~ /-/ && $2 ~ /debian\/?$/ { print $2; exit }
  ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1 || true)
fi
if [ -z "$mirror" ]; then
  echo "mysql-root: cannot find a Debian mirror in /etc/apt/sources*; set REGENT_DEBIAN_MIRROR=<mirror URL>" >&2
  exit 1
fi

echo "mysql-root: building $root from Debian sid via $mirror (about a minute, 650 MB)"
tmp="$root.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$root")"
debootstrap --variant=minbase --include=mysql-server-core,mysql-client-core sid "$tmp" "$mirror" >"$tmp.log" 2>&1 || {
  tail -n 20 "$tmp.log" >&2; rm -f "$tmp.log"; exit 1; }
rm -f "$tmp.log"
mkdir -p "$tmp/run/mysqld"
chroot "$tmp" /usr/sbin/mysqld --version
mv "$tmp" "$root"
trap - EXIT
