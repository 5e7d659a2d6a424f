// Package consensus runs the Raft group of Regent agents (hashicorp/raft) and
// holds the replicated state of every replication cluster: its primary, its
// epoch (the fencing token), the operation in progress, pause and anti-flap
// state and the bounded history of operations.
//
// It knows Raft, not MySQL: it imports neither topology, failover nor
// proxyhook.
package consensus
