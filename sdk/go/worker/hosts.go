package worker

import (
	"net"
	"net/url"
	"strings"
)

// This file is the broker's rule for where a credential may be sent
// (package internal/hosts of the root module, which this module cannot
// import), copied so that the SDK keeps to it without a broker call per
// request. internal/hosts/sdk_agreement_test.go fails when the two disagree.
//
// A pattern is one of:
//
//	api.github.com        that host, on any port
//	127.0.0.1:8443        that host and port
//	*.zendesk.com         any host below zendesk.com (not zendesk.com itself)

// notHTTP stands for the host of a URL that is not an http or https URL.
const notHTTP = "(not an http or https URL)"

// hostOf is the host (with its port, if the URL has one) of an absolute
// http or https URL without user information, lower-cased; ok is false for
// any other URL.
func hostOf(u *url.URL) (hostport string, ok bool) {
	if u == nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return notHTTP, false
	}
	return strings.ToLower(u.Host), true
}

// matchHost reports whether hostport (as hostOf returns it) matches one of
// patterns.
func matchHost(patterns []string, hostport string) bool {
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
