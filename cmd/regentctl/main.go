package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/regentdb/regent/internal/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=..." (make
// build); main replaces an unstamped one with what the toolchain recorded
// (buildinfo.Version).
var version = buildinfo.Unstamped

// main only wires the process to run and maps its result to an exit code.
func main() {
	version = buildinfo.Version(version)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
