package httpconfig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits on what the client reads from a server.
const (
	maxJSONAnswer   = 16 << 20  // a GET /peers or /status answer
	maxErrorAnswer  = 64 << 10  // an error body
	maxDrain        = 256 << 10 // left-over body read to reuse the connection
	maxErrorMessage = 512       // bytes of a non-JSON error body kept in Message
	maxExcerpt      = 200       // bytes of an unexpected answer quoted in an error
)

// Client calls the HTTP API of other nodes. It is safe for concurrent use.
// Every method takes the base URL of a node's API, "http://host:port" or
// "https://host:port" (see ParseBaseURL), and returns a *StatusError for a
// non-2xx answer. Calls are bounded by ctx only.
type Client struct {
	hc      *http.Client
	tr      *http.Transport
	signer  *Signer // nil: requests are not signed
	signErr error   // the secret is unusable: every call fails with it
}

// NewClient returns a Client. tlsConfig (cloned; nil for the default) is used
// for https base URLs. With a non-empty secret every request is signed with
// the API key derived from secret and clusterID (see the package
// documentation, "Authentication"); the secret itself is never sent. The
// server must have the same secret and cluster ID. A secret shorter than 16
// bytes makes every call fail with an error that says so. The client keeps
// idle connections open for reuse; call Close when done with it.
func NewClient(tlsConfig *tls.Config, secret []byte, clusterID uint64) *Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil, // cluster traffic never goes through a proxy from the environment
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig.Clone(),
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
	}
	c := &Client{
		tr: tr,
		hc: &http.Client{
			Transport: tr,
			// Never follow redirects: the API has none, and a signature is
			// bound to one method and URI.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if len(secret) > 0 {
		c.signer, c.signErr = NewSigner(secret, clusterID)
	}
	return c
}

// Close closes the client's idle connections. The client stays usable.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// Peers calls GET /peers.
func (c *Client) Peers(ctx context.Context, base string) (PeersResponse, error) {
	var out PeersResponse
	err := c.doJSON(ctx, http.MethodGet, base, PathPeers, nil, &out)
	return out, err
}

// AddPeer calls POST /peers with p's id, host, raft_port, config_port,
// gossip_port, cluster_id and nonvoter (Suffrage is not sent) and returns
// the answering node's view once the change is committed. An empty Host
// lets the server use the address the request comes from. "nonvoter" is
// sent only when true; servers that predate it refuse it (400, unknown
// field).
func (c *Client) AddPeer(ctx context.Context, base string, p Peer) (PeersResponse, error) {
	req := addPeerRequest{
		ID:         p.ID,
		Host:       p.Host,
		RaftPort:   p.RaftPort,
		ConfigPort: p.ConfigPort,
		GossipPort: p.GossipPort,
		ClusterID:  p.ClusterID,
		NonVoter:   p.NonVoter,
	}
	var out PeersResponse
	err := c.doJSON(ctx, http.MethodPost, base, PathPeers, req, &out)
	return out, err
}

// RemovePeer calls DELETE /peers and returns once the removal is committed;
// an error matching ErrPeerNotFound if id is not a member.
func (c *Client) RemovePeer(ctx context.Context, base string, id uint64) error {
	var out struct {
		Removed uint64 `json:"removed"`
	}
	return c.doJSON(ctx, http.MethodDelete, base, PathPeers, idRequest{ID: id}, &out)
}

// Promote calls POST /peers/promote and returns once member id is a voter
// (the promotion is committed); an error matching ErrPeerNotFound if id is
// not a member.
func (c *Client) Promote(ctx context.Context, base string, id uint64) error {
	var out promoteResponse
	return c.doJSON(ctx, http.MethodPost, base, PathPromote, idRequest{ID: id}, &out)
}

// Status calls GET /status.
func (c *Client) Status(ctx context.Context, base string) (Status, error) {
	var out Status
	err := c.doJSON(ctx, http.MethodGet, base, PathStatus, nil, &out)
	return out, err
}

// Backup calls GET /snapshot and copies the backup the node writes to w.
// It returns the log index whose state the backup holds (the answer's
// TrailerBackupIndex trailer). An answer cut short (the node failed
// midway, or the connection broke) is an error; w then holds part of a
// backup, which InspectBackup and the restores refuse.
func (c *Client) Backup(ctx context.Context, base string, w io.Writer) (uint64, error) {
	resp, err := c.do(ctx, http.MethodGet, base, PathSnapshot, "", nil)
	if err != nil {
		return 0, err
	}
	defer drain(resp.Body)
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != contentTypeBackup {
		b, _ := readLimited(resp.Body, maxExcerpt)
		return 0, fmt.Errorf("%w: GET %s: Content-Type %q, want %s (body %q)", ErrUnexpectedAnswer, PathSnapshot,
			truncate(ct, 64), contentTypeBackup, excerpt(b))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return 0, fmt.Errorf("httpconfig: GET %s: %w", PathSnapshot, err)
	}
	index, err := strconv.ParseUint(resp.Trailer.Get(TrailerBackupIndex), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: GET %s: the answer has no valid %s trailer", ErrUnexpectedAnswer, PathSnapshot, TrailerBackupIndex)
	}
	return index, nil
}

// RestoreSnapshot calls POST /snapshot with the backup body holds, from its
// current offset to its end, and returns the log index whose state the
// backup holds once the node has restored it across the cluster. With a
// secret it reads body twice: first to hash it for the signature, then to
// send it. A backup the node refuses gives an error matching ErrInvalid
// whose message says why; nothing changed then.
func (c *Client) RestoreSnapshot(ctx context.Context, base string, body io.ReadSeeker) (uint64, error) {
	start, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, fmt.Errorf("httpconfig: POST %s: %w", PathSnapshot, err)
	}
	h := sha256.New()
	size, err := io.Copy(h, body)
	if err != nil {
		return 0, fmt.Errorf("httpconfig: POST %s: reading the backup: %w", PathSnapshot, err)
	}
	if _, err := body.Seek(start, io.SeekStart); err != nil {
		return 0, fmt.Errorf("httpconfig: POST %s: %w", PathSnapshot, err)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	// The body goes through a LimitReader: it must stop at the size that
	// was hashed even if the file grows, and net/http must not see the
	// caller's *os.File (it would close it).
	hdr := http.Header{}
	hdr.Set("Content-Type", contentTypeBackup)
	// The node answers a request it refuses (a bad signature, a body over
	// its limit) before reading the body: then the backup is not sent.
	hdr.Set("Expect", "100-continue")
	resp, err := c.send(ctx, http.MethodPost, base, PathSnapshot, hdr, io.LimitReader(body, size), size, sum)
	if err != nil {
		return 0, err
	}
	defer drain(resp.Body)
	b, err := readLimited(resp.Body, maxJSONAnswer)
	if err != nil {
		return 0, fmt.Errorf("httpconfig: POST %s: reading answer: %w", PathSnapshot, err)
	}
	var out restoreResponse
	if err := json.Unmarshal(b, &out); err != nil || !out.Restored {
		return 0, fmt.Errorf("%w: POST %s: answer %q", ErrUnexpectedAnswer, PathSnapshot, excerpt(b))
	}
	return out.BackupIndex, nil
}

// doJSON sends in (nil: no body) as JSON and decodes a 2xx answer into out.
func (c *Client) doJSON(ctx context.Context, method, base, path string, in, out any) error {
	var body []byte
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("httpconfig: %s %s: encoding request: %w", method, path, err)
		}
		body, ctype = b, contentTypeJSON
	}
	resp, err := c.do(ctx, method, base, path, ctype, body)
	if err != nil {
		return err
	}
	defer drain(resp.Body)
	b, err := readLimited(resp.Body, maxJSONAnswer)
	if err != nil {
		return fmt.Errorf("httpconfig: %s %s: reading answer: %w", method, path, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%w: %s %s: decoding answer: %v (Content-Type %q, body %q)", ErrUnexpectedAnswer,
			method, path, err, truncate(resp.Header.Get("Content-Type"), 64), excerpt(b))
	}
	return nil
}

// do sends one request and returns a 2xx response, whose body the caller
// must drain; any other status is read, closed and returned as a
// *StatusError.
func (c *Client) do(ctx context.Context, method, base, path, ctype string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hdr := http.Header{}
	if ctype != "" {
		hdr.Set("Content-Type", ctype)
	}
	return c.send(ctx, method, base, path, hdr, rd, int64(len(body)), sha256.Sum256(body))
}

// send is do with the headers hdr and a body of size bytes read from body
// (nil: none), whose SHA-256 is sum.
func (c *Client) send(ctx context.Context, method, base, path string, hdr http.Header, body io.Reader, size int64, sum [sha256.Size]byte) (*http.Response, error) {
	if c.signErr != nil {
		return nil, fmt.Errorf("httpconfig: %s %s: %w", method, path, c.signErr)
	}
	u, err := ParseBaseURL(base)
	if err != nil {
		return nil, err
	}
	u.Path = path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("httpconfig: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.signer != nil {
		req.Header.Set("Authorization", c.signer.Authorization(method, req.URL.RequestURI(), sum, time.Now()))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("httpconfig: %s %s: %w", method, u.Redacted(), ctxErr)
		}
		return nil, fmt.Errorf("httpconfig: %s: %w", method, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer drain(resp.Body)
	return nil, statusError(resp)
}

// statusError builds the *StatusError for a non-2xx response.
func statusError(resp *http.Response) *StatusError {
	se := &StatusError{Code: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorAnswer))
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		se.Message, se.LeaderID = eb.Error, eb.LeaderID
		return se
	}
	se.Foreign = true
	msg := strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
	switch {
	case msg == "":
		se.Message = http.StatusText(resp.StatusCode)
	case len(msg) > maxErrorMessage:
		se.Message = strings.ToValidUTF8(msg[:maxErrorMessage], "") + "..."
	default:
		se.Message = msg
	}
	return se
}

// excerpt returns the start of an answer's body for an error message: at
// most maxExcerpt bytes, valid UTF-8, "..." marking a cut.
func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > maxExcerpt {
		return strings.ToValidUTF8(s[:maxExcerpt], "") + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// readLimited reads all of r, failing if it holds more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("answer over %d bytes", limit)
	}
	return b, nil
}

// drain reads a bounded rest of body and closes it, so that the connection
// can be reused.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	_ = body.Close()
}

// ParseBaseURL parses and checks the base URL of a node's API:
// scheme http or https, a host with a port in 1..65535, no user info,
// query or fragment, and no path but "/". The returned URL has an empty
// path. Its errors are *BaseURLError.
func ParseBaseURL(s string) (*url.URL, error) {
	bad := func(why string) error { return &BaseURLError{URL: s, Reason: why} }
	u, err := url.Parse(s)
	if err != nil {
		return nil, bad(err.Error())
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, bad("scheme must be http or https")
	case u.Opaque != "":
		return nil, bad("want scheme://host:port")
	case u.User != nil:
		return nil, bad("user info not allowed")
	case u.Hostname() == "":
		return nil, bad("missing host")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, bad("query not allowed")
	case u.Fragment != "":
		return nil, bad("fragment not allowed")
	case u.Path != "" && u.Path != "/":
		return nil, bad("path not allowed")
	}
	if u.Port() == "" {
		return nil, bad("missing port")
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > 65535 {
		return nil, bad("port must be in 1..65535")
	}
	u.Path, u.RawPath = "", ""
	return u, nil
}

// BaseURLError is what ParseBaseURL finds wrong with a base URL.
type BaseURLError struct {
	URL    string // the URL as given
	Reason string // what is wrong with it, e.g. "fragment not allowed"
}

func (e *BaseURLError) Error() string {
	return fmt.Sprintf("httpconfig: bad API base URL %q: %s", truncate(e.URL, 256), e.Reason)
}
