// Command regentctl is Regent's admin CLI. It talks to an agent's HTTP API only.
// The CLI is not wired yet (see the agent issue); today it only reports its
// version.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("regentctl", version)
		return
	}
	fmt.Fprintln(os.Stderr, "regentctl: not built yet; only 'regentctl version' works (see README.md, Status)")
	os.Exit(2)
}
