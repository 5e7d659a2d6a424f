package api

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on request fields. They keep a request's cost bounded and its
// fields printable in logs and on the status page.
const (
	MaxNameLen       = 128
	MaxReasonLen     = 1024
	MaxWaitForWrites = time.Hour
)

// ValidName reports whether s can name a cluster, an instance, an agent or
// an operation: 1 to MaxNameLen characters among letters, digits and
// ". _ - :" (a colon allows host:port instance names), starting with a
// letter or digit.
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return false
		}
		if !alnum && c != '.' && c != '_' && c != '-' && c != ':' {
			return false
		}
	}
	return true
}

// CheckName returns an error naming what the name is for when s is not a
// ValidName.
func CheckName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if !ValidName(s) {
		return fmt.Errorf("%s %q is not a valid name: use up to %d letters, digits, '.', '_', '-' or ':', starting with a letter or digit",
			what, truncate(s, 40), MaxNameLen)
	}
	return nil
}

func checkHostPort(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty: give host:port", what)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%s %q is not host:port", what, truncate(s, 60))
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("%s %q has no host: give host:port with the address other agents can reach", what, truncate(s, 60))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%s %q has a bad port: want 1-65535", what, truncate(s, 60))
	}
	return nil
}

func checkReason(s string) error {
	if len(s) > MaxReasonLen {
		return fmt.Errorf("reason is %d bytes long; keep it under %d", len(s), MaxReasonLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("reason is not valid UTF-8")
	}
	return nil
}

// Validate checks the request before it is sent or served.
func (r SwitchoverRequest) Validate() error {
	if r.To != "" {
		if err := CheckName("target instance (to)", r.To); err != nil {
			return err
		}
	}
	if r.WaitForWrites < 0 || r.WaitForWrites.Std() > MaxWaitForWrites {
		return fmt.Errorf("wait_for_writes %s is out of range: want 0 to %s", r.WaitForWrites, MaxWaitForWrites)
	}
	return nil
}

// Validate checks the request before it is sent or served.
func (r FailoverRequest) Validate() error {
	if r.To == "" {
		return errors.New("a manual failover needs a target instance: set \"to\" (regentctl failover --to INSTANCE)")
	}
	return CheckName("target instance (to)", r.To)
}

// Validate checks the request before it is sent or served.
func (r PauseRequest) Validate() error { return checkReason(r.Reason) }

// Validate checks the request before it is sent or served.
func (r RejoinRequest) Validate() error { return CheckName("instance", r.Instance) }

// Validate checks the request before it is sent or served.
func (r RepointRequest) Validate() error {
	if r.To == "" {
		return nil
	}
	return CheckName("to", r.To)
}

// Validate checks the request before it is sent or served.
func (r AckRequest) Validate() error {
	if len(r.Comment) > MaxReasonLen {
		return fmt.Errorf("comment is %d bytes long; keep it under %d", len(r.Comment), MaxReasonLen)
	}
	if !utf8.ValidString(r.Comment) {
		return errors.New("comment is not valid UTF-8")
	}
	return nil
}

// Validate checks the request before it is sent or served.
func (r MaintenanceRequest) Validate() error {
	if strings.TrimSpace(r.Reason) == "" {
		return errors.New("maintenance needs a reason, for the people who will see it (regentctl maintenance start INSTANCE --reason TEXT --for DURATION)")
	}
	if err := checkReason(r.Reason); err != nil {
		return err
	}
	if r.For <= 0 || r.For.Std() > MaxMaintenance {
		return fmt.Errorf("maintenance for %s is out of range: give how long it lasts, more than 0 and at most %s (it ends by itself then)", r.For.Std(), MaxMaintenance)
	}
	return nil
}

// Validate checks the request before it is sent or served.
func (r AddMemberRequest) Validate() error {
	if err := CheckName("member id", r.ID); err != nil {
		return err
	}
	if err := checkHostPort("raft_addr", r.RaftAddr); err != nil {
		return err
	}
	return checkHostPort("api_addr", r.APIAddr)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Validate checks the request before it is sent or served.
func (r EditSettingsRequest) Validate() error {
	if strings.TrimSpace(r.Set) == "" && len(r.Reset) == 0 {
		return errors.New("nothing to change: give settings to set (key: value) or keys to reset")
	}
	if len(r.Set) > MaxReasonLen {
		return fmt.Errorf("the settings are %d bytes long; keep them under %d", len(r.Set), MaxReasonLen)
	}
	for _, k := range r.Reset {
		if err := CheckName("reset", k); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the request before it is sent or served; the agent
// checks the rest with the start-up rules.
// MaxDefinitionLen bounds a cluster definition (DefineClusterRequest); it
// fits in the API's request body limit, JSON escaping included.
const MaxDefinitionLen = 32 << 10

// Validate checks what can be checked without the agent's configuration.
func (r DefineClusterRequest) Validate() error {
	switch {
	case strings.TrimSpace(r.Definition) == "":
		return errors.New("definition is empty: give the cluster's clusters: entry (name, instances, settings)")
	case len(r.Definition) > MaxDefinitionLen:
		return fmt.Errorf("definition is %d bytes, more than %d", len(r.Definition), MaxDefinitionLen)
	}
	return nil
}

func (r AddInstanceRequest) Validate() error {
	if err := CheckName("name", r.Name); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(r.Address); err != nil {
		return fmt.Errorf("address %q is not host:port", r.Address)
	}
	return nil
}
