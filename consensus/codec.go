package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"time"
)

// CommandVersion is the version of the command encoding this code writes and
// the highest it reads. See doc.go for the rules of changing it.
const CommandVersion byte = 1

// Wire layout of a command (all versions start with the same two bytes):
//
//	[0]      version (CommandVersion)
//	[1]      kind (cmdKind)
//	[2:n-4]  body: the kind's fields in a fixed order
//	[n-4:n]  CRC-32C of bytes [0:n-4], big endian
//
// Body primitives: unsigned integers as uvarint; strings as uvarint length +
// UTF-8 bytes; booleans as one byte 0/1; times as one byte 0 (zero time) or 1
// followed by a varint of Unix nanoseconds (decoded in UTC); durations as a
// varint of nanoseconds; enums as one byte code from the tables below.
const (
	headerLen  = 2
	trailerLen = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Enum codes on the wire. Never renumber: append.
var (
	opKindCode     = map[OpKind]byte{KindFailover: 1, KindSwitchover: 2, KindForcedFailover: 3, KindRejoin: 4, KindSemiSyncFallback: 5, KindSemiSyncRestore: 6, KindEditConfig: 7}
	resultCode     = map[Result]byte{ResultSuccess: 1, ResultFailed: 2, ResultAborted: 3}
	stepResultCode = map[StepResult]byte{StepOK: 1, StepFailed: 2, StepSkipped: 3}
	ruleCode       = map[PromotionRule]byte{PromotionPrefer: 1, PromotionNeutral: 2, PromotionMustNot: 3}
)

// errCorrupt is wrapped into ErrInvalidCommand by DecodeCommand.
var (
	errTruncated = errors.New("truncated")
	errCorrupt   = errors.New("corrupt")
)

// EncodeCommand validates cmd and returns its wire form.
func EncodeCommand(cmd Command) ([]byte, error) {
	if cmd == nil {
		return nil, fmt.Errorf("%w: nil command", ErrInvalidCommand)
	}
	if err := cmd.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd.Name(), err)
	}
	w := &wbuf{b: make([]byte, 0, 64)}
	w.u8(CommandVersion)
	w.u8(byte(cmd.kind()))
	cmd.encodeBody(w)
	w.b = binary.BigEndian.AppendUint32(w.b, crc32.Checksum(w.b, castagnoli))
	if len(w.b) > MaxCommandSize {
		return nil, fmt.Errorf("%w: %s: encoded size %d is more than %d bytes", ErrInvalidCommand, cmd.Name(), len(w.b), MaxCommandSize)
	}
	return w.b, nil
}

// DecodeCommand parses a command. Unknown versions or kinds, truncated input,
// a bad checksum, trailing bytes and invalid fields are all errors wrapping
// ErrInvalidCommand. It never panics.
func DecodeCommand(data []byte) (Command, error) {
	if len(data) < headerLen+trailerLen {
		return nil, fmt.Errorf("%w: %w: %d bytes", ErrInvalidCommand, errTruncated, len(data))
	}
	if len(data) > MaxCommandSize {
		return nil, fmt.Errorf("%w: %d bytes is more than %d", ErrInvalidCommand, len(data), MaxCommandSize)
	}
	if data[0] == 0 || data[0] > CommandVersion {
		return nil, fmt.Errorf("%w: unsupported command version %d (this agent reads up to %d)", ErrInvalidCommand, data[0], CommandVersion)
	}
	n := len(data) - trailerLen
	if want, got := binary.BigEndian.Uint32(data[n:]), crc32.Checksum(data[:n], castagnoli); want != got {
		return nil, fmt.Errorf("%w: %w: checksum %08x, computed %08x", ErrInvalidCommand, errCorrupt, want, got)
	}
	dec, ok := decoders[cmdKind(data[1])]
	if !ok {
		return nil, fmt.Errorf("%w: unknown command kind %d", ErrInvalidCommand, data[1])
	}
	r := &rbuf{b: data[headerLen:n]}
	cmd := dec(r)
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidCommand, cmd.Name(), r.err)
	}
	if err := cmd.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd.Name(), err)
	}
	return cmd, nil
}

var decoders = map[cmdKind]func(r *rbuf) Command{
	kindInitCluster: func(r *rbuf) Command {
		return InitCluster{Cluster: r.str(), Primary: r.str(), At: r.time()}
	},
	kindBeginOperation: func(r *rbuf) Command {
		return BeginOperation{
			Cluster: r.str(), OperationID: r.str(), Kind: r.opKind(), ExpectEpoch: r.uvarint(),
			Target: r.str(), Trigger: r.str(), Automatic: r.bool(), At: r.time(),
		}
	},
	kindRecordStep: func(r *rbuf) Command {
		return RecordStep{Cluster: r.str(), OperationID: r.str(), Step: Step{
			Name: r.str(), Start: r.time(), Duration: r.duration(), Result: r.stepResult(), Detail: r.str(),
		}}
	},
	kindCommitPrimary: func(r *rbuf) Command {
		return CommitPrimary{
			Cluster: r.str(), OperationID: r.str(), NewPrimary: r.str(), ExpectEpoch: r.uvarint(),
			GTID: r.str(), At: r.time(),
		}
	},
	kindFinishOperation: func(r *rbuf) Command {
		return FinishOperation{Cluster: r.str(), OperationID: r.str(), Result: r.result(), Reason: r.str(), At: r.time()}
	},
	kindAbortOperation: func(r *rbuf) Command {
		return AbortOperation{Cluster: r.str(), OperationID: r.str(), Reason: r.str(), At: r.time()}
	},
	kindSetPaused: func(r *rbuf) Command {
		return SetPaused{Cluster: r.str(), Paused: r.bool(), By: r.str(), Reason: r.str(), At: r.time()}
	},
	kindSetAntiFlap: func(r *rbuf) Command {
		return SetAntiFlap{Cluster: r.str(), Until: r.time()}
	},
	kindSetPromotionRule: func(r *rbuf) Command {
		return SetPromotionRule{Cluster: r.str(), Instance: r.str(), Rule: r.rule()}
	},
	kindSetQuarantine: func(r *rbuf) Command {
		return SetQuarantine{Cluster: r.str(), Instance: r.str(), Reason: r.str(), By: r.str(), At: r.time()}
	},
	kindClearQuarantine: func(r *rbuf) Command {
		return ClearQuarantine{Cluster: r.str(), Instance: r.str()}
	},
	kindSetSemiSync: func(r *rbuf) Command {
		return SetSemiSyncDegraded{Cluster: r.str(), OperationID: r.str(), Degraded: r.bool(), Reason: r.str(), At: r.time()}
	},
	kindSetMaintenance: func(r *rbuf) Command {
		return SetMaintenance{Cluster: r.str(), Instance: r.str(), On: r.bool(), By: r.str(), Reason: r.str(), At: r.time(), Until: r.time()}
	},
	kindAckOperation: func(r *rbuf) Command {
		return AckOperation{Cluster: r.str(), OperationID: r.str(), By: r.str(), Comment: r.str(), At: r.time()}
	},
	kindSetInstance: func(r *rbuf) Command {
		c := SetInstance{Cluster: r.str(), Instance: r.str(), Remove: r.bool(), Address: r.str(), Promotion: r.str()}
		if n := r.uvarint(); n > 0 && n <= 64 {
			c.Labels = make(map[string]string, n)
			for range n {
				k := r.str()
				c.Labels[k] = r.str()
			}
		} else if n > 64 {
			r.fail(fmt.Errorf("%d labels, more than 64", n))
		}
		c.By, c.At = r.str(), r.time()
		return c
	},
	kindDefineCluster: func(r *rbuf) Command {
		return DefineCluster{Cluster: r.str(), Definition: r.str(), Remove: r.bool(), By: r.str(), At: r.time()}
	},
	kindSetConfig: func(r *rbuf) Command {
		return SetConfig{Cluster: r.str(), ExpectVersion: r.uvarint(), Settings: r.str(), Change: r.str(), By: r.str(), At: r.time()}
	},
	kindSetSource: func(r *rbuf) Command {
		return SetSource{Cluster: r.str(), Instance: r.str(), Source: r.str(), By: r.str(), At: r.time()}
	},
	kindSetCandidate: func(r *rbuf) Command {
		return SetCandidate{Cluster: r.str(), OperationID: r.str(), Instance: r.str()}
	},
	kindSetMember: func(r *rbuf) Command {
		return SetMember{Member: Member{ID: r.str(), RaftAddr: r.str(), APIAddr: r.str(), Instance: r.str()}}
	},
	kindRemoveMember: func(r *rbuf) Command {
		return RemoveMember{ID: r.str()}
	},
}

// The encoders write fields in exactly the order the decoders above read them.

func (c InitCluster) encodeBody(w *wbuf) { w.str(c.Cluster); w.str(c.Primary); w.time(c.At) }

func (c BeginOperation) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.OperationID)
	w.u8(opKindCode[c.Kind])
	w.uvarint(c.ExpectEpoch)
	w.str(c.Target)
	w.str(c.Trigger)
	w.bool(c.Automatic)
	w.time(c.At)
}

func (c RecordStep) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.OperationID)
	w.str(c.Step.Name)
	w.time(c.Step.Start)
	w.duration(c.Step.Duration)
	w.u8(stepResultCode[c.Step.Result])
	w.str(c.Step.Detail)
}

func (c CommitPrimary) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.OperationID)
	w.str(c.NewPrimary)
	w.uvarint(c.ExpectEpoch)
	w.str(c.GTID)
	w.time(c.At)
}

func (c FinishOperation) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.OperationID)
	w.u8(resultCode[c.Result])
	w.str(c.Reason)
	w.time(c.At)
}

func (c AbortOperation) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.OperationID)
	w.str(c.Reason)
	w.time(c.At)
}

func (c SetPaused) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.bool(c.Paused)
	w.str(c.By)
	w.str(c.Reason)
	w.time(c.At)
}

func (c SetAntiFlap) encodeBody(w *wbuf) { w.str(c.Cluster); w.time(c.Until) }

func (c SetPromotionRule) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.Instance)
	w.u8(ruleCode[c.Rule])
}

func (c SetQuarantine) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.Instance)
	w.str(c.Reason)
	w.str(c.By)
	w.time(c.At)
}

func (c ClearQuarantine) encodeBody(w *wbuf) { w.str(c.Cluster); w.str(c.Instance) }

func (c AckOperation) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.OperationID)
	w.str(c.By)
	w.str(c.Comment)
	w.time(c.At)
}

func (c SetInstance) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.Instance)
	w.bool(c.Remove)
	w.str(c.Address)
	w.str(c.Promotion)
	w.uvarint(uint64(len(c.Labels)))
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		w.str(k)
		w.str(c.Labels[k])
	}
	w.str(c.By)
	w.time(c.At)
}

func (c DefineCluster) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.Definition)
	w.bool(c.Remove)
	w.str(c.By)
	w.time(c.At)
}

func (c SetConfig) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.uvarint(c.ExpectVersion)
	w.str(c.Settings)
	w.str(c.Change)
	w.str(c.By)
	w.time(c.At)
}

func (c SetSource) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.Instance)
	w.str(c.Source)
	w.str(c.By)
	w.time(c.At)
}

func (c SetMaintenance) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.Instance)
	w.bool(c.On)
	w.str(c.By)
	w.str(c.Reason)
	w.time(c.At)
	w.time(c.Until)
}

func (c SetSemiSyncDegraded) encodeBody(w *wbuf) {
	w.str(c.Cluster)
	w.str(c.OperationID)
	w.bool(c.Degraded)
	w.str(c.Reason)
	w.time(c.At)
}

func (c SetCandidate) encodeBody(w *wbuf) { w.str(c.Cluster); w.str(c.OperationID); w.str(c.Instance) }

func (c SetMember) encodeBody(w *wbuf) {
	w.str(c.Member.ID)
	w.str(c.Member.RaftAddr)
	w.str(c.Member.APIAddr)
	w.str(c.Member.Instance)
}

func (c RemoveMember) encodeBody(w *wbuf) { w.str(c.ID) }

// ---- primitives ----

type wbuf struct{ b []byte }

func (w *wbuf) u8(v byte)                { w.b = append(w.b, v) }
func (w *wbuf) uvarint(v uint64)         { w.b = binary.AppendUvarint(w.b, v) }
func (w *wbuf) varint(v int64)           { w.b = binary.AppendVarint(w.b, v) }
func (w *wbuf) str(s string)             { w.uvarint(uint64(len(s))); w.b = append(w.b, s...) }
func (w *wbuf) duration(d time.Duration) { w.varint(int64(d)) }

func (w *wbuf) bool(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

func (w *wbuf) time(t time.Time) {
	if t.IsZero() {
		w.u8(0)
		return
	}
	w.u8(1)
	w.varint(t.UnixNano())
}

// rbuf reads primitives; the first error sticks and later reads return zero
// values, so decoders can read all fields and check once.
type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *rbuf) u8() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail(errTruncated)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *rbuf) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	switch {
	case n == 0:
		r.fail(errTruncated)
		return 0
	case n < 0:
		r.fail(fmt.Errorf("%w: integer overflows 64 bits", errCorrupt))
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	switch {
	case n == 0:
		r.fail(errTruncated)
		return 0
	case n < 0:
		r.fail(fmt.Errorf("%w: integer overflows 64 bits", errCorrupt))
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail(fmt.Errorf("%w: string of %d bytes, %d left", errTruncated, n, len(r.b)))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *rbuf) bool() bool {
	switch r.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail(fmt.Errorf("%w: boolean byte is neither 0 nor 1", errCorrupt))
	return false
}

func (r *rbuf) time() time.Time {
	switch r.u8() {
	case 0:
		return time.Time{}
	case 1:
		ns := r.varint()
		if r.err != nil {
			return time.Time{}
		}
		return time.Unix(0, ns).UTC()
	}
	r.fail(fmt.Errorf("%w: bad time marker", errCorrupt))
	return time.Time{}
}

func (r *rbuf) duration() time.Duration { return time.Duration(r.varint()) }

func (r *rbuf) opKind() OpKind         { return enum(r, opKindCode) }
func (r *rbuf) result() Result         { return enum(r, resultCode) }
func (r *rbuf) stepResult() StepResult { return enum(r, stepResultCode) }
func (r *rbuf) rule() PromotionRule    { return enum(r, ruleCode) }

func enum[T ~string](r *rbuf, codes map[T]byte) T {
	c := r.u8()
	if r.err != nil {
		return ""
	}
	for k, v := range codes {
		if v == c {
			return k
		}
	}
	r.fail(fmt.Errorf("%w: unknown enum code %d", errCorrupt, c))
	return ""
}
