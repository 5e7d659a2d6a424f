// Package failover holds Regent's decisions and the runner that carries them
// out: detection, analysis of a cluster view into problems, candidate ranking,
// failover and switchover plans, the self-fencing lease, anti-flap and pause.
//
// The core (Analyze, Rank, Plan) is pure: plain values in, plain values out; no
// clock, network or randomness. The runner is a thin shell that talks to the
// world only through small interfaces declared in this package; cmd/regent
// adapts topology, consensus and proxyhook to them. This package imports none
// of those three.
//
// Status: not built yet (see the failover issue).
package failover
