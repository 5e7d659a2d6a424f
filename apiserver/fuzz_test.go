package apiserver_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/apiserver/apiservertest"
)

// FuzzRequests sends arbitrary bodies, paths and query strings to every
// route that takes input, as an admin: the answer must never be a 5xx
// (the fake backend never fails on its own) and every 4xx must be JSON.
func FuzzRequests(f *testing.F) {
	targets := []struct{ method, path string }{
		{"POST", "/v1/clusters/main/switchover"},
		{"POST", "/v1/clusters/main/failover"},
		{"POST", "/v1/clusters/main/pause"},
		{"POST", "/v1/clusters/main/resume"},
		{"POST", "/v1/clusters/main/rejoin"},
		{"POST", "/v1/clusters/main/instances/db3/repoint"},
		{"PUT", "/v1/clusters/main/config"},
		{"POST", "/v1/clusters/main/instances"},
		{"POST", "/v1/clusters"},
		{"DELETE", "/v1/clusters/"},
		{"POST", "/v1/members"},
		{"DELETE", "/v1/members/"},
		{"GET", "/v1/clusters/"},
		{"GET", "/v1/clusters/main/history"},
		{"GET", "/v1/clusters/main/operations/"},
		{"GET", "/v1/clusters"},
	}
	for i := range targets {
		f.Add(uint8(i), "", `{}`)
	}
	f.Add(uint8(0), "", `{"to":"db2","wait_for_writes":"1s"}`)
	f.Add(uint8(0), "", `{"to":"db2","wait_for_writes":1e308}`)
	f.Add(uint8(1), "", `{"to":"db3","force":true}`)
	f.Add(uint8(1), "", `{"to":null,"force":null}`)
	f.Add(uint8(2), "", `{"reason":"\ud800"}`)
	f.Add(uint8(5), "", `{"id":"a4","raft_addr":"[::1]:7000","api_addr":"h:99999"}`)
	f.Add(uint8(6), "a3", ``)
	f.Add(uint8(7), "main%2F..", ``)
	f.Add(uint8(8), "?limit=-1", ``)
	f.Add(uint8(9), "op-0006?follow=2", ``)
	f.Add(uint8(16), "?after=c1&limit=1&problems_only=1", ``)
	f.Add(uint8(0), "", "\xef\xbb\xbf{}")
	f.Add(uint8(0), "", `{"to":"db2"}{"to":"db3"}`)
	f.Add(uint8(3), "", `[`)

	fake := apiservertest.NewFakeBackend()
	f.Cleanup(fake.Close)
	// Scripted operations end at once, so fuzzing does not pile them up.
	fake.SwitchoverSteps, fake.FailoverSteps = nil, nil
	s, err := apiserver.New(apiserver.Config{AgentID: "a1", Backend: fake, Auth: apiserver.AuthConfig{Tokens: apiservertest.Tokens()}, MaxBodyBytes: 4096})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, which uint8, suffix, body string) {
		tg := targets[int(which)%len(targets)]
		target := tg.path + suffix
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") {
			return
		}
		req, err := http.NewRequest(tg.method, "http://agent"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+apiservertest.AdminToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s %s body %q: %d %s", tg.method, target, body, res.StatusCode, b)
		}
		if res.StatusCode >= 400 && !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: %d answer is not JSON: %s", tg.method, target, res.StatusCode, b)
		}
	})
}
