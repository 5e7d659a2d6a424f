package proxyhook

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/proxyhook/proxysqltest"
	"github.com/regentdb/regent/topology/mysqltest"
)

// serverTLS is the TLS a ProxySQL admin port offers, from f's server
// certificate (valid for 127.0.0.1).
func serverTLS(t *testing.T, f *mysqltest.TLSFiles) *tls.Config {
	t.Helper()
	cert, err := tls.X509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// With tls.enabled the admin connection is encrypted and ProxySQL's
// certificate checked; a ProxySQL that offers no TLS, or whose certificate
// another CA signed, gets nothing, not even the login.
func TestProxySQLAdminTLS(t *testing.T) {
	files := mysqltest.NewTLSFiles(t)
	dir := files.WriteTo(t, t.TempDir())
	other := mysqltest.NewTLSFiles(t)
	verified := ProxySQLTLS{Enabled: true, CAFile: filepath.Join(dir, "ca.pem")}
	cases := []struct {
		name       string
		offer      *tls.Config // what the admin port offers; nil: no TLS
		client     ProxySQLTLS
		wantErr    string // "" means the route is applied
		wantTLSLog int    // sessions that logged in over TLS
	}{
		{"verified TLS", serverTLS(t, files), verified, "", 1},
		{"TLS not offered", nil, verified, "TLS", 0},
		{"certificate of another CA", serverTLS(t, other), verified, "certificate", 0},
		{"TLS not asked for", serverTLS(t, files), ProxySQLTLS{}, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			admin := proxysqltest.Start(t, proxysqltest.Options{User: "radmin", Password: "s3cret", TLS: tc.offer})
			admin.SetServers(proxysqltest.NewServer(10, "10.0.0.1", 3306))
			target, err := NewProxySQLTarget(ProxySQLConfig{Name: "px", Admin: admin.Addr(), User: "radmin", Password: "s3cret",
				WriterHostgroup: Hostgroup(10), Timeout: 2 * time.Second, TLS: tc.client,
				Retry: RetryPolicy{Attempts: 1}}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer target.Close()
			_, err = target.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, OldPrimary: ep1, NewPrimary: ep2})
			checkErr(t, err, tc.wantErr)
			if err != nil {
				t.Logf("refused: %v", err)
			}
			if tc.wantErr != "" && len(admin.Statements()) != 0 {
				t.Errorf("statements reached a ProxySQL that failed the TLS check: %q", admin.Statements())
			}
			if got := admin.TLSLogins(); (got > 0) != (tc.wantTLSLog > 0) {
				t.Errorf("%d logins over TLS, want %s", got, map[bool]string{true: "some", false: "none"}[tc.wantTLSLog > 0])
			}
		})
	}
}

func TestProxySQLTLSConfigValidate(t *testing.T) {
	ok := ProxySQLConfig{Name: "p", Admin: "10.0.0.7:6032", User: "u", WriterHostgroup: Hostgroup(0)}
	cases := []struct {
		name    string
		tls     ProxySQLTLS
		wantErr string
	}{
		{"off", ProxySQLTLS{}, ""},
		{"on with the system's roots", ProxySQLTLS{Enabled: true}, ""},
		{"files without enabled", ProxySQLTLS{CAFile: "/etc/regent/ca.pem"}, "enabled: true"},
		{"certificate without key", ProxySQLTLS{Enabled: true, CertFile: "/c.pem"}, "go together"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.TLS = tc.tls
			checkErr(t, c.Validate("proxysql[0]", nil), tc.wantErr)
		})
	}
}

// The password file follows the tokens file's rule: nothing for other
// users.
func TestProxySQLPasswordFileMustBePrivate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := ProxySQLConfig{Name: "px", Admin: "127.0.0.1:6032", User: "radmin", PasswordFile: p, WriterHostgroup: Hostgroup(10)}
	if _, err := NewProxySQLTarget(cfg, nil); err == nil || !strings.Contains(err.Error(), "readable by other users") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a world-readable password file: %v", err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	target, err := NewProxySQLTarget(cfg, nil)
	if err != nil {
		t.Fatalf("a private password file: %v", err)
	}
	_ = target.Close()
}
