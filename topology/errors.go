package topology

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// ErrorClass says how a call to an instance failed. Failure detection depends
// on the difference: "refused" from the local agent means mysqld is gone,
// "timeout" may be a hung server or a network cut, "auth" and "access denied"
// are configuration problems that must never trigger a failover.
type ErrorClass string

// The error classes.
const (
	ClassNone         ErrorClass = ""
	ClassRefused      ErrorClass = "refused"       // nothing listens (ECONNREFUSED): mysqld down, host up
	ClassTimeout      ErrorClass = "timeout"       // no answer in time: hung, overloaded or cut off
	ClassAuth         ErrorClass = "auth"          // wrong user or password (1045)
	ClassAccessDenied ErrorClass = "access_denied" // logged in, but lacks a privilege
	ClassGoneAway     ErrorClass = "gone_away"     // connection dropped mid-call, or shutdown in progress
	ClassUnknown      ErrorClass = "unknown"
)

// Error is a failed call to an instance, with its class. Its text never holds
// a password: statements that carry one are not quoted into errors.
type Error struct {
	Class ErrorClass
	// Op says what Regent was doing ("probe", "set read_only", ...).
	Op   string
	Addr string
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %s: %v", e.Op, e.Addr, e.Class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrWaitTimeout is returned when an instance did not reach a GTID set in the
// time allowed.
var ErrWaitTimeout = errors.New("timed out waiting for GTID set")

// MySQL server error numbers Regent branches on.
const (
	erDBAccessDenied        = 1044
	erAccessDenied          = 1045
	erServerShutdown        = 1053
	erKillDenied            = 1095
	erTableAccessDenied     = 1142
	erColumnAccessDenied    = 1143
	erSpecificAccessDenied  = 1227
	erProcAccessDenied      = 1370
	erUnknownThread         = 1094
	erOptionPreventsStmt    = 1290 // --read-only / --super-read-only
	erAccessDeniedNoPasswd  = 1698
	erHostNotPrivileged     = 1130
	erAccessDeniedChangeUsr = 1873
)

// Classify returns the class of err, ClassNone for nil.
func Classify(err error) ErrorClass {
	if err == nil {
		return ClassNone
	}
	var te *Error
	if errors.As(err, &te) {
		return te.Class
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return classifyServerError(me.Number)
	}
	// go-mysql's client, which holds binlog watches (binlogwatch.go).
	var ge *gomysql.MyError
	if errors.As(err, &ge) {
		return classifyServerError(ge.Code)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return ClassRefused
	}
	// A black-holed address, a frozen server and a deadline of our own all
	// end as timeouts.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return ClassTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ClassTimeout
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, net.ErrClosed) || errors.Is(err, gomysql.ErrBadConn) {
		return ClassGoneAway
	}
	// A unix socket file that does not exist (ENOENT) is not "refused": tmp
	// cleaners delete socket files of servers that still serve on TCP. It
	// stays ClassUnknown, which no failover decision counts as evidence.
	return ClassUnknown
}

// classifyServerError classes an error the server sent, by its number.
func classifyServerError(number uint16) ErrorClass {
	switch number {
	case erAccessDenied, erAccessDeniedNoPasswd, erHostNotPrivileged:
		return ClassAuth
	case erDBAccessDenied, erTableAccessDenied, erColumnAccessDenied, erSpecificAccessDenied,
		erProcAccessDenied, erKillDenied, erAccessDeniedChangeUsr:
		return ClassAccessDenied
	case erServerShutdown:
		return ClassGoneAway
	}
	return ClassUnknown
}

func isNotOwner(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == erKillDenied
}

func isUnknownThread(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == erUnknownThread
}

// IsReadOnlyError reports whether err is the server refusing a write because
// of read_only or super_read_only.
func IsReadOnlyError(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == erOptionPreventsStmt
}

func (i *Instance) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *Error
	if errors.As(err, &te) {
		return err
	}
	class := Classify(err)
	if class == ClassGoneAway && i.recentTimeout() {
		class = ClassTimeout
	}
	return &Error{Class: class, Op: op, Addr: i.addr, Err: err}
}
