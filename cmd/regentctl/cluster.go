package main

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/regentdb/regent/api"
)

func (a *app) clusterCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster show-config|edit-config|add|remove|create|delete",
		Short: "Show or change clusters, their settings and instances at run time",
		Long: `A cluster's failover settings come from regent.yaml; most of them can be
changed while the agents run, through the replicated state: every agent
applies the change over its regent.yaml at once, without a restart, and it
survives restarts and leader changes. The lease and probe timings
(fence_after, lease_timeout, probe_interval, observation_ttl) and
semi_sync_wait_for stay in regent.yaml: agents applying them at different
moments could break what they guarantee together. Replicas without an
agent on their host can be added and removed at run time too (add,
remove); instances with an agent, and routing, stay in regent.yaml. A whole
replication cluster whose hosts have no agent can be created and deleted at
run time (create, delete) (README "Changing settings at run time").`,
	}
	cmd.AddCommand(a.showConfigCommand(), a.editConfigCommand(), a.addInstanceCommand(), a.removeInstanceCommand(),
		a.createClusterCommand(), a.deleteClusterCommand())
	return cmd
}

func (a *app) showConfigCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show-config",
		Short: "Print the cluster's settings: run-time keys with their values, and the regent.yaml-only ones",
		Args:  args(0, ""),
		RunE: func(_ *cobra.Command, _ []string) error {
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			st, err := c.Settings(a.ctx, name)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(st)
			}
			a.printSettings(st)
			return nil
		},
	}
}

func (a *app) printSettings(st api.ClusterSettings) {
	w := a.stdout
	changed := map[string]bool{}
	var m map[string]any
	if yaml.Unmarshal([]byte(st.Changed), &m) == nil {
		for k := range m {
			changed[k] = true
		}
	}
	who := "never changed at run time: every value is regent.yaml's"
	if st.Version > 0 && st.At != nil {
		who = fmt.Sprintf("changed at run time by %s at %s", st.By, stamp(*st.At))
	}
	fmt.Fprintf(w, "Cluster %s: settings version %d, %s\n", st.Cluster, st.Version, who)
	fmt.Fprintln(w, "# run-time settings (regentctl cluster edit-config); * = set at run time, over regent.yaml")
	for _, k := range slices.Sorted(maps.Keys(st.Effective)) {
		mark := " "
		if changed[k] {
			mark = "*"
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, k, st.Effective[k])
	}
	fmt.Fprintln(w, "# only in regent.yaml (this agent's values)")
	for _, k := range slices.Sorted(maps.Keys(st.RestartOnly)) {
		fmt.Fprintf(w, "  %s: %s\n", k, st.RestartOnly[k])
	}
}

func (a *app) editConfigCommand() *cobra.Command {
	var sets, resets []string
	var file string
	var yes bool
	cmd := &cobra.Command{
		Use:   "edit-config [--set KEY=VALUE]... [--reset KEY]... [--file FILE] [--yes]",
		Short: "Change run-time settings: shows the difference, asks, then applies them on every agent",
		Long: `Change run-time settings of the cluster. With --set and --reset (repeatable)
or --file (a YAML mapping of KEY: VALUE), the change is given on the command
line; with none of them, $VISUAL or $EDITOR (default vi) opens the current
settings, and the keys whose value you change are set. The difference is
shown and must be confirmed (or --yes). The leader validates the result
with the rules used at start and refuses it with the key named (nothing
changes then), and refuses it if someone else changed the settings since
they were read. The change is kept in the history (regentctl history) with
who made it. --reset KEY returns KEY to regent.yaml's value.`,
		Args: args(0, ""),
		RunE: func(_ *cobra.Command, _ []string) error {
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			cur, err := c.Settings(a.ctx, name)
			if err != nil {
				return classify(err)
			}
			edits, err := a.settingEdits(cur, sets, file)
			if err != nil {
				return err
			}
			req := api.EditSettingsRequest{Version: cur.Version, Reset: resets}
			var lines []string
			for _, k := range slices.Sorted(maps.Keys(edits)) {
				req.Set += k + ": " + edits[k] + "\n"
				lines = append(lines, fmt.Sprintf("  %s: %s → %s", k, orDash(cur.Effective[k]), edits[k]))
			}
			for _, k := range resets {
				lines = append(lines, fmt.Sprintf("  %s: %s → regent.yaml's value", k, orDash(cur.Effective[k])))
			}
			if len(lines) == 0 {
				return usageErr("nothing to change: give --set KEY=VALUE, --reset KEY or --file FILE, or change a value in the editor")
			}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			w := a.progressWriter()
			fmt.Fprintf(w, "Cluster %s, settings version %d:\n%s\n", name, cur.Version, strings.Join(lines, "\n"))
			if !yes && !a.confirm(w, "Apply these changes on every agent?") {
				return failed("nothing changed")
			}
			st, err := c.EditSettings(a.ctx, name, req)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(st)
			}
			fmt.Fprintf(a.stdout, "settings of cluster %s are at version %d (by %s): every agent applies them now\n", name, st.Version, st.By)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "set KEY to VALUE (YAML, for example failure_timeout=3s or promotion_prefer_same=[zone]); repeatable")
	cmd.Flags().StringArrayVar(&resets, "reset", nil, "return KEY to regent.yaml's value; repeatable")
	cmd.Flags().StringVar(&file, "file", "", "a YAML file of KEY: VALUE to set")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

// settingEdits collects the keys to set, as YAML values by key: from --set,
// from --file, or, when neither is given, from the operator's editor.
func (a *app) settingEdits(cur api.ClusterSettings, sets []string, file string) (map[string]string, error) {
	edits := map[string]string{}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usageErr("--set %q: want KEY=VALUE, for example --set failure_timeout=3s", s)
		}
		edits[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	text := ""
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usageErr("--file: %v", err)
		}
		text = string(b)
	case len(sets) == 0:
		var err error
		if text, err = a.editSettings(cur); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(text) == "" {
		return edits, nil
	}
	var m map[string]yaml.Node
	if err := yaml.Unmarshal([]byte(text), &m); err != nil {
		return nil, usageErr("the settings are not a YAML mapping of KEY: VALUE: %v", err)
	}
	for k, n := range m {
		v := n.Value
		if n.Kind != yaml.ScalarNode {
			out, err := yaml.Marshal(&n)
			if err != nil {
				return nil, usageErr("%s: %v", k, err)
			}
			v = strings.TrimSpace(string(out))
		}
		if file != "" || v != cur.Effective[k] {
			edits[k] = v
		}
	}
	return edits, nil
}

// editSettings opens the current run-time settings in $VISUAL or $EDITOR
// and returns the edited text.
func (a *app) editSettings(cur api.ClusterSettings) (string, error) {
	f, err := os.CreateTemp("", "regent-settings-*.yaml")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	fmt.Fprintf(f, "# cluster %s, settings version %d: change values and save; keys left as they are stay unchanged\n", cur.Cluster, cur.Version)
	for _, k := range slices.Sorted(maps.Keys(cur.Effective)) {
		fmt.Fprintf(f, "%s: %s\n", k, cur.Effective[k])
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	editor := a.env("VISUAL")
	if editor == "" {
		editor = a.env("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	argv := strings.Fields(editor)
	cmd := exec.CommandContext(a.ctx, argv[0], append(argv[1:], f.Name())...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, a.stderr, a.stderr
	if err := cmd.Run(); err != nil {
		return "", failed("the editor %q failed: %v (nothing changed)", editor, err)
	}
	b, err := os.ReadFile(f.Name())
	return string(b), err
}

// confirm asks a yes/no question on stdin; only y or yes is yes.
func (a *app) confirm(w io.Writer, question string) bool {
	fmt.Fprintf(w, "%s [y/N] ", question)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func (a *app) addInstanceCommand() *cobra.Command {
	var req api.AddInstanceRequest
	var labels []string
	var yes bool
	cmd := &cobra.Command{
		Use:   "add NAME --address HOST:PORT [--promotion RULE] [--label KEY=VALUE]... [--yes]",
		Short: "Add a replica (no agent on its host) to the cluster, on every agent, without a restart",
		Long: `Add NAME, a replica of the cluster that has no Regent agent on its host:
every agent starts probing it within a probe interval, and it is a failover
candidate like any replica (replicate it from the primary first, or Regent
repoints it there). Checked with the rules used at start: refused with the
key named, and nothing changes. Kept in the history with who added it; it
survives agent restarts and leader changes. An instance with an agent on
its host is declared in regent.yaml instead. A balancer that lists its
servers (haproxy.cfg) needs the new server too.`,
		Args: args(1, "NAME"),
		RunE: func(_ *cobra.Command, argv []string) error {
			req.Name = argv[0]
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return usageErr("--label %q: want KEY=VALUE, for example --label zone=eu-1a", l)
				}
				if req.Labels == nil {
					req.Labels = map[string]string{}
				}
				req.Labels[k] = v
			}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			w := a.progressWriter()
			fmt.Fprintf(w, "Cluster %s: add %s at %s (promotion %s)\n", name, req.Name, req.Address, orDash(req.Promotion))
			if !yes && !a.confirm(w, "Add it on every agent?") {
				return failed("nothing changed")
			}
			cl, err := c.AddInstance(a.ctx, name, req)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(cl)
			}
			fmt.Fprintf(a.stdout, "%s added to cluster %s: every agent probes it from its next round\n", req.Name, name)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Address, "address", "", "HOST:PORT as agents and replicas reach it")
	cmd.Flags().StringVar(&req.Promotion, "promotion", "", "prefer, neutral (the default) or must_not")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "a location label KEY=VALUE (zone, region, ...); repeatable")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

func (a *app) removeInstanceCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "remove NAME [--yes]",
		Short: "Take an instance without an agent out of the cluster, on every agent, without a restart",
		Long: `Take NAME out of the cluster: no longer probed, promoted or repaired (its
replication is left as it is). Refused for the primary (switch over first)
and for an instance with an agent on its host (take it out of regent.yaml
and stop that agent instead). Kept in the history with who removed it.`,
		Args:              args(1, "NAME"),
		ValidArgsFunction: a.completeInstances,
		RunE: func(_ *cobra.Command, argv []string) error {
			if err := api.CheckName("instance", argv[0]); err != nil {
				return usageErr("%v", err)
			}
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			w := a.progressWriter()
			fmt.Fprintf(w, "Cluster %s: remove %s\n", name, argv[0])
			if !yes && !a.confirm(w, "Remove it on every agent?") {
				return failed("nothing changed")
			}
			cl, err := c.RemoveInstance(a.ctx, name, argv[0])
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(cl)
			}
			fmt.Fprintf(a.stdout, "%s removed from cluster %s\n", argv[0], name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

func (a *app) createClusterCommand() *cobra.Command {
	var file string
	var yes bool
	cmd := &cobra.Command{
		Use:   "create --file FILE [--yes]",
		Short: "Add a replication cluster (no agent on its hosts) to every agent, without a restart",
		Long: `Add a replication cluster at run time. FILE (- for standard input) holds
its clusters: entry as in regent.yaml: name, instances, settings, routing;
the proposal of "regentctl discover" is accepted once its agent keys are
removed, since a cluster added at run time has no agent on its hosts (an
agent's local instance is declared in its regent.yaml). Checked with the
rules used at start: refused with the key named, and nothing changes.
Every agent probes it within a second; the leader decides its first
primary as for any new cluster. Kept in the replicated state with who
added it: it survives agent restarts and leader changes.`,
		Args: args(0, ""),
		RunE: func(_ *cobra.Command, _ []string) error {
			var b []byte
			var err error
			switch file {
			case "":
				return usageErr("give the cluster's definition with --file FILE (- for standard input)")
			case "-":
				b, err = io.ReadAll(a.stdin)
			default:
				b, err = os.ReadFile(file)
			}
			if err != nil {
				return usageErr("--file: %v", err)
			}
			req := api.DefineClusterRequest{Definition: string(b)}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			c, err := a.client()
			if err != nil {
				return classify(err)
			}
			w := a.progressWriter()
			fmt.Fprintf(w, "Create this cluster on every agent:\n%s", req.Definition)
			if !strings.HasSuffix(req.Definition, "\n") {
				fmt.Fprintln(w)
			}
			if !yes && !a.confirm(w, "Create it?") {
				return failed("nothing changed")
			}
			d, err := c.DefineCluster(a.ctx, req)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(d)
			}
			fmt.Fprintf(a.stdout, "cluster %s created (%s): every agent probes it within a second; see regentctl status --cluster %s\n",
				d.Name, strings.Join(d.Instances, ", "), d.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "the cluster's regent.yaml entry (- for standard input)")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

func (a *app) deleteClusterCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME [--yes]",
		Short: "Remove a replication cluster created at run time, on every agent",
		Long: `Remove NAME, a cluster created with "regentctl cluster create": every agent
stops probing it, and its record and history leave the replicated state.
Its servers are left as they are (replication, read_only). Refused for a
cluster of regent.yaml (take it out of regent.yaml instead) and while an
operation runs on it.`,
		Args:              args(1, "NAME"),
		ValidArgsFunction: a.completeClusters,
		RunE: func(_ *cobra.Command, argv []string) error {
			if err := api.CheckName("cluster", argv[0]); err != nil {
				return usageErr("%v", err)
			}
			c, err := a.client()
			if err != nil {
				return classify(err)
			}
			w := a.progressWriter()
			fmt.Fprintf(w, "Delete cluster %s on every agent: no longer probed or failed over; its history is dropped\n", argv[0])
			if !yes && !a.confirm(w, "Delete it?") {
				return failed("nothing changed")
			}
			d, err := c.RemoveCluster(a.ctx, argv[0])
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(d)
			}
			fmt.Fprintf(a.stdout, "cluster %s deleted (it was created by %s at %s)\n", d.Name, orDash(d.By), d.At.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}
