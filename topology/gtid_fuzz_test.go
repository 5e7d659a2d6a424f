package topology

import (
	"math"
	"math/bits"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Run locally with, for example:
//
//	go test ./topology -run '^$' -fuzz FuzzParseMySQLGTIDSet -fuzztime 30s
//
// Without -fuzz the seeds below run as ordinary tests.

func FuzzParseMySQLGTIDSet(f *testing.F) {
	for _, seed := range []string{
		"",
		" \n",
		u1 + ":1-5",
		u1 + ":1-5:7:9-12",
		u1 + ":1-5,\n" + u2 + ":1-3",
		strings.ToUpper(u1) + ":3:1-2",
		u1 + ":1-5:tag_a:1-3:Tag_B:4",
		u1 + ":web:1",
		u1 + ":0-5",
		u1 + ":5-3",
		u1 + ":1-9223372036854775806",
		u1 + ":1-9223372036854775807",
		u1 + ":1-5,",
		"{" + u1 + "}:1",
		strings.ReplaceAll(u1, "-", "") + ":1",
		"0-1-100",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseMySQLGTIDSet(s)
		if err != nil {
			return
		}
		checkGTIDInvariants(t, "parsed", set)
		checkGTIDRoundTrip(t, FlavorMySQL84, s, set)
		// go-mysql's own printing is an independent oracle for canonical form.
		lib, err := mysql.ParseMysqlGTIDSet(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("we accepted %q, go-mysql refuses it: %v", s, err)
		}
		if lib.String() != set.String() {
			t.Fatalf("String() of %q = %q, go-mysql prints %q", s, set.String(), lib.String())
		}
	})
}

func FuzzParseMariaDBGTIDState(f *testing.F) {
	for _, seed := range []string{
		"",
		"0-1-100",
		"0-1-100,0-2-50,1-3-7",
		" 0-1-100,\n0-2-50 ",
		"0-1-0",
		"0-1-5,0-1-9",
		"0-2-101..151",
		"0-2-151..151,0-2-3",
		"4294967295-4294967295-18446744073709551615",
		"4294967296-1-1",
		"0-1-18446744073709551616",
		"0-1-9..5",
		"0-1-5,",
		"-1-1-5",
		u1 + ":1-5",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseMariaDBGTIDState(s)
		if err != nil {
			return
		}
		checkGTIDInvariants(t, "parsed", set)
		checkGTIDRoundTrip(t, FlavorMariaDB, s, set)
		if pos := set.MariaDBPos(); pos != "" {
			// The position must itself be a state, contained in the set's
			// "everything up to" closure: every GTID it names is in set.
			p, err := ParseMariaDBGTIDState(pos)
			if err != nil {
				t.Fatalf("MariaDBPos() of %q = %q does not parse: %v", s, pos, err)
			}
			for _, src := range p.sources {
				last := seqRange{lo: src.last(), hi: src.last()}
				single := GTIDSet{kind: kindMariaDB, sources: []sourceRanges{{src: src.src, ranges: []seqRange{last}}}}
				if !set.Contains(single) {
					t.Fatalf("MariaDBPos() of %q names %d-%d-%d, which the set lacks", s, src.src.domain, src.src.server, last.hi)
				}
			}
		}
	})
}

// FuzzGTIDSetLaws checks set laws on two arbitrary inputs of one flavour,
// where the property tests only draw small, well-formed sets.
func FuzzGTIDSetLaws(f *testing.F) {
	f.Add(false, u1+":1-10:20-30", u1+":5-25,"+u2+":1")
	f.Add(false, u1+":1-5:t:1-3", u1+":t:2")
	f.Add(true, "0-1-150,0-2-100", "0-1-150,0-2-151")
	f.Add(true, "0-1-100", "0-1-10..20,0-1-50..50")
	f.Fuzz(func(t *testing.T, mariadb bool, aText, bText string) {
		flavor := FlavorMySQL84
		if mariadb {
			flavor = FlavorMariaDB
		}
		a, errA := ParseGTIDSet(flavor, aText)
		b, errB := ParseGTIDSet(flavor, bText)
		if errA != nil || errB != nil {
			return
		}
		diff, union := a.Subtract(b), a.Union(b)
		inter := a.Subtract(diff)
		for name, s := range map[string]GTIDSet{"a−b": diff, "a∪b": union, "a∩b": inter} {
			checkGTIDInvariants(t, name, s)
		}
		if !diff.Union(inter).Equal(a) {
			t.Fatalf("(a−b) ∪ (a∩b) ≠ a for a=%q b=%q", a, b)
		}
		if !diff.Subtract(diff.Subtract(b)).IsEmpty() {
			t.Fatalf("(a−b) ∩ b ≠ ∅ for a=%q b=%q", a, b)
		}
		if a.Contains(b) != b.Subtract(a).IsEmpty() {
			t.Fatalf("Contains(a, b) = %v disagrees with b−a = %q", a.Contains(b), b.Subtract(a))
		}
		if !union.Contains(a) || !union.Contains(b) || !union.Equal(b.Union(a)) {
			t.Fatalf("union %q of a=%q b=%q is wrong", union, a, b)
		}
		if a.Equal(b) != (a.Contains(b) && b.Contains(a)) {
			t.Fatalf("Equal disagrees with Contains both ways for a=%q b=%q", a, b)
		}
		// Inclusion–exclusion, when no count saturates.
		left, c1 := bits.Add64(union.Count(), inter.Count(), 0)
		right, c2 := bits.Add64(a.Count(), b.Count(), 0)
		if c1 == 0 && c2 == 0 && union.Count() < math.MaxUint64 && a.Count() < math.MaxUint64 && b.Count() < math.MaxUint64 && left != right {
			t.Fatalf("|a∪b| + |a∩b| = %d ≠ |a| + |b| = %d for a=%q b=%q", left, right, a, b)
		}
	})
}

// checkGTIDRoundTrip checks that an accepted input prints as canonical text
// that parses back to an Equal set, which prints the same, and that the set
// survives MarshalText.
func checkGTIDRoundTrip(t *testing.T, f Flavor, in string, set GTIDSet) {
	t.Helper()
	text := set.String()
	back, err := ParseGTIDSet(f, text)
	if err != nil {
		t.Fatalf("String() of %q = %q does not parse: %v", in, text, err)
	}
	if !back.Equal(set) {
		t.Fatalf("String() of %q = %q parses to a different set %q", in, text, back)
	}
	if back.String() != text {
		t.Fatalf("String() is not canonical: %q, then %q", text, back.String())
	}
	if set.IsEmpty() != (text == "") || set.IsEmpty() != (set.Count() == 0) {
		t.Fatalf("%q: IsEmpty %v, String %q, Count %d", in, set.IsEmpty(), text, set.Count())
	}
	blob, err := set.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText of %q: %v", in, err)
	}
	var stored GTIDSet
	if err := stored.UnmarshalText(blob); err != nil {
		t.Fatalf("UnmarshalText(%q): %v", blob, err)
	}
	if !stored.Equal(set) || stored.Flavor() != set.Flavor() {
		t.Fatalf("MarshalText round trip of %q gave %s %q", in, stored.Flavor(), stored)
	}
	if set.Summary() == "" {
		t.Fatalf("empty Summary for %q", in)
	}
}
