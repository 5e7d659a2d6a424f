package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// scrubEnvironment removes the secrets named by names from the process's
// environment once they have been read (and copied: config.ReadSecret).
//
// os.Unsetenv alone only changes Go's copy: /proc/PID/environ shows the
// memory the kernel filled at exec, which any process of the same user (a
// hook the agent runs, reading /proc/$PPID/environ) and root's process
// collectors can read. So the values are also overwritten with NUL bytes
// there, through /proc/self/mem at the addresses /proc/self/stat gives
// (env_start, env_end). Go copied the environment at start, so nothing in
// the process reads that memory again.
//
// Then the process is made non-dumpable (prctl PR_SET_DUMPABLE 0, as
// ssh-agent does): processes of the same user can no longer read its
// /proc/PID/environ or memory, and it leaves no core dump with the secrets
// in it. Root still can: nothing a process does hides it from root.
func scrubEnvironment(names []string) error {
	var errs []error
	for _, n := range names {
		if err := os.Unsetenv(n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(names) > 0 {
		if err := overwriteEnviron(names); err != nil {
			errs = append(errs, fmt.Errorf("overwriting /proc/self/environ: %w", err))
		}
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		errs = append(errs, fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err))
	}
	return errors.Join(errs...)
}

// overwriteEnviron zeroes the values of names in the environment block the
// kernel shows as /proc/self/environ.
func overwriteEnviron(names []string) error {
	start, end, err := environBounds()
	if err != nil {
		return err
	}
	block, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		return err
	}
	if int64(len(block)) != end-start {
		return fmt.Errorf("/proc/self/environ holds %d bytes, /proc/self/stat says %d", len(block), end-start)
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer mem.Close()
	off := 0
	for _, entry := range bytes.Split(block, []byte{0}) {
		for _, n := range names {
			prefix := n + "="
			if len(entry) > len(prefix) && string(entry[:len(prefix)]) == prefix {
				value := make([]byte, len(entry)-len(prefix))
				if _, err := mem.WriteAt(value, start+int64(off+len(prefix))); err != nil {
					return err
				}
			}
		}
		off += len(entry) + 1
	}
	return nil
}

// environBounds returns env_start and env_end of /proc/self/stat (fields
// 50 and 51, after the command name in parentheses, which may hold spaces).
func environBounds() (int64, int64, error) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("/proc/self/stat: no command name")
	}
	fields := strings.Fields(string(stat[i+1:])) // fields[0] is field 3, the state
	if len(fields) < 49 {
		return 0, 0, fmt.Errorf("/proc/self/stat has %d fields, want 51 (Linux 3.5 or later)", len(fields)+2)
	}
	start, err1 := strconv.ParseInt(fields[47], 10, 64)
	end, err2 := strconv.ParseInt(fields[48], 10, 64)
	if err1 != nil || err2 != nil || end < start {
		return 0, 0, fmt.Errorf("/proc/self/stat: env_start %q, env_end %q", fields[47], fields[48])
	}
	return start, end, nil
}
