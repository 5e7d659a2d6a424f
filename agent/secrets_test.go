package agent

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/topology/mysqltest"
)

// A CHANGE MASTER / CHANGE REPLICATION SOURCE that the server refuses must
// not carry the replication password into the agents' logs or the
// operation's history in Raft. MariaDB quotes the first 64 characters of a
// password over 96 in its error ("String '...' is too long for
// MASTER_PASSWORD"); MySQL refuses one over 32 without quoting it. A
// switchover with such a password fails at its first repoint; its errors
// are then everywhere an operator looks, and the password nowhere.
func TestRefusedPasswordStaysOutOfLogsAndHistory(t *testing.T) {
	const env = "REGENT_TEST_LONG_REPLICATION_PASSWORD"
	const marker = "Leak-Me-"
	password := strings.Repeat(marker, 13) // 104 characters
	if err := os.Setenv(env, password); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Unsetenv(env) })
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.MySQL.ReplicationPasswordEnv = env })
		h.waitRecorded()
		op := h.switchover("main", "r1")
		e := h.waitOp(consensus.KindSwitchover, 0, 60*time.Second)
		if e.ID != op.ID || e.Result == consensus.ResultSuccess {
			t.Fatalf("switchover %s: %s, want it to fail at a repoint; steps %s", e.ID, e.Result, stepNames(e))
		}
		history, err := json.Marshal(h.cluster().History)
		if err != nil {
			t.Fatal(err)
		}
		refused := map[mysqltest.Kind]string{mysqltest.MariaDB: "is too long for MASTER_PASSWORD", mysqltest.MySQL: "exceeds the maximum length of 32"}[k]
		if !strings.Contains(string(history), refused) {
			t.Fatalf("the history does not show the server's refusal (%q), so the test shows nothing: %s", refused, history)
		}
		got, err := h.agents[h.leader()].API().Operation(context.Background(), "main", op.ID)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := json.Marshal(got)
		for what, text := range map[string]string{"the history in Raft": string(history), "the API's operation": string(answer), "the agents' logs": h.log.String()} {
			if strings.Contains(text, marker) {
				i := strings.Index(text, marker)
				t.Errorf("%s: the password is in it: ...%s...", what, text[max(0, i-120):min(len(text), i+40)])
			}
		}
	})
}
