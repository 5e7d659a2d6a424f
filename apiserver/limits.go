package apiserver

import (
	"errors"
	"fmt"
	"time"
)

// Limits bound what any client, authenticated or not, can hold of the
// agent's HTTP server: connections, time and header bytes. An agent's file
// descriptors are shared with Raft and its MySQL connections, and HAProxy
// routes writes by the answers of /primary: a flood of idle or slow
// connections must not starve either (README "Hardening and secrets").
// Zero fields take DefaultLimits' values (WithDefaults); it is also
// api.limits in regent.yaml.
type Limits struct {
	// MaxConnections caps the connections served at once. At the cap a new
	// connection takes the place of the one that has waited longest
	// without a request in progress (still in its TLS handshake, still
	// sending its headers, or idle between requests): a flood of idle
	// connections only closes its own oldest ones.
	MaxConnections int `yaml:"max_connections"`
	// HealthConnections are kept beyond MaxConnections for the health
	// endpoints, for when every connection is busy with a request: such a
	// connection may only ask a health endpoint (anything else gets 503),
	// must send it within HealthReserveTimeout, and is closed after the
	// answer.
	HealthConnections int `yaml:"health_connections"`
	// ReadHeaderTimeout bounds the TLS handshake, and then again the
	// request line and headers.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a call from the end of its request's headers to
	// the end of its answer, so that a client that never reads cannot hold
	// a connection. Operation streams (follow=1) set their own deadlines.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a kept-alive connection without a new request.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

// HealthReserveTimeout is how long a connection on the health reserve (see
// Limits.HealthConnections) has for its TLS handshake, its request and the
// answer: HAProxy's checks take milliseconds.
const HealthReserveTimeout = 2 * time.Second

// DefaultLimits are the limits of an agent that sets none. 512 connections
// leave room for every balancer's checks, Prometheus, the other agents and
// operators many times over, and cost the agent some tens of MB at most.
func DefaultLimits() Limits {
	return Limits{
		MaxConnections:    512,
		HealthConnections: 32,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

// WithDefaults returns l with each zero field set to DefaultLimits' value.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&l.MaxConnections, d.MaxConnections)
	set(&l.HealthConnections, d.HealthConnections)
	setDur(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	setDur(&l.ReadTimeout, d.ReadTimeout)
	setDur(&l.WriteTimeout, d.WriteTimeout)
	setDur(&l.IdleTimeout, d.IdleTimeout)
	set(&l.MaxHeaderBytes, d.MaxHeaderBytes)
	return l
}

// Validate checks limits after WithDefaults; key prefixes messages (e.g.
// "api.limits").
func (l Limits) Validate(key string) error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", key, field, fmt.Sprintf(format, a...)))
	}
	if l.MaxConnections < 16 {
		bad("max_connections", "%d is too few: the other agents, the balancers' checks, Prometheus and regentctl need room (at least 16)", l.MaxConnections)
	}
	if l.HealthConnections < 1 {
		bad("health_connections", "%d: at least 1, or the health checks have no room while every connection is busy", l.HealthConnections)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"read_header_timeout", l.ReadHeaderTimeout}, {"read_timeout", l.ReadTimeout}, {"write_timeout", l.WriteTimeout}, {"idle_timeout", l.IdleTimeout}} {
		if d.v < 0 {
			bad(d.field, "%v is negative", d.v)
		}
	}
	if l.ReadHeaderTimeout > l.ReadTimeout {
		bad("read_header_timeout", "%v is longer than read_timeout (%v), which bounds the whole request", l.ReadHeaderTimeout, l.ReadTimeout)
	}
	if l.MaxHeaderBytes < 8<<10 {
		bad("max_header_bytes", "%d is too small: a token alone may be 4096 characters (at least 8192)", l.MaxHeaderBytes)
	}
	return errors.Join(errs...)
}
