// Package proxyhook moves the write route: the health decisions behind the
// agent's /primary, /replica and /read-only endpoints (the HAProxy pull model),
// the HAProxy runtime API (the push model), ProxySQL's admin interface and
// operator script hooks. Every change carries an epoch; a change older than the
// last one applied is refused.
//
// It knows the HAProxy and ProxySQL protocols, not Raft: it imports neither
// consensus, topology nor failover.
//
// Status: not built yet (see the proxyhook issue).
package proxyhook
