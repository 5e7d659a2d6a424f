package api

import "strconv"

// OnOff prints a server switch for people: ON, OFF, or ? when unknown.
func OnOff(b *bool) string {
	switch {
	case b == nil:
		return "?"
	case *b:
		return "ON"
	}
	return "OFF"
}

// LagText prints replication lag for people: "3s", "NULL" when the server
// reports none (a thread stopped), or none when r is nil (not a replica).
func (r *Replication) LagText(none string) string {
	if r == nil {
		return none
	}
	if r.LagSeconds == nil {
		return "NULL"
	}
	return strconv.FormatFloat(*r.LagSeconds, 'f', -1, 64) + "s"
}
