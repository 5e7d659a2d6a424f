package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

// Exit codes (documented in the root command's help).
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
	exitAuth        = 4
)

// Environment variables read by regentctl.
const (
	envEndpoint  = "REGENT_ENDPOINT"
	envToken     = "REGENT_TOKEN"
	envTokenFile = "REGENT_TOKEN_FILE"
	envCAFile    = "REGENT_CA_FILE"
	envCertFile  = "REGENT_CERT_FILE"
	envKeyFile   = "REGENT_KEY_FILE"
	envCluster   = "REGENT_CLUSTER"
)

// exitError carries the exit code chosen for an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func failed(format string, args ...any) error {
	return &exitError{code: exitFailed, err: fmt.Errorf(format, args...)}
}

// classify picks the exit code of an error from the API client.
func classify(err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	switch {
	case errors.Is(err, api.ErrUnreachable):
		return &exitError{code: exitUnreachable, err: err}
	case api.IsAuth(err):
		return &exitError{code: exitAuth, err: err}
	}
	switch api.StatusOf(err) {
	case http.StatusBadRequest, http.StatusNotFound:
		// The request as typed names something that does not exist or
		// cannot be: a usage error.
		return &exitError{code: exitUsage, err: err}
	}
	return &exitError{code: exitFailed, err: err}
}

// app is one invocation of regentctl: its I/O, environment and global
// flags. Nothing is global: tests run many apps side by side.
type app struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	now    func() time.Time

	endpoints string
	tokenFile string
	caFile    string
	certFile  string
	keyFile   string
	insecure  bool
	output    string
	cluster   string
	timeout   time.Duration

	api *api.Client
}

// run executes regentctl with args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitUsage // errors cobra returns itself are about flags and arguments
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintln(stderr, "regentctl: "+err.Error())
	if code == exitUsage {
		fmt.Fprintln(stderr, "Run 'regentctl --help' for usage.")
	}
	return code
}

const rootLong = `regentctl is the admin CLI of Regent, the high-availability manager for
MySQL and MariaDB. It talks to the HTTP API of any agent; calls that change
something are carried out by the Raft leader (followers forward them).

Connection:
  --endpoint / REGENT_ENDPOINT   agents to try, in order, comma-separated
                                 (https://host:port, or host:port for https);
                                 the next one is tried when one is down.
  --token-file / REGENT_TOKEN_FILE, or REGENT_TOKEN
                                 the bearer token (there is no --token flag:
                                 a token on the command line shows in ps).
  --ca-file, --cert-file, --key-file (REGENT_CA_FILE, REGENT_CERT_FILE,
  REGENT_KEY_FILE)               TLS: CA of the agents' certificates, and a
                                 client certificate when agents accept them.
  --cluster / REGENT_CLUSTER     the replication cluster; may be left out when
                                 the agents manage only one.

Exit codes:
  0  success
  1  the operation failed or was refused (a switchover that did not
     complete, a target that lags, check found errors, ...)
  2  usage error: bad flags or arguments, unknown cluster or instance
  3  no agent could be reached
  4  authentication or authorization error (wrong token: 401; read-only
     token on a call that changes something: 403)`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "regentctl",
		Short:         "Administer Regent: status, switchover, failover, pause, history",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != "table" && a.output != "json" {
				return usageErr("-o %q: want table or json", a.output)
			}
			if a.timeout <= 0 {
				return usageErr("--timeout must be positive")
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr("%v", err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.endpoints, "endpoint", "", "agents' API addresses, comma-separated (env "+envEndpoint+")")
	pf.StringVar(&a.tokenFile, "token-file", "", "file holding the API token (env "+envTokenFile+", or the token itself in "+envToken+")")
	pf.StringVar(&a.caFile, "ca-file", "", "PEM CA bundle that signs the agents' certificates (env "+envCAFile+")")
	pf.StringVar(&a.certFile, "cert-file", "", "client certificate, PEM (env "+envCertFile+")")
	pf.StringVar(&a.keyFile, "key-file", "", "client certificate's key, PEM (env "+envKeyFile+")")
	pf.BoolVar(&a.insecure, "insecure-skip-verify", false, "do not verify the agents' certificates (tests only: the token can be stolen)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&a.cluster, "cluster", "", "replication cluster (env "+envCluster+"; default: the only one)")
	pf.DurationVar(&a.timeout, "timeout", api.DefaultTimeout, "timeout of each request to one agent")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("cluster", a.completeClusters)

	root.AddCommand(
		a.statusCommand(),
		a.historyCommand(),
		a.switchoverCommand(),
		a.failoverCommand(),
		a.pauseCommand(),
		a.resumeCommand(),
		a.rejoinCommand(),
		a.repointCommand(),
		a.clusterCommand(),
		a.maintenanceCommand(),
		a.ackCommand(),
		a.discoverCommand(),
		a.membersCommand(),
		a.checkCommand(),
		a.versionCommand(),
	)
	return root
}

// env returns an environment variable, trimmed.
func (a *app) env(name string) string { return strings.TrimSpace(a.getenv(name)) }

// client builds the API client from the flags and environment, once.
func (a *app) client() (*api.Client, error) {
	if a.api != nil {
		return a.api, nil
	}
	eps := a.endpoints
	if eps == "" {
		eps = a.env(envEndpoint)
	}
	var list []string
	for _, e := range strings.Split(eps, ",") {
		if e = strings.TrimSpace(e); e != "" {
			list = append(list, e)
		}
	}
	if len(list) == 0 {
		return nil, usageErr("no agent to talk to: give --endpoint HOST:PORT[,HOST:PORT...] or set %s", envEndpoint)
	}
	token, err := a.token()
	if err != nil {
		return nil, err
	}
	files := api.TLSFiles{CAFile: first(a.caFile, a.env(envCAFile)), CertFile: first(a.certFile, a.env(envCertFile)),
		KeyFile: first(a.keyFile, a.env(envKeyFile)), InsecureSkipVerify: a.insecure}
	tlsCfg, err := api.LoadClientTLS(files)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	c, err := api.NewClient(api.ClientConfig{Endpoints: list, Token: token, TLS: tlsCfg, Timeout: a.timeout,
		UserAgent: "regentctl/" + version})
	if err != nil {
		return nil, usageErr("%v", err)
	}
	a.api = c
	return c, nil
}

// token reads the token: --token-file, then REGENT_TOKEN, then
// REGENT_TOKEN_FILE. No token is allowed (client certificates may do).
func (a *app) token() (string, error) {
	path := a.tokenFile
	if path == "" {
		if t := a.env(envToken); t != "" {
			return t, nil
		}
		path = a.env(envTokenFile)
	}
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usageErr("token file: %v", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", usageErr("token file %s is empty", path)
	}
	if strings.ContainsAny(t, " \t\r\n") {
		return "", usageErr("token file %s must hold only the token (one line, no role: prefix)", path)
	}
	return t, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// clusterName resolves --cluster: the flag, REGENT_CLUSTER, or the only
// cluster the agents manage.
func (a *app) clusterName(c *api.Client) (string, error) {
	name := first(a.cluster, a.env(envCluster))
	if name != "" {
		if err := api.CheckName("--cluster", name); err != nil {
			return "", usageErr("%v", err)
		}
		return name, nil
	}
	st, err := c.Status(a.ctx)
	if err != nil {
		return "", classify(err)
	}
	switch len(st.Clusters) {
	case 0:
		return "", failed("the agents manage no replication cluster")
	case 1:
		return st.Clusters[0], nil
	}
	return "", usageErr("the agents manage several clusters (%s): choose one with --cluster NAME", strings.Join(st.Clusters, ", "))
}

// setup returns the client and the cluster name, for cluster commands.
func (a *app) setup() (*api.Client, string, error) {
	c, err := a.client()
	if err != nil {
		return nil, "", err
	}
	name, err := a.clusterName(c)
	if err != nil {
		return nil, "", err
	}
	return c, name, nil
}

// completeClusters completes --cluster from the agents' status.
func (a *app) completeClusters(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	st, err := c.Status(a.ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return st.Clusters, cobra.ShellCompDirectiveNoFileComp
}

// completeInstances completes an instance name of the cluster.
func (a *app) completeInstances(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	c, name, err := a.setup()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cl, err := c.Cluster(a.ctx, name)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, in := range cl.Instances {
		out = append(out, in.Name)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// args checks the number of positional arguments as a usage error.
func args(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, got []string) error {
		if len(got) != n {
			if n == 0 {
				return usageErr("this command takes no argument, got %q", strings.Join(got, " "))
			}
			return usageErr("want %s, got %d argument(s)", names, len(got))
		}
		return nil
	}
}
