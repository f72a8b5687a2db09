package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SCIMProfile names a set of per-app SCIM quirks (paging, deactivation, batch sizes).
// +kubebuilder:validation:Enum=generic;slack;github-emu;zoom;atlassian;aws-identity-center
type SCIMProfile string

// SCIMAuthType is how Roster authenticates to a SCIM app.
// +kubebuilder:validation:Enum=Bearer;Basic;OAuth2ClientCredentials
type SCIMAuthType string

const (
	// SCIMAuthBearer sends the Secret's "token" key as a bearer token.
	SCIMAuthBearer SCIMAuthType = "Bearer"
	// SCIMAuthBasic sends the Secret's "username" and "password" keys.
	SCIMAuthBasic SCIMAuthType = "Basic"
	// SCIMAuthOAuth2ClientCredentials exchanges the Secret's "clientID" and
	// "clientSecret" keys at tokenURL for a bearer token.
	SCIMAuthOAuth2ClientCredentials SCIMAuthType = "OAuth2ClientCredentials"
)

// SCIMAuth is how Roster authenticates to a SCIM app.
// +kubebuilder:validation:XValidation:rule="(self.type == 'OAuth2ClientCredentials') == has(self.tokenURL)",message="tokenURL is required with type OAuth2ClientCredentials and allowed only with it",fieldPath=".tokenURL"
// +kubebuilder:validation:XValidation:rule="self.type == 'OAuth2ClientCredentials' || !has(self.scopes)",message="scopes are allowed only with type OAuth2ClientCredentials",fieldPath=".scopes"
type SCIMAuth struct {
	// type of authentication: Bearer (Secret key "token"), Basic ("username",
	// "password") or OAuth2ClientCredentials ("clientID", "clientSecret").
	// +required
	Type SCIMAuthType `json:"type"`

	// secretRef names the Secret in the same namespace that holds the credentials.
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`

	// tokenURL is the OAuth2 token endpoint, for OAuth2ClientCredentials.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="tokenURL must be an http or https URL"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="tokenURL must not carry a user name or password: put credentials in a Secret"
	TokenURL string `json:"tokenURL,omitempty"`

	// scopes requested with OAuth2ClientCredentials.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=256
	Scopes []string `json:"scopes,omitempty"`
}

// SCIMConnector provisions into an app through its SCIM 2.0 API.
type SCIMConnector struct {
	// baseURL is the app's SCIM base, the URL that /Users and /Groups are under.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="baseURL must be an http or https URL"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="baseURL must not carry a user name or password: put credentials in a Secret"
	BaseURL string `json:"baseURL"`

	// profile picks the app's known SCIM quirks; generic follows RFC 7644 and what the
	// app's /ServiceProviderConfig says.
	// +optional
	// +kubebuilder:default=generic
	Profile SCIMProfile `json:"profile,omitempty"`

	// auth is how Roster authenticates.
	// +required
	Auth SCIMAuth `json:"auth"`

	// headers are sent with every request.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Headers []HTTPHeader `json:"headers,omitempty"`

	// tls adjusts certificate verification.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// groupMemberBatchSize is the most member changes sent in one group PATCH. Unset
	// uses the profile's value (100 for generic).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	GroupMemberBatchSize *int32 `json:"groupMemberBatchSize,omitempty"`

	// requestTimeout bounds each request.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="requestTimeout must be a duration from 1s to 5m, such as 30s"
	RequestTimeout *metav1.Duration `json:"requestTimeout,omitempty"`
}

// GitHubLeaverPolicy is what a leaver's organization membership becomes.
// +kubebuilder:validation:Enum=Remove;OutsideCollaborator
type GitHubLeaverPolicy string

const (
	// GitHubLeaverRemove removes the member from the organization (and cancels a pending
	// invitation); their forks of private repositories are deleted by GitHub.
	GitHubLeaverRemove GitHubLeaverPolicy = "Remove"
	// GitHubLeaverOutsideCollaborator converts the member to an outside collaborator:
	// they keep access to the repositories they were given one by one, and lose what
	// membership and teams gave them.
	GitHubLeaverOutsideCollaborator GitHubLeaverPolicy = "OutsideCollaborator"
)

// GitHubApp is a GitHub App installed on the organization, the way organizations
// prefer to grant access: its installation token is short-lived and scoped.
type GitHubApp struct {
	// appID is the GitHub App's id.
	// +required
	// +kubebuilder:validation:Minimum=1
	AppID int64 `json:"appID"`

	// installationID is the id of the app's installation on the organization.
	// +required
	// +kubebuilder:validation:Minimum=1
	InstallationID int64 `json:"installationID"`

	// privateKeySecretRef names the Secret key that holds the app's private key (PEM).
	// +required
	PrivateKeySecretRef SecretKeySelector `json:"privateKeySecretRef"`
}

// GitHubConnector provisions the members and teams of a GitHub organization.
// +kubebuilder:validation:XValidation:rule="has(self.tokenSecretRef) != has(self.app)",message="set exactly one of tokenSecretRef or app"
type GitHubConnector struct {
	// organization is the organization's login.
	// +required
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`
	Organization string `json:"organization"`

	// apiURL is GitHub's REST API: unset for GitHub.com, https://<host>/api/v3 for
	// GitHub Enterprise Server.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",message="apiURL must be an https URL (http only to localhost, 127.0.0.1 or ::1)"
	APIURL string `json:"apiURL,omitempty"`

	// tokenSecretRef names the Secret key that holds a token of an organization owner
	// (fine-grained: the organization's Members permission, read and write; classic:
	// admin:org).
	// +optional
	TokenSecretRef *SecretKeySelector `json:"tokenSecretRef,omitempty"`

	// app authenticates as a GitHub App installed on the organization, with the
	// organization's Members permission (read and write).
	// +optional
	App *GitHubApp `json:"app,omitempty"`

	// leavers is what a deprovisioned member's membership becomes: Remove (default)
	// or OutsideCollaborator. Pending invitations are cancelled either way.
	// +optional
	// +kubebuilder:default=Remove
	Leavers GitHubLeaverPolicy `json:"leavers,omitempty"`

	// tls adjusts certificate verification (GitHub Enterprise Server with a private CA).
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// requestTimeout bounds each request.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="requestTimeout must be a duration from 1s to 5m, such as 30s"
	RequestTimeout *metav1.Duration `json:"requestTimeout,omitempty"`
}

// InitialPasswordPolicy is what password a new account gets where the app requires
// one at creation (Google Workspace, Entra ID); Roster never tells it to anyone.
// +kubebuilder:validation:Enum=Random;RandomMustChange
type InitialPasswordPolicy string

const (
	// InitialPasswordRandom sets a long random password: people sign in through
	// single sign-on, or an admin resets the password for them.
	InitialPasswordRandom InitialPasswordPolicy = "Random"
	// InitialPasswordRandomMustChange sets a long random password that must be changed
	// at the first sign-in (Google's changePasswordAtNextLogin, Entra ID's
	// forceChangePasswordNextSignIn), so that the one an admin resets it to is changed.
	InitialPasswordRandomMustChange InitialPasswordPolicy = "RandomMustChange"
)

// GoogleServiceAccount is how Roster reaches a Google Workspace account: a service
// account with domain-wide delegation, acting for an admin.
type GoogleServiceAccount struct {
	// customer is the Google Workspace customer id whose users and groups are read;
	// unset is the admin's own account (my_customer).
	// +optional
	// +kubebuilder:default=my_customer
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_]+$`
	Customer string `json:"customer,omitempty"`

	// adminEmail is the admin the service account acts for (domain-wide delegation),
	// with the admin privileges what Roster does needs: User Management and Groups to
	// provision, read-only user and group privileges for a DirectorySync.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=320
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+$`
	AdminEmail string `json:"adminEmail"`

	// serviceAccountKeySecretRef names the Secret key that holds the service account's
	// JSON key. Its client id must be granted domain-wide delegation for the scopes the
	// connector's or source's documentation lists.
	// +required
	ServiceAccountKeySecretRef SecretKeySelector `json:"serviceAccountKeySecretRef"`

	// apiURL is the Admin SDK's base URL: unset for Google's; https, or http only to a
	// loopback address.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",message="apiURL must be an https URL (http only to localhost, 127.0.0.1 or ::1)"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="apiURL must not carry a user name or password: put credentials in a Secret"
	APIURL string `json:"apiURL,omitempty"`

	// tls adjusts certificate verification (an apiURL behind a private CA).
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// requestTimeout bounds each request.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="requestTimeout must be a duration from 1s to 5m, such as 30s"
	RequestTimeout *metav1.Duration `json:"requestTimeout,omitempty"`
}

// GoogleWorkspaceConnector provisions the users and groups of a Google Workspace (or
// Cloud Identity) account through the Admin SDK Directory API, as a service account
// with domain-wide delegation acting for an admin (scopes admin.directory.user and
// admin.directory.group).
type GoogleWorkspaceConnector struct {
	// domain is the account's primary domain: a group named without "@" is the group
	// <name>@<domain>. A user's primary email (the account's userName) must be in one of
	// the account's verified domains.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$`
	Domain string `json:"domain"`

	GoogleServiceAccount `json:",inline"`

	// initialPassword is the password a new account gets: Random (default) or
	// RandomMustChange (changePasswordAtNextLogin). Nobody is told either.
	// +optional
	// +kubebuilder:default=Random
	InitialPassword InitialPasswordPolicy `json:"initialPassword,omitempty"`
}

// MicrosoftGraphApp is how Roster reaches a Microsoft Entra ID tenant: an app
// registration's client credentials (a client secret or a certificate) for Microsoft
// Graph's application permissions.
// +kubebuilder:validation:XValidation:rule="has(self.clientSecretRef) != has(self.clientCertificateSecretRef)",message="set exactly one of clientSecretRef or clientCertificateSecretRef"
type MicrosoftGraphApp struct {
	// tenantID is the Entra ID tenant: its id (a GUID) or one of its verified domains.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+)$`
	TenantID string `json:"tenantID"`

	// clientID is the app registration's application (client) id.
	// +required
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	ClientID string `json:"clientID"`

	// clientSecretRef names the Secret key holding a client secret of the app.
	// +optional
	ClientSecretRef *SecretKeySelector `json:"clientSecretRef,omitempty"`

	// clientCertificateSecretRef names the Secret key holding a certificate of the app
	// and its private key, both PEM (the certificate uploaded to the app registration):
	// Roster signs a client assertion with it, and no secret travels.
	// +optional
	ClientCertificateSecretRef *SecretKeySelector `json:"clientCertificateSecretRef,omitempty"`

	// authorityURL is the Microsoft identity platform's base URL: unset for the global
	// cloud's; https, or http only to a loopback address.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",message="authorityURL must be an https URL (http only to localhost, 127.0.0.1 or ::1)"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="authorityURL must not carry a user name or password: put credentials in a Secret"
	AuthorityURL string `json:"authorityURL,omitempty"`

	// graphURL is Microsoft Graph's base URL: unset for the global cloud's; https, or
	// http only to a loopback address.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",message="graphURL must be an https URL (http only to localhost, 127.0.0.1 or ::1)"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="graphURL must not carry a user name or password: put credentials in a Secret"
	GraphURL string `json:"graphURL,omitempty"`

	// tls adjusts certificate verification (URLs behind a private CA).
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// requestTimeout bounds each request.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="requestTimeout must be a duration from 1s to 5m, such as 30s"
	RequestTimeout *metav1.Duration `json:"requestTimeout,omitempty"`
}

// MicrosoftGraphConnector provisions the users, groups and licences of a Microsoft
// Entra ID tenant (Microsoft 365) through Microsoft Graph v1.0, with the application
// permissions User.ReadWrite.All and Group.ReadWrite.All (and, to read last sign-ins,
// AuditLog.Read.All).
type MicrosoftGraphConnector struct {
	MicrosoftGraphApp `json:",inline"`

	// initialPassword is the password a new account gets: Random (default) or
	// RandomMustChange (forceChangePasswordNextSignIn). Nobody is told either.
	// +optional
	// +kubebuilder:default=Random
	InitialPassword InitialPasswordPolicy `json:"initialPassword,omitempty"`

	// usageLocation is the two-letter country code new users get unless the mapping
	// sets usageLocation: a licence can only be assigned to a user who has one.
	// +optional
	// +kubebuilder:validation:MaxLength=2
	// +kubebuilder:validation:Pattern=`^[A-Z]{2}$`
	UsageLocation string `json:"usageLocation,omitempty"`

	// leaverSessions is what happens to a leaver's sign-in sessions when the account is
	// disabled: Revoke (default) ends them (revokeSignInSessions), so that sessions open
	// in other apps end too; Keep lets them run out.
	// +optional
	// +kubebuilder:default=Revoke
	LeaverSessions LeaverSessionPolicy `json:"leaverSessions,omitempty"`
}

// LeaverSessionPolicy is what happens to a leaver's open sign-in sessions.
// +kubebuilder:validation:Enum=Revoke;Keep
type LeaverSessionPolicy string

const (
	// LeaverSessionsRevoke ends them when the account is disabled.
	LeaverSessionsRevoke LeaverSessionPolicy = "Revoke"
	// LeaverSessionsKeep lets them run out.
	LeaverSessionsKeep LeaverSessionPolicy = "Keep"
)

// WebhookConnector provisions through a receiver the company runs: every change is one
// signed HTTPS request in Roster's webhook protocol (docs/connectors/webhook.md).
type WebhookConnector struct {
	// url receives every request: https, or http only to a loopback address.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",message="url must be an https URL (http only to localhost, 127.0.0.1 or ::1): requests carry people's details"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="url must not carry a user name or password: put credentials in a Secret"
	URL string `json:"url"`

	// signingSecretRef names the Secret whose key "secret" signs every request
	// (HMAC-SHA256); while the key "previousSecret" is also set, requests carry a second
	// signature made with it, so that a receiver still on the old secret accepts them
	// during a rotation.
	// +required
	SigningSecretRef LocalObjectReference `json:"signingSecretRef"`

	// headers are sent with every request.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Headers []HTTPHeader `json:"headers,omitempty"`

	// tls adjusts certificate verification.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// requestTimeout bounds each request.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="requestTimeout must be a duration from 1s to 5m, such as 30s"
	RequestTimeout *metav1.Duration `json:"requestTimeout,omitempty"`
}

// LDAPPasswordPolicy is what password a new directory account gets.
// +kubebuilder:validation:Enum=Random;None
type LDAPPasswordPolicy string

const (
	// LDAPPasswordRandom sets a long random password that nobody is told and that must
	// be changed at first logon: the account can sign in only after a reset (helpdesk,
	// self-service) or through single sign-on. Needs an encrypted connection.
	LDAPPasswordRandom LDAPPasswordPolicy = "Random"
	// LDAPPasswordNone sets no password. Active Directory then keeps the account
	// disabled where its password policy demands one, and says so in the account's status.
	LDAPPasswordNone LDAPPasswordPolicy = "None"
)

// LDAPConnector provisions accounts as entries in OpenLDAP or Active Directory.
// +kubebuilder:validation:XValidation:rule="!has(self.upnSuffix) || self.flavor == 'ActiveDirectory'",message="upnSuffix is for flavor ActiveDirectory",fieldPath=".upnSuffix"
// +kubebuilder:validation:XValidation:rule="!has(self.groupType) || self.flavor == 'ActiveDirectory'",message="groupType is for flavor ActiveDirectory",fieldPath=".groupType"
// +kubebuilder:validation:XValidation:rule="!has(self.lockAttribute) || self.flavor == 'OpenLDAP'",message="lockAttribute is for flavor OpenLDAP; Active Directory disables with userAccountControl",fieldPath=".lockAttribute"
type LDAPConnector struct {
	LDAPConnection `json:",inline"`

	// flavor is the kind of directory: OpenLDAP (inetOrgPerson named by uid,
	// groupOfNames, locked with the ppolicy overlay) or ActiveDirectory (user named by
	// cn, sAMAccountName, group, disabled with userAccountControl).
	// +optional
	// +kubebuilder:default=OpenLDAP
	Flavor LDAPFlavor `json:"flavor,omitempty"`

	// usersDN is the container new accounts are created in (below an OU the mapping's
	// organizationalUnit names, if it names one), and where accounts are listed from.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=1024
	UsersDN string `json:"usersDN"`

	// groupsDN is where groups are listed and created. Unset means Roster manages no
	// groups in this directory.
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=1024
	GroupsDN string `json:"groupsDN,omitempty"`

	// disabledUsersDN is where a deactivated account is moved when set (a common
	// Active Directory practice); reactivation moves it back. It must be below usersDN
	// so that Roster still lists the account.
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=1024
	DisabledUsersDN string `json:"disabledUsersDN,omitempty"`

	// initialPassword is the password a new account gets: Random (a random password no
	// one is told, to be changed at first logon; needs ldaps:// or StartTLS) or None.
	// Unset means Random for Active Directory and None for OpenLDAP.
	// +optional
	InitialPassword LDAPPasswordPolicy `json:"initialPassword,omitempty"`

	// externalIDAttribute is the directory attribute that holds the account's
	// externalId (for example employeeID in Active Directory, employeeNumber in
	// OpenLDAP). Unset means Roster writes no externalId; matchBy ExternalID needs it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9-]*$`
	ExternalIDAttribute string `json:"externalIDAttribute,omitempty"`

	// upnSuffix is the part after @ of a userPrincipalName, for a userName without
	// one (Active Directory). Unset means the domain of usersDN's DC components.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`
	UPNSuffix string `json:"upnSuffix,omitempty"`

	// groupType is the groupType of groups Roster creates in Active Directory.
	// Unset means a global security group (-2147483646).
	// +optional
	GroupType *int32 `json:"groupType,omitempty"`

	// lockAttribute is how a deactivated OpenLDAP account is marked. Unset means the
	// ppolicy overlay's pwdAccountLockedTime set to 000001010000Z (locked until an
	// administrator unlocks it).
	// +optional
	LockAttribute *LDAPLockAttribute `json:"lockAttribute,omitempty"`

	// pageSize is the number of entries asked for per page when listing (RFC 2696).
	// +optional
	// +kubebuilder:default=500
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	PageSize int32 `json:"pageSize,omitempty"`
}

// LDAPLockAttribute is an attribute and the value that marks an account as locked; the
// attribute is removed to unlock it.
type LDAPLockAttribute struct {
	// name of the attribute, for example pwdAccountLockedTime or nsAccountLock.
	// +required
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9-]*$`
	Name string `json:"name"`

	// value that locks the account, for example 000001010000Z or TRUE.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Value string `json:"value"`
}

// MemoryConnector provisions into an app that lives in the operator's memory: for
// demos and tests. Its accounts are lost when the operator restarts.
type MemoryConnector struct {
	// instance names the in-memory app; AppConnections with the same instance share it.
	// Unset means the AppConnection's own namespace and name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Instance string `json:"instance,omitempty"`
}

// MatchingKey is the User field that links a User to an existing account in the app.
// +kubebuilder:validation:Enum=UserName;Email;ExternalID
type MatchingKey string

const (
	// MatchByUserName links by userName, case-insensitively.
	MatchByUserName MatchingKey = "UserName"
	// MatchByEmail links by the primary (or first) email, case-insensitively.
	MatchByEmail MatchingKey = "Email"
	// MatchByExternalID links by the User's externalID.
	MatchByExternalID MatchingKey = "ExternalID"
)

// SuspendAction is what happens to an account when its User is suspended or expires.
// +kubebuilder:validation:Enum=Deactivate;Delete;Ignore
type SuspendAction string

// RemovalAction is what happens to an account when its User loses access (leaves every
// assignment, is deleted) or the AppConnection is deleted.
// +kubebuilder:validation:Enum=Deactivate;Delete;Orphan
type RemovalAction string

const (
	// SuspendDeactivate keeps the account but disables it.
	SuspendDeactivate SuspendAction = "Deactivate"
	// SuspendDelete deletes the account.
	SuspendDelete SuspendAction = "Delete"
	// SuspendIgnore leaves a suspended user's account as it is.
	SuspendIgnore SuspendAction = "Ignore"
)

const (
	// RemovalDeactivate keeps the account but disables it.
	RemovalDeactivate RemovalAction = "Deactivate"
	// RemovalDelete deletes the account.
	RemovalDelete RemovalAction = "Delete"
	// RemovalOrphan leaves the account as it is and stops managing it.
	RemovalOrphan RemovalAction = "Orphan"
)

// DeprovisionPolicy is what Roster does to accounts that should no longer be active.
type DeprovisionPolicy struct {
	// onSuspend applies when a User is suspended or its activeUntil passes.
	// +optional
	// +kubebuilder:default=Deactivate
	OnSuspend SuspendAction `json:"onSuspend,omitempty"`

	// onRemoval applies when a User loses every assignment to the app, the User is
	// deleted, or this AppConnection is deleted.
	// +optional
	// +kubebuilder:default=Deactivate
	OnRemoval RemovalAction `json:"onRemoval,omitempty"`

	// deleteAfter deletes a deactivated account once it has been deactivated this long.
	// Unset keeps deactivated accounts.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('87600h')",message="deleteAfter must be a duration from 1s to 87600h (10 years), such as 720h"
	DeleteAfter *metav1.Duration `json:"deleteAfter,omitempty"`
}

// UnmanagedAccountsPolicy is what Roster does with accounts in the app that no User holds.
// +kubebuilder:validation:Enum=Ignore;Report;Deactivate
type UnmanagedAccountsPolicy string

const (
	// UnmanagedIgnore leaves unmanaged accounts alone and does not count them.
	UnmanagedIgnore UnmanagedAccountsPolicy = "Ignore"
	// UnmanagedReport counts unmanaged accounts and lists some in status.
	UnmanagedReport UnmanagedAccountsPolicy = "Report"
	// UnmanagedDeactivate deactivates unmanaged accounts (within the safety threshold).
	UnmanagedDeactivate UnmanagedAccountsPolicy = "Deactivate"
)

// ConnectionMode says whether plans are applied.
// +kubebuilder:validation:Enum=Enforce;Plan
type ConnectionMode string

const (
	// ModeEnforce applies every plan.
	ModeEnforce ConnectionMode = "Enforce"
	// ModePlan is a dry run: plans are published in status and events, nothing is written.
	ModePlan ConnectionMode = "Plan"
)

// RateLimit is the app's request budget.
// +kubebuilder:validation:XValidation:rule="!has(self.writes) || self.writes <= self.requests",message="writes is part of requests: it cannot be more than requests"
type RateLimit struct {
	// requests is how many requests Roster may send per period.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Requests int32 `json:"requests"`

	// period is the window requests are counted over, for example 1s or 1m.
	// +optional
	// +kubebuilder:default="1s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="period must be a duration from 1s to 24h, such as 1m"
	Period *metav1.Duration `json:"period,omitempty"`

	// writes is how many of the requests may be writes (POST, PUT, PATCH, DELETE) per
	// period, for an app that counts writes apart; reads then do not eat into the
	// writes' budget. Unset: writes count as requests, nothing more.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Writes *int32 `json:"writes,omitempty"`

	// burst is how many requests (and writes) may go out at once before the rate
	// applies. Unset means one period's worth up to 100. Whatever the burst, no more
	// than requests (and writes) go out within any span of period.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	Burst *int32 `json:"burst,omitempty"`

	// maxConcurrency is the most requests in flight at once.
	// +optional
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	MaxConcurrency *int32 `json:"maxConcurrency,omitempty"`
}

// AppConnectionSpec declares one app tenant to provision into.
// +kubebuilder:validation:XValidation:rule="[has(self.scim), has(self.ldap), has(self.github), has(self.googleWorkspace), has(self.microsoftGraph), has(self.webhook), has(self.memory)].filter(x, x).size() == 1",message="set exactly one connector: scim, ldap, github, googleWorkspace, microsoftGraph, webhook or memory"
// +kubebuilder:validation:XValidation:rule="has(self.scim) == has(oldSelf.scim) && has(self.ldap) == has(oldSelf.ldap) && has(self.github) == has(oldSelf.github) && has(self.googleWorkspace) == has(oldSelf.googleWorkspace) && has(self.microsoftGraph) == has(oldSelf.microsoftGraph) && has(self.webhook) == has(oldSelf.webhook) && has(self.memory) == has(oldSelf.memory)",message="the connector cannot be changed; create a new AppConnection"
// +kubebuilder:validation:XValidation:rule="!has(self.github) || self.matchBy == 'UserName'",message="GitHub finds people by login: matchBy must be UserName",fieldPath=".matchBy"
// +kubebuilder:validation:XValidation:rule="!has(self.ldap) || self.matchBy != 'ExternalID' || has(self.ldap.externalIDAttribute)",message="matchBy ExternalID needs ldap.externalIDAttribute, the attribute that holds the external id",fieldPath=".matchBy"
type AppConnectionSpec struct {
	// scim provisions through the app's SCIM 2.0 API.
	// +optional
	SCIM *SCIMConnector `json:"scim,omitempty"`

	// ldap provisions entries into OpenLDAP or Active Directory.
	// +optional
	LDAP *LDAPConnector `json:"ldap,omitempty"`

	// github provisions the members and teams of a GitHub organization.
	// +optional
	GitHub *GitHubConnector `json:"github,omitempty"`

	// googleWorkspace provisions the users and groups of a Google Workspace account.
	// +optional
	GoogleWorkspace *GoogleWorkspaceConnector `json:"googleWorkspace,omitempty"`

	// microsoftGraph provisions the users, groups and licences of a Microsoft Entra ID
	// tenant (Microsoft 365).
	// +optional
	MicrosoftGraph *MicrosoftGraphConnector `json:"microsoftGraph,omitempty"`

	// webhook provisions through a receiver the company runs, for apps without an API
	// Roster speaks.
	// +optional
	Webhook *WebhookConnector `json:"webhook,omitempty"`

	// memory provisions into an in-memory app (demos and tests).
	// +optional
	Memory *MemoryConnector `json:"memory,omitempty"`

	// mapping sets app attributes from the User with CEL expressions; it adds to and
	// overrides the connector's defaults (for SCIM: userName, name, displayName, emails,
	// title, department, manager, externalId, active).
	// +optional
	// +listType=map
	// +listMapKey=target
	// +kubebuilder:validation:MaxItems=64
	Mapping []ExpressionMapping `json:"mapping,omitempty"`

	// matchBy is the key that links a User to an account that already exists in the
	// app, compared case-insensitively, so Roster adopts it instead of creating a
	// duplicate.
	// +optional
	// +kubebuilder:default=UserName
	MatchBy MatchingKey `json:"matchBy,omitempty"`

	// deprovision is what happens to accounts that should no longer be active.
	// +optional
	// +kubebuilder:default={}
	Deprovision DeprovisionPolicy `json:"deprovision,omitempty"`

	// unmanagedAccounts is what happens to accounts in the app that no User holds:
	// Ignore, Report (count and list them in status) or Deactivate.
	// +optional
	// +kubebuilder:default=Report
	UnmanagedAccounts UnmanagedAccountsPolicy `json:"unmanagedAccounts,omitempty"`

	// rateLimit is the app's request budget. Unset means 10 requests a second, 4 at once.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// safetyThreshold stops a run that would deprovision more than this many accounts
	// until an admin approves it.
	// +optional
	// +kubebuilder:default={maxCount: 25}
	SafetyThreshold *SafetyThreshold `json:"safetyThreshold,omitempty"`

	// mode is Enforce (apply plans) or Plan (dry run: publish plans, write nothing).
	// +optional
	// +kubebuilder:default=Enforce
	Mode ConnectionMode `json:"mode,omitempty"`

	// requestable lets people ask for this app with an AccessRequest, and says who
	// approves and for how long at most. Unset: the app cannot be requested.
	// +optional
	Requestable *AppRequestPolicy `json:"requestable,omitempty"`

	// resyncInterval is how often Roster lists the whole app to catch changes made
	// there; changes declared in Kubernetes are applied at once regardless.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="resyncInterval must be a duration from 1m to 168h, such as 1h"
	ResyncInterval *metav1.Duration `json:"resyncInterval,omitempty"`
}

// AccountCounts count the accounts an AppConnection sees in its app.
type AccountCounts struct {
	// managed accounts are held by a User through an assignment.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Managed int32 `json:"managed,omitempty"`

	// pending accounts are planned but not yet written.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Pending int32 `json:"pending,omitempty"`

	// failed accounts could not be written; AppAssignment status lists them.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Failed int32 `json:"failed,omitempty"`

	// unmanaged accounts exist in the app but no User holds them.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Unmanaged int32 `json:"unmanaged,omitempty"`
}

// PlanSummary describes the latest plan for the app.
type PlanSummary struct {
	// id identifies the plan; approve a plan blocked by the safety threshold by setting
	// the identity.roster.dev/approve-plan annotation to it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id,omitempty"`

	// creates is the number of accounts to create.
	// +optional
	Creates int32 `json:"creates,omitempty"`

	// updates is the number of accounts to update.
	// +optional
	Updates int32 `json:"updates,omitempty"`

	// deactivations is the number of accounts to deactivate.
	// +optional
	Deactivations int32 `json:"deactivations,omitempty"`

	// deletions is the number of accounts to delete.
	// +optional
	Deletions int32 `json:"deletions,omitempty"`

	// groupChanges is the number of group member additions and removals.
	// +optional
	GroupChanges int32 `json:"groupChanges,omitempty"`

	// sample lists some of the changes (at most 20), for example "create alice".
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=512
	Sample []string `json:"sample,omitempty"`
}

// AppConnectionStatus is what Roster observed about an AppConnection.
type AppConnectionStatus struct {
	CommonStatus `json:",inline"`

	// connector is the kind of connector in use (scim, ldap, github, webhook, memory).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Connector string `json:"connector,omitempty"`

	// capabilities are what the app was found to support, for example Groups, Patch,
	// Filter, ETag, Deactivate.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	Capabilities []string `json:"capabilities,omitempty"`

	// accounts counts the accounts in the app.
	// +optional
	Accounts AccountCounts `json:"accounts,omitempty"`

	// unmanagedAccounts lists some accounts no User holds (at most 50), when
	// unmanagedAccounts is Report.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:items:MaxLength=256
	UnmanagedAccounts []string `json:"unmanagedAccounts,omitempty"`

	// lastFullSyncTime is when Roster last listed the whole app, as of the last change
	// to this status: a full sync that finds nothing to change writes nothing, so the
	// roster_last_full_sync_timestamp_seconds metric is the one that is always current.
	// +optional
	LastFullSyncTime *metav1.Time `json:"lastFullSyncTime,omitempty"`

	// plan is the latest plan: in Plan mode the one that would be applied, when blocked
	// the one awaiting approval.
	// +optional
	Plan *PlanSummary `json:"plan,omitempty"`

	// managedGroups are the app's groups Roster has put members in; it removes members
	// from these only, never from groups it did not manage.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MaxLength=256
	ManagedGroups []string `json:"managedGroups,omitempty"`

	// quarantinedUntil is set while the app keeps failing and Roster backs off from it.
	// +optional
	QuarantinedUntil *metav1.Time `json:"quarantinedUntil,omitempty"`

	// recentDeprovisions counts the deprovisions sent within the safety threshold's
	// window, in slices, so that the threshold holds across restarts of Roster.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	RecentDeprovisions []DeprovisionCount `json:"recentDeprovisions,omitempty"`
}

// AppConnection is one app tenant Roster provisions accounts into.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=roster,shortName=appconn
// +kubebuilder:printcolumn:name="Connector",type=string,JSONPath=`.status.connector`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Managed",type=integer,JSONPath=`.status.accounts.managed`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AppConnection struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the app tenant.
	// +required
	Spec AppConnectionSpec `json:"spec"`

	// status is what Roster observed.
	// +optional
	Status AppConnectionStatus `json:"status,omitempty"`
}

// AppConnectionList is a list of AppConnections.
// +kubebuilder:object:root=true
type AppConnectionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AppConnection `json:"items"`
}

func init() {
	register(&AppConnection{}, &AppConnectionList{})
}

// ConnectorName is the name of the connector block that is set ("scim", "ldap",
// "memory"), or "" when none is.
func (s *AppConnectionSpec) ConnectorName() string {
	switch {
	case s.SCIM != nil:
		return "scim"
	case s.LDAP != nil:
		return "ldap"
	case s.GitHub != nil:
		return "github"
	case s.GoogleWorkspace != nil:
		return "googleWorkspace"
	case s.MicrosoftGraph != nil:
		return "microsoftGraph"
	case s.Webhook != nil:
		return "webhook"
	case s.Memory != nil:
		return "memory"
	}
	return ""
}
