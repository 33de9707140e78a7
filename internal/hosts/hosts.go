// Package hosts says where a credential may be sent. A connector states host
// patterns in the catalog; a connection's concrete list is written beside its
// secret in Vault, and the broker checks every URL it sends a credential to
// (test requests, token endpoints, signed requests) against that list.
//
// A pattern is one of:
//
//	api.github.com        that host, on any port
//	127.0.0.1:8443        that host and port
//	*.zendesk.com         any host below zendesk.com (not zendesk.com itself)
//
// Hosts compare case-insensitively; IPv6 literals are written in brackets
// when a port is given.
package hosts

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Of returns the host (with its port, if the URL has one) of an absolute
// http or https URL, lower-cased, or an error.
func Of(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("hosts: not a URL")
	}
	return OfURL(u)
}

// OfURL is Of for a URL already parsed.
func OfURL(u *url.URL) (string, error) {
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("hosts: scheme %q: want https or http", u.Scheme)
	}
	if u.Host == "" || u.User != nil {
		return "", errors.New("hosts: the URL needs a host and no user information")
	}
	return strings.ToLower(u.Host), nil
}

// Check returns an error when p is not a valid pattern.
func Check(p string) error {
	h := strings.TrimPrefix(p, "*.")
	if h == "" || strings.ContainsAny(h, "*/?#@ \t") || strings.Contains(h, "..") || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") {
		return fmt.Errorf("hosts: pattern %q: want a host, host:port or *.domain", p)
	}
	if strings.HasPrefix(p, "*.") && !strings.Contains(h, ".") {
		return fmt.Errorf("hosts: pattern %q: a wildcard needs a domain of at least two labels", p)
	}
	return nil
}

// Match reports whether hostport (as Of returns it) matches a pattern.
func Match(patterns []string, hostport string) bool {
	hostport = strings.ToLower(hostport)
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	for _, p := range patterns {
		p = strings.ToLower(p)
		switch {
		case strings.HasPrefix(p, "*."):
			suffix := p[1:] // ".zendesk.com"
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
		case strings.Contains(strings.TrimPrefix(p, "["), ":") && !strings.HasSuffix(p, "]"):
			if p == hostport {
				return true
			}
		default:
			if strings.Trim(p, "[]") == host {
				return true
			}
		}
	}
	return false
}

// ErrUnbound means a credential's record holds no hosts: it was stored
// before hosts were bound to credentials. Each caller decides what such a
// legacy record may still do.
var ErrUnbound = errors.New("hosts: the credential was stored without the hosts it may be sent to")

// NotAllowedError refuses a URL whose host is not among a credential's.
type NotAllowedError struct {
	Host string // as Of returns it, or a description when rawURL is not an http(s) URL
}

func (e *NotAllowedError) Error() string {
	return "hosts: " + e.Host + " is not a host this credential may be sent to"
}

// Allow is the one rule for sending a credential: nil when rawURL is an
// http or https URL whose host matches one of allowed, ErrUnbound when
// allowed is empty, and a *NotAllowedError otherwise.
func Allow(allowed []string, rawURL string) error {
	h, err := Of(rawURL)
	return allow(allowed, h, err)
}

// AllowURL is Allow for a URL already parsed (the egress proxy parses each
// request's once).
func AllowURL(allowed []string, u *url.URL) error {
	h, err := OfURL(u)
	return allow(allowed, h, err)
}

func allow(allowed []string, h string, err error) error {
	if err != nil {
		h = "(not an http or https URL)"
	}
	if len(allowed) == 0 {
		return ErrUnbound
	}
	if err != nil || !Match(allowed, h) {
		return &NotAllowedError{Host: h}
	}
	return nil
}
