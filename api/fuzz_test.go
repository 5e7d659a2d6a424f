package api_test

import (
	"encoding/json"
	"testing"

	"github.com/regentdb/regent/api"
)

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"db1:7443", "https://[::1]:7443", "http://x:1/", "ftp://x", "://", "https://u@h:1", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := api.ParseEndpoint(s)
		if err != nil {
			return
		}
		if u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Path != "" {
			t.Fatalf("%q parsed to %v", s, u)
		}
		// What it returns parses again to itself.
		again, err := api.ParseEndpoint(u.String())
		if err != nil || again.String() != u.String() {
			t.Fatalf("%q -> %v -> %v %v", s, u, again, err)
		}
	})
}

func FuzzRequestJSON(f *testing.F) {
	for _, s := range []string{`{"to":"db2","wait_for_writes":"1s"}`, `{"wait_for_writes":1.5}`, `{"wait_for_writes":-1e19}`,
		`{"to":"db3","force":true}`, `{"instance":"db1"}`, `{"id":"a4","raft_addr":"h:1","api_addr":"[::1]:2"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Decoding and validating never panic, and a request that passes
		// Validate survives a round trip.
		var sw api.SwitchoverRequest
		if json.Unmarshal(b, &sw) == nil && sw.Validate() == nil {
			out, err := json.Marshal(sw)
			if err != nil {
				t.Fatal(err)
			}
			var back api.SwitchoverRequest
			if err := json.Unmarshal(out, &back); err != nil || back != sw {
				t.Fatalf("%s -> %s -> %+v %v", b, out, back, err)
			}
		}
		var fo api.FailoverRequest
		_ = json.Unmarshal(b, &fo)
		_ = fo.Validate()
		var am api.AddMemberRequest
		_ = json.Unmarshal(b, &am)
		_ = am.Validate()
		var rj api.RejoinRequest
		_ = json.Unmarshal(b, &rj)
		_ = rj.Validate()
	})
}
