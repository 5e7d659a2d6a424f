// Package apiservertest provides FakeBackend, a hand-written in-memory
// apiserver.Backend for tests of the HTTP server, the API client and
// regentctl. It runs no database and no Raft: operations are scripted steps
// played by a goroutine the fake owns (Close waits for it).
package apiservertest
