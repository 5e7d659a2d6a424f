#!/usr/bin/env bash
# Builds a release of Regent into DIST (default dist/):
#
#   linux_amd64/, linux_arm64/        regent and regentctl, static, stamped
#   regent_<debversion>_<arch>.deb    the binaries, the hardened systemd unit,
#                                     the examples, /etc/regent (root:regent
#                                     750) and /var/lib/regent (regent 750)
#   the OCI image regent:<version>    from Dockerfile, for this machine's
#                                     architecture (REGENT_RELEASE_IMAGE=0
#                                     skips it)
#
# The version is git describe's (VERSION=... overrides it). The image's base
# is REGENT_IMAGE_BASE: debian:12.11-slim by default, a point release (pin it by digest in
# your registry for reproducible images); on machines that cannot pull, the
# locally made regent-base:bookworm (scripts/build-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
dist=${DIST:-dist}
base=${REGENT_IMAGE_BASE:-debian:12.11-slim}
go=${GO:-go}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)

# A Debian version starts with a digit and keeps '-' for the revision: a tag
# (v1.2.0-3-gabc1234) gives 1.2.0+3+gabc1234, an untagged commit
# 0.0~git+abc1234 (sorting before any release).
case "$version" in
  v[0-9]* | [0-9]*) debver=${version#v}; debver=${debver//-/+} ;;
  *) debver="0.0~git+${version//-/+}" ;;
esac

for arch in amd64 arm64; do
  out="$dist/linux_$arch"
  echo "release: regent $version for linux/$arch"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$go" build -trimpath \
    -ldflags "-X main.version=$version" -o "$out/" ./cmd/regent ./cmd/regentctl

  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  chmod 755 "$root" # the package's "./": mktemp's 700 is not /'s mode
  install -D -m 755 "$out/regent" "$root/usr/bin/regent"
  install -D -m 755 "$out/regentctl" "$root/usr/bin/regentctl"
  install -D -m 644 deploy/systemd/regent.service "$root/lib/systemd/system/regent.service"
  doc="$root/usr/share/doc/regent"
  install -D -m 644 README.md "$doc/README.md"
  install -D -m 644 deploy/README.md "$doc/deploy.md"
  ex="$doc/examples"
  install -D -m 644 deploy/regent/db1.yaml "$ex/regent.yaml"
  install -m 644 deploy/systemd/regent.env.example deploy/regent/tokens.example \
    deploy/regent/mariadb.cnf deploy/regent/mysql.cnf deploy/regent/users-mariadb.sql \
    deploy/regent/users-mysql.sql "$ex/"
  install -m 755 deploy/regent/make-certs.sh "$ex/"
  install -d -m 750 "$root/etc/regent" "$root/etc/regent/tls" "$root/var/lib/regent"
  install -d -m 755 "$root/DEBIAN"
  cat >"$root/DEBIAN/control" <<EOF
Package: regent
Version: $debver
Architecture: $arch
Maintainer: Regent developers <regent@localhost>
Section: database
Priority: optional
Depends: passwd
Description: high-availability manager for MySQL and MariaDB
 One agent per database host; three or five agents form a Raft group that
 watches the replication clusters, fails over, fences the old primary and
 moves the write route. regentctl is the admin command line.
EOF
  # The account and the modes the agent expects (deploy/README.md, step 0):
  # /etc/regent readable by the agent's group only, its data directory by the
  # agent only. Nothing is started: the configuration comes first.
  cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  getent group regent >/dev/null || groupadd --system regent
  getent passwd regent >/dev/null || useradd --system --gid regent \
    --home-dir /var/lib/regent --shell /usr/sbin/nologin regent
  chown root:regent /etc/regent /etc/regent/tls
  chmod 750 /etc/regent /etc/regent/tls
  chown regent:regent /var/lib/regent
  chmod 750 /var/lib/regent
  echo "regent: write /etc/regent/regent.yaml (example: /usr/share/doc/regent/examples/regent.yaml), check it with 'regent check-config', then 'systemctl enable --now regent'"
fi
EOF
  chmod 755 "$root/DEBIAN/postinst"
  dpkg-deb --root-owner-group -Zxz --build "$root" "$dist/regent_${debver}_$arch.deb" >/dev/null
  rm -rf "$root"
  trap - EXIT
  echo "release: $dist/regent_${debver}_$arch.deb"
done

if [ "${REGENT_RELEASE_IMAGE:-1}" != 0 ]; then
  arch=$("$go" env GOARCH)
  echo "release: image regent:$version for linux/$arch from $base"
  cp Dockerfile "$dist/Dockerfile"
  docker build -q --build-arg BASE="$base" --build-arg ARCH="$arch" \
    --label "org.opencontainers.image.version=$version" \
    -t "regent:$version" "$dist" >/dev/null
  echo "release: image regent:$version"
fi
