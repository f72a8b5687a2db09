package googleworkspace

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
)

// Scopes are the least the target needs: users, and groups with their members (Roster
// creates the groups an assignment names).
var Scopes = []string{
	"https://www.googleapis.com/auth/admin.directory.user",
	"https://www.googleapis.com/auth/admin.directory.group",
}

const googleTokenURL = "https://oauth2.googleapis.com/token"

// serviceAccountKey is the part of a service account's JSON key Roster reads.
type serviceAccountKey struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// tokenSource signs, with the service account's key, a JWT that asks Google's token
// endpoint for an access token acting for the admin (domain-wide delegation), and keeps
// the token until shortly before it ends. The token endpoint is reached with client,
// never with the budgeted transport of the Admin SDK.
func tokenSource(ctx context.Context, keyJSON []byte, admin string, scopes []string, client *http.Client) (oauth2.TokenSource, error) {
	var key serviceAccountKey
	if err := json.Unmarshal(keyJSON, &key); err != nil {
		return nil, &connectors.PermanentError{Message: "the service account key is not a JSON key file: " + err.Error()}
	}
	if key.Type != "service_account" || key.ClientEmail == "" || key.PrivateKey == "" {
		return nil, &connectors.PermanentError{Message: `the service account key must be a JSON key of "type": "service_account" with client_email and private_key`}
	}
	tokenURL := key.TokenURI
	if tokenURL == "" {
		tokenURL = googleTokenURL
	}
	if err := httpx.SafeURL(tokenURL); err != nil {
		return nil, &connectors.PermanentError{Message: "the key's token_uri " + err.Error()}
	}
	cfg := &jwt.Config{Email: key.ClientEmail, PrivateKey: []byte(key.PrivateKey), PrivateKeyID: key.PrivateKeyID,
		Scopes: scopes, TokenURL: tokenURL, Subject: admin}
	if err := canSign(key.PrivateKey); err != nil {
		return nil, &connectors.PermanentError{Message: "the service account key's private_key is not an RSA key in PEM: " + err.Error()}
	}
	return oauth2.ReuseTokenSource(nil, cfg.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, client))), nil
}

// canSign checks the key as the token source will read it, so that a broken key is
// reported as such rather than as a refused request.
func canSign(pemKey string) error {
	block, _ := pem.Decode([]byte(pemKey))
	if block == nil {
		return errors.New("no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	if err != nil {
		return err
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		return errors.New("not an RSA key")
	}
	return nil
}
