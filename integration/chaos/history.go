// Package chaos is Regent's randomized fault campaign (issue 12): seeded
// schedules of faults against the real binaries on netlab hosts, a workload
// that records every write attempt, a sampler that records what each
// instance, agent and balancer said every 50 ms, and a checker that reads the
// resulting History and says whether Regent's promises held.
//
// This file holds the history's types; check.go is the checker (pure: a
// History in, violations out), schedule.go the seeded nemesis schedule.
package chaos

import (
	"time"

	"github.com/regentdb/regent/api"
)

// Attempt is one write a client tried: an INSERT of a row with a unique id.
type Attempt struct {
	// Client names the writer: "haproxy-N" through the balancer, or
	// "direct", which writes straight to the instance it last saw
	// writable (an application with a stale address).
	Client string `json:"client"`
	// ID is the row's id, unique over the whole run.
	ID int64 `json:"id"`
	// Start and End bound the attempt: the INSERT was sent after Start and
	// its answer (or the error) came at End.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Target is the instance whose session ran the INSERT (by its
	// server_id, read on the same connection before the write); empty when
	// no session was established.
	Target string `json:"target,omitempty"`
	// OK: the server acknowledged the commit.
	OK bool `json:"ok"`
	// Err is the error the client got, when not OK.
	Err string `json:"err,omitempty"`
}

// Through reports whether the attempt went through the balancer.
func (a Attempt) Through() bool { return a.Client != DirectClient }

// DirectClient is the name of the client that bypasses the balancer.
const DirectClient = "direct"

// Sample is what the sampler saw at one moment.
type Sample struct {
	At time.Time `json:"at"`
	// ReadOnly per instance; absent when the instance did not answer.
	ReadOnly map[string]bool `json:"read_only,omitempty"`
	// PrimaryCheck per agent: the HTTP status its GET /primary answered
	// (0: no answer).
	PrimaryCheck map[string]int `json:"primary_check,omitempty"`
	// HAProxy per server: its state in HAProxy's runtime API ("UP",
	// "DOWN", "MAINT", ...); absent when the API did not answer.
	HAProxy map[string]string `json:"haproxy,omitempty"`
	// Epoch and Primary per agent, as its own replicated state says
	// (absent when the agent did not answer).
	Epoch   map[string]uint64 `json:"epoch,omitempty"`
	Primary map[string]string `json:"primary,omitempty"`
}

// Event is a fault the nemesis injected or healed, or a command it issued
// (a switchover, a manual failover), with what it answered.
type Event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail,omitempty"`
}

// FinalInstance is one instance as the convergence check found it.
type FinalInstance struct {
	Name string `json:"name"`
	// Writable: read_only=OFF (and, on MySQL, super_read_only=OFF).
	Writable bool `json:"writable"`
	// Reachable: the checker could read it.
	Reachable bool     `json:"reachable"`
	Role      api.Role `json:"role,omitempty"`
	// SourceName is whom it replicates from, with both threads running;
	// empty when it does not replicate.
	SourceName       string `json:"source_name,omitempty"`
	QuarantineReason string `json:"quarantine_reason,omitempty"`
	// Rows are the workload's row ids it holds; RowsErr says why they
	// could not be read.
	Rows    []int64 `json:"rows,omitempty"`
	RowsErr string  `json:"rows_err,omitempty"`
}

// Final is the state after everything healed.
type Final struct {
	// HealedAt is when the nemesis healed the last fault.
	HealedAt time.Time `json:"healed_at"`
	// ConvergedAt is when every convergence condition first held together
	// (zero: they never did within the wait).
	ConvergedAt time.Time `json:"converged_at"`
	// Primary and Epoch as Regent's leader reported them at the end.
	Primary string `json:"primary"`
	Epoch   uint64 `json:"epoch"`
	// AutomaticFailover as the leader reported it.
	AutomaticFailover api.AutomaticFailover `json:"automatic_failover"`
	// Routed is the server HAProxy sends writes to (the only one UP in
	// the write backend); empty when none or several are.
	Routed    string          `json:"routed"`
	Instances []FinalInstance `json:"instances"`
	// Operations is the cluster's history (api.Operation, oldest first).
	Operations []api.Operation `json:"operations"`
	// Why says which condition was still missing when the wait ended.
	Why string `json:"why,omitempty"`
}

// History is everything one schedule's run recorded.
type History struct {
	Flavor   string    `json:"flavor"`
	Seed     int64     `json:"seed"`
	Schedule Schedule  `json:"schedule"`
	Attempts []Attempt `json:"attempts"`
	Samples  []Sample  `json:"samples"`
	Events   []Event   `json:"events"`
	// Applied lists the kinds of the steps that took effect (a skipped
	// step, or a leader strike that found no operation, is not there).
	Applied []Kind    `json:"applied"`
	Final   Final     `json:"final"`
	Started time.Time `json:"started"`
	// Logs is where the agents' and HAProxy's logs were kept.
	Logs string `json:"logs,omitempty"`
}

// ConvergeWithin is how long after the last heal the cluster must have
// converged (issue 12: one writable primary, the others replicating from
// it or quarantined, automatic failover possible or blocked with a reason,
// HAProxy routing to the primary).
const ConvergeWithin = 30 * time.Second
