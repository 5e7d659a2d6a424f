package failover

// GTIDSet is the set arithmetic the decisions need. failover does not import
// topology: cmd/regent wraps topology.GTIDSet, whose methods take a
// topology.GTIDSet, in a one-field adapter, e.g.
//
//	type gtid struct{ s topology.GTIDSet }
//	func (g gtid) Contains(o failover.GTIDSet) bool { return g.s.Contains(o.(gtid).s) }
//
// Every set in one View must come from the same implementation (and, for
// topology, the same flavour): implementations may panic when handed a foreign
// one, the way the adapter above does.
//
// A nil GTIDSet in a View means "not known" (for instance the probe failed);
// it is different from an empty set, which means "no transactions".
type GTIDSet interface {
	// Contains reports whether every transaction of o is in the receiver.
	Contains(o GTIDSet) bool
	// Equal reports whether both sets hold the same transactions.
	Equal(o GTIDSet) bool
	// Subtract returns the transactions of the receiver that o lacks.
	Subtract(o GTIDSet) GTIDSet
	// Union returns the transactions in either set.
	Union(o GTIDSet) GTIDSet
	// Restrict returns the transactions of the receiver whose source also
	// appears in o (MySQL: server uuid and tag; MariaDB: domain and
	// server_id), whatever o's ranges there.
	Restrict(o GTIDSet) GTIDSet
	// IsEmpty reports whether the set holds no transaction.
	IsEmpty() bool
	// String returns the set in the server's own notation, for people.
	String() string
}

// The helpers below give nil (unknown) a single meaning everywhere, so that no
// decision dereferences a nil interface and none mistakes "unknown" for
// "empty".

// gtidKnown reports whether s carries knowledge.
func gtidKnown(s GTIDSet) bool { return s != nil }

// gtidEmpty reports whether s is known to be empty or unknown: in both cases
// it adds no transaction to a comparison.
func gtidEmpty(s GTIDSet) bool { return s == nil || s.IsEmpty() }

// gtidContains reports whether a ⊇ b. Nothing contains an unknown set except
// when b adds nothing.
func gtidContains(a, b GTIDSet) bool {
	if gtidEmpty(b) {
		return true
	}
	if a == nil {
		return false
	}
	return a.Contains(b)
}

// gtidSubtract returns a − b; unknown a gives unknown.
func gtidSubtract(a, b GTIDSet) GTIDSet {
	if a == nil {
		return nil
	}
	if b == nil {
		return a
	}
	return a.Subtract(b)
}

// gtidRestrict returns a's transactions from the sources of b; unknown a or
// b gives unknown.
func gtidRestrict(a, b GTIDSet) GTIDSet {
	if a == nil || b == nil {
		return nil
	}
	return a.Restrict(b)
}

// gtidUnion returns a ∪ b, treating unknown as "adds nothing".
func gtidUnion(a, b GTIDSet) GTIDSet {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	default:
		return a.Union(b)
	}
}

// gtidText prints s for a reason string.
func gtidText(s GTIDSet) string {
	switch {
	case s == nil:
		return "(unknown)"
	case s.IsEmpty():
		return "(empty)"
	default:
		return s.String()
	}
}
