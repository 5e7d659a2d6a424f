#!/usr/bin/env bash
# make-certs.sh: a private CA and, for each database host, two certificates
# signed by it: one for the regent agent (Raft, HTTP API, and its client
# certificate towards mysqld) and one for mysqld (server certificate, and its
# client certificate on the replication channel). Two keys per host, so that
# neither the regent user nor the mysql user can read the other's key.
#
#   ./make-certs.sh [-o DIR] [-d DAYS] [NAME=IP[,EXTRA_SAN...] ...]
#   ./make-certs.sh                      # db1=10.0.0.11 db2=10.0.0.12 db3=10.0.0.13
#   ./make-certs.sh -o /root/regent-pki db1=10.0.0.11,db1.example.internal db2=10.0.0.12 db3=10.0.0.13
#
# What the certificates must be (and what this script makes):
#   - ECDSA P-256, SHA-256, basicConstraints CA:FALSE.
#   - extendedKeyUsage serverAuth AND clientAuth: Raft is mutual TLS (every
#     agent is a server to some peers and a client of others, TLS 1.3 only),
#     agents present their API certificate when they call each other, and
#     mysqld presents its certificate when it replicates.
#   - subjectAltName with the host's IP address and name. A certificate must
#     match the address others dial: raft.advertise / raft.peers[].address and
#     api.advertise / raft.peers[].api for the agent, instances[].address for
#     mysqld (Regent checks the instance's host; a replica with
#     verify_server_cert checks MASTER_HOST / SOURCE_HOST). If regent.yaml
#     says 10.0.0.11, the certificate needs IP:10.0.0.11; if it says
#     db1.example.internal, it needs DNS:db1.example.internal. Give extra
#     names after the IP, comma-separated.
#
# Output (DIR, default ./regent-pki):
#   ca.crt                  the CA certificate: copy it everywhere (agents,
#                           mysqld, HAProxy for check-ssl, Prometheus,
#                           regentctl's --ca-file).
#   ca.key                  the CA key: keep it OFFLINE, never on a server.
#   NAME/regent.crt, .key   for /etc/regent/tls/ (owner regent, key mode 600)
#   NAME/mysql.crt, .key    for /etc/mysql/tls/ (owner mysql, key mode 600)
#   NAME/ca.crt             a copy of the CA certificate
#
# An existing ca.key is reused, so running the script again with a new host
# adds that host's certificates without invalidating the others. Existing
# host files are overwritten (that is how certificates are renewed).
#
# Check a result:
#   openssl verify -CAfile DIR/ca.crt DIR/db1/regent.crt
#   openssl x509 -in DIR/db1/regent.crt -noout -ext subjectAltName,extendedKeyUsage
set -euo pipefail

out=./regent-pki
days=825
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}
while getopts "o:d:h" opt; do
  case $opt in
  o) out=$OPTARG ;;
  d) days=$OPTARG ;;
  *) usage ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
  set -- db1=10.0.0.11 db2=10.0.0.12 db3=10.0.0.13
fi
case $days in
'' | *[!0-9]*) echo "make-certs: -d wants a number of days, got '$days'" >&2; exit 2 ;;
esac
command -v openssl >/dev/null || { echo "make-certs: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
# Check every argument before making anything.
for spec in "$@"; do
  name=${spec%%=*}
  rest=${spec#*=}
  if [ "$name" = "$spec" ] || [ -z "$name" ] || [ -z "$rest" ]; then
    echo "make-certs: '$spec' is not NAME=IP[,EXTRA_SAN...]" >&2
    exit 2
  fi
  case $name in
  *[!A-Za-z0-9._-]*) echo "make-certs: host name '$name' has characters other than letters, digits, '.', '_', '-'" >&2; exit 2 ;;
  esac
done

umask 077
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# serial prints a random positive 128-bit serial number.
serial() { printf '0x%s' "$(openssl rand -hex 16 | sed 's/^./1/')"; }

if [ ! -f "$out/ca.key" ]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/ca.key"
  openssl req -x509 -new -sha256 -key "$out/ca.key" -days $((days * 4)) \
    -set_serial "$(serial)" -subj "/O=Regent/CN=Regent CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$out/ca.crt"
  echo "make-certs: new CA in $out/ca.crt (keep $out/ca.key offline)"
else
  echo "make-certs: reusing the CA in $out"
fi
chmod 644 "$out/ca.crt"

# leaf NAME ROLE SANS: a key and a certificate for NAME/ROLE.
leaf() {
  local name=$1 role=$2 sans=$3 dir="$out/$1"
  mkdir -p "$dir"
  chmod 755 "$dir"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$role.key"
  cat >"$tmp/ext.cnf" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = $sans
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  openssl req -new -sha256 -key "$dir/$role.key" -subj "/O=Regent/OU=$role/CN=$name" -out "$tmp/req.csr"
  openssl x509 -req -sha256 -in "$tmp/req.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -set_serial "$(serial)" -days "$days" -extfile "$tmp/ext.cnf" -out "$dir/$role.crt" 2>/dev/null
  chmod 600 "$dir/$role.key"
  chmod 644 "$dir/$role.crt"
  openssl verify -CAfile "$out/ca.crt" "$dir/$role.crt" >/dev/null
}

for spec in "$@"; do
  name=${spec%%=*}
  rest=${spec#*=}
  sans="DNS:$name"
  IFS=, read -r -a extra <<<"$rest"
  for s in "${extra[@]}"; do # IP addresses, then any extra names
    case $s in
    '') ;;
    *[!0-9.]*)
      if [[ $s == *:* ]]; then sans="$sans,IP:$s"; else sans="$sans,DNS:$s"; fi ;; # IPv6 or a name
    *) sans="$sans,IP:$s" ;;
    esac
  done
  leaf "$name" regent "$sans"
  leaf "$name" mysql "$sans"
  cp "$out/ca.crt" "$out/$name/ca.crt"
  chmod 644 "$out/$name/ca.crt"
  echo "make-certs: $out/$name: regent.crt, mysql.crt ($sans), valid $days days"
done
