// Command demo runs a Regent sandbox on loopback for people to try: three
// real database servers (MariaDB by default, or MySQL 9.7 with
// -flavor mysql), three regent agents with TLS, and HAProxy in front. It
// prints how to reach everything, and stops and removes it all on Ctrl-C.
//
//	make demo                     # or: go run ./integration/demo -flavor mysql
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/regentdb/regent/integration/sandbox"
	"github.com/regentdb/regent/topology/mysqltest"
)

// runner is the mysqltest.TB of a program: Fatal stops everything cleanly.
type runner struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func (r *runner) Helper() {}
func (r *runner) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
func (r *runner) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *runner) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "demo: "+format+"\n", args...)
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	r.cleanup()
	os.Exit(1)
}
func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
func (r *runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runner) cleanup() {
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func main() {
	flavor := flag.String("flavor", "mariadb", "database servers: mariadb or mysql")
	flag.Parse()
	k := mysqltest.Kind(*flavor)
	if k != mysqltest.MariaDB && k != mysqltest.MySQL {
		fmt.Fprintf(os.Stderr, "demo: -flavor %q: want mariadb or mysql\n", *flavor)
		os.Exit(2)
	}
	r := &runner{}
	fmt.Fprintln(os.Stderr, "starting three", k, "servers, three regent agents and HAProxy on 127.0.0.1 ...")
	s := sandbox.Start(r, k, sandbox.Options{HAProxy: true})
	_, regentctl := sandbox.Binaries(r)

	var servers []string
	for _, srv := range s.DB.Servers() {
		servers = append(servers, fmt.Sprintf("    %-3s %s (mysqld pid %d)", srv.Name, srv.Addr(), srv.PID()))
	}
	var logs []string
	for _, a := range s.Agents {
		logs = append(logs, a.LogPath)
	}
	fmt.Printf(`
Regent sandbox is up (files in %s).

  database servers (p is the primary):
%s
  writes through HAProxy: %s
      mysql -h127.0.0.1 -P%s -u%s -p%s %s
  agent logs: %s

Try, in another shell:
  export REGENT_ENDPOINT=%s
  export REGENT_CA_FILE=%s REGENT_TOKEN_FILE=%s
  %s status
  %s switchover --to r1
  kill -9 <pid of the primary's mysqld>      # then: %s status; %s history
  %s pause --reason "maintenance"; %s resume

Ctrl-C stops everything and removes the files.
`, s.Dir, strings.Join(servers, "\n"), s.HAProxyAddr, strings.TrimPrefix(s.HAProxyAddr, "127.0.0.1:"),
		mysqltest.AppUser, mysqltest.AppPassword, mysqltest.TestDatabase, strings.Join(logs, " "),
		s.Endpoints(), s.CAFile, s.AdminTokenFile,
		regentctl, regentctl, filepath.Base(regentctl), filepath.Base(regentctl), filepath.Base(regentctl), filepath.Base(regentctl))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	fmt.Fprintln(os.Stderr, "\nstopping ...")
	r.cleanup()
}
