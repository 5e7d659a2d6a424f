package topology

import (
	"errors"
	"fmt"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// go-mysql's client (binlog watches) reports server errors and dropped
// connections with its own types; they class as go-sql-driver's do.
func TestClassifyGoMySQLErrors(t *testing.T) {
	cases := []struct {
		err  error
		want ErrorClass
	}{
		{&gomysql.MyError{Code: erAccessDenied}, ClassAuth},
		{&gomysql.MyError{Code: erSpecificAccessDenied}, ClassAccessDenied},
		{fmt.Errorf("dump: %w", &gomysql.MyError{Code: 1236}), ClassUnknown},
		{fmt.Errorf("read: %w", gomysql.ErrBadConn), ClassGoneAway},
		{errors.New("other"), ClassUnknown},
	}
	for _, tc := range cases {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
