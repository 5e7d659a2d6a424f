package consensus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// impostor is a TLS server that accepts any client and counts the
// application bytes it receives: what a process listening on a member's
// address would collect from an agent that dials it.
type impostor struct {
	ln       net.Listener
	received atomic.Int64
	wg       sync.WaitGroup
}

func startImpostor(t testing.TB, addr string, c TLSConfig) *impostor {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	im := &impostor{ln: ln}
	im.wg.Add(1)
	go func() {
		defer im.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			im.wg.Add(1)
			go func() {
				defer im.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				n, _ := io.Copy(io.Discard, c)
				im.received.Add(n)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); im.wg.Wait() })
	return im
}

// TestStreamLayerRefusesWhoIsNotAMember: a certificate from the cluster's
// CA is not enough. On accept the client's certificate must name a member
// (URI SAN urn:regent:agent:ID); on dial the server's must name the member
// configured at the address dialled. mysqld's certificates — from their own
// CA as make-certs.sh makes them, or from the agents' CA by mistake — name
// no agent and are refused either way. Issue 11 item 1: the old layer
// accepted any certificate the CA had signed, in both directions.
func TestStreamLayerRefusesWhoIsNotAMember(t *testing.T) {
	regentCA := newTestCA(t, "regent")
	mysqlCA := newTestCA(t, "mysql")
	n3Addr := "127.0.0.1:3"

	t.Run("inbound", func(t *testing.T) {
		serverLog := newLogSink(t, "n1")
		members := map[string]string{"n1": "127.0.0.1:1", "n2": "127.0.0.1:2", "n3": n3Addr}
		server := newTestLayer(t, regentCA.issue("n1", "127.0.0.1"), "n1", members, serverLog.logger(slog.LevelDebug))
		accepted := acceptAll(server)
		addr := server.ln.Addr().String()
		cases := []struct {
			name      string
			cert      TLSConfig
			logged    string
			presented string
		}{
			{"an agent certificate of the CA, not a member", regentCA.issue("n9", "127.0.0.1"), "agent n9 is not a member of this Raft group", "urn:regent:agent:n9"},
			{"mysqld's certificate, signed by the agents' CA by mistake", regentCA.issueMySQL("db2", "127.0.0.1"), "names no agent", "no URI SAN"},
			{"mysqld's certificate from its own CA", mysqlCA.issueMySQL("db2", "127.0.0.1"), "certificate signed by unknown authority", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				cert, err := tls.LoadX509KeyPair(tc.cert.CertFile, tc.cert.KeyFile)
				if err != nil {
					t.Fatal(err)
				}
				err = tlsExchange(addr, &tls.Config{RootCAs: regentCA.pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
					GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
				if err == nil {
					t.Fatal("the layer accepted the connection")
				}
				waitFor(t, 5*time.Second, "the rejection in n1's log", func() bool {
					return logHas(serverLog, "raft peer rejected", `"direction":"inbound"`, tc.logged, tc.presented)
				})
				select {
				case c := <-accepted:
					t.Fatalf("a refused connection reached Raft: %v", c.RemoteAddr())
				default:
				}
			})
		}
		t.Run("a member", func(t *testing.T) {
			client := newTestLayer(t, regentCA.issue("n2", "127.0.0.1"), "n2", map[string]string{"n1": addr, "n2": "127.0.0.1:2"}, nil)
			c, err := client.Dial(raft.ServerAddress(addr), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case s := <-accepted:
				s.Close()
			case <-time.After(5 * time.Second):
				t.Fatal("a member's connection did not reach Raft")
			}
		})
	})

	t.Run("outbound", func(t *testing.T) {
		cases := []struct {
			name   string
			cert   TLSConfig
			at     string // whom n1's configuration puts at the impostor's address ("" nobody)
			logged string
		}{
			{"an agent certificate of the CA, not a member", regentCA.issue("n9", "127.0.0.1"), "n2", "expected agent n2, and the certificate names agent n9"},
			{"another member's certificate", regentCA.issue("n3", "127.0.0.1"), "n2", "expected agent n2, and the certificate names agent n3"},
			{"mysqld's certificate of the member's host, from the agents' CA by mistake", regentCA.issueMySQL("db2", "127.0.0.1"), "n2", "expected agent n2, and the certificate names no agent"},
			{"mysqld's certificate from its own CA", mysqlCA.issueMySQL("db2", "127.0.0.1"), "n2", "certificate signed by unknown authority"},
			{"an address where no member is configured", regentCA.issue("n2", "127.0.0.1"), "", "no member of the Raft configuration is at"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				im := startImpostor(t, "127.0.0.1:0", tc.cert)
				addr := im.ln.Addr().String()
				members := map[string]string{"n1": "127.0.0.1:1", "n3": n3Addr}
				if tc.at != "" {
					members[tc.at] = addr
				}
				clientLog := newLogSink(t, "n1")
				client := newTestLayer(t, regentCA.issue("n1", "127.0.0.1"), "n1", members, clientLog.logger(slog.LevelDebug))
				c, err := client.Dial(raft.ServerAddress(addr), 2*time.Second)
				if err == nil {
					_, _ = c.Write([]byte("append entries, with the agent token's worth of secrets"))
					c.Close()
					t.Fatal("n1 dialled the impostor")
				}
				if !logHas(clientLog, "raft peer rejected", `"direction":"outbound"`, tc.logged) {
					t.Fatalf("no outbound rejection mentioning %q in:\n%s", tc.logged, clientLog)
				}
				_ = im.ln.Close()
				im.wg.Wait()
				if n := im.received.Load(); n != 0 {
					t.Fatalf("the impostor received %d bytes", n)
				}
			})
		}
	})
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(ca.pem)
	return p
}

// intruderTransport is a Raft network transport whose TLS layer presents
// cert (agent id's) and dials target as member targetID: the intruder's
// side of the check passes, so only the member's check can stop it.
func intruderTransport(t testing.TB, cert TLSConfig, id, targetID, target string) raft.Transport {
	t.Helper()
	sl := newTestLayer(t, cert, id, map[string]string{targetID: target}, nil)
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: sl, MaxPool: 1, Timeout: 2 * time.Second,
		Logger: newHCLogAdapter(slog.New(slog.DiscardHandler), "intruder")})
	t.Cleanup(func() { _ = nt.Close() })
	return nt
}

// TestNonMemberCannotDriveRaft: a process holding a certificate the
// cluster's CA signed for an agent that is not a member — or, as
// make-certs.sh used to make it, for a mysqld — reaches a member's Raft port
// and sends AppendEntries with a higher term, as a leader would. Before
// issue 11 that reached Raft: the follower adopted the term (and would have
// taken the entries and a snapshot). Now the handshake refuses it, the
// follower's term does not move, and its log says what was presented.
func TestNonMemberCannotDriveRaft(t *testing.T) {
	ca := newTestCA(t, "regent")
	c := newTCPCluster(t, 3, func(i int) TLSConfig { return ca.issue(fmt.Sprintf("n%d", i+1), "127.0.0.1") }, nil)
	c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})
	l := c.waitLeader()
	f := (l + 1) % 3
	target, fid := c.cfgs[f].RaftAddr, c.cfgs[f].NodeID
	for _, tc := range []struct {
		name string
		cert TLSConfig
		id   string
		want string
	}{
		{"an agent that is not a member", ca.issue("n9", "127.0.0.1"), "n9", "agent n9 is not a member"},
		{"mysqld's certificate from the agents' CA", ca.issueWith("db2", nil, "127.0.0.1"), "", "names no agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := c.nodes[f].Stats().Term
			var trans raft.Transport
			if tc.id != "" {
				trans = intruderTransport(t, tc.cert, tc.id, fid, target)
			} else {
				// mysqld's certificate names no agent: its own layer would
				// refuse to load it, so dial with bare TLS.
				trans = rawTLSTransport(t, tc.cert, ca)
			}
			var resp raft.AppendEntriesResponse
			err := trans.AppendEntries(raft.ServerID(fid), raft.ServerAddress(target), &raft.AppendEntriesRequest{
				RPCHeader: raft.RPCHeader{ID: []byte("n9"), Addr: []byte(trans.LocalAddr())},
				Term:      before + 100, PrevLogEntry: 0, PrevLogTerm: 0, LeaderCommitIndex: 0,
			}, &resp)
			if err == nil {
				t.Fatalf("the member answered the intruder's AppendEntries: %+v", resp)
			}
			waitFor(t, 5*time.Second, "the rejection in "+fid+"'s log", func() bool {
				return logHas(c.logs[f], "raft peer rejected", `"direction":"inbound"`, tc.want)
			})
			if after := c.nodes[f].Stats().Term; after >= before+100 {
				t.Fatalf("%s took the intruder's term %d", fid, after)
			}
		})
	}
	// The cluster is untouched.
	c.mustPropose(SetAntiFlap{Cluster: "c1", Until: at(5)})
}

// rawTLSTransport dials with crypto/tls directly and any certificate.
func rawTLSTransport(t testing.TB, cert TLSConfig, ca *testCA) raft.Transport {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stream := &rawStream{Listener: ln, cfg: &tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS13, ServerName: "127.0.0.1",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }}}
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 1, Timeout: 2 * time.Second,
		Logger: newHCLogAdapter(slog.New(slog.DiscardHandler), "intruder")})
	t.Cleanup(func() { _ = nt.Close() })
	return nt
}

type rawStream struct {
	net.Listener
	cfg *tls.Config
}

func (s *rawStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{Config: s.cfg}
	return d.DialContext(ctx, "tcp", string(addr))
}

// TestImpostorAtAMembersAddressGetsNothing: with a member down, a process
// listens on its Raft address with a certificate the CA signed for another
// agent. The leader dials it, finds the wrong agent, and sends it nothing
// (before issue 11 it sent it AppendEntries: the replicated state, every
// heartbeat).
func TestImpostorAtAMembersAddressGetsNothing(t *testing.T) {
	ca := newTestCA(t, "regent")
	c := newTCPCluster(t, 3, func(i int) TLSConfig { return ca.issue(fmt.Sprintf("n%d", i+1), "127.0.0.1") }, nil)
	l := c.waitLeader()
	down := (l + 1) % 3
	addr, id := c.cfgs[down].RaftAddr, c.cfgs[down].NodeID
	c.stop(down)
	im := startImpostor(t, addr, ca.issue("n9", "127.0.0.1"))
	out := c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})
	waitFor(t, 10*time.Second, "the leader's refusal of the impostor", func() bool {
		return logHas(c.logs[l], "raft peer rejected", `"direction":"outbound"`, `"expected":"`+id+`"`, "urn:regent:agent:n9")
	})
	c.waitApplied(l, out.Index)
	time.Sleep(500 * time.Millisecond) // heartbeats go every 20 ms
	if n := im.received.Load(); n != 0 {
		t.Fatalf("the impostor received %d bytes of Raft traffic", n)
	}
}

// TestTLSMembershipChangesTheAcceptedSet: an agent joining a running
// cluster accepts the agents it was told run it until it has the
// configuration (JoinPeers), and the members accept it once the leader has
// added it; a removed member's certificate is refused from then on.
func TestTLSMembershipChangesTheAcceptedSet(t *testing.T) {
	ca := newTestCA(t, "regent")
	c := newTCPCluster(t, 3, func(i int) TLSConfig { return ca.issue(fmt.Sprintf("n%d", i+1), "127.0.0.1") }, nil)
	c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})

	cfg4 := c.cfgs[0]
	cfg4.NodeID, cfg4.RaftAddr, cfg4.DataDir = "n4", fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0]), t.TempDir()
	cfg4.Peers, cfg4.JoinPeers = nil, c.cfgs[0].Peers
	cfg4.TLS = ca.issue("n4", "127.0.0.1")
	c.cfgs = append(c.cfgs, cfg4)
	c.nodes = append(c.nodes, nil)
	c.logs = append(c.logs, newLogSink(t, "n4"))
	c.startTCP(3)
	c.onLeader("AddVoter", func(n *Node) error { return n.AddVoter(context.Background(), "n4", cfg4.RaftAddr) }, 0, 1, 2)
	out := c.mustPropose(SetAntiFlap{Cluster: "c1", Until: at(5)})
	c.waitApplied(3, out.Index)
	if cl, ok := c.nodes[3].Cluster("c1"); !ok || cl.Primary != "db1" {
		t.Fatalf("n4 has %+v", cl)
	}

	// Remove n3 (not the leader), then present n3's certificate.
	l := c.waitLeader()
	gone := 2
	if l == 2 {
		gone = 1
	}
	goneID := c.cfgs[gone].NodeID
	c.onLeader("RemoveServer", func(n *Node) error { return n.RemoveServer(context.Background(), goneID) }, 0, 1, 2, 3)
	c.stop(gone)
	l = c.waitLeader()
	trans := intruderTransport(t, c.cfgs[gone].TLS, goneID, c.cfgs[l].NodeID, c.cfgs[l].RaftAddr)
	var resp raft.AppendEntriesResponse
	err := trans.AppendEntries(raft.ServerID(c.cfgs[l].NodeID), raft.ServerAddress(c.cfgs[l].RaftAddr), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte(goneID), Addr: []byte(c.cfgs[gone].RaftAddr)}, Term: 1000}, &resp)
	if err == nil {
		t.Fatalf("the leader answered the removed member: %+v", resp)
	}
	waitFor(t, 5*time.Second, "the leader's refusal of the removed member", func() bool {
		return logHas(c.logs[l], "raft peer rejected", "agent "+goneID+" is not a member")
	})
	c.mustPropose(SetAntiFlap{Cluster: "c1"})
}

// TestPlainTCPRaftNeedsTheInsecureSetting: without TLS files Start refuses
// to run (issue 11: it used to run with a warning, and anyone reaching the
// port could rewrite the state) unless InsecurePlaintext says so, and then
// it warns at every start.
func TestPlainTCPRaftNeedsTheInsecureSetting(t *testing.T) {
	ca := newTestCA(t, "regent")
	base := DefaultConfig()
	testTimings(&base)
	base.NodeID, base.RaftAddr = "n1", fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	base.Peers = []Peer{{ID: "n1", RaftAddr: base.RaftAddr}}

	cfg := base
	cfg.DataDir = t.TempDir()
	_, err := Start(context.Background(), cfg, nil)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "TLS" || !strings.Contains(err.Error(), "make-certs.sh") || !strings.Contains(err.Error(), "InsecurePlaintext") {
		t.Fatalf("Start without TLS = %v, want a ConfigError for TLS naming make-certs.sh and InsecurePlaintext", err)
	}
	if entries, _ := os.ReadDir(cfg.DataDir); len(entries) != 0 {
		t.Fatalf("a refused start left %d files in the data directory", len(entries))
	}

	cfg.TLS, cfg.InsecurePlaintext = ca.issue("n1", "127.0.0.1"), true
	if _, err := Start(context.Background(), cfg, nil); !errors.As(err, &ce) || ce.Field != "InsecurePlaintext" {
		t.Fatalf("Start with TLS and InsecurePlaintext = %v, want a ConfigError for InsecurePlaintext", err)
	}

	cfg = base
	cfg.InsecurePlaintext, cfg.DataDir = true, t.TempDir()
	for start := range 2 { // the first start and a restart
		log := newLogSink(t, "n1")
		n, err := Start(context.Background(), cfg, log.logger(slog.LevelInfo))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.Close(ctx)
		cancel()
		if !logHas(log, `"level":"WARN"`, "INSECURE: raft runs over plain TCP") {
			t.Fatalf("start %d: no warning:\n%s", start+1, log)
		}
	}
}
