package topology

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/topology/mysqltest"
)

// A password with quotes and backslashes in every arrangement that once
// broke the quoting (`\'` above all), at most 32 characters: MySQL refuses
// longer ones in CHANGE REPLICATION SOURCE.
const trickyPassword = `q'u\o\\te\'d''pw\`

// createTrickyReplUser creates a replication account with trickyPassword on
// s (it replicates on). Its literal is escaped here by hand, for the
// default sql_mode of the root session, so that the test does not check
// quoteFor against itself.
func createTrickyReplUser(t *testing.T, s *mysqltest.Server, user string) {
	t.Helper()
	lit := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(trickyPassword) + "'"
	s.Exec(t,
		"CREATE USER '"+user+"'@'127.0.0.1' IDENTIFIED BY "+lit,
		"GRANT REPLICATION SLAVE ON *.* TO '"+user+"'@'127.0.0.1'")
}

// setNoBackslashEscapes adds NO_BACKSLASH_ESCAPES to, or removes it from, s's
// global sql_mode; sessions opened afterwards inherit it.
func setNoBackslashEscapes(t *testing.T, s *mysqltest.Server, on bool) {
	t.Helper()
	mode := s.QueryString(t, "SELECT @@GLOBAL.sql_mode")
	var keep []string
	for _, m := range strings.Split(mode, ",") {
		if m != "" && m != "NO_BACKSLASH_ESCAPES" {
			keep = append(keep, m)
		}
	}
	if on {
		keep = append(keep, "NO_BACKSLASH_ESCAPES")
	}
	s.Exec(t, "SET GLOBAL sql_mode='"+strings.Join(keep, ",")+"'")
}

// A replica is repointed with a password holding quotes and backslashes,
// whether or not its sessions run with NO_BACKSLASH_ESCAPES, and the
// password is the right one: replication connects with it (a new account,
// so the source checks the password itself, not a cached login) and
// carries a new row.
func TestChangeSourceWithTrickyPassword(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		c := mysqltest.StartCluster(t, k, 1)
		mysqltest.EnsureTable(t, c.Primary)
		r := c.Replicas[0]
		createTrickyReplUser(t, c.Primary, "repl_q")
		mysqltest.WaitCaughtUp(t, r, c.Primary, 30*time.Second)

		for i, nbe := range []bool{true, false} {
			name := map[bool]string{true: "NO_BACKSLASH_ESCAPES", false: "default sql_mode"}[nbe]
			t.Run(name, func(t *testing.T) {
				setNoBackslashEscapes(t, r, nbe)
				inst := open(t, r) // a new pool: its sessions take the new global sql_mode
				o := replOpts(c.Primary)
				o.User, o.Password = "repl_q", trickyPassword
				if err := inst.ChangeSource(ctxT(t, 30*time.Second), o); err != nil {
					t.Fatalf("change source with a password holding ' and \\: %v", err)
				}
				mysqltest.WaitReplicating(t, r, 30*time.Second)
				if k == mysqltest.MySQL {
					// Without TLS caching_sha2_password needs the source's
					// public key to send the password.
					if got := getSourcePublicKey(t, r); got != "YES" {
						t.Errorf("GET_SOURCE_PUBLIC_KEY without replication TLS: %s, want YES", got)
					}
				}
				c.Primary.Exec(t, "INSERT INTO regent_test.writes (id) VALUES ("+strconv.Itoa(i+1)+")")
				mysqltest.WaitCaughtUp(t, r, c.Primary, 30*time.Second)
				if got := r.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes"); got != strconv.Itoa(i+1) {
					t.Fatalf("replica holds %s rows, want %d", got, i+1)
				}
			})
		}
	})
}

// A CHANGE statement that fails must not put its password in the error,
// which goes to the log and into the operation's history. Both servers
// quote what they choke on: the test first shows that they do (the raw
// error holds the password) and then that ChangeSource's error does not.
func TestChangeSourceErrorsHideThePassword(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := mysqltest.Start(t, k)
		inst := open(t, s)
		ctx := ctxT(t, 30*time.Second)
		f, err := inst.Flavor(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const secret = "Sup3rSecr3t-"
		cases := []struct {
			name     string
			password string
			// raw is a statement holding the password that the server
			// refuses with the password (or a part) in its message.
			raw string
		}{
			// MariaDB echoes the first 64 characters of an over-long
			// password ("String '...' is too long for MASTER_PASSWORD");
			// MySQL refuses one over 32 without quoting it.
			{"too long", strings.Repeat(secret, 9), ""},
			// A syntax error quotes the statement from where it failed.
			{"syntax error", secret, "CHANGE MASTER TO MASTER_HOST=, MASTER_PASSWORD='" + secret + "'"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				o := ChangeSourceOptions{Host: "127.0.0.1", Port: 1, User: "repl", Password: tc.password}
				raw := tc.raw
				if raw == "" {
					raw, _ = f.changeSourceSQL(o, false)
				}
				conn, err := inst.db.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				_, rawErr := conn.ExecContext(ctx, raw)
				conn.Close()
				if rawErr == nil {
					t.Fatalf("the server accepted %q", raw)
				}
				if strings.Contains(rawErr.Error(), secret) {
					t.Logf("the server's own message holds the secret: %v", rawErr)
				} else if k == mysqltest.MariaDB || tc.raw != "" {
					t.Fatalf("the server's message no longer holds the secret, the case tests nothing: %v", rawErr)
				}

				var got error
				if tc.raw != "" {
					got = inst.changeSource(ctx, "change source", func(bool) (string, error) { return tc.raw, nil }, tc.password)
				} else {
					got = inst.ChangeSource(ctx, o)
				}
				if got == nil {
					t.Fatal("no error")
				}
				if strings.Contains(got.Error(), secret) || strings.Contains(got.Error(), secret[:6]) {
					t.Fatalf("the error holds (part of) the password: %v", got)
				}
				t.Logf("error as logged: %v", got)
			})
		}
	})
}

// getSourcePublicKey returns whether a MySQL replica asks its source for its
// RSA public key (GET_SOURCE_PUBLIC_KEY): YES or NO.
func getSourcePublicKey(t *testing.T, s *mysqltest.Server) string {
	t.Helper()
	return s.QueryString(t, "SELECT GET_PUBLIC_KEY FROM performance_schema.replication_connection_configuration WHERE CHANNEL_NAME = ''")
}
