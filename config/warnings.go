package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/regentdb/regent/proxyhook"
)

// Warning is a setting that works but leaves a secret or the write route
// exposed on the network. The agent logs each once at start (README
// "Hardening and secrets" says what to do about each).
type Warning struct {
	// Key is the configuration key to change.
	Key string
	// Message says what is exposed, to whom, and the fix.
	Message string
}

// SecurityWarnings lists the settings of c that send secrets or
// unauthenticated commands over the network in the clear. Connections to
// loopback addresses do not count: they never leave the host.
func (c Config) SecurityWarnings() []Warning {
	var ws []Warning
	warn := func(key, format string, a ...any) {
		ws = append(ws, Warning{Key: key, Message: fmt.Sprintf(format, a...)})
	}
	remote := c.remoteInstances()
	watch := false
	for _, cl := range c.Clusters {
		watch = watch || cl.WatchesBinlog()
	}

	t := c.MySQL.TLS
	switch {
	case len(remote) == 0:
	case !t.Enabled && !t.TLSFilesConfig.Enabled() && !t.InsecureSkipVerify:
		streams := ""
		if watch {
			streams = fmt.Sprintf(", and the binlog streams every agent holds to the primary log in as %s (the replication password) the same way", c.MySQL.ReplicationUser)
		}
		warn("mysql.tls", "Regent's own MySQL connections to %s have no TLS: the login of %s and every statement, including CHANGE MASTER / CHANGE REPLICATION SOURCE with the replication password in it, cross the network in the clear%s; set mysql.tls (enabled: true, ca_file) and require TLS on the servers",
			strings.Join(remote, ", "), c.MySQL.User, streams)
	case t.InsecureSkipVerify:
		warn("mysql.tls.insecure_skip_verify", "Regent's MySQL connections are encrypted but the servers' certificates are not checked: a man in the middle can read the passwords and statements; give mysql.tls.ca_file instead")
	}

	rt := c.MySQL.ReplicationTLS
	switch {
	case len(remote) == 0:
	case !rt.Enabled:
		warn("mysql.replication_tls", "replication runs without TLS: replicas log in to their source as %s over plain TCP (MySQL then fetches the source's RSA key unauthenticated, GET_SOURCE_PUBLIC_KEY=1, so a man in the middle can learn the password; MariaDB's challenge can be attacked offline by anyone who records it) and the data flows in the clear; set mysql.replication_tls (enabled: true, ca_file, verify_server_cert: true)",
			c.MySQL.ReplicationUser)
	case !rt.VerifyServerCert:
		warn("mysql.replication_tls.verify_server_cert", "replication is encrypted but replicas do not check their source's certificate: a man in the middle can read the replication password; set verify_server_cert: true with ca_file")
	}

	for i, cl := range c.Clusters {
		for j, h := range cl.Routing.HAProxy {
			network, addr, err := proxyhook.ParseRuntimeAddress(h.RuntimeAPI)
			if err != nil || network != "tcp" || isLoopbackAddr(addr) {
				continue
			}
			warn(fmt.Sprintf("clusters[%d].routing.haproxy[%d].runtime_api", i, j),
				"HAProxy %s's runtime API %s is plain TCP to another host: it has no authentication and no encryption, and anyone who reaches it can move the write route (or read it); give Regent a unix socket on the balancer host, or reach it through a local TLS tunnel with client certificates (README \"Hardening and secrets\")",
				h.Name, h.RuntimeAPI)
		}
		for j, p := range cl.Routing.ProxySQL {
			key := fmt.Sprintf("clusters[%d].routing.proxysql[%d]", i, j)
			if strings.HasPrefix(p.Admin, "unix:") || isLoopbackAddr(p.Admin) {
				continue
			}
			switch {
			case !p.TLS.Enabled:
				warn(key+".tls", "ProxySQL %s's admin interface %s is reached without TLS: the admin login and every statement cross the network in the clear; set tls: {enabled: true, ca_file: ...} (ProxySQL offers TLS with mysql-have_ssl=true)", p.Name, p.Admin)
			case p.TLS.InsecureSkipVerify:
				warn(key+".tls.insecure_skip_verify", "ProxySQL %s's admin connection is encrypted but its certificate is not checked: a man in the middle can read the admin login; give tls.ca_file instead", p.Name)
			}
		}
	}
	return ws
}

// remoteInstances lists the addresses of the instances this agent reaches
// over the network: every configured one that is not on a loopback address.
func (c Config) remoteInstances() []string {
	var out []string
	for _, cl := range c.Clusters {
		for _, in := range cl.Instances {
			if !isLoopbackAddr(in.Address) {
				out = append(out, in.Address)
			}
		}
	}
	return out
}

// isLoopbackAddr reports whether host:port names this host: a loopback IP
// address or "localhost". Other names count as remote (they are not
// resolved at start).
func isLoopbackAddr(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		host = hostPort
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
