package topology

import (
	"bytes"
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/google/uuid"
)

// ErrInvalidGTIDSet is wrapped by every parse error of this file, so that a
// caller can tell "the server said something we cannot read" from other
// failures with errors.Is.
var ErrInvalidGTIDSet = errors.New("invalid GTID set")

// GTIDSet is an exact set of transactions identified by GTID, for either
// flavour. It is a value: no method changes its receiver, operations return
// new sets, and sets may be shared between goroutines. The zero value is the
// empty set of unknown flavour; it behaves as empty with sets of any flavour.
//
// Both flavours share one representation: a source key mapped to sorted,
// merged, non-overlapping ranges of sequence numbers.
//
//   - MySQL: the key is the server uuid, or uuid plus tag (MySQL 8.3+
//     `uuid:tag:1-5`); the ranges are the GNO intervals MySQL prints.
//   - MariaDB: the key is (domain_id, server_id). A state element `d-s-N`
//     (what @@gtid_binlog_state, gtid_current_pos and gtid_slave_pos list)
//     means "every transaction of server s in domain d with seq_no ≤ N" and
//     becomes the range [1, N]. Keying by server_id, not only by domain as
//     go-mysql's MariadbGTIDSet does, is what makes a transaction written
//     directly on a replica visible: the replica gains a key, or a higher
//     seq_no under its own server_id, that the primary lacks.
//
// For MariaDB, compare gtid_binlog_state with gtid_binlog_state: it keeps the
// last GTID of every (domain, server_id), so it describes the whole history.
// gtid_current_pos and gtid_slave_pos keep one GTID per domain; parsed, they
// claim only the last writer's range, which suits MariaDBPos and waiting but
// would make an old writer's transactions look missing in Contains.
//
// Sets of different flavours (one MySQL, one MariaDB) are never mixed:
// comparisons between them answer false and operations return the receiver
// unchanged; see Compatible. The zero value is compatible with everything.
type GTIDSet struct {
	kind gtidKind
	// sources is sorted by key, holds no empty ranges, and is nil when the
	// set is empty, so that equal sets have equal representations.
	sources []sourceRanges
}

// gtidKind is the GTID family of a set. MySQL 8.0 and 8.4 share one GTID
// syntax and meaning, so one kind serves both.
type gtidKind uint8

const (
	kindUnknown gtidKind = iota
	kindMySQL
	kindMariaDB
)

// gtidSource identifies one stream of sequence numbers. The fields of the
// other flavour stay zero, so a single comparison orders keys of both kinds.
type gtidSource struct {
	uuid   uuid.UUID // MySQL
	tag    string    // MySQL; "" when untagged, which sorts first as MySQL prints it
	domain uint32    // MariaDB
	server uint32    // MariaDB
}

// seqRange is the closed range [lo, hi] of sequence numbers, 1 ≤ lo ≤ hi.
// Closed uint64 ranges hold MariaDB's whole 64-bit seq_no space, and MySQL's
// half-open int64 intervals convert to them without loss.
type seqRange struct{ lo, hi uint64 }

// sourceRanges is one key of a set with its ranges: sorted, never empty,
// neither overlapping nor adjacent.
type sourceRanges struct {
	src    gtidSource
	ranges []seqRange
}

var (
	_ fmt.Stringer             = GTIDSet{}
	_ encoding.TextMarshaler   = GTIDSet{}
	_ encoding.TextUnmarshaler = (*GTIDSet)(nil)
)

// ParseGTIDSet parses s in the syntax of flavour f: @@gtid_executed and its
// kin for MySQL 8.0 and 8.4, @@gtid_binlog_state and its kin for MariaDB.
func ParseGTIDSet(f Flavor, s string) (GTIDSet, error) {
	switch {
	case f == FlavorMariaDB:
		return ParseMariaDBGTIDState(s)
	case f.IsMySQL():
		return ParseMySQLGTIDSet(s)
	default:
		return GTIDSet{}, fmt.Errorf("%w: cannot parse %q for flavour %s: the flavour must be known", ErrInvalidGTIDSet, shorten(s), f)
	}
}

// ParseMySQLGTIDSet parses a MySQL GTID set such as @@gtid_executed:
// comma-separated `uuid:interval[:interval...]` elements, tagged parts
// (`uuid:tag:1-5`, MySQL 8.3+), a uuid repeated across elements, uuids in
// either case, and the whitespace MySQL prints (a newline after each comma).
// The empty string is the empty MySQL set. The text goes through go-mysql's
// parser rather than one of our own; gno 0, which go-mysql accepts and
// MySQL does not, is refused.
func ParseMySQLGTIDSet(s string) (GTIDSet, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return GTIDSet{kind: kindMySQL}, nil
	}
	parsed, err := parseMySQLWithLibrary(s)
	if err != nil {
		return GTIDSet{}, mysqlElementError(s, err)
	}
	lib, ok := parsed.(*mysql.MysqlGTIDSet)
	if !ok {
		return GTIDSet{}, fmt.Errorf("%w: go-mysql returned a %T for %q, want *mysql.MysqlGTIDSet", ErrInvalidGTIDSet, parsed, shorten(s))
	}
	sources := make([]sourceRanges, 0, len(*lib))
	for u, tags := range *lib {
		for tag, intervals := range tags {
			src := gtidSource{uuid: u, tag: tag.String()}
			ranges := make([]seqRange, 0, len(intervals))
			for _, in := range intervals {
				// go-mysql intervals are half-open [Start, Stop).
				if in.Start < 1 || in.Stop <= in.Start {
					return GTIDSet{}, fmt.Errorf("%w: MySQL element %q: transaction numbers start at 1",
						ErrInvalidGTIDSet, src.mysqlPrefix()+":"+in.String())
				}
				ranges = append(ranges, seqRange{lo: uint64(in.Start), hi: uint64(in.Stop - 1)})
			}
			sources = append(sources, sourceRanges{src: src, ranges: ranges})
		}
	}
	return GTIDSet{kind: kindMySQL, sources: normalizeSources(sources)}, nil
}

// parseMySQLWithLibrary turns a panic inside go-mysql into an error: a probe
// must survive whatever text a server, or a person, hands it.
func parseMySQLWithLibrary(s string) (set mysql.GTIDSet, err error) {
	defer func() {
		if r := recover(); r != nil {
			set, err = nil, fmt.Errorf("go-mysql parser failed: %v", r)
		}
	}()
	return mysql.ParseMysqlGTIDSet(s)
}

// mysqlElementError names the element of s that go-mysql refuses, since its
// own messages do not say which of possibly hundreds of elements is wrong.
func mysqlElementError(s string, whole error) error {
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return fmt.Errorf("%w: MySQL element %d is empty (stray comma?) in %q", ErrInvalidGTIDSet, i+1, shorten(s))
		}
		if _, err := parseMySQLWithLibrary(part); err != nil {
			return fmt.Errorf("%w: MySQL element %d %q: %w", ErrInvalidGTIDSet, i+1, shorten(part), err)
		}
	}
	return fmt.Errorf("%w: MySQL %q: %w", ErrInvalidGTIDSet, shorten(s), whole)
}

// ParseMariaDBGTIDState parses MariaDB's @@gtid_binlog_state,
// @@gtid_current_pos or @@gtid_slave_pos: comma-separated
// `domain-server_id-seq` elements, whitespace around them allowed. The empty
// string is the empty MariaDB set. An element with seq 0 stands for no
// transaction and adds nothing. Elements with the same (domain, server_id)
// are united.
//
// It also reads Regent's own notation `domain-server_id-LO..HI`, which String
// uses for a set that is not a server state (such as an Errant result), so
// that every set round-trips through String; MariaDB never prints it.
func ParseMariaDBGTIDState(s string) (GTIDSet, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return GTIDSet{kind: kindMariaDB}, nil
	}
	parts := strings.Split(s, ",")
	sources := make([]sourceRanges, 0, len(parts))
	for i, part := range parts {
		part = strings.TrimSpace(part)
		src, r, err := parseMariaDBElement(part)
		if err != nil {
			return GTIDSet{}, fmt.Errorf("%w: MariaDB element %d %q: %w", ErrInvalidGTIDSet, i+1, shorten(part), err)
		}
		if r.hi == 0 {
			continue
		}
		sources = append(sources, sourceRanges{src: src, ranges: []seqRange{r}})
	}
	return GTIDSet{kind: kindMariaDB, sources: normalizeSources(sources)}, nil
}

// parseMariaDBElement reads `d-s-N` as the range [1, N] (empty when N is 0)
// and `d-s-LO..HI` as [LO, HI].
func parseMariaDBElement(el string) (gtidSource, seqRange, error) {
	if el == "" {
		return gtidSource{}, seqRange{}, errors.New("empty element (stray comma?)")
	}
	fields := strings.Split(el, "-")
	if len(fields) != 3 {
		return gtidSource{}, seqRange{}, errors.New("want domain_id-server_id-seq_no, such as 0-1-100")
	}
	domain, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil {
		return gtidSource{}, seqRange{}, fmt.Errorf("domain_id %q is not a number from 0 to %d", fields[0], uint32(math.MaxUint32))
	}
	server, err := strconv.ParseUint(fields[1], 10, 32)
	if err != nil {
		return gtidSource{}, seqRange{}, fmt.Errorf("server_id %q is not a number from 0 to %d", fields[1], uint32(math.MaxUint32))
	}
	src := gtidSource{domain: uint32(domain), server: uint32(server)}
	if lo, hi, ok := strings.Cut(fields[2], ".."); ok {
		l, err1 := strconv.ParseUint(lo, 10, 64)
		h, err2 := strconv.ParseUint(hi, 10, 64)
		if err1 != nil || err2 != nil || l < 1 || l > h {
			return gtidSource{}, seqRange{}, fmt.Errorf("seq_no range %q: want LO..HI with 1 ≤ LO ≤ HI ≤ %d", fields[2], uint64(math.MaxUint64))
		}
		return src, seqRange{lo: l, hi: h}, nil
	}
	n, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil {
		return gtidSource{}, seqRange{}, fmt.Errorf("seq_no %q is not a number from 0 to %d", fields[2], uint64(math.MaxUint64))
	}
	if n == 0 {
		return src, seqRange{}, nil
	}
	return src, seqRange{lo: 1, hi: n}, nil
}

// shorten keeps error messages readable when a server hands us a set with
// thousands of elements.
func shorten(s string) string {
	const limit = 120
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}

// Errant returns the transactions replica has that primary lacks: replica
// minus primary. A clean replica, equal to its primary or behind it, has an
// empty errant set; a non-empty one means the replica was written to
// directly (or carries history the primary lost) and must not be promoted or
// rejoined silently.
//
// MySQL: typically a uuid the primary has never seen (the replica's own
// server_uuid), or an interval of a known uuid beyond what the primary has.
//
// MariaDB: a replica with server_id 2 that wrote directly has `0-2-151` in its
// state while the primary has `0-2-100` (an old reign of server 2) or no 0-2
// key at all; the result is then `0-2-101..151` or `0-2-151`. Because
// seq_no is shared by all servers of a domain, such a range bounds where the
// errant transactions lie rather than listing them: here only seq 151 may be
// real. Emptiness, the question failover asks, is exact.
//
// Sets of different flavours are not comparable; Errant then returns replica
// whole, so that a confused caller quarantines rather than promotes.
func Errant(replica, primary GTIDSet) GTIDSet {
	return replica.Subtract(primary)
}

// Compatible reports whether a and o can be compared: they are of the same
// flavour, or one of them is the zero value.
func (a GTIDSet) Compatible(o GTIDSet) bool {
	return a.kind == kindUnknown || o.kind == kindUnknown || a.kind == o.kind
}

// IsEmpty reports whether the set holds no transaction.
func (a GTIDSet) IsEmpty() bool { return len(a.sources) == 0 }

// IsMySQL reports whether the set was parsed as a MySQL set (or derived from
// one).
func (a GTIDSet) IsMySQL() bool { return a.kind == kindMySQL }

// IsMariaDB reports whether the set was parsed as a MariaDB state (or derived
// from one).
func (a GTIDSet) IsMariaDB() bool { return a.kind == kindMariaDB }

// Flavor returns the GTID family of the set: FlavorMariaDB, FlavorMySQL84 for
// every MySQL set (8.0 and 8.4 share one GTID syntax, so a set cannot tell
// them apart; test with Flavor().IsMySQL() or IsMySQL), or FlavorUnknown for
// the zero value. Do not pick SQL statement forms from it: use the
// instance's Snapshot.Flavor.
func (a GTIDSet) Flavor() Flavor {
	switch a.kind {
	case kindMySQL:
		return FlavorMySQL84
	case kindMariaDB:
		return FlavorMariaDB
	default:
		return FlavorUnknown
	}
}

// Contains reports whether every transaction of o is in a (o ⊆ a). It is
// false for sets of different flavours.
func (a GTIDSet) Contains(o GTIDSet) bool {
	if !a.Compatible(o) {
		return false
	}
	i := 0
	for _, os := range o.sources {
		for i < len(a.sources) && compareSources(a.sources[i].src, os.src) < 0 {
			i++
		}
		if i == len(a.sources) || a.sources[i].src != os.src || !containsRanges(a.sources[i].ranges, os.ranges) {
			return false
		}
	}
	return true
}

// Equal reports whether a and o hold the same transactions. It is false for
// sets of different flavours; an empty set of either flavour equals the zero
// value.
func (a GTIDSet) Equal(o GTIDSet) bool {
	if !a.Compatible(o) || len(a.sources) != len(o.sources) {
		return false
	}
	for i := range a.sources {
		if a.sources[i].src != o.sources[i].src || !slices.Equal(a.sources[i].ranges, o.sources[i].ranges) {
			return false
		}
	}
	return true
}

// Ahead reports whether a strictly contains o: a has everything o has and
// more. Two sets that have diverged are not ahead of each other.
func (a GTIDSet) Ahead(o GTIDSet) bool {
	return a.Contains(o) && !o.Contains(a)
}

// Subtract returns the transactions of a that are not in o. For sets of
// different flavours it returns a unchanged.
func (a GTIDSet) Subtract(o GTIDSet) GTIDSet {
	if !a.Compatible(o) {
		return a
	}
	var out []sourceRanges
	a.eachSource(o, func(as sourceRanges, match *sourceRanges) {
		if match == nil {
			// Ranges are never modified after construction, so sharing
			// is safe.
			out = append(out, as)
		} else if rest := subtractRanges(as.ranges, match.ranges); len(rest) > 0 {
			out = append(out, sourceRanges{src: as.src, ranges: rest})
		}
	})
	return GTIDSet{kind: a.kind, sources: out}
}

// eachSource calls each for every source of a, with o's entry for the same
// source or nil. Both lists are sorted, so this is one merge pass.
func (a GTIDSet) eachSource(o GTIDSet, each func(as sourceRanges, match *sourceRanges)) {
	j := 0
	for _, as := range a.sources {
		for j < len(o.sources) && compareSources(o.sources[j].src, as.src) < 0 {
			j++
		}
		if j < len(o.sources) && o.sources[j].src == as.src {
			each(as, &o.sources[j])
			continue
		}
		each(as, nil)
	}
}

// OwnedBy returns the transactions of a that the server itself wrote: on
// MySQL those of its server_uuid (any tag), on MariaDB those of its
// server_id (any domain). A zero serverUUID or serverID matches nothing of
// its flavour.
func (a GTIDSet) OwnedBy(serverUUID string, serverID uint32) GTIDSet {
	id, err := uuid.Parse(serverUUID)
	var out []sourceRanges
	for _, as := range a.sources {
		switch a.kind {
		case kindMySQL:
			if err == nil && as.src.uuid == id {
				out = append(out, as)
			}
		case kindMariaDB:
			if serverID != 0 && as.src.server == serverID {
				out = append(out, as)
			}
		}
	}
	return GTIDSet{kind: a.kind, sources: out}
}

// RestrictTo returns the transactions of a whose source also appears in o
// (MySQL: the same uuid and tag; MariaDB: the same domain and server_id),
// whatever their ranges. For sets of different flavours it is empty.
func (a GTIDSet) RestrictTo(o GTIDSet) GTIDSet {
	if !a.Compatible(o) {
		return GTIDSet{kind: a.kind}
	}
	var out []sourceRanges
	a.eachSource(o, func(as sourceRanges, match *sourceRanges) {
		if match != nil {
			out = append(out, as)
		}
	})
	return GTIDSet{kind: a.kind, sources: out}
}

// Union returns the transactions in a or o. For sets of different flavours
// it returns a unchanged; the union of the zero value and o is o.
func (a GTIDSet) Union(o GTIDSet) GTIDSet {
	if !a.Compatible(o) {
		return a
	}
	kind := a.kind
	if kind == kindUnknown {
		kind = o.kind
	}
	var out []sourceRanges
	i, j := 0, 0
	for i < len(a.sources) || j < len(o.sources) {
		var c int
		switch {
		case i == len(a.sources):
			c = 1
		case j == len(o.sources):
			c = -1
		default:
			c = compareSources(a.sources[i].src, o.sources[j].src)
		}
		switch {
		case c < 0:
			out = append(out, a.sources[i])
			i++
		case c > 0:
			out = append(out, o.sources[j])
			j++
		default:
			merged := normalizeRanges(slices.Concat(a.sources[i].ranges, o.sources[j].ranges))
			out = append(out, sourceRanges{src: a.sources[i].src, ranges: merged})
			i++
			j++
		}
	}
	return GTIDSet{kind: kind, sources: out}
}

// Count returns the number of transactions in the set, saturating at
// math.MaxUint64. For MySQL it is exact. For MariaDB it counts the sequence
// numbers in the per-(domain, server_id) ranges, an upper bound: seq_no is
// shared by all servers of a domain, so `0-1-100,0-2-150` counts 250 where
// at most 150 transactions exist.
func (a GTIDSet) Count() uint64 {
	var n uint64
	for _, s := range a.sources {
		n = addSaturating(n, s.count())
	}
	return n
}

// String returns the canonical text of the set; parsing it with the parser
// of the set's flavour gives an Equal set.
//
// MySQL: as MySQL prints it, uuids in lowercase and sorted, intervals merged,
// untagged intervals before tagged ones, `uuid:1-5:7:tag:1-3`, elements
// separated by "," (MySQL adds a newline after each comma; we keep one line).
//
// MariaDB: `domain-server_id-N` elements sorted by domain then server_id, as
// in @@gtid_binlog_state. A range that does not start at 1, which only set
// arithmetic produces, prints as `domain-server_id-LO..HI` (a single
// transaction as `0-2-151..151`); `d-s-N` is short for `d-s-1..N`.
//
// The zero value and empty sets print as "".
func (a GTIDSet) String() string {
	var b strings.Builder
	switch a.kind {
	case kindMySQL:
		for i, s := range a.sources {
			if i == 0 || s.src.uuid != a.sources[i-1].src.uuid {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(s.src.uuid.String())
			}
			if s.src.tag != "" {
				b.WriteByte(':')
				b.WriteString(s.src.tag)
			}
			for _, r := range s.ranges {
				b.WriteByte(':')
				writeMySQLRange(&b, r)
			}
		}
	case kindMariaDB:
		for i, s := range a.sources {
			for j, r := range s.ranges {
				if i > 0 || j > 0 {
					b.WriteByte(',')
				}
				writeMariaDBElement(&b, s.src, r)
			}
		}
	}
	return b.String()
}

// Summary returns a short text for a table cell: the source with the most
// transactions, its uuid cut to 8 characters on MySQL (`3e11fa47:1-1234`,
// `3e11fa47:tag:1-3`; more than three intervals show the first, "..." and
// the last), its elements on MariaDB (`0-1-1500`), then `+N more` when other
// sources exist. An empty set is "(none)".
func (a GTIDSet) Summary() string {
	if len(a.sources) == 0 {
		return "(none)"
	}
	best := a.sources[0]
	bestCount := best.count()
	for _, s := range a.sources[1:] {
		if c := s.count(); c > bestCount {
			best, bestCount = s, c
		}
	}
	ranges := best.ranges
	elided := false
	if len(ranges) > 3 {
		ranges = []seqRange{ranges[0], ranges[len(ranges)-1]}
		elided = true
	}
	var b strings.Builder
	switch a.kind {
	case kindMySQL:
		b.WriteString(best.src.uuid.String()[:8])
		if best.src.tag != "" {
			b.WriteByte(':')
			b.WriteString(best.src.tag)
		}
		for i, r := range ranges {
			if elided && i == 1 {
				b.WriteString(":...")
			}
			b.WriteByte(':')
			writeMySQLRange(&b, r)
		}
	default:
		for i, r := range ranges {
			if i > 0 {
				b.WriteByte(',')
			}
			if elided && i == 1 {
				b.WriteString("...,")
			}
			writeMariaDBElement(&b, best.src, r)
		}
	}
	if more := len(a.sources) - 1; more > 0 {
		fmt.Fprintf(&b, " +%d more", more)
	}
	return b.String()
}

// MariaDBPos returns, for a MariaDB set, the GTID with the highest seq_no of
// each domain, comma-separated and sorted by domain: the form
// MASTER_GTID_WAIT and gtid_slave_pos take. Ties on seq_no (which strict mode
// prevents) go to the lower server_id. It is "" for MySQL and empty sets.
func (a GTIDSet) MariaDBPos() string {
	if a.kind != kindMariaDB {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(a.sources); {
		best := a.sources[i]
		j := i + 1
		for ; j < len(a.sources) && a.sources[j].src.domain == best.src.domain; j++ {
			if a.sources[j].last() > best.last() {
				best = a.sources[j]
			}
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d-%d", best.src.domain, best.src.server, best.last())
		i = j
	}
	return b.String()
}

// MarshalText stores the set with its flavour: "mysql:" or "mariadb:"
// followed by String(), and "" for the zero value. UnmarshalText reads it
// back into an Equal set of the same flavour.
func (a GTIDSet) MarshalText() ([]byte, error) {
	switch a.kind {
	case kindMySQL:
		return []byte("mysql:" + a.String()), nil
	case kindMariaDB:
		return []byte("mariadb:" + a.String()), nil
	default:
		return []byte{}, nil
	}
}

// UnmarshalText reads the text MarshalText writes.
func (a *GTIDSet) UnmarshalText(text []byte) error {
	s := string(text)
	var (
		set GTIDSet
		err error
	)
	switch {
	case s == "":
	case strings.HasPrefix(s, "mysql:"):
		set, err = ParseMySQLGTIDSet(strings.TrimPrefix(s, "mysql:"))
	case strings.HasPrefix(s, "mariadb:"):
		set, err = ParseMariaDBGTIDState(strings.TrimPrefix(s, "mariadb:"))
	default:
		return fmt.Errorf("%w: stored text %q must start with \"mysql:\" or \"mariadb:\"", ErrInvalidGTIDSet, shorten(s))
	}
	if err != nil {
		return err
	}
	*a = set
	return nil
}

func (s sourceRanges) count() uint64 {
	var n uint64
	for _, r := range s.ranges {
		n = addSaturating(n, r.hi-r.lo+1) // lo ≥ 1, so the length cannot wrap
	}
	return n
}

func addSaturating(x, y uint64) uint64 {
	if x > math.MaxUint64-y {
		return math.MaxUint64
	}
	return x + y
}

// last is the highest sequence number of the source.
func (s sourceRanges) last() uint64 { return s.ranges[len(s.ranges)-1].hi }

// mysqlPrefix is the text that names a source in a MySQL set, for errors.
func (s gtidSource) mysqlPrefix() string {
	if s.tag == "" {
		return s.uuid.String()
	}
	return s.uuid.String() + ":" + s.tag
}

func writeMySQLRange(b *strings.Builder, r seqRange) {
	b.WriteString(strconv.FormatUint(r.lo, 10))
	if r.hi != r.lo {
		b.WriteByte('-')
		b.WriteString(strconv.FormatUint(r.hi, 10))
	}
}

func writeMariaDBElement(b *strings.Builder, src gtidSource, r seqRange) {
	fmt.Fprintf(b, "%d-%d-", src.domain, src.server)
	if r.lo != 1 {
		b.WriteString(strconv.FormatUint(r.lo, 10))
		b.WriteString("..")
	}
	b.WriteString(strconv.FormatUint(r.hi, 10))
}

func compareSources(x, y gtidSource) int {
	return cmp.Or(
		bytes.Compare(x.uuid[:], y.uuid[:]),
		strings.Compare(x.tag, y.tag),
		cmp.Compare(x.domain, y.domain),
		cmp.Compare(x.server, y.server),
	)
}

// normalizeSources sorts sources, unites the ranges of equal keys and drops
// empty ones; it returns nil for an empty result so that equal sets compare
// equal field by field too.
func normalizeSources(in []sourceRanges) []sourceRanges {
	slices.SortFunc(in, func(x, y sourceRanges) int { return compareSources(x.src, y.src) })
	var out []sourceRanges
	for _, s := range in {
		if n := len(out); n > 0 && out[n-1].src == s.src {
			out[n-1].ranges = append(out[n-1].ranges, s.ranges...)
			continue
		}
		out = append(out, sourceRanges{src: s.src, ranges: slices.Clone(s.ranges)})
	}
	kept := out[:0]
	for _, s := range out {
		if s.ranges = normalizeRanges(s.ranges); len(s.ranges) > 0 {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return kept
}

// normalizeRanges sorts rs in place and merges overlapping and adjacent
// ranges, so that each set has one representation.
func normalizeRanges(rs []seqRange) []seqRange {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(x, y seqRange) int { return cmp.Or(cmp.Compare(x.lo, y.lo), cmp.Compare(x.hi, y.hi)) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		// lo ≥ 1, so lo-1 cannot wrap; hi+1 could, at math.MaxUint64.
		if r.lo-1 <= last.hi {
			last.hi = max(last.hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// containsRanges reports whether sub ⊆ sup. Both are normalized, so every
// range of sub must lie inside a single range of sup.
func containsRanges(sup, sub []seqRange) bool {
	i := 0
	for _, r := range sub {
		for i < len(sup) && sup[i].hi < r.lo {
			i++
		}
		if i == len(sup) || sup[i].lo > r.lo || sup[i].hi < r.hi {
			return false
		}
	}
	return true
}

// subtractRanges returns a − b for normalized a and b; the result is
// normalized and shares nothing with a.
func subtractRanges(a, b []seqRange) []seqRange {
	var out []seqRange
	j := 0
	for _, r := range a {
		for j < len(b) && b[j].hi < r.lo {
			j++
		}
		lo, covered := r.lo, false
		// b[k] may reach into the next range of a too, so j stays put.
		for k := j; k < len(b) && b[k].lo <= r.hi; k++ {
			if b[k].lo > lo {
				out = append(out, seqRange{lo: lo, hi: b[k].lo - 1})
			}
			if b[k].hi >= r.hi {
				covered = true
				break
			}
			lo = b[k].hi + 1
		}
		if !covered {
			out = append(out, seqRange{lo: lo, hi: r.hi})
		}
	}
	return out
}
