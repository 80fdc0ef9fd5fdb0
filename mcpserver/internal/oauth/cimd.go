package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
// preferred by the MCP authorization specification): the client_id is an
// https URL, and the document it serves is the client's metadata. Fetching
// a URL a stranger names is a server-side request forgery risk, so the
// fetch refuses private and loopback addresses at dial time (after DNS, so
// rebinding cannot dodge it), follows no redirects, is bounded in time and
// size, and its result is cached.
const (
	cimdMaxBytes = 16 << 10
	cimdTimeout  = 5 * time.Second
	cimdTTL      = 10 * time.Minute
	cimdFailTTL  = time.Minute
	cimdMaxCache = 1000
)

var errNotCIMD = errors.New("not a client ID metadata document URL")

// isCIMDClientID reports whether id has the shape of a metadata document
// URL: https, a host, a path other than "/", no fragment, user info or dot
// segments.
func isCIMDClientID(id string) bool {
	if !strings.HasPrefix(id, "https://") || len(id) > maxRedirectURIBytes {
		return false
	}
	u, err := url.Parse(id)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(id, "#") {
		return false
	}
	if u.Path == "" || u.Path == "/" {
		return false
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

type cimdResolver struct {
	client *http.Client
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cimdEntry
}

type cimdEntry struct {
	client  *Client
	err     error
	expires time.Time
}

func newCIMDResolver(c *http.Client, now func() time.Time) *cimdResolver {
	if c == nil {
		c = safeHTTPClient()
	}
	return &cimdResolver{client: c, now: now, cache: map[string]cimdEntry{}}
}

// safeHTTPClient fetches only from public addresses.
func safeHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: cimdTimeout, Control: refusePrivateAddress}
	return &http.Client{
		Timeout: cimdTimeout,
		Transport: &http.Transport{
			Proxy:                  nil, // a proxy would dial on our behalf, past the check
			DialContext:            d.DialContext,
			TLSHandshakeTimeout:    cimdTimeout,
			ResponseHeaderTimeout:  cimdTimeout,
			MaxResponseHeaderBytes: 16 << 10,
			DisableKeepAlives:      true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// refusePrivateAddress is a net.Dialer Control hook: it runs with the
// resolved address, just before connecting.
func refusePrivateAddress(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("refusing non-IP address %q", host)
	}
	if !publicAddress(ip) {
		return fmt.Errorf("refusing to connect to non-public address %s", ip)
	}
	return nil
}

var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach private IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"), // 6to4 embeds arbitrary IPv4
}

func publicAddress(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return false
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// resolve returns the client a metadata document describes.
func (r *cimdResolver) resolve(ctx context.Context, id string) (*Client, error) {
	if !isCIMDClientID(id) {
		return nil, errNotCIMD
	}
	now := r.now()
	r.mu.Lock()
	e, ok := r.cache[id]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.client, e.err
	}
	c, err := r.fetch(ctx, id)
	e = cimdEntry{client: c, err: err, expires: now.Add(cimdTTL)}
	if err != nil {
		e.expires = now.Add(cimdFailTTL)
	}
	r.mu.Lock()
	if len(r.cache) >= cimdMaxCache {
		for k, v := range r.cache {
			if !now.Before(v.expires) || len(r.cache) >= cimdMaxCache {
				delete(r.cache, k)
			}
		}
	}
	r.cache[id] = e
	r.mu.Unlock()
	return c, err
}

// cimdDocument is the part of a metadata document this server reads.
type cimdDocument struct {
	ClientID string `json:"client_id"`
	RegistrationRequest
}

func (r *cimdResolver) fetch(ctx context.Context, id string) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, cimdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching client metadata document: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching client metadata document: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, cimdMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading client metadata document: %w", err)
	}
	if len(body) > cimdMaxBytes {
		return nil, errors.New("client metadata document is larger than 16 KiB")
	}
	var doc cimdDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errors.New("client metadata document is not a JSON object")
	}
	if doc.ClientID != id {
		return nil, errors.New("client metadata document names a different client_id")
	}
	// Such clients have no secret we could hold; private_key_jwt is not
	// supported, so they are public clients.
	if doc.TokenEndpointAuthMethod != "" && doc.TokenEndpointAuthMethod != AuthNone {
		return nil, errors.New("client metadata document clients must use token_endpoint_auth_method none")
	}
	doc.TokenEndpointAuthMethod = AuthNone
	c, err := clientFromMetadata(&doc.RegistrationRequest)
	if err != nil {
		return nil, err
	}
	c.ID = id
	if c.Name == "" {
		c.Name = id
	}
	return c, nil
}
