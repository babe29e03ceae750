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
