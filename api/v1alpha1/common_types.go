package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalObjectReference names an object of a known kind in the same namespace.
type LocalObjectReference struct {
	// name of the object in the same namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// SecretKeySelector names one key of a Secret in the same namespace.
type SecretKeySelector struct {
	// name of the Secret in the same namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// key within the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// ConfigMapKeySelector names one key of a ConfigMap in the same namespace.
type ConfigMapKeySelector struct {
	// name of the ConfigMap in the same namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// key within the ConfigMap's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// ExpressionMapping sets one target field from a CEL expression.
type ExpressionMapping struct {
	// target is the field the expression fills: an app attribute for an AppConnection
	// (for SCIM, a path such as "title" or
	// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"), or a
	// User field for a DirectorySync ("userName", "department", "labels.team",
	// "attributes.costCenter").
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_.:/-]*$`
	Target string `json:"target"`

	// expression is a CEL expression whose result becomes the target's value. An
	// AppConnection's expressions see `user` (the User's spec fields and
	// `user.metadata`), `manager` (name, userName, accountID) and `entitlements`
	// (groups, appRole, license); a DirectorySync's see `record` (the source record). An
	// expression that evaluates to null leaves the target unset.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Expression string `json:"expression"`
}

// SafetyThreshold bounds how much may be taken away within a sliding window. Every
// deprovision (deactivation or deletion; for a DirectorySync, every suspension or
// deletion of a User) counts for the window after it was sent, so that deprovisions
// arriving one at a time are held exactly like one large plan. Those that would take
// the window over either bound are not applied: the object goes Stalled with reason
// SafetyThresholdExceeded until an admin approves the held plan by annotation.
// +kubebuilder:validation:XValidation:rule="has(self.maxCount) || has(self.maxPercent)",message="safetyThreshold needs maxCount, maxPercent or both"
type SafetyThreshold struct {
	// maxCount is the largest number of accounts (or Users) that may be deprovisioned
	// within one window.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	MaxCount *int32 `json:"maxCount,omitempty"`

	// maxPercent is the largest share, in percent of the accounts (or Users) under
	// management, that may be deprovisioned within one window.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxPercent *int32 `json:"maxPercent,omitempty"`

	// window is how long a deprovision counts against the threshold after it was sent.
	// Unset means 10m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="window must be a duration from 1m to 168h, such as 10m"
	Window *metav1.Duration `json:"window,omitempty"`
}

// DeprovisionCount counts the deprovisions sent in one slice of a safety threshold's
// window, so that the count survives a restart of Roster.
type DeprovisionCount struct {
	// since is when the slice starts.
	// +required
	Since metav1.Time `json:"since"`

	// count of deprovisions sent in the slice.
	// +required
	// +kubebuilder:validation:Minimum=0
	Count int32 `json:"count"`
}

// DefaultSafetyWindow is how long a deprovision counts against a safety threshold
// unless its window says otherwise.
const DefaultSafetyWindow = 10 * time.Minute

// WindowOrDefault is the threshold's window, or DefaultSafetyWindow.
func (t *SafetyThreshold) WindowOrDefault() time.Duration {
	if t == nil || t.Window == nil || t.Window.Duration <= 0 {
		return DefaultSafetyWindow
	}
	return t.Window.Duration
}

// Entitlements are what an assignment gives a user in an app beyond the account itself.
type Entitlements struct {
	// groups are app-side groups (by display name) the user is made a member of. Roster
	// creates a group that does not exist yet.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Groups []string `json:"groups,omitempty"`

	// appRole is the app's own role for the user (for example "admin" or "member"),
	// where the app has one.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	AppRole string `json:"appRole,omitempty"`

	// license is the app's license or plan to assign (for example "enterprise"),
	// where the app has one.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	License string `json:"license,omitempty"`
}

// HTTPHeader is a header sent with every request to an app or source.
type HTTPHeader struct {
	// name of the header.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[!#$%&'*+.^_|~0-9A-Za-z-]+$`
	Name string `json:"name"`

	// value of the header, for values that are not secret.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value,omitempty"`

	// valueFrom reads the value from a Secret, for values that are.
	// +optional
	ValueFrom *SecretKeySelector `json:"valueFrom,omitempty"`
}

// TLSConfig adjusts how Roster verifies a server's certificate.
type TLSConfig struct {
	// caSecretRef names a Secret key holding PEM CA certificates to trust in addition to
	// the system's.
	// +optional
	CASecretRef *SecretKeySelector `json:"caSecretRef,omitempty"`

	// serverName overrides the name checked against the server's certificate.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`
}

// LDAPSecurity is how an LDAP connection is protected.
// +kubebuilder:validation:Enum=TLS;StartTLS;None
type LDAPSecurity string

const (
	// LDAPSecurityTLS speaks TLS from the first byte (ldaps://).
	LDAPSecurityTLS LDAPSecurity = "TLS"
	// LDAPSecurityStartTLS upgrades an ldap:// connection with the StartTLS operation.
	LDAPSecurityStartTLS LDAPSecurity = "StartTLS"
	// LDAPSecurityNone sends everything, the password included, in clear text.
	LDAPSecurityNone LDAPSecurity = "None"
)

// LDAPConnection is how Roster reaches and binds to an LDAP server (OpenLDAP or Active
// Directory).
// +kubebuilder:validation:XValidation:rule="!has(self.security) || (self.security == 'TLS') == self.url.startsWith('ldaps://')",message="security TLS goes with an ldaps:// url; StartTLS and None go with ldap://",fieldPath=".security"
type LDAPConnection struct {
	// url of the server, ldap://host:389 or ldaps://host:636.
	// +required
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('ldap://') || self.startsWith('ldaps://')",message="url must start with ldap:// or ldaps://"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="url must not carry a user name or password: put credentials in a Secret"
	URL string `json:"url"`

	// security is how the connection is protected. Unset means TLS for ldaps:// and
	// StartTLS for ldap://; None must be chosen explicitly.
	// +optional
	Security LDAPSecurity `json:"security,omitempty"`

	// tls adjusts certificate verification for TLS and StartTLS.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// bindDN is the distinguished name Roster binds as.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BindDN string `json:"bindDN"`

	// passwordSecretRef names the Secret key holding the bind password.
	// +required
	PasswordSecretRef SecretKeySelector `json:"passwordSecretRef"`
}

// LDAPFlavor picks defaults for attribute names and object classes.
// +kubebuilder:validation:Enum=OpenLDAP;ActiveDirectory
type LDAPFlavor string

const (
	// LDAPFlavorOpenLDAP: uid, inetOrgPerson, groupOfNames.
	LDAPFlavorOpenLDAP LDAPFlavor = "OpenLDAP"
	// LDAPFlavorActiveDirectory: sAMAccountName, user, group, userAccountControl, memberOf.
	LDAPFlavorActiveDirectory LDAPFlavor = "ActiveDirectory"
)

// CommonStatus is the part of every Roster object's status that Kubernetes tools read.
type CommonStatus struct {
	// conditions describe the object's state. Ready is always present; Stalled is
	// present and True only while a person must act; Reconciling only while Roster is
	// converging.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the metadata.generation the status describes.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}
