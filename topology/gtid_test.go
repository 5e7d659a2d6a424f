package topology

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

// Server uuids as MySQL prints them. u1 < u2 < u3 in byte order, so the
// canonical order of a set is u1, u2, u3.
const (
	u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	u2 = "8d6f1b0a-5c3e-11ef-8000-0242ac120002"
	u3 = "f00dbabe-0000-4000-8000-000000000003"
)

// mysqlText replaces U1, U2 and U3 with the uuids above, to keep tables short.
func mysqlText(s string) string {
	return strings.NewReplacer("U1", u1, "U2", u2, "U3", u3).Replace(s)
}

// gtidFor parses s, MySQL text going through mysqlText first, and fails the
// test on error.
func gtidFor(t *testing.T, f Flavor, s string) GTIDSet {
	t.Helper()
	if f.IsMySQL() {
		s = mysqlText(s)
	}
	set, err := ParseGTIDSet(f, s)
	if err != nil {
		t.Fatalf("ParseGTIDSet(%s, %q): %v", f, s, err)
	}
	return set
}

func TestGTIDParseMySQL(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // canonical String(); ignored when wantErr is set
		// wantErr is a part of the error text, which must name the bad element.
		wantErr string
	}{
		{name: "empty string", in: "", want: ""},
		{name: "whitespace only", in: " \n\t", want: ""},
		{name: "one uuid one interval", in: "U1:1-5", want: "U1:1-5"},
		{name: "single transaction", in: "U1:7", want: "U1:7"},
		{name: "uppercase uuid is lowered", in: strings.ToUpper(u1) + ":1-5", want: "U1:1-5"},
		{name: "as @@gtid_executed prints it, newline after comma", in: "U1:1-5,\nU2:1-3,\nU3:1", want: "U1:1-5,U2:1-3,U3:1"},
		{name: "uuids sorted", in: "U3:1,U1:1-5,U2:1-3", want: "U1:1-5,U2:1-3,U3:1"},
		{name: "surrounding whitespace", in: "  U1:1-5 ,  U2:4\n", want: "U1:1-5,U2:4"},
		{name: "holes kept", in: "U1:1-5:7:9-12", want: "U1:1-5:7:9-12"},
		{name: "intervals sorted and merged", in: "U1:9-12:1-3:4-5:7:11", want: "U1:1-5:7:9-12"},
		{name: "uuid repeated across elements", in: "U1:1-3,U2:1,U1:4-6", want: "U1:1-6,U2:1"},
		{name: "tagged after untagged", in: "U1:1-5:tag_a:1-3", want: "U1:1-5:tag_a:1-3"},
		{name: "tagged only", in: "U1:web:1-3", want: "U1:web:1-3"},
		{name: "tag lowered", in: "U1:Web_1:1", want: "U1:web_1:1"},
		{name: "tags sorted, untagged first", in: "U1:zz:1:aa:2-4,U1:9", want: "U1:9:aa:2-4:zz:1"},
		{name: "largest gno MySQL allows", in: "U1:1-9223372036854775806", want: "U1:1-9223372036854775806"},

		{name: "garbage", in: "hello", wantErr: `"hello"`},
		{name: "uuid without interval", in: "U1", wantErr: u1},
		{name: "uuid with empty interval", in: "U1:", wantErr: u1},
		{name: "bad uuid", in: "U1:1-5,not-a-uuid:1-5", wantErr: `element 2 "not-a-uuid:1-5"`},
		{name: "gno 0", in: "U1:0-5", wantErr: u1},
		{name: "reversed interval", in: "U1:5-3", wantErr: u1 + ":5-3"},
		{name: "letters in interval", in: "U1:1-x", wantErr: u1 + ":1-x"},
		{name: "tag without interval", in: "U1:1-5:web", wantErr: "web"},
		{name: "trailing comma", in: "U1:1-5,", wantErr: "element 2 is empty"},
		{name: "double comma", in: "U1:1-5,,U2:1", wantErr: "element 2 is empty"},
		{name: "gno overflow", in: "U1:1-9223372036854775807", wantErr: u1},
		{name: "negative gno", in: "U1:-5", wantErr: u1},
		{name: "missing comma", in: "U1:1-5 U2:1-3", wantErr: u1},
		{name: "tag too long", in: "U1:" + strings.Repeat("t", 33) + ":1", wantErr: u1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMySQLGTIDSet(mysqlText(tt.in))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseMySQLGTIDSet(%q) = %q, want an error containing %q", tt.in, got, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidGTIDSet) {
					t.Errorf("error %q does not wrap ErrInvalidGTIDSet", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not name %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMySQLGTIDSet(%q): %v", tt.in, err)
			}
			if want := mysqlText(tt.want); got.String() != want {
				t.Errorf("String() = %q, want %q", got.String(), want)
			}
			if !got.IsMySQL() || got.IsMariaDB() || got.Flavor() != FlavorMySQL84 {
				t.Errorf("flavour: IsMySQL %v, IsMariaDB %v, Flavor %s; want a MySQL set", got.IsMySQL(), got.IsMariaDB(), got.Flavor())
			}
			again, err := ParseMySQLGTIDSet(got.String())
			if err != nil {
				t.Fatalf("reparse of String() %q: %v", got.String(), err)
			}
			if !again.Equal(got) || again.String() != got.String() {
				t.Errorf("round trip: %q became %q", got.String(), again.String())
			}
		})
	}
}

func TestGTIDParseMariaDB(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "empty string", in: "", want: ""},
		{name: "whitespace only", in: "\n ", want: ""},
		{name: "one domain one server", in: "0-1-100", want: "0-1-100"},
		{name: "binlog state after failovers", in: "0-1-100,0-2-50,1-3-7", want: "0-1-100,0-2-50,1-3-7"},
		{name: "sorted by domain then server_id", in: "1-3-7,0-2-50,0-1-100,0-10-4", want: "0-1-100,0-2-50,0-10-4,1-3-7"},
		{name: "whitespace and newlines around elements", in: " 0-1-100,\n 0-2-50 ", want: "0-1-100,0-2-50"},
		{name: "seq 0 holds nothing", in: "0-1-0", want: ""},
		{name: "seq 0 beside others", in: "0-1-0,0-2-5", want: "0-2-5"},
		{name: "same key twice is united", in: "0-1-5,0-1-9", want: "0-1-9"},
		{name: "leading zeros", in: "00-01-007", want: "0-1-7"},
		{name: "difference notation", in: "0-2-101..151", want: "0-2-101..151"},
		{name: "difference notation, one transaction", in: "0-2-151..151", want: "0-2-151..151"},
		{name: "difference notation from 1 is the state form", in: "0-2-1..10", want: "0-2-10"},
		{name: "difference notation with holes", in: "0-2-20..30,0-2-5,0-2-7..9", want: "0-2-5,0-2-7..9,0-2-20..30"},
		{name: "difference notation merges adjacent", in: "0-2-3..5,0-2-6..9,0-2-2", want: "0-2-9"},
		{name: "largest values", in: "4294967295-4294967295-18446744073709551615", want: "4294967295-4294967295-18446744073709551615"},

		{name: "two fields", in: "0-1", wantErr: `element 1 "0-1"`},
		{name: "four fields", in: "0-1-2-3", wantErr: `"0-1-2-3"`},
		{name: "MySQL text", in: u1 + ":1-5", wantErr: u1},
		{name: "domain not a number", in: "a-1-2", wantErr: `domain_id "a"`},
		{name: "server_id not a number", in: "0-b-2", wantErr: `server_id "b"`},
		{name: "seq not a number", in: "0-1-c", wantErr: `seq_no "c"`},
		{name: "negative domain", in: "-1-1-5", wantErr: `"-1-1-5"`},
		{name: "domain overflow", in: "4294967296-1-1", wantErr: `domain_id "4294967296"`},
		{name: "server_id overflow", in: "0-4294967296-1", wantErr: `server_id "4294967296"`},
		{name: "seq overflow", in: "0-1-18446744073709551616", wantErr: `seq_no "18446744073709551616"`},
		{name: "trailing comma", in: "0-1-5,", wantErr: "element 2"},
		{name: "double comma", in: "0-1-5,,0-2-1", wantErr: "element 2"},
		{name: "second element bad", in: "0-1-5,0-2-x", wantErr: `element 2 "0-2-x"`},
		{name: "range from 0", in: "0-1-0..5", wantErr: `"0..5"`},
		{name: "reversed range", in: "0-1-9..5", wantErr: `"9..5"`},
		{name: "open range", in: "0-1-5..", wantErr: `"5.."`},
		{name: "space inside element", in: "0-1- 5", wantErr: `seq_no " 5"`},
		{name: "colons", in: "0:1:5", wantErr: `"0:1:5"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMariaDBGTIDState(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseMariaDBGTIDState(%q) = %q, want an error containing %q", tt.in, got, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidGTIDSet) {
					t.Errorf("error %q does not wrap ErrInvalidGTIDSet", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not name %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMariaDBGTIDState(%q): %v", tt.in, err)
			}
			if got.String() != tt.want {
				t.Errorf("String() = %q, want %q", got.String(), tt.want)
			}
			if !got.IsMariaDB() || got.IsMySQL() || got.Flavor() != FlavorMariaDB {
				t.Errorf("flavour: IsMySQL %v, IsMariaDB %v, Flavor %s; want a MariaDB set", got.IsMySQL(), got.IsMariaDB(), got.Flavor())
			}
			again, err := ParseMariaDBGTIDState(got.String())
			if err != nil {
				t.Fatalf("reparse of String() %q: %v", got.String(), err)
			}
			if !again.Equal(got) || again.String() != got.String() {
				t.Errorf("round trip: %q became %q", got.String(), again.String())
			}
		})
	}
}

func TestGTIDParseDispatch(t *testing.T) {
	tests := []struct {
		name        string
		flavor      Flavor
		in          string
		wantErr     bool
		wantMariaDB bool
	}{
		{name: "MariaDB state", flavor: FlavorMariaDB, in: "0-1-5", wantMariaDB: true},
		{name: "MySQL 8.0 set", flavor: FlavorMySQL80, in: u1 + ":1-5"},
		{name: "MySQL 8.4 set", flavor: FlavorMySQL84, in: u1 + ":1-5"},
		{name: "MySQL 8.4 empty", flavor: FlavorMySQL84, in: ""},
		{name: "MariaDB empty", flavor: FlavorMariaDB, in: "", wantMariaDB: true},
		{name: "unknown flavour refused", flavor: FlavorUnknown, in: "0-1-5", wantErr: true},
		{name: "MySQL text for MariaDB", flavor: FlavorMariaDB, in: u1 + ":1-5", wantErr: true},
		{name: "MariaDB text for MySQL", flavor: FlavorMySQL84, in: "0-1-5", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGTIDSet(tt.flavor, tt.in)
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrInvalidGTIDSet) {
					t.Fatalf("ParseGTIDSet(%s, %q) = %q, %v; want an ErrInvalidGTIDSet error", tt.flavor, tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseGTIDSet(%s, %q): %v", tt.flavor, tt.in, err)
			}
			if got.IsMariaDB() != tt.wantMariaDB || got.IsMySQL() == tt.wantMariaDB {
				t.Errorf("IsMariaDB %v IsMySQL %v, want IsMariaDB %v", got.IsMariaDB(), got.IsMySQL(), tt.wantMariaDB)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

// TestGTIDSetOperations checks every operation on pairs of sets. a is
// usually the primary and b a replica.
func TestGTIDSetOperations(t *testing.T) {
	tests := []struct {
		name   string
		flavor Flavor
		a, b   string

		aContainsB, bContainsA bool
		aMinusB, bMinusA       string
		union                  string
	}{
		// MySQL.
		{
			name: "mysql equal sets", flavor: FlavorMySQL84,
			a: "U1:1-100,U2:1-5", b: "U2:1-5,\nU1:1-100",
			aContainsB: true, bContainsA: true, union: "U1:1-100,U2:1-5",
		},
		{
			name: "mysql both empty", flavor: FlavorMySQL84,
			a: "", b: "",
			aContainsB: true, bContainsA: true,
		},
		{
			name: "mysql lagging replica", flavor: FlavorMySQL84,
			a: "U1:1-100", b: "U1:1-90",
			aContainsB: true, aMinusB: "U1:91-100", union: "U1:1-100",
		},
		{
			name: "mysql replica not started", flavor: FlavorMySQL84,
			a: "U1:1-100", b: "",
			aContainsB: true, aMinusB: "U1:1-100", union: "U1:1-100",
		},
		{
			name: "mysql errant: extra uuid on the replica", flavor: FlavorMySQL84,
			a: "U1:1-100", b: "U1:1-100,U2:1-3",
			bContainsA: true, bMinusA: "U2:1-3", union: "U1:1-100,U2:1-3",
		},
		{
			name: "mysql errant: extra interval on the primary's uuid", flavor: FlavorMySQL84,
			a: "U1:1-120", b: "U1:1-100:150",
			aMinusB: "U1:101-120", bMinusA: "U1:150", union: "U1:1-120:150",
		},
		{
			name: "mysql lagging and errant at once", flavor: FlavorMySQL84,
			a: "U1:1-100,U3:1-10", b: "U1:1-90,U2:1",
			aMinusB: "U1:91-100,U3:1-10", bMinusA: "U2:1", union: "U1:1-100,U2:1,U3:1-10",
		},
		{
			name: "mysql intervals with holes, neither contains", flavor: FlavorMySQL84,
			a: "U1:1-10:20-30", b: "U1:5-25",
			aMinusB: "U1:1-4:26-30", bMinusA: "U1:11-19", union: "U1:1-30",
		},
		{
			name: "mysql subtract produces holes", flavor: FlavorMySQL84,
			a: "U1:1-100", b: "U1:10-20:50:99",
			aContainsB: true, aMinusB: "U1:1-9:21-49:51-98:100", union: "U1:1-100",
		},
		{
			name: "mysql holes filled by the other", flavor: FlavorMySQL84,
			a: "U1:1-4:6-9", b: "U1:5:10",
			aMinusB: "U1:1-4:6-9", bMinusA: "U1:5:10", union: "U1:1-10",
		},
		{
			name: "mysql one range of b spans several of a", flavor: FlavorMySQL84,
			a: "U1:1-3:5-7:9-11", b: "U1:2-10",
			aMinusB: "U1:1:11", bMinusA: "U1:4:8", union: "U1:1-11",
		},
		{
			name: "mysql tagged transactions are their own source", flavor: FlavorMySQL84,
			a: "U1:1-5:batch:1-3", b: "U1:1-5",
			aContainsB: true, aMinusB: "U1:batch:1-3", union: "U1:1-5:batch:1-3",
		},
		{
			name: "mysql same numbers under different tags", flavor: FlavorMySQL84,
			a: "U1:a:1-3", b: "U1:b:1-3",
			aMinusB: "U1:a:1-3", bMinusA: "U1:b:1-3", union: "U1:a:1-3:b:1-3",
		},
		// MariaDB.
		{
			name: "mariadb equal states", flavor: FlavorMariaDB,
			a: "0-1-150,0-2-100", b: "0-2-100,0-1-150",
			aContainsB: true, bContainsA: true, union: "0-1-150,0-2-100",
		},
		{
			name: "mariadb lagging replica", flavor: FlavorMariaDB,
			a: "0-1-150,0-2-100", b: "0-1-120,0-2-100",
			aContainsB: true, aMinusB: "0-1-121..150", union: "0-1-150,0-2-100",
		},
		{
			name: "mariadb lagging replica that never saw server 2's reign", flavor: FlavorMariaDB,
			a: "0-1-150,0-2-100", b: "0-1-90",
			aContainsB: true, aMinusB: "0-1-91..150,0-2-100", union: "0-1-150,0-2-100",
		},
		{
			name: "mariadb errant: replica wrote after its own old reign", flavor: FlavorMariaDB,
			a: "0-1-150,0-2-100", b: "0-1-150,0-2-151",
			bContainsA: true, bMinusA: "0-2-101..151", union: "0-1-150,0-2-151",
		},
		{
			name: "mariadb errant: primary never had the replica's server_id", flavor: FlavorMariaDB,
			a: "0-1-150", b: "0-1-150,0-2-151",
			bContainsA: true, bMinusA: "0-2-151", union: "0-1-150,0-2-151",
		},
		{
			name: "mariadb lagging and errant at once", flavor: FlavorMariaDB,
			a: "0-1-150", b: "0-1-140,0-2-141",
			aMinusB: "0-1-141..150", bMinusA: "0-2-141", union: "0-1-150,0-2-141",
		},
		{
			name: "mariadb domains are separate", flavor: FlavorMariaDB,
			a: "0-1-10,1-1-5", b: "0-1-10,2-1-5",
			aMinusB: "1-1-5", bMinusA: "2-1-5", union: "0-1-10,1-1-5,2-1-5",
		},
		{
			name: "mariadb difference sets with holes", flavor: FlavorMariaDB,
			a: "0-1-100", b: "0-1-10..20,0-1-50..50",
			aContainsB: true, aMinusB: "0-1-9,0-1-21..49,0-1-51..100", union: "0-1-100",
		},
		{
			name: "mariadb both empty", flavor: FlavorMariaDB,
			a: "", b: "",
			aContainsB: true, bContainsA: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := gtidFor(t, tt.flavor, tt.a), gtidFor(t, tt.flavor, tt.b)
			aText, bText := a.String(), b.String()
			want := func(s string) string {
				if tt.flavor.IsMySQL() {
					return mysqlText(s)
				}
				return s
			}
			if got := a.Contains(b); got != tt.aContainsB {
				t.Errorf("a.Contains(b) = %v, want %v", got, tt.aContainsB)
			}
			if got := b.Contains(a); got != tt.bContainsA {
				t.Errorf("b.Contains(a) = %v, want %v", got, tt.bContainsA)
			}
			wantEqual := tt.aContainsB && tt.bContainsA
			if got := a.Equal(b); got != wantEqual {
				t.Errorf("a.Equal(b) = %v, want %v", got, wantEqual)
			}
			if got := b.Equal(a); got != wantEqual {
				t.Errorf("b.Equal(a) = %v, want %v", got, wantEqual)
			}
			if got, want := a.Ahead(b), tt.aContainsB && !tt.bContainsA; got != want {
				t.Errorf("a.Ahead(b) = %v, want %v", got, want)
			}
			if got, want := b.Ahead(a), tt.bContainsA && !tt.aContainsB; got != want {
				t.Errorf("b.Ahead(a) = %v, want %v", got, want)
			}
			if got := a.Subtract(b).String(); got != want(tt.aMinusB) {
				t.Errorf("a.Subtract(b) = %q, want %q", got, want(tt.aMinusB))
			}
			if got := b.Subtract(a).String(); got != want(tt.bMinusA) {
				t.Errorf("b.Subtract(a) = %q, want %q", got, want(tt.bMinusA))
			}
			if got := Errant(b, a).String(); got != want(tt.bMinusA) {
				t.Errorf("Errant(b, a) = %q, want %q", got, want(tt.bMinusA))
			}
			if got := a.Union(b).String(); got != want(tt.union) {
				t.Errorf("a.Union(b) = %q, want %q", got, want(tt.union))
			}
			if got := b.Union(a).String(); got != want(tt.union) {
				t.Errorf("b.Union(a) = %q, want %q", got, want(tt.union))
			}
			for _, s := range []GTIDSet{a.Subtract(b), b.Subtract(a), a.Union(b)} {
				if s.Flavor() != a.Flavor() {
					t.Errorf("result %q has flavour %s, want %s", s, s.Flavor(), a.Flavor())
				}
				if s.String() != "" {
					if again, err := ParseGTIDSet(tt.flavor, s.String()); err != nil || !again.Equal(s) {
						t.Errorf("result %q does not round-trip: %q, %v", s, again, err)
					}
				}
			}
			if a.String() != aText || b.String() != bText {
				t.Errorf("operands changed: a %q → %q, b %q → %q", aText, a, bText, b)
			}
		})
	}
}

func TestErrantGTIDs(t *testing.T) {
	tests := []struct {
		name             string
		flavor           Flavor
		replica, primary string
		want             string
	}{
		{name: "mysql clean replica, equal", flavor: FlavorMySQL84, replica: "U1:1-100", primary: "U1:1-100"},
		{name: "mysql clean replica, behind", flavor: FlavorMySQL84, replica: "U1:1-90", primary: "U1:1-100,U2:1-7"},
		{name: "mysql clean replica, empty", flavor: FlavorMySQL84, replica: "", primary: "U1:1-100"},
		{name: "mysql replica's own uuid", flavor: FlavorMySQL84, replica: "U1:1-100,U2:1-2", primary: "U1:1-100", want: "U2:1-2"},
		{name: "mysql beyond the primary on its uuid", flavor: FlavorMySQL84, replica: "U1:1-100:150", primary: "U1:1-120", want: "U1:150"},
		{name: "mysql everything errant when the primary is empty", flavor: FlavorMySQL84, replica: "U1:1-3", primary: "", want: "U1:1-3"},
		{name: "mysql tagged write on the replica", flavor: FlavorMySQL84, replica: "U1:1-100:ops:1", primary: "U1:1-100", want: "U1:ops:1"},

		{name: "mariadb clean replica, equal", flavor: FlavorMariaDB, replica: "0-1-150,0-2-100", primary: "0-1-150,0-2-100"},
		{name: "mariadb clean replica, behind", flavor: FlavorMariaDB, replica: "0-1-120,0-2-100", primary: "0-1-150,0-2-100"},
		{name: "mariadb clean replica, gtid_slave_pos form", flavor: FlavorMariaDB, replica: "0-1-150", primary: "0-1-150,0-2-100"},
		{name: "mariadb replica wrote, primary has its old reign", flavor: FlavorMariaDB, replica: "0-1-150,0-2-151", primary: "0-1-150,0-2-100", want: "0-2-101..151"},
		{name: "mariadb replica wrote, primary never saw its server_id", flavor: FlavorMariaDB, replica: "0-1-150,0-2-151", primary: "0-1-150", want: "0-2-151"},
		{name: "mariadb replica wrote in a domain of its own", flavor: FlavorMariaDB, replica: "0-1-150,5-2-3", primary: "0-1-200", want: "5-2-3"},
		{name: "mariadb old primary returns with unreplicated tail", flavor: FlavorMariaDB, replica: "0-1-160", primary: "0-1-150,0-2-170", want: "0-1-151..160"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			replica, primary := gtidFor(t, tt.flavor, tt.replica), gtidFor(t, tt.flavor, tt.primary)
			got := Errant(replica, primary)
			want := tt.want
			if tt.flavor.IsMySQL() {
				want = mysqlText(want)
			}
			if got.String() != want {
				t.Errorf("Errant(%q, %q) = %q, want %q", tt.replica, tt.primary, got, want)
			}
			if got.IsEmpty() != (want == "") {
				t.Errorf("Errant(...).IsEmpty() = %v, want %v", got.IsEmpty(), want == "")
			}
			if clean := primary.Contains(replica); clean != got.IsEmpty() {
				t.Errorf("primary.Contains(replica) = %v but errant set is %q", clean, got)
			}
		})
	}
}

func TestGTIDMixedFlavours(t *testing.T) {
	my := gtidFor(t, FlavorMySQL84, "U1:1-5")
	maria := gtidFor(t, FlavorMariaDB, "0-1-5")
	myEmpty := gtidFor(t, FlavorMySQL84, "")
	mariaEmpty := gtidFor(t, FlavorMariaDB, "")
	tests := []struct {
		name string
		a, b GTIDSet
	}{
		{name: "mysql and mariadb", a: my, b: maria},
		{name: "mariadb and mysql", a: maria, b: my},
		{name: "empty mysql and mariadb", a: myEmpty, b: maria},
		{name: "mysql and empty mariadb", a: my, b: mariaEmpty},
		{name: "both empty, different flavours", a: myEmpty, b: mariaEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.a, tt.b
			if a.Compatible(b) || b.Compatible(a) {
				t.Errorf("Compatible = true, want false")
			}
			if a.Contains(b) || a.Equal(b) || a.Ahead(b) || b.Ahead(a) {
				t.Errorf("Contains %v Equal %v Ahead %v/%v, want all false", a.Contains(b), a.Equal(b), a.Ahead(b), b.Ahead(a))
			}
			if got := a.Subtract(b); got.String() != a.String() || got.Flavor() != a.Flavor() {
				t.Errorf("Subtract = %s %q, want the receiver %s %q", got.Flavor(), got, a.Flavor(), a)
			}
			if got := a.Union(b); got.String() != a.String() || got.Flavor() != a.Flavor() {
				t.Errorf("Union = %s %q, want the receiver %s %q", got.Flavor(), got, a.Flavor(), a)
			}
			if got := Errant(a, b); got.String() != a.String() {
				t.Errorf("Errant = %q, want the whole replica %q", got, a)
			}
		})
	}
}

func TestGTIDZeroValue(t *testing.T) {
	var zero GTIDSet
	sets := map[string]GTIDSet{
		"mysql":         gtidFor(t, FlavorMySQL84, "U1:1-5"),
		"mariadb":       gtidFor(t, FlavorMariaDB, "0-1-5"),
		"empty mysql":   gtidFor(t, FlavorMySQL84, ""),
		"empty mariadb": gtidFor(t, FlavorMariaDB, ""),
		"zero":          {},
	}
	if !zero.IsEmpty() || zero.Count() != 0 || zero.String() != "" || zero.Flavor() != FlavorUnknown || zero.IsMySQL() || zero.IsMariaDB() {
		t.Errorf("zero value: IsEmpty %v Count %d String %q Flavor %s", zero.IsEmpty(), zero.Count(), zero, zero.Flavor())
	}
	if zero.Summary() != "(none)" || zero.MariaDBPos() != "" {
		t.Errorf("zero value: Summary %q MariaDBPos %q", zero.Summary(), zero.MariaDBPos())
	}
	for name, s := range sets {
		t.Run(name, func(t *testing.T) {
			if !zero.Compatible(s) || !s.Compatible(zero) {
				t.Errorf("zero is not compatible with %q", s)
			}
			if !s.Contains(zero) {
				t.Errorf("%q does not contain the zero value", s)
			}
			if got := zero.Contains(s); got != s.IsEmpty() {
				t.Errorf("zero.Contains(%q) = %v", s, got)
			}
			if got := zero.Equal(s); got != s.IsEmpty() {
				t.Errorf("zero.Equal(%q) = %v", s, got)
			}
			if got := zero.Union(s); !got.Equal(s) || got.Flavor() != s.Flavor() {
				t.Errorf("zero.Union(%q) = %s %q, want the operand", s, got.Flavor(), got)
			}
			if got := s.Union(zero); !got.Equal(s) || got.Flavor() != s.Flavor() {
				t.Errorf("%q.Union(zero) = %s %q", s, got.Flavor(), got)
			}
			if got := s.Subtract(zero); !got.Equal(s) || got.Flavor() != s.Flavor() {
				t.Errorf("%q.Subtract(zero) = %s %q", s, got.Flavor(), got)
			}
			if got := zero.Subtract(s); !got.IsEmpty() {
				t.Errorf("zero.Subtract(%q) = %q", s, got)
			}
			if got := Errant(s, zero); !got.Equal(s) {
				t.Errorf("Errant(%q, zero) = %q", s, got)
			}
		})
	}
}

func TestGTIDCount(t *testing.T) {
	tests := []struct {
		name   string
		flavor Flavor
		in     string
		want   uint64
	}{
		{name: "mysql empty", flavor: FlavorMySQL84, in: "", want: 0},
		{name: "mysql one interval", flavor: FlavorMySQL84, in: "U1:1-100", want: 100},
		{name: "mysql holes and uuids", flavor: FlavorMySQL84, in: "U1:1-5:7:10-11,U2:3", want: 9},
		{name: "mysql tags count apart", flavor: FlavorMySQL84, in: "U1:1-5:t:1-5", want: 10},
		{name: "mysql largest", flavor: FlavorMySQL84, in: "U1:1-9223372036854775806", want: math.MaxInt64 - 1},
		{name: "mariadb one key", flavor: FlavorMariaDB, in: "0-1-1500", want: 1500},
		{name: "mariadb keys of one domain overcount", flavor: FlavorMariaDB, in: "0-1-100,0-2-150", want: 250},
		{name: "mariadb difference", flavor: FlavorMariaDB, in: "0-2-101..151", want: 51},
		{name: "mariadb whole seq space", flavor: FlavorMariaDB, in: "0-1-18446744073709551615", want: math.MaxUint64},
		{name: "mariadb saturates", flavor: FlavorMariaDB, in: "0-1-18446744073709551615,0-2-5", want: math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gtidFor(t, tt.flavor, tt.in).Count(); got != tt.want {
				t.Errorf("Count() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestGTIDSummary(t *testing.T) {
	tests := []struct {
		name   string
		flavor Flavor
		in     string
		want   string
	}{
		{name: "mysql empty", flavor: FlavorMySQL84, in: "", want: "(none)"},
		{name: "mysql one uuid", flavor: FlavorMySQL84, in: "U1:1-1234", want: "3e11fa47:1-1234"},
		{name: "mysql biggest source first", flavor: FlavorMySQL84, in: "U1:1-3,U2:1-1234,U3:1", want: "8d6f1b0a:1-1234 +2 more"},
		{name: "mysql tie goes to the first uuid", flavor: FlavorMySQL84, in: "U2:1-5,U1:1-5", want: "3e11fa47:1-5 +1 more"},
		{name: "mysql tagged", flavor: FlavorMySQL84, in: "U1:web:1-3", want: "3e11fa47:web:1-3"},
		{name: "mysql three intervals shown", flavor: FlavorMySQL84, in: "U1:1-5:7:9-10", want: "3e11fa47:1-5:7:9-10"},
		{name: "mysql many intervals elided", flavor: FlavorMySQL84, in: "U1:1-5:7:9:11-20", want: "3e11fa47:1-5:...:11-20"},
		{name: "mariadb empty", flavor: FlavorMariaDB, in: "", want: "(none)"},
		{name: "mariadb one key", flavor: FlavorMariaDB, in: "0-1-1500", want: "0-1-1500"},
		{name: "mariadb after a failover", flavor: FlavorMariaDB, in: "0-1-1500,0-2-1800", want: "0-2-1800 +1 more"},
		{name: "mariadb difference", flavor: FlavorMariaDB, in: "0-2-101..151", want: "0-2-101..151"},
		{name: "mariadb many ranges elided", flavor: FlavorMariaDB, in: "0-2-3,0-2-5..6,0-2-8..9,0-2-20..30", want: "0-2-3,...,0-2-20..30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gtidFor(t, tt.flavor, tt.in).Summary(); got != tt.want {
				t.Errorf("Summary() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGTIDMariaDBPos(t *testing.T) {
	tests := []struct {
		name   string
		flavor Flavor
		in     string
		want   string
	}{
		{name: "mysql has none", flavor: FlavorMySQL84, in: "U1:1-5", want: ""},
		{name: "empty", flavor: FlavorMariaDB, in: "", want: ""},
		{name: "one key", flavor: FlavorMariaDB, in: "0-1-100", want: "0-1-100"},
		{name: "highest seq of the domain wins", flavor: FlavorMariaDB, in: "0-1-100,0-2-150,0-3-120", want: "0-2-150"},
		{name: "one per domain, sorted", flavor: FlavorMariaDB, in: "2-7-9,0-1-100,0-2-50,1-3-7", want: "0-1-100,1-3-7,2-7-9"},
		{name: "difference set uses its last seq", flavor: FlavorMariaDB, in: "0-2-101..151,0-1-120", want: "0-2-151"},
		{name: "tie goes to the lower server_id", flavor: FlavorMariaDB, in: "0-2-100,0-1-100", want: "0-1-100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gtidFor(t, tt.flavor, tt.in).MariaDBPos(); got != tt.want {
				t.Errorf("MariaDBPos() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGTIDMarshalText(t *testing.T) {
	tests := []struct {
		name string
		set  GTIDSet
		want string
	}{
		{name: "zero value", set: GTIDSet{}, want: ""},
		{name: "empty mysql keeps its flavour", set: gtidFor(t, FlavorMySQL84, ""), want: "mysql:"},
		{name: "empty mariadb keeps its flavour", set: gtidFor(t, FlavorMariaDB, ""), want: "mariadb:"},
		{name: "mysql with tags", set: gtidFor(t, FlavorMySQL84, "U1:1-5:7:t:1,U2:3"), want: "mysql:" + mysqlText("U1:1-5:7:t:1,U2:3")},
		{name: "mariadb state", set: gtidFor(t, FlavorMariaDB, "0-1-150,0-2-100"), want: "mariadb:0-1-150,0-2-100"},
		{name: "mariadb difference", set: gtidFor(t, FlavorMariaDB, "0-2-101..151"), want: "mariadb:0-2-101..151"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := tt.set.MarshalText()
			if err != nil {
				t.Fatalf("MarshalText: %v", err)
			}
			if string(text) != tt.want {
				t.Errorf("MarshalText() = %q, want %q", text, tt.want)
			}
			var back GTIDSet
			if err := back.UnmarshalText(text); err != nil {
				t.Fatalf("UnmarshalText(%q): %v", text, err)
			}
			if !back.Equal(tt.set) || back.Flavor() != tt.set.Flavor() {
				t.Errorf("UnmarshalText(%q) = %s %q, want %s %q", text, back.Flavor(), back, tt.set.Flavor(), tt.set)
			}

			// Through JSON, as another package would store it.
			type record struct {
				Executed GTIDSet `json:"executed"`
			}
			blob, err := json.Marshal(record{Executed: tt.set})
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			var rec record
			if err := json.Unmarshal(blob, &rec); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", blob, err)
			}
			if !rec.Executed.Equal(tt.set) || rec.Executed.Flavor() != tt.set.Flavor() {
				t.Errorf("JSON round trip %s gave %s %q", blob, rec.Executed.Flavor(), rec.Executed)
			}
		})
	}
}

func TestGTIDUnmarshalTextErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "no prefix", in: "0-1-5"},
		{name: "unknown prefix", in: "postgres:0/16B3748"},
		{name: "bad mysql body", in: "mysql:0-1-5"},
		{name: "bad mariadb body", in: "mariadb:" + u1 + ":1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := gtidFor(t, FlavorMariaDB, "0-1-9")
			err := set.UnmarshalText([]byte(tt.in))
			if err == nil || !errors.Is(err, ErrInvalidGTIDSet) {
				t.Fatalf("UnmarshalText(%q) = %v, want an ErrInvalidGTIDSet error", tt.in, err)
			}
			if set.String() != "0-1-9" {
				t.Errorf("a failed UnmarshalText changed the set to %q", set)
			}
		})
	}
}

func TestGTIDOwnedByAndRestrictTo(t *testing.T) {
	my := gtidFor(t, FlavorMySQL84, "U1:1-10,U2:1-5,U2:tag:1-3,U3:7")
	if got, want := my.OwnedBy(u2, 0).String(), mysqlText("U2:1-5:tag:1-3"); got != want {
		t.Errorf("MySQL OwnedBy(u2) = %q, want %q", got, want)
	}
	if got := my.OwnedBy("", 0); !got.IsEmpty() {
		t.Errorf("MySQL OwnedBy(no uuid) = %q, want empty", got)
	}
	ma := gtidFor(t, FlavorMariaDB, "0-1-150,0-2-50,7-2-9,0-3-4")
	if got, want := ma.OwnedBy("", 2).String(), "0-2-50,7-2-9"; got != want {
		t.Errorf("MariaDB OwnedBy(server 2) = %q, want %q", got, want)
	}
	if got := ma.OwnedBy(u1, 0); !got.IsEmpty() {
		t.Errorf("MariaDB OwnedBy(server 0) = %q, want empty", got)
	}
	// RestrictTo keeps whole sources named by the other set, whatever its
	// ranges there: a rebuilt MariaDB replica's late transactions of the
	// primary are "0-1-*" beyond the primary's last known 0-1-100.
	late := gtidFor(t, FlavorMariaDB, "0-1-102").Subtract(gtidFor(t, FlavorMariaDB, "0-1-100,0-2-50"))
	if got := late.RestrictTo(gtidFor(t, FlavorMariaDB, "0-1-100")); !got.Equal(late) || got.IsEmpty() {
		t.Errorf("RestrictTo own source = %q, want %q", got, late)
	}
	if got := ma.RestrictTo(gtidFor(t, FlavorMariaDB, "0-2-1,0-9-1")).String(); got != "0-2-50" {
		t.Errorf("RestrictTo = %q, want 0-2-50", got)
	}
	if got := my.RestrictTo(ma); !got.IsEmpty() {
		t.Errorf("RestrictTo across flavours = %q, want empty", got)
	}
}
