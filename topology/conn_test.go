package topology

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestConnConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  ConnConfig
		want string
	}{
		{"no address", ConnConfig{User: "regent"}, "no address"},
		{"no port", ConnConfig{Addr: "db1", User: "regent"}, "want host:port"},
		{"no user", ConnConfig{Addr: "db1:3306"}, "no user"},
		{"socket only", ConnConfig{Socket: "/run/mysqld/mysqld.sock", User: "regent"}, ""},
		{"tcp", ConnConfig{Addr: "db1:3306", User: "regent"}, ""},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestPasswordsStayOutOfLogsAndText(t *testing.T) {
	cfg := ConnConfig{Addr: "db1:3306", User: "regent", Password: "hunter2-secret"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("connecting", "conn", cfg)
	text := buf.String() + fmt.Sprint(cfg) + fmt.Sprintf("%v %+v %s", cfg, cfg, cfg)
	if strings.Contains(text, "hunter2") {
		t.Fatalf("password leaked: %s", text)
	}
	if !strings.Contains(buf.String(), "db1:3306") {
		t.Fatalf("log lost the address: %s", buf.String())
	}
}

func TestClientTLSErrors(t *testing.T) {
	if _, err := ClientTLS(TLSFiles{CertFile: "/x.pem"}); err == nil || !strings.Contains(err.Error(), "together") {
		t.Errorf("cert without key: %v", err)
	}
	if _, err := ClientTLS(TLSFiles{CAFile: "/nonexistent/ca.pem"}); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Errorf("missing CA: %v", err)
	}
}
