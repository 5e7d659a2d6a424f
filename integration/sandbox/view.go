package sandbox

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/regentdb/regent/api"
)

// HealthyCluster reports whether a cluster view is settled: a writable
// primary, nothing but Healthy in the analysis, no operation running, every
// other instance a replica of the primary with both threads running, and the
// primary's semi-sync source side active with at least one replica.
func HealthyCluster(c api.Cluster) bool {
	if c.Primary == "" || c.Operation != nil || len(c.Problems) == 0 {
		return false
	}
	for _, p := range c.Problems {
		if p.Code != "Healthy" {
			return false
		}
	}
	for _, in := range c.Instances {
		if in.Name == c.Primary {
			if in.ReadOnly == nil || *in.ReadOnly || in.SemiSync == nil || !in.SemiSync.SourceActive || in.SemiSync.Clients < 1 {
				return false
			}
			continue
		}
		r := in.Replication
		if in.Role != api.RoleReplica || r == nil || r.SourceName != c.Primary || r.IOThread != api.ThreadRunning || r.SQLThread != api.ThreadRunning {
			return false
		}
	}
	return true
}

// InstanceOf returns the named instance of a cluster view.
func InstanceOf(c api.Cluster, name string) (api.Instance, bool) {
	for _, in := range c.Instances {
		if in.Name == name {
			return in, true
		}
	}
	return api.Instance{}, false
}

// Describe is a one-line summary of a cluster view for messages.
func Describe(c api.Cluster) string {
	var b strings.Builder
	fmt.Fprintf(&b, "primary=%q epoch=%d observed_by=%s", c.Primary, c.Epoch, c.ObservedBy)
	if c.Operation != nil {
		fmt.Fprintf(&b, " operation=%s(%s)", c.Operation.Kind, c.Operation.Target)
	}
	for _, in := range c.Instances {
		ro := "?"
		if in.ReadOnly != nil {
			ro = strconv.FormatBool(*in.ReadOnly)
		}
		fmt.Fprintf(&b, "; %s role=%s ro=%s", in.Name, in.Role, ro)
		if r := in.Replication; r != nil {
			fmt.Fprintf(&b, " from=%s io=%s sql=%s", r.SourceName, r.IOThread, r.SQLThread)
		}
		if in.QuarantineReason != "" {
			fmt.Fprintf(&b, " quarantined(%s)", in.QuarantineReason)
		}
	}
	for _, p := range c.Problems {
		fmt.Fprintf(&b, "; problem %s %v", p.Code, p.Instances)
		if p.Reason != "" {
			fmt.Fprintf(&b, " (%s)", p.Reason)
		}
		for _, bl := range p.Blockers {
			fmt.Fprintf(&b, " [blocked: %s]", bl.Kind)
		}
	}
	return b.String()
}
