//go:build race

package browsertest

// raceEnabled: the test runs with -race, so the demo it drives is built
// with -race too.
const raceEnabled = true
