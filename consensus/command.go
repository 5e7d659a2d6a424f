package consensus

import (
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Field limits, enforced when a command is encoded and again when it is
// decoded, so the replicated state stays bounded.
const (
	MaxNameLen     = 255      // ids, names, addresses, "by"
	MaxTextLen     = 8 << 10  // trigger, reason, GTID set
	MaxDetailLen   = 2 << 10  // a step's detail/output (see TruncateDetail)
	MaxSteps       = 64       // steps recorded per operation
	MaxCommandSize = 64 << 10 // encoded command
)

// Command is one change to the replicated state. The set is closed: the
// concrete types are the exported structs of this file. Every command that
// touches an operation or the primary is conditional (compare-and-set on the
// epoch and/or the operation id), so a command prepared from an old view —
// for instance by a deposed leader — is rejected and changes nothing.
//
// Times in commands are the proposer's: the FSM never reads a clock.
type Command interface {
	// Name is the command's kind, for logs ("begin_operation").
	Name() string
	kind() cmdKind
	validate() error
	encodeBody(w *wbuf)
}

type cmdKind byte

// Command kinds on the wire. Never renumber: append.
const (
	kindInitCluster      cmdKind = 1
	kindBeginOperation   cmdKind = 2
	kindRecordStep       cmdKind = 3
	kindCommitPrimary    cmdKind = 4
	kindFinishOperation  cmdKind = 5
	kindAbortOperation   cmdKind = 6
	kindSetPaused        cmdKind = 7
	kindSetAntiFlap      cmdKind = 8
	kindSetPromotionRule cmdKind = 9
	kindSetQuarantine    cmdKind = 10
	kindClearQuarantine  cmdKind = 11
	kindSetMember        cmdKind = 12
	kindRemoveMember     cmdKind = 13
	kindSetCandidate     cmdKind = 14
	kindSetSemiSync      cmdKind = 15
	kindSetMaintenance   cmdKind = 16
	kindAckOperation     cmdKind = 17
	kindSetSource        cmdKind = 18
	kindSetConfig        cmdKind = 19
	kindSetInstance      cmdKind = 20
	kindDefineCluster    cmdKind = 21
)

// InitCluster creates a replication cluster at epoch 1, only if absent
// (ErrConflict otherwise). Primary may be empty when not yet known.
type InitCluster struct {
	Cluster string
	Primary string
	At      time.Time
}

// BeginOperation records the intent to run an operation. It fails with
// ErrStaleEpoch if the cluster's epoch is not ExpectEpoch, ErrConflict if an
// operation is in progress or the id was used before, and — for automatic
// operations only — ErrPaused or ErrAntiFlap (At is compared with the
// anti-flap deadline). Manual operations pass a pause and anti-flap.
type BeginOperation struct {
	Cluster     string
	OperationID string
	Kind        OpKind
	ExpectEpoch uint64
	Target      string // required for rejoin; optional otherwise
	Trigger     string // why: detection summary, or who asked
	Automatic   bool
	At          time.Time
}

// RecordStep appends a step to the operation in progress; OperationID must
// match (ErrConflict otherwise). At most MaxSteps steps per operation.
type RecordStep struct {
	Cluster     string
	OperationID string
	Step        Step
}

// CommitPrimary makes NewPrimary the primary and sets the epoch to
// ExpectEpoch+1 — the only way an epoch moves. It requires the operation in
// progress to be OperationID, of a kind that changes the primary, not yet
// committed, and the cluster to be at ExpectEpoch. The same commit sent again
// by that operation once it is applied (its answer was lost) succeeds and
// changes nothing.
type CommitPrimary struct {
	Cluster     string
	OperationID string
	NewPrimary  string
	ExpectEpoch uint64
	GTID        string // GTID set/position at promotion
	At          time.Time
}

// FinishOperation ends the operation in progress (OperationID must match),
// appends it to the history and clears it. ResultSuccess is refused for an
// operation that should have changed the primary but did not commit one.
type FinishOperation struct {
	Cluster     string
	OperationID string
	Result      Result
	Reason      string
	At          time.Time
}

// AbortOperation is FinishOperation with ResultAborted: used when a run is
// abandoned, including by a new leader cleaning up a deposed leader's run.
type AbortOperation struct {
	Cluster     string
	OperationID string
	Reason      string
	At          time.Time
}

// SetPaused pauses (blocks automatic operations) or resumes a cluster.
type SetPaused struct {
	Cluster string
	Paused  bool
	By      string
	Reason  string
	At      time.Time
}

// SetAntiFlap sets the time until which automatic operations are refused; the
// zero time clears it.
type SetAntiFlap struct {
	Cluster string
	Until   time.Time
}

// SetPromotionRule sets an instance's promotion override; PromotionNeutral
// removes it.
type SetPromotionRule struct {
	Cluster  string
	Instance string
	Rule     PromotionRule
}

// SetQuarantine quarantines an instance (for instance: errant GTIDs).
type SetQuarantine struct {
	Cluster  string
	Instance string
	Reason   string
	By       string
	At       time.Time
}

// SetMaintenance puts an instance in maintenance until Until (On), or ends
// it (ErrNotFound if none). An instance in maintenance is never promoted;
// Regent reports no replica problem of it and repairs nothing on it, and
// /replica answers 503. It may not be the recorded primary (ErrConflict:
// switch over first). It ends by itself at Until: readers compare it with
// their clock (Cluster.InMaintenance), the entry stays until replaced.
type SetMaintenance struct {
	Cluster  string
	Instance string
	On       bool
	By       string
	Reason   string
	At       time.Time
	Until    time.Time
}

// AckOperation records that an operator has looked at a finished operation
// (orchestrator's acknowledgement of a recovery): who, when and a comment.
// ErrNotFound when the history holds no such operation, ErrConflict when it
// is already acknowledged.
type AckOperation struct {
	Cluster     string
	OperationID string
	By          string
	Comment     string
	At          time.Time
}

// SetSource records the source an operator relocated a replica under
// (regentctl repoint): Regent then keeps Instance replicating from Source, a
// replica of the cluster, instead of directly from the primary, for as long
// as Source can serve it (failover.ExpectedSource). An empty Source removes
// the record (ErrNotFound if none): the replica belongs directly under the
// primary again. Refused (ErrConflict) for the recorded primary, and when
// the records would form a cycle. A committed promotion removes the new
// primary's record and every record naming it as the source.
type SetSource struct {
	Cluster  string
	Instance string
	Source   string
	By       string
	At       time.Time
}

// SetConfig replaces a cluster's run-time settings (Cluster.Config) with
// Settings, a YAML mapping the proposer has validated (config.EditPolicy;
// consensus does not read it), if the current version is ExpectVersion
// (ErrConflict otherwise: someone changed it meanwhile). The change is kept
// in the history as a finished edit-config entry whose reason is Change
// (what changed, for people), by By.
type SetConfig struct {
	Cluster       string
	ExpectVersion uint64
	Settings      string
	Change        string
	By            string
	At            time.Time
}

// SetInstance adds an instance to a cluster at run time, or (Remove)
// takes one out, over the instances of regent.yaml (regentctl cluster
// add|remove; the proposer has validated it against the cluster's
// instances). Removing the recorded primary, or an instance an operation
// in progress promotes, is refused (ErrConflict). Every change moves
// Cluster.InstancesVersion by one.
type SetInstance struct {
	Cluster   string
	Instance  string
	Remove    bool
	Address   string
	Promotion string
	Labels    map[string]string
	By        string
	At        time.Time
}

// DefineCluster adds a replication cluster at run time (regentctl cluster
// create): Definition is its regent.yaml clusters: entry, which the
// proposer has validated with the start-up rules (config.ParseDefinition;
// consensus does not read it). A name already defined, or already holding a
// cluster record (a regent.yaml cluster), is refused (ErrConflict). With
// Remove it takes out a cluster defined so, with its record and history
// (ErrNotFound when the name was not defined at run time, ErrConflict while
// an operation is in progress on it).
type DefineCluster struct {
	Cluster    string
	Definition string
	Remove     bool
	By         string
	At         time.Time
}

// MaxDefinitionLen bounds a cluster definition's text.
const MaxDefinitionLen = 64 << 10

// ClearQuarantine lifts a quarantine (ErrNotFound if none).
type ClearQuarantine struct {
	Cluster  string
	Instance string
}

// SetMember creates or replaces an agent's record in the member table.
type SetMember struct {
	Member Member
}

// SetCandidate records the instance the operation in progress is about to
// promote, before it is made writable (ErrConflict unless OperationID is the
// operation in progress and it changes the primary). If the operation ends
// without committing, the instance stays in Cluster.Uncommitted.
type SetCandidate struct {
	Cluster     string
	OperationID string
	Instance    string
}

// SetSemiSyncDegraded records the leader's decision to let the primary commit
// asynchronously (Degraded) or its return to lossless semi-sync. It must
// belong to the operation in progress, of kind semi_sync_fallback (to
// degrade) or semi_sync_restore (to restore): ErrConflict otherwise.
type SetSemiSyncDegraded struct {
	Cluster     string
	OperationID string
	Degraded    bool
	Reason      string
	At          time.Time
}

// RemoveMember deletes an agent's record (ErrNotFound if absent).
type RemoveMember struct {
	ID string
}

func (InitCluster) Name() string         { return "init_cluster" }
func (BeginOperation) Name() string      { return "begin_operation" }
func (RecordStep) Name() string          { return "record_step" }
func (CommitPrimary) Name() string       { return "commit_primary" }
func (FinishOperation) Name() string     { return "finish_operation" }
func (AbortOperation) Name() string      { return "abort_operation" }
func (SetPaused) Name() string           { return "set_paused" }
func (SetAntiFlap) Name() string         { return "set_anti_flap" }
func (SetPromotionRule) Name() string    { return "set_promotion_rule" }
func (SetQuarantine) Name() string       { return "set_quarantine" }
func (ClearQuarantine) Name() string     { return "clear_quarantine" }
func (SetMember) Name() string           { return "set_member" }
func (RemoveMember) Name() string        { return "remove_member" }
func (SetCandidate) Name() string        { return "set_candidate" }
func (SetSemiSyncDegraded) Name() string { return "set_semi_sync_degraded" }
func (SetMaintenance) Name() string      { return "set_maintenance" }
func (AckOperation) Name() string        { return "ack_operation" }
func (SetSource) Name() string           { return "set_source" }
func (SetConfig) Name() string           { return "set_config" }
func (SetInstance) Name() string         { return "set_instance" }
func (DefineCluster) Name() string       { return "define_cluster" }

func (InitCluster) kind() cmdKind         { return kindInitCluster }
func (BeginOperation) kind() cmdKind      { return kindBeginOperation }
func (RecordStep) kind() cmdKind          { return kindRecordStep }
func (CommitPrimary) kind() cmdKind       { return kindCommitPrimary }
func (FinishOperation) kind() cmdKind     { return kindFinishOperation }
func (AbortOperation) kind() cmdKind      { return kindAbortOperation }
func (SetPaused) kind() cmdKind           { return kindSetPaused }
func (SetAntiFlap) kind() cmdKind         { return kindSetAntiFlap }
func (SetPromotionRule) kind() cmdKind    { return kindSetPromotionRule }
func (SetQuarantine) kind() cmdKind       { return kindSetQuarantine }
func (ClearQuarantine) kind() cmdKind     { return kindClearQuarantine }
func (SetMember) kind() cmdKind           { return kindSetMember }
func (RemoveMember) kind() cmdKind        { return kindRemoveMember }
func (SetCandidate) kind() cmdKind        { return kindSetCandidate }
func (SetSemiSyncDegraded) kind() cmdKind { return kindSetSemiSync }
func (SetMaintenance) kind() cmdKind      { return kindSetMaintenance }
func (AckOperation) kind() cmdKind        { return kindAckOperation }
func (SetSource) kind() cmdKind           { return kindSetSource }
func (SetConfig) kind() cmdKind           { return kindSetConfig }
func (SetInstance) kind() cmdKind         { return kindSetInstance }
func (DefineCluster) kind() cmdKind       { return kindDefineCluster }

// clusterOf returns the replication cluster a command targets, "" for member
// commands.
func clusterOf(c Command) string {
	switch c := c.(type) {
	case InitCluster:
		return c.Cluster
	case BeginOperation:
		return c.Cluster
	case RecordStep:
		return c.Cluster
	case CommitPrimary:
		return c.Cluster
	case FinishOperation:
		return c.Cluster
	case AbortOperation:
		return c.Cluster
	case SetPaused:
		return c.Cluster
	case SetAntiFlap:
		return c.Cluster
	case SetPromotionRule:
		return c.Cluster
	case SetQuarantine:
		return c.Cluster
	case ClearQuarantine:
		return c.Cluster
	case SetCandidate:
		return c.Cluster
	case SetSemiSyncDegraded:
		return c.Cluster
	case SetMaintenance:
		return c.Cluster
	case AckOperation:
		return c.Cluster
	case SetSource:
		return c.Cluster
	case SetConfig:
		return c.Cluster
	case SetInstance:
		return c.Cluster
	}
	return ""
}

// TruncateDetail shortens s to at most MaxDetailLen bytes without splitting a
// UTF-8 sequence, marking the cut, so a step's output always fits.
func TruncateDetail(s string) string {
	if len(s) <= MaxDetailLen {
		return s
	}
	const mark = " …[truncated]"
	cut := MaxDetailLen - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// ---- validation ----

// v collects the first validation error of a command.
type v struct{ err error }

func (x *v) fail(field, format string, args ...any) {
	if x.err == nil {
		x.err = fmt.Errorf("%w: %s: %s", ErrInvalidCommand, field, fmt.Sprintf(format, args...))
	}
}

func (x *v) text(field, s string, max int, required bool) {
	switch {
	case required && s == "":
		x.fail(field, "must not be empty")
	case len(s) > max:
		x.fail(field, "is %d bytes, more than %d", len(s), max)
	case !utf8.ValidString(s):
		x.fail(field, "is not valid UTF-8")
	}
}

// name checks an identifier: printable, no control characters.
func (x *v) name(field, s string, required bool) {
	x.text(field, s, MaxNameLen, required)
	for _, r := range s {
		if unicode.IsControl(r) {
			x.fail(field, "contains a control character")
			return
		}
	}
}

// Times must fit in int64 nanoseconds since 1970 (years 1678 to 2262), the
// wire format.
var (
	minTime = time.Unix(0, -1<<63+1)
	maxTime = time.Unix(0, 1<<63-1)
)

func (x *v) time(field string, t time.Time, required bool) {
	switch {
	case t.IsZero():
		if required {
			x.fail(field, "must be set")
		}
	case t.Before(minTime) || t.After(maxTime):
		x.fail(field, "%s is out of range", t)
	}
}

func (x *v) kind(field string, k OpKind) {
	if _, ok := opKindCode[k]; !ok {
		x.fail(field, "unknown operation kind %q", k)
	}
}

func (c InitCluster) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("primary", c.Primary, false)
	x.time("at", c.At, true)
	return x.err
}

func (c BeginOperation) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("operation_id", c.OperationID, true)
	x.kind("kind", c.Kind)
	if c.ExpectEpoch == 0 {
		x.fail("expect_epoch", "must be at least 1")
	}
	x.name("target", c.Target, c.Kind == KindRejoin)
	x.text("trigger", c.Trigger, MaxTextLen, false)
	x.time("at", c.At, true)
	return x.err
}

func (c RecordStep) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("operation_id", c.OperationID, true)
	x.name("step.name", c.Step.Name, true)
	x.time("step.start", c.Step.Start, true)
	if c.Step.Duration < 0 {
		x.fail("step.duration", "must not be negative")
	}
	if _, ok := stepResultCode[c.Step.Result]; !ok {
		x.fail("step.result", "unknown step result %q", c.Step.Result)
	}
	x.text("step.detail", c.Step.Detail, MaxDetailLen, false)
	return x.err
}

func (c CommitPrimary) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("operation_id", c.OperationID, true)
	x.name("new_primary", c.NewPrimary, true)
	if c.ExpectEpoch == 0 {
		x.fail("expect_epoch", "must be at least 1")
	}
	x.text("gtid", c.GTID, MaxTextLen, false)
	x.time("at", c.At, true)
	return x.err
}

func (c FinishOperation) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("operation_id", c.OperationID, true)
	if _, ok := resultCode[c.Result]; !ok {
		x.fail("result", "unknown result %q", c.Result)
	}
	x.text("reason", c.Reason, MaxTextLen, false)
	x.time("at", c.At, true)
	return x.err
}

func (c AbortOperation) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("operation_id", c.OperationID, true)
	x.text("reason", c.Reason, MaxTextLen, false)
	x.time("at", c.At, true)
	return x.err
}

func (c SetPaused) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("by", c.By, false)
	x.text("reason", c.Reason, MaxTextLen, false)
	x.time("at", c.At, true)
	return x.err
}

func (c SetAntiFlap) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.time("until", c.Until, false)
	return x.err
}

func (c SetPromotionRule) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("instance", c.Instance, true)
	if _, ok := ruleCode[c.Rule]; !ok {
		x.fail("rule", "unknown promotion rule %q", c.Rule)
	}
	return x.err
}

func (c SetQuarantine) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("instance", c.Instance, true)
	x.text("reason", c.Reason, MaxTextLen, false)
	x.name("by", c.By, false)
	x.time("at", c.At, true)
	return x.err
}

func (c SetMaintenance) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("instance", c.Instance, true)
	x.name("by", c.By, false)
	x.time("at", c.At, true)
	if c.On {
		x.text("reason", c.Reason, MaxTextLen, true)
		x.time("until", c.Until, true)
		if x.err == nil && !c.Until.After(c.At) {
			x.fail("until", "maintenance must end after it starts (until %s, at %s)", c.Until.UTC().Format(time.RFC3339), c.At.UTC().Format(time.RFC3339))
		}
	}
	return x.err
}

func (c SetInstance) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("instance", c.Instance, true)
	x.name("address", c.Address, !c.Remove)
	x.name("promotion", c.Promotion, false)
	for k, val := range c.Labels {
		x.name("labels", k, true)
		x.name("labels", val, true)
	}
	x.name("by", c.By, false)
	x.time("at", c.At, true)
	return x.err
}

func (c DefineCluster) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.text("definition", c.Definition, MaxDefinitionLen, !c.Remove)
	x.name("by", c.By, false)
	x.time("at", c.At, true)
	return x.err
}

func (c SetConfig) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.text("settings", c.Settings, MaxDetailLen, false)
	x.text("change", c.Change, MaxDetailLen, true)
	x.name("by", c.By, false)
	x.time("at", c.At, true)
	return x.err
}

func (c SetSource) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("instance", c.Instance, true)
	x.name("source", c.Source, false)
	x.name("by", c.By, false)
	x.time("at", c.At, true)
	if x.err == nil && c.Source == c.Instance {
		x.fail("source", "%s cannot replicate from itself", c.Instance)
	}
	return x.err
}

func (c AckOperation) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("operation_id", c.OperationID, true)
	x.name("by", c.By, false)
	x.text("comment", c.Comment, MaxTextLen, false)
	x.time("at", c.At, true)
	return x.err
}

func (c SetSemiSyncDegraded) validate() error {
	// The same fields, under the same rules, as an abort's.
	return AbortOperation{Cluster: c.Cluster, OperationID: c.OperationID, Reason: c.Reason, At: c.At}.validate()
}

func (c SetCandidate) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("operation_id", c.OperationID, true)
	x.name("instance", c.Instance, true)
	return x.err
}

func (c ClearQuarantine) validate() error {
	var x v
	x.name("cluster", c.Cluster, true)
	x.name("instance", c.Instance, true)
	return x.err
}

func (c SetMember) validate() error {
	var x v
	x.name("member.id", c.Member.ID, true)
	x.name("member.raft_addr", c.Member.RaftAddr, true)
	x.name("member.api_addr", c.Member.APIAddr, false)
	x.name("member.instance", c.Member.Instance, false)
	return x.err
}

func (c RemoveMember) validate() error {
	var x v
	x.name("id", c.ID, true)
	return x.err
}
