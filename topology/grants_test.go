package topology

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/topology/mysqltest"
)

func names(ps []Privilege) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return strings.Join(out, ",")
}

func TestMissingPrivileges(t *testing.T) {
	for _, c := range []struct {
		name   string
		f      Flavor
		grants []string
		want   string
	}{
		{"MariaDB, the documented grants", FlavorMariaDB, []string{
			"GRANT PROCESS, RELOAD, SHUTDOWN, CONNECTION ADMIN, SLAVE MONITOR, READ ONLY ADMIN, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN ON *.* TO `regent`@`10.0.0.%` IDENTIFIED BY PASSWORD '*X'",
		}, ""},
		{"MariaDB, ALL PRIVILEGES", FlavorMariaDB, []string{"GRANT ALL PRIVILEGES ON *.* TO `regent`@`%` WITH GRANT OPTION"}, ""},
		{"MariaDB, SUPER alone", FlavorMariaDB, []string{"GRANT SUPER ON *.* TO `regent`@`%`"},
			"PROCESS,CONNECTION ADMIN,SLAVE MONITOR,READ ONLY ADMIN,REPLICATION SLAVE ADMIN,RELOAD,REPLICATION MASTER ADMIN,SHUTDOWN"},
		{"MariaDB, a database grant does not count", FlavorMariaDB, []string{"GRANT USAGE ON *.* TO `regent`@`%`", "GRANT ALL PRIVILEGES ON `shop`.* TO `regent`@`%`"},
			"PROCESS,CONNECTION ADMIN,SLAVE MONITOR,READ ONLY ADMIN,REPLICATION SLAVE ADMIN,RELOAD,REPLICATION MASTER ADMIN,SHUTDOWN"},
		{"MySQL, the documented grants", FlavorMySQL84, []string{
			"GRANT RELOAD, SHUTDOWN, PROCESS, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `regent`@`10.0.0.%`",
			"GRANT CONNECTION_ADMIN,REPLICATION_SLAVE_ADMIN,SYSTEM_USER,SYSTEM_VARIABLES_ADMIN ON *.* TO `regent`@`10.0.0.%`",
			"GRANT SELECT ON `performance_schema`.`replication_connection_status` TO `regent`@`10.0.0.%`",
		}, ""},
		{"MySQL, ALL PRIVILEGES covers the static ones only", FlavorMySQL84, []string{"GRANT ALL PRIVILEGES ON *.* TO `regent`@`%`"},
			"CONNECTION_ADMIN,SYSTEM_USER,SYSTEM_VARIABLES_ADMIN,REPLICATION_SLAVE_ADMIN"},
	} {
		if got := names(MissingPrivileges(c.f, c.grants)); got != c.want {
			t.Errorf("%s: missing %q, want %q", c.name, got, c.want)
		}
	}
}

// On real servers: an account with the documented grants lacks nothing; the
// same less one privilege lacks that one; the root-like test account lacks
// nothing; report_host is what the server was started with.
func TestAccountOnRealServers(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := writableServer(t, k)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a, err := open(t, s).Account(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f := FlavorMariaDB
		if k == mysqltest.MySQL {
			f = FlavorMySQL84
		}
		if m := MissingPrivileges(f, a.Grants); len(m) != 0 {
			t.Fatalf("the test account (ALL PRIVILEGES) lacks %s: %q", names(m), a.Grants)
		}
		if a.ReportHost != s.Host {
			t.Fatalf("report_host %q, want %q", a.ReportHost, s.Host)
		}
		needed := NeededPrivileges(f)
		for _, drop := range []int{0, len(needed) - 1} {
			user := fmt.Sprintf("pf%d", drop)
			var grants []string
			for i, p := range needed {
				if i != drop {
					grants = append(grants, p.Name)
				}
			}
			var static, dynamic []string
			for _, g := range grants {
				if k == mysqltest.MySQL && strings.Contains(g, "_") {
					dynamic = append(dynamic, g)
				} else {
					static = append(static, g)
				}
			}
			stmts := []string{fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'pf-password'", user),
				fmt.Sprintf("GRANT %s ON *.* TO '%s'@'%%'", strings.Join(static, ", "), user)}
			if len(dynamic) > 0 {
				stmts = append(stmts, fmt.Sprintf("GRANT %s ON *.* TO '%s'@'%%'", strings.Join(dynamic, ", "), user))
			}
			s.Exec(t, stmts...)
			a, err := openAs(t, s, user, "pf-password").Account(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(MissingPrivileges(f, a.Grants)); got != needed[drop].Name {
				t.Errorf("granted all but %s: missing %q (grants %q)", needed[drop].Name, got, a.Grants)
			}
		}
	})
}
