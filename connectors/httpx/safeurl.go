package httpx

import (
	"net"
	"net/url"

	"github.com/rosterhq/roster/connectors"
)

// SafeURL admits https, and http only to a loopback address, with no credentials in
// the URL: for URLs that are sent a secret, a signed assertion or a token.
func SafeURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return &connectors.PermanentError{Message: "is not a URL: " + err.Error()}
	case u.User != nil:
		return &connectors.PermanentError{Message: "must not carry a user name or password"}
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return &connectors.PermanentError{Message: "must be https (http only to a loopback address): " + raw}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
