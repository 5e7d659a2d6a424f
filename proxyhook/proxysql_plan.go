package proxyhook

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ProxySQL server statuses (mysql_servers.status).
const (
	ProxySQLOnline      = "ONLINE"
	ProxySQLShunned     = "SHUNNED"
	ProxySQLOfflineSoft = "OFFLINE_SOFT"
	ProxySQLOfflineHard = "OFFLINE_HARD"
)

// ProxySQLServer is one row of ProxySQL's mysql_servers (or
// runtime_mysql_servers). Its key is (HostgroupID, Hostname, Port).
type ProxySQLServer struct {
	HostgroupID       int
	Hostname          string
	Port              int
	GTIDPort          int
	Status            string
	Weight            int
	Compression       int
	MaxConnections    int
	MaxReplicationLag int
	UseSSL            int
	MaxLatencyMS      int
	Comment           string
}

func (s ProxySQLServer) key() serverKey {
	return serverKey{hg: s.HostgroupID, host: s.Hostname, port: s.Port}
}

func (s ProxySQLServer) String() string {
	return fmt.Sprintf("hostgroup %d %s %s", s.HostgroupID, net.JoinHostPort(s.Hostname, strconv.Itoa(s.Port)), s.Status)
}

type serverKey struct {
	hg   int
	host string
	port int
}

// hostPort is a server as ProxySQL knows it (which may differ from the
// address clients use to reach the instance).
type hostPort struct {
	host string
	port int
}

func (h hostPort) String() string { return net.JoinHostPort(h.host, strconv.Itoa(h.port)) }

// Old-primary policies: what happens to the rows of the writer hostgroup that
// are not the new primary.
const (
	OldPrimaryRemove      = "remove"       // delete them from the writer hostgroup (default)
	OldPrimaryOfflineSoft = "offline_soft" // keep them, OFFLINE_SOFT: no new connections, open ones finish
	OldPrimaryOfflineHard = "offline_hard" // keep them, OFFLINE_HARD: connections dropped at once
)

// opKind is the kind of one change to mysql_servers.
type opKind int

const (
	opInsert opKind = iota + 1
	opUpdate
	opDelete
)

// serverOp is one change to mysql_servers, keyed by the row's primary key.
type serverOp struct {
	kind opKind
	row  ProxySQLServer // full row for insert; key + Status + Comment for update
}

func (o serverOp) String() string {
	switch o.kind {
	case opInsert:
		return "insert " + o.row.String()
	case opUpdate:
		return "set " + o.row.String()
	default:
		return fmt.Sprintf("delete hostgroup %d %s", o.row.HostgroupID, net.JoinHostPort(o.row.Hostname, strconv.Itoa(o.row.Port)))
	}
}

// sql renders the op as one statement with its values inlined. ProxySQL's
// admin interface is SQLite underneath: no prepared statements, and no
// backslash escapes in strings (older versions do not announce that to
// drivers, sysown/proxysql#1446), so values are quoted the SQLite way here
// rather than by the driver.
func (o serverOp) sql() string {
	r := o.row
	switch o.kind {
	case opInsert:
		return fmt.Sprintf("INSERT INTO mysql_servers (hostgroup_id, hostname, port, gtid_port, status, weight, compression, max_connections, max_replication_lag, use_ssl, max_latency_ms, comment) VALUES (%d, %s, %d, %d, %s, %d, %d, %d, %d, %d, %d, %s)",
			r.HostgroupID, sqlString(r.Hostname), r.Port, r.GTIDPort, sqlString(r.Status), r.Weight, r.Compression, r.MaxConnections, r.MaxReplicationLag, r.UseSSL, r.MaxLatencyMS, sqlString(r.Comment))
	case opUpdate:
		return fmt.Sprintf("UPDATE mysql_servers SET status = %s, comment = %s WHERE hostgroup_id = %d AND hostname = %s AND port = %d",
			sqlString(r.Status), sqlString(r.Comment), r.HostgroupID, sqlString(r.Hostname), r.Port)
	default:
		return fmt.Sprintf("DELETE FROM mysql_servers WHERE hostgroup_id = %d AND hostname = %s AND port = %d",
			r.HostgroupID, sqlString(r.Hostname), r.Port)
	}
}

// sqlString quotes s as an SQLite string literal: quotes doubled, backslashes
// literal. NUL cannot be sent and is dropped.
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), "'", "''") + "'"
}

// The epoch tag marks the rows Regent wrote with the order of the change
// (see Order), in the comment column: "regent-epoch=E regent-token=T". The
// order lives next to the route, so a stale leader on another agent is
// refused by the proxy's own state, not only by its memory.
var (
	epochTagRE = regexp.MustCompile(`\s*regent-(?:epoch|token)=\d+`)
	orderTagRE = regexp.MustCompile(`regent-(epoch|token)=(\d+)`)
)

func withEpochTag(comment string, o Order) string {
	base := strings.TrimSpace(epochTagRE.ReplaceAllString(comment, ""))
	tag := "regent-epoch=" + strconv.FormatUint(o.Epoch, 10)
	if o.Token != 0 {
		tag += " regent-token=" + strconv.FormatUint(o.Token, 10)
	}
	if base == "" {
		return tag
	}
	return base + " " + tag
}

// orderOf returns the highest epoch and token tags in comment.
func orderOf(comment string) (Order, bool) {
	var best Order
	found := false
	for _, m := range orderTagRE.FindAllStringSubmatch(comment, -1) {
		n, err := strconv.ParseUint(m[2], 10, 64)
		if err != nil {
			continue
		}
		found = true
		if m[1] == "epoch" {
			best.Epoch = max(best.Epoch, n)
		} else {
			best.Token = max(best.Token, n)
		}
	}
	return best, found
}

// proxySQLRoute is the input of planProxySQLRoute.
type proxySQLRoute struct {
	writerHG           int
	readerHG           int // -1: no reader hostgroup managed
	newPrimary         hostPort
	oldPrimary         hostPort // zero when unknown
	replicas           []hostPort
	oldPolicy          string
	writerIsAlsoReader bool
	order              Order
}

// defaultProxySQLServer is ProxySQL's column defaults.
func defaultProxySQLServer() ProxySQLServer {
	return ProxySQLServer{Status: ProxySQLOnline, Weight: 1, MaxConnections: 1000}
}

// planProxySQLRoute computes the changes to mysql_servers (rows: the current
// configuration table) that route writes to r.newPrimary. Pure.
//
// Writer hostgroup: exactly one ONLINE row afterwards, the new primary's;
// the other rows are deleted or set offline per oldPolicy. Reader hostgroup
// (when managed): the replicas ONLINE, the new primary out (or ONLINE when
// writerIsAlsoReader), the old primary OFFLINE_SOFT when it is not a replica.
// A row inserted takes its settings (use_ssl, weight, max_connections...) from
// a row of the same server in another hostgroup (comment included), else from
// a row of the writer hostgroup (comment excluded), else ProxySQL's defaults.
func planProxySQLRoute(rows []ProxySQLServer, r proxySQLRoute) []serverOp {
	byKey := map[serverKey]ProxySQLServer{}
	for _, row := range rows {
		byKey[row.key()] = row
	}
	var ops []serverOp
	template := func(hp hostPort, hg int) ProxySQLServer {
		t, found := defaultProxySQLServer(), false
		for _, row := range rows {
			if row.Hostname == hp.host && row.Port == hp.port {
				t, found = row, true
				break
			}
		}
		if !found {
			for _, row := range rows {
				if row.HostgroupID == r.writerHG {
					t = row
					t.Comment = "" // another server's note
					break
				}
			}
		}
		t.HostgroupID, t.Hostname, t.Port = hg, hp.host, hp.port
		t.Comment = strings.TrimSpace(epochTagRE.ReplaceAllString(t.Comment, ""))
		return t
	}
	ensure := func(hp hostPort, hg int, status string, tag bool) {
		k := serverKey{hg: hg, host: hp.host, port: hp.port}
		cur, ok := byKey[k]
		if !ok {
			row := template(hp, hg)
			row.Status = status
			if tag {
				row.Comment = withEpochTag(row.Comment, r.order)
			}
			ops = append(ops, serverOp{kind: opInsert, row: row})
			return
		}
		want := cur
		want.Status = status
		if tag {
			want.Comment = withEpochTag(cur.Comment, r.order)
		}
		if want.Status != cur.Status || want.Comment != cur.Comment {
			ops = append(ops, serverOp{kind: opUpdate, row: want})
		}
	}
	remove := func(k serverKey) {
		if _, ok := byKey[k]; ok {
			ops = append(ops, serverOp{kind: opDelete, row: ProxySQLServer{HostgroupID: k.hg, Hostname: k.host, Port: k.port}})
		}
	}

	// Writer hostgroup: the others first (taken out), then the new primary.
	var writers []ProxySQLServer
	for _, row := range rows {
		if row.HostgroupID == r.writerHG && (row.Hostname != r.newPrimary.host || row.Port != r.newPrimary.port) {
			writers = append(writers, row)
		}
	}
	slices.SortFunc(writers, compareServers)
	for _, w := range writers {
		hp := hostPort{w.Hostname, w.Port}
		switch r.oldPolicy {
		case OldPrimaryOfflineSoft:
			ensure(hp, r.writerHG, ProxySQLOfflineSoft, true)
		case OldPrimaryOfflineHard:
			ensure(hp, r.writerHG, ProxySQLOfflineHard, true)
		default:
			remove(w.key())
		}
	}
	ensure(r.newPrimary, r.writerHG, ProxySQLOnline, true)

	if r.readerHG < 0 {
		return ops
	}
	if r.writerIsAlsoReader {
		ensure(r.newPrimary, r.readerHG, ProxySQLOnline, false)
	} else {
		remove(serverKey{hg: r.readerHG, host: r.newPrimary.host, port: r.newPrimary.port})
	}
	isReplica := map[hostPort]bool{}
	for _, rep := range r.replicas {
		if rep == r.newPrimary {
			continue
		}
		isReplica[rep] = true
		ensure(rep, r.readerHG, ProxySQLOnline, false)
	}
	if r.oldPrimary != (hostPort{}) && r.oldPrimary != r.newPrimary && !isReplica[r.oldPrimary] {
		k := serverKey{hg: r.readerHG, host: r.oldPrimary.host, port: r.oldPrimary.port}
		if cur, ok := byKey[k]; ok && cur.Status == ProxySQLOnline {
			ensure(r.oldPrimary, r.readerHG, ProxySQLOfflineSoft, false)
		}
	}
	return ops
}

// planProxySQLUnroute sets the old primary's writer row OFFLINE_HARD: ProxySQL
// drops its connections at once and opens no new ones. Pure.
func planProxySQLUnroute(rows []ProxySQLServer, writerHG int, old hostPort, order Order) []serverOp {
	for _, row := range rows {
		if row.HostgroupID == writerHG && row.Hostname == old.host && row.Port == old.port {
			want := row
			want.Status = ProxySQLOfflineHard
			want.Comment = withEpochTag(row.Comment, order)
			if want != row {
				return []serverOp{{kind: opUpdate, row: want}}
			}
		}
	}
	return nil
}

func compareServers(a, b ProxySQLServer) int {
	if a.HostgroupID != b.HostgroupID {
		return a.HostgroupID - b.HostgroupID
	}
	if c := strings.Compare(a.Hostname, b.Hostname); c != 0 {
		return c
	}
	return a.Port - b.Port
}

// checkWriterRuntime checks runtime rows after LOAD: the writer hostgroup has
// the new primary ONLINE and no other row ONLINE. It returns the problems.
func checkWriterRuntime(runtime []ProxySQLServer, writerHG int, newPrimary hostPort) []string {
	var problems []string
	foundNew := false
	for _, row := range runtime {
		if row.HostgroupID != writerHG {
			continue
		}
		isNew := row.Hostname == newPrimary.host && row.Port == newPrimary.port
		switch {
		case isNew && row.Status == ProxySQLOnline:
			foundNew = true
		case isNew:
			foundNew = true
			problems = append(problems, fmt.Sprintf("new primary %s is %s in runtime writer hostgroup %d", newPrimary, row.Status, writerHG))
		case row.Status == ProxySQLOnline:
			problems = append(problems, fmt.Sprintf("%s is still ONLINE in runtime writer hostgroup %d", hostPort{row.Hostname, row.Port}, writerHG))
		}
	}
	if !foundNew {
		problems = append(problems, fmt.Sprintf("new primary %s is missing from runtime writer hostgroup %d", newPrimary, writerHG))
	}
	return problems
}
