package main

import (
	"os"
	"os/exec"
	"testing"
)

// helperEnv names the role a re-executed test binary plays instead of
// running the tests: a process to inspect from outside (scrub) or a client
// flooding the API from another process (flood).
const helperEnv = "REGENT_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "scrub":
		scrubChild()
		os.Exit(0)
	case "flood":
		floodMain()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperCommand re-executes the test binary in the given role.
func helperCommand(role string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
	return cmd
}
