package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestConnectionFlags checks the connection flags that need no node: each
// bad combination is a usage error (exit 2) that says what is wrong, and
// a flag wins over its environment variable.
func TestConnectionFlags(t *testing.T) {
	env := map[string]string{"CANOE_ADDR": "ftp://bad:1"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, `-addr "ftp://bad:1": scheme must be http or https`},
		{[]string{"status", "-addr", "http://h:1", "-ca", "ca.pem"}, "are for an https -addr"},
		{[]string{"status", "-addr", "https://h:1", "-cert", "c.pem"}, "-cert and -key go together"},
		{[]string{"status", "-addr", "https://h:1", "-ca", "/nonexistent/ca.pem"}, "-ca: open /nonexistent/ca.pem"},
		{[]string{"status", "-addr", "http://h:1", "-timeout", "-1s"}, "-timeout -1s must be positive"},
		{[]string{"status", "-addr", "http://h:1", "-secret", "0123456789abcdefX"}, "(-secret) is 17 bytes"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr, lookup)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("canoe %q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// TestFamilies: a command registered under a two-word name runs with the
// arguments after both words, and shows in the command list.
func TestFamilies(t *testing.T) {
	var got []string
	register(&command{name: "zz sub", args: "FILE", summary: "a family member", setup: noFlags(func(_ context.Context, _ *env, args []string) error {
		got = args
		return nil
	})})
	t.Cleanup(func() { delete(commands, "zz sub") })
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"zz", "sub", "-json", "f.bin"}, &stdout, &stderr, func(string) (string, bool) { return "", false }); code != exitOK || len(got) != 1 || got[0] != "f.bin" {
		t.Errorf("canoe zz sub -json f.bin: exit %d, args %q, stderr %q", code, got, stderr.String())
	}
	if code := run(context.Background(), []string{"zz", "other"}, &stdout, &stderr, func(string) (string, bool) { return "", false }); code != exitUsage {
		t.Errorf("canoe zz other: exit %d, want 2", code)
	}
	stdout.Reset()
	run(context.Background(), []string{"help"}, &stdout, &stderr, nil)
	if !strings.Contains(stdout.String(), "zz sub FILE") {
		t.Errorf("the command list misses the family member:\n%s", stdout.String())
	}
}
