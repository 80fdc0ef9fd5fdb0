package oauth

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// Limits on what clients may register and send.
const (
	maxRedirectURIs      = 10
	maxRedirectURIBytes  = 2000
	maxClientNameChars   = 200
	maxStateBytes        = 1024
	maxQueryBytes        = 8 << 10
	maxFormBytes         = 64 << 10
	maxRegistrationBytes = 64 << 10
)

// deniedSchemes can never be redirect targets: they run code in the
// browser, read local files, or hand the code to a third party.
var deniedSchemes = map[string]bool{
	"javascript": true, "data": true, "file": true, "vbscript": true, "about": true,
	"blob": true, "filesystem": true, "view-source": true, "ftp": true, "ws": true,
	"wss": true, "mailto": true, "tel": true, "sms": true, "intent": true,
}

// ValidateRedirectURI checks a redirect URI a client registers:
//   - https with a host, or http only on a loopback host (localhost,
//     127.0.0.1, [::1]) for native apps (RFC 8252 §7.3);
//   - or a private-use scheme of a native app (RFC 8252 §7.1), such as
//     com.example.app:/callback or cursor://callback, never one of the
//     schemes that execute or read anything (javascript:, data:, file: …);
//   - no fragment (RFC 6749 §3.1.2), no user info, no wildcard, no
//     control characters or spaces, at most 2000 bytes.
func ValidateRedirectURI(raw string) error {
	if raw == "" {
		return errors.New("redirect URI is empty")
	}
	if len(raw) > maxRedirectURIBytes {
		return errors.New("redirect URI is too long")
	}
	for _, r := range raw {
		if r <= ' ' || r == 0x7f || r == '\\' || r > 0x7e {
			return errors.New("redirect URI contains spaces, control or non-ASCII characters")
		}
	}
	if strings.Contains(raw, "#") {
		return errors.New("redirect URI must not contain a fragment")
	}
	if strings.Contains(raw, "*") {
		return errors.New("redirect URI must not contain wildcards")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("redirect URI is not a valid URI")
	}
	if u.Scheme == "" || u.Opaque != "" && !strings.HasPrefix(u.Opaque, "/") {
		return errors.New("redirect URI must be absolute")
	}
	scheme := u.Scheme // url.Parse lower-cases it
	if u.User != nil {
		return errors.New("redirect URI must not contain user information")
	}
	switch scheme {
	case "https":
		if u.Host == "" || u.Hostname() == "" {
			return errors.New("https redirect URI needs a host")
		}
		return nil
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return errors.New("http redirect URIs are allowed only for loopback hosts (localhost, 127.0.0.1, [::1]); use https")
		}
		return nil
	}
	if deniedSchemes[scheme] {
		return errors.New("redirect URI scheme " + scheme + ": is not allowed")
	}
	// A private-use scheme: a native app's callback. It must name
	// something to call back; an empty URI like "myapp:" is meaningless.
	if u.Host == "" && u.Path == "" && u.Opaque == "" {
		return errors.New("redirect URI with a private-use scheme needs a path")
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))
}

// redirectMatches reports whether the redirect_uri of a request equals one
// registered. The comparison is a simple string comparison (OAuth 2.1
// §4.1.1), with the single exception RFC 8252 §7.3 requires: for an http
// loopback IP literal the port may differ, because native apps bind an
// ephemeral port at the time of the request.
func redirectMatches(registered []string, got string) bool {
	for _, r := range registered {
		if r == got {
			return true
		}
	}
	gu, err := url.Parse(got)
	if err != nil || gu.Scheme != "http" {
		return false
	}
	gh := gu.Hostname()
	if gh != "127.0.0.1" && gh != "::1" {
		return false
	}
	for _, r := range registered {
		ru, err := url.Parse(r)
		if err != nil || ru.Scheme != "http" || ru.Hostname() != gh {
			continue
		}
		if ru.EscapedPath() == gu.EscapedPath() && ru.RawQuery == gu.RawQuery && gu.Fragment == "" && gu.User == nil {
			return true
		}
	}
	return false
}

// redirectHost is what the consent page shows as where the browser will
// be sent: the host (with port) for web URIs, the scheme for native apps.
func redirectHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return u.Host
	}
	return u.Scheme + ": (an app on this device)"
}
