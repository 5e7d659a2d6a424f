package config

import (
	"os"
	"strings"
	"testing"
)

// Every key README "Configuration" shows in its example exists: the example
// goes through the same strict decoding as regent.yaml, which refuses an
// unknown key by name. (Its values are placeholders, so validation errors
// about files and addresses are expected; an unknown key is not.)
func TestREADMEConfigurationKeysExist(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	section := readme[strings.Index(readme, "\n## Configuration\n"):]
	start := strings.Index(section, "```yaml\n")
	if start < 0 {
		t.Fatal(`README "Configuration" has no yaml example`)
	}
	example := section[start+len("```yaml\n"):]
	example = example[:strings.Index(example, "```")]
	if !strings.Contains(example, "clusters:") || !strings.Contains(example, "automatic_failover:") {
		t.Fatalf("the example found is not the configuration's:\n%s", example)
	}
	_, err = Parse([]byte(example))
	if err == nil {
		t.Fatal("the README example validated whole, placeholders included: the test no longer shows it was decoded")
	}
	if strings.Contains(err.Error(), "unknown key") || strings.Contains(err.Error(), "cannot unmarshal") {
		t.Fatalf("README's configuration example has a key or value the code does not know: %v", err)
	}
	// A misspelt key in the same example is caught (the test can fail).
	if _, err := Parse([]byte(strings.Replace(example, "fast_path:", "fastpath:", 1))); err == nil || !strings.Contains(err.Error(), `unknown key "fastpath"`) {
		t.Fatalf("a misspelt key: %v", err)
	}
}
