package failover

import (
	"errors"
	"fmt"
	"time"
)

// Durability is the replication durability mode of a cluster.
type Durability string

// The durability modes (docs/safety.md: no acknowledged write is lost with
// semi_sync only).
const (
	// DurabilitySemiSync: lossless semi-synchronous replication (wait point
	// AFTER_SYNC), configured and enforced by Regent. No acknowledged write is
	// lost by a failover.
	DurabilitySemiSync Durability = "semi_sync"
	// DurabilityAsync: asynchronous replication. A failover may lose the
	// writes the old primary committed in the last moments before it died
	// and that no replica had received; plans list them.
	DurabilityAsync Durability = "async"
)

// Policy holds a cluster's failover settings. The agent's configuration
// decodes a cluster's keys straight into a Policy pre-filled with the
// defaults: each field's yaml tag is its key, so a
// new setting is a field here, its default and its check below, and a line
// in README "Configuration".
type Policy struct {
	// Durability: semi_sync or async.
	Durability Durability `yaml:"durability"`
	// SemiSyncWaitFor is how many semi-sync replicas a commit waits for;
	// at least 1 with semi_sync.
	SemiSyncWaitFor int `yaml:"semi_sync_wait_for"`
	// SemiSyncFallback (never or a duration in the configuration) is how
	// long commits may stay
	// blocked because too few semi-sync replicas are connected before the
	// leader lets the primary commit asynchronously (recorded in Raft and the
	// history); 0 is "never", the default: commits stay blocked.
	SemiSyncFallback time.Duration `yaml:"-"`

	// ProbeInterval is how often each agent probes each
	// instance.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// ObservationTTL: probes older than this are stale and
	// ignored. The agents with a fresh probe of detection's condition (b)
	// (README "Detection") are the ones with a probe younger than this.
	ObservationTTL time.Duration `yaml:"observation_ttl"`
	// FailureTimeout is how long the leader's own probes of
	// the primary must fail before it may be declared dead (condition (a)).
	FailureTimeout time.Duration `yaml:"failure_timeout"`
	// MinAgreeingAgents is the least number of agents
	// that must fail to reach the primary, on top of the strict majority of
	// fresh reporters (condition (b)). 1 lets a lone leader decide when the
	// other agents are silent.
	MinAgreeingAgents int `yaml:"min_agreeing_agents"`
	// FastPath allows an immediate failover when the primary's own
	// agent reports its mysqld gone.
	FastPath bool `yaml:"fast_path"`

	// FenceAfter: an agent out of contact with the quorum this
	// long sets its local instance read-only.
	FenceAfter time.Duration `yaml:"fence_after"`
	// LeaseTimeout: the leader waits this long after an
	// unreachable primary's agent was last heard before promoting another
	// instance.
	LeaseTimeout time.Duration `yaml:"lease_timeout"`

	// MaxLagOnFailover: replicas lagging more are not
	// candidates, and are reported as lagging.
	MaxLagOnFailover time.Duration `yaml:"max_lag_on_failover"`
	// SwitchoverMaxLag: a switchover target lagging more
	// is refused, since the lag becomes write-blocked time.
	SwitchoverMaxLag time.Duration `yaml:"switchover_max_lag"`
	// AntiFlapPeriod: after a failover, automatic
	// failovers of the cluster are blocked this long. Manual ones are not.
	AntiFlapPeriod time.Duration `yaml:"anti_flap_period"`
	// AutomaticFailover: fail a dead or isolated primary over without an
	// operator. Off, Regent still detects and reports it (DeadPrimary,
	// blocked "disabled") and an operator fails over with regentctl
	// failover; unlike a pause, every other repair still runs.
	AutomaticFailover bool `yaml:"automatic_failover"`
	// AutoRejoin: rejoin a returning old primary as a replica
	// without an operator (only when it holds no errant transaction).
	AutoRejoin bool `yaml:"auto_rejoin"`
	// PromotionSame: label keys (for example region) a
	// failover or switchover may not cross: an instance whose label differs
	// from the old primary's is never promoted (a forced failover may, with
	// --force). Every instance must carry each key.
	PromotionSame []string `yaml:"promotion_same"`
	// PromotionPreferSame: label keys (for example
	// zone) the new primary should share with the old when the data allows:
	// among candidates equal in data, those sharing more of them come first.
	PromotionPreferSame []string `yaml:"promotion_prefer_same"`

	// Step timeouts. StepTimeout bounds each single action on an instance
	// or router (read-only, kill, stop IO, promote, repoint, route);
	// RaftTimeout each replicated-state command; HookTimeout each hook;
	// RelayLogTimeout waiting for relay logs to be applied;
	// CatchUpTimeout a candidate catching up;
	// LongTransactionWait how long a switchover waits
	// for running write transactions before giving up.
	StepTimeout         time.Duration `yaml:"step_timeout"`
	RaftTimeout         time.Duration `yaml:"raft_timeout"`
	HookTimeout         time.Duration `yaml:"hook_timeout"`
	RelayLogTimeout     time.Duration `yaml:"relay_log_timeout"`
	CatchUpTimeout      time.Duration `yaml:"catch_up_timeout"`
	LongTransactionWait time.Duration `yaml:"long_transaction_wait"`
	// OperationTimeout: an operation recorded in progress
	// for longer was abandoned (its leader died); a new one may take over
	// instead of being blocked forever by a run that crashed.
	OperationTimeout time.Duration `yaml:"operation_timeout"`
}

// LosslessMinTimeout is the shortest semi-sync timeout on a primary that
// counts as lossless: a day. Regent sets about 49 days; the server default,
// 10 s, silently makes commits asynchronous after a replica outage.
const LosslessMinTimeout = 24 * time.Hour

// DefaultPolicy returns settings tuned for a LAN and for the targets of
// BENCHMARKS.md:
// a frozen primary is failed over in about failure_timeout plus the step
// times, a lost host in about lease_timeout.
func DefaultPolicy() Policy {
	return Policy{
		Durability:          DurabilitySemiSync,
		SemiSyncWaitFor:     1,
		ProbeInterval:       500 * time.Millisecond,
		ObservationTTL:      1500 * time.Millisecond,
		FailureTimeout:      2 * time.Second,
		MinAgreeingAgents:   1,
		FastPath:            true,
		FenceAfter:          1500 * time.Millisecond,
		LeaseTimeout:        3 * time.Second,
		MaxLagOnFailover:    10 * time.Second,
		SwitchoverMaxLag:    2 * time.Second,
		AntiFlapPeriod:      5 * time.Minute,
		AutoRejoin:          true,
		AutomaticFailover:   true,
		StepTimeout:         time.Second,
		RaftTimeout:         time.Second,
		HookTimeout:         10 * time.Second,
		RelayLogTimeout:     10 * time.Second,
		CatchUpTimeout:      10 * time.Second,
		LongTransactionWait: 5 * time.Second,
		OperationTimeout:    2 * time.Minute,
	}
}

// ErrInvalidPolicy is wrapped by every Policy.Validate error.
var ErrInvalidPolicy = errors.New("invalid failover policy")

// Validate checks every field and the relations between them; each message
// names the configuration key.
func (p Policy) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: %s "+format, append([]any{ErrInvalidPolicy, key}, a...)...))
	}
	switch p.Durability {
	case DurabilitySemiSync:
		if p.SemiSyncWaitFor < 1 {
			bad("semi_sync_wait_for", "is %d; semi_sync needs at least 1 acknowledging replica", p.SemiSyncWaitFor)
		}
	case DurabilityAsync:
	default:
		bad("durability", "is %q; want semi_sync or async", p.Durability)
	}
	if p.SemiSyncFallback < 0 {
		bad("semi_sync_fallback", "is %v; want never or a positive duration", p.SemiSyncFallback)
	} else if p.SemiSyncFallback > 0 && p.SemiSyncFallback < p.ProbeInterval {
		bad("semi_sync_fallback", "(%v) is shorter than probe_interval (%v): the leader could not tell an outage from a blip", p.SemiSyncFallback, p.ProbeInterval)
	}
	positive := []struct {
		key string
		d   time.Duration
	}{
		{"probe_interval", p.ProbeInterval},
		{"observation_ttl", p.ObservationTTL},
		{"failure_timeout", p.FailureTimeout},
		{"fence_after", p.FenceAfter},
		{"lease_timeout", p.LeaseTimeout},
		{"step_timeout", p.StepTimeout},
		{"raft_timeout", p.RaftTimeout},
		{"hook_timeout", p.HookTimeout},
		{"relay_log_timeout", p.RelayLogTimeout},
		{"catch_up_timeout", p.CatchUpTimeout},
		{"operation_timeout", p.OperationTimeout},
	}
	for _, f := range positive {
		if f.d <= 0 {
			bad(f.key, "is %v; it must be positive", f.d)
		}
	}
	nonNegative := []struct {
		key string
		d   time.Duration
	}{
		{"max_lag_on_failover", p.MaxLagOnFailover},
		{"switchover_max_lag", p.SwitchoverMaxLag},
		{"anti_flap_period", p.AntiFlapPeriod},
		{"long_transaction_wait", p.LongTransactionWait},
	}
	for _, f := range nonNegative {
		if f.d < 0 {
			bad(f.key, "is %v; it must not be negative", f.d)
		}
	}
	for _, f := range []struct {
		key  string
		keys []string
	}{{"promotion_same", p.PromotionSame}, {"promotion_prefer_same", p.PromotionPreferSame}} {
		for _, k := range f.keys {
			if !ValidLabel(k) {
				bad(f.key, "names %q: a label key is 1 to 63 letters, digits, '.', '_' or '-'", k)
			}
		}
	}
	if p.MinAgreeingAgents < 1 {
		bad("min_agreeing_agents", "is %d; it must be at least 1", p.MinAgreeingAgents)
	}
	if len(errs) > 0 {
		// Cross-field checks on nonsense values would only add noise.
		return errors.Join(errs...)
	}
	if p.ObservationTTL < p.ProbeInterval {
		bad("observation_ttl", "(%v) is shorter than probe_interval (%v): every probe would be stale before the next one", p.ObservationTTL, p.ProbeInterval)
	}
	if p.FailureTimeout < p.ProbeInterval {
		bad("failure_timeout", "(%v) is shorter than probe_interval (%v): one lost probe would declare the primary dead", p.FailureTimeout, p.ProbeInterval)
	}
	if p.FenceAfter >= p.LeaseTimeout {
		bad("fence_after", "(%v) must be shorter than lease_timeout (%v): an isolated primary must stop taking writes before the leader may promote another", p.FenceAfter, p.LeaseTimeout)
	} else if p.FenceAfter+p.StepTimeout > p.LeaseTimeout {
		bad("lease_timeout", "(%v) leaves less than step_timeout (%v) after fence_after (%v) for the isolated agent to set read_only before the leader may promote", p.LeaseTimeout, p.StepTimeout, p.FenceAfter)
	} else if m := LeaseMargin(p); p.LeaseTimeout-p.FenceAfter <= 2*m {
		bad("lease_timeout", "(%v) leaves %v after fence_after (%v): the isolated agent needs more than twice the lease margin (%v) to set read_only and, failing that, stop mysqld before the leader may promote (lease.go)", p.LeaseTimeout, p.LeaseTimeout-p.FenceAfter, p.FenceAfter, m)
	}
	if min := p.minOperationTimeout(); p.OperationTimeout < min {
		bad("operation_timeout", "(%v) is shorter than the longest operation the other timeouts allow (%v): a live operation would be taken for abandoned", p.OperationTimeout, min)
	}
	return errors.Join(errs...)
}

// minOperationTimeout is the longest a failover or switchover can take with
// every step running into its timeout.
func (p Policy) minOperationTimeout() time.Duration {
	return p.LeaseTimeout + p.RelayLogTimeout + p.CatchUpTimeout + p.LongTransactionWait +
		2*p.HookTimeout + 8*p.StepTimeout + 3*p.RaftTimeout
}

// ValidLabel reports whether s may be a label key or value: 1 to 63
// letters, digits, '.', '_' or '-'.
func ValidLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}
