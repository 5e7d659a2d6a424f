package agent

import (
	"context"
	"errors"
	"time"

	"github.com/regentdb/regent/api"

	"github.com/regentdb/regent/failover"
)

// run executes a plan with the failover runner.
func (c *clusterRT) run(ctx context.Context, v failover.View, plan failover.Plan) (runOutcome, error) {
	return runOutcome{}, errors.New("runner not wired yet")
}

type runOutcome struct{ OperationID string }

// writeBlocked returns the write-blocked window of a finished switchover run
// by this agent.
func (c *clusterRT) writeBlocked(id string) (time.Duration, bool) { return 0, false }

// pendingOp returns an operation this agent started that Raft has not
// recorded yet.
func (c *clusterRT) pendingOp(id string) (api.Operation, bool) { return api.Operation{}, false }
