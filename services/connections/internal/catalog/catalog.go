// Package catalog holds the connector catalog: which apps connections can be
// made to, how they authenticate, and which app instance fields they need.
// The catalog is declarative: an embedded default plus an optional operator
// file whose entries add to or replace the defaults by name.
package catalog

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/hosts"
)

//go:embed connectors.yaml
var embedded []byte

// Connector is one app in the catalog.
type Connector struct {
	Name               string       `yaml:"name"`
	DisplayName        string       `yaml:"display_name"`
	Description        string       `yaml:"description"`
	AuthTypeNames      []string     `yaml:"auth_types"`
	DefaultBaseURL     string       `yaml:"default_base_url"`
	InstanceParameters []Parameter  `yaml:"instance_parameters"`
	AllowsSecondary    bool         `yaml:"allows_secondary_connection"`
	OAuth2             *OAuth2      `yaml:"oauth2"`
	OAuth1             *OAuth1      `yaml:"oauth1"`
	TestRequest        *TestRequest `yaml:"test_request"`
	// AllowedHosts are the hosts the connector's credentials may be sent to
	// (see package hosts): "api.github.com", "*.zendesk.com",
	// "{subdomain}.zendesk.com" (the connection's subdomain), or "*" for
	// any host (the generic HTTP connector: each connection is then bound to
	// its own base_url's host). Left out, they are the hosts of the entry's
	// URLs (default_base_url and the OAuth endpoints).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// CredentialPlacement is how workers put an API key (auth types api_key
	// and custom_header) on requests to the app. Left out: api_key goes as
	// "Authorization: Bearer <key>", custom_header in the X-API-Key header.
	CredentialPlacement *Placement `yaml:"credential_placement"`
	// PrivateNetwork allows the app on a private network (loopback, RFC
	// 1918, link-local addresses): the broker's proxy connects to no such
	// address for other connectors, whatever a connection's base URL says.
	PrivateNetwork bool `yaml:"private_network"`
	// CheckInterval is how often an active connection is verified with the
	// test request ("24h"); left out, the service's -check-interval; "0s"
	// never (a connector whose test request costs the customer).
	CheckInterval *time.Duration `yaml:"check_interval"`
	// RefreshTokenIdleTTL is how long the app keeps a refresh token nobody
	// uses ("2160h" for 90 days). Set, the scheduled checks of the
	// connector's OAuth 2.0 connections run at least every half of it
	// and obtain a new access token each time, so that a connection no
	// recipe used for a while does not lose its authorization.
	RefreshTokenIdleTTL *time.Duration `yaml:"refresh_token_idle_ttl"`
	authTypes           []credentialv1.AuthType
}

// Placement is where a key goes: in "bearer" (the Authorization header),
// "header" (a header named Name, the key after Prefix) or "query" (a query
// parameter named Name).
type Placement struct {
	In     string `yaml:"in"`
	Name   string `yaml:"name"`
	Prefix string `yaml:"prefix"`
}

var placementName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

func (p *Placement) validate() error {
	switch p.In {
	case "bearer":
		if p.Name != "" || p.Prefix != "" {
			return errors.New("credential_placement: in: bearer takes no name or prefix")
		}
	case "header", "query":
		if !placementName.MatchString(p.Name) {
			return fmt.Errorf("credential_placement: name must match %s", placementName)
		}
		if p.In == "query" && p.Prefix != "" {
			return errors.New("credential_placement: a query parameter takes no prefix")
		}
		if len(p.Prefix) > 64 || strings.ContainsFunc(p.Prefix, func(r rune) bool { return r < ' ' || r > '~' }) {
			return errors.New("credential_placement: prefix must be at most 64 printable ASCII characters")
		}
	default:
		return fmt.Errorf("credential_placement: in %q: want bearer, header or query", p.In)
	}
	return nil
}

// PlacementFor is how workers put a credential of auth type at on requests
// to this connector's app.
func (c *Connector) PlacementFor(at credentialv1.AuthType) *credentialv1.Placement {
	switch at {
	case credentialv1.AuthType_AUTH_TYPE_BASIC:
		return &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_AUTHORIZATION_BASIC}
	case credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE, credentialv1.AuthType_AUTH_TYPE_OAUTH2_CLIENT_CREDENTIALS:
		return &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_AUTHORIZATION_BEARER}
	case credentialv1.AuthType_AUTH_TYPE_OAUTH1:
		return &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_SIGNED}
	case credentialv1.AuthType_AUTH_TYPE_API_KEY, credentialv1.AuthType_AUTH_TYPE_CUSTOM_HEADER:
		p := c.CredentialPlacement
		switch {
		case p == nil && at == credentialv1.AuthType_AUTH_TYPE_CUSTOM_HEADER:
			return &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_HEADER, Name: "X-API-Key"}
		case p == nil || p.In == "bearer":
			return &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_AUTHORIZATION_BEARER}
		case p.In == "header":
			return &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_HEADER, Name: p.Name, Prefix: p.Prefix}
		default:
			return &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_QUERY_PARAMETER, Name: p.Name}
		}
	}
	return nil
}

// Parameter is an app instance field a connector uses.
type Parameter struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Required    bool   `yaml:"required"`
}

// OAuth2 holds a connector's OAuth 2.0 endpoints and default scopes.
type OAuth2 struct {
	AuthorizeURL        string   `yaml:"authorize_url"`
	TokenURL            string   `yaml:"token_url"`
	SandboxAuthorizeURL string   `yaml:"sandbox_authorize_url"`
	SandboxTokenURL     string   `yaml:"sandbox_token_url"`
	Scopes              []string `yaml:"scopes"`
	PKCE                bool     `yaml:"pkce"`
	// TokenAuthStyle is how the token endpoint takes the client id and
	// secret: "header" (HTTP Basic) or "params" (form fields). Empty: the
	// broker probes once per client registration and remembers it. Stating
	// it saves a request on the first exchange.
	TokenAuthStyle string `yaml:"token_auth_style"`
}

// OAuth1 holds a connector's OAuth 1.0a endpoints.
type OAuth1 struct {
	RequestTokenURL string `yaml:"request_token_url"`
	AuthorizeURL    string `yaml:"authorize_url"`
	AccessTokenURL  string `yaml:"access_token_url"`
}

// TestRequest is the request that checks a connection's credentials.
type TestRequest struct {
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
}

// Catalog is a loaded, validated set of connectors, ordered by name.
type Catalog struct {
	connectors []*Connector
}

// Load returns the embedded catalog with the operator file, if any, applied.
func Load(overrideFile string) (*Catalog, error) {
	base, err := parse(embedded)
	if err != nil {
		return nil, fmt.Errorf("catalog: embedded: %w", err)
	}
	if overrideFile != "" {
		b, err := os.ReadFile(overrideFile)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		extra, err := parse(b)
		if err != nil {
			return nil, fmt.Errorf("catalog: %s: %w", overrideFile, err)
		}
		for _, e := range extra {
			i := slices.IndexFunc(base, func(c *Connector) bool { return c.Name == e.Name })
			if i >= 0 {
				base[i] = e
			} else {
				base = append(base, e)
			}
		}
	}
	slices.SortFunc(base, func(a, b *Connector) int { return strings.Compare(a.Name, b.Name) })
	return &Catalog{connectors: base}, nil
}

// Get returns the connector with name.
func (c *Catalog) Get(name string) (*Connector, bool) {
	i, ok := slices.BinarySearchFunc(c.connectors, name, func(x *Connector, n string) int { return strings.Compare(x.Name, n) })
	if !ok {
		return nil, false
	}
	return c.connectors[i], true
}

// All returns every connector, ordered by name.
func (c *Catalog) All() []*Connector { return c.connectors }

// AuthTypes returns the auth types the connector offers.
func (c *Connector) AuthTypes() []credentialv1.AuthType { return c.authTypes }

// Supports reports whether connections to c may use auth type at.
func (c *Connector) Supports(at credentialv1.AuthType) bool { return slices.Contains(c.authTypes, at) }

var (
	namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	paramNames  = []string{"base_url", "subdomain", "org_id", "sandbox"}
)

func parse(b []byte) ([]*Connector, error) {
	var doc struct {
		Connectors []*Connector `yaml:"connectors"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is an error, not a silent default
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var errs []error
	for _, c := range doc.Connectors {
		if err := c.validate(); err != nil {
			errs = append(errs, fmt.Errorf("connector %q: %w", c.Name, err))
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("connector %q: listed twice", c.Name))
		}
		seen[c.Name] = true
	}
	return doc.Connectors, errors.Join(errs...)
}

func (c *Connector) validate() error {
	if !namePattern.MatchString(c.Name) {
		return fmt.Errorf("name must match %s", namePattern)
	}
	if c.DisplayName == "" {
		return errors.New("display_name is required")
	}
	if c.CheckInterval != nil && *c.CheckInterval < 0 {
		return errors.New(`check_interval must not be negative ("0s": never checked)`)
	}
	if c.RefreshTokenIdleTTL != nil && *c.RefreshTokenIdleTTL <= 0 {
		return errors.New("refresh_token_idle_ttl must be positive")
	}
	if len(c.AuthTypeNames) == 0 {
		return errors.New("auth_types is required")
	}
	c.authTypes = nil
	for _, s := range c.AuthTypeNames {
		v, ok := credentialv1.AuthType_value["AUTH_TYPE_"+strings.ToUpper(s)]
		if !ok || v == 0 {
			return fmt.Errorf("unknown auth type %q", s)
		}
		c.authTypes = append(c.authTypes, credentialv1.AuthType(v))
	}
	for _, p := range c.InstanceParameters {
		if !slices.Contains(paramNames, p.Name) {
			return fmt.Errorf("instance parameter %q: must be one of %v", p.Name, paramNames)
		}
	}
	if (c.Supports(credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE) ||
		c.Supports(credentialv1.AuthType_AUTH_TYPE_OAUTH2_CLIENT_CREDENTIALS)) &&
		(c.OAuth2 == nil || c.OAuth2.TokenURL == "") {
		return errors.New("OAuth 2.0 auth types need oauth2.token_url")
	}
	if c.OAuth2 != nil && !slices.Contains([]string{"", "header", "params"}, c.OAuth2.TokenAuthStyle) {
		return fmt.Errorf("oauth2.token_auth_style %q: want header or params", c.OAuth2.TokenAuthStyle)
	}
	if c.Supports(credentialv1.AuthType_AUTH_TYPE_OAUTH1) && (c.OAuth1 == nil || c.OAuth1.AccessTokenURL == "") {
		return errors.New("OAuth 1.0a needs oauth1 endpoints")
	}
	if c.CredentialPlacement != nil {
		if err := c.CredentialPlacement.validate(); err != nil {
			return err
		}
	}
	if len(c.AllowedHosts) == 0 {
		c.AllowedHosts = c.urlHosts()
	}
	for _, p := range c.AllowedHosts {
		if p == "*" {
			if !c.HasParameter("base_url") {
				return errors.New(`allowed_hosts "*" needs the base_url instance parameter`)
			}
			continue
		}
		if err := hosts.Check(strings.ReplaceAll(p, "{subdomain}", "x")); err != nil {
			return fmt.Errorf("allowed_hosts: %w", err)
		}
	}
	for _, u := range c.endpointURLs() {
		// The catalog's own endpoints must be hosts it allows (with any
		// subdomain standing in for {subdomain}).
		if h, err := hosts.Of(strings.ReplaceAll(u, "{subdomain}", "x")); err != nil ||
			!hosts.Match(expandHosts(c.AllowedHosts, "x", ""), h) {
			return fmt.Errorf("%s is not among allowed_hosts %v", u, c.AllowedHosts)
		}
	}
	return nil
}

// endpointURLs are the URLs the catalog entry names.
func (c *Connector) endpointURLs() []string {
	us := []string{c.DefaultBaseURL}
	if o := c.OAuth2; o != nil {
		us = append(us, o.AuthorizeURL, o.TokenURL, o.SandboxAuthorizeURL, o.SandboxTokenURL)
	}
	if o := c.OAuth1; o != nil {
		us = append(us, o.RequestTokenURL, o.AuthorizeURL, o.AccessTokenURL)
	}
	return slices.DeleteFunc(us, func(u string) bool { return u == "" })
}

// urlHosts are the hosts of the entry's URLs, {subdomain} kept.
func (c *Connector) urlHosts() []string {
	var out []string
	for _, u := range c.endpointURLs() {
		if h, err := hosts.Of(strings.ReplaceAll(u, "{subdomain}", "subdomain-placeholder")); err == nil {
			h = strings.ReplaceAll(h, "subdomain-placeholder", "{subdomain}")
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// HasParameter reports whether connections to c take the instance
// parameter name.
func (c *Connector) HasParameter(name string) bool {
	return slices.ContainsFunc(c.InstanceParameters, func(p Parameter) bool { return p.Name == name })
}

// HostsFor returns the hosts a connection to c with instance in may send its
// credential to: the catalog's patterns with {subdomain} filled in, and "*"
// replaced by the host of the instance's base_url.
func (c *Connector) HostsFor(in *credentialv1.AppInstance) []string {
	base := ""
	if in.GetBaseUrl() != "" {
		base, _ = hosts.Of(in.GetBaseUrl())
	}
	return expandHosts(c.AllowedHosts, in.GetSubdomain(), base)
}

func expandHosts(patterns []string, subdomain, base string) []string {
	var out []string
	for _, p := range patterns {
		switch {
		case p == "*":
			if base != "" {
				out = append(out, base)
			}
		case strings.Contains(p, "{subdomain}"):
			if subdomain != "" {
				out = append(out, strings.ReplaceAll(p, "{subdomain}", subdomain))
			}
		default:
			out = append(out, p)
		}
	}
	return out
}

// CheckInstance refuses an instance that points where c's credentials may
// not go: a base_url on a connector without that parameter, or a base_url
// outside the allowed hosts. It returns the field at fault and why.
func (c *Connector) CheckInstance(in *credentialv1.AppInstance) (field, why string, ok bool) {
	if in.GetBaseUrl() == "" {
		return "", "", true
	}
	if !c.HasParameter("base_url") {
		return "instance.base_url", fmt.Sprintf("%s takes no base_url: its credentials go only to %v", c.Name, c.AllowedHosts), false
	}
	h, err := hosts.Of(in.GetBaseUrl())
	if err != nil {
		return "instance.base_url", err.Error(), false
	}
	if slices.Contains(c.AllowedHosts, "*") {
		return "", "", true
	}
	if !hosts.Match(c.HostsFor(in), h) {
		return "instance.base_url", fmt.Sprintf("%s is not a host %s credentials may be sent to (%v)", h, c.Name, c.AllowedHosts), false
	}
	return "", "", true
}
