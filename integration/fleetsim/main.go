// Command fleetsim serves a slice of a simulated fleet for Regent's fleet
// benchmark (make bench-fleet): replication clusters of simulated MariaDB
// instances (topology/mysqlsim, an EMULATION, not MariaDB), each cluster a
// writable primary (db1) and replicas of it. The benchmark spreads the
// fleet over several fleetsim processes, to keep each within its file
// descriptors and to let a real agent's costs be measured apart from the
// emulation's.
//
// Cluster c's instance i (from 0) is named fmt.Sprintf("c%04d-db%d", c,
// i+1) and listens on Addr(prefix, c*size+i, port): one loopback address per
// instance, so that thousands of them share one port.
//
// On stdin it takes one command per line and answers one line on stdout
// ("ok" or "error: ..."):
//
//	stop NAME     the instance stops (connections refused, as after kill -9)
//	start NAME    it starts again
//	write N       every writable instance commits N simulated transactions
//	unhandled     the statements Regent sent that the emulation refused
//
// It prints "ready N" once its N instances listen, and exits when stdin
// closes.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/regentdb/regent/topology/mysqlsim"
)

// Addr is the address of the fleet's instance number g: 127.P.(g/250).(g%250+1).
func Addr(prefix, g, port int) string {
	return fmt.Sprintf("127.%d.%d.%d:%d", prefix, g/250, g%250+1, port)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

func run() error {
	first := flag.Int("first", 0, "number of the first cluster served here")
	count := flag.Int("clusters", 1, "clusters served here")
	size := flag.Int("size", 3, "instances per cluster (the first is the primary)")
	prefix := flag.Int("prefix", 21, "second octet of the loopback addresses (127.P.x.y)")
	port := flag.Int("port", 23306, "port every instance listens on")
	user := flag.String("user", "regent", "the account's user")
	passwordEnv := flag.String("password-env", "FLEETSIM_PASSWORD", "environment variable holding the account's password")
	heartbeat := flag.Duration("heartbeat", time.Second, "replication heartbeat period")
	flag.Parse()
	if *size < 2 || *count < 1 || *first < 0 {
		return errors.New("-size must be at least 2, -clusters at least 1, -first at least 0")
	}
	// go-mysql's server logs every command it leaves to the handler
	// through the standard logger: thousands of lines a second here.
	log.SetOutput(io.Discard)
	password := os.Getenv(*passwordEnv)
	if password == "" {
		return fmt.Errorf("set the account's password in $%s", *passwordEnv)
	}

	fleet := mysqlsim.NewFleet()
	defer fleet.Close()
	byName := map[string]*mysqlsim.Server{}
	var all []*mysqlsim.Server
	for c := *first; c < *first+*count; c++ {
		var primary *mysqlsim.Server
		for i := range *size {
			g := c**size + i
			s, err := fleet.Start(mysqlsim.Options{Addr: Addr(*prefix, g, *port), ServerID: uint32(1000 + g), User: *user, Password: password})
			if err != nil {
				return fmt.Errorf("instance %d: %w", g, err)
			}
			byName[fmt.Sprintf("c%04d-db%d", c, i+1)] = s
			all = append(all, s)
			if i == 0 {
				primary = s
				s.SetVariable("read_only", "OFF")
				if err := s.Write(10); err != nil {
					return err
				}
				continue
			}
			s.Replicate(primary, *heartbeat)
		}
	}
	fmt.Printf("ready %d\n", len(all))

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		answer := "ok"
		switch {
		case len(f) == 2 && (f[0] == "stop" || f[0] == "start"):
			s, ok := byName[f[1]]
			if !ok {
				answer = "error: no instance " + f[1]
				break
			}
			if f[0] == "stop" {
				s.Stop()
			} else if err := s.Restart(); err != nil {
				answer = "error: " + err.Error()
			}
		case len(f) == 2 && f[0] == "write":
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 1 {
				answer = "error: write wants a positive count"
				break
			}
			for _, s := range all {
				if !s.ReadOnly() {
					_ = s.Write(n) // a stopped one refuses
				}
			}
		case len(f) == 1 && f[0] == "unhandled":
			var u []string
			for name, s := range byName {
				for _, q := range s.Unhandled() {
					u = append(u, name+": "+q)
				}
			}
			answer = "ok " + strconv.Quote(strings.Join(u, "; "))
		default:
			answer = "error: unknown command " + strconv.Quote(in.Text())
		}
		fmt.Println(answer)
	}
	return in.Err()
}
