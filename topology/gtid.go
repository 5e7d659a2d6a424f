package topology

// GTIDSet is a set of transactions identified by GTID. Placeholder until the
// GTID arithmetic lands.
type GTIDSet struct{}
