package topology

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// A binlog watch is a binlog dump connection held only as evidence of life:
// the source sends every event it logs and, on an idle stream, a heartbeat
// every period; every packet received is a timestamped sign that the source
// runs. Silence longer than a few periods means the source is not sending
// (frozen mysqld, frozen host, network cut), which a TCP connect cannot tell:
// a frozen mysqld still accepts connections.
//
// The dump is deliberately smaller than a replica's: it never registers
// (COM_REGISTER_SLAVE), so it is not listed by SHOW SLAVE HOSTS / SHOW
// REPLICAS; it never asks for semi-sync, so it never acknowledges a
// transaction nor counts among the semi-sync clients; it starts at the
// source's current end, so it never replays history; and it does not parse
// events beyond their 19-byte header.

// WatchConfig says how to hold a binlog watch on a source.
type WatchConfig struct {
	// Addr is the source's host:port.
	Addr string
	// User needs REPLICATION SLAVE only (Regent uses its replication user).
	// Password never appears in errors or logs.
	User, Password string
	// TLS for the connection; nil means plain text.
	TLS *tls.Config
	// ServerID is the server id the dump presents. It must differ from every
	// real server's and from every other watcher's on the same source:
	// MariaDB ends an existing dump with the same id when a new one starts.
	// WatchServerID derives one from an agent's node id.
	ServerID uint32
	// Heartbeat is the period the source is asked to send heartbeats at on
	// an idle stream. The servers count it in nanoseconds but fire it at a
	// millisecond granularity; 0 means one second.
	Heartbeat time.Duration
	// ConnectTimeout bounds connecting, logging in and starting the dump;
	// 0 means two seconds.
	ConnectTimeout time.Duration
	// Silence is how long WatchBinlog waits without any packet before it
	// gives up with a timeout error, so that a connection the network
	// silently dropped is not held forever; 0 means four heartbeat periods.
	// The caller's failure detector should not wait for it: it has the
	// times of the beats.
	Silence time.Duration
}

func (c WatchConfig) withDefaults() WatchConfig {
	c.Heartbeat = orDefault(c.Heartbeat, time.Second)
	c.ConnectTimeout = orDefault(c.ConnectTimeout, 2*time.Second)
	c.Silence = orDefault(c.Silence, 4*c.Heartbeat)
	return c
}

// Validate checks the fields a watch cannot do without.
func (c WatchConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr %q: %w (want host:port)", c.Addr, err)
	}
	if c.User == "" {
		return errors.New("no user")
	}
	if c.ServerID == 0 {
		// Also a MySQL source ends a dump from server id 0 at the end of
		// its binlog, as it does for mysqlbinlog.
		return errors.New("no server id: derive one with WatchServerID")
	}
	if c.Heartbeat < 0 || c.ConnectTimeout < 0 || c.Silence < 0 {
		return errors.New("negative duration")
	}
	if c.Heartbeat > 0 && c.Heartbeat < time.Millisecond {
		return fmt.Errorf("heartbeat %v: the servers count heartbeats in whole milliseconds", c.Heartbeat)
	}
	if h := orDefault(c.Heartbeat, time.Second); c.Silence > 0 && c.Silence < h {
		return fmt.Errorf("silence %v is shorter than the heartbeat period %v: an idle stream would time out", c.Silence, h)
	}
	return nil
}

// LogValue keeps the password out of structured logs.
func (c WatchConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", c.Addr), slog.String("user", c.User), slog.Uint64("server_id", uint64(c.ServerID)))
}

// String keeps the password out of fmt output.
func (c WatchConfig) String() string {
	return fmt.Sprintf("%s@%s (binlog watch, server_id %d)", c.User, c.Addr, c.ServerID)
}

// The range WatchServerID draws from: 4026531840 to 4294967294, the top
// sixteenth of server_id's range, below its maximum 4294967295. Real servers
// are numbered from 1 by hand or by tooling (counters, ports, dates such as
// 2026120201, all far below), or from an IPv4 address read as a 32-bit
// number, which reaches this range only for 240.0.0.0/4, the reserved class
// E addresses no host has.
const (
	WatchServerIDMin uint32 = 0xF000_0000
	WatchServerIDMax uint32 = 0xFFFF_FFFE
)

// WatchServerID derives a stable binlog watch server id from an agent's node
// id: FNV-1a of the node id mapped into [WatchServerIDMin, WatchServerIDMax].
// Two node ids share a server id with a chance of one in 2^28 per pair; a
// shared id makes their two watchers on a MariaDB source end each other's
// streams at every reconnect.
func WatchServerID(nodeID string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(nodeID))
	return WatchServerIDMin + h.Sum32()%(WatchServerIDMax-WatchServerIDMin+1)
}

// watchDatabase is the default schema a watcher connects with. It marks the
// watcher's dump in the process list: a replica's IO thread connects without
// one, and information_schema is the one schema every account may use.
// ListReplicas leaves such dumps out.
const watchDatabase = "information_schema"

// WatchBinlog connects to the source, starts a binlog dump at the source's
// current end (it never replays history) and calls beat with the time each
// packet arrived — a binlog event or a heartbeat — until the stream breaks
// or ctx ends. beat runs on the reading goroutine: it must return quickly.
//
// It returns ctx.Err() when ctx ends, and otherwise an *Error whose Class
// says how the stream broke: refused (nothing listens), timeout (no answer
// while connecting, or no packet for cfg.Silence), gone_away (the connection
// was closed or reset: a killed source), auth or access_denied (the account
// is wrong). It never returns nil. The caller reconnects.
func WatchBinlog(ctx context.Context, cfg WatchConfig, beat func(receivedAt time.Time)) error {
	return watchBinlog(ctx, cfg, func(at time.Time, _ binlogEvent) { beat(at) })
}

// watchBinlog is WatchBinlog with each event's header, for tests.
func watchBinlog(ctx context.Context, cfg WatchConfig, onEvent func(time.Time, binlogEvent)) error {
	if err := cfg.Validate(); err != nil {
		return &Error{Class: ClassUnknown, Op: "binlog watch", Addr: cfg.Addr, Err: err}
	}
	cfg = cfg.withDefaults()
	w := &watcher{cfg: cfg}
	defer w.close()
	// Ending ctx closes the connection, which ends any read or write in
	// progress, the log-in included.
	stop := context.AfterFunc(ctx, w.close)
	defer stop()

	if err := w.start(ctx); err != nil {
		return w.fail(ctx, "binlog watch start", err)
	}
	var buf []byte
	for {
		if err := w.raw().SetReadDeadline(time.Now().Add(cfg.Silence)); err != nil {
			return w.fail(ctx, "binlog watch", err)
		}
		pkt, err := w.conn.ReadPacketReuseMem(buf[:0])
		at := time.Now()
		if err != nil {
			return w.fail(ctx, "binlog watch", err)
		}
		if cap(pkt) <= maxKeptBuffer {
			buf = pkt // reused for the next packet
		} else {
			buf = nil // one huge event must not pin its memory
		}
		if len(pkt) == 0 {
			return w.fail(ctx, "binlog watch", errors.New("empty packet in the binlog stream"))
		}
		switch pkt[0] {
		case gomysql.OK_HEADER:
			ev, err := parseBinlogEvent(pkt)
			if err != nil {
				return w.fail(ctx, "binlog watch", err)
			}
			onEvent(at, ev)
		case gomysql.ERR_HEADER:
			return w.fail(ctx, "binlog watch", w.conn.HandleErrorPacket(pkt))
		case gomysql.EOF_HEADER:
			return w.fail(ctx, "binlog watch", errSourceEndedStream)
		default:
			return w.fail(ctx, "binlog watch", fmt.Errorf("unexpected packet 0x%02x in the binlog stream", pkt[0]))
		}
	}
}

var errSourceEndedStream = errors.New("the source ended the binlog stream")

// maxKeptBuffer bounds the packet buffer a watch keeps between reads.
const maxKeptBuffer = 1 << 20

// watcher holds one binlog watch connection.
type watcher struct {
	cfg  WatchConfig
	conn *client.Conn

	ioErr firstError // the first error the TCP connection met

	mu     sync.Mutex
	net    net.Conn // the TCP connection, under TLS if any
	closed bool
}

// start connects, logs in and sends the dump command, all within the
// connect timeout.
func (w *watcher) start(ctx context.Context) error {
	deadline := time.Now().Add(w.cfg.ConnectTimeout)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Deadline: deadline}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		wc := &notingConn{Conn: c, note: w.ioErr.note}
		if err := wc.SetDeadline(deadline); err != nil {
			_ = c.Close()
			return nil, err
		}
		if !w.setNet(wc) {
			return nil, net.ErrClosed // ctx ended while dialling
		}
		return wc, nil
	}
	opts := []client.Option{func(c *client.Conn) error {
		if t := w.cfg.TLS; t != nil {
			if t.ServerName == "" && !t.InsecureSkipVerify {
				// As go-sql-driver does: verify the name the address holds.
				t = t.Clone()
				t.ServerName, _, _ = net.SplitHostPort(w.cfg.Addr)
			}
			c.SetTLSConfig(t)
		}
		// Names the connection in MySQL's
		// performance_schema.session_connect_attrs.
		c.SetAttributes(map[string]string{"program_name": "regent-binlog-watch"})
		return nil
	}}
	conn, err := client.ConnectWithDialer(ctx, "tcp", w.cfg.Addr, w.cfg.User, w.cfg.Password, watchDatabase, dial, opts...)
	if err != nil {
		return err
	}
	w.conn = conn
	flavor, err := ParseFlavor(conn.GetServerVersion(), "")
	if err != nil {
		return err
	}
	r, err := conn.Execute(flavor.watchStartSQL())
	if err != nil {
		return err
	}
	start, err := r.GetString(0, 0)
	if err != nil {
		return fmt.Errorf("reading the source's current GTID position: %w", err)
	}
	for _, q := range flavor.watchSetupSQL(w.cfg.Heartbeat, w.cfg.ServerID, start) {
		if _, err := conn.Execute(q); err != nil {
			return err
		}
	}
	dump, err := dumpCommand(flavor, w.cfg.ServerID, start)
	if err != nil {
		return err
	}
	conn.ResetSequence()
	if err := conn.WritePacket(dump); err != nil {
		return err
	}
	// From here on the read loop sets its own deadlines.
	return w.raw().SetDeadline(time.Time{})
}

func (w *watcher) setNet(c net.Conn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		_ = c.Close()
		return false
	}
	w.net = c
	return true
}

func (w *watcher) raw() net.Conn {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.net
}

func (w *watcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed && w.net != nil {
		_ = w.net.Close()
	}
	w.closed = true
}

// fail turns err into what WatchBinlog returns: ctx.Err() once ctx has
// ended, otherwise a classified *Error. go-mysql reports every read and
// write failure as "connection was bad" with the cause flattened into text,
// so the class comes from the error the network connection itself saw.
func (w *watcher) fail(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	class := Classify(err)
	if ioErr := w.ioErr.get(); ioErr != nil {
		class = Classify(ioErr)
		err = fmt.Errorf("%w (%w)", err, ioErr)
	}
	if class == ClassNone {
		class = ClassUnknown
	}
	return &Error{Class: class, Op: op, Addr: w.cfg.Addr, Err: err}
}

// firstError keeps the first error noted.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) note(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Binlog dump commands and flags (MySQL client/server protocol).
const (
	comBinlogDump     = 0x12
	comBinlogDumpGTID = 0x1e
	// binlogThroughGTID says COM_BINLOG_DUMP_GTID carries a GTID set.
	binlogThroughGTID = 0x04
)

// dumpCommand builds the dump request, with room for the packet header.
// MySQL gets COM_BINLOG_DUMP_GTID with @@gtid_executed, encoded: the source
// skips every transaction in it. MariaDB gets COM_BINLOG_DUMP, whose file and
// position it ignores once @slave_connect_state is set (watchSetupSQL).
func dumpCommand(f Flavor, serverID uint32, start string) ([]byte, error) {
	if f == FlavorMariaDB {
		p := make([]byte, 4, 4+1+4+2+4)
		p = append(p, comBinlogDump)
		p = binary.LittleEndian.AppendUint32(p, 4) // position, ignored
		p = binary.LittleEndian.AppendUint16(p, 0) // flags: block, no annotate events
		p = binary.LittleEndian.AppendUint32(p, serverID)
		return p, nil // no file name: ignored too
	}
	set, err := parseMySQLWithLibrary(start)
	if err != nil {
		return nil, fmt.Errorf("the source's @@gtid_executed: %w", err)
	}
	lib, ok := set.(*gomysql.MysqlGTIDSet)
	if !ok {
		return nil, fmt.Errorf("go-mysql returned a %T for @@gtid_executed", set)
	}
	data := lib.Encode()
	p := make([]byte, 4, 4+1+2+4+4+8+4+len(data))
	p = append(p, comBinlogDumpGTID)
	p = binary.LittleEndian.AppendUint16(p, binlogThroughGTID)
	p = binary.LittleEndian.AppendUint32(p, serverID)
	p = binary.LittleEndian.AppendUint32(p, 0) // no file name
	p = binary.LittleEndian.AppendUint64(p, 4) // position, after the magic
	p = binary.LittleEndian.AppendUint32(p, uint32(len(data)))
	return append(p, data...), nil
}

// binlogEvent is the common header of a binlog event as a dump sends it,
// after the packet's 0x00 status byte.
type binlogEvent struct {
	Timestamp uint32
	Type      byte
	ServerID  uint32
	Size      uint32 // the whole event, header and checksum included
	LogPos    uint32 // position of the next event; 0 in artificial events
	Flags     uint16
}

// binlogEventHeaderLen is the v4 event header, common to every event since
// MySQL 5.0 and to MariaDB.
const binlogEventHeaderLen = 19

// Binlog event types a watch tells apart.
const (
	eventRotate            = 4
	eventFormatDescription = 15
	eventHeartbeat         = 27
	eventHeartbeatV2       = 41 // MySQL 8.0.26+
)

// isHeartbeat reports whether the event is a heartbeat, in either flavour.
func (e binlogEvent) isHeartbeat() bool {
	return e.Type == eventHeartbeat || e.Type == eventHeartbeatV2
}

// parseBinlogEvent reads the header of one dump packet: a 0x00 status byte,
// then the event, which must fill the packet exactly (a stream that drifted
// out of step is broken, not merely odd).
func parseBinlogEvent(pkt []byte) (binlogEvent, error) {
	if len(pkt) < 1+binlogEventHeaderLen {
		return binlogEvent{}, fmt.Errorf("binlog packet of %d bytes: shorter than an event header", len(pkt))
	}
	if pkt[0] != gomysql.OK_HEADER {
		return binlogEvent{}, fmt.Errorf("binlog packet starts with 0x%02x, not 0x00", pkt[0])
	}
	b := pkt[1:]
	e := binlogEvent{
		Timestamp: binary.LittleEndian.Uint32(b[0:]),
		Type:      b[4],
		ServerID:  binary.LittleEndian.Uint32(b[5:]),
		Size:      binary.LittleEndian.Uint32(b[9:]),
		LogPos:    binary.LittleEndian.Uint32(b[13:]),
		Flags:     binary.LittleEndian.Uint16(b[17:]),
	}
	if uint64(e.Size) != uint64(len(b)) {
		return binlogEvent{}, fmt.Errorf("binlog event of type %d says %d bytes, packet holds %d", e.Type, e.Size, len(b))
	}
	return e, nil
}
