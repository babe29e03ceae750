// Package browsertest drives the demo's dashboard in headless Chromium. It
// is a module of its own so that chromedp, which only this test needs, is
// not in the module graph of canoe's users; it builds the demo from the
// repository root and talks to it over HTTP and through the browser, and
// imports no canoe package.
//
// Run it from this directory: go test -race ./... (CI's .ci/run does). It
// needs Chromium (Debian: apt-get install -y chromium) and skips saying so
// without it; CANOE_CHROMIUM names another binary. Screenshots go to the
// directory in CANOE_TEST_ARTIFACTS, else to the test's temporary directory;
// the test logs their paths.
package browsertest
