package v1alpha1_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	corev1 "k8s.io/api/core/v1"

	"github.com/rosterhq/roster/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// TestSamplesAreAccepted applies every sample under config/samples.
func TestSamplesAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	root := filepath.Join(testenv.RepoRoot(), "config", "samples")
	count := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" || d.Name() == "kustomization.yaml" {
			return err
		}
		for _, obj := range readObjects(t, path) {
			if obj.GetAPIVersion() != "identity.roster.dev/v1alpha1" {
				continue
			}
			count++
			obj.SetNamespace(ns)
			if err := env.Client.Create(context.Background(), obj, client.DryRunAll); err != nil {
				t.Errorf("%s: %s %s rejected: %v", path, obj.GetKind(), obj.GetName(), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count < 5 {
		t.Fatalf("found %d Roster samples under %s, want one of each kind at least", count, root)
	}
}

// TestInvalidObjectsAreRejected creates objects that break one rule each and expects the
// API server to refuse them with the message a person should see.
func TestInvalidObjectsAreRejected(t *testing.T) {
	cases := []struct {
		reason string
		object string
		want   string
	}{
		{
			reason: "a userName with a space",
			object: user(`userName: "ada lovelace"`),
			want:   `spec.userName: Invalid value: "ada lovelace": userName must not contain whitespace`,
		},
		{
			reason: "a User without userName",
			object: user(`displayName: Ada`),
			want:   "spec.userName: Required value",
		},
		{
			reason: "activeFrom after activeUntil",
			object: user(`userName: ada
activeFrom: "2027-02-01T00:00:00Z"
activeUntil: "2027-01-01T00:00:00Z"`),
			want: "spec.activeFrom: Invalid value: activeFrom must be before activeUntil",
		},
		{
			reason: "a state that does not exist",
			object: user(`userName: ada
state: Disabled`),
			want: `Unsupported value: "Disabled": supported values: "Active", "Suspended"`,
		},
		{
			reason: "a User who manages themselves",
			object: user(`userName: ada
manager: {name: subject}`),
			want: "spec.manager.name: Invalid value: a user cannot be their own manager",
		},
		{
			reason: "two primary emails",
			object: user(`userName: ada
emails:
  - {value: ada@example.com, primary: true}
  - {value: ada@home.example, primary: true}`),
			want: "spec.emails: Invalid value: at most one email can be primary",
		},
		{
			reason: "an email that is not an address",
			object: user(`userName: ada
emails: [{value: ada-at-example.com}]`),
			want: `spec.emails[0].value: Invalid value: "ada-at-example.com": must be an email address such as ada@example.com`,
		},
		{
			reason: "a Role with no way to find members",
			object: role(`members: {}`),
			want:   "spec.members: Invalid value: members needs at least one of users, selector, groups or rule",
		},
		{
			reason: "a Role granting the same app twice",
			object: role(`members: {groups: [eng]}
grants: [{app: slack}, {app: slack, groups: [eng]}]`),
			want: `spec.grants[1]: Duplicate value: {"app":"slack"}`,
		},
		{
			reason: "an AppAssignment with both subjects",
			object: assignment(`userRef: {name: ada}
roleRef: {name: eng}
app: slack`),
			want: "set exactly one of userRef or roleRef",
		},
		{
			reason: "an AppAssignment with no subject",
			object: assignment(`app: slack`),
			want:   "set exactly one of userRef or roleRef",
		},
		{
			reason: "validFrom after validUntil",
			object: assignment(`userRef: {name: ada}
app: slack
validFrom: "2027-02-01T00:00:00Z"
validUntil: "2027-01-01T00:00:00Z"`),
			want: "spec.validFrom: Invalid value: validFrom must be before validUntil",
		},
		{
			reason: "an AppConnection with two connectors",
			object: connection(`memory: {}
scim: {baseURL: "https://scim.example.com", auth: {type: Bearer, secretRef: {name: token}}}`),
			want: "set exactly one connector: scim, ldap, github, googleWorkspace, microsoftGraph, webhook or memory",
		},
		{
			reason: "a connector block Roster has no provider for is no part of the API",
			object: connection(`okta: {domain: example.okta.com}`),
			want:   "set exactly one connector: scim, ldap, github, googleWorkspace, microsoftGraph, webhook or memory",
		},
		{
			reason: "a GitHub connection with both a token and an app",
			object: connection(`github: {organization: example, tokenSecretRef: {name: gh, key: token}, app: {appID: 1, installationID: 2, privateKeySecretRef: {name: gh, key: key.pem}}}`),
			want:   "set exactly one of tokenSecretRef or app",
		},
		{
			reason: "GitHub matched by email",
			object: connection(`github: {organization: acme, tokenSecretRef: {name: gh, key: token}}
matchBy: Email`),
			want: "spec.matchBy: Invalid value: GitHub finds people by login: matchBy must be UserName",
		},
		{
			reason: "a GitHub organization that is not a login",
			object: connection(`github: {organization: "acme corp", tokenSecretRef: {name: gh, key: token}}`),
			want:   "spec.github.organization: Invalid value",
		},
		{
			reason: "a Google Workspace API over plain http to another host",
			object: connection(`googleWorkspace: {domain: example.com, adminEmail: admin@example.com, serviceAccountKeySecretRef: {name: google, key: key.json}, apiURL: "http://google.example.com/"}`),
			want:   "apiURL must be an https URL (http only to localhost, 127.0.0.1 or ::1)",
		},
		{
			reason: "a Google Workspace domain that is not a domain",
			object: connection(`googleWorkspace: {domain: "Example Corp", adminEmail: admin@example.com, serviceAccountKeySecretRef: {name: google, key: key.json}}`),
			want:   "spec.googleWorkspace.domain: Invalid value",
		},
		{
			reason: "a Google Workspace admin that is not an email address",
			object: connection(`googleWorkspace: {domain: example.com, adminEmail: admin, serviceAccountKeySecretRef: {name: google, key: key.json}}`),
			want:   "spec.googleWorkspace.adminEmail: Invalid value",
		},
		{
			reason: "a Microsoft Graph app with both a secret and a certificate",
			object: connection(`microsoftGraph: {tenantID: contoso.com, clientID: 0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a, clientSecretRef: {name: graph, key: secret}, clientCertificateSecretRef: {name: graph, key: tls.pem}}`),
			want:   "set exactly one of clientSecretRef or clientCertificateSecretRef",
		},
		{
			reason: "a Microsoft Graph client id that is no GUID",
			object: connection(`microsoftGraph: {tenantID: contoso.com, clientID: roster, clientSecretRef: {name: graph, key: secret}}`),
			want:   "spec.microsoftGraph.clientID: Invalid value",
		},
		{
			reason: "Microsoft Graph over plain http to another host",
			object: connection(`microsoftGraph: {tenantID: contoso.com, clientID: 0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a, clientSecretRef: {name: graph, key: secret}, graphURL: "http://graph.example.com/"}`),
			want:   "graphURL must be an https URL (http only to localhost, 127.0.0.1 or ::1)",
		},
		{
			reason: "an AppConnection with no connector",
			object: connection(`mode: Plan`),
			want:   "set exactly one connector: scim, ldap, github, googleWorkspace, microsoftGraph, webhook or memory",
		},
		{
			reason: "a webhook over plain http to another host",
			object: connection(`webhook: {url: "http://receiver.example.com/roster", signingSecretRef: {name: hook}}`),
			want:   "spec.webhook.url: Invalid value: \"http://receiver.example.com/roster\": url must be an https URL (http only to localhost, 127.0.0.1 or ::1)",
		},
		{
			reason: "a webhook URL with a password in it",
			object: connection(`webhook: {url: "https://roster:hunter2@receiver.example.com/", signingSecretRef: {name: hook}}`),
			want:   "url must not carry a user name or password",
		},
		{
			reason: "matching LDAP accounts by an external id no attribute holds",
			object: connection(`ldap: {url: "ldaps://dc.example:636", bindDN: "CN=svc", passwordSecretRef: {name: ad, key: password}, flavor: ActiveDirectory, usersDN: "OU=Staff,DC=example"}
matchBy: ExternalID`),
			want: "spec.matchBy: Invalid value: matchBy ExternalID needs ldap.externalIDAttribute",
		},
		{
			reason: "an Active Directory setting on an OpenLDAP target",
			object: connection(`ldap: {url: "ldaps://ldap.example:636", bindDN: "cn=admin", passwordSecretRef: {name: ldap, key: password}, usersDN: "ou=people,dc=example", upnSuffix: example.com}`),
			want:   "spec.ldap.upnSuffix: Invalid value: upnSuffix is for flavor ActiveDirectory",
		},
		{
			reason: "a lock attribute on Active Directory",
			object: connection(`ldap: {url: "ldaps://dc.example:636", bindDN: "CN=svc", passwordSecretRef: {name: ad, key: password}, flavor: ActiveDirectory, usersDN: "OU=Staff,DC=example", lockAttribute: {name: nsAccountLock, value: "TRUE"}}`),
			want:   "spec.ldap.lockAttribute: Invalid value: lockAttribute is for flavor OpenLDAP",
		},
		{
			reason: "a SCIM baseURL that is not http",
			object: connection(`scim:
  baseURL: ftp://scim.example.com
  auth: {type: Bearer, secretRef: {name: token}}`),
			want: `spec.scim.baseURL: Invalid value: "ftp://scim.example.com": baseURL must be an http or https URL`,
		},
		{
			reason: "OAuth2 client credentials without a token URL",
			object: connection(`scim:
  baseURL: https://scim.example.com
  auth: {type: OAuth2ClientCredentials, secretRef: {name: oauth}}`),
			want: "spec.scim.auth.tokenURL: Invalid value: tokenURL is required with type OAuth2ClientCredentials and allowed only with it",
		},
		{
			reason: "a resync interval under a minute",
			object: connection(`memory: {}
resyncInterval: 30s`),
			want: `spec.resyncInterval: Invalid value: "30s": resyncInterval must be a duration from 1m to 168h, such as 1h`,
		},
		{
			reason: "a writes budget larger than the requests it is part of",
			object: connection(`memory: {}
rateLimit: {requests: 10, writes: 20}`),
			want: "spec.rateLimit: Invalid value: writes is part of requests: it cannot be more than requests",
		},
		{
			reason: "a negative deleteAfter",
			object: connection(`memory: {}
deprovision: {deleteAfter: -1h}`),
			want: `spec.deprovision.deleteAfter: Invalid value: "-1h": deleteAfter must be a duration from 1s to 87600h (10 years), such as 720h`,
		},
		{
			reason: "a deleteAfter that is not a duration",
			object: connection(`memory: {}
deprovision: {deleteAfter: thirty days}`),
			want: `spec.deprovision.deleteAfter: Invalid value: "thirty days": deleteAfter must be a duration from 1s to 87600h (10 years), such as 720h`,
		},
		{
			reason: "a safety threshold over 100 percent",
			object: connection(`memory: {}
safetyThreshold: {maxPercent: 150}`),
			want: "spec.safetyThreshold.maxPercent: Invalid value: 150: spec.safetyThreshold.maxPercent in body should be less than or equal to 100",
		},
		{
			reason: "an empty safety threshold",
			object: connection(`memory: {}
safetyThreshold: {}`),
			want: "spec.safetyThreshold: Invalid value: safetyThreshold needs maxCount, maxPercent or both",
		},
		{
			reason: "StartTLS on an ldaps:// URL",
			object: directorySync(`ldap:
  url: ldaps://ldap.example.com
  security: StartTLS
  bindDN: cn=roster
  passwordSecretRef: {name: ldap, key: password}
  baseDN: dc=example`),
			want: "spec.ldap.security: Invalid value: security TLS goes with an ldaps:// url; StartTLS and None go with ldap://",
		},
		{
			reason: "a rate limit of zero requests",
			object: connection(`memory: {}
rateLimit: {requests: 0}`),
			want: "spec.rateLimit.requests in body should be greater than or equal to 1",
		},
		{
			reason: "a DirectorySync with two sources",
			object: directorySync(`scim: {tokenSecretRef: {name: okta, key: token}}
hris: {format: CSV, configMapRef: {name: people, key: people.csv}}`),
			want: "set exactly one source: ldap, scim, hris, googleWorkspace or microsoftGraph",
		},
		{
			reason: "a Google Workspace source read through a URL with a password in it",
			object: directorySync(`googleWorkspace: {adminEmail: admin@example.com, serviceAccountKeySecretRef: {name: google, key: key.json}, apiURL: "https://roster:hunter2@admin.example.com/"}`),
			want:   "apiURL must not carry a user name or password",
		},
		{
			reason: "a Google Workspace source limited to a domain that is no domain",
			object: directorySync(`googleWorkspace: {adminEmail: admin@example.com, serviceAccountKeySecretRef: {name: google, key: key.json}, domain: "-"}`),
			want:   "spec.googleWorkspace.domain: Invalid value",
		},
		{
			reason: "an HRIS source with both url and ConfigMap",
			object: directorySync(`hris:
  format: JSON
  url: https://hr.example.com/people.json
  configMapRef: {name: people, key: people.json}`),
			want: "spec.hris: Invalid value: set exactly one of url, configMapRef or secretRef",
		},
		{
			reason: "an LDAP source on an http URL",
			object: directorySync(`ldap:
  url: http://ldap.example.com
  bindDN: cn=roster
  passwordSecretRef: {name: ldap, key: password}
  baseDN: dc=example`),
			want: `spec.ldap.url: Invalid value: "http://ldap.example.com": url must start with ldap:// or ldaps://`,
		},
		{
			reason: "an LDAP filter without parentheses",
			object: directorySync(`ldap:
  url: ldap://ldap.example.com
  bindDN: cn=roster
  passwordSecretRef: {name: ldap, key: password}
  baseDN: dc=example
  userFilter: objectClass=person`),
			want: "userFilter must be an LDAP filter in parentheses, such as (objectClass=inetOrgPerson)",
		},
		{
			reason: "a sync interval of zero",
			object: directorySync(`hris: {format: CSV, configMapRef: {name: people, key: people.csv}}
interval: 0s`),
			want: `spec.interval: Invalid value: "0s": interval must be a duration from 1m to 168h, such as 15m`,
		},
		{
			reason: "a request timeout of a nanosecond",
			object: connection(`scim:
  baseURL: https://scim.example.com
  auth: {type: Bearer, secretRef: {name: token}}
  requestTimeout: 1ns`),
			want: `spec.scim.requestTimeout: Invalid value: "1ns": requestTimeout must be a duration from 1s to 5m, such as 30s`,
		},
		{
			reason: "a baseURL that carries a password",
			object: connection(`scim:
  baseURL: https://roster:hunter2@scim.example.com/v2
  auth: {type: Bearer, secretRef: {name: token}}`),
			want: "baseURL must not carry a user name or password: put credentials in a Secret",
		},
		{
			reason: "an HR export URL that carries a user name",
			object: directorySync(`hris: {format: CSV, url: "https://hr@exports.example.com/people.csv"}`),
			want:   "url must not carry a user name or password: put credentials in a Secret",
		},
		{
			reason: "a rate limit period of a millisecond",
			object: connection(`memory: {}
rateLimit: {requests: 10, period: 1ms}`),
			want: `period must be a duration from 1s to 24h, such as 1m`,
		},
		{
			reason: "a safety window of a second",
			object: connection(`memory: {}
safetyThreshold: {maxCount: 5, window: 1s}`),
			want: `spec.safetyThreshold.window: Invalid value: "1s": window must be a duration from 1m to 168h, such as 10m`,
		},
		{
			reason: "a deletion policy that does not exist",
			object: directorySync(`hris: {format: CSV, configMapRef: {name: people, key: people.csv}}
deletionPolicy: Cascade`),
			want: `Unsupported value: "Cascade": supported values: "Orphan", "Delete"`,
		},
		{
			reason: "a request for both an app and a Role",
			object: accessRequest(`app: wiki
roleRef: {name: oncall}`),
			want: "set exactly one of app or roleRef",
		},
		{
			reason: "a Role request with groups",
			object: accessRequest(`roleRef: {name: oncall}
groups: [admins]`),
			want: "groups, appRole and license are requested with app; a Role's grants come with the Role",
		},
		{
			reason: "a request without a reason",
			object: accessRequest(`app: wiki
justification: ""`),
			want: "spec.justification in body should be at least 1 chars long",
		},
		{
			reason: "a request of no time",
			object: accessRequest(`app: wiki
duration: 0s`),
			want: "duration must be a positive duration such as 8h",
		},
		{
			reason: "a decision that does not exist",
			object: accessRequest(`app: wiki
decisions: [{by: grace, decision: Escalate}]`),
			want: `Unsupported value: "Escalate"`,
		},
		{
			reason: "a Notifier with two channels",
			object: notifier(`slack: {webhookURLSecretRef: {name: s, key: url}}
teams: {webhookURLSecretRef: {name: t, key: url}}`),
			want: "set exactly one channel: slack, teams, webhook or email",
		},
		{
			reason: "a Notifier webhook in clear text",
			object: notifier(`webhook: {url: "http://siem.example.com/in", signingSecretRef: {name: s}}`),
			want:   "url must be an https URL",
		},
		{
			reason: "an email Notifier sending in clear text",
			object: notifier(`email: {host: smtp.example.com, from: roster@example.com, security: None}`),
			want:   `Unsupported value: "None": supported values: "StartTLS", "TLS"`,
		},
		{
			reason: "a requestable policy with ten approvals",
			object: connection(`memory: {}
requestable: {approvals: 10}`),
			want: "spec.requestable.approvals: Invalid value: 10: spec.requestable.approvals in body should be less than or equal to 5",
		},
	}
	ns := newNamespace(t)
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			obj := decode(t, tc.object)
			obj.SetNamespace(ns)
			err := env.Client.Create(context.Background(), obj, client.DryRunAll)
			expectRejected(t, err, tc.want)
		})
	}
}

// TestAnEmptyUserNameGetsOneMessage: an empty userName is too short, not "whitespace".
func TestAnEmptyUserNameGetsOneMessage(t *testing.T) {
	obj := decode(t, user(`userName: ""`))
	obj.SetNamespace(newNamespace(t))
	err := env.Client.Create(context.Background(), obj, client.DryRunAll)
	expectRejected(t, err, "spec.userName in body should be at least 1 chars long")
	if strings.Contains(err.Error(), "whitespace") {
		t.Fatalf("an empty userName got a second, wrong message: %v", err)
	}
}

// TestIdentityKeysAreImmutable changes a field that must not change on a stored object.
func TestIdentityKeysAreImmutable(t *testing.T) {
	cases := []struct {
		reason string
		object string
		change string
		want   string
	}{
		{
			reason: "a User's externalID",
			object: user(`userName: ada
externalID: E1`),
			change: `{"spec":{"externalID":"E2"}}`,
			want:   "externalID cannot be changed or removed once set",
		},
		{
			reason: "removing a User's externalID",
			object: user(`userName: ada
externalID: E1`),
			change: `{"spec":{"externalID":null}}`,
			want:   "externalID cannot be changed or removed once set",
		},
		{
			reason: "an AppAssignment's app",
			object: assignment(`userRef: {name: ada}
app: slack`),
			change: `{"spec":{"app":"zoom"}}`,
			want:   `spec.app: Invalid value: "zoom": app cannot be changed; create a new AppAssignment`,
		},
		{
			reason: "an AppAssignment's user",
			object: assignment(`userRef: {name: ada}
app: slack`),
			change: `{"spec":{"userRef":{"name":"grace"}}}`,
			want:   "the subject (userRef or roleRef) cannot be changed; create a new AppAssignment",
		},
		{
			reason: "an AppAssignment's subject from user to role",
			object: assignment(`userRef: {name: ada}
app: slack`),
			change: `{"spec":{"userRef":null,"roleRef":{"name":"eng"}}}`,
			want:   "the subject (userRef or roleRef) cannot be changed; create a new AppAssignment",
		},
		{
			reason: "an AppConnection's connector",
			object: connection(`memory: {}`),
			change: `{"spec":{"memory":null,"github":{"organization":"example","tokenSecretRef":{"name":"gh","key":"token"}}}}`,
			want:   "the connector cannot be changed; create a new AppConnection",
		},
		{
			reason: "an AccessRequest's duration",
			object: accessRequest(`app: wiki`),
			change: `{"spec":{"duration":"800h"}}`,
			want:   "a request cannot be changed once made, only decided on; make a new one",
		},
		{
			reason: "an AccessRequest's groups",
			object: accessRequest(`app: wiki
groups: [eng]`),
			change: `{"spec":{"groups":["eng","admins"]}}`,
			want:   "a request cannot be changed once made, only decided on; make a new one",
		},
		{
			reason: "an AccessRequest's decisions rewritten",
			object: accessRequest(`app: wiki
decisions: [{by: grace, decision: Deny}]`),
			change: `{"spec":{"decisions":[{"by":"grace","decision":"Approve"}]}}`,
			want:   "decisions are only added, never changed or removed",
		},
		{
			reason: "a DirectorySync's source",
			object: directorySync(`hris: {format: CSV, configMapRef: {name: people, key: people.csv}}`),
			change: `{"spec":{"hris":null,"scim":{"tokenSecretRef":{"name":"okta","key":"token"}}}}`,
			want:   "the source cannot be changed; create a new DirectorySync",
		},
	}
	ns := newNamespace(t)
	for i, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			ctx := context.Background()
			obj := decode(t, tc.object)
			obj.SetNamespace(ns)
			obj.SetName(fmt.Sprintf("immutable-%d", i))
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatalf("creating the valid object: %v", err)
			}
			err := env.Client.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(tc.change)))
			expectRejected(t, err, tc.want)
		})
	}
}

// TestMutableFieldsCanChange guards against immutability rules that are too broad.
func TestMutableFieldsCanChange(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	obj := decode(t, user(`userName: ada
externalID: E1
state: Active`))
	obj.SetNamespace(ns)
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	change := `{"spec":{"userName":"ada.lovelace","state":"Suspended","externalID":"E1"}}`
	if err := env.Client.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(change))); err != nil {
		t.Fatalf("renaming and suspending a User was rejected: %v", err)
	}
}

func expectRejected(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want rejection with %q", want)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("got %v, want an Invalid error", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("got %q, want it to contain %q", err.Error(), want)
	}
}

func user(spec string) string     { return object("User", spec) }
func notifier(spec string) string { return object("Notifier", spec) }

// accessRequest is a valid request for ada, with spec's fields over the defaults.
func accessRequest(spec string) string {
	fields := map[string]string{"userRef": "{name: ada}", "requester": "ada@example.com", "duration": "8h", "justification": "on call"}
	lines := strings.Split(spec, "\n")
	for _, l := range lines {
		delete(fields, strings.SplitN(l, ":", 2)[0])
	}
	for _, k := range []string{"userRef", "requester", "duration", "justification"} {
		if v, ok := fields[k]; ok {
			lines = append(lines, k+": "+v)
		}
	}
	return object("AccessRequest", strings.Join(lines, "\n"))
}
func role(spec string) string          { return object("Role", spec) }
func assignment(spec string) string    { return object("AppAssignment", spec) }
func connection(spec string) string    { return object("AppConnection", spec) }
func directorySync(spec string) string { return object("DirectorySync", spec) }

func object(kind, spec string) string {
	return fmt.Sprintf("apiVersion: identity.roster.dev/v1alpha1\nkind: %s\nmetadata:\n  name: subject\nspec:\n  %s\n",
		kind, strings.ReplaceAll(spec, "\n", "\n  "))
}

func decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatalf("test object is not YAML: %v\n%s", err, doc)
	}
	return obj
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		obj := decode(t, string(doc))
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{}
	ns.GenerateName = "validation-"
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}
