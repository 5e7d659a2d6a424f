package topology

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
)

// The property tests compare GTIDSet with a model that is obviously right:
// an explicit set of (source, seq) pairs, built from the same text without
// going through the code under test.

type modelGTID struct {
	source string // "uuid/tag" for MySQL, "domain/server" for MariaDB
	seq    uint64
}

type gtidModel map[modelGTID]bool

func (m gtidModel) subtract(o gtidModel) gtidModel {
	out := gtidModel{}
	for g := range m {
		if !o[g] {
			out[g] = true
		}
	}
	return out
}

func (m gtidModel) union(o gtidModel) gtidModel {
	out := maps.Clone(m)
	maps.Copy(out, o)
	return out
}

func (m gtidModel) contains(o gtidModel) bool {
	for g := range o {
		if !m[g] {
			return false
		}
	}
	return true
}

// modelOf lists every transaction of s. Small sets only.
func modelOf(s GTIDSet) gtidModel {
	m := gtidModel{}
	for _, src := range s.sources {
		key := fmt.Sprintf("%d/%d", src.src.domain, src.src.server)
		if s.kind == kindMySQL {
			key = src.src.uuid.String() + "/" + src.src.tag
		}
		for _, r := range src.ranges {
			for seq := r.lo; seq <= r.hi; seq++ {
				m[modelGTID{key, seq}] = true
			}
		}
	}
	return m
}

// gtidElement is one comma-separated element of a set's text with the
// transactions it stands for.
type gtidElement struct {
	text  string
	model gtidModel
}

// randomMySQLElement returns a MySQL element: a uuid in either case, maybe a
// tag, one to three overlapping intervals.
func randomMySQLElement(r *rand.Rand) gtidElement {
	uuids := []string{u1, u2, u3}
	tags := []string{"", "a", "b"}
	u, tag := uuids[r.IntN(len(uuids))], tags[r.IntN(len(tags))]
	m := gtidModel{}
	text := u
	if r.IntN(2) == 0 {
		text = strings.ToUpper(u)
	}
	if tag != "" {
		text += ":" + tag
	}
	for range 1 + r.IntN(3) {
		lo := 1 + r.Uint64N(20)
		hi := lo + r.Uint64N(5)
		if lo == hi {
			text += fmt.Sprintf(":%d", lo)
		} else {
			text += fmt.Sprintf(":%d-%d", lo, hi)
		}
		for seq := lo; seq <= hi; seq++ {
			m[modelGTID{u + "/" + tag, seq}] = true
		}
	}
	return gtidElement{text: text, model: m}
}

// randomMariaDBElement returns a MariaDB element: mostly the state form
// d-s-N (N may be 0), sometimes Regent's d-s-LO..HI.
func randomMariaDBElement(r *rand.Rand) gtidElement {
	d, s := r.IntN(2), 1+r.IntN(3)
	key := fmt.Sprintf("%d/%d", d, s)
	m := gtidModel{}
	lo, hi := uint64(1), r.Uint64N(25)
	text := fmt.Sprintf("%d-%d-%d", d, s, hi)
	if r.IntN(4) == 0 {
		lo = 1 + r.Uint64N(20)
		hi = lo + r.Uint64N(5)
		text = fmt.Sprintf("%d-%d-%d..%d", d, s, lo, hi)
	}
	for seq := lo; seq <= hi; seq++ {
		m[modelGTID{key, seq}] = true
	}
	return gtidElement{text: text, model: m}
}

// randomGTIDPair returns the texts and models of two small sets. b often
// reuses some of a's elements, so that containment, equality and small
// differences come up as often as disjoint sets.
func randomGTIDPair(r *rand.Rand, element func(*rand.Rand) gtidElement) (aText, bText string, am, bm gtidModel) {
	var aEls, bEls []gtidElement
	for range r.IntN(6) {
		aEls = append(aEls, element(r))
	}
	for _, e := range aEls {
		if r.IntN(3) > 0 {
			bEls = append(bEls, e)
		}
	}
	for range r.IntN(3) {
		bEls = append(bEls, element(r))
	}
	r.Shuffle(len(bEls), func(i, j int) { bEls[i], bEls[j] = bEls[j], bEls[i] })
	join := func(els []gtidElement) (string, gtidModel) {
		m := gtidModel{}
		texts := make([]string, len(els))
		for i, e := range els {
			texts[i] = e.text
			maps.Copy(m, e.model)
		}
		// The separators MySQL and people use; MariaDB's parser takes them all.
		return strings.Join(texts, []string{",", ",\n", " , "}[r.IntN(3)]), m
	}
	aText, am = join(aEls)
	bText, bm = join(bEls)
	return aText, bText, am, bm
}

// checkGTIDInvariants fails when s is not in canonical form: sources sorted
// and distinct, ranges sorted, non-empty, neither overlapping nor adjacent,
// and nil sources for an empty set.
func checkGTIDInvariants(t *testing.T, what string, s GTIDSet) {
	t.Helper()
	if s.sources != nil && len(s.sources) == 0 {
		t.Errorf("%s: empty but non-nil sources", what)
	}
	for i, src := range s.sources {
		if i > 0 && compareSources(s.sources[i-1].src, src.src) >= 0 {
			t.Errorf("%s: sources out of order at %d: %q", what, i, s)
		}
		if len(src.ranges) == 0 {
			t.Errorf("%s: source %d has no ranges: %q", what, i, s)
		}
		for j, r := range src.ranges {
			if r.lo < 1 || r.lo > r.hi {
				t.Errorf("%s: bad range %v in %q", what, r, s)
			}
			if j > 0 && src.ranges[j-1].hi+1 >= r.lo {
				t.Errorf("%s: ranges %v and %v overlap or touch in %q", what, src.ranges[j-1], r, s)
			}
		}
	}
}

func TestGTIDPropertiesAgainstModel(t *testing.T) {
	flavours := []struct {
		name    string
		flavor  Flavor
		element func(*rand.Rand) gtidElement
	}{
		{name: "mysql", flavor: FlavorMySQL84, element: randomMySQLElement},
		{name: "mariadb", flavor: FlavorMariaDB, element: randomMariaDBElement},
	}
	for _, fl := range flavours {
		t.Run(fl.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(2, 7)) // fixed: a failure must reproduce
			var contained, equal, ahead int
			for i := range 3000 {
				aText, bText, am, bm := randomGTIDPair(r, fl.element)
				a, err := ParseGTIDSet(fl.flavor, aText)
				if err != nil {
					t.Fatalf("case %d: parse %q: %v", i, aText, err)
				}
				b, err := ParseGTIDSet(fl.flavor, bText)
				if err != nil {
					t.Fatalf("case %d: parse %q: %v", i, bText, err)
				}
				if !maps.Equal(modelOf(a), am) {
					t.Fatalf("case %d: parse %q gave %q", i, aText, a)
				}
				checkGTIDAgainstModel(t, fmt.Sprintf("case %d: a=%q b=%q", i, a, b), fl.flavor, a, b, am, bm)
				if t.Failed() {
					return // one reproducible case is enough to read
				}
				contained += boolInt(a.Contains(b) && !b.IsEmpty())
				equal += boolInt(a.Equal(b) && !a.IsEmpty())
				ahead += boolInt(a.Ahead(b) || b.Ahead(a))
			}
			// Guard the generator: the interesting relations must come up.
			if contained < 300 || equal < 100 || ahead < 300 {
				t.Errorf("generator too weak: non-trivial contains %d, equal %d, ahead %d of 3000", contained, equal, ahead)
			}
			t.Logf("non-trivial contains %d, equal %d, ahead %d of 3000", contained, equal, ahead)
		})
	}
}

func checkGTIDAgainstModel(t *testing.T, what string, f Flavor, a, b GTIDSet, am, bm gtidModel) {
	t.Helper()
	checkGTIDInvariants(t, what+" a", a)
	checkGTIDInvariants(t, what+" b", b)

	diff, union := a.Subtract(b), a.Union(b)
	checkGTIDInvariants(t, what+" a−b", diff)
	checkGTIDInvariants(t, what+" a∪b", union)
	if !maps.Equal(modelOf(diff), am.subtract(bm)) {
		t.Errorf("%s: Subtract = %q disagrees with the model", what, diff)
	}
	if !maps.Equal(modelOf(union), am.union(bm)) {
		t.Errorf("%s: Union = %q disagrees with the model", what, union)
	}
	if got, want := a.Contains(b), am.contains(bm); got != want {
		t.Errorf("%s: Contains = %v, model says %v", what, got, want)
	}
	if got, want := a.Equal(b), maps.Equal(am, bm); got != want {
		t.Errorf("%s: Equal = %v, model says %v", what, got, want)
	}
	if got, want := a.Ahead(b), am.contains(bm) && !bm.contains(am); got != want {
		t.Errorf("%s: Ahead = %v, model says %v", what, got, want)
	}
	if got, want := a.Count(), uint64(len(am)); got != want {
		t.Errorf("%s: Count = %d, model says %d", what, got, want)
	}
	if got, want := a.IsEmpty(), len(am) == 0; got != want {
		t.Errorf("%s: IsEmpty = %v, model says %v", what, got, want)
	}

	// Laws, through the API only. a∩b is a − (a − b).
	inter := a.Subtract(diff)
	if got := diff.Union(inter); !got.Equal(a) {
		t.Errorf("%s: (a−b) ∪ (a∩b) = %q, want a", what, got)
	}
	if got := diff.Subtract(diff.Subtract(b)); !got.IsEmpty() {
		t.Errorf("%s: (a−b) ∩ b = %q, want empty", what, got)
	}
	if a.Contains(b) != b.Subtract(a).IsEmpty() {
		t.Errorf("%s: Contains(a, b) = %v but b−a = %q", what, a.Contains(b), b.Subtract(a))
	}
	if a.Equal(b) != (a.Contains(b) && b.Contains(a)) {
		t.Errorf("%s: Equal disagrees with Contains both ways", what)
	}
	if !union.Equal(b.Union(a)) || !union.Contains(a) || !union.Contains(b) {
		t.Errorf("%s: union %q is not symmetric or misses an operand", what, union)
	}
	if Errant(a, b).IsEmpty() != b.Contains(a) {
		t.Errorf("%s: Errant(a, b) = %q but b.Contains(a) = %v", what, Errant(a, b), b.Contains(a))
	}
	if !a.Subtract(a).IsEmpty() {
		t.Errorf("%s: a − a = %q", what, a.Subtract(a))
	}

	// Every result prints as text that parses back to itself.
	for _, s := range []GTIDSet{a, b, diff, union, inter} {
		back, err := ParseGTIDSet(f, s.String())
		if err != nil {
			t.Errorf("%s: reparse of %q: %v", what, s, err)
			continue
		}
		if !back.Equal(s) || back.String() != s.String() {
			t.Errorf("%s: %q reparsed as %q", what, s, back)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
