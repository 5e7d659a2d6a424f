//go:build system

package system

import (
	"debug/elf"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/integration/testpki"
)

// baseImage is the image scripts/build-image.sh makes: a clean Debian
// bookworm root (debootstrap), which is also the release image's base on
// machines that cannot pull.
const baseImage = "regent-base:bookworm"

// make release's pieces, as an operator gets them: scripts/release.sh
// builds both architectures' binaries and packages and the image; the amd64
// package installs into a clean Debian root, lays out /etc/regent and
// /var/lib/regent with the agent's account, and its agent checks the
// shipped example configuration; the image runs the agent as its own user.
func TestReleasePackagesAndImage(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	prepare(t, root) // the base image
	dist := t.TempDir()
	version := "0.9.0-test." + time.Now().UTC().Format("150405")
	cmd := exec.Command(filepath.Join(root, "scripts", "release.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION="+version, "REGENT_IMAGE_BASE="+baseImage)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", "regent:"+version).Run() })

	debver := strings.ReplaceAll(version, "-", "+")
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		for _, bin := range []string{"regent", "regentctl"} {
			f, err := elf.Open(filepath.Join(dist, "linux_"+arch, bin))
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != machine {
				t.Errorf("linux_%s/%s is built for %v", arch, bin, f.Machine)
			}
			f.Close()
		}
		deb := filepath.Join(dist, "regent_"+debver+"_"+arch+".deb")
		out, err := exec.Command("dpkg-deb", "--field", deb, "Package", "Version", "Architecture").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Version: "+debver) || !strings.Contains(string(out), "Architecture: "+arch) {
			t.Fatalf("dpkg-deb --field %s: %v\n%s", deb, err, out)
		}
	}

	// The example configuration as a host would have it: db1's, with the
	// certificates and tokens it names.
	etc := t.TempDir()
	ca, err := testpki.NewCA("release test CA")
	if err != nil {
		t.Fatal(err)
	}
	mysqlCA, err := testpki.NewCA("release test MySQL CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue(testpki.Spec{CN: "db1", IPs: []net.IP{net.ParseIP("10.0.0.11")}, DNSNames: []string{"db1"},
		URIs: []string{"urn:regent:agent:db1"}, NotAfter: time.Now().Add(365 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"tls/regent-ca.crt": ca.PEM, "tls/regent.crt": cert, "tls/regent.key": key, "tls/mysql-ca.crt": mysqlCA.PEM,
		"tokens":      readFile(t, filepath.Join(root, "deploy", "regent", "tokens.example")),
		"agent-token": readFile(t, filepath.Join(root, "deploy", "regent", "agent-token.example")),
	} {
		p := filepath.Join(etc, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := `set -e
dpkg -i /dist/regent_*_amd64.deb >/dev/null
regent version
regentctl version | head -n1
id regent
stat -c '%n %U:%G %a' /etc/regent /etc/regent/tls /var/lib/regent
test -f /lib/systemd/system/regent.service
cp /usr/share/doc/regent/examples/regent.yaml /etc/regent/regent.yaml
cp -r /fixture/. /etc/regent/
chown -R root:regent /etc/regent
chmod 640 /etc/regent/regent.yaml /etc/regent/tokens /etc/regent/agent-token /etc/regent/tls/regent.key
cp /usr/share/doc/regent/examples/regent.env.example /etc/regent/regent.env
chmod 600 /etc/regent/regent.env
(set -a; . /etc/regent/regent.env; runuser -u regent -- regent check-config /etc/regent/regent.yaml)
`
	out, err := exec.Command("docker", "run", "--rm", "--network", "none",
		"-v", dist+":/dist:ro", "-v", etc+":/fixture:ro", baseImage, "bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("installing the package into a clean Debian root: %v\n%s", err, out)
	}
	for _, want := range []string{
		"regent " + version, "regentctl " + version, "uid=", "(regent)",
		"/etc/regent root:regent 750", "/etc/regent/tls root:regent 750", "/var/lib/regent regent:regent 750",
		"/etc/regent/regent.yaml: configuration is valid",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the installed package: no %q in\n%s", want, out)
		}
	}

	// The image: the agent as its own user, the version stamped.
	out, err = exec.Command("docker", "run", "--rm", "--network", "none", "regent:"+version, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "regent "+version {
		t.Fatalf("docker run regent:%s version: %v\n%s", version, err, out)
	}
	out, err = exec.Command("docker", "run", "--rm", "--network", "none", "--entrypoint", "id", "regent:"+version).CombinedOutput()
	if err != nil || !regexp.MustCompile(`uid=\d+\(regent\)`).Match(out) {
		t.Fatalf("the image's user: %v\n%s", err, out)
	}
	out, err = exec.Command("docker", "run", "--rm", "--network", "none", "regent:"+version).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "/etc/regent/regent.yaml") {
		t.Fatalf("the image without a configuration should stop, naming the file it read: %v\n%s", err, out)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
