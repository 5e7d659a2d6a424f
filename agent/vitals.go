package agent

import (
	"encoding/binary"
	"time"

	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
)

// The agent's vitals are the news its lease pings carry to the leader
// (consensus.SetVitals): its latest probe of its local instance, which
// detection's condition (d) reads (README "Detection"). Reports carry the
// same and more, but over the API, which a lossy link stalls for seconds;
// the pings get through.
//
// Layout: byte 0 flags (has a local instance, reachable, read-only, semi-sync
// source on, short of semi-sync replicas), byte 1 semi-sync clients, byte 2
// the wait count (both capped at 255), bytes 4-7 the probe's age in
// milliseconds when the ping left, bytes 8-11 how long the instance had
// been short of semi-sync replicas when probed (Observation.
// SemiSyncShortSince), in milliseconds.
const (
	vitalLocal byte = 1 << iota
	vitalReachable
	vitalReadOnly
	vitalSemiSyncSource
	vitalSemiSyncShort
)

// encodeVitals encodes a probe of the local instance taken at o.ObservedAt.
func encodeVitals(o Observation, has bool, now time.Time) consensus.Vitals {
	var v consensus.Vitals
	if !has || o.ObservedAt.IsZero() {
		return v
	}
	v[0] = vitalLocal
	if o.Reachable {
		v[0] |= vitalReachable
	}
	if o.ReadOnly || o.SuperReadOnly {
		v[0] |= vitalReadOnly
	}
	if o.SemiSync.SourceEnabled {
		v[0] |= vitalSemiSyncSource
	}
	v[1] = byte(min(255, max(0, o.SemiSync.SourceClients)))
	v[2] = byte(min(255, max(0, o.SemiSync.WaitForReplicaCount)))
	age := now.Sub(o.ObservedAt).Milliseconds()
	binary.BigEndian.PutUint32(v[4:8], uint32(min(max(age, 0), 1<<31)))
	if !o.SemiSyncShortSince.IsZero() {
		v[0] |= vitalSemiSyncShort
		short := o.ObservedAt.Sub(o.SemiSyncShortSince).Milliseconds()
		binary.BigEndian.PutUint32(v[8:12], uint32(min(max(short, 0), 1<<31)))
	}
	return v
}

// decodeVitals reads vitals that arrived at at into the probe they carry
// (nil when they carry none). The age is counted back from the arrival, so
// the transit time makes the probe look older, never newer.
func decodeVitals(v consensus.Vitals, at time.Time) *failover.Probe {
	if v[0]&vitalLocal == 0 {
		return nil
	}
	age := time.Duration(binary.BigEndian.Uint32(v[4:8])) * time.Millisecond
	pr := &failover.Probe{
		ObservedAt: at.Add(-age), Reachable: v[0]&vitalReachable != 0, ReadOnly: v[0]&vitalReadOnly != 0,
		SemiSync: failover.SemiSyncState{SourceEnabled: v[0]&vitalSemiSyncSource != 0, SourceClients: int(v[1]), WaitCount: int(v[2])},
	}
	if v[0]&vitalSemiSyncShort != 0 {
		pr.SemiSync.ShortSince = pr.ObservedAt.Add(-time.Duration(binary.BigEndian.Uint32(v[8:12])) * time.Millisecond)
	}
	return pr
}

// vitals returns this agent's vitals now: its latest probe of its local
// instance (the first cluster that has one).
func (a *Agent) vitals() consensus.Vitals {
	clusters := a.rts()
	for _, name := range sortedNames(clusters) {
		c := clusters[name]
		if c.local == "" {
			continue
		}
		o, ok := c.prober.get(c.local)
		return encodeVitals(o, ok, c.now())
	}
	return consensus.Vitals{}
}
