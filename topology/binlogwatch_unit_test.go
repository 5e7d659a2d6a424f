package topology

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// Run locally with, for example:
//
//	go test ./topology -run '^$' -fuzz FuzzParseBinlogEvent -fuzztime 30s
//
// Without -fuzz the seeds below run as ordinary tests.

// eventPacket builds a dump packet: the 0x00 status byte, a v4 header and
// body. size overrides the header's event size when not 0.
func eventPacket(typ byte, body []byte, size uint32) []byte {
	p := []byte{0x00}
	p = binary.LittleEndian.AppendUint32(p, 1796514456) // timestamp
	p = append(p, typ)
	p = binary.LittleEndian.AppendUint32(p, 42) // server id
	if size == 0 {
		size = uint32(binlogEventHeaderLen + len(body))
	}
	p = binary.LittleEndian.AppendUint32(p, size)
	p = binary.LittleEndian.AppendUint32(p, 1930) // next position
	p = binary.LittleEndian.AppendUint16(p, 0x20) // flags
	return append(p, body...)
}

func TestParseBinlogEvent(t *testing.T) {
	// A MySQL 9.7 heartbeat as captured: log name and CRC32 checksum.
	heartbeat := eventPacket(eventHeartbeat, append([]byte("binlog.000002"), 1, 2, 3, 4), 0)
	cases := []struct {
		name    string
		pkt     []byte
		want    binlogEvent
		wantErr string
	}{
		{"heartbeat", heartbeat, binlogEvent{Timestamp: 1796514456, Type: eventHeartbeat, ServerID: 42, Size: 36, LogPos: 1930, Flags: 0x20}, ""},
		{"header only", eventPacket(eventRotate, nil, 0), binlogEvent{Timestamp: 1796514456, Type: eventRotate, ServerID: 42, Size: 19, LogPos: 1930, Flags: 0x20}, ""},
		{"empty", nil, binlogEvent{}, "shorter than an event header"},
		{"short header", heartbeat[:19], binlogEvent{}, "shorter than an event header"},
		{"error packet", append([]byte{0xff}, heartbeat[1:]...), binlogEvent{}, "not 0x00"},
		{"size beyond packet", eventPacket(eventHeartbeat, []byte("x"), 100), binlogEvent{}, "says 100 bytes, packet holds 20"},
		{"size short of packet", eventPacket(eventHeartbeat, []byte("xyz"), 19), binlogEvent{}, "says 19 bytes, packet holds 22"},
		// A semi-sync header (0xef, flag) before the event would shift it:
		// a watch never asks for one, and must not misread one.
		{"semi-sync header", append([]byte{0x00, 0xef, 0x00}, heartbeat[1:]...), binlogEvent{}, "packet holds"},
	}
	for _, tc := range cases {
		got, err := parseBinlogEvent(tc.pkt)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr == "" && got != tc.want:
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	for typ, want := range map[byte]bool{eventHeartbeat: true, eventHeartbeatV2: true, eventRotate: false, eventFormatDescription: false, 33: false, 162: false} {
		if got := (binlogEvent{Type: typ}).isHeartbeat(); got != want {
			t.Errorf("type %d: isHeartbeat %v, want %v", typ, got, want)
		}
	}
}

func FuzzParseBinlogEvent(f *testing.F) {
	f.Add(eventPacket(eventHeartbeat, []byte("binlog.000002\x01\x02\x03\x04"), 0))
	f.Add(eventPacket(eventFormatDescription, bytes.Repeat([]byte{7}, 100), 0))
	f.Add(eventPacket(162, nil, 0xffffffff))
	f.Add([]byte{0x00})
	f.Add([]byte{0xfe, 0, 0, 2, 0})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		ev, err := parseBinlogEvent(pkt)
		if err != nil {
			return
		}
		// Accepted: a 0x00 byte and an event whose stated size is exactly
		// the rest, with the header fields where the format puts them.
		if pkt[0] != 0x00 || int(ev.Size) != len(pkt)-1 || len(pkt) < 1+binlogEventHeaderLen {
			t.Fatalf("accepted %x as %+v", pkt, ev)
		}
		if again := eventPacket(ev.Type, pkt[1+binlogEventHeaderLen:], 0); len(again) != len(pkt) || ev.Type != pkt[5] ||
			ev.LogPos != binary.LittleEndian.Uint32(pkt[14:]) || ev.Flags != binary.LittleEndian.Uint16(pkt[18:]) {
			t.Fatalf("fields of %x read as %+v", pkt, ev)
		}
	})
}

func TestWatchServerID(t *testing.T) {
	seen := map[uint32]string{}
	for i := 0; i < 10000; i++ {
		node := fmt.Sprintf("node-%d", i)
		id := WatchServerID(node)
		if id < WatchServerIDMin || id > WatchServerIDMax {
			t.Fatalf("%s: server id %d outside [%d, %d]", node, id, WatchServerIDMin, WatchServerIDMax)
		}
		if id != WatchServerID(node) {
			t.Fatalf("%s: server id not stable", node)
		}
		if other, ok := seen[id]; ok {
			// 10,000 ids in 2^28: a collision would be a one-in-5,000 event,
			// not worth tolerating in a deterministic test.
			t.Fatalf("%s and %s share server id %d", node, other, id)
		}
		seen[id] = node
	}
	if WatchServerID("") < WatchServerIDMin {
		t.Fatalf("the empty node id falls outside the range")
	}
}

func TestWatchConfigValidate(t *testing.T) {
	ok := WatchConfig{Addr: "10.0.0.1:3306", User: "repl", Password: "secret-pw", ServerID: WatchServerID("a")}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*WatchConfig)
		want string
	}{
		{"no port", func(c *WatchConfig) { c.Addr = "10.0.0.1" }, "host:port"},
		{"no user", func(c *WatchConfig) { c.User = "" }, "no user"},
		{"no server id", func(c *WatchConfig) { c.ServerID = 0 }, "no server id"},
		{"negative", func(c *WatchConfig) { c.Silence = -time.Second }, "negative"},
		{"sub-millisecond heartbeat", func(c *WatchConfig) { c.Heartbeat = time.Microsecond }, "milliseconds"},
		{"silence under the default heartbeat", func(c *WatchConfig) { c.Silence = 500 * time.Millisecond }, "shorter than the heartbeat"},
	}
	for _, tc := range cases {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
		// WatchBinlog refuses it without connecting, with the class unknown.
		if werr := WatchBinlog(t.Context(), c, func(time.Time) { t.Fatal("beat") }); Classify(werr) != ClassUnknown {
			t.Errorf("%s: WatchBinlog returned %v", tc.name, werr)
		}
	}
	d := ok.withDefaults()
	if d.Heartbeat != time.Second || d.ConnectTimeout != 2*time.Second || d.Silence != 4*time.Second {
		t.Errorf("defaults: %+v", d)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("watch", "cfg", ok)
	for _, text := range []string{ok.String(), fmt.Sprint(ok), fmt.Sprintf("%v", ok), logged.String()} {
		if strings.Contains(text, ok.Password) {
			t.Errorf("password in %q", text)
		}
	}
}

func TestDumpCommand(t *testing.T) {
	p, err := dumpCommand(FlavorMariaDB, 0xF1234567, "0-1-100")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 0, comBinlogDump, 4, 0, 0, 0, 0, 0, 0x67, 0x45, 0x23, 0xF1}
	if !bytes.Equal(p, want) {
		t.Errorf("MariaDB dump %x, want %x", p, want)
	}

	set := "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n3e11fa47-71ca-11e1-9e33-c80aa9429563:1-3:7"
	for _, f := range []Flavor{FlavorMySQL80, FlavorMySQL84} {
		p, err := dumpCommand(f, 0xF1234567, set)
		if err != nil {
			t.Fatal(err)
		}
		lib, _ := gomysql.ParseMysqlGTIDSet(set)
		data := lib.Encode()
		head := p[4 : 4+1+2+4+4+8+4]
		if head[0] != comBinlogDumpGTID || binary.LittleEndian.Uint16(head[1:]) != binlogThroughGTID ||
			binary.LittleEndian.Uint32(head[3:]) != 0xF1234567 || binary.LittleEndian.Uint32(head[7:]) != 0 ||
			binary.LittleEndian.Uint64(head[11:]) != 4 || binary.LittleEndian.Uint32(head[19:]) != uint32(len(data)) {
			t.Errorf("%s dump header %x", f, head)
		}
		if !bytes.Equal(p[len(p)-len(data):], data) || len(p) != 4+len(head)+len(data) {
			t.Errorf("%s dump GTID data %x, want %x", f, p[4+len(head):], data)
		}
	}
	if _, err := dumpCommand(FlavorMySQL84, 1, "not a gtid set"); err == nil {
		t.Errorf("a malformed @@gtid_executed was encoded")
	}
}
