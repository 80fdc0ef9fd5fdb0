package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
)

// RegistrationRequest is the client metadata of RFC 7591 §2 that this
// server uses; other fields are accepted and ignored.
type RegistrationRequest struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	ApplicationType         string   `json:"application_type,omitempty"`
}

// RegistrationResponse is the RFC 7591 §3.2.1 answer.
type RegistrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	ApplicationType         string   `json:"application_type"`
}

// metadataError is an RFC 7591 §3.2.2 error.
type metadataError struct{ code, desc string }

func (e *metadataError) Error() string { return e.code + ": " + e.desc }

func invalidMetadata(format string, a ...any) error {
	return &metadataError{"invalid_client_metadata", fmt.Sprintf(format, a...)}
}

func (s *Server) handleRegister(c *echo.Context) error {
	if !s.registerLimit.allow(c.RealIP(), s.now()) {
		c.Response().Header().Set("Retry-After", "60")
		return oauthError(c, http.StatusTooManyRequests, "temporarily_unavailable", "too many registrations from this address; try again in a minute")
	}
	ct := c.Request().Header.Get("Content-Type")
	if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
		return oauthError(c, http.StatusBadRequest, "invalid_client_metadata", "the body must be application/json")
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxRegistrationBytes+1))
	if err != nil {
		return oauthError(c, http.StatusBadRequest, "invalid_client_metadata", "could not read the body")
	}
	if len(body) > maxRegistrationBytes {
		return oauthError(c, http.StatusRequestEntityTooLarge, "invalid_client_metadata", "client metadata is larger than 64 KiB")
	}
	var req RegistrationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return oauthError(c, http.StatusBadRequest, "invalid_client_metadata", "the body is not a JSON object of client metadata")
	}
	client, err := clientFromMetadata(&req)
	var me *metadataError
	if errors.As(err, &me) {
		return oauthError(c, http.StatusBadRequest, me.code, me.desc)
	}
	if err != nil {
		return s.serverError(c, err)
	}
	client.ID = uuid.NewString()
	client.CreatedAt = s.now().UTC()
	var secret string
	if !client.Public() {
		secret = randomToken()
		client.SecretHash = hashToken(secret)
	}
	if err := s.store.CreateClient(c.Request().Context(), client); err != nil {
		return s.serverError(c, err)
	}
	s.log.InfoContext(c.Request().Context(), "client registered", "client_id", client.ID, "name", client.Name, "auth", client.TokenEndpointAuthMethod)
	resp := RegistrationResponse{
		ClientID:                client.ID,
		ClientSecret:            secret,
		ClientIDIssuedAt:        client.CreatedAt.Unix(),
		RedirectURIs:            client.RedirectURIs,
		TokenEndpointAuthMethod: client.TokenEndpointAuthMethod,
		GrantTypes:              client.GrantTypes,
		ResponseTypes:           []string{"code"},
		ClientName:              client.Name,
		ClientURI:               client.ClientURI,
		Scope:                   client.Scope,
		ApplicationType:         client.ApplicationType,
	}
	if secret != "" {
		never := int64(0) // RFC 7591: 0 means the secret does not expire
		resp.ClientSecretExpiresAt = &never
	}
	return noStoreJSON(c, http.StatusCreated, resp)
}

// clientFromMetadata validates registration metadata (also that of a Client
// ID Metadata Document) and fills in the defaults.
func clientFromMetadata(req *RegistrationRequest) (*Client, error) {
	if len(req.RedirectURIs) == 0 {
		return nil, &metadataError{"invalid_redirect_uri", "redirect_uris is required"}
	}
	if len(req.RedirectURIs) > maxRedirectURIs {
		return nil, &metadataError{"invalid_redirect_uri", fmt.Sprintf("at most %d redirect_uris", maxRedirectURIs)}
	}
	native := false
	for _, u := range req.RedirectURIs {
		if err := ValidateRedirectURI(u); err != nil {
			return nil, &metadataError{"invalid_redirect_uri", err.Error()}
		}
		if !strings.HasPrefix(u, "https:") {
			native = true
		}
	}
	c := &Client{RedirectURIs: slices.Compact(slices.Clone(req.RedirectURIs))}

	c.TokenEndpointAuthMethod = req.TokenEndpointAuthMethod
	switch c.TokenEndpointAuthMethod {
	case "":
		c.TokenEndpointAuthMethod = AuthClientSecretBasic // RFC 7591 §2 default
	case AuthNone, AuthClientSecretBasic, AuthClientSecretPost:
	default:
		return nil, invalidMetadata("token_endpoint_auth_method must be none, client_secret_basic or client_secret_post")
	}

	// RFC 7591's default is authorization_code alone; MCP clients almost
	// always want refresh tokens too, and asking for them costs nothing.
	c.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
	if len(req.GrantTypes) > 0 {
		c.GrantTypes = nil
		for _, g := range req.GrantTypes {
			if g != GrantAuthorizationCode && g != GrantRefreshToken {
				return nil, invalidMetadata("grant_types may contain only authorization_code and refresh_token")
			}
			if !slices.Contains(c.GrantTypes, g) {
				c.GrantTypes = append(c.GrantTypes, g)
			}
		}
		if !slices.Contains(c.GrantTypes, GrantAuthorizationCode) {
			return nil, invalidMetadata("grant_types must include authorization_code")
		}
	}
	for _, rt := range req.ResponseTypes {
		if rt != "code" {
			return nil, invalidMetadata("response_types may contain only code")
		}
	}

	name := strings.TrimSpace(req.ClientName)
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxClientNameChars {
		return nil, invalidMetadata("client_name must be at most %d characters", maxClientNameChars)
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f {
			return nil, invalidMetadata("client_name must not contain control characters")
		}
	}
	c.Name = name

	if req.ClientURI != "" {
		u, err := url.Parse(req.ClientURI)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(req.ClientURI) > maxRedirectURIBytes {
			return nil, invalidMetadata("client_uri must be an http(s) URL")
		}
		c.ClientURI = req.ClientURI
	}
	if req.Scope != "" {
		sc, err := parseScope(req.Scope)
		if err != nil {
			return nil, invalidMetadata("scope may contain only memories:read, memories:write and memories:admin")
		}
		c.Scope = joinScope(sc)
	}

	c.ApplicationType = req.ApplicationType
	switch c.ApplicationType {
	case "":
		c.ApplicationType = "web"
		if native {
			c.ApplicationType = "native"
		}
	case "web", "native":
	default:
		return nil, invalidMetadata("application_type must be web or native")
	}
	return c, nil
}
