package consensus

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/regentdb/regent/identity"
)

// testCA is a certificate authority made in the test with crypto/x509.
type testCA struct {
	t      testing.TB
	name   string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pem    []byte
	caFile string
}

var serial atomic.Int64

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{t: t, name: name, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	ca.caFile = writeFile(t, name+"-ca.pem", ca.pem)
	return ca
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue makes agent node's certificate (URI SAN urn:regent:agent:NODE,
// server and client auth) for the given IPs and returns a TLSConfig that
// trusts this CA.
func (ca *testCA) issue(node string, ips ...string) TLSConfig {
	ca.t.Helper()
	return ca.issueWith(node, []string{identity.AgentURI(node)}, ips...)
}

// issueMySQL makes a certificate as make-certs.sh makes mysqld's: the
// host's names, server and client auth, no Regent URI.
func (ca *testCA) issueMySQL(host string, ips ...string) TLSConfig {
	ca.t.Helper()
	return ca.issueWith(host, nil, ips...)
}

func (ca *testCA) issueWith(name string, uris []string, ips ...string) TLSConfig {
	t := ca.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return TLSConfig{
		CAFile:   ca.caFile,
		CertFile: writeFile(t, name+"-cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyFile:  writeFile(t, name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})),
	}
}

// mustLoadTLS loads agent id's TLS files.
func mustLoadTLS(t testing.TB, c TLSConfig, id string) *tlsPair {
	t.Helper()
	p, err := loadTLS(c, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newTestLayer starts a stream layer on a free loopback port for agent id
// that accepts the given members (id → address).
func newTestLayer(t testing.TB, c TLSConfig, id string, members map[string]string, log *slog.Logger) *streamLayer {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sl, err := newStreamLayer("127.0.0.1:0", "127.0.0.1:1", mustLoadTLS(t, c, id), 2*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sl.Close() })
	sl.setMembers(func() map[string]string { return members })
	return sl
}

// acceptAll drains a layer's Accept into a channel until it closes.
func acceptAll(sl *streamLayer) chan net.Conn {
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := sl.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	return accepted
}

// TestStreamLayerMutualTLS checks both directions of the mutual TLS check at
// the stream layer, and that only authenticated connections reach Accept.
func TestStreamLayerMutualTLS(t *testing.T) {
	good := newTestCA(t, "regent")
	rogue := newTestCA(t, "rogue")
	serverLog := newLogSink(t, "server")
	members := map[string]string{"server": "127.0.0.1:1", "peer": "127.0.0.1:2"}
	server := newTestLayer(t, good.issue("server", "127.0.0.1"), "server", members, serverLog.logger(slog.LevelDebug))
	addr := server.ln.Addr().String()
	members["server"] = addr
	accepted := acceptAll(server)

	// A client that trusts the cluster's CA but presents a foreign
	// certificate, so only the server's check can stop it.
	rc := rogue.issue("peer", "127.0.0.1")
	rogueCert, err := tls.LoadX509KeyPair(rc.CertFile, rc.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	trustGood := x509.NewCertPool()
	trustGood.AppendCertsFromPEM(good.pem)

	inbound := []struct {
		name   string
		dial   func() error
		reason string
	}{
		{"client certificate from another CA", func() error {
			return tlsExchange(addr, &tls.Config{RootCAs: trustGood, ServerName: "127.0.0.1",
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &rogueCert, nil }})
		}, "certificate signed by unknown authority"},
		{"client without a certificate", func() error {
			return tlsExchange(addr, &tls.Config{RootCAs: trustGood, ServerName: "127.0.0.1"})
		}, "didn't provide a certificate"},
		{"plain TCP client", func() error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			_, err = io.ReadAll(c)
			return fmt.Errorf("server closed: %v", err)
		}, "first record does not look like a TLS handshake"},
	}
	for _, tt := range inbound {
		t.Run("inbound "+tt.name, func(t *testing.T) {
			if err := tt.dial(); err == nil {
				t.Fatal("the server accepted the connection")
			}
			waitFor(t, 5*time.Second, "the rejection in the server log", func() bool {
				return logHas(serverLog, "raft peer rejected: tls handshake failed", `"direction":"inbound"`, tt.reason)
			})
			select {
			case c := <-accepted:
				t.Fatalf("a rejected connection reached Accept: %v", c.RemoteAddr())
			default:
			}
		})
	}

	outbound := []struct {
		name   string
		server TLSConfig
		reason string
	}{
		{"server certificate from another CA", rogue.issue("n2", "127.0.0.1"), "certificate signed by unknown authority"},
		{"server certificate for another address", good.issue("n2", "127.0.0.2"), "not 127.0.0.1"},
	}
	for _, tt := range outbound {
		t.Run("outbound "+tt.name, func(t *testing.T) {
			bad, err := newStreamLayer("127.0.0.1:0", "127.0.0.1:1", mustLoadTLS(t, tt.server, "n2"), 2*time.Second, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			bad.setMembers(func() map[string]string { return map[string]string{"client": "127.0.0.1:3"} })
			go func() { // let the bad server complete its side
				for {
					c, err := bad.Accept()
					if err != nil {
						return
					}
					_ = c.Close()
				}
			}()
			clientLog := newLogSink(t, "client")
			client := newTestLayer(t, good.issue("client", "127.0.0.1"), "client",
				map[string]string{"client": "127.0.0.1:3", "n2": bad.ln.Addr().String()}, clientLog.logger(slog.LevelDebug))
			if c, err := client.Dial(toAddr(bad.ln.Addr()), 2*time.Second); err == nil {
				c.Close()
				t.Fatal("dialled a server with a bad certificate")
			}
			if !logHas(clientLog, "raft peer rejected: tls handshake failed", `"direction":"outbound"`, tt.reason) {
				t.Fatalf("no outbound rejection mentioning %q in:\n%s", tt.reason, clientLog)
			}
		})
	}

	t.Run("peer from the same CA", func(t *testing.T) {
		client := newTestLayer(t, good.issue("peer", "127.0.0.1"), "peer", members, nil)
		c, err := client.Dial(toAddr(server.ln.Addr()), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-accepted:
			buf := make([]byte, 4)
			if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("read %q, %v", buf, err)
			}
			s.Close()
		case <-time.After(5 * time.Second):
			t.Fatal("authenticated connection not accepted")
		}
	})

	if server.Addr().String() != "127.0.0.1:1" {
		t.Errorf("Addr() = %s, want the advertised address", server.Addr())
	}
	if err := server.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := server.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, ok := <-accepted; ok {
		t.Error("Accept returned a connection after Close")
	}
}

// tlsExchange connects, completes the handshake and reads: with TLS 1.3 a
// server's refusal of the client certificate arrives on the first read.
func tlsExchange(addr string, cfg *tls.Config) error {
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

func toAddr(a net.Addr) raft.ServerAddress { return raft.ServerAddress(a.String()) }

func logHas(s *logSink, parts ...string) bool {
	for _, line := range strings.Split(s.String(), "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok && line != "" {
			return true
		}
	}
	return false
}

// TestTLSClusterFailover: three nodes over real TCP with mutual TLS elect,
// commit, lose their leader, elect again and commit again.
func TestTLSClusterFailover(t *testing.T) {
	ca := newTestCA(t, "regent")
	c := newTCPCluster(t, 3, func(i int) TLSConfig { return ca.issue(fmt.Sprintf("n%d", i+1), "127.0.0.1") }, nil)
	first := c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})
	old := c.waitLeader()
	for _, i := range c.running() {
		if !logHas(c.logs[i], "raft transport listening", `"tls":true`) {
			t.Errorf("%s did not start with TLS:\n%s", c.cfgs[i].NodeID, c.logs[i])
		}
	}

	c.stop(old)
	l := c.waitLeader()
	second := c.mustPropose(BeginOperation{Cluster: "c1", OperationID: "op1", Kind: KindFailover, ExpectEpoch: 1, At: at(1)})
	for _, i := range c.running() {
		c.waitApplied(i, second.Index)
		cl, ok := c.nodes[i].Cluster("c1")
		if !ok || cl.Primary != "db1" || cl.Operation == nil || cl.Operation.ID != "op1" {
			t.Errorf("%s sees %+v", c.cfgs[i].NodeID, cl)
		}
	}
	if second.Index <= first.Index || l == old {
		t.Errorf("second commit at %d after %d, leader %d (old %d)", second.Index, first.Index, l, old)
	}
}

// TestTLSForeignCANodeCannotJoin: a node whose certificate comes from
// another CA gets nothing from the cluster, and the rejection is logged.
func TestTLSForeignCANodeCannotJoin(t *testing.T) {
	ca := newTestCA(t, "regent")
	rogueCA := newTestCA(t, "rogue")
	c := newTCPCluster(t, 3, func(i int) TLSConfig { return ca.issue(fmt.Sprintf("n%d", i+1), "127.0.0.1") }, nil)
	c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})
	ports := freePorts(t, 2)

	// n4: a certificate from the rogue CA, trusting only that CA, started
	// to be added by the leader (the normal way to join).
	cfg4 := c.cfgs[0]
	cfg4.NodeID, cfg4.RaftAddr, cfg4.Peers, cfg4.DataDir = "n4", fmt.Sprintf("127.0.0.1:%d", ports[0]), nil, t.TempDir()
	cfg4.TLS = rogueCA.issue("n4", "127.0.0.1")
	// n5: a rogue certificate but trusting both CAs, claiming to be a member
	// of the cluster: only the cluster's check of client certificates stops it.
	cfg5 := c.cfgs[0]
	cfg5.NodeID, cfg5.RaftAddr, cfg5.DataDir = "n5", fmt.Sprintf("127.0.0.1:%d", ports[1]), t.TempDir()
	cfg5.Peers = append(append([]Peer(nil), c.cfgs[0].Peers...), Peer{ID: "n5", RaftAddr: cfg5.RaftAddr})
	cfg5.TLS = rogueCA.issue("n5", "127.0.0.1")
	cfg5.TLS.CAFile = writeFile(t, "both.pem", append(append([]byte{}, ca.pem...), rogueCA.pem...))
	for _, cfg := range []Config{cfg4, cfg5} {
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
		c.logs = append(c.logs, newLogSink(t, cfg.NodeID))
		c.startTCP(len(c.cfgs) - 1)
	}
	n4, n5 := c.nodes[3], c.nodes[4]
	defer func() {
		if s := n4.Stats(); s.CommitIndex != 0 || s.LastLogIndex != 0 {
			t.Errorf("n4 received log entries: %+v", s)
		}
	}()

	c.onLeader("AddVoter", func(n *Node) error { return n.AddVoter(context.Background(), "n4", cfg4.RaftAddr) }, 0, 1, 2)
	out := c.mustPropose(SetAntiFlap{Cluster: "c1", Until: at(5)}, 0, 1, 2)
	for _, i := range []int{0, 1, 2} {
		c.waitApplied(i, out.Index)
	}

	// The leader logs its refusal of n4's certificate; n4 sees the failed
	// handshake too.
	waitFor(t, 10*time.Second, "the leader to log n4's rejection", func() bool {
		for _, i := range []int{0, 1, 2} {
			if logHas(c.logs[i], "raft peer rejected: tls handshake failed", `"direction":"outbound"`, cfg4.RaftAddr, "certificate signed by unknown authority") {
				return true
			}
		}
		return false
	})
	l := c.waitLeader(0, 1, 2)
	waitFor(t, 10*time.Second, "n4 to log the failed handshake", func() bool {
		return logHas(c.logs[3], "raft peer rejected: tls handshake failed", `"direction":"inbound"`)
	})
	// The cluster's nodes log their refusal of n5's client certificate.
	waitFor(t, 10*time.Second, "a member to log n5's rejection", func() bool {
		for _, i := range []int{0, 1, 2} {
			if logHas(c.logs[i], "raft peer rejected: tls handshake failed", `"direction":"inbound"`, "certificate signed by unknown authority") {
				return true
			}
		}
		return false
	})

	for _, n := range []*Node{n4, n5} {
		if st := n.State(); len(st.Clusters) != 0 {
			t.Errorf("%s received the replicated state: %+v", n.ID(), st)
		}
		if s := n.Stats(); s.LeaderID != "" || s.IsLeader {
			t.Errorf("%s found a leader: %+v", n.ID(), s)
		}
	}
	pcs, err := c.nodes[l].PeerContacts()
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range pcs {
		if pc.ID == "n4" && pc.Heard {
			t.Errorf("leader claims to have heard n4: %+v", pc)
		}
	}
	c.onLeader("RemoveServer", func(n *Node) error { return n.RemoveServer(context.Background(), "n4") }, 0, 1, 2)
	c.mustPropose(SetAntiFlap{Cluster: "c1"}, 0, 1, 2)
}

func TestLoadTLSErrorsNameTheField(t *testing.T) {
	ca := newTestCA(t, "regent")
	good := ca.issue("n1", "127.0.0.1")
	tests := []struct {
		name  string
		cfg   TLSConfig
		field string
	}{
		{"missing CA file", TLSConfig{CAFile: "/nonexistent/ca.pem", CertFile: good.CertFile, KeyFile: good.KeyFile}, "TLS.CAFile"},
		{"CA file without PEM", TLSConfig{CAFile: writeFile(t, "junk.pem", []byte("junk")), CertFile: good.CertFile, KeyFile: good.KeyFile}, "TLS.CAFile"},
		{"key does not match", TLSConfig{CAFile: good.CAFile, CertFile: good.CertFile, KeyFile: ca.issue("other").KeyFile}, "TLS.CertFile"},
		{"no agent URI: says how to make one", ca.issueMySQL("n1", "127.0.0.1"), "make-certs.sh"},
		{"another agent's certificate", ca.issue("n2", "127.0.0.1"), `names agent "n2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadTLS(tt.cfg, "n1")
			var ce *ConfigError
			if err == nil || !strings.Contains(err.Error(), tt.field) || !errors.As(err, &ce) || ce.Field != "TLS.CAFile" && ce.Field != "TLS.CertFile" {
				t.Fatalf("error = %v, want a ConfigError mentioning %s", err, tt.field)
			}
		})
	}
	if !bytes.Contains(ca.pem, []byte("BEGIN CERTIFICATE")) {
		t.Fatal("bad test CA")
	}
}
