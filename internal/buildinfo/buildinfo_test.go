package buildinfo

import "testing"

func TestVersion(t *testing.T) {
	const rev = "c69fa7f0123456789abcdef0123456789abcdef0"
	for _, c := range []struct {
		name     string
		module   string
		settings map[string]string
		want     string
	}{
		{"a release installed with go install", "v1.2.0", map[string]string{"vcs.revision": rev}, "v1.2.0"},
		{"a checkout built with go build", "(devel)", map[string]string{"vcs.revision": rev, "vcs.modified": "false"}, "dev+c69fa7f01234"},
		{"a modified checkout", "(devel)", map[string]string{"vcs.revision": rev, "vcs.modified": "true"}, "dev+c69fa7f01234-dirty"},
		// Go 1.24+ derives a pseudo-version from VCS; a dirty one says so.
		{"a modified checkout's pseudo-version", "v0.0.0-20261207144000-c69fa7f01234+dirty", map[string]string{"vcs.revision": rev, "vcs.modified": "true"}, "dev+c69fa7f01234-dirty"},
		{"nothing recorded", "(devel)", map[string]string{}, "dev"},
		{"a short revision", "", map[string]string{"vcs.revision": "abc"}, "dev+abc"},
	} {
		if got := fromBuild(c.module, c.settings); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if got := Version("1.4.0-3-gc69fa7f"); got != "1.4.0-3-gc69fa7f" {
		t.Errorf("a stamped version: %q", got)
	}
	// A test binary records no VCS revision: the unstamped name.
	if got := Version(""); got == "" {
		t.Errorf("Version(\"\") is empty")
	}
}
