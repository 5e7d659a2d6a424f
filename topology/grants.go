package topology

import (
	"context"
	"slices"
	"strings"
)

// Account is what the preflight reads of the server and of Regent's own
// account besides the probe: the account's grants, and the address the
// server reports to its source (SHOW SLAVE HOSTS / SHOW REPLICAS, which
// discovery reads).
type Account struct {
	// Grants are the lines of SHOW GRANTS for the current account.
	Grants []string
	// ReportHost is @@report_host ("" when not set).
	ReportHost string
}

// Account reads the account's grants and the server's report_host.
func (i *Instance) Account(ctx context.Context) (Account, error) {
	var a Account
	rows, err := i.db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return a, i.wrap("show grants", err)
	}
	defer rows.Close()
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return a, i.wrap("show grants", err)
		}
		a.Grants = append(a.Grants, g)
	}
	if err := rows.Err(); err != nil {
		return a, i.wrap("show grants", err)
	}
	var rh *string
	if err := i.db.QueryRowContext(ctx, "SELECT @@GLOBAL.report_host").Scan(&rh); err != nil {
		return a, i.wrap("read report_host", err)
	}
	if rh != nil {
		a.ReportHost = *rh
	}
	return a, nil
}

// Privilege is a global privilege Regent's account needs, and why.
type Privilege struct {
	Name string // as SHOW GRANTS prints it on the flavour
	Why  string
}

// NeededPrivileges lists the global privileges Regent's actions need on a
// flavour: the grants of deploy/regent/users-mariadb.sql and
// users-mysql.sql.
func NeededPrivileges(f Flavor) []Privilege {
	if f.IsMySQL() {
		return []Privilege{
			{"PROCESS", "the process list: sessions to kill when fencing, running write transactions"},
			{"REPLICATION CLIENT", "SHOW REPLICA STATUS, every probe"},
			{"REPLICATION SLAVE", "SHOW REPLICAS, discovery"},
			{"RELOAD", "RESET REPLICA ALL when promoting"},
			{"SHUTDOWN", "the self-fence's last resort when the agent cannot kill mysqld"},
			{"CONNECTION_ADMIN", "KILL of other accounts' sessions when fencing"},
			{"SYSTEM_USER", "KILL of sessions of accounts that have SYSTEM_USER (root, DBA accounts)"},
			{"SYSTEM_VARIABLES_ADMIN", "SET GLOBAL read_only, super_read_only and the semi-sync settings"},
			{"REPLICATION_SLAVE_ADMIN", "STOP/START REPLICA, CHANGE REPLICATION SOURCE, RESET REPLICA"},
		}
	}
	return []Privilege{
		{"PROCESS", "the process list: sessions to kill when fencing, running write transactions"},
		{"CONNECTION ADMIN", "KILL of other accounts' sessions when fencing"},
		{"SLAVE MONITOR", "SHOW ALL SLAVES STATUS, every probe"},
		{"READ ONLY ADMIN", "SET GLOBAL read_only (SUPER does not include it on 10.11)"},
		{"REPLICATION SLAVE ADMIN", "STOP/START SLAVE, CHANGE MASTER, RESET SLAVE ALL, the replica's semi-sync side"},
		{"RELOAD", "RESET SLAVE ALL when promoting"},
		{"REPLICATION MASTER ADMIN", "SHOW SLAVE HOSTS and the source's semi-sync settings"},
		{"SHUTDOWN", "the self-fence's last resort when the agent cannot kill mysqld"},
	}
}

// MissingPrivileges returns the needed privileges that grants (SHOW GRANTS
// lines) do not give on *.*. ALL PRIVILEGES gives the static ones; on
// MySQL the dynamic ones (CONNECTION_ADMIN, ...) are listed on their own.
// Roles are not expanded: an account that gets its privileges from a role
// looks as if it lacked them.
func MissingPrivileges(f Flavor, grants []string) []Privilege {
	have := map[string]bool{}
	all := false
	for _, g := range grants {
		u := strings.ToUpper(strings.TrimSpace(g))
		if !strings.HasPrefix(u, "GRANT ") {
			continue
		}
		on := strings.Index(u, " ON *.* TO ")
		if on < 0 {
			continue
		}
		for _, p := range strings.Split(u[len("GRANT "):on], ",") {
			p = strings.TrimSpace(p)
			have[privKey(p)] = true
			all = all || p == "ALL PRIVILEGES" || p == "ALL"
		}
	}
	var out []Privilege
	for _, p := range NeededPrivileges(f) {
		dynamic := f.IsMySQL() && strings.Contains(p.Name, "_")
		if have[privKey(p.Name)] || all && !dynamic {
			continue
		}
		out = append(out, p)
	}
	return slices.Clip(out)
}

// privKey spells a privilege for comparison: MariaDB prints READ_ONLY
// ADMIN for the READ ONLY ADMIN it was granted as.
func privKey(p string) string { return strings.ReplaceAll(strings.ToUpper(p), "_", " ") }
