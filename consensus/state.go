package consensus

import (
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/regentdb/regent/vocab"
)

// HistoryLimit is how many finished operations each replication cluster keeps
// in its history; older entries are dropped, oldest first.
const HistoryLimit = 200

// OpKind says what an operation does (vocab.OperationKind: one spelling
// with the failover package; snapshots written with the older underscore
// spellings still read).
type OpKind = vocab.OperationKind

// Operation kinds the replicated state records.
const (
	KindFailover       = vocab.OpFailover       // automatic or manual promotion after the primary died
	KindSwitchover     = vocab.OpSwitchover     // planned change of primary, old primary alive
	KindForcedFailover = vocab.OpForcedFailover // operator-forced promotion, checks relaxed
	KindRejoin         = vocab.OpRejoin         // an old primary rejoined as a replica
	// KindSemiSyncFallback: the leader made the primary commit
	// asynchronously because no replica could acknowledge for
	// semi_sync_fallback (Cluster.SemiSyncDegraded records it).
	KindSemiSyncFallback = vocab.OpSemiSyncFallback
	// KindSemiSyncRestore: lossless semi-sync restored after a fallback.
	KindSemiSyncRestore = vocab.OpSemiSyncRestore
	// KindEditConfig: the cluster's run-time settings changed (SetConfig);
	// only SetConfig writes it, as a finished entry.
	KindEditConfig = vocab.OpEditConfig
)

// Result is how an operation ended.
type Result string

// Operation results.
const (
	ResultSuccess Result = "success"
	ResultFailed  Result = "failed"
	ResultAborted Result = "aborted"
)

// StepResult is how one step of an operation ended (vocab.StepResult).
type StepResult = vocab.StepResult

// Step results.
const (
	StepOK      = vocab.StepOK
	StepFailed  = vocab.StepFailed
	StepSkipped = vocab.StepSkipped
)

// PromotionRule is an operator override of an instance's promotion
// preference (vocab.PromotionRule). Neutral is the absence of an override.
type PromotionRule = vocab.PromotionRule

// Promotion rules.
const (
	PromotionPrefer  = vocab.PromotionPrefer
	PromotionNeutral = vocab.PromotionNeutral
	PromotionMustNot = vocab.PromotionMustNot
)

// State is the whole replicated state: every replication cluster and the
// agent (member) table. Values handed out by Node and FSM are deep copies.
type State struct {
	Clusters map[string]*Cluster `json:"clusters"`
	Members  map[string]Member   `json:"members"`
	// Defined holds the replication clusters added at run time
	// (DefineCluster), by name; nil when none. A defined cluster has a
	// record in Clusters once its first primary is decided.
	Defined map[string]Definition `json:"defined,omitempty"`
}

// Definition is a replication cluster added at run time: its regent.yaml
// clusters: entry, and who added it when.
type Definition struct {
	Definition string    `json:"definition"`
	By         string    `json:"by,omitempty"`
	At         time.Time `json:"at"`
}

// Cluster is the replicated state of one replication cluster.
type Cluster struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// Primary is the instance name of the current primary; empty when unknown.
	Primary string `json:"primary"`
	// Epoch grows by exactly one at each change of primary (CommitPrimary is
	// the only way it moves). It starts at 1; 0 never names a valid epoch.
	Epoch uint64 `json:"epoch"`
	// Operation is the operation in progress, nil when none.
	Operation *Operation `json:"operation"`

	Paused      bool      `json:"paused"`
	PausedBy    string    `json:"paused_by"`
	PauseReason string    `json:"pause_reason"`
	PausedAt    time.Time `json:"paused_at"`

	// AntiFlapUntil blocks automatic operations until this time (proposer's
	// clock, carried in the command).
	AntiFlapUntil time.Time `json:"anti_flap_until"`

	// PromotionRules holds overrides by instance name (never Neutral: a
	// neutral rule is stored as absence). Nil when empty.
	PromotionRules map[string]PromotionRule `json:"promotion_rules"`
	// Quarantined instances must not be rejoined or promoted. Nil when empty.
	Quarantined map[string]Quarantine `json:"quarantined"`
	// Maintenance holds the instances an operator put in maintenance
	// (SetMaintenance), expired entries included until replaced or ended:
	// use InMaintenance. Nil when empty.
	Maintenance map[string]Maintenance `json:"maintenance,omitempty"`
	// Instances holds the instances added or removed at run time, over
	// regent.yaml's (SetInstance), by name; InstancesVersion counts the
	// changes. Nil when none.
	Instances        map[string]InstanceChange `json:"instances,omitempty"`
	InstancesVersion uint64                    `json:"instances_version,omitempty"`
	// Config holds the settings changed at run time (SetConfig); nil when
	// none ever was: every agent uses its regent.yaml.
	Config *RuntimeConfig `json:"config,omitempty"`
	// Sources holds the replicas an operator relocated under another
	// replica (SetSource), by replica name. Nil when empty.
	Sources map[string]Relocation `json:"sources,omitempty"`
	// Uncommitted holds the instances an operation promoted (made writable)
	// but never committed: it ended, aborted or failed, before CommitPrimary.
	// Each may be writable outside the epoch and may hold transactions no
	// one else has, so the next change of primary fences it and counts its
	// data (docs/safety.md). A failover's commit clears them all; any commit
	// clears its new primary. Nil when empty.
	Uncommitted map[string]UncommittedPromotion `json:"uncommitted,omitempty"`
	// SemiSyncDegraded is set while the primary commits asynchronously by
	// the leader's decision (semi_sync_fallback): writes acknowledged since
	// may be lost by a failover. Nil while semi-sync is lossless.
	SemiSyncDegraded *SemiSyncDegradation `json:"semi_sync_degraded,omitempty"`

	// History holds the last HistoryLimit finished operations, oldest first.
	History []HistoryEntry `json:"history"`
}

// SemiSyncDegradation says when and why semi-sync was degraded.
type SemiSyncDegradation struct {
	OperationID string    `json:"operation_id"`
	Since       time.Time `json:"since"`
	Reason      string    `json:"reason"`
}

// UncommittedPromotion records which operation promoted an instance without
// committing it.
type UncommittedPromotion struct {
	OperationID string    `json:"operation_id"`
	At          time.Time `json:"at"`
}

// Quarantine says why an instance is quarantined.
type Quarantine struct {
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}

// Operation is an operation in progress.
type Operation struct {
	ID        string    `json:"id"`
	Kind      OpKind    `json:"kind"`
	Trigger   string    `json:"trigger"`
	Automatic bool      `json:"automatic"`
	StartedAt time.Time `json:"started_at"`
	// Target is the intended new primary (switchover --to X) or the instance
	// to rejoin; may be empty for a failover until a candidate is chosen.
	Target      string `json:"target"`
	OldPrimary  string `json:"old_primary"`
	EpochBefore uint64 `json:"epoch_before"`
	// CommitEpoch is the epoch CommitPrimary will set: EpochBefore+1.
	CommitEpoch uint64 `json:"commit_epoch"`

	Committed       bool      `json:"committed"`
	CommittedAt     time.Time `json:"committed_at"`
	NewPrimary      string    `json:"new_primary"`
	GTIDAtPromotion string    `json:"gtid_at_promotion"`
	// Candidate is the instance the operation is promoting, recorded
	// (SetCandidate) before it is made writable: the only instance besides
	// the committed primary whose agent lets it be writable meanwhile.
	Candidate string `json:"candidate,omitempty"`

	Steps []Step `json:"steps"`
}

// Step is one recorded step of an operation.
type Step struct {
	Name     string        `json:"name"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"`
	Result   StepResult    `json:"result"`
	Detail   string        `json:"detail"`
}

// HistoryEntry is one finished operation.
type HistoryEntry struct {
	ID              string        `json:"id"`
	Kind            OpKind        `json:"kind"`
	Trigger         string        `json:"trigger"`
	Automatic       bool          `json:"automatic"`
	Target          string        `json:"target"`
	StartedAt       time.Time     `json:"started_at"`
	EndedAt         time.Time     `json:"ended_at"`
	OldPrimary      string        `json:"old_primary"`
	NewPrimary      string        `json:"new_primary"`
	EpochBefore     uint64        `json:"epoch_before"`
	EpochAfter      uint64        `json:"epoch_after"`
	GTIDAtPromotion string        `json:"gtid_at_promotion"`
	Result          Result        `json:"result"`
	Reason          string        `json:"reason"`
	Steps           []Step        `json:"steps"`
	Duration        time.Duration `json:"duration"`
	// Ack is set once an operator acknowledged the operation (AckOperation).
	Ack *Ack `json:"ack,omitempty"`
}

// Ack is an operator's acknowledgement of a finished operation.
type Ack struct {
	By      string    `json:"by"`
	Comment string    `json:"comment"`
	At      time.Time `json:"at"`
}

// Member is one agent of the regent cluster as recorded in the replicated
// member table, so any agent can find the leader's API and the owner of an
// instance.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	// Instance is the name of the agent's local database instance, empty for
	// a tie-breaker agent.
	Instance string `json:"instance"`
}

// Clone returns a deep copy.
func (s State) Clone() State {
	out := State{}
	if s.Clusters != nil {
		out.Clusters = make(map[string]*Cluster, len(s.Clusters))
		for k, c := range s.Clusters {
			out.Clusters[k] = c.Clone()
		}
	}
	if s.Members != nil {
		out.Members = make(map[string]Member, len(s.Members))
		for k, m := range s.Members {
			out.Members[k] = m
		}
	}
	out.Defined = maps.Clone(s.Defined)
	return out
}

// Cluster returns a copy of the named cluster.
func (s State) Cluster(name string) (Cluster, bool) {
	c, ok := s.Clusters[name]
	if !ok {
		return Cluster{}, false
	}
	return *c.Clone(), true
}

// ClusterList returns copies of all clusters sorted by name.
func (s State) ClusterList() []Cluster {
	out := make([]Cluster, 0, len(s.Clusters))
	for _, c := range s.Clusters {
		out = append(out, *c.Clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// MemberList returns the member table sorted by id.
func (s State) MemberList() []Member {
	out := make([]Member, 0, len(s.Members))
	for _, m := range s.Members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// InstanceOwner returns the member whose local instance is the named one.
// When several claim it (a misconfiguration), the lowest id wins, so every
// agent gives the same answer.
func (s State) InstanceOwner(instance string) (Member, bool) {
	if instance == "" {
		return Member{}, false
	}
	for _, m := range s.MemberList() {
		if m.Instance == instance {
			return m, true
		}
	}
	return Member{}, false
}

// Maintenance is an instance's maintenance window (SetMaintenance).
type Maintenance struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
}

// RuntimeConfig is a cluster's settings changed at run time: Settings, a
// YAML mapping of the keys set (config.EditPolicy reads it), applied by
// every agent over its regent.yaml. Version grows by one per change.
type RuntimeConfig struct {
	Version  uint64    `json:"version"`
	Settings string    `json:"settings"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
}

// InstanceChange is an instance added (or, Removed, taken out) at run time.
type InstanceChange struct {
	Removed   bool              `json:"removed,omitempty"`
	Address   string            `json:"address,omitempty"`
	Promotion string            `json:"promotion,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	By        string            `json:"by"`
	At        time.Time         `json:"at"`
}

// Relocation is where an operator relocated a replica (SetSource).
type Relocation struct {
	Source string    `json:"source"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}

// InMaintenance returns the instance's maintenance when it is in force at
// now (it ends by itself at Until).
func (c *Cluster) InMaintenance(instance string, now time.Time) (Maintenance, bool) {
	m, ok := c.Maintenance[instance]
	if !ok || !now.Before(m.Until) {
		return Maintenance{}, false
	}
	return m, true
}

// Clone returns a copy that later changes to c do not reach: deep but for
// the history, whose entries it shares and which no one may change; nil
// stays nil.
func (c *Cluster) Clone() *Cluster {
	if c == nil {
		return nil
	}
	out := *c
	out.Operation = c.Operation.Clone()
	if c.PromotionRules != nil {
		out.PromotionRules = make(map[string]PromotionRule, len(c.PromotionRules))
		for k, v := range c.PromotionRules {
			out.PromotionRules[k] = v
		}
	}
	if c.Quarantined != nil {
		out.Quarantined = make(map[string]Quarantine, len(c.Quarantined))
		for k, v := range c.Quarantined {
			out.Quarantined[k] = v
		}
	}
	out.Maintenance = maps.Clone(c.Maintenance)
	out.Sources = maps.Clone(c.Sources)
	if c.Instances != nil {
		out.Instances = make(map[string]InstanceChange, len(c.Instances))
		for k, v := range c.Instances {
			v.Labels = maps.Clone(v.Labels)
			out.Instances[k] = v
		}
	}
	if c.Config != nil {
		rc := *c.Config
		out.Config = &rc
	}
	if c.SemiSyncDegraded != nil {
		d := *c.SemiSyncDegraded
		out.SemiSyncDegraded = &d
	}
	if c.Uncommitted != nil {
		out.Uncommitted = make(map[string]UncommittedPromotion, len(c.Uncommitted))
		for k, v := range c.Uncommitted {
			out.Uncommitted[k] = v
		}
	}
	// The history is shared, capped at its length so that an append to
	// the copy reallocates: the state machine never changes an entry in
	// place (it appends, or replaces the slice), so a copy's entries stay
	// as they were, and whoever holds a copy must not change them either.
	// Copying up to HistoryLimit entries, with their steps, on every read
	// made each agent's reads grow with the history (issue 15).
	out.History = c.History[:len(c.History):len(c.History)]
	return &out
}

// PromotionRule returns the override for an instance, Neutral when none.
func (c *Cluster) PromotionRule(instance string) PromotionRule {
	if r, ok := c.PromotionRules[instance]; ok {
		return r
	}
	return PromotionNeutral
}

// Clone returns a deep copy; nil stays nil.
func (o *Operation) Clone() *Operation {
	if o == nil {
		return nil
	}
	out := *o
	out.Steps = slices.Clone(o.Steps)
	return &out
}
