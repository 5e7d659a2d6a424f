// Command regent is the Regent agent. The agent is not wired yet (see the agent
// issue); today it only reports its version.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("regent", version)
		return
	}
	fmt.Fprintln(os.Stderr, "regent: the agent is not built yet; only 'regent version' works (see README.md, Status)")
	os.Exit(2)
}
