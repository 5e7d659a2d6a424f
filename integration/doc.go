// Package integration holds the end-to-end tests of the binaries: three real
// regent processes over real database servers, driven only through
// regentctl (integration/sandbox starts them; `make demo` runs the same
// sandbox for people). Nothing imports it.
package integration
