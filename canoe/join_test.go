package canoe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/canoe-raft/canoe/httpconfig"
)

func TestJoinRefusal(t *testing.T) {
	long := strings.Repeat("y", 1000)
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, tt := range []struct {
		name string
		err  error
		want []string // nil: asking again may help
	}{
		{"connection refused", fmt.Errorf("httpconfig: POST: %w", dial), nil},
		{"timeout", fmt.Errorf("httpconfig: POST: %w", context.DeadlineExceeded), nil},
		{"no leader", &httpconfig.StatusError{Code: 503, Message: "no leader"}, nil},
		{"not leader", &httpconfig.StatusError{Code: 421}, nil},
		{"canoe failed", &httpconfig.StatusError{Code: 500, Message: "raft: shutdown"}, nil},
		{"proxy: backend down", &httpconfig.StatusError{Code: 502, Message: "<html>Bad Gateway</html>", Foreign: true}, nil},
		{"busy", &httpconfig.StatusError{Code: 429, Message: "slow down", Foreign: true}, nil},
		{"wrong secret", &httpconfig.StatusError{Code: 401, Message: "missing or wrong bearer token"}, []string{"401", "ClusterSecret", "missing or wrong bearer token"}},
		{"other cluster", &httpconfig.StatusError{Code: 409, Message: "belongs to ClusterID 7"}, []string{"409", "ClusterID 7"}},
		{"invalid request", &httpconfig.StatusError{Code: 400, Message: `unknown field "x"`}, []string{"400", "unknown field"}},
		{"removed member", &httpconfig.StatusError{Code: 410, Message: "removed"}, []string{"410"}},
		{"no route", &httpconfig.StatusError{Code: 404, Message: "no route for POST /peers"}, []string{"404", "no route"}},
		{"HTML 404", &httpconfig.StatusError{Code: 404, Message: "<html>" + long, Foreign: true}, []string{"not a canoe API", "404", "<html>yyy"}},
		{"HTML 401", &httpconfig.StatusError{Code: 401, Message: "<html>login</html>", Foreign: true}, []string{"not a canoe API", "401"}},
		{"501", &httpconfig.StatusError{Code: 501, Message: "Not Implemented", Foreign: true}, []string{"not a canoe API", "501"}},
		{"redirect", &httpconfig.StatusError{Code: 301, Message: "<a href=...>Moved</a>", Foreign: true}, []string{"not a canoe API", "301"}},
		{"undecodable answer", fmt.Errorf("%w: POST /peers: decoding answer", httpconfig.ErrUnexpectedAnswer), []string{"ConfigurationPort", "decoding answer"}},
		{"untrusted certificate", fmt.Errorf("httpconfig: POST: %w", &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}), []string{"TLS", "unknown authority"}},
		{"plain HTTP to https", fmt.Errorf("httpconfig: POST: %w", http.ErrSchemeMismatch), []string{"plain HTTP"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := joinRefusal("http://m:7001", tt.err)
			if tt.want == nil {
				if got != nil {
					t.Fatalf("got %v, want nil (ask again)", got)
				}
				return
			}
			if got == nil {
				t.Fatal("got nil, want a refusal")
			}
			for _, w := range append(tt.want, "http://m:7001") {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("%q does not mention %q", got, w)
				}
			}
			if strings.Count(got.Error(), "y") > maxQuote {
				t.Errorf("%q quotes more than %d bytes of the answer", got, maxQuote)
			}
		})
	}
}
