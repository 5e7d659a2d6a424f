// Package topology is the only package in Regent that speaks SQL to MySQL and
// MariaDB.
//
// It knows three flavours — MariaDB 10.6+, MySQL 8.0 and MySQL 8.4+ (which
// includes 9.x) — and keeps every flavour-specific statement and column name in
// one place (dialect.go and status.go), so that a new server version is a change
// to one table, not a hunt through the code base.
//
// What it offers:
//   - GTIDSet: exact GTID arithmetic for both flavours (contains, equal, ahead,
//     errant = replica minus primary, a short summary).
//   - Instance.Probe: one typed Snapshot of an instance, bounded by ctx.
//   - Instance actions: read-only, killing client sessions, replica thread
//     control, repointing with GTID auto-positioning, promotion clean-up,
//     waiting for a GTID set, semi-sync configuration, listing replicas.
//   - WatchBinlog: a binlog dump held only as evidence of life — every packet
//     (event or heartbeat) is a timestamped beat from the source, starting at
//     its current end, never registered as a replica, never a semi-sync
//     client; WatchServerID gives each agent's watch its server id.
//   - Classify: the error class of a failed call (refused, timeout, auth
//     failure, access denied, gone away, unknown), because failure detection
//     depends on the difference.
//
// It must not know Raft, the failover policy or routing: it imports neither
// consensus, failover nor proxyhook. Passwords never appear in its errors or
// logs.
package topology
