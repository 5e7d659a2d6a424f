#!/usr/bin/env bash
# Builds (once) the local container image the system tests run on:
# regent-base:bookworm, a Debian bookworm root with MariaDB, HAProxy and the
# network tools the fault scenarios use (no image can be pulled on the test
# machines, so the image is made with debootstrap and `docker import`). It is
# reused as long as its org.regentdb.build-hash label matches this script;
# change the script and the image is rebuilt.
#
#   scripts/build-image.sh           build it if missing or stale
#   REGENT_BASE_IMAGE=name:tag       build under another name
#   REGENT_DEBIAN_MIRROR=URL         use this Debian mirror instead of the
#                                    host's (read from its apt sources)
#
# Needs root (debootstrap, chroot), debootstrap, and a Docker engine. The
# build takes about 1–4 minutes depending on the mirror (under a minute on
# the project's machines) and 600 MB of temporary space.
set -euo pipefail
cd "$(dirname "$0")/.."

image="${REGENT_BASE_IMAGE:-regent-base:bookworm}"
suite=bookworm
# What the containers need: the database and its client, the load balancer,
# ip/iptables for partitions, CA certificates, ps/pkill for people debugging.
packages=(mariadb-server mariadb-client haproxy iproute2 iptables ca-certificates procps)
label=org.regentdb.build-hash

fail() { echo "build-image: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || fail "the docker CLI is missing: install Docker Engine (Debian: apt-get install docker.io)"
docker info >/dev/null 2>&1 || fail "cannot talk to the Docker engine (is dockerd running, and may this user use it?): $(docker info 2>&1 | tail -n 1)"

hash=$(sha256sum "$0" | cut -c1-16)
have=$(docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$image" 2>/dev/null || true)
if [ "$have" = "$hash" ]; then
  echo "build-image: $image is up to date (build hash $hash)"
  exit 0
fi

# One build at a time on this machine: parallel test binaries wait for the
# first one and then reuse its image.
lockdir="${TMPDIR:-/tmp}"
exec 9>"$lockdir/regent-build-image.lock"
flock 9
have=$(docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$image" 2>/dev/null || true)
if [ "$have" = "$hash" ]; then
  echo "build-image: $image was built meanwhile (build hash $hash)"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || fail "$image is missing or stale and building it needs root (debootstrap, chroot): run 'sudo scripts/build-image.sh' once"
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || fail "debootstrap is missing: apt-get install debootstrap"
PATH="$PATH:/usr/sbin:/sbin"

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
[ -n "$mirror" ] || fail "cannot find a Debian mirror in /etc/apt/sources*; set REGENT_DEBIAN_MIRROR=<mirror URL>"

start=$(date +%s)
echo "build-image: building $image from Debian $suite via $mirror (about 1–4 minutes, depending on the mirror)"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/regent-image.XXXXXX")
root="$work/root"
log="$work/build.log"
cleanup() {
  # Never remove a root with /proc still mounted in it.
  if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || umount -l "$root/proc" || true; fi
  if mountpoint -q "$root/proc" 2>/dev/null; then
    echo "build-image: $root/proc is still mounted; leaving $work in place" >&2
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
step() { # step NAME COMMAND...: run quietly, show the log's tail on failure
  local name=$1; shift
  if ! "$@" >>"$log" 2>&1; then
    echo "build-image: $name failed; last lines of the log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}

step "debootstrap" debootstrap --variant=minbase "$suite" "$root" "$mirror"
# Package scripts must not start services inside the root (or on the host).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
step "apt-get update" chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
step "apt-get install" chroot "$root" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${packages[@]}"
step "apt-get clean" chroot "$root" apt-get clean
umount "$root/proc"
# Smaller, and nothing of this host's in the image: package lists, logs, the
# database the package initialised (the containers make their own), and the
# host's resolver configuration (Docker provides one).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
  "$root"/var/log/apt/* "$root"/var/lib/mysql/* "$root"/tmp/*
: >"$root/etc/resolv.conf"
mkdir -p "$root/run/mysqld" "$root/run/haproxy"

old_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
step "docker import" sh -c "tar --numeric-owner -C '$root' -c . | docker import \
  --change 'LABEL $label=$hash' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD [\"/bin/bash\"]' \
  - '$image'"
# The stale image this one replaces, unless a container still uses it.
if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
  docker rmi "$old_id" >/dev/null 2>&1 || true
fi
versions=$(chroot "$root" sh -c 'mariadbd --version; haproxy -v | head -n1' 2>/dev/null | tr '\n' ' ' || true)
echo "build-image: built $image (build hash $hash) in $(( $(date +%s) - start )) s: $versions"
