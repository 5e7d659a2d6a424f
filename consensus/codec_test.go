package consensus

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
	"time"
)

// everyCommand holds one command of each kind, with every field set.
func everyCommand() []Command {
	local := time.FixedZone("CET", 3600) // encoded as an instant, decoded in UTC
	return []Command{
		InitCluster{Cluster: "c1", Primary: "db1", At: at(0)},
		BeginOperation{Cluster: "c1", OperationID: "op-1", Kind: KindForcedFailover, ExpectEpoch: 1 << 40, Target: "db2",
			Trigger: "dead: connection refused", Automatic: true, At: at(1).In(local)},
		RecordStep{Cluster: "c1", OperationID: "op-1", Step: Step{Name: "promote", Start: at(2), Duration: 1500 * time.Microsecond,
			Result: StepSkipped, Detail: "line 1\nline 2 — ünïcode"}},
		CommitPrimary{Cluster: "c1", OperationID: "op-1", NewPrimary: "db2", ExpectEpoch: 9, GTID: "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", At: at(3)},
		FinishOperation{Cluster: "c1", OperationID: "op-1", Result: ResultFailed, Reason: "post-hook failed", At: at(4)},
		AbortOperation{Cluster: "c1", OperationID: "op-1", Reason: "leader lost", At: at(5)},
		SetPaused{Cluster: "c1", Paused: true, By: "alice", Reason: "maintenance", At: at(6)},
		SetAntiFlap{Cluster: "c1", Until: at(7)},
		SetAntiFlap{Cluster: "c1"},
		SetPromotionRule{Cluster: "c1", Instance: "db3", Rule: PromotionMustNot},
		SetQuarantine{Cluster: "c1", Instance: "db1", Reason: "errant", By: "regent", At: at(8)},
		ClearQuarantine{Cluster: "c1", Instance: "db1"},
		SetMember{Member: Member{ID: "a1", RaftAddr: "10.0.0.1:7000", APIAddr: "10.0.0.1:8080", Instance: "db1"}},
		RemoveMember{ID: "a1"},
		SetCandidate{Cluster: "c1", OperationID: "op-1", Instance: "db2"},
		SetSemiSyncDegraded{Cluster: "c1", OperationID: "op-2", Degraded: true, Reason: "no replica for 30s", At: at(9)},
		SetMaintenance{Cluster: "c1", Instance: "db3", On: true, By: "alice", Reason: "kernel upgrade", At: at(10), Until: at(11)},
		SetMaintenance{Cluster: "c1", Instance: "db3", By: "alice", At: at(12)},
		AckOperation{Cluster: "c1", OperationID: "op-1", By: "alice", Comment: "disk failed; replaced", At: at(13)},
		SetSource{Cluster: "c1", Instance: "db3", Source: "db2", By: "alice", At: at(14)},
		SetSource{Cluster: "c1", Instance: "db3", By: "alice", At: at(15)},
		SetInstance{Cluster: "c1", Instance: "db4", Address: "10.0.0.4:3306", Promotion: "prefer", Labels: map[string]string{"zone": "a", "region": "eu"}, By: "alice", At: at(17)},
		SetInstance{Cluster: "c1", Instance: "db2", Remove: true, By: "alice", At: at(18)},
		DefineCluster{Cluster: "c2", Definition: "name: c2\ninstances:\n  - {name: x1, address: 10.0.1.1:3306}\n", By: "alice", At: at(19)},
		DefineCluster{Cluster: "c2", Remove: true, By: "alice", At: at(20)},
		SetConfig{Cluster: "c1", ExpectVersion: 3, Settings: "anti_flap_period: 10m\n", Change: "anti_flap_period: 1h0m0s → 10m0s", By: "alice", At: at(16)},
	}
}

// normalized is what a command decodes to: times in UTC.
func normalized(c Command) Command {
	switch c := c.(type) {
	case BeginOperation:
		c.At = c.At.UTC()
		return c
	}
	return c
}

func TestCommandRoundTrip(t *testing.T) {
	seen := map[cmdKind]bool{}
	for _, c := range everyCommand() {
		t.Run(c.Name(), func(t *testing.T) {
			b, err := EncodeCommand(c)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != CommandVersion || cmdKind(b[1]) != c.kind() {
				t.Fatalf("header % x", b[:2])
			}
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatal(err)
			}
			if want := normalized(c); !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %#v\nwant    %#v", got, want)
			}
			seen[c.kind()] = true
		})
	}
	for k := range decoders {
		if !seen[k] {
			t.Errorf("kind %d has no round-trip case", k)
		}
	}
}

// withCRC replaces the last four bytes of b (or appends them) with a correct
// checksum, to reach the body decoder with arbitrary bodies.
func withCRC(body []byte) []byte {
	out := append([]byte{}, body...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

func TestDecodeCommandRejects(t *testing.T) {
	good := mustEncode(t, BeginOperation{Cluster: "c1", OperationID: "op", Kind: KindFailover, ExpectEpoch: 1, Automatic: true, At: at(0)})
	body := good[:len(good)-trailerLen]
	flipped := append([]byte{}, good...)
	flipped[5] ^= 0x01
	badBool := append([]byte{}, body...)
	// Body: cluster(3) op(3) kind(1) epoch(1) target(1) trigger(1) automatic(1) ...
	badBool[2+3+3+1+1+1+1] = 7
	badKind := append([]byte{}, body...)
	badKind[2+3+3] = 99

	tests := []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"nil", nil, "truncated"},
		{"too short", good[:5], "truncated"},
		{"version 0", withCRC(append([]byte{0}, body[1:]...)), "unsupported command version 0"},
		{"newer version", withCRC(append([]byte{CommandVersion + 1}, body[1:]...)), "unsupported command version"},
		{"flipped bit", flipped, "checksum"},
		{"truncated body", withCRC(body[:len(body)-3]), "truncated"},
		{"trailing bytes", withCRC(append(append([]byte{}, body...), 0)), "trailing"},
		{"unknown kind", withCRC(append([]byte{CommandVersion, 200}, body[2:]...)), "unknown command kind 200"},
		{"bad boolean", withCRC(badBool), "boolean"},
		{"bad enum", withCRC(badKind), "enum"},
		{"invalid utf-8", withCRC([]byte{CommandVersion, byte(kindRemoveMember), 2, 0xff, 0xfe}), "UTF-8"},
		{"control character in a name", withCRC([]byte{CommandVersion, byte(kindRemoveMember), 2, 'a', '\n'}), "control"},
		{"huge string length", withCRC([]byte{CommandVersion, byte(kindRemoveMember), 0xff, 0xff, 0xff, 0xff, 0x0f}), "truncated"},
		{"varint overflow", withCRC(append([]byte{CommandVersion, byte(kindRemoveMember)}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), "overflow"},
		{"too large", make([]byte, MaxCommandSize+1), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeCommand(tt.data)
			if err == nil {
				t.Fatalf("decoded %#v", c)
			}
			if !errors.Is(err, ErrInvalidCommand) {
				t.Errorf("error %v does not wrap ErrInvalidCommand", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestDecodeEveryPrefixFails(t *testing.T) {
	for _, c := range everyCommand() {
		b := mustEncode(t, c)
		for n := range len(b) {
			if _, err := DecodeCommand(b[:n]); err == nil {
				t.Fatalf("%s: prefix of %d/%d bytes decoded", c.Name(), n, len(b))
			}
			// With a valid checksum too, so the body decoder sees the cut.
			if n >= headerLen {
				if _, err := DecodeCommand(withCRC(b[:n])); err == nil && n != len(b)-trailerLen {
					t.Fatalf("%s: body cut at %d decoded", c.Name(), n)
				}
			}
		}
	}
}

func TestEncodeCommandValidates(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		want string
	}{
		{"nil", nil, "nil command"},
		{"empty cluster", SetAntiFlap{}, "cluster: must not be empty"},
		{"zero time", InitCluster{Cluster: "c"}, "at: must be set"},
		{"time out of range", InitCluster{Cluster: "c", At: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}, "out of range"},
		{"negative duration", RecordStep{Cluster: "c", OperationID: "o", Step: Step{Name: "s", Start: at(0), Duration: -1, Result: StepOK}}, "negative"},
		{"unknown step result", RecordStep{Cluster: "c", OperationID: "o", Step: Step{Name: "s", Start: at(0), Result: "maybe"}}, "unknown step result"},
		{"epoch zero", CommitPrimary{Cluster: "c", OperationID: "o", NewPrimary: "p", At: at(0)}, "expect_epoch"},
		{"long name", RemoveMember{ID: strings.Repeat("x", MaxNameLen+1)}, "more than"},
		{"maintenance without a reason", SetMaintenance{Cluster: "c", Instance: "i", On: true, At: at(0), Until: at(1)}, "reason: must not be empty"},
		{"maintenance without an end", SetMaintenance{Cluster: "c", Instance: "i", On: true, Reason: "r", At: at(0)}, "until: must be set"},
		{"maintenance ending before it starts", SetMaintenance{Cluster: "c", Instance: "i", On: true, Reason: "r", At: at(1), Until: at(1)}, "must end after it starts"},
		{"largest text still encodes", SetQuarantine{Cluster: "c", Instance: "i", Reason: strings.Repeat("r", MaxTextLen), At: at(0)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := EncodeCommand(tt.cmd)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want ErrInvalidCommand mentioning %q", err, tt.want)
			}
		})
	}
}

// FuzzDecodeCommand: decoding never panics; whatever decodes re-encodes to
// the same command; applying it to a populated state never panics and, when
// rejected, changes nothing.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range everyCommand() {
		b, err := EncodeCommand(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 0, 0})
	base := richState(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(data []byte) {
			cmd, err := DecodeCommand(data)
			if err != nil {
				if !errors.Is(err, ErrInvalidCommand) {
					t.Fatalf("error %v does not wrap ErrInvalidCommand", err)
				}
				return
			}
			again, err := EncodeCommand(cmd)
			if err != nil {
				t.Fatalf("decoded %#v does not re-encode: %v", cmd, err)
			}
			cmd2, err := DecodeCommand(again)
			if err != nil || !reflect.DeepEqual(cmd, cmd2) {
				t.Fatalf("round trip: %#v -> %#v (%v)", cmd, cmd2, err)
			}
			s := base.Clone()
			if _, err := applyCommand(&s, cmd); err != nil && !reflect.DeepEqual(s, base) {
				t.Fatalf("rejected %s changed the state", cmd.Name())
			}
		}
		check(data)
		// Reach the body decoder past the checksum as well.
		if len(data) >= headerLen {
			check(withCRC(data))
		}
	})
}
