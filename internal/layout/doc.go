// Package layout holds no code: its test checks that the project's packages
// import one another only along the arrows README "Layout" draws.
package layout
