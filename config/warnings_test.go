package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/regentdb/regent/proxyhook"
)

func TestSecurityWarnings(t *testing.T) {
	// secure is a configuration with nothing to warn about: TLS on every
	// MySQL connection and on replication, checked, and no routing.
	secure := func() Config {
		var c Config
		c.MySQL.User, c.MySQL.ReplicationUser = "regent", "repl"
		c.MySQL.TLS.Enabled, c.MySQL.TLS.CAFile = true, "/etc/regent/tls/ca.crt"
		c.MySQL.ReplicationTLS.Enabled, c.MySQL.ReplicationTLS.CAFile, c.MySQL.ReplicationTLS.VerifyServerCert = true, "/etc/mysql/tls/ca.crt", true
		c.Clusters = []ClusterConfig{{Name: "main", Instances: []InstanceConfig{
			{Name: "db1", Address: "10.0.0.11:3306"}, {Name: "db2", Address: "10.0.0.12:3306"}}}}
		return c
	}
	routing := func(r proxyhook.RoutingConfig) func(*Config) {
		return func(c *Config) { c.Clusters[0].Routing = r }
	}
	cases := []struct {
		name string
		edit func(*Config)
		want []string // keys warned about, in order
		text string   // a phrase the first warning must hold
	}{
		{"all TLS, verified", func(*Config) {}, nil, ""},
		{"no TLS on Regent's connections", func(c *Config) { c.MySQL.TLS.Enabled, c.MySQL.TLS.CAFile = false, "" },
			[]string{"mysql.tls"}, "binlog streams"},
		{"no TLS, binlog streams off", func(c *Config) {
			c.MySQL.TLS.Enabled, c.MySQL.TLS.CAFile = false, ""
			off := false
			c.Clusters[0].WatchBinlog = &off
		}, []string{"mysql.tls"}, "replication password in it"},
		{"TLS without verification", func(c *Config) { c.MySQL.TLS.CAFile, c.MySQL.TLS.InsecureSkipVerify = "", true },
			[]string{"mysql.tls.insecure_skip_verify"}, "man in the middle"},
		{"no replication TLS", func(c *Config) { c.MySQL.ReplicationTLS.Enabled = false },
			[]string{"mysql.replication_tls"}, "GET_SOURCE_PUBLIC_KEY"},
		{"replication TLS unverified", func(c *Config) { c.MySQL.ReplicationTLS.VerifyServerCert = false },
			[]string{"mysql.replication_tls.verify_server_cert"}, "man in the middle"},
		{"no TLS at all, all on loopback", func(c *Config) {
			c.MySQL.TLS.Enabled, c.MySQL.TLS.CAFile, c.MySQL.ReplicationTLS.Enabled = false, "", false
			c.Clusters[0].Instances = []InstanceConfig{{Name: "db1", Address: "127.0.0.1:3306"}, {Name: "db2", Address: "localhost:3307"}, {Name: "db3", Address: "[::1]:3308"}}
		}, nil, ""},
		{"runtime API over TCP to another host", routing(proxyhook.RoutingConfig{HAProxy: []proxyhook.HAProxyConfig{
			{Name: "lb1", RuntimeAPI: "unix:/run/haproxy/admin.sock"},
			{Name: "lb2", RuntimeAPI: "tcp:10.0.0.6:9999"},
			{Name: "lb3", RuntimeAPI: "10.0.0.7:9999"},
			{Name: "lb4", RuntimeAPI: "ipv4@lb4.example:9999"},
			{Name: "tunnel", RuntimeAPI: "tcp:127.0.0.1:9905"},
			{Name: "local", RuntimeAPI: "tcp:localhost:9999"},
		}}), []string{"clusters[0].routing.haproxy[1].runtime_api", "clusters[0].routing.haproxy[2].runtime_api", "clusters[0].routing.haproxy[3].runtime_api"}, "no authentication"},
		{"ProxySQL admin over the network", routing(proxyhook.RoutingConfig{ProxySQL: []proxyhook.ProxySQLConfig{
			{Name: "px1", Admin: "10.0.0.7:6032"},
			{Name: "px2", Admin: "10.0.0.8:6032", TLS: proxyhook.ProxySQLTLS{Enabled: true, InsecureSkipVerify: true}},
			{Name: "px3", Admin: "10.0.0.9:6032", TLS: proxyhook.ProxySQLTLS{Enabled: true, CAFile: "/ca.pem"}},
			{Name: "px4", Admin: "127.0.0.1:6032"},
			{Name: "px5", Admin: "unix:/var/lib/proxysql/proxysql_admin.sock"},
		}}), []string{"clusters[0].routing.proxysql[0].tls", "clusters[0].routing.proxysql[1].tls.insecure_skip_verify"}, "admin login"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := secure()
			tc.edit(&c)
			ws := c.SecurityWarnings()
			var keys []string
			for _, w := range ws {
				keys = append(keys, w.Key)
			}
			if !slices.Equal(keys, tc.want) {
				t.Fatalf("warned about %q, want %q\n%v", keys, tc.want, ws)
			}
			if tc.text != "" && !strings.Contains(ws[0].Message, tc.text) {
				t.Errorf("warning %q does not say %q", ws[0].Message, tc.text)
			}
		})
	}
}
