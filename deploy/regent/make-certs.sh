#!/usr/bin/env bash
# make-certs.sh: two private CAs and the certificates of a Regent
# installation (README "Security" says who trusts what):
#
#   - the Regent CA signs each agent's certificate (Raft, the HTTP API, its
#     client certificate towards the other agents) and the people's client
#     certificates (regentctl --cert-file, api.cert_admins);
#   - the MySQL CA signs each mysqld's certificate (server, and client on
#     the replication channel).
#
# Two CAs, so that neither kind of certificate can stand in for the other:
# an agent accepts on its Raft and API ports only what the Regent CA signed,
# and only for the identity in its URI SAN, which mysqld's certificates do
# not carry. Two keys per host, so that neither the regent user nor the
# mysql user can read the other's key.
#
#   ./make-certs.sh [-o DIR] [-d DAYS] [-u USER]... [NAME=IP[,EXTRA_SAN...] ...]
#   ./make-certs.sh                      # db1=10.0.0.11 db2=10.0.0.12 db3=10.0.0.13
#   ./make-certs.sh -o /root/regent-pki -u alice db1=10.0.0.11,db1.example.internal db2=10.0.0.12 db3=10.0.0.13
#
# NAME is the agent's node_id (regent.yaml) and the host's name: the agent's
# certificate carries the URI SAN urn:regent:agent:NAME, which is how every
# other agent knows it. -u USER (repeatable) makes a client certificate for
# a person or a program, with the URI SAN urn:regent:user:USER: list USER in
# api.cert_admins or api.cert_readers to give it a role.
#
# What the certificates are (and what Regent checks):
#   - ECDSA P-256, SHA-256, basicConstraints CA:FALSE.
#   - agents: URI:urn:regent:agent:NAME, extendedKeyUsage serverAuth AND
#     clientAuth (Raft is mutual TLS 1.3: every agent is a server to some
#     peers and a client of others; agents present it when they send
#     reports and forward calls). The agent refuses to start with a
#     certificate that does not name its node_id.
#   - mysqld: no Regent URI; serverAuth and clientAuth (mysqld presents it
#     when it replicates).
#   - users: URI:urn:regent:user:USER, clientAuth only.
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
#   regent-ca.crt           the Regent CA: on every agent (api.tls.ca_file,
#                           raft.tls.ca_file, api.client_ca_file), HAProxy
#                           (check-ssl), Prometheus, regentctl --ca-file.
#   mysql-ca.crt            the MySQL CA: on every mysqld (ssl_ca), every
#                           agent (mysql.tls.ca_file: Regent verifies
#                           mysqld), and the applications.
#   regent-ca.key, mysql-ca.key
#                           the CA keys: keep them OFFLINE, never on a server.
#   NAME/regent.crt, .key   for /etc/regent/tls/ (owner regent, key mode 600)
#   NAME/mysql.crt, .key    for /etc/mysql/tls/ (owner mysql, key mode 600)
#   NAME/regent-ca.crt, NAME/mysql-ca.crt
#                           copies of the CA certificates
#   users/USER.crt, .key    a person's client certificate (regentctl
#                           --cert-file, --key-file)
#
# Existing CA keys are reused, so running the script again with a new host
# or user adds its certificates without invalidating the others. Existing
# host and user files are overwritten (that is how certificates are
# renewed). A DIR made by the earlier version of this script (one ca.key for
# everything) keeps that CA as the Regent CA and gets a new MySQL CA: make
# and install every host's certificates again.
#
# Check a result:
#   openssl verify -CAfile DIR/regent-ca.crt DIR/db1/regent.crt
#   openssl verify -CAfile DIR/mysql-ca.crt DIR/db1/mysql.crt
#   openssl x509 -in DIR/db1/regent.crt -noout -ext subjectAltName,extendedKeyUsage
set -euo pipefail

out=./regent-pki
days=825
users=()
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}
while getopts "o:d:u:h" opt; do
  case $opt in
  o) out=$OPTARG ;;
  d) days=$OPTARG ;;
  u) users+=("$OPTARG") ;;
  *) usage ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ] && [ ${#users[@]} -eq 0 ]; then
  set -- db1=10.0.0.11 db2=10.0.0.12 db3=10.0.0.13
fi
case $days in
'' | *[!0-9]*) echo "make-certs: -d wants a number of days, got '$days'" >&2; exit 2 ;;
esac
command -v openssl >/dev/null || { echo "make-certs: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
# Check every argument before making anything. Names become URIs and
# node ids: letters, digits, '.', '_', '-' (and '@' for users), starting
# with a letter or digit.
for spec in "$@"; do
  name=${spec%%=*}
  rest=${spec#*=}
  if [ "$name" = "$spec" ] || [ -z "$name" ] || [ -z "$rest" ]; then
    echo "make-certs: '$spec' is not NAME=IP[,EXTRA_SAN...]" >&2
    exit 2
  fi
  case $name in
  [!A-Za-z0-9]* | *[!A-Za-z0-9._-]*) echo "make-certs: host name '$name' must be a node id: a letter or digit, then letters, digits, '.', '_', '-'" >&2; exit 2 ;;
  esac
  if [ ${#name} -gt 63 ]; then
    echo "make-certs: host name '$name' is longer than 63 characters" >&2
    exit 2
  fi
done
for u in "${users[@]}"; do
  case $u in
  '' | [!A-Za-z0-9]* | *[!A-Za-z0-9._@-]*) echo "make-certs: user '$u' must be a letter or digit, then letters, digits, '.', '_', '@', '-'" >&2; exit 2 ;;
  esac
  if [ ${#u} -gt 64 ]; then
    echo "make-certs: user '$u' is longer than 64 characters" >&2
    exit 2
  fi
done

umask 077
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# serial prints a random positive 128-bit serial number.
serial() { printf '0x%s' "$(openssl rand -hex 16 | sed 's/^./1/')"; }

# ca KIND CN: the CA DIR/KIND-ca.{crt,key}, made once.
ca() {
  local kind=$1 cn=$2
  if [ -f "$out/$kind-ca.key" ]; then
    echo "make-certs: reusing the $cn in $out/$kind-ca.crt"
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/$kind-ca.key"
    openssl req -x509 -new -sha256 -key "$out/$kind-ca.key" -days $((days * 4)) \
      -set_serial "$(serial)" -subj "/O=Regent/CN=$cn" \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash" \
      -out "$out/$kind-ca.crt"
    echo "make-certs: new $cn in $out/$kind-ca.crt (keep $out/$kind-ca.key offline)"
  fi
  chmod 644 "$out/$kind-ca.crt"
}

if [ -f "$out/ca.key" ] && [ ! -f "$out/regent-ca.key" ]; then
  # The earlier layout: one CA signed agents and mysqld alike. Keep it for
  # the agents; mysqld gets a CA of its own.
  cp "$out/ca.key" "$out/regent-ca.key"
  cp "$out/ca.crt" "$out/regent-ca.crt"
  echo "make-certs: $out/ca.crt (one CA for everything) is now the Regent CA; mysqld's certificates get a new MySQL CA: install every host's new files, and mysql-ca.crt wherever mysqld is verified" >&2
fi
ca regent "Regent CA"
ca mysql "Regent MySQL CA"

# leaf DIR FILE KIND SUBJECT USAGES SANS: a key and a certificate
# DIR/FILE.{crt,key} signed by the KIND CA.
leaf() {
  local dir=$1 file=$2 kind=$3 subj=$4 usages=$5 sans=$6
  mkdir -p "$dir"
  chmod 755 "$dir"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$file.key"
  cat >"$tmp/ext.cnf" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = $usages
subjectAltName = $sans
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  openssl req -new -sha256 -key "$dir/$file.key" -subj "$subj" -out "$tmp/req.csr"
  openssl x509 -req -sha256 -in "$tmp/req.csr" -CA "$out/$kind-ca.crt" -CAkey "$out/$kind-ca.key" \
    -set_serial "$(serial)" -days "$days" -extfile "$tmp/ext.cnf" -out "$dir/$file.crt" 2>/dev/null
  chmod 600 "$dir/$file.key"
  chmod 644 "$dir/$file.crt"
  openssl verify -CAfile "$out/$kind-ca.crt" "$dir/$file.crt" >/dev/null
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
  leaf "$out/$name" regent regent "/O=Regent/OU=agent/CN=$name" serverAuth,clientAuth "URI:urn:regent:agent:$name,$sans"
  leaf "$out/$name" mysql mysql "/O=Regent/OU=mysql/CN=$name" serverAuth,clientAuth "$sans"
  for kind in regent mysql; do
    cp "$out/$kind-ca.crt" "$out/$name/$kind-ca.crt"
    chmod 644 "$out/$name/$kind-ca.crt"
  done
  echo "make-certs: $out/$name: regent.crt (urn:regent:agent:$name, $sans), mysql.crt ($sans), valid $days days"
done
for u in "${users[@]}"; do
  leaf "$out/users" "$u" regent "/O=Regent/OU=user/CN=$u" clientAuth "URI:urn:regent:user:$u"
  echo "make-certs: $out/users/$u.crt (urn:regent:user:$u, client only), valid $days days: list $u in api.cert_admins or api.cert_readers"
done
