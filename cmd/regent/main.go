// Command regent is the Regent agent: one per database host (or a
// tie-breaker host), three or five forming a Raft group that watches the
// replication clusters, fails over, fences and routes.
//
//	regent --config /etc/regent/regent.yaml   run the agent
//	regent check-config FILE                   validate a configuration and exit
//	regent version                             print the version
//
// Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/internal/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=..." (make
// build); main replaces an unstamped one with what the toolchain recorded
// (buildinfo.Version).
var version = buildinfo.Unstamped

func main() {
	version = buildinfo.Version(version)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "regent", version)
			return 0
		case "check-config":
			if len(args) != 2 {
				fmt.Fprintln(stderr, "usage: regent check-config FILE")
				return 2
			}
			cfg, err := config.Load(args[1])
			if err != nil {
				fmt.Fprintf(stderr, "regent: %v\n", err)
				return 2
			}
			// Valid, and what works now but should be changed: each
			// warning on a line, as the agent logs them at start.
			ws := append(cfg.SecurityWarnings(), cfg.CertificateWarnings(time.Now())...)
			for _, w := range ws {
				fmt.Fprintf(stdout, "warning: %s: %s\n", w.Key, w.Message)
			}
			fmt.Fprintf(stdout, "%s: configuration is valid (%d warning(s))\n", args[1], len(ws))
			return 0
		}
	}
	fs := flag.NewFlagSet("regent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/regent/regent.yaml", "configuration file")
	cpuProfile := fs.String("cpu-profile", "", "write a Go CPU profile of the agent's whole run to this file (go tool pprof reads it): for finding what an agent spends its CPU on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "regent: unexpected argument %q (subcommands: check-config, version)\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "regent: %v\n", err)
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "regent: --cpu-profile: %v\n", err)
			return 2
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "regent: --cpu-profile: %v\n", err)
			return 2
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, stderr); err != nil {
		fmt.Fprintf(stderr, "regent: %v\n", err)
		var ce *configError
		if errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	return 0
}

// configError is a start-up failure caused by the configuration.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }
