package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

// statusOutput is what `status -o json` prints.
type statusOutput struct {
	Status   api.Status    `json:"status"`
	Clusters []api.Cluster `json:"clusters"`
}

func (a *app) statusCommand() *cobra.Command {
	var problemsOnly bool
	cmd := &cobra.Command{
		Use:   "status [--problems-only]",
		Short: "Show each replication cluster's topology, problems, and the Regent agents",
		Long: `Show, for each replication cluster (or only --cluster), the primary, the
epoch, whether automatic failover is possible and if not why, a table of
instances (role, state, lag, read_only, GTID summary, reachability from each
agent) and the problems found; then the Regent agents and their Raft leader.
--problems-only leaves out the clusters that are simply healthy (a primary,
no operation, not paused, nothing to acknowledge, automatic failover
possible, no problem) and says how many it left out.`,
		Args: args(0, ""),
		RunE: func(*cobra.Command, []string) error { return classify(a.status(problemsOnly)) },
	}
	cmd.Flags().BoolVar(&problemsOnly, "problems-only", false, "show only the clusters that need attention")
	return cmd
}

// statusPage is how many clusters status asks for at a time.
const statusPage = 200

func (a *app) status(problemsOnly bool) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	st, err := c.Status(a.ctx)
	if err != nil {
		return err
	}
	out := statusOutput{Status: st, Clusters: []api.Cluster{}}
	var total int
	if n := first(a.cluster, a.env(envCluster)); n != "" {
		if err := api.CheckName("--cluster", n); err != nil {
			return usageErr("%v", err)
		}
		cl, err := c.Cluster(a.ctx, n)
		if err != nil {
			return err
		}
		total = 1
		if !problemsOnly || cl.NeedsAttention() {
			out.Clusters = append(out.Clusters, cl)
		}
	} else {
		// A page at a time: a fleet of clusters is a few requests.
		opts := api.ClusterListOptions{Limit: statusPage, ProblemsOnly: problemsOnly}
		for {
			page, err := c.Clusters(a.ctx, opts)
			if err != nil {
				return err
			}
			out.Clusters = append(out.Clusters, page.Clusters...)
			total = page.Total
			if page.Next == "" {
				break
			}
			opts.After = page.Next
		}
	}
	if a.json() {
		return a.printJSON(out)
	}
	for _, cl := range out.Clusters {
		a.printCluster(cl)
		fmt.Fprintln(a.stdout)
	}
	if problemsOnly {
		fmt.Fprintf(a.stdout, "%d of %d cluster(s) need attention; the others are healthy (left out by --problems-only)\n\n", len(out.Clusters), total)
	}
	a.printMembers(st.LeaderID, st.Members, &st)
	return nil
}

func (a *app) printCluster(cl api.Cluster) {
	w := a.stdout
	primary := cl.Primary
	if primary == "" {
		primary = "NONE"
	}
	fmt.Fprintf(w, "Cluster %s: primary %s, epoch %d, durability %s\n", cl.Name, primary, cl.Epoch, orDash(cl.Durability))
	if d := cl.Defined; d != nil {
		fmt.Fprintf(w, "Created at run time by %s %s (regentctl cluster create)\n", orDash(d.By), a.ago(&d.At))
	}
	if cl.Primary == "" {
		fmt.Fprintln(w, "NO PRIMARY: the cluster accepts no writes.")
	}
	if op := cl.Operation; op != nil {
		target := ""
		if op.Target != "" {
			target = ", target " + op.Target
		}
		fmt.Fprintf(w, "OPERATION RUNNING: %s %s since %s%s\n", op.Kind, op.ID, a.ago(&op.Started), target)
	}
	if p := cl.Paused; p != nil {
		reason := ""
		if p.Reason != "" {
			reason = ": " + p.Reason
		}
		fmt.Fprintf(w, "PAUSED by %s %s%s\n", p.By, a.ago(&p.Since), reason)
	}
	if len(cl.Unacknowledged) > 0 {
		ids := make([]string, len(cl.Unacknowledged))
		for i, o := range cl.Unacknowledged {
			ids[i] = shortID(o.ID)
		}
		for _, l := range wrap(fmt.Sprintf("UNACKNOWLEDGED FAILOVERS: %s (look at them with regentctl history show ID, then regentctl ack ID --comment TEXT)", strings.Join(ids, ", ")), a.width()) {
			fmt.Fprintln(w, l)
		}
	}
	af := cl.AutomaticFailover
	if af.Possible {
		fmt.Fprintln(w, "Automatic failover: possible")
	} else {
		var why []string
		for _, b := range af.Blockers {
			s := b.Kind + ": " + b.Reason
			if b.Until != nil {
				s += " (until " + stamp(*b.Until) + ")"
			}
			why = append(why, s)
		}
		if !af.Enabled && len(why) == 0 {
			why = append(why, "disabled in the configuration")
		}
		if len(why) == 0 {
			why = append(why, "the agent gave no reason")
		}
		fmt.Fprintf(w, "AUTOMATIC FAILOVER BLOCKED: %s\n", strings.Join(why, "; "))
	}
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(cl.Instances))
	for _, in := range cl.Instances {
		rows = append(rows, []string{in.Name, string(in.Role), instanceState(in), lagText(in.Replication), api.OnOff(in.ReadOnly), orDash(in.GTIDSummary), reachText(in.Reachable)})
	}
	if dropped := fitTable(w, statusColumns, rows, a.width()); len(dropped) > 0 {
		fmt.Fprintf(w, "(%s left out to fit %d columns: -o json has them)\n", strings.Join(dropped, ", "), a.width())
	}
	fmt.Fprintln(w)
	var problems []api.Problem
	for _, p := range cl.Problems {
		if p.Code != api.ProblemHealthy {
			problems = append(problems, p)
		}
	}
	if len(problems) == 0 {
		fmt.Fprintln(w, "Problems: none")
		return
	}
	fmt.Fprintln(w, "Problems:")
	printProblems(w, problems, a.width())
}

// statusColumns are the instance table's columns; the GTID summary goes
// first when the terminal is too narrow.
var statusColumns = []column{
	{"INSTANCE", 0}, {"ROLE", 0}, {"STATE", 0}, {"LAG", 3}, {"READ_ONLY", 2}, {"GTID", 1}, {"REACHABLE", 4},
}

// instanceState sums up an instance's health in a few words; an instance in
// maintenance says so first (who, why and until when are in its problem).
func instanceState(in api.Instance) string {
	st := healthState(in)
	if in.Maintenance != nil {
		st = "maintenance; " + st
	}
	if r := in.Relocated; r != nil {
		st += "; under " + r.Source
		if rep := in.Replication; rep != nil && rep.SourceName != r.Source {
			st += " (now " + orDash(rep.SourceName) + ")"
		}
	}
	return st
}

func healthState(in api.Instance) string {
	if in.Role == api.RoleQuarantined {
		return "quarantined"
	}
	reached := false
	for _, r := range in.Reachable {
		reached = reached || r.OK
	}
	if len(in.Reachable) > 0 && !reached {
		return "unreachable"
	}
	var bad []string
	if r := in.Replication; r != nil {
		if r.IOThread != api.ThreadRunning {
			bad = append(bad, "IO "+orDash(r.IOThread))
		}
		if r.SQLThread != api.ThreadRunning {
			bad = append(bad, "SQL "+orDash(r.SQLThread))
		}
		if len(bad) > 0 {
			return "broken (" + strings.Join(bad, ", ") + ")"
		}
	}
	if in.Role == api.RolePrimary && in.ReadOnly != nil && *in.ReadOnly {
		return "read-only (fenced?)"
	}
	if in.Role == api.RoleReplica && in.ReadOnly != nil && !*in.ReadOnly {
		return "writable replica!"
	}
	return "ok"
}

// printProblems lists problems most urgent first: the code, the
// instances and the action on one line, aligned, and what is wrong under it,
// wrapped to width.
func printProblems(w io.Writer, ps []api.Problem, width int) {
	rows := make([][3]string, 0, len(ps))
	var widths [3]int
	for _, p := range ps {
		action := "report only"
		if p.Action != "" {
			action = p.Action
			switch {
			case p.Actionable:
				action += " (starting)"
			case len(p.Blockers) > 0:
				var bs []string
				for _, b := range p.Blockers {
					bs = append(bs, b.Kind)
				}
				action += " (blocked: " + strings.Join(bs, ", ") + ")"
			}
		}
		r := [3]string{p.Code, orDash(strings.Join(p.Instances, ",")), action}
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
		rows = append(rows, r)
	}
	for i, p := range ps {
		r := rows[i]
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-*s  %-*s  %s", widths[0], r[0], widths[1], r[1], r[2]), " "))
		what := p.Reason
		if what == "" {
			what = p.Description
		}
		if p.Errant != "" {
			what += " (errant: " + p.Errant + ")"
		}
		for _, l := range wrap(what, max(width-6, 20)) {
			fmt.Fprintf(w, "      %s\n", l)
		}
	}
}

// printMembers prints the Raft members; st adds the term and indexes when
// known.
func (a *app) printMembers(leader string, ms []api.Member, st *api.Status) {
	w := a.stdout
	head := "Regent agents: leader " + orDash(leader)
	if leader == "" {
		head = "Regent agents: NO LEADER (election running, or quorum lost)"
	}
	if st != nil {
		head += fmt.Sprintf(", term %d, commit index %d (answered by %s)", st.Term, st.CommitIndex, st.AgentID)
	}
	fmt.Fprintln(w, head)
	rows := make([][]string, 0, len(ms))
	for _, m := range ms {
		voter := "yes"
		if !m.Voter {
			voter = "no"
		}
		rows = append(rows, []string{m.ID, orDash(m.State), voter, m.RaftAddr, orDash(m.APIAddr), a.ago(m.LastContact), orDash(m.LocalInstance)})
	}
	if dropped := fitTable(w, memberColumns, rows, a.width()); len(dropped) > 0 {
		fmt.Fprintf(w, "(%s left out to fit %d columns: regentctl members -o json has them)\n", strings.Join(dropped, ", "), a.width())
	}
}

// memberColumns are the agents table's columns; the addresses go first when
// the terminal is too narrow.
var memberColumns = []column{
	{"ID", 0}, {"STATE", 0}, {"VOTER", 3}, {"RAFT ADDRESS", 2}, {"API ADDRESS", 1}, {"LAST CONTACT", 0}, {"LOCAL INSTANCE", 0},
}
