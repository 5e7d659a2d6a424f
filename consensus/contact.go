package consensus

import (
	"errors"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// hashicorp/raft tracks when each follower last answered (it needs it for its
// own leader lease) but does not expose it. trackingTransport wraps whatever
// transport Raft uses and records, per peer, what the leader needs for the
// self-fencing lease (docs/safety.md; doc.go, # The lease clock):
//
//   - heard: when the peer last answered any RPC of ours (time the answer
//     arrived, i.e. the latest moment the peer is known to have been alive
//     and connected to us);
//   - ack: when the peer last acknowledged our leadership: the start time of
//     an AppendEntries or InstallSnapshot it answered with a term no higher
//     than ours (the earliest moment the acknowledgement can be dated to).
//
// Heartbeats go through AppendEntries every HeartbeatTimeout/10 while this
// node leads, so both stay fresh to within a few tens of milliseconds.
type trackingTransport struct {
	raft.Transport
	contacts *contactTracker
}

var (
	_ raft.Transport   = (*trackingTransport)(nil)
	_ raft.WithClose   = (*trackingTransport)(nil)
	_ raft.WithPreVote = (*trackingTransport)(nil)
)

type contactTracker struct {
	mu    sync.Mutex
	heard map[raft.ServerID]time.Time
	acks  map[raft.ServerID]ack
}

type ack struct {
	at   time.Time
	term uint64
}

func newContactTracker() *contactTracker {
	return &contactTracker{heard: map[raft.ServerID]time.Time{}, acks: map[raft.ServerID]ack{}}
}

func (c *contactTracker) answered(id raft.ServerID, start time.Time, reqTerm, respTerm uint64, acknowledges bool) {
	end := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if end.After(c.heard[id]) {
		c.heard[id] = end
	}
	if acknowledges && respTerm <= reqTerm {
		if a := c.acks[id]; reqTerm > a.term || reqTerm == a.term && start.After(a.at) {
			c.acks[id] = ack{at: start, term: reqTerm}
		}
	}
}

func (c *contactTracker) lastHeard(id raft.ServerID) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.heard[id]
}

// quorumAck returns the latest time t such that a majority of the voters
// (self included, self counting as "now" when leading) acknowledged one
// leadership term of this node at or after t; zero if no majority did.
func (c *contactTracker) quorumAck(self raft.ServerID, voters []raft.ServerID, leading bool, now time.Time) time.Time {
	isVoter := false
	var others []raft.ServerID
	for _, v := range voters {
		if v == self {
			isVoter = true
		} else {
			others = append(others, v)
		}
	}
	if !isVoter {
		return time.Time{}
	}
	need := len(voters)/2 + 1 - 1 // quorum minus self
	if need == 0 {
		if leading {
			return now
		}
		return time.Time{}
	}
	c.mu.Lock()
	var maxTerm uint64
	for _, id := range others {
		maxTerm = max(maxTerm, c.acks[id].term)
	}
	var times []time.Time
	for _, id := range others {
		if a, ok := c.acks[id]; ok && a.term == maxTerm && maxTerm > 0 {
			times = append(times, a.at)
		}
	}
	c.mu.Unlock()
	if len(times) < need {
		return time.Time{}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].After(times[j]) })
	return times[need-1]
}

func (t *trackingTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	start := time.Now()
	err := t.Transport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.contacts.answered(id, start, args.Term, resp.Term, true)
	}
	return err
}

func (t *trackingTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	start := time.Now()
	err := t.Transport.InstallSnapshot(id, target, args, resp, data)
	if err == nil {
		t.contacts.answered(id, start, args.Term, resp.Term, true)
	}
	return err
}

func (t *trackingTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	start := time.Now()
	err := t.Transport.RequestVote(id, target, args, resp)
	if err == nil {
		t.contacts.answered(id, start, args.Term, resp.Term, false)
	}
	return err
}

func (t *trackingTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	start := time.Now()
	err := t.Transport.TimeoutNow(id, target, args, resp)
	if err == nil {
		t.contacts.answered(id, start, 0, 0, false)
	}
	return err
}

var errNoPreVote = errors.New("transport does not support pre-vote")

// RequestPreVote implements raft.WithPreVote. newTrackingTransport refuses
// transports without it: the lease relies on pre-vote (see Config.raftConfig).
func (t *trackingTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	pv, ok := t.Transport.(raft.WithPreVote)
	if !ok {
		return errNoPreVote
	}
	start := time.Now()
	err := pv.RequestPreVote(id, target, args, resp)
	if err == nil {
		t.contacts.answered(id, start, args.Term, resp.Term, false)
	}
	return err
}

// Close implements raft.WithClose; Raft calls it on shutdown.
func (t *trackingTransport) Close() error {
	if c, ok := t.Transport.(raft.WithClose); ok {
		return c.Close()
	}
	return nil
}
