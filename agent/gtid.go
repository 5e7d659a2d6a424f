package agent

import (
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology"
)

// gtid adapts topology.GTIDSet to failover.GTIDSet. Every set in a view comes
// from this adapter; a foreign implementation is a programming error.
type gtid struct{ s topology.GTIDSet }

var _ failover.GTIDSet = gtid{}

func wrapGTID(s topology.GTIDSet) failover.GTIDSet { return gtid{s} }

// unwrapGTID returns the topology set behind a failover set; nil (unknown)
// gives the empty set.
func unwrapGTID(g failover.GTIDSet) topology.GTIDSet {
	if g == nil {
		return topology.GTIDSet{}
	}
	return g.(gtid).s
}

func (g gtid) Contains(o failover.GTIDSet) bool             { return g.s.Contains(unwrapGTID(o)) }
func (g gtid) Equal(o failover.GTIDSet) bool                { return g.s.Equal(unwrapGTID(o)) }
func (g gtid) Subtract(o failover.GTIDSet) failover.GTIDSet { return gtid{g.s.Subtract(unwrapGTID(o))} }
func (g gtid) Union(o failover.GTIDSet) failover.GTIDSet    { return gtid{g.s.Union(unwrapGTID(o))} }
func (g gtid) IsEmpty() bool                                { return g.s.IsEmpty() }
func (g gtid) Restrict(o failover.GTIDSet) failover.GTIDSet {
	return gtid{g.s.RestrictTo(unwrapGTID(o))}
}
func (g gtid) String() string { return g.s.String() }
