package proxyhook

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RetryPolicy bounds the retries of one idempotent command: at most Attempts
// tries, waiting InitialBackoff after the first failure and doubling up to
// MaxBackoff. The ctx deadline always wins.
type RetryPolicy struct {
	Attempts       int           `yaml:"attempts" json:"attempts"`
	InitialBackoff time.Duration `yaml:"initial_backoff" json:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff" json:"max_backoff"`
}

// DefaultRetryPolicy suits a failover: three tries within about a quarter of
// a second, so a restarting HAProxy is caught without eating the failover
// budget (BENCHMARKS.md: a killed mysqld's first write through HAProxy
// within a median of 300 ms).
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{Attempts: 3, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.Attempts <= 0 {
		p.Attempts = d.Attempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = d.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = max(d.MaxBackoff, p.InitialBackoff)
	}
	return p
}

func (p RetryPolicy) validate(key string) error {
	if p.Attempts < 0 || p.Attempts > 20 {
		return fmt.Errorf("%s.attempts: %d is out of range (1..20; 0 takes the default %d)", key, p.Attempts, DefaultRetryPolicy().Attempts)
	}
	if p.InitialBackoff < 0 || p.MaxBackoff < 0 {
		return fmt.Errorf("%s: backoffs must not be negative", key)
	}
	if p.MaxBackoff > 0 && p.InitialBackoff > p.MaxBackoff {
		return fmt.Errorf("%s.initial_backoff (%s) is larger than max_backoff (%s)", key, p.InitialBackoff, p.MaxBackoff)
	}
	return nil
}

// permanentError marks an error that a retry cannot fix (permission denied,
// unknown server name, bad argument).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// retry runs fn until it succeeds, fails permanently, the attempts are used
// up or ctx ends. It returns the number of attempts made and the last error.
func retry(ctx context.Context, p RetryPolicy, fn func(ctx context.Context) error) (int, error) {
	p = p.withDefaults()
	backoff := p.InitialBackoff
	var err error
	for attempt := 1; ; attempt++ {
		err = fn(ctx)
		if err == nil || isPermanent(err) || attempt >= p.Attempts {
			return attempt, err
		}
		if ctx.Err() != nil {
			return attempt, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
		backoff = min(backoff*2, p.MaxBackoff)
	}
}
