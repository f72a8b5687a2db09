package microsoftgraph

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is the certificate's SHA-1 thumbprint, as the identity platform names it
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/rosterhq/roster/connectors"
)

const (
	defaultAuthorityURL = "https://login.microsoftonline.com/"
	defaultGraphURL     = "https://graph.microsoft.com/"
	assertionType       = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Credentials are an app registration's: a client secret, or a certificate and its key.
type Credentials struct {
	TenantID, ClientID string
	// Secret is a client secret; empty when Certificate is set.
	Secret string
	// Certificate is the app's certificate and private key, PEM.
	Certificate []byte
}

// tokenSource asks the tenant's token endpoint for a Graph token by client credentials
// (RFC 6749 4.4), authenticating with the secret or with a client assertion signed by
// the certificate's key (RFC 7523), and keeps the token until shortly before it ends.
func tokenSource(ctx context.Context, c Credentials, authorityURL, graphURL string, client *http.Client) (oauth2.TokenSource, error) {
	tokenURL := strings.TrimSuffix(authorityURL, "/") + "/" + url.PathEscape(c.TenantID) + "/oauth2/v2.0/token"
	cfg := clientcredentials.Config{ClientID: c.ClientID, TokenURL: tokenURL, Scopes: []string{strings.TrimSuffix(graphURL, "/") + "/.default"},
		AuthStyle: oauth2.AuthStyleInParams}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
	if len(c.Certificate) == 0 {
		if c.Secret == "" {
			return nil, &connectors.PermanentError{Message: "the client secret is empty"}
		}
		cfg.ClientSecret = c.Secret
		return cfg.TokenSource(ctx), nil
	}
	signer, err := newAssertionSigner(c.Certificate, c.ClientID, tokenURL)
	if err != nil {
		return nil, err
	}
	return oauth2.ReuseTokenSource(nil, &assertedSource{cfg: cfg, ctx: ctx, sign: signer}), nil
}

// assertedSource gets each token with a new client assertion.
type assertedSource struct {
	cfg  clientcredentials.Config
	ctx  context.Context
	sign func() (string, error)
}

func (s *assertedSource) Token() (*oauth2.Token, error) {
	assertion, err := s.sign()
	if err != nil {
		return nil, err
	}
	cfg := s.cfg
	cfg.EndpointParams = url.Values{"client_assertion_type": {assertionType}, "client_assertion": {assertion}}
	return cfg.Token(s.ctx)
}

// newAssertionSigner reads a PEM certificate and RSA key and returns what signs a
// client assertion: a JWT for the token endpoint, issued by and about the client, with
// the certificate's thumbprints in its header.
func newAssertionSigner(pemData []byte, clientID, tokenURL string) (func() (string, error), error) {
	var cert *x509.Certificate
	var key crypto.Signer
	for rest := pemData; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			if cert == nil {
				c, err := x509.ParseCertificate(block.Bytes)
				if err != nil {
					return nil, &connectors.PermanentError{Message: "the client certificate does not parse: " + err.Error()}
				}
				cert = c
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY":
			k, err := parseKey(block)
			if err != nil {
				return nil, &connectors.PermanentError{Message: "the client certificate's private key: " + err.Error()}
			}
			key = k
		}
	}
	if cert == nil || key == nil {
		return nil, &connectors.PermanentError{Message: "the client certificate Secret must hold a CERTIFICATE and its RSA PRIVATE KEY, both PEM"}
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(key.Public()) {
		return nil, &connectors.PermanentError{Message: "the private key is not the client certificate's"}
	}
	sha1Sum, sha256Sum := sha1.Sum(cert.Raw), sha256.Sum256(cert.Raw) //nolint:gosec // a thumbprint, not a signature
	return func() (string, error) {
		now := time.Now()
		token := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
			Issuer: clientID, Subject: clientID, Audience: jwt.ClaimStrings{tokenURL}, ID: randomID(),
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)),
		})
		token.Header["x5t"] = base64.RawURLEncoding.EncodeToString(sha1Sum[:])
		token.Header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(sha256Sum[:])
		return token.SignedString(key)
	}, nil
}

func parseKey(block *pem.Block) (crypto.Signer, error) {
	if block.Type == "RSA PRIVATE KEY" {
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rsaKey, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rsaKey, nil
}
